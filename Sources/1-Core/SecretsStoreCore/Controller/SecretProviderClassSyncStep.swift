import Logging
import SecretsStoreTemplates

/// One sync of one SecretProviderClass by the sync controller, with no pod: validate `spec.sync`, get the
/// service account's tokens, ask the provider, and bring the `secretObjects` Secrets in line.
///
/// Promises:
/// - an invalid spec (no `spec.sync.serviceAccountName`, a name with a namespace in it, a bad
///   `spec.refreshInterval`, no `secretObjects`, a missing ServiceAccount or `nodePublishSecretRef` Secret, a
///   template that does not parse: ``ClassTemplates``) touches no Secret and asks no provider; its message names
///   the field;
/// - the Secrets are built from the provider's files plus those `fileTemplates` composes, as on the node; a
///   template that cannot be rendered over them (it names a file the answer lacks, `base64Decode` of a value
///   that is not base64…) is `InvalidSpec` too, after the provider call, and writes nothing (retried on the
///   next refresh: the store's content may change);
/// - the provider request is the node plugin's with no pod: attributes = parameters, then
///   `csi.storage.k8s.io/pod.namespace` (the class's namespace), `csi.storage.k8s.io/pod.name` (the class's
///   name, for providers that require one), `csi.storage.k8s.io/serviceAccount.name` and
///   `csi.storage.k8s.io/serviceAccount.tokens`; `secrets` = the `nodePublishSecretRef` data;
///   `current_object_version` = what was synced last; no target path (nothing is written to disk);
/// - Secrets are owned by the class (keeping other owners), carry the managed label, and an unmanaged
///   Secret of the same name is never taken over;
/// - a provider failure writes nothing: the last good Secrets stay;
/// - nothing it returns or logs holds a value or a token.
package struct SecretProviderClassSyncStep: Sendable {
    /// The outcome's condition reasons.
    package enum Reason: String, Sendable, Equatable {
        /// Everything is in sync.
        case synced = "Synced"
        /// The spec cannot be acted on.
        case invalidSpec = "InvalidSpec"
        /// The ServiceAccount is missing or a TokenRequest failed.
        case tokenRequestFailed = "TokenRequestFailed"
        /// The provider failed, or its answer could not be turned into the Secrets.
        case providerError = "ProviderError"
        /// A Secret of that name exists and is not managed by the driver.
        case secretConflict = "SecretConflict"
    }

    /// What one sync did.
    package struct Outcome: Sendable {
        /// Why the class is (not) ready.
        package var reason: Reason
        /// A sentence for the condition; no values.
        package var message: String
        /// The object versions synced (on failure: the previous ones).
        package var objects: [ObjectVersion]
        /// The Secrets the class keeps (names), sorted.
        package var syncedSecrets: [String]
        /// The Secrets as they should be, for restoring one that is deleted or edited (empty on failure:
        /// keep the previous ones).
        package var desired: [KubernetesSecret]
        /// The Secrets written (created or updated) by this sync.
        package var written: [String]
        /// Whether a timer should retry it (false for a spec error: the next edit of the class is awaited).
        package var retryable: Bool
        /// The error behind a failure, when there is one (the Kubernetes API's, the token request's or the
        /// provider's); `message` already names it.
        package var cause: (any Error)? = nil

        /// Ready=True.
        package var succeeded: Bool { reason == .synced }
    }

    /// Where the controller gets a provider request's service account tokens.
    package struct Audiences: Sendable {
        /// The audiences to request tokens for (`--token-requests`, else the CSIDriver's `tokenRequests`).
        package var resolve: @Sendable (Logger) async throws(KubernetesClientError) -> [String]
        /// Audiences from a closure.
        package init(resolve: @escaping @Sendable (Logger) async throws(KubernetesClientError) -> [String]) {
            self.resolve = resolve
        }
    }

    private let kubernetes: any ControllerKubernetesClient
    private let providers: any ProviderDirectory
    private let tokens: ServiceAccountTokenCache
    private let audiences: Audiences
    private let syncer: SecretSyncer
    private let providerTimeout: Duration

    /// - Parameter providerTimeout: how long one provider call may take.
    package init(
        kubernetes: any ControllerKubernetesClient,
        providers: any ProviderDirectory,
        tokens: ServiceAccountTokenCache,
        audiences: Audiences,
        providerTimeout: Duration = .seconds(60)
    ) {
        self.kubernetes = kubernetes
        self.providers = providers
        self.tokens = tokens
        self.audiences = audiences
        self.syncer = SecretSyncer(kubernetes: kubernetes)
        self.providerTimeout = providerTimeout
    }

    /// The owner reference the class's Secrets carry.
    package static func owner(of spc: SecretProviderClass) -> OwnerReference {
        OwnerReference(apiVersion: "secrets-store.csi.x-k8s.io/v1", kind: "SecretProviderClass", name: spc.name, uid: spc.uid)
    }

    /// Checks the parts of `spc` that need no API call; the message names the field.
    package static func validate(_ spc: SecretProviderClass) throws(SpecFieldError) {
        guard let sync = spc.sync else {
            throw SpecFieldError(field: "spec.sync", message: "spec.sync is not set")
        }
        guard let account = sync.serviceAccountName, !account.isEmpty else {
            throw SpecFieldError(field: "spec.sync.serviceAccountName", message: "spec.sync.serviceAccountName is required")
        }
        guard isDNSSubdomain(account) else {
            throw SpecFieldError(
                field: "spec.sync.serviceAccountName",
                message: "spec.sync.serviceAccountName \"\(account)\" must name a ServiceAccount in the SecretProviderClass's namespace \(spc.namespace) (no cross-namespace form exists)"
            )
        }
        if let reference = sync.nodePublishSecretRefName, !isDNSSubdomain(reference) {
            throw SpecFieldError(
                field: "spec.sync.nodePublishSecretRef.name",
                message: "spec.sync.nodePublishSecretRef.name \"\(reference)\" must name a Secret in the SecretProviderClass's namespace \(spc.namespace)"
            )
        }
        _ = try spc.refreshIntervalDuration()
        guard !spc.provider.isEmpty, ProviderRequestBuilder.isValidProviderName(spc.provider) else {
            throw SpecFieldError(field: "spec.provider", message: "spec.provider \"\(spc.provider)\" is not a valid provider name")
        }
        guard !spc.secretObjects.isEmpty else {
            throw SpecFieldError(field: "spec.secretObjects", message: "spec.secretObjects is empty: there is nothing to sync")
        }
        do {
            _ = try ClassTemplates(spc)
        } catch {
            throw SpecFieldError(field: error.field.path, message: error.description)
        }
    }

    /// Syncs `spc`; `previous` are the versions synced last.
    package func sync(_ spc: SecretProviderClass, previous: [ObjectVersion], logger: Logger) async -> Outcome {
        func failure(_ reason: Reason, _ message: String, retryable: Bool = true, cause: (any Error)? = nil) -> Outcome {
            Outcome(
                reason: reason, message: message, objects: previous,
                syncedSecrets: spc.secretObjects.map(\.secretName).sorted(), desired: [], written: [], retryable: retryable,
                cause: cause
            )
        }
        do {
            try Self.validate(spc)
        } catch {
            return failure(.invalidSpec, error.message, retryable: false)
        }
        let account = spc.sync?.serviceAccountName ?? ""

        // The nodePublishSecretRef Secret, when named.
        var secrets: [String: String] = [:]
        if let reference = spc.sync?.nodePublishSecretRefName {
            do {
                guard let secret = try await kubernetes.secret(namespace: spc.namespace, name: reference, logger: logger) else {
                    return failure(.invalidSpec, "spec.sync.nodePublishSecretRef.name: secret \(spc.namespace)/\(reference) not found")
                }
                for (key, value) in secret.data { secrets[key] = String(decoding: value, as: UTF8.self) }
            } catch {
                return failure(.invalidSpec, "spec.sync.nodePublishSecretRef.name: cannot read secret \(spc.namespace)/\(reference): \(error)", cause: error)
            }
        }

        // The service account and its tokens.
        var attributes = spc.parameters
        attributes[VolumeContextKey.podNamespace] = spc.namespace
        attributes[VolumeContextKey.podName] = spc.name
        attributes[VolumeContextKey.serviceAccountName] = account
        do {
            guard try await kubernetes.serviceAccountExists(namespace: spc.namespace, name: account, logger: logger) else {
                return failure(.tokenRequestFailed, "spec.sync.serviceAccountName: serviceaccount \(spc.namespace)/\(account) not found")
            }
            let wanted = try await audiences.resolve(logger)
            var entries: [(String, ServiceAccountToken)] = []
            for audience in wanted {
                let token = try await tokens.token(namespace: spc.namespace, serviceAccount: account, audience: audience, logger: logger)
                entries.append((audience, token))
            }
            if !entries.isEmpty { attributes[VolumeContextKey.serviceAccountTokens] = Self.tokensJSON(entries) }
        } catch {
            return failure(.tokenRequestFailed, "spec.sync.serviceAccountName: token request for serviceaccount \(spc.namespace)/\(account) failed: \(error)", cause: error)
        }

        // The provider.
        let response: ProviderResponse
        do {
            let provider = try providers.provider(named: spc.provider)
            let request = ProviderRequest(
                attributes: attributes,
                secrets: secrets,
                targetPath: "",
                currentObjectVersions: previous,
                deadline: .now + providerTimeout
            )
            do {
                response = try await provider.fetch(request, logger: logger)
            } catch {
                throw PublishError.provider(name: spc.provider, error)
            }
            try ProviderResponseValidation.validate(response, providerName: spc.provider)
        } catch {
            return failure(.providerError, "\(error)", cause: error)
        }

        // The Secrets, from the provider's files and the composed ones.
        let composed: ProviderResponse
        do {
            composed = try ClassTemplates(spc).compose(response)
        } catch {
            return failure(.invalidSpec, error.description, cause: error)
        }
        let files = ClassTemplates.contents(composed.files)
        var desired: [KubernetesSecret] = []
        for object in spc.secretObjects {
            do {
                if let secret = try SecretSyncer.desiredSecret(
                    object,
                    namespace: spc.namespace,
                    files: files,
                    owners: [Self.owner(of: spc)],
                    missing: response.missingOptionalObjects,
                    certificateParts: response.certificateParts
                ) {
                    desired.append(secret)
                }
            } catch {
                if let template = error.template { return failure(.invalidSpec, error.message, cause: template) }
                return failure(.providerError, error.message)
            }
        }
        let (written, applyFailure) = await apply(desired, logger: logger)
        if let applyFailure { return applyFailure.with(objects: previous, syncedSecrets: spc.secretObjects.map(\.secretName)) }
        return Outcome(
            reason: .synced,
            message: "\(desired.count) secret(s) in sync",
            objects: response.objectVersions,
            syncedSecrets: spc.secretObjects.map(\.secretName).sorted(),
            desired: desired,
            written: written,
            retryable: true
        )
    }

    /// Writes `desired` again where it differs (a Secret was deleted or edited): no provider call.
    ///
    /// Nothing is written when `spc` is gone or was replaced (another uid): the Secret was deleted because its
    /// class was, by the garbage collector, and the Secret watch can report that before the class watch does.
    /// When the class cannot be read for another reason, the Secret is restored as before.
    package func restore(_ desired: [KubernetesSecret], of spc: SecretProviderClass, logger: Logger) async -> (written: [String], failure: FailedApply?) {
        do {
            let current = try await kubernetes.secretProviderClass(namespace: spc.namespace, name: spc.name, logger: logger)
            if current.uid != spc.uid { return ([], nil) }
        } catch .notFound {
            return ([], nil)
        } catch {
            logger.debug("could not read the class before restoring its secrets; restoring", metadata: ["error": "\(error)"])
        }
        return await apply(desired, logger: logger)
    }

    /// Why writing a Secret failed.
    package struct FailedApply: Sendable, Equatable {
        /// `SecretConflict` or `ProviderError`.
        package var reason: Reason
        /// The message (no values).
        package var message: String
        /// The Kubernetes API error behind it, when there is one (`message` already names it).
        package var cause: KubernetesClientError? = nil

        func with(objects: [ObjectVersion], syncedSecrets: [String]) -> Outcome {
            Outcome(
                reason: reason, message: message, objects: objects, syncedSecrets: syncedSecrets.sorted(), desired: [], written: [],
                retryable: true, cause: cause
            )
        }
    }

    private func apply(_ desired: [KubernetesSecret], logger: Logger) async -> (written: [String], failure: FailedApply?) {
        var written: [String] = []
        for secret in desired {
            do {
                if try await syncer.apply(secret, logger: logger) { written.append(secret.name) }
            } catch {
                return (written, FailedApply(reason: error.isUnmanagedConflict ? .secretConflict : .providerError, message: error.message, cause: error.cause))
            }
        }
        return (written, nil)
    }

    /// kubelet's `serviceAccount.tokens` value: `{"<audience>":{"token":"…","expirationTimestamp":"…"}}`.
    package static func tokensJSON(_ entries: [(String, ServiceAccountToken)]) -> String {
        let members = entries.map { audience, token in
            "\(jsonString(audience)):{\"token\":\(jsonString(token.token)),\"expirationTimestamp\":\(jsonString(token.expirationTimestamp))}"
        }
        return "{" + members.joined(separator: ",") + "}"
    }

    /// A JSON string literal of `text`.
    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// RFC 1123 subdomain: lower-case alphanumerics, `-` and `.`, at most 253 characters, alphanumeric ends.
    static func isDNSSubdomain(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= 253 else { return false }
        func alphanumeric(_ byte: UInt8) -> Bool { (0x61...0x7A).contains(byte) || (0x30...0x39).contains(byte) }
        guard alphanumeric(bytes[0]), alphanumeric(bytes[bytes.count - 1]) else { return false }
        return bytes.allSatisfy { alphanumeric($0) || $0 == 0x2D || $0 == 0x2E }
    }
}
