/*
test_gpt.c -- proves train_gpt.c (and train_gpt.cu) against PyTorch, tensor by tensor.

dev/train_gpt.py --write-reference writes a model file (the initial weights) and a reference file
(the input batch, every activation of the forward pass, the loss, every parameter gradient, and
K AdamW steps with gradient accumulation, clipping, weight decay and the lr schedule). This program
loads both, runs the same computation with train_gpt.c's functions and compares:

  init      the C initializer, from the config and seed alone, reproduces the Python weights
            bit for bit
  forward   every activation of every layer, the logits and the loss (with dropout when the
            reference has it: the same masks, from the same counter-based RNG)
  backward  every parameter gradient
  steps     the loss, gradient norm and learning rate of each of the K steps, then every parameter
  mask      (a reference with a loss mask, dev/ref/mask_*.bin) the same, with targets that do not
            count; then the training loop itself on the reference's tokens and mask written as a
            version-2 shard (K steps from the model file: losses, norms, lrs, final weights), and a
            shard where no target counts (loss 0, norm 0, never NaN)
  resume    (built in, no reference needed) a run resumed from a checkpoint continues with
            bit-identical losses and parameters; two identical runs agree bit for bit

A tensor passes when every element satisfies |ours - ref| <= atol + rtol * |ref| (and, in the bf16
build, the whole tensor ||ours - ref|| / ||ref|| <= a stated bound). Every comparison also proves
it can fail: it perturbs one reference element just past the tolerance (and scales the reference
past the l2 bound) and expects the comparison to reject it (a check that cannot fail is reported
as FAILED).

Builds: `make test_gpt` (cc: the CPU code), `make test_gptcu` (nvcc: the GPU backend of
train_gpt.cu; PRECISION=FP32 or BF16), `make test_gptcu_emu` / `test_gptcu_emu_fp32` (train_gpt.cu's
kernels on the CPU emulator of dev/cuda/emu.h). The same checks run in each; the CUDA builds skip
the activations the GPU does not keep (attention probabilities, attproj, fcproj) and say so.

usage: ./test_gpt [--corrupt NAME] [--ignore-dropout] [--ignore-mask] [--no-resume | --resume-only] [MODEL REF]...
       ./test_gpt --compare-runs[-bitwise] DIR_A DIR_B   (two runs' logs and newest checkpoints)
       ./test_gpt --generation-only                      (the KV cache against the full forward)
       ./test_gpt --eval-ref MODEL EVAL REF              (multiple-choice eval against PyTorch)
  with no files: the pairs dev/ref/{odd,drop,mask,d12}_{model,ref}.bin (drop: the odd config with
  dropout; mask: with a loss mask)
  --corrupt NAME    perturbs reference record NAME once before comparing: the run must then fail
  --ignore-dropout  runs without a reference's dropout: the run must then fail (the masks matter)
  --ignore-mask     counts every target of a reference with a loss mask: the run must then fail
  --eval-ref        a model, a crafted eval file and PyTorch's scores (dev/eval_reference.py); with
                    no files: dev/ref/eval_model.bin, dev/ref/eval.bin, dev/ref/eval_ref.bin
Last line: "N passed, N failed"; the exit status is non-zero on any failure.
*/

// One harness, three builds: cc -> train_gpt.c on the CPU; nvcc -x cu -> train_gpt.cu on the GPU;
// GPT_CUDA_EMU -> train_gpt.cu's kernels run by the CPU emulator of dev/cuda/emu.h.
#if defined(__CUDACC__) || defined(GPT_CUDA_EMU)
#define GPT_CUDA 1
#define GPT_NO_MAIN_CU
#ifdef GPT_CUDA_EMU
#include GPT_CUDA_EMU_SOURCE // train_gpt.cu with its launches rewritten by dev/cuda/emu_build.sh
#else
#include "train_gpt.cu"      // provides: the GPU backend (gpu_backend) and everything of train_gpt.c
#endif
#else
#define GPT_CUDA 0
#define GPT_NO_MAIN
#include "train_gpt.c" // provides: the model, layers, AdamW, schedule, checkpoints, run_training
#endif

// ----------------------------------------------------------------------------------------------
// Reference file: int32 header[256] = {20261122, 1, nrecords, 0...}, then records:
// int32 name_len, name, int32 dtype (0 float32, 1 int32), int32 ndim, int32 dims[ndim], data.

#define REF_MAGIC 20261122
#define REF_VERSION 1

typedef struct {
    char name[128];
    int dtype, ndim, dims[8];
    size_t n;
    void* data;
} Record;

typedef struct {
    Record* recs; int nrecs;
    const char* path;
} Reference;

static void ref_load(Reference* r, const char* path) {
    FILE* f = fopen_input_or_die(path);
    long left = file_size_or_die(f, path); // bytes not yet read: every record is checked against it
    int header[256];
    fread_or_die(header, sizeof(int), 256, f, path);
    left -= (long)sizeof(header);
    if (header[0] != REF_MAGIC) { die("%s: bad magic %d (expected %d; write it with dev/train_gpt.py --write-reference)", path, header[0], REF_MAGIC); }
    if (header[1] != REF_VERSION) { die("%s: reference version %d not supported (expected %d)", path, header[1], REF_VERSION); }
    if (header[2] <= 0 || header[2] > 100000) { die("%s: bad record count %d", path, header[2]); }
    r->nrecs = header[2];
    r->path = path;
    r->recs = (Record*)calloc_or_die((size_t)r->nrecs, sizeof(Record));
    for (int i = 0; i < r->nrecs; i++) {
        Record* rec = &r->recs[i];
        int len;
        fread_or_die(&len, sizeof(int), 1, f, path);
        if (len <= 0 || len >= (int)sizeof(rec->name)) { die("%s: record %d has a bad name length %d", path, i, len); }
        fread_or_die(rec->name, 1, (size_t)len, f, path);
        rec->name[len] = '\0';
        fread_or_die(&rec->dtype, sizeof(int), 1, f, path);
        fread_or_die(&rec->ndim, sizeof(int), 1, f, path);
        if (rec->dtype < 0 || rec->dtype > 1 || rec->ndim < 0 || rec->ndim > 8) {
            die("%s: record %s has bad dtype %d or ndim %d", path, rec->name, rec->dtype, rec->ndim);
        }
        fread_or_die(rec->dims, sizeof(int), (size_t)rec->ndim, f, path);
        rec->n = 1;
        for (int d = 0; d < rec->ndim; d++) {
            if (rec->dims[d] < 0) { die("%s: record %s has a negative dimension", path, rec->name); }
            rec->n = checked_mul(rec->n, (size_t)rec->dims[d], path);
        }
        left -= (long)(3 * sizeof(int) + (size_t)len + (size_t)rec->ndim * sizeof(int));
        if (left < 0 || checked_mul(rec->n, 4, path) > (size_t)left) {
            die("%s: record %s needs %zu elements, more than the file holds (truncated?)", path, rec->name, rec->n);
        }
        left -= (long)(rec->n * 4);
        rec->data = malloc_or_die(rec->n * 4);
        fread_or_die(rec->data, 4, rec->n, f, path);
    }
    fclose(f);
}

static Record* ref_find(Reference* r, const char* name) {
    for (int i = 0; i < r->nrecs; i++) { if (strcmp(r->recs[i].name, name) == 0) { return &r->recs[i]; } }
    return NULL;
}

// the record, of the given dtype and element count, or a one-line error
static Record* ref_get(Reference* r, const char* name, int dtype, size_t n) {
    Record* rec = ref_find(r, name);
    if (rec == NULL) { die("%s: no record '%s'", r->path, name); }
    if (rec->dtype != dtype || rec->n != n) {
        die("%s: record '%s' has dtype %d and %zu elements, expected dtype %d and %zu", r->path, name,
            rec->dtype, rec->n, dtype, n);
    }
    return rec;
}

static void ref_free(Reference* r) {
    for (int i = 0; i < r->nrecs; i++) { free(r->recs[i].data); }
    free(r->recs);
}

// ----------------------------------------------------------------------------------------------
// Comparisons

static int g_passed = 0, g_failed = 0;
static const char* g_corrupt = NULL; // --corrupt NAME
static int g_ignore_dropout = 0;     // --ignore-dropout: run without the reference's dropout (must fail)
static int g_ignore_mask = 0;        // --ignore-mask: count every target of a masked reference (must fail)

// worst element of |a - ref| against the bound; returns 1 when every element is within it.
// `stride_a`/`stride_r` let (B,T,Vp) logits be compared with the (B,T,V) reference.
static int within(const float* a, const float* ref, size_t rows, size_t cols, size_t stride_a,
                  size_t stride_r, float rtol, float atol, double* max_abs, double* max_rel) {
    int ok = 1;
    *max_abs = 0.0; *max_rel = 0.0;
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < cols; c++) {
            double x = a[r * stride_a + c], y = ref[r * stride_r + c];
            double err = fabs(x - y);
            if (!(err <= atol + rtol * fabs(y))) { ok = 0; } // !(<=) also catches NaN
            if (err > *max_abs || err != err) { *max_abs = err; }
            double rel = err / (fabs(y) > 1e-30 ? fabs(y) : 1e-30);
            if (fabs(y) > atol && (rel > *max_rel || rel != rel)) { *max_rel = rel; }
        }
    }
    return ok;
}

// floor * rms(ref), the absolute tolerance of a tensor whose values come from sums (see below)
static float rms_floor(const float* ref, size_t rows, size_t cols, size_t stride, float floor) {
    double ss = 0.0;
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < cols; c++) { ss += (double)ref[r * stride + c] * ref[r * stride + c]; }
    }
    return (float)(floor * sqrt(ss / (double)(rows * cols)));
}

// ||ours - ref|| / ||ref|| over the whole tensor (ref scaled by `scale`)
static double rel_l2(const float* a, const float* ref, size_t rows, size_t cols, size_t stride_a,
                     size_t stride_r, double scale) {
    double num = 0.0, den = 0.0;
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < cols; c++) {
            double y = scale * ref[r * stride_r + c], d = a[r * stride_a + c] - y;
            num += d * d;
            den += y * y;
        }
    }
    return den > 0.0 ? sqrt(num / den) : sqrt(num);
}

// when > 0 (the bf16 build), every tensor must also satisfy rel_l2 <= g_l2_tol
static float g_l2_tol = 0.0f;

// compares and reports one tensor; then proves the comparison can fail by perturbing one reference
// element just past the bound (and restoring it)
static void check_strided(const char* name, const float* ours, float* ref, size_t rows, size_t cols,
                          size_t stride_a, size_t stride_r, float rtol, float atol) {
    if (g_corrupt != NULL && strcmp(g_corrupt, name) == 0) {
        size_t i = (rows / 2) * stride_r + cols / 2;
        ref[i] += 100.0f * (atol + rtol * fabsf(ref[i])) + 1e-3f;
        printf("(--corrupt: perturbed %s[%zu])\n", name, i);
    }
    double max_abs, max_rel;
    int ok = within(ours, ref, rows, cols, stride_a, stride_r, rtol, atol, &max_abs, &max_rel);
    // sensitivity: move the largest-magnitude reference element by twice the allowed error
    size_t worst = 0;
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < cols; c++) {
            if (fabsf(ref[r * stride_r + c]) > fabsf(ref[worst])) { worst = r * stride_r + c; }
        }
    }
    float saved = ref[worst];
    float bump = 2.0f * (atol + rtol * fabsf(saved));
    ref[worst] = saved + (bump > 0.0f ? bump : fmaxf(fabsf(saved) * 1e-6f, 1e-30f));
    double a2, r2;
    int can_fail = !within(ours, ref, rows, cols, stride_a, stride_r, rtol, atol, &a2, &r2);
    ref[worst] = saved;
    char l2[96] = "";
    if (g_l2_tol > 0.0f && rows * cols > 4) {
        // the tensor as a whole; it must fail against the reference scaled by 1 + 3 tol
        double e = rel_l2(ours, ref, rows, cols, stride_a, stride_r, 1.0);
        int l2_can_fail = !(rel_l2(ours, ref, rows, cols, stride_a, stride_r, 1.0 + 3.0 * g_l2_tol) <= g_l2_tol);
        ok = ok && e <= g_l2_tol;
        can_fail = can_fail && l2_can_fail;
        snprintf(l2, sizeof(l2), " | l2 %.1e tol %.0e", e, g_l2_tol);
    }
    int pass = ok && can_fail;
    printf("%-20s n=%-10zu max_abs %.2e max_rel %.2e | atol %.1e rtol %.0e%s  %s%s\n", name,
           rows * cols, max_abs, max_rel, atol, rtol, l2, pass ? "OK" : "FAILED",
           can_fail ? "" : " (this check cannot fail)");
    if (rows * cols <= 4) { // short vectors (per-step values): show them
        for (size_t c = 0; c < cols; c++) { printf("    [%zu] ours %.9g ref %.9g\n", c, ours[c], ref[c]); }
    }
    if (pass) { g_passed++; } else { g_failed++; }
}

static void check(const char* name, const float* ours, float* ref, size_t n, float rtol, float atol) {
    check_strided(name, ours, ref, 1, n, n, n, rtol, atol);
}

static void check_bool(const char* name, int ok, const char* detail) {
    printf("%-20s %s  %s\n", name, detail, ok ? "OK" : "FAILED");
    if (ok) { g_passed++; } else { g_failed++; }
}

// ----------------------------------------------------------------------------------------------
// Tolerances of the CPU and CUDA fp32 builds, fp32 against fp32: |ours - ref| <= atol + rtol*|ref|
// with atol = floor * rms(ref).
// Both sides evaluate the same formulas in float32 but sum in different orders (our blocked loops,
// PyTorch's BLAS), so a sum of n terms differs by ~sqrt(n) ulp (1 ulp = 6e-8) of its TERMS, not of
// its result: where terms cancel, the relative error of the result is unbounded, but the absolute
// error stays a tiny fraction of the tensor's typical magnitude. Hence an absolute floor scaled by
// the tensor's rms, and a relative bound for everything else:
//   activations  rtol 1e-5, floor 3e-5: a matmul over K terms differs by ~sqrt(K) ulp of its
//                terms (K = 3072: 55 ulp = 3.3e-6), and the residual stream carries each layer's
//                error into the next; measured worst 1.2e-5 * rms (d12 logits, layer 11), with
//                either of two matmul summation orders
//   gradients    rtol 1e-4, floor 1e-3: summed over B*T positions and back through every layer;
//                the embeddings' gradients, at the end of the whole backward, are the worst
//                (d12: 4.5e-4 * rms for wte, 2.3e-4 for wpe; all others < 1e-4)
//   K steps      losses 1e-5; norms 1e-4 (a sum over all gradients); lr 1e-6 (float vs double)
//   parameters   after K AdamW steps: rtol 1e-5, atol 3e-3 * (sum of the K learning rates).
//                AdamW is scale-free: it moves every element by ~lr per step whatever the size
//                of its gradient g, as lr * g / (|g| + eps). An error dg in g changes that by up
//                to lr * dg / (4 eps) (at |g| = eps). Absolute gradient errors reach ~1e-9 (they
//                scale with the summed terms, not with g), so with torch's default eps = 1e-8 a
//                few elements of d12 legitimately differ by ~6% of lr: that measures the
//                conditioning, not the code. The references therefore use eps = 1e-6 (every
//                term of AdamW still acts): measured worst 1.1e-3 * sum(lr) at d12.
#if !GPT_CUDA || defined(PRECISION_FP32)
#define ACT_RTOL 1e-5f
#define ACT_FLOOR 3e-5f
#define GRAD_RTOL 1e-4f
#define GRAD_FLOOR 1e-3f
#define STEP_RTOL 1e-5f
#define NORM_RTOL 1e-4f
#define PARAM_RTOL 1e-5f
#define PARAM_FLOOR 3e-3f
#define ACT_L2 0.0f   // (no whole-tensor checks: the element-wise ones are tight)
#define GRAD_L2 0.0f
#define STEP_L2 0.0f
#else
// Tolerances of the bf16 build (fp32 reference). bf16 keeps 8 significant bits: every stored
// activation or weight copy is off by up to u = 2^-9 = 2e-3 relative (round to nearest even), a
// layer reads and writes several of them, and the residual stream carries each layer's error on.
// Element-wise bounds therefore only catch gross local errors; the tensor as a whole is held to
// a relative l2 error ||ours - ref|| / ||ref|| of a few u per layer, which a wrong head, row, sign
// or factor anywhere exceeds. Measured under the CPU emulator (dev/cuda/emu.h: RNE bf16 stores,
// fp32 accumulation, as the GPU), worst over both configs:
//   activations  l2 0.013 (d12, layers 10-11; odd 0.006); element-wise 0.11 * rms (fch_gelu.11)
//                -> l2 <= 0.03, |err| <= 0.25 rms + 2^-6 |ref|
//   gradients    l2 0.015 (d12 wpe/wte; odd 0.009); element-wise up to 1.5 * rms in grad.wte,
//                whose rare-token rows are a few bf16 roundings of small sums -> l2 <= 0.05,
//                |err| <= 2 rms + 2^-6 |ref|
//   K steps      loss 1.0e-4 relative, norm 3.2e-3 relative -> 1e-3 and 1e-2
//   parameters   a gradient element smaller than its bf16 noise can take either sign, and AdamW
//                then moves it by ~lr the other way: |err| <= 2 * sum(lr) (measured 1.4 sum(lr),
//                d12 attprojw). The movement p - p0 as a whole: l2 0.051 (odd attprojb), 0.041
//                d12 -> l2 <= 0.15
#define ACT_RTOL 1.6e-2f
#define ACT_FLOOR 0.25f
#define GRAD_RTOL 1.6e-2f
#define GRAD_FLOOR 2.0f
#define STEP_RTOL 1e-3f
#define NORM_RTOL 1e-2f
#define PARAM_RTOL 0.0f
#define PARAM_FLOOR 2.0f
#define ACT_L2 0.03f
#define GRAD_L2 0.05f
#define STEP_L2 0.15f
#endif

// ----------------------------------------------------------------------------------------------
// What the backend under test computed, as host floats

#if GPT_CUDA
static const Backend* g_backend = &gpu_backend;
#else
static const Backend* g_backend = &cpu_backend;
#endif

// copies activation `name` (all layers stacked) into out (n floats); 0 when this build does not
// keep it (the GPU keeps attention's lse instead of its probabilities, and attproj / fcproj only
// until the residual add)
static int fetch_activation(GPT* model, const char* name, float* out, size_t n) {
    const GPTConfig* cfg = &model->config;
    size_t C = (size_t)cfg->channels, L = (size_t)cfg->num_layers, NH = (size_t)cfg->num_heads;
    size_t Vp = (size_t)cfg->padded_vocab_size;
    (void)C; (void)L; (void)NH; (void)Vp;
#if GPT_CUDA
    GpuModel* g = gpu(model);
    size_t B = (size_t)g->B, T = (size_t)g->T;
    (void)B; (void)T;
#define X_FETCH(type, field, count)                                                                 \
    if (strcmp(name, #field) == 0) {                                                                \
        if ((size_t)(count) != n) { die("activation %s: %zu elements, expected %zu", name, (size_t)(count), n); } \
        type* tmp = (type*)malloc_or_die(n * sizeof(type));                                         \
        CUDA_CHECK(cudaMemcpy(tmp, g->acts.field, n * sizeof(type), cudaMemcpyDeviceToHost));       \
        for (size_t i = 0; i < n; i++) { out[i] = to_float(tmp[i]); }                                \
        free(tmp);                                                                                  \
        return 1;                                                                                   \
    }
    GPU_ACTIVATIONS(X_FETCH)
#undef X_FETCH
#else
    size_t B = (size_t)model->B, T = (size_t)model->T;
    (void)B; (void)T;
#define X_FETCH(field, count)                                                                       \
    if (strcmp(name, #field) == 0) {                                                                \
        if ((size_t)(count) != n) { die("activation %s: %zu elements, expected %zu", name, (size_t)(count), n); } \
        memcpy(out, model->acts.field, n * sizeof(float));                                          \
        return 1;                                                                                   \
    }
    GPT_ACTIVATIONS(X_FETCH)
#undef X_FETCH
#endif
    return 0;
}

// the parameter gradients (num_parameters floats, file order)
static void fetch_grads(GPT* model, float* out) {
#if GPT_CUDA
    CUDA_CHECK(cudaMemcpy(out, gpu(model)->grads_memory, model->num_parameters * sizeof(float), cudaMemcpyDeviceToHost));
#else
    memcpy(out, model->grads_memory, model->num_parameters * sizeof(float));
#endif
}

// ----------------------------------------------------------------------------------------------
// One model + reference pair: the init, the forward, the backward, K steps

// the C generator, from the config and seed alone, must reproduce the Python weights bit for bit
static void test_init(const GPT* model, int seed) {
    GPT fresh;
    gpt_setup(&fresh, &model->config);
    gpt_init_weights(&fresh, (uint64_t)seed);
    size_t mismatches = 0, first = 0;
    for (size_t i = 0; i < model->num_parameters; i++) {
        if (memcmp(&fresh.params_memory[i], &model->params_memory[i], sizeof(float)) != 0) {
            if (mismatches == 0) { first = i; }
            mismatches++;
        }
    }
    char detail[160];
    snprintf(detail, sizeof(detail), "%zu params, %zu differ (first at %zu)", model->num_parameters, mismatches, first);
    check_bool("init bit-identical", mismatches == 0, detail);
    gpt_free(&fresh);
}

// train_gpt.c's activation table with the sizes of a (B,T): names and element counts
typedef struct { const char* name; size_t count; } Named;
static int activation_table(const GPTConfig* cfg, size_t B, size_t T, Named* acts) {
    size_t C = (size_t)cfg->channels, L = (size_t)cfg->num_layers, NH = (size_t)cfg->num_heads;
    size_t Vp = (size_t)cfg->padded_vocab_size;
    int n = 0;
#define X_NAMED(field, count_) acts[n].name = #field; acts[n].count = (size_t)(count_); n++;
    GPT_ACTIVATIONS(X_NAMED)
#undef X_NAMED
    return n;
}

// the targets of targets[0..n) that count (not IGNORED_TARGET: a loss mask's context)
static long count_targets(const int* targets, size_t n) {
    long c = 0;
    for (size_t i = 0; i < n; i++) { c += targets[i] != IGNORED_TARGET; }
    return c;
}

// every activation of the forward on micro-batch 0, layer by layer, and the loss (the mean over its
// counted targets: the forward's sum / (B*T) times counted_scale); the logits first, from a
// forward without targets (the GPU's forward with targets turns them into their gradient)
static void test_forward(GPT* model, Reference* ref, const int* inputs, const int* targets, int B, int T,
                         float* buf) {
    const GPTConfig* cfg = &model->config;
    const Backend* be = g_backend;
    size_t BT = (size_t)B * T, V = (size_t)cfg->vocab_size, Vp = (size_t)cfg->padded_vocab_size;
    int L = cfg->num_layers;
    g_l2_tol = ACT_L2;
    be->forward(model, inputs, NULL, B, T);
    float* r = (float*)ref_get(ref, "logits", 0, BT * V)->data; // ours (B,T,Vp), the reference (B,T,V)
    if (!fetch_activation(model, "logits", buf, BT * Vp)) { die("no logits to compare"); }
    check_strided("logits", buf, r, BT, V, Vp, V, ACT_RTOL, rms_floor(r, BT, V, V, ACT_FLOOR));
    double scale = counted_scale(count_targets(targets, (size_t)B * T), (long)B * T); // 1 unmasked
    float loss = (float)(be->forward(model, inputs, targets, B, T) * scale);
    Named acts[64];
    int nacts = activation_table(cfg, (size_t)B, (size_t)T, acts);
    for (int i = 0; i < nacts; i++) {
        const char* name = acts[i].name;
        if (strcmp(name, "lse") == 0 || strcmp(name, "logits") == 0) { continue; } // internal; done above
        if (!fetch_activation(model, name, buf, acts[i].count)) {
            printf("%-20s not kept by this build (checked through what depends on it)\n", name);
            continue;
        }
        if (ref_find(ref, name) != NULL) {         // one tensor for the whole model
            r = (float*)ref_get(ref, name, 0, acts[i].count)->data;
            check(name, buf, r, acts[i].count, ACT_RTOL, rms_floor(r, 1, acts[i].count, 0, ACT_FLOOR));
            continue;
        }
        size_t per = acts[i].count / (size_t)L;    // stacked over layers: "name.l"
        for (int l = 0; l < L; l++) {
            char lname[160];
            snprintf(lname, sizeof(lname), "%s.%d", name, l);
            r = (float*)ref_get(ref, lname, 0, per)->data;
            check(lname, buf + l * per, r, per, ACT_RTOL, rms_floor(r, 1, per, 0, ACT_FLOOR));
        }
    }
    check("loss", &loss, (float*)ref_get(ref, "loss", 0, 1)->data, 1, ACT_RTOL, 0.0f);
}

// every parameter gradient of the backward of the forward before (of its mean loss: scale is
// its counted_scale)
static void test_backward(GPT* model, Reference* ref, float* buf, float scale) {
    g_backend->backward(model, scale);
    g_l2_tol = GRAD_L2;
    fetch_grads(model, buf);
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        char name[160];
        snprintf(name, sizeof(name), "grad.%s", model->specs[k].name);
        size_t n = model->specs[k].size;
        float* r = (float*)ref_get(ref, name, 0, n)->data;
        check(name, buf + model->specs[k].offset, r, n, GRAD_RTOL, rms_floor(r, 1, n, 0, GRAD_FLOOR));
    }
}

// K optimizer steps over A micro-batches each from the initial weights init_params (the model
// freshly attached: zero gradients and moments), with dropout p_drop: the losses, gradient norms
// and learning rates of the steps, then every parameter. A step's loss and gradient are scaled
// as train_step scales them: to the mean over the counted targets of all A micro-batches.
static void test_steps(GPT* model, Reference* ref, const int* inputs, const int* targets, int B, int T, int A,
                       int K, int seed, float p_drop, const float* init_params) {
    const Backend* be = g_backend;
    float* hp = (float*)ref_get(ref, "hparams", 0, 8)->data;
    float lr = hp[0], beta1 = hp[1], beta2 = hp[2], eps = hp[3], wd = hp[4], clip = hp[5];
    int warmup = (int)hp[6];
    float final_frac = hp[7];
    size_t BT = (size_t)B * T;
    double scale = counted_scale(count_targets(targets, (size_t)A * BT), (long)A * (long)BT);
    float* losses = (float*)calloc_or_die(3 * (size_t)K, sizeof(float)); // (zeroed: g++ -O2 warned)
    float* norms = losses + K;
    float* lrs = norms + K;
    for (int k = 0; k < K; k++) {
        double sum = 0.0;
        for (int a = 0; a < A; a++) {
            model->dropout = dropout_make(p_drop, dropout_pass_key((uint64_t)seed, (uint64_t)k * A + a));
            sum += be->forward(model, inputs + (size_t)a * BT, targets + (size_t)a * BT, B, T);
            be->backward(model, 1.0f / A * (float)scale);
        }
        losses[k] = (float)(sum / A * scale);
        lrs[k] = (float)lr_schedule(k, K, lr, warmup, final_frac);
        norms[k] = be->step(model, clip, lrs[k], beta1, beta2, eps, wd, k + 1);
    }
    be->to_host(model);
    g_l2_tol = 0.0f;
    check("step_loss", losses, (float*)ref_get(ref, "step_loss", 0, (size_t)K)->data, (size_t)K, STEP_RTOL, 0.0f);
    check("step_norm", norms, (float*)ref_get(ref, "step_norm", 0, (size_t)K)->data, (size_t)K, NORM_RTOL, 0.0f);
    check("step_lr", lrs, (float*)ref_get(ref, "step_lr", 0, (size_t)K)->data, (size_t)K, 1e-6f, 0.0f);
    double lr_sum = 0.0; // how far AdamW can move any element in K steps: ~lr per step
    for (int k = 0; k < K; k++) { lr_sum += lrs[k]; }
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        char name[160];
        snprintf(name, sizeof(name), "final.%s", model->specs[k].name);
        size_t n = model->specs[k].size;
        const float* p = model->params_memory + model->specs[k].offset;
        const float* p0 = init_params + model->specs[k].offset;
        float* r = (float*)ref_get(ref, name, 0, n)->data;
        check(name, p, r, n, PARAM_RTOL, (float)(PARAM_FLOOR * lr_sum));
        if (STEP_L2 > 0.0f) { // the K steps' movement p - p0 against the reference's, as a whole
            float* dours = (float*)malloc_or_die(2 * n * sizeof(float));
            float* dref = dours + n;
            for (size_t i = 0; i < n; i++) { dours[i] = p[i] - p0[i]; dref[i] = r[i] - p0[i]; }
            snprintf(name, sizeof(name), "moved.%s", model->specs[k].name);
            g_l2_tol = STEP_L2;
            check(name, dours, dref, n, 0.0f, (float)(PARAM_FLOOR * lr_sum));
            g_l2_tol = 0.0f;
            free(dours);
        }
    }
    free(losses);
}

static void test_masked_run(const char* model_path, Reference* ref, int B, int T, int A, int K,
                            const int* tokens, const int* mask);

static void test_pair(const char* model_path, const char* ref_path) {
    printf("\n== %s + %s\n", model_path, ref_path);
    GPT model;
    gpt_build_from_checkpoint(&model, model_path);
    const GPTConfig* cfg = &model.config;
    Reference ref;
    ref_load(&ref, ref_path);
    int* conf = (int*)ref_get(&ref, "config", 1, 5)->data;
    int B = conf[0], T = conf[1], A = conf[2], K = conf[3], seed = conf[4];
    ref_get(&ref, "hparams", 0, 8); // (checked here, read by test_steps)
    printf("config: L=%d NH=%d C=%d maxT=%d V=%d Vp=%d | B=%d T=%d A=%d K=%d seed=%d\n", cfg->num_layers,
           cfg->num_heads, cfg->channels, cfg->max_seq_len, cfg->vocab_size, cfg->padded_vocab_size, B, T, A, K,
           seed);
    test_init(&model, seed);

    // dropout: the reference's p (record "dropout", absent = off), the masks of pass n = the n-th
    // micro-batch as the training loop numbers them (step k's micro-batch a: k*A + a; the recorded
    // forward is pass 0)
    Record* drec = ref_find(&ref, "dropout");
    float p_drop = drec != NULL ? ((float*)ref_get(&ref, "dropout", 0, 1)->data)[0] : 0.0f;
    if (g_ignore_dropout && p_drop > 0.0f) {
        printf("--ignore-dropout: running without the reference's dropout %g\n", p_drop);
        p_drop = 0.0f;
    }
    if (p_drop > 0.0f) { printf("dropout: p = %g\n", p_drop); }
    int* tokens = (int*)ref_get(&ref, "tokens", 1, (size_t)A * B * (T + 1))->data;
    int* inputs = (int*)malloc_or_die((size_t)A * B * T * sizeof(int));
    int* targets = (int*)malloc_or_die((size_t)A * B * T * sizeof(int));
    for (size_t row = 0; row < (size_t)A * B; row++) {
        for (int t = 0; t < T; t++) {
            inputs[row * T + t] = tokens[row * (T + 1) + t];
            targets[row * T + t] = tokens[row * (T + 1) + t + 1];
        }
    }
    // a loss mask (record "mask", absent = every target counts): 0 makes a target IGNORED_TARGET
    const int* mask = NULL;
    if (ref_find(&ref, "mask") != NULL && g_ignore_mask) { printf("--ignore-mask: every target counts\n"); }
    else if (ref_find(&ref, "mask") != NULL) {
        mask = (const int*)ref_get(&ref, "mask", 1, (size_t)A * B * T)->data;
        for (size_t i = 0; i < (size_t)A * B * T; i++) { if (!mask[i]) { targets[i] = IGNORED_TARGET; } }
        printf("loss mask: %ld of %d targets count\n", count_targets(targets, (size_t)A * B * T), A * B * T);
    }
    float* init_params = (float*)malloc_or_die(model.num_parameters * sizeof(float));
    memcpy(init_params, model.params_memory, model.num_parameters * sizeof(float));
    float* buf = (float*)malloc_or_die((size_t)B * T * cfg->padded_vocab_size * sizeof(float) +
                                       model.num_parameters * sizeof(float));
    g_backend->attach(&model, B, T);
    float scale0 = (float)counted_scale(count_targets(targets, (size_t)B * T), (long)B * T); // (1: no mask)
    model.dropout = dropout_make(p_drop, dropout_pass_key((uint64_t)seed, 0));
    test_forward(&model, &ref, inputs, targets, B, T, buf);
    test_backward(&model, &ref, buf, scale0);
    g_backend->detach(&model); // the steps start from a fresh attach: zero gradients and moments
    g_backend->attach(&model, B, T);
    test_steps(&model, &ref, inputs, targets, B, T, A, K, seed, p_drop, init_params);
    if (mask != NULL) { test_masked_run(model_path, &ref, B, T, A, K, tokens, mask); }
    free(inputs); free(targets); free(buf); free(init_params);
    ref_free(&ref);
    g_backend->detach(&model);
    gpt_free(&model);
}

// ----------------------------------------------------------------------------------------------
// Resume and determinism: no reference needed, train_gpt.c against itself

static void write_random_shard(const char* path, long ntok, int V, uint64_t key) {
    FILE* f = fopen_or_die(path, "wb");
    int32_t header[SHARD_HEADER_INTS];
    shard_header(header, ntok, 0);
    fwrite_or_die(header, sizeof(int32_t), SHARD_HEADER_INTS, f, path);
    for (long i = 0; i < ntok; i++) {
        uint16_t t = (uint16_t)(stream_draw(key, (uint64_t)i) % (uint64_t)V);
        fwrite_or_die(&t, sizeof(t), 1, f, path);
    }
    fclose(f);
}

static int files_equal(const char* a, const char* b) {
    FILE* fa = fopen_or_die(a, "rb");
    FILE* fb = fopen_or_die(b, "rb");
    int same = 1, ca, cb;
    do { ca = fgetc(fa); cb = fgetc(fb); if (ca != cb) { same = 0; break; } } while (ca != EOF);
    fclose(fa); fclose(fb);
    return same;
}

static void copy_file(const char* from, const char* to) {
    FILE* in = fopen_or_die(from, "rb");
    FILE* out = fopen_or_die(to, "wb");
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0) { fwrite_or_die(buf, 1, n, out, to); }
    fclose(in);
    if (fclose(out) != 0) { die("%s: write failed", to); }
}

static void test_resume(void) {
    printf("\n== resume and determinism (%s backend against itself)\n", g_backend->name);
    char dir[] = "/tmp/test_gpt_XXXXXX";
    if (mkdtemp(dir) == NULL) { die("mkdtemp failed (%s)", strerror(errno)); }
    char train0[256], train1[256], valf[256], pattern[256], out_a[256], out_b[256], out_c[256];
    snprintf(train0, sizeof(train0), "%s/train_000.bin", dir);
    snprintf(train1, sizeof(train1), "%s/train_001.bin", dir);
    snprintf(valf, sizeof(valf), "%s/val_000.bin", dir);
    snprintf(pattern, sizeof(pattern), "%s/train_*.bin", dir);
    snprintf(out_a, sizeof(out_a), "%s/a", dir);
    snprintf(out_b, sizeof(out_b), "%s/b", dir);
    snprintf(out_c, sizeof(out_c), "%s/c", dir);
    int V = 97;
    // 2 shards of 3 samples each at B=2, T=8: 10 steps cross an epoch and a shard boundary
    write_random_shard(train0, 50, V, stream_key(5, 1));
    write_random_shard(train1, 55, V, stream_key(5, 2));
    write_random_shard(valf, 40, V, stream_key(5, 3));

    // through the CLI parser, so the flags are exercised as a user types them
    const char* args[] = {"train_gpt", "-i", pattern, "-j", valf, "-e", "L2H2C24T16V97", "-b", "2",
                          "-t", "8", "-d", "32", "-x", "10", "-u", "2", "-l", "3e-3", "-v", "5",
                          "-m", "2", "-s", "0", "-n", "4", "-D", "0.1", "-o", out_a};
    TrainOptions o = parse_options((int)(sizeof(args) / sizeof(args[0])), (char**)args);
    o.verbose = 0;
    TrainResult full, again, resumed, resumed2;
    char detail[200];
    run_training(&o, g_backend, &full);
    o.out_dir = out_c;
    run_training(&o, g_backend, &again);
    char a_model[300], c_model[300];
    snprintf(a_model, sizeof(a_model), "%s/model_00000010.bin", out_a);
    snprintf(c_model, sizeof(c_model), "%s/model_00000010.bin", out_c);
    check_bool("determinism", memcmp(full.losses, again.losses, 10 * sizeof(float)) == 0 &&
               files_equal(a_model, c_model), "two identical runs: losses and weights bit-identical");

    // the run trains with dropout (-D 0.1) and validates without it: evaluate on the final model,
    // called with dropout switched on, gives the run's last validation loss bit for bit; and the
    // check can fail: the same batches with dropout give another loss
    {
        GPT m;
        gpt_build_from_checkpoint(&m, a_model);
        DataLoader val;
        loader_init(&val, valf, 2, 8, V, 0, 0, "-j");
        int in[16], tg[16];
        g_backend->attach(&m, 2, 8);
        Dropout on = dropout_make(0.1f, dropout_pass_key(1337, 0));
        m.dropout = on;
        float vl = evaluate(g_backend, &m, &val, 2, in, tg);
        double sum = 0.0;
        loader_seek(&val, 0, 0, 0, "-j");
        for (int i = 0; i < 2; i++) {
            loader_next_batch(&val, in, tg);
            m.dropout = on;
            sum += g_backend->forward(&m, in, tg, 2, 8);
        }
        float with = (float)(sum / 2);
        snprintf(detail, sizeof(detail), "the final model's val loss %.9g, the run's %.9g; with dropout %.9g",
                 vl, full.last_val_loss, with);
        check_bool("validation without dropout", vl == full.last_val_loss && with != vl, detail);
        g_backend->detach(&m);
        gpt_free(&m);
        loader_free(&val);
    }

    // "crash" after step 4: a run that saved checkpoint 4 (and 8), of which we keep only 4
    o.out_dir = out_b;
    run_training(&o, g_backend, &resumed);
    free(resumed.losses);
    char path[300];
    snprintf(path, sizeof(path), "%s/state_00000008.bin", out_b); remove(path);
    snprintf(path, sizeof(path), "%s/state_00000010.bin", out_b); remove(path);
    snprintf(path, sizeof(path), "%s/model_00000010.bin", out_b); remove(path);
    // the state file to resume from, kept aside: the can-fail check below starts from it again
    char state4[300], state4_copy[300];
    snprintf(state4, sizeof(state4), "%s/state_00000004.bin", out_b);
    snprintf(state4_copy, sizeof(state4_copy), "%s/state_00000004.copy", dir);
    copy_file(state4, state4_copy);
    o.resume = 1;
    run_training(&o, g_backend, &resumed);
    char b_model[300];
    snprintf(b_model, sizeof(b_model), "%s/model_00000010.bin", out_b);
    int same_losses = resumed.first_step == 4 &&
                      memcmp(full.losses + 4, resumed.losses + 4, 6 * sizeof(float)) == 0;
    snprintf(detail, sizeof(detail), "resumed at step %ld; steps 4-9 losses %s (%.9g vs %.9g at step 9)",
             resumed.first_step, same_losses ? "bit-identical" : "DIFFER", resumed.losses[9], full.losses[9]);
    check_bool("resume losses", same_losses, detail);
    check_bool("resume weights", files_equal(a_model, b_model), "model_00000010.bin identical to the uninterrupted run's");
    // the killed run logged steps 4-9 once already: the resumed run's log.txt must not repeat them
    char a_log[300], b_log[300];
    snprintf(a_log, sizeof(a_log), "%s/log.txt", out_a);
    snprintf(b_log, sizeof(b_log), "%s/log.txt", out_b);
    check_bool("resume log", files_equal(a_log, b_log), "log.txt identical to the uninterrupted run's (no repeated steps)");

    // and the comparison can fail: the same checkpoint with its data position moved by one sample
    // must give other losses
    remove(b_model);
    snprintf(path, sizeof(path), "%s/state_00000010.bin", out_b); remove(path);
    copy_file(state4_copy, state4);
    FILE* f = fopen_or_die(state4, "r+b");
    int64_t header[STATE_HEADER_SLOTS];
    fread_or_die(header, sizeof(int64_t), STATE_HEADER_SLOTS, f, state4);
    header[STATE_SLOT_SAMPLE_POS] = header[STATE_SLOT_SAMPLE_POS] == 0 ? 1 : 0; // 0..3 samples a shard
    if (fseek(f, 0, SEEK_SET) != 0) { die("%s: cannot seek", state4); }
    fwrite_or_die(header, sizeof(int64_t), STATE_HEADER_SLOTS, f, state4);
    fclose(f);
    run_training(&o, g_backend, &resumed2);
    int differs = memcmp(full.losses + 4, resumed2.losses + 4, 6 * sizeof(float)) != 0;
    check_bool("resume can fail", differs, "a resume from another data position gives other losses");
    free(full.losses); free(again.losses); free(resumed.losses); free(resumed2.losses);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) { fprintf(stderr, "warning: could not remove %s\n", dir); }
}

// Data parallelism's data stream (loader_next_rank_batch): over one epoch the ranks' samples are
// disjoint and together are every sample once, the samples 1 rank reads. Samples are told apart by
// the hash of their tokens (random shards: no two samples are equal).
static uint64_t hash_ints(const int* x, size_t n) {
    uint64_t h = 0;
    for (size_t i = 0; i < n; i++) { h = mix64(h ^ (uint64_t)(uint32_t)x[i]); }
    return h;
}
static int compare_u64(const void* a, const void* b) {
    uint64_t x = *(const uint64_t*)a, y = *(const uint64_t*)b;
    return (x > y) - (x < y);
}
static void test_data_partition(void) {
    printf("\n== data-parallel stream: ranks' samples over one epoch\n");
    char dir[] = "/tmp/test_gpt_part_XXXXXX";
    if (mkdtemp(dir) == NULL) { die("mkdtemp failed (%s)", strerror(errno)); }
    char f0[256], f1[256], pattern[256];
    snprintf(f0, sizeof(f0), "%s/p_000.bin", dir);
    snprintf(f1, sizeof(f1), "%s/p_001.bin", dir);
    snprintf(pattern, sizeof(pattern), "%s/p_*.bin", dir);
    int B = 2, T = 8, V = 97, R = 3;
    write_random_shard(f0, 16 * 6 + 1, V, stream_key(9, 1)); // 6 samples of B*T+1 tokens
    write_random_shard(f1, 16 * 3 + 1, V, stream_key(9, 2)); // 3 samples: 9 in all, 3 per rank
    int S = 9;
    int* in = (int*)malloc_or_die((size_t)B * T * sizeof(int));
    int* tg = (int*)malloc_or_die((size_t)B * T * sizeof(int));
    uint64_t one[9], ranks[9];
    DataLoader d;
    loader_init(&d, pattern, B, T, V, 1, 42, "-i");
    for (int i = 0; i < S; i++) { loader_next_batch(&d, in, tg); one[i] = hash_ints(in, (size_t)B * T); }
    loader_free(&d);
    int n = 0;
    for (int r = 0; r < R; r++) {
        loader_init(&d, pattern, B, T, V, 1, 42, "-i");
        for (int i = 0; i < S / R; i++) { loader_next_rank_batch(&d, r, R, in, tg); ranks[n++] = hash_ints(in, (size_t)B * T); }
        check_bool(r == 0 ? "partition position" : "partition pos.", d.epoch == 0 && d.shard_pos == 1 && d.sample_pos == 3,
                   "every rank ends the epoch at the same position");
        loader_free(&d);
    }
    qsort(one, (size_t)S, sizeof(uint64_t), compare_u64);
    qsort(ranks, (size_t)S, sizeof(uint64_t), compare_u64);
    int distinct = 1;
    for (int i = 1; i < S; i++) { distinct = distinct && ranks[i] != ranks[i - 1]; }
    check_bool("partition", distinct && memcmp(one, ranks, sizeof(one)) == 0,
               "3 ranks' samples are disjoint and their union is the epoch 1 rank reads");
    // can fail: rank 1 reading rank 0's samples again makes a duplicate
    loader_init(&d, pattern, B, T, V, 1, 42, "-i");
    for (int i = 0; i < S / R; i++) { loader_next_rank_batch(&d, 0, R, in, tg); ranks[3 + i] = hash_ints(in, (size_t)B * T); }
    loader_free(&d);
    qsort(ranks, (size_t)S, sizeof(uint64_t), compare_u64);
    check_bool("partition can fail", memcmp(one, ranks, sizeof(one)) != 0, "a rank reading another's samples is caught");
    free(in); free(tg);
    remove(f0); remove(f1); rmdir(dir);
}

// Nucleus sampling (gptc/sampler.h) orders only the tokens it keeps, through a heap; the tokens
// drawn must be those of a full sort of every candidate (ties by index), for the same Rng state.
// Random logits rounded to a few levels (many ties), every combination of -K, --top-p and -H.
static const float* g_ref_values;
static int ref_desc(const void* a, const void* b) {
    int i = *(const int*)a, j = *(const int*)b;
    float x = g_ref_values[i], y = g_ref_values[j];
    return x > y ? -1 : x < y ? 1 : (i > j) - (i < j);
}
static int ref_sample_token(const float* logits, int V, const SampleOptions* so, Rng* rng, int off_by_one) {
    float* w = (float*)malloc_or_die((size_t)V * sizeof(float));
    int* order = (int*)malloc_or_die((size_t)V * sizeof(int));
    float maxval = -INFINITY, threshold = -INFINITY;
    for (int v = 0; v < V; v++) { maxval = logits[v] > maxval ? logits[v] : maxval; }
    if (so->top_k > 0 && so->top_k < V) { // the k-th largest, by a full sort
        for (int v = 0; v < V; v++) { order[v] = v; }
        g_ref_values = logits;
        qsort(order, (size_t)V, sizeof(int), ref_desc);
        threshold = logits[order[so->top_k - 1]];
    }
    double sum = 0.0;
    for (int v = 0; v < V; v++) {
        w[v] = logits[v] >= threshold ? expf((logits[v] - maxval) / so->temperature) : 0.0f;
        sum += w[v];
    }
    if (so->top_p < 1.0f) {
        int n = 0;
        for (int v = 0; v < V; v++) { if (w[v] > 0.0f) { order[n++] = v; } }
        g_ref_values = w;
        qsort(order, (size_t)n, sizeof(int), ref_desc);
        double kept = 0.0;
        int i = 0;
        while (i < n && kept < (double)so->top_p * sum) { kept += w[order[i]]; i++; }
        if (off_by_one && i < n) { kept += w[order[i]]; i++; } // (the check must catch this)
        for (; i < n; i++) { w[order[i]] = 0.0f; }
        sum = kept;
    }
    double r = (double)rng_uniform(rng) * sum, acc = 0.0;
    int token = 0;
    for (int v = V - 1; v >= 0; v--) { if (w[v] > 0.0f) { token = v; break; } }
    for (int v = 0; v < V; v++) { acc += w[v]; if (r < acc) { token = v; break; } }
    free(w); free(order);
    return token;
}
static void test_nucleus(void) {
    printf("\n== nucleus sampling: the heap's tokens against a full sort's\n");
    int V = 3000, draws = 0, same = 0, caught = 0;
    float* logits = (float*)malloc_or_die((size_t)V * sizeof(float));
    float* work = (float*)malloc_or_die((size_t)V * sizeof(float));
    int* order = (int*)malloc_or_die((size_t)V * sizeof(int));
    static const int ks[] = {0, 1, 7, 200};
    static const float ps[] = {0.05f, 0.5f, 0.9f, 0.999f, 1.0f}, temps[] = {0.7f, 1.0f, 2.0f};
    Rng gen = {stream_key(11, 1), 0};
    for (int trial = 0; trial < 8; trial++) {
        float levels = trial < 4 ? 8.0f : 1000.0f; // few levels: many ties
        for (int v = 0; v < V; v++) { logits[v] = floorf(rng_uniform(&gen) * levels) / levels * 6.0f; }
        for (int a = 0; a < 4; a++) for (int b = 0; b < 5; b++) for (int c = 0; c < 3; c++) {
            SampleOptions so = {temps[c], ks[a], ps[b]};
            Rng r1 = {stream_key(12, (uint64_t)trial), (uint64_t)draws}, r2 = r1, r3 = r1;
            int t1 = sample_token(logits, V, &so, &r1, work, order);
            same += t1 == ref_sample_token(logits, V, &so, &r2, 0);
            caught += ps[b] < 1.0f && t1 != ref_sample_token(logits, V, &so, &r3, 1);
            draws++;
        }
    }
    char detail[160];
    snprintf(detail, sizeof(detail), "%d of %d draws equal (V=%d, -K 0/1/7/200, --top-p .05-1, -H .7-2)",
             same, draws, V);
    check_bool("nucleus = full sort", same == draws, detail);
    snprintf(detail, sizeof(detail), "keeping one token too many changes %d of the draws", caught);
    check_bool("nucleus can fail", caught > 0, detail);
    free(logits); free(work); free(order);
}

// The checkpoints' checksum (gptc/checkpoint.h): CRC-32C's published check value, a running value
// that does not depend on how the bytes are split, and a flipped bit that changes it.
static void test_checksum(void) {
    printf("\n== checkpoint checksum (CRC-32C)\n");
    check_bool("crc32c check value", crc32c_update(0, "123456789", 9) == 0xE3069283u,
               "crc32c(\"123456789\") = e3069283 (the published check value)");
    unsigned char b[1001];
    for (int i = 0; i < 1001; i++) { b[i] = (unsigned char)(i * 131 + 7); }
    uint32_t whole = crc32c_update(0, b, sizeof(b));
    check_bool("crc32c running value", crc32c_update(crc32c_update(0, b, 333), b + 333, 668) == whole,
               "333 + 668 bytes give the CRC of all 1001");
    int same = 1; // the table form (every build without SSE4.2) against the one this build uses
    for (size_t off = 0; off < 9; off++) {
        for (size_t n = 0; n + off <= sizeof(b); n += 37) {
            same &= crc32c_table_update(0, b + off, n) == crc32c_update(0, b + off, n);
        }
    }
    check_bool("crc32c table form", same, "= the instruction form at 9 offsets x 28 lengths");
    b[500] ^= 4; // can fail: a flipped bit the CRC does not see
    check_bool("crc32c sees one bit", crc32c_update(0, b, sizeof(b)) != whole, "one flipped bit changes it");
}

// matmul_forward at small BT (BT <= MM_MV_MAXN: gpt_decode's matrix-vector path) against the GEMM
// (mm_gemm_t), bit for bit: OC not a multiple of 16 (edge blocks), C not a multiple of 16 (the
// column tail), BT up to one past the threshold, with and without bias.
static void test_small_bt_matmul(void) {
    static const int shapes[][2] = {{5, 7}, {17, 33}, {60, 311}, {257, 49}}; // C, OC
    Rng rng; rng.key = stream_key(7, 1); rng.counter = 0;
    size_t differ = 0, total = 0;
    for (int s = 0; s < 4; s++) {
        int C = shapes[s][0], OC = shapes[s][1], BTmax = MM_MV_MAXN + 1;
        float* w = (float*)malloc_or_die(((size_t)OC * C + (size_t)BTmax * C + OC + 2 * (size_t)BTmax * OC) * sizeof(float));
        float* inp = w + (size_t)OC * C;
        float* bias = inp + (size_t)BTmax * C;
        float* a = bias + OC;
        float* b = a + (size_t)BTmax * OC;
        for (size_t i = 0; i < (size_t)OC * C + (size_t)BTmax * C + OC; i++) { w[i] = 2.0f * rng_uniform(&rng) - 1.0f; }
        for (int BT = 1; BT <= BTmax; BT++) {
            for (int with_bias = 0; with_bias < 2; with_bias++) {
                matmul_forward(a, inp, w, with_bias ? bias : NULL, BT, C, OC);
                mm_gemm_t(OC, BT, C, w, C, inp, C, b, OC, with_bias ? bias : NULL);
                for (size_t i = 0; i < (size_t)BT * OC; i++) { differ += memcmp(&a[i], &b[i], sizeof(float)) != 0; }
                total += (size_t)BT * OC;
            }
        }
        free(w);
    }
    char detail[160];
    snprintf(detail, sizeof(detail), "%zu of %zu outputs at BT = 1..%d differ from mm_gemm_t's bits", differ, total, MM_MV_MAXN + 1);
    check_bool("small-BT matmul", differ == 0, detail);
}

// Generation with the KV cache (gpt_decode) against the full forward: the logits of every
// position, and the tokens drawn from them with the same seed (the generator's KV path against its
// full-recompute path). Runs on the CPU functions in every build (they are train_gpt.c's).
static void collect_token(int token, void* ctx) { int* out = (int*)ctx; out[++out[0]] = token; }
static void test_kv_cache(void) {
    printf("\n== generation: KV cache against the full forward (cpu)\n");
    test_small_bt_matmul();
    GPT model;
    gpt_build_from_descriptor(&model, "L2H3C48T32V97", 77);
    int T = model.config.max_seq_len, Vp = model.config.padded_vocab_size, V = model.config.vocab_size;
    int* seq = (int*)malloc_or_die((size_t)T * sizeof(int));
    for (int t = 0; t < T; t++) { seq[t] = (int)(stream_draw(stream_key(3, 4), (uint64_t)t) % (uint64_t)V); }
    gpt_forward(&model, seq, NULL, 1, T);
    float* full = (float*)malloc_or_die((size_t)T * Vp * sizeof(float));
    memcpy(full, model.acts.logits, (size_t)T * Vp * sizeof(float));
    float* kv = (float*)malloc_or_die((size_t)T * Vp * sizeof(float));
    for (int t = 0; t < T; t++) { memcpy(kv + (size_t)t * Vp, gpt_decode(&model, seq[t], t), (size_t)Vp * sizeof(float)); }
    size_t same = 0;
    for (size_t i = 0; i < (size_t)T * Vp; i++) { same += kv[i] == full[i]; }
    printf("(%zu of %zu logits bit-identical)\n", same, (size_t)T * Vp);
    check("kv logits", kv, full, (size_t)T * Vp, ACT_RTOL, rms_floor(full, 1, (size_t)T * Vp, 0, ACT_FLOOR));
    // bit for bit: decode's matmuls (BT = 1, matmul_forward's matrix-vector path) must sum every
    // output in the GEMM's order with the GEMM's roundings
    check_bool("kv logits bitwise", same == (size_t)T * Vp, "every logit of gpt_decode equals the full forward's bit for bit");
    // the generator, both paths, the same seed and sampling options (nucleus and top-k on)
    Backend recompute = cpu_backend;
    recompute.decode = NULL;
    SampleOptions so = {0.9f, 40, 0.95f};
    int out_kv[40], out_full[40];
    for (int path = 0; path < 2; path++) {
        int* out = path == 0 ? out_kv : out_full;
        Rng rng; rng.key = stream_key(5, 99); rng.counter = 0;
        int gen[32] = {seq[0], seq[1], seq[2]};
        out[0] = 0;
        Generator g = {path == 0 ? &cpu_backend : &recompute, &model, 0};
        sample_sequence(next_logits, &g, V, gen, 3, T, 25, &so, &rng, -1, collect_token, out);
    }
    check_bool("kv generation", out_kv[0] == 25 && out_full[0] == 25 && memcmp(out_kv, out_full, 26 * sizeof(int)) == 0,
               "25 tokens drawn with the KV cache equal those of the full forward (same seed)");
    if (g_backend != &cpu_backend && g_backend->decode != NULL) {
        // the GPU's decode against the GPU's full forward (each within this build's bounds: the
        // two sum in different orders, flash tiles against one row)
        printf("(%s backend: decode against its own full forward)\n", g_backend->name);
        g_backend->attach(&model, 1, T);
        g_backend->forward(&model, seq, NULL, 1, T);
        for (int t = 0; t < T; t++) { memcpy(full + (size_t)t * Vp, g_backend->logits(&model, 0, t), (size_t)Vp * sizeof(float)); }
        for (int t = 0; t < T; t++) { memcpy(kv + (size_t)t * Vp, g_backend->decode(&model, seq[t], t), (size_t)Vp * sizeof(float)); }
        g_l2_tol = ACT_L2;
        check("kv logits (gpu)", kv, full, (size_t)T * Vp, ACT_RTOL, rms_floor(full, 1, (size_t)T * Vp, 0, ACT_FLOOR));
        g_l2_tol = 0.0f;
        g_backend->detach(&model);
    }
    free(seq); free(full); free(kv);
    gpt_free(&model);
}

// eval.h's choice of each example (ours: pred, then pred_norm; moved by `shift` to prove that the
// comparison can fail) against PyTorch's (rpred), where the reference decides it: its best and
// second best further apart than the two scores' bounds, or an exact tie (the same tokens, scored
// bit for bit on the CPU). Counts the choices decided and those that differ.
static void eval_choices(const EvalSet* ev, int* const ours[2], const float* rsum,
                         const float* rmean, int* const rpred[2], float atol_sum, float atol_mean,
                         int shift, int* decided, int* flipped) {
    *decided = 0; *flipped = 0;
    for (int i = 0; i < ev->n; i++) {
        for (int norm = 0; norm < 2; norm++) {
            const float* rf = (norm ? rmean : rsum) + ev->row0[i];
            int K = (int)(ev->row0[i + 1] - ev->row0[i]), want = rpred[norm][i], second = -1;
            for (int k = 0; k < K; k++) { if (k != want && (second < 0 || rf[k] < rf[second])) { second = k; } }
            float a = rf[want], b = rf[second];
            float bound = 2.0f * (norm ? atol_mean : atol_sum) + ACT_RTOL * (fabsf(a) + fabsf(b));
            if (b - a > bound || (b == a && !GPT_CUDA)) {
                (*decided)++;
                *flipped += (ours[norm][i] + shift) % K != want;
            }
        }
    }
}

// Multiple-choice evaluation (gptc/eval.h) against dev/eval_reference.py: the model of model_path
// scores the crafted file eval_path through this build's backend (score_rows, 3 rows a forward: the
// examples straddle forwards); every completion's summed and mean cross-entropy against PyTorch's,
// one row at a time there, within the activations' bounds; each example's choices (lowest sum,
// lowest mean, ties to the lowest index) where the reference's gap exceeds those bounds (in fp32:
// every example); and on the CPU the same bits for any rows per forward.
static void test_eval(const char* model_path, const char* eval_path, const char* ref_path) {
    printf("\n== multiple-choice eval: %s on %s against %s (%s backend)\n", model_path, eval_path,
           ref_path, g_backend->name);
    GPT model;
    gpt_build_from_checkpoint(&model, model_path);
    EvalSet ev;
    eval_load(&ev, eval_path, "--eval");
    int T = eval_fit(&ev, model.config.vocab_size, model.config.max_seq_len);
    Reference ref;
    ref_load(&ref, ref_path);
    size_t rows = (size_t)ev.rows, n = (size_t)ev.n;
    float* rsum = (float*)ref_get(&ref, "eval_sum", 0, rows)->data;
    float* rmean = (float*)ref_get(&ref, "eval_mean", 0, rows)->data;
    int* rpred[2] = {(int*)ref_get(&ref, "eval_pred", 1, n)->data,
                     (int*)ref_get(&ref, "eval_pred_norm", 1, n)->data};
    int* rcount = (int*)ref_get(&ref, "eval_counts", 1, 3)->data;
    // eval.h's scores and choices at B = 3, 1 and all rows a forward
    double* sc = (double*)calloc_or_die(6 * rows, sizeof(double));
    int* choice = (int*)calloc_or_die(6 * n, sizeof(int));
    EvalScores out[3];
    for (int j = 0; j < 3; j++) {
        EvalScores o = {sc + 2 * j * rows, sc + (2 * j + 1) * rows, choice + 2 * j * n, choice + (2 * j + 1) * n};
        out[j] = o;
    }
    Generator g = {g_backend, &model, 0};
    g_backend->attach(&model, (int)rows, T);
    EvalResult res = eval_run(&ev, 3, score_rows, &g, &out[0]);
    float* ours = (float*)malloc_or_die(2 * rows * sizeof(float)); // sums, then means
    for (size_t r = 0; r < 2 * rows; r++) { ours[r] = (float)sc[r]; }
    g_l2_tol = ACT_L2;
    float atol_sum = rms_floor(rsum, 1, rows, 0, ACT_FLOOR), atol_mean = rms_floor(rmean, 1, rows, 0, ACT_FLOOR);
    check("eval.sum", ours, rsum, rows, ACT_RTOL, atol_sum);
    check("eval.mean", ours + rows, rmean, rows, ACT_RTOL, atol_mean);
    g_l2_tol = 0.0f;
    // each example's two choices, eval.h's against PyTorch's
    int decided, flipped, decided2, flipped2;
    int* const pred[2] = {out[0].pred, out[0].pred_norm};
    eval_choices(&ev, pred, rsum, rmean, rpred, atol_sum, atol_mean, 0, &decided, &flipped);
    char detail[200];
    snprintf(detail, sizeof(detail), "%d of %d choices decided by the reference: %d the same, %d not",
             decided, 2 * ev.n, decided - flipped, flipped);
    check_bool("eval choices", decided > 0 && flipped == 0 && (GPT_CUDA || decided == 2 * ev.n), detail);
    eval_choices(&ev, pred, rsum, rmean, rpred, atol_sum, atol_mean, 1, &decided2, &flipped2);
    snprintf(detail, sizeof(detail), "our choices moved by one: %d of %d differ", flipped2, decided2);
    check_bool("eval choices can fail", flipped2 > 0, detail);
    if (!GPT_CUDA || ACT_L2 == 0.0f) { // (bf16: the undecided examples may go either way)
        snprintf(detail, sizeof(detail), "%d examples: acc %.0f, acc_norm %.0f; PyTorch's %d, %d", ev.n,
                 res.correct, res.correct_norm, rcount[1], rcount[2]);
        check_bool("eval counts", res.n == rcount[0] && res.correct == rcount[1] &&
                   res.correct_norm == rcount[2], detail);
    }
#if !GPT_CUDA
    // a row's losses depend neither on the other rows nor on B: the same bits for 1 row and all
    eval_run(&ev, 1, score_rows, &g, &out[1]);
    eval_run(&ev, (int)rows, score_rows, &g, &out[2]);
    check_bool("eval any B", memcmp(sc, sc + 2 * rows, 2 * rows * sizeof(double)) == 0 &&
               memcmp(sc, sc + 4 * rows, 2 * rows * sizeof(double)) == 0 &&
               memcmp(choice, choice + 2 * n, 2 * n * sizeof(int)) == 0 &&
               memcmp(choice, choice + 4 * n, 2 * n * sizeof(int)) == 0,
               "every score and choice is the same bits at 1, 3 and all rows a forward");
#endif
    g_backend->detach(&model);
    free(sc); free(choice); free(ours);
    eval_free(&ev);
    ref_free(&ref);
    gpt_free(&model);
}

// --compare-runs A B: two training runs of the same model and options (e.g. 1 process and 2
// under mpirun): every step's loss, gradient norm and lr in A/log.txt and B/log.txt, every
// validation loss, and the weights of the newest checkpoint in each, within the fp32 bounds above
// (the parameters' bound with the sum of the run's learning rates). --bitwise: the files identical.
static int parse_log(const char* path, float* loss, float* norm, float* lr, float* vl, int cap, int* nv) {
    FILE* f = fopen_input_or_die(path);
    char line[512];
    int n = 0;
    *nv = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        long st; float a, b, c;
        if (sscanf(line, "s:%ld trl:%f norm:%f lr:%f", &st, &a, &b, &c) == 4) {
            if (st != n || n >= cap) { die("%s: unexpected step %ld (expected %d)", path, st, n); }
            loss[n] = a; norm[n] = b; lr[n] = c; n++;
        } else if (sscanf(line, "s:%ld vl:%f", &st, &a) == 2 && *nv < cap) { vl[(*nv)++] = a; }
    }
    fclose(f);
    return n;
}
static void compare_runs(const char* a, const char* b, int bitwise) {
    printf("\n== runs %s and %s%s\n", a, b, bitwise ? " (bitwise)" : "");
    enum { CAP = 100000 };
    float* buf = (float*)malloc_or_die(8 * (size_t)CAP * sizeof(float));
    char pa[4200], pb[4200];
    snprintf(pa, sizeof(pa), "%s/log.txt", a);
    snprintf(pb, sizeof(pb), "%s/log.txt", b);
    int nva, nvb;
    int na = parse_log(pa, buf, buf + CAP, buf + 2 * CAP, buf + 3 * CAP, CAP, &nva);
    int nb = parse_log(pb, buf + 4 * CAP, buf + 5 * CAP, buf + 6 * CAP, buf + 7 * CAP, CAP, &nvb);
    check_bool("log lengths", na == nb && nva == nvb && na > 0, "the same steps and validations in both logs");
    if (na != nb || nva != nvb || na == 0) { free(buf); return; }
    float rl = bitwise ? 0.0f : 1.0f;
    check("log.loss", buf, buf + 4 * CAP, (size_t)na, rl * STEP_RTOL, 0.0f);
    check("log.norm", buf + CAP, buf + 5 * CAP, (size_t)na, rl * NORM_RTOL, 0.0f);
    check("log.lr", buf + 2 * CAP, buf + 6 * CAP, (size_t)na, rl * 1e-6f, 0.0f);
    if (nva > 0) { check("log.val_loss", buf + 3 * CAP, buf + 7 * CAP, (size_t)nva, rl * STEP_RTOL, 0.0f); }
    double lr_sum = 0.0;
    for (int i = 0; i < na; i++) { lr_sum += buf[2 * CAP + i]; }
    long step = latest_checkpoint(a);
    if (step < 0 || step != latest_checkpoint(b)) { die("%s and %s: no common newest checkpoint", a, b); }
    char ma[4200], mb[4200], sa[4200], sb[4200];
    checkpoint_paths(ma, sa, sizeof(ma), a, step);
    checkpoint_paths(mb, sb, sizeof(mb), b, step);
    if (bitwise) {
        check_bool("model file", files_equal(ma, mb), "the newest model files are identical");
        check_bool("state file", files_equal(sa, sb), "the newest state files are identical");
    } else {
        GPT ga, gb;
        gpt_build_from_checkpoint(&ga, ma);
        gpt_build_from_checkpoint(&gb, mb);
        if (ga.num_parameters != gb.num_parameters) { die("%s and %s: different models", ma, mb); }
        size_t off = 0;
        for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
            char name[160];
            snprintf(name, sizeof(name), "weights.%s", ga.specs[k].name);
            check(name, ga.params_memory + off, gb.params_memory + off, ga.specs[k].size, PARAM_RTOL,
                  (float)(PARAM_FLOOR * lr_sum));
            off += ga.specs[k].size;
        }
        gpt_free(&ga); gpt_free(&gb);
    }
    free(buf);
}

// A version-2 shard (tokens, then a flag per token: gptc/shard.h)
static void write_flagged_shard(const char* path, const uint16_t* tokens, const uint8_t* flags, long ntok) {
    FILE* f = fopen_or_die(path, "wb");
    int32_t header[SHARD_HEADER_INTS];
    shard_header(header, ntok, 1);
    fwrite_or_die(header, sizeof(int32_t), SHARD_HEADER_INTS, f, path);
    fwrite_or_die(tokens, sizeof(uint16_t), (size_t)ntok, f, path);
    fwrite_or_die(flags, 1, (size_t)ntok, f, path);
    if (fclose(f) != 0) { die("%s: write failed", path); }
}

// The training loop itself with a loss mask (the loader's flags, train_step's count over the whole
// step): the masked reference's tokens and mask as one version-2 shard of A samples, trained K
// steps of A micro-batches (-d A*B*T: each step one epoch, its samples in a shuffled order) from
// its model file with its hyperparameters, against its step losses, norms, lrs and final weights.
// Then the same shard with every flag 0: a step and a validation with no counted target give loss
// 0 and norm 0, never NaN.
static void test_masked_run(const char* model_path, Reference* ref, int B, int T, int A, int K,
                            const int* tokens, const int* mask) {
    printf("\n== the training loop on the masked reference's data (%s backend)\n", g_backend->name);
    char dir[] = "/tmp/test_gpt_mask_XXXXXX";
    if (mkdtemp(dir) == NULL) { die("mkdtemp failed (%s)", strerror(errno)); }
    char shard[300], out[300], zero[300], zout[300], log[320], arg[11][32];
    snprintf(shard, sizeof(shard), "%s/mask.bin", dir);
    snprintf(out, sizeof(out), "%s/run", dir);
    snprintf(zero, sizeof(zero), "%s/zero.bin", dir);
    snprintf(zout, sizeof(zout), "%s/zrun", dir);
    long ntok = (long)A * B * T + 1; // row r of the reference is stream[r*T .. r*T + T]
    uint16_t* tok = (uint16_t*)malloc_or_die((size_t)ntok * sizeof(uint16_t));
    uint8_t* flag = (uint8_t*)calloc_or_die((size_t)ntok, 1); // flag[0]: no target, stays 0
    for (long r = 0; r < (long)A * B; r++) {
        for (int t = 0; t <= T; t++) { tok[r * T + t] = (uint16_t)tokens[r * (T + 1) + t]; }
        for (int t = 0; t < T; t++) { flag[r * T + t + 1] = (uint8_t)mask[r * T + t]; }
    }
    write_flagged_shard(shard, tok, flag, ntok);
    const float* hp = (const float*)ref_get(ref, "hparams", 0, 8)->data; // lr b1 b2 eps wd clip warmup frac
    snprintf(arg[0], 32, "%d", B); snprintf(arg[1], 32, "%d", T); snprintf(arg[2], 32, "%d", A * B * T);
    snprintf(arg[3], 32, "%d", K); snprintf(arg[4], 32, "%d", (int)hp[6]); snprintf(arg[10], 32, "%d", A);
    static const int pick[5] = {0, 3, 4, 5, 7}; // -l --eps -c -G -q
    for (int i = 0; i < 5; i++) { snprintf(arg[5 + i], 32, "%.9g", hp[pick[i]]); }
    const char* args[] = {"train_gpt", "-e", model_path, "-i", shard, "-j", shard, "-m", arg[10], "-b", arg[0], "-t", arg[1],
                          "-d", arg[2], "-x", arg[3], "-u", arg[4], "-l", arg[5], "--eps", arg[6], "-c", arg[7],
                          "-G", arg[8], "-q", arg[9], "--beta1", "0.9", "--beta2", "0.95", "-v", arg[3], "-s", "0",
                          "-n", "0", "-o", out};
    if (hp[1] != 0.9f || hp[2] != 0.95f) { die("test_masked_run: the reference's betas are not 0.9, 0.95"); }
    TrainOptions o = parse_options((int)(sizeof(args) / sizeof(args[0])), (char**)args);
    o.verbose = 0;
    TrainResult r;
    run_training(&o, g_backend, &r);
    float* buf = (float*)malloc_or_die(4 * (size_t)K * sizeof(float));
    int nv;
    snprintf(log, sizeof(log), "%s/log.txt", out);
    if (parse_log(log, buf, buf + K, buf + 2 * K, buf + 3 * K, K, &nv) != K) { die("%s: not %d steps", log, K); }
    g_l2_tol = 0.0f;
    check("run.step_loss", r.losses, (float*)ref_get(ref, "step_loss", 0, (size_t)K)->data, (size_t)K, STEP_RTOL, 0.0f);
    check("run.step_norm", buf + K, (float*)ref_get(ref, "step_norm", 0, (size_t)K)->data, (size_t)K, NORM_RTOL, 0.0f);
    check("run.step_lr", buf + 2 * K, (float*)ref_get(ref, "step_lr", 0, (size_t)K)->data, (size_t)K, 1e-6f, 0.0f);
    // validation at step 0 over the same A batches (-m A, -v K, no dropout): their mean over every
    // counted target with the initial weights, which is the reference's first step loss
    if (nv != 2) { die("%s: %d validations, expected 2", log, nv); }
    check("run.val_loss_step0", buf + 3 * K, (float*)ref_get(ref, "step_loss", 0, (size_t)K)->data, 1, STEP_RTOL, 0.0f);
    double lr_sum = 0.0;
    for (int k = 0; k < K; k++) { lr_sum += buf[2 * K + k]; }
    char model_file[340], state_file[340];
    checkpoint_paths(model_file, state_file, sizeof(model_file), out, K);
    GPT m;
    gpt_build_from_checkpoint(&m, model_file);
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        char name[160];
        snprintf(name, sizeof(name), "final.%s", m.specs[k].name);
        size_t n = m.specs[k].size;
        float* rf = (float*)ref_get(ref, name, 0, n)->data;
        snprintf(name, sizeof(name), "run.final.%s", m.specs[k].name);
        check(name, m.params_memory + m.specs[k].offset, rf, n, PARAM_RTOL, (float)(PARAM_FLOOR * lr_sum));
    }
    gpt_free(&m);
    free(r.losses);

    // no target counts: loss 0, norm 0 and validation loss 0 at every step (never NaN)
    memset(flag, 0, (size_t)ntok);
    write_flagged_shard(zero, tok, flag, ntok);
    const char* zargs[] = {"train_gpt", "-e", model_path, "-i", zero, "-j", zero, "-b", arg[0], "-t", arg[1],
                           "-d", arg[2], "-x", "2", "-u", "0", "-v", "1", "-s", "0", "-o", zout};
    o = parse_options((int)(sizeof(zargs) / sizeof(zargs[0])), (char**)zargs);
    o.verbose = 0;
    run_training(&o, g_backend, &r);
    snprintf(log, sizeof(log), "%s/log.txt", zout);
    int n = parse_log(log, buf, buf + K, buf + 2 * K, buf + 3 * K, K, &nv);
    char detail[200];
    snprintf(detail, sizeof(detail), "2 steps: losses %g %g, norms %g %g; %d validations, the last %g",
             buf[0], buf[1], buf[K], buf[K + 1], nv, r.last_val_loss);
    check_bool("no counted target", n == 2 && nv == 3 && buf[0] == 0.0f && buf[1] == 0.0f && buf[K] == 0.0f &&
               buf[K + 1] == 0.0f && buf[3 * K + 2] == 0.0f && r.last_val_loss == 0.0f, detail);
    free(r.losses); free(buf); free(tok); free(flag);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) { fprintf(stderr, "warning: could not remove %s\n", dir); }
}

int main(int argc, char** argv) {
    const char* defaults[] = {"dev/ref/odd_model.bin", "dev/ref/odd_ref.bin", "dev/ref/drop_model.bin", "dev/ref/drop_ref.bin",
                              "dev/ref/mask_model.bin", "dev/ref/mask_ref.bin", "dev/ref/d12_model.bin", "dev/ref/d12_ref.bin"};
    int ndefaults = (int)(sizeof(defaults) / sizeof(defaults[0]));
    const char* files[64];
    int nfiles = 0, resume = 1, resume_only = 0;
    const char* eval_ref[3] = {NULL, NULL, NULL}; // --eval-ref MODEL EVAL REF
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--corrupt") == 0 && i + 1 < argc) { g_corrupt = argv[++i]; }
        else if (strcmp(argv[i], "--no-resume") == 0) { resume = 0; }
        else if (strcmp(argv[i], "--ignore-dropout") == 0) { g_ignore_dropout = 1; }
        else if (strcmp(argv[i], "--ignore-mask") == 0) { g_ignore_mask = 1; }
        else if (strcmp(argv[i], "--resume-only") == 0) { resume_only = 1; }
        else if (strcmp(argv[i], "--generation-only") == 0) {
            test_kv_cache();
            printf("\n%d passed, %d failed\n", g_passed, g_failed);
            return g_failed == 0 ? 0 : 1;
        }
        else if ((strcmp(argv[i], "--compare-runs") == 0 || strcmp(argv[i], "--compare-runs-bitwise") == 0) && i + 2 < argc) {
            compare_runs(argv[i + 1], argv[i + 2], strcmp(argv[i], "--compare-runs-bitwise") == 0);
            printf("\n%d passed, %d failed\n", g_passed, g_failed);
            return g_failed == 0 ? 0 : 1;
        }
        else if (strcmp(argv[i], "--eval-ref") == 0 && i + 3 < argc) { for (int k = 0; k < 3; k++) { eval_ref[k] = argv[++i]; } }
        else if (argv[i][0] == '-') { die("%s: unknown option (usage: ./test_gpt [--corrupt NAME] [--ignore-dropout] [--ignore-mask] [--no-resume | --resume-only] [MODEL REF]... [--eval-ref MODEL EVAL REF] | --compare-runs[-bitwise] DIR_A DIR_B)", argv[i]); }
        else if (nfiles < 64) { files[nfiles++] = argv[i]; }
    }
    if (eval_ref[0] != NULL && nfiles == 0 && !resume_only) { resume_only = 1; resume = 0; } // eval alone
    else if (!resume_only && nfiles == 0) { // the default eval reference too
        eval_ref[0] = "dev/ref/eval_model.bin"; eval_ref[1] = "dev/ref/eval.bin"; eval_ref[2] = "dev/ref/eval_ref.bin";
    }
    if (resume_only) { nfiles = 0; } else if (nfiles == 0) { for (int i = 0; i < ndefaults; i++) { files[nfiles++] = defaults[i]; } }
    if (nfiles % 2 != 0) { die("give model and reference files in pairs (got %d files)", nfiles); }
    for (int i = 0; i < nfiles; i += 2) { test_pair(files[i], files[i + 1]); }
    if (eval_ref[0] != NULL) { test_eval(eval_ref[0], eval_ref[1], eval_ref[2]); }
    if (resume) { test_resume(); test_data_partition(); test_kv_cache(); test_checksum(); test_nucleus(); }
    printf("\n%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
