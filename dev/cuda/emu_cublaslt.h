/*
emu_cublaslt.h -- the part of cuBLASLt that train_gpt.cu calls, computed on the CPU.

What it is: for the emulator build (GPT_CUDA_EMU, see emu.h), the types, enums and functions of
cublasLt.h that train_gpt.cu uses, with the semantics of NVIDIA's documentation: column-major
D = epilogue(alpha * op(A) op(B) + beta * C [+ bias]), fp32 accumulation, the result rounded
to D's type. Included by train_gpt.cu after train_gpt.c, whose packed GEMM (mm_gemm) does the
arithmetic, so a d12 test runs in seconds rather than hours.

What it is not: cuBLASLt. It validates our descriptors against OUR reading of the API (shapes,
leading dimensions, transposes, types, epilogues); a misreading of the API would be shared by
both sides and only the GPU run can reveal it. The GELU epilogue is the tanh approximation.
*/
#ifndef EMU_CUBLASLT_H
#define EMU_CUBLASLT_H

typedef enum {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_INVALID_VALUE = 7,
    CUBLAS_STATUS_NOT_SUPPORTED = 15
} cublasStatus_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 } cublasOperation_t;
typedef enum { CUBLAS_COMPUTE_32F = 68 } cublasComputeType_t;
typedef enum {
    CUBLASLT_EPILOGUE_DEFAULT = 1,
    CUBLASLT_EPILOGUE_BIAS = 4,
    CUBLASLT_EPILOGUE_GELU_AUX = 32 | 128,
    CUBLASLT_EPILOGUE_GELU_AUX_BIAS = 32 | 128 | 4
} cublasLtEpilogue_t;
typedef enum {
    CUBLASLT_MATMUL_DESC_TRANSA = 3,
    CUBLASLT_MATMUL_DESC_TRANSB = 4,
    CUBLASLT_MATMUL_DESC_EPILOGUE = 7,
    CUBLASLT_MATMUL_DESC_BIAS_POINTER = 8,
    CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER = 11,
    CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD = 12
} cublasLtMatmulDescAttributes_t;
typedef enum {
    CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES = 5,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES = 6,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES = 7,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES = 8
} cublasLtMatmulPreferenceAttributes_t;

struct EmuLtHandle { int magic; };
struct EmuLtDesc {
    cublasComputeType_t compute; cudaDataType_t scale;
    cublasOperation_t transa, transb; cublasLtEpilogue_t epilogue;
    const void* bias; void* aux; int64_t aux_ld;
};
struct EmuLtLayout { cudaDataType_t type; uint64_t rows, cols; int64_t ld; };
struct EmuLtPref { size_t workspace; };
typedef EmuLtHandle* cublasLtHandle_t;
typedef EmuLtDesc* cublasLtMatmulDesc_t;
typedef EmuLtLayout* cublasLtMatrixLayout_t;
typedef EmuLtPref* cublasLtMatmulPreference_t;
typedef struct { uint64_t data[8]; } cublasLtMatmulAlgo_t;
typedef struct {
    cublasLtMatmulAlgo_t algo; size_t workspaceSize; cublasStatus_t state; float wavesCount; int reserved[4];
} cublasLtMatmulHeuristicResult_t;

static cublasStatus_t cublasLtCreate(cublasLtHandle_t* h) { *h = new EmuLtHandle{1}; return CUBLAS_STATUS_SUCCESS; }
static inline cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) { delete h; return CUBLAS_STATUS_SUCCESS; }
static cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* d, cublasComputeType_t compute, cudaDataType_t scale) {
    *d = new EmuLtDesc{compute, scale, CUBLAS_OP_N, CUBLAS_OP_N, CUBLASLT_EPILOGUE_DEFAULT, NULL, NULL, 0};
    return CUBLAS_STATUS_SUCCESS;
}
static cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) { delete d; return CUBLAS_STATUS_SUCCESS; }
static cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr,
                                                     const void* buf, size_t size) {
    switch (attr) {
        case CUBLASLT_MATMUL_DESC_TRANSA: if (size != sizeof(d->transa)) { break; } memcpy(&d->transa, buf, size); return CUBLAS_STATUS_SUCCESS;
        case CUBLASLT_MATMUL_DESC_TRANSB: if (size != sizeof(d->transb)) { break; } memcpy(&d->transb, buf, size); return CUBLAS_STATUS_SUCCESS;
        case CUBLASLT_MATMUL_DESC_EPILOGUE: if (size != sizeof(d->epilogue)) { break; } memcpy(&d->epilogue, buf, size); return CUBLAS_STATUS_SUCCESS;
        case CUBLASLT_MATMUL_DESC_BIAS_POINTER: if (size != sizeof(void*)) { break; } memcpy(&d->bias, buf, size); return CUBLAS_STATUS_SUCCESS;
        case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER: if (size != sizeof(void*)) { break; } memcpy(&d->aux, buf, size); return CUBLAS_STATUS_SUCCESS;
        case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD: if (size != sizeof(int64_t)) { break; } memcpy(&d->aux_ld, buf, size); return CUBLAS_STATUS_SUCCESS;
    }
    return CUBLAS_STATUS_INVALID_VALUE;
}
static cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* l, cudaDataType_t type, uint64_t rows,
                                                 uint64_t cols, int64_t ld) {
    if (ld < (int64_t)rows) { return CUBLAS_STATUS_INVALID_VALUE; }
    *l = new EmuLtLayout{type, rows, cols, ld};
    return CUBLAS_STATUS_SUCCESS;
}
static cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) { delete l; return CUBLAS_STATUS_SUCCESS; }
static cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* p) { *p = new EmuLtPref{0}; return CUBLAS_STATUS_SUCCESS; }
static cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) { delete p; return CUBLAS_STATUS_SUCCESS; }
static cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p, cublasLtMatmulPreferenceAttributes_t attr,
                                                           const void* buf, size_t size) {
    if (attr == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES && size == sizeof(size_t)) {
        memcpy(&p->workspace, buf, size);
        return CUBLAS_STATUS_SUCCESS;
    }
    if (attr >= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES && attr <= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES &&
        size == sizeof(uint32_t)) {
        return CUBLAS_STATUS_SUCCESS; // the CPU has no alignment needs
    }
    return CUBLAS_STATUS_INVALID_VALUE;
}

// the shape checks a real heuristic query would fail on: op(A) (m,k), op(B) (k,n), C = D (m,n),
// A and B of one type, D of that type or fp32, fp32 compute and scale
static int emu_lt_shapes(cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                         cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t dd, uint64_t* m, uint64_t* n, uint64_t* k) {
    uint64_t am = d->transa == CUBLAS_OP_T ? a->cols : a->rows, ak = d->transa == CUBLAS_OP_T ? a->rows : a->cols;
    uint64_t bk = d->transb == CUBLAS_OP_T ? b->cols : b->rows, bn = d->transb == CUBLAS_OP_T ? b->rows : b->cols;
    if (ak != bk || dd->rows != am || dd->cols != bn || c->rows != dd->rows || c->cols != dd->cols || c->ld != dd->ld) { return 0; }
    if (a->type != b->type || c->type != dd->type || (dd->type != a->type && dd->type != CUDA_R_32F)) { return 0; }
    if (d->compute != CUBLAS_COMPUTE_32F || d->scale != CUDA_R_32F) { return 0; }
    int has_bias = d->epilogue == CUBLASLT_EPILOGUE_BIAS || d->epilogue == CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
    int has_aux = d->epilogue == CUBLASLT_EPILOGUE_GELU_AUX || d->epilogue == CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
    if (has_bias && d->bias == NULL) { return 0; }
    if (has_aux && (d->aux == NULL || d->aux_ld < (int64_t)am || d->aux_ld % 8 != 0)) { return 0; }
    *m = am; *n = bn; *k = ak;
    return 1;
}

static cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a,
                                                     cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t dd,
                                                     cublasLtMatmulPreference_t p, int requested,
                                                     cublasLtMatmulHeuristicResult_t* results, int* returned) {
    (void)h; (void)p;
    uint64_t m, n, k;
    *returned = 0;
    if (requested < 1) { return CUBLAS_STATUS_INVALID_VALUE; }
    if (!emu_lt_shapes(d, a, b, c, dd, &m, &n, &k)) { return CUBLAS_STATUS_NOT_SUPPORTED; }
    memset(&results[0], 0, sizeof(results[0]));
    results[0].state = CUBLAS_STATUS_SUCCESS;
    *returned = 1;
    return CUBLAS_STATUS_SUCCESS;
}

static float emu_lt_load(const void* p, cudaDataType_t t, size_t i) {
    return t == CUDA_R_32F ? ((const float*)p)[i] : __bfloat162float(((const __nv_bfloat16*)p)[i]);
}
static void emu_lt_store(void* p, cudaDataType_t t, size_t i, float x) {
    if (t == CUDA_R_32F) { ((float*)p)[i] = x; } else { ((__nv_bfloat16*)p)[i] = __float2bfloat16(x); }
}
// a stored (rows, cols, ld) matrix as dense floats, same layout
static float* emu_lt_floats(const void* p, const EmuLtLayout* l) {
    size_t n = (size_t)l->ld * l->cols;
    float* f = (float*)malloc_or_die(n * sizeof(float));
    for (size_t j = 0; j < l->cols; j++) {
        for (size_t i = 0; i < l->rows; i++) { f[j * l->ld + i] = emu_lt_load(p, l->type, j * l->ld + i); }
    }
    return f;
}

static cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void* alpha, const void* A,
                                     cublasLtMatrixLayout_t la, const void* B, cublasLtMatrixLayout_t lb,
                                     const void* beta, const void* C, cublasLtMatrixLayout_t lc, void* D,
                                     cublasLtMatrixLayout_t ld, const cublasLtMatmulAlgo_t* algo, void* ws,
                                     size_t ws_size, cudaStream_t stream) {
    (void)h; (void)algo; (void)ws; (void)ws_size; (void)stream;
    uint64_t m, n, k;
    if (!emu_lt_shapes(d, la, lb, lc, ld, &m, &n, &k)) { return CUBLAS_STATUS_NOT_SUPPORTED; }
    float al = *(const float*)alpha, be = *(const float*)beta;
    float* af = emu_lt_floats(A, la);
    float* bf = emu_lt_floats(B, lb);
    float* acc = (float*)malloc_or_die((size_t)m * n * sizeof(float)); // (m,n) column-major, ld m
    // mm_gemm computes a row-major product; acc read row-major is (n,m) = op(B)^T op(A)^T:
    //   A'(j,kk) = op(B)(kk,j),  B'(kk,i) = op(A)(i,kk)
    long sam = d->transb == CUBLAS_OP_N ? lb->ld : 1, sak = d->transb == CUBLAS_OP_N ? 1 : lb->ld;
    long sbk = d->transa == CUBLAS_OP_N ? la->ld : 1, sbn = d->transa == CUBLAS_OP_N ? 1 : la->ld;
    mm_gemm((int)n, (int)m, (int)k, bf, sam, sak, af, sbk, sbn, acc, (long)m, 0);
    int has_bias = d->epilogue == CUBLASLT_EPILOGUE_BIAS || d->epilogue == CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
    int has_gelu = d->epilogue == CUBLASLT_EPILOGUE_GELU_AUX || d->epilogue == CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
    for (size_t j = 0; j < n; j++) {
        for (size_t i = 0; i < m; i++) {
            float x = al * acc[j * m + i];
            if (be != 0.0f) { x += be * emu_lt_load(C, lc->type, j * lc->ld + i); } // beta 0: C is not read
            if (has_bias) { x += emu_lt_load(d->bias, ld->type, i); }
            if (has_gelu) {
                emu_lt_store(d->aux, ld->type, j * d->aux_ld + i, x);
                float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
                x = 0.5f * x * (1.0f + tanhf(u));
            }
            emu_lt_store(D, ld->type, j * ld->ld + i, x);
        }
    }
    free(af); free(bf); free(acc);
    return CUBLAS_STATUS_SUCCESS;
}

#endif // EMU_CUBLASLT_H
