import AsyncHTTPClient
import NIOCore
import NIOSSL

/// How an HTTPS client checks the server and identifies itself.
///
/// The default is the system's trust roots, no client certificate, and verification on.
package struct HTTPSClientTLS: Sendable, Equatable {
    /// The certificate authorities a server's chain may lead to.
    package enum TrustRoots: Sendable, Equatable {
        /// The system's roots, plus every certificate of `extraPEM` when given (an emulator's or a private CA).
        case system(extraPEM: [UInt8]? = nil)
        /// Only the certificates of this PEM bundle (a cluster's CA); the system's roots are not trusted.
        case only(pem: [UInt8])
    }

    /// A client certificate chain (leaf first) and its private key, both PEM.
    package struct ClientCertificate: Sendable, Equatable {
        /// The certificate chain, leaf first, PEM.
        package var certificatePEM: [UInt8]
        /// The leaf's private key, PEM.
        package var keyPEM: [UInt8]

        /// A client certificate from its chain and key, PEM.
        package init(certificatePEM: [UInt8], keyPEM: [UInt8]) {
            self.certificatePEM = certificatePEM
            self.keyPEM = keyPEM
        }
    }

    /// Whom to trust.
    package var trustRoots: TrustRoots
    /// The certificate presented when the server asks for one; `nil` presents none.
    package var clientCertificate: ClientCertificate?
    /// Accept any server certificate, unchecked (kubeconfig's `insecure-skip-tls-verify`). Never the default.
    package var insecureSkipVerify: Bool

    /// Settings; by default the system's roots, no client certificate, verification on.
    package init(
        trustRoots: TrustRoots = .system(),
        clientCertificate: ClientCertificate? = nil,
        insecureSkipVerify: Bool = false
    ) {
        self.trustRoots = trustRoots
        self.clientCertificate = clientCertificate
        self.insecureSkipVerify = insecureSkipVerify
    }

    /// The NIOSSL client configuration for these settings. Throws NIOSSL's error when a PEM does not parse;
    /// the error names no key material.
    package func configuration() throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        switch trustRoots {
        case .system(let extraPEM):
            if let extraPEM {
                tls.additionalTrustRoots = [.certificates(try NIOSSLCertificate.fromPEMBytes(extraPEM))]
            }
        case .only(let pem):
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(pem))
        }
        if insecureSkipVerify {
            tls.certificateVerification = .none
        }
        if let clientCertificate {
            tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(clientCertificate.certificatePEM).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: clientCertificate.keyPEM, format: .pem))
        }
        return tls
    }
}

/// Connection-level time limits of an HTTPS client. A whole request's limit is given per request.
package struct HTTPSClientTimeouts: Sendable, Equatable {
    /// Establishing the TCP connection (and TLS handshake) may take this long.
    package var connect: Duration
    /// The longest silence between two reads of a response.
    package var read: Duration
    /// How long an unused pooled connection is kept open; `nil` keeps AsyncHTTPClient's default (60 s).
    package var idleConnection: Duration?

    /// Limits; `idleConnection` `nil` keeps AsyncHTTPClient's default.
    package init(connect: Duration, read: Duration, idleConnection: Duration? = nil) {
        self.connect = connect
        self.read = read
        self.idleConnection = idleConnection
    }
}

extension HTTPClient {
    /// An HTTP client with `tls` and `timeouts` on the process-wide `.singleton` event loop group (no threads of
    /// its own). Redirects and everything else are AsyncHTTPClient's defaults. The caller must `shutdown()` it.
    ///
    /// - Parameter proxy: every request of the client goes through this proxy (`nil`: every request goes
    ///   direct). AsyncHTTPClient applies one proxy to a whole client, so per-request choices are made by
    ///   ``ProxyRoutingHTTPClient``, which holds one client per route. TLS still runs end to end, inside the
    ///   tunnel, with `tls`'s verification.
    ///
    /// Throws when a PEM in `tls` does not parse.
    package static func make(tls: HTTPSClientTLS, timeouts: HTTPSClientTimeouts, proxy: ProxyServer? = nil) throws -> HTTPClient {
        make(tlsConfiguration: try tls.configuration(), timeouts: timeouts, proxy: proxy)
    }

    /// ``make(tls:timeouts:proxy:)`` from TLS settings already turned into a NIOSSL configuration; cannot fail.
    package static func make(tlsConfiguration: TLSConfiguration, timeouts: HTTPSClientTimeouts, proxy: ProxyServer? = nil) -> HTTPClient {
        var configuration = HTTPClient.Configuration(tlsConfiguration: tlsConfiguration)
        // No tracer: the driver exports no traces, and AsyncHTTPClient's span bookkeeping around every request
        // (even with the no-op tracer) was about 2 % of the driver's CPU time in the publish benchmark.
        configuration.tracing.tracer = nil
        configuration.timeout = .init(connect: TimeAmount(timeouts.connect), read: TimeAmount(timeouts.read))
        if let idle = timeouts.idleConnection {
            configuration.connectionPool = .init(idleTimeout: TimeAmount(idle))
        }
        if let proxy {
            switch proxy.kind {
            case .httpConnect:
                configuration.proxy = .server(
                    host: proxy.host,
                    port: proxy.port,
                    authorization: proxy.credentials.map { .basic(username: $0.username, password: $0.password) }
                )
            case .socks5:
                configuration.proxy = .socksServer(host: proxy.host, port: proxy.port)
            }
        }
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }
}
