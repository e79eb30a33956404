/// Parses `--endpoint`. Only `unix://` is served: `unix:///csi/csi.sock` and the upstream default's form
/// `unix://tmp/csi.sock` both name an absolute socket path (upstream prefixes "/" to what follows `://`).
package enum Endpoint {
    /// `--endpoint` names no socket this driver can serve; the description says why, naming the flag.
    package struct ParseError: Error, CustomStringConvertible, Equatable {
        /// The message printed before exiting.
        package var description: String
    }

    /// The socket path `endpoint` names.
    package static func socketPath(from endpoint: String) throws(ParseError) -> String {
        guard endpoint.hasPrefix("unix://") else {
            throw ParseError(description: "--endpoint \(endpoint): only unix:// endpoints are supported")
        }
        let rest = endpoint.dropFirst("unix://".count).drop(while: { $0 == "/" })
        guard !rest.isEmpty else { throw ParseError(description: "--endpoint \(endpoint): no socket path") }
        let path = "/" + rest
        // sockaddr_un holds 108 bytes including the terminating NUL.
        guard path.utf8.count <= 107 else {
            throw ParseError(description: "--endpoint \(endpoint): socket path longer than 107 bytes")
        }
        return path
    }
}
