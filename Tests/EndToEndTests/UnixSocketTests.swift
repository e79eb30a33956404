import CSIProtocol
import Foundation
import GRPCCore
import SecretsStoreCSI
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreLinux
import SecretsStoreTesting
import SwiftProtobuf
import Testing

@Suite("The driver over a real Unix socket", .serialized, .timeLimit(.minutes(3)))
struct UnixSocketTests {
    @Test func identityAndNodeInfo() async throws {
        try await withDriver { driver in
            let info = try await driver.identity.getPluginInfo(Csi_V1_GetPluginInfoRequest())
            #expect(info.name == "secrets-store.csi.k8s.io")
            #expect(info.vendorVersion == DriverVersion.current)
            let probe = try await driver.identity.probe(Csi_V1_ProbeRequest())
            #expect(probe.hasReady && probe.ready.value)
            #expect(try await driver.identity.getPluginCapabilities(Csi_V1_GetPluginCapabilitiesRequest()).capabilities.isEmpty)
            #expect(try await driver.node.nodeGetInfo(Csi_V1_NodeGetInfoRequest()).nodeID == "node-1")
            #expect(try await driver.node.nodeGetCapabilities(Csi_V1_NodeGetCapabilitiesRequest()).capabilities.map(\.rpc.type) == [.volumeMountGroup])
            #expect(await statusCode { _ = try await driver.node.nodeStageVolume(Csi_V1_NodeStageVolumeRequest()) } == .unimplemented)
            #expect(await statusCode { _ = try await driver.node.nodeUnstageVolume(Csi_V1_NodeUnstageVolumeRequest()) } == .unimplemented)
            #expect(await statusCode { _ = try await driver.node.nodeGetVolumeStats(Csi_V1_NodeGetVolumeStatsRequest()) } == .unimplemented)
            #expect(await statusCode { _ = try await driver.node.nodeExpandVolume(Csi_V1_NodeExpandVolumeRequest()) } == .unimplemented)
        }
    }

    @Test("publish mounts a tmpfs with the provider's files behind ..data, records the pod status, unpublish leaves nothing")
    func publishAndUnpublish() async throws {
        try await withDriver(
            providerBehaviour: .respond(
                {
                    var response = TestProviderServer.response(files: [("username", "admin"), ("nested/key.pem", "KEY")])
                    response.files[1].mode = 0o400
                    return response
                }()
            )
        ) { driver in
            driver.seedSecretProviderClass()
            let target = driver.targetPath()
            _ = try await driver.node.nodePublishVolume(driver.publishRequest())

            let fileSystem = PosixFileSystem()
            #expect(try await driver.isMounted(target))
            if runningAsRoot {
                let mounts = MountInfo.parse(try PosixFileSystem.readText(at: "/proc/self/mountinfo"))
                #expect(mounts.contains { $0.mountPoint == target && $0.fileSystemType == "tmpfs" })
            }
            let data = try #require(try fileSystem.symbolicLinkDestination(at: target + "/..data"))
            #expect(data.hasPrefix("..2026_11_29_02_39_03."))
            #expect(String(decoding: try fileSystem.readFile(at: target + "/username"), as: UTF8.self) == "admin")
            #expect(String(decoding: try fileSystem.readFile(at: target + "/nested/key.pem"), as: UTF8.self) == "KEY")
            #expect(try fileSystem.permissions(of: target + "/username") == 0o644)
            #expect(try fileSystem.permissions(of: target + "/nested/key.pem") == 0o400)
            #expect(try fileSystem.symbolicLinkDestination(at: target + "/nested") == "..data/nested")

            // What the provider was sent.
            let sent = try #require(driver.provider.requests.first)
            let attributes = try JSONDecoder().decode([String: String].self, from: Data(sent.attributes.utf8))
            #expect(attributes["keyvaultName"] == "kv")
            #expect(attributes["csi.storage.k8s.io/pod.name"] == "web-0")
            #expect(attributes["secretProviderClass"] == "spc")
            #expect(sent.secrets == "null")
            #expect(sent.permission == "420")
            #expect(sent.targetPath == target)
            #expect(!driver.provider.authorities.isEmpty && driver.provider.authorities.allSatisfy { $0 == "localhost" || $0.isEmpty })

            // The SecretProviderClassPodStatus.
            let status = try #require(try await driver.podStatus("web-0-ns-spc"))
            let metadata = try #require(status["metadata"] as? [String: Any])
            #expect((metadata["labels"] as? [String: String])?["internal.secrets-store.csi.k8s.io/node-name"] == "node-1")
            let owner = try #require((metadata["ownerReferences"] as? [[String: Any]])?.first)
            #expect(owner["kind"] as? String == "Pod" && owner["name"] as? String == "web-0" && owner["uid"] as? String == "uid-1")
            let body = try #require(status["status"] as? [String: Any])
            #expect(body["targetPath"] as? String == target)
            #expect(body["mounted"] as? Bool == true)
            #expect((body["objects"] as? [[String: String]])?.map { $0["id"]! } == ["secret/nested/key.pem", "secret/username"])

            // Idempotent: a second publish does not call the provider again.
            _ = try await driver.node.nodePublishVolume(driver.publishRequest())
            #expect(driver.provider.requests.count == 1)

            _ = try await driver.node.nodeUnpublishVolume(driver.unpublishRequest())
            #expect(try await !driver.isMounted(target))
            #expect(try fileSystem.kind(of: target) == nil)
            _ = try await driver.node.nodeUnpublishVolume(driver.unpublishRequest())
        }
    }

    /// The Node cases of csi-sanity (kubernetes-csi/csi-test, pkg/sanity/node.go) that apply to a node-only
    /// driver without staging.
    @Test("csi-sanity node argument cases")
    func sanityArgumentCases() async throws {
        try await withDriver { driver in
            driver.seedSecretProviderClass()
            var noVolumeID = driver.publishRequest()
            noVolumeID.volumeID = ""
            var noTarget = driver.publishRequest()
            noTarget.targetPath = ""
            var noCapability = driver.publishRequest()
            noCapability.clearVolumeCapability()
            var notReadOnly = driver.publishRequest()
            notReadOnly.readonly = false
            var noContext = driver.publishRequest()
            noContext.volumeContext = [:]
            for request in [noVolumeID, noTarget, noCapability, notReadOnly, noContext] {
                #expect(await statusCode { _ = try await driver.node.nodePublishVolume(request) } == .invalidArgument)
            }
            var unpublishNoID = driver.unpublishRequest()
            unpublishNoID.volumeID = ""
            var unpublishNoTarget = driver.unpublishRequest()
            unpublishNoTarget.targetPath = ""
            #expect(await statusCode { _ = try await driver.node.nodeUnpublishVolume(unpublishNoID) } == .invalidArgument)
            #expect(await statusCode { _ = try await driver.node.nodeUnpublishVolume(unpublishNoTarget) } == .invalidArgument)
            // Unpublishing a volume that was never published succeeds.
            #expect(await statusCode { _ = try await driver.node.nodeUnpublishVolume(driver.unpublishRequest()) } == nil)
            #expect(driver.provider.requests.isEmpty)
        }
    }

    @Test func missingSecretProviderClassIsFinalAndNamed() async throws {
        try await withDriver { driver in
            do {
                _ = try await driver.node.nodePublishVolume(driver.publishRequest(spc: "missing"))
                Issue.record("publish succeeded")
            } catch let error as RPCError {
                #expect(error.code == .failedPrecondition)
                #expect(error.message == "failed to get secretproviderclass ns/missing, error: not found")
            }
            #expect(try await !driver.isMounted(driver.targetPath()))
        }
    }

    @Test(
        "provider failures keep their meaning for kubelet",
        arguments: [
            (TestProviderServer.Behaviour.fail(.unavailable, "vault unreachable"), RPCError.Code.unavailable),
            (.fail(.permissionDenied, "forbidden"), .permissionDenied),
            (.fail(.internalError, "boom"), .internalError),
            (.respond(TestProviderServer.response(files: [("../../etc/passwd", "x")])), .failedPrecondition),
            (.respond(TestProviderServer.response(files: [("..data", "x")])), .failedPrecondition),
            (.respond(V1alpha1_MountResponse()), .failedPrecondition),
            (.respond({ var r = V1alpha1_MountResponse(); r.error.code = "GRPCProviderError"; return r }()), .unknown),
        ]
    )
    func providerFailures(behaviour: TestProviderServer.Behaviour, expected: RPCError.Code) async throws {
        try await withDriver(providerBehaviour: behaviour) { (driver: DriverHarness) async throws in
            driver.seedSecretProviderClass()
            #expect(await statusCode { _ = try await driver.node.nodePublishVolume(driver.publishRequest()) } == expected)
            #expect(try await !driver.isMounted(driver.targetPath()))
            #expect(driver.api.object(at: DriverHarness.statusPath + "/web-0-ns-spc") == nil)
        }
    }

    @Test("an answer over --max-call-recv-msg-size is refused")
    func oversizedAnswer() async throws {
        let big = String(repeating: "x", count: 8192)
        try await withDriver(
            maxReceiveMessageBytes: 4096,
            providerBehaviour: .respond(TestProviderServer.response(files: [("big", big)]))
        ) { driver in
            driver.seedSecretProviderClass()
            do {
                _ = try await driver.node.nodePublishVolume(driver.publishRequest())
                Issue.record("publish succeeded")
            } catch let error as RPCError {
                #expect(error.code == .failedPrecondition)
                #expect(error.message.contains("--max-call-recv-msg-size"))
            }
            #expect(try await !driver.isMounted(driver.targetPath()))
        }
    }

    @Test("a publish reads its SecretProviderClass with one GET over REST, and the node plugin never lists or watches classes")
    func publishReadsTheClassWithAGET() async throws {
        try await withDriver { driver in
            driver.seedSecretProviderClass()
            _ = try await driver.node.nodePublishVolume(driver.publishRequest())
            #expect(try await driver.isMounted(driver.targetPath()))
            let classRequests = driver.api.requests.filter { $0.path.contains("/secretproviderclasses") }
            #expect(classRequests.map(\.method) == ["GET"])
            #expect(classRequests.allSatisfy { $0.path.hasSuffix("/namespaces/ns/secretproviderclasses/spc") })
            #expect(driver.api.openWatchCount == 0)
        }
    }

    @Test func kubernetesOutageIsRetryable() async throws {
        try await withDriver { driver in
            driver.seedSecretProviderClass()
            driver.api.injectFailure(status: 503, forPathContaining: "secretproviderclasses/spc")
            #expect(await statusCode { _ = try await driver.node.nodePublishVolume(driver.publishRequest()) } == .unavailable)
            #expect(try await !driver.isMounted(driver.targetPath()))
            // A failed pod status write no longer fails the publish: it is retried after the answer.
            driver.api.injectFailure(status: 500, forPathContaining: "secretproviderclasspodstatuses")
            _ = try await driver.node.nodePublishVolume(driver.publishRequest())
            #expect(try await driver.isMounted(driver.targetPath()))
            #expect(try await driver.podStatus("web-0-ns-spc") != nil)
        }
    }

    @Test("service account tokens and secrets never reach a log line, even at the highest verbosity")
    func noTokenInLogs() async throws {
        try await withDriver { driver in
            driver.seedSecretProviderClass()
            let tokens = "{\"api://AzureADTokenExchange\":{\"token\":\"eyJ.TOKEN-SENTINEL\",\"expirationTimestamp\":\"2026-12-01T00:00:00Z\"}}"
            _ = try await driver.node.nodePublishVolume(
                driver.publishRequest(
                    extraContext: ["csi.storage.k8s.io/serviceAccount.tokens": tokens],
                    secrets: ["clientsecret": "CLIENT-SECRET-SENTINEL"]
                )
            )
            // The provider did receive them.
            let sent = try #require(driver.provider.requests.first)
            #expect(sent.attributes.contains("TOKEN-SENTINEL"))
            #expect(sent.secrets.contains("CLIENT-SECRET-SENTINEL"))
            _ = try await driver.node.nodeUnpublishVolume(driver.unpublishRequest())
            let lines = driver.logs.all
            #expect(lines.contains { $0.contains("NodePublishVolume request") && $0.contains("***stripped***") })
            for line in lines {
                #expect(!line.contains("TOKEN-SENTINEL"))
                #expect(!line.contains("CLIENT-SECRET-SENTINEL"))
                #expect(!line.contains("p@ss-SENTINEL"))
            }
        }
    }
}
