// pthread_cond_* on the parking lot.
//
// Private condition variables run on the parking lot with any mutex: a
// parking-lot mutex (waiters are requeued onto it), or a mutex glibc runs
// (robust, process-shared, PI, PP: waiters are only woken). Process-shared
// condition variables are glibc's; a wait on one with a parking-lot mutex
// goes through a private glibc "proxy" mutex, since glibc's wait would
// otherwise operate on our lock word (see docs/interposer.md).
//
// Every wait is a cancellation point: a cancelled waiter leaves the queue,
// reacquires the mutex, and only then do the cleanup handlers run.
#include <errno.h>
#include <pthread.h>

#include "cond.h"
#include "export.h"
#include "internal.h"
#include "layout.h"
#include "mutex_state.h"
#include "profile.h"
#include "real.h"
#include "settings.h"

enum wait_kind { WAIT_PLAIN, WAIT_TIMED, WAIT_CLOCK };

struct wait_request {
    enum wait_kind kind;
    clockid_t clock;
    const struct timespec *abstime; // NULL for WAIT_PLAIN
};

// How a wait treats its mutex.
enum mutex_mode {
    MODE_RELEASE,    // parking-lot mutex: clear ownership, release the word
    MODE_KEEP,       // recursive mutex locked more than once: glibc keeps it
                     // locked during the wait (one level is given back)
    MODE_GLIBC,      // a mutex glibc runs: its own unlock and lock
};

struct wait_state {
    struct plk_cond_waiter cw;
    pthread_mutex_t *m;
    enum mutex_mode mode;
    int type;
    pid_t tid;
    int relock_error; // MODE_GLIBC: what glibc's relock returned
};

// glibc's own wait releases with unlock_usercnt(m, 0), which leaves
// __nusers alone (its destroy then says EBUSY); the public unlock and lock
// used here drop and restore it, so compensate while holding the mutex.
static int glibc_unlock(void *arg)
{
    struct wait_state *ws = arg;
    ws->m->__data.__nusers++;
    int r = real_mutex_unlock(ws->m);
    if (r)
        ws->m->__data.__nusers--; // not released after all
    return r;
}

static void glibc_lock(void *arg)
{
    struct wait_state *ws = arg;
    ws->relock_error = real_mutex_lock(ws->m);
    if (ws->relock_error == 0 || ws->relock_error == EOWNERDEAD)
        ws->m->__data.__nusers--;
}

static int keep_locked(void *arg)
{
    (void)arg;
    return 0;
}

static void stay_locked(void *arg)
{
    (void)arg;
}

// Ownership bookkeeping before the mutex is given up for the wait.
static void before_wait(struct wait_state *ws)
{
    pthread_mutex_t *m = ws->m;
    if (ws->mode == MODE_RELEASE) {
        m->__data.__owner = 0; // __nusers stays: glibc's unlock_usercnt(m, 0)
        if (ws->type == TYPE_RECURSIVE)
            m->__data.__count = 0;
    } else if (ws->mode == MODE_KEEP) {
        m->__data.__count--;
    }
}

// ...and after it is held again.
static void after_wait(struct wait_state *ws)
{
    pthread_mutex_t *m = ws->m;
    if (ws->mode == MODE_RELEASE) {
        m->__data.__owner = ws->tid;
        if (ws->type == TYPE_RECURSIVE)
            m->__data.__count = 1;
    } else if (ws->mode == MODE_KEEP) {
        m->__data.__count++;
    }
}

static void wait_cancelled(void *arg)
{
    struct wait_state *ws = arg;
    plk_cond_wait_abandon(&ws->cw);
    after_wait(ws);
}

static int wait_parkinglot(pthread_cond_t *c, pthread_mutex_t *m,
                           const struct wait_request *req)
{
    struct wait_state ws = { .m = m, .tid = self_tid() };
    int kind = mutex_kind(m);
    struct plk_cond_mutex cm = { .arg = &ws };
    if (kind_is_parkinglot(kind)) {
        ws.type = kind_type(kind);
        int r = check_owner(m, ws.type, ws.tid);
        if (r)
            return r;
        if (ws.type == TYPE_RECURSIVE && m->__data.__count > 1) {
            ws.mode = MODE_KEEP;
            cm.unlock = keep_locked;
            cm.lock = stay_locked;
        } else {
            ws.mode = MODE_RELEASE;
            cm.word = mutex_word(m);
        }
    } else {
        // glibc's unlock decides (EPERM, EINVAL for a destroyed or garbage
        // mutex); its error ends the wait at once, as in glibc.
        ws.mode = MODE_GLIBC;
        cm.unlock = glibc_unlock;
        cm.lock = glibc_lock;
    }

    struct plk_deadline deadline;
    if (req->abstime)
        deadline = (struct plk_deadline){ .when = *req->abstime, .clock = req->clock };
    before_wait(&ws);
    enum plk_cond_wait_result r;
    pthread_cleanup_push(wait_cancelled, &ws);
    r = plk_cond_wait_with(&ws.cw, cond_state(c), &cm,
                           req->abstime ? &deadline : NULL, true);
    pthread_cleanup_pop(0);
    if (r == PLK_COND_UNLOCK_FAILED)
        return ws.cw.unlock_error;
    after_wait(&ws);
    if (ws.relock_error)
        return ws.relock_error;
    return r == PLK_COND_WOKEN ? 0 : ETIMEDOUT;
}

/* Process-shared condition variables: glibc's. */

// Serialises a parking-lot-mutex waiter's "release the mutex, enter glibc's
// wait" with signals and broadcasts on the same cond, which glibc's wait
// would otherwise do atomically with its own mutex.
// They are only ever used through glibc's functions. All-zero is
// PTHREAD_MUTEX_INITIALIZER (a default mutex), so no initializer is needed.
#define N_PROXIES 16
static pthread_mutex_t proxies[N_PROXIES];

static pthread_mutex_t *proxy_for(const pthread_cond_t *c)
{
    return &proxies[((uintptr_t)c >> 4) % N_PROXIES];
}

static int glibc_wait(pthread_cond_t *c, pthread_mutex_t *m,
                      const struct wait_request *req)
{
    switch (req->kind) {
    case WAIT_TIMED:
        return real_cond_timedwait(c, m, req->abstime);
    case WAIT_CLOCK:
        return real_cond_clockwait(c, m, req->clock, req->abstime);
    default:
        return real_cond_wait(c, m);
    }
}

struct proxy_wait {
    struct wait_state ws;
    pthread_mutex_t *proxy;
};

static void release_to_proxy(struct proxy_wait *pw)
{
    before_wait(&pw->ws);
    if (pw->ws.mode == MODE_RELEASE)
        plk_mutex_unlock(mutex_word(pw->ws.m));
}

static void reacquire_from_proxy(struct proxy_wait *pw)
{
    real_mutex_unlock(pw->proxy);
    if (pw->ws.mode == MODE_RELEASE)
        plk_mutex_lock(mutex_word(pw->ws.m));
    after_wait(&pw->ws);
}

static void proxy_wait_cancelled(void *arg)
{
    reacquire_from_proxy(arg); // glibc relocked the proxy before unwinding
}

static int wait_shared(pthread_cond_t *c, pthread_mutex_t *m,
                       const struct wait_request *req)
{
    int kind = mutex_kind(m);
    if (!kind_is_parkinglot(kind))
        return glibc_wait(c, m, req);
    struct proxy_wait pw = {
        .ws = { .m = m, .tid = self_tid(), .type = kind_type(kind) },
        .proxy = proxy_for(c),
    };
    int r = check_owner(m, pw.ws.type, pw.ws.tid);
    if (r)
        return r;
    pw.ws.mode = pw.ws.type == TYPE_RECURSIVE && m->__data.__count > 1 ? MODE_KEEP
                                                                       : MODE_RELEASE;
    real_mutex_lock(pw.proxy);
    release_to_proxy(&pw);
    pthread_cleanup_push(proxy_wait_cancelled, &pw);
    r = glibc_wait(c, pw.proxy, req);
    pthread_cleanup_pop(0);
    reacquire_from_proxy(&pw);
    return r;
}

static int shared_notify(pthread_cond_t *c, int (*notify)(pthread_cond_t *))
{
    pthread_mutex_t *proxy = proxy_for(c);
    real_mutex_lock(proxy);
    int r = notify(c);
    real_mutex_unlock(proxy);
    return r;
}

/* Entry points. */

static int wait_dispatch(pthread_cond_t *c, pthread_mutex_t *m,
                         const struct wait_request *req)
{
    if (use_glibc())
        return glibc_wait(c, m, req);
    if (cond_flags(c) & COND_PSHARED)
        return wait_shared(c, m, req);
    return wait_parkinglot(c, m, req);
}

static __attribute__((noinline)) int wait_profiled(pthread_cond_t *c, pthread_mutex_t *m,
                                                   const struct wait_request *req)
{
    struct plk_profile_wait w;
    plk_profile_cond_wait_begin(&w, c);
    int r = wait_dispatch(c, m, req);
    plk_profile_cond_wait_end(&w, req->abstime != NULL, r);
    return r;
}

static int wait_common(pthread_cond_t *c, pthread_mutex_t *m,
                       const struct wait_request *req)
{
    if (profiling())
        return wait_profiled(c, m, req);
    return wait_dispatch(c, m, req);
}

int plk_pthread_cond_init(pthread_cond_t *c, const pthread_condattr_t *attr)
{
    // glibc validates the attributes, zeroes the object and records the
    // clock and process-shared bits in __wrefs.
    if (profiling())
        plk_profile_cond_init(c);
    return real_cond_init(c, attr);
}

int plk_pthread_cond_destroy(pthread_cond_t *c)
{
    // glibc's destroy waits for its own waiters to confirm (ours never
    // register there) and returns 0.
    if (profiling())
        plk_profile_cond_destroy(c);
    return real_cond_destroy(c);
}

int plk_pthread_cond_signal(pthread_cond_t *c)
{
    if (profiling())
        plk_profile_cond_notify(c, false);
    if (use_glibc())
        return real_cond_signal(c);
    if (cond_flags(c) & COND_PSHARED)
        return shared_notify(c, real_cond_signal);
    plk_cond_signal(cond_state(c));
    return 0;
}

int plk_pthread_cond_broadcast(pthread_cond_t *c)
{
    if (profiling())
        plk_profile_cond_notify(c, true);
    if (use_glibc())
        return real_cond_broadcast(c);
    if (cond_flags(c) & COND_PSHARED)
        return shared_notify(c, real_cond_broadcast);
    plk_cond_broadcast(cond_state(c));
    return 0;
}

int plk_pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
    struct wait_request req = { .kind = WAIT_PLAIN };
    return wait_common(c, m, &req);
}

int plk_pthread_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m,
                               const struct timespec *abstime)
{
    // glibc checks the timeout before anything else.
    if (!valid_nsec(abstime))
        return EINVAL;
    struct wait_request req = {
        .kind = WAIT_TIMED,
        .clock = cond_flags(c) & COND_MONOTONIC ? CLOCK_MONOTONIC : CLOCK_REALTIME,
        .abstime = abstime,
    };
    return wait_common(c, m, &req);
}

int plk_pthread_cond_clockwait(pthread_cond_t *c, pthread_mutex_t *m,
                               clockid_t clock, const struct timespec *abstime)
{
    if (!valid_nsec(abstime) || !valid_clock(clock))
        return EINVAL;
    struct wait_request req = { .kind = WAIT_CLOCK, .clock = clock, .abstime = abstime };
    return wait_common(c, m, &req);
}

PLK_EXPORT_ALIAS(pthread_cond_init, plk_pthread_cond_init);
PLK_EXPORT_ALIAS(pthread_cond_destroy, plk_pthread_cond_destroy);
PLK_EXPORT_ALIAS(pthread_cond_signal, plk_pthread_cond_signal);
PLK_EXPORT_ALIAS(pthread_cond_broadcast, plk_pthread_cond_broadcast);
PLK_EXPORT_ALIAS(pthread_cond_wait, plk_pthread_cond_wait);
PLK_EXPORT_ALIAS(pthread_cond_timedwait, plk_pthread_cond_timedwait);
PLK_EXPORT_ALIAS(pthread_cond_clockwait, plk_pthread_cond_clockwait);
