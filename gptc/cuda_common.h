// gptc/cuda_common.h -- what every CUDA part of the trainer shares: the precision, error checks,
// device memory, warp reductions, and the cuBLASLt matmul.
//
// What it is: the plumbing of train_gpt.cu (and of dev/cuda's kernel lab, through it): the
// floatX type (bf16, or float with PRECISION_FP32) and its conversions; CUDA_CHECK, LAUNCH_CHECK,
// CUBLAS_CHECK and NCCL_CHECK, each failure one "error:" line naming the call and file:line;
// cuda_alloc, ceil_div; warp sums and maxima in a fixed order (so every reduction is
// deterministic); and matmul_lt, one cuBLASLt call with its layouts and epilogues.
// What it is not: a kernel of the model (train_gpt.cu), or an abstraction over CUDA: without a GPU,
// the emulator (dev/cuda/emu.h, prepended by dev/cuda/emu_build.sh) supplies this same API.
// Included by train_gpt.cu after train_gpt.c (it uses die(), gptc/utils.h) and after the CUDA
// headers (or the emulator's, dev/cuda/emu_cublaslt.h and emu_nccl.h).

#ifndef GPTC_CUDA_COMMON_H
#define GPTC_CUDA_COMMON_H

#if defined(USE_MPI) || defined(GPT_CUDA_EMU)
#define GPT_NCCL 1
#else
#define GPT_NCCL 0                 // one process: no NCCL (g_comm.size is 1)
#endif


// ----------------------------------------------------------------------------------------------
// Precision and error checks

#ifdef PRECISION_FP32
typedef float floatX;
#define FLOATX_CUDA CUDA_R_32F
#define PRECISION_NAME "fp32"
__host__ __device__ static inline float to_float(float x) { return x; }
__host__ __device__ static inline floatX to_floatX(float x) { return x; }
#else
typedef __nv_bfloat16 floatX;
#define FLOATX_CUDA CUDA_R_16BF
#define PRECISION_NAME "bf16"
__host__ __device__ static inline float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__host__ __device__ static inline floatX to_floatX(float x) { return __float2bfloat16_rn(x); }
#endif

static void cuda_check(cudaError_t err, const char* what, const char* file, int line) {
    if (err != cudaSuccess) { die("%s:%d: CUDA error in %s: %s", file, line, what, cudaGetErrorString(err)); }
}
#define CUDA_CHECK(call) cuda_check((call), #call, __FILE__, __LINE__)
// after every launch: a bad configuration is reported here, a fault in the kernel at the next sync
#define LAUNCH_CHECK(kernel) cuda_check(cudaGetLastError(), "launch of " kernel, __FILE__, __LINE__)
#if GPT_NCCL
static void nccl_check(ncclResult_t r, const char* what, const char* file, int line) {
    if (r != ncclSuccess) { die("%s:%d: NCCL error in %s: %s", file, line, what, ncclGetErrorString(r)); }
}
#define NCCL_CHECK(call) nccl_check((call), #call, __FILE__, __LINE__)
#ifdef PRECISION_FP32
#define NCCL_FLOATX ncclFloat
#else
#define NCCL_FLOATX ncclBfloat16
#endif
#endif

static void cublas_check(cublasStatus_t st, const char* what, const char* file, int line) {
    if (st != CUBLAS_STATUS_SUCCESS) { die("%s:%d: cuBLASLt error %d in %s", file, line, (int)st, what); }
}
#define CUBLAS_CHECK(call) cublas_check((call), #call, __FILE__, __LINE__)

__host__ __device__ static inline int ceil_div(long a, long b) { return (int)((a + b - 1) / b); }

template <typename T> static T* cuda_alloc(size_t n, const char* what) {
    void* p = NULL;
    cudaError_t err = cudaMalloc(&p, n * sizeof(T) > 0 ? n * sizeof(T) : 1);
    if (err != cudaSuccess) {
        die("out of GPU memory allocating %s (%.1f MiB): %s; try a smaller -b", what,
            (double)(n * sizeof(T)) / 1048576.0, cudaGetErrorString(err));
    }
    return (T*)p;
}

// ----------------------------------------------------------------------------------------------
// --- reductions inside a warp / block, in a fixed order (xor butterfly, then warps in order)

__device__ static inline float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) { v += __shfl_xor_sync(0xffffffffu, v, o); }
    return v;
}
__device__ static inline double warp_sum_double(double v) {
    for (int o = 16; o > 0; o >>= 1) { v += __shfl_xor_sync(0xffffffffu, v, o); }
    return v;
}
__device__ static inline float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) { v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o)); }
    return v;
}

// ----------------------------------------------------------------------------------------------
// Matmuls: cuBLASLt. Our tensors are row-major; cuBLASLt is column-major, where the buffer of a
// row-major (rows, cols) array IS the (cols, rows) matrix, its transpose. So
//   forward  out (BT,OC) = inp (BT,C) @ W^T      is  D (OC,BT) = op(A) B: A = W's buffer (C,OC),
//            transposed; B = inp's buffer (C,BT)
//   dinp     dinp (BT,C) = dout (BT,OC) @ W      is  D (C,BT) = A B: A = W's buffer (C,OC),
//            B = dout's buffer (OC,BT)
//   dweight  dW (OC,C) += dout^T (OC,BT) @ inp   is  D (C,OC) += A op(B): A = inp's buffer (C,BT),
//            B = dout's buffer (OC,BT), transposed

static cublasLtHandle_t g_lt;
static void* g_lt_workspace;
#define LT_WORKSPACE_BYTES (32u << 20)

// D (m,n; ld ldd; type dtype) = alpha * op(A) op(B) + beta * D, with an optional epilogue:
// bias (m) added to every column, and GELU with the pre-activation written to aux.
static void matmul_lt(void* d, cudaDataType_t dtype, int ldd, const floatX* a, int transa, int lda,
                      const floatX* b, int transb, int ldb, int m, int n, int k, float alpha, float beta,
                      const floatX* bias, int gelu, floatX* aux, const char* what) {
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, ld;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t opa = transa ? CUBLAS_OP_T : CUBLAS_OP_N, opb = transb ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof(opa)));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof(opb)));
    cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_DEFAULT;
    if (gelu) { epi = bias != NULL ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX; }
    else if (bias != NULL) { epi = CUBLASLT_EPILOGUE_BIAS; }
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
    if (bias != NULL) {
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
    }
    if (gelu) {
        int64_t aux_ld = ldd;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof(aux)));
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld, sizeof(aux_ld)));
    }
    // stored shapes: op(A) is (m,k), so A is (k,m) when transposed; likewise B
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&la, FLOATX_CUDA, transa ? k : m, transa ? m : k, lda));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lb, FLOATX_CUDA, transb ? n : k, transb ? k : n, ldb));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ld, dtype, m, n, ldd));
    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    size_t ws = LT_WORKSPACE_BYTES;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    // the heuristic assumes 256-byte aligned pointers unless told: per-layer slices of odd shapes
    // (C = 60, say) are not, so say what they are
    const void* ptrs[4] = {a, b, d, d};
    const cublasLtMatmulPreferenceAttributes_t align_attr[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4; i++) {
        uint32_t align = 256;
        while (align > 1 && (uintptr_t)ptrs[i] % align != 0) { align /= 2; }
        CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, align_attr[i], &align, sizeof(align)));
    }
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(g_lt, desc, la, lb, ld, ld, pref, 1, &heur, &found));
    if (found == 0) {
        die("cuBLASLt has no algorithm for %s (m=%d n=%d k=%d, epilogue %d)", what, m, n, k, (int)epi);
    }
    CUBLAS_CHECK(cublasLtMatmul(g_lt, desc, &alpha, a, la, b, lb, &beta, d, ld, d, ld, &heur.algo,
                                g_lt_workspace, LT_WORKSPACE_BYTES, 0));
    CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(la));
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(lb));
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(ld));
    CUBLAS_CHECK(cublasLtMatmulDescDestroy(desc));
}

#endif // GPTC_CUDA_COMMON_H
