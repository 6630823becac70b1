// dev/cuda/emu.h -- run CUDA kernels on the CPU, for functional testing.
//
// WHAT THIS IS
//   A single header that lets a .cu file written for nvcc be compiled by g++
//   and its kernels executed on the host, so kernels can be checked for
//   correctness on a machine without a GPU. dev/cuda/emu_build.sh rewrites
//   `NAME<<<ARGS>>>(` into `EMU_LAUNCH(NAME, ARGS)(` and prepends this include;
//   compile with `g++ -std=c++17 -DGPT_CUDA_EMU -I. OUT.cpp` from the repo root.
//
// EXECUTION MODEL
//   * A launch runs synchronously: blocks one after another (x fastest, then
//     y, then z). Inside a block every thread is a cooperative user-space
//     fiber, run in linear thread-id order until it reaches a barrier
//     (__syncthreads, __syncwarp, a shuffle) or returns. A fiber has its own
//     mmap'ed stack; a switch is a pure user-space stack switch on x86-64 ELF
//     with GCC/Clang (a few instructions, no system call), ucontext elsewhere.
//   * A block barrier releases when every unfinished thread of the block waits
//     at it; a warp barrier (warp = 32 consecutive linear thread ids) when
//     every unfinished lane of the warp waits at it. No runnable fiber and
//     unfinished threads => "emu: deadlock ..." and abort().
//   * Speed: the first block of the first launch of each kernel runs as fibers;
//     if no thread touched a barrier or shuffle, the kernel is "barrier-free"
//     and from then on each thread is a plain function call. A barrier in that
//     mode aborts with a message (it is never silently ignored).
//   * "Device" memory is host memory (256-byte aligned, filled with 0xFF bytes
//     so reads of never-written memory show up as NaN / -1).
//
// WHAT THIS IS NOT
//   * Not a performance model: timings say nothing about a GPU.
//   * Not the whole CUDA API: only the subset listed below (the kernels of this
//     project promise to use nothing else). No atomics, no dynamic (extern)
//     shared memory, no streams semantics (everything is synchronous), no
//     __half, no bf16 arithmetic operators (convert to float explicitly).
//   * Not a race detector: threads of a block interleave only at barriers, so
//     a missing __syncthreads can go unnoticed when the fiber order happens to
//     produce the right answer.
//
// EXTRA STRICTNESS (things that are undefined on a GPU and abort here)
//   * shuffles/__syncwarp with a mask other than 0xffffffff;
//   * a shuffle reading a lane that did not take part (exited, or absent in a
//     partial warp);
//   * threads of one block released together from different __syncthreads()
//     statements (divergent __syncthreads);
//   * one warp mixing __syncwarp and shuffles at the same time.
//
// ENVIRONMENT
//   EMU_STACK_KB   fiber stack size per thread in KiB (default 64). A stack
//                  overflow hits a guard region and prints a message.
//
// BUILD OPTIONS
//   -DEMU_FIBER_UCONTEXT  switch fibers with ucontext on x86-64 too (slower:
//                  swapcontext saves the signal mask, a system call a switch).
//   Not for AddressSanitizer builds (none are made of the emulator): ASan
//   would need __sanitizer_start/finish_switch_fiber around every switch.
//   Not for x86 shadow stacks (CET, opt-in in glibc): aborts with a message.
#pragma once

#ifndef GPT_CUDA_EMU
#error "dev/cuda/emu.h is only for CPU-emulation builds (-DGPT_CUDA_EMU)"
#endif

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__x86_64__) && defined(__ELF__) && defined(__GNUC__) && !defined(EMU_FIBER_UCONTEXT)
#define EMU_FIBER_ASM 1  // the stack switch below
#else
#define EMU_FIBER_ASM 0
#include <ucontext.h>
#endif

#include <math.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>  // parsed before __noinline__ is redefined below
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

// ---------------------------------------------------------------- qualifiers
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__  // empty: libstdc++ spells __attribute__((__noinline__))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// Blocks run one after another, so one static array per kernel instantiation
// can serve as the shared memory of whichever block is running.
#define __shared__ static
// __restrict__ is a g++ keyword already.

// ---------------------------------------------------------------- types
struct uint3 {
    unsigned int x, y, z;
};
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return uint3{x, y, z}; }
};

enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
};
typedef enum cudaError cudaError_t;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};

typedef enum cudaDataType_t {
    CUDA_R_32F = 0,
    CUDA_R_64F = 1,
    CUDA_R_16F = 2,
    CUDA_R_16BF = 14,
} cudaDataType;

enum cudaFuncAttribute {
    cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
    cudaFuncAttributePreferredSharedMemoryCarveout = 9,
};

struct CUstream_st;  // never defined: streams are only names here
typedef struct CUstream_st* cudaStream_t;
struct CUevent_st {
    std::chrono::steady_clock::time_point t;
    bool recorded;
};
typedef struct CUevent_st* cudaEvent_t;

struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    size_t sharedMemPerBlock;
    size_t sharedMemPerBlockOptin;
    size_t sharedMemPerMultiprocessor;
    int warpSize;
    int maxThreadsPerBlock;
    int maxThreadsPerMultiProcessor;
    int major;
    int minor;
    int multiProcessorCount;
};

// ---------------------------------------------------------------- bf16
namespace emu {
namespace detail {
inline unsigned int f2u(float f) { unsigned int u; std::memcpy(&u, &f, 4); return u; }
inline float u2f(unsigned int u) { float f; std::memcpy(&f, &u, 4); return f; }
inline unsigned short bf16_rn_bits(float f) {
    unsigned int u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fff;  // NaN -> canonical NaN (as cuda_bf16.h)
    u += 0x7fffu + ((u >> 16) & 1u);                     // round half to even; overflow -> inf
    return (unsigned short)(u >> 16);
}
inline unsigned short bf16_rz_bits(float f) {
    unsigned int u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fff;  // truncating could turn NaN into inf
    return (unsigned short)(u >> 16);
}
}  // namespace detail
}  // namespace emu

struct __nv_bfloat16 {
    unsigned short __x;
    __nv_bfloat16() = default;  // trivial, like the real type
    __nv_bfloat16(float f) : __x(emu::detail::bf16_rn_bits(f)) {}
    operator float() const { return emu::detail::u2f((unsigned int)__x << 16); }
};
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) { __nv_bfloat16 h; h.__x = u; return h; }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __ushort_as_bfloat16(emu::detail::bf16_rn_bits(f)); }
inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
inline __nv_bfloat16 __float2bfloat16_rz(float f) { return __ushort_as_bfloat16(emu::detail::bf16_rz_bits(f)); }
inline float __bfloat162float(__nv_bfloat16 h) { return (float)h; }

// ---------------------------------------------------------------- math
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __saturatef(float x) { return x > 0.0f ? (x < 1.0f ? x : 1.0f) : 0.0f; }  // NaN -> 0
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline unsigned int __float_as_uint(float x) { return emu::detail::f2u(x); }
inline float __uint_as_float(unsigned int u) { return emu::detail::u2f(u); }
inline int __float_as_int(float x) { return (int)emu::detail::f2u(x); }
inline float __int_as_float(int i) { return emu::detail::u2f((unsigned int)i); }
template <class T>
inline T __ldg(const T* p) { return *p; }

// CUDA's global min/max overloads (math_functions.hpp), including the mixed
// signed/unsigned ones so calls that compile under nvcc compile here too.
#define EMU_MINMAX(R, A, B, MIN_EXPR, MAX_EXPR) \
    inline R min(A a, B b) { return MIN_EXPR; } \
    inline R max(A a, B b) { return MAX_EXPR; }
#define EMU_MINMAX_INT(R, A, B) EMU_MINMAX(R, A, B, (R)a < (R)b ? (R)a : (R)b, (R)a > (R)b ? (R)a : (R)b)
EMU_MINMAX_INT(int, int, int)
EMU_MINMAX_INT(unsigned int, unsigned int, unsigned int)
EMU_MINMAX_INT(unsigned int, int, unsigned int)
EMU_MINMAX_INT(unsigned int, unsigned int, int)
EMU_MINMAX_INT(long, long, long)
EMU_MINMAX_INT(unsigned long, unsigned long, unsigned long)
EMU_MINMAX_INT(unsigned long, long, unsigned long)
EMU_MINMAX_INT(unsigned long, unsigned long, long)
EMU_MINMAX_INT(long long, long long, long long)
EMU_MINMAX_INT(unsigned long long, unsigned long long, unsigned long long)
EMU_MINMAX_INT(unsigned long long, long long, unsigned long long)
EMU_MINMAX_INT(unsigned long long, unsigned long long, long long)
EMU_MINMAX(float, float, float, fminf(a, b), fmaxf(a, b))
EMU_MINMAX(double, double, double, fmin(a, b), fmax(a, b))
EMU_MINMAX(double, float, double, fmin(a, b), fmax(a, b))
EMU_MINMAX(double, double, float, fmin(a, b), fmax(a, b))
#undef EMU_MINMAX_INT
#undef EMU_MINMAX

// ---------------------------------------------------------------- fiber switch (x86-64)
#if EMU_FIBER_ASM
// emu_fiber_switch(save, load): push the callee-saved registers on the running stack, store rsp
// in *save, set rsp = load, pop the other side's registers and return on its stack. It is an
// ordinary call to the compiler, which keeps nothing but rbx, rbp, r12-r15 live across it.
// Not saved: the signal mask (no one changes it; saving it is swapcontext's system call), and
// the x87 control word and MXCSR control bits (also callee-saved): no kernel and no emulator
// code changes rounding or exception masks, so every fiber runs with the values it started with.
// Its own comdat section and .weak: the header may be in several translation units of a program
// and the linker keeps one copy. .hidden: a direct call, no PLT. endbr64 (a NOP without CET)
// lets -fno-plt's indirect call reach it under IBT.
asm(".pushsection .text.emu_fiber_switch,\"axG\",@progbits,emu_fiber_switch,comdat\n"
    "    .weak emu_fiber_switch\n"
    "    .hidden emu_fiber_switch\n"
    "    .type emu_fiber_switch, @function\n"
    "    .p2align 4\n"
    "emu_fiber_switch:\n"
    "    endbr64\n"
    "    pushq %rbp\n"
    "    pushq %rbx\n"
    "    pushq %r12\n"
    "    pushq %r13\n"
    "    pushq %r14\n"
    "    pushq %r15\n"
    "    movq %rsp, (%rdi)\n"
    "    movq %rsi, %rsp\n"
    "    popq %r15\n"
    "    popq %r14\n"
    "    popq %r13\n"
    "    popq %r12\n"
    "    popq %rbx\n"
    "    popq %rbp\n"
    "    ret\n"
    "    .size emu_fiber_switch, .-emu_fiber_switch\n"
    ".popsection\n");
extern "C" __attribute__((visibility("hidden"))) void emu_fiber_switch(void** save_sp, void* load_sp);
#endif

// ---------------------------------------------------------------- emulator state
namespace emu {
namespace detail {

// The builtins of the running thread; kernels see them read-only (below).
inline uint3 g_threadIdx{0, 0, 0};
inline uint3 g_blockIdx{0, 0, 0};
inline dim3 g_blockDim{1, 1, 1};
inline dim3 g_gridDim{1, 1, 1};

enum class Mode { Host, Fiber, Plain };
enum class St : unsigned char { Run, AtBlock, AtWarp, Done };
enum class WarpOp : unsigned char { None, Syncwarp, Shfl };
enum class KernelKind : unsigned char { Unknown, BarrierFree, Fibers };

struct Site {  // where a thread waits, for messages
    const char* what;
    const char* file;
    int line;
};

struct Fiber {
#if EMU_FIBER_ASM
    void* sp;  // saved stack pointer while switched out
#else
    ucontext_t ctx;
#endif
    St st;
    WarpOp wop;
    Site site;
    unsigned shfl_seq;  // shuffles done by this thread in this block
};

struct Warp {
    unsigned long long val[32];  // shuffle slots, one per lane
    unsigned seq[32];            // shfl_seq of the lane that wrote the slot
    int waiting, done, size;
};

struct Alloc {
    size_t bytes;
    bool pinned;  // cudaMallocHost
};

constexpr int kMaxThreads = 1024;
constexpr size_t kTotalMem = size_t(80) << 30;
constexpr size_t kGuardBytes = size_t(256) << 10;  // big, so large local arrays still land in it

struct State {
    Mode mode = Mode::Host;
    const char* kernel = "";
    void (*thunk)(const void*) = nullptr;  // calls the kernel with copies of the arguments
    const void* args = nullptr;
    bool used_sync = false;  // some thread of the current block touched a barrier/shuffle

    // fiber scheduler (one block at a time)
    std::vector<Fiber> fib = std::vector<Fiber>(kMaxThreads);  // never resized: contexts live here
    std::vector<char*> stacks;
    size_t stack_bytes = 0;
#if EMU_FIBER_ASM
    void* main_sp = nullptr;  // the scheduler's stack pointer while a fiber runs
#else
    ucontext_t main_ctx;
#endif
    int n = 0, cur = 0, n_done = 0, n_at_block = 0;
    Warp warp[kMaxThreads / 32];

    std::unordered_map<std::uintptr_t, KernelKind> kernels;
    std::map<std::uintptr_t, Alloc> allocs;  // ordered: range lookups for memcpy checks
    size_t dev_bytes = 0;
    cudaError_t last_error = cudaSuccess;
};
inline State S;

inline cudaError_t fail(cudaError_t e) {  // every failing API call sets the last error, like CUDA
    S.last_error = e;
    return e;
}

inline void die_where() {
    const uint3 b = g_blockIdx, t = g_threadIdx;
    std::fprintf(stderr, "    (kernel %s, block (%u,%u,%u), thread (%u,%u,%u))\n", S.kernel, b.x, b.y, b.z, t.x, t.y, t.z);
}

// ---------------------------------------------------------------- fiber stacks
inline void segv_handler(int sig, siginfo_t* si, void*) {
    // Not async-signal-safe in theory; we are about to die anyway.
    const char* a = (const char*)si->si_addr;
    bool overflow = false;
    for (char* s : S.stacks) overflow |= (a >= s - kGuardBytes && a < s);
    if (overflow)
        std::fprintf(stderr, "emu: fiber stack overflow in %s (stack %zu KiB); raise EMU_STACK_KB\n", S.kernel,
                     S.stack_bytes >> 10);
    else if (S.mode != Mode::Host)
        std::fprintf(stderr, "emu: segmentation fault inside kernel %s\n", S.kernel);
    if (S.mode != Mode::Host) die_where();
    signal(sig, SIG_DFL);  // returning re-executes the access and dies the default way
}

inline void ensure_stacks(int n) {
    if (S.stack_bytes == 0) {
        long kb = 64;
        if (const char* e = std::getenv("EMU_STACK_KB")) kb = std::atol(e);
        if (kb < 16) kb = 16;
        long page = sysconf(_SC_PAGESIZE);
        S.stack_bytes = ((size_t)kb * 1024 + page - 1) / page * page;
        // Overflowing a fiber stack should say so, not just "Segmentation fault".
        static std::vector<char> alt(64 << 10);
        stack_t ss{};
        ss.ss_sp = alt.data();
        ss.ss_size = alt.size();
        sigaltstack(&ss, nullptr);
        struct sigaction sa {};
        sa.sa_sigaction = segv_handler;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, nullptr);
        sigaction(SIGBUS, &sa, nullptr);
#if EMU_FIBER_ASM
        // A CET shadow stack would fault on the first return into a fiber. rdsspq is a NOP
        // (ssp stays 0) where shadow stacks are off or unsupported.
        unsigned long long ssp = 0;
        asm volatile("rdsspq %0" : "+r"(ssp));
        if (ssp != 0) {
            std::fprintf(stderr, "emu: x86 shadow stack is on; rebuild with -DEMU_FIBER_UCONTEXT\n");
            std::abort();
        }
#endif
    }
    while ((int)S.stacks.size() < n) {  // stacks are kept for all later blocks and launches
        size_t total = S.stack_bytes + kGuardBytes;
        void* m = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED || mprotect(m, kGuardBytes, PROT_NONE) != 0) {
            std::fprintf(stderr, "emu: cannot allocate fiber stacks\n");
            std::abort();
        }
        S.stacks.push_back((char*)m + kGuardBytes);  // stacks grow down into the guard
    }
}

// ---------------------------------------------------------------- switching
inline void fiber_entry();

#if EMU_FIBER_ASM
// A fresh fiber's stack, from its (page-aligned, so 16-aligned) top down:
//   top-8          0             fiber_entry's return address: it never returns; unwinders stop
//   top-16         &fiber_entry  where the first switch's ret goes
//   top-64..top-24 six zeros     rbp, rbx, r12-r15 for that switch to pop (rbp 0 ends frame walks)
// The ret leaves rsp = top-8, so rsp % 16 == 8 at fiber_entry's first instruction: what the SysV
// ABI guarantees a called function (16-aligned before the call, which pushed 8 bytes).
inline void fiber_init(Fiber& f, char* stack, size_t bytes) {
    std::uintptr_t* top = reinterpret_cast<std::uintptr_t*>(stack + bytes);
    top[-1] = 0;
    top[-2] = reinterpret_cast<std::uintptr_t>(&fiber_entry);
    for (int i = 3; i <= 8; i++) top[-i] = 0;
    f.sp = top - 8;
}
inline void switch_to_fiber(Fiber& f) { emu_fiber_switch(&S.main_sp, f.sp); }
inline void switch_to_scheduler(Fiber& f) { emu_fiber_switch(&f.sp, S.main_sp); }
#else
inline void fiber_init(Fiber& f, char* stack, size_t bytes) {
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = stack;
    f.ctx.uc_stack.ss_size = bytes;
    f.ctx.uc_link = nullptr;
    makecontext(&f.ctx, fiber_entry, 0);  // S.cur tells the fiber who it is
}
inline void switch_to_fiber(Fiber& f) { swapcontext(&S.main_ctx, &f.ctx); }
inline void switch_to_scheduler(Fiber& f) { swapcontext(&f.ctx, &S.main_ctx); }
#endif

// ---------------------------------------------------------------- scheduler
inline void set_thread(int t) {
    const unsigned bx = g_blockDim.x, by = g_blockDim.y;
    g_threadIdx = uint3{t % bx, (t / bx) % by, t / (bx * by)};
}

inline void fiber_entry() {  // S.cur tells the fiber who it is
    S.thunk(S.args);
    Fiber& f = S.fib[S.cur];
    f.st = St::Done;
    S.n_done++;
    S.warp[S.cur >> 5].done++;
    switch_to_scheduler(f);  // never resumed: the next block re-inits every fiber's stack
    std::abort();
}

inline const char* state_name(const Fiber& f) {
    switch (f.st) {
        case St::Done: return "finished";
        case St::Run: return "runnable";
        default: return "wait at";
    }
}

[[noreturn]] inline void deadlock() {
    const uint3 b = g_blockIdx;
    std::fprintf(stderr, "emu: deadlock in %s block (%u,%u,%u): no thread can run; linear thread ids:\n", S.kernel, b.x,
                 b.y, b.z);
    // Group runs of consecutive threads in the same state at the same place.
    auto same = [](const Fiber& a, const Fiber& c) {
        return a.st == c.st && (a.st == St::Done || (a.site.line == c.site.line && a.site.what == c.site.what &&
                                                     std::strcmp(a.site.file, c.site.file) == 0));
    };
    for (int t = 0; t < S.n;) {
        int e = t;
        while (e + 1 < S.n && same(S.fib[t], S.fib[e + 1])) e++;
        const Fiber& f = S.fib[t];
        if (e == t) std::fprintf(stderr, "    thread %d", t);
        else std::fprintf(stderr, "    threads %d-%d", t, e);
        if (f.st == St::AtBlock || f.st == St::AtWarp)
            std::fprintf(stderr, " wait at %s (%s:%d)\n", f.site.what, f.site.file, f.site.line);
        else std::fprintf(stderr, " %s\n", state_name(f));
        t = e + 1;
    }
    std::abort();
}

inline void release_block() {
    const Fiber* first = nullptr;
    for (int t = 0; t < S.n; t++) {
        Fiber& f = S.fib[t];
        if (f.st != St::AtBlock) continue;
        if (!first) first = &f;
        else if (f.site.line != first->site.line || std::strcmp(f.site.file, first->site.file) != 0) {
            const uint3 b = g_blockIdx;
            std::fprintf(stderr,
                         "emu: divergent __syncthreads in %s block (%u,%u,%u): thread %d waits at %s:%d, thread %d at "
                         "%s:%d\n",
                         S.kernel, b.x, b.y, b.z, (int)(first - S.fib.data()), first->site.file, first->site.line, t,
                         f.site.file, f.site.line);
            std::abort();
        }
        f.st = St::Run;
    }
    S.n_at_block = 0;
}

inline void release_warp(int w) {
    Warp& W = S.warp[w];
    WarpOp op = WarpOp::None;
    for (int t = w * 32; t < w * 32 + W.size; t++) {
        Fiber& f = S.fib[t];
        if (f.st != St::AtWarp) continue;
        if (op == WarpOp::None) op = f.wop;
        else if (f.wop != op) {
            std::fprintf(stderr, "emu: warp %d of %s mixes __syncwarp and shuffles (thread %d at %s:%d)\n", w, S.kernel,
                         t, f.site.file, f.site.line);
            std::abort();
        }
        f.st = St::Run;
    }
    W.waiting = 0;
}

inline void run_block_fibers() {
    const int n = S.n;
    ensure_stacks(n);
    for (int t = 0; t < n; t++) {
        Fiber& f = S.fib[t];
        fiber_init(f, S.stacks[t], S.stack_bytes);
        f.st = St::Run;
        f.wop = WarpOp::None;
        f.site = Site{"", "", 0};
        f.shfl_seq = 0;
    }
    const int nwarps = (n + 31) / 32;
    for (int w = 0; w < nwarps; w++) {
        Warp& W = S.warp[w];
        W.waiting = W.done = 0;
        W.size = std::min(32, n - 32 * w);
        std::memset(W.seq, 0, sizeof W.seq);
    }
    S.n_done = S.n_at_block = 0;
    S.used_sync = false;
    S.mode = Mode::Fiber;
    for (;;) {
        // One pass: every runnable fiber runs until it waits or finishes.
        for (int t = 0; t < n; t++) {
            if (S.fib[t].st != St::Run) continue;
            S.cur = t;
            set_thread(t);
            switch_to_fiber(S.fib[t]);
        }
        if (S.n_done == n) break;
        bool released = false;
        if (S.n_at_block > 0 && S.n_at_block + S.n_done == n) {
            release_block();
            released = true;
        }
        for (int w = 0; w < nwarps; w++) {
            Warp& W = S.warp[w];
            if (W.waiting > 0 && W.waiting + W.done == W.size) {
                release_warp(w);
                released = true;
            }
        }
        if (!released) deadlock();
    }
    S.mode = Mode::Host;
}

inline void run_block_plain() {
    S.mode = Mode::Plain;
    const dim3 bd = g_blockDim;
    for (unsigned z = 0; z < bd.z; z++)
        for (unsigned y = 0; y < bd.y; y++)
            for (unsigned x = 0; x < bd.x; x++) {
                g_threadIdx = uint3{x, y, z};
                S.thunk(S.args);
            }
    S.mode = Mode::Host;
}

inline bool config_ok(dim3 g, dim3 b) {
    const unsigned long long threads = (unsigned long long)b.x * b.y * b.z;
    return g.x >= 1 && g.y >= 1 && g.z >= 1 && g.x <= 0x7fffffffu && g.y <= 65535 && g.z <= 65535 && b.x >= 1 &&
           b.y >= 1 && b.z >= 1 && b.x <= 1024 && b.y <= 1024 && b.z <= 64 && threads <= (unsigned long long)kMaxThreads;
}

inline void run_grid(std::uintptr_t key, const char* name, dim3 grid, dim3 block, void (*thunk)(const void*),
                     const void* args) {
    if (S.mode != Mode::Host) {
        std::fprintf(stderr, "emu: %s launched from inside kernel %s; not supported\n", name, S.kernel);
        std::abort();
    }
    if (!config_ok(grid, block)) {  // like CUDA: nothing runs, the error waits for cudaGetLastError
        S.last_error = cudaErrorInvalidConfiguration;
        return;
    }
    S.kernel = name;
    S.thunk = thunk;
    S.args = args;
    S.n = (int)(block.x * block.y * block.z);
    g_blockDim = block;
    g_gridDim = grid;
    KernelKind& kind = S.kernels[key];
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                g_blockIdx = uint3{x, y, z};
                if (kind == KernelKind::BarrierFree) {
                    run_block_plain();
                } else {
                    run_block_fibers();
                    if (kind == KernelKind::Unknown) kind = S.used_sync ? KernelKind::Fibers : KernelKind::BarrierFree;
                }
            }
    g_threadIdx = g_blockIdx = uint3{0, 0, 0};
}

// Kernel arguments are converted to the parameter types (as a call would) and
// stored once; every emulated thread gets its own copies, so kernels may modify
// their by-value parameters.
template <class... P>
struct Launch {
    void (*kernel)(P...);
    const char* name;
    dim3 grid, block;
    using Args = std::tuple<std::remove_cv_t<P>...>;
    struct Ctx {
        void (*kernel)(P...);
        Args args;
    };
    static void thunk(const void* c) {
        const Ctx* ctx = static_cast<const Ctx*>(c);
        std::apply(ctx->kernel, ctx->args);
    }
    void operator()(P... p) const {
        const Ctx ctx{kernel, Args(p...)};
        run_grid(reinterpret_cast<std::uintptr_t>(kernel), name, grid, block, &thunk, &ctx);
    }
};

template <class... P>
inline Launch<P...> make_launch(void (*kernel)(P...), const char* name, dim3 grid, dim3 block, size_t /*smem*/ = 0,
                                cudaStream_t /*stream*/ = nullptr) {
    return Launch<P...>{kernel, name, grid, block};
}

// ---------------------------------------------------------------- barriers
inline Fiber& begin_wait(const char* what, const char* file, int line) {
    if (S.mode == Mode::Plain) {
        std::fprintf(stderr, "emu: %s used a barrier after its first block ran without one; cannot emulate\n", S.kernel);
        std::fprintf(stderr, "    (%s at %s:%d)\n", what, file, line);
        die_where();
        std::abort();
    }
    if (S.mode != Mode::Fiber) {
        std::fprintf(stderr, "emu: %s called outside a kernel (%s:%d)\n", what, file, line);
        std::abort();
    }
    S.used_sync = true;
    Fiber& f = S.fib[S.cur];
    f.site = Site{what, file, line};
    return f;
}

inline void check_mask(unsigned mask, const char* what, const char* file, int line) {
    if (mask != 0xffffffffu) {
        std::fprintf(stderr, "emu: %s with mask 0x%08x at %s:%d; only the full mask 0xffffffff is supported\n", what,
                     mask, file, line);
        if (S.mode != Mode::Host) die_where();
        std::abort();
    }
}

inline void warp_wait(WarpOp op, const char* what, const char* file, int line) {
    Fiber& f = begin_wait(what, file, line);
    f.st = St::AtWarp;
    f.wop = op;
    S.warp[S.cur >> 5].waiting++;
    switch_to_scheduler(f);
}

enum ShflKind { kIdx, kXor, kDown };

// Source lane as in the PTX shfl.sync definition: lanes are grouped in
// segments of `width`; a source past the end of the lane's own segment
// yields the lane's own value (earlier segments are reachable).
inline int shfl_source(ShflKind kind, int lane, long long b, int width) {
    const int min_lane = lane & ~(width - 1);
    const int max_lane = min_lane + width - 1;
    long long j = 0;
    switch (kind) {
        case kIdx: j = min_lane | (b & (width - 1)); break;
        case kXor: j = lane ^ b; break;
        case kDown: j = lane + b; break;
    }
    return (j >= 0 && j <= max_lane) ? (int)j : lane;
}

template <class T>
inline T shfl(const char* what, ShflKind kind, unsigned mask, T v, long long b, int width, const char* file, int line) {
    static_assert(std::is_trivially_copyable<T>::value && sizeof(T) <= 8, "shuffle of an unsupported type");
    check_mask(mask, what, file, line);
    if (width < 1 || width > 32 || (width & (width - 1))) {
        std::fprintf(stderr, "emu: %s with width %d at %s:%d; width must be a power of 2 <= 32\n", what, width, file,
                     line);
        std::abort();
    }
    begin_wait(what, file, line);  // aborts outside fiber mode, before S.cur is used
    const int t = S.cur, lane = t & 31;
    Warp& W = S.warp[t >> 5];
    const unsigned seq = ++S.fib[t].shfl_seq;
    W.val[lane] = 0;
    std::memcpy(&W.val[lane], &v, sizeof(T));
    W.seq[lane] = seq;
    warp_wait(WarpOp::Shfl, what, file, line);  // everyone has written
    const int j = shfl_source(kind, lane, b, width);
    T r = v;
    if (j != lane) {
        if (W.seq[j] != seq) {
            std::fprintf(stderr, "emu: %s at %s:%d: lane %d reads lane %d, which did not take part in this shuffle\n",
                         what, file, line, lane, j);
            die_where();
            std::abort();
        }
        std::memcpy(&r, &W.val[j], sizeof(T));
    }
    warp_wait(WarpOp::Shfl, what, file, line);  // everyone has read: slots may be reused
    return r;
}

}  // namespace detail
}  // namespace emu

// ---------------------------------------------------------------- builtins
// Read-only views of the running thread's coordinates.
inline const uint3& threadIdx = emu::detail::g_threadIdx;
inline const uint3& blockIdx = emu::detail::g_blockIdx;
inline const dim3& blockDim = emu::detail::g_blockDim;
inline const dim3& gridDim = emu::detail::g_gridDim;
constexpr int warpSize = 32;

// The file/line default arguments name the call site in deadlock messages.
inline void __syncthreads(const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
    using namespace emu::detail;
    Fiber& f = begin_wait("__syncthreads", file, line);
    f.st = St::AtBlock;
    S.n_at_block++;
    switch_to_scheduler(f);
}
inline void __syncwarp(unsigned mask = 0xffffffffu, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
    emu::detail::check_mask(mask, "__syncwarp", file, line);
    emu::detail::warp_wait(emu::detail::WarpOp::Syncwarp, "__syncwarp", file, line);
}
template <class T>
inline T __shfl_sync(unsigned mask, T v, int srcLane, int width = 32, const char* file = __builtin_FILE(),
                     int line = __builtin_LINE()) {
    return emu::detail::shfl("__shfl_sync", emu::detail::kIdx, mask, v, srcLane, width, file, line);
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int laneMask, int width = 32, const char* file = __builtin_FILE(),
                         int line = __builtin_LINE()) {
    return emu::detail::shfl("__shfl_xor_sync", emu::detail::kXor, mask, v, laneMask, width, file, line);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32, const char* file = __builtin_FILE(),
                          int line = __builtin_LINE()) {
    return emu::detail::shfl("__shfl_down_sync", emu::detail::kDown, mask, v, delta, width, file, line);
}

// `NAME<<<grid, block[, smem[, stream]]>>>(args)` becomes
// `EMU_LAUNCH(NAME, grid, block[, smem[, stream]])(args)`.
#define EMU_LAUNCH(kernel, ...) ::emu::detail::make_launch(kernel, #kernel, __VA_ARGS__)

// ---------------------------------------------------------------- runtime API
inline const char* cudaGetErrorString(cudaError_t e) {
    switch (e) {
        case cudaSuccess: return "no error";
        case cudaErrorInvalidValue: return "invalid argument";
        case cudaErrorMemoryAllocation: return "out of memory";
        case cudaErrorInvalidConfiguration: return "invalid configuration argument";
        case cudaErrorInvalidDevice: return "invalid device ordinal";
        case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    }
    return "unrecognized error code";
}
inline cudaError_t cudaGetLastError() {
    cudaError_t e = emu::detail::S.last_error;
    emu::detail::S.last_error = cudaSuccess;
    return e;
}
inline cudaError_t cudaPeekAtLastError() { return emu::detail::S.last_error; }

inline cudaError_t cudaGetDeviceCount(int* n) {
    if (!n) return emu::detail::fail(cudaErrorInvalidValue);
    *n = 1;
    return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : emu::detail::fail(cudaErrorInvalidDevice); }
inline cudaError_t cudaGetDevice(int* d) {
    if (!d) return emu::detail::fail(cudaErrorInvalidValue);
    *d = 0;
    return cudaSuccess;
}
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d) {
    if (!p) return emu::detail::fail(cudaErrorInvalidValue);
    if (d != 0) return emu::detail::fail(cudaErrorInvalidDevice);
    std::memset(p, 0, sizeof *p);
    std::snprintf(p->name, sizeof p->name, "CUDA emulator (CPU)");
    p->totalGlobalMem = emu::detail::kTotalMem;
    p->sharedMemPerBlock = 49152;
    p->sharedMemPerBlockOptin = 232448;
    p->sharedMemPerMultiprocessor = 233472;
    p->warpSize = 32;
    p->maxThreadsPerBlock = 1024;
    p->maxThreadsPerMultiProcessor = 2048;
    p->major = 9;
    p->minor = 0;
    p->multiProcessorCount = 4;
    return cudaSuccess;
}
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }  // launches are synchronous
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
template <class... A>
inline cudaError_t cudaFuncSetAttribute(A&&...) { return cudaSuccess; }

// memory
inline cudaError_t cudaMalloc(void** p, size_t bytes) {
    using namespace emu::detail;
    if (!p) return fail(cudaErrorInvalidValue);
    *p = nullptr;
    if (bytes == 0) return cudaSuccess;
    if (bytes > kTotalMem || S.dev_bytes + bytes > kTotalMem) return fail(cudaErrorMemoryAllocation);
    const size_t rounded = (bytes + 255) / 256 * 256;
    void* m = std::aligned_alloc(256, rounded);
    if (!m) return fail(cudaErrorMemoryAllocation);
    std::memset(m, 0xff, rounded);  // uninitialised "device" memory reads as NaN / -1, not as a lucky 0
    S.allocs[(std::uintptr_t)m] = Alloc{bytes, false};
    S.dev_bytes += rounded;
    *p = m;
    return cudaSuccess;
}
template <class T>
inline cudaError_t cudaMalloc(T** p, size_t bytes) { return cudaMalloc((void**)(void*)p, bytes); }

inline cudaError_t cudaFree(void* p) {
    using namespace emu::detail;
    if (!p) return cudaSuccess;
    auto it = S.allocs.find((std::uintptr_t)p);
    if (it == S.allocs.end() || it->second.pinned) return fail(cudaErrorInvalidValue);
    S.dev_bytes -= (it->second.bytes + 255) / 256 * 256;
    S.allocs.erase(it);
    std::free(p);
    return cudaSuccess;
}

inline cudaError_t cudaMallocHost(void** p, size_t bytes) {
    using namespace emu::detail;
    if (!p) return fail(cudaErrorInvalidValue);
    *p = std::malloc(bytes ? bytes : 1);
    if (!*p) return fail(cudaErrorMemoryAllocation);
    S.allocs[(std::uintptr_t)*p] = Alloc{bytes, true};
    return cudaSuccess;
}
template <class T>
inline cudaError_t cudaMallocHost(T** p, size_t bytes) { return cudaMallocHost((void**)(void*)p, bytes); }
inline cudaError_t cudaFreeHost(void* p) {
    using namespace emu::detail;
    if (!p) return cudaSuccess;
    auto it = S.allocs.find((std::uintptr_t)p);
    if (it == S.allocs.end() || !it->second.pinned) return fail(cudaErrorInvalidValue);
    S.allocs.erase(it);
    std::free(p);
    return cudaSuccess;
}

inline cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
    using namespace emu::detail;
    if (!free_bytes || !total_bytes) return fail(cudaErrorInvalidValue);
    *total_bytes = kTotalMem;
    *free_bytes = kTotalMem - S.dev_bytes;
    return cudaSuccess;
}

namespace emu {
namespace detail {
// [p, p+bytes) inside one cudaMalloc (or, as with unified addressing, cudaMallocHost) allocation?
inline bool device_range(const void* p, size_t bytes) {
    auto it = S.allocs.upper_bound((std::uintptr_t)p);
    if (it == S.allocs.begin()) return false;
    --it;
    const size_t off = (std::uintptr_t)p - it->first;
    return off <= it->second.bytes && bytes <= it->second.bytes - off;
}
}  // namespace detail
}  // namespace emu

inline cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
    using namespace emu::detail;
    if (bytes == 0) return cudaSuccess;
    if (!dst || !src || (int)kind < 0 || (int)kind > 4) return fail(cudaErrorInvalidValue);
    const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if ((dst_dev && !device_range(dst, bytes)) || (src_dev && !device_range(src, bytes)))
        return fail(cudaErrorInvalidValue);  // wrong direction or past the end of an allocation
    std::memmove(dst, src, bytes);
    return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                                   cudaStream_t = nullptr) {
    return cudaMemcpy(dst, src, bytes, kind);
}
inline cudaError_t cudaMemset(void* p, int value, size_t bytes) {
    using namespace emu::detail;
    if (bytes == 0) return cudaSuccess;
    if (!device_range(p, bytes)) return fail(cudaErrorInvalidValue);
    std::memset(p, value, bytes);
    return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t = nullptr) {
    return cudaMemset(p, value, bytes);
}

// events: wall clock (launches are synchronous, so this times the emulation)
inline cudaError_t cudaEventCreate(cudaEvent_t* e) {
    if (!e) return emu::detail::fail(cudaErrorInvalidValue);
    *e = new CUevent_st{std::chrono::steady_clock::now(), false};
    return cudaSuccess;
}
inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t = nullptr) {
    if (!e) return emu::detail::fail(cudaErrorInvalidResourceHandle);
    e->t = std::chrono::steady_clock::now();
    e->recorded = true;
    return cudaSuccess;
}
inline cudaError_t cudaEventSynchronize(cudaEvent_t e) {
    return e ? cudaSuccess : emu::detail::fail(cudaErrorInvalidResourceHandle);
}
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
    if (!ms) return emu::detail::fail(cudaErrorInvalidValue);
    if (!a || !b || !a->recorded || !b->recorded) return emu::detail::fail(cudaErrorInvalidResourceHandle);
    *ms = std::chrono::duration<float, std::milli>(b->t - a->t).count();
    return cudaSuccess;
}
inline cudaError_t cudaEventDestroy(cudaEvent_t e) {
    if (!e) return emu::detail::fail(cudaErrorInvalidResourceHandle);
    delete e;
    return cudaSuccess;
}

// ---------------------------------------------------------------- wmma (tensor cores)
// nvcuda::wmma, for the bf16 16x16x16 shapes. On the GPU a fragment's tile is spread over the
// warp's 32 lanes in a layout the API does not specify; here EVERY lane holds the whole tile and
// does the whole load / multiply / store itself. Code that only loads, multiplies, stores, fills,
// or applies one operation to every x[i] (i < num_elements) computes the same thing either way;
// code that assumes which lane holds which element is not portable and is not supported. The
// products accumulate in float, as the tensor cores do for bf16 inputs (the order may differ).
// The collectives are not barriers: as on the GPU, data written by other lanes must be ordered
// by __syncwarp / __syncthreads before a load reads it (a lane runs ahead here until it reaches
// one, so a missing sync tends to give wrong numbers).
namespace nvcuda {
namespace wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K> struct emu_tile;
template <int M, int N, int K> struct emu_tile<matrix_a, M, N, K> { static const int rows = M, cols = K; };
template <int M, int N, int K> struct emu_tile<matrix_b, M, N, K> { static const int rows = K, cols = N; };
template <int M, int N, int K> struct emu_tile<accumulator, M, N, K> { static const int rows = M, cols = N; };

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
    static const int rows = emu_tile<Use, M, N, K>::rows, cols = emu_tile<Use, M, N, K>::cols;
    static const int num_elements = rows * cols;
    T x[rows * cols]; // (r, c) at x[r * cols + c]
};

// what the GPU requires of a tile's memory: a 256-bit aligned pointer and a leading dimension
// that is a multiple of 16 bytes' worth of elements; the emulator aborts where the GPU would fail
template <typename T> inline void emu_wmma_check(const T* p, unsigned ldm, const char* what) {
    if ((uintptr_t)p % 32 != 0 || (ldm * sizeof(T)) % 16 != 0) {
        fprintf(stderr, "emu: wmma %s: pointer %p must be 32-byte aligned and ldm %u a multiple of %zu elements\n",
                what, (const void*)p, ldm, 16 / sizeof(T));
        abort();
    }
}

template <typename Use, int M, int N, int K, typename T, typename Layout, typename V>
inline void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, const V& v) {
    for (int i = 0; i < f.num_elements; i++) { f.x[i] = T(v); }
}

// matrix_a / matrix_b: the memory layout is the fragment's
template <typename Use, int M, int N, int K, typename T, typename Layout>
inline void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const T* p, unsigned ldm) {
    static_assert(std::is_same<Layout, row_major>::value || std::is_same<Layout, col_major>::value,
                  "matrix_a / matrix_b fragments name their layout");
    emu_wmma_check(p, ldm, "load_matrix_sync");
    const int R = f.rows, Cc = f.cols;
    for (int r = 0; r < R; r++) {
        for (int c = 0; c < Cc; c++) {
            f.x[r * Cc + c] = std::is_same<Layout, row_major>::value ? p[(size_t)r * ldm + c] : p[(size_t)c * ldm + r];
        }
    }
}

// accumulator: the memory layout is an argument
template <int M, int N, int K, typename T>
inline void load_matrix_sync(fragment<accumulator, M, N, K, T, void>& f, const T* p, unsigned ldm, layout_t l) {
    emu_wmma_check(p, ldm, "load_matrix_sync");
    for (int r = 0; r < M; r++) {
        for (int c = 0; c < N; c++) { f.x[r * N + c] = l == mem_row_major ? p[(size_t)r * ldm + c] : p[(size_t)c * ldm + r]; }
    }
}
template <int M, int N, int K, typename T>
inline void store_matrix_sync(T* p, const fragment<accumulator, M, N, K, T, void>& f, unsigned ldm, layout_t l) {
    emu_wmma_check(p, ldm, "store_matrix_sync");
    for (int r = 0; r < M; r++) {
        for (int c = 0; c < N; c++) {
            if (l == mem_row_major) { p[(size_t)r * ldm + c] = f.x[r * N + c]; } else { p[(size_t)c * ldm + r] = f.x[r * N + c]; }
        }
    }
}

// d = a b + c
template <int M, int N, int K, typename T, typename LA, typename LB, typename TC>
inline void mma_sync(fragment<accumulator, M, N, K, TC, void>& d, const fragment<matrix_a, M, N, K, T, LA>& a,
                     const fragment<matrix_b, M, N, K, T, LB>& b, const fragment<accumulator, M, N, K, TC, void>& c) {
    TC tmp[M * N];
    for (int r = 0; r < M; r++) {
        for (int n = 0; n < N; n++) {
            float s = (float)c.x[r * N + n];
            for (int k = 0; k < K; k++) { s += (float)a.x[r * K + k] * (float)b.x[k * N + n]; }
            tmp[r * N + n] = s;
        }
    }
    for (int i = 0; i < M * N; i++) { d.x[i] = tmp[i]; }
}
}  // namespace wmma
}  // namespace nvcuda
