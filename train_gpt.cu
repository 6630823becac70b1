/*
train_gpt.cu -- GPT-2 training on NVIDIA GPUs (one per process): train_gpt.c's model in CUDA.

What it is: the GPU half of the trainer. train_gpt.c is #included for everything that is not
arithmetic on the model (config, parameter table, model/state file formats, data loader,
tokenizer, sampler, training loop, CLI); this file adds kernels, their launchers and a Backend
(see train_gpt.c) that runs forward, backward and the optimizer step on the GPU.

Precision (default, PRECISION=BF16): parameters and activations in bf16, fp32 master weights,
fp32 gradients (the weight-gradient matmuls accumulate into them in fp32) and fp32 AdamW moments;
every reduction accumulates in fp32. The bf16 copy of a weight is the master rounded
stochastically, with the random bits drawn from a hash of (index, master bits): the same master
always gives the same bf16 weight, so a resumed run rebuilds exactly the weights it stopped with.
PRECISION=FP32 builds the same code with float everywhere (cuBLASLt in plain fp32, no TF32), for
checking against the PyTorch reference at tight tolerances. The MLP's GELU runs in the matmul's
epilogue in bf16 and in our own kernel in fp32; GPT_FUSE_GELU=0 or 1 in the environment overrides.

What it is not: a copy of the host code, or a wrapper of cuDNN. Attention is our own causal flash
kernel (online softmax, no T x T matrix in memory, forward and backward; dropout's masks on the
probabilities recomputed in both from gptc/rand.h's hash); matmuls go through cuBLASLt.

Rules that are easy to miss:
  - As in train_gpt.c, parameter gradients ACCUMULATE (the weight-gradient matmuls run with
    beta = 1), activation gradients are overwritten, and the residual-stream gradient is added
    into by each layernorm backward.
  - Deterministic: no floating-point atomics anywhere. Every reduction (bias and layernorm weight
    gradients, the token-embedding gradient, the gradient norm, the loss) runs in a fixed order.
  - The forward with targets computes the loss AND writes d(loss)/d(logits) over the logits in
    the same pass (the fused classifier: probabilities are never stored). The backward's
    loss_scale enters as the alpha of the two lm-head matmuls: everything after is linear in it.
  - A forward without targets keeps the logits (sampling, tests).

Errors: every CUDA and cuBLASLt call is checked and a failure is one line naming the call (file:
line) and the error; every launch is checked by kernel name. A fault inside a kernel surfaces at
the next synchronizing call; run with CUDA_LAUNCH_BLOCKING=1 to have it named by its kernel.

Data parallelism (mpirun -np N ./train_gptcu, built with MPI): one GPU per process, picked by the
process's rank on its machine; NCCL, bootstrapped over MPI (rank 0's ncclUniqueId broadcast),
all-reduces the gradients, or with ZeRO-1 (-z 1) reduce-scatters them, each rank updates its
shard of the fp32 master weights and AdamW moments (the only copies: 3 x 4 bytes per parameter
divided by N), and the bf16 weights are all-gathered. Shards follow gptc/comm.h's layout, with the
flat arrays padded to N equal pieces.

Build: make train_gptcu (PRECISION=FP32 for the fp32 build). dev/cuda/ holds the kernel lab and
a CPU emulator that runs these kernels without a GPU (make test_gptcu_emu); under the emulator,
dev/cuda/emu_nccl.h stands in for NCCL over MPI.
*/

#define GPT_NO_MAIN
#include "train_gpt.c" // provides: the model's tables, Backend, run_training, train_main, gptc/

#ifdef GPT_CUDA_EMU
#include "dev/cuda/emu_cublaslt.h" // provides: cuBLASLt's matmul API on the CPU (emulator build)
#include "dev/cuda/emu_nccl.h"     // provides: NCCL's collectives over MPI (the emulator build)
#else
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cublasLt.h>
#ifdef USE_MPI
#include <nccl.h>                  // provides: the GPU collectives of data parallelism
#endif
#endif
#include "gptc/cuda_common.h" // provides: floatX, the error checks, cuda_alloc, warp_sum, matmul_lt

// shapes: B batch, T time, C channels, NH heads, hs = C/NH head size, V vocab, Vp padded vocab,
// L layers, BT = B*T rows of every (B,T,...) tensor

// block sizes
#define ENC_THREADS 256
#define LN_WARPS 8                // layernorm forward/backward: one warp per row, 8 rows a block
#define COL_THREADS_X 32          // column sums: 32 columns x 8 row groups a block
#define COL_THREADS_Y 8
#define COL_CHUNKS 32             // rows are split into this many chunks, summed in order after
#define CLS_THREADS 512           // classifier: one block per row
#define ADAM_THREADS 512
#define NORM_BLOCKS 512           // gradient-norm partial sums: a fixed grid, so fixed bits
#define NORM_THREADS 512

// ----------------------------------------------------------------------------------------------
// Kernels

// --- dropout at one site (train_gpt.c's dropout_mask: the same masks, from gptc/rand.h's hash of
// the element's index). The kernels take the site's key; threshold 0 means no dropout at that site.

struct DropSite {       // gptc/rand.h's Dropout with the site's key already mixed in, by value
    uint64_t key;       // stream_key(pass key, site)
    uint32_t threshold; // drop when the draw's top 24 bits are below it; 0: off
    float scale;        // 1/(1-p)
};

// the factor of element i: 1/(1-p) if kept, 0 if dropped
__device__ static inline float drop_factor(DropSite d, long i) {
    return dropout_keep(d.key, (uint64_t)i, d.threshold) ? d.scale : 0.0f;
}

// out = in * mask / (1-p) (out may be in): a site's forward, and its backward on the gradient
__global__ void dropout_kernel(floatX* out, const floatX* in, long n, DropSite d) {
    long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= n) { return; }
    out[idx] = to_floatX(to_float(in[idx]) * drop_factor(d, idx));
}

// --- encoder: out = wte[inp] + wpe[t]

__global__ void encoder_forward_kernel(floatX* __restrict__ out, const int* __restrict__ inp,
                                       const floatX* __restrict__ wte,
                                       const floatX* __restrict__ wpe, int B, int T, int C) {
    long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long)B * T * C) { return; }
    int c = (int)(idx % C);
    long bt = idx / C;
    int t = (int)(bt % T);
    out[idx] = to_floatX(to_float(wte[(long)inp[bt] * C + c]) + to_float(wpe[(long)t * C + c]));
}

// dwpe[t,c] += sum over b of dout[b,t,c], b in order
__global__ void wpe_backward_kernel(float* __restrict__ dwpe, const floatX* __restrict__ dout,
                                    int B, int T, int C) {
    long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long)T * C) { return; }
    float s = 0.0f;
    for (int b = 0; b < B; b++) { s += to_float(dout[(long)b * T * C + idx]); }
    dwpe[idx] += s;
}

// dwte[token] += the dout rows of every position holding that token. The host groups positions by
// token (bucket k: token bucket_tok[k], positions pos[bucket_start[k] ..+ bucket_len[k]] in
// increasing order), so each block owns one row of dwte: no atomics, a fixed order.
__global__ void wte_backward_kernel(float* __restrict__ dwte, const floatX* __restrict__ dout,
                                    const int* __restrict__ bucket_tok,
                                    const int* __restrict__ bucket_start,
                                    const int* __restrict__ bucket_len, const int* __restrict__ pos,
                                    int C) {
    int k = blockIdx.x;
    const int* p = pos + bucket_start[k];
    int n = bucket_len[k];
    float* row = dwte + (long)bucket_tok[k] * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float s = 0.0f;
        for (int i = 0; i < n; i++) { s += to_float(dout[(long)p[i] * C + c]); }
        row[c] += s;
    }
}

// --- residual + layernorm, fused: res = a + b (skipped when b is NULL: res = a), then
// out = (res - mean) * rstd * w + bias over each row of C (PyTorch's LayerNorm, eps 1e-5,
// biased variance). One warp per row; the statistics are of res as stored (rounded), which is
// what the backward will see.
__global__ void residual_layernorm_forward_kernel(floatX* __restrict__ res,
                                                  floatX* __restrict__ out,
                                                  float* __restrict__ mean,
                                                  float* __restrict__ rstd, const floatX* a,
                                                  const floatX* b, const floatX* __restrict__ w,
                                                  const floatX* __restrict__ bias, int N, int C) {
    int lane = threadIdx.x % 32;
    int row = blockIdx.x * LN_WARPS + threadIdx.x / 32;
    if (row >= N) { return; } // whole warps leave together: the shuffles below see all 32 lanes
    const floatX* ra = a + (long)row * C;
    floatX* rr = res + (long)row * C;
    float s = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float x = to_float(ra[c]);
        if (b != NULL) {
            floatX r = to_floatX(x + to_float(b[(long)row * C + c]));
            rr[c] = r;
            x = to_float(r);
        }
        s += x;
    }
    const floatX* x_row = b != NULL ? rr : ra;
    float m = warp_sum(s) / C;
    float ss = 0.0f;
    for (int c = lane; c < C; c += 32) { float d = to_float(x_row[c]) - m; ss += d * d; }
    float r = 1.0f / sqrtf(warp_sum(ss) / C + 1e-5f);
    floatX* o = out + (long)row * C;
    for (int c = lane; c < C; c += 32) {
        float n = (to_float(x_row[c]) - m) * r;
        o[c] = to_floatX(n * to_float(w[c]) + to_float(bias[c]));
    }
    if (lane == 0) { mean[row] = m; rstd[row] = r; }
}

// dinp += rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)), dnorm = dout * w
// (the weight and bias gradients are column sums: column_partials_kernel)
__global__ void layernorm_backward_kernel(floatX* dinp, const floatX* __restrict__ dout,
                                          const floatX* __restrict__ inp,
                                          const floatX* __restrict__ w,
                                          const float* __restrict__ mean,
                                          const float* __restrict__ rstd, int N, int C) {
    int lane = threadIdx.x % 32;
    int row = blockIdx.x * LN_WARPS + threadIdx.x / 32;
    if (row >= N) { return; }
    const floatX* d = dout + (long)row * C;
    const floatX* x = inp + (long)row * C;
    float m = mean[row], r = rstd[row];
    float sd = 0.0f, sdn = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float dn = to_float(d[c]) * to_float(w[c]);
        sd += dn;
        sdn += dn * (to_float(x[c]) - m) * r;
    }
    float mean_d = warp_sum(sd) / C, mean_dn = warp_sum(sdn) / C;
    floatX* di = dinp + (long)row * C;
    for (int c = lane; c < C; c += 32) {
        float dn = to_float(d[c]) * to_float(w[c]);
        float n = (to_float(x[c]) - m) * r;
        di[c] = to_floatX(to_float(di[c]) + r * (dn - mean_d - n * mean_dn));
    }
}

// Column sums over rows, the first stage of deterministic bias / layernorm weight gradients:
//   part_b[chunk][c] = sum over the chunk's rows of dout[r,c]
//   part_w[chunk][c] = sum of dout[r,c] * (x[r,c] - mean[r]) * rstd[r]   (when x is not NULL)
// A block is 32 columns x 8 row groups; the groups are added in order through shared memory.
__global__ void column_partials_kernel(float* __restrict__ part_w, float* __restrict__ part_b,
                                       const floatX* __restrict__ dout,
                                       const floatX* __restrict__ x, const float* __restrict__ mean,
                                       const float* __restrict__ rstd, int N, int C) {
    __shared__ float sw[COL_THREADS_Y][COL_THREADS_X], sb[COL_THREADS_Y][COL_THREADS_X];
    int c = blockIdx.x * COL_THREADS_X + threadIdx.x;
    int chunk = blockIdx.y;
    int rows = ceil_div(N, COL_CHUNKS);
    int r0 = chunk * rows, r1 = min(N, r0 + rows);
    float accw = 0.0f, accb = 0.0f;
    if (c < C) {
        for (int r = r0 + threadIdx.y; r < r1; r += COL_THREADS_Y) {
            float d = to_float(dout[(long)r * C + c]);
            accb += d;
            if (x != NULL) { accw += d * (to_float(x[(long)r * C + c]) - mean[r]) * rstd[r]; }
        }
    }
    sw[threadIdx.y][threadIdx.x] = accw;
    sb[threadIdx.y][threadIdx.x] = accb;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float w = 0.0f, b = 0.0f;
        for (int y = 0; y < COL_THREADS_Y; y++) {
            w += sw[y][threadIdx.x];
            b += sb[y][threadIdx.x];
        }
        if (part_w != NULL) { part_w[(long)chunk * C + c] = w; }
        part_b[(long)chunk * C + c] = b;
    }
}

// second stage: dst[c] += sum over chunks of part[chunk][c], chunks in order
__global__ void column_finish_kernel(float* __restrict__ dst, const float* __restrict__ part,
                                     int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) { return; }
    float s = 0.0f;
    for (int k = 0; k < COL_CHUNKS; k++) { s += part[(long)k * C + c]; }
    dst[c] += s;
}

// --- GELU, tanh approximation (Hendrycks & Gimpel; GPT-2's): 0.5 x (1 + tanh(u)),
// u = sqrt(2/pi) (x + 0.044715 x^3)

__global__ void gelu_forward_kernel(floatX* __restrict__ out, const floatX* __restrict__ inp,
                                    long N) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N) { return; }
    float x = to_float(inp[i]);
    float u = GELU_SCALE * (x + 0.044715f * x * x * x);
    out[i] = to_floatX(0.5f * x * (1.0f + tanhf(u)));
}

// d/dx = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) du/dx; in place is fine (dinp may be dout)
__global__ void gelu_backward_kernel(floatX* dinp, const floatX* __restrict__ inp,
                                     const floatX* dout, long N) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N) { return; }
    float x = to_float(inp[i]);
    float u = GELU_SCALE * (x + 0.044715f * x * x * x);
    float th = tanhf(u);
    float du = GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
    float g = 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du;
    dinp[i] = to_floatX(to_float(dout[i]) * g);
}

// --- attention: causal flash attention, one thread per query row.
// qkv (B,T,3C): head h of position t reads q at channel h*hs, k at C + h*hs, v at 2C + h*hs.
// Forward: for query i, keys j <= i stream through shared memory a tile at a time; the softmax
// is computed online (Milakov & Gimelshein; Dao et al., FlashAttention): a running max m, a
// running sum l of exp(s - m) and a running output o, rescaled whenever m grows. No (T,T)
// matrix exists anywhere; lse = m + log(l) per row is kept for the backward.
// D is the head size rounded up to the instantiated width (hs <= D; lanes past hs are zeros).

template <int D> struct AttTile {
    static const int FWD = 4096 / D < 64 ? 4096 / D : 64; // rows a block: K,V tiles 32 KB fp32
    static const int BWD = 2048 / D < 64 ? 2048 / D : 64; // backward: 4 tiles of (BWD, D+1)
};

template <int D>
__global__ void attention_forward_kernel(floatX* __restrict__ out, float* __restrict__ lse,
                                         const floatX* __restrict__ qkv, int T, int C, int NH,
                                         DropSite drop) {
    const int R = AttTile<D>::FWD;
    __shared__ float ks[R][D], vs[R][D];
    int hs = C / NH, b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * R;
    int i = q0 + threadIdx.x;
    int active = i < T;
    const floatX* base = qkv + (long)b * T * 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    float q[D], o[D];
    for (int d = 0; d < D; d++) {
        q[d] = active && d < hs ? to_float(base[(long)i * 3 * C + h * hs + d]) * scale : 0.0f;
        o[d] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    int last = min(q0 + R, T) - 1; // the block's last query sees keys 0..last
    for (int k0 = 0; k0 <= last; k0 += R) {
        __syncthreads(); // the previous tile is no longer read
        for (int e = threadIdx.x; e < R * D; e += R) {
            int r = e / D, d = e % D, j = k0 + r;
            int ok = j < T && d < hs;
            ks[r][d] = ok ? to_float(base[(long)j * 3 * C + C + h * hs + d]) : 0.0f;
            vs[r][d] = ok ? to_float(base[(long)j * 3 * C + 2 * C + h * hs + d]) : 0.0f;
        }
        __syncthreads();
        if (!active) { continue; }
        int jend = min(k0 + R - 1, i);
        for (int j = k0; j <= jend; j++) {
            const float* kr = ks[j - k0];
            float s = 0.0f;
            for (int d = 0; d < D; d++) { s += q[d] * kr[d]; }
            if (s > m) { // a new max: rescale what was summed under the old one
                float c = expf(m - s);
                l *= c;
                for (int d = 0; d < D; d++) { o[d] *= c; }
                m = s;
            }
            float p = expf(s - m);
            l += p; // the softmax's sum is of the probabilities before dropout
            if (drop.threshold > 0) {
                p *= drop_factor(drop, (((long)b * NH + h) * T + i) * T + j);
            }
            const float* vr = vs[j - k0];
            for (int d = 0; d < D; d++) { o[d] += p * vr[d]; }
        }
    }
    if (!active) { return; }
    float inv = 1.0f / l;
    floatX* orow = out + ((long)b * T + i) * C + h * hs;
    for (int d = 0; d < D; d++) { if (d < hs) { orow[d] = to_floatX(o[d] * inv); } }
    lse[((long)b * NH + h) * T + i] = m + logf(l);
}

// Backward. With P = softmax(S), S = scale * Q K^T (causal), O = P V and dO given:
//   dV = P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(dO * O)),  dQ = scale dS K,
//   dK = scale dS^T Q
// P is recomputed from S and the saved lse. With dropout O = P' V, P' = P * M (M: mask / (1-p)):
// dV = P'^T dO and dP = (dO V^T) * M, while rowsum(dO * O) = rowsum(dP * P) still holds. Two
// kernels, so nothing is ever added from two threads: one thread per key row j accumulates dK_j,
// dV_j over queries i >= j; one thread per query row i accumulates dQ_i over keys j <= i.
// delta_i = rowsum(dO_i * O_i) comes first.

__global__ void attention_delta_kernel(float* __restrict__ delta, const floatX* __restrict__ dout,
                                       const floatX* __restrict__ out, int B, int T, int C,
                                       int NH) {
    long idx = (long)blockIdx.x * blockDim.x + threadIdx.x; // over (b, h, t)
    if (idx >= (long)B * NH * T) { return; }
    int t = (int)(idx % T), h = (int)((idx / T) % NH);
    long b = idx / ((long)T * NH);
    int hs = C / NH;
    const floatX* d = dout + (b * T + t) * C + h * hs;
    const floatX* o = out + (b * T + t) * C + h * hs;
    float s = 0.0f;
    for (int e = 0; e < hs; e++) { s += to_float(d[e]) * to_float(o[e]); }
    delta[idx] = s;
}

// loads rows [r0, r0+R) of one head's slice at channel offset `off` of a (B,T,ld) tensor
template <int D, int R>
__device__ static void load_rows(float (*dst)[D + 1], const floatX* base, int r0, int T, long ld,
                                 int off, int hs) {
    for (int e = threadIdx.x; e < R * D; e += R) {
        int r = e / D, d = e % D, t = r0 + r;
        dst[r][d] = t < T && d < hs ? to_float(base[(long)t * ld + off + d]) : 0.0f;
    }
}

template <int D>
__global__ void
attention_backward_dkdv_kernel(floatX* __restrict__ dqkv, const floatX* __restrict__ dout,
                               const floatX* __restrict__ qkv, const float* __restrict__ lse,
                               const float* __restrict__ delta, int T, int C, int NH,
                               DropSite drop) {
    const int R = AttTile<D>::BWD;
    // (+1: no bank conflicts)
    __shared__ float kown[R][D + 1], vown[R][D + 1], qs[R][D + 1], dos[R][D + 1];
    __shared__ float lse_s[R], delta_s[R];
    int hs = C / NH, b = blockIdx.z, h = blockIdx.y, k0 = blockIdx.x * R;
    int j = k0 + threadIdx.x;
    const floatX* base = qkv + (long)b * T * 3 * C;
    const floatX* dbase = dout + (long)b * T * C;
    const float* lse_bh = lse + ((long)b * NH + h) * T;
    const float* delta_bh = delta + ((long)b * NH + h) * T;
    float scale = 1.0f / sqrtf((float)hs);
    load_rows<D, R>(kown, base, k0, T, 3 * C, C + h * hs, hs);
    load_rows<D, R>(vown, base, k0, T, 3 * C, 2 * C + h * hs, hs);
    float dk[D], dv[D];
    for (int d = 0; d < D; d++) { dk[d] = 0.0f; dv[d] = 0.0f; }
    for (int i0 = k0; i0 < T; i0 += R) { // queries i >= k0 can see this block's keys
        __syncthreads();
        load_rows<D, R>(qs, base, i0, T, 3 * C, h * hs, hs);
        load_rows<D, R>(dos, dbase, i0, T, C, h * hs, hs);
        int i = i0 + threadIdx.x;
        lse_s[threadIdx.x] = i < T ? lse_bh[i] : 0.0f;
        delta_s[threadIdx.x] = i < T ? delta_bh[i] : 0.0f;
        __syncthreads();
        if (j >= T) { continue; }
        int ibeg = max(i0, j), iend = min(i0 + R, T);
        for (int ii = ibeg; ii < iend; ii++) {
            const float* qr = qs[ii - i0];
            const float* dr = dos[ii - i0];
            float s = 0.0f, dp = 0.0f;
            for (int d = 0; d < D; d++) {
                s += qr[d] * kown[threadIdx.x][d];
                dp += dr[d] * vown[threadIdx.x][d];
            }
            float p = expf(s * scale - lse_s[ii - i0]);
            float pd = p; // P' (after dropout)
            if (drop.threshold > 0) {
                float f = drop_factor(drop, (((long)b * NH + h) * T + ii) * T + j);
                pd = p * f; dp = dp * f;
            }
            float ds = p * (dp - delta_s[ii - i0]);
            for (int d = 0; d < D; d++) { dv[d] += pd * dr[d]; dk[d] += ds * qr[d]; }
        }
    }
    if (j >= T) { return; }
    floatX* row = dqkv + ((long)b * T + j) * 3 * C;
    for (int d = 0; d < D; d++) {
        if (d < hs) {
            row[C + h * hs + d] = to_floatX(dk[d] * scale);
            row[2 * C + h * hs + d] = to_floatX(dv[d]);
        }
    }
}

template <int D>
__global__ void
attention_backward_dq_kernel(floatX* __restrict__ dqkv, const floatX* __restrict__ dout,
                             const floatX* __restrict__ qkv, const float* __restrict__ lse,
                             const float* __restrict__ delta, int T, int C, int NH, DropSite drop) {
    const int R = AttTile<D>::BWD;
    __shared__ float qown[R][D + 1], doown[R][D + 1], ks[R][D + 1], vs[R][D + 1];
    int hs = C / NH, b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * R;
    int i = q0 + threadIdx.x;
    const floatX* base = qkv + (long)b * T * 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    load_rows<D, R>(qown, base, q0, T, 3 * C, h * hs, hs);
    load_rows<D, R>(doown, dout + (long)b * T * C, q0, T, C, h * hs, hs);
    float l_i = i < T ? lse[((long)b * NH + h) * T + i] : 0.0f;
    float delta_i = i < T ? delta[((long)b * NH + h) * T + i] : 0.0f;
    float dq[D];
    for (int d = 0; d < D; d++) { dq[d] = 0.0f; }
    int last = min(q0 + R, T) - 1;
    for (int k0 = 0; k0 <= last; k0 += R) {
        __syncthreads();
        load_rows<D, R>(ks, base, k0, T, 3 * C, C + h * hs, hs);
        load_rows<D, R>(vs, base, k0, T, 3 * C, 2 * C + h * hs, hs);
        __syncthreads();
        if (i >= T) { continue; }
        int jend = min(k0 + R - 1, i);
        for (int j = k0; j <= jend; j++) {
            const float* kr = ks[j - k0];
            const float* vr = vs[j - k0];
            float s = 0.0f, dp = 0.0f;
            for (int d = 0; d < D; d++) {
                s += qown[threadIdx.x][d] * kr[d];
                dp += doown[threadIdx.x][d] * vr[d];
            }
            float p = expf(s * scale - l_i);
            if (drop.threshold > 0) {
                dp *= drop_factor(drop, (((long)b * NH + h) * T + i) * T + j);
            }
            float ds = p * (dp - delta_i);
            for (int d = 0; d < D; d++) { dq[d] += ds * kr[d]; }
        }
    }
    if (i >= T) { return; }
    floatX* row = dqkv + ((long)b * T + i) * 3 * C + h * hs;
    for (int d = 0; d < D; d++) { if (d < hs) { row[d] = to_floatX(dq[d] * scale); } }
}

// --- the fused classifier: one block per row of logits.
// lse = log sum_v exp(logits[v]) over v < V, loss = lse - logits[target]; then, when asked,
// logits[v] becomes dscale * (softmax[v] - [v == target]) in place (and 0 for the padding v >= V).
// The softmax is evaluated on the fly, never stored. A target < 0 (IGNORED_TARGET: not counted,
// as train_gpt.c's crossentropy) has loss 0 and a zero gradient row.

__global__ void classifier_kernel(floatX* logits, float* __restrict__ losses,
                                  const int* __restrict__ targets, int V, int Vp, float dscale,
                                  int write_dlogits) {
    __shared__ float sm[CLS_THREADS / 32], ss[CLS_THREADS / 32];
    __shared__ float row_lse;
    long row = blockIdx.x;
    floatX* x = logits + row * Vp;
    int target = targets[row];
    float xt = target >= 0 ? to_float(x[target]) : 0.0f; // read before anyone overwrites it
    float m = -INFINITY, s = 0.0f;  // online: s = sum exp(x - m)
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
        float xv = to_float(x[v]);
        if (xv > m) { s *= expf(m - xv); m = xv; }
        s += expf(xv - m);
    }
    float wm = warp_max(m); // combine (m, s) pairs: first the max, then sums rescaled to it
    float wsum = warp_sum(m == -INFINITY ? 0.0f : s * expf(m - wm));
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) { sm[warp] = wm; ss[warp] = wsum; }
    __syncthreads();
    if (threadIdx.x == 0) {
        float bm = -INFINITY;
        for (int w = 0; w < CLS_THREADS / 32; w++) { bm = fmaxf(bm, sm[w]); }
        float bs = 0.0f;
        for (int w = 0; w < CLS_THREADS / 32; w++) {
            bs += sm[w] == -INFINITY ? 0.0f : ss[w] * expf(sm[w] - bm);
        }
        row_lse = bm + logf(bs);
        losses[row] = target >= 0 ? row_lse - xt : 0.0f;
    }
    __syncthreads();
    if (!write_dlogits) { return; }
    float l = row_lse, w = target >= 0 ? dscale : 0.0f; // an uncounted row's gradient is 0
    for (int v = threadIdx.x; v < Vp; v += blockDim.x) {
        float d = 0.0f;
        if (v < V) { d = (expf(to_float(x[v]) - l) - (v == target ? 1.0f : 0.0f)) * w; }
        x[v] = to_floatX(d);
    }
}

// --- global gradient norm, then clipping fused into AdamW

// partial[block] = sum of squares of the block's grid-stride share, in double
__global__ void norm_partials_kernel(double* __restrict__ partial, const float* __restrict__ g,
                                     long n) {
    __shared__ double sw[NORM_THREADS / 32];
    double s = 0.0;
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x) {
        s += (double)g[i] * g[i];
    }
    s = warp_sum_double(s);
    if (threadIdx.x % 32 == 0) { sw[threadIdx.x / 32] = s; }
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0.0;
        for (int w = 0; w < NORM_THREADS / 32; w++) { t += sw[w]; }
        partial[blockIdx.x] = t;
    }
}

// norm = sqrt(sum of partials, in order); coef = max_norm / (norm + 1e-6) when that is < 1
// (torch.nn.utils.clip_grad_norm_), else 1
__global__ void norm_finish_kernel(float* __restrict__ norm_coef,
                                   const double* __restrict__ partial, float max_norm) {
    if (threadIdx.x != 0 || blockIdx.x != 0) { return; }
    double t = 0.0;
    for (int k = 0; k < NORM_BLOCKS; k++) { t += partial[k]; }
    float norm = (float)sqrt(t);
    float coef = max_norm / (norm + 1e-6f);
    norm_coef[0] = norm;
    norm_coef[1] = max_norm > 0.0f && coef < 1.0f ? coef : 1.0f;
}

// A weight's low-precision copy: in bf16, stochastic rounding (round up with probability equal to
// the dropped fraction, so rounding errors average out over steps instead of stalling small
// updates). The random bits are a hash of (index, the master's bits): deterministic, and a
// function of the master alone.
#ifndef PRECISION_FP32
__host__ __device__ static inline uint32_t hash32(uint32_t x) {
    x ^= x >> 16; x *= 0x7feb352dU; x ^= x >> 15; x *= 0x846ca68bU; x ^= x >> 16;
    return x;
}
#endif
__device__ static inline floatX param_from_master(float w, long idx) {
#ifdef PRECISION_FP32
    (void)idx;
    return w;
#else
    uint32_t bits = __float_as_uint(w);
    if ((bits & 0x7f800000u) == 0x7f800000u) { return __float2bfloat16_rn(w); } // inf, nan
    uint32_t r =
        hash32(((uint32_t)idx ^ (uint32_t)(idx >> 32)) * 0x9E3779B9u ^ hash32(bits)) & 0xffffu;
    uint32_t up = bits + r;
    if ((up & 0x7f800000u) == 0x7f800000u) { up = bits; } // near FLT_MAX: never round to inf
    return __ushort_as_bfloat16((unsigned short)(up >> 16));
#endif
}

// params[base + i] from master[i], i < n
__global__ void params_from_master_kernel(floatX* __restrict__ params,
                                          const float* __restrict__ master, long base, long n) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) { params[base + i] = param_from_master(master[i], base + i); }
}

// which elements decay: one entry per parameter tensor (blockIdx.y)
struct AdamTable {
    long offset[NUM_PARAMETER_TENSORS];
    long size[NUM_PARAMETER_TENSORS];
    float decay[NUM_PARAMETER_TENSORS]; // 1 - lr*wd, or 1
};

// AdamW exactly as gpt_update in train_gpt.c (torch.optim.AdamW), on clipped gradients
// g * coef; then the low-precision weight copy, and g = 0 for the next step. The table's offsets
// index the flat parameters and gradients; master, m and v hold the parameters from `base` on
// (ZeRO-1: this rank's shard; else base 0).
__global__ void adamw_kernel(floatX* __restrict__ params, float* __restrict__ master,
                             float* __restrict__ grads, float* __restrict__ m,
                             float* __restrict__ v, const float* __restrict__ norm_coef,
                             AdamTable tab, long base, float beta1, float beta2, float eps,
                             float step_size, float bc2_sqrt) {
    int k = blockIdx.y;
    float coef = norm_coef[1];
    float decay = tab.decay[k];
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < tab.size[k];
         i += (long)gridDim.x * blockDim.x) {
        long idx = tab.offset[k] + i, j = idx - base;
        float gi = grads[idx];
        if (coef != 1.0f) { gi *= coef; }
        float mi = beta1 * m[j] + (1.0f - beta1) * gi;
        float vi = beta2 * v[j] + (1.0f - beta2) * gi * gi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        float w = master[j] * decay - step_size * (mi / denom);
        master[j] = w;
        params[idx] = param_from_master(w, idx);
        m[j] = mi;
        v[j] = vi;
        grads[idx] = 0.0f;
    }
}

// --- generation: one new position against the KV cache (gpu_decode; train_gpt.c's gpt_decode)

// x (C) = wte[token] + wpe[pos]
__global__ void decode_embed_kernel(floatX* __restrict__ x, const floatX* __restrict__ wte,
                                    const floatX* __restrict__ wpe, int token, int pos, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c < C) {
        x[c] = to_floatX(to_float(wte[(long)token * C + c]) + to_float(wpe[(long)pos * C + c]));
    }
}

// Head h = blockIdx.x of the query of position pos (q in qkv) against the cached keys and values of
// positions 0..pos: scores into att[h] (maxT floats), their max and sum by block reductions in a
// fixed order (warps, then the warps' results in order), then out = softmax(scores) @ v, one
// thread per channel of the head, summing over positions in order. (The training forward's flash
// kernel sums in tiles: the two agree to rounding, as test_gpt checks.)
__global__ void decode_attention_kernel(floatX* __restrict__ out, float* __restrict__ att,
                                        const floatX* __restrict__ qkv,
                                        const floatX* __restrict__ kcache,
                                        const floatX* __restrict__ vcache, int pos, int C, int NH,
                                        int maxT) {
    __shared__ float red[32];
    int h = blockIdx.x, hs = C / NH, lane = threadIdx.x % 32, warp = threadIdx.x / 32,
        nw = blockDim.x / 32;
    const floatX* q = qkv + h * hs;
    float* a = att + (long)h * maxT;
    float scale = 1.0f / sqrtf((float)hs);
    float m = -INFINITY;
    for (int t = threadIdx.x; t <= pos; t += blockDim.x) {
        const floatX* k = kcache + (long)t * C + h * hs;
        float s = 0.0f;
        for (int i = 0; i < hs; i++) { s += to_float(q[i]) * to_float(k[i]); }
        s *= scale;
        a[t] = s;
        m = fmaxf(m, s);
    }
    m = warp_max(m);
    if (lane == 0) { red[warp] = m; }
    __syncthreads();
    if (threadIdx.x == 0) {
        float x = red[0];
        for (int w = 1; w < nw; w++) { x = fmaxf(x, red[w]); }
        red[0] = x;
    }
    __syncthreads();
    m = red[0];
    __syncthreads();
    float sum = 0.0f;
    for (int t = threadIdx.x; t <= pos; t += blockDim.x) {
        float e = expf(a[t] - m);
        a[t] = e;
        sum += e;
    }
    sum = warp_sum(sum);
    if (lane == 0) { red[warp] = sum; }
    __syncthreads();
    if (threadIdx.x == 0) {
        float x = red[0];
        for (int w = 1; w < nw; w++) { x += red[w]; }
        red[0] = x;
    }
    __syncthreads(); // (also makes every thread's a[t] visible to the whole block)
    float inv = 1.0f / red[0];
    for (int i = threadIdx.x; i < hs; i += blockDim.x) {
        float o = 0.0f;
        for (int t = 0; t <= pos; t++) {
            o += a[t] * inv * to_float(vcache[(long)t * C + h * hs + i]);
        }
        out[h * hs + i] = to_floatX(o);
    }
}

// ----------------------------------------------------------------------------------------------
// Launchers: the same arguments as the CPU layers of train_gpt.c (plus scratch where needed)

static void encoder_forward_gpu(floatX* out, const int* inp, const floatX* wte, const floatX* wpe,
                                int B, int T, int C) {
    long n = (long)B * T * C;
    encoder_forward_kernel<<<ceil_div(n, ENC_THREADS), ENC_THREADS>>>(out, inp, wte, wpe, B, T, C);
    LAUNCH_CHECK("encoder_forward_kernel");
}

// buckets: the host's grouping of positions by token (see wte_backward_kernel)
static void encoder_backward_gpu(float* dwte, float* dwpe, const floatX* dout,
                                 const int* bucket_tok, const int* bucket_start,
                                 const int* bucket_len, const int* pos, int nbuckets, int B, int T,
                                 int C) {
    wpe_backward_kernel<<<ceil_div((long)T * C, ENC_THREADS), ENC_THREADS>>>(dwpe, dout, B, T, C);
    LAUNCH_CHECK("wpe_backward_kernel");
    wte_backward_kernel<<<nbuckets, ENC_THREADS>>>(dwte, dout, bucket_tok, bucket_start, bucket_len,
                                                   pos, C);
    LAUNCH_CHECK("wte_backward_kernel");
}

// res = a + b (b may be NULL: then res is not written and a is normalized), out = layernorm(res)
static void residual_layernorm_forward_gpu(floatX* res, floatX* out, float* mean, float* rstd,
                                           const floatX* a, const floatX* b, const floatX* w,
                                           const floatX* bias, int N, int C) {
    residual_layernorm_forward_kernel<<<ceil_div(N, LN_WARPS), LN_WARPS * 32>>>(
        res, out, mean, rstd, a, b, w, bias, N, C);
    LAUNCH_CHECK("residual_layernorm_forward_kernel");
}

// dst (C) += column sums of dout (N,C) [times norm when x is given]; part: 2*COL_CHUNKS*C floats
static void column_sums_gpu(float* dw, float* db, const floatX* dout, const floatX* x,
                            const float* mean, const float* rstd, int N, int C, float* part) {
    dim3 grid(ceil_div(C, COL_THREADS_X), COL_CHUNKS), block(COL_THREADS_X, COL_THREADS_Y);
    float* part_w = x != NULL ? part + (long)COL_CHUNKS * C : NULL;
    column_partials_kernel<<<grid, block>>>(part_w, part, dout, x, mean, rstd, N, C);
    LAUNCH_CHECK("column_partials_kernel");
    column_finish_kernel<<<ceil_div(C, 256), 256>>>(db, part, C);
    LAUNCH_CHECK("column_finish_kernel");
    if (x != NULL) {
        column_finish_kernel<<<ceil_div(C, 256), 256>>>(dw, part_w, C);
        LAUNCH_CHECK("column_finish_kernel");
    }
}

static void layernorm_backward_gpu(floatX* dinp, float* dweight, float* dbias, const floatX* dout,
                                   const floatX* inp, const floatX* weight, const float* mean,
                                   const float* rstd, int N, int C, float* part) {
    layernorm_backward_kernel<<<ceil_div(N, LN_WARPS), LN_WARPS * 32>>>(dinp, dout, inp, weight,
                                                                        mean, rstd, N, C);
    LAUNCH_CHECK("layernorm_backward_kernel");
    column_sums_gpu(dweight, dbias, dout, inp, mean, rstd, N, C, part);
}

// out (BT,OC) = inp (BT,C) @ weight^T (weight (OC,C)) + bias; with gelu_out: gelu_out = gelu(out)
static void matmul_forward_gpu(floatX* out, floatX* gelu_out, const floatX* inp,
                               const floatX* weight, const floatX* bias, int BT, int C, int OC,
                               int fuse_gelu) {
    // cuBLASLt's epilogue: gelu_out = gelu(acc + bias), out = acc + bias (aux ld: a multiple of 8)
    if (gelu_out != NULL && fuse_gelu && OC % 8 == 0) {
        matmul_lt(gelu_out, FLOATX_CUDA, OC, weight, 1, C, inp, 0, C, OC, BT, C, 1.0f, 0.0f, bias,
                  1, out, "matmul_forward+gelu");
        return;
    }
    matmul_lt(out, FLOATX_CUDA, OC, weight, 1, C, inp, 0, C, OC, BT, C, 1.0f, 0.0f, bias, 0, NULL,
              "matmul_forward");
    if (gelu_out != NULL) {
        long n = (long)BT * OC;
        gelu_forward_kernel<<<ceil_div(n, 256), 256>>>(gelu_out, out, n);
        LAUNCH_CHECK("gelu_forward_kernel");
    }
}

// dinp (BT,C) = scale * dout @ weight; dweight (OC,C) += scale * dout^T @ inp; dbias += colsum
// (dbias has no scale: only the lm head, which has no bias, is called with scale != 1)
static void matmul_backward_gpu(floatX* dinp, float* dweight, float* dbias, const floatX* dout,
                                const floatX* inp, const floatX* weight, int BT, int C, int OC,
                                float scale, float* part) {
    matmul_lt(dinp, FLOATX_CUDA, C, weight, 0, C, dout, 0, OC, C, BT, OC, scale, 0.0f, NULL, 0,
              NULL, "matmul_backward dinp");
    matmul_lt(dweight, CUDA_R_32F, C, inp, 0, C, dout, 1, OC, C, OC, BT, scale, 1.0f, NULL, 0, NULL,
              "matmul_backward dweight");
    if (dbias != NULL) { column_sums_gpu(NULL, dbias, dout, NULL, NULL, NULL, BT, OC, part); }
}

static void gelu_backward_gpu(floatX* dinp, const floatX* inp, const floatX* dout, long N) {
    gelu_backward_kernel<<<ceil_div(N, 256), 256>>>(dinp, inp, dout, N);
    LAUNCH_CHECK("gelu_backward_kernel");
}

// the kernels are instantiated for head sizes up to 16, 32, 64, 128
#define ATT_DISPATCH(hs, CALL)                                                                   \
    do { if ((hs) <= 16) { CALL(16); } else if ((hs) <= 32) { CALL(32); }                         \
         else if ((hs) <= 64) { CALL(64); } else if ((hs) <= 128) { CALL(128); }                  \
         else { die("head size %d > 128 is not supported by the attention kernels", hs); }         \
    } while (0)

// the kernels' view of site `site` of a forward's dropout (drop NULL: none)
static DropSite drop_site(const Dropout* drop, int site) {
    DropSite d = {0, 0, 1.0f};
    if (drop != NULL) {
        d.key = stream_key(drop->key, (uint64_t)site);
        d.threshold = drop->threshold;
        d.scale = drop->scale;
    }
    return d;
}

// out = in * mask / (1-p) at `site` (out may be in); nothing when drop is NULL and out is in
static void dropout_gpu(floatX* out, const floatX* in, long n, const Dropout* drop, int site) {
    if (drop == NULL) {
        if (out != in) {
            CUDA_CHECK(cudaMemcpy(out, in, (size_t)n * sizeof(floatX), cudaMemcpyDeviceToDevice));
        }
        return;
    }
    dropout_kernel<<<ceil_div(n, 256), 256>>>(out, in, n, drop_site(drop, site));
    LAUNCH_CHECK("dropout_kernel");
}

static void attention_forward_gpu(floatX* out, float* lse, const floatX* qkv, int B, int T, int C,
                                  int NH, const Dropout* drop, int site) {
    int hs = C / NH;
    DropSite ds = drop_site(drop, site);
#define ATT_FWD(D)                                                                               \
    { dim3 grid(ceil_div(T, AttTile<D>::FWD), NH, B);                                         \
      attention_forward_kernel<D><<<grid, AttTile<D>::FWD>>>(out, lse, qkv, T, C, NH, ds);      \
      LAUNCH_CHECK("attention_forward_kernel<" #D ">"); }
    ATT_DISPATCH(hs, ATT_FWD);
#undef ATT_FWD
}

static void attention_backward_gpu(floatX* dqkv, float* delta, const floatX* dout,
                                   const floatX* qkv, const floatX* out, const float* lse, int B,
                                   int T, int C, int NH, const Dropout* drop, int site) {
    int hs = C / NH;
    DropSite ds = drop_site(drop, site);
    long rows = (long)B * NH * T;
    attention_delta_kernel<<<ceil_div(rows, 256), 256>>>(delta, dout, out, B, T, C, NH);
    LAUNCH_CHECK("attention_delta_kernel");
#define ATT_BWD(D)                                                                               \
    { dim3 grid(ceil_div(T, AttTile<D>::BWD), NH, B);                                            \
      const int R = AttTile<D>::BWD;                                                             \
      attention_backward_dkdv_kernel<D><<<grid, R>>>(dqkv, dout, qkv, lse, delta, T, C, NH, ds); \
      LAUNCH_CHECK("attention_backward_dkdv_kernel<" #D ">");                                   \
      attention_backward_dq_kernel<D><<<grid, R>>>(dqkv, dout, qkv, lse, delta, T, C, NH, ds);   \
      LAUNCH_CHECK("attention_backward_dq_kernel<" #D ">"); }
    ATT_DISPATCH(hs, ATT_BWD);
#undef ATT_BWD
}

static void classifier_gpu(floatX* logits, float* losses, const int* targets, int BT, int V, int Vp,
                           float dscale, int write_dlogits) {
    classifier_kernel<<<BT, CLS_THREADS>>>(logits, losses, targets, V, Vp, dscale, write_dlogits);
    LAUNCH_CHECK("classifier_kernel");
}

// ----------------------------------------------------------------------------------------------
// The model on the GPU

#define X_FIELD_X(name, d0, d1, d2, init, decay) floatX* name;
typedef struct { GPT_PARAMETERS(X_FIELD_X) } ParameterTensorsX;
#undef X_FIELD_X

// Activations on the GPU, sized for (B,T). What the backward needs, per layer; attproj and fcproj
// are consumed at once by the residual adds and live in one scratch buffer. The attention keeps
// lse (B,NH,T) instead of the (B,NH,T,T) probabilities.
//   type    name       elements
#define GPU_ACTIVATIONS(X) \
    X(floatX, encoded, B* T* C) \
    X(floatX, ln1, L* B* T* C) \
    X(float, ln1_mean, L* B* T) \
    X(float, ln1_rstd, L* B* T) \
    X(floatX, qkv, L* B* T * 3 * C) \
    X(float, att_lse, L* B* NH* T) \
    X(floatX, atty, L* B* T* C) \
    X(floatX, residual2, L* B* T* C) \
    X(floatX, ln2, L* B* T* C) \
    X(float, ln2_mean, L* B* T) \
    X(float, ln2_rstd, L* B* T) \
    X(floatX, fch, L* B* T * 4 * C) \
    X(floatX, fch_gelu, L* B* T * 4 * C) \
    X(floatX, residual3, L* B* T* C) \
    X(floatX, lnf, B* T* C) \
    X(float, lnf_mean, B* T) \
    X(float, lnf_rstd, B* T) \
    X(floatX, logits, B* T* Vp) \
    X(float, losses, B* T) \
    X(floatX, proj, \
      B* T* \
          C) /* scratch: attproj, then fcproj; backward: a branch gradient through its dropout */ \
    X(floatX, dresidual, B* T* C) /* backward scratch, as in train_gpt.c */ \
    X(floatX, dx, B* T* C) \
    X(floatX, dqkv, B* T * 3 * C) \
    X(floatX, dfch, B* T * 4 * C) \
    X(float, att_delta, B* NH* T) \
    X(float, colpart, 2 * COL_CHUNKS * 4 * C) /* column-sum partials, OC <= 4C */

#define X_ACT_FIELD_GPU(type, name, n) type* name;
typedef struct { GPU_ACTIVATIONS(X_ACT_FIELD_GPU) } GpuActivations;
#undef X_ACT_FIELD_GPU

typedef struct {
    floatX* params_memory;  ParameterTensorsX params;   // the weights the kernels read
    float* master;                                      // (shard) fp32 master weights
    float* grads_memory;    ParameterTensors grads;     // fp32 gradients
    float* m;  float* v;                                // (shard) AdamW moments
    // data parallelism: params and grads are padded to n_pad = ranks * shard_pad elements; this
    // rank's master, m, v cover [shard_begin, shard_end) (all parameters without ZeRO-1)
    size_t n_pad, shard_pad;
#if GPT_NCCL
    ncclComm_t nccl;                                    // NULL on one process
#endif
    char* acts_memory;      GpuActivations acts;
    int alloc_B, alloc_T, B, T, has_targets;
    int fuse_gelu;                                      // GELU in the matmul epilogue
    int* inputs;  int* targets;                         // (alloc_B*alloc_T) on the GPU
    int* host_inputs;                                   // the last forward's inputs (buckets)
    int* buckets;  int* host_buckets;                   // 4 * BT ints: tok, start, len, positions
    double* norm_partial;   float* norm_coef;           // (NORM_BLOCKS), (2): norm, coef
    float* host_logits;  floatX* host_row;              // (Vp) one row for the sampler
    // generation (gpu_decode): keys and values (L, maxT, C) each, one position's activations,
    // the layernorm statistics (2) and the attention scores (NH, maxT); at the first decode
    floatX* kcache;  floatX* vcache;  floatX* dec;  float* dec_stats;  float* dec_att;
    float* host_losses;                                 // (BT)
} GpuModel;

// carves one block into the activation table for (B,T), 256-byte aligned pieces; NULL = count
static size_t gpu_activation_pointers(GpuActivations* t, char* memory, const GPTConfig* cfg,
                                      size_t B, size_t T) {
    size_t C = cfg->channels, L = cfg->num_layers, NH = cfg->num_heads, Vp = cfg->padded_vocab_size;
    size_t total = 0;
#define X_CARVE(type, name, n)                                                     \
    t->name = memory != NULL ? (type*)(memory + total) : NULL;                     \
    total += ((size_t)(n) * sizeof(type) + 255) / 256 * 256;
    GPU_ACTIVATIONS(X_CARVE)
#undef X_CARVE
    return total;
}

static GpuModel* gpu(const GPT* model) {
    if (model->device == NULL) { die("the GPU backend was used before attach"); }
    return (GpuModel*)model->device;
}

// the low-precision weights from the master weights of [shard_begin, shard_end); with ZeRO-1 over
// several ranks, then every rank's shard gathered into all of them
static void gpu_params_from_master(const GPT* model, GpuModel* g) {
    long b = (long)model->shard_begin, n = (long)(model->shard_end - model->shard_begin);
    if (n > 0) {
        params_from_master_kernel<<<ceil_div(n, 256), 256>>>(g->params_memory, g->master, b, n);
        LAUNCH_CHECK("params_from_master_kernel");
    }
#if GPT_NCCL
    if (model->zero && g_comm.size > 1) {
        floatX* mine = g->params_memory + (size_t)g_comm.rank * g->shard_pad;
        NCCL_CHECK(ncclAllGather(mine, g->params_memory, g->shard_pad, NCCL_FLOATX, g->nccl, 0));
    }
#endif
}

// one GPU per process: the rank on this machine picks it; NCCL's communicator over all ranks,
// bootstrapped over MPI (rank 0 makes the unique id and broadcasts it)
static void gpu_select_device(GpuModel* g) {
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        die("no CUDA device found (train_gptcu needs an NVIDIA GPU; train_gpt runs on the CPU)");
    }
    if (g_comm.size == 1) { return; }
#if GPT_NCCL
#ifndef GPT_CUDA_EMU // the emulator has one device that every rank may use
    if (g_comm.local_size > ndev) {
        die("%d processes on this machine but %d GPU(s): one GPU per process (mpirun -np at most "
            "%d per machine)",
            g_comm.local_size, ndev, ndev);
    }
    CUDA_CHECK(cudaSetDevice(g_comm.local_rank));
#endif
    ncclUniqueId id;
    if (g_comm.rank == 0) { NCCL_CHECK(ncclGetUniqueId(&id)); }
    comm_bcast_bytes(&id, sizeof(id), 0);
    NCCL_CHECK(ncclCommInitRank(&g->nccl, g_comm.size, id, g_comm.rank));
#else
    (void)g;
    die("train_gptcu was built without MPI and NCCL: it runs one process");
#endif
}

static void gpu_attach(GPT* model, int B, int T) {
    const GPTConfig* cfg = &model->config;
    GpuModel* g = (GpuModel*)calloc_or_die(1, sizeof(GpuModel));
    model->device = g;
    gpu_select_device(g);
    if (g_lt == NULL) {
        CUBLAS_CHECK(cublasLtCreate(&g_lt));
        CUDA_CHECK(cudaMalloc(&g_lt_workspace, LT_WORKSPACE_BYTES));
    }
    size_t n = model->num_parameters;
    size_t ns = model->shard_end - model->shard_begin; // this rank's master, m, v
    g->shard_pad = comm_shard_size(n, g_comm.size);
    g->n_pad = g->shard_pad * (size_t)g_comm.size;
    g->params_memory = cuda_alloc<floatX>(g->n_pad, "parameters");
    g->master = cuda_alloc<float>(ns, "master weights");
    g->grads_memory = cuda_alloc<float>(g->n_pad, "gradients");
    g->m = cuda_alloc<float>(ns, "AdamW m");
    g->v = cuda_alloc<float>(ns, "AdamW v");
    CUDA_CHECK(cudaMemcpy(g->master, model->params_memory + model->shard_begin, ns * sizeof(float),
                          cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemset(g->grads_memory, 0, g->n_pad * sizeof(float)));
    CUDA_CHECK(cudaMemset(g->params_memory, 0, g->n_pad * sizeof(floatX)));
    if (model->m_memory != NULL) { // resuming: the moments (this rank's shard) from the state file
        CUDA_CHECK(cudaMemcpy(g->m, model->m_memory, ns * sizeof(float), cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(g->v, model->v_memory, ns * sizeof(float), cudaMemcpyHostToDevice));
    } else {
        CUDA_CHECK(cudaMemset(g->m, 0, ns * sizeof(float)));
        CUDA_CHECK(cudaMemset(g->v, 0, ns * sizeof(float)));
    }
    gpu_params_from_master(model, g);
    int k = 0;
#define X_PTR_X(name, d0, d1, d2, init, decay) \
    g->params.name = g->params_memory + model->specs[k++].offset;
    GPT_PARAMETERS(X_PTR_X)
#undef X_PTR_X
    param_pointers(&g->grads, g->grads_memory, model->specs);

    size_t bytes = gpu_activation_pointers(&g->acts, NULL, cfg, (size_t)B, (size_t)T);
    g->acts_memory = cuda_alloc<char>(bytes, "activations");
    g->alloc_B = B; g->alloc_T = T;
    size_t BT = (size_t)B * T;
    g->inputs = cuda_alloc<int>(BT, "inputs");
    g->targets = cuda_alloc<int>(BT, "targets");
    g->buckets = cuda_alloc<int>(4 * BT, "token buckets");
    g->host_buckets = (int*)malloc_or_die(4 * BT * sizeof(int));
    g->host_inputs = (int*)malloc_or_die(BT * sizeof(int));
    g->norm_partial = cuda_alloc<double>(NORM_BLOCKS, "norm partials");
    g->norm_coef = cuda_alloc<float>(2, "norm");
    g->host_logits = (float*)malloc_or_die((size_t)cfg->padded_vocab_size * sizeof(float));
    g->host_row = (floatX*)malloc_or_die((size_t)cfg->padded_vocab_size * sizeof(floatX));
    g->host_losses = (float*)malloc_or_die(BT * sizeof(float));
#ifdef PRECISION_FP32
    g->fuse_gelu = 0; // checked against PyTorch at 1e-5: our own tanh GELU, not the library's
#else
    g->fuse_gelu = 1;
#endif
    const char* env = getenv("GPT_FUSE_GELU");
    if (env != NULL) { g->fuse_gelu = atoi(env) != 0; }
    CUDA_CHECK(cudaDeviceSynchronize());
}

// Layer l's slice of each per-layer weight (train_gpt.c's LAYER_SLICES, in floatX)
typedef struct {
    floatX *ln1w, *ln1b, *qkvw, *qkvb, *attprojw, *attprojb, *ln2w, *ln2b, *fcw, *fcb, *fcprojw,
        *fcprojb;
} LayerParamsX;

// The activations of one block on the GPU: layer l's slices (gpu_layer_acts), or gpu_decode's
// one-position buffers. N = B*T rows. The residual adds are fused with the layernorm after them,
// so a block starts from its input already normalized (ln1) and ends with the next layer's ln1
// (or the final lnf) in next_ln.
typedef struct {
    floatX* ln1; float *ln1_mean, *ln1_rstd;        // (N,C), (N), (N)
    floatX* qkv;                                    // (N,3C)
    float* att_lse;                                 // (B,NH,T): the training forward's softmax sums
    floatX *atty, *proj, *residual2;                // (N,C) each; proj: attproj, then fcproj
    floatX* ln2; float *ln2_mean, *ln2_rstd;        // (N,C), (N), (N)
    floatX *fch, *fch_gelu;                         // (N,4C) each
    floatX* residual3;                              // (N,C)
    floatX* next_ln; float *next_mean, *next_rstd;  // the next layer's ln1, or lnf
} GpuLayerActs;

static GpuLayerActs gpu_layer_acts(const GpuModel* g, const GPTConfig* cfg, int l) {
    const GpuActivations* a = &g->acts;
    size_t T = (size_t)g->T, BT = (size_t)g->B * T, C = (size_t)cfg->channels,
           NH = (size_t)cfg->num_heads;
    int last = l + 1 == cfg->num_layers;
    GpuLayerActs la = { a->ln1 + l * BT * C,
                        a->ln1_mean + l * BT,
                        a->ln1_rstd + l * BT,
                        a->qkv + l * BT * 3 * C,
                        a->att_lse + l * (size_t)g->B * NH * T,
                        a->atty + l * BT * C,
                        a->proj,
                        a->residual2 + l * BT * C,
                        a->ln2 + l * BT * C,
                        a->ln2_mean + l * BT,
                        a->ln2_rstd + l * BT,
                        a->fch + l * BT * 4 * C,
                        a->fch_gelu + l * BT * 4 * C,
                        a->residual3 + l * BT * C,
                        last ? a->lnf : a->ln1 + (l + 1) * BT * C,
                        last ? a->lnf_mean : a->ln1_mean + (l + 1) * BT,
                        last ? a->lnf_rstd : a->ln1_rstd + (l + 1) * BT };
    return la;
}

// generation's attention at position pos of layer l (as train_gpt.c's block_forward): the
// position's key and value join the KV cache, then decode_attention_kernel over positions 0..pos
static void attention_cached_gpu(floatX* out, const floatX* qkv, GpuModel* g, const GPTConfig* cfg,
                                 int l, int pos) {
    int C = cfg->channels, NH = cfg->num_heads, maxT = cfg->max_seq_len;
    floatX* keys = g->kcache + (size_t)l * maxT * C;
    floatX* values = g->vcache + (size_t)l * maxT * C;
    size_t bytes = (size_t)C * sizeof(floatX);
    CUDA_CHECK(cudaMemcpy(keys + (size_t)pos * C, qkv + C, bytes, cudaMemcpyDeviceToDevice));
    CUDA_CHECK(cudaMemcpy(values + (size_t)pos * C, qkv + 2 * C, bytes, cudaMemcpyDeviceToDevice));
    decode_attention_kernel<<<NH, 256>>>(out, g->dec_att, qkv, keys, values, pos, C, NH, maxT);
    LAUNCH_CHECK("decode_attention_kernel");
}

// One transformer block (train_gpt.c's block_forward) over N = B*T rows of the residual stream x,
// whose layernorm a->ln1 already holds; pos >= 0: generation, one row against the KV cache.
static void block_forward_gpu(GpuModel* g, const GPTConfig* cfg, int l, const GpuLayerActs* a,
                              const floatX* x, int B, int T, const Dropout* drop, int pos) {
    int C = cfg->channels, N = B * T;
    const ParameterTensorsX* p = &g->params;
    LayerParamsX w = LAYER_SLICES(*p, l, (size_t)C);
    matmul_forward_gpu(a->qkv, NULL, a->ln1, w.qkvw, w.qkvb, N, C, 3 * C, 0);
    if (pos >= 0) { attention_cached_gpu(a->atty, a->qkv, g, cfg, l, pos);
    } else {
        attention_forward_gpu(a->atty, a->att_lse, a->qkv, B, T, C, cfg->num_heads, drop,
                              1 + 3 * l);
    }
    matmul_forward_gpu(a->proj, NULL, a->atty, w.attprojw, w.attprojb, N, C, C, 0);
    if (drop != NULL) { dropout_gpu(a->proj, a->proj, (long)N * C, drop, 2 + 3 * l); }
    // residual2 = x + attproj; ln2 = layernorm(residual2)
    residual_layernorm_forward_gpu(a->residual2, a->ln2, a->ln2_mean, a->ln2_rstd, x, a->proj,
                                   w.ln2w, w.ln2b, N, C);
    matmul_forward_gpu(a->fch, a->fch_gelu, a->ln2, w.fcw, w.fcb, N, C, 4 * C, g->fuse_gelu);
    matmul_forward_gpu(a->proj, NULL, a->fch_gelu, w.fcprojw, w.fcprojb, N, 4 * C, C, 0);
    if (drop != NULL) { dropout_gpu(a->proj, a->proj, (long)N * C, drop, 3 + 3 * l); }
    // residual3 = residual2 + fcproj; then the next layer's ln1, or the final lnf
    int last = l + 1 == cfg->num_layers;
    const floatX* nw = last ? p->lnfw : p->ln1w + (size_t)(l + 1) * C;
    const floatX* nb = last ? p->lnfb : p->ln1b + (size_t)(l + 1) * C;
    residual_layernorm_forward_gpu(a->residual3, a->next_ln, a->next_mean, a->next_rstd,
                                   a->residual2, a->proj, nw, nb, N, C);
}

static float gpu_forward(GPT* model, const int* inputs, const int* targets, int B, int T) {
    GpuModel* g = gpu(model);
    const GPTConfig* cfg = &model->config;
    int V = cfg->vocab_size, Vp = cfg->padded_vocab_size, L = cfg->num_layers, C = cfg->channels;
    gpt_check_batch(cfg, inputs, targets, B, T);
    if (B > g->alloc_B || T > g->alloc_T) {
        die("batch (B=%d, T=%d) is larger than the (B=%d, T=%d) the GPU activations were allocated "
            "for",
            B, T, g->alloc_B, g->alloc_T);
    }
    gpu_activation_pointers(&g->acts, g->acts_memory, cfg, (size_t)B, (size_t)T); // (B,T)'s layout
    g->B = B; g->T = T; g->has_targets = targets != NULL;
    int BT = B * T;
    size_t sBT = (size_t)BT;
    memcpy(g->host_inputs, inputs, sBT * sizeof(int));
    CUDA_CHECK(cudaMemcpy(g->inputs, inputs, sBT * sizeof(int), cudaMemcpyHostToDevice));
    if (targets != NULL) {
        CUDA_CHECK(cudaMemcpy(g->targets, targets, sBT * sizeof(int), cudaMemcpyHostToDevice));
    }
    ParameterTensorsX p = g->params;
    GpuActivations a = g->acts;
    model->fwd_dropout = model->dropout; // its backward uses these masks
    const Dropout* drop = model->dropout.threshold > 0 ? &model->fwd_dropout : NULL;

    encoder_forward_gpu(a.encoded, g->inputs, p.wte, p.wpe, B, T, C);
    if (drop != NULL) { dropout_gpu(a.encoded, a.encoded, (long)sBT * C, drop, 0); }
    residual_layernorm_forward_gpu(NULL, a.ln1, a.ln1_mean, a.ln1_rstd, a.encoded, NULL, p.ln1w,
                                   p.ln1b, BT, C);
    for (int l = 0; l < L; l++) {
        GpuLayerActs la = gpu_layer_acts(g, cfg, l);
        block_forward_gpu(g, cfg, l, &la, l == 0 ? a.encoded : a.residual3 + (l - 1) * sBT * C, B,
                          T, drop, -1);
    }
    matmul_forward_gpu(a.logits, NULL, a.lnf, p.wte, NULL, BT, C, Vp, 0); // lm head tied to wte
    if (targets == NULL) { return -1.0f; }
    // loss, and d(mean loss)/d(logits) = (softmax - onehot) / BT in place of the logits
    classifier_gpu(a.logits, a.losses, g->targets, BT, V, Vp, 1.0f / (float)BT, 1);
    CUDA_CHECK(cudaMemcpy(g->host_losses, a.losses, sBT * sizeof(float), cudaMemcpyDeviceToHost));
    double sum = 0.0;
    for (int i = 0; i < BT; i++) { sum += g->host_losses[i]; }
    return (float)(sum / BT);
}

// groups the positions of the last forward's inputs by token (counting sort, positions ascending)
static int gpu_token_buckets(GpuModel* g, int V) {
    int BT = g->B * g->T;
    int* tok = g->host_buckets;
    int* start = tok + BT;
    int* len = start + BT;
    int* pos = len + BT;
    int* count = (int*)calloc_or_die((size_t)V, sizeof(int));
    for (int i = 0; i < BT; i++) { count[g->host_inputs[i]]++; }
    int nb = 0, at = 0;
    for (int v = 0; v < V; v++) {
        if (count[v] == 0) { continue; }
        tok[nb] = v; start[nb] = at; len[nb] = count[v];
        count[v] = at; // becomes the next free slot of v
        at += len[nb]; nb++;
    }
    for (int i = 0; i < BT; i++) { pos[count[g->host_inputs[i]]++] = i; }
    free(count);
    // upload as laid out on the host (4 arrays of BT)
    CUDA_CHECK(cudaMemcpy(g->buckets, g->host_buckets, 4 * (size_t)BT * sizeof(int),
                          cudaMemcpyHostToDevice));
    return nb;
}

// The backward of block_forward_gpu (train_gpt.c's block_backward): on entry dresidual holds
// d(residual3), on return d(x). A branch's gradient through its dropout mask goes to the proj
// buffer, free in the backward.
static void block_backward_gpu(GpuModel* g, const GPTConfig* cfg, int l, const GpuLayerActs* a,
                               const floatX* x, const Dropout* drop) {
    int C = cfg->channels, N = g->B * g->T;
    LayerParamsX w = LAYER_SLICES(g->params, l, (size_t)C);
    LayerParams gr = LAYER_SLICES(g->grads, l, (size_t)C);
    GpuActivations s = g->acts;
    float* part = s.colpart;
    // fcproj = fch_gelu @ fcprojw^T + fcprojb; dresidual is d(fcproj) (through its dropout)
    const floatX* dbranch = drop != NULL ? s.proj : s.dresidual;
    if (drop != NULL) { dropout_gpu(s.proj, s.dresidual, (long)N * C, drop, 3 + 3 * l); }
    matmul_backward_gpu(s.dfch, gr.fcprojw, gr.fcprojb, dbranch, a->fch_gelu, w.fcprojw, N, 4 * C,
                        C, 1.0f, part);
    gelu_backward_gpu(s.dfch, a->fch, s.dfch, (long)N * 4 * C);
    matmul_backward_gpu(s.dx, gr.fcw, gr.fcb, s.dfch, a->ln2, w.fcw, N, C, 4 * C, 1.0f, part);
    layernorm_backward_gpu(s.dresidual, gr.ln2w, gr.ln2b, s.dx, a->residual2, w.ln2w, a->ln2_mean,
                           a->ln2_rstd, N, C, part);
    if (drop != NULL) { dropout_gpu(s.proj, s.dresidual, (long)N * C, drop, 2 + 3 * l); }
    matmul_backward_gpu(s.dx, gr.attprojw, gr.attprojb, dbranch, a->atty, w.attprojw, N, C, C, 1.0f,
                        part);
    attention_backward_gpu(s.dqkv, s.att_delta, s.dx, a->qkv, a->atty, a->att_lse, g->B, g->T, C,
                           cfg->num_heads, drop, 1 + 3 * l);
    matmul_backward_gpu(s.dx, gr.qkvw, gr.qkvb, s.dqkv, a->ln1, w.qkvw, N, C, 3 * C, 1.0f, part);
    layernorm_backward_gpu(s.dresidual, gr.ln1w, gr.ln1b, s.dx, x, w.ln1w, a->ln1_mean, a->ln1_rstd,
                           N, C, part);
}

static void gpu_backward(GPT* model, float loss_scale) {
    GpuModel* g = gpu(model);
    const GPTConfig* cfg = &model->config;
    int Vp = cfg->padded_vocab_size, L = cfg->num_layers, C = cfg->channels;
    int B = g->B, T = g->T, BT = B * T;
    if (!g->has_targets) { die("gpu_backward: the last forward had no targets"); }
    ParameterTensorsX p = g->params;
    ParameterTensors gr = g->grads;
    GpuActivations a = g->acts;
    size_t sBT = (size_t)BT;
    const Dropout* drop = model->fwd_dropout.threshold > 0 ? &model->fwd_dropout : NULL;

    // logits = lnf @ wte^T; the logits buffer holds dlogits for a loss scale of 1
    matmul_backward_gpu(a.dx, gr.wte, NULL, a.logits, a.lnf, p.wte, BT, C, Vp, loss_scale,
                        a.colpart);
    CUDA_CHECK(cudaMemset(a.dresidual, 0, sBT * C * sizeof(floatX)));
    layernorm_backward_gpu(a.dresidual, gr.lnfw, gr.lnfb, a.dx, a.residual3 + (L - 1) * sBT * C,
                           p.lnfw, a.lnf_mean, a.lnf_rstd, BT, C, a.colpart);
    for (int l = L - 1; l >= 0; l--) {
        GpuLayerActs la = gpu_layer_acts(g, cfg, l);
        block_backward_gpu(g, cfg, l, &la, l == 0 ? a.encoded : a.residual3 + (l - 1) * sBT * C,
                           drop);
    }
    if (drop != NULL) { dropout_gpu(a.dresidual, a.dresidual, (long)sBT * C, drop, 0); } // encoded
    int nb = gpu_token_buckets(g, cfg->vocab_size);
    int* bk = g->buckets;
    encoder_backward_gpu(gr.wte, gr.wpe, a.dresidual, bk, bk + BT, bk + 2 * BT, bk + 3 * BT, nb, B,
                         T, C);
}

// Clip + AdamW. With several ranks (NCCL): the gradients (each rank's sum over its micro-batches,
// scaled for the global mean) are all-reduced, or with ZeRO-1 reduce-scattered so each rank holds
// the sum for its shard; the norm's partial sums are then added over the ranks (a fixed grid, so
// a fixed order); each rank updates its shard and the new weights are all-gathered.
static float gpu_step(GPT* model, float grad_clip, float lr, float beta1, float beta2, float eps,
                      float weight_decay, int t) {
    GpuModel* g = gpu(model);
    size_t sb = model->shard_begin, se = model->shard_end;
    int sharded = model->zero && g_comm.size > 1;
#if GPT_NCCL
    if (g_comm.size > 1) {
        if (sharded) {
            float* mine = g->grads_memory + (size_t)g_comm.rank * g->shard_pad;
            NCCL_CHECK(ncclReduceScatter(g->grads_memory, mine, g->shard_pad, ncclFloat, ncclSum,
                                         g->nccl, 0));
        } else {
            NCCL_CHECK(ncclAllReduce(g->grads_memory, g->grads_memory, model->num_parameters,
                                     ncclFloat, ncclSum, g->nccl, 0));
        }
    }
#endif
    norm_partials_kernel<<<NORM_BLOCKS, NORM_THREADS>>>(g->norm_partial, g->grads_memory + sb,
                                                        (long)(se - sb));
    LAUNCH_CHECK("norm_partials_kernel");
#if GPT_NCCL
    if (sharded) {
        NCCL_CHECK(ncclAllReduce(g->norm_partial, g->norm_partial, NORM_BLOCKS, ncclDouble, ncclSum,
                                 g->nccl, 0));
    }
#endif
    norm_finish_kernel<<<1, 32>>>(g->norm_coef, g->norm_partial, grad_clip);
    LAUNCH_CHECK("norm_finish_kernel");
    // each tensor's part of [sb, se) and its decay, and the step's scalars: as gpt_update's
    AdamTable tab;
    long largest = 0;
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        size_t lo, hi;
        tab.decay[k] = adamw_tensor(model, k, lr, weight_decay, &lo, &hi);
        tab.offset[k] = (long)lo;
        tab.size[k] = hi > lo ? (long)(hi - lo) : 0;
        if (tab.size[k] > largest) { largest = tab.size[k]; }
    }
    float step_size, bc2_sqrt;
    adamw_corrections(lr, beta1, beta2, t, &step_size, &bc2_sqrt);
    int gx = ceil_div(largest > 0 ? largest : 1, ADAM_THREADS);
    if (gx > 1024) { gx = 1024; } // grid-stride beyond that
    dim3 grid(gx, NUM_PARAMETER_TENSORS);
    adamw_kernel<<<grid, ADAM_THREADS>>>(g->params_memory, g->master, g->grads_memory, g->m, g->v,
                                         g->norm_coef, tab, (long)sb, beta1, beta2, eps, step_size,
                                         bc2_sqrt);
    LAUNCH_CHECK("adamw_kernel");
    if (sharded) {
        // the other ranks' parts of the gradient buffer held the reduce-scatter's input: zero them
        CUDA_CHECK(cudaMemset(g->grads_memory, 0, sb * sizeof(float)));
        CUDA_CHECK(cudaMemset(g->grads_memory + se, 0, (g->n_pad - se) * sizeof(float)));
#if GPT_NCCL
        floatX* mine = g->params_memory + (size_t)g_comm.rank * g->shard_pad;
        NCCL_CHECK(ncclAllGather(mine, g->params_memory, g->shard_pad, NCCL_FLOATX, g->nccl, 0));
#endif
    }
    float norm_coef[2];
    CUDA_CHECK(cudaMemcpy(norm_coef, g->norm_coef, sizeof(norm_coef), cudaMemcpyDeviceToHost));
    return norm_coef[0];
}

// Generation with the KV cache (train_gpt.c's gpt_decode): block_forward_gpu on one row at position
// pos. Returns the (Vp) logits of position pos, on the host.
static const float* gpu_decode(GPT* model, int token, int pos) {
    GpuModel* g = gpu(model);
    const GPTConfig* cfg = &model->config;
    int C = cfg->channels, L = cfg->num_layers, NH = cfg->num_heads, Vp = cfg->padded_vocab_size;
    int maxT = cfg->max_seq_len;
    if (pos < 0 || pos >= maxT) {
        die("gpu_decode: position %d outside the context [0, %d)", pos, maxT);
    }
    if (token < 0 || token >= cfg->vocab_size) {
        die("gpu_decode: token %d outside [0, %d)", token, cfg->vocab_size);
    }
    size_t cache = (size_t)L * maxT * C;
    if (g->kcache == NULL) {
        g->kcache = cuda_alloc<floatX>(cache, "KV cache (keys)");
        g->vcache = cuda_alloc<floatX>(cache, "KV cache (values)");
        g->dec = cuda_alloc<floatX>(16 * (size_t)C + (size_t)Vp, "decode activations");
        g->dec_stats = cuda_alloc<float>(2, "decode layernorm statistics");
        g->dec_att = cuda_alloc<float>((size_t)NH * maxT, "decode attention scores");
    }
    // one position's activations: x is the residual stream in and out, ln serves every layernorm,
    // proj both projections
    floatX* x = g->dec;                // (C)
    floatX* ln = x + C;                // (C)
    floatX* qkv = ln + C;              // (3C)
    floatX* atty = qkv + 3 * C;        // (C)
    floatX* proj = atty + C;           // (C)
    floatX* res2 = proj + C;           // (C)
    floatX* fch = res2 + C;            // (4C)
    floatX* fch_gelu = fch + 4 * C;    // (4C)
    floatX* logits = fch_gelu + 4 * C; // (Vp)
    float* mean = g->dec_stats;
    float* rstd = mean + 1;
    GpuLayerActs a = { ln,   mean, rstd, qkv,      NULL, atty, proj, res2, ln,
                       mean, rstd, fch,  fch_gelu, x,    ln,   mean, rstd };
    ParameterTensorsX p = g->params;
    decode_embed_kernel<<<ceil_div(C, 256), 256>>>(x, p.wte, p.wpe, token, pos, C);
    LAUNCH_CHECK("decode_embed_kernel");
    residual_layernorm_forward_gpu(NULL, ln, mean, rstd, x, NULL, p.ln1w, p.ln1b, 1, C);
    for (int l = 0; l < L; l++) { block_forward_gpu(g, cfg, l, &a, x, 1, 1, NULL, pos); }
    matmul_forward_gpu(logits, NULL, ln, p.wte, NULL, 1, C, Vp, 0); // lm head tied to wte
    CUDA_CHECK(
        cudaMemcpy(g->host_row, logits, (size_t)Vp * sizeof(floatX), cudaMemcpyDeviceToHost));
    for (int v = 0; v < Vp; v++) { g->host_logits[v] = to_float(g->host_row[v]); }
    return g->host_logits;
}

static const float* gpu_logits(GPT* model, int b, int t) {
    GpuModel* g = gpu(model);
    int Vp = model->config.padded_vocab_size;
    if (g->has_targets) {
        die("gpu_logits: the last forward had targets (its logits became gradients)");
    }
    floatX* row = g->host_row;
    CUDA_CHECK(cudaMemcpy(row, g->acts.logits + ((size_t)b * g->T + t) * Vp,
                          (size_t)Vp * sizeof(floatX), cudaMemcpyDeviceToHost));
    for (int v = 0; v < Vp; v++) { g->host_logits[v] = to_float(row[v]); }
    return g->host_logits;
}

// the per-position losses of the last forward (copied to the host by gpu_forward: B*T floats)
static const float* gpu_losses(GPT* model) {
    GpuModel* g = gpu(model);
    if (!g->has_targets) { die("gpu_losses: the last forward had no targets"); }
    return g->host_losses;
}

// the master weights of [shard_begin, shard_end) into the host weights, and the moments of the
// shard into the host m, v (see Backend.to_host: with ZeRO-1 the caller gathers the shards)
static void gpu_to_host(GPT* model) {
    GpuModel* g = gpu(model);
    size_t ns = model->shard_end - model->shard_begin;
    if (model->m_memory == NULL) {
        model->m_memory = (float*)malloc_or_die(ns * sizeof(float));
        model->v_memory = (float*)malloc_or_die(ns * sizeof(float));
    }
    CUDA_CHECK(cudaMemcpy(model->params_memory + model->shard_begin, g->master, ns * sizeof(float),
                          cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(model->m_memory, g->m, ns * sizeof(float), cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(model->v_memory, g->v, ns * sizeof(float), cudaMemcpyDeviceToHost));
}

static void gpu_summary(const GPT* model) {
    (void)model;
    size_t free_b = 0, total_b = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    printf("gpu: %s (sm_%d%d) | %s | memory in use %.0f MiB of %.0f MiB\n", prop.name, prop.major,
           prop.minor, PRECISION_NAME, (double)(total_b - free_b) / 1048576.0,
           (double)total_b / 1048576.0);
}

static void gpu_detach(GPT* model) {
    GpuModel* g = (GpuModel*)model->device;
    if (g == NULL) { return; }
    CUDA_CHECK(cudaDeviceSynchronize());
    void* dev[] = { g->params_memory, g->master, g->grads_memory, g->m,       g->v,
                    g->acts_memory,   g->inputs, g->targets,      g->buckets, g->norm_partial,
                    g->norm_coef,     g->kcache, g->vcache,       g->dec,     g->dec_stats,
                    g->dec_att };
    for (size_t i = 0; i < sizeof(dev) / sizeof(dev[0]); i++) { CUDA_CHECK(cudaFree(dev[i])); }
#if GPT_NCCL
    if (g->nccl != NULL) { NCCL_CHECK(ncclCommDestroy(g->nccl)); }
#endif
    free(g->host_buckets);
    free(g->host_inputs);
    free(g->host_logits);
    free(g->host_row);
    free(g->host_losses);
    free(g);
    model->device = NULL;
}

static const Backend gpu_backend = { "cuda " PRECISION_NAME,
                                     gpu_attach,
                                     gpu_forward,
                                     gpu_backward,
                                     gpu_step,
                                     gpu_logits,
                                     gpu_losses,
                                     gpu_to_host,
                                     gpu_summary,
                                     gpu_detach,
                                     gpu_decode };

#ifndef GPT_NO_MAIN_CU // test_gpt.c (as CUDA) and the kernel lab include this file: their own mains
int main(int argc, char** argv) { return train_main(argc, argv, &gpu_backend); }
#endif
