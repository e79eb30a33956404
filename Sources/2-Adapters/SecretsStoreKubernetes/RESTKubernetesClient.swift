import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1
import SecretsStoreCore
import SecretsStoreHTTPClient
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// ``KubernetesClient`` over the Kubernetes REST API with AsyncHTTPClient.
///
/// Errors come back as ``KubernetesClientError``, carrying the API server's `Status` message; bearer tokens
/// and client keys never appear in one. Call ``shutdown()`` before the process exits.
package final class RESTKubernetesClient: KubernetesClient {
    static let group = "secrets-store.csi.x-k8s.io"
    static let version = "v1"
    /// How long a token read from a file is used before the file is read again.
    private static let tokenRefreshInterval: Duration = .seconds(60)

    private let configuration: KubernetesConfiguration
    private let http: HTTPClient
    /// Watches only: a read timeout longer than the server's `timeoutSeconds`, so an idle but healthy watch is
    /// not cut while a dead connection is still noticed.
    let watchHTTP: HTTPClient
    let requestTimeout: TimeAmount
    private let cachedToken = Mutex<(token: String, readAt: ContinuousClock.Instant)?>(nil)

    /// The client's connection limits: 5 s to connect, 30 s of silence per read.
    package static let timeouts = HTTPSClientTimeouts(connect: .seconds(5), read: .seconds(30))

    /// The range the `timeoutSeconds` of each watch is drawn from, so that watches of many clients do not all
    /// end together; the server closes the watch then and the caller watches again.
    package static let watchTimeoutSeconds: ClosedRange<Int> = 290...350

    /// The watch client's limits: 5 s to connect, and 60 s more silence than the longest watch lasts (the
    /// server sends bookmarks meanwhile and closes the watch by `timeoutSeconds`), so only a dead connection
    /// trips it.
    package static let watchTimeouts = HTTPSClientTimeouts(connect: .seconds(5), read: .seconds(watchTimeoutSeconds.upperBound + 60))

    /// A client for `configuration`'s server, trusting only its CA when one is set (else the system's roots),
    /// presenting its client certificate when that is the credential. `requestTimeout` bounds each request.
    /// Throws when a PEM in the configuration does not parse.
    package init(configuration: KubernetesConfiguration, requestTimeout: Duration = .seconds(30)) throws {
        self.configuration = configuration
        self.http = try HTTPClient.make(tls: configuration.tls, timeouts: Self.timeouts)
        do {
            self.watchHTTP = try HTTPClient.make(tls: configuration.tls, timeouts: Self.watchTimeouts)
        } catch {
            try? http.syncShutdown()
            throw error
        }
        self.requestTimeout = TimeAmount(requestTimeout)
    }

    /// Shuts the underlying HTTP client down; later requests fail as unavailable.
    package func shutdown() async throws {
        // Both clients are shut down even when the first fails.
        var watchError: (any Error)?
        do { try await watchHTTP.shutdown() } catch { watchError = error }
        try await http.shutdown()
        if let watchError { throw watchError }
    }

    // MARK: KubernetesClient

    /// `GET` the SecretProviderClass; 404 is ``KubernetesClientError/notFound(_:)``.
    package func secretProviderClass(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> SecretProviderClass {
        let path = Self.resourcePath("secretproviderclasses", namespace: namespace, name: name)
        let body = try await send(.GET, path, logger: logger)
        return try Self.decode(Resources.SecretProviderClass.self, body).domainValue(namespace: namespace, name: name)
    }

    /// `POST` the pod status, or on 409 AlreadyExists read it and `PUT` it back with our status, node label
    /// and owner (its other labels and annotations kept), retrying conflicts as ``RetryPolicy/conflictingWrites``
    /// says. Returns the object's UID (empty when the server sent none).
    @discardableResult
    package func applyPodStatus(_ status: SecretProviderClassPodStatus, logger: Logger) async throws(KubernetesClientError) -> String {
        let collection = Self.resourcePath("secretproviderclasspodstatuses", namespace: status.namespace, name: nil)
        let desired = Resources.SecretProviderClassPodStatus(status)
        do {
            let created = try await send(.POST, collection, body: Self.encode(desired), logger: logger)
            return (try? Self.decode(Resources.SecretProviderClassPodStatus.self, created))?.metadata.uid ?? ""
        } catch {
            // Already there (a StatefulSet pod re-created with the same name, or a republish): overwrite it below.
            guard case .conflict = error else { throw error }
        }
        let path = collection + "/" + Self.escape(status.name)
        // A conflict means someone wrote in between: read it again and retry (RetryPolicy.conflictingWrites).
        var attempt = 0
        while true {
            attempt += 1
            let existing = try Self.decode(
                Resources.SecretProviderClassPodStatus.self,
                try await send(.GET, path, logger: logger)
            )
            let updated = Self.merging(desired, into: existing)
            do {
                let written = try await send(.PUT, path, body: Self.encode(updated), logger: logger)
                return (try? Self.decode(Resources.SecretProviderClassPodStatus.self, written))?.metadata.uid
                    ?? existing.metadata.uid ?? ""
            } catch {
                guard case .conflict = error,
                    case .retry = RetryPolicy.conflictingWrites.decision(afterAttempt: attempt)
                else { throw error }
                logger.debug("pod status update conflicted; retrying", metadata: ["k8s.attempt": "\(attempt)"])
            }
        }
    }

    /// Lists the pod statuses of every namespace whose node label is `nodeName`; objects without a status or
    /// namespace are skipped.
    package func podStatuses(nodeName: String, logger: Logger) async throws(KubernetesClientError) -> [SecretProviderClassPodStatus] {
        let selector = Self.escape("\(SecretProviderClassPodStatus.nodeNameLabel)=\(nodeName)")
        let body = try await send(.GET, "/apis/\(Self.group)/\(Self.version)/secretproviderclasspodstatuses?labelSelector=\(selector)", logger: logger)
        return try Self.decode(Resources.List<Resources.SecretProviderClassPodStatus>.self, body).items.compactMap { $0.domainValue() }
    }

    /// `GET` the pod: its UID, owner references and whether it is being deleted.
    package func pod(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> PodInfo {
        let body = try await send(.GET, "/api/v1/namespaces/\(Self.escape(namespace))/pods/\(Self.escape(name))", logger: logger)
        let pod = try Self.decode(Resources.Pod.self, body)
        return PodInfo(
            namespace: namespace,
            name: name,
            uid: pod.metadata.uid ?? "",
            ownerReferences: (pod.metadata.ownerReferences ?? []).map(\.domainValue),
            terminating: pod.metadata.deletionTimestamp != nil
        )
    }

    /// `GET` the Secret; `nil` on 404.
    package func secret(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> KubernetesSecret? {
        do {
            let body = try await send(.GET, Self.secretPath(namespace, name), logger: logger)
            return try Self.decode(Resources.Secret.self, body).domainValue(namespace: namespace, name: name)
        } catch {
            if case .notFound = error { return nil }
            throw error
        }
    }

    /// `POST` the Secret (without a resourceVersion); 409 when it exists.
    package func createSecret(_ secret: KubernetesSecret, logger: Logger) async throws(KubernetesClientError) {
        var secret = secret
        secret.resourceVersion = nil
        _ = try await send(.POST, Self.secretPath(secret.namespace, nil), body: Self.encode(Resources.Secret(secret)), logger: logger)
    }

    /// `PUT` the Secret with the resourceVersion it was read with; 409 when that is stale.
    package func updateSecret(_ secret: KubernetesSecret, logger: Logger) async throws(KubernetesClientError) {
        _ = try await send(.PUT, Self.secretPath(secret.namespace, secret.name), body: Self.encode(Resources.Secret(secret)), logger: logger)
    }

    /// `POST` a new Event on the pod, from `secrets-store-csi-driver`, timestamped now.
    package func recordEvent(_ event: PodEvent, logger: Logger) async throws(KubernetesClientError) {
        try await postEvent(
            involvedObject: .init(name: event.pod.name, namespace: event.pod.namespace, uid: event.pod.uid.isEmpty ? nil : event.pod.uid),
            kind: event.kind,
            reason: event.reason,
            message: event.message,
            logger: logger
        )
    }

    /// `POST` a new Event on the Deployment, StatefulSet or DaemonSet (involvedObject `apps/v1`), from
    /// `secrets-store-csi-driver`, timestamped now.
    package func recordEvent(_ event: WorkloadEvent, logger: Logger) async throws(KubernetesClientError) {
        let workload = event.workload
        try await postEvent(
            involvedObject: .init(
                apiVersion: "apps/v1",
                kind: workload.kind.rawValue,
                name: workload.name,
                namespace: workload.namespace,
                uid: workload.uid.isEmpty ? nil : workload.uid
            ),
            kind: event.kind,
            reason: event.reason,
            message: event.message,
            logger: logger
        )
    }

    func postEvent(
        involvedObject: Resources.Event.InvolvedObject,
        kind: PodEvent.Kind,
        reason: String,
        message: String,
        component: String = "secrets-store-csi-driver",
        logger: Logger
    ) async throws(KubernetesClientError) {
        let now = UTCTimestamp.iso8601(nanosecondsSinceEpoch: Int64(Date().timeIntervalSince1970 * 1e9))
        let seconds = String(now.prefix(19)) + "Z"
        let suffix = String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let body = Resources.Event(
            metadata: Resources.ObjectMeta(name: "\(involvedObject.name).\(suffix)", namespace: involvedObject.namespace),
            involvedObject: involvedObject,
            reason: reason,
            message: message,
            type: kind.rawValue,
            source: .init(component: component, host: nil),
            firstTimestamp: seconds,
            lastTimestamp: seconds
        )
        _ = try await send(.POST, "/api/v1/namespaces/\(Self.escape(involvedObject.namespace))/events", body: Self.encode(body), logger: logger)
    }

    // MARK: Workloads (restart on rotation)

    /// `GET` the `apps/v1` ReplicaSet; its owner references.
    package func replicaSetOwners(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> [OwnerReference] {
        let body = try await send(.GET, Self.appsPath("replicasets", namespace: namespace, name: name), logger: logger)
        return (try Self.decode(Resources.ReplicaSet.self, body).metadata.ownerReferences ?? []).map(\.domainValue)
    }

    /// `GET` the `apps/v1` Deployment, StatefulSet or DaemonSet.
    package func workload(_ reference: WorkloadReference, logger: Logger) async throws(KubernetesClientError) -> Workload {
        let path = Self.appsPath(reference.kind.resource, namespace: reference.namespace, name: reference.name)
        let body = try await send(.GET, path, logger: logger)
        return try Self.decode(Resources.Workload.self, body).domainValue(reference)
    }

    /// `PATCH` the workload with `Content-Type: application/merge-patch+json`: the pod template annotations,
    /// and `metadata.resourceVersion` when given, which the API server checks (409 when stale).
    @discardableResult
    package func patchTemplateAnnotations(
        _ reference: WorkloadReference,
        annotations: [String: String],
        resourceVersion: String?,
        logger: Logger
    ) async throws(KubernetesClientError) -> Workload {
        let path = Self.appsPath(reference.kind.resource, namespace: reference.namespace, name: reference.name)
        let patch = Resources.TemplateAnnotationsPatch(annotations: annotations, resourceVersion: resourceVersion)
        let body = try await send(.PATCH, path, body: Self.encode(patch), contentType: Self.mergePatch, logger: logger)
        return try Self.decode(Resources.Workload.self, body).domainValue(reference)
    }

    /// The media type of a JSON merge patch (RFC 7386).
    package static let mergePatch = "application/merge-patch+json"

    /// `/apis/apps/v1/namespaces/<namespace>/<resource>/<name>`, segments percent-encoded.
    private static func appsPath(_ resource: String, namespace: String, name: String) -> String {
        "/apis/apps/v1/namespaces/\(escape(namespace))/\(resource)/\(escape(name))"
    }

    static func secretPath(_ namespace: String, _ name: String?) -> String {
        "/api/v1/namespaces/\(escape(namespace))/secrets" + (name.map { "/" + escape($0) } ?? "")
    }

    /// The update for an existing pod status: our status, node label and owner, its other labels and
    /// annotations, and its resourceVersion so a concurrent writer makes the update fail instead of being lost.
    private static func merging(
        _ desired: Resources.SecretProviderClassPodStatus,
        into existing: Resources.SecretProviderClassPodStatus
    ) -> Resources.SecretProviderClassPodStatus {
        var updated = desired
        updated.metadata.resourceVersion = existing.metadata.resourceVersion
        var labels = existing.metadata.labels ?? [:]
        labels.merge(desired.metadata.labels ?? [:]) { _, new in new }
        updated.metadata.labels = labels
        updated.metadata.annotations = existing.metadata.annotations
        return updated
    }

    // MARK: HTTP

    /// Sends one request and returns the body of a 2xx answer; anything else becomes a ``KubernetesClientError``.
    /// `contentType` labels the body (server-side apply sends `application/apply-patch+yaml`); a body longer
    /// than `maximumResponseBytes` fails the request as unavailable.
    package func send(
        _ method: HTTPMethod,
        _ path: String,
        body: [UInt8]? = nil,
        contentType: String = "application/json",
        maximumResponseBytes: Int = 16 << 20,
        logger: Logger
    ) async throws(KubernetesClientError) -> [UInt8] {
        var request = try makeRequest(method, path)
        if let body {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let status: Int
        let bytes: [UInt8]
        do {
            let response = try await http.execute(request, timeout: requestTimeout)
            status = Int(response.status.code)
            bytes = Array(buffer: try await response.body.collect(upTo: maximumResponseBytes))
        } catch {
            throw .unavailable("\(method) \(path): \(error)", cause: ErrorCause(error))
        }
        logger.trace("kubernetes API call", metadata: ["http.method": "\(method)", "http.path": "\(path)", "http.status": "\(status)"])
        if (200..<300).contains(status) { return bytes }
        throw Self.error(method, path, status: status, body: bytes)
    }

    /// A request to `path` (which may carry a query) with the client's headers and credentials.
    ///
    /// A bearer token with a control character other than a tab (a damaged token file) is refused here, as
    /// ``KubernetesClientError/unavailable(_:cause:)`` without the token: AsyncHTTPClient would refuse it too,
    /// with an error that quotes the header's value.
    func makeRequest(_ method: HTTPMethod, _ path: String) throws(KubernetesClientError) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: configuration.server + path)
        request.method = method
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "User-Agent", value: "secrets-store-csi-driver-swift")
        if let token = try bearerToken() {
            guard !token.unicodeScalars.contains(where: { ($0.value < 0x20 && $0 != "\t") || $0.value == 0x7F }) else {
                throw .unavailable("\(method) \(path): the bearer token contains a control character; it was not sent")
            }
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
        }
        return request
    }

    /// The error for a non-2xx answer, carrying the `Status` message of `body` when it has one.
    static func error(_ method: HTTPMethod, _ path: String, status: Int, body bytes: [UInt8]) -> KubernetesClientError {
        let message = (try? JSONDecoder().decode(Resources.Status.self, from: Data(bytes)))?.message
            ?? "HTTP \(status)"
        switch status {
        case 404: return .notFound(message)
        case 409: return .conflict(message)
        case 401, 403: return .forbidden(message)
        case 429, 500...599: return .unavailable("\(method) \(path): HTTP \(status): \(message)")
        default: return .rejected(status: status, message: message)
        }
    }

    private func bearerToken() throws(KubernetesClientError) -> String? {
        switch configuration.credentials {
        case .token(let token):
            return token
        case .tokenFile(let path):
            let now = ContinuousClock.now
            if let cached = cachedToken.withLock({ $0 }), now - cached.readAt < Self.tokenRefreshInterval {
                return cached.token
            }
            let token: String
            do {
                let text = String(decoding: try KubernetesConfiguration.readFile(path), as: UTF8.self)
                token = String(text.filter { !$0.isWhitespace })
            } catch {
                throw .forbidden("cannot read the service account token at \(path)")
            }
            cachedToken.withLock { $0 = (token, now) }
            return token
        case .none, .clientCertificate:
            return nil
        }
    }

    // MARK: Helpers

    /// `/apis/secrets-store.csi.x-k8s.io/v1/namespaces/<namespace>/<resource>[/<name>]`, segments percent-encoded.
    package static func resourcePath(_ resource: String, namespace: String, name: String?) -> String {
        var path = "/apis/\(group)/\(version)/namespaces/\(escape(namespace))/\(resource)"
        if let name { path += "/" + escape(name) }
        return path
    }

    /// Percent-encodes a path segment or query value (object names are DNS labels; this guards against anything
    /// else). `~` is encoded too, as this client always did.
    static func escape(_ segment: String) -> String {
        PercentEncoding.escape(segment, escapingTilde: true)
    }

    static func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) throws(KubernetesClientError) -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch {
            throw .rejected(status: 200, message: "unexpected \(T.self) body: \(error)")
        }
    }

    static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? Array(encoder.encode(value))) ?? []
    }
}
