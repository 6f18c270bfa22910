// A C++ program on libstdc++'s locks, run plain and under the preload:
// std::mutex, std::recursive_mutex, std::timed_mutex (try_lock_for on the
// steady clock: pthread_mutex_clocklock; try_lock_until on the system clock:
// pthread_mutex_timedlock), std::recursive_timed_mutex,
// std::condition_variable (wait, wait_for, wait_until on both clocks),
// std::condition_variable_any with a timed mutex, exceptions unwinding
// through lock guards, and a thread that forks while the others run (the
// child uses the same objects from new threads, then exits).
//
// Checked: exact totals, every timed wait that reports a timeout happened no
// earlier than its deadline, every child exits 0, the engine is the expected
// one (PLK_EXPECT, as in tests/preload). Duration: PLK_TORTURE_SECONDS.
#include <dlfcn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono;
using namespace std::chrono_literals;

static std::atomic<int> failures{0};

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            failures++;                                                        \
            std::fprintf(stderr, "%s:%d: FAILED %s\n", __FILE__, __LINE__, #cond); \
        }                                                                      \
    } while (0)

static std::mutex m;
static std::recursive_mutex rm;
static std::timed_mutex tm;
static std::recursive_timed_mutex rtm;
static long m_count, rm_count, tm_count, rtm_count;
static std::atomic<long> m_exp, rm_exp, tm_exp, rtm_exp;

static std::mutex qm;
static std::condition_variable not_empty, not_full;
static int qlen;
static long produced, consumed;
static bool done_producing;

static std::timed_mutex anym;
static std::condition_variable_any cv_any;
static long any_turns;
static int any_turn;

static std::atomic<bool> stop{false};
static std::atomic<long> timeouts{0}, exceptions{0};

static void locker(int id)
{
    unsigned s = 2654435761u * (unsigned)(id + 1);
    while (!stop) {
        s = s * 1103515245u + 12345u;
        switch ((s >> 16) % 6) {
        case 0: {
            std::lock_guard<std::mutex> g(m);
            m_count++;
            m_exp++;
            break;
        }
        case 1: {
            std::lock_guard<std::recursive_mutex> g1(rm);
            std::lock_guard<std::recursive_mutex> g2(rm);
            rm_count++;
            rm_exp++;
            break;
        }
        case 2: {
            auto deadline = steady_clock::now() + 200us;
            if (tm.try_lock_until(deadline)) {
                tm_count++;
                tm_exp++;
                tm.unlock();
            } else {
                CHECK(steady_clock::now() >= deadline);
                timeouts++;
            }
            break;
        }
        case 3: {
            auto deadline = system_clock::now() + 200us;
            if (rtm.try_lock_until(deadline)) {
                rtm_count++;
                rtm_exp++;
                rtm.unlock();
            } else {
                CHECK(system_clock::now() >= deadline);
                timeouts++;
            }
            break;
        }
        case 4:
            try {
                std::lock_guard<std::mutex> g(m);
                m_count++;
                m_exp++;
                throw std::runtime_error("unwind through the guard");
            } catch (const std::runtime_error &) {
                exceptions++;
            }
            break;
        default: {
            std::unique_lock<std::timed_mutex> l(tm, std::defer_lock);
            if (l.try_lock_for(300us)) {
                tm_count++;
                tm_exp++;
            } else {
                timeouts++;
            }
        }
        }
    }
}

static void producer()
{
    while (!stop) {
        std::unique_lock<std::mutex> l(qm);
        if (!not_full.wait_for(l, 2ms, [] { return qlen < 4; })) {
            timeouts++;
            continue;
        }
        qlen++;
        produced++;
        not_empty.notify_one();
    }
    std::lock_guard<std::mutex> l(qm);
    done_producing = true;
    not_empty.notify_all();
}

static void consumer(int id)
{
    std::unique_lock<std::mutex> l(qm);
    for (;;) {
        if (id & 1) {
            not_empty.wait(l, [] { return qlen > 0 || done_producing; });
        } else {
            auto deadline = system_clock::now() + 3ms;
            if (!not_empty.wait_until(l, deadline, [] { return qlen > 0 || done_producing; })) {
                CHECK(system_clock::now() >= deadline);
                continue;
            }
        }
        if (qlen == 0)
            break;
        qlen--;
        consumed++;
        not_full.notify_one();
    }
}

static void any_pinger(int id)
{
    std::unique_lock<std::timed_mutex> l(anym);
    for (;;) {
        cv_any.wait(l, [id] { return any_turn == id || any_turn == 2; });
        if (any_turn == 2)
            break;
        any_turns++;
        any_turn = stop ? 2 : 1 - id;
        cv_any.notify_all();
    }
}

// The child of a fork: new threads on the same objects.
static int child()
{
    alarm(60);
    failures = 0;
    long before = m_count;
    std::vector<std::thread> t;
    for (int i = 0; i < 2; i++)
        t.emplace_back([] {
            for (int k = 0; k < 1000; k++) {
                std::lock_guard<std::mutex> g(m);
                m_count++;
            }
        });
    for (auto &x : t)
        x.join();
    CHECK(m_count == before + 2000);
    {
        // A fresh cond: glibc's own conds are not usable in a child whose
        // parent had waiters in them (fork_storm.c explains).
        std::condition_variable fresh;
        std::unique_lock<std::mutex> l(qm);
        CHECK(!fresh.wait_for(l, 1ms, [] { return false; }));
    }
    return failures ? 1 : 0;
}

static std::atomic<long> forks{0}, bad_children{0};

static void forker(double seconds)
{
    auto end = steady_clock::now() + duration<double>(seconds);
    while (steady_clock::now() < end || forks < 30) {
        pid_t pid;
        {
            // Take the objects the child checks, so that they are free and
            // consistent there.
            std::scoped_lock g(m, qm);
            pid = fork();
        }
        if (pid == 0)
            _exit(child());
        int st = 0;
        waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            bad_children++;
            std::fprintf(stderr, "cxx_storm: child status %#x\n", st);
        }
        forks++;
        std::this_thread::sleep_for(5ms);
    }
}

int main()
{
    const char *expect = std::getenv("PLK_EXPECT");
    std::string mode = expect ? expect : "none";
    auto engine = reinterpret_cast<const char *(*)()>(dlsym(RTLD_DEFAULT, "parklock_engine"));
    if (mode == "none")
        CHECK(engine == nullptr);
    else
        CHECK(engine != nullptr && mode == engine());

    const char *secs_env = std::getenv("PLK_TORTURE_SECONDS");
    double secs = secs_env && *secs_env ? std::atof(secs_env) : 2.0;
    if (secs <= 0)
        secs = 2.0;

    std::vector<std::thread> t;
    for (int i = 0; i < 4; i++)
        t.emplace_back(locker, i);
    std::thread prod(producer);
    std::vector<std::thread> cons;
    for (int i = 0; i < 3; i++)
        cons.emplace_back(consumer, i);
    std::thread p0(any_pinger, 0), p1(any_pinger, 1);
    std::thread f(forker, secs);
    f.join();
    stop = true;
    for (auto &x : t)
        x.join();
    prod.join();
    for (auto &x : cons)
        x.join();
    p0.join();
    p1.join();

    CHECK(m_count == m_exp);
    CHECK(rm_count == rm_exp);
    CHECK(tm_count == tm_exp);
    CHECK(rtm_count == rtm_exp);
    CHECK(produced == consumed);
    CHECK(qlen == 0);
    CHECK(bad_children == 0);
    CHECK(any_turns >= 1);
    std::printf("cxx_storm [%s]: %ld locks, %ld items, %ld ping-pongs, %ld timeouts, "
                "%ld exceptions, %ld forks\n",
                mode.c_str(), m_count + rm_count + tm_count + rtm_count, consumed, any_turns,
                timeouts.load(), exceptions.load(), forks.load());
    if (failures)
        std::fprintf(stderr, "%d check(s) failed\n", failures.load());
    return failures ? 1 : 0;
}
