#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The proxy variables of a process environment, as written: `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY`, each
/// in upper or lower case.
///
/// Which spelling wins follows Go's `golang.org/x/net/http/httpproxy` (what the upstream driver, the upstream
/// Azure provider and Microsoft's Go SDKs use through `net/http.ProxyFromEnvironment`): the upper-case variable
/// when it is set and not empty, else the lower-case one. A variable set to the empty string counts as unset.
///
/// Values may carry proxy credentials (`http://user:password@host:port`), so ``description`` never shows them,
/// and neither does any error made from them.
package struct ProxyEnvironment: Sendable, Equatable, CustomStringConvertible {
    /// A proxy variable's value and the name it was read from (for messages: `HTTPS_PROXY` or `https_proxy`).
    package struct Value: Sendable, Equatable {
        /// The variable the value came from.
        package var variable: String
        /// The value as written; may contain credentials, never logged.
        package var text: String

        /// `text` as read from `variable`.
        package init(variable: String, text: String) {
            self.variable = variable
            self.text = text
        }
    }

    /// `HTTPS_PROXY`, else `https_proxy`: the proxy for `https://` URLs.
    package var httpsProxy: Value?
    /// `HTTP_PROXY`, else `http_proxy`: the proxy for `http://` URLs (never used for `https://` ones).
    package var httpProxy: Value?
    /// `NO_PROXY`, else `no_proxy`: the comma-separated hosts reached directly.
    package var noProxy: String?

    /// No proxy at all: every request goes direct.
    package static let none = ProxyEnvironment([:])

    /// The variables of `environment` (a process environment as a dictionary), upper case first.
    package init(_ environment: [String: String]) {
        func first(_ names: String...) -> Value? {
            for name in names {
                if let text = environment[name], !text.isEmpty { return Value(variable: name, text: text) }
            }
            return nil
        }
        httpsProxy = first("HTTPS_PROXY", "https_proxy")
        httpProxy = first("HTTP_PROXY", "http_proxy")
        noProxy = first("NO_PROXY", "no_proxy")?.text
    }

    /// The six variables as this process sees them now (`getenv`).
    package static func process() -> ProxyEnvironment {
        var environment: [String: String] = [:]
        for name in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"] {
            if let value = getenv(name) { environment[name] = String(cString: value) }
        }
        return ProxyEnvironment(environment)
    }

    /// Which variables are set, the proxies without their credentials: for logs.
    package var description: String {
        var parts: [String] = []
        for value in [httpsProxy, httpProxy].compactMap({ $0 }) {
            parts.append("\(value.variable)=\((try? ProxyServer(parsing: value)).map { "\($0)" } ?? "<unparsable>")")
        }
        if let noProxy { parts.append("NO_PROXY=\(noProxy)") }
        return parts.isEmpty ? "no proxy" : parts.joined(separator: " ")
    }
}

/// A proxy server from `HTTPS_PROXY`/`HTTP_PROXY`: how to talk to it, where it is, and its credentials.
///
/// Its ``description`` is `scheme://host:port`, with `***@` in front of the host when credentials are set: the
/// user name and password never appear in a description, a log line or an error.
package struct ProxyServer: Sendable, Hashable, CustomStringConvertible {
    /// How the proxy is spoken to.
    package enum Kind: Sendable, Hashable {
        /// An HTTP proxy: a `CONNECT host:port` tunnel per connection (`http://`, or no scheme).
        case httpConnect
        /// A SOCKS5 proxy (`socks5://`, `socks5h://`), without authentication.
        case socks5
    }

    /// Basic credentials for the proxy (`Proxy-Authorization`), percent-decoded from the URL.
    package struct Credentials: Sendable, Hashable {
        /// The user name.
        package var username: String
        /// The password; empty when the URL has none.
        package var password: String

        /// Credentials for Basic proxy authorization.
        package init(username: String, password: String) {
            self.username = username
            self.password = password
        }
    }

    /// HTTP `CONNECT` or SOCKS5.
    package var kind: Kind
    /// The proxy's host name or IP address (without brackets).
    package var host: String
    /// The proxy's port (the scheme's default when the URL names none: 80 for http, 1080 for socks5).
    package var port: Int
    /// Credentials from the URL's user information, if any.
    package var credentials: Credentials?

    /// A proxy at `host:port`.
    package init(kind: Kind = .httpConnect, host: String, port: Int, credentials: Credentials? = nil) {
        self.kind = kind
        self.host = host
        self.port = port
        self.credentials = credentials
    }

    /// Parses a proxy variable as Go's `httpproxy` does: a whole URL (`http://`, `socks5://`, `socks5h://`) or a
    /// bare `[user:password@]host[:port]`, which means `http://`.
    ///
    /// - Throws: ``ProxyConfigurationError`` for an `https://` proxy (TLS to the proxy itself is not supported
    ///   by the HTTP client), another scheme, credentials on a SOCKS proxy, or a value that is not a URL; the error
    ///   names the variable, and the proxy only without its credentials.
    package init(parsing value: ProxyEnvironment.Value) throws(ProxyConfigurationError) {
        var rest = Substring(value.text.trimmingSpaces)
        var scheme = "http"
        if let separator = rest.firstRange(of: "://") {
            scheme = rest[..<separator.lowerBound].lowercased()
            rest = rest[separator.upperBound...]
        }
        // The authority ends at the first `/`, `?` or `#`; a path (`http://proxy:3128/`) is ignored, as Go does.
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        var credentials: Credentials?
        var hostPort = authority
        if let at = authority.lastIndex(of: "@") {
            let userInfo = authority[..<at]
            hostPort = authority[authority.index(after: at)...]
            let colon = userInfo.firstIndex(of: ":")
            guard let username = PercentDecoding.decode(userInfo[..<(colon ?? userInfo.endIndex)]),
                let password = PercentDecoding.decode(colon.map { userInfo[userInfo.index(after: $0)...] } ?? "")
            else { throw ProxyConfigurationError(variable: value.variable, problem: .notAURL) }
            credentials = Credentials(username: username, password: password)
        }
        let kind: Kind
        let defaultPort: Int
        switch scheme {
        case "http":
            (kind, defaultPort) = (.httpConnect, 80)
        case "socks5", "socks5h":
            (kind, defaultPort) = (.socks5, 1080)
        case "https":
            let shown = HostPort.parse(hostPort).map { "https://\($0.host):\($0.port ?? 443)" } ?? "https://"
            throw ProxyConfigurationError(variable: value.variable, problem: .unsupportedScheme(shown))
        default:
            throw ProxyConfigurationError(variable: value.variable, problem: .unsupportedScheme(scheme + "://"))
        }
        guard let parsed = HostPort.parse(hostPort), !parsed.host.isEmpty else {
            throw ProxyConfigurationError(variable: value.variable, problem: .notAURL)
        }
        if kind == .socks5, credentials != nil {
            throw ProxyConfigurationError(variable: value.variable, problem: .socksCredentials)
        }
        self.init(kind: kind, host: parsed.host, port: parsed.port ?? defaultPort, credentials: credentials)
    }

    /// `http://host:port` or `socks5://host:port`, with `***@` for credentials; never the credentials.
    package var description: String {
        let scheme = kind == .httpConnect ? "http" : "socks5"
        let shownHost = host.contains(":") ? "[\(host)]" : host
        return "\(scheme)://\(credentials == nil ? "" : "***@")\(shownHost):\(port)"
    }
}

/// A proxy variable that cannot be used. Its text names the variable and never shows credentials.
package struct ProxyConfigurationError: Error, Equatable, CustomStringConvertible {
    /// What is wrong with the value.
    package enum Problem: Sendable, Equatable {
        /// Not a URL nor `host[:port]` (the value is not repeated: it may hold a password).
        case notAURL
        /// A scheme other than `http://`, `socks5://` or `socks5h://`; the proxy as shown (without credentials).
        case unsupportedScheme(String)
        /// A SOCKS proxy with a user name or password (the HTTP client cannot authenticate to SOCKS proxies).
        case socksCredentials
    }

    /// `HTTPS_PROXY`, `https_proxy`, `HTTP_PROXY` or `http_proxy`.
    package var variable: String
    /// What is wrong.
    package var problem: Problem

    /// One sentence naming the variable and what to write instead.
    package var description: String {
        switch problem {
        case .notAURL:
            return "\(variable) is not a proxy URL: expected http://[user:password@]host[:port] or socks5://host[:port]"
        case .unsupportedScheme(let shown):
            return "\(variable) names the proxy \(shown): only http:// (HTTP CONNECT) and socks5:// proxies are supported"
        case .socksCredentials:
            return "\(variable) gives a user name or password for a SOCKS proxy: only SOCKS proxies without authentication are supported"
        }
    }
}

/// `host[:port]` with an optional bracketed IPv6 host, as in a URL's authority or a `NO_PROXY` entry.
struct HostPort: Equatable {
    /// The host without brackets.
    var host: String
    /// The port when one is written.
    var port: Int?

    /// Splits `text`; `nil` when the port is not a number in 0…65535 or the brackets do not close.
    static func parse(_ text: Substring) -> HostPort? {
        if text.first == "[" {
            guard let close = text.firstIndex(of: "]") else { return nil }
            let host = String(text[text.index(after: text.startIndex)..<close])
            let after = text[text.index(after: close)...]
            if after.isEmpty { return HostPort(host: host, port: nil) }
            guard after.first == ":", let port = portNumber(after.dropFirst()) else { return nil }
            return HostPort(host: host, port: port)
        }
        let colons = text.filter { $0 == ":" }.count
        // More than one colon and no brackets: a bare IPv6 address, no port.
        if colons != 1 { return HostPort(host: String(text), port: nil) }
        let colon = text.firstIndex(of: ":")!
        guard let port = portNumber(text[text.index(after: colon)...]) else { return nil }
        return HostPort(host: String(text[..<colon]), port: port)
    }

    /// A decimal port 0…65535.
    private static func portNumber(_ text: Substring) -> Int? {
        guard (1...5).contains(text.count), text.allSatisfy({ $0.isASCII && $0.isNumber }), let port = Int(text), port <= 65535
        else { return nil }
        return port
    }
}

/// Percent-decoding of URL user information (`p%40ss` → `p@ss`).
enum PercentDecoding {
    /// `text` with every `%XX` decoded; `nil` when an escape is malformed or the result is not UTF-8.
    static func decode(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
            bytes.append(high << 4 | low)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

extension String {
    /// Without leading and trailing ASCII spaces and tabs.
    var trimmingSpaces: Substring {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        let head = drop(while: isSpace)
        return head[..<(head.lastIndex(where: { !isSpace($0) }).map(head.index(after:)) ?? head.startIndex)]
    }
}
