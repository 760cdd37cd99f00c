// Vectorised exp, expm1, sigmoid and tanh, branch-free so every gate loop vectorises.
//
// Range reduction x = n*ln2 + r with |r| <= ln2/2 (Cody-Waite split of ln2), then
// expm1(r) = r + r^2 p(r): p is a degree-4 minimax polynomial for float (relative error 3e-9,
// 0.03 ulp) and the Taylor series to r^13 for double. exp is clamped to [lowest, highest], the
// range where 2^n stays a normal power of two.
// Accuracy (measured against double/long double over the whole range in
// tests/test_activations.py): within 4 ulp wherever the exact result is at least 2^-125
// (float) or 2^-1021 (double) in magnitude, absolute error below that bound elsewhere.
// These functions are bound by the two FMA pipes; every form below was chosen to spare them.
//
// Included inside namespace fastrnn::<isa> after simd.h.

template <class T> struct ExpConstants;

template <> struct ExpConstants<float> {
    static constexpr int terms = 5;   // p(r) coefficients, r^0 first
    static constexpr float p[terms] = {0.4999999403953552f, 0.1666652113199234f, 0.04166838899254799f,
                                       0.008368710055947304f, 0.001381461275741458f};
    static constexpr float log2e = 1.44269504088896341f;
    static constexpr float ln2_hi = 0.693145751953125f;
    static constexpr float ln2_lo = 1.428606765330187045e-06f;
    static constexpr float shifter = 12582912.0f;          // 1.5 * 2^23: rounds to integer
    static constexpr float lowest = -87.33f;               // n = -126: 2^n is the smallest normal
    static constexpr float highest = 88.37f;               // n = 127: 2^n is the largest power
    static constexpr float tanh_saturation = 9.1f;         // tanh rounds to 1 from here on
    static constexpr int exponent_bias = 127;
    static constexpr int mantissa_bits = 23;
};

template <> struct ExpConstants<double> {
    static constexpr int terms = 12;  // 1/2!, 1/3!, ..., 1/13!
    static constexpr double p[terms] = {1.0 / 2,         1.0 / 6,          1.0 / 24,          1.0 / 120,
                                        1.0 / 720,       1.0 / 5040,       1.0 / 40320,       1.0 / 362880,
                                        1.0 / 3628800,   1.0 / 39916800,   1.0 / 479001600,   1.0 / 6227020800};
    static constexpr double log2e = 1.44269504088896338700e+00;
    static constexpr double ln2_hi = 6.93147180369123816490e-01;
    static constexpr double ln2_lo = 1.90821492927058770002e-10;
    static constexpr double shifter = 6755399441055744.0;  // 1.5 * 2^52
    static constexpr double lowest = -708.39;
    static constexpr double highest = 709.0;
    static constexpr double tanh_saturation = 19.1;
    static constexpr int exponent_bias = 1023;
    static constexpr int mantissa_bits = 52;
};

// Splits x (clamped to the finite range; NaN stays NaN) into 2^n * exp(r): returns r, sets
// scale = 2^n.
template <class T> inline Vec<T> exp_reduce(Vec<T> x, Vec<T>& scale) {
    using C = ExpConstants<T>;
    using IntVec = typename Simd<T>::IntVec;
    const Vec<T> lowest = broadcast<T>(C::lowest), highest = broadcast<T>(C::highest);
    x = lowest > x ? lowest : x;     // vmaxps(lowest, x): NaN passes through
    x = highest < x ? highest : x;
    const Vec<T> shifted = x * C::log2e + C::shifter;
    const Vec<T> n = shifted - C::shifter;
    const Vec<T> r = (x - n * C::ln2_hi) - n * C::ln2_lo;
    // The low bits of `shifted` hold n; move them (biased) into the exponent field.
    const IntVec biased = bit_cast<IntVec>(shifted) - bit_cast<IntVec>(broadcast<T>(C::shifter)) + C::exponent_bias;
    scale = bit_cast<Vec<T>>(biased << C::mantissa_bits);
    return r;
}

// expm1(r) = r + r^2 p(r) for |r| <= ln2/2.
template <class T> inline Vec<T> expm1_polynomial(Vec<T> r) {
    using C = ExpConstants<T>;
    Vec<T> p = broadcast<T>(C::p[C::terms - 1]);
    for (int k = C::terms - 2; k >= 0; --k) p = p * r + C::p[k];
    return (r * r) * p + r;
}

template <class T> inline Vec<T> vector_exp(Vec<T> x) {
    Vec<T> scale;
    const Vec<T> r = exp_reduce<T>(x, scale);
    return scale * expm1_polynomial<T>(r) + scale;
}

template <class T> inline Vec<T> vector_expm1(Vec<T> x) {
    Vec<T> scale;
    const Vec<T> r = exp_reduce<T>(x, scale);
    // 2^n * expm1(r) + (2^n - 1): exact cancellation-free for n = 0, mild otherwise.
    return scale * expm1_polynomial<T>(r) + (scale - T(1));
}

// sigmoid(x) = 1/(1 + e^-x). For x below -highest, e^-x clamps to a huge finite value and the
// result to below 2^-125; no overflow, no select. The division runs on its own unit, beside the
// FMA pipes these functions saturate, and rounds exactly (sigmoid(+inf) is exactly 1).
template <class T> inline Vec<T> vector_sigmoid(Vec<T> x) {
    return T(1) / (T(1) + vector_exp<T>(-x));
}

// tanh(x) = u / (u + 2) with u = expm1(2x): no cancellation for small |x|, u -> -1 below and
// the saturation clamp above keep it finite. x's sign bit is carried over (the result already
// has x's sign) so that tanh(-0) is -0.
template <class T> inline Vec<T> vector_tanh(Vec<T> x) {
    using IntVec = typename Simd<T>::IntVec;
    const Vec<T> saturation = broadcast<T>(ExpConstants<T>::tanh_saturation);
    const Vec<T> clamped = saturation < x ? saturation : x;
    const Vec<T> u = vector_expm1<T>(clamped + clamped);
    const IntVec sign = bit_cast<IntVec>(x) & bit_cast<IntVec>(broadcast<T>(T(-0.0)));
    return bit_cast<Vec<T>>(bit_cast<IntVec>(u / (u + T(2))) | sign);
}

// NaN stays NaN, as in PyTorch.
template <class T> inline Vec<T> vector_relu(Vec<T> x) {
    return x < T(0) ? Vec<T>{} : x;
}
