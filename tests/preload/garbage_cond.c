// A condition variable whose first bytes hold garbage -- glibc's __wseq,
// parklock's record of its waiters' mutex -- with no waiter registered
// (__wrefs 0): glibc's signal and broadcast see no waiter and return 0.
// parklock must not follow the garbage as a mutex pointer.
#include "check.h"

int main(void)
{
    static const uint64_t patterns[] = {
        0xdead0000, 0x1, 0xffffffffffffffffull, 0x00007f0000001000ull,
    };
    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++) {
        pthread_cond_t c;
        memset(&c, 0, sizeof c);
        memcpy(&c, &patterns[i], sizeof patterns[i]);
        CHECK_EQ(pthread_cond_signal(&c), 0);
        memcpy(&c, &patterns[i], sizeof patterns[i]);
        CHECK_EQ(pthread_cond_broadcast(&c), 0);
    }
    return check_finish();
}
