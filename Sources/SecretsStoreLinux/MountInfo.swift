/// Parses `/proc/self/mountinfo` (proc(5)): one mount per line, field 5 the mount point with spaces, tabs,
/// newlines and backslashes written as octal escapes (`\040`), field 9 (after the `-` separator) the type.
package enum MountInfo {
    /// One line of mountinfo.
    package struct Entry: Sendable, Equatable {
        package var mountPoint: String
        package var fileSystemType: String
    }

    package static func parse(_ text: String) -> [Entry] {
        text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 7, let separator = fields.firstIndex(of: "-"), separator + 1 < fields.count else {
                return nil
            }
            return Entry(mountPoint: unescape(fields[4]), fileSystemType: String(fields[separator + 1]))
        }
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
