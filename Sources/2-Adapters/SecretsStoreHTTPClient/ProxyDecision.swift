#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Which proxy, if any, a request URL goes through, decided from a ``ProxyEnvironment`` the way Go's
/// `golang.org/x/net/http/httpproxy` decides it (and so the upstream driver, the upstream Azure provider and the
/// Azure SDK for Go). A pure value: no I/O, no name resolution.
///
/// The rules, in order:
/// - `https://` URLs use `HTTPS_PROXY`; `http://` URLs use `HTTP_PROXY` (`HTTP_PROXY` is never used for
///   `https://`); other schemes go direct.
/// - `localhost` and loopback addresses (`127.0.0.0/8`, `::1`) always go direct, whatever `NO_PROXY` says.
/// - `NO_PROXY` is a comma-separated list; entries are trimmed and compared case-insensitively:
///   - `*` alone sends every request direct;
///   - an IP address (`10.1.2.3`, `fd00::1`, optionally with a port: `10.1.2.3:8443`, `[fd00::1]:8443`) or a
///     CIDR block (`10.0.0.0/8`, `fd00::/8`) matches request hosts written as IP addresses (names are never
///     resolved to check them);
///   - a domain `example.com` matches `example.com` and every subdomain (`vault.example.com`); `.example.com`
///     and `*.example.com` match subdomains only. Matching is by whole labels: `example.com` does not match
///     `badexample.com`. A port (`example.com:8443`) restricts the entry to that port.
/// - The request's port is its URL's, else the scheme's (443 for https, 80 for http).
package struct ProxyDecision: Sendable, Equatable, CustomStringConvertible {
    /// The proxy for `https://` URLs (`HTTPS_PROXY`), parsed.
    package private(set) var httpsProxy: ProxyServer?
    /// The proxy for `http://` URLs (`HTTP_PROXY`), parsed.
    package private(set) var httpProxy: ProxyServer?
    /// `NO_PROXY` as written (host names and addresses, no credentials).
    package private(set) var noProxy = ""
    /// `NO_PROXY` contained `*`.
    private var bypassAll = false
    /// `NO_PROXY` entries that are IP addresses or CIDR blocks.
    private var addressRules: [AddressRule] = []
    /// `NO_PROXY` entries that are domain names.
    private var domainRules: [DomainRule] = []

    /// Every request direct.
    package static let direct = ProxyDecision()

    private init() {}

    /// The decision `environment` describes.
    ///
    /// - Throws: ``ProxyConfigurationError`` when `HTTPS_PROXY` or `HTTP_PROXY` is set but unusable (see
    ///   ``ProxyServer/init(parsing:)``). Malformed `NO_PROXY` entries are skipped, as Go skips them.
    package init(environment: ProxyEnvironment) throws(ProxyConfigurationError) {
        if let value = environment.httpsProxy { httpsProxy = try ProxyServer(parsing: value) }
        if let value = environment.httpProxy { httpProxy = try ProxyServer(parsing: value) }
        noProxy = environment.noProxy ?? ""
        for rawEntry in (environment.noProxy ?? "").split(separator: ",") {
            let entry = String(String(rawEntry).trimmingSpaces).lowercased()
            if entry.isEmpty { continue }
            if entry == "*" {
                bypassAll = true
                addressRules = []
                domainRules = []
                return
            }
            if let block = AddressBlock(cidr: entry) {
                addressRules.append(AddressRule(block: block, port: nil))
                continue
            }
            guard let hostPort = HostPort.parse(Substring(entry)), !hostPort.host.isEmpty else { continue }
            if let address = IPAddress(hostPort.host) {
                addressRules.append(AddressRule(block: AddressBlock(address: address), port: hostPort.port))
                continue
            }
            var host = hostPort.host
            if host.hasPrefix("*.") { host.removeFirst() }
            let matchesItself = !host.hasPrefix(".")
            if matchesItself { host = "." + host }
            guard host.count > 1 else { continue }
            domainRules.append(DomainRule(suffix: host, port: hostPort.port, matchesItself: matchesItself))
        }
    }

    /// `https=<proxy|direct> http=<proxy|direct> no_proxy=<list>`, proxies without credentials: for logs.
    package var description: String {
        "https=\(httpsProxy.map { "\($0)" } ?? "direct") http=\(httpProxy.map { "\($0)" } ?? "direct") no_proxy=\(noProxy)"
    }

    /// Whether any request can go through a proxy at all.
    package var usesAnyProxy: Bool { httpsProxy != nil || httpProxy != nil }

    /// The proxy for `url`, or `nil` to connect directly. A URL that does not parse goes direct.
    package func proxy(for url: String) -> ProxyServer? {
        guard usesAnyProxy, let target = RequestTarget(url: url) else { return nil }
        return proxy(scheme: target.scheme, host: target.host, port: target.port)
    }

    /// The proxy for a request to `host:port` over `scheme` (`port` `nil`: the scheme's default), or `nil`.
    package func proxy(scheme: String, host: String, port: Int?) -> ProxyServer? {
        let scheme = scheme.lowercased()
        let proxy: ProxyServer?
        switch scheme {
        case "https": proxy = httpsProxy
        case "http": proxy = httpProxy
        default: proxy = nil
        }
        guard let proxy, usesProxy(host: host, port: port ?? (scheme == "https" ? 443 : 80)) else { return nil }
        return proxy
    }

    /// Whether `host:port` is not exempt: not localhost, not loopback, not matched by `NO_PROXY`.
    private func usesProxy(host: String, port: Int) -> Bool {
        let host = host.lowercased()
        if host == "localhost" { return false }
        let address = IPAddress(host)
        if let address, address.isLoopback { return false }
        if bypassAll { return false }
        if let address, addressRules.contains(where: { $0.matches(address, port: port) }) { return false }
        return !domainRules.contains { $0.matches(host, port: port) }
    }
}

/// A `NO_PROXY` IP address or CIDR entry.
private struct AddressRule: Sendable, Equatable {
    var block: AddressBlock
    /// Only this port, when the entry names one.
    var port: Int?

    func matches(_ address: IPAddress, port: Int) -> Bool {
        block.contains(address) && (self.port == nil || self.port == port)
    }
}

/// A `NO_PROXY` domain entry, kept as the dotted suffix it matches (`.example.com`).
private struct DomainRule: Sendable, Equatable {
    /// `.example.com`.
    var suffix: String
    /// Only this port, when the entry names one.
    var port: Int?
    /// The entry had no leading dot or `*.`, so it matches `example.com` itself too.
    var matchesItself: Bool

    func matches(_ host: String, port: Int) -> Bool {
        guard host.hasSuffix(suffix) || (matchesItself && host == suffix.dropFirst()) else { return false }
        return self.port == nil || self.port == port
    }
}

/// The scheme, host and port of a request URL.
struct RequestTarget: Equatable {
    var scheme: String
    var host: String
    var port: Int?

    /// Parses `scheme://[userinfo@]host[:port][/…]`; `nil` when there is no `://` or the authority is malformed.
    init?(url: String) {
        guard let separator = url.firstRange(of: "://") else { return nil }
        scheme = url[..<separator.lowerBound].lowercased()
        var authority = url[separator.upperBound...].prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        guard let hostPort = HostPort.parse(authority), !hostPort.host.isEmpty else { return nil }
        host = hostPort.host
        port = hostPort.port
    }
}

/// An IPv4 or IPv6 address as bytes; IPv4-mapped IPv6 addresses (`::ffff:10.1.2.3`) are kept as IPv4, so both
/// spellings compare equal, as Go's `net.IP` does.
struct IPAddress: Sendable, Hashable {
    /// 4 bytes (IPv4) or 16 (IPv6).
    var bytes: [UInt8]

    /// Parses an IPv4 dotted quad or an IPv6 address (no brackets, no zone); `nil` for anything else.
    init?(_ text: String) {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            bytes = withUnsafeBytes(of: &v4) { Array($0) }
            return
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        let raw = withUnsafeBytes(of: &v6) { Array($0) }
        bytes = raw[0..<10].allSatisfy { $0 == 0 } && raw[10] == 0xFF && raw[11] == 0xFF ? Array(raw[12...]) : raw
    }

    /// `127.0.0.0/8` or `::1`.
    var isLoopback: Bool {
        bytes.count == 4 ? bytes[0] == 127 : bytes == [UInt8](repeating: 0, count: 15) + [1]
    }
}

/// An address and a prefix length: a CIDR block, or a single address (the full length).
struct AddressBlock: Sendable, Equatable {
    var address: IPAddress
    var prefixLength: Int

    /// The block of exactly one address.
    init(address: IPAddress) {
        self.address = address
        prefixLength = address.bytes.count * 8
    }

    /// Parses `address/length`; `nil` when either part is malformed or the length is too long.
    init?(cidr: String) {
        guard let slash = cidr.firstIndex(of: "/"), let address = IPAddress(String(cidr[..<slash])) else { return nil }
        let lengthText = cidr[cidr.index(after: slash)...]
        guard (1...3).contains(lengthText.count), lengthText.allSatisfy({ $0.isASCII && $0.isNumber }),
            let length = Int(lengthText)
        else { return nil }
        // An IPv4-mapped IPv6 block (`::ffff:10.0.0.0/104`) is an IPv4 block once the address is mapped.
        let isMappedV6 = cidr[..<slash].contains(":") && address.bytes.count == 4
        let effective = isMappedV6 ? length - 96 : length
        guard effective >= 0, effective <= address.bytes.count * 8 else { return nil }
        self.address = address
        prefixLength = effective
    }

    /// Whether `other` is in the block (an IPv4 address is never in an IPv6 block, nor the other way round).
    func contains(_ other: IPAddress) -> Bool {
        guard other.bytes.count == address.bytes.count else { return false }
        var remaining = prefixLength
        for (mine, theirs) in zip(address.bytes, other.bytes) where remaining > 0 {
            let bits = min(8, remaining)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
            if mine & mask != theirs & mask { return false }
            remaining -= bits
        }
        return true
    }
}
