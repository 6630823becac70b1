// gptc/rand.h -- the project's one random number generator, and its exact normal distribution.
//
// What it is: a counter-based generator: the n-th number of stream `key` is
// mix(key + n * 0x9E3779B97F4A7C15), mix the SplitMix64 finalizer. Any element of any stream can be
// computed on its own -- in parallel, in a GPU kernel, or in numpy, where uint64 arithmetic wraps
// as in C -- so the model's init, the data order, dropout's masks and sampling are reproducible
// everywhere without sharing a file or a state. Its streams, by key = stream_key(seed, k):
//   k = 0..15   the init of parameter tensor k          k = 16  the tests' random tokens
//   k = 17      dropout's pass keys (train_gpt.c)       k = 99  the sampler
//   shuffles    7777 + epoch (shard order), 1000003 * (epoch + 1) + file (sample order)
// Every draw's exact numerics are specified here: the init (below) and dropout's masks (at the end).
// What it is not: a cryptographic generator, or the C library's rand().
//
// The init specification (dev/train_gpt.py implements the same, and test_gpt checks the weights
// bit for bit): element i of a N(0, std) tensor with stream key `key` is Marsaglia's polar method
// with attempts j = 0, 1, ...: draws n = 128 i + 2 j + 1 and n = 128 i + 2 j + 2, each mapped
// exactly to (-1, 1) (uniform_pm1), accepted when s = x^2 + y^2 < 1; the value is
// float32(x * sqrt(-2 log(s) / s) * std), where log is computed from frexp and an atanh series
// with + - * / only (libm's and numpy's log differ in the last bit now and then), and no fused
// multiply-add anywhere (EXACT_FP). std is 0.02, and 0.02 / sqrt(2 L) for the two residual
// projections; biases are 0, LayerNorm weights 1, wte's padding rows 0 (train_gpt.c's table).

#ifndef GPTC_RAND_H
#define GPTC_RAND_H

#include <math.h>      // provides: frexp, sqrt
#include <stdint.h>    // provides: uint64_t, int64_t
#include "utils.h"     // provides: die

#define GOLDEN 0x9E3779B97F4A7C15ULL

// the few functions the GPU kernels share with the host (dropout's masks) carry GPT_HD
#ifdef __CUDACC__
#define GPT_HD __host__ __device__
#else
#define GPT_HD
#endif

static GPT_HD inline uint64_t mix64(uint64_t z) {
    z ^= z >> 30; z *= 0xBF58476D1CE4E5B9ULL;
    z ^= z >> 27; z *= 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return z;
}

// the key of stream k for a seed, and the n-th number of the stream with that key
static GPT_HD inline uint64_t stream_key(uint64_t seed, uint64_t k) { return mix64(mix64(seed) + k); }
static GPT_HD inline uint64_t stream_draw(uint64_t key, uint64_t n) { return mix64(key + n * GOLDEN); }

// A sequential generator for the sampler and the shuffles: a stream whose counter is its state.
typedef struct { uint64_t key, counter; } Rng;
static inline uint64_t rng_next(Rng* r) { r->counter++; return stream_draw(r->key, r->counter); }
// uniform in [0,1) with 24 random bits: exact in float
static inline float rng_uniform(Rng* r) { return (float)(rng_next(r) >> 40) * (1.0f / 16777216.0f); }

// The init must match numpy bit for bit, so no fused multiply-add may merge two roundings into
// one here (gcc contracts a*b+c into an FMA by default when the CPU has one).
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#define EXACT_FP __attribute__((optimize("fp-contract=off")))
#else
#define EXACT_FP
#endif

// log(s) for s in (0,1) from + - * / only, so that C and numpy round identically. s = m*2^e, m in
// [sqrt(1/2), sqrt(2)), and log(m) = 2*atanh(t) = 2*(t + t^3/3 + t^5/5 + ...) with
// t = (m-1)/(m+1), |t| <= 0.172: 13 terms reach double precision.
EXACT_FP static inline double log_exact(double s) {
    int e;
    double m = frexp(s, &e);
    if (m < 0.7071067811865476) { m = m * 2.0; e = e - 1; }
    double t = (m - 1.0) / (m + 1.0);
    double t2 = t * t;
    double p = 1.0 / 25.0;
    for (int d = 23; d >= 1; d -= 2) {
        double q = p * t2;
        p = q + 1.0 / (double)d;
    }
    double a = (double)e * 0.6931471805599453;
    double b = 2.0 * t;
    b = b * p;
    return a + b;
}

// uniform in (-1,1), never 0: 53 random bits with the lowest forced to 1, all steps exact
EXACT_FP static inline double uniform_pm1(uint64_t bits) {
    return (double)(int64_t)((bits >> 11) | 1) * (1.0 / 4503599627370496.0) - 1.0;
}

// element i of N(0, std) stream `key`: Marsaglia's polar method with attempts j = 0, 1, ...
EXACT_FP static inline float normal_at(uint64_t key, uint64_t i, double std) {
    for (uint64_t j = 0; j < 64; j++) {
        double x = uniform_pm1(stream_draw(key, i * 128 + 2 * j + 1));
        double y = uniform_pm1(stream_draw(key, i * 128 + 2 * j + 2));
        double xx = x * x;
        double yy = y * y;
        double s = xx + yy;
        if (s < 1.0) {
            double num = -2.0 * log_exact(s);
            double z = x * sqrt(num / s);
            return (float)(z * std);
        }
    }
    die("normal_at: 64 rejections in a row (key %llu, element %llu)", (unsigned long long)key,
        (unsigned long long)i);
    return 0.0f;
}

// ----------------------------------------------------------------------------------------------
// Dropout's masks (train_gpt.c's dropout layer). Element i of site s in one forward pass is dropped
// iff
//     stream_draw(stream_key(pass key, s), i) >> 40  <  threshold = floor(p * 2^24 + 0.5)
// (24 random bits against an integer: exact, so the backward, the GPU kernels and
// dev/train_gpt.py all draw the same mask). Sites and their element numbering:
//     0      the embeddings x = wte[token] + wpe[t]   element (b*T + t)*C + c
//     1+3l   layer l's attention probabilities        element ((b*NH + h)*T + t)*T + t2
//     2+3l   layer l's attention branch (attproj)     element (b*T + t)*C + c
//     3+3l   layer l's MLP branch (fcproj)            element (b*T + t)*C + c
// The pass key names one forward pass: dropout_pass_key(seed, n) for the run's n-th micro-batch,
// numbered n = step * ranks * A + a * ranks + rank (0-based step, micro-batch a of A on each
// rank), which is also its place in the global batch: the masks do not depend on the rank count.

#define DROPOUT_STREAM 17ULL // the pass keys' stream: stream_key(seed, 17) (16 gives the test tokens)

typedef struct {
    uint32_t threshold; // drop when the draw's top 24 bits are below it; 0: no dropout
    float scale;        // 1/(1-p): the factor of a kept element
    uint64_t key;       // the pass key
} Dropout;

static inline uint64_t dropout_pass_key(uint64_t seed, uint64_t pass) {
    return stream_draw(stream_key(seed, DROPOUT_STREAM), pass);
}

// the dropout of probability p (0 <= p <= MAX_DROPOUT; 0 = off) for the pass with key pass_key
static inline Dropout dropout_make(float p, uint64_t pass_key) {
    Dropout d;
    d.threshold = (uint32_t)((double)p * 16777216.0 + 0.5);
    d.scale = 1.0f / (1.0f - p);
    d.key = pass_key;
    return d;
}

// element i of the site with key stream_key(pass key, site) is kept
static GPT_HD inline int dropout_keep(uint64_t site_key, uint64_t i, uint32_t threshold) {
    return (uint32_t)(stream_draw(site_key, i) >> 40) >= threshold;
}

#endif // GPTC_RAND_H
