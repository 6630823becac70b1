/*
dev/cuda/classifier.cu -- kernel lab: the fused classifier. Per row of logits (Vp wide, V real):
loss = logsumexp(logits[:V]) - logits[target], and (when asked) the logits overwritten in place by
dloss * (softmax - onehot(target)), 0 in the padding columns. Probabilities are never stored. A
target < 0 (IGNORED_TARGET: a loss mask's uncounted position) has loss 0 and a zero row.

Versions (argv[1], default all):
  1  one thread per row: max, sum of exp, loss, then the gradient row -- three plain passes
  2  train_gpt.cu: classifier_gpu (a block of 512 per row, online max/sum, warp then block
     reduction in a fixed order)
Reference: lse per row in double; from it the losses, and train_gpt.c crossentropy_backward (float)
for the dlogits. train_gpt.c crossentropy_forward is checked against the same double lse too (its
float sum is the reason for the double one: see Tolerances).

Checked: the losses, the dlogits (all Vp columns, so the padding must be 0), and with
write_dlogits = 0 that the logits are left exactly as they were. Every 4th row's target is
IGNORED_TARGET: its loss must be 0 and its dlogits row 0. The padding columns of the input
hold random values: a kernel that reads them into the softmax fails.

Build: make -C dev/cuda (GPU) or make -C dev/cuda emu-test (CPU emulator).
*/
#define GPT_NO_MAIN_CU
#ifdef GPT_CUDA_EMU
#include GPT_CUDA_EMU_SOURCE // provides: train_gpt.cu rewritten by emu_build.sh (see dev/cuda/Makefile)
#else
#include "train_gpt.cu" // provides: the kernels + launchers, and (via train_gpt.c) the CPU layers
#endif
#include "dev/cuda/common.h" // provides: random inputs, buffers, check, expect_rejection, time_ms

// shapes: N rows (B*T), V vocab, Vp padded vocab (row stride of the logits)

// ------------------------------------------------------------------------------------------------
// version 1

__global__ void classifier_v1_kernel(floatX* logits, float* losses, const int* targets, int N, int V, int Vp,
                                     float dscale, int write_dlogits) {
    int row = blockIdx.x * blockDim.x + threadIdx.x;
    if (row >= N) { return; }
    floatX* x = logits + (long)row * Vp;
    float m = -INFINITY;
    for (int v = 0; v < V; v++) { m = fmaxf(m, to_float(x[v])); }
    double s = 0.0; // in double: a float sum of 50257 terms in a row drifts by ~5e-5 (see Tolerances)
    for (int v = 0; v < V; v++) { s += (double)expf(to_float(x[v]) - m); }
    float lse = m + (float)log(s);
    int target = targets[row];
    losses[row] = target >= 0 ? lse - to_float(x[target]) : 0.0f;
    if (!write_dlogits) { return; }
    float w = target >= 0 ? dscale : 0.0f; // an uncounted row: all 0
    for (int v = 0; v < Vp; v++) {
        float d = v < V ? (expf(to_float(x[v]) - lse) - (v == target ? 1.0f : 0.0f)) * w : 0.0f;
        x[v] = to_floatX(d);
    }
}

// ------------------------------------------------------------------------------------------------
// the versions behind one signature each

static const char* const version_names[] = {
    "v1: a thread per row, three passes",
    "train_gpt.cu: classifier_gpu (a block per row, online softmax)",
};
#define NVERSIONS 2

static void classifier(int version, floatX* logits, float* losses, const int* targets, int N, int V, int Vp,
                       float dscale, int write_dlogits) {
    if (version == 1) {
        classifier_v1_kernel<<<ceil_div(N, 32), 32>>>(logits, losses, targets, N, V, Vp, dscale, write_dlogits);
        LAUNCH_CHECK("classifier_v1_kernel");
    } else {
        classifier_gpu(logits, losses, targets, N, V, Vp, dscale, write_dlogits);
    }
}

// ------------------------------------------------------------------------------------------------
// the test

typedef struct { int N, V; const char* name; } Shape;

// Tolerances. The logits are the same (rounded) values on both sides.
// lse in double is exact for our purpose. train_gpt.c's crossentropy_forward sums the V exponentials
//   one after another in float: every add rounds to half an ulp of the partial sum, so its lse is
//   off by up to V 2^-24 (a bound: measured 5e-5 at V = 50257, the same sign on every row). It is
//   checked against that bound, and the kernels against the double lse instead: their float sums
//   are trees (version 2: 512 threads, then warps) or double (version 1), within ~1e-6.
// loss = lse - logit: atol 1e-5 (lse ~ 11, float's ulp there is 1e-6), rtol 1e-6.
// dlogits = (exp(x - lse) - [target]) * dscale: exp of an argument off by ~1e-6 (float's ulp at
//   ~11) plus exp_fast's 1.3 ulp in the reference: rtol 1e-5; atol 1e-7 * dscale covers the target
//   column (p - 1, where p's error shows against 1). In bf16 the value is then rounded once when
//   stored: + 2^-8 relative (bf16 keeps 8 significant bits).
#ifdef PRECISION_FP32
static const double STORE_RTOL = 0.0;
#else
static const double STORE_RTOL = 1.0 / 256;
#endif

static void run_shape(const Shape& s, int only, int last) {
    int N = s.N, V = s.V, Vp = (V + 127) / 128 * 128;
    size_t NVp = (size_t)N * Vp;
    float dscale = 1.0f / (float)N; // as in gpu_forward: d(mean loss)/d(loss_i)
    printf("shape %s: N=%d V=%d Vp=%d\n", s.name, N, V, Vp);
    // logits in (-6, 6): softmax neither flat nor one-hot; the padding too holds random values
    std::vector<float> logits = random_vec(NVp, 1, 6.0f);
    round_to_floatX(logits);
    std::vector<int> targets = random_ints((size_t)N, 2, V);
    for (int r = 0; r < N; r += 4) { targets[r] = IGNORED_TARGET; } // (a loss mask's context)

    std::vector<float> loss_ref(N), lse(N), dlogits_ref(NVp);
    for (int r = 0; r < N; r++) {
        const float* x = logits.data() + (size_t)r * Vp;
        double m = -INFINITY, sum = 0.0;
        for (int v = 0; v < V; v++) { m = fmax(m, (double)x[v]); }
        for (int v = 0; v < V; v++) { sum += exp((double)x[v] - m); }
        lse[r] = (float)(m + log(sum));
        loss_ref[r] = targets[r] < 0 ? 0.0f : (float)(m + log(sum) - (double)x[targets[r]]);
    }
    crossentropy_backward(dlogits_ref.data(), logits.data(), lse.data(), targets.data(), dscale, N, V, Vp);
    double loss_atol = 1e-5, loss_rtol = 1e-6;
    double d_atol = 1e-7 * dscale, d_rtol = 1e-5 + STORE_RTOL;
    {
        std::vector<float> cpu_loss(N), cpu_lse(N);
        crossentropy_forward(cpu_loss.data(), cpu_lse.data(), logits.data(), targets.data(), N, V, Vp);
        check("train_gpt.c crossentropy_forward", cpu_loss, loss_ref, fmax(loss_atol, V / 16777216.0), loss_rtol);
    }

    floatX* d_logits = cuda_alloc<floatX>(NVp, "logits");
    float* d_losses = cuda_alloc<float>(N, "losses");
    int* d_targets = upload(targets, "targets");

    for (int v = 1; v <= NVERSIONS; v++) {
        if (only != 0 && only != v) { continue; }
        printf(" version %d\n", v);
        // loss only: the logits must come back untouched
        copy_to_x(d_logits, logits);
        CUDA_CHECK(cudaMemset(d_losses, 0xff, N * sizeof(float))); // NaN: an unwritten loss fails
        classifier(v, d_logits, d_losses, d_targets, N, V, Vp, dscale, 0);
        check("loss (no dlogits)", download_f(d_losses, N), loss_ref, loss_atol, loss_rtol);
        check("logits untouched", download_x(d_logits, NVp), logits, 0.0, 0.0);
        // loss and dlogits in place
        CUDA_CHECK(cudaMemset(d_losses, 0xff, N * sizeof(float)));
        classifier(v, d_logits, d_losses, d_targets, N, V, Vp, dscale, 1);
        std::vector<float> loss = download_f(d_losses, N);
        check("loss", loss, loss_ref, loss_atol, loss_rtol);
        check("dlogits (in place, padding 0)", download_x(d_logits, NVp), dlogits_ref, d_atol, d_rtol);
        expect_rejection_once("loss, one ref element moved", loss, loss_ref, loss_atol, loss_rtol);

        if (last) {
            copy_to_x(d_logits, logits);
            // read the row (twice for version 2: the sums, then the gradient), write it once
            double bytes = 3.0 * NVp * sizeof(floatX);
            // timed on logits that became gradients after the first call: the same work
            print_time("loss + dlogits", time_ms([&] { classifier(v, d_logits, d_losses, d_targets, N, V, Vp, dscale, 1); }), bytes);
        }
    }
    CUDA_CHECK(cudaFree(d_logits)); CUDA_CHECK(cudaFree(d_losses)); CUDA_CHECK(cudaFree(d_targets));
}

int main(int argc, char** argv) {
    int only = lab_start(argc, argv, "fused classifier: softmax + cross-entropy + dlogits", NVERSIONS, version_names);
    const Shape shapes[] = {
        {3 * 13, 311, "odd (V=311, Vp=384)"},
        {5, 1000, "V=1000 not a multiple of 128"},
#ifdef GPT_CUDA_EMU
        {32, 50257, "d12 vocab, 32 rows (emulator)"},
#else
        {4 * 1024, 50257, "d12 (B=4, T=1024)"},
#endif
    };
    int n = (int)(sizeof(shapes) / sizeof(shapes[0]));
    for (int i = 0; i < n; i++) { run_shape(shapes[i], only, i == n - 1); }
    return lab_finish();
}
