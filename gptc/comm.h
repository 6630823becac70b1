// gptc/comm.h -- the processes of a data-parallel run and the collectives they need, over MPI.
//
// What it is: one small table (Comm) that the training loop calls to average gradients, shard
// and gather the AdamW state (ZeRO-1), combine losses and check that every process runs the same
// thing. Built with USE_MPI (the Makefile compiles with mpicc when it finds it) the table is MPI's:
// `mpirun -np N ./train_gpt ...` starts N processes, one per rank. Without USE_MPI, or started
// without mpirun, it is a world of one process whose collectives do nothing.
// What it is not: a communication library of our own. MPI moves the bytes (Open MPI from Debian);
// on the GPU, NCCL does (train_gpt.cu). Every process reads its own copy of the data, and resuming
// reads the checkpoint on every rank: with several machines, -o must be on a shared filesystem.
//
// Non-obvious rules:
// - Collectives take element counts in size_t and split them into pieces MPI's int counts can
//   hold, so a 1.5 G-parameter model is one call here.
// - Reductions are sums in a fixed order for a fixed process count (MPI's algorithms are
//   deterministic for the same count, size and layout), so a run on N processes is bitwise
//   reproducible for the same N; a different N adds in a different order (fp32 rounding only).
// - A process that exits without comm_finalize (die(), a crash in the C library's exit path)
//   aborts the whole job (MPI_Abort from an atexit handler): no rank waits forever in a
//   collective for a peer that is gone. mpirun also ends the job when a process is killed.
// - The shard of rank r is the r-th of `size` contiguous pieces of ceil(n/size) elements of a flat
//   array (comm_shard), the last ones shorter: the same layout on the CPU (MPI) and the GPU (NCCL).

#ifndef GPTC_COMM_H
#define GPTC_COMM_H

#include <stddef.h>   // provides: size_t
#include <stdint.h>   // provides: uint64_t
#include <stdio.h>    // provides: snprintf, printf
#include <stdlib.h>   // provides: atexit
#include <string.h>   // provides: strcmp, strlen, memcpy
#include "utils.h"    // provides: die, malloc_or_die
#include "rand.h"     // provides: mix64 (the records' hash)
#ifdef USE_MPI
#include <mpi.h>      // provides: MPI_Init, MPI_Allreduce, MPI_Reduce_scatter, MPI_Allgatherv, ...
#endif

typedef struct {
    int rank;        // this process, 0 .. size-1
    int size;        // processes in the job (the world size)
    int local_rank;  // this process among those on the same machine (picks its GPU)
    int local_size;
    const char* name; // "mpi" or "single"
} Comm;

static Comm g_comm = {0, 1, 0, 1, "single"};

// [begin, end) of the shard of rank `rank` of a flat array of n elements split over `size` ranks:
// pieces of ceil(n/size) elements, the last ones shorter (or empty). Padded to size * ceil(n/size)
// elements, the array splits into equal pieces: the layout NCCL's ReduceScatter and AllGather need.
static inline size_t comm_shard_size(size_t n, int size) { return (n + (size_t)size - 1) / (size_t)size; }
static inline void comm_shard(size_t n, int size, int rank, size_t* begin, size_t* end) {
    size_t s = comm_shard_size(n, size), b = (size_t)rank * s;
    *begin = b < n ? b : n;
    *end = b + s < n ? b + s : n;
}

#ifdef USE_MPI

static int g_comm_finalized = 0;

// the job ends with this process: see the contract above
static inline void comm_abort_at_exit(void) {
    if (!g_comm_finalized && g_comm.size > 1) { MPI_Abort(MPI_COMM_WORLD, 1); }
}

// MPI counts are int: move n elements in pieces of at most 2^30
#define COMM_PIECE ((size_t)1 << 30)

static inline void comm_init(int* argc, char*** argv) {
    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_comm.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_comm.size);
    g_error_rank = g_comm.rank; // (die: an error every rank hits is printed once, by rank 0)
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_comm.rank, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &g_comm.local_rank);
    MPI_Comm_size(local, &g_comm.local_size);
    MPI_Comm_free(&local);
    g_comm.name = "mpi";
    atexit(comm_abort_at_exit);
}

static inline void comm_finalize(void) {
    g_comm_finalized = 1;
    MPI_Finalize();
}

// x (n) = the sum of every rank's x, on every rank
static inline void comm_allreduce_sum_f32(float* x, size_t n) {
    if (g_comm.size == 1) { return; }
    for (size_t i = 0; i < n; i += COMM_PIECE) {
        size_t k = n - i < COMM_PIECE ? n - i : COMM_PIECE;
        MPI_Allreduce(MPI_IN_PLACE, x + i, (int)k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
}
static inline void comm_allreduce_sum_f64(double* x, size_t n) {
    if (g_comm.size == 1) { return; }
    MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD); // n is small here
}
static inline void comm_allreduce_minmax_u64(uint64_t x, uint64_t* lo, uint64_t* hi) {
    MPI_Allreduce(&x, lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&x, hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
}

// The counts and displacements of the shards of one piece [i, i+k) of an n-element array.
static inline void comm_piece_layout(size_t n, size_t i, size_t k, int* counts, int* displs) {
    for (int r = 0; r < g_comm.size; r++) {
        size_t b, e;
        comm_shard(n, g_comm.size, r, &b, &e);
        size_t lo = b > i ? b : i, hi = e < i + k ? e : i + k;
        counts[r] = hi > lo ? (int)(hi - lo) : 0;
        displs[r] = hi > lo ? (int)(lo - i) : 0;
    }
}

// (counts, displs) for comm_piece_layout: 2 * size ints, freed by the caller
static inline int* comm_layout_alloc(void) {
    return (int*)malloc_or_die(2 * (size_t)g_comm.size * sizeof(int));
}

// ZeRO-1's gradient step: x (n, every rank's) summed over ranks; this rank's shard of the sum
// lands in x[begin, end) (the rest of x is left unspecified)
static inline void comm_reduce_scatter_sum_f32(float* x, size_t n) {
    if (g_comm.size == 1) { return; }
    int* counts = comm_layout_alloc();
    int* displs = counts + g_comm.size;
    for (size_t i = 0; i < n; i += COMM_PIECE) {
        size_t k = n - i < COMM_PIECE ? n - i : COMM_PIECE;
        comm_piece_layout(n, i, k, counts, displs);
        // in place: each rank's block of the result goes to its own place in the piece
        MPI_Reduce_scatter(MPI_IN_PLACE, x + i, counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        // MPI puts rank r's result at the start of its receive buffer: move it to its place
        int r = g_comm.rank;
        if (counts[r] > 0 && displs[r] > 0) {
            for (int j = counts[r] - 1; j >= 0; j--) { x[i + (size_t)displs[r] + (size_t)j] = x[i + (size_t)j]; }
        }
    }
    free(counts);
}

// ZeRO-1's parameter step: every rank's shard x[begin_r, end_r) gathered into all of x (n), on
// every rank
static inline void comm_allgather_f32(float* x, size_t n) {
    if (g_comm.size == 1) { return; }
    int* counts = comm_layout_alloc();
    int* displs = counts + g_comm.size;
    for (size_t i = 0; i < n; i += COMM_PIECE) {
        size_t k = n - i < COMM_PIECE ? n - i : COMM_PIECE;
        comm_piece_layout(n, i, k, counts, displs);
        MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x + i, counts, displs, MPI_FLOAT, MPI_COMM_WORLD);
    }
    free(counts);
}

// every rank's shard (shard: end-begin elements) into full (n) on rank 0 (full unused elsewhere)
static inline void comm_gather_f32(const float* shard, float* full, size_t n) {
    if (g_comm.size == 1) { return; }
    int* counts = comm_layout_alloc();
    int* displs = counts + g_comm.size;
    size_t b, e;
    comm_shard(n, g_comm.size, g_comm.rank, &b, &e);
    for (size_t i = 0; i < n; i += COMM_PIECE) {
        size_t k = n - i < COMM_PIECE ? n - i : COMM_PIECE;
        comm_piece_layout(n, i, k, counts, displs);
        size_t lo = b > i ? b : i;
        MPI_Gatherv(shard + (lo - b), counts[g_comm.rank], MPI_FLOAT, full + i, counts, displs, MPI_FLOAT, 0,
                    MPI_COMM_WORLD);
    }
    free(counts);
}

static inline void comm_bcast_bytes(void* buf, size_t bytes, int root) {
    if (g_comm.size == 1) { return; }
    for (size_t i = 0; i < bytes; i += COMM_PIECE) {
        size_t k = bytes - i < COMM_PIECE ? bytes - i : COMM_PIECE;
        MPI_Bcast((char*)buf + i, (int)k, MPI_BYTE, root, MPI_COMM_WORLD);
    }
}

static inline void comm_barrier(void) { if (g_comm.size > 1) { MPI_Barrier(MPI_COMM_WORLD); } }

#else // a world of one process: every collective is the identity

static inline void comm_init(int* argc, char*** argv) { (void)argc; (void)argv; }
static inline void comm_finalize(void) {}
static inline void comm_allreduce_sum_f32(float* x, size_t n) { (void)x; (void)n; }
static inline void comm_allreduce_sum_f64(double* x, size_t n) { (void)x; (void)n; }
static inline void comm_allreduce_minmax_u64(uint64_t x, uint64_t* lo, uint64_t* hi) { *lo = x; *hi = x; }
static inline void comm_reduce_scatter_sum_f32(float* x, size_t n) { (void)x; (void)n; }
static inline void comm_allgather_f32(float* x, size_t n) { (void)x; (void)n; }
static inline void comm_gather_f32(const float* shard, float* full, size_t n) { (void)shard; (void)full; (void)n; }
static inline void comm_bcast_bytes(void* buf, size_t bytes, int root) { (void)buf; (void)bytes; (void)root; }
static inline void comm_barrier(void) {}

#endif
// The start-up lines of a data-parallel run: the ranks, and the AdamW state each holds (`mine` of
// `full` floats; zero: ZeRO-1). Nothing on one process.
static inline void comm_print_shards(size_t full, size_t mine, int zero) {
    if (g_comm.size == 1) { return; }
    double full_mib = full * sizeof(float) / 1048576.0, mine_mib = mine * sizeof(float) / 1048576.0;
    printf("ranks: %d (%s)%s, AdamW state %.1f MiB per rank%s\n", g_comm.size, g_comm.name,
           zero ? ", ZeRO-1" : "", mine_mib, zero ? "" : " (-z 1 shards it)");
    if (zero) { printf("ZeRO-1 saves %.1f MiB of AdamW state per rank (%.1f MiB unsharded)\n", full_mib - mine_mib, full_mib); }
}

// Every rank must run the same thing. rec (len bytes) is this rank's record of what it runs, as
// NUL-terminated strings "key", "value", "key", "value", ...; rank 0's is the reference. When the
// records differ, the lowest rank that differs names its first differing pair and stops the job
// (its exit aborts every rank, see the contract above).
static inline void comm_check_same(const char* rec, size_t len) {
    if (g_comm.size == 1) { return; }
    uint64_t h = mix64(len);
    for (size_t i = 0; i < len; i++) { h = mix64(h ^ (uint8_t)rec[i]); }
    uint64_t lo, hi;
    comm_allreduce_minmax_u64(h, &lo, &hi);
    if (lo == hi) { return; }
    // they differ: every rank compares its record with rank 0's, pair by pair
    uint64_t len0 = len;
    comm_bcast_bytes(&len0, sizeof(len0), 0);
    char* rec0 = (char*)malloc_or_die(len0 + 1);
    if (g_comm.rank == 0) { memcpy(rec0, rec, len); }
    comm_bcast_bytes(rec0, len0, 0);
    rec0[len0] = '\0';
    char what[600] = "";
    for (size_t i = 0, j = 0; i < len && j < len0 && what[0] == '\0'; ) {
        const char* f = rec + i; const char* v = f + strlen(f) + 1;
        const char* f0 = rec0 + j; const char* v0 = f0 + strlen(f0) + 1;
        if (strcmp(f, f0) != 0 || strcmp(v, v0) != 0) {
            snprintf(what, sizeof(what), "%s %.200s here, %s %.200s on rank 0", f, v, f0, v0);
        }
        i = (size_t)(v - rec) + strlen(v) + 1;
        j = (size_t)(v0 - rec0) + strlen(v0) + 1;
    }
    uint64_t first, last;
    comm_allreduce_minmax_u64(what[0] != '\0' ? (uint64_t)g_comm.rank : UINT64_MAX, &first, &last);
    if (first == (uint64_t)g_comm.rank) {
        die("rank %d of %d does not run what rank 0 runs: %s (give every rank the same flags, files and build)",
            g_comm.rank, g_comm.size, what);
    }
    if (first == UINT64_MAX) { die("rank %d: the ranks' records differ in length", g_comm.rank); }
    comm_barrier(); // the differing rank's exit ends the job
    die("ranks disagree (see the error of rank %llu)", (unsigned long long)first);
}

#endif // GPTC_COMM_H
