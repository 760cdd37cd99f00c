// Persistent worker pool with dynamic item claiming (see threads.h).
//
// A phase's items are split into one share per thread. A thread takes items from the front of
// its own share, then from the back of the others'. Nobody waits for a thread, only for items:
// the thread that finishes a phase's last item opens the next phase, so a worker that has not
// started (asleep, or its core busy with another process) holds nothing up, and one that the OS
// deschedules holds up only the item it is running. Waiting threads spin briefly, then sleep,
// so that an idle or stalled fastrnn does not hold a core that another program needs.
//
// On a busy machine a pool thread is descheduled now and then, for a time slice of the other
// program's (milliseconds). Two signs tell: a thread of a small job waits far longer than the
// job's items take, or a pool thread spent a share of its recent time waiting for a CPU (Linux
// counts it in /proc/thread-self/schedstat). Either marks the machine contended for a while,
// during which small jobs run on the caller alone (where the pool could save them microseconds
// but cost milliseconds), and workers sleep instead of spinning: a spinning worker could also
// leave the caller the busy core.
#include "fastrnn/threads.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
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
// A thread that waited for a CPU for more than this share of its time since it last looked
// (at least kWaitSampleSeconds ago) is on a contended core.
constexpr double kRunQueueShare = 0.1, kWaitSampleSeconds = 0.01;
// Jobs of less work than this (about a millisecond on one core) run on the caller alone while the
// machine is contended; a thread of such a job waiting this long for a phase's last items is
// waiting for a descheduled thread.
constexpr double kSmallJobFlops = 50e6;
constexpr double kStalledSeconds = 200e-6;
// How long the machine counts as contended after a thread was seen descheduled; then a small
// job tries the pool again, at the risk of one more stall. A try that fails soon after (within
// kRetrySeconds) doubles the time, up to kLongestContention: a busy machine is tried rarely, one
// odd descheduling on an idle machine (the hypervisor, a kernel thread) costs little.
constexpr double kShortestContention = 0.01, kLongestContention = 1.0, kRetrySeconds = 0.05;

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

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

// When small jobs may use the pool again, and for how long it was refused the last time.
class Contention {
public:
    void mark() {
        std::lock_guard<std::mutex> lock(mutex_);
        const Clock::time_point now = Clock::now();
        const bool retry_failed = now - until_ < seconds(kRetrySeconds);
        hold_ = retry_failed ? std::min(2 * hold_, seconds(kLongestContention)) : seconds(kShortestContention);
        until_ = now + hold_;
        until_ticks_.store(until_.time_since_epoch().count(), std::memory_order_relaxed);
    }
    bool now() const { return Clock::now().time_since_epoch().count() < until_ticks_.load(std::memory_order_relaxed); }
    // After fork(): the mutex may have been held by a thread that does not exist in the child.
    void forget_lock_after_fork() { new (&mutex_) std::mutex(); }

private:
    static Clock::duration seconds(double value) {
        return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(value));
    }
    std::mutex mutex_;
    Clock::time_point until_{};
    Clock::duration hold_ = seconds(kShortestContention);
    std::atomic<Clock::rep> until_ticks_{0};   // until_, for the lock-free check
};

// The calling thread's time spent runnable but waiting for a CPU, from Linux's schedstat (one
// file kept open per thread), in nanoseconds; -1 where the system does not tell.
class RunQueueWait {
public:
    RunQueueWait() : fd_(open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC)) {}
    ~RunQueueWait() {
        if (fd_ >= 0) close(fd_);
    }
    long long nanoseconds() const {
        char text[128];
        const ssize_t size = fd_ < 0 ? -1 : pread(fd_, text, sizeof text - 1, 0);
        if (size <= 0) return -1;
        text[size] = '\0';
        unsigned long long running = 0, waiting = 0;   // "<on CPU> <waiting for a CPU> <time slices>"
        return std::sscanf(text, "%llu %llu", &running, &waiting) == 2 ? static_cast<long long>(waiting) : -1;
    }

private:
    int fd_;
};

// Marks `contention` if this thread waited for a CPU for more than kRunQueueShare of the time
// since its last sample; samples at most every kWaitSampleSeconds.
void sample_run_queue(Contention& contention) {
    thread_local const RunQueueWait wait;
    thread_local Clock::time_point sampled_at{};
    thread_local long long waited = -1;
    const Clock::time_point now = Clock::now();
    if (now - sampled_at < std::chrono::duration<double>(kWaitSampleSeconds)) return;
    const long long total = wait.nanoseconds();
    if (total < 0) return;
    if (waited >= 0 && (total - waited) * 1e-9 > kRunQueueShare * std::chrono::duration<double>(now - sampled_at).count())
        contention.mark();
    sampled_at = now;
    waited = total;
}

class Pool {
public:
    // Serializes parallel_run calls from different host threads.
    std::mutex run_mutex;
    Contention contention;

    void run(int threads, const Job& job) {
        ensure_workers(threads - 1);
        job_ = job;
        small_job_.store(job.flops < kSmallJobFlops, std::memory_order_relaxed);
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
        contention.forget_lock_after_fork();
        sleepers_.store(0, std::memory_order_relaxed);
        wake_pending_.store(false, std::memory_order_relaxed);
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
    std::atomic<bool> small_job_{false};           // the current job is small (kSmallJobFlops)
    // Written by whoever opens a phase, before it publishes the shares; read only by threads
    // that hold an item of that phase (so the phase cannot change under them).
    Job job_{};
    Index phase_ = 0;
    std::mutex sleep_mutex_;
    std::condition_variable wake_;
    alignas(64) std::atomic<int> sleepers_{0};
    std::atomic<bool> wake_pending_{false};   // a wake-up call has gone out since a thread last went to sleep

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

    // One wake-up call per round of sleeping: a sleeper slow to wake (its core busy) would
    // otherwise cost every phase opened meanwhile a system call.
    void publish(std::uint32_t serial) {
        serial_.store(serial, std::memory_order_seq_cst);
        if (sleepers_.load(std::memory_order_seq_cst) > 0 && !wake_pending_.exchange(true, std::memory_order_seq_cst)) {
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
            // Inside a small job, whose items take microseconds, a long wait is for a descheduled
            // thread (a worker for the caller, the caller for a worker).
            const bool in_small_job = !(serial & kEndedBit) && small_job_.load(std::memory_order_relaxed);
            sample_run_queue(contention);
            wait_for_change(serial, in_small_job ? kStalledSeconds : 0);
        }
    }

    // Spins until the serial changes, then sleeps; marks the machine contended if that took more
    // than stalled_seconds (if not 0).
    void wait_for_change(std::uint32_t seen, double stalled_seconds) {
        const auto start = Clock::now();
        for (int spins = 1;; ++spins) {
            if (serial_.load(std::memory_order_acquire) != seen) return;
            cpu_relax();
            if (spins % 64 == 0 && seconds_since(start) > kSpinSeconds) break;
        }
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        // Any wake-up call sent before now was not for this sleeper: the next publish sends one.
        wake_pending_.store(false, std::memory_order_seq_cst);
        {
            std::unique_lock<std::mutex> lock(sleep_mutex_);
            wake_.wait(lock, [&] { return serial_.load(std::memory_order_seq_cst) != seen; });
        }
        sleepers_.fetch_sub(1, std::memory_order_relaxed);
        if (stalled_seconds > 0 && seconds_since(start) > stalled_seconds) contention.mark();
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
    Pool& workers = pool();
    if (threads <= 1 || (job.flops < kSmallJobFlops && workers.contention.now())) {
        for (Index phase = 0;; ++phase) {
            const Index count = job.items(job.context, phase);
            if (count < 0) return;
            for (Index item = 0; item < count; ++item) job.run_item(job.context, phase, item, 0);
        }
    }
    std::lock_guard<std::mutex> lock(workers.run_mutex);
    workers.run(threads, job);
}

}  // namespace fastrnn
