import Logging
import Synchronization

/// Service account tokens from the TokenRequest API, kept in memory and renewed at 80 % of their life.
///
/// Promises: one TokenRequest per (namespace, service account, audience) while its token is young; a token
/// is handed out only before 80 % of the time between its request and its expiry has passed; tokens never
/// reach a log (``ServiceAccountToken`` redacts itself). Concurrent callers for the same key may each
/// request once when the cache is cold; the last answer is kept.
package final class ServiceAccountTokenCache: Sendable {
    private struct Key: Hashable {
        var namespace: String
        var serviceAccount: String
        var audience: String
    }

    private struct Entry {
        var token: ServiceAccountToken
        /// Seconds since the epoch after which the token is renewed.
        var renewAtSeconds: Int64
    }

    /// The lifetime asked for: one hour, as kubelet asks.
    package let expirationSeconds: Int
    private let client: any ControllerKubernetesClient
    private let nowSeconds: @Sendable () -> Int64
    private let entries = Mutex<[Key: Entry]>([:])
    private let requested = Atomic<Int>(0)

    /// - Parameters:
    ///   - expirationSeconds: `spec.expirationSeconds` of each TokenRequest.
    ///   - nowSeconds: wall-clock seconds since the Unix epoch.
    package init(client: any ControllerKubernetesClient, expirationSeconds: Int = 3600, nowSeconds: @escaping @Sendable () -> Int64) {
        self.client = client
        self.expirationSeconds = expirationSeconds
        self.nowSeconds = nowSeconds
    }

    /// How many TokenRequests were sent so far.
    package var tokenRequestsSent: Int { requested.load(ordering: .relaxed) }

    /// A token for `serviceAccount` in `namespace` with `audience`, from the cache while it is young.
    package func token(
        namespace: String,
        serviceAccount: String,
        audience: String,
        logger: Logger
    ) async throws(KubernetesClientError) -> ServiceAccountToken {
        let key = Key(namespace: namespace, serviceAccount: serviceAccount, audience: audience)
        let now = nowSeconds()
        if let entry = entries.withLock({ $0[key] }), now < entry.renewAtSeconds {
            return entry.token
        }
        requested.add(1, ordering: .relaxed)
        let token = try await client.requestToken(
            namespace: namespace,
            serviceAccount: serviceAccount,
            audience: audience,
            expirationSeconds: expirationSeconds,
            logger: logger
        )
        let life = max(0, token.expiresAtSeconds - now)
        entries.withLock { $0[key] = Entry(token: token, renewAtSeconds: now + life * 8 / 10) }
        return token
    }

    /// Forgets every token of `namespace` (its SecretProviderClasses are gone or no longer sync).
    package func forget(namespace: String, serviceAccount: String) {
        entries.withLock { entries in
            entries = entries.filter { !($0.key.namespace == namespace && $0.key.serviceAccount == serviceAccount) }
        }
    }
}
