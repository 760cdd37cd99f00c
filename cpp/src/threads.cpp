// Persistent worker pool with dynamic item claiming (see threads.h).
//
// A phase's items are split into one share per thread. A thread takes items from the front of
// its own share, then from the back of the others'. Nobody waits for a thread, only for items:
// the thread that finishes a phase's last item opens the next phase, so a worker that has not
// started (asleep, or its core busy with another process) holds nothing up, and one that the OS
// deschedules holds up only the item it is running. Waiting threads spin briefly, then sleep,
// so that an idle or stalled fastrnn does not hold a core that another program needs.
//
// Opening a phase writes one cache line, the phase word (serial number and items unfinished)
// with the phase's number and item count beside it. A share's word (serial, front, back) starts
// the phase as it was left: a word of an earlier phase stands for the whole untouched share,
// and the first thread to take from it writes the new serial. So a phase change costs each
// thread the transfer of that one line, and its own share stays in its own cache.
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

// The phase word: serial << 32 | items of the phase not yet counted finished. The serial counts
// phases up (wrapping); kEnded in the low half marks "the job has ended" instead of a count.
constexpr std::uint32_t kEnded = 0xffffffffu;
inline std::uint32_t serial_of(std::uint64_t word) { return static_cast<std::uint32_t>(word >> 32); }
inline std::uint32_t unfinished_of(std::uint64_t word) { return static_cast<std::uint32_t>(word); }
inline std::uint64_t phase_word(std::uint32_t serial, std::uint32_t unfinished) {
    return std::uint64_t(serial) << 32 | unfinished;
}
// How many phases `serial` is after `reference` (negative: before); serials wrap.
inline std::int32_t age(std::uint32_t serial, std::uint32_t reference) {
    return static_cast<std::int32_t>(serial - reference);
}

// One thread's share of a phase: items [begin + front, begin + back) are not taken yet. Its word
// holds serial << 32 | front << 16 | back; a word of an earlier serial stands for front 0 and
// back the whole share. Taking an item is one compare-and-swap, which fails if anyone changed
// the word since it was read.
constexpr Index kShareCapacity = 0xffff;
struct alignas(64) Share {
    std::atomic<std::uint64_t> word{0};
};
inline Index word_front(std::uint64_t word) { return static_cast<Index>((word >> 16) & 0xffff); }
inline Index word_back(std::uint64_t word) { return static_cast<Index>(word & 0xffff); }
inline std::uint64_t share_word(std::uint32_t serial, Index front, Index back) {
    return std::uint64_t(serial) << 32 | std::uint64_t(front) << 16 | std::uint64_t(back);
}

// What a thread knows of the phase it works on.
struct PhaseView {
    std::uint32_t serial;
    bool ended;       // the job has ended
    Index index;      // the job's phase number
    Index count;      // its items; 0 once all are finished
    int shares;
    // Items [begin, end) of share `share`.
    Index begin(int share) const { return count * share / shares; }
    Index end(int share) const { return count * (share + 1) / shares; }
};

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
        job_.job = job;
        job_.small.store(job.flops < kSmallJobFlops, std::memory_order_relaxed);
        job_.team.store(threads, std::memory_order_relaxed);
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
    // The phase word and what opening a phase writes beside it: one cache line.
    struct alignas(64) PhaseState {
        std::atomic<std::uint64_t> word{phase_word(0, kEnded)};
        std::atomic<Index> index{0};
        std::atomic<Index> count{0};
    };
    // What a job's threads read all along: written before its first phase opens.
    struct alignas(64) JobState {
        Job job{};
        std::atomic<int> team{0};        // threads of the job, the caller included
        std::atomic<bool> small{false};  // less work than kSmallJobFlops
    };

    PhaseState phase_;
    JobState job_;
    Share shares_[kMaxThreads];
    std::vector<std::thread> workers_;
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

    // The phase as it stands, read consistently: the count and number beside the word are those
    // of the word's serial (they change only once its phase has finished, and the word is read
    // again after them).
    PhaseView view() const {
        for (;;) {
            // Acquire loads: the second read of the word cannot move before them.
            const std::uint64_t word = phase_.word.load(std::memory_order_acquire);
            const Index index = phase_.index.load(std::memory_order_acquire);
            const Index count = phase_.count.load(std::memory_order_acquire);
            const std::uint64_t again = phase_.word.load(std::memory_order_relaxed);
            if (serial_of(again) != serial_of(word)) continue;
            const bool ended = unfinished_of(word) == kEnded;
            const bool finished = ended || unfinished_of(again) == 0;
            const int team = job_.team.load(std::memory_order_relaxed);
            const int shares = static_cast<int>(std::max<Index>(team, (count + kShareCapacity - 1) / kShareCapacity));
            return {serial_of(word), ended, index, finished ? 0 : count, std::max(shares, 1)};
        }
    }

    // Opens phase `phase` (skipping phases without items), or ends the job after its last;
    // `thread` is the caller's. Only the thread that finished the last phase's last item (or the
    // job's caller, for the first) gets here, so nobody else writes the phase state meanwhile.
    void open(Index phase, int thread) {
        const Job& job = job_.job;
        for (;;) {
            const Index count = job.items(job.context, phase);
            if (count == 0) {
                ++phase;
                continue;
            }
            const std::uint32_t serial = serial_of(phase_.word.load(std::memory_order_relaxed)) + 1;
            if (count < 0) {
                // Nothing of the job may be touched after this: the caller may return at once.
                publish(phase_word(serial, kEnded));
                return;
            }
            if ((count + kShareCapacity - 1) / kShareCapacity > kMaxThreads) {
                // More items than the shares can hold (never, for fastrnn's kernels): run the
                // phase here, alone.
                for (Index item = 0; item < count; ++item) job.run_item(job.context, phase, item, thread);
                ++phase;
                continue;
            }
            phase_.index.store(phase, std::memory_order_relaxed);
            phase_.count.store(count, std::memory_order_relaxed);
            publish(phase_word(serial, static_cast<std::uint32_t>(count)));
            return;
        }
    }

    // One wake-up call per round of sleeping: a sleeper slow to wake (its core busy) would
    // otherwise cost every phase opened meanwhile a system call.
    void publish(std::uint64_t word) {
        phase_.word.store(word, std::memory_order_seq_cst);
        if (sleepers_.load(std::memory_order_seq_cst) > 0 && !wake_pending_.exchange(true, std::memory_order_seq_cst)) {
            { std::lock_guard<std::mutex> lock(sleep_mutex_); }
            wake_.notify_all();
        }
    }

    // Takes an item of `phase` from share `share`: its front if it is this thread's own, else its
    // back. Returns false when the share has none left, or belongs to a later phase (this
    // thread's view is out of date).
    bool take_from(int share, bool own, const PhaseView& phase, Index& item) {
        const Index begin = phase.begin(share), size = phase.end(share) - begin;
        if (size == 0) return false;
        std::atomic<std::uint64_t>& word = shares_[share].word;
        std::uint64_t seen = word.load(std::memory_order_acquire);
        for (;;) {
            const std::int32_t later = age(serial_of(seen), phase.serial);
            if (later > 0) return false;
            const Index front = later == 0 ? word_front(seen) : 0, back = later == 0 ? word_back(seen) : size;
            if (front >= back) return false;
            const std::uint64_t taken = own ? share_word(phase.serial, front + 1, back) : share_word(phase.serial, front, back - 1);
            if (word.compare_exchange_weak(seen, taken, std::memory_order_acq_rel, std::memory_order_acquire)) {
                item = begin + (own ? front : back - 1);
                return true;
            }
        }
    }

    // Takes an item of `phase`: from this thread's own share, else from the others'.
    bool take(int thread, const PhaseView& phase, Index& item) {
        if (thread < phase.shares && take_from(thread, true, phase, item)) return true;
        for (int share = 0; share < phase.shares; ++share)
            if (share != thread && take_from(share, false, phase, item)) return true;
        return false;
    }

    // The caller (thread 0) returns when its job has ended; workers never return. Finished items
    // are counted once a thread finds no more to take, so that threads do not contend on the
    // count item by item.
    void participate(int thread) {
        for (;;) {
            const PhaseView phase = view();
            if (phase.ended && thread == 0) return;
            if (phase.count > 0 && thread < job_.team.load(std::memory_order_relaxed)) {
                Index finished = 0, item;
                while (take(thread, phase, item)) {
                    const Job& job = job_.job;
                    job.run_item(job.context, phase.index, item, thread);
                    ++finished;
                }
                // The phase cannot change before this thread's finished items are counted.
                if (finished > 0) {
                    const std::uint64_t before = phase_.word.fetch_sub(std::uint64_t(finished), std::memory_order_acq_rel);
                    if (unfinished_of(before) == finished) open(phase.index + 1, thread);
                    continue;
                }
            }
            // Inside a small job, whose items take microseconds, a long wait is for a descheduled
            // thread (a worker for the caller, the caller for a worker).
            const bool in_small_job = !phase.ended && job_.small.load(std::memory_order_relaxed);
            sample_run_queue(contention);
            wait_for_change(phase.serial, in_small_job ? kStalledSeconds : 0);
        }
    }

    std::uint32_t serial() const { return serial_of(phase_.word.load(std::memory_order_acquire)); }

    // Spins until the serial changes, then sleeps; marks the machine contended if that took more
    // than stalled_seconds (if not 0).
    void wait_for_change(std::uint32_t seen, double stalled_seconds) {
        const auto start = Clock::now();
        for (int spins = 1;; ++spins) {
            if (serial() != seen) return;
            cpu_relax();
            if (spins % 64 == 0 && seconds_since(start) > kSpinSeconds) break;
        }
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        // Any wake-up call sent before now was not for this sleeper: the next publish sends one.
        wake_pending_.store(false, std::memory_order_seq_cst);
        {
            std::unique_lock<std::mutex> lock(sleep_mutex_);
            wake_.wait(lock, [&] { return serial_of(phase_.word.load(std::memory_order_seq_cst)) != seen; });
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
