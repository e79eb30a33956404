import SecretsStoreCore
import SecretsStoreCoreTesting
import Testing

@testable import SecretsStoreLinux

#if canImport(Glibc)
import Glibc
#endif

@Suite("Handing a mapped file's pages back to the kernel")
struct ExecutablePagesTests {
    @Test("smaps: the file's mappings with their resident and anonymous bytes; other files and anonymous mappings skipped")
    func parsesSmaps() {
        let smaps = """
            55d0c0a00000-55d0c0e00000 r--p 00000000 fd:01 1234                       /usr/bin/secrets store driver
            Size:               4096 kB
            Rss:                1024 kB
            Anonymous:             0 kB
            VmFlags: rd mr mw me
            55d0c0e00000-55d0c1a00000 r-xp 00400000 fd:01 1234                       /usr/bin/secrets store driver
            Rss:                2048 kB
            Anonymous:             0 kB
            55d0c1a00000-55d0c1b00000 r--p 01000000 fd:01 1234                       /usr/bin/secrets store driver
            Rss:                 512 kB
            Anonymous:           508 kB
            55d0c1b00000-55d0c1c00000 rw-p 01100000 fd:01 1234                       /usr/bin/secrets store driver
            Rss:                  64 kB
            Anonymous:            64 kB
            55d0c1c00000-55d0c1d00000 rw-p 00000000 00:00 0                          [heap]
            Rss:                 900 kB
            Anonymous:           900 kB
            7f0000000000-7f0000021000 rw-p 00000000 00:00 0
            Rss:                  12 kB
            7f1000000000-7f1000200000 r-xp 00000000 fd:01 99                         /usr/lib/x86_64-linux-gnu/libc.so.6
            Rss:                1400 kB
            """
        let found = ExecutablePages.mappings(of: "/usr/bin/secrets store driver", inSmaps: smaps)
        #expect(
            found == [
                .init(start: 0x55d0_c0a0_0000, end: 0x55d0_c0e0_0000, writable: false, residentBytes: 1024 * 1024, anonymousBytes: 0),
                .init(start: 0x55d0_c0e0_0000, end: 0x55d0_c1a0_0000, writable: false, residentBytes: 2048 * 1024, anonymousBytes: 0),
                .init(start: 0x55d0_c1a0_0000, end: 0x55d0_c1b0_0000, writable: false, residentBytes: 512 * 1024, anonymousBytes: 508 * 1024),
                .init(start: 0x55d0_c1b0_0000, end: 0x55d0_c1c0_0000, writable: true, residentBytes: 64 * 1024, anonymousBytes: 64 * 1024),
            ]
        )
        #expect(ExecutablePages.mappings(of: "/usr/bin/secrets", inSmaps: smaps).isEmpty)
        #expect(ExecutablePages.mapping("garbage line here x y /usr/bin/secrets store driver", isOf: "/usr/bin/secrets store driver") == nil)
    }

    @Test("the executable is found and its mappings are resident")
    func findsTheExecutable() throws {
        let executable = try #require(ExecutablePages.executablePath())
        #expect(executable.hasPrefix("/"))
        #expect(try ExecutablePages.mappings(of: executable).reduce(0) { $0 + $1.residentBytes } > 0)
    }

    /// Writes a file of `pages` pages with a pattern in it, maps it privately with `protection`, and runs `body`
    /// with its path, the mapping, the file's bytes and the page size; unmaps it afterwards.
    static func withMappedPatternFile(
        pages: Int,
        protection: Int32,
        _ body: (String, UnsafeMutableRawPointer, [UInt8], Int) throws -> Void
    ) async throws {
        try await withTemporaryDirectory { (directory: String) async throws in
            let path = directory + "/pages"
            let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
            let contents = (0..<(pages * pageSize)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 / pageSize) }
            try PosixFileSystem().createFile(at: path, contents: contents, permissions: 0o600)
            let descriptor = open(path, O_RDONLY)
            try #require(descriptor >= 0)
            defer { close(descriptor) }
            let mapped = try #require(mmap(nil, contents.count, protection, MAP_PRIVATE, descriptor, 0))
            try #require(Int(bitPattern: mapped) != -1)  // MAP_FAILED
            defer { munmap(mapped, contents.count) }
            try body(path, mapped, contents, pageSize)
        }
    }

    @Test("a read-only mapping's resident pages are unmapped, and reading them again gives the same bytes")
    func releasesAMappedFile() async throws {
        try await Self.withMappedPatternFile(pages: 64, protection: PROT_READ) { path, mapped, contents, pageSize in
            let bytes = UnsafeRawBufferPointer(start: mapped, count: contents.count)
            // Touch every page (so all are resident) and check the mapping reads the file's bytes.
            let firstBytes = stride(from: 0, to: contents.count, by: pageSize).map { bytes[$0] }
            #expect(firstBytes == stride(from: 0, to: contents.count, by: pageSize).map { contents[$0] })

            let release = ExecutablePages.releaseResidentPages(ofMappingsOf: path)
            #expect(release == .init(releasedBytes: contents.count, residentBytesBefore: contents.count, residentBytesAfter: 0, failure: nil))
            #expect(Array(bytes) == contents)
            let mappedBack = try ExecutablePages.mappings(of: path)
            #expect(mappedBack.map(\.residentBytes) == [contents.count])
        }
    }

    @Test("a mapping with anonymous pages (relocated, then made read-only, as RELRO is) keeps them")
    func keepsAnonymousPages() async throws {
        try await Self.withMappedPatternFile(pages: 4, protection: PROT_READ | PROT_WRITE) { path, mapped, contents, pageSize in
            mapped.storeBytes(of: 0xAB, toByteOffset: pageSize, as: UInt8.self)  // a "relocation": a private copy
            try #require(mprotect(mapped, contents.count, PROT_READ) == 0)

            let release = ExecutablePages.releaseResidentPages(ofMappingsOf: path)
            #expect(release.releasedBytes == 0)
            #expect(release.residentBytesAfter == release.residentBytesBefore)
            #expect(mapped.load(fromByteOffset: pageSize, as: UInt8.self) == 0xAB)
        }
    }

    @Test("a file nothing maps: nothing released, nothing fails")
    func releasesNothingForAnUnmappedFile() {
        let release = ExecutablePages.releaseResidentPages(ofMappingsOf: "/nonexistent/file")
        #expect(release == .init(releasedBytes: 0, residentBytesBefore: 0, residentBytesAfter: 0, failure: nil))
    }
}
