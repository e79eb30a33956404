#if canImport(Glibc)
import Glibc
#endif
import Logging
import SecretsStoreCore
import SecretsStoreLinux
import ServiceLifecycle

/// Hands memory that start-up or a burst of operations left behind back to the system once things are quiet.
///
/// glibc's malloc keeps freed memory in its arenas for reuse; after 100 concurrent publishes that is several
/// MiB of resident memory that the node plugin no longer needs. Every `interval`, when the publisher has no
/// operation in flight and some ended since the last trim (recovery at start counts as one), this runs the
/// trim: in the driver ``returnFreedMemory(logger:)``, `malloc_trim(0)`, which returns the
/// free pages of every arena (a walk of the free lists: well under a millisecond for a heap this size), then marks
/// the pages of the code that ran cold (``CodePages``). An idle driver never trims twice. Elsewhere than on glibc the heap trim does nothing.
package struct HeapTrimService: Service {
    private let activity: OperationActivity
    private let interval: Duration
    private let trim: @Sendable () -> Void
    private let sleep: @Sendable (Duration) async throws -> Void

    /// - Parameters:
    ///   - interval: how often to look; a trim comes at most this long after the last operation ended.
    ///   - trim: what returns the memory (production: ``returnFreedHeapMemory()``).
    package init(
        activity: OperationActivity,
        interval: Duration = .seconds(1),
        trim: @escaping @Sendable () -> Void = HeapTrimService.returnFreedHeapMemory,
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }
    ) {
        self.activity = activity
        self.interval = interval
        self.trim = trim
        self.sleep = sleep
    }

    /// Looks every interval until graceful shutdown or cancellation, then returns normally.
    package func run() async throws {
        await cancelWhenGracefulShutdown {
            var trimmedAt: UInt64 = 0
            while !Task.isCancelled {
                do { try await sleep(interval) } catch { return }
                let now = activity.snapshot
                if now.inFlight == 0, now.completed != trimmedAt {
                    trim()
                    trimmedAt = now.completed
                }
            }
        }
    }

    /// The driver's trim: ``returnFreedHeapMemory()``, then the pages of the code that ran marked cold
    /// (``CodePages/markCold()``, so they leave the working set kubelet reports), with a debug line of what it did.
    package static func returnFreedMemory(logger: Logger) -> @Sendable () -> Void {
        {
            returnFreedHeapMemory()
            let cold = CodePages.markCold()
            var metadata: Logger.Metadata = ["code.cold.kib": "\(cold.advisedBytes / 1024)"]
            if let failure = cold.failure { metadata["errno"] = "\(failure)" }
            logger.debug("returned freed memory", metadata: metadata)
        }
    }

    /// `malloc_trim(0)` on glibc; nothing elsewhere (or if the C library has no `malloc_trim`).
    ///
    /// `malloc_trim` is declared in `<malloc.h>`, which the Glibc module does not export, so it is looked up in
    /// the process's C library (dynamically linked even with the static Swift runtime) and called through a
    /// C function pointer of its exact signature, `int malloc_trim(size_t pad)`.
    package static func returnFreedHeapMemory() {
        #if canImport(Glibc)
        typealias MallocTrim = @convention(c) (Int) -> Int32
        guard let process = dlopen(nil, RTLD_NOW) else { return }
        defer { dlclose(process) }
        guard let symbol = dlsym(process, "malloc_trim") else { return }
        _ = unsafeBitCast(symbol, to: MallocTrim.self)(0)
        #endif
    }
}
