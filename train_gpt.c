/*
train_gpt.c -- GPT-2 training on the CPU, in one C file.

What it is: a hand-written GPT-2 (token + position embeddings, pre-LayerNorm transformer blocks with
causal multi-head self-attention and a tanh-GELU MLP, a final LayerNorm and an lm head tied to the
token embedding) with an explicit forward and backward pass for every layer, AdamW, gradient
clipping and accumulation, dropout, a warmup + cosine learning-rate schedule, validation,
generation with a KV cache, resumable checkpoints and data parallelism over processes. fp32
throughout, OpenMP for the cores.

What it is not: a library, or a framework with autograd. Every derivative is written out by hand,
next to the forward line it differentiates. What is not the model's math (the GEMM, random numbers,
files, data, sampling, checkpoints, flags, MPI) lives in small headers in gptc/, each with its own
contract: this file meets each of them in a call or two.

Read it in the order of its section banners: 1 the layers, 2 the model's tables, 3 building a model,
4 forward, backward and AdamW, 5 backends, 6 generation, 7 checkpoints, 8 the training loop, 9 main.

Rules that are easy to miss:
  - Parameter gradients ACCUMULATE (+=): gradient accumulation over micro-batches needs that.
    gpt_update consumes them and leaves them zeroed for the next step.
  - Activation gradients are OVERWRITTEN, except the residual stream's, which each layernorm
    backward ADDS into: the stream's gradient comes through the branch and the skip connection.
  - Every parallel reduction is done in a fixed order, so a run is bitwise reproducible, and a run
    resumed from a checkpoint continues bitwise-identically.
  - The random init does not use the C library: gptc/rand.h's counter-based generator, which
    dev/train_gpt.py reproduces bit for bit, so C and PyTorch start from the same weights.

Written in the common subset of C11 and C++: train_gpt.cu and test_gpt.c #include this file (with
GPT_NO_MAIN) and reuse its tables, formats and training loop; the loop reaches the model's math
only through a Backend table (the CPU's here, the GPU's in train_gpt.cu).
*/

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "gptc/utils.h"      // provides: die, checked sizes and I/O, atomic writes, MAX_* limits
#include "gptc/rand.h"       // provides: the counter-based RNG, normal_at (init), Dropout's masks
#include "gptc/matmul.h"     // provides: mm_forward, mm_backward_dinp, mm_backward_dweight (GEMM)
#include "gptc/vecmath.h"    // provides: exp_fast (e^x that vectorizes), sum_squares
#include "gptc/comm.h"       // provides: g_comm (rank, size), comm_init, the collectives (MPI)
#include "gptc/dataloader.h" // provides: DataLoader, loader_init/seek/next_batch (token shards)
#include "gptc/sampler.h"    // provides: SampleOptions, sample_token
#include "gptc/checkpoint.h" // provides: model and state files, TrainState, the output directory
#include "gptc/cli.h"        // provides: TrainOptions, parse_options, resume_options, print_summary
#include "gptc/eval.h"       // provides: EvalSet, eval_load/fit/run (multiple-choice evaluation)
#include "data/tokenizer.h"  // provides: Tokenizer, tokenizer_init/encode/decode/free (GPT-2 BPE)
#include "data/safetensors.h" // provides: hf_gpt2_read_config/load/save (Hugging Face checkpoints)

/*
Shape legend, used in every comment below:
  B batch size, T time (sequence length), C channels, NH heads, hs = C/NH head size,
  V vocabulary size, Vp V padded up to a multiple of 128, L layers, maxT the longest sequence.
*/

// ----------------------------------------------------------------------------------------------
// 1. Layers, in network order: _forward / _backward pairs; arguments: outputs, inputs, sizes.

// --- encoder: x = wte[token] + wpe[position]

static void encoder_forward(float* out, const int* inp, const float* wte, const float* wpe,
                            int B, int T, int C) {
    // out (B,T,C), inp (B,T), wte (Vp,C), wpe (maxT,C)
    #pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            float* o = out + ((size_t)b * T + t) * C;
            const float* te = wte + (size_t)inp[b * T + t] * C;
            const float* pe = wpe + (size_t)t * C;
            for (int c = 0; c < C; c++) { o[c] = te[c] + pe[c]; }
        }
    }
}

static void encoder_backward(float* dwte, float* dwpe, const float* dout, const int* inp,
                             int B, int T, int C) {
    // forward: out[b,t,:] = wte[inp[b,t],:] + wpe[t,:], so dwte[inp[b,t],:] += dout[b,t,:] and
    // dwpe[t,:] += dout[b,t,:]. Two positions can hold the same token, so rows of dwte collide:
    // each thread owns a slice of channels instead, and walks all positions in order.
    #pragma omp parallel for
    for (int c0 = 0; c0 < C; c0 += 16) {
        int c1 = c0 + 16 < C ? c0 + 16 : C;
        for (int b = 0; b < B; b++) {
            for (int t = 0; t < T; t++) {
                const float* d = dout + ((size_t)b * T + t) * C;
                float* gte = dwte + (size_t)inp[b * T + t] * C;
                float* gpe = dwpe + (size_t)t * C;
                for (int c = c0; c < c1; c++) { gte[c] += d[c]; gpe[c] += d[c]; }
            }
        }
    }
}

// --- dropout (Srivastava et al., "Dropout", JMLR 2014), training only: each element is zeroed
// with probability p and the kept ones are scaled by 1/(1-p) (the expected value is unchanged, so
// validation and generation skip it). As in GPT-2, at sites 0 (the embedding sum) and, for layer
// l, 1+3l (its attention probabilities), 2+3l and 3+3l (its two residual branches). The masks are
// never stored: gptc/rand.h draws them, so the backward, the GPU and PyTorch recompute the same.

// out = in * mask * 1/(1-p), element i of the n at site `site` (out may be in). The forward of a
// site, and also its backward: d(in) = d(out) * mask * 1/(1-p), the same mask on the gradient.
static void dropout_mask(float* out, const float* in, size_t n, const Dropout* d, int site) {
    uint64_t key = stream_key(d->key, (uint64_t)site);
    uint32_t threshold = d->threshold;
    float scale = d->scale;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        out[i] = dropout_keep(key, i, threshold) ? in[i] * scale : 0.0f;
    }
}

// --- layernorm: y = (x - mean) * rstd * w + b, over the C channels of each position
// (PyTorch's LayerNorm: biased variance, eps = 1e-5 inside the square root)

static void layernorm_forward(float* out, float* mean, float* rstd, const float* inp,
                              const float* weight, const float* bias, int N, int C) {
    // out (N,C), mean (N), rstd (N), inp (N,C), weight (C), bias (C); N = B*T rows
    #pragma omp parallel for
    for (int i = 0; i < N; i++) {
        const float* x = inp + (size_t)i * C;
        float m = 0.0f;
        for (int c = 0; c < C; c++) { m += x[c]; }
        m = m / C;
        float v = 0.0f;
        for (int c = 0; c < C; c++) { float d = x[c] - m; v += d * d; }
        v = v / C;
        float s = 1.0f / sqrtf(v + 1e-5f);
        float* o = out + (size_t)i * C;
        for (int c = 0; c < C; c++) { o[c] = (x[c] - m) * s * weight[c] + bias[c]; }
        mean[i] = m;
        rstd[i] = s;
    }
}

static void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                               const float* inp, const float* weight, const float* mean,
                               const float* rstd, int N, int C) {
    // forward: n = (x - mean) * rstd; y = n * w + b
    // dbias += sum_i dy ; dweight += sum_i dy * n
    // dn = dy * w, and since mean and rstd depend on every x of the row:
    //   dx = rstd * (dn - mean_c(dn) - n * mean_c(dn * n))            (ADDED into dinp, see top)
    #pragma omp parallel for
    for (int i = 0; i < N; i++) {
        const float* x = inp + (size_t)i * C;
        const float* dy = dout + (size_t)i * C;
        float* dx = dinp + (size_t)i * C;
        float m = mean[i], s = rstd[i];
        float dn_mean = 0.0f, dnn_mean = 0.0f;
        for (int c = 0; c < C; c++) {
            float n = (x[c] - m) * s;
            float dn = dy[c] * weight[c];
            dn_mean += dn;
            dnn_mean += dn * n;
        }
        dn_mean = dn_mean / C;
        dnn_mean = dnn_mean / C;
        for (int c = 0; c < C; c++) {
            float n = (x[c] - m) * s;
            float dn = dy[c] * weight[c];
            dx[c] += s * (dn - dn_mean - n * dnn_mean);
        }
    }
    // the weight and bias gradients sum over rows: threads own channel slices, rows in order
    #pragma omp parallel for
    for (int c0 = 0; c0 < C; c0 += 16) {
        int c1 = c0 + 16 < C ? c0 + 16 : C;
        for (int i = 0; i < N; i++) {
            const float* x = inp + (size_t)i * C;
            const float* dy = dout + (size_t)i * C;
            for (int c = c0; c < c1; c++) {
                dbias[c] += dy[c];
                dweight[c] += dy[c] * ((x[c] - mean[i]) * rstd[i]);
            }
        }
    }
}

// --- matmul: out = inp @ weight^T + bias (weight is (OC, C), like torch.nn.Linear)
// ~99% of a step's arithmetic: gptc/matmul.h's blocked GEMM (dev/MATMUL.md), in a fixed order, so
// the bits depend neither on the threads nor on how many rows a forward has (generation).

static void matmul_forward(float* out, const float* inp, const float* weight, const float* bias,
                           int BT, int C, int OC) {
    // out (BT,OC), inp (BT,C), weight (OC,C), bias (OC) or NULL
    mm_forward(out, inp, weight, bias, BT, C, OC);
}

static void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                            const float* inp, const float* weight, int BT, int C, int OC) {
    // forward: out = inp @ weight^T + bias, so
    //   dinp = dout @ weight                        (BT,C), overwritten
    //   dweight += dout^T @ inp                     (OC,C), accumulated
    //   dbias += the column sums of dout            (OC), accumulated; dbias may be NULL
    mm_backward_dinp(dinp, dout, weight, BT, C, OC);
    mm_backward_dweight(dweight, dbias, dout, inp, BT, C, OC);
}

// --- attention: causal multi-head self-attention over qkv = [q | k | v]

// One query row of one head: a (n) = softmax(scale * q . k_j) over keys j = 0..n-1 (key j at
// keys + j*stride, value j at values + j*stride), then o (hs) = sum_j a_j v_j; with dropout, a_j
// enters o multiplied by dropout's factor for element first + j (0, or 1/(1-p)). Shared by the
// training forward and generation.
static inline void attention_row(float* o, float* a, const float* q, const float* keys,
                                 const float* values, size_t stride, int n, int hs, float scale,
                                 const Dropout* drop, uint64_t site_key, uint64_t first) {
    // scores against the keys, shifted by their max for a stable softmax
    float maxval = -INFINITY;
    for (int j = 0; j < n; j++) {
        const float* k = keys + (size_t)j * stride;
        float s = 0.0f;
        for (int i = 0; i < hs; i++) { s += q[i] * k[i]; }
        s *= scale;
        a[j] = s;
        if (s > maxval) { maxval = s; }
    }
    float sum = 0.0f;
    for (int j = 0; j < n; j++) { a[j] = expf(a[j] - maxval); sum += a[j]; }
    float inv = 1.0f / sum;
    for (int j = 0; j < n; j++) { a[j] *= inv; }
    // out = att @ v
    for (int i = 0; i < hs; i++) { o[i] = 0.0f; }
    for (int j = 0; j < n; j++) {
        const float* v = values + (size_t)j * stride;
        float w = a[j];
        if (drop != NULL) {
            w = dropout_keep(site_key, first + (uint64_t)j, drop->threshold) ? w * drop->scale
                                                                             : 0.0f;
        }
        for (int i = 0; i < hs; i++) { o[i] += w * v[i]; }
    }
}

static void attention_forward(float* out, float* att, const float* qkv, int B, int T, int C,
                              int NH, const Dropout* drop, int site) {
    // out (B,T,C) the heads' outputs side by side, att (B,NH,T,T) probabilities (0 above the
    // diagonal; before dropout), qkv (B,T,3C): position t of head h reads q at channel h*hs, k at
    // C + h*hs, v at 2C + h*hs. drop: dropout on the probabilities at `site`, or NULL.
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    uint64_t site_key = drop != NULL ? stream_key(drop->key, (uint64_t)site) : 0;
    #pragma omp parallel for collapse(3)
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            for (int h = 0; h < NH; h++) {
                const float* row0 = qkv + (size_t)b * T * 3 * C; // position 0 of sequence b
                float* a = att + (((size_t)b * NH + h) * T + t) * T;
                // causal: keys and values of positions 0..t
                attention_row(out + ((size_t)b * T + t) * C + h * hs, a,
                              row0 + (size_t)t * 3 * C + h * hs, row0 + C + h * hs,
                              row0 + 2 * C + h * hs, 3 * (size_t)C, t + 1, hs, scale, drop,
                              site_key, (((size_t)b * NH + h) * T + t) * T);
                for (int t2 = t + 1; t2 < T; t2++) { a[t2] = 0.0f; }
            }
        }
    }
}

static void attention_backward(float* dqkv, float* drow, const float* dout, const float* qkv,
                               const float* att, int B, int T, int C, int NH, const Dropout* drop,
                               int site) {
    // dqkv (B,T,3C) overwritten, drow (B*NH,T) scratch, dout (B,T,C), att (B,NH,T,T)
    // forward, per (b,h,t):  s[t2] = scale * q[t].k[t2];  a = softmax(s);  o[t] = sum a[t2] v[t2]
    //   dv[t2] += a[t2] * do[t]              da[t2] = do[t].v[t2]
    //   ds[t2] = a[t2] * (da[t2] - sum_j a[j] da[j])          (softmax backward)
    //   dq[t] += scale * sum_t2 ds[t2] k[t2]    dk[t2] += scale * ds[t2] q[t]
    // With dropout o[t] = sum a'[t2] v[t2], a' = a * mask / (1-p): dv takes a', and
    // da[t2] = (do[t].v[t2]) * mask / (1-p) is the gradient of a (the mask's backward).
    // A (b,h) pair owns its head's channels of q, k and v, so threads split over (b,h): no races.
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    uint64_t site_key = drop != NULL ? stream_key(drop->key, (uint64_t)site) : 0;
    #pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            float* da = drow + ((size_t)b * NH + h) * T;
            for (int t = 0; t < T; t++) {
                float* g = dqkv + ((size_t)b * T + t) * 3 * C + h * hs;
                for (int i = 0; i < hs; i++) { g[i] = 0.0f; g[C + i] = 0.0f; g[2 * C + i] = 0.0f; }
            }
            for (int t = 0; t < T; t++) {
                const float* a = att + (((size_t)b * NH + h) * T + t) * T;
                const float* d = dout + ((size_t)b * T + t) * C + h * hs;
                const float* q = qkv + ((size_t)b * T + t) * 3 * C + h * hs;
                float* dq = dqkv + ((size_t)b * T + t) * 3 * C + h * hs;
                float dot = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float* v = qkv + ((size_t)b * T + t2) * 3 * C + 2 * C + h * hs;
                    float* dv = dqkv + ((size_t)b * T + t2) * 3 * C + 2 * C + h * hs;
                    float f = 1.0f; // dropout's factor of a[t2]: 1/(1-p) kept, 0 dropped
                    if (drop != NULL) {
                        size_t e = (((size_t)b * NH + h) * T + t) * T + t2;
                        f = dropout_keep(site_key, e, drop->threshold) ? drop->scale : 0.0f;
                    }
                    float w = a[t2] * f, s = 0.0f;
                    for (int i = 0; i < hs; i++) { s += d[i] * v[i]; dv[i] += w * d[i]; }
                    s *= f;
                    da[t2] = s;
                    dot += a[t2] * s;
                }
                for (int t2 = 0; t2 <= t; t2++) {
                    const float* k = qkv + ((size_t)b * T + t2) * 3 * C + C + h * hs;
                    float* dk = dqkv + ((size_t)b * T + t2) * 3 * C + C + h * hs;
                    float ds = scale * a[t2] * (da[t2] - dot);
                    for (int i = 0; i < hs; i++) { dq[i] += ds * k[i]; dk[i] += ds * q[i]; }
                }
            }
        }
    }
}

// --- gelu, tanh approximation (Hendrycks & Gimpel, "Gaussian Error Linear Units", eq. 2)
//   y = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
// Since 1 + tanh(u) = 2 sigmoid(2u), this is y = x * s with s = 1 / (1 + exp(-2u)): the same
// function without tanh's cancellation near -1, and with an exp that vectorizes (exp_fast,
// gptc/vecmath.h), where the C library's tanhf is a scalar call.

#define GELU_SCALE 0.7978845608028654f // sqrt(2/pi)

static void gelu_forward(float* out, const float* inp, size_t N) {
    #pragma omp parallel for simd
    for (size_t i = 0; i < N; i++) {
        float x = inp[i];
        float u = GELU_SCALE * (x + 0.044715f * x * x * x);
        out[i] = x / (1.0f + exp_fast(-2.0f * u));
    }
}

static void gelu_backward(float* dinp, const float* inp, const float* dout, size_t N) {
    // y = x s, s = sigmoid(2u):  dy/dx = s + x * ds/dx = s + 2 x s (1 - s) du/dx,
    // du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2). (dinp may alias dout: read before written.)
    #pragma omp parallel for simd
    for (size_t i = 0; i < N; i++) {
        float x = inp[i];
        float u = GELU_SCALE * (x + 0.044715f * x * x * x);
        float s = 1.0f / (1.0f + exp_fast(-2.0f * u));
        float du = GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] = dout[i] * (s + 2.0f * x * s * (1.0f - s) * du);
    }
}

// --- residual: out = a + b (its backward is the identity for both inputs: no function needed)

static void residual_forward(float* out, const float* a, const float* b, size_t N) {
    #pragma omp parallel for
    for (size_t i = 0; i < N; i++) { out[i] = a[i] + b[i]; }
}

// --- softmax + cross-entropy, fused: loss = logsumexp(logits) - logits[target]

static void crossentropy_forward(float* losses, float* lse, const float* logits,
                                 const int* targets, int N, int V, int Vp) {
    // losses (N), lse (N) log-sum-exp kept for the backward, logits (N,Vp): V real columns, then
    // padding. A target < 0 (IGNORED_TARGET: not counted) has loss 0. The sums are vectorized
    // (omp simd) in an order the compiler fixes, so the results are the same run to run.
    #pragma omp parallel for
    for (int i = 0; i < N; i++) {
        const float* l = logits + (size_t)i * Vp;
        float maxval = -INFINITY;
        #pragma omp simd reduction(max:maxval)
        for (int v = 0; v < V; v++) { maxval = l[v] > maxval ? l[v] : maxval; }
        float sum = 0.0f;
        #pragma omp simd reduction(+:sum)
        for (int v = 0; v < V; v++) { sum += exp_fast(l[v] - maxval); }
        lse[i] = maxval + logf(sum);
        losses[i] = targets[i] < 0 ? 0.0f : lse[i] - l[targets[i]];
    }
}

static void crossentropy_backward(float* dlogits, const float* logits, const float* lse,
                                  const int* targets, float dloss, int N, int V, int Vp) {
    // d loss_i / d logits[i,v] = softmax(logits)[v] - [v == target]; each loss_i enters the mean
    // with weight dloss (an uncounted one with 0). dlogits may alias logits (each element read
    // before written). Padded columns get 0: the padded rows of wte get no gradient from the head.
    #pragma omp parallel for
    for (int i = 0; i < N; i++) {
        const float* l = logits + (size_t)i * Vp;
        float* dl = dlogits + (size_t)i * Vp;
        float m = lse[i], w = targets[i] < 0 ? 0.0f : dloss;
        #pragma omp simd
        for (int v = 0; v < V; v++) { dl[v] = exp_fast(l[v] - m) * w; }
        if (targets[i] >= 0) { dl[targets[i]] -= w; }
        for (int v = V; v < Vp; v++) { dl[v] = 0.0f; }
    }
}

// ----------------------------------------------------------------------------------------------
// 2. The model: its config, the parameter table, the activations

typedef struct {
    int max_seq_len;       // maxT
    int vocab_size;        // V
    int padded_vocab_size; // Vp: V rounded up to a multiple of 128 (faster matmuls; extra rows 0)
    int num_layers;        // L
    int num_heads;         // NH
    int channels;          // C
} GPTConfig;

// The parameter table: names, shapes, init and weight decay, in file order. Everything about
// parameters (struct fields, sizes, pointers, init, decay, checkpoint order) is generated from it:
// an "X-macro", expanded once per use with X defined as the line each row should become.
// (data/safetensors.h keeps a table of its own, Hugging Face's names and layout for these tensors,
// so that it stands alone; dev/test_safetensors.c fails when the two disagree.)
enum { INIT_ZEROS, INIT_ONES, INIT_NORMAL, INIT_RESIDUAL };
//   name      shape (unused dims 1)      init           decay
#define GPT_PARAMETERS(X)                                          \
    X(wte,      Vp,   C,     1,     INIT_NORMAL,   1)              \
    X(wpe,      maxT, C,     1,     INIT_NORMAL,   1)              \
    X(ln1w,     L,    C,     1,     INIT_ONES,     0)              \
    X(ln1b,     L,    C,     1,     INIT_ZEROS,    0)              \
    X(qkvw,     L,    3 * C, C,     INIT_NORMAL,   1)              \
    X(qkvb,     L,    3 * C, 1,     INIT_ZEROS,    0)              \
    X(attprojw, L,    C,     C,     INIT_RESIDUAL, 1)              \
    X(attprojb, L,    C,     1,     INIT_ZEROS,    0)              \
    X(ln2w,     L,    C,     1,     INIT_ONES,     0)              \
    X(ln2b,     L,    C,     1,     INIT_ZEROS,    0)              \
    X(fcw,      L,    4 * C, C,     INIT_NORMAL,   1)              \
    X(fcb,      L,    4 * C, 1,     INIT_ZEROS,    0)              \
    X(fcprojw,  L,    C,     4 * C, INIT_RESIDUAL, 1)              \
    X(fcprojb,  L,    C,     1,     INIT_ZEROS,    0)              \
    X(lnfw,     C,    1,     1,     INIT_ONES,     0)              \
    X(lnfb,     C,    1,     1,     INIT_ZEROS,    0)

#define X_FIELD(name, d0, d1, d2, init, decay) float* name;
typedef struct { GPT_PARAMETERS(X_FIELD) } ParameterTensors;
#define X_COUNT(name, d0, d1, d2, init, decay) +1
enum { NUM_PARAMETER_TENSORS = 0 GPT_PARAMETERS(X_COUNT) };

typedef struct {
    const char* name;
    size_t dims[3];
    size_t size;               // dims[0] * dims[1] * dims[2]
    size_t offset;             // where the tensor starts in the flat parameters
    int init, decay;
} ParamSpec;

// Fills the table for a config; returns the parameter count. Sizes from a file header go through
// checked_mul / checked_add (config_validate's bounds keep them far from overflow; this is where
// every size is computed).
static size_t param_specs(ParamSpec* specs, const GPTConfig* cfg) {
    size_t Vp = (size_t)cfg->padded_vocab_size, C = (size_t)cfg->channels;
    size_t L = (size_t)cfg->num_layers, maxT = (size_t)cfg->max_seq_len, total = 0;
    ParamSpec* p = specs;
#define X_SPEC(name_, d0, d1, d2, init_, decay_)                                                   \
    p->name = #name_; p->dims[0] = (d0); p->dims[1] = (d1); p->dims[2] = (d2);                    \
    p->size = checked_mul(checked_mul(d0, d1, "parameter " #name_), d2, "parameter " #name_);     \
    p->init = init_; p->decay = decay_; p->offset = total;                                        \
    total = checked_add(total, p->size, "parameter count"); p++;
    GPT_PARAMETERS(X_SPEC)
#undef X_SPEC
    return total;
}

// points each named tensor at its slice of one contiguous block
static void param_pointers(ParameterTensors* t, float* memory, const ParamSpec* specs) {
    int k = 0;
#define X_PTR(name, d0, d1, d2, init, decay) t->name = memory + specs[k++].offset;
    GPT_PARAMETERS(X_PTR)
#undef X_PTR
}

// Layer l's slice of each per-layer tensor of a parameter (or gradient) table P, C channels: the
// initializer of a LayerParams (float) or of train_gpt.cu's LayerParamsX (its low-precision copy).
#define LAYER_SLICES(P, l, C)                                                                      \
    {(P).ln1w + (size_t)(l) * (C), (P).ln1b + (size_t)(l) * (C),                                  \
     (P).qkvw + (size_t)(l) * 3 * (C) * (C), (P).qkvb + (size_t)(l) * 3 * (C),                     \
     (P).attprojw + (size_t)(l) * (C) * (C), (P).attprojb + (size_t)(l) * (C),                     \
     (P).ln2w + (size_t)(l) * (C), (P).ln2b + (size_t)(l) * (C),                                  \
     (P).fcw + (size_t)(l) * 4 * (C) * (C), (P).fcb + (size_t)(l) * 4 * (C),                       \
     (P).fcprojw + (size_t)(l) * 4 * (C) * (C), (P).fcprojb + (size_t)(l) * (C)}
typedef struct { // shapes: GPT_PARAMETERS' without the L
    float *ln1w, *ln1b, *qkvw, *qkvb, *attprojw, *attprojb;
    float *ln2w, *ln2b, *fcw, *fcb, *fcprojw, *fcprojb;
} LayerParams;

// The activations of one forward pass, sized for (B,T): names (llm.c's) and element counts.
// Per-layer tensors are stacked over L.
#define GPT_ACTIVATIONS(X)            \
    X(encoded,   B * T * C)           /* wte[token] + wpe[position]: the residual stream */ \
    X(ln1,       L * B * T * C)       /* layernorm 1's output (and its per-row mean, 1/std) */ \
    X(ln1_mean,  L * B * T)           \
    X(ln1_rstd,  L * B * T)           \
    X(qkv,       L * B * T * 3 * C)   /* queries, keys, values */ \
    X(att,       L * B * NH * T * T)  /* attention probabilities (before dropout) */ \
    X(atty,      L * B * T * C)       /* attention's output y = att . v, heads side by side */ \
    X(attproj,   L * B * T * C)       /* y's projection: the attention branch */ \
    X(residual2, L * B * T * C)       /* the stream after the attention's add */ \
    X(ln2,       L * B * T * C)       \
    X(ln2_mean,  L * B * T)           \
    X(ln2_rstd,  L * B * T)           \
    X(fch,       L * B * T * 4 * C)   /* the MLP's hidden layer ("fc h"), before GELU */ \
    X(fch_gelu,  L * B * T * 4 * C)   /* and after */ \
    X(fcproj,    L * B * T * C)       /* the MLP branch */ \
    X(residual3, L * B * T * C)       /* the stream after the MLP's add: the block's output */ \
    X(lnf,       B * T * C)           /* the final layernorm */ \
    X(lnf_mean,  B * T)               \
    X(lnf_rstd,  B * T)               \
    X(logits,    B * T * Vp)          \
    X(losses,    B * T)               /* -log p(target) per position */ \
    X(lse,       B * T)               /* log-sum-exp of each row of logits (for the backward) */

// The backward needs only a few activation-gradient buffers, reused layer after layer.
#define GPT_BACKWARD_SCRATCH(X)       \
    X(dresidual, B * T * C)  /* gradient of the residual stream */   \
    X(dx,        B * T * C)  /* d of a layernorm output / attention output */ \
    X(dqkv,      B * T * 3 * C)       \
    X(dfch,      B * T * 4 * C)       \
    X(drow,      B * NH * T) /* attention backward: one row of d(probabilities) per (b,h) */ \
    X(dbranch,   B * T * C)  /* a residual branch's gradient through its dropout mask */

#define X_ACT_FIELD(name, n) float* name;
typedef struct { GPT_ACTIVATIONS(X_ACT_FIELD) } ActivationTensors;
typedef struct { GPT_BACKWARD_SCRATCH(X_ACT_FIELD) } BackwardScratch;

// sizes each buffer for (B,T) and points it into `memory`, or just counts when memory is NULL
#define X_ACT_CARVE(name, n) t->name = memory != NULL ? memory + total : NULL; total += (size_t)(n);
static size_t activation_pointers(ActivationTensors* t, float* memory, const GPTConfig* cfg,
                                  size_t B, size_t T) {
    size_t C = cfg->channels, L = cfg->num_layers, NH = cfg->num_heads, Vp = cfg->padded_vocab_size;
    size_t total = 0;
    GPT_ACTIVATIONS(X_ACT_CARVE)
    return total;
}
static size_t scratch_pointers(BackwardScratch* t, float* memory, const GPTConfig* cfg,
                               size_t B, size_t T) {
    size_t C = cfg->channels, NH = cfg->num_heads, total = 0;
    GPT_BACKWARD_SCRATCH(X_ACT_CARVE)
    return total;
}
#undef X_ACT_CARVE

typedef struct {
    GPTConfig config;
    ParamSpec specs[NUM_PARAMETER_TENSORS];
    size_t num_parameters;
    ParameterTensors params;   float* params_memory;
    ParameterTensors grads;    float* grads_memory;   // allocated at the first backward
    float* m_memory;           float* v_memory;       // AdamW moments, at the first update
    ActivationTensors acts;    float* acts_memory;    // allocated at the first forward
    BackwardScratch scratch;   float* scratch_memory; // allocated at the first backward
    int alloc_B, alloc_T, B, T; // the (B,T) the activations were sized for, the last forward's
    int* inputs;  int* targets; // (alloc_B, alloc_T) copies of the last forward's batch
    int has_targets;
    // data parallelism (gptc/comm.h): this rank's AdamW state covers the flat parameters
    // [shard_begin, shard_end): all of them, or with ZeRO-1 (zero = 1) its shard
    int zero; size_t shard_begin, shard_end;
    // dropout: what the next forwards apply (set by the training loop for each micro-batch; off in
    // validation and generation); fwd_dropout: the last forward's, whose masks its backward uses
    Dropout dropout, fwd_dropout;
    float* kv_memory;          // gpt_decode: keys and values (2, L, maxT, C), one position's acts
    void* device;              // the backend's own state (train_gpt.cu: the model on the GPU)
} GPT;

// A config from a source we did not write (a file header, a descriptor): every size in range
// (gptc/utils.h: the limits and their reasons), so that no size computed from them overflows.
static void config_validate(const GPTConfig* c, const char* where) {
    check_model_sizes(c->max_seq_len, c->vocab_size, c->num_layers, c->num_heads, c->channels,
                      c->padded_vocab_size, where);
}

// The parameter table and count of a validated config; the weights are not allocated yet, so a
// loader can compare the size a header implies with the file's real size first.
static void gpt_setup_table(GPT* model, const GPTConfig* cfg) {
    memset(model, 0, sizeof(*model));
    model->config = *cfg;
    model->num_parameters = param_specs(model->specs, cfg);
    model->shard_begin = 0; model->shard_end = model->num_parameters; // gpt_set_zero narrows it
}

// the table, then one block for the weights
static void gpt_setup(GPT* model, const GPTConfig* cfg) {
    gpt_setup_table(model, cfg);
    size_t bytes = checked_mul(model->num_parameters, sizeof(float), "weights");
    model->params_memory = (float*)malloc_or_die(bytes);
    param_pointers(&model->params, model->params_memory, model->specs);
}

// ----------------------------------------------------------------------------------------------
// 3. Building a model: a descriptor and a fresh init, a model file, a Hugging Face checkpoint

// fresh weights from the counter-based generator (gptc/rand.h specifies the numerics)
static void gpt_init_weights(GPT* model, uint64_t seed) {
    const GPTConfig* cfg = &model->config;
    float* p = model->params_memory;
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        const ParamSpec* s = &model->specs[k];
        size_t n = s->size;
        if (s->init == INIT_ZEROS || s->init == INIT_ONES) {
            float value = s->init == INIT_ONES ? 1.0f : 0.0f;
            for (size_t i = 0; i < n; i++) { p[i] = value; }
        } else {
            double std = 0.02;
            if (s->init == INIT_RESIDUAL) { std = 0.02 / sqrt(2.0 * cfg->num_layers); }
            // wte: only the V real rows are random; the padding rows stay 0
            size_t nrand = k == 0 ? (size_t)cfg->vocab_size * cfg->channels : n;
            uint64_t key = stream_key(seed, (uint64_t)k);
            #pragma omp parallel for
            for (size_t i = 0; i < nrand; i++) { p[i] = normal_at(key, i, std); }
            for (size_t i = nrand; i < n; i++) { p[i] = 0.0f; }
        }
        p += n;
    }
}

// -e d12, -e L4H4C256 ...: the config of a descriptor (gptc/cli.h); NULL, or what is wrong with it
static const char* config_from_descriptor(GPTConfig* cfg, const char* desc) {
    int s[5] = {0}; // maxT, V, L, NH, C
    const char* why = parse_descriptor(desc, s);
    GPTConfig c = {s[0], s[1], ((s[1] + 127) / 128) * 128, s[2], s[3], s[4]};
    if (why == NULL) { *cfg = c; }
    return why;
}

static void gpt_build_from_descriptor(GPT* model, const char* desc, uint64_t seed) {
    GPTConfig cfg;
    const char* why = config_from_descriptor(&cfg, desc);
    if (why != NULL) {
        die("-e %s: not a model file and not a descriptor (%s; use d12, d24, ... or e.g. "
            "L4H4C256T1024V50257)", desc, why);
    }
    char where[4200];
    snprintf(where, sizeof(where), "-e %s", desc);
    config_validate(&cfg, where);
    gpt_setup(model, &cfg);
    gpt_init_weights(model, seed);
}

// the name of the parameter tensor that holds element i of the flat parameters (a TensorName)
static const char* param_name_at(const void* model, size_t i) {
    const ParamSpec* specs = ((const GPT*)model)->specs;
    int k = NUM_PARAMETER_TENSORS - 1;
    while (k > 0 && i < specs[k].offset) { k--; }
    return specs[k].name;
}

// A model file (gptc/checkpoint.h: llm.c's layout, a header with the config, then the weights)
static void gpt_build_from_checkpoint(GPT* model, const char* path) {
    long fsize;
    int h[6]; // maxT, V, L, NH, C, Vp
    FILE* f = model_file_open(path, h, &fsize);
    GPTConfig cfg = {h[0], h[1], h[5], h[2], h[3], h[4]};
    config_validate(&cfg, path);
    gpt_setup_table(model, &cfg); // the size the header implies, before anything is allocated
    size_t bytes = checked_mul(model->num_parameters, sizeof(float), path);
    bytes = checked_add(MODEL_HEADER_BYTES, bytes, path);
    if ((size_t)fsize != bytes) {
        die("%s: model file is %ld bytes, expected %zu for this config (truncated or wrong file)",
            path, fsize, bytes);
    }
    gpt_setup(model, &cfg);
    model_file_read(f, path, model->params_memory, model->num_parameters, param_name_at, model);
}

static void gpt_write_model(const GPT* model, const char* path) {
    const GPTConfig* c = &model->config;
    int h[6] = {c->max_seq_len, c->vocab_size, c->num_layers, c->num_heads, c->channels,
                c->padded_vocab_size};
    model_file_write(path, h, model->params_memory, model->num_parameters);
}

// the parameters a Hugging Face checkpoint stores: ours less wte's padding rows V..Vp-1
static size_t gpt_stored_parameters(const GPT* model) {
    const GPTConfig* c = &model->config;
    return model->num_parameters - (size_t)(c->padded_vocab_size - c->vocab_size) * c->channels;
}

// A Hugging Face GPT-2 checkpoint (data/safetensors.h): a .safetensors file (with the config.json
// beside it) or a directory holding model.safetensors + config.json
static void gpt_build_from_safetensors(GPT* model, const char* path) {
    HfGpt2Config hc;
    hf_gpt2_read_config(path, &hc);
    GPTConfig cfg = {hc.maxT, hc.V, ((hc.V + 127) / 128) * 128, hc.L, hc.NH, hc.C};
    config_validate(&cfg, path);
    gpt_setup_table(model, &cfg);
    hf_gpt2_check_size(path, &hc, gpt_stored_parameters(model)); // before the weights are allocated
    gpt_setup(model, &cfg);
    hf_gpt2_load(path, &hc, model->params_memory, cfg.padded_vocab_size);
}

// -e: a Hugging Face GPT-2 checkpoint, a model file (ours, llm.c's), or a descriptor (fresh weights
// from the seed)
static void gpt_build(GPT* model, const char* init, uint64_t seed) {
    struct stat sb;
    if (hf_gpt2_is_path(init)) { gpt_build_from_safetensors(model, init); }
    else if (stat(init, &sb) == 0) { gpt_build_from_checkpoint(model, init); }
    else if (strchr(init, '/') != NULL || strstr(init, ".bin") != NULL) {
        die("-e %s: model file not found", init);
    } else { gpt_build_from_descriptor(model, init, seed); }
}

// ----------------------------------------------------------------------------------------------
// 4. Forward, backward, AdamW

// (B,T) must fit the model (T <= maxT) and the activations' size: the table's products in double
// first (no overflow), bounded so that activation_pointers' size_t arithmetic is exact.
#define X_ACT_DOUBLE(name, n) total += (double)(n);
static void activation_size_check(const GPTConfig* cfg, int B_, int T_) {
    double B = B_, T = T_, C = cfg->channels, L = cfg->num_layers, NH = cfg->num_heads;
    double Vp = cfg->padded_vocab_size;
    if (T_ > cfg->max_seq_len) {
        die("-t %d: exceeds the model's maximum sequence length %d", T_, cfg->max_seq_len);
    }
    if (B * T > (double)MAX_MICRO_BATCH_TOKENS) {
        die("-b %d -t %d: %.0f tokens per micro-batch is more than the limit %ld", B_, T_, B * T,
            MAX_MICRO_BATCH_TOKENS);
    }
    double total = 0.0;
    GPT_ACTIVATIONS(X_ACT_DOUBLE)
    if (total * sizeof(float) > 0.25 * (double)SIZE_MAX) {
        die("-b %d -t %d: the activations would need %.3g bytes", B_, T_, total * sizeof(float));
    }
}
#undef X_ACT_DOUBLE

static void gpt_allocate_activations(GPT* model, int B, int T) {
    const GPTConfig* cfg = &model->config;
    if (model->acts_memory == NULL) {
        activation_size_check(cfg, B, T);
        size_t n = activation_pointers(&model->acts, NULL, cfg, (size_t)B, (size_t)T);
        model->acts_memory = (float*)malloc_or_die(n * sizeof(float));
        model->alloc_B = B; model->alloc_T = T;
        model->inputs = (int*)malloc_or_die((size_t)B * T * sizeof(int));
        model->targets = (int*)malloc_or_die((size_t)B * T * sizeof(int));
    } else if (B > model->alloc_B || T > model->alloc_T) {
        die("batch (B=%d, T=%d) is larger than the (B=%d, T=%d) the activations were allocated for",
            B, T, model->alloc_B, model->alloc_T);
    }
    // a smaller (B,T) (sampling) re-carves the same block with its own layout
    activation_pointers(&model->acts, model->acts_memory, cfg, (size_t)B, (size_t)T);
}

// a batch the model can take: T within its context, every token in its vocabulary
static void gpt_check_batch(const GPTConfig* cfg, const int* inputs, const int* targets, int B,
                            int T) {
    if (T > cfg->max_seq_len) {
        die("sequence length T=%d exceeds the model's maxT=%d", T, cfg->max_seq_len);
    }
    check_tokens(inputs, targets, (size_t)B * T, cfg->vocab_size);
}

// The activations of one transformer block: layer l's slices of the forward's tensors. N = B*T.
typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd;   // (N,C), (N), (N)
    float *qkv;                         // (N,3C)
    float *att;                         // (B,NH,T,T) attention probabilities (decode: one row)
    float *atty, *attproj, *residual2;  // (N,C) each
    float *ln2, *ln2_mean, *ln2_rstd;   // (N,C), (N), (N)
    float *fch, *fch_gelu;              // (N,4C) each
    float *fcproj, *residual3;          // (N,C) each
} LayerActs;

static LayerActs layer_acts(const ActivationTensors* a, int l, size_t B, size_t T,
                            const GPTConfig* cfg) {
    size_t BT = B * T, C = (size_t)cfg->channels, NH = (size_t)cfg->num_heads;
    LayerActs la = {a->ln1 + l * BT * C, a->ln1_mean + l * BT, a->ln1_rstd + l * BT,
                    a->qkv + l * BT * 3 * C, a->att + l * BT * NH * T,
                    a->atty + l * BT * C, a->attproj + l * BT * C, a->residual2 + l * BT * C,
                    a->ln2 + l * BT * C, a->ln2_mean + l * BT, a->ln2_rstd + l * BT,
                    a->fch + l * BT * 4 * C, a->fch_gelu + l * BT * 4 * C,
                    a->fcproj + l * BT * C, a->residual3 + l * BT * C};
    return la;
}

// One transformer block (GPT-2's pre-LayerNorm block) over N = B*T rows of the residual stream x:
//   residual2 = x + dropout(attproj(attention(ln1(x))))
//   residual3 = residual2 + dropout(fcproj(gelu(fc(ln2(residual2)))))
// pos < 0: the training forward; pos >= 0: generation, one row at position pos (KV cache).
static void block_forward(GPT* model, int l, const LayerActs* a, const float* x, int B, int T,
                          const Dropout* drop, int pos) {
    const GPTConfig* cfg = &model->config;
    int C = cfg->channels, N = B * T;
    LayerParams w = LAYER_SLICES(model->params, l, (size_t)C);
    layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x, w.ln1w, w.ln1b, N, C);
    matmul_forward(a->qkv, a->ln1, w.qkvw, w.qkvb, N, C, 3 * C);
    if (pos < 0) {
        attention_forward(a->atty, a->att, a->qkv, B, T, C, cfg->num_heads, drop, 1 + 3 * l);
    } else { // generation: this position's key and value join the KV cache, then
             // attention_forward's row pos over positions 0..pos (the same bits)
        int maxT = cfg->max_seq_len, hs = C / cfg->num_heads;
        float* keys = model->kv_memory + (size_t)l * maxT * C;                       // (L, maxT, C)
        float* values = model->kv_memory + ((size_t)cfg->num_layers + l) * maxT * C; // (L, maxT, C)
        memcpy(keys + (size_t)pos * C, a->qkv + C, (size_t)C * sizeof(float));
        memcpy(values + (size_t)pos * C, a->qkv + 2 * C, (size_t)C * sizeof(float));
        for (int h = 0; h < cfg->num_heads; h++) {
            attention_row(a->atty + h * hs, a->att, a->qkv + h * hs, keys + h * hs, values + h * hs,
                          (size_t)C, pos + 1, hs, 1.0f / sqrtf((float)hs), NULL, 0, 0);
        }
    }
    matmul_forward(a->attproj, a->atty, w.attprojw, w.attprojb, N, C, C);
    if (drop != NULL) { dropout_mask(a->attproj, a->attproj, (size_t)N * C, drop, 2 + 3 * l); }
    residual_forward(a->residual2, x, a->attproj, (size_t)N * C);
    layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->residual2, w.ln2w, w.ln2b, N, C);
    matmul_forward(a->fch, a->ln2, w.fcw, w.fcb, N, C, 4 * C);
    gelu_forward(a->fch_gelu, a->fch, (size_t)N * 4 * C);
    matmul_forward(a->fcproj, a->fch_gelu, w.fcprojw, w.fcprojb, N, 4 * C, C);
    if (drop != NULL) { dropout_mask(a->fcproj, a->fcproj, (size_t)N * C, drop, 3 + 3 * l); }
    residual_forward(a->residual3, a->residual2, a->fcproj, (size_t)N * C);
}

// The network above the embeddings a->encoded (B,T): every block, the final layernorm, the lm head
// (tied to wte) into a->logits. pos >= 0: generation at position pos, attention row att (maxT).
static void gpt_blocks(GPT* model, const ActivationTensors* a, int B, int T, const Dropout* drop,
                       int pos, float* att) {
    const GPTConfig* cfg = &model->config;
    int L = cfg->num_layers, C = cfg->channels, BT = B * T;
    for (int l = 0; l < L; l++) {
        LayerActs la = layer_acts(a, l, (size_t)B, (size_t)T, cfg);
        if (pos >= 0) { la.att = att; }
        const float* x = l == 0 ? a->encoded : a->residual3 + (size_t)(l - 1) * BT * C;
        block_forward(model, l, &la, x, B, T, drop, pos);
    }
    const float* last = a->residual3 + (size_t)(L - 1) * BT * C;
    const ParameterTensors* p = &model->params;
    layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, last, p->lnfw, p->lnfb, BT, C);
    matmul_forward(a->logits, a->lnf, p->wte, NULL, BT, C, cfg->padded_vocab_size);
}

// Runs the model on inputs (B,T); with targets (B,T) returns the loss (sum / (B*T)), else -1.
static float gpt_forward(GPT* model, const int* inputs, const int* targets, int B, int T) {
    const GPTConfig* cfg = &model->config;
    gpt_check_batch(cfg, inputs, targets, B, T);
    gpt_allocate_activations(model, B, T);
    model->B = B; model->T = T;
    memcpy(model->inputs, inputs, (size_t)B * T * sizeof(int));
    model->has_targets = targets != NULL;
    if (targets != NULL) { memcpy(model->targets, targets, (size_t)B * T * sizeof(int)); }
    ActivationTensors a = model->acts;
    size_t BT = (size_t)B * T;
    model->fwd_dropout = model->dropout; // its backward uses these masks
    const Dropout* drop = model->dropout.threshold > 0 ? &model->fwd_dropout : NULL;

    encoder_forward(a.encoded, inputs, model->params.wte, model->params.wpe, B, T, cfg->channels);
    if (drop != NULL) { dropout_mask(a.encoded, a.encoded, BT * cfg->channels, drop, 0); }
    gpt_blocks(model, &a, B, T, drop, -1, NULL);
    if (targets == NULL) { return -1.0f; }
    crossentropy_forward(a.losses, a.lse, a.logits, targets, (int)BT, cfg->vocab_size,
                         cfg->padded_vocab_size);
    double sum = 0.0;
    for (size_t i = 0; i < BT; i++) { sum += a.losses[i]; }
    return (float)(sum / (double)BT);
}

// Generation, one position at a time: the forward of position pos alone, with the keys and values
// of positions 0..pos-1 kept from the calls before (the "KV cache"), so a new token costs one
// position's forward, not the whole window's. Positions come in order 0, 1, 2, ... (0 starts a new
// sequence). The arithmetic is gpt_forward's row pos: the logits are its bits (test_gpt checks).
// Returns the (Vp) logits of position pos (valid until the next call).
static const float* gpt_decode(GPT* model, int token, int pos) {
    const GPTConfig* cfg = &model->config;
    int C = cfg->channels, maxT = cfg->max_seq_len;
    if (pos < 0 || pos >= maxT) {
        die("gpt_decode: position %d outside the context [0, %d)", pos, maxT);
    }
    if (token < 0 || token >= cfg->vocab_size) {
        die("gpt_decode: token %d outside [0, %d)", token, cfg->vocab_size);
    }
    // the keys and the values (2, L, maxT, C), one position's activations, one row of attention
    size_t cache = 2 * (size_t)cfg->num_layers * maxT * C;
    ActivationTensors a;
    size_t n = activation_pointers(&a, NULL, cfg, 1, 1);
    if (model->kv_memory == NULL) {
        model->kv_memory = (float*)malloc_or_die((cache + n + (size_t)maxT) * sizeof(float));
    }
    activation_pointers(&a, model->kv_memory + cache, cfg, 1, 1);
    const float* te = model->params.wte + (size_t)token * C;
    const float* pe = model->params.wpe + (size_t)pos * C;
    for (int c = 0; c < C; c++) { a.encoded[c] = te[c] + pe[c]; }
    gpt_blocks(model, &a, 1, 1, NULL, pos, model->kv_memory + cache + n);
    return a.logits;
}

// The backward of block_forward: on entry scratch.dresidual holds d(residual3); on return d(x).
static void block_backward(GPT* model, int l, const LayerActs* a, const float* x,
                           const Dropout* drop) {
    int C = model->config.channels, N = model->B * model->T;
    LayerParams w = LAYER_SLICES(model->params, l, (size_t)C);
    LayerParams g = LAYER_SLICES(model->grads, l, (size_t)C);
    BackwardScratch s = model->scratch;
    // residual3 = residual2 + fcproj: dresidual is d(residual2) and d(fcproj) alike, the latter
    // through fcproj's dropout mask
    const float* dbranch = drop != NULL ? s.dbranch : s.dresidual;
    if (drop != NULL) { dropout_mask(s.dbranch, s.dresidual, (size_t)N * C, drop, 3 + 3 * l); }
    // fcproj = fch_gelu @ fcprojw^T + fcprojb
    matmul_backward(s.dfch, g.fcprojw, g.fcprojb, dbranch, a->fch_gelu, w.fcprojw, N, 4 * C, C);
    // fch_gelu = gelu(fch)
    gelu_backward(s.dfch, a->fch, s.dfch, (size_t)N * 4 * C);
    // fch = ln2 @ fcw^T + fcb
    matmul_backward(s.dx, g.fcw, g.fcb, s.dfch, a->ln2, w.fcw, N, C, 4 * C);
    // ln2 = layernorm(residual2): adds into d(residual2)
    layernorm_backward(s.dresidual, g.ln2w, g.ln2b, s.dx, a->residual2, w.ln2w, a->ln2_mean,
                       a->ln2_rstd, N, C);
    // residual2 = x + attproj: dresidual is d(x) and d(attproj) alike (attproj's dropout: as above)
    if (drop != NULL) { dropout_mask(s.dbranch, s.dresidual, (size_t)N * C, drop, 2 + 3 * l); }
    // attproj = atty @ attprojw^T + attprojb
    matmul_backward(s.dx, g.attprojw, g.attprojb, dbranch, a->atty, w.attprojw, N, C, C);
    // atty = attention(qkv)
    attention_backward(s.dqkv, s.drow, s.dx, a->qkv, a->att, model->B, model->T, C,
                       model->config.num_heads, drop, 1 + 3 * l);
    // qkv = ln1 @ qkvw^T + qkvb
    matmul_backward(s.dx, g.qkvw, g.qkvb, s.dqkv, a->ln1, w.qkvw, N, C, 3 * C);
    // ln1 = layernorm(x): adds into d(x)
    layernorm_backward(s.dresidual, g.ln1w, g.ln1b, s.dx, x, w.ln1w, a->ln1_mean, a->ln1_rstd, N,
                       C);
}

// Adds the gradient of loss_scale * (the last forward's loss) into the parameter gradients.
static void gpt_backward(GPT* model, float loss_scale) {
    const GPTConfig* cfg = &model->config;
    int V = cfg->vocab_size, Vp = cfg->padded_vocab_size, L = cfg->num_layers, C = cfg->channels;
    int B = model->B, T = model->T;
    if (!model->has_targets) { die("gpt_backward: the last forward had no targets"); }
    if (model->grads_memory == NULL) {
        model->grads_memory = (float*)calloc_or_die(model->num_parameters, sizeof(float));
        param_pointers(&model->grads, model->grads_memory, model->specs);
    }
    if (model->scratch_memory == NULL) {
        size_t n = scratch_pointers(&model->scratch, NULL, cfg, model->alloc_B, model->alloc_T);
        model->scratch_memory = (float*)malloc_or_die(n * sizeof(float));
    }
    scratch_pointers(&model->scratch, model->scratch_memory, cfg, (size_t)B, (size_t)T);
    ParameterTensors p = model->params, g = model->grads;
    ActivationTensors a = model->acts;
    BackwardScratch s = model->scratch;
    size_t BT = (size_t)B * T;
    const Dropout* drop = model->fwd_dropout.threshold > 0 ? &model->fwd_dropout : NULL;

    // loss = mean_i losses[i]  ->  d loss / d losses[i] = 1/(B*T); logits become dlogits in place
    float dloss = loss_scale / (float)BT;
    crossentropy_backward(a.logits, a.logits, a.lse, model->targets, dloss, (int)BT, V, Vp);
    // logits = lnf @ wte^T
    matmul_backward(s.dx, g.wte, NULL, a.logits, a.lnf, p.wte, (int)BT, C, Vp);
    // lnf = layernorm(residual3[L-1]); the residual stream gradient starts here
    memset(s.dresidual, 0, BT * C * sizeof(float));
    layernorm_backward(s.dresidual, g.lnfw, g.lnfb, s.dx, a.residual3 + (L - 1) * BT * C, p.lnfw,
                       a.lnf_mean, a.lnf_rstd, (int)BT, C);
    for (int l = L - 1; l >= 0; l--) {
        LayerActs la = layer_acts(&a, l, (size_t)B, (size_t)T, cfg);
        block_backward(model, l, &la, l == 0 ? a.encoded : a.residual3 + (l - 1) * BT * C, drop);
    }
    // encoded = dropout(wte[inputs] + wpe[0..T-1])
    if (drop != NULL) { dropout_mask(s.dresidual, s.dresidual, BT * C, drop, 0); }
    encoder_backward(g.wte, g.wpe, s.dresidual, model->inputs, B, T, C);
}

// The global gradient norm sqrt(sum g^2) over the parameters [shard_begin, shard_end) of every
// rank: all of them on one process or without ZeRO (every rank then holds the same averaged
// gradients, so rank 0 alone counts them), this rank's shard with ZeRO-1. The squares are summed
// in double, in a fixed order (gptc/vecmath.h): the same bits for any number of threads.
static float gpt_grad_norm(const GPT* model) {
    size_t b = model->shard_begin, n = model->shard_end - model->shard_begin;
    double total = sum_squares(model->grads_memory + b, n);
    if (!model->zero && g_comm.rank != 0) { total = 0.0; } // every rank holds the same full sum
    comm_allreduce_sum_f64(&total, 1);
    return (float)sqrt(total);
}

// Global-norm clipping as torch.nn.utils.clip_grad_norm_: scale the gradients (this rank's shard:
// the rest is not used by its update) by max_norm / (norm + 1e-6) when that is below 1. Returns
// the norm before clipping.
static float gpt_clip_grad_norm(GPT* model, float max_norm) {
    float norm = gpt_grad_norm(model);
    float coef = max_norm / (norm + 1e-6f);
    if (max_norm > 0.0f && coef < 1.0f) {
        float* g = model->grads_memory;
        #pragma omp parallel for
        for (size_t i = model->shard_begin; i < model->shard_end; i++) { g[i] *= coef; }
    }
    return norm;
}

// Learning rate of step n = step + 1 (the n-th update) of total steps: a linear warmup to max_lr at
// n = warmup, then a cosine decay to exactly max_lr * final_frac at n = total (GPT-3's schedule):
//   n <= warmup:  max_lr * n / warmup
//   n >  warmup:  min_lr + (max_lr - min_lr) * (1 + cos(pi * (n - warmup) / (total - warmup))) / 2
// (warmup >= total leaves no decay: the run ends at or below the peak; run_training warns.)
static double lr_schedule(int step, int total, double max_lr, int warmup, double final_frac) {
    int n = step + 1;
    if (n <= warmup) { return max_lr * (double)n / (double)warmup; }
    double r = (double)(n - warmup) / (double)(total - warmup); // total > warmup, as n <= total
    if (r > 1.0) { r = 1.0; }
    double min_lr = max_lr * final_frac;
    return min_lr + 0.5 * (1.0 + cos(M_PI * r)) * (max_lr - min_lr);
}

// Floating-point operations of one forward + backward over B*T tokens: a matmul's 2*BT*C*OC, x3
// with its backward; attention's 2 products of 2*T*T*hs per (b,h), x3 (the rest is < 1%).
static double gpt_flops_per_micro_batch(const GPTConfig* c, int B, int T) {
    double BT = (double)B * T, C = c->channels, L = c->num_layers;
    double matmul = L * (C * 3 * C + C * C + C * 4 * C + 4 * C * C) + C * c->padded_vocab_size;
    double attention = L * B * c->num_heads * 2.0 * 2.0 * (double)T * T * (C / c->num_heads);
    return 3.0 * (2.0 * BT * matmul + attention);
}

// AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization"), exactly as
// torch.optim.AdamW computes it, for step t = 1, 2, ...:
//   p *= 1 - lr*wd                 (only the 2-D weight matrices decay: table column "decay")
//   m = b1*m + (1-b1)*g            v = b2*v + (1-b2)*g^2
//   p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
// over this rank's parameters [shard_begin, shard_end) (m and v hold exactly those). The two
// helpers below are shared with train_gpt.cu's AdamW.
// step t's bias corrections as the update uses them: lr / (1 - b1^t) and sqrt(1 - b2^t)
static void adamw_corrections(float lr, float beta1, float beta2, int t, float* step_size,
                              float* bc2_sqrt) {
    *step_size = (float)((double)lr / (1.0 - pow((double)beta1, (double)t)));
    *bc2_sqrt = (float)sqrt(1.0 - pow((double)beta2, (double)t));
}

// tensor k's part [lo, hi) of this rank's parameters (empty: lo >= hi); returns its decay factor
static float adamw_tensor(const GPT* model, int k, float lr, float wd, size_t* lo, size_t* hi) {
    size_t b = model->specs[k].offset, e = b + model->specs[k].size;
    *lo = b > model->shard_begin ? b : model->shard_begin;
    *hi = e < model->shard_end ? e : model->shard_end;
    return model->specs[k].decay ? (float)(1.0 - (double)lr * wd) : 1.0f;
}

// One AdamW step on the CPU; then every gradient is zeroed for the next step.
static void gpt_update(GPT* model, float lr, float beta1, float beta2, float eps, float wd, int t) {
    if (model->grads_memory == NULL) { die("gpt_update: no gradients (call gpt_backward first)"); }
    size_t sb = model->shard_begin, se = model->shard_end;
    if (model->m_memory == NULL) {
        model->m_memory = (float*)calloc_or_die(se - sb, sizeof(float));
        model->v_memory = (float*)calloc_or_die(se - sb, sizeof(float));
    }
    float step_size, bc2_sqrt; // (their addresses are taken: the loop gets copies, firstprivate,
    adamw_corrections(lr, beta1, beta2, t, &step_size, &bc2_sqrt); // or it would not vectorize)
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        size_t lo, hi;
        float decay = adamw_tensor(model, k, lr, wd, &lo, &hi);
        if (lo >= hi) { continue; }
        float* p = model->params_memory + lo;
        float* g = model->grads_memory + lo;
        float* m = model->m_memory + (lo - sb);
        float* v = model->v_memory + (lo - sb);
        size_t n = hi - lo;
        #pragma omp parallel for firstprivate(step_size, bc2_sqrt)
        for (size_t i = 0; i < n; i++) {
            float gi = g[i];
            float mi = beta1 * m[i] + (1.0f - beta1) * gi;
            float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
            float denom = sqrtf(vi) / bc2_sqrt + eps;
            p[i] = p[i] * decay - step_size * (mi / denom);
            m[i] = mi;
            v[i] = vi;
            g[i] = 0.0f;
        }
    }
    // the gradients outside the shard (ZeRO-1: other ranks' parts) are zeroed too
    memset(model->grads_memory, 0, sb * sizeof(float));
    memset(model->grads_memory + se, 0, (model->num_parameters - se) * sizeof(float));
}

static void gpt_free(GPT* model) {
    free(model->params_memory); free(model->grads_memory); free(model->m_memory);
    free(model->v_memory); free(model->acts_memory); free(model->scratch_memory);
    free(model->inputs); free(model->targets); free(model->kv_memory);
    matmul_free_scratch();
    memset(model, 0, sizeof(*model));
}

// ----------------------------------------------------------------------------------------------
// 5. Backends. The training loop reaches the model's math only through this table, so train_gpt.cu
// plugs its GPU functions into the same loop. GPT's host arrays (params, m, v) stay the record:
// checkpoints are written from them; a backend copies them in attach and back in to_host.

typedef struct {
    const char* name;
    void (*attach)(GPT* model, int B, int T); // take the host weights (and m, v); zero gradients
    float (*forward)(GPT* model, const int* inputs, const int* targets, int B, int T); // or -1
    void (*backward)(GPT* model, float loss_scale);
    float (*step)(GPT* model, float grad_clip, float lr, float beta1, float beta2, float eps,
                  float weight_decay, int t); // global-norm clip + AdamW step t; returns the norm
    const float* (*logits)(GPT* model, int b, int t); // (Vp) of position (b,t) of the last forward
    const float* (*losses)(GPT* model); // (B*T) per-position losses of the last forward (targets)
    void (*to_host)(GPT* model);       // weights, m, v into the host arrays (ZeRO-1: the shard's)
    void (*summary)(const GPT* model); // an extra line for the end-of-run summary, or NULL
    void (*detach)(GPT* model);        // frees what attach made
    const float* (*decode)(GPT* model, int token, int pos); // gpt_decode, or NULL: no KV cache
} Backend;

// as the GPU's attach does for its copy: zero gradients, activations sized for (B,T) (any smaller
// B, T may follow)
static void cpu_attach(GPT* model, int B, int T) {
    if (model->grads_memory != NULL) {
        memset(model->grads_memory, 0, model->num_parameters * sizeof(float));
    }
    gpt_allocate_activations(model, B, T);
}

// The data-parallel step (gptc/comm.h): each rank's gradients (scaled by 1/(ranks * micro-batches))
// summed over the ranks are the global batch's mean. All-reduced, every rank does the whole update;
// with ZeRO-1 reduce-scattered, each rank updates its shard, and the shards are all-gathered.
static float cpu_step(GPT* model, float grad_clip, float lr, float beta1, float beta2, float eps,
                      float weight_decay, int t) {
    if (g_comm.size > 1 && model->grads_memory != NULL) {
        size_t n = model->num_parameters;
        if (model->zero) { comm_reduce_scatter_sum_f32(model->grads_memory, n); }
        else { comm_allreduce_sum_f32(model->grads_memory, n); }
    }
    float norm = gpt_clip_grad_norm(model, grad_clip);
    gpt_update(model, lr, beta1, beta2, eps, weight_decay, t);
    if (model->zero) { comm_allgather_f32(model->params_memory, model->num_parameters); }
    return norm;
}
static const float* cpu_logits(GPT* model, int b, int t) {
    return model->acts.logits + ((size_t)b * model->T + t) * model->config.padded_vocab_size;
}
static void cpu_nothing(GPT* model) { (void)model; } // to_host, detach: the arrays are the host's
static const float* cpu_losses(GPT* model) { return model->acts.losses; }
static const Backend cpu_backend = {"cpu", cpu_attach, gpt_forward, gpt_backward, cpu_step,
    cpu_logits, cpu_losses, cpu_nothing, NULL, cpu_nothing, gpt_decode};

// ----------------------------------------------------------------------------------------------
// 6. Generation: token after token, each drawn from the model's logits (gptc/sampler.h)

// The model's side of gptc/sampler.h's sample_sequence: the logits of the position after
// seq[0..len-1]. With the backend's KV cache (be->decode) each position is decoded once, in
// order; without it, each call reruns the forward over the whole sequence so far.
typedef struct { const Backend* be; GPT* model; int decoded; } Generator;
static const float* next_logits(void* ctx, const int* seq, int len) {
    Generator* g = (Generator*)ctx;
    if (g->be->decode == NULL) {
        g->be->forward(g->model, seq, NULL, 1, len); // causal: position len-1 sees seq[0..len-1]
        return g->be->logits(g->model, 0, len - 1);
    }
    const float* logits = NULL;
    for (; g->decoded < len; g->decoded++) {
        logits = g->be->decode(g->model, seq[g->decoded], g->decoded);
    }
    return logits;
}

// the training loop's samples (gptc/sampler.h): gen_len tokens after an end-of-text token
static void generate_and_print(const Backend* be, GPT* model, int max_T, const Tokenizer* tok,
                               int gen_len, const SampleOptions* so, Rng* rng) {
    model->dropout = dropout_make(0.0f, 0);
    Generator g = {be, model, 0};
    int window = be->decode != NULL ? model->config.max_seq_len : max_T;
    sample_and_print(next_logits, &g, model->config.vocab_size, window, gen_len, tok, so, rng);
}

// ----------------------------------------------------------------------------------------------
// 7. Checkpoints: the model file and the state file of gptc/checkpoint.h

// Loads the model and the optimizer state of checkpoint `step` in dir into a model not yet built.
// (The data position is checked against the data by loader_seek, the options by resume_options.)
static void load_checkpoint(GPT* model, TrainState* st, const char* dir, long step) {
    char model_path[CKPT_PATH_BYTES], path[CKPT_PATH_BYTES];
    checkpoint_paths(model_path, path, sizeof(model_path), dir, step);
    gpt_build_from_checkpoint(model, model_path);
    state_read(path, step, model->num_parameters, model_path, model->config.max_seq_len, st,
               &model->m_memory, &model->v_memory, param_name_at, model);
}

// The checkpoint after st->step steps: the backend's weights and moments back in the host arrays
// (with ZeRO-1 gathered from the ranks' shards, so the files are the same for any number of
// ranks); rank 0 writes the model file, then the state (its presence marks a complete
// checkpoint), then keeps the newest -k.
static void checkpoint_run(const Backend* be, GPT* model, TrainState* st, const DataLoader* train,
                           const TrainOptions* o) {
    st->epoch = train->epoch; st->shard_pos = train->shard_pos; st->sample_pos = train->sample_pos;
    be->to_host(model);
    float* m = model->m_memory;
    float* v = model->v_memory;
    if (model->zero) {
        size_t n = model->num_parameters;
        comm_allgather_f32(model->params_memory, n);
        m = g_comm.rank == 0 ? (float*)malloc_or_die(n * sizeof(float)) : NULL;
        v = g_comm.rank == 0 ? (float*)malloc_or_die(n * sizeof(float)) : NULL;
        comm_gather_f32(model->m_memory, m, n);
        comm_gather_f32(model->v_memory, v, n);
    }
    if (g_comm.rank == 0) {
        char model_path[CKPT_PATH_BYTES], state_path[CKPT_PATH_BYTES];
        checkpoint_paths(model_path, state_path, sizeof(model_path), o->out_dir, st->step);
        gpt_write_model(model, model_path);
        state_write(state_path, st, o->B, o->T, m, v, model->num_parameters);
        remove_old_checkpoints(o->out_dir, o->keep_last);
        if (o->verbose) { printf("saved checkpoint %s\n", model_path); } // (verbose: rank 0 only)
    }
    if (model->zero) { free(m); free(v); }
}

// ----------------------------------------------------------------------------------------------
// 8. The training loop, on each rank of the job (gptc/comm.h): rank 0 alone prints, writes log.txt
// and the checkpoints and holds the lock on -o; every rank reads the data (and the checkpoint).

// what a run produced, for callers such as the resume test (free losses after use)
typedef struct {
    long first_step;             // this call ran steps [first_step, -x)
    float* losses;               // (-x) training loss of each step run, by step; 0 elsewhere
    float last_val_loss;
} TrainResult;

// The loss of the first n validation batches, the mean over all their counted targets: the same
// batches every time, split over the ranks (batch i on rank i % ranks). No dropout.
static float evaluate(const Backend* be, GPT* model, DataLoader* val, int n, int* in, int* tg) {
    model->dropout = dropout_make(0.0f, 0);
    loader_seek(val, 0, 0, 0, "-j");
    double sum = 0.0, counted = 0.0; // this rank's losses; every batch's counted targets
    for (int i = 0; i < n; i++) {
        int mine = i % g_comm.size == g_comm.rank;
        counted += (double)loader_next_batch(val, mine ? in : NULL, mine ? tg : NULL);
        if (mine) { sum += be->forward(model, in, tg, val->B, val->T); }
    }
    comm_allreduce_sum_f64(&sum, 1);
    return (float)(sum / n * counted_scale((long)counted, (long)n * val->B * val->T));
}

// gptc/eval.h's callback: the per-position losses (B*T) of a forward of ctx's model (a Generator)
static const float* score_rows(void* ctx, const int* inputs, const int* targets, int B, int T) {
    Generator* g = (Generator*)ctx;
    g->model->dropout = dropout_make(0.0f, 0);
    g->be->forward(g->model, inputs, targets, B, T);
    return g->be->losses(g->model);
}

// ZeRO-1 (zero = 1): this rank keeps AdamW's m and v only for its shard of the flat parameters
// (comm_shard); moments already loaded in full (a checkpoint) are cut down to the shard.
static void gpt_set_zero(GPT* model, int zero) {
    size_t n = model->num_parameters, b = 0, e = n;
    if (zero) { comm_shard(n, g_comm.size, g_comm.rank, &b, &e); }
    if (model->m_memory != NULL && (b != 0 || e != n)) {
        memmove(model->m_memory, model->m_memory + b, (e - b) * sizeof(float));
        memmove(model->v_memory, model->v_memory + b, (e - b) * sizeof(float));
    }
    model->zero = zero;
    model->shard_begin = b; model->shard_end = e;
}

// The model and state a run starts from: with -y 1 the newest checkpoint in -o (its options merged
// into *run: resume_options), else -e's. Returns its step, or -1; state_path its file, or "".
static long start_run(const TrainOptions* cmdline, TrainOptions* run, GPT* model, TrainState* st,
                      int* lock_fd, char state_path[CKPT_PATH_BYTES]) {
    const char* dir = cmdline->out_dir;
    int have_out = dir != NULL && dir[0] != '\0';
    if (cmdline->resume && !have_out) { die("-y 1 needs an output directory (-o) to resume from"); }
    long step = have_out && g_comm.rank == 0 ? prepare_out_dir(dir, cmdline->resume, lock_fd) : -1;
    comm_bcast_bytes(&step, sizeof(step), 0);
    *run = *cmdline;
    state_path[0] = '\0';
    if (step >= 0) {
        char model_path[CKPT_PATH_BYTES];
        checkpoint_paths(model_path, state_path, CKPT_PATH_BYTES, dir, step);
        load_checkpoint(model, st, dir, step);
        *run = resume_options(cmdline, st->options, st->options_len, st->step, state_path);
        if (st->B != run->B || st->T != run->T) {
            die("%s: the header's batch B=%d T=%d disagrees with its recorded options -b %d -t %d "
                "(corrupt file)", state_path, st->B, st->T, run->B, run->T);
        }
        if (run->verbose) { printf("resuming from %s (step %ld)\n", model_path, step); }
    } else {
        if (cmdline->resume && cmdline->verbose) {
            printf("no checkpoint in %s: starting from scratch\n", dir);
        }
        gpt_build(model, cmdline->init, (uint64_t)cmdline->seed);
        st->rng.key = stream_key((uint64_t)cmdline->seed, 99ULL); // the sampler's stream
    }
    activation_size_check(&model->config, run->B, run->T);
    gpt_set_zero(model, run->zero && g_comm.size > 1);
    return step;
}

// The training data, every shard checked and positioned where the run is (resumed: the same data
// as its checkpoint's), and the validation data. Returns whether there is validation.
static int open_data(const TrainOptions* o, int V, TrainState* st, const char* state_path,
                     DataLoader* train, DataLoader* val, int* val_batches) {
    int resumed = state_path[0] != '\0';
    loader_init(train, o->train_pattern, o->B, o->T, V, 1, (uint64_t)o->seed, "-i");
    if (resumed && train->identity != st->data_identity) {
        die("-i %s: the training shards differ from those the checkpoint %s was trained on (a "
            "resumed run needs the same data)", o->train_pattern, state_path);
    }
    loader_seek(train, st->epoch, st->shard_pos, st->sample_pos, resumed ? state_path : "-i");
    st->data_identity = train->identity;
    int have_val = o->val_every > 0 && o->val_pattern != NULL && o->val_pattern[0] != '\0';
    *val_batches = o->val_batches;
    if (have_val) {
        loader_init(val, o->val_pattern, o->B, o->T, V, 0, 0, "-j");
        long avail = loader_total_batches(val);
        if (*val_batches > avail) { *val_batches = (int)avail; }
    }
    return have_val;
}

// One optimizer step: accum micro-batches forward and backward on each rank, then be->step (the
// gradients combined over the ranks, clipped, AdamW). Returns the mean loss; *norm the grad norm.
static float train_step(const Backend* be, GPT* model, const TrainOptions* o, DataLoader* train,
                        long step, int accum, float lr, int* inputs, int* targets, float* norm) {
    int rank = g_comm.rank, ranks = g_comm.size;
    double scale = loader_scale_ahead(train, (long)accum * ranks); // the mean over counted targets
    double loss_sum = 0.0; // this rank's sum, then summed over the ranks
    for (int a = 0; a < accum; a++) {
        loader_next_rank_batch(train, rank, ranks, inputs, targets);
        // dropout's masks for this micro-batch: its place in the run's sequence of global batches
        uint64_t pass = ((uint64_t)step * accum + (uint64_t)a) * (uint64_t)ranks + (uint64_t)rank;
        model->dropout = dropout_make(o->dropout, dropout_pass_key((uint64_t)o->seed, pass));
        loss_sum += be->forward(model, inputs, targets, o->B, o->T);
        be->backward(model, 1.0f / (float)(accum * ranks) * (float)scale); // 1/(A*ranks) unmasked
    }
    comm_allreduce_sum_f64(&loss_sum, 1);
    *norm = be->step(model, o->grad_clip, lr, o->beta1, o->beta2, o->eps, o->weight_decay,
                     (int)step + 1);
    return (float)(loss_sum / (double)(accum * ranks) * scale);
}

// One training run with the command line's options on backend be: validation every -v steps and at
// the end, samples every -s, a checkpoint every -n and at the end.
static void run_training(const TrainOptions* cmdline_given, const Backend* be,
                         TrainResult* result) {
    TrainOptions cmdline = *cmdline_given, run; // run: the command line's, or merged on resume
    if (g_comm.rank != 0) { cmdline.verbose = 0; }
    const TrainOptions* o = &run;
    GPT model;
    TrainState st;
    memset(&st, 0, sizeof(st));
    int lock_fd = -1;
    char state_path[CKPT_PATH_BYTES];
    long resume_step = start_run(&cmdline, &run, &model, &st, &lock_fd, state_path);
    const GPTConfig* cfg = &model.config;
    int accum = batch_arithmetic(&run, g_comm.size); // micro-batches a step on each rank; -d set
    double t_check = wall_seconds();
    DataLoader train, val;
    int val_batches;
    int have_val = open_data(o, cfg->vocab_size, &st, state_path, &train, &val, &val_batches);
    t_check = wall_seconds() - t_check;
    int sizes[6] = {cfg->num_layers, cfg->num_heads, cfg->channels, cfg->max_seq_len,
                    cfg->vocab_size, cfg->padded_vocab_size}; // (every rank runs the same)
    check_ranks_agree(o, sizes, train.identity, have_val ? val.identity : 0, be->name);
    EvalSet ev; // --val-eval: a multiple-choice file scored at every validation (gptc/eval.h)
    int have_eval = eval_open(&ev, o->val_eval, have_val, cfg->vocab_size, cfg->max_seq_len);
    Generator scorer = {be, &model, 0}; // (score_rows' context)
    flag_notes(o, be->decode != NULL); // (gptc/cli.h; after every check that can stop the run)
    char* recorded = st.options; // run's strings may point into it: freed at the end
    st.options = run_options_record(o, &st.options_len); // this run's, for its checkpoints
    be->attach(&model, o->B, have_eval && ev.T > o->T ? ev.T : o->T); // (eval rows may be longer)
    Tokenizer tok;
    int have_tok = tokenizer_init(&tok, o->tokenizer_path) == 0;
    if (o->verbose) { // the model, the batch, the ranks' AdamW state (floats of m and v), the data
        printf("model: L=%d NH=%d C=%d maxT=%d V=%d (padded %d), %zu parameters\n", cfg->num_layers,
               cfg->num_heads, cfg->channels, cfg->max_seq_len, cfg->vocab_size,
               cfg->padded_vocab_size, model.num_parameters);
        print_run_banner(o, accum, o->total_batch, be->name, 2 * model.num_parameters,
                         2 * (model.shard_end - model.shard_begin), model.zero, &train, have_val,
                         t_check);
        if (!have_tok) {
            printf("tokenizer %s not found: samples print token ids\n", o->tokenizer_path);
        }
    }
    int have_out = o->out_dir != NULL && o->out_dir[0] != '\0';
    // log.txt (rank 0); a resumed run's is cut back to its checkpoint, keeping that step's
    // validation unless the loop below redoes it (first step: on the schedule, or at the end)
    int redo = have_val && (resume_step % o->val_every == 0 || resume_step == o->max_steps);
    FILE* logf = have_out && g_comm.rank == 0 ? log_open(o->out_dir, resume_step, !redo) : NULL;
    int* inputs = (int*)malloc_or_die(2 * (size_t)o->B * o->T * sizeof(int));
    int* targets = inputs + (size_t)o->B * o->T;
    double* step_ms = (double*)calloc_or_die((size_t)o->max_steps + 1, sizeof(double));
    int timed = 0; // steps in step_ms
    result->losses = (float*)calloc_or_die((size_t)o->max_steps, sizeof(float));
    result->first_step = st.step; result->last_val_loss = -1.0f;

    for (long step = st.step; step <= o->max_steps; step++) {
        int last = step == o->max_steps;
        if (have_val && (step % o->val_every == 0 || last)) {
            float vl = evaluate(be, &model, &val, val_batches, inputs, targets);
            check_finite("validation loss", vl, step);
            result->last_val_loss = vl;
            if (o->verbose) {
                printf("step %ld: val loss %.6f (%d batches)\n", step, vl, val_batches);
            }
            if (logf) { fprintf(logf, "s:%ld vl:%.9g\n", step, vl); fflush(logf); }
            if (have_eval) { eval_at_step(&ev, o->B, score_rows, &scorer, step, o->verbose, logf); }
        }
        int sample = o->sample_every > 0 && step > 0 && (step % o->sample_every == 0 || last);
        if (o->verbose && sample) {
            SampleOptions so = {o->temperature, o->top_k, o->top_p};
            generate_and_print(be, &model, o->T, have_tok ? &tok : NULL, o->gen_len, &so, &st.rng);
        }
        if (last) { break; }

        double t0 = wall_seconds();
        double lr = lr_schedule((int)step, o->max_steps, o->lr, o->warmup, o->final_frac);
        float norm;
        float loss = train_step(be, &model, o, &train, step, accum, (float)lr, inputs, targets,
                                &norm);
        double ms = 1000.0 * (wall_seconds() - t0);
        check_finite("training loss", loss, step + 1);
        check_finite("gradient norm", norm, step + 1);
        step_ms[timed++] = ms;
        result->losses[step] = loss;
        if (o->verbose) {
            printf("step %4ld/%d | loss %.6f | norm %.4f | lr %.2e | %.1f ms | %.0f tok/s\n",
                   step + 1, o->max_steps, loss, norm, lr, ms, o->total_batch / (ms / 1000.0));
            fflush(stdout);
        }
        if (logf) {
            fprintf(logf, "s:%ld trl:%.9g norm:%.9g lr:%.9g\n", step, loss, norm, lr);
            fflush(logf);
        }
        st.step = step + 1;
        int save = (o->ckpt_every > 0 && st.step % o->ckpt_every == 0) || st.step == o->max_steps;
        if (have_out && save) { checkpoint_run(be, &model, &st, &train, o); }
    }
    if (o->verbose && timed > 0) {
        double gflop = accum * gpt_flops_per_micro_batch(cfg, o->B, o->T) / 1e9;
        print_summary(step_ms, timed, gflop, o->total_batch);
        if (be->summary != NULL) { be->summary(&model); }
    }
    if (logf) { fclose(logf); }
    free(inputs); free(step_ms); free(st.options); free(recorded);
    if (have_tok) { tokenizer_free(&tok); }
    loader_free(&train); eval_free(&ev);
    if (have_val) { loader_free(&val); }
    be->detach(&model);
    gpt_free(&model);
    if (lock_fd >= 0) { close(lock_fd); } // releases the lock
}

// ----------------------------------------------------------------------------------------------
// 9. main: a training run, or (--prompt) generation, or (--export) a Hugging Face checkpoint

// --prompt: generation without training: the model of -e, the prompt encoded by -Z's tokenizer (a
// prompt longer than the context keeps its last maxT tokens); it stops after -g tokens, at
// <|endoftext|>, or when the sequence holds maxT + 1 tokens (the last from position maxT - 1).
static void run_generation(const TrainOptions* o, const Backend* backend) {
    Backend be = *backend;
    if (!o->kv_cache) { be.decode = NULL; }
    GPT model;
    gpt_build(&model, o->init, (uint64_t)o->seed);
    int maxT = model.config.max_seq_len, V = model.config.vocab_size;
    Tokenizer tok;
    if (tokenizer_init(&tok, o->tokenizer_path) != 0) {
        die("-Z %s: tokenizer file not found (make tokenizer writes it)", o->tokenizer_path);
    }
    int* seq = (int*)malloc_or_die(((size_t)maxT + 1) * sizeof(int));
    int n = encode_prompt(&tok, o->tokenizer_path, o->prompt, maxT, V, seq);
    int window = (be.decode != NULL || n + o->gen_len > maxT) ? maxT + 1 : n + o->gen_len;
    be.attach(&model, 1, window - 1); // a forward sees at most window - 1 tokens
    Rng rng = {stream_key((uint64_t)o->seed, 99ULL), 0}; // the sampler's stream
    SampleOptions so = {o->temperature, o->top_k, o->top_p};
    model.dropout = dropout_make(0.0f, 0);
    Generator g = {&be, &model, 0};
    char how[128]; // for the speed line: the backend and the path
    snprintf(how, sizeof how, "%s, %s", be.name, be.decode ? "KV cache" : "full forward per token");
    sample_text(next_logits, &g, V, seq, n, window, o->gen_len, &tok, o->prompt, &so, &rng, how);
    free(seq);
    tokenizer_free(&tok);
    be.detach(&model);
    gpt_free(&model);
}

// --export: the model of -e as a Hugging Face GPT-2 checkpoint (data/safetensors.h; BF16 rounded
// to nearest even; an earlier export in the directory is replaced only with --export-overwrite 1)
static void run_export(const TrainOptions* o) {
    GPT model;
    gpt_build(&model, o->init, (uint64_t)o->seed);
    int bf16 = strcmp(o->export_dtype, "bf16") == 0, overwrite = o->export_overwrite;
    const GPTConfig* c = &model.config;
    HfGpt2Config hc = {c->max_seq_len, c->vocab_size, c->num_layers, c->num_heads, c->channels};
    hf_gpt2_save(o->export_dir, &hc, model.params_memory, c->padded_vocab_size, bf16, overwrite);
    printf("wrote %s/model.safetensors (%s) and %s/config.json: %zu parameters (without the "
           "padding rows)\n", o->export_dir, bf16 ? "BF16" : "F32", o->export_dir,
           gpt_stored_parameters(&model));
    gpt_free(&model);
}

// --eval: the model of -e scored on a multiple-choice file (gptc/eval.h), split over the ranks
static void run_eval(const TrainOptions* o, const Backend* be) {
    EvalSet ev;
    eval_load(&ev, o->eval_path, "--eval"); // every field checked before the model is built
    GPT model;
    gpt_build(&model, o->init, (uint64_t)o->seed);
    be->attach(&model, o->B, eval_fit(&ev, model.config.vocab_size, model.config.max_seq_len));
    Generator scorer = {be, &model, 0}; // (score_rows' context)
    eval_print(eval_run(&ev, o->B, score_rows, &scorer, NULL), &ev); // last: "eval: N examples ..."
    eval_free(&ev); be->detach(&model); gpt_free(&model);
}

// the whole program: flags -> a training run on the given backend (train_gpt.cu passes its GPU one)
static inline int train_main(int argc, char** argv, const Backend* backend) {
    writes_fail_past_size_limit(); // (ulimit -f: an error line, not a kill by SIGXFSZ)
    comm_init(&argc, &argv); // under mpirun: this process's rank in the job
    TrainOptions o = parse_options(argc, argv);
    int mode = run_mode(&o); // (gptc/cli.h: training, or one of --prompt, --export, --eval)
    if (mode == MODE_PROMPT) { run_generation(&o, backend); }
    else if (mode == MODE_EXPORT) { run_export(&o); }
    else if (mode == MODE_EVAL) { run_eval(&o, backend); }
    else { TrainResult r; run_training(&o, backend, &r); free(r.losses); }
    comm_finalize();
    return 0;
}

#ifndef GPT_NO_MAIN
int main(int argc, char** argv) { return train_main(argc, argv, &cpu_backend); }
#endif
