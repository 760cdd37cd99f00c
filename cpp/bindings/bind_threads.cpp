// Python binding of the thread controls, and a test hook that checks the worker pool's contract
// (threads.h) on random jobs.
#include <atomic>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include "stack_binding.h"

namespace fastrnn {
namespace {

// A random job whose items check, as they run, what parallel_run promises: every item runs
// exactly once, on a thread index below the call's thread count that no other item is using at
// the same time, and only after every item of the phase before has finished.
class CheckedJob {
public:
    CheckedJob(std::mt19937_64& random, int threads) : threads_(threads), in_use_(threads) {
        const int phases = static_cast<int>(random() % 6);
        for (int phase = 0; phase < phases; ++phase) counts_.push_back(random() % 4 == 0 ? 0 : Index(random() % 40));
        runs_.reserve(counts_.size());
        for (const Index count : counts_) runs_.emplace_back(std::make_unique<std::atomic<int>[]>(count));
        finished_ = std::make_unique<std::atomic<Index>[]>(counts_.size());
        // Some items take long enough for the OS to deschedule a thread in the middle of them.
        work_ = random() % 3 == 0 ? 20000 : 20;
    }

    Index items(Index phase) const { return phase < Index(counts_.size()) ? counts_[phase] : -1; }

    void run_item(Index phase, Index item, int thread) {
        if (thread < 0 || thread >= threads_ || in_use_[thread].exchange(true)) ++violations_;
        if (phase > 0 && finished_[phase - 1].load() != counts_[phase - 1]) ++violations_;
        if (runs_[phase][item].fetch_add(1) != 0) ++violations_;
        volatile unsigned sink = 0;
        for (unsigned i = 0; i < work_; ++i) sink = sink + i;
        if (thread >= 0 && thread < threads_) in_use_[thread] = false;
        ++finished_[phase];
    }

    // Violations seen while running, plus items that did not run exactly once.
    long violations() const {
        long count = violations_;
        for (std::size_t phase = 0; phase < counts_.size(); ++phase)
            for (Index item = 0; item < counts_[phase]; ++item) count += runs_[phase][item].load() != 1;
        return count;
    }
    Index total_items() const {
        Index total = 0;
        for (const Index count : counts_) total += count;
        return total;
    }

private:
    int threads_;
    std::vector<Index> counts_;
    std::vector<std::unique_ptr<std::atomic<int>[]>> runs_;
    std::unique_ptr<std::atomic<Index>[]> finished_;
    std::vector<std::atomic<bool>> in_use_;
    std::atomic<long> violations_{0};
    unsigned work_;
};

py::dict check_pool(int jobs, int max_threads, std::uint64_t seed) {
    if (jobs < 0 || max_threads < 1 || max_threads > kMaxThreads)
        throw py::value_error("check_pool: expected jobs >= 0 and 1 <= max_threads <= " + std::to_string(kMaxThreads));
    long violations = 0;
    Index items = 0;
    {
        py::gil_scoped_release release;
        std::mt19937_64 random(seed);
        for (int j = 0; j < jobs; ++j) {
            const int threads = 1 + static_cast<int>(random() % max_threads);
            CheckedJob job(random, threads);
            parallel_run(threads, Job{[](void* context, Index phase) { return static_cast<CheckedJob*>(context)->items(phase); },
                                      [](void* context, Index phase, Index item, int thread) {
                                          static_cast<CheckedJob*>(context)->run_item(phase, item, thread);
                                      },
                                      // Work enough never to run on the caller alone: the pool is what is checked.
                                      &job, std::numeric_limits<double>::infinity()});
            violations += job.violations();
            items += job.total_items();
        }
    }
    py::dict result;
    result["violations"] = violations;
    result["items"] = items;
    return result;
}

}  // namespace

void bind_threads(py::module_& m) {
    m.def("get_num_threads", &get_num_threads, "Threads the kernels may use.");
    m.attr("max_threads") = kMaxThreads;
    m.def(
        "set_num_threads",
        [](int threads) {
            if (threads < 1 || threads > kMaxThreads)
                throw py::value_error("threads: expected 1 to " + std::to_string(kMaxThreads) + ", got " +
                                      std::to_string(threads));
            set_num_threads(threads);
        },
        py::arg("threads"), "Set the number of threads the kernels may use.");
    m.def("_check_pool", &check_pool, py::arg("jobs"), py::arg("max_threads"), py::arg("seed"),
          "Tests only: runs `jobs` random jobs on 1..max_threads threads; returns the contract violations seen.");
}

}  // namespace fastrnn
