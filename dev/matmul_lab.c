/*
 * matmul_lab.c -- a lab for the CPU matmul of the GPT-2 trainer.
 *
 * A standalone program that validates and times several versions of
 *
 *   matmul_forward : out  (BT,OC)  = inp (BT,C) @ weight(OC,C)^T + bias(OC)
 *   matmul_backward: dinp (BT,C)   = dout(BT,OC) @ weight(OC,C)        (overwrite)
 *                    dweight(OC,C) += dout(BT,OC)^T @ inp(BT,C)         (accumulate)
 *                    dbias (OC)    += sum over BT of dout                 (accumulate)
 *
 * Build and run: dev/bench_matmul.sh  (gcc -O3 -march=native -fopenmp, 2 threads)
 *   usage: matmul_lab [reps=7] [first_version_to_time=0] [number_of_BT_values=3] [small_bt=1]
 *   (small_bt=0 skips the timing of BT = 1..12, see "Small BT" below)
 *   MATMUL_LAB_SKIP_CHECKS=1 skips validation (quick timing runs).
 *
 * Versions:
 *   v1  the llm.c loop orders (a dot product per output in the forward, axpy
 *       loops in the backward), OpenMP-parallel.  The baseline.
 *   v2  one packed, cache-blocked, register-tiled GEMM engine (below) for all
 *       three products; the forward packs weight^T, i.e. it transposes the
 *       whole weight matrix on every call.
 *   v3  = the FINAL code: as v2, but the forward is computed as
 *       out^T = weight @ inp^T, so weight is read in place and only the small
 *       inp is transposed: the forward gets ~15-20% faster than v2.
 *
 * The final version (v3) was promoted into gptc/matmul.h (train_gpt.c's
 * matmul_forward / matmul_backward call it); the lab #includes that header
 * to validate and time that very code.  dev/MATMUL.md explains its design.
 *
 * Small BT (generation with the KV cache, BT = 1): mm_forward takes a
 * matrix-vector path (mm_matvec) for BT <= MM_MV_MAXN.  The lab checks it
 * bit for bit against mm_gemm_t on odd shapes and, last, times one d12
 * token's matmuls at BT = 1..12 through both (weights streamed from memory).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ========================================================================= */
/* The FINAL version lives in gptc/matmul.h (promoted from this lab, as v3): */
/* the lab includes it, so what it validates and times below is exactly the  */
/* code the trainer runs -- one copy, no drift.                              */
/* ========================================================================= */
#include "../gptc/matmul.h" /* provides: mm_forward, mm_backward_dinp/dweight, the mm_* GEMM engine */

/* ------------------------------------------------------------------------- */
/* reference: straightforward loops, double accumulation                     */
/* ------------------------------------------------------------------------- */
static void ref_forward(float* out, const float* inp, const float* weight, const float* bias,
                        int BT, int C, int OC) {
    #pragma omp parallel for
    for (int bt = 0; bt < BT; bt++) {
        for (int o = 0; o < OC; o++) {
            double s = bias ? bias[o] : 0.0;
            for (int c = 0; c < C; c++) s += (double)inp[(long)bt * C + c] * weight[(long)o * C + c];
            out[(long)bt * OC + o] = (float)s;
        }
    }
}

static void ref_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                         const float* inp, const float* weight, int BT, int C, int OC) {
    #pragma omp parallel for
    for (int bt = 0; bt < BT; bt++) {
        for (int c = 0; c < C; c++) {
            double s = 0.0;
            for (int o = 0; o < OC; o++) s += (double)dout[(long)bt * OC + o] * weight[(long)o * C + c];
            dinp[(long)bt * C + c] = (float)s;
        }
    }
    #pragma omp parallel for
    for (int o = 0; o < OC; o++) {
        for (int c = 0; c < C; c++) {
            double s = dweight[(long)o * C + c];
            for (int bt = 0; bt < BT; bt++) s += (double)dout[(long)bt * OC + o] * inp[(long)bt * C + c];
            dweight[(long)o * C + c] = (float)s;
        }
        if (dbias) {
            double s = dbias[o];
            for (int bt = 0; bt < BT; bt++) s += dout[(long)bt * OC + o];
            dbias[o] = (float)s;
        }
    }
}

/* ------------------------------------------------------------------------- */
/* v1: the llm.c loop orders, OpenMP-parallel                                */
/* ------------------------------------------------------------------------- */
static void v1_forward(float* out, const float* inp, const float* weight, const float* bias,
                       int BT, int C, int OC) {
    #pragma omp parallel for
    for (int bt = 0; bt < BT; bt++) {
        const float* x = inp + (long)bt * C;
        for (int o = 0; o < OC; o++) {
            const float* w = weight + (long)o * C;
            float s = bias ? bias[o] : 0.0f;
            for (int c = 0; c < C; c++) s += x[c] * w[c];
            out[(long)bt * OC + o] = s;
        }
    }
}

static void v1_dinp(float* dinp, const float* dout, const float* weight, int BT, int C, int OC) {
    #pragma omp parallel for
    for (int bt = 0; bt < BT; bt++) {
        float* di = dinp + (long)bt * C;
        const float* d = dout + (long)bt * OC;
        for (int c = 0; c < C; c++) di[c] = 0.0f;
        for (int o = 0; o < OC; o++) {
            const float* w = weight + (long)o * C;
            for (int c = 0; c < C; c++) di[c] += w[c] * d[o];
        }
    }
}

static void v1_dweight(float* dweight, float* dbias, const float* dout, const float* inp,
                       int BT, int C, int OC) {
    #pragma omp parallel for
    for (int o = 0; o < OC; o++) {
        float* dw = dweight + (long)o * C;
        for (int bt = 0; bt < BT; bt++) {
            const float* x = inp + (long)bt * C;
            float d = dout[(long)bt * OC + o];
            if (dbias) dbias[o] += d;
            for (int c = 0; c < C; c++) dw[c] += x[c] * d;
        }
    }
}

/* ------------------------------------------------------------------------- */
/* v2: the forward through mm_gemm with B = weight^T, packed (= transposed)  */
/*     per call; dinp and dweight as in the final code                       */
/* ------------------------------------------------------------------------- */
static void v2_forward(float* out, const float* inp, const float* weight, const float* bias,
                       int BT, int C, int OC) {
    mm_gemm(BT, OC, C, inp, C, 1, weight, 1, C, out, OC, 0);
    if (bias != NULL) {
        #pragma omp parallel for
        for (int bt = 0; bt < BT; bt++) {
            for (int o = 0; o < OC; o++) out[(long)bt * OC + o] += bias[o];
        }
    }
}

/* ------------------------------------------------------------------------- */
/* harness                                                                   */
/* ------------------------------------------------------------------------- */
typedef void (*fwd_fn)(float*, const float*, const float*, const float*, int, int, int);
typedef void (*dinp_fn)(float*, const float*, const float*, int, int, int);
typedef void (*dw_fn)(float*, float*, const float*, const float*, int, int, int);

typedef struct { const char* name; fwd_fn fwd; dinp_fn dinp; dw_fn dweight; } Version;
static const Version versions[] = {
    {"v1 llm.c loops", v1_forward, v1_dinp, v1_dweight},
    {"v2 packed W^T", v2_forward, mm_backward_dinp, mm_backward_dweight},
    {"v3 final", mm_forward, mm_backward_dinp, mm_backward_dweight},
};
#define NVERSIONS ((int)(sizeof(versions) / sizeof(versions[0])))

static void run_backward(const Version* v, float* dinp, float* dweight, float* dbias, const float* dout,
                         const float* inp, const float* weight, int BT, int C, int OC) {
    v->dinp(dinp, dout, weight, BT, C, OC);
    v->dweight(dweight, dbias, dout, inp, BT, C, OC);
}

static double now_sec(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static unsigned long long rng_state = 0x2545F4914F6CDD1DULL;
static float rand_nonzero(void) {   /* uniform in [-1,-0.05] U [0.05,1] */
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    float u = (float)((rng_state >> 40) & 0xFFFFFF) / 16777216.0f;   /* [0,1) */
    float mag = 0.05f + 0.95f * u;
    return (rng_state >> 20) & 1 ? mag : -mag;
}

static float* alloc_rand(long n) {
    float* p = (float*)malloc((size_t)n * sizeof(float));
    if (!p) { fprintf(stderr, "out of memory\n"); exit(1); }
    for (long i = 0; i < n; i++) p[i] = rand_nonzero();
    return p;
}

/* max over i of |x - ref| / (|ref| + scale*eps-ish floor); we use a relative
   error normalised by the rms of the reference so that near-zero sums from
   cancellation do not blow up the measure */
static double max_rel_err(const float* x, const float* ref, long n) {
    double rms = 0.0;
    for (long i = 0; i < n; i++) rms += (double)ref[i] * ref[i];
    rms = sqrt(rms / n) + 1e-30;
    double m = 0.0;
    for (long i = 0; i < n; i++) {
        double e = fabs((double)x[i] - ref[i]) / (fabs(ref[i]) + rms);
        if (!(e <= m)) m = e;   /* also catches NaN */
    }
    return m;
}

static int validate(const Version* v, int BT, int C, int OC) {
    long nin = (long)BT * C, nw = (long)OC * C, nout = (long)BT * OC;
    float* inp = alloc_rand(nin);
    float* w = alloc_rand(nw);
    float* bias = alloc_rand(OC);
    float* dout = alloc_rand(nout);
    float* dw0 = alloc_rand(nw);        /* nonzero initial gradients: checks += */
    float* db0 = alloc_rand(OC);
    float* out = alloc_rand(nout), *out_r = alloc_rand(nout);
    float* dinp = alloc_rand(nin), *dinp_r = alloc_rand(nin);   /* garbage: checks overwrite */
    float* dw = malloc(nw * 4), *dw_r = malloc(nw * 4);
    float* db = malloc(OC * 4), *db_r = malloc(OC * 4);
    memcpy(dw, dw0, nw * 4); memcpy(dw_r, dw0, nw * 4);
    memcpy(db, db0, OC * 4); memcpy(db_r, db0, OC * 4);

    ref_forward(out_r, inp, w, bias, BT, C, OC);
    ref_backward(dinp_r, dw_r, db_r, dout, inp, w, BT, C, OC);
    v->fwd(out, inp, w, bias, BT, C, OC);
    run_backward(v, dinp, dw, db, dout, inp, w, BT, C, OC);
    double e_out = max_rel_err(out, out_r, nout);
    double e_din = max_rel_err(dinp, dinp_r, nin);
    double e_dw = max_rel_err(dw, dw_r, nw);
    double e_db = max_rel_err(db, db_r, OC);
    /* float accumulation over K terms: error grows ~ sqrt(K) * eps; 1e-4 is
       generous for K <= 50304 yet catches any indexing bug (errors ~ 1) */
    double tol = 1e-4;
    int ok = e_out < tol && e_din < tol && e_dw < tol && e_db < tol;

    /* also: forward without bias, backward without dbias */
    v->fwd(out, inp, w, NULL, BT, C, OC);
    ref_forward(out_r, inp, w, NULL, BT, C, OC);
    double e_nb = max_rel_err(out, out_r, nout);
    memcpy(dw, dw0, nw * 4); memcpy(dw_r, dw0, nw * 4);
    run_backward(v, dinp, dw, NULL, dout, inp, w, BT, C, OC);
    ref_backward(dinp_r, dw_r, NULL, dout, inp, w, BT, C, OC);
    double e_nb2 = fmax(max_rel_err(dinp, dinp_r, nin), max_rel_err(dw, dw_r, nw));
    ok = ok && e_nb < tol && e_nb2 < tol;

    printf("  %-16s BT=%5d C=%5d OC=%6d  err out %.1e dinp %.1e dw %.1e db %.1e nobias %.1e %.1e  %s\n",
           v->name, BT, C, OC, e_out, e_din, e_dw, e_db, e_nb, e_nb2, ok ? "ok" : "FAIL");
    free(inp); free(w); free(bias); free(dout); free(dw0); free(db0); free(out); free(out_r);
    free(dinp); free(dinp_r); free(dw); free(dw_r); free(db); free(db_r);
    return ok;
}

/* bitwise determinism: run twice (and with 1 thread) and compare */
static int check_determinism(const Version* v, int BT, int C, int OC) {
    long nin = (long)BT * C, nw = (long)OC * C, nout = (long)BT * OC;
    float* inp = alloc_rand(nin), *w = alloc_rand(nw), *bias = alloc_rand(OC), *dout = alloc_rand(nout);
    float* res[3][3];
    int same_run = 1, same_threads = 1;
#ifdef _OPENMP
    int nthreads = omp_get_max_threads();
#endif
    for (int r = 0; r < 3; r++) {
#ifdef _OPENMP
        omp_set_num_threads(r == 2 ? 1 : nthreads);
#endif
        res[r][0] = malloc(nout * 4); res[r][1] = malloc(nin * 4); res[r][2] = calloc(nw, 4);
        v->fwd(res[r][0], inp, w, bias, BT, C, OC);
        run_backward(v, res[r][1], res[r][2], NULL, dout, inp, w, BT, C, OC);
    }
#ifdef _OPENMP
    omp_set_num_threads(nthreads);
#endif
    long n[3] = {nout, nin, nw};
    for (int k = 0; k < 3; k++) {
        if (memcmp(res[0][k], res[1][k], n[k] * 4)) same_run = 0;
        if (memcmp(res[0][k], res[2][k], n[k] * 4)) same_threads = 0;
    }
    printf("  %-16s BT=%d C=%d OC=%d: run-to-run %s, 1 thread vs %d threads %s\n", v->name, BT, C, OC,
           same_run ? "bitwise identical" : "DIFFERENT",
#ifdef _OPENMP
           nthreads,
#else
           1,
#endif
           same_threads ? "bitwise identical" : "different");
    for (int r = 0; r < 3; r++) for (int k = 0; k < 3; k++) free(res[r][k]);
    free(inp); free(w); free(bias); free(dout);
    return same_run;
}

static int cmp_double(const void* x, const void* y) {
    double a = *(const double*)x, b = *(const double*)y;
    return a < b ? -1 : a > b;
}

/* median (and min) time of each part: forward, dinp, dweight (+dbias) */
typedef struct { double med[3], min[3]; } Times;

static Times time_version(const Version* v, int BT, int C, int OC, int reps) {
    long nin = (long)BT * C, nw = (long)OC * C, nout = (long)BT * OC;
    float* inp = alloc_rand(nin), *w = alloc_rand(nw), *bias = alloc_rand(OC), *dout = alloc_rand(nout);
    float* out = alloc_rand(nout), *dinp = alloc_rand(nin), *dw = alloc_rand(nw), *db = alloc_rand(OC);
    double t[3][64];
    if (reps > 64) reps = 64;
    v->fwd(out, inp, w, bias, BT, C, OC);                 /* warm-up */
    run_backward(v, dinp, dw, db, dout, inp, w, BT, C, OC);
    for (int r = 0; r < reps; r++) {
        double t0 = now_sec();
        v->fwd(out, inp, w, bias, BT, C, OC);
        double t1 = now_sec();
        v->dinp(dinp, dout, w, BT, C, OC);
        double t2 = now_sec();
        v->dweight(dw, db, dout, inp, BT, C, OC);
        double t3 = now_sec();
        t[0][r] = t1 - t0; t[1][r] = t2 - t1; t[2][r] = t3 - t2;
    }
    Times res;
    for (int p = 0; p < 3; p++) {
        qsort(t[p], reps, sizeof(double), cmp_double);
        res.med[p] = t[p][reps / 2];
        res.min[p] = t[p][0];
    }
    free(inp); free(w); free(bias); free(dout); free(out); free(dinp); free(dw); free(db);
    return res;
}

/* ------------------------------------------------------------------------- */
/* small BT (generation): mm_forward's matrix-vector path (mm_matvec)    */
/* ------------------------------------------------------------------------- */
static void gemm_forward(float* out, const float* inp, const float* weight, const float* bias,
                         int BT, int C, int OC) {
    mm_gemm_t(OC, BT, C, weight, C, inp, C, out, OC, bias);
}

/* mm_forward at BT <= MM_MV_MAXN (mm_matvec) against mm_gemm_t, bit for bit:
   the KV-cache logits of gpt_decode are bit-identical to the full forward's only
   if every output is the same fma chain in both.  Odd shapes: OC not a multiple
   of 16 (edge blocks), C not a multiple of 16 (the column tail), with and
   without bias, every BT of the path and one past it. */
static int check_small_bt(void) {
    static const int shapes[][2] = {   /* C, OC */
        {1, 1}, {5, 7}, {17, 15}, {31, 33}, {48, 144}, {60, 311}, {257, 49}, {768, 2304}, {3072, 100},
    };
    int ns = (int)(sizeof(shapes) / sizeof(shapes[0]));
    int ok = 1;
    for (int s = 0; s < ns; s++) {
        int C = shapes[s][0], OC = shapes[s][1];
        for (int BT = 1; BT <= MM_MV_MAXN + 1; BT++) {
            long nin = (long)BT * C, nw = (long)OC * C, nout = (long)BT * OC;
            float* inp = alloc_rand(nin), *w = alloc_rand(nw), *bias = alloc_rand(OC);
            float* a = alloc_rand(nout), *b = alloc_rand(nout);
            long diff = 0;
            for (int with_bias = 0; with_bias < 2; with_bias++) {
                const float* bb = with_bias ? bias : NULL;
                mm_forward(a, inp, w, bb, BT, C, OC);
                gemm_forward(b, inp, w, bb, BT, C, OC);
                for (long i = 0; i < nout; i++) diff += memcmp(&a[i], &b[i], sizeof(float)) != 0;
            }
            if (diff != 0 || BT == 1 || OC == 311) {
                printf("  BT=%d C=%4d OC=%4d (bias and none): %ld of %ld outputs differ  %s\n",
                       BT, C, OC, diff, 2 * nout, diff == 0 ? "ok" : "FAIL");
            }
            ok = ok && diff == 0;
            free(inp); free(w); free(bias); free(a); free(b);
        }
    }
    return ok;
}

/* One d12 token's matmuls at BT = 1..12: 12 layers x (qkv, attproj, fc, fcproj)
   + the lm head, every layer its own weights (494 MB), so that, as in
   generation, they stream from memory.  mm_gemm_t against mm_forward. */
static void time_small_bt(int reps) {
    static const int shapes[][3] = {{768, 2304, 12}, {768, 768, 12}, {768, 3072, 12}, {3072, 768, 12}, {768, 50304, 1}};
    float* w[5];
    long bytes = 0;
    if (reps > 64) reps = 64;
    if (reps < 1) reps = 1;
    for (int s = 0; s < 5; s++) {
        w[s] = alloc_rand((long)shapes[s][0] * shapes[s][1] * shapes[s][2]);
        bytes += 4L * shapes[s][0] * shapes[s][1] * shapes[s][2];
    }
    float* inp = alloc_rand(16L * 3072), *bias = alloc_rand(50304), *out = alloc_rand(16L * 50304);
    printf("\nsmall BT (generation): one d12 token's matmuls, %.0f MB of weights, median of %d\n", bytes * 1e-6, reps);
    printf("  %3s %14s %16s %8s  %s\n", "BT", "mm_gemm_t ms", "mm_forward ms", "speedup", "(mm_forward: GB/s of weights)");
    for (int BT = 1; BT <= 12; BT++) {
        double med[2];
        for (int f = 0; f < 2; f++) {
            fwd_fn fn = f == 0 ? gemm_forward : mm_forward;
            double t[64];
            for (int r = 0; r < reps + 1; r++) {
                double t0 = now_sec();
                for (int s = 0; s < 5; s++) {
                    int C = shapes[s][0], OC = shapes[s][1];
                    for (int l = 0; l < shapes[s][2]; l++) {
                        fn(out, inp, w[s] + (long)l * OC * C, s < 4 ? bias : NULL, BT, C, OC);
                    }
                }
                if (r > 0) t[r - 1] = now_sec() - t0;   /* the first is a warm-up */
            }
            qsort(t, reps, sizeof(double), cmp_double);
            med[f] = t[reps / 2];
        }
        printf("  %3d %14.2f %16.2f %7.2fx  (%.1f GB/s)%s\n", BT, med[0] * 1e3, med[1] * 1e3, med[0] / med[1],
               bytes / med[1] * 1e-9, BT <= MM_MV_MAXN ? "" : "  (GEMM: BT > MM_MV_MAXN)");
    }
    for (int s = 0; s < 5; s++) free(w[s]);
    free(inp); free(bias); free(out);
}

int main(int argc, char** argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 7;
    int first_version = argc > 2 ? atoi(argv[2]) : 0;   /* skip slow versions when tuning */
#ifdef _OPENMP
    printf("OpenMP threads: %d\n", omp_get_max_threads());
#else
    printf("no OpenMP (1 thread)\n");
#endif
    /* ---- validation ---- */
    static const int vshapes[][3] = {   /* BT, C, OC */
        {1, 1, 1}, {3, 5, 7}, {39, 60, 180}, {39, 60, 311}, {17, 257, 49}, {9, 300, 97},
        {64, 768, 2304}, {256, 768, 768}, {256, 3072, 768}, {64, 768, 50304}, {100, 1000, 500},
    };
    int nv = (int)(sizeof(vshapes) / sizeof(vshapes[0]));
    if (getenv("MATMUL_LAB_SKIP_CHECKS")) nv = 0;   /* for quick timing-only runs */
    int all_ok = 1;
    printf("validation (max relative error vs double reference, tol 1e-4):\n");
    for (int vi = 0; vi < NVERSIONS; vi++) {
        for (int s = 0; s < nv; s++) all_ok &= validate(&versions[vi], vshapes[s][0], vshapes[s][1], vshapes[s][2]);
    }
    if (!all_ok) { printf("VALIDATION FAILED\n"); return 1; }
    printf("small BT: mm_forward (mm_matvec for BT <= %d) against mm_gemm_t, bitwise:\n", MM_MV_MAXN);
    if (nv > 0 && !check_small_bt()) { printf("SMALL-BT CHECK FAILED\n"); return 1; }
    printf("determinism:\n");
    for (int vi = 1; vi < NVERSIONS && nv > 0; vi++) {
        check_determinism(&versions[vi], 39, 60, 311);
        check_determinism(&versions[vi], 256, 768, 2304);
    }

    /* ---- timing ---- */
    static const int tshapes[][2] = {{768, 2304}, {768, 768}, {768, 3072}, {3072, 768}, {768, 50304}};
    static const char* tnames[] = {"qkv", "attproj", "fc", "fcproj", "lmhead"};
    static const int tcount[] = {12, 12, 12, 12, 1};   /* occurrences per d12 step */
    static const int bts[] = {256, 512, 1024};
    int nbts = argc > 3 ? atoi(argv[3]) : 3;
    for (int b = 0; b < nbts; b++) {
        int BT = bts[b];
        printf("\ntiming BT=%d: GFLOP/s of the median of %d runs (each part is 2*BT*C*OC flops)\n", BT, reps);
        printf("  %-16s %-8s %5s %6s %8s %8s %8s %8s  %s\n", "version", "layer", "C", "OC",
               "fwd", "dinp", "dweight", "all3", "(best-of-runs fwd/dinp/dw)");
        for (int vi = first_version; vi < NVERSIONS; vi++) {
            if (vi == 0 && b > 0) continue;    /* v1 is slow: only at BT=256 */
            double step = 0.0, step_min = 0.0, step_fl = 0.0;
            for (int s = 0; s < 5; s++) {
                int C = tshapes[s][0], OC = tshapes[s][1];
                double fl = 2.0 * BT * C * OC;
                Times t = time_version(&versions[vi], BT, C, OC, vi == 0 ? 3 : reps);
                double tot = t.med[0] + t.med[1] + t.med[2];
                printf("  %-16s %-8s %5d %6d %8.1f %8.1f %8.1f %8.1f  (%.1f/%.1f/%.1f)\n", versions[vi].name,
                       tnames[s], C, OC, fl / t.med[0] * 1e-9, fl / t.med[1] * 1e-9, fl / t.med[2] * 1e-9,
                       3 * fl / tot * 1e-9, fl / t.min[0] * 1e-9, fl / t.min[1] * 1e-9, fl / t.min[2] * 1e-9);
                step += tcount[s] * tot;
                step_min += tcount[s] * (t.min[0] + t.min[1] + t.min[2]);
                step_fl += tcount[s] * 3 * fl;
            }
            printf("  %-16s => d12 step matmuls (12 layers + lm head, fwd+bwd, BT=%d): %.1f ms = %.1f GFLOP/s"
                   " (best-of-runs %.1f ms)\n", versions[vi].name, BT, step * 1e3, step_fl / step * 1e-9,
                   step_min * 1e3);
        }
    }
    if (argc <= 4 || atoi(argv[4]) != 0) time_small_bt(reps);
    matmul_free_scratch();
    return 0;
}
