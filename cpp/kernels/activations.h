// Vectorised exp, expm1, sigmoid and tanh, branch-free so every gate loop vectorises.
//
// Accuracy (measured over the whole float range against double in tests/test_activations.py):
// results are within 4 ulp wherever the exact result is a normal number; below that (sigmoid
// of x < -87.3 in float) the absolute error is below the smallest normal number. exp is
// clamped to [lowest, highest], the range where 2^n stays a normal power of two. Range reduction x = n*ln2 + r with
// |r| <= ln2/2 (Cody-Waite split of ln2), then a Taylor polynomial for expm1(r) whose
// truncation error is below 0.2 ulp: degree 7 for float, 13 for double.
//
// Included inside namespace fastrnn::<isa> after simd.h.

template <class T> struct ExpConstants;

template <> struct ExpConstants<float> {
    static constexpr int degree = 7;
    static constexpr float log2e = 1.44269504088896341f;
    static constexpr float ln2_hi = 0.693145751953125f;
    static constexpr float ln2_lo = 1.428606765330187045e-06f;
    static constexpr float shifter = 12582912.0f;          // 1.5 * 2^23: rounds to integer
    static constexpr float lowest = -87.33f;               // n = -126: 2^n is the smallest normal
    static constexpr float highest = 88.37f;               // n = 127: 2^n is the largest power
    static constexpr int exponent_bias = 127;
    static constexpr int mantissa_bits = 23;
};

template <> struct ExpConstants<double> {
    static constexpr int degree = 13;
    static constexpr double log2e = 1.44269504088896338700e+00;
    static constexpr double ln2_hi = 6.93147180369123816490e-01;
    static constexpr double ln2_lo = 1.90821492927058770002e-10;
    static constexpr double shifter = 6755399441055744.0;  // 1.5 * 2^52
    static constexpr double lowest = -708.39;
    static constexpr double highest = 709.0;
    static constexpr int exponent_bias = 1023;
    static constexpr int mantissa_bits = 52;
};

// Splits x (clamped to the finite range) into 2^n * exp(r): returns r, sets scale = 2^n.
template <class T> inline Vec<T> exp_reduce(Vec<T> x, Vec<T>& scale) {
    using C = ExpConstants<T>;
    using IntVec = typename Simd<T>::IntVec;
    x = x < C::lowest ? broadcast<T>(C::lowest) : x;
    x = x > C::highest ? broadcast<T>(C::highest) : x;
    const Vec<T> shifted = x * C::log2e + C::shifter;
    const Vec<T> n = shifted - C::shifter;
    const Vec<T> r = (x - n * C::ln2_hi) - n * C::ln2_lo;
    const IntVec exponent = bit_cast<IntVec>(shifted) - bit_cast<IntVec>(broadcast<T>(C::shifter));
    scale = bit_cast<Vec<T>>((exponent + C::exponent_bias) << C::mantissa_bits);
    return r;
}

// expm1(r) = r + r^2/2! + ... + r^degree/degree!, Horner form.
template <class T> inline Vec<T> expm1_polynomial(Vec<T> r) {
    constexpr int degree = ExpConstants<T>::degree;
    T inverse_factorials[degree + 1];
    T factorial = 1;
    for (int k = 1; k <= degree; ++k) {
        factorial *= T(k);
        inverse_factorials[k] = T(1) / factorial;
    }
    Vec<T> sum = broadcast<T>(inverse_factorials[degree]);
    for (int k = degree - 1; k >= 1; --k) sum = sum * r + inverse_factorials[k];
    return sum * r;
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

// 1/d. AVX2 float: the 12-bit hardware estimate refined by one Newton step (relative error
// below 2^-22), several times the throughput of a division; otherwise a division.
template <class T> inline Vec<T> reciprocal(Vec<T> d) { return T(1) / d; }
#if defined(__AVX2__)
template <> inline Vec<float> reciprocal<float>(Vec<float> d) {
    const Vec<float> estimate = (Vec<float>)_mm256_rcp_ps((__m256)d);
    return estimate + estimate * (1.0f - d * estimate);
}
#endif

template <class T> inline Vec<T> vector_abs(Vec<T> x) {
    using IntVec = typename Simd<T>::IntVec;
    const IntVec sign = bit_cast<IntVec>(broadcast<T>(T(-0.0)));
    return bit_cast<Vec<T>>(bit_cast<IntVec>(x) & ~sign);
}

// sigmoid(x) = 1/(1+e^-x) for x >= 0 and e^x/(1+e^x) below: no overflow, relative accuracy
// for negative x too.
template <class T> inline Vec<T> vector_sigmoid(Vec<T> x) {
    const Vec<T> e = vector_exp<T>(-vector_abs<T>(x));
    const Vec<T> positive = reciprocal<T>(T(1) + e);
    return x >= T(0) ? positive : e * positive;
}

// tanh(|x|) = -u / (2 + u) with u = expm1(-2|x|), then x's sign.
template <class T> inline Vec<T> vector_tanh(Vec<T> x) {
    using IntVec = typename Simd<T>::IntVec;
    const Vec<T> u = vector_expm1<T>(T(-2) * vector_abs<T>(x));
    const Vec<T> magnitude = -u * reciprocal<T>(T(2) + u);
    const IntVec sign = bit_cast<IntVec>(broadcast<T>(T(-0.0)));
    return bit_cast<Vec<T>>(bit_cast<IntVec>(magnitude) | (bit_cast<IntVec>(x) & sign));
}

// NaN stays NaN, as in PyTorch.
template <class T> inline Vec<T> vector_relu(Vec<T> x) {
    return x < T(0) ? Vec<T>{} : x;
}
