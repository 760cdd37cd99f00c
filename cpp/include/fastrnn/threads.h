// The persistent worker pool the kernels run on. Plain functions only: the per-instruction-set
// kernel translation units call them without sharing any inline code.
#pragma once

namespace fastrnn {

// More threads than this only add start-up and barrier costs (and each one's stack).
constexpr int kMaxThreads = 1024;

// Threads kernels may use: set_num_threads(), else the hardware's (at most kMaxThreads). The
// package applies FASTRNN_NUM_THREADS through set_num_threads when it is imported.
int get_num_threads();
void set_num_threads(int threads);   // 1 <= threads <= kMaxThreads

// Runs body(context, thread, team) for thread = 0 .. team-1 (thread 0 on the caller) and
// returns once all have finished. team <= threads: workers that do not start in time (their core
// busy with another process or thread pool) are left out, so the body must split its work by
// `team`, not by `threads`. "In time" grows with `flops`, the run's estimated work: a sleeping
// worker can take a while to wake, which only a long run can afford to wait for. Concurrent
// calls from several host threads run one after another.
void parallel_run(int threads, void (*body)(void* context, int thread, int team), void* context, double flops);

// Inside parallel_run's body: returns once all `team` threads of the run have arrived.
void parallel_barrier(int team);

}  // namespace fastrnn
