import AsyncHTTPClient
import NIOSSL

/// HTTPS clients for every route a ``ProxyDecision`` can pick: one direct, and one per distinct proxy (at most
/// two: `HTTPS_PROXY` and `HTTP_PROXY`). AsyncHTTPClient applies a proxy to every request of a client, so
/// choosing per request means choosing the client.
///
/// Safe to share between tasks; call ``shutdown()`` once, when no request is in flight any more.
package final class ProxyRoutingHTTPClient: Sendable {
    /// The decision every request is routed by.
    package let decision: ProxyDecision
    private let direct: HTTPClient
    private let proxied: [ProxyServer: HTTPClient]

    /// Clients with `tls` and `timeouts` for every route of `decision`.
    ///
    /// - Throws: when a PEM in `tls` does not parse (nothing is left open then).
    package init(tls: HTTPSClientTLS, timeouts: HTTPSClientTimeouts, decision: ProxyDecision) throws {
        self.decision = decision
        // Parsed once, before any client exists, so a bad PEM leaves nothing to shut down.
        let configuration = try tls.configuration()
        direct = HTTPClient.make(tlsConfiguration: configuration, timeouts: timeouts)
        var proxied: [ProxyServer: HTTPClient] = [:]
        for proxy in [decision.httpsProxy, decision.httpProxy].compactMap({ $0 }) where proxied[proxy] == nil {
            proxied[proxy] = HTTPClient.make(tlsConfiguration: configuration, timeouts: timeouts, proxy: proxy)
        }
        self.proxied = proxied
    }

    /// The client for `url` and the proxy it goes through (`nil`: direct). With `bypassProxy` (the Azure
    /// Instance Metadata Service, which must never be proxied) the direct client, whatever the decision.
    package func client(for url: String, bypassProxy: Bool = false) -> (client: HTTPClient, proxy: ProxyServer?) {
        guard !bypassProxy, let proxy = decision.proxy(for: url), let client = proxied[proxy] else { return (direct, nil) }
        return (client, proxy)
    }

    /// Shuts every client down; later requests fail. Every client is shut down even when one fails; the first
    /// failure is rethrown.
    package func shutdown() async throws {
        var failure: (any Error)?
        for client in [direct] + Array(proxied.values) {
            do { try await client.shutdown() } catch { failure = failure ?? error }
        }
        if let failure { throw failure }
    }
}
