// The persistent worker pool the kernels run on. Plain functions only: the per-instruction-set
// kernel translation units call them without sharing any inline code.
#pragma once

namespace fastrnn {

// Threads kernels may use: set_num_threads(), else FASTRNN_NUM_THREADS, else the hardware's.
int get_num_threads();
void set_num_threads(int threads);   // threads >= 1

// Runs body(context, thread) for thread = 0 .. threads-1 (thread 0 on the caller) and returns
// once all have finished. Concurrent calls from several host threads run one after another.
void parallel_run(int threads, void (*body)(void* context, int thread), void* context);

// Inside parallel_run's body: returns once all `threads` threads of the run have arrived.
void parallel_barrier(int threads);

}  // namespace fastrnn
