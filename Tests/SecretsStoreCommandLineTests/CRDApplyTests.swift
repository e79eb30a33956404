import SecretsStoreCommandLine
import Foundation
import Logging
import NIOHTTP1
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreApplication
import SecretsStoreKubernetes
import SecretsStoreTesting
import Testing

/// `crds apply`: the CRDs built into the binary are the chart's, and each is server-side-applied with the
/// API server's apply protocol: against a real API server, and against the fake one for unavailable answers
/// (retried), which the real one cannot be made to give on demand.
@Suite("crds apply", .timeLimit(.minutes(3)))
struct CRDApplyTests {
    let logger = Logger(label: "crds-test")
    static let names = ["secretproviderclasses.secrets-store.csi.x-k8s.io", "secretproviderclasspodstatuses.secrets-store.csi.x-k8s.io"]
    static let crdPath = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"

    @Test("the embedded CRDs are the chart's crds/ files, byte for byte (run scripts/embed-crds.sh when this fails)")
    func embeddedMatchChart() throws {
        let directory = repositoryRoot + "/charts/secrets-store-csi-driver/crds"
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".yaml") }.sorted()
        #expect(EmbeddedCRDs.all.map(\.fileName) == files, "run scripts/embed-crds.sh")
        for crd in EmbeddedCRDs.all {
            let chart = try Data(contentsOf: URL(fileURLWithPath: directory + "/" + crd.fileName))
            #expect(Array(crd.yaml.utf8) == Array(chart), "\(crd.fileName) differs from the chart: run scripts/embed-crds.sh")
        }
        #expect(try EmbeddedCRDs.all.map { try $0.name() } == Self.names)
    }

    func kubernetes(_ api: FakeKubernetesAPIServer) -> DriverConfiguration.KubernetesSource {
        .configuration(KubernetesConfiguration(server: api.url, credentials: .token("hook-token")))
    }

    /// The embedded CRDs with the group `secrets-store.csi.x-k8s.io` renamed to `group`: CRDs of one test only,
    /// created fresh on the shared real API server (whose own copies of ours other tests use).
    static func renamed(group: String) -> [EmbeddedCRD] {
        EmbeddedCRDs.all.map { EmbeddedCRD(fileName: $0.fileName, yaml: $0.yaml.replacingOccurrences(of: "secrets-store.csi.x-k8s.io", with: group)) }
    }

    @Test("each CRD is server-side-applied: created, served, owned by the driver's field manager, taken over from another manager, unchanged when applied again", .realAPIServer)
    func appliesEach() async throws {
        let api = try await RealKubernetesAPIServer.shared()
        let group = "t\(RealKubernetesAPIServer.randomName()).example.com"
        let crds = Self.renamed(group: group)
        let names = try crds.map { try $0.name() }
        try await api.withClient { client in
            // An older manager (a kubectl apply) set the resource policy to something else first: without
            // force=true the driver's apply would be a 409 conflict.
            let older = crds[0].yaml.replacingOccurrences(of: "helm.sh/resource-policy: keep", with: "helm.sh/resource-policy: delete")
            #expect(older != crds[0].yaml)
            _ = try await client.send(
                .PATCH, Self.crdPath + names[0] + "?fieldManager=kubectl", body: Array(older.utf8), contentType: "application/apply-patch+yaml", logger: logger
            )

            let report = await CRDApply.run(kubernetes: .configuration(api.configuration()), crds: crds, logger: logger)
            #expect(report.failures == [])
            #expect(report.exitCode == 0)
            #expect(report.applied == names.map { "customresourcedefinition.apiextensions.k8s.io/\($0) serverside-applied" })

            // Both resources are served (once Established).
            for resource in ["secretproviderclasses", "secretproviderclasspodstatuses"] {
                try await eventually("\(resource) served", within: .seconds(30), every: .milliseconds(50)) {
                    (try? await client.send(.GET, "/apis/\(group)/v1/\(resource)", logger: logger)) != nil
                }
            }
            // Read once Established: the API server writes the CRD's status conditions after it is created.
            var versions: [String] = []
            for name in names {
                let crd = try #require(try await client.object(at: Self.crdPath + name))
                let metadata = try #require(crd["metadata"] as? [String: Any])
                #expect((metadata["annotations"] as? [String: String])?["helm.sh/resource-policy"] == "keep")
                let managers = (metadata["managedFields"] as? [[String: Any]] ?? []).map { "\($0["manager"] ?? "") \($0["operation"] ?? "")" }
                #expect(managers.contains("secrets-store-csi-driver Apply"))
                #expect((crd["spec"] as? [String: Any])?["group"] as? String == group)
                let conditions = ((crd["status"] as? [String: Any])?["conditions"] as? [[String: Any]]) ?? []
                #expect(conditions.contains { $0["type"] as? String == "Established" && $0["status"] as? String == "True" })
                versions.append(metadata["resourceVersion"] as? String ?? "")
            }

            let again = await CRDApply.run(kubernetes: .configuration(api.configuration()), crds: crds, logger: logger)
            #expect(again == report)
            for (name, version) in zip(names, versions) {
                let metadata = try await client.object(at: Self.crdPath + name)?["metadata"] as? [String: Any]
                #expect(metadata?["resourceVersion"] as? String == version)
            }
            for name in names { try await client.delete(Self.crdPath + name) }
        }
    }

    @Test("an unreachable API server is retried, then reported with the request's field manager and force")
    func retriesUnavailable() async throws {
        let api = try await FakeKubernetesAPIServer()
        for _ in 0..<CRDApply.attempts { api.injectFailure(status: 503, forPathContaining: Self.crdPath + Self.names[0]) }
        api.injectFailure(status: 200, forPathContaining: Self.crdPath + Self.names[1])
        let report = await CRDApply.run(kubernetes: kubernetes(api), retryDelay: .milliseconds(1), logger: logger)
        try await api.shutdown()

        #expect(report.exitCode == 1)
        #expect(report.applied == ["customresourcedefinition.apiextensions.k8s.io/\(Self.names[1]) serverside-applied"])
        let failure = try #require(report.failures.first)
        #expect(failure.hasPrefix("failed to apply CustomResourceDefinition \(Self.names[0]): the API server is unreachable"))
        #expect(failure.contains("PATCH \(Self.crdPath)\(Self.names[0])?fieldManager=secrets-store-csi-driver&force=true: HTTP 503"))
        #expect(api.requests.count == CRDApply.attempts + 1)
    }

    @Test("a refusal is final at once and says which permission the service account needs", .realAPIServer)
    func forbidden() async throws {
        let api = try await RealKubernetesAPIServer.shared()
        let group = "t\(RealKubernetesAPIServer.randomName()).example.com"
        let crds = Self.renamed(group: group)
        // Unavailable answers are retried 30 s apart: a run well under that retried nothing.
        let started = ContinuousClock.now
        let refused = await CRDApply.run(
            kubernetes: .configuration(api.configuration(token: api.unprivilegedToken)), crds: crds, retryDelay: .seconds(30), logger: logger
        )
        var invalid = crds[1]
        invalid.yaml = invalid.yaml.replacingOccurrences(of: "scope: Namespaced", with: "scope: Everywhere")
        #expect(invalid != crds[1])
        let rejected = await CRDApply.run(kubernetes: .configuration(api.configuration()), crds: [invalid], retryDelay: .seconds(30), logger: logger)
        #expect(ContinuousClock.now - started < .seconds(25))

        #expect(refused.exitCode == 1)
        #expect(refused.applied.isEmpty)
        #expect(refused.failures.count == 2)
        for failure in refused.failures {
            #expect(failure.contains("needs get, create and patch on customresourcedefinitions.apiextensions.k8s.io"))
            #expect(failure.contains("User \"viewer\" cannot patch resource \"customresourcedefinitions\""))
        }
        #expect(rejected.exitCode == 1)
        #expect(rejected.applied.isEmpty)
        let failure = try #require(rejected.failures.first)
        #expect(failure.hasPrefix("failed to apply CustomResourceDefinition secretproviderclasspodstatuses.\(group): the API server rejected the manifest (HTTP 422)"))
        #expect(failure.contains("Everywhere"))
        // Neither token in any failure (computed apart so that a failing check does not print one).
        let leaked = (refused.failures + rejected.failures).contains { $0.contains(api.adminToken) || $0.contains(api.unprivilegedToken) }
        #expect(!leaked)
        // Nothing was created.
        try await api.withClient { client in
            for crd in crds {
                let name = try crd.name()
                #expect(try await client.object(at: Self.crdPath + name) == nil)
            }
        }
    }

    @Test("no API server and no configuration are clear failures")
    func unreachableAndUnconfigured() async throws {
        // Port 1: nothing listens there (a just-closed server's port can be taken by another test's server).
        let source = DriverConfiguration.KubernetesSource.configuration(
            KubernetesConfiguration(server: "http://127.0.0.1:1", credentials: .token("hook-token"))
        )
        // One try of one CRD: a refused connection takes the client's connect timeout to surface.
        let report = await CRDApply.run(kubernetes: source, crds: [EmbeddedCRDs.all[0]], attempts: 1, logger: logger)
        #expect(report.exitCode == 1)
        #expect(report.failures.count == 1)
        #expect(report.failures[0].hasPrefix("failed to apply CustomResourceDefinition \(Self.names[0]): the API server is unreachable"))

        let missing = await CRDApply.run(kubernetes: .kubeconfig(path: "/nonexistent/kubeconfig"), logger: logger)
        #expect(missing.exitCode == 1)
        #expect(missing.failures.count == 1)
        #expect(missing.failures[0].hasPrefix("cannot load the Kubernetes configuration: "))
    }
}

extension Trait where Self == ConditionTrait {
    /// Runs only where a real API server can be started (``RealKubernetesAPIServer``); otherwise the test is
    /// skipped with what is missing.
    static var realAPIServer: Self {
        .enabled(
            if: RealKubernetesAPIServer.unavailableReason == nil,
            Comment(rawValue: RealKubernetesAPIServer.unavailableReason ?? "a real API server can be started")
        )
    }
}
