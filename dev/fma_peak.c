/* dev/fma_peak.c -- the CPU's measured fp32 peak: GFLOP/s of a loop of vector fused multiply-adds,
 * on one thread and on THREADS threads (each on its own copy of the loop).
 *
 *   gcc -O2 -march=native -fopenmp dev/fma_peak.c -o fma_peak && ./fma_peak [THREADS]
 *
 * What it is: the ceiling for fp32 matmul on this machine, each FMA lane counted as 2 flops (a
 * multiply and an add), as train_gpt's and PyTorch's GFLOP/s count them. dev/bench_cpu.sh prints
 * both as a fraction of it. What it is not: a memory or cache benchmark (everything stays in
 * registers), nor a promise that a real kernel can reach it.
 *
 * Non-obvious rules:
 * - Many independent accumulators: an FMA's result is ready ~4 cycles after it starts and a core
 *   starts up to 2 FMAs per cycle, so fewer than ~8 independent dependency chains leave the FMA
 *   units idle. ACC = 12 chains (+ 2 constants) fit both AVX-512's 32 and AVX2's 16 registers.
 * - The vector width is what the compiler was told (-march=native): AVX-512 (16 floats), else
 *   AVX2 + FMA (8 floats), else scalar fmaf (1 float: a number, but not this CPU's vector peak).
 * - acc = acc * m + c with m slightly below 1 converges to c / (1 - m): the values never overflow
 *   nor become denormal (which would slow some CPUs down), whatever the number of iterations.
 * - The best of several runs is reported: other processes on the machine only ever slow it down.
 * Output: "fma_peak: ..." (the instruction set), "1 thread: X GFLOP/s", and for THREADS > 1
 * "N threads: Y GFLOP/s (Y/N per thread)".
 */
#define _POSIX_C_SOURCE 200809L   /* clock_gettime */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

#if defined(__AVX512F__)
typedef __m512 vec;
#define LANES 16
#define ISA "AVX-512"
#define SET1(x) _mm512_set1_ps(x)
#define FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define ADD(a, b) _mm512_add_ps(a, b)
static float first_lane(vec v) { return _mm512_cvtss_f32(v); }
#elif defined(__AVX2__) && defined(__FMA__)
typedef __m256 vec;
#define LANES 8
#define ISA "AVX2 + FMA"
#define SET1(x) _mm256_set1_ps(x)
#define FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define ADD(a, b) _mm256_add_ps(a, b)
static float first_lane(vec v) { return _mm256_cvtss_f32(v); }
#else
typedef float vec;
#define LANES 1
#define ISA "scalar fmaf (no AVX2/AVX-512 FMA enabled: compile with -march=native)"
#define SET1(x) (x)
#define FMA(a, b, c) fmaf(a, b, c)
#define ADD(a, b) ((a) + (b))
static float first_lane(vec v) { return v; }
#endif
#define ACC 12

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* iters rounds of ACC independent FMAs; returns a value that depends on all of them (so that
 * the compiler keeps the loop) */
static float fma_loop(long iters, float m, float c) {
    vec vm = SET1(m), vc = SET1(c);
    vec a0 = SET1(0.f), a1 = SET1(1.f), a2 = SET1(2.f), a3 = SET1(3.f), a4 = SET1(4.f), a5 = SET1(5.f);
    vec a6 = SET1(6.f), a7 = SET1(7.f), a8 = SET1(8.f), a9 = SET1(9.f), a10 = SET1(10.f), a11 = SET1(11.f);
    for (long i = 0; i < iters; i++) {
        a0 = FMA(a0, vm, vc); a1 = FMA(a1, vm, vc); a2 = FMA(a2, vm, vc); a3 = FMA(a3, vm, vc);
        a4 = FMA(a4, vm, vc); a5 = FMA(a5, vm, vc); a6 = FMA(a6, vm, vc); a7 = FMA(a7, vm, vc);
        a8 = FMA(a8, vm, vc); a9 = FMA(a9, vm, vc); a10 = FMA(a10, vm, vc); a11 = FMA(a11, vm, vc);
    }
    vec s = ADD(ADD(ADD(a0, a1), ADD(a2, a3)), ADD(ADD(a4, a5), ADD(a6, a7)));
    s = ADD(s, ADD(ADD(a8, a9), ADD(a10, a11)));
    return first_lane(s);
}

static volatile float sink;   /* the loops' results go here: they are not dead code */
/* the constants, read through volatile so that the compiler cannot see them:
 * m = 1 - 2^-20, c = 2^-10 */
static volatile float m_in = 1.0f - 0x1p-20f, c_in = 0x1p-10f;

/* GFLOP/s of `threads` threads each running fma_loop(iters), best of `reps` runs */
static double measure(int threads, long iters, int reps, float m, float c) {
    double best = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
        {
            float v = fma_loop(iters, m, c);
#ifdef _OPENMP
#pragma omp critical
#endif
            sink += v;
        }
        double gflops = 2.0 * LANES * ACC * (double)iters * threads / (now() - t0) / 1e9;
        if (gflops > best) best = gflops;
    }
    return best;
}

int main(int argc, char** argv) {
#ifdef _OPENMP
    int threads = argc > 1 ? atoi(argv[1]) : omp_get_max_threads();
#else
    int threads = 1;
    if (argc > 1 && atoi(argv[1]) != 1) fprintf(stderr, "fma_peak: built without OpenMP: 1 thread\n");
#endif
    if (threads < 1) { fprintf(stderr, "usage: %s [THREADS >= 1]\n", argv[0]); return 1; }
    float m = m_in, c = c_in;

    /* size a run at ~0.2 s on one thread */
    long iters = 1 << 16;
    for (;;) {
        double t0 = now();
        sink += fma_loop(iters, m, c);
        if (now() - t0 > 0.05) break;
        iters *= 2;
    }
    iters *= 4;
    printf("fma_peak: %s, %d float(s) per FMA, %d independent accumulators, best of 5 runs of ~0.2 s\n",
           ISA, LANES, ACC);
    double one = measure(1, iters, 5, m, c);
    printf("1 thread: %.1f GFLOP/s\n", one);
    if (threads > 1) {
        double all = measure(threads, iters, 5, m, c);
        printf("%d threads: %.1f GFLOP/s (%.1f per thread)\n", threads, all, all / threads);
    }
    return 0;
}
