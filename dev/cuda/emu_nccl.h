/*
emu_nccl.h -- the part of NCCL that train_gpt.cu calls, over MPI, for the CPU emulator build.

What it is: under GPT_CUDA_EMU (dev/cuda/emu.h), the types, enums and functions of nccl.h that
the data-parallel code of train_gpt.cu uses, with NCCL's documented semantics, so that
`mpirun -np N ./train_gptcu_emu ...` runs N emulated GPUs, one per process. The enum values and
signatures are those of nccl.h (2.28). Provided: ncclGetUniqueId, ncclCommInitRank,
ncclCommDestroy, ncclCommCount, ncclCommUserRank, ncclGetErrorString, ncclAllReduce,
ncclReduceScatter, ncclAllGather, ncclBroadcast, ncclGroupStart / ncclGroupEnd.
Built with USE_MPI, the collectives are MPI's, on a duplicate of MPI_COMM_WORLD; without it,
there is one process and every collective is a copy.

What it is not: NCCL. It checks the calls against OUR reading of NCCL's documentation; a
misreading would be shared by the trainer and this file, and only a run on GPUs can reveal it.
It does not model streams (the emulator runs everything synchronously: the stream argument is
ignored) nor groups (a collective runs when called; ncclGroupStart / ncclGroupEnd only count).

Non-obvious rules:
- The communicator must span MPI_COMM_WORLD in rank order: ncclCommInitRank checks nranks and
  rank against MPI's, and (collectively) that every rank passes rank 0's ncclUniqueId, so a
  forgotten broadcast of the id fails here as it would hang on GPUs. MPI must be initialised
  (comm_init) before ncclCommInitRank, and the communicator destroyed before MPI_Finalize.
- Counts are per-rank element counts in size_t (NCCL's): ReduceScatter reads nranks*recvcount
  elements and writes recvcount; AllGather reads sendcount and writes nranks*sendcount. In place
  means sendbuff == recvbuff (AllReduce, Broadcast), recvbuff == sendbuff + rank*recvcount
  (ReduceScatter), sendbuff == recvbuff + rank*sendcount (AllGather). Any other overlap of the
  two buffers is refused. After an in-place ReduceScatter the other ranks' blocks of sendbuff
  are unspecified (as in NCCL).
- Stricter than NCCL: every buffer must lie inside one cudaMalloc (or cudaMallocHost) allocation
  of the emulator, for the whole range the call reads or writes.
- Reductions of float / double are MPI's: a fixed order for a fixed process count and count
  (MPI's algorithms are deterministic), and the same bits on every rank (Open MPI's allreduce
  algorithms compute each element on one rank and copy it, or in the same operand order on
  every rank; emu_nccl_test checks it at 2 and 3 ranks). bf16 reductions are a user
  MPI_Op that adds (multiplies, ...) two bf16 values in float and rounds the result to nearest
  even with the emulator's own conversion, as NCCL rounds at every step of its ring. fp16 and fp8
  can be moved (AllGather, Broadcast) but not reduced: the emulator has no arithmetic for them.
- MPI counts are int: a collective moves its data in pieces of at most EMU_NCCL_PIECE elements
  (environment; default and maximum 2^30). A small value (e.g. 3) exercises the piece paths; it
  must be the same on every rank (checked at ncclCommInitRank).
- A failing call prints one line `emu_nccl (rank R): FUNCTION: problem` on stderr and returns
  NCCL's error code (ncclInvalidArgument / ncclInvalidUsage), before any communication: a rank
  that fails must end the job (comm.h's atexit handler aborts it) or the others wait forever.
*/
#ifndef EMU_NCCL_H
#define EMU_NCCL_H

#ifndef EMU_LAUNCH
#error "dev/cuda/emu_nccl.h needs dev/cuda/emu.h first (the emulator build, -DGPT_CUDA_EMU)"
#endif

#include <stdarg.h>  // provides: va_list for the error messages
#include <stdint.h>  // provides: uintptr_t, SIZE_MAX
#include <stdio.h>   // provides: vfprintf
#include <stdlib.h>  // provides: getenv, strtoull
#include <string.h>  // provides: memcpy, memmove, memcmp
#include <time.h>    // provides: clock_gettime for the unique id
#include <unistd.h>  // provides: getpid for the unique id
#ifdef USE_MPI
// MPI's C API only: Open MPI's C++ bindings (mpicxx.h) do not compile -Wextra clean
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>     // provides: MPI_Allreduce, MPI_Reduce_scatter_block, MPI_Allgather, MPI_Bcast, ...
#endif

// ---------------------------------------------------------------------------------------------
// nccl.h's types (the values of NCCL 2.28)

#define NCCL_UNIQUE_ID_BYTES 128
typedef struct { char internal[NCCL_UNIQUE_ID_BYTES]; } ncclUniqueId;

typedef struct ncclComm* ncclComm_t;

typedef enum {
    ncclSuccess = 0,
    ncclUnhandledCudaError = 1,
    ncclSystemError = 2,
    ncclInternalError = 3,
    ncclInvalidArgument = 4,
    ncclInvalidUsage = 5,
    ncclRemoteError = 6,
    ncclInProgress = 7,
    ncclNumResults = 8
} ncclResult_t;

typedef enum { ncclSum = 0, ncclProd = 1, ncclMax = 2, ncclMin = 3, ncclAvg = 4, ncclNumOps = 5 } ncclRedOp_t;

typedef enum {
    ncclInt8 = 0, ncclChar = 0,
    ncclUint8 = 1,
    ncclInt32 = 2, ncclInt = 2,
    ncclUint32 = 3,
    ncclInt64 = 4,
    ncclUint64 = 5,
    ncclFloat16 = 6, ncclHalf = 6,
    ncclFloat32 = 7, ncclFloat = 7,
    ncclFloat64 = 8, ncclDouble = 8,
    ncclBfloat16 = 9,
    ncclFloat8e4m3 = 10,
    ncclFloat8e5m2 = 11,
    ncclNumTypes = 12
} ncclDataType_t;

#define EMU_NCCL_MAGIC 0x6e63636cu  // "nccl": a live communicator
#define EMU_NCCL_ID_TAG "emu_nccl id"   // the start of every id made by ncclGetUniqueId

struct ncclComm {
    unsigned magic;
    int nranks, rank;
    size_t piece;         // the most elements one MPI call moves (EMU_NCCL_PIECE)
#ifdef USE_MPI
    MPI_Comm mpi;         // a duplicate of MPI_COMM_WORLD: our calls never match the trainer's
    MPI_Op bf16_op[4];    // ncclSum, ncclProd, ncclMax, ncclMin on bf16
#endif
};

// ---------------------------------------------------------------------------------------------
// checks and messages

namespace emu_nccl {

inline int g_group_depth = 0;    // ncclGroupStart calls not yet ended
inline unsigned g_id_count = 0;  // ids made by this process

inline int message_rank(ncclComm_t comm) {
    if (comm != nullptr && comm->magic == EMU_NCCL_MAGIC) { return comm->rank; }
#ifdef USE_MPI
    int up = 0, down = 0, r = -1;
    MPI_Initialized(&up);
    MPI_Finalized(&down);
    if (up && !down) { MPI_Comm_rank(MPI_COMM_WORLD, &r); }
    return r;
#else
    return 0;
#endif
}

__attribute__((format(printf, 4, 5)))
inline ncclResult_t fail(ncclResult_t r, ncclComm_t comm, const char* fn, const char* fmt, ...) {
    fprintf(stderr, "emu_nccl (rank %d): %s: ", message_rank(comm), fn);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return r;
}

inline const char* type_name(ncclDataType_t t) {
    static const char* names[] = {"ncclInt8", "ncclUint8", "ncclInt32", "ncclUint32", "ncclInt64", "ncclUint64",
                                  "ncclFloat16", "ncclFloat32", "ncclFloat64", "ncclBfloat16", "ncclFloat8e4m3",
                                  "ncclFloat8e5m2"};
    return (int)t >= 0 && (int)t < (int)ncclNumTypes ? names[(int)t] : "(unknown type)";
}

// bytes per element of a type (0: not a type)
inline size_t type_size(ncclDataType_t t) {
    switch (t) {
        case ncclInt8: case ncclUint8: case ncclFloat8e4m3: case ncclFloat8e5m2: return 1;
        case ncclFloat16: case ncclBfloat16: return 2;
        case ncclInt32: case ncclUint32: case ncclFloat32: return 4;
        case ncclInt64: case ncclUint64: case ncclFloat64: return 8;
        default: return 0;
    }
}

inline ncclResult_t check_comm(ncclComm_t comm, const char* fn) {
    if (comm == nullptr) { return fail(ncclInvalidArgument, comm, fn, "comm is NULL"); }
    if (comm->magic != EMU_NCCL_MAGIC) {
        return fail(ncclInvalidArgument, nullptr, fn, "comm %p is not a live communicator (destroyed?)", (void*)comm);
    }
    return ncclSuccess;
}

// the type, and the operation when the call reduces (reduce = false: data movement only)
inline ncclResult_t check_type_op(ncclComm_t comm, const char* fn, ncclDataType_t t, bool reduce, ncclRedOp_t op,
                                  size_t* size) {
    *size = type_size(t);
    if (*size == 0) { return fail(ncclInvalidArgument, comm, fn, "datatype %d is not an ncclDataType_t", (int)t); }
    if (!reduce) { return ncclSuccess; }
    if (t == ncclFloat16 || t == ncclFloat8e4m3 || t == ncclFloat8e5m2) {
        return fail(ncclInvalidArgument, comm, fn, "%s cannot be reduced by the emulator (it has no arithmetic for it)",
                    type_name(t));
    }
    if (op == ncclAvg) { return fail(ncclInvalidArgument, comm, fn, "ncclAvg is not provided by the emulator"); }
    if ((int)op < 0 || (int)op > (int)ncclMin) {
        return fail(ncclInvalidArgument, comm, fn, "op %d is not ncclSum, ncclProd, ncclMax or ncclMin", (int)op);
    }
    return ncclSuccess;
}

// `elems` elements of `size` bytes times `mult` fit in size_t? The byte count in *bytes.
inline ncclResult_t check_bytes(ncclComm_t comm, const char* fn, size_t elems, size_t size, size_t mult,
                                size_t* bytes) {
    if (elems > SIZE_MAX / size / mult) { return fail(ncclInvalidArgument, comm, fn, "count %zu is too large", elems); }
    *bytes = elems * size * mult;
    return ncclSuccess;
}

// [p, p+bytes) inside one allocation of the emulator: NCCL reads and writes device memory only
inline ncclResult_t check_buffer(ncclComm_t comm, const char* fn, const char* name, const void* p, size_t bytes) {
    if (p == nullptr) { return fail(ncclInvalidArgument, comm, fn, "%s is NULL", name); }
    if (!emu::detail::device_range(p, bytes)) {
        return fail(ncclInvalidArgument, comm, fn,
                    "%s [%p, +%zu bytes) is not inside one cudaMalloc allocation (NCCL needs device memory)", name, p,
                    bytes);
    }
    return ncclSuccess;
}

inline bool overlap(const void* a, size_t abytes, const void* b, size_t bbytes) {
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return x < y + bbytes && y < x + abytes;
}

// the two buffers of a collective, in place when `in_place` (the caller's layout test, `rule`);
// any other overlap is refused
inline ncclResult_t check_pair(ncclComm_t comm, const char* fn, const void* send, size_t send_bytes, const void* recv,
                               size_t recv_bytes, bool in_place, const char* rule) {
    ncclResult_t r = check_buffer(comm, fn, "sendbuff", send, send_bytes);
    if (r == ncclSuccess) { r = check_buffer(comm, fn, "recvbuff", recv, recv_bytes); }
    if (r == ncclSuccess && !in_place && overlap(send, send_bytes, recv, recv_bytes)) {
        r = fail(ncclInvalidArgument, comm, fn, "sendbuff %p and recvbuff %p overlap but are not in place (%s)", send,
                 recv, rule);
    }
    return r;
}

// ---------------------------------------------------------------------------------------------
// MPI

#ifdef USE_MPI
inline MPI_Datatype mpi_type(ncclDataType_t t) {
    switch (t) {
        case ncclInt8: return MPI_INT8_T;
        case ncclUint8: return MPI_UINT8_T;
        case ncclInt32: return MPI_INT32_T;
        case ncclUint32: return MPI_UINT32_T;
        case ncclInt64: return MPI_INT64_T;
        case ncclUint64: return MPI_UINT64_T;
        case ncclFloat32: return MPI_FLOAT;
        case ncclFloat64: return MPI_DOUBLE;
        case ncclFloat16: case ncclBfloat16: return MPI_UINT16_T; // bf16 reduces with our ops only
        default: return MPI_UINT8_T;                              // fp8: moved, never reduced
    }
}

// bf16 `inout[i] = in[i] OP inout[i]`, in float, rounded to nearest even like the emulator's
// __float2bfloat16_rn. The operations are commutative (float + and * are, and so is one rounding).
template <int OP>
inline void bf16_reduce(void* in, void* inout, int* len, MPI_Datatype*) {
    const __nv_bfloat16* a = (const __nv_bfloat16*)in;
    __nv_bfloat16* b = (__nv_bfloat16*)inout;
    for (int i = 0; i < *len; i++) {
        float x = __bfloat162float(a[i]), y = __bfloat162float(b[i]);
        float r = OP == ncclSum ? x + y : OP == ncclProd ? x * y : OP == ncclMax ? fmaxf(x, y) : fminf(x, y);
        b[i] = __float2bfloat16_rn(r);
    }
}

inline MPI_Op mpi_op(ncclComm_t comm, ncclDataType_t t, ncclRedOp_t op) {
    if (t == ncclBfloat16) { return comm->bf16_op[(int)op]; }
    switch (op) {
        case ncclSum: return MPI_SUM;
        case ncclProd: return MPI_PROD;
        case ncclMax: return MPI_MAX;
        default: return MPI_MIN;
    }
}
#endif

inline size_t piece_of(ncclComm_t comm, size_t count, size_t j) {
    return count - j < comm->piece ? count - j : comm->piece;
}

} // namespace emu_nccl

// ---------------------------------------------------------------------------------------------
// communicators

inline const char* ncclGetErrorString(ncclResult_t r) {
    switch (r) {
        case ncclSuccess: return "no error";
        case ncclUnhandledCudaError: return "unhandled CUDA error";
        case ncclSystemError: return "system error";
        case ncclInternalError: return "internal error";
        case ncclInvalidArgument: return "invalid argument (emu_nccl printed why on stderr)";
        case ncclInvalidUsage: return "invalid usage (emu_nccl printed why on stderr)";
        case ncclRemoteError: return "remote process exited or network error";
        case ncclInProgress: return "operation in progress";
        default: return "unknown NCCL result code";
    }
}

// an id that says where it came from; ncclCommInitRank checks that every rank got rank 0's
inline ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
    if (id == nullptr) { return emu_nccl::fail(ncclInvalidArgument, nullptr, "ncclGetUniqueId", "uniqueId is NULL"); }
    memset(id, 0, sizeof(*id));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned long long stamp[3] = {(unsigned long long)getpid(), (unsigned long long)++emu_nccl::g_id_count,
                                   (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec};
    memcpy(id->internal, EMU_NCCL_ID_TAG, sizeof(EMU_NCCL_ID_TAG));
    memcpy(id->internal + 16, stamp, sizeof(stamp));
    return ncclSuccess;
}

inline ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
    using namespace emu_nccl;
    const char* fn = "ncclCommInitRank";
    if (comm == nullptr) { return fail(ncclInvalidArgument, nullptr, fn, "comm is NULL"); }
    *comm = nullptr;
    // local checks; with MPI all ranks then agree on the verdict, so none is left waiting
    char why[256] = "";
    if (nranks < 1 || rank < 0 || rank >= nranks) {
        snprintf(why, sizeof(why), "rank %d of nranks %d is out of range", rank, nranks);
    } else if (memcmp(id.internal, EMU_NCCL_ID_TAG, sizeof(EMU_NCCL_ID_TAG)) != 0) {
        snprintf(why, sizeof(why), "the id was not made by ncclGetUniqueId (rank 0 makes it, then broadcasts it)");
    }
    size_t piece = (size_t)1 << 30;
    if (const char* e = getenv("EMU_NCCL_PIECE")) {
        char* end = nullptr;
        unsigned long long v = strtoull(e, &end, 10);
        if (end == e || *end != '\0' || v < 1 || v > piece) {
            snprintf(why, sizeof(why), "EMU_NCCL_PIECE='%s' is not a count in [1, 2^30]", e);
        } else {
            piece = (size_t)v;
        }
    }
#ifdef USE_MPI
    int up = 0, down = 0, world_size = 0, world_rank = 0;
    MPI_Initialized(&up);
    MPI_Finalized(&down);
    if (!up || down) {
        return fail(ncclInvalidUsage, nullptr, fn, "MPI is %s (call comm_init before, comm_finalize after)",
                    down ? "finalized" : "not initialized");
    }
    MPI_Comm_size(MPI_COMM_WORLD, &world_size);
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    if (why[0] == '\0' && (nranks != world_size || rank != world_rank)) {
        snprintf(why, sizeof(why),
                 "nranks %d, rank %d, but MPI_COMM_WORLD has %d processes and this is rank %d (the emulator's "
                 "communicator spans MPI_COMM_WORLD in rank order)",
                 nranks, rank, world_size, world_rank);
    }
    ncclUniqueId root_id = id;
    MPI_Bcast(&root_id, (int)sizeof(root_id), MPI_BYTE, 0, MPI_COMM_WORLD);
    if (why[0] == '\0' && memcmp(&root_id, &id, sizeof(id)) != 0) {
        snprintf(why, sizeof(why), "this rank's id differs from rank 0's (broadcast rank 0's ncclUniqueId to all ranks)");
    }
    // [ok, piece, -piece] minimised over the ranks: everyone ok, the smallest and largest piece
    long long agree[3] = {why[0] == '\0' ? 1 : 0, (long long)piece, -(long long)piece}, all[3];
    MPI_Allreduce(agree, all, 3, MPI_LONG_LONG, MPI_MIN, MPI_COMM_WORLD);
    if (why[0] != '\0') { return fail(ncclInvalidUsage, nullptr, fn, "%s", why); }
    if (all[0] == 0) { return fail(ncclInvalidUsage, nullptr, fn, "another rank failed (see its message)"); }
    if (all[1] != -all[2]) {
        return fail(ncclInvalidUsage, nullptr, fn, "EMU_NCCL_PIECE differs between ranks (%lld .. %lld)", all[1],
                    -all[2]);
    }
    ncclComm* c = new ncclComm;
    c->magic = EMU_NCCL_MAGIC;
    c->nranks = nranks;
    c->rank = rank;
    c->piece = piece;
    MPI_Comm_dup(MPI_COMM_WORLD, &c->mpi);
    MPI_Op_create(bf16_reduce<ncclSum>, 1, &c->bf16_op[ncclSum]);
    MPI_Op_create(bf16_reduce<ncclProd>, 1, &c->bf16_op[ncclProd]);
    MPI_Op_create(bf16_reduce<ncclMax>, 1, &c->bf16_op[ncclMax]);
    MPI_Op_create(bf16_reduce<ncclMin>, 1, &c->bf16_op[ncclMin]);
#else
    if (why[0] == '\0' && nranks != 1) {
        snprintf(why, sizeof(why), "nranks is %d but this build has no MPI (USE_MPI): it runs one process", nranks);
    }
    if (why[0] != '\0') { return fail(ncclInvalidUsage, nullptr, fn, "%s", why); }
    ncclComm* c = new ncclComm;
    c->magic = EMU_NCCL_MAGIC;
    c->nranks = 1;
    c->rank = 0;
    c->piece = piece;
#endif
    *comm = c;
    return ncclSuccess;
}

inline ncclResult_t ncclCommDestroy(ncclComm_t comm) {
    if (comm == nullptr) { return ncclSuccess; } // as NCCL
    ncclResult_t r = emu_nccl::check_comm(comm, "ncclCommDestroy");
    if (r != ncclSuccess) { return r; }
#ifdef USE_MPI
    int down = 0;
    MPI_Finalized(&down);
    if (down) {
        return emu_nccl::fail(ncclInvalidUsage, comm, "ncclCommDestroy",
                              "MPI is already finalized (destroy the communicator before comm_finalize)");
    }
    for (int k = 0; k < 4; k++) { MPI_Op_free(&comm->bf16_op[k]); }
    MPI_Comm_free(&comm->mpi);
#endif
    comm->magic = 0;
    delete comm;
    return ncclSuccess;
}

inline ncclResult_t ncclCommCount(const ncclComm_t comm, int* count) {
    ncclResult_t r = emu_nccl::check_comm(comm, "ncclCommCount");
    if (r != ncclSuccess) { return r; }
    if (count == nullptr) { return emu_nccl::fail(ncclInvalidArgument, comm, "ncclCommCount", "count is NULL"); }
    *count = comm->nranks;
    return ncclSuccess;
}

inline ncclResult_t ncclCommUserRank(const ncclComm_t comm, int* rank) {
    ncclResult_t r = emu_nccl::check_comm(comm, "ncclCommUserRank");
    if (r != ncclSuccess) { return r; }
    if (rank == nullptr) { return emu_nccl::fail(ncclInvalidArgument, comm, "ncclCommUserRank", "rank is NULL"); }
    *rank = comm->rank;
    return ncclSuccess;
}

// collectives run when called: a group only has to be well nested
inline ncclResult_t ncclGroupStart() {
    emu_nccl::g_group_depth++;
    return ncclSuccess;
}
inline ncclResult_t ncclGroupEnd() {
    if (emu_nccl::g_group_depth == 0) {
        return emu_nccl::fail(ncclInvalidUsage, nullptr, "ncclGroupEnd", "no ncclGroupStart to end");
    }
    emu_nccl::g_group_depth--;
    return ncclSuccess;
}

// ---------------------------------------------------------------------------------------------
// collectives: check everything first (no communication), then move the data in pieces

// recvbuff (count) = op over the ranks of sendbuff (count), on every rank
inline ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype,
                                  ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream) {
    using namespace emu_nccl;
    const char* fn = "ncclAllReduce";
    (void)stream;
    size_t size = 0, bytes = 0;
    ncclResult_t r = check_comm(comm, fn);
    if (r == ncclSuccess) { r = check_type_op(comm, fn, datatype, true, op, &size); }
    if (r == ncclSuccess) { r = check_bytes(comm, fn, count, size, 1, &bytes); }
    if (r != ncclSuccess || count == 0) { return r; }
    bool in_place = sendbuff == recvbuff;
    r = check_pair(comm, fn, sendbuff, bytes, recvbuff, bytes, in_place, "sendbuff == recvbuff");
    if (r != ncclSuccess) { return r; }
#ifdef USE_MPI
    for (size_t j = 0; j < count; j += comm->piece) {
        size_t k = piece_of(comm, count, j);
        const void* s = in_place ? MPI_IN_PLACE : (const char*)sendbuff + j * size;
        MPI_Allreduce(s, (char*)recvbuff + j * size, (int)k, mpi_type(datatype), mpi_op(comm, datatype, op), comm->mpi);
    }
#else
    if (!in_place) { memcpy(recvbuff, sendbuff, bytes); }
#endif
    return ncclSuccess;
}

// recvbuff (recvcount) = block `rank` of op over the ranks of sendbuff (nranks * recvcount)
inline ncclResult_t ncclReduceScatter(const void* sendbuff, void* recvbuff, size_t recvcount, ncclDataType_t datatype,
                                      ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream) {
    using namespace emu_nccl;
    const char* fn = "ncclReduceScatter";
    (void)stream;
    size_t size = 0, bytes = 0, send_bytes = 0;
    ncclResult_t r = check_comm(comm, fn);
    if (r == ncclSuccess) { r = check_type_op(comm, fn, datatype, true, op, &size); }
    if (r == ncclSuccess) { r = check_bytes(comm, fn, recvcount, size, (size_t)comm->nranks, &send_bytes); }
    if (r != ncclSuccess || recvcount == 0) { return r; }
    bytes = recvcount * size;
    bool in_place = recvbuff == (const char*)sendbuff + (size_t)comm->rank * bytes;
    r = check_pair(comm, fn, sendbuff, send_bytes, recvbuff, bytes, in_place, "recvbuff == sendbuff + rank*recvcount");
    if (r != ncclSuccess) { return r; }
#ifdef USE_MPI
    MPI_Datatype t = mpi_type(datatype);
    MPI_Op o = mpi_op(comm, datatype, op);
    const size_t n = (size_t)comm->nranks;
    if (n * recvcount <= comm->piece) {
        // one call. MPI's in-place Reduce_scatter_block leaves this rank's block at the START of
        // the buffer; NCCL's is at sendbuff + rank*recvcount: move it there
        if (in_place) {
            MPI_Reduce_scatter_block(MPI_IN_PLACE, (void*)sendbuff, (int)recvcount, t, o, comm->mpi);
            if (comm->rank > 0) { memmove(recvbuff, sendbuff, bytes); }
        } else {
            MPI_Reduce_scatter_block(sendbuff, recvbuff, (int)recvcount, t, o, comm->mpi);
        }
    } else {
        // in pieces: rank q's block [j, j+k) lies at sendbuff + q*recvcount + j, not next to rank
        // q+1's, so each piece of each block is reduced onto its rank on its own
        for (size_t j = 0; j < recvcount; j += comm->piece) {
            size_t k = piece_of(comm, recvcount, j);
            for (int q = 0; q < comm->nranks; q++) {
                const char* s = (const char*)sendbuff + ((size_t)q * recvcount + j) * size;
                char* d = (char*)recvbuff + j * size;
                if (q == comm->rank) {
                    MPI_Reduce(in_place ? MPI_IN_PLACE : s, d, (int)k, t, o, q, comm->mpi);
                } else {
                    MPI_Reduce(s, nullptr, (int)k, t, o, q, comm->mpi);
                }
            }
        }
    }
#else
    if (!in_place) { memcpy(recvbuff, sendbuff, bytes); }
#endif
    return ncclSuccess;
}

// recvbuff (nranks * sendcount) = every rank's sendbuff (sendcount), rank q's at q*sendcount
inline ncclResult_t ncclAllGather(const void* sendbuff, void* recvbuff, size_t sendcount, ncclDataType_t datatype,
                                  ncclComm_t comm, cudaStream_t stream) {
    using namespace emu_nccl;
    const char* fn = "ncclAllGather";
    (void)stream;
    size_t size = 0, bytes = 0, recv_bytes = 0;
    ncclResult_t r = check_comm(comm, fn);
    if (r == ncclSuccess) { r = check_type_op(comm, fn, datatype, false, ncclSum, &size); }
    if (r == ncclSuccess) { r = check_bytes(comm, fn, sendcount, size, (size_t)comm->nranks, &recv_bytes); }
    if (r != ncclSuccess || sendcount == 0) { return r; }
    bytes = sendcount * size;
    char* mine = (char*)recvbuff + (size_t)comm->rank * bytes;
    bool in_place = sendbuff == mine;
    r = check_pair(comm, fn, sendbuff, bytes, recvbuff, recv_bytes, in_place, "sendbuff == recvbuff + rank*sendcount");
    if (r != ncclSuccess) { return r; }
    if (!in_place) { memcpy(mine, sendbuff, bytes); }
#ifdef USE_MPI
    MPI_Datatype t = mpi_type(datatype);
    const size_t n = (size_t)comm->nranks;
    if (n * sendcount <= comm->piece) {
        // MPI's in-place Allgather takes this rank's block from its place in recvbuff: NCCL's layout
        MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, recvbuff, (int)sendcount, t, comm->mpi);
    } else {
        for (int q = 0; q < comm->nranks; q++) {
            for (size_t j = 0; j < sendcount; j += comm->piece) {
                size_t k = piece_of(comm, sendcount, j);
                MPI_Bcast((char*)recvbuff + ((size_t)q * sendcount + j) * size, (int)k, t, q, comm->mpi);
            }
        }
    }
#endif
    return ncclSuccess;
}

// recvbuff (count) on every rank = sendbuff (count) of rank root (sendbuff is unused elsewhere)
inline ncclResult_t ncclBroadcast(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, int root,
                                  ncclComm_t comm, cudaStream_t stream) {
    using namespace emu_nccl;
    const char* fn = "ncclBroadcast";
    (void)stream;
    size_t size = 0, bytes = 0;
    ncclResult_t r = check_comm(comm, fn);
    if (r == ncclSuccess) { r = check_type_op(comm, fn, datatype, false, ncclSum, &size); }
    if (r == ncclSuccess && (root < 0 || root >= comm->nranks)) {
        r = fail(ncclInvalidArgument, comm, fn, "root %d is not a rank (nranks %d)", root, comm->nranks);
    }
    if (r == ncclSuccess) { r = check_bytes(comm, fn, count, size, 1, &bytes); }
    if (r != ncclSuccess || count == 0) { return r; }
    if (comm->rank == root) {
        bool in_place = sendbuff == recvbuff;
        r = check_pair(comm, fn, sendbuff, bytes, recvbuff, bytes, in_place, "sendbuff == recvbuff");
        if (r != ncclSuccess) { return r; }
        if (!in_place) { memcpy(recvbuff, sendbuff, bytes); }
    } else {
        r = check_buffer(comm, fn, "recvbuff", recvbuff, bytes);
        if (r != ncclSuccess) { return r; }
    }
#ifdef USE_MPI
    for (size_t j = 0; j < count; j += comm->piece) {
        size_t k = piece_of(comm, count, j);
        MPI_Bcast((char*)recvbuff + j * size, (int)k, mpi_type(datatype), root, comm->mpi);
    }
#endif
    return ncclSuccess;
}

#endif // EMU_NCCL_H
