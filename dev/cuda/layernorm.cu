/*
dev/cuda/layernorm.cu -- kernel lab: the fused residual + layernorm forward
(res = a + b, out = (res - mean) * rstd * w + bias per row of C; b may be absent: res = a) and the
layernorm backward (dinp += ..., dweight += ..., dbias += ...).

Versions (argv[1], default all):
  1  one thread per row for everything per row; one thread per column for dweight / dbias
  2  train_gpt.cu: residual_layernorm_forward_gpu (a warp per row), layernorm_backward_gpu (a warp
     per row for dinp; column_partials + column_finish for dweight / dbias, no atomics)
Reference: train_gpt.c residual_forward + layernorm_forward / layernorm_backward in float.

The forward keeps its statistics of res AS STORED (rounded to floatX), which is what the backward
sees. So `res` is checked against the float sum a + b, and `out`, mean and rstd against the
reference layernorm of the stored res (the float sum rounded to floatX: bitwise what a correct
kernel stores). The tolerance of out then covers the kernel's own arithmetic, not res's rounding.

Build: make -C dev/cuda (GPU) or make -C dev/cuda emu-test (CPU emulator).
*/
#define GPT_NO_MAIN_CU
#ifdef GPT_CUDA_EMU
#include GPT_CUDA_EMU_SOURCE // provides: train_gpt.cu rewritten by emu_build.sh (see dev/cuda/Makefile)
#else
#include "train_gpt.cu" // provides: the kernels + launchers, and (via train_gpt.c) the CPU layers
#endif
#include "dev/cuda/common.h" // provides: random inputs, buffers, check, expect_rejection, time_ms

// shapes: N rows (B*T), C channels

// ------------------------------------------------------------------------------------------------
// version 1

__global__ void residual_layernorm_forward_v1_kernel(floatX* res, floatX* out, float* mean, float* rstd,
                                                     const floatX* a, const floatX* b, const floatX* w,
                                                     const floatX* bias, int N, int C) {
    int row = blockIdx.x * blockDim.x + threadIdx.x;
    if (row >= N) { return; }
    const floatX* x = a + (long)row * C;
    if (b != NULL) {
        for (int c = 0; c < C; c++) {
            long i = (long)row * C + c;
            res[i] = to_floatX(to_float(a[i]) + to_float(b[i]));
        }
        x = res + (long)row * C;
    }
    float m = 0.0f;
    for (int c = 0; c < C; c++) { m += to_float(x[c]); }
    m /= C;
    float v = 0.0f;
    for (int c = 0; c < C; c++) { float d = to_float(x[c]) - m; v += d * d; }
    float r = 1.0f / sqrtf(v / C + 1e-5f);
    for (int c = 0; c < C; c++) {
        out[(long)row * C + c] = to_floatX((to_float(x[c]) - m) * r * to_float(w[c]) + to_float(bias[c]));
    }
    mean[row] = m;
    rstd[row] = r;
}

__global__ void layernorm_backward_dinp_v1_kernel(floatX* dinp, const floatX* dout, const floatX* inp,
                                                  const floatX* w, const float* mean, const float* rstd,
                                                  int N, int C) {
    int row = blockIdx.x * blockDim.x + threadIdx.x;
    if (row >= N) { return; }
    const floatX* dy = dout + (long)row * C;
    const floatX* x = inp + (long)row * C;
    floatX* dx = dinp + (long)row * C;
    float m = mean[row], r = rstd[row];
    float dn_mean = 0.0f, dnn_mean = 0.0f;
    for (int c = 0; c < C; c++) {
        float dn = to_float(dy[c]) * to_float(w[c]);
        dn_mean += dn;
        dnn_mean += dn * (to_float(x[c]) - m) * r;
    }
    dn_mean /= C;
    dnn_mean /= C;
    for (int c = 0; c < C; c++) {
        float dn = to_float(dy[c]) * to_float(w[c]);
        float n = (to_float(x[c]) - m) * r;
        dx[c] = to_floatX(to_float(dx[c]) + r * (dn - dn_mean - n * dnn_mean));
    }
}

// column c of dweight and dbias belongs to thread c: rows in order
__global__ void layernorm_backward_dw_v1_kernel(float* dweight, float* dbias, const floatX* dout,
                                                const floatX* inp, const float* mean, const float* rstd,
                                                int N, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) { return; }
    float sw = 0.0f, sb = 0.0f;
    for (int row = 0; row < N; row++) {
        float dy = to_float(dout[(long)row * C + c]);
        sb += dy;
        sw += dy * (to_float(inp[(long)row * C + c]) - mean[row]) * rstd[row];
    }
    dweight[c] += sw;
    dbias[c] += sb;
}

// ------------------------------------------------------------------------------------------------
// the versions behind one signature each

static const char* const version_names[] = {
    "v1: a thread per row; a thread per column for dweight/dbias",
    "train_gpt.cu: residual_layernorm_forward_gpu, layernorm_backward_gpu",
};
#define NVERSIONS 2

static void forward(int version, floatX* res, floatX* out, float* mean, float* rstd, const floatX* a, const floatX* b,
                    const floatX* w, const floatX* bias, int N, int C) {
    if (version == 1) {
        residual_layernorm_forward_v1_kernel<<<ceil_div(N, 64), 64>>>(res, out, mean, rstd, a, b, w, bias, N, C);
        LAUNCH_CHECK("residual_layernorm_forward_v1_kernel");
    } else {
        residual_layernorm_forward_gpu(res, out, mean, rstd, a, b, w, bias, N, C);
    }
}

// part: 2 * COL_CHUNKS * C floats of scratch (version 2)
static void backward(int version, floatX* dinp, float* dweight, float* dbias, const floatX* dout, const floatX* inp,
                     const floatX* w, const float* mean, const float* rstd, int N, int C, float* part) {
    if (version == 1) {
        layernorm_backward_dinp_v1_kernel<<<ceil_div(N, 64), 64>>>(dinp, dout, inp, w, mean, rstd, N, C);
        LAUNCH_CHECK("layernorm_backward_dinp_v1_kernel");
        layernorm_backward_dw_v1_kernel<<<ceil_div(C, 64), 64>>>(dweight, dbias, dout, inp, mean, rstd, N, C);
        LAUNCH_CHECK("layernorm_backward_dw_v1_kernel");
    } else {
        layernorm_backward_gpu(dinp, dweight, dbias, dout, inp, w, mean, rstd, N, C, part);
    }
}

// ------------------------------------------------------------------------------------------------
// the test

typedef struct { int N, C; const char* name; } Shape;

// Tolerances.
// res: one float add of floatX values, then one rounding: exact in fp32, at most half an ulp
//   (2^-8 of the value: bf16 keeps 8 significant bits) in bf16.
// out, dinp: the same float formula as the reference, sums over C in another order (~sqrt(C)
//   2^-24 relative to the row's terms, < 1e-5 absolute for terms of size <= ~5 here), then one
//   rounding to floatX (2^-8 relative in bf16).
// mean, rstd: float in both precisions (same inputs): the summation order only.
// dweight, dbias: sums over N rows in another order, onto a random start value; a float sum of N
//   terms of size <= ~1 is off by ~N * 2^-24 in the worst random-walk case (partial sums ~sqrt(N),
//   sqrt(N) roundings), so atol = 4 N 2^-24 (at least 1e-5).
#ifdef PRECISION_FP32
static const double X_RTOL = 1e-5;
#else
static const double X_RTOL = 1.0 / 256;
#endif
static const double RES_ATOL = 0.0;
static const double X_ATOL = 2e-5;
static const double STAT_ATOL = 1e-6, STAT_RTOL = 1e-5;

static void run_shape(const Shape& s, int only, int last) {
    int N = s.N, C = s.C;
    size_t NC = (size_t)N * C;
    printf("shape %s: N=%d C=%d\n", s.name, N, C);
    std::vector<float> a = random_vec(NC, 1, 2.0f), b = random_vec(NC, 2, 1.0f);
    std::vector<float> w = random_vec(C, 3, 1.5f), bias = random_vec(C, 4, 0.5f);
    std::vector<float> dout = random_vec(NC, 5, 1.0f), dinp0 = random_vec(NC, 6, 1.0f);
    std::vector<float> dw0 = random_vec(C, 7, 1.0f), db0 = random_vec(C, 8, 1.0f);
    round_to_floatX(a); round_to_floatX(b); round_to_floatX(w); round_to_floatX(bias);
    round_to_floatX(dout); round_to_floatX(dinp0);

    // forward references: with b (res = a + b), and without (res = a)
    std::vector<float> res_ref(NC), res_stored, out_ref(NC), mean_ref(N), rstd_ref(N);
    std::vector<float> out1_ref(NC), mean1_ref(N), rstd1_ref(N);
    residual_forward(res_ref.data(), a.data(), b.data(), NC);
    res_stored = res_ref;
    round_to_floatX(res_stored);
    layernorm_forward(out_ref.data(), mean_ref.data(), rstd_ref.data(), res_stored.data(), w.data(), bias.data(), N, C);
    layernorm_forward(out1_ref.data(), mean1_ref.data(), rstd1_ref.data(), a.data(), w.data(), bias.data(), N, C);
    // backward reference, on the layer input res_stored with its own statistics
    std::vector<float> dinp_ref(dinp0), dw_ref(dw0), db_ref(db0);
    layernorm_backward(dinp_ref.data(), dw_ref.data(), db_ref.data(), dout.data(), res_stored.data(), w.data(),
                       mean_ref.data(), rstd_ref.data(), N, C);
    double col_atol = 4.0 * N / 16777216.0 > 1e-5 ? 4.0 * N / 16777216.0 : 1e-5;

    floatX* d_a = upload_x(a, "a");
    floatX* d_b = upload_x(b, "b");
    floatX* d_w = upload_x(w, "w");
    floatX* d_bias = upload_x(bias, "bias");
    floatX* d_dout = upload_x(dout, "dout");
    floatX* d_x = upload_x(res_stored, "backward input");
    float* d_mean_in = upload(mean_ref, "mean in");
    float* d_rstd_in = upload(rstd_ref, "rstd in");
    floatX* d_res = cuda_alloc<floatX>(NC, "res");
    floatX* d_out = cuda_alloc<floatX>(NC, "out");
    floatX* d_dinp = cuda_alloc<floatX>(NC, "dinp");
    float* d_mean = cuda_alloc<float>(N, "mean");
    float* d_rstd = cuda_alloc<float>(N, "rstd");
    float* d_dw = cuda_alloc<float>(C, "dweight");
    float* d_db = cuda_alloc<float>(C, "dbias");
    float* d_part = cuda_alloc<float>(2 * (size_t)COL_CHUNKS * C, "column partials");

    for (int v = 1; v <= NVERSIONS; v++) {
        if (only != 0 && only != v) { continue; }
        printf(" version %d\n", v);
        // 0xff bytes are NaN in both precisions: an element the kernel does not write fails
        CUDA_CHECK(cudaMemset(d_res, 0xff, NC * sizeof(floatX)));
        CUDA_CHECK(cudaMemset(d_out, 0xff, NC * sizeof(floatX)));
        CUDA_CHECK(cudaMemset(d_mean, 0xff, N * sizeof(float)));
        CUDA_CHECK(cudaMemset(d_rstd, 0xff, N * sizeof(float)));
        forward(v, d_res, d_out, d_mean, d_rstd, d_a, d_b, d_w, d_bias, N, C);
        check("fwd a+b: res", download_x(d_res, NC), res_ref, RES_ATOL, X_RTOL);
        std::vector<float> out = download_x(d_out, NC);
        check("fwd a+b: out", out, out_ref, X_ATOL, X_RTOL);
        check("fwd a+b: mean", download_f(d_mean, N), mean_ref, STAT_ATOL, STAT_RTOL);
        check("fwd a+b: rstd", download_f(d_rstd, N), rstd_ref, STAT_ATOL, STAT_RTOL);
        expect_rejection_once("fwd a+b: out, one ref element moved", out, out_ref, X_ATOL, X_RTOL);

        CUDA_CHECK(cudaMemset(d_out, 0xff, NC * sizeof(floatX)));
        forward(v, NULL, d_out, d_mean, d_rstd, d_a, NULL, d_w, d_bias, N, C);
        check("fwd a only: out", download_x(d_out, NC), out1_ref, X_ATOL, X_RTOL);
        check("fwd a only: mean", download_f(d_mean, N), mean1_ref, STAT_ATOL, STAT_RTOL);
        check("fwd a only: rstd", download_f(d_rstd, N), rstd1_ref, STAT_ATOL, STAT_RTOL);

        copy_to_x(d_dinp, dinp0);
        copy_to_f(d_dw, dw0);
        copy_to_f(d_db, db0);
        backward(v, d_dinp, d_dw, d_db, d_dout, d_x, d_w, d_mean_in, d_rstd_in, N, C, d_part);
        check("bwd: dinp (+=)", download_x(d_dinp, NC), dinp_ref, X_ATOL, X_RTOL);
        check("bwd: dweight (+=)", download_f(d_dw, C), dw_ref, col_atol, STAT_RTOL);
        check("bwd: dbias (+=)", download_f(d_db, C), db_ref, col_atol, STAT_RTOL);

        if (last) {
            double fbytes = 4.0 * NC * sizeof(floatX) + 2.0 * N * sizeof(float);
            print_time("forward a+b", time_ms([&] { forward(v, d_res, d_out, d_mean, d_rstd, d_a, d_b, d_w, d_bias, N, C); }), fbytes);
            // dinp: dout, x read, dinp read + written; the column sums read dout and x again
            double bbytes = 6.0 * NC * sizeof(floatX) + 2.0 * N * sizeof(float);
            print_time("backward", time_ms([&] { backward(v, d_dinp, d_dw, d_db, d_dout, d_x, d_w, d_mean_in, d_rstd_in, N, C, d_part); }), bbytes);
        }
    }
    void* bufs[] = {d_a, d_b, d_w, d_bias, d_dout, d_x, d_mean_in, d_rstd_in, d_res, d_out, d_dinp, d_mean, d_rstd, d_dw, d_db, d_part};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) { CUDA_CHECK(cudaFree(bufs[i])); }
}

int main(int argc, char** argv) {
    int only = lab_start(argc, argv, "residual + layernorm forward, layernorm backward", NVERSIONS, version_names);
    const Shape shapes[] = {
        {3 * 13, 60, "odd (C=60, C not a multiple of 32)"},
        {7, 1000, "few rows (N < COL_CHUNKS), wide"},
#ifdef GPT_CUDA_EMU
        {1 * 1024, 768, "d12 width, B=1 T=1024 (emulator)"},
#else
        {4 * 1024, 768, "d12 (B=4, T=1024)"},
#endif
    };
    int n = (int)(sizeof(shapes) / sizeof(shapes[0]));
    for (int i = 0; i < n; i++) { run_shape(shapes[i], only, i == n - 1); }
    return lab_finish();
}
