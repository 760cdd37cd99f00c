// The portable instruction set: what the baseline compiler flags give (SSE2 on x86-64, NEON on
// AArch64). 16-byte vectors; 16 vector registers without FMA hold a 4-row tile.
//
// Included inside namespace fastrnn::portable by kernels_portable.cpp, before kernels_impl.h.

constexpr int kVectorBytes = 16;
// Rows of the product micro-kernel's tile: 4 rows x 2 vectors of accumulators, 2 panel vectors
// and a broadcast fit the 16 registers.
constexpr int kTileRows = 4;
// Bytes of A's rows a product keeps in L2 while every panel of B passes through L1.
constexpr Index kRowBlockBytes = 128 * 1024;

#include "simd.h"

template <class T> inline Vec<T> load_partial(const T* source, Index count) {
    return generic_load_partial(source, count);
}
template <class T> inline void store_partial(T* destination, Vec<T> v, Index count) {
    generic_store_partial(destination, v, count);
}
template <class T> inline Vec<T> sum_each(const Vec<T>* v) { return generic_sum_each<T>(v); }
