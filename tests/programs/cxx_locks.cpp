// The C++ standard library's locks, which libstdc++ builds on pthread_mutex_*
// and pthread_cond_* (pthread_mutex_clocklock and pthread_cond_clockwait for
// steady_clock deadlines, the timed* calls for system_clock ones). CTest runs
// it on plain glibc and under libparklock.so; exit 0 means every check held.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "preload_check.h"

using namespace std::chrono_literals;
using std::chrono::steady_clock;
using std::chrono::system_clock;

namespace {

std::atomic<int> failures{0};

void check(bool ok, const char *what, int line)
{
    if (!ok) {
        std::fprintf(stderr, "cxx_locks.cpp:%d: check failed: %s\n", line, what);
        failures++;
    }
}
#define CHECK(cond) check((cond), #cond, __LINE__)

// A timed wait that should time out must return within this much past its
// deadline; only a hang or a lost timeout takes longer, even on a busy host.
constexpr auto late_limit = 5s;
// A wait that a notification or an unlock should end is given this long.
constexpr auto long_wait = 20s;

template <class Clock> bool on_time(typename Clock::time_point deadline)
{
    auto now = Clock::now();
    return now >= deadline && now - deadline < late_limit;
}

// Runs fn on n threads and joins them.
template <class Fn> void on_threads(int n, Fn fn)
{
    std::vector<std::thread> threads;
    for (int i = 0; i < n; i++)
        threads.emplace_back(fn, i);
    for (auto &t : threads)
        t.join();
}

// Whether another thread can take m right now.
template <class Mutex> bool other_thread_gets(Mutex &m)
{
    bool got = false;
    std::thread([&] {
        got = m.try_lock();
        if (got)
            m.unlock();
    }).join();
    return got;
}

void test_mutex()
{
    std::mutex m;
    long counter = 0;
    constexpr int threads = 8, rounds = 20000;
    on_threads(threads, [&](int) {
        for (int i = 0; i < rounds; i++) {
            std::lock_guard<std::mutex> g(m);
            counter++;
        }
    });
    CHECK(counter == long{threads} * rounds);

    m.lock();
    CHECK(!other_thread_gets(m));
    m.unlock();
    CHECK(other_thread_gets(m));
}

void test_recursive_mutex()
{
    std::recursive_mutex m;
    m.lock();
    m.lock();
    CHECK(m.try_lock());
    CHECK(!other_thread_gets(m));
    m.unlock();
    m.unlock();
    CHECK(!other_thread_gets(m));
    m.unlock();
    CHECK(other_thread_gets(m));

    long counter = 0;
    on_threads(4, [&](int) {
        for (int i = 0; i < 10000; i++) {
            std::lock_guard<std::recursive_mutex> outer(m);
            std::lock_guard<std::recursive_mutex> inner(m);
            counter++;
        }
    });
    CHECK(counter == 40000);
}

// With m held elsewhere, each timed lock fails, and not before its deadline.
template <class Mutex> void timed_locks_time_out(Mutex &m)
{
    std::thread([&] {
        auto start = steady_clock::now();
        CHECK(!m.try_lock_for(50ms));
        CHECK(on_time<steady_clock>(start + 50ms));

        auto steady_deadline = steady_clock::now() + 50ms;
        CHECK(!m.try_lock_until(steady_deadline));
        CHECK(on_time<steady_clock>(steady_deadline));

        auto system_deadline = system_clock::now() + 50ms;
        CHECK(!m.try_lock_until(system_deadline));
        CHECK(on_time<system_clock>(system_deadline));
    }).join();
}

// A thread blocked in a timed lock gets m when its holder lets go.
template <class Mutex, class Lock> void timed_lock_succeeds(Mutex &m, Lock lock)
{
    std::atomic<bool> waiting{false};
    std::thread t([&] {
        waiting = true;
        auto start = steady_clock::now();
        bool got = lock(m);
        CHECK(got);
        CHECK(steady_clock::now() - start < long_wait);
        if (got)
            m.unlock();
    });
    while (!waiting)
        std::this_thread::yield();
    std::this_thread::sleep_for(30ms); // let it block
    m.unlock();
    t.join();
}

template <class Mutex> void test_timed()
{
    Mutex m;
    m.lock();
    timed_locks_time_out(m);
    timed_lock_succeeds(m, [](Mutex &x) { return x.try_lock_for(long_wait); });
    m.lock();
    timed_lock_succeeds(m, [](Mutex &x) {
        return x.try_lock_until(steady_clock::now() + long_wait);
    });
    m.lock();
    timed_lock_succeeds(m, [](Mutex &x) {
        return x.try_lock_until(system_clock::now() + long_wait);
    });
    CHECK(m.try_lock_for(10ms));
    m.unlock();
}

void test_recursive_timed_mutex()
{
    test_timed<std::recursive_timed_mutex>();
    std::recursive_timed_mutex m;
    m.lock();
    CHECK(m.try_lock_for(10ms));
    CHECK(m.try_lock_until(system_clock::now() + 10ms));
    m.unlock();
    m.unlock();
    timed_locks_time_out(m); // still held once
    m.unlock();
    CHECK(other_thread_gets(m));
}

// Nobody notifies: every flavour of timed wait returns timeout, on time.
void test_cv_timeouts()
{
    std::mutex m;
    std::condition_variable cv;
    std::unique_lock<std::mutex> lk(m);

    auto start = steady_clock::now();
    CHECK(cv.wait_for(lk, 50ms) == std::cv_status::timeout);
    CHECK(on_time<steady_clock>(start + 50ms));

    auto steady_deadline = steady_clock::now() + 50ms;
    CHECK(cv.wait_until(lk, steady_deadline) == std::cv_status::timeout);
    CHECK(on_time<steady_clock>(steady_deadline));

    auto system_deadline = system_clock::now() + 50ms;
    CHECK(cv.wait_until(lk, system_deadline) == std::cv_status::timeout);
    CHECK(on_time<system_clock>(system_deadline));

    // The predicate forms return the predicate's (false) value at the end.
    auto pred_deadline = steady_clock::now() + 30ms;
    CHECK(!cv.wait_until(lk, pred_deadline, [] { return false; }));
    CHECK(on_time<steady_clock>(pred_deadline));
    CHECK(!cv.wait_for(lk, 30ms, [] { return false; }));
    CHECK(lk.owns_lock());
}

// One waiter per wait flavour; one notify_one each, well before the deadline.
void test_cv_notify_one()
{
    using waiter = std::function<bool(std::unique_lock<std::mutex> &, std::condition_variable &,
                                      const bool &)>;
    const waiter flavours[] = {
        [](auto &lk, auto &cv, const bool &go) { cv.wait(lk, [&] { return go; }); return go; },
        [](auto &lk, auto &cv, const bool &go) {
            return cv.wait_for(lk, long_wait, [&] { return go; });
        },
        [](auto &lk, auto &cv, const bool &go) {
            auto deadline = steady_clock::now() + long_wait;
            while (!go)
                if (cv.wait_until(lk, deadline) == std::cv_status::timeout)
                    break;
            return go;
        },
        [](auto &lk, auto &cv, const bool &go) {
            auto deadline = system_clock::now() + long_wait;
            while (!go)
                if (cv.wait_until(lk, deadline) == std::cv_status::timeout)
                    break;
            return go;
        },
    };
    for (const auto &wait : flavours) {
        std::mutex m;
        std::condition_variable cv;
        bool go = false, waiting = false, woke = false;
        std::thread t([&] {
            std::unique_lock<std::mutex> lk(m);
            waiting = true;
            cv.notify_one();
            woke = wait(lk, cv, go);
        });
        auto start = steady_clock::now();
        {
            std::unique_lock<std::mutex> lk(m);
            cv.wait(lk, [&] { return waiting; });
            go = true;
        }
        cv.notify_one();
        t.join();
        CHECK(woke);
        CHECK(steady_clock::now() - start < long_wait);
    }
}

// Waiters of every flavour on one condition variable; one notify_all wakes
// them all.
void test_cv_notify_all()
{
    std::mutex m;
    std::condition_variable cv;
    bool go = false;
    int waiting = 0, woke = 0;
    constexpr int per_flavour = 3, flavours = 3;
    std::vector<std::thread> threads;
    for (int i = 0; i < per_flavour * flavours; i++)
        threads.emplace_back([&, i] {
            std::unique_lock<std::mutex> lk(m);
            waiting++;
            cv.notify_all(); // the main thread waits for everyone to arrive
            bool ok = false;
            switch (i % flavours) {
            case 0:
                ok = cv.wait_for(lk, long_wait, [&] { return go; });
                break;
            case 1:
                ok = cv.wait_until(lk, steady_clock::now() + long_wait, [&] { return go; });
                break;
            case 2:
                ok = cv.wait_until(lk, system_clock::now() + long_wait, [&] { return go; });
                break;
            }
            woke += ok;
        });
    {
        std::unique_lock<std::mutex> lk(m);
        cv.wait(lk, [&] { return waiting == per_flavour * flavours; });
        go = true;
    }
    cv.notify_all();
    for (auto &t : threads)
        t.join();
    CHECK(woke == per_flavour * flavours);
}

// A bounded queue: producers wait for room with timed waits, consumers wait
// for items with plain ones; notify_one on both sides, notify_all at the end.
// Every item is consumed exactly once, and each producer's items in order.
void test_producer_consumer()
{
    constexpr int producers = 4, consumers = 3, items = 25000;
    constexpr size_t capacity = 16;
    struct item {
        int producer;
        long seq;
    };
    std::mutex m;
    std::condition_variable not_empty, not_full;
    std::deque<item> queue;
    int producers_left = producers;
    long consumed = 0, sum = 0;
    bool in_order = true;

    std::vector<std::thread> threads;
    for (int p = 0; p < producers; p++)
        threads.emplace_back([&, p] {
            for (long s = 1; s <= items; s++) {
                std::unique_lock<std::mutex> lk(m);
                while (queue.size() == capacity)
                    not_full.wait_for(lk, 100ms);
                queue.push_back({p, s});
                lk.unlock();
                not_empty.notify_one();
            }
            std::lock_guard<std::mutex> g(m);
            if (--producers_left == 0)
                not_empty.notify_all();
        });
    for (int c = 0; c < consumers; c++)
        threads.emplace_back([&] {
            long last[producers] = {0};
            std::unique_lock<std::mutex> lk(m);
            for (;;) {
                not_empty.wait(lk, [&] { return !queue.empty() || producers_left == 0; });
                if (queue.empty())
                    break;
                item it = queue.front();
                queue.pop_front();
                consumed++;
                sum += it.seq;
                in_order &= it.seq > last[it.producer];
                last[it.producer] = it.seq;
                lk.unlock();
                not_full.notify_one();
                lk.lock();
            }
        });
    for (auto &t : threads)
        t.join();
    CHECK(consumed == long{producers} * items);
    CHECK(sum == long{producers} * items * (items + 1) / 2);
    CHECK(in_order);
}

} // namespace

int main()
{
    if (plk_preload_check() != 0)
        return 1;
    test_mutex();
    test_recursive_mutex();
    test_timed<std::timed_mutex>();
    test_recursive_timed_mutex();
    test_cv_timeouts();
    test_cv_notify_one();
    test_cv_notify_all();
    test_producer_consumer();
    if (failures) {
        std::fprintf(stderr, "cxx_locks: %d check(s) failed\n", failures.load());
        return 1;
    }
    std::printf("cxx_locks: all checks passed\n");
    return 0;
}
