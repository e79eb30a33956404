#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SecretsStoreCore

/// This process's read-only mappings of files (its executable's code and read-only data, the shared libraries'),
/// and a way to tell the kernel their pages are cold.
///
/// Kubelet reports a container's memory as its working set: the cgroup's usage minus its *inactive* file pages.
/// The pages of code the driver ran (start-up, a burst of publishes) sit on the *active* file list, charged to
/// the driver's cgroup, long after that code stopped running: on this machine about 10–15 MiB of an 83 MB
/// executable, two thirds of the node plugin's working set. ``markCold()`` calls `madvise(MADV_COLD)` on every
/// read-only file mapping: the kernel moves their pages to the inactive list. Nothing is unmapped or dropped (the
/// resident size does not change, the next call of that code costs nothing); the pages become what the kernel
/// reclaims first when memory runs short, which is what they are once the code is idle. Code that keeps running
/// is referenced again and the kernel activates it again as it would any page. Pages another process maps too
/// are left where they are (the kernel skips them).
///
/// Not to be confused with `MADV_DONTNEED` (what `--release-code-pages` did until #25): unmapping lowered the
/// resident size but marked each page whose mapping was young as accessed, so the trims *activated* the code
/// pages and raised the working set.
package enum CodePages {
    /// What one ``markCold()`` did.
    package struct Advice: Sendable, Equatable {
        /// Bytes of read-only file mappings advised (mapped, not necessarily resident).
        package var advisedBytes: Int
        /// The `errno` of the first call that failed (or of reading the mappings), or nil.
        package var failure: Int32?

        package init(advisedBytes: Int, failure: Int32?) {
            self.advisedBytes = advisedBytes
            self.failure = failure
        }
    }

    /// One mapping's address range.
    struct Range: Equatable {
        var start: UInt
        var end: UInt
    }

    /// Marks the pages of every read-only file mapping of this process cold; see the type's documentation.
    package static func markCold() -> Advice {
        let maps: String
        do { maps = try PosixFileSystem.readText(at: "/proc/self/maps") } catch {
            return Advice(advisedBytes: 0, failure: error.errno ?? EIO)
        }
        return markCold(readOnlyFileMappings(inMaps: maps))
    }

    /// ``markCold()`` for the read-only mappings of one file, as `/proc/self/maps` names it.
    package static func markCold(mappingsOf path: String) -> Advice {
        let maps: String
        do { maps = try PosixFileSystem.readText(at: "/proc/self/maps") } catch {
            return Advice(advisedBytes: 0, failure: error.errno ?? EIO)
        }
        return markCold(readOnlyFileMappings(inMaps: maps, of: path))
    }

    private static func markCold(_ ranges: [Range]) -> Advice {
        var advice = Advice(advisedBytes: 0, failure: nil)
        for range in ranges {
            let length = Int(range.end - range.start)
            if madvise(UnsafeMutableRawPointer(bitPattern: range.start), length, MADV_COLD) == 0 {
                advice.advisedBytes += length
            } else if advice.failure == nil {
                advice.failure = errno
            }
        }
        return advice
    }

    /// The read-only mappings of files (of `path` only, when given) in the text of a `/proc/<pid>/maps` file:
    /// lines `start-end perms offset dev inode path` whose permissions have no `w` and whose path is absolute
    /// (anonymous mappings, `[heap]`, `[stack]` and `[vdso]` are not files).
    static func readOnlyFileMappings(inMaps maps: String, of path: String? = nil) -> [Range] {
        maps.split(separator: "\n", omittingEmptySubsequences: true).compactMap { line in
            let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard fields.count == 6, fields[1].count == 4, !fields[1].contains("w") else { return nil }
            let name = fields[5].drop(while: { $0 == " " })
            guard name.hasPrefix("/"), path.map({ name == $0 }) ?? true else { return nil }
            let bounds = fields[0].split(separator: "-")
            guard bounds.count == 2, let start = UInt(bounds[0], radix: 16), let end = UInt(bounds[1], radix: 16), start < end
            else { return nil }
            return Range(start: start, end: end)
        }
    }
}
