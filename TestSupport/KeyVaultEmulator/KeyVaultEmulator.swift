import SecretsStoreHTTPServer
import Crypto
import Foundation
import NIOHTTP1
import NIOSSL
import Synchronization
import X509
import _CryptoExtras

/// Key Vault (data plane, `api-version=7.4`), Entra ID (token endpoint, OIDC metadata) and IMDS on one HTTPS
/// port on loopback, for tests, benchmarks and the demo.
///
/// Addressing: a vault is the first path segment (`https://127.0.0.1:<port>/<vault>/secrets/<name>/<version>`);
/// Entra is `/<tenant>/oauth2/v2.0/token`; IMDS is `/metadata/identity/oauth2/token`. Entra's instance discovery
/// (`/common/discovery/instance`) accepts any authority and the OIDC metadata names endpoints under the host the
/// client addressed, so a client that validates its authority first (Go MSAL, in upstream's Azure provider) works
/// with the emulator reached as `login.microsoftonline.com` (an /etc/hosts entry). Bodies, headers and error
/// shapes are Key Vault's and Entra's, including the 401 challenge; official Azure SDK clients work against it
/// (see `scripts/check-emulator-with-azure-sdk.py`).
package final class KeyVaultEmulator: Sendable {
    /// Key Vault's resource; the challenge names it and tokens are issued for it.
    package static let keyVaultResource = "https://vault.azure.net"

    private let state: Mutex<State>
    private let server: RunningHTTPListener
    /// The CA, server and client certificates it serves with.
    package let certificates: EmulatorCertificates
    /// `https://127.0.0.1:<port>`.
    package let baseURL: String

    /// Throttling and fault injection, changeable while running.
    package struct Faults: Sendable {
        /// Allow this many Key Vault requests per window, answer 429 past it.
        package var throttleLimit: Int?
        /// The window `throttleLimit` counts in.
        package var throttleWindow: Duration = .seconds(10)
        /// The `Retry-After` seconds a 429 carries.
        package var retryAfterSeconds: Int = 1
        /// Delay every Key Vault answer.
        package var latency: Duration?
        /// Answer the next N Key Vault requests with this status (500, 503, 429…).
        package var failNext: (status: Int, count: Int)?

        /// No faults.
        package init() {}
    }

    /// Starts serving `seed` on `127.0.0.1:port` (0 for an ephemeral port) over HTTPS with `certificates`
    /// (fresh ones when `nil`). With `requireClientCertificate`, TLS handshakes without a client certificate
    /// signed by the emulator's CA (``EmulatorCertificates/clientCertificatePEM``) fail.
    package init(
        seed: EmulatorSeed,
        port: Int = 0,
        certificates: EmulatorCertificates? = nil,
        requireClientCertificate: Bool = false
    ) async throws {
        let certificates = try certificates ?? EmulatorCertificates.generate()
        let state = Mutex(try State(seed: seed))
        let box = Box()
        let tls = try certificates.serverContext(requireClientCertificate: requireClientCertificate)
        self.server = try await RunningHTTPListener(port: port, tls: tls) { request in
            box.emulator.withLock { $0 }?.handle(request) ?? .init(status: 503)
        }
        self.state = state
        self.certificates = certificates
        self.baseURL = "https://127.0.0.1:\(server.port)"
        box.emulator.withLock { $0 = self }
    }

    /// Stops listening.
    package func shutdown() async throws {
        try await server.shutdown()
    }

    // MARK: Controls for tests and benchmarks

    /// A Key Vault data-plane operation, named as in Key Vault's REST reference.
    package enum Operation: String, Sendable, Hashable, CaseIterable {
        /// "Get Secrets": one page of the vault's secret list (`GET /secrets`).
        case getSecrets
        /// "Get Secret": one secret, its current or a given version (`GET /secrets/<name>[/<version>]`).
        case getSecret
        /// "Get Secret Versions": one page of a secret's versions.
        case getSecretVersions
        /// "Set Secret": a new version (`PUT /secrets/<name>`).
        case setSecret
        /// "Update Secret": a version's attributes, tags or content type (`PATCH /secrets/<name>/<version>`).
        case updateSecret
        /// "Get Key".
        case getKey
        /// "Get Key Versions".
        case getKeyVersions
        /// "Get Certificate".
        case getCertificate
        /// "Get Certificate Versions".
        case getCertificateVersions
        /// Anything else addressed to Key Vault.
        case other

        /// The operation a request's method and path (after the vault segment) address.
        static func classify(method: String, rest: [String]) -> Operation {
            switch (method, rest.first, rest.count) {
            case ("GET", "secrets", 1): .getSecrets
            case ("PUT", "secrets", 2): .setSecret
            case ("PATCH", "secrets", 2), ("PATCH", "secrets", 3): .updateSecret
            case ("GET", let collection?, 3) where rest[2] == "versions":
                collection == "secrets" ? .getSecretVersions : collection == "keys" ? .getKeyVersions : .getCertificateVersions
            case ("GET", "secrets", 2), ("GET", "secrets", 3): .getSecret
            case ("GET", "keys", 2), ("GET", "keys", 3): .getKey
            case ("GET", "certificates", 2), ("GET", "certificates", 3): .getCertificate
            default: .other
            }
        }
    }

    /// Requests served, by `METHOD path` (query removed).
    package var requestCounts: [String: Int] { state.withLock { $0.counts } }
    /// Key Vault requests addressing `operation` (in `vault`, compared case-insensitively; every vault when
    /// `nil`), counted as they arrive: answered, refused or failed alike (a 403, a 429 and an injected fault
    /// each count once), as Key Vault meters them. Zeroed by ``resetCounters()``.
    package func requestCount(_ operation: Operation, vault: String? = nil) -> Int {
        state.withLock { state in
            if let vault { return state.operationCounts[vault.lowercased()]?[operation] ?? 0 }
            return state.operationCounts.values.reduce(0) { $0 + ($1[operation] ?? 0) }
        }
    }
    /// Key Vault data-plane requests only (not Entra, not IMDS), including unauthenticated and failed ones.
    package var keyVaultRequestCount: Int { state.withLock { $0.keyVaultRequests } }
    /// Token requests to Entra and IMDS.
    package var tokenRequestCount: Int { state.withLock { $0.tokenRequests } }
    /// The issuers whose service account tokens it accepts as client assertions (``EmulatorSeed/issuers``).
    package var trustedIssuers: [String] { state.withLock { $0.trustedIssuers.keys.sorted() } }
    /// Every access token the emulator has issued (Entra and IMDS), for secrecy checks.
    package var issuedAccessTokens: [String] { state.withLock { Array($0.tokens.keys) } }
    /// Zeroes ``requestCounts``, ``requestCount(_:vault:)``, ``keyVaultRequestCount`` and ``tokenRequestCount``.
    package func resetCounters() {
        state.withLock {
            $0.counts = [:]
            $0.operationCounts = [:]
            $0.keyVaultRequests = 0
            $0.tokenRequests = 0
        }
    }
    /// Replaces the faults; applies from the next request.
    package func setFaults(_ faults: Faults) { state.withLock { $0.faults = faults } }

    /// Adds a new version of a secret (as `PUT /secrets/<name>` does) and returns its version id. The new
    /// version becomes the current one, with fresh `created` and `updated`, and carries `tags` only (as in
    /// Key Vault, a new version does not inherit the previous version's tags).
    @discardableResult
    package func setSecret(vault: String, name: String, value: String, contentType: String? = nil, tags: [String: String]? = nil) -> String {
        state.withLock { state in
            let version = state.makeVersionID()
            var versions = state.vaults[vault, default: .init()].secrets[name, default: []]
            versions.append(.init(id: version, value: value, contentType: contentType, kid: nil, enabled: true, created: state.tick(), tags: tags))
            state.vaults[vault, default: .init()].secrets[name] = versions
            return version
        }
    }

    /// Deletes a secret and all its versions (as `DELETE /secrets/<name>` followed by a purge does): reads
    /// answer 404 `SecretNotFound` after.
    package func deleteSecret(vault: String, name: String) {
        _ = state.withLock { $0.vaults[vault]?.secrets.removeValue(forKey: name) }
    }

    /// Enables or disables one version of a secret (the current one when `version` is `nil`), as
    /// `PATCH /secrets/<name>/<version>` does: the version's `attributes.updated` advances.
    package func setSecretEnabled(vault: String, name: String, version: String? = nil, enabled: Bool) {
        updateSecretVersion(vault: vault, name: name, version: version) { $0.enabled = enabled }
    }

    /// Replaces the tags of one version of a secret (the current one when `version` is `nil`; `nil` tags
    /// removes them), as `PATCH /secrets/<name>/<version>` does: the version's `attributes.updated` advances.
    package func setSecretTags(vault: String, name: String, version: String? = nil, tags: [String: String]?) {
        updateSecretVersion(vault: vault, name: name, version: version) { $0.tags = tags }
    }

    /// A secret version's properties as Key Vault reports them (never its value).
    package struct SecretVersionProperties: Sendable, Equatable {
        /// The version id (32 hex digits).
        package var version: String
        /// `attributes.enabled`.
        package var enabled: Bool
        /// `attributes.created` (Unix seconds of the emulator's clock, which advances one a change).
        package var created: Int
        /// `attributes.updated`: `created` until the version's attributes or tags change.
        package var updated: Int
        /// The version's tags.
        package var tags: [String: String]?
        /// The content type.
        package var contentType: String?
    }

    /// The properties of a secret's versions, oldest first; the last is the current version, the one the
    /// vault's secret list shows.
    package func secretVersionProperties(vault: String, name: String) -> [SecretVersionProperties] {
        state.withLock { state in
            (state.vaults[vault]?.secrets[name] ?? []).map {
                SecretVersionProperties(version: $0.id, enabled: $0.enabled, created: $0.created, updated: $0.updated, tags: $0.tags, contentType: $0.contentType)
            }
        }
    }

    private func updateSecretVersion(vault: String, name: String, version: String?, _ change: (inout State.SecretVersion) -> Void) {
        state.withLock { state in
            guard var versions = state.vaults[vault]?.secrets[name], !versions.isEmpty,
                let index = version.map({ version in versions.firstIndex { $0.id == version } }) ?? versions.indices.last
            else { return }
            change(&versions[index])
            versions[index].updated = state.tick()
            state.vaults[vault]?.secrets[name] = versions
        }
    }

    /// The version ids of a secret, oldest first.
    package func secretVersions(vault: String, name: String) -> [String] {
        state.withLock { $0.vaults[vault]?.secrets[name]?.map(\.id) ?? [] }
    }

    // MARK: Routing

    private func handle(_ request: HTTPListener.Request) -> HTTPListener.Response {
        state.withLock { state in
            state.counts["\(request.method) \(request.path)", default: 0] += 1
            let segments = request.path.split(separator: "/").map(String.init)
            if segments.starts(with: ["metadata", "identity", "oauth2", "token"]) {
                state.tokenRequests += 1
                return state.imdsToken(request)
            }
            if segments.count == 4, segments[1] == "oauth2", segments[2] == "v2.0", segments[3] == "token" {
                state.tokenRequests += 1
                return state.entraToken(request, tenant: segments[0], baseURL: baseURL)
            }
            if segments.count >= 3, segments[1] == "v2.0", segments.last == "openid-configuration" {
                // Endpoints under the host the client addressed (Entra's, through /etc/hosts), as Entra answers.
                let origin = request.headers.first(name: "Host").map { "https://\($0)" } ?? baseURL
                return state.openIDConfiguration(tenant: segments[0], baseURL: origin)
            }
            if segments == ["common", "discovery", "instance"] {
                return State.instanceDiscovery(request)
            }
            let collections = ["secrets", "keys", "certificates"]
            if segments.count >= 2, collections.contains(segments[1]) {
                state.keyVaultRequests += 1
                let rest = Array(segments.dropFirst())
                state.operationCounts[segments[0].lowercased(), default: [:]][Operation.classify(method: request.method, rest: rest), default: 0] += 1
                return state.keyVault(request, vault: segments[0], rest: rest, baseURL: baseURL)
            }
            if let first = segments.first, collections.contains(first) {
                state.keyVaultRequests += 1
                let vault = state.vaults.count == 1 ? state.vaults.keys.first!.lowercased() : ""
                state.operationCounts[vault, default: [:]][Operation.classify(method: request.method, rest: segments), default: 0] += 1
                return state.keyVault(request, vault: nil, rest: segments, baseURL: baseURL)
            }
            return State.json(404, ["error": ["code": "NotFound", "message": "The requested resource was not found."]])
        }
    }
}

/// Lets the server's handler reach the emulator once it exists.
private final class Box: Sendable {
    let emulator = Mutex<KeyVaultEmulator?>(nil)
}
