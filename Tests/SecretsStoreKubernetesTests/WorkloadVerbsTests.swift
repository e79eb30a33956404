import Foundation
import Logging
import NIOHTTP1  // HTTPMethod for raw PATCH requests through RESTKubernetesClient.send (a dependency of SecretsStoreKubernetes)
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreKubernetes
import SecretsStoreTesting
import Testing

/// The restart-on-rotation verbs of the REST client (ReplicaSet and workload reads, the template merge patch,
/// events on workloads) against a real API server, each test in a namespace of its own.
@Suite("Kubernetes REST client: workload verbs against a real API server", .realAPIServer, .timeLimit(.minutes(3)))
struct WorkloadVerbsTests {
    let logger = Logger(label: "test")

    static func deployments(_ namespace: String) -> String { "/apis/apps/v1/namespaces/\(namespace)/deployments" }

    func withNamespace(_ body: (RealKubernetesAPIServer, RESTKubernetesClient, String) async throws -> Void) async throws {
        let api = try await RealKubernetesAPIServer.shared()
        try await api.withNamespace { client, namespace in try await body(api, client, namespace) }
    }

    /// A pod template labelled `app: <app>` with one container.
    static func template(app: String, annotations: [String: String] = [:]) -> [String: Any] {
        [
            "metadata": ["labels": ["app": app], "annotations": annotations],
            "spec": ["containers": [["name": "app", "image": "nginx"]]],
        ]
    }

    @discardableResult
    static func createDeployment(_ client: RESTKubernetesClient, namespace: String, optIn: Bool = true) async throws -> [String: Any] {
        try await client.create(
            deployments(namespace),
            [
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": [
                    "name": "web",
                    "annotations": optIn ? [RolloutTrigger.optInAnnotation: "true"] : [String: String](),
                ],
                "spec": [
                    "replicas": 3,
                    "selector": ["matchLabels": ["app": "web"]],
                    "template": template(app: "web", annotations: ["team": "payments"]),
                ],
            ]
        )
    }

    static func metadata(_ object: [String: Any]?) -> [String: Any] { object?["metadata"] as? [String: Any] ?? [:] }
    static func template(_ object: [String: Any]?) -> [String: Any] {
        ((object?["spec"] as? [String: Any])?["template"] as? [String: Any]) ?? [:]
    }

    @Test("a ReplicaSet's owners are read from apps/v1; a missing one is notFound")
    func replicaSetOwners() async throws {
        try await withNamespace { _, client, ns in
            try await client.create(
                "/apis/apps/v1/namespaces/\(ns)/replicasets",
                [
                    "apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": [
                        "name": "web-5d9",
                        "ownerReferences": [["apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "uid-web", "controller": true]],
                    ],
                    "spec": ["replicas": 0, "selector": ["matchLabels": ["app": "web"]], "template": Self.template(app: "web")],
                ]
            )
            let owners = try await client.replicaSetOwners(namespace: ns, name: "web-5d9", logger: logger)
            #expect(owners == [OwnerReference(apiVersion: "apps/v1", kind: "Deployment", name: "web", uid: "uid-web")])
            await #expect(throws: KubernetesClientError.notFound("replicasets.apps \"gone\" not found")) {
                try await client.replicaSetOwners(namespace: ns, name: "gone", logger: logger)
            }
        }
    }

    @Test("a Deployment, StatefulSet or DaemonSet is read with its annotations, template annotations, version and generation")
    func readsWorkloads() async throws {
        try await withNamespace { _, client, ns in
            let created = try await Self.createDeployment(client, namespace: ns)
            let web = WorkloadReference(kind: .deployment, namespace: ns, name: "web")
            let deployment = try await client.workload(web, logger: logger)
            let stored = Self.metadata(created)
            #expect(deployment.reference.uid == stored["uid"] as? String && !deployment.reference.uid.isEmpty)
            #expect(deployment.reference.kind == .deployment && deployment.reference.namespace == ns && deployment.reference.name == "web")
            #expect(deployment.annotations == [RolloutTrigger.optInAnnotation: "true"])
            #expect(deployment.templateAnnotations == ["team": "payments"])
            #expect(deployment.resourceVersion == stored["resourceVersion"] as? String)
            #expect(deployment.generation == 1)

            var spec: [String: Any] = ["selector": ["matchLabels": ["app": "db"]], "template": Self.template(app: "db")]
            spec["serviceName"] = "db"
            try await client.create("/apis/apps/v1/namespaces/\(ns)/statefulsets", ["apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": ["name": "db"], "spec": spec])
            spec.removeValue(forKey: "serviceName")
            try await client.create("/apis/apps/v1/namespaces/\(ns)/daemonsets", ["apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": ["name": "db"], "spec": spec])
            for kind in [WorkloadReference.Kind.statefulSet, .daemonSet] {
                let workload = try await client.workload(WorkloadReference(kind: kind, namespace: ns, name: "db"), logger: logger)
                #expect(workload.reference.kind == kind && workload.reference.name == "db" && !workload.reference.uid.isEmpty)
                #expect(workload.templateAnnotations.isEmpty && workload.generation == 1)
            }
        }
    }

    @Test("the template patch is a JSON merge patch of one annotation: other fields kept, generation and resourceVersion bumped once")
    func mergePatch() async throws {
        try await withNamespace { _, client, ns in
            try await Self.createDeployment(client, namespace: ns)
            let web = WorkloadReference(kind: .deployment, namespace: ns, name: "web")
            let before = try await client.workload(web, logger: logger)
            let written = try await client.patchTemplateAnnotations(
                web,
                annotations: [RolloutTrigger.rotatedVersionsAnnotation: "spc=0123456789abcdef"],
                resourceVersion: before.resourceVersion,
                logger: logger
            )
            #expect(written.templateAnnotations == ["team": "payments", RolloutTrigger.rotatedVersionsAnnotation: "spc=0123456789abcdef"])
            #expect(written.generation == 2)
            #expect(written.resourceVersion != before.resourceVersion)

            let stored = try #require(try await client.object(at: Self.deployments(ns) + "/web"))
            #expect((stored["spec"] as? [String: Any])?["replicas"] as? Int == 3)
            #expect((Self.template(stored)["metadata"] as? [String: Any])?["labels"] as? [String: String] == ["app": "web"])
            #expect(((Self.template(stored)["spec"] as? [String: Any])?["containers"] as? [[String: Any]])?.count == 1)
            #expect(Self.metadata(stored)["annotations"] as? [String: String] == [RolloutTrigger.optInAnnotation: "true"])
            #expect(Self.metadata(stored)["resourceVersion"] as? String == written.resourceVersion)

            // The same patch again changes nothing: nothing is written, no version or generation moves.
            let again = try await client.patchTemplateAnnotations(
                web,
                annotations: [RolloutTrigger.rotatedVersionsAnnotation: "spc=0123456789abcdef"],
                resourceVersion: nil,
                logger: logger
            )
            #expect(again.resourceVersion == written.resourceVersion)
            #expect(again.generation == 2)
        }
    }

    @Test("a patch with a stale resourceVersion is a conflict; one RBAC refuses is forbidden; a missing workload is notFound")
    func patchFailures() async throws {
        try await withNamespace { api, client, ns in
            try await Self.createDeployment(client, namespace: ns)
            let web = WorkloadReference(kind: .deployment, namespace: ns, name: "web")
            let stale = try await client.workload(web, logger: logger).resourceVersion
            try await client.patchTemplateAnnotations(web, annotations: ["a": "1"], resourceVersion: nil, logger: logger)
            let error = await #expect(throws: KubernetesClientError.self) {
                try await client.patchTemplateAnnotations(web, annotations: ["a": "2"], resourceVersion: stale, logger: logger)
            }
            guard case .conflict(let message)? = error else {
                Issue.record("expected a conflict, got \(String(describing: error))")
                return
            }
            #expect(message.contains("deployments.apps \"web\": the object has been modified"))
            #expect(try await client.workload(web, logger: logger).templateAnnotations["a"] == "1")

            try await api.withClient(token: api.unprivilegedToken) { viewer in
                await #expect {
                    try await viewer.patchTemplateAnnotations(web, annotations: ["a": "3"], resourceVersion: nil, logger: logger)
                } throws: { error in
                    guard case .forbidden(let message)? = error as? KubernetesClientError else { return false }
                    return message.contains("cannot patch resource \"deployments\" in API group \"apps\"")
                }
            }
            #expect(try await client.workload(web, logger: logger).templateAnnotations["a"] == "1")
            await #expect(throws: KubernetesClientError.notFound("deployments.apps \"nope\" not found")) {
                try await client.patchTemplateAnnotations(
                    WorkloadReference(kind: .deployment, namespace: ns, name: "nope"), annotations: ["a": "1"], resourceVersion: nil, logger: logger
                )
            }
        }
    }

    @Test("an event on a workload names it as involvedObject apps/v1 with its kind and UID")
    func workloadEvent() async throws {
        try await withNamespace { _, client, ns in
            let reference = WorkloadReference(kind: .statefulSet, namespace: ns, name: "db", uid: "uid-db")
            try await client.recordEvent(
                WorkloadEvent(workload: reference, kind: .normal, reason: WorkloadEvent.rolloutTriggered, message: "restarting the pods of StatefulSet \(ns)/db"),
                logger: logger
            )
            let events = try #require(try await client.object(at: "/api/v1/namespaces/\(ns)/events")?["items"] as? [[String: Any]])
            #expect(events.count == 1)
            let body = try #require(events.first)
            let involved = try #require(body["involvedObject"] as? [String: Any])
            #expect(involved["apiVersion"] as? String == "apps/v1")
            #expect(involved["kind"] as? String == "StatefulSet")
            #expect(involved["name"] as? String == "db" && involved["namespace"] as? String == ns && involved["uid"] as? String == "uid-db")
            #expect(body["reason"] as? String == "RolloutTriggered" && body["type"] as? String == "Normal")
            #expect(body["message"] as? String == "restarting the pods of StatefulSet \(ns)/db")
            #expect((body["source"] as? [String: Any])?["component"] as? String == "secrets-store-csi-driver")
            #expect((Self.metadata(body)["name"] as? String)?.hasPrefix("db.") == true)
        }
    }
}

/// The fake API server's own PATCH semantics, which the fake-backed suites rely on (the real server takes JSON
/// patches too, so this is about the fake only).
@Suite("Fake API server: PATCH types", .timeLimit(.minutes(1)))
struct FakePatchTypesTests {
    static let deployments = "/apis/apps/v1/namespaces/ns/deployments"
    let logger = Logger(label: "test")

    static func metadata(_ object: [String: Any]?) -> [String: Any] { object?["metadata"] as? [String: Any] ?? [:] }
    static func template(_ object: [String: Any]?) -> [String: Any] {
        ((object?["spec"] as? [String: Any])?["template"] as? [String: Any]) ?? [:]
    }

    func withClient(_ body: (FakeKubernetesAPIServer, RESTKubernetesClient) async throws -> Void) async throws {
        try await FakeKubernetesAPIServer.withClient(body)
    }

    static func seedDeployment(_ server: FakeKubernetesAPIServer) {
        server.seed(
            path: deployments,
            object: [
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": ["name": "web", "annotations": [RolloutTrigger.optInAnnotation: "true"]],
                "spec": ["replicas": 3, "selector": ["matchLabels": ["app": "web"]], "template": WorkloadVerbsTests.template(app: "web", annotations: ["team": "payments"])],
            ]
        )
    }

    @Test("the fake API server takes merge and strategic merge patches (null deletes), refuses other patch types with 415")
    func fakePatchTypes() async throws {
        try await withClient { server, client in
            Self.seedDeployment(server)
            let path = Self.deployments + "/web"
            let strategic = #"{"spec":{"template":{"metadata":{"annotations":{"team":null,"x":"1"}}}}}"#
            _ = try await client.send(.PATCH, path, body: Array(strategic.utf8), contentType: "application/strategic-merge-patch+json", logger: logger)
            let annotations = (Self.template(server.object(at: path))["metadata"] as? [String: Any])?["annotations"] as? [String: String]
            #expect(annotations == ["x": "1"])
            let jsonPatch = #"[{"op":"add","path":"/metadata/labels","value":{}}]"#
            let error = await #expect(throws: KubernetesClientError.self) {
                _ = try await client.send(.PATCH, path, body: Array(jsonPatch.utf8), contentType: "application/json-patch+json", logger: logger)
            }
            #expect(error == .rejected(status: 415, message: "the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json"))
            // A metadata-only change bumps the resourceVersion, not the generation.
            let before = Self.metadata(server.object(at: path))
            _ = try await client.send(.PATCH, path, body: Array(#"{"metadata":{"labels":{"l":"1"}}}"#.utf8), contentType: RESTKubernetesClient.mergePatch, logger: logger)
            let after = Self.metadata(server.object(at: path))
            #expect(after["generation"] as? Int == before["generation"] as? Int)
            #expect(after["resourceVersion"] as? String != before["resourceVersion"] as? String)
        }
    }
}
