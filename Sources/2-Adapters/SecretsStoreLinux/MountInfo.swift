/// Parses `/proc/self/mountinfo` (proc(5)): one mount per line, field 5 the mount point with spaces, tabs,
/// newlines and backslashes written as octal escapes (`\040`), field 9 (after the `-` separator) the type.
package enum MountInfo {
    /// One line of mountinfo.
    package struct Entry: Sendable, Equatable {
        /// Field 5, the mount point, with the octal escapes decoded.
        package var mountPoint: String
        /// The field after the `-` separator, e.g. `tmpfs`.
        package var fileSystemType: String
    }

    /// One entry per well-formed line, in order; a line with fewer than 7 fields or no `-` separator is skipped.
    package static func parse(_ text: String) -> [Entry] {
        text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 7, let separator = fields.firstIndex(of: "-"), separator + 1 < fields.count else {
                return nil
            }
            return Entry(mountPoint: unescape(fields[4]), fileSystemType: String(fields[separator + 1]))
        }
    }

    /// Whether `mountPoint` is listed in `text`. Compares raw bytes against the escaped path line by line without
    /// building entries: it runs on every publish and unpublish, over a table that grows with the node's pods.
    package static func lists(mountPoint: String, in text: String) -> Bool {
        let wanted = escape(mountPoint)
        let space = UInt8(ascii: " ")
        for line in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            var field = 0
            var start = line.startIndex
            var index = line.startIndex
            while index < line.endIndex {
                if line[index] == space {
                    if field == 4 {
                        if line[start..<index].elementsEqual(wanted) { return true }
                        break
                    }
                    field += 1
                    start = line.index(after: index)
                }
                index = line.index(after: index)
            }
        }
        return false
    }

    /// The kernel's escaping of a path in mountinfo: space, tab, newline and backslash as `\ooo`.
    package static func escape(_ path: String) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(path.utf8.count)
        for byte in path.utf8 {
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\\"):
                bytes.append(UInt8(ascii: "\\"))
                bytes.append(UInt8(ascii: "0") + (byte >> 6) & 7)
                bytes.append(UInt8(ascii: "0") + (byte >> 3) & 7)
                bytes.append(UInt8(ascii: "0") + byte & 7)
            default:
                bytes.append(byte)
            }
        }
        return bytes
    }

    /// Decodes the kernel's `\ooo` octal escapes.
    package static func unescape(_ field: Substring) -> String {
        var bytes: [UInt8] = []
        let source = Array(field.utf8)
        var index = 0
        while index < source.count {
            if source[index] == UInt8(ascii: "\\"), index + 3 < source.count,
                let value = octal(source[(index + 1)...(index + 3)])
            {
                bytes.append(value)
                index += 4
            } else {
                bytes.append(source[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func octal(_ digits: ArraySlice<UInt8>) -> UInt8? {
        guard digits.count == 3 else { return nil }
        var value = 0
        for digit in digits {
            guard digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "7") else { return nil }
            value = value * 8 + Int(digit - UInt8(ascii: "0"))
        }
        return value <= 255 ? UInt8(value) : nil
    }
}
