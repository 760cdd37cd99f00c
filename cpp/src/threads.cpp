// Persistent worker pool: workers spin briefly after each job (back-to-back kernel calls are
// often microseconds apart), then sleep on a condition variable, so that an idle fastrnn does
// not hold a core that another thread pool (NumPy's OpenBLAS, say) needs. Barriers inside a
// run spin, then yield to whatever else the core has to run.
#include "fastrnn/threads.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
static inline void cpu_relax() { _mm_pause(); }
#else
static inline void cpu_relax() {}
#endif

namespace fastrnn {
namespace {

// A pause is tens of cycles: a few hundred spins cover the microseconds between time steps.
constexpr int kSpinsBeforeYield = 1000;
// Idle workers give up their core after about 12 microseconds (a pause takes ~25 ns on Zen 3).
constexpr int kSpinsBeforeSleep = 500;
// How long a run waits for its workers to start: at least kMinimumAdmission, at most
// kMaximumAdmission, else kAdmissionShare of its single-thread time at kFlopsPerSecond. A
// sleeping worker on a virtual machine can take 100 microseconds to wake; one whose core another
// thread holds may not run for milliseconds.
constexpr double kMinimumAdmission = 40e-6, kMaximumAdmission = 2e-3;
constexpr double kAdmissionShare = 0.02, kFlopsPerSecond = 60e9;
// `seats` once admission is over: any later claim finds no seat.
constexpr int kClosed = -(1 << 30);

// Busy-waits, then yields so a descheduled peer on a shared machine can run.
inline void spin_wait(int spins) {
    if (spins < kSpinsBeforeYield) {
        cpu_relax();
    } else {
        std::this_thread::yield();
    }
}

int default_threads() {
    return static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, unsigned(kMaxThreads)));
}

std::atomic<int> configured_threads{0};   // 0: not set yet, the hardware's

class Pool {
public:
    // Serializes parallel_run calls from different host threads.
    std::mutex run_mutex;

    void run(int threads, void (*body)(void*, int, int), void* context, double flops) {
        ensure_workers(threads - 1);
        job_body = body;
        job_context = context;
        job_threads = threads;
        finished.store(0, std::memory_order_relaxed);
        team.store(0, std::memory_order_relaxed);
        seats.store(threads - 1, std::memory_order_release);   // publishes the job fields above
        {
            std::lock_guard<std::mutex> lock(sleep_mutex);
            generation.fetch_add(1, std::memory_order_release);
        }
        wake.notify_all();
        // Admission: wait briefly for the workers to claim their seats, then go with those that did.
        const double wait = std::clamp(kAdmissionShare * flops / kFlopsPerSecond, kMinimumAdmission, kMaximumAdmission);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(wait);
        while (seats.load(std::memory_order_acquire) > 0 && std::chrono::steady_clock::now() < deadline)
            cpu_relax();
        const int unclaimed = std::max(0, seats.exchange(kClosed, std::memory_order_acq_rel));
        const int members = threads - unclaimed;
        team.store(members, std::memory_order_release);
        body(context, 0, members);
        for (int spins = 0; finished.load(std::memory_order_acquire) != members - 1; ++spins) spin_wait(spins);
    }

    void barrier(int members) {
        const int my_phase = barrier_phase.load(std::memory_order_relaxed);
        if (barrier_count.fetch_add(1, std::memory_order_acq_rel) == members - 1) {
            barrier_count.store(0, std::memory_order_relaxed);
            barrier_phase.store(my_phase + 1, std::memory_order_release);
            return;
        }
        for (int spins = 0; barrier_phase.load(std::memory_order_acquire) == my_phase; ++spins)
            spin_wait(spins);
    }

    // After fork() only the forking thread exists in the child: forget the workers (their
    // handles are leaked on purpose; the threads do not exist here) and start afresh.
    void forget_workers_after_fork() {
        new std::vector<std::thread>(std::move(workers));
        workers.clear();
        new (&run_mutex) std::mutex();
        new (&sleep_mutex) std::mutex();
        new (&wake) std::condition_variable();
    }

private:
    std::vector<std::thread> workers;
    std::mutex sleep_mutex;
    std::condition_variable wake;
    std::atomic<unsigned long> generation{0};
    std::atomic<int> finished{0};
    std::atomic<int> seats{0};        // worker places left in the current run (kClosed after admission)
    std::atomic<int> team{0};         // threads in the current run, published after admission
    std::atomic<int> barrier_count{0};
    std::atomic<int> barrier_phase{0};
    void (*job_body)(void*, int, int) = nullptr;
    void* job_context = nullptr;
    int job_threads = 0;

    void ensure_workers(int count) {
        while (static_cast<int>(workers.size()) < count) {
            // The worker starts from the current generation: the job about to be published
            // (which may happen before the thread first runs) is new to it.
            const unsigned long seen = generation.load(std::memory_order_acquire);
            workers.emplace_back([this, seen] { work(seen); });
        }
    }

    void work(unsigned long seen) {
        for (;;) {
            for (int spins = 0; generation.load(std::memory_order_acquire) == seen; ++spins) {
                if (spins < kSpinsBeforeSleep) {
                    cpu_relax();
                } else {
                    std::unique_lock<std::mutex> lock(sleep_mutex);
                    wake.wait(lock, [&] { return generation.load(std::memory_order_acquire) != seen; });
                }
            }
            seen = generation.load(std::memory_order_acquire);
            // Claim a seat; seats are numbered so that the members are threads 1 .. team-1.
            const int seat = seats.fetch_sub(1, std::memory_order_acq_rel);
            if (seat <= 0) continue;   // too late (admission closed) or not needed
            int members;
            while ((members = team.load(std::memory_order_acquire)) == 0) cpu_relax();
            job_body(job_context, job_threads - seat, members);
            finished.fetch_add(1, std::memory_order_acq_rel);
        }
    }
};

// Never destroyed: workers may still be asleep when the interpreter exits.
Pool& pool() {
    static Pool* instance = [] {
        pthread_atfork(nullptr, nullptr, [] { pool().forget_workers_after_fork(); });
        return new Pool();
    }();
    return *instance;
}

}  // namespace

int get_num_threads() {
    int threads = configured_threads.load(std::memory_order_relaxed);
    if (threads == 0) {
        threads = default_threads();
        configured_threads.store(threads, std::memory_order_relaxed);
    }
    return threads;
}

void set_num_threads(int threads) {
    configured_threads.store(std::clamp(threads, 1, kMaxThreads), std::memory_order_relaxed);
}

void parallel_run(int threads, void (*body)(void* context, int thread, int team), void* context, double flops) {
    if (threads <= 1) {
        body(context, 0, 1);
        return;
    }
    Pool& workers = pool();
    std::lock_guard<std::mutex> lock(workers.run_mutex);
    workers.run(threads, body, context, flops);
}

void parallel_barrier(int team) {
    if (team > 1) pool().barrier(team);
}

}  // namespace fastrnn
