// gptc/matmul.h -- the CPU's matrix products: the three products of every linear layer.
//
// What it is: one cache-blocked, register-tiled GEMM engine in plain C (gcc -O3 -march=native
// turns its 8x32 micro-kernel into AVX-512 FMAs), used for the forward, dinp and dweight of
// train_gpt.c's matmul_forward / matmul_backward, and a matrix-vector path for the forward at
// BT <= MM_MV_MAXN (generation with the KV cache). These three products are ~99% of a training
// step's arithmetic. The design -- register tile, packing, blocking for L1/L2, threads, edges --
// is explained in dev/MATMUL.md; dev/matmul_lab.c validates and times it against simpler versions.
// What it is not: a BLAS. Row-major float arrays only, the three shapes a linear layer needs.
//
// The contract, for out (BT,OC), inp (BT,C), weight (OC,C) like torch.nn.Linear:
//   mm_forward:          out = inp @ weight^T + bias          (bias may be NULL)
//   mm_backward_dinp:    dinp = dout @ weight                 (overwritten)
//   mm_backward_dweight: dweight += dout^T @ inp; dbias += the column sums of dout (accumulated;
//                        dbias may be NULL)
// Deterministic: every output is computed by one thread as init, then one multiply-add per k in
// the order k = 0, 1, ..., K-1, whatever the tile, the edge or the number of threads; so results
// are bitwise the same run to run and for any thread count, and the forward at BT = 1 (mm_matvec)
// gives the bits of the same row at any BT (generation's logits equal the full forward's).
// Memory: two scratch buffers grown on demand (matmul_free_scratch releases them), so call these
// from serial code, not from several threads at once.

#ifndef GPTC_MATMUL_H
#define GPTC_MATMUL_H

#include <stdlib.h>    // provides: malloc, free
#include <string.h>    // provides: memcpy
#ifdef _OPENMP
#include <omp.h>       // provides: omp_get_max_threads, omp_get_thread_num, omp_get_num_threads
#endif
#include "utils.h"     // provides: die

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
 * Each output is therefore computed as in the GEMM (dev/MATMUL.md, 6): init
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
#define MM_MV_MAXN 8    /* mm_forward takes this path for BT <= MM_MV_MAXN          */
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

// out (BT,OC) = inp (BT,C) @ weight (OC,C)^T + bias (OC, or NULL), computed as
// out^T = weight @ inp^T: weight is read in place and only the small inp is packed
static void mm_forward(float* out, const float* inp, const float* weight, const float* bias,
                       int BT, int C, int OC) {
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

#endif // GPTC_MATMUL_H
