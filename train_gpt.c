/*
train_gpt.c -- GPT-2 training on the CPU, in one C file.

What it is: a hand-written GPT-2 (token + position embeddings, pre-LayerNorm transformer blocks with
causal multi-head self-attention and a tanh-GELU MLP, a final LayerNorm and an lm head tied to the
token embedding) with an explicit forward and backward pass for every layer, AdamW, gradient
clipping and accumulation, dropout, a warmup + cosine learning-rate schedule, a sharded data loader,
validation, generation with a KV cache (gpt_decode), resumable checkpoints that record the run's
options, and data parallelism over processes (comm/comm.h: MPI, ZeRO-1). fp32 throughout, OpenMP
for the cores. Hugging Face GPT-2 checkpoints come in and go out through data/safetensors.h.

What it is not: a library, or a framework with autograd. Every derivative is written out by hand,
next to the forward line it differentiates.

Rules that are easy to miss:
  - Parameter gradients ACCUMULATE (+=): that is what gradient accumulation over micro-batches needs.
    gpt_update consumes them and leaves them zeroed for the next step.
  - Activation gradients are OVERWRITTEN, except the residual stream gradient, which the
    layernorm backward ADDS into: the residual stream receives gradient both through the branch
    and through the skip connection.
  - Every parallel reduction is done in a fixed order, so a run is bitwise reproducible, and a run
    resumed from a checkpoint continues bitwise-identically.
  - The model's random init does not use the C library: a counter-based generator specified in
    README.md, reproduced bit for bit by dev/train_gpt.py, so C and PyTorch start from the same
    weights without sharing a file.

This file is written in the common subset of C11 and C++ so that train_gpt.cu and test_gpt.c can
#include it (with GPT_NO_MAIN defined) and reuse the config, file formats, data loader, sampler,
CLI and the training loop instead of copying them: the loop reaches the model's math only through
a Backend table (the CPU's here, the GPU's in train_gpt.cu).
*/

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "data/tokenizer.h" // provides: Tokenizer, tokenizer_init/decode/free (GPT-2 BPE file), tok_die
#include "comm/comm.h"      // provides: g_comm (rank, size), comm_init, the collectives (MPI or one process)
#ifdef USE_JANSSON
#include "data/safetensors.h" // provides: hf_gpt2_read_config/load/save (Hugging Face GPT-2 checkpoints)
#endif

/*
Shape legend, used in every comment below:
  B batch size, T time (sequence length), C channels, NH heads, hs = C/NH head size,
  V vocabulary size, Vp V padded up to a multiple of 128, L layers, maxT the longest sequence.
*/

// ----------------------------------------------------------------------------------------------
// Errors: every failure is one line on stderr and a non-zero exit

#define die tok_die // die(fmt, ...): one line "error: ..." on stderr, exit(1) (data/tokenizer.h)

static FILE* fopen_or_die(const char* path, const char* mode) {
    FILE* f = fopen(path, mode);
    if (f == NULL) { die("%s: cannot open (%s)", path, strerror(errno)); }
    return f;
}

// Opens an input file for reading, refusing anything but a regular file (tok_open_input: a
// directory would read as "truncated", and a FIFO or a terminal would block forever).
static FILE* fopen_input_or_die(const char* path) {
    size_t size;
    int fd = tok_open_input(path, &size);
    if (fd < 0) { die("%s: cannot open (%s)", path, strerror(ENOENT)); }
    FILE* f = fdopen(fd, "rb");
    if (f == NULL) { die("%s: cannot open (%s)", path, strerror(errno)); }
    return f;
}

// reads exactly n items or names the file and says it is truncated
static void fread_or_die(void* dst, size_t size, size_t n, FILE* f, const char* path) {
    size_t got = fread(dst, size, n, f);
    if (got != n) {
        die("%s: truncated file (wanted %zu items of %zu bytes, got %zu)", path, n, size, got);
    }
}

static void fwrite_or_die(const void* src, size_t size, size_t n, FILE* f, const char* path) {
    if (fwrite(src, size, n, f) != n) { die("%s: write failed (%s)", path, strerror(errno)); }
}

// Sizes computed from untrusted numbers (file headers, model descriptors, flags) are multiplied
// only here: a product that does not fit size_t is an error naming what was being sized, never a
// wrapped-around small allocation that is later written past its end.
static size_t checked_mul(size_t a, size_t b, const char* what) {
    if (a != 0 && b > SIZE_MAX / a) { die("%s: size overflows (%zu x %zu)", what, a, b); }
    return a * b;
}
static size_t checked_add(size_t a, size_t b, const char* what) {
    if (b > SIZE_MAX - a) { die("%s: size overflows (%zu + %zu)", what, a, b); }
    return a + b;
}

static void* malloc_or_die(size_t bytes) {
    void* p = malloc(bytes);
    if (p == NULL && bytes > 0) { die("out of memory allocating %zu bytes", bytes); }
    return p;
}

static void* calloc_or_die(size_t n, size_t size) {
    void* p = calloc(n, size);
    if (p == NULL && n > 0) { die("out of memory allocating %zu bytes", n * size); }
    return p;
}

static long file_size_or_die(FILE* f, const char* path) {
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) { die("%s: cannot stat (%s)", path, strerror(errno)); }
    return (long)sb.st_size;
}

static double wall_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// ----------------------------------------------------------------------------------------------
// Random numbers. One mixing function (the splitmix64 finalizer) serves everything: the model init,
// the reference batch in the tests, data shuffling and sampling. It is counter-based: the n-th
// number of a stream is mix(key + n*GOLDEN), so any element can be computed independently, in
// parallel, and identically in numpy (uint64 arithmetic wraps in both).

#define GOLDEN 0x9E3779B97F4A7C15ULL

// the few functions the GPU kernels share with the host (the dropout masks) carry GPT_HD
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

// the key of stream k for a seed (k = parameter index for the init, 16 for the test tokens, ...)
static GPT_HD inline uint64_t stream_key(uint64_t seed, uint64_t k) { return mix64(mix64(seed) + k); }
static GPT_HD inline uint64_t stream_draw(uint64_t key, uint64_t n) { return mix64(key + n * GOLDEN); }

// A sequential generator for the sampler and the shuffles: a stream whose counter is its state.
typedef struct { uint64_t key, counter; } Rng;
static uint64_t rng_next(Rng* r) { r->counter++; return stream_draw(r->key, r->counter); }
// uniform in [0,1) with 24 random bits: exact in float
static float rng_uniform(Rng* r) { return (float)(rng_next(r) >> 40) * (1.0f / 16777216.0f); }

// The init must match numpy bit for bit, so no fused multiply-add may merge two roundings into
// one here (gcc contracts a*b+c into an FMA by default when the CPU has one).
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#define EXACT_FP __attribute__((optimize("fp-contract=off")))
#else
#define EXACT_FP
#endif

// log(s) for s in (0,1) from + - * / only, so that C and numpy round identically (libm's and
// numpy's log differ in the last bit now and then). s = m*2^e, m in [sqrt(1/2), sqrt(2)), and
// log(m) = 2*atanh(t) = 2*(t + t^3/3 + t^5/5 + ...) with t = (m-1)/(m+1), |t| <= 0.172: 13 terms
// reach double precision.
EXACT_FP static double log_exact(double s) {
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
EXACT_FP static double uniform_pm1(uint64_t bits) {
    return (double)(int64_t)((bits >> 11) | 1) * (1.0 / 4503599627370496.0) - 1.0;
}

// element i of N(0, std) stream `key`: Marsaglia's polar method with attempts j = 0, 1, ...
EXACT_FP static float normal_at(uint64_t key, uint64_t i, double std) {
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
// Layers, in network order. Each is a _forward / _backward pair; arguments: outputs, inputs, sizes.

// --- encoder: x = wte[token] + wpe[position]

static void encoder_forward(float* out, const int* inp, const float* wte, const float* wpe,
                            int B, int T, int C) {
    // out (B,T,C), inp (B,T), wte (Vp,C), wpe (maxT,C)
    #pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            float* o = out + ((size_t)b * T + t) * C;
            const float* te = wte + (size_t)inp[b * T + t] * C;
            const float* pe = wpe + (size_t)t * C;
            for (int c = 0; c < C; c++) { o[c] = te[c] + pe[c]; }
        }
    }
}

static void encoder_backward(float* dwte, float* dwpe, const float* dout, const int* inp,
                             int B, int T, int C) {
    // forward: out[b,t,:] = wte[inp[b,t],:] + wpe[t,:]
    // so dwte[inp[b,t],:] += dout[b,t,:] and dwpe[t,:] += dout[b,t,:].
    // Two positions can hold the same token, so rows of dwte collide: each thread owns a slice of
    // channels instead, and walks all positions in order (race-free and deterministic).
    #pragma omp parallel for
    for (int c0 = 0; c0 < C; c0 += 16) {
        int c1 = c0 + 16 < C ? c0 + 16 : C;
        for (int b = 0; b < B; b++) {
            for (int t = 0; t < T; t++) {
                const float* d = dout + ((size_t)b * T + t) * C;
                float* gte = dwte + (size_t)inp[b * T + t] * C;
                float* gpe = dwpe + (size_t)t * C;
                for (int c = c0; c < c1; c++) { gte[c] += d[c]; gpe[c] += d[c]; }
            }
        }
    }
}

// --- dropout (Srivastava et al., "Dropout", JMLR 2014), training only: each element is zeroed
// with probability p and the kept ones are scaled by 1/(1-p) ("inverted" dropout: the expected
// value is unchanged, so validation and generation simply skip it). Placed as in GPT-2 and
// nanoGPT: on the embedding sum, on the attention probabilities and on each residual branch just
// before its add. The masks are never stored: element i of site s in one forward pass is dropped iff
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
#define MAX_DROPOUT 0.99f    // -D: p = 1 would scale by 1/0

typedef struct {
    uint32_t threshold; // drop when the draw's top 24 bits are below it; 0: no dropout
    float scale;        // 1/(1-p): the factor of a kept element
    uint64_t key;       // the pass key
} Dropout;

static uint64_t dropout_pass_key(uint64_t seed, uint64_t pass) {
    return stream_draw(stream_key(seed, DROPOUT_STREAM), pass);
}

// the dropout of probability p (0 <= p <= MAX_DROPOUT; 0 = off) for the pass with key pass_key
static Dropout dropout_make(float p, uint64_t pass_key) {
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

// out = in * mask * 1/(1-p), element i of the n at site `site` (out may be in). The forward of a
// site, and also its backward: d(in) = d(out) * mask * 1/(1-p), the same mask on the gradient.
static void dropout_mask(float* out, const float* in, size_t n, const Dropout* d, int site) {
    uint64_t key = stream_key(d->key, (uint64_t)site);
    uint32_t threshold = d->threshold;
    float scale = d->scale;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) { out[i] = dropout_keep(key, i, threshold) ? in[i] * scale : 0.0f; }
}

// --- layernorm: y = (x - mean) * rstd * w + b, over the C channels of each position
// (PyTorch's LayerNorm: biased variance, eps = 1e-5 inside the square root)

static void layernorm_forward(float* out, float* mean, float* rstd, const float* inp,
                              const float* weight, const float* bias, int N, int C) {
    // out (N,C), mean (N), rstd (N), inp (N,C), weight (C), bias (C); N = B*T rows
    #pragma omp parallel for
    for (int i = 0; i < N; i++) {
        const float* x = inp + (size_t)i * C;
        float m = 0.0f;
        for (int c = 0; c < C; c++) { m += x[c]; }
        m = m / C;
        float v = 0.0f;
        for (int c = 0; c < C; c++) { float d = x[c] - m; v += d * d; }
        v = v / C;
        float s = 1.0f / sqrtf(v + 1e-5f);
        float* o = out + (size_t)i * C;
        for (int c = 0; c < C; c++) { o[c] = (x[c] - m) * s * weight[c] + bias[c]; }
        mean[i] = m;
        rstd[i] = s;
    }
}

static void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                               const float* inp, const float* weight, const float* mean,
                               const float* rstd, int N, int C) {
    // forward: n = (x - mean) * rstd; y = n * w + b
    // dbias += sum_i dy ; dweight += sum_i dy * n
    // dn = dy * w, and since mean and rstd depend on every x of the row:
    //   dx = rstd * (dn - mean_c(dn) - n * mean_c(dn * n))            (ADDED into dinp, see top)
    #pragma omp parallel for
    for (int i = 0; i < N; i++) {
        const float* x = inp + (size_t)i * C;
        const float* dy = dout + (size_t)i * C;
        float* dx = dinp + (size_t)i * C;
        float m = mean[i], s = rstd[i];
        float dn_mean = 0.0f, dnn_mean = 0.0f;
        for (int c = 0; c < C; c++) {
            float n = (x[c] - m) * s;
            float dn = dy[c] * weight[c];
            dn_mean += dn;
            dnn_mean += dn * n;
        }
        dn_mean = dn_mean / C;
        dnn_mean = dnn_mean / C;
        for (int c = 0; c < C; c++) {
            float n = (x[c] - m) * s;
            float dn = dy[c] * weight[c];
            dx[c] += s * (dn - dn_mean - n * dnn_mean);
        }
    }
    // the weight and bias gradients sum over rows: threads own channel slices, rows in order
    #pragma omp parallel for
    for (int c0 = 0; c0 < C; c0 += 16) {
        int c1 = c0 + 16 < C ? c0 + 16 : C;
        for (int i = 0; i < N; i++) {
            const float* x = inp + (size_t)i * C;
            const float* dy = dout + (size_t)i * C;
            for (int c = c0; c < c1; c++) {
                dbias[c] += dy[c];
                dweight[c] += dy[c] * ((x[c] - mean[i]) * rstd[i]);
            }
        }
    }
}

// --- matmul: out = inp @ weight^T + bias (weight is (OC, C), like torch.nn.Linear)
//   matmul_forward:  out (BT,OC) = inp (BT,C) @ weight^T + bias (bias may be NULL)
//   matmul_backward: dinp (BT,C) = dout @ weight (overwritten); dweight (OC,C) += dout^T @ inp;
//                    dbias (OC) += column sums of dout (accumulated; dbias may be NULL)
// These three products are ~99% of a step's arithmetic, so they get a real GEMM: developed and
// measured in dev/matmul_lab.c (naive and intermediate versions, validation, timing).

/*
 * ----------------------------------------------------------------------------
 * Fast CPU matmul: matmul_forward / matmul_backward.
 * ----------------------------------------------------------------------------
 * All three products of a Linear layer are run through one GEMM engine
 *     C (M x N)  =  init  +  A (M x K) * B (K x N)
 * whose operands are strided views of the caller's row-major arrays (only the
 * forward at BT <= MM_MV_MAXN = 8, i.e. generation, takes a matrix-vector
 * path instead: 9.):
 *
 *   product   M   N   K    A(m,k)            B(k,n)            C(m,n)
 *   forward   OC  BT  C    weight[m*C+k]     inp[n*C+k]        out[n*OC+m]    = bias[m] + ..
 *   dinp      BT  C   OC   dout[m*OC+k]      weight[k*C+n]     dinp[m*C+n]    = ..
 *   dweight   OC  C   BT   dout[k*OC+m]      inp[k*C+n]        dweight[m*C+n] += ..
 *
 * (The forward is computed transposed, out^T = weight * inp^T: that way the
 * big weight matrix is read where it is and only the small inp has to be
 * transposed; see "PACKING B".)
 *
 * 1. THE MICRO-KERNEL (registers).  A tile of MM_MR x MM_NR = 8 x 32 outputs
 *    of C is held in registers while we run over k:
 *
 *        for k:  for i < 8:  a = A(i,k)             (a scalar, broadcast)
 *                            for j < 32: acc[i][j] += a * B(k,j)
 *
 *    With AVX-512 a vector register holds 16 floats, so one row of 32
 *    accumulators is 2 registers and the tile is 16 zmm registers.  Per k we
 *    load 2 vectors of B, broadcast 8 scalars of A and issue 16 independent
 *    FMAs.  16 independent chains cover the FMA latency (4 cycles) at 1-2
 *    FMA/cycle, the 2 + 8 loads per 16 FMAs are well within the load ports,
 *    and 16 accumulators + 2 B + 1 broadcast registers fit in the 32 zmm
 *    registers without spills.  On L1-resident data the kernel runs at ~98%
 *    of the peak of a pure register FMA loop (Zen 4: one zmm FMA per cycle,
 *    split over its two 256-bit units).  8 and 32 also divide every GPT-2
 *    dimension (BT = 256, 512, 1024; C = 768, 3072; OC = 768, 2304, 3072,
 *    50304), so full-size shapes have no edge tiles at all.  (12 x 32 and
 *    8 x 48 tiles are as fast in isolation, but neither 12 nor 48 divides
 *    BT, which the forward cuts into MM_NR-wide panels and dinp into
 *    MM_MR-row tiles.)
 *    The kernel is plain C: with fixed trip counts gcc -O3 fully unrolls the
 *    i and j loops, keeps acc[][] in registers and turns the j loop into
 *    vfmadd231ps zmm (vbroadcastss for A, vmovups for B).  Without
 *    -march=native the same code becomes 4-wide SSE (mul + add); correct,
 *    just slower.
 *
 * 2. PACKING B (L2).  The vector operand B is copied into "panels" of MM_NR
 *    columns: panel p holds B(k, 32p .. 32p+31) for consecutive k,
 *    contiguous and zero-padded past N, so the kernel streams it with unit
 *    stride.  Packing also removes the TLB misses and cache-set conflicts of
 *    walking a matrix with a stride of C floats (we measured unpacked B
 *    ~10% slower).  For dinp/dweight it is a plain copy of 32-float row
 *    pieces.  For the forward B = inp^T and packing is a transpose -- of inp,
 *    the small matrix (BT x C), once per call, shared by all threads.
 *    (Packing weight^T instead, i.e. transposing all of weight on every
 *    call, makes the forward 15-20% slower: v2 in the lab.)
 *
 * 3. A IS (MOSTLY) NOT PACKED (L1).  A is only ever read one scalar at a
 *    time for a broadcast, so it is read in place: 8 rows walked along k
 *    (forward: rows of weight, dinp: rows of dout).  One "micro-panel" of A
 *    (8 x MM_KC floats = 8 KB) stays in the 32 KB L1 while it meets all the
 *    panels of B.  Exception: in dweight A(m,k) = dout[k*OC + m] is 8 floats
 *    per k with every k on another page, so that micro-panel is first
 *    gathered into an 8 KB contiguous buffer (costs ~0.5%, avoids a TLB miss
 *    per k; measured up to ~10% faster dweight at BT=1024).
 *
 * 4. THE LOOP NESTS.
 *    dinp, dweight (mm_gemm), per thread:
 *      for jc over this thread's columns, MM_NC at a time
 *        for pc over K, MM_KC at a time
 *          pack B(pc.., jc..) -> MM_KC x MM_NC floats = 512 KB, stays in L2
 *          for ic over all M, MM_MR rows at a time      (A micro-panel in L1)
 *            for jr over the panels of the block        (B panel from L2)
 *              micro-kernel on the 8 x 32 tile C(ic.., jc+jr..)
 *      The first K block starts from 0 (dinp) or the old dweight; later
 *      K blocks continue from the partial sums stored in C.
 *    forward (mm_gemm_t): the threads first pack all of inp^T together
 *      (C x BT floats), then each thread takes a range of weight rows:
 *      for each 8-row micro-panel of weight, run the kernel over all of K
 *      against every panel of inp^T and store the 8 x 32 tile transposed
 *      into out (+ bias).  K is not blocked, so each output is written
 *      exactly once; that scalar transposed store is ~2% of the time.
 *    forward at BT <= MM_MV_MAXN (mm_matvec, 9.), per thread:
 *      for each 16-row block of weight, for k0 over K, 16 at a time:
 *        load 16 rows x 16 k, transpose in registers, then for each k
 *        acc(16 rows, n) += column k * inp(n, k) for the BT vectors n.
 *
 * 5. THREADS.  mm_gemm gives each thread a contiguous range of 32-column
 *    panels of C (each packs only its own B columns and writes only its own
 *    C columns); mm_gemm_t gives each thread a range of 8-row tiles of
 *    weight; mm_matvec a range of 16-row blocks of weight.  No atomics, no
 *    reductions across threads, one barrier (after the forward's shared
 *    packing).
 *
 * 6. DETERMINISM.  Every output element is computed by exactly one thread as
 *        init, then acc = fma(A(m,k), B(k,n), acc) for k = 0, 1, ..., K-1
 *    in order (partial sums between K blocks are stored as floats and
 *    reloaded, which does not change the value).  Neither the thread that
 *    computes it nor whether it is in a full or an edge tile changes that
 *    sequence, so results are bitwise identical run to run AND for any
 *    number of threads (checked in the lab).  dbias adds the rows of dout in
 *    order bt = 0, 1, ...  The only thing that changes bits is the compiler
 *    contracting a*b+c to an fma or not (-march=native vs not).
 *    The small-BT forward (mm_matvec, 9.) computes every output by the same
 *    sequence, written the same way (acc += a * b, contracted or not
 *    together with the GEMM's), so a forward at BT = 1 gives the bits of the
 *    same row of a forward at any BT: gpt_decode's logits equal the full
 *    forward's bit for bit (test_gpt --generation-only and the lab check
 *    both).
 *
 * 7. EDGES.  Any BT, C, OC >= 1 work.  A tile that sticks out of C (M or N
 *    not a multiple of 8 / 32) runs the same kernel on zero-padded copies of
 *    its A and B pieces (on the stack, K in chunks of MM_KC) into a local
 *    tile; only the valid part is written back.  In mm_matvec the rows of a
 *    block past M re-read row M-1 (sums not stored) and the last K mod 16
 *    columns are gathered one at a time.
 *
 * 8. MEMORY.  Pointers need only the natural 4-byte alignment of float.
 *    Two scratch buffers, allocated on first use and grown when needed,
 *    never shrunk: nthreads * MM_KC * MM_NC floats (1 MB for 2 threads) for
 *    dinp/dweight, and C * roundup(BT, 32) floats (the size of inp) for the
 *    forward: 3 MB at BT=256, 12 MB at BT=1024 for the C=3072 layer.
 *    matmul_free_scratch() releases them.  Because of these static buffers,
 *    call the matmuls from serial code (not from several threads at once).
 *    Plus 8 KB (gemm) / 41 KB (edge tiles) of stack per thread.  mm_matvec
 *    needs no scratch.
 *
 * 9. SMALL BT (generation).  gpt_decode runs one position at a time: BT = 1.
 *    That product is memory-bound (each weight is read once, used once),
 *    and the 8 x 32 tile would spend 31 of every 32 FMAs on zero columns.
 *    So for BT <= MM_MV_MAXN matmul_forward calls mm_matvec, which streams
 *    each weight row once and vectorises across 16 output rows (16 x 16
 *    blocks transposed in registers).  It is built with GCC's vector
 *    extensions; other compilers (clang, nvcc's front end) keep the GEMM.
 *
 * MEASURED (2-core Zen 4, gcc 12 -O3 -march=native -fopenmp, 2 threads,
 * idle machine): forward ~200-210, dinp ~180-195, dweight ~180-195 GFLOP/s
 * for all d12 shapes at BT = 256..1024; a pure FMA loop peaks at ~216-228.
 * One d12 step's matmuls (BT=256): ~1.0 s.  The llm.c loops: ~18 s.
 */

#if defined(__GNUC__)
#define MM_INLINE static inline __attribute__((always_inline))
#else
#define MM_INLINE static inline
#endif

#define MM_MR 8     /* rows of the register tile (broadcast operand A)         */
#define MM_NR 32    /* columns of the register tile: 2 x 16-float vectors      */
#define MM_KC 256   /* K block: A micro-panel 8 x 256 floats = 8 KB (L1)       */
#define MM_NC 512   /* N block: packed B 256 x 512 floats = 512 KB (L2)        */

/* how the accumulators of a tile start */
enum {
    MM_INIT_ZERO,     /* C = sum                                              */
    MM_INIT_C,        /* C = C + sum     (one fma chain starting at old C)    */
    MM_INIT_BIAS_N,   /* C = bias[j] + sum                                    */
    MM_INIT_BIAS_M    /* C = bias[i] + sum                                    */
};

/*
 * The micro-kernel.  For i < MM_MR, j < MM_NR:
 *     C(i,j) = init(i,j) + sum_{k < kc} A(i,k) * B(k,j)
 * with A(i,k) = a[i*sam + k*sak], B(k,j) = b[k*ldb + j] and
 * C(i,j) = c[i*scm + j*scn].  It is always inlined into the small wrappers
 * below, in which the strides that are 1 are compile-time constants: gcc then
 * sees fixed trip counts, keeps acc[][] in registers and addresses A and C
 * cheaply.
 */
MM_INLINE void mm_kernel_body(int kc, const float* __restrict a, long sam, long sak,
                              const float* __restrict b, long ldb,
                              float* __restrict c, long scm, long scn,
                              int init, const float* __restrict bias) {
    float acc[MM_MR][MM_NR];
    for (int i = 0; i < MM_MR; i++) {
        for (int j = 0; j < MM_NR; j++) {
            acc[i][j] = init == MM_INIT_C ? c[i * scm + j * scn]
                      : init == MM_INIT_BIAS_N ? bias[j]
                      : init == MM_INIT_BIAS_M ? bias[i] : 0.0f;
        }
    }
    for (long k = 0; k < kc; k++) {
        const float* __restrict bk = b + k * ldb;
        for (int i = 0; i < MM_MR; i++) {
            float aik = a[i * sam + k * sak];         /* vbroadcastss          */
            for (int j = 0; j < MM_NR; j++) {
                acc[i][j] += aik * bk[j];              /* vfmadd231ps, 2 x zmm  */
            }
        }
    }
    if (scm == 1) {   /* transposed C (forward): walk memory in address order */
        for (int j = 0; j < MM_NR; j++) {
            for (int i = 0; i < MM_MR; i++) c[i + j * scn] = acc[i][j];
        }
    } else {
        for (int i = 0; i < MM_MR; i++) {
            for (int j = 0; j < MM_NR; j++) c[i * scm + j * scn] = acc[i][j];
        }
    }
}

/* A(i,k) = a[i*lda + k] (rows of A along k: dinp), C row-major */
static void mm_kernel_arows(int kc, const float* a, long lda, const float* b, long ldb,
                            float* c, long ldc, int init, const float* bias) {
    mm_kernel_body(kc, a, lda, 1, b, ldb, c, ldc, 1, init, bias);
}

/* A(i,k) = a[k*lda + i] (A contiguous along m: dweight, edge tiles), C row-major */
static void mm_kernel_acols(int kc, const float* a, long lda, const float* b, long ldb,
                            float* c, long ldc, int init, const float* bias) {
    mm_kernel_body(kc, a, 1, lda, b, ldb, c, ldc, 1, init, bias);
}

/* A(i,k) = a[i*lda + k], C transposed: C(i,j) = c[j*ldc + i] (forward) */
static void mm_kernel_arows_ct(int kc, const float* a, long lda, const float* b, long ldb,
                               float* c, long ldc, int init, const float* bias) {
    mm_kernel_body(kc, a, lda, 1, b, ldb, c, 1, ldc, init, bias);
}

/*
 * Pack B(k,n) = b[k*sbk + n*sbn] for k < kc, n < nc into panels of MM_NR
 * columns: bp[p*kc*MM_NR + k*MM_NR + j] = B(k, p*MM_NR + j), 0 for n >= nc.
 */
static void mm_pack_b(int kc, int nc, const float* b, long sbk, long sbn, float* bp) {
    int full = nc / MM_NR;                      /* panels that need no padding */
    for (int p = 0; p * MM_NR < nc; p++) {
        const float* src = b + (long)p * MM_NR * sbn;
        float* dst = bp + (long)p * kc * MM_NR;
        if (p < full && sbn == 1) {
            /* rows of B are contiguous (dinp, dweight): copy row pieces */
            for (long k = 0; k < kc; k++) {
                for (int j = 0; j < MM_NR; j++) dst[k * MM_NR + j] = src[k * sbk + j];
            }
        } else if (p < full && sbk == 1) {
            /* columns of B are contiguous (forward: B = inp^T): transpose.
               Take 8 consecutive k of each of the 32 source rows at a time:
               short contiguous reads, 8 packed rows written. */
            long k0 = 0;
            for (; k0 + 8 <= kc; k0 += 8) {
                for (int j = 0; j < MM_NR; j++) {
                    const float* s = src + j * sbn + k0;
                    for (int k = 0; k < 8; k++) dst[(k0 + k) * MM_NR + j] = s[k];
                }
            }
            for (; k0 < kc; k0++) {
                for (int j = 0; j < MM_NR; j++) dst[k0 * MM_NR + j] = src[j * sbn + k0];
            }
        } else {
            /* general strides, or the last, partial panel: zero-pad */
            int w = nc - p * MM_NR;                     /* valid columns */
            for (long k = 0; k < kc; k++) {
                for (int j = 0; j < MM_NR; j++) {
                    dst[k * MM_NR + j] = j < w ? src[k * sbk + j * sbn] : 0.0f;
                }
            }
        }
    }
}

/*
 * One mr x nr tile of C (mr <= MM_MR, nr <= MM_NR), strides as in the kernel.
 * Full tiles go straight to a kernel.  Edge tiles run the same kernel on
 * zero-padded copies of A and B and a local C tile -- per element exactly the
 * same fma sequence -- K in chunks of MM_KC so the copies fit on the stack.
 */
static void mm_tile(int kc, int mr, int nr, const float* a, long sam, long sak,
                    const float* b, long ldb, float* c, long scm, long scn,
                    int init, const float* bias) {
    if (mr == MM_MR && nr == MM_NR) {
        if (scn == 1 && sak == 1) { mm_kernel_arows(kc, a, sam, b, ldb, c, scm, init, bias); return; }
        if (scn == 1 && sam == 1) { mm_kernel_acols(kc, a, sak, b, ldb, c, scm, init, bias); return; }
        if (scm == 1 && sak == 1) { mm_kernel_arows_ct(kc, a, sam, b, ldb, c, scn, init, bias); return; }
    }
    float ctile[MM_MR * MM_NR];
    float apad[MM_KC * MM_MR];      /* apad[k*MM_MR + i] = A(i,k), 0 for i >= mr */
    float bpad[MM_KC * MM_NR];      /* bpad[k*MM_NR + j] = B(k,j), 0 for j >= nr */
    for (int i = 0; i < MM_MR; i++) {
        for (int j = 0; j < MM_NR; j++) {
            float v = 0.0f;
            if (i < mr && j < nr) {
                v = init == MM_INIT_C ? c[i * scm + j * scn]
                  : init == MM_INIT_BIAS_N ? bias[j]
                  : init == MM_INIT_BIAS_M ? bias[i] : 0.0f;
            }
            ctile[i * MM_NR + j] = v;
        }
    }
    for (long p0 = 0; p0 < kc; p0 += MM_KC) {
        int n = kc - p0 < MM_KC ? (int)(kc - p0) : MM_KC;
        for (int k = 0; k < n; k++) {
            for (int i = 0; i < MM_MR; i++) {
                apad[k * MM_MR + i] = i < mr ? a[i * sam + (p0 + k) * sak] : 0.0f;
            }
            for (int j = 0; j < MM_NR; j++) {
                bpad[k * MM_NR + j] = j < nr ? b[(p0 + k) * ldb + j] : 0.0f;
            }
        }
        mm_kernel_acols(n, apad, MM_MR, bpad, MM_NR, ctile, MM_NR, MM_INIT_C, NULL);
    }
    for (int i = 0; i < mr; i++) {
        for (int j = 0; j < nr; j++) c[i * scm + j * scn] = ctile[i * MM_NR + j];
    }
}

/* Scratch for packed B, grown on demand: buffer 0 holds the per-thread
   blocks of mm_gemm, buffer 1 the shared inp^T of the forward.  Keeping them
   apart means a thread's gemm block stays in its own core's cache from call
   to call instead of ~1 MB of lines being handed over from the other core
   after every forward.  Each is 64-byte aligned
   by hand (plain malloc, C99), so a vector load from a panel never splits a
   cache line. */
static void* mm_scratch_raw[2] = {NULL, NULL};
static float* mm_scratch[2] = {NULL, NULL};
static size_t mm_scratch_floats[2] = {0, 0};

static float* mm_get_scratch(int which, size_t floats) {
    if (floats > mm_scratch_floats[which]) {
        free(mm_scratch_raw[which]);
        mm_scratch_raw[which] = malloc(floats * sizeof(float) + 64);
        if (mm_scratch_raw[which] == NULL) { die("out of memory: matmul scratch, %zu floats of scratch", floats); }
        mm_scratch[which] = (float*)(((size_t)mm_scratch_raw[which] + 63) / 64 * 64);
        mm_scratch_floats[which] = floats;
    }
    return mm_scratch[which];
}

static void matmul_free_scratch(void) {
    for (int which = 0; which < 2; which++) {
        free(mm_scratch_raw[which]);
        mm_scratch_raw[which] = NULL;
        mm_scratch[which] = NULL;
        mm_scratch_floats[which] = 0;
    }
}

static int mm_max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* inside a parallel region: this thread's id and its share [begin, end) of count items */
static int mm_thread_share(int count, int* begin, int* end) {
#ifdef _OPENMP
    int tid = omp_get_thread_num(), nth = omp_get_num_threads();
#else
    int tid = 0, nth = 1;
#endif
    *begin = (int)((long)count * tid / nth);
    *end = (int)((long)count * (tid + 1) / nth);
    return tid;
}

/*
 * C(m,n) = init + sum_k A(m,k) B(k,n) for m < M, n < N (dinp and dweight):
 *   A(m,k) = a[m*sam + k*sak]  with sam == 1 or sak == 1
 *   B(k,n) = b[k*sbk + n*sbn]  (packed per thread, MM_KC x MM_NC at a time)
 *   C(m,n) = c[m*ldc + n]
 *   init   = the old C(m,n) if accumulate, else 0.
 * Threads split the columns of C.
 */
static void mm_gemm(int M, int N, int K, const float* a, long sam, long sak,
                    const float* b, long sbk, long sbn,
                    float* c, long ldc, int accumulate) {
    float* scratch = mm_get_scratch(0, (size_t)mm_max_threads() * MM_KC * MM_NC);
    int npanels = (N + MM_NR - 1) / MM_NR;
    #pragma omp parallel
    {
        int p_begin, p_end;
        int tid = mm_thread_share(npanels, &p_begin, &p_end);
        float* bp = scratch + (size_t)tid * MM_KC * MM_NC;
        float apack[MM_KC * MM_MR];     /* see below; 8 KB on the stack */
        int n_end = p_end * MM_NR < N ? p_end * MM_NR : N;
        for (int jc = p_begin * MM_NR; jc < n_end; jc += MM_NC) {
            int nc = n_end - jc < MM_NC ? n_end - jc : MM_NC;
            for (int pc = 0; pc < K; pc += MM_KC) {
                int kc = K - pc < MM_KC ? K - pc : MM_KC;
                mm_pack_b(kc, nc, b + pc * sbk + jc * sbn, sbk, sbn, bp);
                int init = pc > 0 || accumulate ? MM_INIT_C : MM_INIT_ZERO;
                for (int ic = 0; ic < M; ic += MM_MR) {
                    int mr = M - ic < MM_MR ? M - ic : MM_MR;
                    const float* ap = a + ic * sam + pc * sak;
                    long ask = sak;
                    if (sam == 1 && mr == MM_MR) {
                        /* dweight: A(i,k) = dout[k*OC + i] is 8 floats per k,
                           each k on another page (stride OC).  Gather the
                           micro-panel into contiguous memory once (~0.5% of
                           the work) so the kernels that reuse it do not miss
                           the TLB on every k. */
                        for (long k = 0; k < kc; k++) {
                            for (int i = 0; i < MM_MR; i++) apack[k * MM_MR + i] = ap[k * sak + i];
                        }
                        ap = apack;
                        ask = MM_MR;
                    }
                    for (int jr = 0; jr < nc; jr += MM_NR) {
                        int nr = nc - jr < MM_NR ? nc - jr : MM_NR;
                        mm_tile(kc, mr, nr, ap, sam, ask,
                                bp + (long)jr * kc, MM_NR,
                                c + (long)ic * ldc + jc + jr, ldc, 1, init, NULL);
                    }
                }
            }
        }
    }
}

/*
 * The forward as out^T (M = OC, N = BT, K = C):
 *   C(m,n) = out[n*ldo + m] = bias[m] + sum_k A(m,k) B(k,n)
 *   A(m,k) = a[m*lda + k]   (weight, read in place)
 *   B(k,n) = x[n*ldx + k]   (inp: all of it packed, transposed, shared)
 * Threads split the rows of A (8-row tiles).
 */
static void mm_gemm_t(int M, int N, int K, const float* a, long lda,
                      const float* x, long ldx, float* out, long ldo, const float* bias) {
    int npanels = (N + MM_NR - 1) / MM_NR;
    int mtiles = (M + MM_MR - 1) / MM_MR;
    float* bt = mm_get_scratch(1, (size_t)npanels * MM_NR * K);
    #pragma omp parallel
    {
        #pragma omp for schedule(static)
        for (int p = 0; p < npanels; p++) {
            int w = N - p * MM_NR < MM_NR ? N - p * MM_NR : MM_NR;
            mm_pack_b(K, w, x + (long)p * MM_NR * ldx, 1, ldx, bt + (long)p * MM_NR * K);
        }   /* implicit barrier: all of B is packed */
        int t_begin, t_end;
        mm_thread_share(mtiles, &t_begin, &t_end);
        for (int t = t_begin; t < t_end; t++) {
            int ic = t * MM_MR;
            int mr = M - ic < MM_MR ? M - ic : MM_MR;
            for (int p = 0; p < npanels; p++) {
                int nr = N - p * MM_NR < MM_NR ? N - p * MM_NR : MM_NR;
                mm_tile(K, mr, nr, a + ic * lda, lda, 1, bt + (long)p * MM_NR * K, MM_NR,
                        out + (long)p * MM_NR * ldo + ic, 1, ldo,
                        bias ? MM_INIT_BIAS_M : MM_INIT_ZERO, bias ? bias + ic : NULL);
            }
        }
    }
}

/*
 * Small BT (generation with the KV cache): a matrix-vector product.
 *   out[n*ldo + m] = bias[m] + sum_k a[m*lda + k] * x[n*ldx + k]   for n < N <= MM_MV_MAXN
 * gpt_decode runs one position at a time, so its matmuls have BT = 1.  That
 * is memory-bound -- every weight is read once and used once -- and the 8 x 32
 * tile of mm_gemm_t would spend 31 of every 32 FMAs on zero padding, plus the
 * copying of an edge tile.  Here each block of MM_MV_ROWS = 16 rows of
 * weight is streamed once: 16 rows x 16 k are loaded as 16 vectors and
 * transposed in registers, so that one vector then holds A(m..m+15, k) and
 * the 16 outputs of a column advance together, vectorised across m:
 *     acc(m..m+15, n) = acc + A(m..m+15, k) * x(n, k)    for k = 0, 1, ...
 * Each output is therefore computed as in the GEMM (6. DETERMINISM): init
 * (bias or 0), then one multiply-add per k in the order k = 0..K-1, written
 * as the same `acc += a * b` (on vectors), so the compiler contracts it to an
 * FMA exactly when it contracts the GEMM's kernel.  The vectors are explicit
 * on purpose: given the scalar loop `for k: acc += w[k] * x[k]`, gcc -O3 may
 * multiply 16 k at once (vmulps) and add the products in order -- the same
 * order, but two roundings instead of the FMA's one (measured: other bits).
 * Threads split the blocks of rows, never k.  The vector types and shuffles
 * are GCC's extensions; other compilers (clang, nvcc's front end) keep the
 * GEMM.
 */
#define MM_MV_ROWS 16   /* rows of weight per block: one vector of outputs          */
#define MM_MV_MAXN 8    /* matmul_forward takes this path for BT <= MM_MV_MAXN      */
                        /* (mm_matvec has a case for each N = 1..MM_MV_MAXN)       */

#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#define MM_HAVE_MATVEC 1
typedef float mm_v16 __attribute__((vector_size(64)));
typedef int mm_vi16 __attribute__((vector_size(64)));
#define MM_SHUFFLE(p, q, ...) __builtin_shuffle(p, q, (mm_vi16){__VA_ARGS__})

/* Transposes the 16 x 16 block r[i][j] in place.  Step d (8, 4, 2, 1) swaps
   the off-diagonal d x d sub-blocks of every 2d x 2d block: afterwards the
   rows are the former columns.  Pure data movement: 64 two-vector shuffles. */
MM_INLINE void mm_transpose16(mm_v16 r[16]) {
    for (int i = 0; i < 8; i++) {                         /* i = 0..7 */
        mm_v16 p = r[i], q = r[i + 8];
        r[i] = MM_SHUFFLE(p, q, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
        r[i + 8] = MM_SHUFFLE(p, q, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    }
    for (int i = 0; i < 16; i++) {
        if (i & 4) { continue; }                          /* i = 0..3, 8..11 */
        mm_v16 p = r[i], q = r[i + 4];
        r[i] = MM_SHUFFLE(p, q, 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
        r[i + 4] = MM_SHUFFLE(p, q, 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
    }
    for (int i = 0; i < 16; i++) {
        if (i & 2) { continue; }                          /* i = 0, 1, 4, 5, 8, 9, 12, 13 */
        mm_v16 p = r[i], q = r[i + 2];
        r[i] = MM_SHUFFLE(p, q, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29);
        r[i + 2] = MM_SHUFFLE(p, q, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
    }
    for (int i = 0; i < 16; i += 2) {                     /* i = 0, 2, 4, ..., 14 */
        mm_v16 p = r[i], q = r[i + 1];
        r[i] = MM_SHUFFLE(p, q, 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30);
        r[i + 1] = MM_SHUFFLE(p, q, 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
    }
}

/* One block: rows m < mr (<= 16) of a, all N (<= MM_MV_MAXN) vectors of x.
   Inlined with constant N, so acc[] lives in registers.  Rows past mr
   re-read row mr-1 (valid memory); their sums are not stored. */
MM_INLINE void mm_matvec_body(int N, int K, const float* a, long lda, int mr,
                              const float* x, long ldx, float* out, long ldo, const float* bias) {
    const float* row[MM_MV_ROWS];
    float init[MM_MV_ROWS];
    for (int i = 0; i < MM_MV_ROWS; i++) {
        int ri = i < mr ? i : mr - 1;
        row[i] = a + ri * lda;
        init[i] = bias != NULL ? bias[ri] : 0.0f;
    }
    mm_v16 acc[MM_MV_MAXN];
    for (int n = 0; n < N; n++) { memcpy(&acc[n], init, sizeof(acc[n])); }
    int k0 = 0;
    for (; k0 + MM_MV_ROWS <= K; k0 += MM_MV_ROWS) {
        mm_v16 col[MM_MV_ROWS];           /* rows, then (transposed) columns */
        for (int i = 0; i < MM_MV_ROWS; i++) { memcpy(&col[i], row[i] + k0, sizeof(col[i])); }
        mm_transpose16(col);
        #pragma GCC unroll 16
        for (int kk = 0; kk < MM_MV_ROWS; kk++) {
            #pragma GCC unroll 8
            for (int n = 0; n < N; n++) { acc[n] += col[kk] * x[n * ldx + k0 + kk]; }
        }
    }
    for (; k0 < K; k0++) {                /* the last K mod 16 columns */
        float c[MM_MV_ROWS];
        mm_v16 colk;
        for (int i = 0; i < MM_MV_ROWS; i++) { c[i] = row[i][k0]; }
        memcpy(&colk, c, sizeof(colk));
        for (int n = 0; n < N; n++) { acc[n] += colk * x[n * ldx + k0]; }
    }
    for (int n = 0; n < N; n++) {
        if (mr == MM_MV_ROWS) { memcpy(out + n * ldo, &acc[n], sizeof(acc[n])); continue; }
        float o[MM_MV_ROWS];
        memcpy(o, &acc[n], sizeof(o));
        for (int i = 0; i < mr; i++) { out[n * ldo + i] = o[i]; }
    }
}

/* C(m,n) = out[n*ldo + m] = bias[m] + sum_k a[m*lda + k] x[n*ldx + k], 1 <= N <= MM_MV_MAXN.
   Threads split the 16-row blocks. */
static void mm_matvec(int M, int N, int K, const float* a, long lda,
                      const float* x, long ldx, float* out, long ldo, const float* bias) {
    int mblocks = (M + MM_MV_ROWS - 1) / MM_MV_ROWS;
    #pragma omp parallel
    {
        int b_begin, b_end;
        mm_thread_share(mblocks, &b_begin, &b_end);
        for (int b = b_begin; b < b_end; b++) {
            int m0 = b * MM_MV_ROWS;
            int mr = M - m0 < MM_MV_ROWS ? M - m0 : MM_MV_ROWS;
            const float* ab = a + m0 * lda;
            const float* bb = bias != NULL ? bias + m0 : NULL;
            switch (N) {   /* constant N: each case is its own unrolled copy */
            case 1: mm_matvec_body(1, K, ab, lda, mr, x, ldx, out + m0, ldo, bb); break;
            case 2: mm_matvec_body(2, K, ab, lda, mr, x, ldx, out + m0, ldo, bb); break;
            case 3: mm_matvec_body(3, K, ab, lda, mr, x, ldx, out + m0, ldo, bb); break;
            case 4: mm_matvec_body(4, K, ab, lda, mr, x, ldx, out + m0, ldo, bb); break;
            case 5: mm_matvec_body(5, K, ab, lda, mr, x, ldx, out + m0, ldo, bb); break;
            case 6: mm_matvec_body(6, K, ab, lda, mr, x, ldx, out + m0, ldo, bb); break;
            case 7: mm_matvec_body(7, K, ab, lda, mr, x, ldx, out + m0, ldo, bb); break;
            case 8: mm_matvec_body(8, K, ab, lda, mr, x, ldx, out + m0, ldo, bb); break;
            }
        }
    }
}
#endif

static void matmul_forward(float* out, const float* inp, const float* weight, const float* bias,
                    int BT, int C, int OC) {
    /* out^T (OC x BT) = weight (OC x C) @ inp^T (C x BT) + bias */
#ifdef MM_HAVE_MATVEC
    if (BT <= MM_MV_MAXN) { mm_matvec(OC, BT, C, weight, C, inp, C, out, OC, bias); return; }
#endif
    mm_gemm_t(OC, BT, C, weight, C, inp, C, out, OC, bias);
}

/* dinp (BT x C) = dout (BT x OC) @ weight (OC x C), overwritten */
static void mm_backward_dinp(float* dinp, const float* dout, const float* weight,
                             int BT, int C, int OC) {
    mm_gemm(BT, C, OC, dout, OC, 1, weight, C, 1, dinp, C, 0);
}

/* dweight (OC x C) += dout^T (OC x BT) @ inp (BT x C);  dbias (OC) += sum_bt dout */
static void mm_backward_dweight(float* dweight, float* dbias, const float* dout,
                                const float* inp, int BT, int C, int OC) {
    mm_gemm(OC, C, BT, dout, 1, OC, inp, C, 1, dweight, C, 1);
    if (dbias != NULL) {
        /* threads own ranges of o; rows are added in order bt = 0, 1, ...
           (deterministic), vectorised along o */
        #pragma omp parallel for schedule(static)
        for (int o0 = 0; o0 < OC; o0 += 256) {
            int o1 = o0 + 256 < OC ? o0 + 256 : OC;
            for (int bt = 0; bt < BT; bt++) {
                const float* d = dout + (long)bt * OC;
                for (int o = o0; o < o1; o++) dbias[o] += d[o];
            }
        }
    }
}

static void matmul_backward(float* dinp, float* dweight, float* dbias,
                     const float* dout, const float* inp, const float* weight,
                     int BT, int C, int OC) {
    mm_backward_dinp(dinp, dout, weight, BT, C, OC);
    mm_backward_dweight(dweight, dbias, dout, inp, BT, C, OC);
}

// --- attention: causal multi-head self-attention over qkv = [q | k | v]

// One query row of one head: a (n) = softmax(scale * q . k_j) over the keys j = 0..n-1, then
// o (hs) = sum_j a_j v_j. Key j is at keys + j*stride, value j at values + j*stride. Shared by
// the training forward and generation (gpt_decode), so the two compute the same bits. With
// dropout (drop not NULL) a_j enters o as dropout's a_j * mask_j / (1-p), mask_j the keep of
// element first + j at the site with key site_key; a keeps the probabilities before dropout.
static inline void attention_row(float* o, float* a, const float* q, const float* keys, const float* values,
                                 size_t stride, int n, int hs, float scale,
                                 const Dropout* drop, uint64_t site_key, uint64_t first) {
    // scores against the keys, shifted by their max for a stable softmax
    float maxval = -INFINITY;
    for (int j = 0; j < n; j++) {
        const float* k = keys + (size_t)j * stride;
        float s = 0.0f;
        for (int i = 0; i < hs; i++) { s += q[i] * k[i]; }
        s *= scale;
        a[j] = s;
        if (s > maxval) { maxval = s; }
    }
    float sum = 0.0f;
    for (int j = 0; j < n; j++) { a[j] = expf(a[j] - maxval); sum += a[j]; }
    float inv = 1.0f / sum;
    for (int j = 0; j < n; j++) { a[j] *= inv; }
    // out = att @ v
    for (int i = 0; i < hs; i++) { o[i] = 0.0f; }
    for (int j = 0; j < n; j++) {
        const float* v = values + (size_t)j * stride;
        float w = a[j];
        if (drop != NULL) { w = dropout_keep(site_key, first + (uint64_t)j, drop->threshold) ? w * drop->scale : 0.0f; }
        for (int i = 0; i < hs; i++) { o[i] += w * v[i]; }
    }
}

static void attention_forward(float* out, float* att, const float* qkv, int B, int T, int C,
                              int NH, const Dropout* drop, int site) {
    // out (B,T,C) the heads' outputs side by side, att (B,NH,T,T) probabilities (0 above the
    // diagonal; before dropout), qkv (B,T,3C): position t of head h reads q at channel h*hs, k at
    // C + h*hs, v at 2C + h*hs. drop: dropout on the probabilities at `site`, or NULL.
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    uint64_t site_key = drop != NULL ? stream_key(drop->key, (uint64_t)site) : 0;
    #pragma omp parallel for collapse(3)
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            for (int h = 0; h < NH; h++) {
                const float* row0 = qkv + (size_t)b * T * 3 * C; // position 0 of sequence b
                float* a = att + (((size_t)b * NH + h) * T + t) * T;
                // causal: keys and values of positions 0..t
                attention_row(out + ((size_t)b * T + t) * C + h * hs, a, row0 + (size_t)t * 3 * C + h * hs,
                              row0 + C + h * hs, row0 + 2 * C + h * hs, 3 * (size_t)C, t + 1, hs, scale,
                              drop, site_key, (((size_t)b * NH + h) * T + t) * T);
                for (int t2 = t + 1; t2 < T; t2++) { a[t2] = 0.0f; }
            }
        }
    }
}

static void attention_backward(float* dqkv, float* drow, const float* dout, const float* qkv,
                               const float* att, int B, int T, int C, int NH, const Dropout* drop, int site) {
    // dqkv (B,T,3C) overwritten, drow (B*NH,T) scratch, dout (B,T,C), att (B,NH,T,T)
    // forward, per (b,h,t):  s[t2] = scale * q[t].k[t2];  a = softmax(s);  o[t] = sum a[t2] v[t2]
    //   dv[t2] += a[t2] * do[t]              da[t2] = do[t].v[t2]
    //   ds[t2] = a[t2] * (da[t2] - sum_j a[j] da[j])          (softmax backward)
    //   dq[t] += scale * sum_t2 ds[t2] k[t2]    dk[t2] += scale * ds[t2] q[t]
    // With dropout o[t] = sum a'[t2] v[t2], a' = a * mask / (1-p): dv takes a', and
    // da[t2] = (do[t].v[t2]) * mask / (1-p) is the gradient of a (the mask's backward).
    // A (b,h) pair owns its head's channels of q, k and v, so threads split over (b,h): no races.
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    uint64_t site_key = drop != NULL ? stream_key(drop->key, (uint64_t)site) : 0;
    #pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            float* da = drow + ((size_t)b * NH + h) * T;
            for (int t = 0; t < T; t++) {
                float* g = dqkv + ((size_t)b * T + t) * 3 * C + h * hs;
                for (int i = 0; i < hs; i++) { g[i] = 0.0f; g[C + i] = 0.0f; g[2 * C + i] = 0.0f; }
            }
            for (int t = 0; t < T; t++) {
                const float* a = att + (((size_t)b * NH + h) * T + t) * T;
                const float* d = dout + ((size_t)b * T + t) * C + h * hs;
                const float* q = qkv + ((size_t)b * T + t) * 3 * C + h * hs;
                float* dq = dqkv + ((size_t)b * T + t) * 3 * C + h * hs;
                float dot = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float* v = qkv + ((size_t)b * T + t2) * 3 * C + 2 * C + h * hs;
                    float* dv = dqkv + ((size_t)b * T + t2) * 3 * C + 2 * C + h * hs;
                    float f = 1.0f; // dropout's factor of a[t2]: 1/(1-p) kept, 0 dropped (1: no dropout)
                    if (drop != NULL) {
                        size_t e = (((size_t)b * NH + h) * T + t) * T + t2;
                        f = dropout_keep(site_key, e, drop->threshold) ? drop->scale : 0.0f;
                    }
                    float w = a[t2] * f, s = 0.0f;
                    for (int i = 0; i < hs; i++) { s += d[i] * v[i]; dv[i] += w * d[i]; }
                    s *= f;
                    da[t2] = s;
                    dot += a[t2] * s;
                }
                for (int t2 = 0; t2 <= t; t2++) {
                    const float* k = qkv + ((size_t)b * T + t2) * 3 * C + C + h * hs;
                    float* dk = dqkv + ((size_t)b * T + t2) * 3 * C + C + h * hs;
                    float ds = scale * a[t2] * (da[t2] - dot);
                    for (int i = 0; i < hs; i++) { dq[i] += ds * k[i]; dk[i] += ds * q[i]; }
                }
            }
        }
    }
}

// --- gelu, tanh approximation (Hendrycks & Gimpel, "Gaussian Error Linear Units", eq. 2)
//   y = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
// Since 1 + tanh(u) = 2 sigmoid(2u), this is y = x * s with s = 1 / (1 + exp(-2u)): the same
// function without tanh's cancellation near -1, and with an exp that vectorizes (below), where
// the C library's tanhf is a scalar call (it was 0.4 s of a 1.5 s d12 step).

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

#define GELU_SCALE 0.7978845608028654f // sqrt(2/pi)

static void gelu_forward(float* out, const float* inp, size_t N) {
    #pragma omp parallel for simd
    for (size_t i = 0; i < N; i++) {
        float x = inp[i];
        float u = GELU_SCALE * (x + 0.044715f * x * x * x);
        out[i] = x / (1.0f + exp_fast(-2.0f * u));
    }
}

static void gelu_backward(float* dinp, const float* inp, const float* dout, size_t N) {
    // y = x s, s = sigmoid(2u):  dy/dx = s + x * ds/dx = s + 2 x s (1 - s) du/dx,
    // du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2). (dinp may alias dout: read before written.)
    #pragma omp parallel for simd
    for (size_t i = 0; i < N; i++) {
        float x = inp[i];
        float u = GELU_SCALE * (x + 0.044715f * x * x * x);
        float s = 1.0f / (1.0f + exp_fast(-2.0f * u));
        float du = GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] = dout[i] * (s + 2.0f * x * s * (1.0f - s) * du);
    }
}

// --- residual: out = a + b (its backward is the identity for both inputs: no function needed)

static void residual_forward(float* out, const float* a, const float* b, size_t N) {
    #pragma omp parallel for
    for (size_t i = 0; i < N; i++) { out[i] = a[i] + b[i]; }
}

// --- softmax + cross-entropy, fused: loss = logsumexp(logits) - logits[target]

static void crossentropy_forward(float* losses, float* lse, const float* logits,
                                 const int* targets, int N, int V, int Vp) {
    // losses (N), lse (N) log-sum-exp kept for the backward, logits (N,Vp) of which the first V
    // columns are real (the padding is ignored). The sums are vectorized (omp simd): their order
    // is fixed by the compiler, so results are still the same run to run.
    #pragma omp parallel for
    for (int i = 0; i < N; i++) {
        const float* l = logits + (size_t)i * Vp;
        float maxval = -INFINITY;
        #pragma omp simd reduction(max:maxval)
        for (int v = 0; v < V; v++) { maxval = l[v] > maxval ? l[v] : maxval; }
        float sum = 0.0f;
        #pragma omp simd reduction(+:sum)
        for (int v = 0; v < V; v++) { sum += exp_fast(l[v] - maxval); }
        lse[i] = maxval + logf(sum);
        losses[i] = lse[i] - l[targets[i]];
    }
}

static void crossentropy_backward(float* dlogits, const float* logits, const float* lse,
                                  const int* targets, float dloss, int N, int V, int Vp) {
    // d loss_i / d logits[i,v] = softmax(logits)[v] - [v == target]; each loss_i enters the mean
    // with weight dloss. dlogits may alias logits (each element read before written). Padded
    // columns get 0, so the padded rows of wte receive no gradient from the lm head.
    #pragma omp parallel for
    for (int i = 0; i < N; i++) {
        const float* l = logits + (size_t)i * Vp;
        float* dl = dlogits + (size_t)i * Vp;
        float m = lse[i];
        #pragma omp simd
        for (int v = 0; v < V; v++) { dl[v] = exp_fast(l[v] - m) * dloss; }
        dl[targets[i]] -= dloss;
        for (int v = V; v < Vp; v++) { dl[v] = 0.0f; }
    }
}

// ----------------------------------------------------------------------------------------------
// The model

typedef struct {
    int max_seq_len;       // maxT
    int vocab_size;        // V
    int padded_vocab_size; // Vp: V rounded up to a multiple of 128 (faster matmuls; extra rows 0)
    int num_layers;        // L
    int num_heads;         // NH
    int channels;          // C
} GPTConfig;

// The parameter table: names, shapes, init and weight decay, in file order. Everything about
// parameters (struct fields, sizes, pointers, init, decay, checkpoint order) is generated from it.
enum { INIT_ZEROS, INIT_ONES, INIT_NORMAL, INIT_RESIDUAL };
//   name      shape (unused dims 1)      init           decay
#define GPT_PARAMETERS(X)                                          \
    X(wte,      Vp,   C,     1,     INIT_NORMAL,   1)              \
    X(wpe,      maxT, C,     1,     INIT_NORMAL,   1)              \
    X(ln1w,     L,    C,     1,     INIT_ONES,     0)              \
    X(ln1b,     L,    C,     1,     INIT_ZEROS,    0)              \
    X(qkvw,     L,    3 * C, C,     INIT_NORMAL,   1)              \
    X(qkvb,     L,    3 * C, 1,     INIT_ZEROS,    0)              \
    X(attprojw, L,    C,     C,     INIT_RESIDUAL, 1)              \
    X(attprojb, L,    C,     1,     INIT_ZEROS,    0)              \
    X(ln2w,     L,    C,     1,     INIT_ONES,     0)              \
    X(ln2b,     L,    C,     1,     INIT_ZEROS,    0)              \
    X(fcw,      L,    4 * C, C,     INIT_NORMAL,   1)              \
    X(fcb,      L,    4 * C, 1,     INIT_ZEROS,    0)              \
    X(fcprojw,  L,    C,     4 * C, INIT_RESIDUAL, 1)              \
    X(fcprojb,  L,    C,     1,     INIT_ZEROS,    0)              \
    X(lnfw,     C,    1,     1,     INIT_ONES,     0)              \
    X(lnfb,     C,    1,     1,     INIT_ZEROS,    0)

#define X_FIELD(name, d0, d1, d2, init, decay) float* name;
typedef struct { GPT_PARAMETERS(X_FIELD) } ParameterTensors;
#define X_COUNT(name, d0, d1, d2, init, decay) +1
enum { NUM_PARAMETER_TENSORS = 0 GPT_PARAMETERS(X_COUNT) };

typedef struct {
    const char* name;
    size_t dims[3];
    size_t size;
    int init;
    int decay;
} ParamSpec;

// Fills the table for a config. The sizes are products of the config's numbers, which may come
// from a file header: they go through checked_mul (config_validate's bounds keep them far from
// overflow, but the table is the one place every size is computed, so it checks anyway).
static void param_specs(ParamSpec* specs, const GPTConfig* cfg) {
    size_t Vp = (size_t)cfg->padded_vocab_size, C = (size_t)cfg->channels;
    size_t L = (size_t)cfg->num_layers, maxT = (size_t)cfg->max_seq_len;
    (void)Vp; (void)L; (void)maxT;
    int i = 0;
#define X_SPEC(name_, d0, d1, d2, init_, decay_)                                           \
    specs[i].name = #name_;                                                              \
    specs[i].dims[0] = (d0); specs[i].dims[1] = (d1); specs[i].dims[2] = (d2);           \
    specs[i].size = checked_mul(checked_mul((size_t)(d0), (size_t)(d1), "parameter " #name_), \
                                (size_t)(d2), "parameter " #name_);                      \
    specs[i].init = init_; specs[i].decay = decay_; i++;
    GPT_PARAMETERS(X_SPEC)
#undef X_SPEC
}

// points each named tensor at its slice of one contiguous block
static void param_pointers(ParameterTensors* t, float* memory, const ParamSpec* specs) {
    float** ptrs[NUM_PARAMETER_TENSORS];
    int i = 0;
#define X_PTR(name, d0, d1, d2, init, decay) ptrs[i++] = &t->name;
    GPT_PARAMETERS(X_PTR)
#undef X_PTR
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) { *ptrs[k] = memory; memory += specs[k].size; }
}

// The activations of one forward pass, sized for (B,T). Per-layer tensors are stacked over L.
//   name       elements
#define GPT_ACTIVATIONS(X)            \
    X(encoded,   B * T * C)           \
    X(ln1,       L * B * T * C)       \
    X(ln1_mean,  L * B * T)           \
    X(ln1_rstd,  L * B * T)           \
    X(qkv,       L * B * T * 3 * C)   \
    X(att,       L * B * NH * T * T)  \
    X(atty,      L * B * T * C)       \
    X(attproj,   L * B * T * C)       \
    X(residual2, L * B * T * C)       \
    X(ln2,       L * B * T * C)       \
    X(ln2_mean,  L * B * T)           \
    X(ln2_rstd,  L * B * T)           \
    X(fch,       L * B * T * 4 * C)   \
    X(fch_gelu,  L * B * T * 4 * C)   \
    X(fcproj,    L * B * T * C)       \
    X(residual3, L * B * T * C)       \
    X(lnf,       B * T * C)           \
    X(lnf_mean,  B * T)               \
    X(lnf_rstd,  B * T)               \
    X(logits,    B * T * Vp)          \
    X(losses,    B * T)               \
    X(lse,       B * T)

// The backward needs only a few activation-gradient buffers, reused layer after layer.
#define GPT_BACKWARD_SCRATCH(X)       \
    X(dresidual, B * T * C)  /* gradient of the residual stream */   \
    X(dx,        B * T * C)  /* d of a layernorm output / attention output */ \
    X(dqkv,      B * T * 3 * C)       \
    X(dfch,      B * T * 4 * C)       \
    X(drow,      B * NH * T) /* attention backward: one row of d(probabilities) per (b,h) */ \
    X(dbranch,   B * T * C)  /* a residual branch's gradient through its dropout mask */

#define X_ACT_FIELD(name, n) float* name;
typedef struct { GPT_ACTIVATIONS(X_ACT_FIELD) } ActivationTensors;
typedef struct { GPT_BACKWARD_SCRATCH(X_ACT_FIELD) } BackwardScratch;

// sizes each buffer for (B,T) and points it into `memory`, or just counts when memory is NULL
#define X_ACT_CARVE(name, n) t->name = memory != NULL ? memory + total : NULL; total += (size_t)(n);
static size_t activation_pointers(ActivationTensors* t, float* memory, const GPTConfig* cfg,
                                  size_t B, size_t T) {
    size_t C = cfg->channels, L = cfg->num_layers, NH = cfg->num_heads, Vp = cfg->padded_vocab_size;
    size_t total = 0;
    GPT_ACTIVATIONS(X_ACT_CARVE)
    return total;
}
static size_t scratch_pointers(BackwardScratch* t, float* memory, const GPTConfig* cfg,
                               size_t B, size_t T) {
    size_t C = cfg->channels, NH = cfg->num_heads;
    size_t total = 0;
    GPT_BACKWARD_SCRATCH(X_ACT_CARVE)
    return total;
}
#undef X_ACT_CARVE

typedef struct {
    GPTConfig config;
    ParamSpec specs[NUM_PARAMETER_TENSORS];
    size_t num_parameters;
    ParameterTensors params;   float* params_memory;
    ParameterTensors grads;    float* grads_memory;   // allocated at the first backward
    float* m_memory;           float* v_memory;       // AdamW moments, allocated at the first update
    ActivationTensors acts;    float* acts_memory;    // allocated at the first forward
    BackwardScratch scratch;   float* scratch_memory; // allocated at the first backward
    int alloc_B, alloc_T;      // the (B,T) the activations were allocated for
    int B, T;                  // the (B,T) of the last forward
    int* inputs;  int* targets; // (alloc_B, alloc_T) copies of the last forward's batch
    int has_targets;
    float mean_loss;           // of the last forward with targets
    // Data parallelism (comm/comm.h): this rank's AdamW state covers the flat parameters
    // [shard_begin, shard_end): all of them, or with ZeRO-1 (zero = 1) its shard of g_comm.size
    int zero;
    size_t shard_begin, shard_end;
    // Dropout: `dropout` is what the next forwards apply (the training loop sets it for each
    // micro-batch; evaluate and generate clear it: threshold 0); a forward copies it to
    // `fwd_dropout`, whose masks its backward then uses
    Dropout dropout, fwd_dropout;
    float* kv_memory;          // generation (gpt_decode): keys and values (2, L, maxT, C), then scratch
    void* device;              // the backend's own state (train_gpt.cu: the model on the GPU)
} GPT;

// Upper bounds on a model's sizes, each with its reason. Within them every size below fits size_t
// and every count the layers keep in an int (rows B*T, channels up to 4C or Vp) fits an int.
#define MAX_LAYERS 1024             // GPT-2 XL has 48: a deeper model here is a typo
#define MAX_CHANNELS 65536          // C: GPT-2 XL has 1600; 4C stays far below INT_MAX
#define MAX_SEQ_LEN (1 << 20)       // maxT: GPT-2 has 1024; attention's T^2 per head must fit memory
#define MAX_VOCAB 65536             // V: token shards store ids as uint16
#define MAX_PADDED_VOCAB (MAX_VOCAB + 128)
#define MAX_PARAMETERS (1ULL << 34) // 16 G floats (64 GiB for the weights alone): past any machine
                                    // this trains on; GPT-2 XL has 1.6 G

// The sizes of a config that did not come from our own code (a file header, a descriptor): every
// field in range, so that param_specs and the activation sizes cannot overflow.
static void config_validate(const GPTConfig* c, const char* where) {
    if (c->max_seq_len <= 0 || c->vocab_size <= 0 || c->num_layers <= 0 || c->num_heads <= 0 ||
        c->channels <= 0 || c->padded_vocab_size <= 0) {
        die("%s: model sizes must be positive (maxT=%d V=%d L=%d NH=%d C=%d Vp=%d)", where,
            c->max_seq_len, c->vocab_size, c->num_layers, c->num_heads, c->channels, c->padded_vocab_size);
    }
    if (c->num_layers > MAX_LAYERS) { die("%s: L=%d layers is more than the limit %d", where, c->num_layers, MAX_LAYERS); }
    if (c->channels > MAX_CHANNELS) { die("%s: C=%d channels is more than the limit %d", where, c->channels, MAX_CHANNELS); }
    if (c->max_seq_len > MAX_SEQ_LEN) { die("%s: maxT=%d is more than the limit %d", where, c->max_seq_len, MAX_SEQ_LEN); }
    if (c->vocab_size > MAX_VOCAB) { die("%s: V=%d does not fit uint16 token shards (limit %d)", where, c->vocab_size, MAX_VOCAB); }
    if (c->channels % c->num_heads != 0) {
        die("%s: channels C=%d is not divisible by heads NH=%d", where, c->channels, c->num_heads);
    }
    if (c->padded_vocab_size < c->vocab_size || c->padded_vocab_size > MAX_PADDED_VOCAB) {
        die("%s: padded vocab Vp=%d must be in [V=%d, %d]", where, c->padded_vocab_size, c->vocab_size, MAX_PADDED_VOCAB);
    }
    // the total in double: exact far past the bound, so this cannot overflow itself
    double C = c->channels, L = c->num_layers;
    double n = ((double)c->padded_vocab_size + c->max_seq_len) * C + L * (12.0 * C * C + 13.0 * C) + 2.0 * C;
    if (n > (double)MAX_PARAMETERS) {
        die("%s: %.3g parameters is more than the limit %.3g (L=%d C=%d maxT=%d Vp=%d)", where, n,
            (double)MAX_PARAMETERS, c->num_layers, c->channels, c->max_seq_len, c->padded_vocab_size);
    }
}

// The parameter table and count of a validated config; the weights are not allocated yet, so a
// loader can compare the size a header implies with the file's real size first.
static void gpt_setup_table(GPT* model, const GPTConfig* cfg) {
    memset(model, 0, sizeof(*model));
    model->config = *cfg;
    param_specs(model->specs, cfg);
    model->num_parameters = 0;
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        model->num_parameters = checked_add(model->num_parameters, model->specs[k].size, "parameter count");
    }
    model->shard_begin = 0; model->shard_end = model->num_parameters; // set_zero narrows it
}

// the table, then one block for the weights
static void gpt_setup(GPT* model, const GPTConfig* cfg) {
    gpt_setup_table(model, cfg);
    model->params_memory = (float*)malloc_or_die(checked_mul(model->num_parameters, sizeof(float), "weights"));
    param_pointers(&model->params, model->params_memory, model->specs);
}

// "d12" or "L3H5C60T17V311" (letter + number pairs: L layers, H heads, C channels, T maxT, V vocab;
// each letter at most once). Returns NULL, or what is wrong with desc.
static const char* parse_descriptor(GPTConfig* cfg, const char* desc) {
    GPTConfig c;
    c.max_seq_len = 1024; c.vocab_size = 50257; c.num_layers = 0; c.num_heads = 0; c.channels = 0;
    if (desc[0] == 'd' && isdigit((unsigned char)desc[1])) {
        char* end;
        errno = 0;
        long n = strtol(desc + 1, &end, 10);
        if (errno != 0 || *end != '\0' || n <= 0 || n > MAX_LAYERS) { return "dN needs N in [1, 1024]"; }
        c.num_layers = (int)n;
        if (n == 12)      { c.num_heads = 12; c.channels = 768; }
        else if (n == 24) { c.num_heads = 16; c.channels = 1024; }
        else if (n == 36) { c.num_heads = 20; c.channels = 1280; }
        else if (n == 48) { c.num_heads = 25; c.channels = 1600; }
        else              { c.num_heads = (int)n; c.channels = 64 * (int)n; }
    } else {
        const char* p = desc;
        char seen[8] = {0};
        int nseen = 0;
        if (*p == '\0') { return "empty"; }
        while (*p != '\0') {
            char key = *p++;
            if (strchr("LHCTV", key) == NULL) { return "letters are L, H, C, T, V"; }
            if (memchr(seen, key, (size_t)nseen) != NULL) { return "a letter appears twice"; }
            seen[nseen++] = key;
            if (!isdigit((unsigned char)*p)) { return "each letter needs a number"; }
            char* end;
            errno = 0;
            long n = strtol(p, &end, 10);
            if (errno != 0 || n <= 0 || n > 1000000000L) { return "a number is out of range"; }
            p = end;
            if (key == 'L') { c.num_layers = (int)n; }
            else if (key == 'H') { c.num_heads = (int)n; }
            else if (key == 'C') { c.channels = (int)n; }
            else if (key == 'T') { c.max_seq_len = (int)n; }
            else { c.vocab_size = (int)n; }
        }
        if (c.num_layers == 0 || c.num_heads == 0 || c.channels == 0) { return "L, H and C are required"; }
    }
    c.padded_vocab_size = ((c.vocab_size + 127) / 128) * 128;
    *cfg = c;
    return NULL;
}

// fresh weights from the counter-based generator (see the README's "Initialization" section)
static void gpt_init_weights(GPT* model, uint64_t seed) {
    const GPTConfig* cfg = &model->config;
    float* p = model->params_memory;
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        const ParamSpec* s = &model->specs[k];
        size_t n = s->size;
        if (s->init == INIT_ZEROS || s->init == INIT_ONES) {
            float value = s->init == INIT_ONES ? 1.0f : 0.0f;
            for (size_t i = 0; i < n; i++) { p[i] = value; }
        } else {
            double std = 0.02;
            if (s->init == INIT_RESIDUAL) { std = 0.02 / sqrt(2.0 * cfg->num_layers); }
            // wte: only the V real rows are random; the padding rows stay 0
            size_t nrand = k == 0 ? (size_t)cfg->vocab_size * cfg->channels : n;
            uint64_t key = stream_key(seed, (uint64_t)k);
            #pragma omp parallel for
            for (size_t i = 0; i < nrand; i++) { p[i] = normal_at(key, i, std); }
            for (size_t i = nrand; i < n; i++) { p[i] = 0.0f; }
        }
        p += n;
    }
}

static void gpt_build_from_descriptor(GPT* model, const char* desc, uint64_t seed) {
    GPTConfig cfg;
    const char* why = parse_descriptor(&cfg, desc);
    if (why != NULL) {
        die("-e %s: not a model file and not a descriptor (%s; use d12, d24, ... or e.g. L4H4C256T1024V50257)",
            desc, why);
    }
    char where[4200];
    snprintf(where, sizeof(where), "-e %s", desc);
    config_validate(&cfg, where);
    gpt_setup(model, &cfg);
    gpt_init_weights(model, seed);
}

// A loaded tensor must be finite: a NaN or inf in a file would train silently into NaN.
// Returns the index of the first non-finite element, or n.
static size_t first_nonfinite(const float* x, size_t n) {
    size_t bad = n;
    #pragma omp parallel for reduction(min:bad)
    for (size_t i = 0; i < n; i++) { if (!isfinite(x[i]) && i < bad) { bad = i; } }
    return bad;
}

// the name of the parameter tensor that holds element i of the flat parameter block
static const char* param_name_at(const GPT* model, size_t i) {
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        if (i < model->specs[k].size) { return model->specs[k].name; }
        i -= model->specs[k].size;
    }
    return "?";
}

// Model file (llm.c's layout): int32 header[256] = {20240326, 3 (fp32), maxT, V, L, NH, C, Vp, 0...}
// then every parameter as float32 in table order.
#define MODEL_MAGIC 20240326
#define MODEL_VERSION_FP32 3

static void gpt_build_from_checkpoint(GPT* model, const char* path) {
    FILE* f = fopen_input_or_die(path);
    long fsize = file_size_or_die(f, path);
    int header[256];
    if (fsize < (long)sizeof(header)) { die("%s: truncated model file (%ld bytes, header is 1024)", path, fsize); }
    fread_or_die(header, sizeof(int), 256, f, path);
    if (header[0] != MODEL_MAGIC) {
        die("%s: bad magic %d in model file (expected %d; is this an llm.c/train_gpt model file?)",
            path, header[0], MODEL_MAGIC);
    }
    if (header[1] != MODEL_VERSION_FP32) {
        die("%s: model file version %d not supported (expected %d = fp32%s)", path, header[1],
            MODEL_VERSION_FP32, header[1] == 5 ? "; version 5 is llm.c's bf16 export" : "");
    }
    GPTConfig cfg;
    cfg.max_seq_len = header[2]; cfg.vocab_size = header[3]; cfg.num_layers = header[4];
    cfg.num_heads = header[5]; cfg.channels = header[6]; cfg.padded_vocab_size = header[7];
    config_validate(&cfg, path);
    // the size the header implies, against the real size, before anything is allocated
    gpt_setup_table(model, &cfg);
    size_t expect = checked_add(sizeof(header), checked_mul(model->num_parameters, sizeof(float), path), path);
    if ((size_t)fsize != expect) {
        die("%s: model file is %ld bytes, expected %zu for this config (truncated or wrong file)",
            path, fsize, expect);
    }
    gpt_setup(model, &cfg);
    fread_or_die(model->params_memory, sizeof(float), model->num_parameters, f, path);
    fclose(f);
    size_t bad = first_nonfinite(model->params_memory, model->num_parameters);
    if (bad < model->num_parameters) {
        die("%s: parameter %zu (in %s) is %g: the file holds non-finite weights (a diverged run?)", path,
            bad, param_name_at(model, bad), (double)model->params_memory[bad]);
    }
}

// Writes to path.tmp.PID and renames, so an interrupted save never destroys an existing file,
// and two processes writing the same path never share a temp file.
static FILE* open_for_atomic_write(const char* path, char* tmp, size_t tmpsize) {
    if (snprintf(tmp, tmpsize, "%s.tmp.%ld", path, (long)getpid()) >= (int)tmpsize) { die("%s: path too long", path); }
    return fopen_or_die(tmp, "wb");
}
static void finish_atomic_write(FILE* f, const char* tmp, const char* path) {
    if (fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0) {
        int err = errno;
        remove(tmp);
        die("%s: write failed (%s)", tmp, strerror(err));
    }
    if (rename(tmp, path) != 0) { die("%s: cannot rename to %s (%s)", tmp, path, strerror(errno)); }
}

static void gpt_write_model(const GPT* model, const char* path) {
    char tmp[4200];
    FILE* f = open_for_atomic_write(path, tmp, sizeof(tmp));
    int header[256];
    memset(header, 0, sizeof(header));
    const GPTConfig* c = &model->config;
    header[0] = MODEL_MAGIC; header[1] = MODEL_VERSION_FP32;
    header[2] = c->max_seq_len; header[3] = c->vocab_size; header[4] = c->num_layers;
    header[5] = c->num_heads; header[6] = c->channels; header[7] = c->padded_vocab_size;
    fwrite_or_die(header, sizeof(int), 256, f, tmp);
    fwrite_or_die(model->params_memory, sizeof(float), model->num_parameters, f, tmp);
    finish_atomic_write(f, tmp, path);
}

// Tokens of one micro-batch: the layers count rows (B*T) in an int, and 2^24 is also where a float
// stops counting tokens exactly. (GPT-2's largest batches are 2^19 tokens, split into micro-batches.)
#define MAX_MICRO_BATCH_TOKENS (1L << 24)

// The activations' size for (B,T): the table's products evaluated in double first, which cannot
// overflow, and bounded, so that the size_t evaluation in activation_pointers is exact.
#define X_ACT_DOUBLE(name, n) total += (double)(n);
static void activation_size_check(const GPTConfig* cfg, int B_, int T_) {
    double B = B_, T = T_, C = cfg->channels, L = cfg->num_layers, NH = cfg->num_heads;
    double Vp = cfg->padded_vocab_size;
    if (B * T > (double)MAX_MICRO_BATCH_TOKENS) {
        die("-b %d -t %d: %.0f tokens per micro-batch is more than the limit %ld", B_, T_, B * T,
            MAX_MICRO_BATCH_TOKENS);
    }
    double total = 0.0;
    GPT_ACTIVATIONS(X_ACT_DOUBLE)
    if (total * sizeof(float) > 0.25 * (double)SIZE_MAX) {
        die("-b %d -t %d: the activations would need %.3g bytes", B_, T_, total * sizeof(float));
    }
}
#undef X_ACT_DOUBLE

// the parameters a Hugging Face checkpoint stores: ours less wte's padding rows V..Vp-1
static size_t gpt_stored_parameters(const GPT* model) {
    const GPTConfig* c = &model->config;
    return model->num_parameters - (size_t)(c->padded_vocab_size - c->vocab_size) * c->channels;
}

// Hugging Face GPT-2 checkpoints (data/safetensors.h): PATH is a .safetensors file (its
// config.json beside it) or a directory holding model.safetensors + config.json
static int is_safetensors_path(const char* path) {
    size_t n = strlen(path);
    struct stat sb;
    return (n >= 12 && strcmp(path + n - 12, ".safetensors") == 0) || (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode));
}

#ifdef USE_JANSSON
static void gpt_build_from_safetensors(GPT* model, const char* path) {
    HfGpt2Config hc;
    hf_gpt2_read_config(path, &hc);
    GPTConfig cfg;
    cfg.max_seq_len = hc.maxT; cfg.vocab_size = hc.V; cfg.num_layers = hc.L; cfg.num_heads = hc.NH;
    cfg.channels = hc.C; cfg.padded_vocab_size = ((hc.V + 127) / 128) * 128;
    config_validate(&cfg, path);
    // the weights' size the config implies, against the file (at least 2 bytes a weight, in BF16)
    // before they are allocated
    gpt_setup_table(model, &cfg);
    char st_path[4200], cfg_path[4200];
    hf_gpt2_paths(path, st_path, cfg_path, sizeof(st_path));
    SafeTensors st; // the file's own checks first (header, dtypes, shapes, offsets: bounded memory)
    st_open(&st, st_path);
    st_close(&st);
    struct stat sb;
    size_t stored = gpt_stored_parameters(model);
    if (stat(st_path, &sb) != 0) { die("%s: cannot open (%s)", st_path, strerror(errno)); }
    if ((uint64_t)sb.st_size < 2 * (uint64_t)stored) {
        die("%s: %lld bytes cannot hold the %zu weights of %s (L=%d NH=%d C=%d maxT=%d V=%d)", st_path,
            (long long)sb.st_size, stored, cfg_path, cfg.num_layers, cfg.num_heads, cfg.channels, cfg.max_seq_len,
            cfg.vocab_size);
    }
    gpt_setup(model, &cfg);
    hf_gpt2_load(path, &hc, model->params_memory, cfg.padded_vocab_size);
}

// writes the model as DIR/model.safetensors (F32, or BF16 rounded to nearest even) + DIR/config.json
static void gpt_export_safetensors(const GPT* model, const char* dir, int bf16) {
    const GPTConfig* c = &model->config;
    HfGpt2Config hc;
    hc.maxT = c->max_seq_len; hc.V = c->vocab_size; hc.L = c->num_layers; hc.NH = c->num_heads; hc.C = c->channels;
    hf_gpt2_save(dir, &hc, model->params_memory, c->padded_vocab_size, bf16);
}
#else
static void gpt_build_from_safetensors(GPT* model, const char* path) {
    (void)model;
    die("-e %s: this build reads no safetensors (it was built without Jansson: apt-get install libjansson-dev, then make)", path);
}
static void gpt_export_safetensors(const GPT* model, const char* dir, int bf16) {
    (void)model; (void)bf16;
    die("--export %s: this build writes no safetensors (it was built without Jansson: apt-get install libjansson-dev, then make)", dir);
}
#endif

// -e: a model file (ours, llm.c's), a Hugging Face GPT-2 checkpoint, or a descriptor (fresh weights
// from the seed)
static void gpt_build(GPT* model, const char* init, uint64_t seed) {
    struct stat sb;
    if (is_safetensors_path(init)) { gpt_build_from_safetensors(model, init); }
    else if (stat(init, &sb) == 0) { gpt_build_from_checkpoint(model, init); }
    else if (strchr(init, '/') != NULL || strstr(init, ".bin") != NULL) { die("-e %s: model file not found", init); }
    else { gpt_build_from_descriptor(model, init, seed); }
}

static void gpt_allocate_activations(GPT* model, int B, int T) {
    const GPTConfig* cfg = &model->config;
    if (model->acts_memory == NULL) {
        activation_size_check(cfg, B, T);
        size_t n = activation_pointers(&model->acts, NULL, cfg, (size_t)B, (size_t)T);
        model->acts_memory = (float*)malloc_or_die(n * sizeof(float));
        model->alloc_B = B;
        model->alloc_T = T;
        model->inputs = (int*)malloc_or_die((size_t)B * T * sizeof(int));
        model->targets = (int*)malloc_or_die((size_t)B * T * sizeof(int));
    } else if (B > model->alloc_B || T > model->alloc_T) {
        die("batch (B=%d, T=%d) is larger than the (B=%d, T=%d) the activations were allocated for",
            B, T, model->alloc_B, model->alloc_T);
    }
    // a smaller (B,T) (sampling) re-carves the same block with its own layout
    activation_pointers(&model->acts, model->acts_memory, cfg, (size_t)B, (size_t)T);
}

// a token outside the vocabulary would index past the embedding table: refuse it by name
static void gpt_check_batch(const GPTConfig* cfg, const int* inputs, const int* targets, int B, int T) {
    int V = cfg->vocab_size;
    if (T > cfg->max_seq_len) { die("sequence length T=%d exceeds the model's maxT=%d", T, cfg->max_seq_len); }
    for (int i = 0; i < B * T; i++) {
        if (inputs[i] < 0 || inputs[i] >= V) { die("input token %d at position %d is outside [0, %d)", inputs[i], i, V); }
        if (targets != NULL && (targets[i] < 0 || targets[i] >= V)) {
            die("target token %d at position %d is outside [0, %d)", targets[i], i, V);
        }
    }
}

// Runs the model on inputs (B,T); with targets (B,T) also the loss. Returns the mean loss, or -1.
static float gpt_forward(GPT* model, const int* inputs, const int* targets, int B, int T) {
    const GPTConfig* cfg = &model->config;
    int V = cfg->vocab_size, Vp = cfg->padded_vocab_size, L = cfg->num_layers;
    int NH = cfg->num_heads, C = cfg->channels;
    gpt_check_batch(cfg, inputs, targets, B, T);
    gpt_allocate_activations(model, B, T);
    model->B = B; model->T = T;
    memcpy(model->inputs, inputs, (size_t)B * T * sizeof(int));
    model->has_targets = targets != NULL;
    if (targets != NULL) { memcpy(model->targets, targets, (size_t)B * T * sizeof(int)); }

    ParameterTensors p = model->params;
    ActivationTensors a = model->acts;
    size_t BT = (size_t)B * T;
    model->fwd_dropout = model->dropout;
    const Dropout* drop = model->dropout.threshold > 0 ? &model->fwd_dropout : NULL;
    encoder_forward(a.encoded, inputs, p.wte, p.wpe, B, T, C);
    if (drop != NULL) { dropout_mask(a.encoded, a.encoded, BT * C, drop, 0); }
    for (int l = 0; l < L; l++) {
        const float* x = l == 0 ? a.encoded : a.residual3 + (size_t)(l - 1) * BT * C;
        float* ln1 = a.ln1 + l * BT * C;
        float* qkv = a.qkv + l * BT * 3 * C;
        float* atty = a.atty + l * BT * C;
        float* attproj = a.attproj + l * BT * C;
        float* res2 = a.residual2 + l * BT * C;
        float* ln2 = a.ln2 + l * BT * C;
        float* fch = a.fch + l * BT * 4 * C;
        float* fch_gelu = a.fch_gelu + l * BT * 4 * C;
        float* fcproj = a.fcproj + l * BT * C;
        layernorm_forward(ln1, a.ln1_mean + l * BT, a.ln1_rstd + l * BT, x,
                          p.ln1w + l * C, p.ln1b + l * C, (int)BT, C);
        matmul_forward(qkv, ln1, p.qkvw + (size_t)l * 3 * C * C, p.qkvb + l * 3 * C, (int)BT, C, 3 * C);
        attention_forward(atty, a.att + l * BT * NH * T, qkv, B, T, C, NH, drop, 1 + 3 * l);
        matmul_forward(attproj, atty, p.attprojw + (size_t)l * C * C, p.attprojb + l * C, (int)BT, C, C);
        if (drop != NULL) { dropout_mask(attproj, attproj, BT * C, drop, 2 + 3 * l); }
        residual_forward(res2, x, attproj, BT * C);
        layernorm_forward(ln2, a.ln2_mean + l * BT, a.ln2_rstd + l * BT, res2,
                          p.ln2w + l * C, p.ln2b + l * C, (int)BT, C);
        matmul_forward(fch, ln2, p.fcw + (size_t)l * 4 * C * C, p.fcb + l * 4 * C, (int)BT, C, 4 * C);
        gelu_forward(fch_gelu, fch, BT * 4 * C);
        matmul_forward(fcproj, fch_gelu, p.fcprojw + (size_t)l * C * 4 * C, p.fcprojb + l * C, (int)BT, 4 * C, C);
        if (drop != NULL) { dropout_mask(fcproj, fcproj, BT * C, drop, 3 + 3 * l); }
        residual_forward(a.residual3 + l * BT * C, res2, fcproj, BT * C);
    }
    const float* last = a.residual3 + (size_t)(L - 1) * BT * C;
    layernorm_forward(a.lnf, a.lnf_mean, a.lnf_rstd, last, p.lnfw, p.lnfb, (int)BT, C);
    matmul_forward(a.logits, a.lnf, p.wte, NULL, (int)BT, C, Vp); // lm head tied to wte
    if (targets == NULL) { model->mean_loss = -1.0f; return -1.0f; }
    crossentropy_forward(a.losses, a.lse, a.logits, targets, (int)BT, V, Vp);
    double sum = 0.0;
    for (size_t i = 0; i < BT; i++) { sum += a.losses[i]; }
    model->mean_loss = (float)(sum / (double)BT);
    return model->mean_loss;
}

// Generation, one position at a time: the forward of position pos alone, with the keys and values
// of positions 0..pos-1 kept from the calls before (the "KV cache"; GPT-2's past key values), so a
// new token costs one position's forward instead of the whole window's. The caller decodes the
// positions in order 0, 1, 2, ... (restarting at 0 starts a new sequence). The arithmetic is that
// of gpt_forward's row pos, so the logits equal the full forward's (test_gpt checks it).
// Returns the (Vp) logits of position pos (valid until the next call).
static const float* gpt_decode(GPT* model, int token, int pos) {
    const GPTConfig* cfg = &model->config;
    int C = cfg->channels, L = cfg->num_layers, NH = cfg->num_heads, Vp = cfg->padded_vocab_size;
    int maxT = cfg->max_seq_len, hs = C / NH;
    if (pos < 0 || pos >= maxT) { die("gpt_decode: position %d outside the context [0, %d)", pos, maxT); }
    if (token < 0 || token >= cfg->vocab_size) { die("gpt_decode: token %d outside [0, %d)", token, cfg->vocab_size); }
    size_t cache = (size_t)L * maxT * C; // floats of the keys, and of the values
    if (model->kv_memory == NULL) {
        model->kv_memory = (float*)malloc_or_die((2 * cache + 13 * (size_t)C + (size_t)maxT + (size_t)Vp) * sizeof(float));
    }
    float* kcache = model->kv_memory;            // (L, maxT, C)
    float* vcache = kcache + cache;              // (L, maxT, C)
    float* x = vcache + cache;                   // (C) the residual stream
    float* ln = x + C;                           // (C)
    float* qkv = ln + C;                         // (3C)
    float* atty = qkv + 3 * C;                   // (C)
    float* proj = atty + C;                      // (C)
    float* res2 = proj + C;                      // (C)
    float* fch = res2 + C;                       // (4C) ... fch_gelu reuses qkv+atty (4C)
    float* att = fch + 4 * C;                    // (maxT) one row of probabilities
    float* logits = att + maxT;                  // (Vp)
    float* fch_gelu = qkv;
    float mean, rstd;
    ParameterTensors p = model->params;
    for (int c = 0; c < C; c++) { x[c] = p.wte[(size_t)token * C + c] + p.wpe[(size_t)pos * C + c]; }
    float scale = 1.0f / sqrtf((float)hs);
    for (int l = 0; l < L; l++) {
        layernorm_forward(ln, &mean, &rstd, x, p.ln1w + l * C, p.ln1b + l * C, 1, C);
        matmul_forward(qkv, ln, p.qkvw + (size_t)l * 3 * C * C, p.qkvb + l * 3 * C, 1, C, 3 * C);
        float* kl = kcache + (size_t)l * maxT * C;
        float* vl = vcache + (size_t)l * maxT * C;
        memcpy(kl + (size_t)pos * C, qkv + C, (size_t)C * sizeof(float));
        memcpy(vl + (size_t)pos * C, qkv + 2 * C, (size_t)C * sizeof(float));
        // attention_forward's row pos, with the keys and values of the cache
        for (int h = 0; h < NH; h++) {
            attention_row(atty + h * hs, att, qkv + h * hs, kl + h * hs, vl + h * hs, (size_t)C, pos + 1, hs, scale,
                          NULL, 0, 0);
        }
        matmul_forward(proj, atty, p.attprojw + (size_t)l * C * C, p.attprojb + l * C, 1, C, C);
        residual_forward(res2, x, proj, (size_t)C);
        layernorm_forward(ln, &mean, &rstd, res2, p.ln2w + l * C, p.ln2b + l * C, 1, C);
        matmul_forward(fch, ln, p.fcw + (size_t)l * 4 * C * C, p.fcb + l * 4 * C, 1, C, 4 * C);
        gelu_forward(fch_gelu, fch, 4 * (size_t)C);
        matmul_forward(proj, fch_gelu, p.fcprojw + (size_t)l * C * 4 * C, p.fcprojb + l * C, 1, 4 * C, C);
        residual_forward(x, res2, proj, (size_t)C);
    }
    layernorm_forward(ln, &mean, &rstd, x, p.lnfw, p.lnfb, 1, C);
    matmul_forward(logits, ln, p.wte, NULL, 1, C, Vp);
    return logits;
}

static void gpt_zero_grad(GPT* model) {
    if (model->grads_memory != NULL) { memset(model->grads_memory, 0, model->num_parameters * sizeof(float)); }
}

// Adds the gradient of (loss_scale * mean loss of the last forward) into the parameter gradients.
// loss_scale = 1/A when accumulating A micro-batches.
static void gpt_backward(GPT* model, float loss_scale) {
    const GPTConfig* cfg = &model->config;
    int V = cfg->vocab_size, Vp = cfg->padded_vocab_size, L = cfg->num_layers;
    int NH = cfg->num_heads, C = cfg->channels, B = model->B, T = model->T;
    if (!model->has_targets) { die("gpt_backward: the last forward had no targets"); }
    if (model->grads_memory == NULL) {
        model->grads_memory = (float*)calloc_or_die(model->num_parameters, sizeof(float));
        param_pointers(&model->grads, model->grads_memory, model->specs);
    }
    if (model->scratch_memory == NULL) {
        size_t n = scratch_pointers(&model->scratch, NULL, cfg, (size_t)model->alloc_B, (size_t)model->alloc_T);
        model->scratch_memory = (float*)malloc_or_die(n * sizeof(float));
    }
    scratch_pointers(&model->scratch, model->scratch_memory, cfg, (size_t)B, (size_t)T);
    ParameterTensors p = model->params, g = model->grads;
    ActivationTensors a = model->acts;
    BackwardScratch s = model->scratch;
    size_t BT = (size_t)B * T;
    const Dropout* drop = model->fwd_dropout.threshold > 0 ? &model->fwd_dropout : NULL;

    // loss = mean_i losses[i]  ->  d loss / d losses[i] = 1/(B*T); logits become dlogits in place
    crossentropy_backward(a.logits, a.logits, a.lse, model->targets, loss_scale / (float)BT,
                          (int)BT, V, Vp);
    // logits = lnf @ wte^T
    matmul_backward(s.dx, g.wte, NULL, a.logits, a.lnf, p.wte, (int)BT, C, Vp);
    // lnf = layernorm(residual3[L-1]); the residual stream gradient starts here
    memset(s.dresidual, 0, BT * C * sizeof(float));
    const float* last = a.residual3 + (size_t)(L - 1) * BT * C;
    layernorm_backward(s.dresidual, g.lnfw, g.lnfb, s.dx, last, p.lnfw, a.lnf_mean, a.lnf_rstd, (int)BT, C);

    for (int l = L - 1; l >= 0; l--) {
        const float* x = l == 0 ? a.encoded : a.residual3 + (size_t)(l - 1) * BT * C;
        // residual3 = residual2 + fcproj: dresidual is now d(residual2) and d(fcproj) alike
        // (through fcproj's dropout: its mask on the gradient)
        const float* dbranch = s.dresidual;
        if (drop != NULL) { dropout_mask(s.dbranch, s.dresidual, BT * C, drop, 3 + 3 * l); dbranch = s.dbranch; }
        // fcproj = fch_gelu @ fcprojw^T + fcprojb
        matmul_backward(s.dfch, g.fcprojw + (size_t)l * C * 4 * C, g.fcprojb + l * C, dbranch,
                        a.fch_gelu + l * BT * 4 * C, p.fcprojw + (size_t)l * C * 4 * C, (int)BT, 4 * C, C);
        // fch_gelu = gelu(fch)
        gelu_backward(s.dfch, a.fch + l * BT * 4 * C, s.dfch, BT * 4 * C);
        // fch = ln2 @ fcw^T + fcb
        matmul_backward(s.dx, g.fcw + (size_t)l * 4 * C * C, g.fcb + l * 4 * C, s.dfch,
                        a.ln2 + l * BT * C, p.fcw + (size_t)l * 4 * C * C, (int)BT, C, 4 * C);
        // ln2 = layernorm(residual2): adds into d(residual2)
        layernorm_backward(s.dresidual, g.ln2w + l * C, g.ln2b + l * C, s.dx, a.residual2 + l * BT * C,
                           p.ln2w + l * C, a.ln2_mean + l * BT, a.ln2_rstd + l * BT, (int)BT, C);
        // residual2 = x + attproj: dresidual is d(x) and d(attproj) alike (attproj's dropout: as above)
        dbranch = s.dresidual;
        if (drop != NULL) { dropout_mask(s.dbranch, s.dresidual, BT * C, drop, 2 + 3 * l); dbranch = s.dbranch; }
        // attproj = atty @ attprojw^T + attprojb
        matmul_backward(s.dx, g.attprojw + (size_t)l * C * C, g.attprojb + l * C, dbranch,
                        a.atty + l * BT * C, p.attprojw + (size_t)l * C * C, (int)BT, C, C);
        // atty = attention(qkv)
        attention_backward(s.dqkv, s.drow, s.dx, a.qkv + l * BT * 3 * C, a.att + l * BT * NH * T,
                           B, T, C, NH, drop, 1 + 3 * l);
        // qkv = ln1 @ qkvw^T + qkvb
        matmul_backward(s.dx, g.qkvw + (size_t)l * 3 * C * C, g.qkvb + l * 3 * C, s.dqkv,
                        a.ln1 + l * BT * C, p.qkvw + (size_t)l * 3 * C * C, (int)BT, C, 3 * C);
        // ln1 = layernorm(x): adds into d(x)
        layernorm_backward(s.dresidual, g.ln1w + l * C, g.ln1b + l * C, s.dx, x, p.ln1w + l * C,
                           a.ln1_mean + l * BT, a.ln1_rstd + l * BT, (int)BT, C);
    }
    // encoded = dropout(wte[inputs] + wpe[0..T-1])
    if (drop != NULL) { dropout_mask(s.dresidual, s.dresidual, BT * C, drop, 0); }
    encoder_backward(g.wte, g.wpe, s.dresidual, model->inputs, B, T, C);
}

// Sum of squares in fixed-size chunks, the chunks added in order: the same bits for any number
// of threads. Double accumulation: 124M squares would lose digits in float.
// The global gradient norm sqrt(sum g^2) over the parameters [shard_begin, shard_end) of every
// rank: all of them on one process or without ZeRO (every rank then holds the same averaged
// gradients and counts them once: rank 0 alone adds its sum), this rank's shard with ZeRO-1.
#define NORM_CHUNK 65536
static float gpt_grad_norm(const GPT* model) {
    size_t b = model->shard_begin, n = model->shard_end - model->shard_begin;
    size_t nchunks = (n + NORM_CHUNK - 1) / NORM_CHUNK;
    double* partial = (double*)malloc_or_die((nchunks + 1) * sizeof(double));
    const float* g = model->grads_memory + b;
    #pragma omp parallel for
    for (size_t k = 0; k < nchunks; k++) {
        size_t end = (k + 1) * NORM_CHUNK < n ? (k + 1) * NORM_CHUNK : n;
        double s = 0.0;
        #pragma omp simd reduction(+:s) // vector lanes: a fixed order, so still deterministic
        for (size_t i = k * NORM_CHUNK; i < end; i++) { s += (double)g[i] * g[i]; }
        partial[k] = s;
    }
    double total = 0.0;
    for (size_t k = 0; k < nchunks; k++) { total += partial[k]; }
    free(partial);
    if (!model->zero && g_comm.rank != 0) { total = 0.0; } // every rank holds the same full sum
    comm_allreduce_sum_f64(&total, 1);
    return (float)sqrt(total);
}

// Global-norm clipping as torch.nn.utils.clip_grad_norm_: scale all gradients by
// max_norm / (norm + 1e-6) when that is below 1. Returns the norm before clipping.
// (Only the shard [shard_begin, shard_end) is scaled: the rest is not used by this rank's update.)
static float gpt_clip_grad_norm(GPT* model, float max_norm) {
    float norm = gpt_grad_norm(model);
    float coef = max_norm / (norm + 1e-6f);
    if (max_norm > 0.0f && coef < 1.0f) {
        float* g = model->grads_memory;
        #pragma omp parallel for
        for (size_t i = model->shard_begin; i < model->shard_end; i++) { g[i] *= coef; }
    }
    return norm;
}

// Learning rate of step n = step + 1 (1-based: the n-th update) of total steps: a linear warmup
// that reaches max_lr at step n = warmup, then a cosine decay that reaches exactly
// max_lr * final_frac at the last step n = total (the schedule of GPT-3 / nanoGPT):
//   n <= warmup:  max_lr * n / warmup
//   n >  warmup:  min_lr + (max_lr - min_lr) * (1 + cos(pi * (n - warmup) / (total - warmup))) / 2
// (warmup >= total leaves no decay: the run ends at the peak; the CLI warns about it.)
static double lr_schedule(int step, int total, double max_lr, int warmup, double final_frac) {
    int n = step + 1;
    if (n <= warmup) { return max_lr * (double)n / (double)warmup; }
    double r = (double)(n - warmup) / (double)(total - warmup); // total > warmup here, as n <= total
    if (r > 1.0) { r = 1.0; }
    double min_lr = max_lr * final_frac;
    return min_lr + 0.5 * (1.0 + cos(M_PI * r)) * (max_lr - min_lr);
}

// Floating-point operations of one forward + backward over B*T tokens: every matmul costs
// 2*BT*C*OC forward and twice that backward; attention 2 matmuls of 2*T*T*hs per (b,h), also x3.
// (Elementwise layers, softmax and AdamW are < 1% and not counted.)
static double gpt_flops_per_micro_batch(const GPTConfig* c, int B, int T) {
    double BT = (double)B * T, C = c->channels, L = c->num_layers;
    double matmul = L * (C * 3 * C + C * C + C * 4 * C + 4 * C * C) + C * c->padded_vocab_size;
    double attention = L * B * c->num_heads * 2.0 * 2.0 * (double)T * T * (C / c->num_heads);
    return 3.0 * (2.0 * BT * matmul + attention);
}

static int compare_doubles(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

// AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization"), exactly as
// torch.optim.AdamW computes it, for step t = 1, 2, ...:
//   p *= 1 - lr*wd                 (only the 2-D weight matrices decay: table column "decay")
//   m = b1*m + (1-b1)*g            v = b2*v + (1-b2)*g^2
//   p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
// over this rank's parameters [shard_begin, shard_end) (m and v hold exactly those), then zeroes
// all the gradients for the next step.
static void gpt_update(GPT* model, float lr, float beta1, float beta2, float eps, float weight_decay, int t) {
    if (model->grads_memory == NULL) { die("gpt_update: no gradients (call gpt_backward first)"); }
    size_t sb = model->shard_begin, se = model->shard_end;
    if (model->m_memory == NULL) {
        model->m_memory = (float*)calloc_or_die(se - sb, sizeof(float));
        model->v_memory = (float*)calloc_or_die(se - sb, sizeof(float));
    }
    float step_size = (float)((double)lr / (1.0 - pow((double)beta1, (double)t)));
    float bc2_sqrt = (float)sqrt(1.0 - pow((double)beta2, (double)t));
    size_t offset = 0;
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        // the part of tensor k in the shard: [lo, hi) of the flat parameters
        size_t lo = offset > sb ? offset : sb, hi = offset + model->specs[k].size < se ? offset + model->specs[k].size : se;
        offset += model->specs[k].size;
        if (lo >= hi) { continue; }
        float decay = model->specs[k].decay ? (float)(1.0 - (double)lr * weight_decay) : 1.0f;
        float* p = model->params_memory + lo;
        float* g = model->grads_memory + lo;
        float* m = model->m_memory + (lo - sb);
        float* v = model->v_memory + (lo - sb);
        size_t n = hi - lo;
        #pragma omp parallel for
        for (size_t i = 0; i < n; i++) {
            float gi = g[i];
            float mi = beta1 * m[i] + (1.0f - beta1) * gi;
            float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
            float denom = sqrtf(vi) / bc2_sqrt + eps;
            p[i] = p[i] * decay - step_size * (mi / denom);
            m[i] = mi;
            v[i] = vi;
            g[i] = 0.0f;
        }
    }
    // the gradients outside the shard (ZeRO-1: other ranks' parts) are zeroed too
    memset(model->grads_memory, 0, sb * sizeof(float));
    memset(model->grads_memory + se, 0, (model->num_parameters - se) * sizeof(float));
}

static void gpt_free(GPT* model) {
    free(model->params_memory); free(model->grads_memory);
    free(model->m_memory); free(model->v_memory);
    free(model->acts_memory); free(model->scratch_memory);
    free(model->inputs); free(model->targets); free(model->kv_memory);
    matmul_free_scratch();
    memset(model, 0, sizeof(*model));
}

// ----------------------------------------------------------------------------------------------
// Backends. The training loop, validation and the sampler reach the model's math only through
// this table, so train_gpt.cu runs the same loop with its GPU functions plugged in. The host
// arrays of GPT (params, m, v) stay the model's record: checkpoints are written from and read
// into them, and a backend copies them to and from its own memory in attach / to_host.

typedef struct {
    const char* name;
    void (*attach)(GPT* model, int B, int T);  // after build or load: take the host weights (and m, v); zero gradients
    float (*forward)(GPT* model, const int* inputs, const int* targets, int B, int T); // mean loss or -1
    void (*backward)(GPT* model, float loss_scale);
    // global-norm clip + AdamW step t (1-based); returns the norm before clipping
    float (*step)(GPT* model, float grad_clip, float lr, float beta1, float beta2, float eps,
                  float weight_decay, int t);
    const float* (*logits)(GPT* model, int b, int t); // (Vp) logits of position (b,t) of the last forward
    void (*to_host)(GPT* model);                      // weights, m and v into the host arrays (ZeRO-1:
                                                      // this rank's shard [shard_begin, shard_end) of them)
    void (*summary)(const GPT* model);                // an extra line for the end-of-run summary, or NULL
    void (*detach)(GPT* model);                       // frees what attach made
    // generation with a KV cache: the (Vp) logits of position pos (see gpt_decode), or NULL: the
    // generator then runs the whole window's forward for every token
    const float* (*decode)(GPT* model, int token, int pos);
} Backend;

// as a fresh GPU copy: zero gradients, and the activations sized for (B,T) (a forward may then use
// any smaller B, T: generation without the KV cache grows its T up to the window)
static void cpu_attach(GPT* model, int B, int T) { gpt_zero_grad(model); gpt_allocate_activations(model, B, T); }
// The data-parallel step (comm/comm.h). Every rank's gradients are sums over its own micro-batches
// (each scaled by 1/(ranks * micro-batches)): summed over ranks they are the mean over the global
// batch. Without ZeRO: all-reduce them, and every rank does the same whole update. With ZeRO-1:
// reduce-scatter them, each rank updates its shard (with its shard of m, v), and the updated
// parameters are all-gathered.
static float cpu_step(GPT* model, float grad_clip, float lr, float beta1, float beta2, float eps,
                      float weight_decay, int t) {
    if (g_comm.size > 1 && model->grads_memory != NULL) {
        if (model->zero) { comm_reduce_scatter_sum_f32(model->grads_memory, model->num_parameters); }
        else { comm_allreduce_sum_f32(model->grads_memory, model->num_parameters); }
    }
    float norm = gpt_clip_grad_norm(model, grad_clip);
    gpt_update(model, lr, beta1, beta2, eps, weight_decay, t);
    if (model->zero) { comm_allgather_f32(model->params_memory, model->num_parameters); }
    return norm;
}
static const float* cpu_logits(GPT* model, int b, int t) {
    return model->acts.logits + ((size_t)b * model->T + t) * model->config.padded_vocab_size;
}
static void cpu_to_host(GPT* model) { (void)model; }
static void cpu_detach(GPT* model) { (void)model; }
static const Backend cpu_backend = {"cpu", cpu_attach, gpt_forward, gpt_backward, cpu_step,
                                    cpu_logits, cpu_to_host, NULL, cpu_detach, gpt_decode};

// ----------------------------------------------------------------------------------------------
// Data: token shards (llm.c's layout): int32 header[256] = {20240520, 1, ntok, 0...}, ntok uint16.
// A sample is B*T+1 consecutive tokens (inputs, and targets shifted by one); shard s holds
// (ntok-1)/(B*T) samples. Training: each epoch visits the shards in a seeded random order and the
// samples of each shard in a seeded random order. Validation: everything in file order.
// The position (epoch, shard, sample) is all a checkpoint needs to resume the stream exactly.

#define SHARD_MAGIC 20240520
#define SHARD_VERSION 1

typedef struct {
    char** files; int nfiles;
    long* file_ntok;                    // (nfiles) tokens of each file, from the start-up check
    uint64_t identity;                  // hash of every file's contents, in glob order
    int B, T, V, shuffle;
    uint64_t seed;
    long epoch, shard_pos, sample_pos;  // the position: next sample to read
    int* shard_order;                   // (nfiles) this epoch's order of the files
    int loaded_file;                    // index of the file in `tokens`, -1 if none
    uint16_t* tokens; long ntok;
    long nsamples; long* sample_order;  // (nsamples) this shard's order of samples
} DataLoader;

static void permute(long* a, long n, uint64_t key) {
    // Fisher-Yates with a counter-based stream: reproducible from (seed, epoch, shard) alone
    Rng r; r.key = key; r.counter = 0;
    for (long i = 0; i < n; i++) { a[i] = i; }
    for (long i = n - 1; i > 0; i--) {
        long j = (long)(rng_next(&r) % (uint64_t)(i + 1));
        long tmp = a[i]; a[i] = a[j]; a[j] = tmp;
    }
}

// A shard holds at most this many tokens: its header counts them in an int32.
#define MAX_SHARD_TOKENS 2147483647L

// Opens a shard and checks its header against its size; returns the open file positioned at the
// tokens, and their count.
static FILE* shard_open(const char* path, long* ntok_out) {
    FILE* f = fopen_input_or_die(path);
    long fsize = file_size_or_die(f, path);
    int header[256];
    if (fsize < (long)sizeof(header)) { die("%s: truncated token shard (%ld bytes, header is 1024)", path, fsize); }
    fread_or_die(header, sizeof(int), 256, f, path);
    if (header[0] != SHARD_MAGIC) {
        die("%s: bad magic %d in token shard (expected %d; make shards with ./tokenizer or data/prepare.sh)",
            path, header[0], SHARD_MAGIC);
    }
    if (header[1] != SHARD_VERSION) { die("%s: token shard version %d not supported (expected %d)", path, header[1], SHARD_VERSION); }
    long ntok = header[2];
    if (ntok < 0 || (long)sizeof(header) + 2 * ntok != fsize) {
        die("%s: header says %ld tokens, file holds %ld bytes of tokens (truncated?)", path, ntok,
            fsize - (long)sizeof(header));
    }
    *ntok_out = ntok;
    return f;
}

// the first token >= V in tokens[0..n), as an index, or n (a vectorizable max first: the scan of
// every shard at start-up runs at memory speed)
static long first_token_out_of_range(const uint16_t* tokens, long n, int V) {
    uint16_t maxtok = 0;
    for (long i = 0; i < n; i++) { maxtok = tokens[i] > maxtok ? tokens[i] : maxtok; }
    if (maxtok < V) { return n; }
    long bad = 0;
    while (tokens[bad] < V) { bad++; }
    return bad;
}

// Start-up check of one shard, so that a run that cannot finish is found before step 1, not at
// the shard that breaks it: header, size, every token < V, room for one sample of B*T+1 tokens.
// Reads in chunks (bounded memory) and returns a hash of the contents, for the data's identity.
static uint64_t shard_check(const char* path, int V, long min_tokens, long* ntok_out) {
    long ntok;
    FILE* f = shard_open(path, &ntok);
    if (ntok < min_tokens) {
        die("%s: %ld tokens is fewer than one batch needs (B*T+1 = %ld)", path, ntok, min_tokens);
    }
    const long CHUNK = 1L << 20; // tokens per read; a multiple of 16
    uint16_t* buf = (uint16_t*)malloc_or_die(CHUNK * sizeof(uint16_t));
    // the hash: 4 independent lanes (so the multiplies overlap), each mixing 4 tokens at a time
    uint64_t h[4] = {mix64((uint64_t)ntok), 1, 2, 3};
    for (long done = 0; done < ntok; ) {
        long n = ntok - done < CHUNK ? ntok - done : CHUNK;
        fread_or_die(buf, sizeof(uint16_t), (size_t)n, f, path);
        long bad = first_token_out_of_range(buf, n, V);
        if (bad < n) { die("%s: token %d at index %ld is >= the model's vocab size %d", path, buf[bad], done + bad, V); }
        long i = 0;
        for (; i + 16 <= n; i += 16) {
            for (int lane = 0; lane < 4; lane++) {
                const uint16_t* t = buf + i + 4 * lane;
                uint64_t word = (uint64_t)t[0] | (uint64_t)t[1] << 16 | (uint64_t)t[2] << 32 | (uint64_t)t[3] << 48;
                h[lane] = mix64(h[lane] ^ word);
            }
        }
        for (; i < n; i++) { h[0] = mix64(h[0] ^ buf[i]); } // only the last chunk has a tail
        done += n;
    }
    free(buf);
    fclose(f);
    *ntok_out = ntok;
    return mix64(h[0] ^ mix64(h[1] ^ mix64(h[2] ^ mix64(h[3]))));
}

// reads a whole shard, checking header, size and token range again (a file may have changed since
// the start-up check)
static uint16_t* load_shard(const char* path, int V, long* ntok_out) {
    long ntok;
    FILE* f = shard_open(path, &ntok);
    uint16_t* tokens = (uint16_t*)malloc_or_die((size_t)ntok * sizeof(uint16_t));
    fread_or_die(tokens, sizeof(uint16_t), (size_t)ntok, f, path);
    fclose(f);
    long bad = first_token_out_of_range(tokens, ntok, V);
    if (bad < ntok) { die("%s: token %d at index %ld is >= the model's vocab size %d", path, tokens[bad], bad, V); }
    *ntok_out = ntok;
    return tokens;
}

static void loader_load_file(DataLoader* d, int file) {
    if (d->loaded_file == file) { return; }
    free(d->tokens);
    d->tokens = load_shard(d->files[file], d->V, &d->ntok);
    d->loaded_file = file;
    long n = (d->ntok - 1) / ((long)d->B * d->T);
    if (n <= 0) {
        die("%s: %ld tokens is fewer than one batch needs (B*T+1 = %ld)", d->files[file], d->ntok,
            (long)d->B * d->T + 1);
    }
    free(d->sample_order);
    d->nsamples = n;
    d->sample_order = (long*)malloc_or_die((size_t)n * sizeof(long));
    if (d->shuffle) {
        permute(d->sample_order, n, stream_key(d->seed, 1000003ULL * (uint64_t)(d->epoch + 1) + (uint64_t)file));
    } else {
        for (long i = 0; i < n; i++) { d->sample_order[i] = i; }
    }
}

static void loader_start_epoch(DataLoader* d) {
    long* order = (long*)malloc_or_die((size_t)d->nfiles * sizeof(long));
    if (d->shuffle) { permute(order, d->nfiles, stream_key(d->seed, 7777ULL + (uint64_t)d->epoch)); }
    else { for (int i = 0; i < d->nfiles; i++) { order[i] = i; } }
    for (int i = 0; i < d->nfiles; i++) { d->shard_order[i] = (int)order[i]; }
    free(order);
    d->loaded_file = -1; // the sample order depends on the epoch: reload even the same file
}

// Epochs are counted in a long and name RNG streams: 2^40 passes over any data set is never reached.
#define MAX_EPOCH (1L << 40)

// positions the loader at (epoch, shard_pos, sample_pos): used at start, on reset and on resume;
// `where` names the source of the position (a state file) for the error message
static void loader_seek(DataLoader* d, long epoch, long shard_pos, long sample_pos, const char* where) {
    if (epoch < 0 || epoch > MAX_EPOCH) { die("%s: data position: epoch %ld out of range [0, %ld]", where, epoch, MAX_EPOCH); }
    if (shard_pos < 0 || shard_pos >= d->nfiles) {
        die("%s: data position: shard %ld out of range (%d files)", where, shard_pos, d->nfiles);
    }
    d->epoch = epoch;
    loader_start_epoch(d);
    d->shard_pos = shard_pos;
    loader_load_file(d, d->shard_order[shard_pos]);
    if (sample_pos < 0 || sample_pos > d->nsamples) {
        die("%s: data position: sample %ld out of range (%ld samples in %s)", where, sample_pos, d->nsamples,
            d->files[d->shard_order[shard_pos]]);
    }
    d->sample_pos = sample_pos;
}

// Finds the files of a glob pattern and checks every one of them (shard_check) before training.
static void loader_init(DataLoader* d, const char* pattern, int B, int T, int V, int shuffle,
                        uint64_t seed, const char* flag) {
    memset(d, 0, sizeof(*d));
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g);
    if (rc != 0 || g.gl_pathc == 0) {
        if (rc == 0) { globfree(&g); }
        die("%s %s: no files match (prepare data with `make data`, see README)", flag, pattern);
    }
    if (g.gl_pathc > 1000000) { die("%s %s: %zu files match, more than the limit 1000000", flag, pattern, (size_t)g.gl_pathc); }
    d->nfiles = (int)g.gl_pathc;
    d->files = (char**)malloc_or_die((size_t)d->nfiles * sizeof(char*));
    d->file_ntok = (long*)malloc_or_die((size_t)d->nfiles * sizeof(long));
    for (int i = 0; i < d->nfiles; i++) {
        d->files[i] = strdup(g.gl_pathv[i]);
        if (d->files[i] == NULL) { die("out of memory"); }
    }
    globfree(&g);
    d->B = B; d->T = T; d->V = V; d->shuffle = shuffle; d->seed = seed;
    uint64_t h = mix64((uint64_t)d->nfiles);
    for (int i = 0; i < d->nfiles; i++) {
        h = mix64(h ^ shard_check(d->files[i], V, (long)B * T + 1, &d->file_ntok[i]));
    }
    d->identity = h;
    d->shard_order = (int*)malloc_or_die((size_t)d->nfiles * sizeof(int));
    d->loaded_file = -1;
    loader_seek(d, 0, 0, 0, flag);
}

// fills inputs and targets (B,T) with the next sample and advances the position
static void loader_next_batch(DataLoader* d, int* inputs, int* targets) {
    if (d->sample_pos >= d->nsamples) {
        d->sample_pos = 0;
        d->shard_pos++;
        if (d->shard_pos >= d->nfiles) { d->shard_pos = 0; d->epoch++; loader_start_epoch(d); }
        loader_load_file(d, d->shard_order[d->shard_pos]);
    }
    long start = d->sample_order[d->sample_pos] * (long)d->B * d->T;
    const uint16_t* tok = d->tokens + start;
    if (inputs != NULL) { // NULL: skip the sample (another rank's)
        for (long i = 0; i < (long)d->B * d->T; i++) { inputs[i] = tok[i]; targets[i] = tok[i + 1]; }
    }
    d->sample_pos++;
}

// Data parallelism: the micro-batches of a step are the next ranks x A samples of the one stream,
// whatever the number of ranks; rank r takes every ranks-th of them (r, r + ranks, ...) and skips
// the others. So N ranks x A micro-batches read exactly the samples 1 rank x N*A reads, every rank
// keeps the same position, and a checkpoint's position means the same on any number of ranks.
static void loader_next_rank_batch(DataLoader* d, int rank, int ranks, int* inputs, int* targets) {
    for (int j = 0; j < ranks; j++) { loader_next_batch(d, j == rank ? inputs : NULL, j == rank ? targets : NULL); }
}

// batches available in one pass over the data (validation uses at most that many)
static long loader_total_batches(const DataLoader* d) {
    long total = 0;
    for (int i = 0; i < d->nfiles; i++) { total += (d->file_ntok[i] - 1) / ((long)d->B * d->T); }
    return total;
}

static void loader_free(DataLoader* d) {
    for (int i = 0; i < d->nfiles; i++) { free(d->files[i]); }
    free(d->files); free(d->file_ntok); free(d->shard_order); free(d->tokens); free(d->sample_order);
    memset(d, 0, sizeof(*d));
}

// ----------------------------------------------------------------------------------------------
// Sampling: softmax(logits / temperature), restricted to the top_k largest and to the smallest set
// of tokens whose probability adds up to top_p (nucleus sampling, Holtzman et al., "The Curious
// Case of Neural Text Degeneration"), drawn with a seeded Rng

typedef struct {
    float temperature; // > 0
    int top_k;         // 0 or >= V: no restriction
    float top_p;       // 1: no restriction
} SampleOptions;

// descending by value, ties by index (a fixed order: the same draw gives the same token)
static float* g_sort_values;
static int compare_desc(const void* a, const void* b) {
    int i = *(const int*)a, j = *(const int*)b;
    float x = g_sort_values[i], y = g_sort_values[j];
    return x > y ? -1 : x < y ? 1 : (i > j) - (i < j);
}

static int sample_token(const float* logits, int V, const SampleOptions* so, Rng* rng, float* work, int* order) {
    // work (V), order (V): scratch
    float maxval = -INFINITY;
    for (int v = 0; v < V; v++) { if (logits[v] > maxval) { maxval = logits[v]; } }
    float threshold = -INFINITY;
    if (so->top_k > 0 && so->top_k < V) {
        // the k-th largest logit: select it from a copy (quickselect)
        for (int v = 0; v < V; v++) { work[v] = logits[v]; }
        int lo = 0, hi = V - 1, want = so->top_k - 1; // descending order position
        while (lo < hi) {
            float pivot = work[(lo + hi) / 2];
            int i = lo, j = hi;
            while (i <= j) {
                while (work[i] > pivot) { i++; }
                while (work[j] < pivot) { j--; }
                if (i <= j) { float t = work[i]; work[i] = work[j]; work[j] = t; i++; j--; }
            }
            if (want <= j) { hi = j; } else if (want >= i) { lo = i; } else { break; }
        }
        threshold = work[want];
    }
    double sum = 0.0;
    for (int v = 0; v < V; v++) {
        work[v] = logits[v] >= threshold ? expf((logits[v] - maxval) / so->temperature) : 0.0f;
        sum += work[v];
    }
    if (so->top_p < 1.0f) {
        // keep the most probable tokens until their mass reaches top_p of the total; zero the rest
        int n = 0;
        for (int v = 0; v < V; v++) { if (work[v] > 0.0f) { order[n++] = v; } }
        g_sort_values = work;
        qsort(order, (size_t)n, sizeof(int), compare_desc);
        double kept = 0.0, target = (double)so->top_p * sum;
        int i = 0;
        while (i < n && kept < target) { kept += work[order[i]]; i++; }
        for (; i < n; i++) { work[order[i]] = 0.0f; }
        sum = kept;
    }
    double r = (double)rng_uniform(rng) * sum;
    double acc = 0.0;
    for (int v = 0; v < V; v++) {
        acc += work[v];
        if (r < acc) { return v; }
    }
    for (int v = V - 1; v >= 0; v--) { if (work[v] > 0.0f) { return v; } }
    return 0;
}

// Generates up to max_new tokens after the n_prompt tokens of seq (whose room is for `window`
// tokens in all), stopping early at the end-of-text token `eot` (which is not emitted; -1: never)
// or when the window is full. Each new token goes to emit(token, ctx) as it is drawn, and into
// seq. With the backend's KV cache (be->decode), every position is decoded once; without it, each
// token reruns the forward over the whole sequence so far (window <= the T the backend's
// activations were sized for). Sampling runs without dropout. Returns the number of tokens generated.
static int generate(const Backend* be, GPT* model, int* seq, int n_prompt, int window, int max_new,
                    const SampleOptions* so, Rng* rng, int eot, void (*emit)(int token, void* ctx), void* ctx) {
    int V = model->config.vocab_size;
    model->dropout = dropout_make(0.0f, 0);
    float* work = (float*)malloc_or_die((size_t)V * sizeof(float));
    int* order = (int*)malloc_or_die((size_t)V * sizeof(int));
    int len = n_prompt, made = 0;
    const float* logits = NULL;
    if (be->decode != NULL) {
        for (int t = 0; t < n_prompt; t++) { logits = be->decode(model, seq[t], t); } // the prompt: the cache
    }
    while (made < max_new && len < window) {
        if (be->decode == NULL) {
            be->forward(model, seq, NULL, 1, len); // the model is causal: position len-1 sees seq[0..len-1]
            logits = be->logits(model, 0, len - 1);
        }
        int next = sample_token(logits, V, so, rng, work, order);
        if (next == eot) { break; }
        seq[len++] = next;
        made++;
        emit(next, ctx);
        if (be->decode != NULL && made < max_new && len < window) { logits = be->decode(model, next, len - 1); }
    }
    free(work); free(order);
    return made;
}

// prints a token as text (with a tokenizer) or as its id
typedef struct { const Tokenizer* tok; int have_tok; } PrintTokens;
static void print_token(int token, void* ctx) {
    const PrintTokens* pt = (const PrintTokens*)ctx;
    if (pt->have_tok) {
        size_t len;
        const char* s = tokenizer_decode(pt->tok, (uint32_t)token, &len);
        if (s != NULL) { fwrite(s, 1, len, stdout); }
    } else {
        printf("%d ", token);
    }
    fflush(stdout);
}

// the training loop's samples: gen_len tokens after an end-of-text token
static void generate_and_print(const Backend* be, GPT* model, int max_T, const Tokenizer* tok, int have_tok,
                               int gen_len, const SampleOptions* so, Rng* rng) {
    int V = model->config.vocab_size;
    int window = be->decode != NULL ? model->config.max_seq_len : max_T;
    int n = gen_len + 1 < window ? gen_len + 1 : window;
    int* seq = (int*)malloc_or_die((size_t)n * sizeof(int));
    int eot = have_tok && (int)tok->eot < V ? (int)tok->eot : V - 1;
    seq[0] = eot;
    PrintTokens pt = {tok, have_tok};
    printf("generating:\n---\n");
    generate(be, model, seq, 1, n, gen_len, so, rng, eot, print_token, &pt);
    printf("\n---\n");
    free(seq);
}

// ----------------------------------------------------------------------------------------------
// Checkpoints: out_dir/model_NNNNNNNN.bin (the model file above) + out_dir/state_NNNNNNNN.bin,
// NNNNNNNN the number of completed steps. The state file (version 2):
//   int64 header[64] = {20240527, 2, step, num_parameters, epoch, shard_pos, sample_pos,
//                       rng key, rng counter, B, T, options_len, train data identity, 0...}
//   options_len bytes: the options that define the run (see run_options_record), as
//                      NUL-terminated strings "flag", "value", "flag", "value", ...
//   AdamW's m, then v: num_parameters float32 each.
// The model is written first and the state last, each through a temp file + rename, so a state
// file marks a complete checkpoint. Every field is checked when it is read back: the header
// against the file name, the model, the file's size and its range; m and v must be finite, v >= 0.

#define STATE_MAGIC 20240527
#define STATE_VERSION 2
#define MAX_OPTIONS_BYTES 65536 // the recorded options: a few hundred bytes, plus paths
#define MAX_STEPS (1L << 30)    // -x: steps are counted in an int by the schedule

typedef struct {
    long step;
    long epoch, shard_pos, sample_pos;
    Rng rng;
    uint64_t data_identity;    // DataLoader.identity of the training data
    int B, T;                  // of the state file's header: must agree with its recorded -b, -t
    char* options; size_t options_len; // the recorded options (malloc'd; see the format above)
} TrainState;

static void checkpoint_paths(char* model_path, char* state_path, size_t size, const char* dir, long step) {
    snprintf(model_path, size, "%s/model_%08ld.bin", dir, step);
    snprintf(state_path, size, "%s/state_%08ld.bin", dir, step);
}

// (m, v: the full AdamW moments, num_parameters each; with ZeRO-1 gathered from the ranks first)
static void save_checkpoint(const GPT* model, const float* m, const float* v, const TrainState* st, int B, int T,
                            const char* dir) {
    char model_path[4096], state_path[4096], tmp[4200];
    checkpoint_paths(model_path, state_path, sizeof(model_path), dir, st->step);
    gpt_write_model(model, model_path);
    FILE* f = open_for_atomic_write(state_path, tmp, sizeof(tmp));
    int64_t header[64];
    memset(header, 0, sizeof(header));
    header[0] = STATE_MAGIC; header[1] = STATE_VERSION; header[2] = st->step;
    header[3] = (int64_t)model->num_parameters;
    header[4] = st->epoch; header[5] = st->shard_pos; header[6] = st->sample_pos;
    header[7] = (int64_t)st->rng.key; header[8] = (int64_t)st->rng.counter;
    header[9] = B; header[10] = T;
    header[11] = (int64_t)st->options_len; header[12] = (int64_t)st->data_identity;
    fwrite_or_die(header, sizeof(int64_t), 64, f, tmp);
    fwrite_or_die(st->options, 1, st->options_len, f, tmp);
    fwrite_or_die(m, sizeof(float), model->num_parameters, f, tmp);
    fwrite_or_die(v, sizeof(float), model->num_parameters, f, tmp);
    finish_atomic_write(f, tmp, state_path);
}

// The steps that have a state file in dir, ascending (malloc'd, *count of them; NULL if none).
// Only names that are exactly state_<digits>.bin count.
static long* list_checkpoints(const char* dir, size_t* count) {
    char pattern[4200];
    snprintf(pattern, sizeof(pattern), "%s/state_*.bin", dir);
    glob_t g;
    long* steps = NULL;
    *count = 0;
    if (glob(pattern, 0, NULL, &g) == 0) {
        steps = (long*)malloc_or_die(g.gl_pathc * sizeof(long));
        for (size_t i = 0; i < g.gl_pathc; i++) {
            const char* name = strrchr(g.gl_pathv[i], '/');
            name = name != NULL ? name + 1 : g.gl_pathv[i];
            const char* digits = name + strlen("state_");
            size_t nd = strspn(digits, "0123456789");
            if (nd == 0 || nd > 12 || strcmp(digits + nd, ".bin") != 0) { continue; }
            steps[(*count)++] = strtol(digits, NULL, 10);
        }
        globfree(&g);
        // ascending (insertion sort: a directory holds a handful)
        for (size_t i = 1; i < *count; i++) {
            long x = steps[i];
            size_t j = i;
            while (j > 0 && steps[j - 1] > x) { steps[j] = steps[j - 1]; j--; }
            steps[j] = x;
        }
    }
    return steps;
}

// the largest step with a state file in dir, or -1
static long latest_checkpoint(const char* dir) {
    size_t n;
    long* steps = list_checkpoints(dir, &n);
    long best = n > 0 ? steps[n - 1] : -1;
    free(steps);
    return best;
}

// keeps the newest `keep` checkpoints in dir and removes the others (keep <= 0: keeps all).
// The state file goes first: without it the pair is no longer a checkpoint.
static void remove_old_checkpoints(const char* dir, int keep) {
    if (keep <= 0) { return; }
    size_t n;
    long* steps = list_checkpoints(dir, &n);
    for (size_t i = 0; i + (size_t)keep < n; i++) {
        char model_path[4096], state_path[4096];
        checkpoint_paths(model_path, state_path, sizeof(model_path), dir, steps[i]);
        if (remove(state_path) != 0 || remove(model_path) != 0) {
            fprintf(stderr, "warning: could not remove old checkpoint %s (%s)\n", model_path, strerror(errno));
        }
    }
    free(steps);
}

// Loads model and optimizer state of checkpoint `step` in dir into a model not yet built. The
// data position is range-checked later, against the data (loader_seek); the options by the caller.
static void load_checkpoint(GPT* model, TrainState* st, const char* dir, long step) {
    char model_path[4096], state_path[4096];
    checkpoint_paths(model_path, state_path, sizeof(model_path), dir, step);
    gpt_build_from_checkpoint(model, model_path);
    FILE* f = fopen_input_or_die(state_path);
    long fsize = file_size_or_die(f, state_path);
    int64_t header[64];
    if (fsize < (long)sizeof(header)) { die("%s: truncated state file (%ld bytes, header is 512)", state_path, fsize); }
    fread_or_die(header, sizeof(int64_t), 64, f, state_path);
    if (header[0] != STATE_MAGIC) { die("%s: bad magic %lld in state file (expected %d)", state_path, (long long)header[0], STATE_MAGIC); }
    if (header[1] != STATE_VERSION) {
        die("%s: state file version %lld not supported (expected %d%s)", state_path, (long long)header[1], STATE_VERSION,
            header[1] == 1 ? "; version 1 did not record the run's options: restart from its model with -e" : "");
    }
    if (header[2] != step) {
        die("%s: header says step %lld, the file name says %ld (renamed or corrupt file)", state_path, (long long)header[2], step);
    }
    if (header[3] != (int64_t)model->num_parameters) {
        die("%s: state is for %lld parameters but %s has %zu", state_path, (long long)header[3], model_path, model->num_parameters);
    }
    if (header[4] < 0 || header[4] > MAX_EPOCH || header[5] < 0 || header[6] < 0) {
        die("%s: data position (epoch %lld, shard %lld, sample %lld) out of range", state_path,
            (long long)header[4], (long long)header[5], (long long)header[6]);
    }
    if (header[9] < 1 || header[9] > MAX_MICRO_BATCH_TOKENS || header[10] < 1 || header[10] > model->config.max_seq_len ||
        header[9] * header[10] > MAX_MICRO_BATCH_TOKENS) { // (the product only of bounded factors)
        die("%s: batch B=%lld T=%lld out of range", state_path, (long long)header[9], (long long)header[10]);
    }
    if (header[11] < 0 || header[11] > MAX_OPTIONS_BYTES) {
        die("%s: options length %lld out of range [0, %d]", state_path, (long long)header[11], MAX_OPTIONS_BYTES);
    }
    size_t moments = checked_mul(2 * sizeof(float), model->num_parameters, state_path);
    size_t expect = checked_add(sizeof(header) + (size_t)header[11], moments, state_path);
    if ((size_t)fsize != expect) { die("%s: state file is %ld bytes, expected %zu (truncated?)", state_path, fsize, expect); }
    st->options_len = (size_t)header[11];
    st->options = (char*)malloc_or_die(st->options_len + 1);
    fread_or_die(st->options, 1, st->options_len, f, state_path);
    st->options[st->options_len] = '\0';
    model->m_memory = (float*)malloc_or_die(model->num_parameters * sizeof(float));
    model->v_memory = (float*)malloc_or_die(model->num_parameters * sizeof(float));
    fread_or_die(model->m_memory, sizeof(float), model->num_parameters, f, state_path);
    fread_or_die(model->v_memory, sizeof(float), model->num_parameters, f, state_path);
    fclose(f);
    size_t n = model->num_parameters;
    size_t bad = first_nonfinite(model->m_memory, n);
    if (bad < n) { die("%s: AdamW m[%zu] (in %s) is not finite", state_path, bad, param_name_at(model, bad)); }
    bad = first_nonfinite(model->v_memory, n);
    if (bad < n) { die("%s: AdamW v[%zu] (in %s) is not finite", state_path, bad, param_name_at(model, bad)); }
    for (size_t i = 0; i < n; i++) {
        if (model->v_memory[i] < 0.0f) {
            die("%s: AdamW v[%zu] (in %s) is negative (%g): a second moment is a mean of squares", state_path, i,
                param_name_at(model, i), (double)model->v_memory[i]);
        }
    }
    st->step = (long)header[2];
    st->epoch = (long)header[4]; st->shard_pos = (long)header[5]; st->sample_pos = (long)header[6];
    st->rng.key = (uint64_t)header[7]; st->rng.counter = (uint64_t)header[8];
    st->data_identity = (uint64_t)header[12];
    st->B = (int)header[9]; st->T = (int)header[10];
}

// ZeRO-1 (zero = 1): this rank keeps AdamW's m and v only for its shard of the flat parameters
// (comm_shard); moments already loaded in full (a checkpoint) are cut down to the shard.
static void gpt_set_zero(GPT* model, int zero) {
    size_t n = model->num_parameters, b = 0, e = n;
    if (zero) { comm_shard(n, g_comm.size, g_comm.rank, &b, &e); }
    if (model->m_memory != NULL && (b != 0 || e != n)) {
        memmove(model->m_memory, model->m_memory + b, (e - b) * sizeof(float));
        memmove(model->v_memory, model->v_memory + b, (e - b) * sizeof(float));
    }
    model->zero = zero;
    model->shard_begin = b; model->shard_end = e;
}

// log.txt of a resumed run: the lines of steps before the checkpoint's, as the uninterrupted run
// wrote them (a killed run logged steps past its last checkpoint; they are run again), and the
// validation at the checkpoint's step itself when the resumed run will not redo it (keep_val_at_step)
static void truncate_log(const char* path, long step, int keep_val_at_step) {
    FILE* f = fopen(path, "rb");
    if (f == NULL) { return; }
    char tmp[4300];
    FILE* out = open_for_atomic_write(path, tmp, sizeof(tmp));
    char line[512];
    while (fgets(line, sizeof(line), f) != NULL) {
        long s;
        int keep = sscanf(line, "s:%ld", &s) == 1 &&
                   (s < step || (s == step && keep_val_at_step && strstr(line, " vl:") != NULL));
        if (keep) { fwrite_or_die(line, 1, strlen(line), out, tmp); }
    }
    fclose(f);
    finish_atomic_write(out, tmp, path);
}

// One run per output directory: an advisory lock on dir/.lock, held until the run ends (or the
// process dies: the kernel releases it). The file says who holds it, for the error message.
static int lock_out_dir(const char* dir) {
    char path[4200];
    snprintf(path, sizeof(path), "%s/.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    if (fd < 0) { die("%s: cannot open the lock file (%s)", path, strerror(errno)); }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char holder[256] = "";
        ssize_t n = pread(fd, holder, sizeof(holder) - 1, 0);
        holder[n > 0 ? n : 0] = '\0';
        holder[strcspn(holder, "\n")] = '\0';
        die("-o %s: another run is using this directory (%s); wait for it to end or choose another -o",
            dir, holder[0] != '\0' ? holder : "holder unknown");
    }
    char host[128] = "?";
    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    char who[256];
    int len = snprintf(who, sizeof(who), "pid %ld on %s\n", (long)getpid(), host);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, who, (size_t)len, 0) != len) {
        die("%s: cannot write the lock file (%s)", path, strerror(errno));
    }
    return fd;
}

// ----------------------------------------------------------------------------------------------
// Training run and CLI

typedef struct {
    const char* train_pattern;  // -i
    const char* val_pattern;    // -j
    const char* init;           // -e model file or descriptor
    const char* out_dir;        // -o ("" = no log, no checkpoints)
    const char* tokenizer_path; // -Z
    int B, T;                   // -b -t
    long total_batch;           // -d tokens per optimizer step (-1: B*T)
    int max_steps;              // -x
    float lr;                   // -l
    int warmup;                 // -u
    float final_frac;           // -q
    float weight_decay;         // -c
    float grad_clip;            // -G
    float beta1, beta2, eps;    // --beta1 --beta2 --eps (AdamW)
    float dropout;              // -D: dropout probability in training (0: off)
    int val_every;              // -v (0: never)
    int val_batches;            // -m
    int sample_every;           // -s (0: never)
    int gen_len;                // -g
    int ckpt_every;             // -n (0: only at the end)
    int keep_last;              // -k (0: keep every checkpoint)
    int resume;                 // -y
    int zero;                   // -z: 1 = ZeRO-1 (AdamW state sharded over the ranks)
    long seed;                  // -S
    int top_k;                  // -K
    float temperature;          // -H
    float top_p;                // --top-p (1: off)
    const char* prompt;         // --prompt: generate from this text, no training (NULL: train)
    int kv_cache;               // --kv-cache: 0 = generate with a full forward per token (for comparison)
    const char* export_dir;     // --export: write the model of -e as a Hugging Face checkpoint, no training
    int export_bf16;            // --export-dtype bf16 (1) or f32 (0)
    int verbose;                // 0 for tests: no per-step output
    const Backend* backend;     // &cpu_backend, or train_gpt.cu's GPU backend
    char given[128];            // given[code] = 1: the flag was on the command line (flag_code)
} TrainOptions;

static TrainOptions default_options(void) {
    TrainOptions o;
    memset(&o, 0, sizeof(o));
    o.train_pattern = "data/brown/brown_train_*.bin";
    o.val_pattern = "data/brown/brown_val_*.bin";
    o.init = "L4H4C256";
    o.out_dir = "out";
    o.tokenizer_path = "data/gpt2_tokenizer.bin";
    o.B = 4; o.T = 128; o.total_batch = -1; o.max_steps = 300;
    o.lr = 1e-3f; o.warmup = 20; o.final_frac = 0.1f; o.weight_decay = 0.1f; o.grad_clip = 1.0f;
    o.beta1 = 0.9f; o.beta2 = 0.95f; o.eps = 1e-8f;
    o.val_every = 50; o.val_batches = 10; o.sample_every = 100; o.gen_len = 64;
    o.ckpt_every = 100; o.keep_last = 0; o.resume = 0; o.zero = 0; o.seed = 1337; o.top_k = 40; o.temperature = 1.0f;
    o.top_p = 1.0f; o.prompt = NULL; o.kv_cache = 1;
    o.export_dir = NULL; o.export_bf16 = 0;
    o.verbose = 1;
    o.backend = &cpu_backend;
    return o;
}

// Where flag values come from, for error messages: the command line (NULL), or a state file whose
// recorded options are being read back.
static const char* g_options_source = NULL;
#define die_flag(fmt, ...) \
    (g_options_source != NULL ? die("%s: recorded option " fmt, g_options_source, __VA_ARGS__) : die(fmt, __VA_ARGS__))

// integer flag value in [lo, hi], or a one-line error naming the flag
static long parse_int_flag(const char* flag, const char* s, long lo, long hi) {
    char* end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') { die_flag("%s %s: not an integer", flag, s); }
    if (v < lo || v > hi) { die_flag("%s %s: must be in [%ld, %ld]", flag, s, lo, hi); }
    return v;
}

static float parse_float_flag(const char* flag, const char* s, double lo, double hi) {
    char* end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v)) { die_flag("%s %s: not a number", flag, s); }
    if (v < lo || v > hi) { die_flag("%s %s: must be in [%g, %g]", flag, s, lo, hi); }
    return (float)v;
}

// A flag's code in TrainOptions.given: its letter, or a digit for the long AdamW flags; 0 = unknown.
static int flag_code(const char* f) {
    if (strcmp(f, "--beta1") == 0) { return '1'; }
    if (strcmp(f, "--beta2") == 0) { return '2'; }
    if (strcmp(f, "--eps") == 0) { return '3'; }
    if (strcmp(f, "--top-p") == 0) { return '4'; }
    if (strcmp(f, "--prompt") == 0) { return '5'; }
    if (strcmp(f, "--kv-cache") == 0) { return '6'; }
    if (strcmp(f, "--export") == 0) { return '7'; }
    if (strcmp(f, "--export-dtype") == 0) { return '8'; }
    if (f[0] == '-' && f[1] != '\0' && f[1] != '-' && f[2] == '\0' && strchr("ijeoZbtdxluqcGDvmsgKHnkyzS", f[1]) != NULL) {
        return f[1];
    }
    return 0;
}

// sets one option from its flag and value text (the command line, or a checkpoint's record)
static void apply_flag(TrainOptions* o, const char* f, const char* v) {
    switch (flag_code(f)) {
        case 'i': o->train_pattern = v; break;
        case 'j': o->val_pattern = v; break;
        case 'e': o->init = v; break;
        case 'o': o->out_dir = v; break;
        case 'Z': o->tokenizer_path = v; break;
        case 'b': o->B = (int)parse_int_flag(f, v, 1, MAX_MICRO_BATCH_TOKENS); break;
        case 't': o->T = (int)parse_int_flag(f, v, 1, MAX_SEQ_LEN); break;
        case 'd': o->total_batch = parse_int_flag(f, v, -1, 1L << 40);
                  if (o->total_batch == 0) { die_flag("%s %s: must be positive, or -1 for B*T", f, v); } break;
        case 'x': o->max_steps = (int)parse_int_flag(f, v, 1, MAX_STEPS); break;
        case 'l': o->lr = parse_float_flag(f, v, 1e-12, 10.0); break;
        case 'u': o->warmup = (int)parse_int_flag(f, v, 0, MAX_STEPS); break;
        case 'q': o->final_frac = parse_float_flag(f, v, 0.0, 1.0); break;
        case 'c': o->weight_decay = parse_float_flag(f, v, 0.0, 1e3); break;
        case 'G': o->grad_clip = parse_float_flag(f, v, 0.0, 1e9); break;
        case 'D': o->dropout = parse_float_flag(f, v, 0.0, MAX_DROPOUT); break;
        case '1': o->beta1 = parse_float_flag(f, v, 0.0, 0.999999); break;
        case '2': o->beta2 = parse_float_flag(f, v, 0.0, 0.999999); break;
        case '3': o->eps = parse_float_flag(f, v, 1e-30, 1.0); break;
        case 'v': o->val_every = (int)parse_int_flag(f, v, 0, MAX_STEPS); break;
        case 'm': o->val_batches = (int)parse_int_flag(f, v, 1, 1L << 30); break;
        case 's': o->sample_every = (int)parse_int_flag(f, v, 0, MAX_STEPS); break;
        case 'g': o->gen_len = (int)parse_int_flag(f, v, 1, MAX_SEQ_LEN); break;
        case 'K': o->top_k = (int)parse_int_flag(f, v, 0, 1L << 30); break;
        case 'H': o->temperature = parse_float_flag(f, v, 1e-6, 1e6); break;
        case '4': o->top_p = parse_float_flag(f, v, 1e-6, 1.0); break;
        case '5': o->prompt = v; break;
        case '6': o->kv_cache = (int)parse_int_flag(f, v, 0, 1); break;
        case '7': o->export_dir = v; break;
        case '8': if (strcmp(v, "f32") != 0 && strcmp(v, "bf16") != 0) { die_flag("%s %s: f32 or bf16", f, v); }
                  o->export_bf16 = strcmp(v, "bf16") == 0; break;
        case 'n': o->ckpt_every = (int)parse_int_flag(f, v, 0, MAX_STEPS); break;
        case 'k': o->keep_last = (int)parse_int_flag(f, v, 0, 1L << 30); break;
        case 'y': o->resume = (int)parse_int_flag(f, v, 0, 1); break;
        case 'z': o->zero = (int)parse_int_flag(f, v, 0, 1); break;
        case 'S': o->seed = parse_int_flag(f, v, 0, 0x7fffffffffffffffL); break;
        default: die_flag("%s: unknown flag (-h lists the flags)", f);
    }
}

// The options that define a run's trajectory: every checkpoint records them (save_checkpoint), and
// a resumed run (-y 1) takes them from there. On resume, one not on the command line takes the
// checkpoint's value; one given with the checkpoint's value is fine; one given with another value
// is an error naming it, except -x, which may grow (train longer: printed as an override). -i is
// compared by content: the data's identity (a hash of every train shard), not the pattern's text.
// (-D came after the first checkpoints of state version 2: a record without it means -D 0.)
static const char* const RUN_FLAGS[] = {"-e", "-i", "-b", "-t", "-d", "-x", "-l", "-u", "-q", "-c",
                                        "-G", "-D", "-S", "--beta1", "--beta2", "--eps"};
enum { NUM_RUN_FLAGS = sizeof(RUN_FLAGS) / sizeof(RUN_FLAGS[0]) };

// the shortest decimal text that reads back as the same float (at most 9 significant digits)
static void format_float(char* buf, size_t n, float x) {
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(buf, n, "%.*g", digits, (double)x);
        if (strtof(buf, NULL) == x) { return; }
    }
}

// the text of a run option's value, as the command line would give it (floats in the shortest
// text that reads back exactly)
static void run_flag_value(const TrainOptions* o, const char* f, char* buf, size_t n) {
    switch (flag_code(f)) {
        case 'e': snprintf(buf, n, "%s", o->init); break;
        case 'i': snprintf(buf, n, "%s", o->train_pattern); break;
        case 'b': snprintf(buf, n, "%d", o->B); break;
        case 't': snprintf(buf, n, "%d", o->T); break;
        case 'd': snprintf(buf, n, "%ld", o->total_batch > 0 ? o->total_batch : (long)o->B * o->T); break;
        case 'x': snprintf(buf, n, "%d", o->max_steps); break;
        case 'l': format_float(buf, n, o->lr); break;
        case 'u': snprintf(buf, n, "%d", o->warmup); break;
        case 'q': format_float(buf, n, o->final_frac); break;
        case 'c': format_float(buf, n, o->weight_decay); break;
        case 'G': format_float(buf, n, o->grad_clip); break;
        case 'D': format_float(buf, n, o->dropout); break;
        case 'S': snprintf(buf, n, "%ld", o->seed); break;
        case '1': format_float(buf, n, o->beta1); break;
        case '2': format_float(buf, n, o->beta2); break;
        case '3': format_float(buf, n, o->eps); break;
        default: die("run_flag_value: %s is not a run option", f);
    }
}

// the record of a run's options for its checkpoints: "flag\0value\0" for each of RUN_FLAGS
static char* run_options_record(const TrainOptions* o, size_t* len) {
    char* rec = (char*)malloc_or_die(MAX_OPTIONS_BYTES);
    size_t n = 0;
    for (int k = 0; k < NUM_RUN_FLAGS; k++) {
        char value[4200];
        run_flag_value(o, RUN_FLAGS[k], value, sizeof(value));
        size_t lf = strlen(RUN_FLAGS[k]) + 1, lv = strlen(value) + 1;
        if (n + lf + lv > MAX_OPTIONS_BYTES) { die("the run's options are longer than %d bytes", MAX_OPTIONS_BYTES); }
        memcpy(rec + n, RUN_FLAGS[k], lf); n += lf;
        memcpy(rec + n, value, lv); n += lv;
    }
    *len = n;
    return rec;
}

// Resume: the run's options from the checkpoint's record (st->options, read from state_path)
// merged with the command line's (o), by the rules above RUN_FLAGS. Returns the merged options;
// their strings point into o or st->options.
static TrainOptions resume_options(const TrainOptions* o, const TrainState* st, const char* state_path) {
    TrainOptions ck = *o;
    g_options_source = state_path;
    int seen[NUM_RUN_FLAGS] = {0};
    size_t i = 0;
    while (i < st->options_len) {
        const char* f = st->options + i;
        size_t lf = strnlen(f, st->options_len - i);
        if (i + lf + 1 >= st->options_len) { die("%s: recorded options are cut short", state_path); }
        const char* v = f + lf + 1;
        size_t lv = strnlen(v, st->options_len - i - lf - 1);
        if (i + lf + 1 + lv >= st->options_len) { die("%s: recorded options are cut short", state_path); }
        int k = 0;
        while (k < NUM_RUN_FLAGS && strcmp(RUN_FLAGS[k], f) != 0) { k++; }
        if (k == NUM_RUN_FLAGS || seen[k]) { die("%s: recorded option %.40s is unknown or repeated", state_path, f); }
        seen[k] = 1;
        apply_flag(&ck, f, v); // validates the value as the command line would
        i += lf + 1 + lv + 1;
    }
    for (int k = 0; k < NUM_RUN_FLAGS; k++) {
        if (!seen[k] && strcmp(RUN_FLAGS[k], "-D") == 0) { ck.dropout = 0.0f; continue; }
        if (!seen[k]) { die("%s: recorded options lack %s", state_path, RUN_FLAGS[k]); }
    }
    g_options_source = NULL;
    // the command line's values where given: equal, or an error (-x: may grow; -i: by content)
    TrainOptions run = ck;
    for (int k = 0; k < NUM_RUN_FLAGS; k++) {
        const char* f = RUN_FLAGS[k];
        int code = flag_code(f);
        if (!o->given[code]) { continue; }
        if (code == 'i') { run.train_pattern = o->train_pattern; continue; }
        char have[4200], want[4200];
        run_flag_value(&ck, f, have, sizeof(have));
        // the given value, read in the context of the checkpoint's other options (-d -1 = B*T)
        TrainOptions given = ck;
        switch (code) {
            case 'e': given.init = o->init; break;
            case 'b': given.B = o->B; break;
            case 't': given.T = o->T; break;
            case 'd': given.total_batch = o->total_batch; break;
            case 'x': given.max_steps = o->max_steps; break;
            case 'l': given.lr = o->lr; break;
            case 'u': given.warmup = o->warmup; break;
            case 'q': given.final_frac = o->final_frac; break;
            case 'c': given.weight_decay = o->weight_decay; break;
            case 'G': given.grad_clip = o->grad_clip; break;
            case 'D': given.dropout = o->dropout; break;
            case 'S': given.seed = o->seed; break;
            case '1': given.beta1 = o->beta1; break;
            case '2': given.beta2 = o->beta2; break;
            case '3': given.eps = o->eps; break;
        }
        run_flag_value(&given, f, want, sizeof(want));
        if (strcmp(have, want) == 0) { continue; }
        if (code == 'x') {
            if (o->max_steps <= st->step) {
                die("-x %d: the checkpoint has already done %ld steps; give a larger -x to train further",
                    o->max_steps, st->step);
            }
            run.max_steps = o->max_steps;
            continue;
        }
        die("%s %s: the checkpoint %s was trained with %s %s; a resumed run keeps its options (drop the "
            "flag, or start a new run from the checkpoint's model with -e and another -o)", f, want, state_path, f, have);
    }
    if (run.max_steps <= st->step) {
        die("%s: the run is complete (%ld of -x %d steps); give a larger -x to train further", state_path,
            st->step, run.max_steps);
    }
    if (run.max_steps != ck.max_steps && o->verbose) { // (after every check: a refused resume prints nothing)
        printf("note: -x %d overrides the checkpoint's -x %d: the schedule's decay now ends at step %d\n",
               run.max_steps, ck.max_steps, run.max_steps);
    }
    return run;
}

// what a run produced, for callers such as the resume test (free losses after use)
typedef struct {
    long first_step, last_step;  // steps [first_step, last_step) ran in this call
    float* losses;               // (max_steps of the run) training loss of each step run, by step; 0 elsewhere
    float last_val_loss;
} TrainResult;

// The mean loss of the first nbatches validation batches: the same batches every time, split
// over the ranks (batch i on rank i % ranks) and their losses summed over the ranks. No dropout.
static float evaluate(const Backend* be, GPT* model, DataLoader* val, int nbatches, int* inputs, int* targets) {
    model->dropout = dropout_make(0.0f, 0);
    loader_seek(val, 0, 0, 0, "-j");
    double sum = 0.0;
    for (int i = 0; i < nbatches; i++) {
        int mine = i % g_comm.size == g_comm.rank;
        loader_next_batch(val, mine ? inputs : NULL, mine ? targets : NULL);
        if (mine) { sum += be->forward(model, inputs, targets, val->B, val->T); }
    }
    comm_allreduce_sum_f64(&sum, 1);
    return (float)(sum / nbatches);
}

// Every rank must run the same thing: the run's options, -z, the model's config, the data's
// identity and the build. Rank 0's record is the reference; the lowest rank that differs names
// the first difference and stops the job (comm/comm.h: its exit aborts every rank).
static void check_ranks_agree(const TrainOptions* o, const GPTConfig* cfg, uint64_t train_id, uint64_t val_id,
                              const char* backend) {
    if (g_comm.size == 1) { return; }
    // -i by the data's identity, not its text: each machine may mount the shards elsewhere
    TrainOptions same = *o;
    same.train_pattern = "(compared by content)";
    size_t len;
    char* rec = run_options_record(&same, &len);
    char extra[512];
    int n = snprintf(extra, sizeof(extra), "-z%c%d%cmodel%cL%dH%dC%dT%dV%dVp%d%cdata%c%016llx %016llx%cbuild%c%s %s %s",
                     0, o->zero, 0, 0, cfg->num_layers, cfg->num_heads, cfg->channels, cfg->max_seq_len,
                     cfg->vocab_size, cfg->padded_vocab_size, 0, 0, (unsigned long long)train_id,
                     (unsigned long long)val_id, 0, 0, backend, __DATE__, __TIME__);
    if (len + (size_t)n + 1 > MAX_OPTIONS_BYTES) { die("the run's options are too long"); }
    memcpy(rec + len, extra, (size_t)n + 1);
    len += (size_t)n + 1;
    uint64_t h = mix64(len);
    for (size_t i = 0; i < len; i++) { h = mix64(h ^ (uint8_t)rec[i]); }
    uint64_t lo, hi;
    comm_allreduce_minmax_u64(h, &lo, &hi);
    if (lo == hi) { free(rec); return; }
    // they differ: every rank compares its record with rank 0's, pair by pair
    uint64_t len0 = len;
    comm_bcast_bytes(&len0, sizeof(len0), 0);
    char* rec0 = (char*)malloc_or_die(len0 + 1);
    if (g_comm.rank == 0) { memcpy(rec0, rec, len); }
    comm_bcast_bytes(rec0, len0, 0);
    rec0[len0] = '\0';
    char what[600] = "";
    for (size_t i = 0, j = 0; i < len && j < len0 && what[0] == '\0'; ) {
        const char* f = rec + i; const char* v = f + strlen(f) + 1;
        const char* f0 = rec0 + j; const char* v0 = f0 + strlen(f0) + 1;
        if (strcmp(f, f0) != 0 || strcmp(v, v0) != 0) {
            snprintf(what, sizeof(what), "%s %.200s here, %s %.200s on rank 0", f, v, f0, v0);
        }
        i = (size_t)(v - rec) + strlen(v) + 1;
        j = (size_t)(v0 - rec0) + strlen(v0) + 1;
    }
    uint64_t first, last;
    comm_allreduce_minmax_u64(what[0] != '\0' ? (uint64_t)g_comm.rank : UINT64_MAX, &first, &last);
    if (first == (uint64_t)g_comm.rank) {
        die("rank %d of %d does not run what rank 0 runs: %s (give every rank the same flags, files and build)",
            g_comm.rank, g_comm.size, what);
    }
    if (first == UINT64_MAX) { die("rank %d: the ranks' records differ in length", g_comm.rank); }
    comm_barrier(); // the differing rank's exit ends the job
    die("ranks disagree (see the error of rank %llu)", (unsigned long long)first);
}

// a non-finite loss or gradient norm ends the run before anything is saved
static void check_finite(const char* what, double x, long step) {
    if (!isfinite(x)) {
        die("step %ld: the %s is %g: the run diverged (nothing saved after the last checkpoint); "
            "lower -l, raise -u, or set -G", step, what, x);
    }
}

// Checks the output directory before anything is written: the paths fit, the directory exists,
// no other run uses it (a lock, returned), and a fresh run does not mix with an earlier run's
// checkpoints. Returns the checkpoint step to resume from, or -1.
static long prepare_out_dir(const TrainOptions* o, int* lock_fd) {
    const char* dir = o->out_dir;
    if (strlen(dir) + 64 > 4096) { die("-o %.60s...: path too long (limit %d bytes)", dir, 4096 - 64); }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) { die("-o %s: cannot create directory (%s)", dir, strerror(errno)); }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) { die("-o %s: not a directory", dir); }
    *lock_fd = lock_out_dir(dir);
    long latest = latest_checkpoint(dir);
    if (!o->resume && latest >= 0) {
        die("-o %s: holds the checkpoints of an earlier run (latest: step %ld); resume it with -y 1, "
            "choose another -o, or delete them", dir, latest);
    }
    return o->resume ? latest : -1;
}

// One training run, on each rank of the job (comm/comm.h). Rank 0 alone prints, writes log.txt and
// the checkpoints and holds the lock on -o; every rank reads the data and, on resume, the checkpoint.
static void run_training(const TrainOptions* o_given, TrainResult* result) {
    int rank = g_comm.rank, ranks = g_comm.size;
    TrainOptions cmdline = *o_given;
    if (rank != 0) { cmdline.verbose = 0; }
    TrainOptions run = cmdline;  // the run's options: the command line's, or merged on resume
    const TrainOptions* o = &run;
    const Backend* be = o->backend;
    GPT model;
    TrainState st;
    memset(&st, 0, sizeof(st));
    int have_out = o->out_dir != NULL && o->out_dir[0] != '\0';
    int writer = have_out && rank == 0;
    if (o->resume && !have_out) { die("-y 1 needs an output directory (-o) to resume from"); }
    int lock_fd = -1;
    long resume_step = writer ? prepare_out_dir(o, &lock_fd) : -1;
    comm_bcast_bytes(&resume_step, sizeof(resume_step), 0);
    char state_path[4200] = "";
    if (resume_step >= 0) {
        load_checkpoint(&model, &st, o->out_dir, resume_step);
        snprintf(state_path, sizeof(state_path), "%s/state_%08ld.bin", o->out_dir, resume_step);
        run = resume_options(&cmdline, &st, state_path);
        if (st.B != run.B || st.T != run.T) {
            die("%s: the header's batch B=%d T=%d disagrees with its recorded options -b %d -t %d (corrupt file)",
                state_path, st.B, st.T, run.B, run.T);
        }
        if (o->verbose) { printf("resuming from %s/model_%08ld.bin (step %ld)\n", o->out_dir, resume_step, resume_step); }
    } else {
        if (o->resume && o->verbose) { printf("no checkpoint in %s: starting from scratch\n", o->out_dir); }
        gpt_build(&model, o->init, (uint64_t)o->seed);
        st.rng.key = stream_key((uint64_t)o->seed, 99ULL); // the sampler's stream
    }
    gpt_set_zero(&model, o->zero && ranks > 1);
    const GPTConfig* cfg = &model.config;
    if (o->T > cfg->max_seq_len) { die("-t %d: exceeds the model's maximum sequence length %d", o->T, cfg->max_seq_len); }
    activation_size_check(cfg, o->B, o->T);
    long tokens_per_micro = (long)o->B * o->T;
    long total_batch = o->total_batch > 0 ? o->total_batch : tokens_per_micro * ranks;
    if (total_batch % (tokens_per_micro * ranks) != 0) {
        die("-d %ld: total batch is not a multiple of B*T*ranks = %ld*%d", total_batch, tokens_per_micro, ranks);
    }
    // micro-batches per step: 2^24 keeps 1/accum's divisor exact and a step finite in time
    if (total_batch / tokens_per_micro > (1L << 24)) {
        die("-d %ld: %ld micro-batches of B*T = %ld per step is more than the limit %ld", total_batch,
            total_batch / tokens_per_micro, tokens_per_micro, 1L << 24);
    }
    int accum = (int)(total_batch / (tokens_per_micro * ranks)); // micro-batches per step on each rank
    if ((double)o->lr * o->weight_decay >= 1.0) {
        die("-l %g -c %g: lr * weight decay = %g must be below 1 (AdamW scales each weight by 1 - lr*wd every step)",
            o->lr, o->weight_decay, (double)o->lr * o->weight_decay);
    }
    if (o->verbose && o->sample_every > 0 && be->decode == NULL && o->gen_len > o->T - 1) {
        printf("note: -g %d is more than T-1 = %d: samples are %d tokens (they fit the -t %d window)\n",
               o->gen_len, o->T - 1, o->T - 1, o->T);
    }

    double t_check = wall_seconds();
    DataLoader train, val;
    loader_init(&train, o->train_pattern, o->B, o->T, cfg->vocab_size, 1, (uint64_t)o->seed, "-i");
    if (resume_step >= 0 && train.identity != st.data_identity) {
        die("-i %s: the training shards differ from those the checkpoint %s was trained on (a resumed run "
            "needs the same data)", o->train_pattern, state_path);
    }
    loader_seek(&train, st.epoch, st.shard_pos, st.sample_pos, resume_step >= 0 ? state_path : "-i");
    st.data_identity = train.identity;
    uint64_t val_identity = 0;
    int have_val = o->val_every > 0 && o->val_pattern != NULL && o->val_pattern[0] != '\0';
    int val_batches = o->val_batches;
    if (have_val) {
        loader_init(&val, o->val_pattern, o->B, o->T, cfg->vocab_size, 0, 0, "-j");
        val_identity = val.identity;
        long avail = loader_total_batches(&val);
        if (val_batches > avail) { val_batches = (int)avail; }
    }
    t_check = wall_seconds() - t_check;
    check_ranks_agree(o, cfg, train.identity, val_identity, be->name);
    // (a warning, after every check that can stop the run: an error stays one line)
    if (o->warmup >= o->max_steps && rank == 0) {
        fprintf(stderr, "warning: -u %d >= -x %d: the run ends within its warmup; the learning rate never decays\n",
                o->warmup, o->max_steps);
    }
    // the record for this run's checkpoints (run's strings may point into the one read back)
    size_t record_len;
    char* record = run_options_record(o, &record_len);
    char* recorded = st.options; // `run`'s strings may point into it: freed at the end
    st.options = record; st.options_len = record_len;
    be->attach(&model, o->B, o->T);
    Tokenizer tok;
    int have_tok = tokenizer_init(&tok, o->tokenizer_path) == 0;

    char where[64] = "1 thread";
#ifdef _OPENMP
    snprintf(where, sizeof(where), "%d threads", omp_get_max_threads());
#endif
    if (o->verbose) {
        printf("model: L=%d NH=%d C=%d maxT=%d V=%d (padded %d), %zu parameters\n", cfg->num_layers,
               cfg->num_heads, cfg->channels, cfg->max_seq_len, cfg->vocab_size, cfg->padded_vocab_size,
               model.num_parameters);
        printf("batch: B=%d T=%d, %d micro-batch(es) per step%s = %ld tokens; %s, %s\n", o->B, o->T,
               accum, ranks > 1 ? " on each rank" : "", total_batch, be->name, where);
        if (ranks > 1) {
            double full = 2.0 * model.num_parameters * sizeof(float) / 1048576.0;
            double mine = 2.0 * (model.shard_end - model.shard_begin) * sizeof(float) / 1048576.0;
            printf("ranks: %d (%s)%s, AdamW state %.1f MiB per rank%s\n", ranks, g_comm.name,
                   model.zero ? ", ZeRO-1" : "", mine, model.zero ? "" : " (-z 1 shards it)");
            if (model.zero) { printf("ZeRO-1 saves %.1f MiB of AdamW state per rank (%.1f MiB unsharded)\n", full - mine, full); }
        }
        long ntok = 0;
        for (int i = 0; i < train.nfiles; i++) { ntok += train.file_ntok[i]; }
        printf("data: %d train shard(s) %s (%ld tokens), %s%s; all checked in %.2f s\n", train.nfiles,
               o->train_pattern, ntok, have_val ? "val " : "no validation", have_val ? o->val_pattern : "", t_check);
        if (!have_tok) { printf("tokenizer %s not found: samples print token ids\n", o->tokenizer_path); }
    }
    FILE* logf = NULL;
    if (writer) {
        char path[4200];
        snprintf(path, sizeof(path), "%s/log.txt", o->out_dir);
        if (resume_step >= 0) {
            // the loop below validates at its first step only on the schedule (or at the end)
            int revalidates = have_val && (resume_step % o->val_every == 0 || resume_step == o->max_steps);
            truncate_log(path, resume_step, !revalidates);
        }
        logf = fopen_or_die(path, resume_step >= 0 ? "a" : "w");
    }
    int* inputs = (int*)malloc_or_die((size_t)tokens_per_micro * sizeof(int));
    int* targets = (int*)malloc_or_die((size_t)tokens_per_micro * sizeof(int));
    double* step_ms = (double*)calloc_or_die((size_t)o->max_steps + 1, sizeof(double));
    int timed = 0;
    result->losses = (float*)calloc_or_die((size_t)o->max_steps, sizeof(float));
    result->first_step = st.step;
    result->last_val_loss = -1.0f;

    for (long step = st.step; step <= o->max_steps; step++) {
        int last = step == o->max_steps;
        if (have_val && (step % o->val_every == 0 || last)) {
            float vl = evaluate(be, &model, &val, val_batches, inputs, targets);
            check_finite("validation loss", vl, step);
            result->last_val_loss = vl;
            if (o->verbose) { printf("step %ld: val loss %.6f (%d batches)\n", step, vl, val_batches); }
            if (logf) { fprintf(logf, "s:%ld vl:%.9g\n", step, vl); fflush(logf); }
        }
        if (o->sample_every > 0 && step > 0 && (step % o->sample_every == 0 || last) && o->verbose) {
            SampleOptions so = {o->temperature, o->top_k, o->top_p};
            generate_and_print(be, &model, o->T, &tok, have_tok, o->gen_len, &so, &st.rng);
        }
        if (last) { break; }

        double t0 = wall_seconds();
        // the mean over the step's ranks x accum micro-batches: each rank's sum, summed over ranks
        double loss_sum = 0.0;
        for (int a = 0; a < accum; a++) {
            loader_next_rank_batch(&train, rank, ranks, inputs, targets);
            // dropout's masks for this micro-batch: its place in the run's sequence of global batches
            uint64_t pass = ((uint64_t)step * (uint64_t)accum + (uint64_t)a) * (uint64_t)ranks + (uint64_t)rank;
            model.dropout = dropout_make(o->dropout, dropout_pass_key((uint64_t)o->seed, pass));
            loss_sum += be->forward(&model, inputs, targets, o->B, o->T);
            be->backward(&model, 1.0f / (float)(accum * ranks));
        }
        comm_allreduce_sum_f64(&loss_sum, 1);
        float loss = (float)(loss_sum / (double)(accum * ranks));
        double lr = lr_schedule((int)step, o->max_steps, o->lr, o->warmup, o->final_frac);
        float norm = be->step(&model, o->grad_clip, (float)lr, o->beta1, o->beta2, o->eps, o->weight_decay, (int)step + 1);
        double ms = 1000.0 * (wall_seconds() - t0);
        check_finite("training loss", loss, step + 1);
        check_finite("gradient norm", norm, step + 1);
        step_ms[timed++] = ms;
        result->losses[step] = loss;
        if (o->verbose) {
            printf("step %4ld/%d | loss %.6f | norm %.4f | lr %.2e | %.1f ms | %.0f tok/s\n", step + 1,
                   o->max_steps, loss, norm, lr, ms, (double)total_batch / (ms / 1000.0));
            fflush(stdout);
        }
        if (logf) { fprintf(logf, "s:%ld trl:%.9g norm:%.9g lr:%.9g\n", step, loss, norm, lr); fflush(logf); }
        st.step = step + 1;
        if (have_out && ((o->ckpt_every > 0 && st.step % o->ckpt_every == 0) || st.step == o->max_steps)) {
            st.epoch = train.epoch; st.shard_pos = train.shard_pos; st.sample_pos = train.sample_pos;
            be->to_host(&model);
            // ZeRO-1: the weights' and moments' shards are gathered (to_host left this rank's
            // shard in the host arrays), so the file is the same for any number of ranks
            float* m = model.m_memory; float* v = model.v_memory;
            if (model.zero) {
                size_t n = model.num_parameters;
                comm_allgather_f32(model.params_memory, n);
                m = rank == 0 ? (float*)malloc_or_die(n * sizeof(float)) : NULL;
                v = rank == 0 ? (float*)malloc_or_die(n * sizeof(float)) : NULL;
                comm_gather_f32(model.m_memory, m, n);
                comm_gather_f32(model.v_memory, v, n);
            }
            if (writer) {
                save_checkpoint(&model, m, v, &st, o->B, o->T, o->out_dir);
                remove_old_checkpoints(o->out_dir, o->keep_last);
            }
            if (model.zero) { free(m); free(v); }
            if (o->verbose) { printf("saved checkpoint %s/model_%08ld.bin\n", o->out_dir, st.step); }
        }
    }
    result->last_step = st.step;
    if (o->verbose && timed > 0) {
        // the first steps warm caches and the allocator: the median of the rest is the honest number
        int skip = timed > 3 ? 1 : 0;
        qsort(step_ms + skip, (size_t)(timed - skip), sizeof(double), compare_doubles);
        double median = step_ms[skip + (timed - skip) / 2];
        double gflop = accum * gpt_flops_per_micro_batch(cfg, o->B, o->T) / 1e9;
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("summary: median step %.1f ms over %d steps | %.0f tok/s | %.1f GFLOP/step, %.1f GFLOP/s | peak RSS %.0f MiB\n",
               median, timed - skip, (double)total_batch / (median / 1000.0), gflop,
               gflop / (median / 1000.0), (double)ru.ru_maxrss / 1024.0);
        if (be->summary != NULL) { be->summary(&model); }
    }
    if (logf) { fclose(logf); }
    free(inputs); free(targets); free(step_ms); free(st.options); free(recorded);
    if (have_tok) { tokenizer_free(&tok); }
    loader_free(&train);
    if (have_val) { loader_free(&val); }
    be->detach(&model);
    gpt_free(&model);
    if (lock_fd >= 0) { close(lock_fd); } // releases the lock
}

static void usage(FILE* to, const char* prog, const TrainOptions* d) {
    fprintf(to,
        "usage: %s [-flag value ...]\n"
        "  -i <glob>   train token shards                  (default %s)\n"
        "  -j <glob>   validation token shards, \"\" = none  (default %s)\n"
        "  -e <init>   model file, Hugging Face checkpoint (.safetensors, or a directory holding\n"
        "              model.safetensors + config.json), or descriptor d12/d24/.. or e.g.\n"
        "              L4H4C256T1024V50257 (default %s); a checkpoint starts a new run from its\n"
        "              weights: fresh AdamW state, step 0\n"
        "  -o <dir>    output dir for log.txt and checkpoints, \"\" = none (default %s)\n"
        "  -b <int>    micro-batch size B                  (default %d)\n"
        "  -t <int>    sequence length T (<= model maxT)   (default %d)\n"
        "  -d <int>    tokens per optimizer step, a multiple of B*T; -1 = B*T (default %ld)\n"
        "  -x <int>    number of training steps            (default %d)\n"
        "  -l <float>  peak learning rate                  (default %g)\n"
        "  -u <int>    warmup steps: the lr peaks at step -u (default %d)\n"
        "  -q <float>  lr at the last step as a fraction of the peak (cosine decay) (default %g)\n"
        "  -c <float>  weight decay (lr * decay < 1)       (default %g)\n"
        "  -G <float>  gradient clip (global norm), 0 = off (default %g)\n"
        "  -D <float>  dropout probability in training (embeddings, attention, residual branches),\n"
        "              0 = off; GPT-2 used 0.1 (default %g)\n"
        "  --beta1 <float>  AdamW beta1                    (default %g)\n"
        "  --beta2 <float>  AdamW beta2                    (default %g)\n"
        "  --eps <float>    AdamW epsilon                  (default %g)\n"
        "  -v <int>    validate every N steps, 0 = never   (default %d)\n"
        "  -m <int>    validation batches                  (default %d)\n"
        "  -s <int>    sample every N steps, 0 = never     (default %d)\n"
        "  -g <int>    tokens to generate per sample        (default %d)\n"
        "  -K <int>    top-k for sampling, 0 = all         (default %d)\n"
        "  -H <float>  sampling temperature                (default %g)\n"
        "  --top-p <float>  nucleus sampling: the smallest set of tokens with this much probability, 1 = off (default %g)\n"
        "  --prompt <text>  no training: generate -g tokens after the text with the model of -e, then exit\n"
        "  --kv-cache <0|1> generation with a KV cache (1) or a full forward per token (0) (default 1)\n"
        "  --export <dir>   no training: write the model of -e as a Hugging Face GPT-2 checkpoint\n"
        "                   (dir/model.safetensors + dir/config.json), then exit\n"
        "  --export-dtype <f32|bf16>  the weights' type in the export (default f32)\n"
        "  -n <int>    checkpoint every N steps, 0 = only at the end (default %d)\n"
        "  -k <int>    keep only the newest N checkpoints, 0 = all (default %d)\n"
        "  -y <0|1>    resume from the latest checkpoint in -o, with its options (default %d)\n"
        "  -z <0|1>    ZeRO-1 under mpirun: AdamW state sharded over the ranks (default %d)\n"
        "  -S <int>    random seed (init, shuffling, sampling) (default %ld)\n"
        "  -Z <path>   tokenizer file: samples as text, --prompt's encoding (default %s)\n"
        "  -h          this help\n"
        "On -y 1 the run's options (-e -i -b -t -d -x -l -u -q -c -G -D -S --beta1 --beta2 --eps) come from\n"
        "the checkpoint; giving one with another value is an error, except a larger -x (train longer).\n",
        prog, d->train_pattern, d->val_pattern, d->init, d->out_dir, d->B, d->T, d->total_batch,
        d->max_steps, d->lr, d->warmup, d->final_frac, d->weight_decay, d->grad_clip, d->dropout, d->beta1, d->beta2,
        d->eps, d->val_every, d->val_batches, d->sample_every, d->gen_len, d->top_k, d->temperature, d->top_p,
        d->ckpt_every, d->keep_last, d->resume, d->zero, d->seed, d->tokenizer_path);
}

static TrainOptions parse_options(int argc, char** argv) {
    TrainOptions o = default_options();
    for (int i = 1; i < argc; i += 2) {
        const char* f = argv[i];
        if (strcmp(f, "-h") == 0 || strcmp(f, "--help") == 0) { TrainOptions d = default_options(); usage(stdout, argv[0], &d); exit(0); }
        int code = flag_code(f);
        if (code == 0) {
            if (f[0] == '-' && f[1] != '\0' && (f[1] == '-' || f[2] == '\0')) { die("%s: unknown flag (-h lists the flags)", f); }
            die("%s: not a flag (flags are -x value; -h lists them)", f);
        }
        if (i + 1 >= argc) { die("%s: missing value", f); }
        apply_flag(&o, f, argv[i + 1]);
        o.given[code] = 1;
    }
    return o;
}

// --prompt: generation without training. The model of -e (file or descriptor), the prompt encoded
// by the tokenizer of -Z; a prompt longer than the model's context keeps its last maxT-1 tokens
// (said on stderr); generation stops after -g tokens, at <|endoftext|>, or at the context's end.
static void run_generation(const TrainOptions* o) {
    Backend chosen = *o->backend;
    if (!o->kv_cache) { chosen.decode = NULL; }
    const Backend* be = &chosen;
    GPT model;
    gpt_build(&model, o->init, (uint64_t)o->seed);
    const GPTConfig* cfg = &model.config;
    Tokenizer tok;
    if (tokenizer_init(&tok, o->tokenizer_path) != 0) { die("-Z %s: tokenizer file not found (make tokenizer writes it)", o->tokenizer_path); }
    TokenIds ids;
    memset(&ids, 0, sizeof(ids));
    if (tokenizer_encode(&tok, NULL, o->prompt, strlen(o->prompt), &ids) != 0) {
        die("-Z %s: a decode-only tokenizer file (version %d): encoding needs version 3", o->tokenizer_path, tok.version);
    }
    int maxT = cfg->max_seq_len;
    size_t n = ids.len, first = 0;
    if (n == 0) { die("--prompt: empty (give some text)"); }
    if (n > (size_t)maxT - 1) {
        first = n - ((size_t)maxT - 1);
        fprintf(stderr, "note: the prompt is %zu tokens, the context %d: it keeps its last %d\n", n, maxT, maxT - 1);
        n = (size_t)maxT - 1;
    }
    for (size_t i = first; i < first + n; i++) {
        if ((int)ids.ids[i] >= cfg->vocab_size) { die("--prompt: token %u is outside the model's vocabulary (V=%d)", ids.ids[i], cfg->vocab_size); }
    }
    int window = be->decode != NULL ? maxT : (int)n + o->gen_len < maxT ? (int)n + o->gen_len : maxT;
    be->attach(&model, 1, window);
    int* seq = (int*)malloc_or_die((size_t)maxT * sizeof(int));
    for (size_t i = 0; i < n; i++) { seq[i] = (int)ids.ids[first + i]; }
    fwrite(o->prompt, 1, strlen(o->prompt), stdout);
    fflush(stdout);
    Rng rng;
    rng.key = stream_key((uint64_t)o->seed, 99ULL); rng.counter = 0;
    SampleOptions so = {o->temperature, o->top_k, o->top_p};
    PrintTokens pt = {&tok, 1};
    double t0 = wall_seconds();
    int made = generate(be, &model, seq, (int)n, window, o->gen_len, &so, &rng, (int)tok.eot, print_token, &pt);
    double sec = wall_seconds() - t0;
    printf("\n");
    fflush(stdout);
    fprintf(stderr, "generated %d tokens after a %zu-token prompt in %.2f s: %.1f tok/s (%s, %s)\n", made, n, sec,
            made / (sec > 0 ? sec : 1e-9), be->name, be->decode != NULL ? "KV cache" : "full forward per token");
    free(seq);
    tokenids_free(&ids);
    tokenizer_free(&tok);
    be->detach(&model);
    gpt_free(&model);
}

// the whole program: flags -> a training run on the given backend (train_gpt.cu passes its GPU one)
static inline int train_main(int argc, char** argv, const Backend* backend) {
    comm_init(&argc, &argv); // under mpirun: this process's rank in the job
    TrainOptions o = parse_options(argc, argv);
    o.backend = backend;
    if (o.prompt != NULL || o.export_dir != NULL) {
        if (g_comm.size > 1) { die("%s: runs one process (not under mpirun -np %d)", o.prompt != NULL ? "--prompt" : "--export", g_comm.size); }
        if (o.prompt != NULL && o.export_dir != NULL) { die("--prompt and --export: one at a time"); }
        if (o.prompt != NULL) { run_generation(&o); }
        else {
            GPT model;
            gpt_build(&model, o.init, (uint64_t)o.seed);
            gpt_export_safetensors(&model, o.export_dir, o.export_bf16);
            printf("wrote %s/model.safetensors (%s) and %s/config.json: %zu parameters (without the padding rows)\n",
                   o.export_dir, o.export_bf16 ? "BF16" : "F32", o.export_dir, gpt_stored_parameters(&model));
            gpt_free(&model);
        }
    } else {
        TrainResult r;
        run_training(&o, &r);
        free(r.losses);
    }
    comm_finalize();
    return 0;
}

#ifndef GPT_NO_MAIN
int main(int argc, char** argv) { return train_main(argc, argv, &cpu_backend); }
#endif
