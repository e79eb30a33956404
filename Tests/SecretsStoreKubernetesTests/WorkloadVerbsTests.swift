import Foundation
import Logging
import NIOHTTP1  // HTTPMethod for raw PATCH requests through RESTKubernetesClient.send (a dependency of SecretsStoreKubernetes)
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreKubernetes
import SecretsStoreTesting
import Testing

/// The restart-on-rotation verbs of the REST client (ReplicaSet and workload reads, the template merge
/// patch, events on workloads) against the fake API server, and the fake's PATCH semantics.
@Suite("Kubernetes REST client: workload verbs against the fake API server")
struct WorkloadVerbsTests {
    static let deployments = "/apis/apps/v1/namespaces/ns/deployments"
    let logger = Logger(label: "test")
    let web = WorkloadReference(kind: .deployment, namespace: "ns", name: "web")

    func withClient(_ body: (FakeKubernetesAPIServer, RESTKubernetesClient) async throws -> Void) async throws {
        let server = try await FakeKubernetesAPIServer(requiredToken: "t0ken")
        let client = try RESTKubernetesClient(configuration: KubernetesConfiguration(server: server.url, credentials: .token("t0ken")))
        do {
            try await body(server, client)
        } catch {
            try await client.shutdown()
            try await server.shutdown()
            throw error
        }
        try await client.shutdown()
        try await server.shutdown()
    }

    static func seedDeployment(_ server: FakeKubernetesAPIServer, optIn: Bool = true) {
        server.seed(
            path: deployments,
            object: [
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": [
                    "name": "web",
                    "annotations": optIn ? [RolloutTrigger.optInAnnotation: "true"] : [String: String](),
                ],
                "spec": [
                    "replicas": 3,
                    "selector": ["matchLabels": ["app": "web"]],
                    "template": [
                        "metadata": ["labels": ["app": "web"], "annotations": ["team": "payments"]],
                        "spec": ["containers": [["name": "app", "image": "nginx"]]],
                    ],
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
        try await withClient { server, client in
            server.seed(
                path: "/apis/apps/v1/namespaces/ns/replicasets",
                object: [
                    "metadata": [
                        "name": "web-5d9",
                        "ownerReferences": [["apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "uid-web", "controller": true]],
                    ]
                ]
            )
            let owners = try await client.replicaSetOwners(namespace: "ns", name: "web-5d9", logger: logger)
            #expect(owners == [OwnerReference(apiVersion: "apps/v1", kind: "Deployment", name: "web", uid: "uid-web")])
            #expect(server.requests.last?.method == "GET")
            #expect(server.requests.last?.path == "/apis/apps/v1/namespaces/ns/replicasets/web-5d9")
            await #expect(throws: KubernetesClientError.notFound("replicasets.apps \"gone\" not found")) {
                try await client.replicaSetOwners(namespace: "ns", name: "gone", logger: logger)
            }
        }
    }

    @Test("a Deployment, StatefulSet or DaemonSet is read with its annotations, template annotations, version and generation")
    func readsWorkloads() async throws {
        try await withClient { server, client in
            Self.seedDeployment(server)
            let deployment = try await client.workload(web, logger: logger)
            let stored = Self.metadata(server.object(at: Self.deployments + "/web"))
            #expect(deployment.reference.uid == stored["uid"] as? String && !deployment.reference.uid.isEmpty)
            #expect(deployment.annotations == [RolloutTrigger.optInAnnotation: "true"])
            #expect(deployment.templateAnnotations == ["team": "payments"])
            #expect(deployment.resourceVersion == stored["resourceVersion"] as? String)
            #expect(deployment.generation == 1)

            for kind in [WorkloadReference.Kind.statefulSet, .daemonSet] {
                server.seed(path: "/apis/apps/v1/namespaces/ns/\(kind.resource)", object: ["metadata": ["name": "db"]])
                let workload = try await client.workload(WorkloadReference(kind: kind, namespace: "ns", name: "db"), logger: logger)
                #expect(workload.reference.kind == kind && workload.templateAnnotations.isEmpty)
                #expect(server.requests.last?.path == "/apis/apps/v1/namespaces/ns/\(kind.resource)/db")
            }
        }
    }

    @Test("the template patch is a JSON merge patch of one annotation: other fields kept, generation and resourceVersion bumped once")
    func mergePatch() async throws {
        try await withClient { server, client in
            Self.seedDeployment(server)
            let before = try await client.workload(web, logger: logger)
            let written = try await client.patchTemplateAnnotations(
                web,
                annotations: [RolloutTrigger.rotatedVersionsAnnotation: "spc=0123456789abcdef"],
                resourceVersion: before.resourceVersion,
                logger: logger
            )
            let request = try #require(server.requests.last)
            #expect(request.method == "PATCH")
            #expect(request.path == Self.deployments + "/web")
            #expect(request.contentType == "application/merge-patch+json")
            #expect(request.body == #"{"metadata":{"resourceVersion":"\#(before.resourceVersion ?? "")"},"spec":{"template":{"metadata":{"annotations":{"secrets-store.csi.k8s.io\/rotated-versions":"spc=0123456789abcdef"}}}}}"#)
            #expect(written.templateAnnotations == ["team": "payments", RolloutTrigger.rotatedVersionsAnnotation: "spc=0123456789abcdef"])
            #expect(written.generation == 2)
            #expect(written.resourceVersion != before.resourceVersion)

            let stored = try #require(server.object(at: Self.deployments + "/web"))
            #expect((stored["spec"] as? [String: Any])?["replicas"] as? Int == 3)
            #expect((Self.template(stored)["metadata"] as? [String: Any])?["labels"] as? [String: String] == ["app": "web"])
            #expect(((Self.template(stored)["spec"] as? [String: Any])?["containers"] as? [[String: Any]])?.count == 1)
            #expect(Self.metadata(stored)["annotations"] as? [String: String] == [RolloutTrigger.optInAnnotation: "true"])

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

    @Test("a patch with a stale resourceVersion is a conflict; a refused one is forbidden; a missing workload is notFound")
    func patchFailures() async throws {
        try await withClient { server, client in
            Self.seedDeployment(server)
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

            server.injectFailure(status: 403, forPathContaining: "/deployments/web")
            await #expect(throws: KubernetesClientError.forbidden("injected failure")) {
                try await client.patchTemplateAnnotations(web, annotations: ["a": "3"], resourceVersion: nil, logger: logger)
            }
            await #expect(throws: KubernetesClientError.notFound("deployments.apps \"nope\" not found")) {
                try await client.patchTemplateAnnotations(
                    WorkloadReference(kind: .deployment, namespace: "ns", name: "nope"), annotations: ["a": "1"], resourceVersion: nil, logger: logger
                )
            }
        }
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

    @Test("an event on a workload names it as involvedObject apps/v1 with its kind and UID")
    func workloadEvent() async throws {
        try await withClient { server, client in
            let reference = WorkloadReference(kind: .statefulSet, namespace: "ns", name: "db", uid: "uid-db")
            try await client.recordEvent(
                WorkloadEvent(workload: reference, kind: .normal, reason: WorkloadEvent.rolloutTriggered, message: "restarting the pods of StatefulSet ns/db"),
                logger: logger
            )
            let request = try #require(server.requests.last)
            #expect(request.method == "POST" && request.path == "/api/v1/namespaces/ns/events")
            let body = try #require(try JSONSerialization.jsonObject(with: Data(request.body.utf8)) as? [String: Any])
            let involved = try #require(body["involvedObject"] as? [String: Any])
            #expect(involved["apiVersion"] as? String == "apps/v1")
            #expect(involved["kind"] as? String == "StatefulSet")
            #expect(involved["name"] as? String == "db" && involved["namespace"] as? String == "ns" && involved["uid"] as? String == "uid-db")
            #expect(body["reason"] as? String == "RolloutTriggered" && body["type"] as? String == "Normal")
            #expect((Self.metadata(body)["name"] as? String)?.hasPrefix("db.") == true)
        }
    }
}
