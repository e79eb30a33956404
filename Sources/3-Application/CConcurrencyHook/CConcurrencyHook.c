#include "CConcurrencyHook.h"

#include <stddef.h>

// Declared by the Swift concurrency runtime (libswift_Concurrency): a pointer to a function that, when set, is
// called for every job enqueued on the global executor, instead of the default (Dispatch) executor.
extern const void *swift_task_enqueueGlobal_hook;

bool csi_install_global_enqueue_hook(const void *hook) {
    const void *expected = NULL;
    return __atomic_compare_exchange_n(&swift_task_enqueueGlobal_hook, &expected, hook, false, __ATOMIC_SEQ_CST,
                                       __ATOMIC_SEQ_CST);
}
