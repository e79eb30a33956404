import SecretsStoreCore
import SecretsStoreDriver
import Synchronization
import Testing

@Suite("Heap trimming after bursts")
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

    @Test func trimmingTheRealHeapIsHarmless() {
        HeapTrimService.returnFreedHeapMemory()
    }
}
