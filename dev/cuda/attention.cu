/*
dev/cuda/attention.cu -- kernel lab: causal multi-head attention without the (T,T) matrix.
Forward: out = softmax(scale q k^T, causal) v per head, plus lse = log sum exp of each score row;
backward: dqkv from dout, recomputing the probabilities from q, k and lse.

Versions (argv[1], default all):
  1  one thread per (b, h, query row) for the forward (two passes over the keys: max, then sums)
     and for dq; one thread per (b, h, key row) for dk, dv. No shared memory, no barriers.
  2  train_gpt.cu: attention_forward_gpu (flash forward: K/V tiles in shared memory, online
     softmax), attention_backward_gpu (delta, then the dk/dv and dq kernels)
Reference: train_gpt.c attention_forward / attention_backward in float, which materialise the
(B,NH,T,T) probabilities; lse in double from the same scores.

The backward is fed the REFERENCE forward (out rounded to floatX, lse), so it is checked on its
own, whatever the forward version did. Version 2 is also checked with dropout on the
probabilities (p = 0.2: train_gpt.c's masks) against the reference with the same dropout.

Build: make -C dev/cuda (GPU) or make -C dev/cuda emu-test (CPU emulator).
*/
#define GPT_NO_MAIN_CU
#ifdef GPT_CUDA_EMU
#include GPT_CUDA_EMU_SOURCE // provides: train_gpt.cu rewritten by emu_build.sh (see dev/cuda/Makefile)
#else
#include "train_gpt.cu" // provides: the kernels + launchers, and (via train_gpt.c) the CPU layers
#endif
#include "dev/cuda/common.h" // provides: random inputs, buffers, check, expect_rejection, time_ms

// shapes: B batch, T time, C channels, NH heads, hs = C/NH head size; qkv (B,T,3C): head h of
// position t has q at channel h*hs, k at C + h*hs, v at 2C + h*hs; lse, delta (B,NH,T)

#define V1_MAX_HS 128 // version 1 keeps a row of o / dk / dv / dq in registers (local memory)

// ------------------------------------------------------------------------------------------------
// version 1

__global__ void attention_forward_v1_kernel(floatX* out, float* lse, const floatX* qkv, int B, int T, int C, int NH) {
    long idx = (long)blockIdx.x * blockDim.x + threadIdx.x; // over (b, h, i)
    if (idx >= (long)B * NH * T) { return; }
    int i = (int)(idx % T), h = (int)((idx / T) % NH);
    long b = idx / ((long)T * NH);
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    const floatX* q = qkv + (b * T + i) * 3 * C + h * hs;
    float m = -INFINITY;
    for (int j = 0; j <= i; j++) {
        const floatX* k = qkv + (b * T + j) * 3 * C + C + h * hs;
        float s = 0.0f;
        for (int e = 0; e < hs; e++) { s += to_float(q[e]) * to_float(k[e]); }
        m = fmaxf(m, s * scale);
    }
    float o[V1_MAX_HS];
    for (int e = 0; e < hs; e++) { o[e] = 0.0f; }
    float l = 0.0f;
    for (int j = 0; j <= i; j++) {
        const floatX* k = qkv + (b * T + j) * 3 * C + C + h * hs;
        const floatX* v = qkv + (b * T + j) * 3 * C + 2 * C + h * hs;
        float s = 0.0f;
        for (int e = 0; e < hs; e++) { s += to_float(q[e]) * to_float(k[e]); }
        float p = expf(s * scale - m);
        l += p;
        for (int e = 0; e < hs; e++) { o[e] += p * to_float(v[e]); }
    }
    floatX* orow = out + (b * T + i) * C + h * hs;
    for (int e = 0; e < hs; e++) { orow[e] = to_floatX(o[e] / l); }
    lse[idx] = m + logf(l);
}

// delta_i = rowsum(dout_i * out_i): the sum over j of p_ij dp_ij that the softmax backward needs
__global__ void attention_delta_v1_kernel(float* delta, const floatX* dout, const floatX* out, int B, int T, int C, int NH) {
    long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long)B * NH * T) { return; }
    int i = (int)(idx % T), h = (int)((idx / T) % NH);
    long b = idx / ((long)T * NH);
    int hs = C / NH;
    float s = 0.0f;
    for (int e = 0; e < hs; e++) {
        s += to_float(dout[(b * T + i) * C + h * hs + e]) * to_float(out[(b * T + i) * C + h * hs + e]);
    }
    delta[idx] = s;
}

// p_ij = exp(scale q_i.k_j - lse_i); ds_ij = p_ij (dout_i.v_j - delta_i)
// dv_j = sum_{i>=j} p_ij dout_i;  dk_j = scale sum_{i>=j} ds_ij q_i
__global__ void attention_dkdv_v1_kernel(floatX* dqkv, const floatX* dout, const floatX* qkv, const float* lse,
                                         const float* delta, int B, int T, int C, int NH) {
    long idx = (long)blockIdx.x * blockDim.x + threadIdx.x; // over (b, h, j)
    if (idx >= (long)B * NH * T) { return; }
    int j = (int)(idx % T), h = (int)((idx / T) % NH);
    long b = idx / ((long)T * NH);
    long bh = b * NH + h;
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    const floatX* k = qkv + (b * T + j) * 3 * C + C + h * hs;
    const floatX* v = qkv + (b * T + j) * 3 * C + 2 * C + h * hs;
    float dk[V1_MAX_HS], dv[V1_MAX_HS];
    for (int e = 0; e < hs; e++) { dk[e] = 0.0f; dv[e] = 0.0f; }
    for (int i = j; i < T; i++) {
        const floatX* q = qkv + (b * T + i) * 3 * C + h * hs;
        const floatX* d = dout + (b * T + i) * C + h * hs;
        float s = 0.0f, dp = 0.0f;
        for (int e = 0; e < hs; e++) { s += to_float(q[e]) * to_float(k[e]); dp += to_float(d[e]) * to_float(v[e]); }
        float p = expf(s * scale - lse[bh * T + i]);
        float ds = p * (dp - delta[bh * T + i]);
        for (int e = 0; e < hs; e++) { dv[e] += p * to_float(d[e]); dk[e] += ds * to_float(q[e]); }
    }
    floatX* row = dqkv + (b * T + j) * 3 * C;
    for (int e = 0; e < hs; e++) {
        row[C + h * hs + e] = to_floatX(dk[e] * scale);
        row[2 * C + h * hs + e] = to_floatX(dv[e]);
    }
}

// dq_i = scale sum_{j<=i} ds_ij k_j
__global__ void attention_dq_v1_kernel(floatX* dqkv, const floatX* dout, const floatX* qkv, const float* lse,
                                       const float* delta, int B, int T, int C, int NH) {
    long idx = (long)blockIdx.x * blockDim.x + threadIdx.x; // over (b, h, i)
    if (idx >= (long)B * NH * T) { return; }
    int i = (int)(idx % T), h = (int)((idx / T) % NH);
    long b = idx / ((long)T * NH);
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    const floatX* q = qkv + (b * T + i) * 3 * C + h * hs;
    const floatX* d = dout + (b * T + i) * C + h * hs;
    float dq[V1_MAX_HS];
    for (int e = 0; e < hs; e++) { dq[e] = 0.0f; }
    for (int j = 0; j <= i; j++) {
        const floatX* k = qkv + (b * T + j) * 3 * C + C + h * hs;
        const floatX* v = qkv + (b * T + j) * 3 * C + 2 * C + h * hs;
        float s = 0.0f, dp = 0.0f;
        for (int e = 0; e < hs; e++) { s += to_float(q[e]) * to_float(k[e]); dp += to_float(d[e]) * to_float(v[e]); }
        float p = expf(s * scale - lse[idx]);
        float ds = p * (dp - delta[idx]);
        for (int e = 0; e < hs; e++) { dq[e] += ds * to_float(k[e]); }
    }
    floatX* row = dqkv + (b * T + i) * 3 * C + h * hs;
    for (int e = 0; e < hs; e++) { row[e] = to_floatX(dq[e] * scale); }
}


// ------------------------------------------------------------------------------------------------
// version 3: tensor cores (nvcuda::wmma, bf16 16x16x16 products, fp32 accumulation), for GPT-2's
// head size 64, T a multiple of 32, bf16. Not yet timed on a GPU: the candidate to replace the
// trainer's CUDA-core attention (dev/cuda/NOTES.md, item 1).
// A block is 2 warps; a warp owns 16 rows (queries in the forward and dQ, keys in dK/dV) and
// multiplies 16x16 tiles. The online softmax needs whole rows, and WMMA does not say which lane
// holds which element of a fragment: so S and P V go through shared memory, where lane pairs
// own rows (lane / 2 = row, lane % 2 = which half of the columns). P and dS are rounded to bf16
// for the tensor-core products (FlashAttention does the same); the row sums stay in fp32.
#ifndef PRECISION_FP32
#ifndef GPT_CUDA_EMU
#include <mma.h>
#endif
namespace wmma = nvcuda::wmma;
#define TC_WARPS 2
#define TC_ROWS (16 * TC_WARPS) // rows a block, and keys / queries a tile
#define TC_D 64
#define TC_LDX (TC_D + 8)       // bf16 row stride of (.., 64) tiles: a multiple of 8, padded
#define TC_LDF (TC_D + 4)       // fp32 row stride of (16, 64) tiles: a multiple of 4
#define TC_LDP (TC_ROWS + 8)    // bf16 row stride of (16, 32) tiles
#define TC_LDS (TC_ROWS + 4)    // fp32 row stride of (16, 32) tiles
typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> FragA;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> FragB;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> FragBt; // B^T of a row-major tile
typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> FragC;

// rows [r0, r0 + TC_ROWS) of one head's 64 channels at offset `off` of a (T, ld) bf16 tensor
__device__ static void tc_load_tile(floatX (*dst)[TC_LDX], const floatX* base, int r0, long ld, int off) {
    for (int e = threadIdx.x; e < TC_ROWS * TC_D; e += blockDim.x) {
        int r = e / TC_D, d = e % TC_D;
        dst[r][d] = base[(long)(r0 + r) * ld + off + d];
    }
}

// out (16, 32; row stride ld) fp32 = a (16, 64) x b^T, b a (32, 64) row-major bf16 tile (b^T read
// as col_major)
__device__ static void tc_rows_times_tile_t(float* out, int ld, const FragA* a, const floatX (*b)[TC_LDX]) {
    for (int n = 0; n < TC_ROWS / 16; n++) {
        FragC acc;
        wmma::fill_fragment(acc, 0.0f);
        for (int k = 0; k < TC_D / 16; k++) {
            FragBt bt;
            wmma::load_matrix_sync(bt, &b[n * 16][k * 16], TC_LDX);
            wmma::mma_sync(acc, a[k], bt, acc);
        }
        wmma::store_matrix_sync(out + n * 16, acc, ld, wmma::mem_row_major);
    }
}

// acc[n] (16, 64 as 4 fragments) += p (16, 32) bf16 row-major x b (32, 64) row-major bf16 tile
__device__ static void tc_acc_p_times_tile(FragC* acc, const floatX* p, const floatX (*b)[TC_LDX]) {
    for (int k = 0; k < TC_ROWS / 16; k++) {
        FragA pa;
        wmma::load_matrix_sync(pa, p + k * 16, TC_LDP);
        for (int n = 0; n < TC_D / 16; n++) {
            FragB bb;
            wmma::load_matrix_sync(bb, &b[k * 16][n * 16], TC_LDX);
            wmma::mma_sync(acc[n], pa, bb, acc[n]);
        }
    }
}

// writes 4 accumulator fragments (16, 64) * scale as bf16 rows to dst (row stride ld), via fp32 smem
__device__ static void tc_store_rows(floatX* dst, long ld, FragC* acc, float scale, float (*stage)[TC_LDF]) {
    for (int n = 0; n < TC_D / 16; n++) {
        for (int i = 0; i < acc[n].num_elements; i++) { acc[n].x[i] *= scale; }
        wmma::store_matrix_sync(&stage[0][n * 16], acc[n], TC_LDF, wmma::mem_row_major);
    }
    __syncwarp();
    int lane = threadIdx.x % 32, r = lane / 2, c0 = (lane % 2) * 32;
    for (int c = c0; c < c0 + 32; c++) { dst[(long)r * ld + c] = to_floatX(stage[r][c]); }
}

__global__ void attention_forward_v3_kernel(floatX* out, float* lse, const floatX* qkv, int T, int C, int NH) {
    __shared__ __align__(32) floatX ks[TC_ROWS][TC_LDX], vs[TC_ROWS][TC_LDX];
    __shared__ __align__(32) float sbuf[TC_WARPS][16][TC_LDF]; // S (16, 32), then P V (16, 64)
    __shared__ __align__(32) floatX pbuf[TC_WARPS][16][TC_LDP];
    __shared__ __align__(32) float obuf[TC_WARPS][16][TC_LDF];
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, r = lane / 2, half = lane % 2;
    int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * TC_ROWS, qw = q0 + 16 * warp, i = qw + r;
    const floatX* base = qkv + (long)b * T * 3 * C;
    float scale = 1.0f / sqrtf((float)TC_D);
    FragA qf[TC_D / 16]; // this warp's 16 query rows, straight from global memory
    for (int k = 0; k < TC_D / 16; k++) { wmma::load_matrix_sync(qf[k], base + (long)qw * 3 * C + h * TC_D + k * 16, 3 * C); }
    float m = -INFINITY, l = 0.0f;
    for (int c = half * 32; c < half * 32 + 32; c++) { obuf[warp][r][c] = 0.0f; }
    for (int k0 = 0; k0 < q0 + TC_ROWS; k0 += TC_ROWS) {
        __syncthreads();
        tc_load_tile(ks, base, k0, 3 * C, C + h * TC_D);
        tc_load_tile(vs, base, k0, 3 * C, 2 * C + h * TC_D);
        __syncthreads();
        if (k0 > qw + 15) { continue; } // every key of the tile is in this warp's future
        tc_rows_times_tile_t(&sbuf[warp][0][0], TC_LDF, qf, ks);
        __syncwarp();
        // online softmax of row i over this tile's columns [half*16, half*16 + 16)
        float sv[16], smax = -INFINITY;
        for (int c = 0; c < 16; c++) {
            int j = k0 + half * 16 + c;
            sv[c] = j <= i ? sbuf[warp][r][half * 16 + c] * scale : -INFINITY;
            smax = fmaxf(smax, sv[c]);
        }
        smax = fmaxf(smax, __shfl_xor_sync(0xffffffffu, smax, 1)); // the other half of the row
        float mnew = fmaxf(m, smax); // finite: key 0 is in every row's past
        float corr = expf(m - mnew), psum = 0.0f;
        for (int c = 0; c < 16; c++) {
            float p = sv[c] == -INFINITY ? 0.0f : expf(sv[c] - mnew);
            pbuf[warp][r][half * 16 + c] = to_floatX(p);
            psum += p;
        }
        psum += __shfl_xor_sync(0xffffffffu, psum, 1);
        l = l * corr + psum;
        m = mnew;
        for (int c = half * 32; c < half * 32 + 32; c++) { obuf[warp][r][c] *= corr; }
        __syncwarp();
        FragC pv[TC_D / 16];
        for (int n = 0; n < TC_D / 16; n++) { wmma::fill_fragment(pv[n], 0.0f); }
        tc_acc_p_times_tile(pv, &pbuf[warp][0][0], vs);
        for (int n = 0; n < TC_D / 16; n++) { wmma::store_matrix_sync(&sbuf[warp][0][n * 16], pv[n], TC_LDF, wmma::mem_row_major); }
        __syncwarp();
        for (int c = half * 32; c < half * 32 + 32; c++) { obuf[warp][r][c] += sbuf[warp][r][c]; }
        __syncwarp();
    }
    floatX* orow = out + ((long)b * T + i) * C + h * TC_D;
    for (int c = half * 32; c < half * 32 + 32; c++) { orow[c] = to_floatX(obuf[warp][r][c] / l); }
    if (half == 0) { lse[((long)b * NH + h) * T + i] = m + logf(l); }
}

// dK, dV for this warp's 16 keys j, over the query tiles i >= the block's first key:
//   S^T = K Q^T,  P^T = exp(scale S^T - lse_i),  dV += P^T dO,  dP^T = V dO^T,
//   dS^T = P^T * (dP^T - delta_i),  dK += scale dS^T Q
__global__ void attention_dkdv_v3_kernel(floatX* dqkv, const floatX* dout, const floatX* qkv, const float* lse,
                                         const float* delta, int T, int C, int NH) {
    __shared__ __align__(32) floatX qs[TC_ROWS][TC_LDX], dos[TC_ROWS][TC_LDX];
    __shared__ float lse_s[TC_ROWS], delta_s[TC_ROWS];
    __shared__ __align__(32) float sbuf[TC_WARPS][16][TC_LDS], dpbuf[TC_WARPS][16][TC_LDS];
    __shared__ __align__(32) floatX pbuf[TC_WARPS][16][TC_LDP], dsbuf[TC_WARPS][16][TC_LDP];
    __shared__ __align__(32) float stage[TC_WARPS][16][TC_LDF];
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, r = lane / 2, half = lane % 2;
    int b = blockIdx.z, h = blockIdx.y, k0 = blockIdx.x * TC_ROWS, kw = k0 + 16 * warp, j = kw + r;
    const floatX* base = qkv + (long)b * T * 3 * C;
    const floatX* dbase = dout + (long)b * T * C;
    const float* lse_bh = lse + ((long)b * NH + h) * T;
    const float* delta_bh = delta + ((long)b * NH + h) * T;
    float scale = 1.0f / sqrtf((float)TC_D);
    FragA kf[TC_D / 16], vf[TC_D / 16];
    FragC dk[TC_D / 16], dv[TC_D / 16];
    for (int k = 0; k < TC_D / 16; k++) {
        wmma::load_matrix_sync(kf[k], base + (long)kw * 3 * C + C + h * TC_D + k * 16, 3 * C);
        wmma::load_matrix_sync(vf[k], base + (long)kw * 3 * C + 2 * C + h * TC_D + k * 16, 3 * C);
        wmma::fill_fragment(dk[k], 0.0f);
        wmma::fill_fragment(dv[k], 0.0f);
    }
    for (int i0 = k0; i0 < T; i0 += TC_ROWS) {
        __syncthreads();
        tc_load_tile(qs, base, i0, 3 * C, h * TC_D);
        tc_load_tile(dos, dbase, i0, C, h * TC_D);
        for (int e = threadIdx.x; e < TC_ROWS; e += blockDim.x) { lse_s[e] = lse_bh[i0 + e]; delta_s[e] = delta_bh[i0 + e]; }
        __syncthreads();
        tc_rows_times_tile_t(&sbuf[warp][0][0], TC_LDS, kf, qs);   // S^T (16 keys, 32 queries)
        tc_rows_times_tile_t(&dpbuf[warp][0][0], TC_LDS, vf, dos); // dP^T
        __syncwarp();
        for (int c = half * 16; c < half * 16 + 16; c++) {
            int i = i0 + c;
            float p = i >= j ? expf(sbuf[warp][r][c] * scale - lse_s[c]) : 0.0f;
            pbuf[warp][r][c] = to_floatX(p);
            dsbuf[warp][r][c] = to_floatX(p * (dpbuf[warp][r][c] - delta_s[c]));
        }
        __syncwarp();
        tc_acc_p_times_tile(dv, &pbuf[warp][0][0], dos);
        tc_acc_p_times_tile(dk, &dsbuf[warp][0][0], qs);
    }
    floatX* row = dqkv + ((long)b * T + kw) * 3 * C;
    tc_store_rows(row + C + h * TC_D, 3 * C, dk, scale, stage[warp]);
    __syncwarp();
    tc_store_rows(row + 2 * C + h * TC_D, 3 * C, dv, 1.0f, stage[warp]);
}

// dQ for this warp's 16 queries i, over the key tiles j <= the block's last query:
//   S = Q K^T,  P = exp(scale S - lse_i),  dP = dO V^T,  dS = P * (dP - delta_i),  dQ += scale dS K
__global__ void attention_dq_v3_kernel(floatX* dqkv, const floatX* dout, const floatX* qkv, const float* lse,
                                       const float* delta, int T, int C, int NH) {
    __shared__ __align__(32) floatX ks[TC_ROWS][TC_LDX], vs[TC_ROWS][TC_LDX];
    __shared__ __align__(32) float sbuf[TC_WARPS][16][TC_LDS], dpbuf[TC_WARPS][16][TC_LDS];
    __shared__ __align__(32) floatX dsbuf[TC_WARPS][16][TC_LDP];
    __shared__ __align__(32) float stage[TC_WARPS][16][TC_LDF];
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, r = lane / 2, half = lane % 2;
    int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * TC_ROWS, qw = q0 + 16 * warp, i = qw + r;
    const floatX* base = qkv + (long)b * T * 3 * C;
    float scale = 1.0f / sqrtf((float)TC_D);
    float l_i = lse[((long)b * NH + h) * T + i], delta_i = delta[((long)b * NH + h) * T + i];
    FragA qf[TC_D / 16], dof[TC_D / 16];
    FragC dq[TC_D / 16];
    for (int k = 0; k < TC_D / 16; k++) {
        wmma::load_matrix_sync(qf[k], base + (long)qw * 3 * C + h * TC_D + k * 16, 3 * C);
        wmma::load_matrix_sync(dof[k], dout + ((long)b * T + qw) * C + h * TC_D + k * 16, C);
        wmma::fill_fragment(dq[k], 0.0f);
    }
    for (int k0 = 0; k0 < q0 + TC_ROWS; k0 += TC_ROWS) {
        __syncthreads();
        tc_load_tile(ks, base, k0, 3 * C, C + h * TC_D);
        tc_load_tile(vs, base, k0, 3 * C, 2 * C + h * TC_D);
        __syncthreads();
        if (k0 > qw + 15) { continue; }
        tc_rows_times_tile_t(&sbuf[warp][0][0], TC_LDS, qf, ks);   // S (16 queries, 32 keys)
        tc_rows_times_tile_t(&dpbuf[warp][0][0], TC_LDS, dof, vs); // dP
        __syncwarp();
        for (int c = half * 16; c < half * 16 + 16; c++) {
            int jj = k0 + c;
            float p = jj <= i ? expf(sbuf[warp][r][c] * scale - l_i) : 0.0f;
            dsbuf[warp][r][c] = to_floatX(p * (dpbuf[warp][r][c] - delta_i));
        }
        __syncwarp();
        tc_acc_p_times_tile(dq, &dsbuf[warp][0][0], ks);
    }
    tc_store_rows(dqkv + ((long)b * T + qw) * 3 * C + h * TC_D, 3 * C, dq, scale, stage[warp]);
}

static int v3_applies(int T, int C, int NH) { return C / NH == TC_D && T % TC_ROWS == 0; }

static void attention_forward_v3(floatX* out, float* lse, const floatX* qkv, int B, int T, int C, int NH) {
    dim3 grid(T / TC_ROWS, NH, B);
    attention_forward_v3_kernel<<<grid, 32 * TC_WARPS>>>(out, lse, qkv, T, C, NH);
    LAUNCH_CHECK("attention_forward_v3_kernel");
}

static void attention_backward_v3(floatX* dqkv, float* delta, const floatX* dout, const floatX* qkv, const floatX* out,
                                  const float* lse, int B, int T, int C, int NH) {
    long rows = (long)B * NH * T;
    attention_delta_kernel<<<ceil_div(rows, 256), 256>>>(delta, dout, out, B, T, C, NH);
    LAUNCH_CHECK("attention_delta_kernel");
    dim3 grid(T / TC_ROWS, NH, B);
    attention_dkdv_v3_kernel<<<grid, 32 * TC_WARPS>>>(dqkv, dout, qkv, lse, delta, T, C, NH);
    LAUNCH_CHECK("attention_dkdv_v3_kernel");
    attention_dq_v3_kernel<<<grid, 32 * TC_WARPS>>>(dqkv, dout, qkv, lse, delta, T, C, NH);
    LAUNCH_CHECK("attention_dq_v3_kernel");
}
#else
static int v3_applies(int, int, int) { return 0; } // tensor-core version: bf16 only
static void attention_forward_v3(floatX*, float*, const floatX*, int, int, int, int) {}
static void attention_backward_v3(floatX*, float*, const floatX*, const floatX*, const floatX*, const float*, int, int, int, int) {}
#endif

// ------------------------------------------------------------------------------------------------
// the versions behind one signature each

static const char* const version_names[] = {
    "v1: a thread per row, no shared memory",
    "train_gpt.cu: attention_forward_gpu, attention_backward_gpu (flash, tiles in shared memory)",
    "v3: tensor cores (wmma bf16), hs=64, T % 32 == 0, bf16 only (not yet timed on a GPU)",
};
#define NVERSIONS 3

static void forward(int version, floatX* out, float* lse, const floatX* qkv, int B, int T, int C, int NH) {
    if (version == 1) {
        int rows = B * NH * T;
        attention_forward_v1_kernel<<<ceil_div(rows, 64), 64>>>(out, lse, qkv, B, T, C, NH);
        LAUNCH_CHECK("attention_forward_v1_kernel");
    } else if (version == 2) {
        attention_forward_gpu(out, lse, qkv, B, T, C, NH, NULL, 0);
    } else {
        attention_forward_v3(out, lse, qkv, B, T, C, NH);
    }
}

static void backward(int version, floatX* dqkv, float* delta, const floatX* dout, const floatX* qkv, const floatX* out,
                     const float* lse, int B, int T, int C, int NH) {
    if (version == 1) {
        int rows = B * NH * T;
        attention_delta_v1_kernel<<<ceil_div(rows, 64), 64>>>(delta, dout, out, B, T, C, NH);
        LAUNCH_CHECK("attention_delta_v1_kernel");
        attention_dkdv_v1_kernel<<<ceil_div(rows, 64), 64>>>(dqkv, dout, qkv, lse, delta, B, T, C, NH);
        LAUNCH_CHECK("attention_dkdv_v1_kernel");
        attention_dq_v1_kernel<<<ceil_div(rows, 64), 64>>>(dqkv, dout, qkv, lse, delta, B, T, C, NH);
        LAUNCH_CHECK("attention_dq_v1_kernel");
    } else if (version == 2) {
        attention_backward_gpu(dqkv, delta, dout, qkv, out, lse, B, T, C, NH, NULL, 0);
    } else {
        attention_backward_v3(dqkv, delta, dout, qkv, out, lse, B, T, C, NH);
    }
}

// ------------------------------------------------------------------------------------------------
// the test

typedef struct { int B, T, C, NH; const char* name; } Shape;

// lse (B,NH,T) of the reference's scores (computed as attention_forward does), in double
static void reference_lse(float* lse, const float* qkv, int B, int T, int C, int NH) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    #pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            std::vector<double> s(T);
            for (int i = 0; i < T; i++) {
                const float* q = qkv + ((size_t)b * T + i) * 3 * C + h * hs;
                double m = -INFINITY;
                for (int j = 0; j <= i; j++) {
                    const float* k = qkv + ((size_t)b * T + j) * 3 * C + C + h * hs;
                    float d = 0.0f;
                    for (int e = 0; e < hs; e++) { d += q[e] * k[e]; }
                    s[j] = (double)(d * scale);
                    if (s[j] > m) { m = s[j]; }
                }
                double l = 0.0;
                for (int j = 0; j <= i; j++) { l += exp(s[j] - m); }
                lse[((size_t)b * NH + h) * T + i] = (float)(m + log(l));
            }
        }
    }
}

// split dqkv (B,T,3C) into its q, k, v parts, each (B,T,C), so each is checked by name
static void split_qkv(std::vector<float>& q, std::vector<float>& k, std::vector<float>& v, const std::vector<float>& x,
                      size_t BT, int C) {
    q.resize(BT * C); k.resize(BT * C); v.resize(BT * C);
    for (size_t r = 0; r < BT; r++) {
        for (int c = 0; c < C; c++) {
            q[r * C + c] = x[r * 3 * C + c];
            k[r * C + c] = x[r * 3 * C + C + c];
            v[r * C + c] = x[r * 3 * C + 2 * C + c];
        }
    }
}

// Tolerances. Both sides compute in float from the same (rounded) inputs; they differ in the
// order of the sums over the keys and the head channels, in expf's last bit, and in where the
// scale is applied (q * scale first on the GPU): a few 2^-24 relative per term, which grows with
// the number of summed terms (T up to 1024). Measured: < 3e-6 (fp32, d12). fp32: atol 2e-5,
// rtol 1e-4.
// bf16 (8 significant bits, so ~2^-8 relative per rounding): out and dqkv are rounded once when
// stored: rtol 2^-8 on top. The backward also reads out in bf16 (delta = rowsum(dout * out))
// where the reference uses the exact float dot: delta is off by up to 2^-8 sum |dout||out|, which
// reaches dq and dk as p * that * |k| or |q| summed over rows -- an absolute error of about one
// bf16 rounding at the tensor's own scale, so atol = 2^-8 * max|ref| of dq and dk.
#ifdef PRECISION_FP32
static const double RTOL = 1e-4;
static const double BF16_SCALE_ATOL = 0.0;
#else
static const double RTOL = 1e-4 + 1.0 / 256;
static const double BF16_SCALE_ATOL = 1.0 / 256;
#endif
static const double ATOL = 2e-5;
static const double LSE_ATOL = 2e-5, LSE_RTOL = 1e-5;

static double max_abs(const std::vector<float>& x) {
    double m = 0.0;
    for (size_t i = 0; i < x.size(); i++) { m = fmax(m, fabs((double)x[i])); }
    return m;
}

static void run_shape(const Shape& s, int only, int last) {
    int B = s.B, T = s.T, C = s.C, NH = s.NH, hs = C / NH;
    size_t BT = (size_t)B * T, rows = (size_t)B * NH * T;
    printf("shape %s: B=%d T=%d C=%d NH=%d hs=%d\n", s.name, B, T, C, NH, hs);
    if (hs > V1_MAX_HS) { die("head size %d > V1_MAX_HS %d", hs, V1_MAX_HS); }
    // |q|,|k| < 2: scores up to ~4 sqrt(hs) * 0.6, so softmax rows are far from flat
    std::vector<float> qkv = random_vec(BT * 3 * C, 1, 2.0f), dout = random_vec(BT * C, 2, 1.0f);
    round_to_floatX(qkv); round_to_floatX(dout);

    std::vector<float> out_ref(BT * C), att((size_t)B * NH * T * T), lse_ref(rows);
    attention_forward(out_ref.data(), att.data(), qkv.data(), B, T, C, NH, NULL, 0);
    reference_lse(lse_ref.data(), qkv.data(), B, T, C, NH);
    std::vector<float> dqkv_ref(BT * 3 * C), drow(rows);
    attention_backward(dqkv_ref.data(), drow.data(), dout.data(), qkv.data(), att.data(), B, T, C, NH, NULL, 0);
    std::vector<float> dq_ref, dk_ref, dv_ref;
    split_qkv(dq_ref, dk_ref, dv_ref, dqkv_ref, BT, C);
    std::vector<float> out_in(out_ref);
    round_to_floatX(out_in); // the backward's out: what a forward stores
    double dq_atol = ATOL + BF16_SCALE_ATOL * max_abs(dq_ref), dk_atol = ATOL + BF16_SCALE_ATOL * max_abs(dk_ref);

    floatX* d_qkv = upload_x(qkv, "qkv");
    floatX* d_dout = upload_x(dout, "dout");
    floatX* d_out_in = upload_x(out_in, "out (backward input)");
    float* d_lse_in = upload(lse_ref, "lse (backward input)");
    floatX* d_out = cuda_alloc<floatX>(BT * C, "out");
    float* d_lse = cuda_alloc<float>(rows, "lse");
    floatX* d_dqkv = cuda_alloc<floatX>(BT * 3 * C, "dqkv");
    float* d_delta = cuda_alloc<float>(rows, "delta");

    for (int v = 1; v <= NVERSIONS; v++) {
        if (only != 0 && only != v) { continue; }
        if (v == 3 && !v3_applies(T, C, NH)) { printf(" version 3: not for this shape / precision\n"); continue; }
        printf(" version %d\n", v);
        CUDA_CHECK(cudaMemset(d_out, 0xff, BT * C * sizeof(floatX))); // NaN: unwritten elements fail
        CUDA_CHECK(cudaMemset(d_lse, 0xff, rows * sizeof(float)));
        forward(v, d_out, d_lse, d_qkv, B, T, C, NH);
        std::vector<float> out = download_x(d_out, BT * C);
        // version 3 also rounds P and dS to bf16 for the tensor-core products: one more bf16
        // rounding at the scale of each output, as the backward's delta already costs dq and dk
        double tc_atol = v == 3 ? BF16_SCALE_ATOL : 0.0;
        check("fwd: out", out, out_ref, ATOL + tc_atol * max_abs(out_ref), RTOL);
        check("fwd: lse", download_f(d_lse, rows), lse_ref, LSE_ATOL, LSE_RTOL);
        expect_rejection_once("fwd: out, one ref element moved", out, out_ref, ATOL + tc_atol * max_abs(out_ref), RTOL);

        CUDA_CHECK(cudaMemset(d_dqkv, 0xff, BT * 3 * C * sizeof(floatX)));
        backward(v, d_dqkv, d_delta, d_dout, d_qkv, d_out_in, d_lse_in, B, T, C, NH);
        std::vector<float> dq, dk, dv;
        split_qkv(dq, dk, dv, download_x(d_dqkv, BT * 3 * C), BT, C);
        check("bwd: dq", dq, dq_ref, dq_atol, RTOL);
        check("bwd: dk", dk, dk_ref, dk_atol, RTOL);
        check("bwd: dv", dv, dv_ref, ATOL + tc_atol * max_abs(dv_ref), RTOL);

        if (last) {
            // causal: T(T+1)/2 scores a head, 2 hs flops each for q.k and again for p v
            double fwd_flops = 2.0 * 2.0 * hs * ((double)T * (T + 1) / 2) * B * NH;
            float ms = time_ms([&] { forward(v, d_out, d_lse, d_qkv, B, T, C, NH); });
            printf("  %-34s %10.4f ms  %9.3f TFLOP/s%s\n", "forward", ms, fwd_flops / (ms * 1e-3) / 1e12, LAB_TIME_NOTE);
            // the usual count: the backward's 4 products + recomputing the scores = 2.5 forwards
            ms = time_ms([&] { backward(v, d_dqkv, d_delta, d_dout, d_qkv, d_out_in, d_lse_in, B, T, C, NH); });
            printf("  %-34s %10.4f ms  %9.3f TFLOP/s%s\n", "backward", ms, 2.5 * fwd_flops / (ms * 1e-3) / 1e12, LAB_TIME_NOTE);
        }
    }
    // train_gpt.cu's kernels with dropout on the probabilities (p = 0.2, the masks of site 1)
    // against train_gpt.c's attention with the same dropout
    if (only == 0 || only == 2) {
        printf(" version 2 with dropout p = 0.2\n");
        Dropout drop = dropout_make(0.2f, dropout_pass_key(1337, 0));
        std::vector<float> outd_ref(BT * C), dqkvd_ref(BT * 3 * C);
        attention_forward(outd_ref.data(), att.data(), qkv.data(), B, T, C, NH, &drop, 1);
        attention_backward(dqkvd_ref.data(), drow.data(), dout.data(), qkv.data(), att.data(), B, T, C, NH, &drop, 1);
        std::vector<float> dqd_ref, dkd_ref, dvd_ref;
        split_qkv(dqd_ref, dkd_ref, dvd_ref, dqkvd_ref, BT, C);
        std::vector<float> outd_in(outd_ref);
        round_to_floatX(outd_in);
        floatX* d_outd_in = upload_x(outd_in, "out with dropout (backward input)");
        CUDA_CHECK(cudaMemset(d_out, 0xff, BT * C * sizeof(floatX)));
        attention_forward_gpu(d_out, d_lse, d_qkv, B, T, C, NH, &drop, 1);
        std::vector<float> out = download_x(d_out, BT * C);
        check("fwd+dropout: out", out, outd_ref, ATOL, RTOL);
        check("fwd+dropout: lse", download_f(d_lse, rows), lse_ref, LSE_ATOL, LSE_RTOL);
        expect_rejection_once("fwd+dropout: out, one ref element moved", out, outd_ref, ATOL, RTOL);
        CUDA_CHECK(cudaMemset(d_dqkv, 0xff, BT * 3 * C * sizeof(floatX)));
        attention_backward_gpu(d_dqkv, d_delta, d_dout, d_qkv, d_outd_in, d_lse_in, B, T, C, NH, &drop, 1);
        std::vector<float> dq, dk, dv;
        split_qkv(dq, dk, dv, download_x(d_dqkv, BT * 3 * C), BT, C);
        check("bwd+dropout: dq", dq, dqd_ref, ATOL + BF16_SCALE_ATOL * max_abs(dqd_ref), RTOL);
        check("bwd+dropout: dk", dk, dkd_ref, ATOL + BF16_SCALE_ATOL * max_abs(dkd_ref), RTOL);
        check("bwd+dropout: dv", dv, dvd_ref, ATOL, RTOL);
        CUDA_CHECK(cudaFree(d_outd_in));
    }
    void* bufs[] = {d_qkv, d_dout, d_out_in, d_lse_in, d_out, d_lse, d_dqkv, d_delta};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) { CUDA_CHECK(cudaFree(bufs[i])); }
}

int main(int argc, char** argv) {
    int only = lab_start(argc, argv, "causal attention forward/backward", NVERSIONS, version_names);
    const Shape shapes[] = {
        {3, 13, 60, 5, "odd (hs=12 in the D=16 kernel, T < one tile)"},
        {2, 100, 96, 3, "hs=32, T=100 not a multiple of the tile"},
        {1, 70, 256, 2, "hs=128 (tiles of 32 / 16 rows)"},
        {2, 96, 128, 2, "hs=64, T=96: three 32-row tiles (version 3 too)"},
#ifdef GPT_CUDA_EMU
        {1, 256, 768, 12, "d12 heads (hs=64), T=256 (emulator)"},
#else
        {4, 1024, 768, 12, "d12 (B=4, T=1024)"},
#endif
    };
    int n = (int)(sizeof(shapes) / sizeof(shapes[0]));
    for (int i = 0; i < n; i++) { run_shape(shapes[i], only, i == n - 1); }
    return lab_finish();
}
