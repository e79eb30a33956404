#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// PEM text exactly as Go's `encoding/pem` writes it, which is what the upstream provider's files contain:
/// `-----BEGIN T-----\n`, base64 in 64-column lines, `-----END T-----\n`, no headers.
package enum PEM {
    /// `der` as one PEM block of `type` (e.g. `CERTIFICATE`, `PRIVATE KEY`), in the layout above.
    package static func encode(type: String, der: some Collection<UInt8>) -> String {
        let base64 = Data(der).base64EncodedString()
        var text = "-----BEGIN \(type)-----\n"
        var index = base64.startIndex
        while index < base64.endIndex {
            let end = base64.index(index, offsetBy: 64, limitedBy: base64.endIndex) ?? base64.endIndex
            text += base64[index..<end] + "\n"
            index = end
        }
        return text + "-----END \(type)-----\n"
    }

    /// The blocks of a PEM text, in order: their type and DER bytes.
    package static func decode(_ text: String) -> [(type: String, der: [UInt8])] {
        var blocks: [(String, [UInt8])] = []
        var type: String?
        var body = ""
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            let line = String(rawLine).trimmingWhitespace()
            if line.hasPrefix("-----BEGIN "), line.hasSuffix("-----") {
                type = String(line.dropFirst(11).dropLast(5))
                body = ""
            } else if line.hasPrefix("-----END "), let current = type {
                if let der = Data(base64Encoded: body) { blocks.append((current, Array(der))) }
                type = nil
            } else if type != nil, !line.contains(":") {
                body += line
            }
        }
        return blocks
    }
}
