/*
dev/cuda/encoder.cu -- kernel lab: the encoder, out = wte[token] + wpe[t], and its backward
(dwpe += sum over b of dout, dwte[token] += the dout rows of every position holding the token).

Versions (argv[1], default all):
  1  one thread per position row (forward); one thread per channel walking every position in
     order (backward) -- the obvious kernels
  2  train_gpt.cu: encoder_forward_gpu (one thread per element); encoder_backward_gpu (wpe: one
     thread per (t,c); wte: one block per token bucket, built on the host by gpu_token_buckets)
Reference: train_gpt.c encoder_forward / encoder_backward in float.

Not a test of the whole backward pass: the gradients start from random values (they accumulate,
+=), and one shape draws its tokens from 7 values so that buckets hold many positions.

Build: make -C dev/cuda (GPU) or make -C dev/cuda emu-test (CPU emulator); run from anywhere.
*/
#define GPT_NO_MAIN_CU
#ifdef GPT_CUDA_EMU
#include GPT_CUDA_EMU_SOURCE // provides: train_gpt.cu rewritten by emu_build.sh (see dev/cuda/Makefile)
#else
#include "train_gpt.cu" // provides: the kernels + launchers, and (via train_gpt.c) the CPU layers
#endif
#include "dev/cuda/common.h" // provides: random inputs, buffers, check, expect_rejection, time_ms

// shapes: B batch, T time, C channels, V vocab, Vp padded vocab (rows of wte), maxT rows of wpe

// ------------------------------------------------------------------------------------------------
// version 1

__global__ void encoder_forward_v1_kernel(floatX* out, const int* inp, const floatX* wte, const floatX* wpe,
                                          int B, int T, int C) {
    int bt = blockIdx.x * blockDim.x + threadIdx.x;
    if (bt >= B * T) { return; }
    int t = bt % T;
    for (int c = 0; c < C; c++) {
        out[(long)bt * C + c] = to_floatX(to_float(wte[(long)inp[bt] * C + c]) + to_float(wpe[(long)t * C + c]));
    }
}

// channel c of dwte and dwpe belongs to thread c alone: no two threads write one address
__global__ void encoder_backward_v1_kernel(float* dwte, float* dwpe, const floatX* dout, const int* inp,
                                           int B, int T, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) { return; }
    for (int bt = 0; bt < B * T; bt++) {
        float d = to_float(dout[(long)bt * C + c]);
        dwte[(long)inp[bt] * C + c] += d;
        dwpe[(long)(bt % T) * C + c] += d;
    }
}

// ------------------------------------------------------------------------------------------------
// the versions behind one signature each

static const char* const version_names[] = {
    "v1: a thread per row (forward), a thread per channel (backward)",
    "train_gpt.cu: encoder_forward_gpu, encoder_backward_gpu (token buckets)",
};
#define NVERSIONS 2

static void forward(int version, floatX* out, const int* inp, const floatX* wte, const floatX* wpe, int B, int T, int C) {
    if (version == 1) {
        encoder_forward_v1_kernel<<<ceil_div((long)B * T, 128), 128>>>(out, inp, wte, wpe, B, T, C);
        LAUNCH_CHECK("encoder_forward_v1_kernel");
    } else {
        encoder_forward_gpu(out, inp, wte, wpe, B, T, C);
    }
}

// g: a GpuModel with just what gpu_token_buckets reads (B, T, host_inputs, host_buckets, buckets)
static void backward(int version, float* dwte, float* dwpe, const floatX* dout, const int* inp, GpuModel* g, int V,
                     int B, int T, int C) {
    if (version == 1) {
        encoder_backward_v1_kernel<<<ceil_div(C, 64), 64>>>(dwte, dwpe, dout, inp, B, T, C);
        LAUNCH_CHECK("encoder_backward_v1_kernel");
    } else {
        int BT = B * T;
        int nb = gpu_token_buckets(g, V); // the host half of gpu_backward's encoder step
        int* bk = g->buckets;
        encoder_backward_gpu(dwte, dwpe, dout, bk, bk + BT, bk + 2 * BT, bk + 3 * BT, nb, B, T, C);
    }
}

// ------------------------------------------------------------------------------------------------
// the test

typedef struct { int B, T, C, V, maxT, token_range; const char* name; } Shape;

// Tolerances. Forward: one add of two floatX values, then one rounding to floatX: exact in fp32;
// in bf16 (8 significant bits) the rounding is at most half an ulp, 2^-8 of the value.
// Backward: fp32 sums of the same (rounded) dout values as the reference, in another order: a
// sum of n terms of size <= 1 is off by at most ~n * 2^-24 * n; n <= ~40 here (the bucket sizes
// and B), so 1e-5 absolute covers it with room.
#ifdef PRECISION_FP32
static const double FWD_ATOL = 0.0, FWD_RTOL = 0.0;
#else
static const double FWD_ATOL = 0.0, FWD_RTOL = 1.0 / 256;
#endif
static const double BWD_ATOL = 1e-5, BWD_RTOL = 1e-5;

static void run_shape(const Shape& s, int only, int last) {
    int B = s.B, T = s.T, C = s.C, V = s.V, Vp = (V + 127) / 128 * 128;
    size_t BT = (size_t)B * T;
    printf("shape %s: B=%d T=%d C=%d V=%d (Vp=%d) maxT=%d tokens in [0,%d)\n", s.name, B, T, C, V, Vp, s.maxT,
           s.token_range);
    std::vector<int> inp = random_ints(BT, 1, s.token_range);
    std::vector<float> wte = random_vec((size_t)Vp * C, 2, 1.0f), wpe = random_vec((size_t)s.maxT * C, 3, 1.0f);
    std::vector<float> dout = random_vec(BT * C, 4, 1.0f);
    std::vector<float> dwte0 = random_vec((size_t)Vp * C, 5, 1.0f), dwpe0 = random_vec((size_t)s.maxT * C, 6, 1.0f);
    round_to_floatX(wte); round_to_floatX(wpe); round_to_floatX(dout);

    // reference
    std::vector<float> out_ref(BT * C), dwte_ref(dwte0), dwpe_ref(dwpe0);
    encoder_forward(out_ref.data(), inp.data(), wte.data(), wpe.data(), B, T, C);
    encoder_backward(dwte_ref.data(), dwpe_ref.data(), dout.data(), inp.data(), B, T, C);

    int* d_inp = upload(inp, "inp");
    floatX* d_wte = upload_x(wte, "wte");
    floatX* d_wpe = upload_x(wpe, "wpe");
    floatX* d_dout = upload_x(dout, "dout");
    floatX* d_out = cuda_alloc<floatX>(BT * C, "out");
    float* d_dwte = cuda_alloc<float>((size_t)Vp * C, "dwte");
    float* d_dwpe = cuda_alloc<float>((size_t)s.maxT * C, "dwpe");
    GpuModel g;
    memset(&g, 0, sizeof(g));
    g.B = B; g.T = T;
    g.host_inputs = inp.data();
    g.host_buckets = (int*)malloc_or_die(4 * BT * sizeof(int));
    g.buckets = cuda_alloc<int>(4 * BT, "buckets");

    for (int v = 1; v <= NVERSIONS; v++) {
        if (only != 0 && only != v) { continue; }
        printf(" version %d\n", v);
        CUDA_CHECK(cudaMemset(d_out, 0xff, BT * C * sizeof(floatX))); // NaN: an unwritten element fails
        forward(v, d_out, d_inp, d_wte, d_wpe, B, T, C);
        std::vector<float> out = download_x(d_out, BT * C);
        check("out", out, out_ref, FWD_ATOL, FWD_RTOL);
        copy_to_f(d_dwte, dwte0);
        copy_to_f(d_dwpe, dwpe0);
        backward(v, d_dwte, d_dwpe, d_dout, d_inp, &g, V, B, T, C);
        check("dwte (+=)", download_f(d_dwte, (size_t)Vp * C), dwte_ref, BWD_ATOL, BWD_RTOL);
        check("dwpe (+=)", download_f(d_dwpe, (size_t)s.maxT * C), dwpe_ref, BWD_ATOL, BWD_RTOL);
        expect_rejection_once("out, one ref element moved", out, out_ref, FWD_ATOL, FWD_RTOL);
        if (last) {
            double fbytes = (double)BT * C * 3 * sizeof(floatX) + BT * sizeof(int);
            print_time("forward", time_ms([&] { forward(v, d_out, d_inp, d_wte, d_wpe, B, T, C); }), fbytes);
            // wpe: dout once + dwpe read/write; wte: dout once + the touched dwte rows (at most BT)
            double bbytes = 2.0 * BT * C * sizeof(floatX) + 2.0 * T * C * sizeof(float) + 2.0 * BT * C * sizeof(float);
            print_time("backward (bytes: upper bound)", time_ms([&] { backward(v, d_dwte, d_dwpe, d_dout, d_inp, &g, V, B, T, C); }), bbytes);
        }
    }
    CUDA_CHECK(cudaFree(d_inp)); CUDA_CHECK(cudaFree(d_wte)); CUDA_CHECK(cudaFree(d_wpe));
    CUDA_CHECK(cudaFree(d_dout)); CUDA_CHECK(cudaFree(d_out)); CUDA_CHECK(cudaFree(d_dwte));
    CUDA_CHECK(cudaFree(d_dwpe)); CUDA_CHECK(cudaFree(g.buckets));
    free(g.host_buckets);
}

int main(int argc, char** argv) {
    int only = lab_start(argc, argv, "encoder forward/backward", NVERSIONS, version_names);
    const Shape shapes[] = {
        {3, 13, 60, 311, 17, 7, "odd, 7 distinct tokens"},
        {2, 37, 100, 1000, 64, 1000, "odd C"},
        {4, 1024, 768, 50257, 1024, 50257, "d12"},
    };
    int n = (int)(sizeof(shapes) / sizeof(shapes[0]));
    for (int i = 0; i < n; i++) { run_shape(shapes[i], only, i == n - 1); }
    return lab_finish();
}
