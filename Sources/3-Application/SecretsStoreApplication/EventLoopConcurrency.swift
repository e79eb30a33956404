import CConcurrencyHook
import NIOCore
import NIOPosix
import Synchronization

/// Runs Swift concurrency's global executor on SwiftNIO's event loops (`MultiThreadedEventLoopGroup.singleton`,
/// which the gRPC server and the HTTP clients already use), so that an `async` handler resumed by a socket read
/// goes on on the same thread instead of waking a Dispatch worker, and back.
///
/// This is SwiftNIO's `NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()`,
/// with one difference: that function looks the runtime's hook up with `dlsym`, which finds nothing in our
/// image (the Swift runtime is linked statically and its symbols are hidden), so the hook is set through
/// `CConcurrencyHook`, whose reference the linker resolves. What an event loop needs is work that does not block:
/// the calls that can (mount(2), umount2(2), `stat` of a mount point that may hang, the mountinfo read, name
/// resolution) run on `NIOThreadPool` (`LinuxMounter`, the listener's resolver); the atomic writer's file writes
/// to the volume's tmpfs (memory, no disk) still run on the loops, as short as a socket write.
/// As with NIO's, only the immediate enqueue is taken over: a job resumed after `Task.sleep` goes through the
/// runtime's delayed enqueue and still runs on a Dispatch worker, until its next hop.
public enum EventLoopConcurrency {
    /// `nil` until ``install()`` ran, then whether it set the hook.
    private static let outcome = Mutex<Bool?>(nil)

    /// Installs the hook once per process; later calls, or a hook already set by someone else, leave it as it
    /// is. Returns whether Swift concurrency now runs on the event loops. Call it first thing in `main`.
    @discardableResult
    public static func install() -> Bool {
        outcome.withLock { outcome in
            if let outcome { return outcome }
            typealias EnqueueGlobalHook = @convention(thin) (UnownedJob, @convention(thin) (UnownedJob) -> Void) -> Void
            let installed = withUnsafeTemporaryAllocation(of: EnqueueGlobalHook.self, capacity: 1) { slot -> Bool in
                // The runtime calls the hook with the job and its own enqueue; `any()` is the calling thread's
                // event loop when it is one of the group's, so a job made on an event loop stays there.
                slot.baseAddress!.initialize(to: { job, _ in
                    MultiThreadedEventLoopGroup.singleton.any().executor.enqueue(job)
                })
                return slot.baseAddress!.withMemoryRebound(to: UnsafeRawPointer.self, capacity: 1) {
                    csi_install_global_enqueue_hook($0.pointee)
                }
            }
            outcome = installed
            return installed
        }
    }

    /// Whether ``install()`` set the hook in this process.
    public static var isInstalled: Bool { outcome.withLock { $0 ?? false } }
}
