import Logging
import NIOHTTP1
import SecretsStoreCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The sync controller's verbs: list and watch SecretProviderClasses and Secrets, the class status, events,
/// TokenRequests, the CSIDriver's audiences and Leases.
extension RESTKubernetesClient: ControllerKubernetesClient {
    /// The page size of list requests (`limit`); pages follow `metadata.continue`.
    static let listPageSize = 500
    /// The largest body of one list page.
    static let maximumListBytes = 64 << 20

    // MARK: SecretProviderClasses

    /// Lists the classes (every page) with the list's resourceVersion.
    package func listSecretProviderClasses(namespace: String?, logger: Logger) async throws(KubernetesClientError) -> Listed<SecretProviderClass> {
        try await list(
            Self.collectionPath(prefix: "/apis/\(Self.group)/\(Self.version)", resource: "secretproviderclasses", namespace: namespace),
            as: Resources.SecretProviderClass.self,
            logger: logger
        ) { $0.domainValue(namespace: $0.metadata.namespace ?? namespace ?? "", name: $0.metadata.name ?? "") }
    }

    /// Watches the classes from `resourceVersion`, with bookmarks.
    package func watchSecretProviderClasses(namespace: String?, resourceVersion: String, logger: Logger) -> WatchStream<SecretProviderClass> {
        watch(
            collection: Self.collectionPath(prefix: "/apis/\(Self.group)/\(Self.version)", resource: "secretproviderclasses", namespace: namespace),
            resourceVersion: resourceVersion,
            as: Resources.SecretProviderClass.self,
            domainValue: { wire in
                wire.metadata.name.map { wire.domainValue(namespace: wire.metadata.namespace ?? namespace ?? "", name: $0) }
            },
            logger: logger
        )
    }

    /// `PATCH …/secretproviderclasses/<name>/status` (`application/merge-patch+json`) with the whole status;
    /// fields without a value are sent as `null`, so none of the old status survives.
    package func updateSecretProviderClassStatus(
        namespace: String,
        name: String,
        status: SecretProviderClassStatus,
        logger: Logger
    ) async throws(KubernetesClientError) {
        let path = Self.resourcePath("secretproviderclasses", namespace: namespace, name: name) + "/status"
        _ = try await send(.PATCH, path, body: Self.encode(Resources.SecretProviderClassStatusPatch(status)), contentType: Self.mergePatch, logger: logger)
    }

    /// `POST` a new Event on the class (involvedObject `secrets-store.csi.x-k8s.io/v1` `SecretProviderClass`),
    /// from `secrets-store-csi-driver-controller`, timestamped now.
    package func recordEvent(_ event: SecretProviderClassEvent, logger: Logger) async throws(KubernetesClientError) {
        try await postEvent(
            involvedObject: .init(
                apiVersion: "\(Self.group)/\(Self.version)",
                kind: "SecretProviderClass",
                name: event.name,
                namespace: event.namespace,
                uid: event.uid.isEmpty ? nil : event.uid
            ),
            kind: event.kind,
            reason: event.reason,
            message: event.message,
            component: "secrets-store-csi-driver-controller",
            logger: logger
        )
    }

    // MARK: Secrets

    /// Lists the Secrets matching `labelSelector` (every page) with the list's resourceVersion.
    package func listSecrets(namespace: String?, labelSelector: [String: String], logger: Logger) async throws(KubernetesClientError) -> Listed<KubernetesSecret> {
        try await list(
            Self.collectionPath(prefix: "/api/v1", resource: "secrets", namespace: namespace),
            query: Self.labelSelectorQuery(labelSelector),
            as: Resources.Secret.self,
            logger: logger
        ) { $0.domainValue(namespace: $0.metadata.namespace ?? namespace ?? "", name: $0.metadata.name ?? "") }
    }

    /// Watches the Secrets matching `labelSelector` from `resourceVersion`, with bookmarks.
    package func watchSecrets(namespace: String?, labelSelector: [String: String], resourceVersion: String, logger: Logger) -> WatchStream<KubernetesSecret> {
        watch(
            collection: Self.collectionPath(prefix: "/api/v1", resource: "secrets", namespace: namespace),
            resourceVersion: resourceVersion,
            extraQuery: Self.labelSelectorQuery(labelSelector),
            as: Resources.Secret.self,
            domainValue: { wire in
                wire.metadata.name.map { wire.domainValue(namespace: wire.metadata.namespace ?? namespace ?? "", name: $0) }
            },
            logger: logger
        )
    }

    /// `DELETE` the Secret; 404 is success.
    package func deleteSecret(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) {
        do {
            _ = try await send(.DELETE, Self.secretPath(namespace, name), logger: logger)
        } catch {
            if case .notFound = error { return }
            throw error
        }
    }

    // MARK: Identity

    /// `GET` the ServiceAccount; 404 is `false`.
    package func serviceAccountExists(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> Bool {
        do {
            _ = try await send(.GET, "/api/v1/namespaces/\(Self.escape(namespace))/serviceaccounts/\(Self.escape(name))", logger: logger)
            return true
        } catch {
            if case .notFound = error { return false }
            throw error
        }
    }

    /// `POST` a TokenRequest for one audience; the token is in no error this throws.
    package func requestToken(
        namespace: String,
        serviceAccount: String,
        audience: String,
        expirationSeconds: Int,
        logger: Logger
    ) async throws(KubernetesClientError) -> ServiceAccountToken {
        let path = "/api/v1/namespaces/\(Self.escape(namespace))/serviceaccounts/\(Self.escape(serviceAccount))/token"
        let request = Resources.TokenRequest(audience: audience, expirationSeconds: expirationSeconds)
        let body = try await send(.POST, path, body: Self.encode(request), maximumResponseBytes: 1 << 20, logger: logger)
        // Decoding errors are not passed on: they could quote part of the body, which holds the token.
        guard let answer = try? JSONDecoder().decode(Resources.TokenRequestAnswer.self, from: Data(body)) else {
            throw .rejected(status: 200, message: "the TokenRequest answer for serviceaccounts/\(serviceAccount) has no status.token and status.expirationTimestamp")
        }
        guard let expiresAt = RFC3339.epochSeconds(answer.status.expirationTimestamp) else {
            throw .rejected(
                status: 200,
                message: "the TokenRequest answer for serviceaccounts/\(serviceAccount) has an expirationTimestamp that is not RFC 3339"
            )
        }
        return ServiceAccountToken(token: answer.status.token, expirationTimestamp: answer.status.expirationTimestamp, expiresAtSeconds: expiresAt)
    }

    /// `GET /apis/storage.k8s.io/v1/csidrivers/<name>`: its `spec.tokenRequests[].audience`.
    package func csiDriverTokenAudiences(driverName: String, logger: Logger) async throws(KubernetesClientError) -> [String] {
        let body = try await send(.GET, "/apis/storage.k8s.io/v1/csidrivers/\(Self.escape(driverName))", logger: logger)
        return (try Self.decode(Resources.CSIDriver.self, body).spec?.tokenRequests ?? []).map(\.audience)
    }

    // MARK: Leases

    /// `GET` the Lease; `nil` on 404.
    package func lease(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> LeaseRecord? {
        do {
            let body = try await send(.GET, Self.leasePath(namespace, name), logger: logger)
            return try Self.decode(Resources.Lease.self, body).domainValue(namespace: namespace, name: name)
        } catch {
            if case .notFound = error { return nil }
            throw error
        }
    }

    /// `POST` the Lease (without a resourceVersion); 409 when it exists.
    package func createLease(_ lease: LeaseRecord, logger: Logger) async throws(KubernetesClientError) -> LeaseRecord {
        var lease = lease
        lease.resourceVersion = nil
        let body = try await send(.POST, Self.leasePath(lease.namespace, nil), body: Self.encode(Resources.Lease(lease)), logger: logger)
        return try Self.decode(Resources.Lease.self, body).domainValue(namespace: lease.namespace, name: lease.name)
    }

    /// `PUT` the Lease with the resourceVersion it was read with; 409 when that is stale.
    package func updateLease(_ lease: LeaseRecord, logger: Logger) async throws(KubernetesClientError) -> LeaseRecord {
        let body = try await send(.PUT, Self.leasePath(lease.namespace, lease.name), body: Self.encode(Resources.Lease(lease)), logger: logger)
        return try Self.decode(Resources.Lease.self, body).domainValue(namespace: lease.namespace, name: lease.name)
    }

    // MARK: Helpers

    /// Reads every page of a list (`limit`, `continue`), each at most ``maximumListBytes``; the resourceVersion
    /// is the last page's (all pages of one list share it). Items without a domain value are skipped.
    private func list<Wire: Codable & Sendable, Object: Sendable>(
        _ collection: String,
        query: [String] = [],
        as wire: Wire.Type,
        logger: Logger,
        domainValue: (Wire) -> Object?
    ) async throws(KubernetesClientError) -> Listed<Object> {
        var items: [Object] = []
        var continueToken: String?
        while true {
            var parameters = query + ["limit=\(Self.listPageSize)"]
            if let continueToken { parameters.append("continue=\(Self.escape(continueToken))") }
            let body = try await send(.GET, collection + "?" + parameters.joined(separator: "&"), maximumResponseBytes: Self.maximumListBytes, logger: logger)
            let page = try Self.decode(Resources.List<Wire>.self, body)
            items.append(contentsOf: page.items.compactMap(domainValue))
            guard let next = page.metadata?.continue, !next.isEmpty else {
                return Listed(items: items, resourceVersion: page.metadata?.resourceVersion ?? "")
            }
            continueToken = next
        }
    }

    /// `<prefix>[/namespaces/<namespace>]/<resource>`.
    private static func collectionPath(prefix: String, resource: String, namespace: String?) -> String {
        prefix + (namespace.map { "/namespaces/\(escape($0))" } ?? "") + "/" + resource
    }

    /// `labelSelector=k1%3Dv1,k2%3Dv2` (keys sorted), or nothing for an empty selector.
    private static func labelSelectorQuery(_ selector: [String: String]) -> [String] {
        guard !selector.isEmpty else { return [] }
        let terms = selector.sorted { $0.key < $1.key }.map { escape($0.key) + "%3D" + escape($0.value) }
        return ["labelSelector=" + terms.joined(separator: ",")]
    }

    private static func leasePath(_ namespace: String, _ name: String?) -> String {
        "/apis/coordination.k8s.io/v1/namespaces/\(escape(namespace))/leases" + (name.map { "/" + escape($0) } ?? "")
    }
}
