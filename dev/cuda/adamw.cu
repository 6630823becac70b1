/*
dev/cuda/adamw.cu -- kernel lab: the optimizer step. Global gradient norm, clipping
(torch.nn.utils.clip_grad_norm_), AdamW (torch.optim.AdamW) on the fp32 master weights, the
floatX copy of the weights (bf16: stochastic rounding), and the gradients zeroed.

Versions (argv[1], default all):
  1  one thread sums every square in double (obviously right, slow), then one launch per
     parameter tensor with its decay, one thread per element
  2  train_gpt.cu: gpu_step (norm_partials_kernel, norm_finish_kernel, adamw_kernel) on a GpuModel
     that holds just the optimizer's buffers
Both write the floatX copy with train_gpt.cu's param_from_master: the rounding is a definition
(deterministic hash bits), tested on its own below.
Reference: train_gpt.c gpt_clip_grad_norm + gpt_update on a GPT with the same parameter table.

Stochastic rounding (bf16 build), on params_from_master_kernel: every bf16 weight must be the
master rounded down or up (within 1 bf16 ulp, exact when the master is a bf16 value), the same
master must give the same bits, and for many elements whose master has the same dropped fraction
f (the low 16 bits / 2^16), the share rounded up must be f within 5 standard deviations.

Build: make -C dev/cuda (GPU) or make -C dev/cuda emu-test (CPU emulator).
*/
#define GPT_NO_MAIN_CU
#ifdef GPT_CUDA_EMU
#include GPT_CUDA_EMU_SOURCE // provides: train_gpt.cu rewritten by emu_build.sh (see dev/cuda/Makefile)
#else
#include "train_gpt.cu" // provides: the kernels + launchers, and (via train_gpt.c) the CPU layers
#endif
#include "dev/cuda/common.h" // provides: random inputs, buffers, check, expect_rejection, time_ms

// n = num_parameters: master, grads, m, v (n) fp32; params (n) floatX

// ------------------------------------------------------------------------------------------------
// version 1

// norm_coef[0] = sqrt(sum g^2), norm_coef[1] = the clip coefficient (1 when not clipping)
__global__ void grad_norm_v1_kernel(float* norm_coef, const float* g, long n, float max_norm) {
    if (blockIdx.x != 0 || threadIdx.x != 0) { return; }
    double s = 0.0;
    for (long i = 0; i < n; i++) { s += (double)g[i] * g[i]; }
    float norm = (float)sqrt(s);
    float coef = max_norm / (norm + 1e-6f);
    norm_coef[0] = norm;
    norm_coef[1] = max_norm > 0.0f && coef < 1.0f ? coef : 1.0f;
}

// one tensor of n elements at `offset`: torch.optim.AdamW's update on the clipped gradient
__global__ void adamw_v1_kernel(floatX* params, float* master, float* grads, float* m, float* v, const float* norm_coef,
                                long offset, long n, float decay, float beta1, float beta2, float eps,
                                float step_size, float bc2_sqrt) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) { return; }
    i += offset;
    float g = grads[i] * norm_coef[1];
    float mi = beta1 * m[i] + (1.0f - beta1) * g;
    float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    float w = master[i] * decay - step_size * (mi / (sqrtf(vi) / bc2_sqrt + eps));
    master[i] = w;
    params[i] = param_from_master(w, i);
    m[i] = mi;
    v[i] = vi;
    grads[i] = 0.0f;
}

// ------------------------------------------------------------------------------------------------
// the versions behind one signature each

static const char* const version_names[] = {
    "v1: one-thread double norm, a launch per tensor",
    "train_gpt.cu: gpu_step (norm partials, norm finish, adamw_kernel)",
};
#define NVERSIONS 2

typedef struct { float grad_clip, lr, beta1, beta2, eps, weight_decay; int t; } Hyper;

// model->device is a GpuModel with params_memory, master, grads_memory, m, v, norm_partial,
// norm_coef: what gpu_step uses. Returns the norm before clipping.
static float step(int version, GPT* model, const Hyper& h) {
    GpuModel* g = gpu(model);
    if (version == 2) { return gpu_step(model, h.grad_clip, h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, h.t); }
    long n = (long)model->num_parameters;
    grad_norm_v1_kernel<<<1, 1>>>(g->norm_coef, g->grads_memory, n, h.grad_clip);
    LAUNCH_CHECK("grad_norm_v1_kernel");
    float step_size = (float)((double)h.lr / (1.0 - pow((double)h.beta1, (double)h.t)));
    float bc2_sqrt = (float)sqrt(1.0 - pow((double)h.beta2, (double)h.t));
    long offset = 0;
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        long size = (long)model->specs[k].size;
        float decay = model->specs[k].decay ? (float)(1.0 - (double)h.lr * h.weight_decay) : 1.0f;
        adamw_v1_kernel<<<ceil_div(size, 256), 256>>>(g->params_memory, g->master, g->grads_memory, g->m, g->v,
                                                      g->norm_coef, offset, size, decay, h.beta1, h.beta2, h.eps,
                                                      step_size, bc2_sqrt);
        LAUNCH_CHECK("adamw_v1_kernel");
        offset += size;
    }
    float norm_coef[2];
    CUDA_CHECK(cudaMemcpy(norm_coef, g->norm_coef, sizeof(norm_coef), cudaMemcpyDeviceToHost));
    return norm_coef[0];
}

// ------------------------------------------------------------------------------------------------
// bf16 copy checks

static uint32_t bits_of(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }

// every params[i] is master[i] rounded toward zero or away from it by one bf16 ulp (the bf16
// bits are the top 16 of the float's, plus 0 or 1); exact when the master is a bf16 value.
// fp32 build: params == master exactly.
static void check_params_copy(const char* name, const std::vector<float>& params, const std::vector<float>& master) {
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < master.size(); i++) {
        uint32_t mb = bits_of(master[i]), pb = bits_of(params[i]);
#ifdef PRECISION_FP32
        int ok = pb == mb;
#else
        uint32_t down = mb & 0xffff0000u;
        int ok = (mb & 0xffffu) == 0 ? pb == down : (pb == down || pb == down + 0x10000u);
#endif
        if (!ok && bad++ == 0) { first = i; }
    }
    printf("  %-34s %zu of %zu outside 1 ulp of the master  %s", name, bad, master.size(), bad == 0 ? "OK" : "FAILED");
    if (bad != 0) { printf(": first [%zu] master %.9g params %.9g", first, (double)master[first], (double)params[first]); }
    printf("\n");
    if (bad == 0) { g_passed++; } else { g_failed++; }
}

// the share of round-ups for masters with a given dropped fraction (bf16 build)
static void check_stochastic_rounding(void) {
#ifdef PRECISION_FP32
    printf("stochastic rounding: fp32 build, params are the master itself (checked above)\n");
#else
    const long per = 1L << 16; // elements a group; sigma of the share = sqrt(f (1 - f) / per) <= 0.002
    const uint32_t fracs[] = {0x0000, 0x0100, 0x1000, 0x4000, 0x8000, 0xc000, 0xf000, 0xffff};
    const float bases[] = {1.0f, -0.0123f, 3.5e-3f, -250.0f};
    const int nf = (int)(sizeof(fracs) / sizeof(fracs[0])), nb = (int)(sizeof(bases) / sizeof(bases[0]));
    long n = per * nf * nb;
    std::vector<float> master((size_t)n);
    for (int b = 0; b < nb; b++) {
        uint32_t top = bits_of(bases[b]) & 0xffff0000u; // a bf16 value
        for (int f = 0; f < nf; f++) {
            uint32_t u = top | fracs[f];
            float x;
            memcpy(&x, &u, 4);
            for (long i = 0; i < per; i++) { master[(size_t)((b * nf + f) * per + i)] = x; }
        }
    }
    GpuModel g;
    memset(&g, 0, sizeof(g));
    g.master = upload(master, "master");
    g.params_memory = cuda_alloc<floatX>((size_t)n, "params");
    GPT whole; // gpu_params_from_master reads the shard of a model: here all n elements
    memset(&whole, 0, sizeof(whole));
    whole.num_parameters = (size_t)n; whole.shard_begin = 0; whole.shard_end = (size_t)n;
    gpu_params_from_master(&whole, &g);
    std::vector<float> p1 = download_x(g.params_memory, (size_t)n);
    gpu_params_from_master(&whole, &g);
    std::vector<float> p2 = download_x(g.params_memory, (size_t)n);
    printf("stochastic rounding: %d masters x %d fractions x %ld elements\n", nb, nf, per);
    check_params_copy("bf16 copy of the masters", p1, master);
    size_t differ = 0;
    for (size_t i = 0; i < p1.size(); i++) { differ += bits_of(p1[i]) != bits_of(p2[i]); }
    printf("  %-34s %zu of %ld differ  %s\n", "same master, same bits (rerun)", differ, n, differ == 0 ? "OK" : "FAILED");
    if (differ == 0) { g_passed++; } else { g_failed++; }
    for (int b = 0; b < nb; b++) {
        for (int f = 0; f < nf; f++) {
            long up = 0;
            size_t at = (size_t)((b * nf + f) * per);
            uint32_t down = bits_of(master[at]) & 0xffff0000u;
            for (long i = 0; i < per; i++) { up += bits_of(p1[at + i]) != down; }
            double want = fracs[f] / 65536.0, got = (double)up / per;
            double sigma = sqrt(want * (1.0 - want) / per);
            int ok = fabs(got - want) <= 5.0 * sigma + 1e-12; // fraction 0: never rounds up
            printf("  master %-12.6g fraction %.5f: rounded up %.5f (5 sigma %.5f)  %s\n", (double)master[at], want, got,
                   5.0 * sigma, ok ? "OK" : "FAILED");
            if (ok) { g_passed++; } else { g_failed++; }
        }
    }
    CUDA_CHECK(cudaFree(g.master)); CUDA_CHECK(cudaFree(g.params_memory));
#endif
}

// ------------------------------------------------------------------------------------------------
// the test

// Tolerances. Same inputs, same float formulas as gpt_update; the differences: the norm's double
// sums in another order (its float result within 1 ulp: rtol 1e-6), a fused multiply-add where
// nvcc contracts (1 ulp of the master, ~1e-8 at |w| ~ 0.1: atol 1e-8), and division / sqrt are
// correctly rounded in both. So rtol 1e-6 for master, m, v; atol 1e-8 for master (terms ~0.1)
// and 1e-12 for m and v (tiny moments, v ~ 1e-6). The gradients must be exactly 0 afterwards.
// The floatX copy is checked bit-wise against the GPU's own master (check_params_copy).
static const double NORM_RTOL = 1e-6;
static const double W_ATOL = 1e-8, MV_ATOL = 1e-12, OPT_RTOL = 1e-6;

static void run_model(const char* desc, int only, int last) {
    GPTConfig cfg;
    if (config_from_descriptor(&cfg, desc) != NULL) { die("bad descriptor %s", desc); }
    GPT ref;
    gpt_setup(&ref, &cfg);
    size_t n = ref.num_parameters;
    printf("model %s: %zu parameters in %d tensors\n", desc, n, NUM_PARAMETER_TENSORS);
    // weights ~0.1, moments of a run in progress (v > 0); gradients large enough that clipping at
    // 1 is active, and scaled so that clipping at 1e9 is not
    std::vector<float> w0 = random_vec(n, 1, 0.1f), m0 = random_vec(n, 3, 1e-3f), v0 = random_vec(n, 4, 1e-6f);
    for (size_t i = 0; i < n; i++) { v0[i] = fabsf(v0[i]); }
    std::vector<float> g0 = random_vec(n, 2, 1e-2f);
    const Hyper cases[] = {
        {1.0f, 6e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1},  // clipping active (norm ~ 1e-2 sqrt(n/3) > 1), step 1
        {1e9f, 3e-4f, 0.9f, 0.999f, 1e-6f, 0.0f, 10}, // clipping inactive, no decay, step 10
        {0.0f, 1e-3f, 0.8f, 0.95f, 1e-8f, 0.05f, 3},  // clipping disabled (max_norm 0)
    };
    ref.grads_memory = (float*)malloc_or_die(n * sizeof(float));
    ref.m_memory = (float*)malloc_or_die(n * sizeof(float));
    ref.v_memory = (float*)malloc_or_die(n * sizeof(float));

    GpuModel g;
    memset(&g, 0, sizeof(g));
    g.params_memory = cuda_alloc<floatX>(n, "params");
    g.master = cuda_alloc<float>(n, "master");
    g.grads_memory = cuda_alloc<float>(n, "grads");
    g.m = cuda_alloc<float>(n, "m");
    g.v = cuda_alloc<float>(n, "v");
    g.norm_partial = cuda_alloc<double>(NORM_BLOCKS, "norm partials");
    g.norm_coef = cuda_alloc<float>(2, "norm, coef");
    GPT model = ref; // the GPU side: the same table (specs, num_parameters), its own device state
    model.device = &g;

    int ncases = (int)(sizeof(cases) / sizeof(cases[0]));
#ifdef GPT_CUDA_EMU
    // emulated, gpu_step costs ~2 s whatever n is (norm_partials: 512 x 512 threads as fibers)
    if (last) { ncases = 1; }
#endif
    for (int c = 0; c < ncases; c++) {
        const Hyper& h = cases[c];
        memcpy(ref.params_memory, w0.data(), n * sizeof(float));
        memcpy(ref.grads_memory, g0.data(), n * sizeof(float));
        memcpy(ref.m_memory, m0.data(), n * sizeof(float));
        memcpy(ref.v_memory, v0.data(), n * sizeof(float));
        std::vector<float> norm_ref(1, gpt_clip_grad_norm(&ref, h.grad_clip));
        gpt_update(&ref, h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, h.t);
        std::vector<float> w_ref(ref.params_memory, ref.params_memory + n);
        std::vector<float> m_ref(ref.m_memory, ref.m_memory + n), v_ref(ref.v_memory, ref.v_memory + n);
        std::vector<float> zeros(n, 0.0f);
        printf(" case %d: clip %g (norm %.4f), lr %g, betas (%g, %g), eps %g, wd %g, t %d\n", c + 1, (double)h.grad_clip,
               (double)norm_ref[0], (double)h.lr, (double)h.beta1, (double)h.beta2, (double)h.eps, (double)h.weight_decay, h.t);
        for (int v = 1; v <= NVERSIONS; v++) {
            if (only != 0 && only != v) { continue; }
            printf(" version %d\n", v);
            copy_to_f(g.master, w0);
            copy_to_f(g.grads_memory, g0);
            copy_to_f(g.m, m0);
            copy_to_f(g.v, v0);
            CUDA_CHECK(cudaMemset(g.params_memory, 0xff, n * sizeof(floatX))); // NaN until written
            std::vector<float> norm(1, step(v, &model, h));
            check("grad norm", norm, norm_ref, 0.0, NORM_RTOL);
            std::vector<float> master = download_f(g.master, n);
            check("master weights", master, w_ref, W_ATOL, OPT_RTOL);
            expect_rejection_once("master weights, one ref element moved", master, w_ref, W_ATOL, OPT_RTOL);
            check("m", download_f(g.m, n), m_ref, MV_ATOL, OPT_RTOL);
            check("v", download_f(g.v, n), v_ref, MV_ATOL, OPT_RTOL);
            check("grads zeroed", download_f(g.grads_memory, n), zeros, 0.0, 0.0);
            check_params_copy("params: the floatX copy", download_x(g.params_memory, n), master);
            if (last && c == 0) {
                // norm: grads read; AdamW: grads, master, m, v read and written, params written
                double bytes = (double)n * (4.0 + 8.0 * sizeof(float) + sizeof(floatX));
                print_time("norm + clip + AdamW step", time_ms([&] { step(v, &model, h); }), bytes);
            }
        }
    }
    void* bufs[] = {g.params_memory, g.master, g.grads_memory, g.m, g.v, g.norm_partial, g.norm_coef};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) { CUDA_CHECK(cudaFree(bufs[i])); }
    gpt_free(&ref);
}

int main(int argc, char** argv) {
    int only = lab_start(argc, argv, "gradient norm + clipping + AdamW + floatX weight copy", NVERSIONS, version_names);
    const char* models[] = {
        "L3H5C60T17V311", // odd sizes: no tensor a multiple of the block
#ifdef GPT_CUDA_EMU
        "L2H4C256T256V5000",
#else
        "d12",
#endif
    };
    int n = (int)(sizeof(models) / sizeof(models[0]));
    for (int i = 0; i < n; i++) { run_model(models[i], only, i == n - 1); }
    check_stochastic_rounding();
    return lab_finish();
}
