#include "futex.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

int plk_futex_wait(_Atomic uint32_t *word, uint32_t expected,
                   const struct plk_deadline *deadline)
{
    int op = FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG;
    const struct timespec *ts = NULL;
    if (deadline) {
        // The kernel rejects negative absolute times with EINVAL; such a
        // deadline has simply passed.
        if (deadline->when.tv_sec < 0)
            return ETIMEDOUT;
        if (deadline->clock == CLOCK_REALTIME)
            op |= FUTEX_CLOCK_REALTIME;
        ts = &deadline->when;
    }
    // glibc's lock calls never change errno; neither may ours.
    int saved_errno = errno;
    long r = syscall(SYS_futex, (uint32_t *)word, op, expected, ts, NULL,
                     FUTEX_BITSET_MATCH_ANY);
    int e = r == 0 ? 0 : errno;
    errno = saved_errno;
    if (e == 0)
        return 0;
    if (e == EAGAIN || e == EINTR || e == ETIMEDOUT)
        return e;
    // EINVAL for an out-of-range time the interposer should have refused;
    // treat it as an expired deadline rather than spinning.
    return ETIMEDOUT;
}

void plk_futex_wake(_Atomic uint32_t *word, int count)
{
    int saved_errno = errno;
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, count,
            NULL, NULL, 0);
    errno = saved_errno;
}
