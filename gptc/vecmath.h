// gptc/vecmath.h -- the float math the CPU layers need at memory speed: e^x and a sum of squares.
//
// What it is: exp_fast, an e^x that the compiler vectorizes (the C library's expf and tanhf are
// scalar calls: they were 0.4 s of a 1.5 s d12 step in GELU alone), used by train_gpt.c's GELU
// and softmax; and sum_squares, the gradient norm's sum of 124M squares, in double and in a fixed
// order whatever the number of threads.
// What it is not: a libm. exp_fast is within 1.3 ulp of e^x on [-87, 88], and clamps outside it.

#ifndef GPTC_VECMATH_H
#define GPTC_VECMATH_H

#include <math.h>      // provides: floorf
#include <stdint.h>    // provides: int32_t
#include <string.h>    // provides: memcpy
#include "utils.h"     // provides: malloc_or_die

// e^x for float, vectorizable: x = n ln2 + r with |r| <= ln2/2, e^r by its Taylor series to r^7
// (the first omitted term, r^8/8! < 6e-9, is 0.1 ulp), 2^n put straight into the exponent bits.
// Max error 1.3 ulp over [-87, 88]; inputs outside are clamped (e^-87 ~ 1.6e-38 still normal).
static inline float exp_fast(float x) {
    // clamped to where 2^n is a normal float; a NaN becomes -87 here (every comparison with it is
    // false) so the integer arithmetic below stays defined: the NaN still reaches the caller's
    // result through its other factor (gelu: x * sigmoid)
    x = x > -87.0f ? (x < 88.0f ? x : 88.0f) : -87.0f;
    float n = floorf(x * 1.44269504088896341f + 0.5f); // round(x / ln2)
    float r = x - n * 0.693359375f;  // ln2 in two parts: the high part has 9 bits, so n*hi
    r = r + n * 2.12194440e-4f;      // is exact; hi - ln2 = 2.12194440e-4 (to float precision)
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23; // 2^n as a float: n + bias in the exponent field
    float scale;
    memcpy(&scale, &bits, sizeof(scale));
    return p * scale;
}

// Sum of squares of x (n), in double (124M squares would lose digits in float), in chunks of a
// fixed size whose sums are added in order: the same bits for any number of threads.
#define SUM_SQUARES_CHUNK 65536
static inline double sum_squares(const float* x, size_t n) {
    size_t nchunks = (n + SUM_SQUARES_CHUNK - 1) / SUM_SQUARES_CHUNK;
    double* partial = (double*)malloc_or_die((nchunks + 1) * sizeof(double));
    #pragma omp parallel for
    for (size_t k = 0; k < nchunks; k++) {
        size_t end = (k + 1) * SUM_SQUARES_CHUNK < n ? (k + 1) * SUM_SQUARES_CHUNK : n;
        double s = 0.0;
        #pragma omp simd reduction(+:s) // vector lanes: a fixed order, so still deterministic
        for (size_t i = k * SUM_SQUARES_CHUNK; i < end; i++) { s += (double)x[i] * x[i]; }
        partial[k] = s;
    }
    double total = 0.0;
    for (size_t k = 0; k < nchunks; k++) { total += partial[k]; }
    free(partial);
    return total;
}

#endif // GPTC_VECMATH_H
