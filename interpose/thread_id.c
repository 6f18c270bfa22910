#include "thread_id.h"

#include <stdint.h>

int plk_tid_offset;
__thread pid_t plk_cached_tid __attribute__((tls_model("initial-exec")));

// glibc's struct pthread starts with its 0x2c0-byte TCB header; the tid
// follows shortly after (0x2d0 in 2.36). Scan a window that is certainly
// inside the descriptor.
#define SCAN_FROM 0x100
#define SCAN_TO 0x600

static char *thread_pointer(void)
{
    char *tp;
    __asm__("movq %%fs:0, %0" : "=r"(tp));
    return tp;
}

void plk_tid_init(void)
{
    if (__atomic_load_n(&plk_tid_offset, __ATOMIC_RELAXED) != 0)
        return;
    pid_t tid = gettid();
    const char *tp = thread_pointer();
    int found = 0;
    for (int off = SCAN_FROM; off < SCAN_TO; off += sizeof(pid_t)) {
        if (*(const pid_t *)(tp + off) != tid)
            continue;
        if (found)
            return; // ambiguous: keep the TLS cache
        found = off;
    }
    __atomic_store_n(&plk_tid_offset, found, __ATOMIC_RELAXED);
}

pid_t plk_tid_slow(void)
{
    pid_t tid = gettid();
    plk_cached_tid = tid;
    pid_t d = descriptor_tid();
    if (d != tid) // the scan matched something else: never trust it again
        __atomic_store_n(&plk_tid_offset, 0, __ATOMIC_RELAXED);
    return tid;
}
