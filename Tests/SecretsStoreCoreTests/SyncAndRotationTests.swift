import Logging
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreLinux
import Testing

@Suite("Secret sync, rotation, events and restart recovery (fakes, no root)")
struct SyncAndRotationTests {
    static func spc(_ objects: [SecretProviderClass.SecretObject]) -> SecretProviderClass {
        SecretProviderClass(namespace: "ns", name: "spc", provider: "test", parameters: ["a": "b"], secretObjects: objects)
    }

    static let opaque = SecretProviderClass.SecretObject(
        secretName: "app-secret",
        type: "Opaque",
        labels: ["environment": "test"],
        annotations: ["team": "payments"],
        data: [.init(objectName: "username", key: "user"), .init(objectName: "certs/tls.crt", key: "crt")]
    )

    @Test func opaqueSecretWithLabelsAnnotationsAndTheStatusAsOwnerForABarePod() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(root: root, syncSecrets: true, spc: Self.spc([Self.opaque]))
            try await harness.publish()
            let secret = try #require(harness.kubernetes.secrets["ns/app-secret"])
            #expect(secret.type == "Opaque")
            #expect(secret.data == ["user": Array("admin".utf8), "crt": Array("CERT".utf8)])
            #expect(secret.labels == ["environment": "test", "secrets-store.csi.k8s.io/managed": "true"])
            #expect(secret.annotations == ["team": "payments"])
            #expect(secret.ownerReferences == [
                OwnerReference(apiVersion: "secrets-store.csi.x-k8s.io/v1", kind: "SecretProviderClassPodStatus", name: "pod-ns-spc", uid: "uid-spcps-pod-ns-spc")
            ])
        }
    }

    @Test func nothingIsSyncedWithoutTheFlag() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(root: root, syncSecrets: false, spc: Self.spc([Self.opaque]))
            try await harness.publish()
            #expect(harness.kubernetes.secrets.isEmpty)
        }
    }

    @Test func tlsSecretSplitsChainAndKey() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let pem = PEM.encode(type: "PRIVATE KEY", der: [1, 2, 3]) + PEM.encode(type: "CERTIFICATE", der: [4, 5])
                + PEM.encode(type: "CERTIFICATE", der: [6, 7])
            let response = ProviderResponse(
                files: [SecretFile(path: "web", mode: 0o644, contents: Array(pem.utf8))],
                objectVersions: [ObjectVersion(id: "secret/web", version: "1")]
            )
            let tls = SecretProviderClass.SecretObject(
                secretName: "web-tls",
                type: "kubernetes.io/tls",
                data: [.init(objectName: "web", key: "tls.crt"), .init(objectName: "web", key: "tls.key")]
            )
            let harness = PipelineHarness(root: root, syncSecrets: true, spc: Self.spc([tls]), response: response)
            try await harness.publish()
            let secret = try #require(harness.kubernetes.secrets["ns/web-tls"])
            #expect(secret.type == "kubernetes.io/tls")
            #expect(String(decoding: secret.data["tls.crt"]!, as: UTF8.self) == PEM.encode(type: "CERTIFICATE", der: [4, 5]) + PEM.encode(type: "CERTIFICATE", der: [6, 7]))
            #expect(String(decoding: secret.data["tls.key"]!, as: UTF8.self) == PEM.encode(type: "PRIVATE KEY", der: [1, 2, 3]))
        }
    }

    @Test("two Deployments' pods: the Secret is owned by both ReplicaSets")
    func ownersFromTwoDeployments() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(root: root, syncSecrets: true, spc: Self.spc([Self.opaque]))
            let rsA = OwnerReference(apiVersion: "apps/v1", kind: "ReplicaSet", name: "a-5d9", uid: "rs-a")
            let rsB = OwnerReference(apiVersion: "apps/v1", kind: "ReplicaSet", name: "b-7f1", uid: "rs-b")
            harness.kubernetes.add(PodInfo(namespace: "ns", name: "a-5d9-x", uid: "ua", ownerReferences: [rsA]))
            harness.kubernetes.add(PodInfo(namespace: "ns", name: "b-7f1-y", uid: "ub", ownerReferences: [rsB]))
            try await harness.publish(harness.request(pod: "a-5d9-x", uid: "ua", target: root + "/a/mount"))
            try await harness.publish(harness.request(pod: "b-7f1-y", uid: "ub", target: root + "/b/mount"))
            let secret = try #require(harness.kubernetes.secrets["ns/app-secret"])
            #expect(Set(secret.ownerReferences) == [rsA, rsB])
        }
    }

    @Test func anUnmanagedSecretIsNeverOverwritten() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(root: root, syncSecrets: true, spc: Self.spc([Self.opaque]))
            harness.kubernetes.add(KubernetesSecret(namespace: "ns", name: "app-secret", type: "Opaque", data: ["user": Array("mine".utf8)]))
            #expect(try await harness.publish() == .published)
            #expect(harness.kubernetes.secrets["ns/app-secret"]?.data == ["user": Array("mine".utf8)])
            let event = try #require(harness.kubernetes.events.first)
            #expect(event.reason == "FailedToCreateSecret" && event.kind == .warning)
            #expect(event.message.contains("not managed by the driver"))
        }
    }

    @Test(
        "invalid secretObjects are refused with a clear message",
        arguments: [
            (SecretProviderClass.SecretObject(secretName: "s", type: "", data: [.init(objectName: "username", key: "k")]), "type is required"),
            (SecretProviderClass.SecretObject(secretName: "s", type: "Opaque", data: [.init(objectName: "missing", key: "k")]), "file missing not found"),
            (SecretProviderClass.SecretObject(secretName: "s", type: "Opaque", data: []), "data is empty"),
            (SecretProviderClass.SecretObject(secretName: "s", type: "Opaque", data: [.init(objectName: "big", key: "k")]), "over the 1 MiB limit"),
        ]
    )
    func invalidSecretObjects(object: SecretProviderClass.SecretObject, message: String) async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            var response = PipelineHarness.files
            response.files.append(SecretFile(path: "big", mode: 0o644, contents: [UInt8](repeating: 1, count: (1 << 20) + 1)))
            let harness = PipelineHarness(root: root, syncSecrets: true, spc: Self.spc([object]), response: response)
            try await harness.publish()
            #expect(harness.kubernetes.secrets.isEmpty)
            #expect(harness.kubernetes.events.contains { $0.reason == "FailedToCreateSecret" && $0.message.contains(message) })
        }
    }

    @Test("a failed Secret write keeps the API error as its cause; the message names it as before")
    func failedSecretWriteKeepsItsCause() async throws {
        let kubernetes = InMemoryKubernetesAPI()
        let forbidden = KubernetesClientError.forbidden("secrets is forbidden")
        kubernetes.fail(.secretWrites, with: forbidden)
        let secret = KubernetesSecret(
            namespace: "ns", name: "db", type: "Opaque", data: ["pw": Array("x".utf8)], labels: [KubernetesSecret.managedLabel: "true"]
        )
        let failure = await #expect(throws: SecretSyncer.Failure.self) {
            _ = try await SecretSyncer(kubernetes: kubernetes).apply(secret, logger: Logger(label: "test"))
        }
        #expect(failure?.cause == forbidden)
        #expect(
            failure?.message
                == "failed to sync secret ns/db: \(forbidden) (the driver may not write Secrets: install the chart with syncSecret.enabled=true)"
        )
    }

    @Test func forbiddenSecretWritesSayWhatToEnable() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(
                root: root,
                rotation: RotationPolicy(enabled: true, interval: .seconds(60)),
                syncSecrets: true,
                spc: Self.spc([Self.opaque])
            )
            harness.kubernetes.fail(.secretWrites, with: .forbidden("secrets is forbidden: User \"system:serviceaccount:kube-system:secrets-store-csi-driver\" cannot create resource \"secrets\""))
            try await harness.publish()
            #expect(harness.kubernetes.events.contains { $0.message.contains("syncSecret.enabled=true") })
            #expect(harness.kubernetes.secrets.isEmpty)
            // The next refresh retries the pending sync once writes are allowed, though the files did not change.
            harness.kubernetes.fail(.secretWrites, with: nil)
            harness.clock.advance(by: .seconds(61))
            #expect(await harness.publisher.rotate(logger: harness.logs.logger())[harness.target] == .refreshed(changed: false))
            #expect(harness.kubernetes.secrets["ns/app-secret"]?.data["user"] == Array("admin".utf8))
        }
    }

    @Test("rotation updates the files and the Secret together, with events")
    func rotationUpdatesFilesAndSecret() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(
                root: root,
                rotation: RotationPolicy(enabled: true, interval: .seconds(120)),
                syncSecrets: true,
                spc: Self.spc([Self.opaque])
            )
            try await harness.publish()
            var rotated = PipelineHarness.files
            rotated.files[0].contents = Array("root".utf8)
            rotated.objectVersions[0].version = "2"
            harness.provider.respond(with: rotated)

            #expect(await harness.publisher.rotate(logger: harness.logs.logger()).isEmpty)  // not due yet
            harness.clock.advance(by: .seconds(121))
            let outcomes = await harness.publisher.rotate(logger: harness.logs.logger())
            #expect(outcomes[harness.target] == .refreshed(changed: true))
            #expect(try harness.read("username") == "root")
            #expect(harness.kubernetes.secrets["ns/app-secret"]?.data["user"] == Array("root".utf8))
            let reasons = harness.kubernetes.events.map(\.reason)
            #expect(reasons.contains("MountRotationComplete"))
            #expect(reasons.contains("SecretRotationComplete"))
            #expect(harness.provider.requests.last?.currentObjectVersions.first { $0.id == "secret/username" }?.version == "1")
        }
    }

    @Test("a failed rotation keeps the old files and says so in an event")
    func rotationFailureEvent() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(root: root, rotation: RotationPolicy(enabled: true, interval: .seconds(60)))
            try await harness.publish()
            harness.provider.fail(with: .throttled("429 Throttled"))
            harness.clock.advance(by: .seconds(61))
            let outcomes = await harness.publisher.rotate(logger: harness.logs.logger())
            #expect(outcomes[harness.target] == .refreshFailed(.provider(name: "test", .throttled("429 Throttled"))))
            #expect(try harness.read("username") == "admin")
            let event = try #require(harness.kubernetes.events.last)
            #expect(event.reason == "MountRotationFailed" && event.kind == .warning && event.message.contains("429 Throttled"))
        }
    }

    @Test("20 pods on one SecretProviderClass cost one provider call per rotation cycle")
    func oneFetchPerCycleForManyVolumes() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(root: root, rotation: RotationPolicy(enabled: true, interval: .seconds(120)))
            for index in 0..<20 {
                try await harness.publish(harness.request(pod: "pod-\(index)", uid: "uid-\(index)", target: root + "/v\(index)/mount"))
            }
            #expect(harness.provider.requests.count == 20)
            harness.clock.advance(by: .seconds(121))
            let outcomes = await harness.publisher.rotate(logger: harness.logs.logger())
            #expect(outcomes.count == 20)
            #expect(harness.provider.requests.count == 21)
            // A second pod with another service account is a separate group.
            try await harness.publish(
                harness.request(context: ["csi.storage.k8s.io/serviceAccount.name": "other"], pod: "x", uid: "ux", target: root + "/x/mount")
            )
            harness.clock.advance(by: .seconds(121))
            _ = await harness.publisher.rotate(logger: harness.logs.logger())
            #expect(harness.provider.requests.count == 24)
        }
    }

    @Test("a group's volumes published at different times are refreshed together: one fetch per cycle from then on")
    func aGroupFallsDueTogether() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(root: root, rotation: RotationPolicy(enabled: true, interval: .seconds(120)))
            try await harness.publish(harness.request(pod: "early", uid: "uid-early", target: root + "/early/mount"))
            harness.clock.advance(by: .seconds(60))
            try await harness.publish(harness.request(pod: "late", uid: "uid-late", target: root + "/late/mount"))
            #expect(harness.provider.requests.count == 2)
            // Only the early volume is due; its group is refreshed whole, the late volume included.
            harness.clock.advance(by: .seconds(61))
            let first = await harness.publisher.rotate(logger: harness.logs.logger())
            #expect(Set(first.keys) == [root + "/early/mount", root + "/late/mount"])
            #expect(harness.provider.requests.count == 3)
            // 60 s later the late volume would have been due on its own; it was refreshed with the early one.
            harness.clock.advance(by: .seconds(60))
            #expect(await harness.publisher.rotate(logger: harness.logs.logger()).isEmpty)
            harness.clock.advance(by: .seconds(61))
            #expect(await harness.publisher.rotate(logger: harness.logs.logger()).count == 2)
            #expect(harness.provider.requests.count == 4)
        }
    }

    @Test("pods starting together on one SecretProviderClass share one fetch; another service account fetches its own")
    func concurrentFirstPublishesShareOneFetch() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(root: root)
            harness.provider.hold()
            let requests = (0..<5).map { harness.request(pod: "pod-\($0)", uid: "uid-\($0)", target: root + "/v\($0)/mount") }
                + [harness.request(context: ["csi.storage.k8s.io/serviceAccount.name": "other"], pod: "x", uid: "ux", target: root + "/x/mount")]
            try await withThrowingTaskGroup(of: NodePublisher.PublishOutcome.self) { group in
                for request in requests {
                    group.addTask { try await harness.publisher.publish(request, logger: harness.logs.logger()) }
                }
                // Release the provider once the four followers are waiting on the first pod's fetch.
                try await eventually("four followers joined and two fetches started", every: .milliseconds(2)) {
                    harness.publisher.joinedFetchCount >= 4 && harness.provider.requests.count >= 2
                }
                harness.provider.release()
                for try await outcome in group { #expect(outcome == .published) }
            }
            #expect(harness.provider.requests.count == 2)
            await harness.publisher.podStatusWrites.settle()
            for index in 0..<5 {
                #expect(try harness.fileSystem.readFile(at: root + "/v\(index)/mount/username") == Array("admin".utf8))
                #expect(harness.kubernetes.podStatuses["ns/pod-\(index)-ns-spc"]?.podUID == "uid-\(index)")
            }
        }
    }

    @Test("kubelet's republish refreshes the kept context and fetches only when due")
    func republishRefreshesContext() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(root: root, rotation: RotationPolicy(enabled: true, interval: .seconds(120)))
            try await harness.publish(harness.request(secrets: ["clientsecret": "old"]))
            try await harness.publish(harness.request(secrets: ["clientsecret": "new"]))
            #expect(harness.provider.requests.count == 1)
            #expect(harness.publisher.volume(at: harness.target)?.request?.secrets["clientsecret"] == "new")
            harness.clock.advance(by: .seconds(121))
            #expect(try await harness.publish(harness.request(secrets: ["clientsecret": "newer"])) == .refreshed(changed: false))
            #expect(harness.provider.requests.last?.secrets["clientsecret"] == "newer")
        }
    }

    @Test("a restart recovering many volumes of one class reads the class once")
    func recoveryReadsEachClassOnce() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(root: root, rotation: RotationPolicy(enabled: true, interval: .seconds(60)))
            for index in 0..<5 {
                try await harness.publish(harness.request(pod: "pod-\(index)", uid: "uid-\(index)", target: root + "/v\(index)/mount"))
            }
            await harness.publisher.podStatusWrites.settle()
            let readsBefore = harness.kubernetes.calls([.getSecretProviderClass]).count
            let restarted = harness.restartedPublisher()
            let recovered = try await restarted.recover(logger: harness.logs.logger())
            #expect(recovered.count == 5)
            #expect(harness.kubernetes.calls([.getSecretProviderClass]).count == readsBefore + 1)
            #expect(restarted.volume(at: root + "/v4/mount")?.provider == "test")
        }
    }

    @Test("after a restart, mounted volumes are recovered from the pod statuses and keep rotating")
    func restartRecovery() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(root: root, rotation: RotationPolicy(enabled: true, interval: .seconds(60)))
            try await harness.publish()
            await harness.publisher.podStatusWrites.settle()
            // A status whose mount is gone is left alone.
            try await harness.kubernetes.applyPodStatus(
                SecretProviderClassPodStatus(namespace: "ns", podName: "gone", podUID: "u", nodeName: "node-1", secretProviderClassName: "spc", targetPath: root + "/gone", objects: []),
                logger: harness.logs.logger()
            )
            let restarted = harness.restartedPublisher()
            let recovered = try await restarted.recover(logger: harness.logs.logger())
            #expect(recovered == [harness.target])
            #expect(restarted.volume(at: harness.target)?.objectVersions.count == 2)
            // No context yet: the loop waits for kubelet's republish.
            #expect(await restarted.rotate(logger: harness.logs.logger()).isEmpty)
            #expect(try await restarted.publish(harness.request(), logger: harness.logs.logger()) == .refreshed(changed: false))
            #expect(harness.mounter.calls.filter { if case .mount = $0 { return true } else { return false } }.count == 1)
            try await restarted.unpublish(UnpublishRequest(volumeID: "v", targetPath: harness.target), logger: harness.logs.logger())
            #expect(harness.mounter.mounted.isEmpty)
        }
    }
}
