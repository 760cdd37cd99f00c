// Cutting one phase's work into parts for the thread pool (threads.h): the cuts depend only on
// the shape and the call's thread count, so results are identical whoever runs which part.
//
// Included inside namespace fastrnn::<isa>.

// [begin, end) of part `part` of `parts` of [0, count), in whole granules.
struct Range {
    Index begin, end;
};
inline Range split_range(Index count, Index part, Index parts, Index granule) {
    const Index granules = (count + granule - 1) / granule;
    const Index begin = granules * part / parts * granule;
    const Index end = granules * (part + 1) / parts * granule;
    return {min_of(begin, count), min_of(end, count)};
}

// Parts per thread of a phase's packed products: each part packs its own copy of B, and a
// second part per thread costs the large LSTM 2% on an idle machine (measured), more than it
// gains on a busy one, where small jobs run on the caller alone (threads.h).
constexpr Index kProductPartsPerThread = 1;
// Parts per thread of work that packs nothing (dot products, column sums, dropout).
constexpr Index kPartsPerThread = 4;

// Most parts worth cutting a phase's work into for a call on `threads` threads.
inline Index max_parts(int threads, Index per_thread) { return threads > 1 ? per_thread * threads : 1; }

// One phase's work over [0, count) cut into parts of whole granules, as even as they go.
struct Parts {
    Index count, granule, parts;
    Parts(Index count_, Index granule_, Index most)
        : count(count_), granule(granule_), parts(min_of((count_ + granule_ - 1) / granule_, most)) {}
    Range operator[](Index part) const { return split_range(count, part, parts, granule); }
};

// The Job (threads.h) of a run object that has items(phase) and run_item(phase, item, thread),
// doing about `flops` floating-point operations.
template <class Run> inline Job job_of(Run& run, double flops) {
    return Job{[](void* context, Index phase) { return static_cast<Run*>(context)->items(phase); },
               [](void* context, Index phase, Index item, int thread) {
                   static_cast<Run*>(context)->run_item(phase, item, thread);
               },
               &run, flops};
}
