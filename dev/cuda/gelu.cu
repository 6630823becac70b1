/*
dev/cuda/gelu.cu -- kernel lab: GELU, tanh approximation (Hendrycks & Gimpel; GPT-2's),
y = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), and its backward dinp = dout * dy/dx.

Versions (argv[1], default all):
  1  a grid-stride loop, the formula as written in the paper (tanhf)
  2  train_gpt.cu: gelu_forward_kernel (launched as matmul_forward_gpu launches it when the GELU
     is not fused into cuBLASLt's epilogue: there is no separate launcher), gelu_backward_gpu --
     also run in place (dinp == dout), as gpu_backward calls it
Reference: train_gpt.c gelu_forward / gelu_backward (the sigmoid form x * sigmoid(2u) with
exp_fast: the same function, computed differently -- which is what a reference should be).

Build: make -C dev/cuda (GPU) or make -C dev/cuda emu-test (CPU emulator).
*/
#define GPT_NO_MAIN_CU
#ifdef GPT_CUDA_EMU
#include GPT_CUDA_EMU_SOURCE // provides: train_gpt.cu rewritten by emu_build.sh (see dev/cuda/Makefile)
#else
#include "train_gpt.cu" // provides: the kernels + launchers, and (via train_gpt.c) the CPU layers
#endif
#include "dev/cuda/common.h" // provides: random inputs, buffers, check, expect_rejection, time_ms

// shapes: N elements (B*T*4C)

// ------------------------------------------------------------------------------------------------
// version 1

#define V1_BLOCKS 128 // a fixed grid: each thread strides over N
#define V1_THREADS 256

__global__ void gelu_forward_v1_kernel(floatX* out, const floatX* inp, long N) {
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < N; i += (long)gridDim.x * blockDim.x) {
        float x = to_float(inp[i]);
        out[i] = to_floatX(0.5f * x * (1.0f + tanhf(0.7978845608f * (x + 0.044715f * x * x * x))));
    }
}

// dy/dx = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) du/dx,  du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
__global__ void gelu_backward_v1_kernel(floatX* dinp, const floatX* inp, const floatX* dout, long N) {
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < N; i += (long)gridDim.x * blockDim.x) {
        float x = to_float(inp[i]);
        float th = tanhf(0.7978845608f * (x + 0.044715f * x * x * x));
        float du = 0.7978845608f * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] = to_floatX(to_float(dout[i]) * (0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du));
    }
}

// ------------------------------------------------------------------------------------------------
// the versions behind one signature each

static const char* const version_names[] = {
    "v1: grid-stride loop, the paper's tanh formula",
    "train_gpt.cu: gelu_forward_kernel (as matmul_forward_gpu launches it), gelu_backward_gpu",
};
#define NVERSIONS 2

static void forward(int version, floatX* out, const floatX* inp, long N) {
    if (version == 1) {
        gelu_forward_v1_kernel<<<V1_BLOCKS, V1_THREADS>>>(out, inp, N);
        LAUNCH_CHECK("gelu_forward_v1_kernel");
    } else {
        gelu_forward_kernel<<<ceil_div(N, 256), 256>>>(out, inp, N);
        LAUNCH_CHECK("gelu_forward_kernel");
    }
}

static void backward(int version, floatX* dinp, const floatX* inp, const floatX* dout, long N) {
    if (version == 1) {
        gelu_backward_v1_kernel<<<V1_BLOCKS, V1_THREADS>>>(dinp, inp, dout, N);
        LAUNCH_CHECK("gelu_backward_v1_kernel");
    } else {
        gelu_backward_gpu(dinp, inp, dout, N);
    }
}

// ------------------------------------------------------------------------------------------------
// the test

typedef struct { long N; const char* name; } Shape;

// Tolerances. Same inputs; the kernels use tanhf, the reference sigmoid(2u) via exp_fast (1.3 ulp).
// Where x << 0, 1 + tanh(u) cancels: tanh's float rounding near -1 (2^-24 absolute) becomes an
// absolute error of ~0.5 |x| 2^-24 in y and ~|x|^3 2^-24 in dy/dx, with |x| < 6 here: atol 1e-6
// (forward) and 2e-5 (backward, times |dout| < 1); elsewhere a few ulp: rtol 1e-5. In bf16 the
// result is rounded once when stored: + 2^-8 relative (bf16 keeps 8 significant bits).
#ifdef PRECISION_FP32
static const double RTOL = 1e-5;
#else
static const double RTOL = 1e-5 + 1.0 / 256;
#endif
static const double FWD_ATOL = 1e-6, BWD_ATOL = 2e-5;

static void run_shape(const Shape& s, int only, int last) {
    long N = s.N;
    printf("shape %s: N=%ld\n", s.name, N);
    // pre-activations in (-6, 6): both tails and the curved middle
    std::vector<float> inp = random_vec((size_t)N, 1, 6.0f), dout = random_vec((size_t)N, 2, 1.0f);
    round_to_floatX(inp); round_to_floatX(dout);
    std::vector<float> out_ref((size_t)N), dinp_ref((size_t)N);
    gelu_forward(out_ref.data(), inp.data(), (size_t)N);
    gelu_backward(dinp_ref.data(), inp.data(), dout.data(), (size_t)N);

    floatX* d_inp = upload_x(inp, "inp");
    floatX* d_dout = upload_x(dout, "dout");
    floatX* d_out = cuda_alloc<floatX>((size_t)N, "out");
    floatX* d_dinp = cuda_alloc<floatX>((size_t)N, "dinp");

    for (int v = 1; v <= NVERSIONS; v++) {
        if (only != 0 && only != v) { continue; }
        printf(" version %d\n", v);
        CUDA_CHECK(cudaMemset(d_out, 0xff, N * sizeof(floatX))); // NaN: an unwritten element fails
        forward(v, d_out, d_inp, N);
        std::vector<float> out = download_x(d_out, (size_t)N);
        check("forward", out, out_ref, FWD_ATOL, RTOL);
        expect_rejection_once("forward, one ref element moved", out, out_ref, FWD_ATOL, RTOL);
        CUDA_CHECK(cudaMemset(d_dinp, 0xff, N * sizeof(floatX)));
        backward(v, d_dinp, d_inp, d_dout, N);
        check("backward", download_x(d_dinp, (size_t)N), dinp_ref, BWD_ATOL, RTOL);
        copy_to_x(d_dinp, dout); // in place: dinp is dout
        backward(v, d_dinp, d_inp, d_dinp, N);
        check("backward in place (dinp == dout)", download_x(d_dinp, (size_t)N), dinp_ref, BWD_ATOL, RTOL);
        if (last) {
            print_time("forward", time_ms([&] { forward(v, d_out, d_inp, N); }), 2.0 * N * sizeof(floatX));
            print_time("backward", time_ms([&] { backward(v, d_dinp, d_inp, d_dout, N); }), 3.0 * N * sizeof(floatX));
        }
    }
    CUDA_CHECK(cudaFree(d_inp)); CUDA_CHECK(cudaFree(d_dout)); CUDA_CHECK(cudaFree(d_out)); CUDA_CHECK(cudaFree(d_dinp));
}

int main(int argc, char** argv) {
    int only = lab_start(argc, argv, "GELU forward/backward", NVERSIONS, version_names);
    const Shape shapes[] = {
        {3L * 13 * 240, "odd (B=3, T=13, 4C=240)"},
        {1000003L, "N prime, not a multiple of the block"},
#ifdef GPT_CUDA_EMU
        {1L * 256 * 3072, "d12 width, B=1 T=256 (emulator)"},
#else
        {4L * 1024 * 3072, "d12 (B=4, T=1024, 4C=3072)"},
#endif
    };
    int n = (int)(sizeof(shapes) / sizeof(shapes[0]));
    for (int i = 0; i < n; i++) { run_shape(shapes[i], only, i == n - 1); }
    return lab_finish();
}
