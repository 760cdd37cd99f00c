// Dropout between stacked layers: a counter-based hash of (seed, layer, element), so forward and
// backward regenerate the same mask without storing it, on any number of threads.
//
// Included inside namespace fastrnn::<isa>.

inline std::uint32_t mix32(std::uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

// Multiplies values[i] (element `first + i` of layer `layer`'s output) by 0 with probability p,
// else by 1/(1-p), as PyTorch does.
template <class T>
void apply_dropout(T* values, Index count, Index first, double p, std::uint64_t seed, Index layer) {
    const std::uint32_t key = mix32(static_cast<std::uint32_t>(seed) ^ mix32(static_cast<std::uint32_t>(seed >> 32) +
                                    static_cast<std::uint32_t>(layer) * 0x9e3779b9U));
    const std::uint32_t threshold = static_cast<std::uint32_t>(p * 16777216.0);   // p * 2^24
    const T scale = T(1) / T(1 - p);
    for (Index i = 0; i < count; ++i) {
        const std::uint32_t hash = mix32(static_cast<std::uint32_t>(first + i) * 0x9e3779b9U ^ key);
        values[i] *= (hash >> 8) >= threshold ? scale : T(0);
    }
}
