import Foundation
import Logging
import SecretsStoreCore
import SecretsStoreDriver
import SecretsStoreKubernetes
import SecretsStoreTesting
import Testing

/// `crds apply`: the CRDs built into the binary are the chart's, and each is server-side-applied with the
/// API server's apply protocol.
@Suite("crds apply")
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

    @Test("each CRD is PATCHed as application/apply-patch+yaml with its manifest, and reported like kubectl")
    func appliesEach() async throws {
        let api = try await FakeKubernetesAPIServer(requiredToken: "hook-token")
        // The fake has no apply-patch support: it answers these two requests 200, as an API server that applied them.
        for name in Self.names { api.injectFailure(status: 200, forPathContaining: Self.crdPath + name) }
        let report = await CRDApply.run(kubernetes: kubernetes(api), logger: logger)
        try await api.shutdown()

        #expect(report.failures == [])
        #expect(report.exitCode == 0)
        #expect(report.applied == Self.names.map { "customresourcedefinition.apiextensions.k8s.io/\($0) serverside-applied" })
        let requests = api.requests
        #expect(requests.map(\.method) == ["PATCH", "PATCH"])
        #expect(requests.map(\.path) == Self.names.map { Self.crdPath + $0 })
        #expect(requests.map(\.contentType) == ["application/apply-patch+yaml", "application/apply-patch+yaml"])
        #expect(requests.map(\.authorization) == ["Bearer hook-token", "Bearer hook-token"])
        #expect(requests.map(\.body) == EmbeddedCRDs.all.map(\.yaml))
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

    @Test("a refusal is final at once and says which permission the service account needs")
    func forbidden() async throws {
        let api = try await FakeKubernetesAPIServer()
        api.injectFailure(status: 403, forPathContaining: Self.crdPath + Self.names[0])
        api.injectFailure(status: 422, forPathContaining: Self.crdPath + Self.names[1])
        let report = await CRDApply.run(kubernetes: kubernetes(api), retryDelay: .milliseconds(1), logger: logger)
        try await api.shutdown()

        #expect(report.exitCode == 1)
        #expect(report.applied.isEmpty)
        #expect(report.failures.count == 2)
        #expect(report.failures[0].contains("needs get, create and patch on customresourcedefinitions.apiextensions.k8s.io"))
        #expect(report.failures[1].contains("the API server rejected the manifest (HTTP 422)"))
        #expect(api.requests.count == 2)
        for failure in report.failures { #expect(!failure.contains("hook-token")) }
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
