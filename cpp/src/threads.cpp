// Persistent worker pool with dynamic item claiming (see threads.h).
//
// A phase's items are split into one share per thread. A thread takes items from the front of
// its own share, then from the back of the others'. Nobody waits for a thread, only for items:
// the thread that finishes a phase's last item opens the next phase, so a worker that has not
// started (asleep, or its core busy with another process) holds nothing up, and one that the OS
// deschedules holds up only the item it is running. Waiting threads spin briefly, then sleep,
// so that an idle or stalled fastrnn does not hold a core that another program needs.
#include "fastrnn/threads.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
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

// Waiting threads spin this long before they sleep: phases of a run, and back-to-back kernel
// calls, are often microseconds apart, and waking a sleeping thread takes tens of microseconds.
constexpr double kSpinSeconds = 50e-6;

// The phase serial number changes whenever a phase opens or a job ends; waiting threads watch
// it. Its top bit marks "the job has ended"; the rest counts up, and appears in every share's
// word, so a thread holding an old word can never take an item of a later phase with it.
constexpr std::uint32_t kEndedBit = 1u << 31;

// One thread's share of a phase: the items [first + front, first + back) that nobody has
// taken yet. The word holds serial << 32 | front << 16 | back, so taking an item is one
// compare-and-swap, which fails if the phase has changed since the word was read.
constexpr Index kShareCapacity = 0xffff;
struct alignas(64) Share {
    std::atomic<std::uint64_t> word{0};
    std::atomic<Index> first{0};
};

inline std::uint32_t word_serial(std::uint64_t word) { return static_cast<std::uint32_t>(word >> 32); }
inline Index word_front(std::uint64_t word) { return static_cast<Index>((word >> 16) & 0xffff); }
inline Index word_back(std::uint64_t word) { return static_cast<Index>(word & 0xffff); }

std::atomic<int> configured_threads{1};   // the package sets the default at import

class Pool {
public:
    // Serializes parallel_run calls from different host threads.
    std::mutex run_mutex;

    void run(int threads, const Job& job) {
        ensure_workers(threads - 1);
        job_ = job;
        team_.store(threads, std::memory_order_relaxed);
        open(0, 0);
        participate(0);
    }

    // After fork() only the forking thread exists in the child: forget the workers (their
    // handles are leaked on purpose; the threads do not exist here) and start afresh.
    void forget_workers_after_fork() {
        new std::vector<std::thread>(std::move(workers_));
        workers_.clear();
        new (&run_mutex) std::mutex();
        new (&sleep_mutex_) std::mutex();
        new (&wake_) std::condition_variable();
        sleepers_.store(0, std::memory_order_relaxed);
    }

private:
    std::vector<std::thread> workers_;
    Share shares_[kMaxThreads];
    // Each on a cache line of its own: waiting threads poll the serial, finishing threads
    // write the pending count, and neither should slow down the other's reads.
    alignas(64) std::atomic<std::uint32_t> serial_{kEndedBit};
    alignas(64) std::atomic<Index> pending_{0};   // items of the current phase not yet counted finished
    alignas(64) std::atomic<int> share_count_{0};  // shares of the current phase
    std::atomic<int> team_{0};                     // threads of the current job, the caller included
    // Written by whoever opens a phase, before it publishes the shares; read only by threads
    // that hold an item of that phase (so the phase cannot change under them).
    Job job_{};
    Index phase_ = 0;
    std::mutex sleep_mutex_;
    std::condition_variable wake_;
    alignas(64) std::atomic<int> sleepers_{0};

    void ensure_workers(int count) {
        while (static_cast<int>(workers_.size()) < count) {
            const int thread = static_cast<int>(workers_.size()) + 1;
            workers_.emplace_back([this, thread] { participate(thread); });
        }
    }

    // Opens phase `phase` (skipping phases without items), or ends the job after its last;
    // `thread` is the caller's.
    void open(Index phase, int thread) {
        for (;;) {
            const Index count = job_.items(job_.context, phase);
            if (count == 0) {
                ++phase;
                continue;
            }
            const std::uint32_t serial = ((serial_.load(std::memory_order_relaxed) & ~kEndedBit) + 1) & ~kEndedBit;
            if (count < 0) {
                // Nothing of the job may be touched after this: the caller may return at once.
                publish(serial | kEndedBit);
                return;
            }
            const int team = team_.load(std::memory_order_relaxed);
            const Index needed = (count + kShareCapacity - 1) / kShareCapacity;
            if (needed > kMaxThreads) {
                // More items than the shares can hold (never, for fastrnn's kernels): run the
                // phase here, alone.
                for (Index item = 0; item < count; ++item) job_.run_item(job_.context, phase, item, thread);
                ++phase;
                continue;
            }
            const int shares = static_cast<int>(std::max<Index>(team, needed));
            phase_ = phase;
            pending_.store(count, std::memory_order_relaxed);
            share_count_.store(shares, std::memory_order_relaxed);
            for (int s = 0; s < shares; ++s) {
                const Index begin = count * s / shares, end = count * (s + 1) / shares;
                shares_[s].first.store(begin, std::memory_order_relaxed);
                shares_[s].word.store(std::uint64_t(serial) << 32 | std::uint64_t(end - begin),
                                      std::memory_order_release);
            }
            publish(serial);
            return;
        }
    }

    void publish(std::uint32_t serial) {
        serial_.store(serial, std::memory_order_seq_cst);
        if (sleepers_.load(std::memory_order_seq_cst) > 0) {
            { std::lock_guard<std::mutex> lock(sleep_mutex_); }
            wake_.notify_all();
        }
    }

    // Takes an item of phase `serial`: from the front of this thread's own share, else from the
    // back of another's. Returns false when none is left.
    bool take(int thread, std::uint32_t serial, Index& item) {
        const int shares = share_count_.load(std::memory_order_relaxed);
        for (int i = 0; i < shares; ++i) {
            const int s = (thread + i) % shares;
            const bool own = s == thread;
            Share& share = shares_[s];
            std::uint64_t word = share.word.load(std::memory_order_acquire);
            while (word_serial(word) == serial && word_front(word) < word_back(word)) {
                const std::uint64_t taken = own ? word + (1u << 16) : word - 1;
                if (share.word.compare_exchange_weak(word, taken, std::memory_order_acq_rel,
                                                     std::memory_order_acquire)) {
                    item = share.first.load(std::memory_order_relaxed) + (own ? word_front(word) : word_back(word) - 1);
                    return true;
                }
            }
        }
        return false;
    }

    // The caller (thread 0) returns when its job has ended; workers never return. Finished items
    // are counted once a thread finds no more to take, so that threads do not contend on the
    // count item by item.
    void participate(int thread) {
        Index finished = 0, phase = 0;
        for (;;) {
            const std::uint32_t serial = serial_.load(std::memory_order_acquire);
            if (serial & kEndedBit) {
                if (thread == 0) return;
            } else if (thread < team_.load(std::memory_order_relaxed)) {
                Index item;
                if (take(thread, serial, item)) {
                    // The phase cannot change before this thread's finished items are counted.
                    phase = phase_;
                    job_.run_item(job_.context, phase, item, thread);
                    ++finished;
                    continue;
                }
            }
            if (finished > 0) {
                if (pending_.fetch_sub(finished, std::memory_order_acq_rel) == finished) open(phase + 1, thread);
                finished = 0;
                continue;
            }
            wait_for_change(serial);
        }
    }

    void wait_for_change(std::uint32_t seen) {
        const auto start = std::chrono::steady_clock::now();
        for (int spins = 1;; ++spins) {
            if (serial_.load(std::memory_order_acquire) != seen) return;
            cpu_relax();
            if (spins % 64 == 0 &&
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > kSpinSeconds)
                break;
        }
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        {
            std::unique_lock<std::mutex> lock(sleep_mutex_);
            wake_.wait(lock, [&] { return serial_.load(std::memory_order_seq_cst) != seen; });
        }
        sleepers_.fetch_sub(1, std::memory_order_relaxed);
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

int get_num_threads() { return configured_threads.load(std::memory_order_relaxed); }

void set_num_threads(int threads) {
    configured_threads.store(std::clamp(threads, 1, kMaxThreads), std::memory_order_relaxed);
}

void parallel_run(int threads, const Job& job) {
    threads = std::min(threads, kMaxThreads);   // the pool has a share for each of at most these
    if (threads <= 1) {
        for (Index phase = 0;; ++phase) {
            const Index count = job.items(job.context, phase);
            if (count < 0) return;
            for (Index item = 0; item < count; ++item) job.run_item(job.context, phase, item, 0);
        }
    }
    Pool& workers = pool();
    std::lock_guard<std::mutex> lock(workers.run_mutex);
    workers.run(threads, job);
}

}  // namespace fastrnn
