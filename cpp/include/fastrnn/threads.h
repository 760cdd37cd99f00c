// The persistent worker pool the kernels run on. Plain functions and data only: the
// per-instruction-set kernel translation units call them without sharing any inline code.
#pragma once

#include "fastrnn/common.h"

namespace fastrnn {

// More threads than this only add start-up costs (and each one's stack).
constexpr int kMaxThreads = 1024;

// Threads kernels may use. The package sets the default at import (the CPUs the process may
// run on, see fastrnn/_threads.py), then FASTRNN_NUM_THREADS or set_num_threads() change it.
int get_num_threads();
void set_num_threads(int threads);   // 1 <= threads <= kMaxThreads

// A kernel call's work as a sequence of phases. Phase p has items(context, p) items (a negative
// count: the work ends before phase p); they may run in any order, on any thread, and phase
// p + 1 starts once every item of phase p has finished. run_item(context, p, item, thread)
// runs one item; `thread` (0 for the caller, below `threads` for all) indexes per-thread scratch.
// `flops`, the work's estimated floating-point operations, sizes it: see parallel_run.
struct Job {
    Index (*items)(void* context, Index phase);
    void (*run_item)(void* context, Index phase, Index item, int thread);
    void* context;
    double flops;
};

// Runs `job` on the caller and up to threads - 1 workers (threads is capped at kMaxThreads), and
// returns once its last phase has finished. Item boundaries are the job's, so which thread runs
// an item never changes a result. Each thread first takes the items of its own share of a phase,
// then takes what is left of the others' shares: a worker that is slow to start, or that the OS
// has descheduled, delays only the item it is running. Such a delay lasts as long as the other
// program's time slice (milliseconds), which small jobs cannot afford: once a thread of the pool
// has been seen descheduled, jobs of a few milliseconds' work run on the caller alone for a
// while, then the pool is tried again. Concurrent calls from several host threads run one after
// another.
void parallel_run(int threads, const Job& job);

}  // namespace fastrnn
