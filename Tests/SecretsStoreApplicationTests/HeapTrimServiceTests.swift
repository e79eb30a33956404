#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SecretsStoreCore
import SecretsStoreApplication
import Synchronization
import Testing

@Suite("Heap trimming after bursts", .timeLimit(.minutes(1)))
struct HeapTrimServiceTests {
    @Test("trims once after operations ended, never while one is in flight, never twice when idle")
    func trimsOnceQuietAfterActivity() async throws {
        let activity = OperationActivity()
        let trims = Mutex(0)
        let trimsSeen = Mutex<[Int]>([])
        let held = Mutex<Task<Void, Never>?>(nil)
        let tick = Mutex(0)
        let service = HeapTrimService(activity: activity, interval: .seconds(1), trim: { trims.withLock { $0 += 1 } }) { interval in
            #expect(interval == .seconds(1))
            trimsSeen.withLock { $0.append(trims.withLock { $0 }) }
            let step = tick.withLock { $0 += 1; return $0 }
            switch step {
            case 1: break  // idle from the start: nothing to trim
            case 2: await activity.track { () async -> Void in }  // one operation ended
            case 3: break  // idle again: no second trim
            case 4:
                let task = Task { await activity.track { () async -> Void in _ = try? await Task.sleep(for: .seconds(3600)) } }
                held.withLock { $0 = task }
                while activity.snapshot.inFlight == 0 { await Task.yield() }
            case 5:
                held.withLock { $0 }?.cancel()
                while activity.snapshot.inFlight != 0 { await Task.yield() }
            default: throw CancellationError()
            }
        }
        try await service.run()
        // What the trim count was when each wait began: after idle 0, after the first operation 1, idle 1,
        // while an operation was in flight still 1, after it ended 2.
        #expect(trimsSeen.withLock { $0 } == [0, 0, 1, 1, 1, 2])
        #expect(activity.snapshot.inFlight == 0)
        #expect(activity.snapshot.completed == 2)
    }

    /// Freed heap memory that malloc cannot give back on its own (a live block above it pins the top of the heap)
    /// leaves the process's resident set when the real trim runs, and the heap still works afterwards.
    @Test("the real trim returns freed heap pages to the system, and malloc still works", .timeLimit(.minutes(1)))
    func trimmingTheRealHeapReturnsFreedPages() throws {
        #if canImport(Glibc)
        let blockSize = 4096  // below the mmap threshold: these come from the heap
        let blocks = (0..<16_384).map { _ -> UnsafeMutableRawPointer? in
            let block = malloc(blockSize)
            if let block { memset(block, 0x5a, blockSize) }  // make the pages resident
            return block
        }
        try #require(blocks.allSatisfy { $0 != nil })
        // Keep the last block so the freed ones are not at the top of the heap (glibc trims the top by itself).
        for block in blocks.dropLast() { free(block) }
        defer { free(blocks.last!) }
        let before = Self.residentBytes()
        HeapTrimService.returnFreedHeapMemory()
        let after = Self.residentBytes()
        // 64 MiB were freed; other suites allocate in parallel, so ask for half of it back.
        #expect(before - after > 32 << 20, "resident before \(before >> 20) MiB, after \(after >> 20) MiB")
        let again = try #require(malloc(blockSize))
        memset(again, 0x33, blockSize)
        free(again)
        #endif
    }

    /// The resident set of this process, from /proc/self/statm.
    static func residentBytes() -> Int {
        let statm = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8)) ?? ""
        let pages = statm.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
