#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SecretsStoreCore

/// The pages of this process's own executable that are mapped into it, and a way to unmap the ones that are
/// plain copies of the file.
///
/// Code that ran once stays mapped for as long as the process lives: start-up's flag parsing, configuration,
/// TLS set-up and CRD check, or the paths a burst of publishes took. In an idle driver those pages are most of
/// its resident memory. ``releaseResidentPages()`` unmaps them (`madvise(MADV_DONTNEED)`) from every read-only
/// mapping of the executable that holds no page of its own: such a page is the file's, so nothing is lost. The
/// pages stay in the page cache, where the kernel reclaims them like any file page nobody maps; code that runs
/// again is mapped back on its first access by a minor fault, without reading the disk. A mapping with anonymous
/// pages (the relocated read-only data of RELRO, or code a debugger patched) is left as it is: unmapping would
/// bring back the file's unrelocated bytes.
package enum ExecutablePages {
    /// What one release did.
    package struct Release: Sendable, Equatable {
        /// Bytes of read-only, file-only mappings that were unmapped.
        package var releasedBytes: Int
        /// Resident bytes of the file's mappings before and after, from `/proc/self/smaps`.
        package var residentBytesBefore: Int
        package var residentBytesAfter: Int
        /// The `errno` of the first call that failed, or nil.
        package var failure: Int32?

        package init(releasedBytes: Int, residentBytesBefore: Int, residentBytesAfter: Int, failure: Int32?) {
            self.releasedBytes = releasedBytes
            self.residentBytesBefore = residentBytesBefore
            self.residentBytesAfter = residentBytesAfter
            self.failure = failure
        }
    }

    /// One mapping of a file, from `/proc/self/smaps`.
    struct Mapping: Equatable {
        var start: UInt
        var end: UInt
        var writable: Bool
        /// `Rss:` and `Anonymous:` in bytes.
        var residentBytes = 0
        var anonymousBytes = 0
    }

    /// Unmaps the resident pages of the executable's read-only mappings that hold no anonymous page; see the
    /// type's documentation. When the executable or its mappings cannot be read, nothing is released and
    /// `failure` is the `errno`.
    package static func releaseResidentPages() -> Release {
        guard let executable = executablePath() else {
            return Release(releasedBytes: 0, residentBytesBefore: 0, residentBytesAfter: 0, failure: errno)
        }
        return releaseResidentPages(ofMappingsOf: executable)
    }

    /// ``releaseResidentPages()`` for the mappings of any file, as `/proc/self/smaps` names it.
    package static func releaseResidentPages(ofMappingsOf path: String) -> Release {
        let before: [Mapping]
        do { before = try mappings(of: path) } catch {
            return Release(releasedBytes: 0, residentBytesBefore: 0, residentBytesAfter: 0, failure: error.errno ?? EIO)
        }
        var released = 0
        var failure: Int32?
        for mapping in before where !mapping.writable && mapping.anonymousBytes == 0 && mapping.residentBytes > 0 {
            let length = Int(mapping.end - mapping.start)
            if madvise(UnsafeMutableRawPointer(bitPattern: mapping.start), length, MADV_DONTNEED) == 0 {
                released += length
            } else if failure == nil {
                failure = errno
            }
        }
        let after = (try? mappings(of: path)) ?? []
        return Release(
            releasedBytes: released,
            residentBytesBefore: before.reduce(0) { $0 + $1.residentBytes },
            residentBytesAfter: after.reduce(0) { $0 + $1.residentBytes },
            failure: failure
        )
    }

    /// The path of the running executable, as `/proc/self/smaps` names it.
    package static func executablePath() -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The mappings of `path` in this process, with their resident and anonymous bytes.
    static func mappings(of path: String) throws(FileSystemError) -> [Mapping] {
        mappings(of: path, inSmaps: try PosixFileSystem.readText(at: "/proc/self/smaps"))
    }

    /// The mappings of `path` in the text of a `/proc/<pid>/smaps` (or `maps`) file.
    static func mappings(of path: String, inSmaps smaps: String) -> [Mapping] {
        var found: [Mapping] = []
        var inside = false
        for line in smaps.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.first?.isLowercaseHexDigit == true {
                // A mapping's first line: `start-end perms offset dev inode   path`.
                let mapping = mapping(line, isOf: path)
                inside = mapping != nil
                if let mapping { found.append(mapping) }
            } else if inside, let bytes = kibField(line, named: "Rss:") {
                found[found.count - 1].residentBytes = bytes
            } else if inside, let bytes = kibField(line, named: "Anonymous:") {
                found[found.count - 1].anonymousBytes = bytes
            }
        }
        return found
    }

    /// Parses a mapping's first line; nil unless it maps `path`.
    static func mapping(_ line: Substring, isOf path: String) -> Mapping? {
        let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
        guard fields.count == 6, fields[5].drop(while: { $0 == " " }) == path else { return nil }
        let range = fields[0].split(separator: "-")
        guard range.count == 2, let start = UInt(range[0], radix: 16), let end = UInt(range[1], radix: 16),
            start < end, fields[1].count >= 2
        else { return nil }
        return Mapping(start: start, end: end, writable: fields[1].dropFirst().first == "w")
    }

    /// `Name:   123 kB` in bytes, or nil for another line.
    private static func kibField(_ line: Substring, named name: String) -> Int? {
        guard line.hasPrefix(name) else { return nil }
        return Int(line.dropFirst(name.count).filter { $0.isNumber }).map { $0 * 1024 }
    }
}

extension Character {
    fileprivate var isLowercaseHexDigit: Bool { isHexDigit && !isUppercase }
}
