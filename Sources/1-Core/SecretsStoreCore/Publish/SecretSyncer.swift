import Logging
import SecretsStoreTemplates

/// Mirrors a volume's files into the Kubernetes Secrets its SecretProviderClass names in `secretObjects`.
///
/// Promises:
/// - each Secret carries the user's labels and annotations plus `secrets-store.csi.k8s.io/managed=true`;
/// - a Secret that exists without that label is never overwritten (an event says why);
/// - updates are conditional (resourceVersion) and keep every owner reference already there, adding the pod's
///   owners (its ReplicaSet, StatefulSet, Job…) or, for a bare pod, its SecretProviderClassPodStatus, so the
///   Secret lives while any consumer lives and is garbage-collected after the last;
/// - `kubernetes.io/tls` Secrets get `tls.crt` (every certificate, in the file's order) and `tls.key` (the one
///   private key) split from PEM, or from a PKCS#12 file's ``CertificateBundleParts``; `tls.key` is written as
///   the upstream driver writes it: an RSA key as PKCS#1 `RSA PRIVATE KEY`, an EC key as SEC 1 `EC PRIVATE KEY`
///   (with its curve and public key), any other key as found;
/// - a key with a `template` holds the template rendered over the volume's files (``ClassTemplates``); in a
///   `kubernetes.io/tls` Secret the output is read as PEM, as a file's bytes are; a template that cannot be
///   rendered is a failure carrying its ``TemplateError``;
/// - a key whose source file (or one of its template's files) is absent because it is a missing optional object
///   is left out (the Secret is written with the others; a `kubernetes.io/tls` Secret, which needs both keys, is
///   then not written at all); a source file absent for any other reason is a failure;
/// - a Secret already as desired costs one GET and no write (``reconcile(_:pod:podStatus:files:missing:certificateParts:logger:)``
///   says which Secrets were written);
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
        /// The Secret exists and is not managed by the driver (no managed label): it is never taken over.
        package var isUnmanagedConflict: Bool = false
        /// The Kubernetes API error behind it, when there is one (`message` already names it).
        package var cause: KubernetesClientError? = nil
        /// The template problem behind it, when a key's `template` (or its `objectName`/`template` pair) is the
        /// cause (`message` is its description).
        package var template: TemplateError? = nil
    }

    /// What one sync did.
    package struct Outcome: Sendable, Equatable {
        /// The Secrets that could not be synced.
        package var failures: [Failure] = []
        /// The Secrets created or updated (`secretName`s), in `secretObjects` order; a Secret already as desired
        /// is not among them.
        package var written: [String] = []
        /// The `kubernetes.io/tls` Secrets not written because a source file is a missing optional object.
        package var skipped: [String] = []
    }

    /// Syncs every `secretObjects` entry; returns the failures (empty when all succeeded).
    package func sync(
        _ spc: SecretProviderClass,
        pod: PodReference,
        podStatus: (name: String, uid: String),
        files: [SecretFile],
        logger: Logger
    ) async -> [Failure] {
        await reconcile(spc, pod: pod, podStatus: podStatus, files: files, logger: logger).failures
    }

    /// Brings every `secretObjects` Secret in line with the volume's files: creates a missing one, rewrites one
    /// whose data, type, labels, annotations or owners differ (someone edited it, or the SecretProviderClass
    /// changed), and leaves one already as desired alone. Keys whose source is one of `missing` are left out;
    /// `certificateParts` are what `kubernetes.io/tls` Secrets take from PKCS#12 files.
    package func reconcile(
        _ spc: SecretProviderClass,
        pod: PodReference,
        podStatus: (name: String, uid: String),
        files: [SecretFile],
        missing: [MissingObject] = [],
        certificateParts: [String: CertificateBundleParts] = [:],
        logger: Logger
    ) async -> Outcome {
        guard !spc.secretObjects.isEmpty else { return Outcome() }
        let owners: [OwnerReference]
        do {
            let info = try await kubernetes.pod(namespace: pod.namespace, name: pod.name, logger: logger)
            owners = info.ownerReferences.isEmpty
                ? [OwnerReference(apiVersion: "secrets-store.csi.x-k8s.io/v1", kind: "SecretProviderClassPodStatus", name: podStatus.name, uid: podStatus.uid)]
                : info.ownerReferences
        } catch {
            return Outcome(
                failures: spc.secretObjects.map {
                    Failure(secretName: $0.secretName, message: "failed to get pod \(pod.namespace)/\(pod.name): \(error)", cause: error)
                }
            )
        }
        let contents = Dictionary(files.map { ($0.path, $0.contents) }, uniquingKeysWith: { first, _ in first })
        var outcome = Outcome()
        for object in spc.secretObjects {
            do {
                guard
                    let desired = try Self.desiredSecret(
                        object,
                        namespace: spc.namespace,
                        files: contents,
                        owners: owners,
                        missing: missing,
                        certificateParts: certificateParts
                    )
                else {
                    logger.debug(
                        "not syncing a kubernetes.io/tls secret whose source is a missing optional object",
                        metadata: ["k8s.secret": "\(object.secretName)"]
                    )
                    outcome.skipped.append(object.secretName)
                    continue
                }
                if try await apply(desired, logger: logger) { outcome.written.append(object.secretName) }
            } catch {
                outcome.failures.append(error)
            }
        }
        return outcome
    }

    /// The Secret `object` describes, built from the volume's files; `nil` for a `kubernetes.io/tls` Secret one
    /// of whose sources is a missing optional object (it cannot be written without both keys).
    package static func desiredSecret(
        _ object: SecretProviderClass.SecretObject,
        namespace: String,
        files: [String: [UInt8]],
        owners: [OwnerReference],
        missing: [MissingObject] = [],
        certificateParts: [String: CertificateBundleParts] = [:]
    ) throws(Failure) -> KubernetesSecret? {
        func fail(_ message: String) -> Failure { Failure(secretName: object.secretName, message: message) }
        guard !object.secretName.isEmpty else { throw fail("secretObjects entry has no secretName") }
        guard !object.type.isEmpty else { throw fail("secret \(object.secretName): type is required (Opaque, kubernetes.io/tls…)") }
        guard let entries = object.data, !entries.isEmpty else { throw fail("secret \(object.secretName): data is empty") }
        func isMissingOptional(_ path: String) -> Bool {
            files[path] == nil && missing.contains(where: { $0.wouldHaveProduced(path) })
        }
        /// The bytes of `entry`'s key and what messages call their source; `nil` when a source is a missing
        /// optional object.
        func source(of entry: SecretProviderClass.SecretObject.DataEntry) throws(Failure) -> (bytes: [UInt8], name: String)? {
            let field = TemplateField.secretObjectKey(secretName: object.secretName, key: entry.key)
            func templateFailure(_ error: TemplateError) -> Failure {
                Failure(secretName: object.secretName, message: error.description, template: error)
            }
            switch (ClassTemplates.objectName(of: entry), entry.template) {
            case (let objectName?, nil):
                guard let bytes = files[objectName] else {
                    // An optional object the store does not have: the key is left out, as its file is.
                    if isMissingOptional(objectName) { return nil }
                    throw fail("secret \(object.secretName): file \(objectName) not found in the volume")
                }
                return (bytes, objectName)
            case (nil, let text?):
                let template: ValueTemplate
                do {
                    template = try ValueTemplate(text)
                } catch {
                    throw templateFailure(TemplateError(field, error))
                }
                do {
                    guard let bytes = try ClassTemplates.render(template, files: files, missing: missing, field: field) else { return nil }
                    return (bytes, "the template of key \(entry.key)")
                } catch {
                    throw templateFailure(error)
                }
            case (_?, _?):
                throw templateFailure(TemplateError(field, .objectNameAndTemplate))
            case (nil, nil):
                throw templateFailure(TemplateError(field, .neitherObjectNameNorTemplate))
            }
        }
        /// Whether `entry`'s file, or one its template names, is a missing optional object.
        func sourceIsMissingOptional(_ entry: SecretProviderClass.SecretObject.DataEntry) -> Bool {
            switch (ClassTemplates.objectName(of: entry), entry.template) {
            case (let objectName?, nil): isMissingOptional(objectName)
            case (nil, let text?): (try? ValueTemplate(text))?.references.contains(where: isMissingOptional) ?? false
            default: false
            }
        }
        // A kubernetes.io/tls Secret needs both keys: without one of its sources it is not written at all.
        if object.type == "kubernetes.io/tls", entries.contains(where: sourceIsMissingOptional) { return nil }
        var data: [String: [UInt8]] = [:]
        for entry in entries {
            // nil: an optional object the store does not have; the key is left out, as its file is.
            guard let (bytes, sourceName) = try source(of: entry) else { continue }
            if object.type == "kubernetes.io/tls" {
                let blocks = PEM.decode(String(decoding: bytes, as: UTF8.self))
                let parts = ClassTemplates.objectName(of: entry).flatMap { certificateParts[$0] }
                switch entry.key {
                case "tls.crt":
                    var certificates = blocks.filter { $0.type == "CERTIFICATE" }.map(\.der)
                    if certificates.isEmpty, let parts { certificates = parts.certificates }
                    guard !certificates.isEmpty else { throw fail("secret \(object.secretName): no certificate in \(sourceName)") }
                    data["tls.crt"] = Array(certificates.map { PEM.encode(type: "CERTIFICATE", der: $0) }.joined().utf8)
                case "tls.key":
                    let keys = blocks.filter { $0.type.hasSuffix("PRIVATE KEY") }
                    guard keys.count <= 1 else {
                        throw fail(
                            "secret \(object.secretName): \(keys.count) private keys in \(sourceName); a kubernetes.io/tls Secret takes one"
                        )
                    }
                    let key: (type: String, der: [UInt8])
                    if let block = keys.first {
                        key = block
                    } else if let pkcs8 = parts?.privateKeyPKCS8 {
                        key = ("PRIVATE KEY", pkcs8)
                    } else {
                        throw fail("secret \(object.secretName): no private key in \(sourceName)")
                    }
                    let written = TLSPrivateKey.upstreamForm(type: key.type, der: key.der)
                    data["tls.key"] = Array(PEM.encode(type: written.type, der: written.der).utf8)
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

    /// Creates or updates `desired`; returns whether it wrote (false: the Secret was already as desired).
    ///
    /// Owners already on the Secret are kept and `desired`'s are added. A Secret the sync controller keeps
    /// (owned by its SecretProviderClass) whose content is already as desired is left alone even when
    /// `desired` brings other owners: the controller's owner keeps it alive, and the node's sync then writes
    /// nothing, so the two never fight.
    package func apply(_ desired: KubernetesSecret, logger: Logger) async throws(Failure) -> Bool {
        func fail(_ error: any Error) -> Failure {
            var message = "failed to sync secret \(desired.namespace)/\(desired.name): \(error)"
            if case .forbidden = error as? KubernetesClientError {
                message += " (the driver may not write Secrets: install the chart with syncSecret.enabled=true)"
            }
            return Failure(secretName: desired.name, message: message, cause: error as? KubernetesClientError)
        }
        let policy = RetryPolicy.conflictingWrites
        var attempt = 0
        while true {
            attempt += 1
            do {
                guard var existing = try await kubernetes.secret(namespace: desired.namespace, name: desired.name, logger: logger) else {
                    try await kubernetes.createSecret(desired, logger: logger)
                    return true
                }
                guard existing.labels[KubernetesSecret.managedLabel] == "true" else {
                    throw Failure(
                        secretName: desired.name,
                        message: "secret \(desired.namespace)/\(desired.name) exists and is not managed by the driver (no \(KubernetesSecret.managedLabel)=true label); not overwriting it",
                        isUnmanagedConflict: true
                    )
                }
                let sameContent = existing.data == desired.data && existing.type == desired.type
                    && existing.labels == desired.labels && existing.annotations == desired.annotations
                if sameContent, existing.ownerReferences.contains(where: { $0.kind == "SecretProviderClass" }) {
                    return false
                }
                var owners = existing.ownerReferences
                for owner in desired.ownerReferences where !owners.contains(where: { $0.uid == owner.uid }) {
                    owners.append(owner)
                }
                if existing.data == desired.data, existing.type == desired.type, existing.labels == desired.labels,
                    existing.annotations == desired.annotations, existing.ownerReferences == owners
                {
                    return false
                }
                existing.data = desired.data
                existing.type = desired.type
                existing.labels = desired.labels
                existing.annotations = desired.annotations
                existing.ownerReferences = owners
                try await kubernetes.updateSecret(existing, logger: logger)
                return true
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

/// The form the upstream driver gives `tls.key` (its `secretutil.getPrivateKey`): an RSA key as PKCS#1
/// (`RSA PRIVATE KEY`), an EC key as SEC 1 (`EC PRIVATE KEY`, with the named curve and the public key, the
/// private scalar padded to the curve's size), whether the block held PKCS#8, PKCS#1 or SEC 1. Pure DER work,
/// no cryptography: a key it cannot restate exactly (another algorithm, an unknown curve, an EC key stored
/// without its public key, bytes that are not a key) is kept as found, type and bytes.
enum TLSPrivateKey {
    /// The block to write for a private-key block of `type` holding `der`.
    static func upstreamForm(type: String, der: [UInt8]) -> (type: String, der: [UInt8]) {
        let bytes = ArraySlice(der)
        if isPKCS1(bytes) { return ("RSA PRIVATE KEY", der) }
        if let converted = fromPKCS8(bytes) { return converted }
        if let sec1 = sec1(bytes, curve: nil) { return ("EC PRIVATE KEY", sec1) }
        return (type, der)
    }

    private static let rsaEncryption: [UInt8] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01]
    private static let ecPublicKey: [UInt8] = [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01]
    /// Named curves Go marshals, by OID content bytes: the private scalar's size in bytes.
    private static let curveSizes: [[UInt8]: Int] = [
        [0x2B, 0x81, 0x04, 0x00, 0x21]: 28,  // P-224
        [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07]: 32,  // P-256
        [0x2B, 0x81, 0x04, 0x00, 0x22]: 48,  // P-384
        [0x2B, 0x81, 0x04, 0x00, 0x23]: 66,  // P-521
    ]

    /// PKCS#1 `RSAPrivateKey`: a SEQUENCE of at least nine INTEGERs, version 0 (two primes).
    private static func isPKCS1(_ bytes: ArraySlice<UInt8>) -> Bool {
        guard let items = DERReader.sequence(bytes), items.count >= 9, items.allSatisfy({ $0.tag == 0x02 }) else { return false }
        return Array(items[0].content) == [0x00]
    }

    /// PKCS#8 `PrivateKeyInfo` holding an RSA or a named-curve EC key.
    private static func fromPKCS8(_ bytes: ArraySlice<UInt8>) -> (type: String, der: [UInt8])? {
        guard let items = DERReader.sequence(bytes), items.count >= 3, items[0].tag == 0x02, items[1].tag == 0x30,
            items[2].tag == 0x04, let algorithm = DERReader.children(items[1].content), let oid = algorithm.first,
            oid.tag == 0x06
        else { return nil }
        if Array(oid.content) == rsaEncryption {
            return isPKCS1(items[2].content) ? ("RSA PRIVATE KEY", Array(items[2].content)) : nil
        }
        if Array(oid.content) == ecPublicKey, algorithm.count >= 2, algorithm[1].tag == 0x06 {
            return sec1(items[2].content, curve: Array(algorithm[1].content)).map { ("EC PRIVATE KEY", $0) }
        }
        return nil
    }

    /// SEC 1 `ECPrivateKey` rebuilt as Go's `MarshalECPrivateKey` writes it: version 1, the scalar padded to
    /// the curve's size, `[0]` the curve, `[1]` the public key. `curve` comes from PKCS#8's algorithm when the
    /// key itself does not name one.
    private static func sec1(_ bytes: ArraySlice<UInt8>, curve outerCurve: [UInt8]?) -> [UInt8]? {
        guard let items = DERReader.sequence(bytes), items.count >= 2, items[0].tag == 0x02,
            Array(items[0].content) == [0x01], items[1].tag == 0x04
        else { return nil }
        var curve = outerCurve
        var publicKey: [UInt8]?
        for item in items.dropFirst(2) {
            switch item.tag {
            case 0xA0:
                guard let inner = DERReader.children(item.content), inner.count == 1, inner[0].tag == 0x06 else { return nil }
                curve = Array(inner[0].content)
            case 0xA1:
                guard let inner = DERReader.children(item.content), inner.count == 1, inner[0].tag == 0x03 else { return nil }
                publicKey = Array(inner[0].content)
            default:
                return nil
            }
        }
        guard let curve, let size = curveSizes[curve], let publicKey, publicKey.first == 0x00 else { return nil }
        var scalar = Array(items[1].content)
        while scalar.count > size, scalar.first == 0 { scalar.removeFirst() }
        guard scalar.count <= size else { return nil }
        scalar = [UInt8](repeating: 0, count: size - scalar.count) + scalar
        let body = DERReader.encode(0x02, [0x01]) + DERReader.encode(0x04, scalar)
            + DERReader.encode(0xA0, DERReader.encode(0x06, curve)) + DERReader.encode(0xA1, DERReader.encode(0x03, publicKey))
        return DERReader.encode(0x30, body)
    }
}

/// Just enough DER for ``TLSPrivateKey``: definite-length TLVs with one-byte tags.
enum DERReader {
    struct Element {
        var tag: UInt8
        var content: ArraySlice<UInt8>
    }

    /// The single element `bytes` holds entirely, or `nil`.
    static func element(_ bytes: ArraySlice<UInt8>) -> Element? {
        guard let (element, rest) = next(bytes), rest.isEmpty else { return nil }
        return element
    }

    /// The children of the SEQUENCE `bytes` holds entirely, or `nil`.
    static func sequence(_ bytes: ArraySlice<UInt8>) -> [Element]? {
        guard let element = element(bytes), element.tag == 0x30 else { return nil }
        return children(element.content)
    }

    /// Consecutive elements filling `bytes`, or `nil`.
    static func children(_ bytes: ArraySlice<UInt8>) -> [Element]? {
        var rest = bytes
        var elements: [Element] = []
        while !rest.isEmpty {
            guard let (element, remaining) = next(rest) else { return nil }
            elements.append(element)
            rest = remaining
        }
        return elements
    }

    private static func next(_ bytes: ArraySlice<UInt8>) -> (Element, ArraySlice<UInt8>)? {
        var index = bytes.startIndex
        guard index < bytes.endIndex else { return nil }
        let tag = bytes[index]
        guard tag & 0x1F != 0x1F else { return nil }  // multi-byte tags do not occur in keys
        index += 1
        guard index < bytes.endIndex else { return nil }
        var length = Int(bytes[index])
        index += 1
        if length & 0x80 != 0 {
            let count = length & 0x7F
            guard (1...3).contains(count), bytes.endIndex - index >= count else { return nil }
            length = 0
            for _ in 0..<count {
                length = length << 8 | Int(bytes[index])
                index += 1
            }
        }
        guard bytes.endIndex - index >= length else { return nil }
        return (Element(tag: tag, content: bytes[index..<(index + length)]), bytes[(index + length)...])
    }

    /// `tag`, the DER length of `content`, then `content`.
    static func encode(_ tag: UInt8, _ content: [UInt8]) -> [UInt8] {
        var length: [UInt8]
        if content.count < 0x80 {
            length = [UInt8(content.count)]
        } else {
            var count = content.count
            var digits: [UInt8] = []
            while count > 0 {
                digits.insert(UInt8(count & 0xFF), at: 0)
                count >>= 8
            }
            length = [0x80 | UInt8(digits.count)] + digits
        }
        return [tag] + length + content
    }
}
