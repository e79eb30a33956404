import SecretsStoreCore
import SecretsStoreCoreTesting
import Testing

@testable import SecretsStoreLinux

#if canImport(Glibc)
import Glibc
#endif

@Suite("Marking the pages of read-only file mappings cold")
struct CodePagesTests {
    @Test("maps: read-only mappings of files, of one file when asked; writable, anonymous and special mappings skipped")
    func parsesMaps() {
        let maps = """
            55d0c0a00000-55d0c0e00000 r--p 00000000 fd:01 1234                       /usr/bin/secrets store driver
            55d0c0e00000-55d0c1a00000 r-xp 00400000 fd:01 1234                       /usr/bin/secrets store driver
            55d0c1b00000-55d0c1c00000 rw-p 01100000 fd:01 1234                       /usr/bin/secrets store driver
            55d0c1c00000-55d0c1d00000 rw-p 00000000 00:00 0                          [heap]
            7f0000000000-7f0000021000 r--p 00000000 00:00 0
            7f1000000000-7f1000200000 r-xp 00000000 fd:01 99                         /usr/lib/x86_64-linux-gnu/libc.so.6
            7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0                          [vdso]
            garbage line here x y /usr/bin/other
            """
        #expect(
            CodePages.readOnlyFileMappings(inMaps: maps) == [
                .init(start: 0x55d0_c0a0_0000, end: 0x55d0_c0e0_0000),
                .init(start: 0x55d0_c0e0_0000, end: 0x55d0_c1a0_0000),
                .init(start: 0x7f10_0000_0000, end: 0x7f10_0020_0000),
            ]
        )
        #expect(
            CodePages.readOnlyFileMappings(inMaps: maps, of: "/usr/lib/x86_64-linux-gnu/libc.so.6") == [
                .init(start: 0x7f10_0000_0000, end: 0x7f10_0020_0000)
            ]
        )
        #expect(CodePages.readOnlyFileMappings(inMaps: maps, of: "/usr/bin/secrets").isEmpty)
    }

    @Test("the test process's own code is advised, without a failure")
    func advisesTheRunningExecutable() {
        let advice = CodePages.markCold()
        #expect(advice.failure == nil)
        #expect(advice.advisedBytes > 1024 * 1024)
    }

    /// How many of the pages of `mapped` (`pages` pages) are on the active LRU list, from `/proc/self/pagemap`
    /// and `/proc/kpageflags` (root only: without CAP_SYS_ADMIN the page frame numbers read as zero).
    static func activePages(_ mapped: UnsafeMutableRawPointer, pages: Int, pageSize: Int) throws -> Int {
        let pagemap = open("/proc/self/pagemap", O_RDONLY)
        let flags = open("/proc/kpageflags", O_RDONLY)
        defer {
            close(pagemap)
            close(flags)
        }
        try #require(pagemap >= 0 && flags >= 0)
        var active = 0
        for index in 0..<pages {
            var entry: UInt64 = 0
            let address = UInt(bitPattern: mapped) + UInt(index * pageSize)
            try #require(pread(pagemap, &entry, 8, off_t(address / UInt(pageSize) * 8)) == 8)
            let frame = entry & ((1 << 55) - 1)
            try #require(entry >> 63 == 1 && frame != 0, "page \(index) is resident and its frame readable")
            var pageFlags: UInt64 = 0
            try #require(pread(flags, &pageFlags, 8, off_t(frame * 8)) == 8)
            if pageFlags & (1 << 6) != 0 { active += 1 }  // KPF_ACTIVE
        }
        return active
    }

    @Test(
        "active pages of a mapped file move to the inactive list, stay mapped and read the same bytes",
        .enabled(if: geteuid() == 0, "reading page flags needs root")
    )
    func marksAMappedFileCold() async throws {
        try await withTemporaryDirectory { (directory: String) async throws in
            let path = directory + "/pages"
            let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
            let pages = 128
            let contents = (0..<(pages * pageSize)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 / pageSize) }
            try PosixFileSystem().createFile(at: path, contents: contents, permissions: 0o600)
            let descriptor = open(path, O_RDONLY)
            try #require(descriptor >= 0)
            defer { close(descriptor) }
            let mapped = try #require(mmap(nil, contents.count, PROT_READ, MAP_PRIVATE, descriptor, 0))
            try #require(Int(bitPattern: mapped) != -1)  // MAP_FAILED
            defer { munmap(mapped, contents.count) }
            let bytes = UnsafeRawBufferPointer(start: mapped, count: contents.count)
            func touchEveryPage() -> [UInt8] { stride(from: 0, to: contents.count, by: pageSize).map { bytes[$0] } }

            // Make the pages active the way the kernel does for pages in use: unmapping a page whose mapping
            // was referenced marks it accessed, and a page accessed twice is activated.
            for _ in 0..<3 {
                _ = touchEveryPage()
                try #require(madvise(mapped, contents.count, MADV_DONTNEED) == 0)
            }
            _ = touchEveryPage()
            try await eventually("most pages of the mapping are active before") {
                try Self.activePages(mapped, pages: pages, pageSize: pageSize) >= pages * 3 / 4
            }

            let advice = CodePages.markCold(mappingsOf: path)
            #expect(advice == .init(advisedBytes: contents.count, failure: nil))
            // Deactivation goes through per-CPU batches; a batch still pending holds at most 15 pages.
            try await eventually("at most a quarter of the pages are still active") {
                try Self.activePages(mapped, pages: pages, pageSize: pageSize) <= pages / 4
            }
            #expect(Array(bytes) == contents)
        }
    }

    @Test("a file nothing maps: nothing advised, nothing fails")
    func advisesNothingForAnUnmappedFile() {
        #expect(CodePages.markCold(mappingsOf: "/nonexistent/file") == .init(advisedBytes: 0, failure: nil))
    }
}
