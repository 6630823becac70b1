// Self-test of the CPU CUDA emulator (dev/cuda/emu.h). Valid CUDA as well:
//   emulator: dev/cuda/emu_build.sh dev/cuda/emu_selftest.cu /tmp/emu_selftest.cpp &&
//             g++ -std=c++17 -O2 -Wall -Wextra -DGPT_CUDA_EMU -I. /tmp/emu_selftest.cpp -o /tmp/emu_selftest
//   GPU:      nvcc -std=c++17 -gencode arch=compute_90,code=sm_90 dev/cuda/emu_selftest.cu -o emu_selftest
// Prints one line per check and "N passed, N failed"; exit status 1 on any failure.
// Deliberately broken kernels (each must abort with a message under the emulator):
//   --deadlock      thread 0 skips a __syncthreads and then waits for its warp
//   --divergent     thread 0 skips one __syncthreads and arrives at another
//   --late-barrier  a barrier appears only after the first block ran without one
//   --overflow      a thread needs more stack than the fiber has (EMU_STACK_KB)
#ifdef GPT_CUDA_EMU
// dev/cuda/emu_build.sh has prepended #include "dev/cuda/emu.h"
#else
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#endif
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#define CUDA_CHECK(call)                                                                          \
    do {                                                                                          \
        cudaError_t err_ = (call);                                                                \
        if (err_ != cudaSuccess) {                                                                \
            std::printf("%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(err_)); \
            std::exit(1);                                                                         \
        }                                                                                         \
    } while (0)

static const unsigned FULL = 0xffffffffu;
static int n_pass = 0, n_fail = 0;

static void check(const char* name, bool ok) {
    std::printf("%-44s ... %s\n", name, ok ? "OK" : "FAILED");
    (ok ? n_pass : n_fail)++;
}

// Device buffer with host mirror, to keep the tests short.
template <class T>
struct Buf {
    std::vector<T> h;
    T* d = nullptr;
    explicit Buf(size_t n) : h(n) { CUDA_CHECK(cudaMalloc(&d, n * sizeof(T))); }
    ~Buf() { cudaFree(d); }
    void up() { CUDA_CHECK(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice)); }
    void down() { CUDA_CHECK(cudaMemcpy(h.data(), d, h.size() * sizeof(T), cudaMemcpyDeviceToHost)); }
};

// ------------------------------------------------------------------ kernels

// Tree sum over one block in shared memory; also records the builtins each
// thread sees after the barriers (they must still be its own).
template <int BS>
__global__ void block_sum(const float* in, float* out, unsigned* who) {
    __shared__ float s[BS];
    const int b = blockIdx.y * gridDim.x + blockIdx.x;
    const int t = threadIdx.x;
    s[t] = in[b * BS + t];
    __syncthreads();
    for (int stride = BS / 2; stride > 0; stride /= 2) {
        if (t < stride) s[t] += s[t + stride];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[b] = s[0];
    who[b * BS + t] = threadIdx.x + 2048u * (blockIdx.x + 16u * blockIdx.y);
}

// Warp sum with xor butterflies over a 2D block: warps are 32 consecutive linear ids.
template <class T>
__global__ void warp_sum_xor(const T* in, T* out) {
    const int lid = threadIdx.x + threadIdx.y * blockDim.x;
    const int i = blockIdx.x * blockDim.x * blockDim.y + lid;
    T v = in[i];
    for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(FULL, v, off);
    out[i] = v;
}

__global__ void warp_sum_down(const int* in, int* out) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    int v = in[i];
    for (int off = 16; off > 0; off /= 2) v += __shfl_down_sync(FULL, v, off);
    out[i] = v;
}

// Several shuffle flavours, 6 results per thread.
__global__ void shfl_variants(const int* in, int* out) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const int v = in[i];
    out[6 * i + 0] = __shfl_sync(FULL, v, 5);          // broadcast lane 5
    out[6 * i + 1] = __shfl_sync(FULL, v, 3, 16);      // lane 3 of each half warp
    out[6 * i + 2] = __shfl_xor_sync(FULL, v, 4, 8);   // butterfly within groups of 8
    out[6 * i + 3] = __shfl_down_sync(FULL, v, 4, 16); // down within half warps
    out[6 * i + 4] = __shfl_down_sync(FULL, v, 16);    // upper half keeps its own value
    out[6 * i + 5] = (int)__shfl_xor_sync(FULL, (double)v * 0.5, 1) + (int)__shfl_sync(FULL, (unsigned)v, 31);
}

__global__ void scale_add(const float* a, const float* b, float* out, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = 2.0f * a[i] + b[i];
}

// All threads fill shared memory, then only warp 0 reduces it with shuffles.
__global__ void warp0_after_sync(const float* in, float* out) {
    __shared__ float s[256];
    s[threadIdx.x] = in[blockIdx.x * 256 + threadIdx.x];
    __syncthreads();
    if (threadIdx.x >= 32) return;
    float v = 0.0f;
    for (int k = threadIdx.x; k < 256; k += 32) v += s[k];
    for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(FULL, v, off);
    if (threadIdx.x == 0) out[blockIdx.x] = v;
}

// Lanes exchange through shared memory, ordered by __syncwarp.
__global__ void syncwarp_reverse(const int* in, int* out) {
    __shared__ int s[128];
    const int t = threadIdx.x;
    s[t] = in[t];
    __syncwarp();
    const int lane = t % 32;
    out[t] = s[t - lane + (31 - lane)];
}

__global__ void bf16_roundtrip(const float* in, __nv_bfloat16* mid, float* out, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    mid[i] = __float2bfloat16(in[i]);
    out[i] = __bfloat162float(mid[i]);
}

__global__ void sync_loop(int iters, float* out) {
    __shared__ float s[256];
    float acc = 0.0f;
    for (int k = 0; k < iters; k++) {
        s[threadIdx.x] = (float)k;
        __syncthreads();
        acc += s[(threadIdx.x + 1) % blockDim.x];
        __syncthreads();
    }
    out[threadIdx.x] = acc;
}

__global__ void write_one(int* out) { out[threadIdx.x] = 1; }

// ---- deliberately broken kernels (command-line modes only)
__global__ void bad_deadlock(int* out) {
    __shared__ int s[64];
    s[threadIdx.x] = threadIdx.x;
    if (threadIdx.x != 0) __syncthreads();  // BUG: thread 0 skips the barrier ...
    __syncwarp();                           // ... and waits for its warp, which waits at the barrier
    out[threadIdx.x] = s[63 - threadIdx.x];
}
__global__ void bad_divergent(int* out) {
    if (threadIdx.x != 0) __syncthreads();  // BUG: thread 0 skips this one
    __syncthreads();
    out[threadIdx.x] = 1;
}
__global__ void bad_late_barrier(int* out) {
    if (blockIdx.x > 0) __syncthreads();  // first block never gets here
    out[threadIdx.x] = 1;
}
__global__ void bad_overflow(int* out) {
    volatile char big[512 * 1024];
    big[threadIdx.x] = 1;
    __syncthreads();
    out[threadIdx.x] = big[threadIdx.x];
}

// ------------------------------------------------------------------ tests

static float ms_between(cudaEvent_t a, cudaEvent_t b) {
    float ms = 0.0f;
    CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    return ms;
}

template <int BS>
static void test_block_sum(const char* name) {
    const dim3 grid(3, 2);
    const int nb = 6;
    Buf<float> in(nb * BS), out(nb);
    Buf<unsigned> who(nb * BS);
    for (int i = 0; i < nb * BS; i++) in.h[i] = (float)(i % 7 - 3);
    in.up();
    block_sum<BS><<<grid, BS>>>(in.d, out.d, who.d);
    CUDA_CHECK(cudaGetLastError());
    out.down();
    who.down();
    bool ok = true;
    for (int b = 0; b < nb; b++) {
        float ref = 0.0f;
        for (int t = 0; t < BS; t++) {
            ref += in.h[b * BS + t];
            ok &= who.h[b * BS + t] == t + 2048u * (b % 3 + 16u * (b / 3));
        }
        ok &= out.h[b] == ref;
    }
    check(name, ok);
}

template <class T>
static void test_warp_xor(const char* name) {
    const dim3 block(16, 4);  // 64 threads, 2 warps spanning two rows each
    const int n = 3 * 64;
    Buf<T> in(n), out(n);
    for (int i = 0; i < n; i++) in.h[i] = (T)(i * 7 % 23);
    in.up();
    warp_sum_xor<T><<<3, block>>>(in.d, out.d);
    out.down();
    bool ok = true;
    for (int i = 0; i < n; i++) {
        T ref = 0;
        for (int j = i / 32 * 32; j < i / 32 * 32 + 32; j++) ref += in.h[j];
        ok &= out.h[i] == ref;
    }
    check(name, ok);
}

static void test_warp_down() {
    const int n = 128;
    Buf<int> in(n), out(n);
    for (int i = 0; i < n; i++) in.h[i] = i * 13 % 31 - 9;
    in.up();
    warp_sum_down<<<2, 64>>>(in.d, out.d);
    out.down();
    bool ok = true, lane0 = true;
    for (int w = 0; w < n / 32; w++) {
        int v[32], sum = 0;
        for (int l = 0; l < 32; l++) sum += (v[l] = in.h[w * 32 + l]);
        for (int off = 16; off > 0; off /= 2) {  // lanes past the end keep their own value
            int nv[32];
            for (int l = 0; l < 32; l++) nv[l] = v[l] + (l + off < 32 ? v[l + off] : v[l]);
            std::memcpy(v, nv, sizeof v);
        }
        for (int l = 0; l < 32; l++) ok &= out.h[w * 32 + l] == v[l];
        lane0 &= out.h[w * 32] == sum;
    }
    check("warp sum __shfl_down_sync (lane 0)", lane0);
    check("__shfl_down_sync out-of-range lanes", ok);
}

static void test_shfl_variants() {
    const int n = 96;
    Buf<int> in(n), out(6 * n);
    for (int i = 0; i < n; i++) in.h[i] = 1000 + i * 3;
    in.up();
    shfl_variants<<<1, n>>>(in.d, out.d);
    out.down();
    bool ok[6] = {true, true, true, true, true, true};
    for (int i = 0; i < n; i++) {
        const int base = i / 32 * 32, lane = i % 32;
        auto v = [&](int l) { return in.h[base + l]; };
        const int* o = &out.h[6 * i];
        ok[0] &= o[0] == v(5);
        ok[1] &= o[1] == v(lane / 16 * 16 + 3);
        ok[2] &= o[2] == v(lane ^ 4);
        ok[3] &= o[3] == (lane % 16 + 4 < 16 ? v(lane + 4) : v(lane));
        ok[4] &= o[4] == (lane < 16 ? v(lane + 16) : v(lane));
        ok[5] &= o[5] == (int)(v(lane ^ 1) * 0.5) + v(31);
    }
    check("__shfl_sync broadcast from lane 5", ok[0]);
    check("__shfl_sync width 16", ok[1]);
    check("__shfl_xor_sync width 8", ok[2]);
    check("__shfl_down_sync width 16", ok[3]);
    check("__shfl_down_sync delta 16", ok[4]);
    check("shuffles of double and unsigned", ok[5]);
}

static void test_elementwise() {
    const int n = 3000000;
    Buf<float> a(n), b(n), out(n);
    for (int i = 0; i < n; i++) {
        a.h[i] = (float)(i % 1000) * 0.25f;
        b.h[i] = (float)(i % 17);
    }
    a.up();
    b.up();
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    CUDA_CHECK(cudaEventRecord(e0));
    scale_add<<<(n + 255) / 256, 256>>>(a.d, b.d, out.d, n);
    CUDA_CHECK(cudaEventRecord(e1));
    CUDA_CHECK(cudaEventSynchronize(e1));
    const float first_ms = ms_between(e0, e1);
    cudaStream_t stream = 0;
    CUDA_CHECK(cudaEventRecord(e0, stream));
    scale_add<<<(n + 255) / 256, 256, 0, stream>>>(a.d, b.d, out.d, n);
    CUDA_CHECK(cudaEventRecord(e1, stream));
    CUDA_CHECK(cudaEventSynchronize(e1));
    const float second_ms = ms_between(e0, e1);
    CUDA_CHECK(cudaGetLastError());
    out.down();
    bool ok = true;
    for (int i = 0; i < n; i++) ok &= out.h[i] == 2.0f * a.h[i] + b.h[i];
    check("barrier-free elementwise, 3M elements", ok);
    std::printf("info: 3M-element barrier-free kernel: %.1f ms first launch, %.1f ms second\n", first_ms, second_ms);
    CUDA_CHECK(cudaEventDestroy(e0));
    CUDA_CHECK(cudaEventDestroy(e1));
}

static void test_warp0_after_sync() {
    Buf<float> in(4 * 256), out(4);
    for (int i = 0; i < 4 * 256; i++) in.h[i] = (float)(i % 11);
    in.up();
    warp0_after_sync<<<4, 256>>>(in.d, out.d);
    out.down();
    bool ok = true;
    for (int b = 0; b < 4; b++) {
        float ref = 0.0f;
        for (int t = 0; t < 256; t++) ref += in.h[b * 256 + t];
        ok &= out.h[b] == ref;
    }
    check("warp 0 shuffles after __syncthreads", ok);
}

static void test_syncwarp() {
    Buf<int> in(128), out(128);
    for (int i = 0; i < 128; i++) in.h[i] = i * i;
    in.up();
    syncwarp_reverse<<<1, 128>>>(in.d, out.d);
    out.down();
    bool ok = true;
    for (int i = 0; i < 128; i++) ok &= out.h[i] == in.h[i / 32 * 32 + 31 - i % 32];
    check("__syncwarp exchange through shared memory", ok);
}

static unsigned short bits_rn(float f) { return __bfloat16_as_ushort(__float2bfloat16_rn(f)); }

static void test_bf16() {
    const float one_ulp = std::ldexp(1.0f, -7);  // bf16 spacing at 1.0
    check("bf16 1+2^-8 ties to even (down)", bits_rn(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);
    check("bf16 1+3*2^-8 ties to even (up)", bits_rn(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3f82);
    check("bf16 1+3*2^-9 rounds up", __bfloat162float(__float2bfloat16(1.0f + 3 * std::ldexp(1.0f, -9))) == 1.0f + one_ulp);
    check("bf16 _rz truncates", __bfloat162float(__float2bfloat16_rz(1.0f + 3 * std::ldexp(1.0f, -9))) == 1.0f);
    check("bf16 NaN stays NaN", std::isnan(__bfloat162float(__float2bfloat16(NAN))) &&
                                    std::isnan(__bfloat162float(__float2bfloat16_rz(NAN))));
    check("bf16 +-inf", __bfloat162float(__float2bfloat16(INFINITY)) == INFINITY &&
                            __bfloat162float(__float2bfloat16(-INFINITY)) == -INFINITY);
    check("bf16 negative", __bfloat162float(__float2bfloat16(-1.5f)) == -1.5f &&
                               bits_rn(-(1.0f + std::ldexp(1.0f, -8))) == 0xbf80);
    const float maxbf = __bfloat162float(__ushort_as_bfloat16(0x7f7f));
    check("bf16 largest finite round trip", maxbf > 3.38e38f && bits_rn(maxbf) == 0x7f7f &&
                                                std::isinf(__bfloat162float(__float2bfloat16(3.4028235e38f))));
    const __nv_bfloat16 y = 1.0f;  // constructor from float
    const float f = y;             // conversion to float
    check("bf16 implicit conversions", f == 1.0f && __bfloat16_as_ushort(y) == 0x3f80);

    const int n = 1000;
    Buf<float> in(n), out(n);
    Buf<__nv_bfloat16> mid(n);
    for (int i = 0; i < n; i++) in.h[i] = std::sin((float)i) * std::ldexp(1.0f, i % 40 - 20);
    in.up();
    bf16_roundtrip<<<(n + 127) / 128, 128>>>(in.d, mid.d, out.d, n);
    out.down();
    mid.down();
    bool ok = true;
    for (int i = 0; i < n; i++)
        ok &= __bfloat16_as_ushort(mid.h[i]) == bits_rn(in.h[i]) && out.h[i] == __bfloat162float(mid.h[i]);
    check("bf16 round trip in a kernel", ok);
}

static void test_memory() {
    size_t free0 = 0, total = 0, free1 = 0, free2 = 0;
    CUDA_CHECK(cudaMemGetInfo(&free0, &total));
    const size_t bytes = size_t(4) << 20;
    unsigned char* d = nullptr;
    unsigned char* d2 = nullptr;
    CUDA_CHECK(cudaMalloc(&d, bytes));
    CUDA_CHECK(cudaMalloc((void**)&d2, bytes));
    CUDA_CHECK(cudaMemGetInfo(&free1, &total));
    check("cudaMemGetInfo sees cudaMalloc", total >= free0 && free0 - free1 >= 2 * bytes);

    std::vector<unsigned char> h(bytes), back(bytes);
    for (size_t i = 0; i < bytes; i++) h[i] = (unsigned char)(i * 31 + 7);
    CUDA_CHECK(cudaMemcpy(d, h.data(), bytes, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemset(d + 100, 0xab, 1000));
    CUDA_CHECK(cudaMemcpyAsync(d2, d, bytes, cudaMemcpyDeviceToDevice, 0));
    CUDA_CHECK(cudaMemsetAsync(d2, 0, 10, 0));
    CUDA_CHECK(cudaStreamSynchronize(0));
    CUDA_CHECK(cudaMemcpy(back.data(), d2, bytes, cudaMemcpyDeviceToHost));
    bool ok = true;
    for (size_t i = 0; i < bytes; i++) {
        const unsigned char want = i < 10 ? 0 : (i >= 100 && i < 1100) ? 0xab : h[i];
        ok &= back[i] == want;
    }
    check("cudaMemcpy/Memset/MemcpyAsync/MemsetAsync", ok);

    int host_int = 0;
    const cudaError_t e = cudaFree(&host_int);  // not a device pointer
    const cudaError_t last = cudaGetLastError();
    check("cudaFree(unknown) is cudaErrorInvalidValue", e == cudaErrorInvalidValue && last == cudaErrorInvalidValue &&
                                                            cudaGetLastError() == cudaSuccess);
    CUDA_CHECK(cudaFree(d));
    CUDA_CHECK(cudaFree(d2));
    CUDA_CHECK(cudaMemGetInfo(&free2, &total));
    check("cudaFree returns memory", free2 >= free1 + 2 * bytes);

    float* pinned = nullptr;
    CUDA_CHECK(cudaMallocHost(&pinned, 1024 * sizeof(float)));
    pinned[1023] = 1.0f;
    CUDA_CHECK(cudaFreeHost(pinned));
}

static void test_config_errors() {
    Buf<int> out(2048);
    CUDA_CHECK(cudaMemset(out.d, 0, 2048 * sizeof(int)));
    CUDA_CHECK(cudaGetLastError());
    write_one<<<1, 2048>>>(out.d);
    const cudaError_t e1 = cudaPeekAtLastError();
    const cudaError_t e2 = cudaGetLastError();
    const cudaError_t e3 = cudaGetLastError();
    write_one<<<0, 32>>>(out.d);
    const cudaError_t e4 = cudaGetLastError();
    out.down();
    bool untouched = true;
    for (int v : out.h) untouched &= v == 0;
    check("2048-thread launch fails, is not run", e1 == cudaErrorInvalidConfiguration &&
                                                      e2 == cudaErrorInvalidConfiguration && e3 == cudaSuccess &&
                                                      untouched);
    check("zero-size grid fails", e4 == cudaErrorInvalidConfiguration);
}

static void test_device() {
    int count = 0, dev = -1;
    cudaDeviceProp p;
    CUDA_CHECK(cudaGetDeviceCount(&count));
    CUDA_CHECK(cudaSetDevice(0));
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
    check("device count and properties", count >= 1 && dev == 0 && p.name[0] != 0 && p.maxThreadsPerBlock == 1024 &&
                                             p.multiProcessorCount > 0 && p.sharedMemPerBlock == 49152);
    std::printf("info: device \"%s\", sm_%d%d, %d SMs\n", p.name, p.major, p.minor, p.multiProcessorCount);
    CUDA_CHECK(cudaFuncSetAttribute(block_sum<256>, cudaFuncAttributeMaxDynamicSharedMemorySize, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
}

static void time_barriers() {
    const int threads = 256, iters = 2000;
    Buf<float> out(threads);
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    CUDA_CHECK(cudaEventRecord(e0));
    sync_loop<<<1, threads>>>(iters, out.d);
    CUDA_CHECK(cudaEventRecord(e1));
    CUDA_CHECK(cudaEventSynchronize(e1));
    out.down();
    bool ok = true;
    for (int t = 0; t < threads; t++) ok &= out.h[t] == (float)(iters - 1) * iters / 2;
    check("2000 __syncthreads in a loop", ok);
    const double ms = ms_between(e0, e1);
    // Each thread waits 2*iters times; a wait is one switch out and one back in.
    std::printf("info: %d threads x %d barriers: %.1f ms, %.0f ns per fiber switch (emulator)\n", threads, 2 * iters,
                ms, ms * 1e6 / (threads * 2.0 * iters * 2.0));
    CUDA_CHECK(cudaEventDestroy(e0));
    CUDA_CHECK(cudaEventDestroy(e1));
}

static int run_broken(const char* mode) {
    Buf<int> out(1024);
    if (!std::strcmp(mode, "--deadlock")) bad_deadlock<<<1, 64>>>(out.d);
    else if (!std::strcmp(mode, "--divergent")) bad_divergent<<<1, 64>>>(out.d);
    else if (!std::strcmp(mode, "--late-barrier")) bad_late_barrier<<<2, 32>>>(out.d);
    else if (!std::strcmp(mode, "--overflow")) bad_overflow<<<1, 4>>>(out.d);
    else {
        std::printf("unknown option %s\n", mode);
        return 2;
    }
    const cudaError_t e = cudaDeviceSynchronize();
    std::printf("%s: kernel returned (%s); the emulator should have aborted\n", mode, cudaGetErrorString(e));
    return 1;
}

int main(int argc, char** argv) {
    if (argc > 1) return run_broken(argv[1]);
    test_device();
    test_block_sum<256>("block sum, 256 threads, 2D grid");
    test_block_sum<1024>("block sum, 1024 threads, 2D grid");
    test_warp_xor<float>("warp sum __shfl_xor_sync float, 2D block");
    test_warp_xor<int>("warp sum __shfl_xor_sync int");
    test_warp_xor<unsigned>("warp sum __shfl_xor_sync unsigned");
    test_warp_xor<double>("warp sum __shfl_xor_sync double");
    test_warp_down();
    test_shfl_variants();
    test_warp0_after_sync();
    test_syncwarp();
    test_elementwise();
    test_bf16();
    test_memory();
    test_config_errors();
    time_barriers();
    std::printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
