/*
dev/cuda/common.h -- what every program of the kernel lab shares: random inputs, device buffers,
the tolerance check with its pass/fail count, the check that the check can fail, event timing and
the version switch.

What it is not: a second copy of the trainer. It is included AFTER train_gpt.cu (which brings
train_gpt.c and gptc/), and uses their RNG (gptc/rand.h: stream_key, stream_draw, uniform_pm1),
error checks (gptc/cuda_common.h: CUDA_CHECK, LAUNCH_CHECK; die), cuda_alloc and
to_float/to_floatX.

Rules:
  - Inputs are uniform in (-scale, scale) and never 0 (uniform_pm1 forces the lowest bit), so a
    kernel that skips an element or reads the wrong one shows up.
  - Every input a kernel reads in floatX is rounded to floatX on the host first, and the CPU
    reference reads the rounded values: reference and kernel see the same numbers, and the
    tolerance only has to cover what the kernel does, not the input rounding.
  - A tensor passes when every element has |gpu - ref| <= atol + rtol * |ref| (NaN fails).
*/
#pragma once

#include <vector>

#define LAB_SEED 1337ULL
// every helper: a program that does not call one must still build without warnings
#define LAB_FN static __attribute__((unused))

// timing: a few launches to warm up, then the mean of LAB_ITERS; the emulator runs kernels on the
// CPU, so there one launch without warm-up is enough: its numbers say nothing about a GPU
#ifdef GPT_CUDA_EMU
#define LAB_WARMUP 0
#define LAB_ITERS 1
#define LAB_TIME_NOTE "  [emulator: CPU time, not a GPU timing]"
#else
#define LAB_WARMUP 5
#define LAB_ITERS 20
#define LAB_TIME_NOTE ""
#endif

static int g_passed = 0, g_failed = 0;

// ------------------------------------------------------------------------------------------------
// random inputs

// element i of stream `stream`: uniform in (-scale, scale), never 0
LAB_FN void fill_uniform(float* h, size_t n, uint64_t stream, float scale) {
    uint64_t key = stream_key(LAB_SEED, stream);
    #pragma omp parallel for
    for (size_t i = 0; i < n; i++) { h[i] = (float)(uniform_pm1(stream_draw(key, i)) * scale); }
}

LAB_FN std::vector<float> random_vec(size_t n, uint64_t stream, float scale) {
    std::vector<float> v(n);
    fill_uniform(v.data(), n, stream, scale);
    return v;
}

// integers in [0, n): tokens, targets
LAB_FN std::vector<int> random_ints(size_t count, uint64_t stream, int n) {
    std::vector<int> v(count);
    uint64_t key = stream_key(LAB_SEED, stream);
    for (size_t i = 0; i < count; i++) { v[i] = (int)(stream_draw(key, i) % (uint64_t)n); }
    return v;
}

// the values a floatX tensor really holds (identity in the fp32 build)
LAB_FN void round_to_floatX(std::vector<float>& v) {
    for (size_t i = 0; i < v.size(); i++) { v[i] = to_float(to_floatX(v[i])); }
}

// ------------------------------------------------------------------------------------------------
// device buffers

template <typename T> LAB_FN T* upload(const std::vector<T>& h, const char* what) {
    T* d = cuda_alloc<T>(h.size(), what);
    CUDA_CHECK(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
    return d;
}

// float values (already rounded, see round_to_floatX) into a new floatX buffer
LAB_FN floatX* upload_x(const std::vector<float>& h, const char* what) {
    std::vector<floatX> x(h.size());
    for (size_t i = 0; i < h.size(); i++) { x[i] = to_floatX(h[i]); }
    return upload(x, what);
}

LAB_FN void copy_to_x(floatX* d, const std::vector<float>& h) {
    std::vector<floatX> x(h.size());
    for (size_t i = 0; i < h.size(); i++) { x[i] = to_floatX(h[i]); }
    CUDA_CHECK(cudaMemcpy(d, x.data(), x.size() * sizeof(floatX), cudaMemcpyHostToDevice));
}

LAB_FN void copy_to_f(float* d, const std::vector<float>& h) {
    CUDA_CHECK(cudaMemcpy(d, h.data(), h.size() * sizeof(float), cudaMemcpyHostToDevice));
}

LAB_FN std::vector<float> download_x(const floatX* d, size_t n) {
    std::vector<floatX> x(n);
    CUDA_CHECK(cudaMemcpy(x.data(), d, n * sizeof(floatX), cudaMemcpyDeviceToHost));
    std::vector<float> h(n);
    for (size_t i = 0; i < n; i++) { h[i] = to_float(x[i]); }
    return h;
}

LAB_FN std::vector<float> download_f(const float* d, size_t n) {
    std::vector<float> h(n);
    CUDA_CHECK(cudaMemcpy(h.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost));
    return h;
}

// ------------------------------------------------------------------------------------------------
// the check

typedef struct {
    double max_abs, max_rel; // over all elements; rel over elements with ref != 0
    size_t bad, worst;       // elements outside the bound; the index of the largest excess
} Cmp;

LAB_FN Cmp compare(const float* gpu, const float* ref, size_t n, double atol, double rtol) {
    Cmp c = {0.0, 0.0, 0, 0};
    double worst_excess = -1.0;
    for (size_t i = 0; i < n; i++) {
        double g = gpu[i], r = ref[i];
        double err = fabs(g - r);
        double bound = atol + rtol * fabs(r);
        if (!(err <= bound)) { c.bad++; } // NaN on either side lands here
        if (err != err) { err = INFINITY; }
        if (err > c.max_abs) { c.max_abs = err; }
        if (r != 0.0 && err / fabs(r) > c.max_rel) { c.max_rel = err / fabs(r); }
        if (err - bound > worst_excess) { worst_excess = err - bound; c.worst = i; }
    }
    return c;
}

// prints one line per tensor and counts it; returns 1 when it passed
LAB_FN int check(const char* name, const float* gpu, const float* ref, size_t n, double atol, double rtol) {
    Cmp c = compare(gpu, ref, n, atol, rtol);
    int ok = c.bad == 0;
    printf("  %-34s max abs %9.3e  max rel %9.3e  (atol %.1e rtol %.1e)  %s", name, c.max_abs, c.max_rel,
           atol, rtol, ok ? "OK" : "FAILED");
    if (!ok) {
        printf(": %zu of %zu outside, worst [%zu] gpu %.8g ref %.8g", c.bad, n, c.worst, (double)gpu[c.worst],
               (double)ref[c.worst]);
    }
    printf("\n");
    if (ok) { g_passed++; } else { g_failed++; }
    return ok;
}

LAB_FN int check(const char* name, const std::vector<float>& gpu, const std::vector<float>& ref, double atol,
                 double rtol) {
    if (gpu.size() != ref.size()) { die("check %s: %zu gpu values vs %zu reference values", name, gpu.size(), ref.size()); }
    return check(name, gpu.data(), ref.data(), gpu.size(), atol, rtol);
}

// A check that cannot fail proves nothing: move one reference element just past its bound and
// expect compare() to reject it. Counts as passed when it is rejected. Once per program (the first
// call; later calls do nothing), whichever version runs.
LAB_FN void expect_rejection_once(const char* name, const std::vector<float>& gpu, const std::vector<float>& ref,
                                  double atol, double rtol) {
    static int done = 0;
    if (done) { return; }
    done = 1;
    std::vector<float> bad(ref);
    size_t i = ref.size() / 2;
    double x = fabs((double)gpu[i]);
    // d > atol + rtol * |gpu + d| holds for d = 4 (atol + rtol |gpu|) whenever rtol < 3/4; the
    // 1e-3 |gpu| keeps d visible in float when both tolerances are 0
    bad[i] = (float)((double)gpu[i] + 4.0 * (atol + rtol * x) + 1e-3 * x + 1e-30);
    Cmp c = compare(gpu.data(), bad.data(), gpu.size(), atol, rtol);
    int ok = c.bad == 1;
    printf("  %-34s ref[%zu] moved to %.8g (gpu %.8g): %s\n", name, i, (double)bad[i], (double)gpu[i],
           ok ? "rejected, as it must be" : "NOT rejected: the check cannot fail");
    if (ok) { g_passed++; } else { g_failed++; }
}

// ------------------------------------------------------------------------------------------------
// timing and the summary

// mean milliseconds of one call of f, measured with events after LAB_WARMUP calls
template <typename F> LAB_FN float time_ms(F f) {
    for (int i = 0; i < LAB_WARMUP; i++) { f(); }
    cudaEvent_t start, stop;
    CUDA_CHECK(cudaEventCreate(&start));
    CUDA_CHECK(cudaEventCreate(&stop));
    CUDA_CHECK(cudaEventRecord(start));
    for (int i = 0; i < LAB_ITERS; i++) { f(); }
    CUDA_CHECK(cudaEventRecord(stop));
    CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0.0f;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    CUDA_CHECK(cudaEventDestroy(start));
    CUDA_CHECK(cudaEventDestroy(stop));
    return ms / LAB_ITERS;
}

LAB_FN void print_time(const char* name, float ms, double bytes) {
    printf("  %-34s %10.4f ms  %9.1f GB/s%s\n", name, ms, bytes / (ms * 1e-3) / 1e9, LAB_TIME_NOTE);
}

// argv[1]: the version to run (1..nversions), default all; returns 0 for all
LAB_FN int lab_start(int argc, char** argv, const char* what, int nversions, const char* const* names) {
    int version = 0;
    if (argc > 2 || (argc == 2 && (sscanf(argv[1], "%d", &version) != 1 || version < 1 || version > nversions))) {
        fprintf(stderr, "usage: %s [version]   (1..%d, default: all)\n", argv[0], nversions);
        for (int v = 1; v <= nversions; v++) { fprintf(stderr, "  %d  %s\n", v, names[v - 1]); }
        exit(2);
    }
    printf("%s (%s)%s\n", what, PRECISION_NAME,
#ifdef GPT_CUDA_EMU
           " -- CPU emulator build: timings are not GPU timings"
#else
           ""
#endif
    );
    for (int v = 1; v <= nversions; v++) {
        if (version == 0 || version == v) { printf("  version %d: %s\n", v, names[v - 1]); }
    }
    return version;
}

LAB_FN int lab_finish(void) {
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
