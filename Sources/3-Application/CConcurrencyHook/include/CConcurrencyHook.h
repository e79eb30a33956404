#ifndef C_CONCURRENCY_HOOK_H
#define C_CONCURRENCY_HOOK_H

#include <stdbool.h>

/// Sets the Swift runtime's `swift_task_enqueueGlobal_hook` to `hook` if no hook is set yet (atomic
/// compare-and-exchange). Returns whether it was set. `hook` must be a thin Swift function of type
/// `(UnownedJob, (UnownedJob) -> Void) -> Void`, the hook's type in the runtime.
///
/// SwiftNIO's `NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()` finds
/// the hook with `dlsym`, which cannot see it in a binary that links the Swift runtime statically (the symbol is
/// hidden there). A reference resolved by the linker reaches it in both the static and the shared runtime.
bool csi_install_global_enqueue_hook(const void *hook);

#endif
