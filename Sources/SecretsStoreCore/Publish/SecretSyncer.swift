import Logging

/// Mirrors a volume's files into the Kubernetes Secrets its SecretProviderClass names in `secretObjects`.
///
/// Promises:
/// - each Secret carries the user's labels and annotations plus `secrets-store.csi.k8s.io/managed=true`;
/// - a Secret that exists without that label is never overwritten (an event says why);
/// - updates are conditional (resourceVersion) and keep every owner reference already there, adding the pod's
///   owners (its ReplicaSet, StatefulSet, Job…) or, for a bare pod, its SecretProviderClassPodStatus, so the
///   Secret lives while any consumer lives and is garbage-collected after the last;
/// - `kubernetes.io/tls` Secrets get `tls.crt` (every certificate) and `tls.key` (the private key) split from PEM;
/// - a Secret over 1 MiB is refused;
/// - a write that conflicts (stale resourceVersion) is read again and retried as ``RetryPolicy/conflictingWrites`` says.
/// Failures are returned, not thrown: the volume stays published and the caller records events and retries.
package struct SecretSyncer: Sendable {
    /// The most a synced Secret may hold (keys plus values): 1 MiB, the API server's limit.
    package static let maxSecretBytes = 1 << 20
    private let kubernetes: any KubernetesClient

    /// A syncer writing through `kubernetes`.
    package init(kubernetes: any KubernetesClient) {
        self.kubernetes = kubernetes
    }

    /// One Secret that could not be synced, with a message for `kubectl describe pod`.
    package struct Failure: Error, Sendable, Equatable {
        /// The Secret that failed (`secretObjects[].secretName`).
        package var secretName: String
        /// Why, for the pod's events; never contains secret values.
        package var message: String
    }

    /// Syncs every `secretObjects` entry; returns the failures (empty when all succeeded).
    package func sync(
        _ spc: SecretProviderClass,
        pod: PodReference,
        podStatus: (name: String, uid: String),
        files: [SecretFile],
        logger: Logger
    ) async -> [Failure] {
        guard !spc.secretObjects.isEmpty else { return [] }
        let owners: [OwnerReference]
        do {
            let info = try await kubernetes.pod(namespace: pod.namespace, name: pod.name, logger: logger)
            owners = info.ownerReferences.isEmpty
                ? [OwnerReference(apiVersion: "secrets-store.csi.x-k8s.io/v1", kind: "SecretProviderClassPodStatus", name: podStatus.name, uid: podStatus.uid)]
                : info.ownerReferences
        } catch {
            return spc.secretObjects.map { Failure(secretName: $0.secretName, message: "failed to get pod \(pod.namespace)/\(pod.name): \(error)") }
        }
        let contents = Dictionary(files.map { ($0.path, $0.contents) }, uniquingKeysWith: { first, _ in first })
        var failures: [Failure] = []
        for object in spc.secretObjects {
            do {
                let desired = try Self.desiredSecret(object, namespace: spc.namespace, files: contents, owners: owners)
                try await apply(desired, logger: logger)
            } catch {
                failures.append(error)
            }
        }
        return failures
    }

    /// The Secret `object` describes, built from the volume's files.
    package static func desiredSecret(
        _ object: SecretProviderClass.SecretObject,
        namespace: String,
        files: [String: [UInt8]],
        owners: [OwnerReference]
    ) throws(Failure) -> KubernetesSecret {
        func fail(_ message: String) -> Failure { Failure(secretName: object.secretName, message: message) }
        guard !object.secretName.isEmpty else { throw fail("secretObjects entry has no secretName") }
        guard !object.type.isEmpty else { throw fail("secret \(object.secretName): type is required (Opaque, kubernetes.io/tls…)") }
        guard let entries = object.data, !entries.isEmpty else { throw fail("secret \(object.secretName): data is empty") }
        var data: [String: [UInt8]] = [:]
        for entry in entries {
            guard let bytes = files[entry.objectName] else {
                throw fail("secret \(object.secretName): file \(entry.objectName) not found in the volume")
            }
            if object.type == "kubernetes.io/tls" {
                switch entry.key {
                case "tls.crt":
                    let certificates = PEM.decode(String(decoding: bytes, as: UTF8.self)).filter { $0.type == "CERTIFICATE" }
                    guard !certificates.isEmpty else { throw fail("secret \(object.secretName): no certificate in \(entry.objectName)") }
                    data["tls.crt"] = Array(certificates.map { PEM.encode(type: $0.type, der: $0.der) }.joined().utf8)
                case "tls.key":
                    guard let key = PEM.decode(String(decoding: bytes, as: UTF8.self)).first(where: { $0.type.hasSuffix("PRIVATE KEY") }) else {
                        throw fail("secret \(object.secretName): no private key in \(entry.objectName)")
                    }
                    data["tls.key"] = Array(PEM.encode(type: key.type, der: key.der).utf8)
                default:
                    throw fail("secret \(object.secretName): a kubernetes.io/tls Secret takes only tls.crt and tls.key, not \(entry.key)")
                }
            } else {
                data[entry.key] = bytes
            }
        }
        let size = data.reduce(0) { $0 + $1.key.utf8.count + $1.value.count }
        guard size <= maxSecretBytes else {
            throw fail("secret \(object.secretName): \(size) bytes is over the 1 MiB limit of a Kubernetes Secret")
        }
        var labels = object.labels ?? [:]
        labels[KubernetesSecret.managedLabel] = "true"
        return KubernetesSecret(
            namespace: namespace,
            name: object.secretName,
            type: object.type,
            data: data,
            labels: labels,
            annotations: object.annotations ?? [:],
            ownerReferences: owners
        )
    }

    private func apply(_ desired: KubernetesSecret, logger: Logger) async throws(Failure) {
        func fail(_ error: any Error) -> Failure {
            var message = "failed to sync secret \(desired.namespace)/\(desired.name): \(error)"
            if case .forbidden = error as? KubernetesClientError {
                message += " (the driver may not write Secrets: install the chart with syncSecret.enabled=true)"
            }
            return Failure(secretName: desired.name, message: message)
        }
        let policy = RetryPolicy.conflictingWrites
        var attempt = 0
        while true {
            attempt += 1
            do {
                guard var existing = try await kubernetes.secret(namespace: desired.namespace, name: desired.name, logger: logger) else {
                    try await kubernetes.createSecret(desired, logger: logger)
                    return
                }
                guard existing.labels[KubernetesSecret.managedLabel] == "true" else {
                    throw Failure(
                        secretName: desired.name,
                        message: "secret \(desired.namespace)/\(desired.name) exists and is not managed by the driver (no \(KubernetesSecret.managedLabel)=true label); not overwriting it"
                    )
                }
                var owners = existing.ownerReferences
                for owner in desired.ownerReferences where !owners.contains(where: { $0.uid == owner.uid }) {
                    owners.append(owner)
                }
                if existing.data == desired.data, existing.type == desired.type, existing.labels == desired.labels,
                    existing.annotations == desired.annotations, existing.ownerReferences == owners
                {
                    return
                }
                existing.data = desired.data
                existing.type = desired.type
                existing.labels = desired.labels
                existing.annotations = desired.annotations
                existing.ownerReferences = owners
                try await kubernetes.updateSecret(existing, logger: logger)
                return
            } catch let failure as Failure {
                throw failure
            } catch KubernetesClientError.conflict {
                logger.debug("secret write conflicted; reading it again", metadata: ["k8s.secret": "\(desired.name)"])
                guard case .retry = policy.decision(afterAttempt: attempt) else {
                    throw Failure(
                        secretName: desired.name,
                        message: "failed to sync secret \(desired.namespace)/\(desired.name): kept conflicting after \(policy.maxAttempts) attempts"
                    )
                }
            } catch {
                throw fail(error)
            }
        }
    }
}
