// dev/cuda/emu_nccl_test.cpp -- checks dev/cuda/emu_nccl.h (NCCL over MPI for the emulator).
//
// What it is: every function of emu_nccl.h against a plain computation on this process. Each rank
// can generate every rank's input (a counter-based hash of tag, rank, index), so the expected
// result of a collective is computed locally, in double, in rank order. Random, never-zero data;
// odd counts; in place and not; f32, bf16, f64, i32, u8; then the same with EMU_NCCL_PIECE=3 so
// the paths that split a call into pieces run; then the errors it must report.
//   OMPI_CXX=g++ mpicxx -std=c++17 -O1 -Wall -Wextra -DGPT_CUDA_EMU -DUSE_MPI -I.
//       -o build/emu_nccl_test dev/cuda/emu_nccl_test.cpp
//   mpirun --allow-run-as-root --oversubscribe -np 2 build/emu_nccl_test     (also -np 3, and
//   without MPI: g++ ... without -DUSE_MPI, one process)
// Rank 0 prints a line per check, with the verdict of all ranks; the last line is
// `N passed, N failed` and the exit status is non-zero on any failure. --corrupt perturbs the
// expected value of the first check once, to show that the checks can fail.
//
// Tolerances: sums of "exact" data (multiples of 1/16 below 1, a few ranks) are exact in any
// order, in bf16 too, so they compare with 0 tolerance; "full" data (random 24-bit mantissas,
// exponents -4..4) compare with nranks * eps * sum|x| (eps = 2^-23 f32, 2^-8 bf16: one rounding
// per step of the reduction, doubled), products with nranks * eps * |product|; max, min and data
// movement are exact. The bf16 rounding check adds a tie to a bf16 value on two ranks (the others
// add +0, which is exact in every order) and wants round-half-to-even bit for bit, computed here
// with frexp / nearbyint rather than with the emulator's conversion.

#include "dev/cuda/emu.h"      // provides: cudaMalloc, cudaMemcpy, __nv_bfloat16 (the CPU emulator)
#include "dev/cuda/emu_nccl.h" // provides: the NCCL subset under test

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <string>
#include <vector>

static int g_rank = 0, g_size = 1, g_passed = 0, g_failed = 0;
static bool g_corrupt = false;   // --corrupt: perturb one expected value
static const char* g_label = ""; // the piece setting, in every check's name

// ---------------------------------------------------------------------------------------------
// the processes: MPI's, or one

static double all_max(double x) {
#ifdef USE_MPI
    MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
#endif
    return x;
}

// the same bytes on every rank as on rank 0?
static bool same_on_all_ranks(const std::vector<unsigned char>& mine) {
    std::vector<unsigned char> root = mine;
#ifdef USE_MPI
    MPI_Bcast(root.data(), (int)root.size(), MPI_BYTE, 0, MPI_COMM_WORLD);
#endif
    return all_max(root == mine ? 0.0 : 1.0) == 0.0;
}

// ---------------------------------------------------------------------------------------------
// verdicts

struct Cmp {
    double max_err = 0.0, max_tol = 0.0;
    size_t compared = 0; // values checked (none: a check of return codes and flags only)
    bool bad = false;
    std::string why;
    void value(double got, double want, double tol) {
        static bool corrupted = false;
        if (g_corrupt && !corrupted) { want += 1.0; corrupted = true; }
        compared++;
        double err = fabs(got - want);
        if (!(err <= tol)) { bad = true; } // NaN fails too
        if (err > max_err || err != err) { max_err = err; }
        if (tol > max_tol) { max_tol = tol; }
    }
    void flag(bool failed, const char* what) {
        if (failed) { bad = true; if (why.find(what) == std::string::npos) { why += std::string(" ") + what; } }
    }
};

// one line per check on rank 0; a check fails when it fails on any rank
static void report(const std::string& name, const Cmp& c) {
    double err = all_max(c.max_err), tol = all_max(c.max_tol);
    bool bad = all_max(c.bad ? 1.0 : 0.0) != 0.0;
    if (g_rank == 0) {
        char nums[64] = "";
        if (c.compared > 0) { snprintf(nums, sizeof(nums), "max abs %-9.3g tol %-9.3g", err, tol); }
        printf("%-68s %-32s %s%s\n", name.c_str(), nums, bad ? "FAILED" : "OK", c.why.c_str());
    }
    if (bad) { g_failed++; } else { g_passed++; }
}

// ---------------------------------------------------------------------------------------------
// types and data

template <class T> struct Ty;
template <> struct Ty<float> { static constexpr ncclDataType_t id = ncclFloat; static constexpr const char* name = "f32"; static constexpr double eps = 0x1p-23; };
template <> struct Ty<double> { static constexpr ncclDataType_t id = ncclDouble; static constexpr const char* name = "f64"; static constexpr double eps = 0x1p-52; };
template <> struct Ty<__nv_bfloat16> { static constexpr ncclDataType_t id = ncclBfloat16; static constexpr const char* name = "bf16"; static constexpr double eps = 0x1p-8; };
template <> struct Ty<int32_t> { static constexpr ncclDataType_t id = ncclInt32; static constexpr const char* name = "i32"; static constexpr double eps = 0.0; };
template <> struct Ty<uint8_t> { static constexpr ncclDataType_t id = ncclUint8; static constexpr const char* name = "u8"; static constexpr double eps = 0.0; };

template <class T> static double to_d(T x) { return (double)(float)x; }
template <> double to_d<double>(double x) { return x; }
template <> double to_d<int32_t>(int32_t x) { return (double)x; }
template <> double to_d<uint8_t>(uint8_t x) { return (double)x; }
template <class T> static T from_d(double x) { return (T)x; }
template <> __nv_bfloat16 from_d<__nv_bfloat16>(double x) { return __float2bfloat16_rn((float)x); }

static uint64_t mix(uint64_t x) { // splitmix64's finaliser
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
static uint64_t hash3(uint64_t tag, int r, size_t i) { return mix(mix(mix(tag) ^ (uint64_t)r) ^ (uint64_t)i); }

enum Kind { EXACT, FULL };

// rank r's element i of the data `tag`: never zero
template <class T> static T gen(Kind kind, uint64_t tag, int r, size_t i) {
    uint64_t u = hash3(tag, r, i);
    int sign = (u & 1) ? -1 : 1;
    if (Ty<T>::id == ncclUint8) { return from_d<T>(1.0 + (double)((u >> 8) % 15)); }
    if (Ty<T>::id == ncclInt32) { return from_d<T>(sign * (1.0 + (double)((u >> 8) % 1000))); }
    if (kind == EXACT) { return from_d<T>(sign * (1.0 + (double)((u >> 8) % 15)) / 16.0); }
    double mant = 1.0 + (double)((u >> 8) & 0xffffff) * 0x1p-24;
    int e = (int)((u >> 40) % 9) - 4;
    return from_d<T>(sign * ldexp(mant, e));
}
template <class T> static T junk() { return from_d<T>(Ty<T>::id == ncclUint8 ? 238.0 : -333.0); }

// ---------------------------------------------------------------------------------------------
// device buffers with guards: 64 bytes of 0xA5 on either side that no call may touch

static const size_t GUARD = 64;

struct Buf {
    unsigned char* base = nullptr;
    size_t bytes = 0;
    explicit Buf(size_t b) : bytes(b) {
        if (cudaMalloc((void**)&base, bytes + 2 * GUARD) != cudaSuccess) { fprintf(stderr, "cudaMalloc failed\n"); exit(1); }
        std::vector<unsigned char> g(bytes + 2 * GUARD, 0xA5);
        cudaMemcpy(base, g.data(), g.size(), cudaMemcpyHostToDevice);
    }
    ~Buf() { cudaFree(base); }
    Buf(const Buf&) = delete;
    Buf& operator=(const Buf&) = delete;
    void* p() const { return base + GUARD; }
    template <class T> T* at(size_t i) const { return (T*)p() + i; }
    bool guards_ok() const {
        std::vector<unsigned char> h(bytes + 2 * GUARD);
        cudaMemcpy(h.data(), base, h.size(), cudaMemcpyDeviceToHost);
        for (size_t i = 0; i < GUARD; i++) {
            if (h[i] != 0xA5 || h[GUARD + bytes + i] != 0xA5) { return false; }
        }
        return true;
    }
};

template <class T> static void put(T* dev, const std::vector<T>& h) {
    cudaMemcpy(dev, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice);
}
template <class T> static std::vector<T> get(const T* dev, size_t n) {
    std::vector<T> h(n);
    cudaMemcpy(h.data(), dev, n * sizeof(T), cudaMemcpyDeviceToHost);
    return h;
}
template <class T> static std::vector<unsigned char> bytes_of(const std::vector<T>& v) {
    std::vector<unsigned char> b(v.size() * sizeof(T));
    memcpy(b.data(), v.data(), b.size());
    return b;
}

static const char* op_name(ncclRedOp_t op) {
    return op == ncclSum ? "sum" : op == ncclProd ? "prod" : op == ncclMax ? "max" : "min";
}

// op over the ranks of gen(kind, tag, r, i), and its tolerance (see the top of the file)
template <class T> static void reduce_ref(Kind kind, uint64_t tag, size_t i, ncclRedOp_t op, double* want, double* tol) {
    double acc = to_d(gen<T>(kind, tag, 0, i)), abs_sum = fabs(acc);
    for (int r = 1; r < g_size; r++) {
        double x = to_d(gen<T>(kind, tag, r, i));
        abs_sum += fabs(x);
        acc = op == ncclSum ? acc + x : op == ncclProd ? acc * x : op == ncclMax ? (x > acc ? x : acc) : (x < acc ? x : acc);
    }
    *want = acc;
    if (op == ncclMax || op == ncclMin || (op == ncclSum && kind == EXACT)) { *tol = 0.0; }
    else if (op == ncclSum) { *tol = g_size * Ty<T>::eps * abs_sum; }
    else { *tol = g_size * Ty<T>::eps * fabs(acc); }
}

static std::string check_name(const char* coll, const char* type, const char* op, size_t n, bool in_place, const char* extra) {
    char s[160];
    snprintf(s, sizeof(s), "%s %s%s%s n=%zu %s%s%s", coll, type, op[0] ? " " : "", op, n,
             in_place ? "in-place" : "out-of-place", extra, g_label);
    return s;
}

// ---------------------------------------------------------------------------------------------
// the collectives

template <class T>
static void check_allreduce(ncclComm_t comm, size_t n, ncclRedOp_t op, bool in_place, Kind kind, uint64_t tag) {
    Cmp c;
    Buf send(n * sizeof(T)), recv(n * sizeof(T));
    std::vector<T> in(n);
    for (size_t i = 0; i < n; i++) { in[i] = gen<T>(kind, tag, g_rank, i); }
    put(send.at<T>(0), in);
    put(recv.at<T>(0), std::vector<T>(n, junk<T>()));
    T* out = in_place ? send.at<T>(0) : recv.at<T>(0);
    c.flag(ncclAllReduce(send.p(), out, n, Ty<T>::id, op, comm, 0) != ncclSuccess, "error returned");
    std::vector<T> got = get(out, n);
    for (size_t i = 0; i < n; i++) {
        double want, tol;
        reduce_ref<T>(kind, tag, i, op, &want, &tol);
        c.value(to_d(got[i]), want, tol);
    }
    if (!in_place) { c.flag(bytes_of(get(send.at<T>(0), n)) != bytes_of(in), "sendbuff changed"); }
    c.flag(!send.guards_ok() || !recv.guards_ok(), "guard overwritten");
    c.flag(!same_on_all_ranks(bytes_of(got)), "ranks differ");
    report(check_name("AllReduce", Ty<T>::name, op_name(op), n, in_place, kind == EXACT ? " exact" : " full"), c);
}

template <class T>
static void check_reduce_scatter(ncclComm_t comm, size_t n, ncclRedOp_t op, bool in_place, Kind kind, uint64_t tag) {
    Cmp c;
    const size_t total = (size_t)g_size * n;
    Buf send(total * sizeof(T)), recv(n * sizeof(T));
    std::vector<T> in(total);
    for (size_t i = 0; i < total; i++) { in[i] = gen<T>(kind, tag, g_rank, i); }
    put(send.at<T>(0), in);
    put(recv.at<T>(0), std::vector<T>(n, junk<T>()));
    T* out = in_place ? send.at<T>((size_t)g_rank * n) : recv.at<T>(0);
    c.flag(ncclReduceScatter(send.p(), out, n, Ty<T>::id, op, comm, 0) != ncclSuccess, "error returned");
    std::vector<T> got = get(out, n);
    for (size_t i = 0; i < n; i++) {
        double want, tol;
        reduce_ref<T>(kind, tag, (size_t)g_rank * n + i, op, &want, &tol);
        c.value(to_d(got[i]), want, tol);
    }
    if (!in_place) { c.flag(bytes_of(get(send.at<T>(0), total)) != bytes_of(in), "sendbuff changed"); }
    c.flag(!send.guards_ok() || !recv.guards_ok(), "guard overwritten");
    report(check_name("ReduceScatter", Ty<T>::name, op_name(op), n, in_place, kind == EXACT ? " exact" : " full"), c);
}

template <class T> static void check_allgather(ncclComm_t comm, size_t n, bool in_place, uint64_t tag) {
    Cmp c;
    const size_t total = (size_t)g_size * n;
    Buf send(n * sizeof(T)), recv(total * sizeof(T));
    std::vector<T> in(n);
    for (size_t i = 0; i < n; i++) { in[i] = gen<T>(FULL, tag, g_rank, i); }
    put(recv.at<T>(0), std::vector<T>(total, junk<T>()));
    T* mine = in_place ? recv.at<T>((size_t)g_rank * n) : send.at<T>(0);
    put(mine, in);
    c.flag(ncclAllGather(mine, recv.p(), n, Ty<T>::id, comm, 0) != ncclSuccess, "error returned");
    std::vector<T> got = get(recv.at<T>(0), total);
    for (int q = 0; q < g_size; q++) {
        for (size_t i = 0; i < n; i++) { c.value(to_d(got[(size_t)q * n + i]), to_d(gen<T>(FULL, tag, q, i)), 0.0); }
    }
    if (!in_place) { c.flag(bytes_of(get(send.at<T>(0), n)) != bytes_of(in), "sendbuff changed"); }
    c.flag(!send.guards_ok() || !recv.guards_ok(), "guard overwritten");
    c.flag(!same_on_all_ranks(bytes_of(got)), "ranks differ");
    report(check_name("AllGather", Ty<T>::name, "", n, in_place, ""), c);
}

template <class T> static void check_broadcast(ncclComm_t comm, size_t n, int root, bool in_place, uint64_t tag) {
    Cmp c;
    Buf send(n * sizeof(T)), recv(n * sizeof(T));
    std::vector<T> in(n);
    for (size_t i = 0; i < n; i++) { in[i] = gen<T>(FULL, tag, g_rank, i); }
    put(recv.at<T>(0), std::vector<T>(n, junk<T>()));
    // off the root, sendbuff is ignored: it holds this rank's own (wrong) data
    if (in_place && g_rank == root) { put(recv.at<T>(0), in); } else { put(send.at<T>(0), in); }
    const void* s = in_place ? recv.p() : send.p();
    c.flag(ncclBroadcast(s, recv.p(), n, Ty<T>::id, root, comm, 0) != ncclSuccess, "error returned");
    std::vector<T> got = get(recv.at<T>(0), n);
    for (size_t i = 0; i < n; i++) { c.value(to_d(got[i]), to_d(gen<T>(FULL, tag, root, i)), 0.0); }
    if (!in_place) { c.flag(bytes_of(get(send.at<T>(0), n)) != bytes_of(in), "sendbuff changed"); }
    c.flag(!send.guards_ok() || !recv.guards_ok(), "guard overwritten");
    c.flag(!same_on_all_ranks(bytes_of(got)), "ranks differ");
    char extra[32];
    snprintf(extra, sizeof(extra), " root=%d", root);
    report(check_name("Broadcast", Ty<T>::name, "", n, in_place, extra), c);
}

// x rounded to bf16's 8 significant bits, half to even (nearbyint in the default rounding mode)
static double ref_bf16(double x) {
    int e;
    double m = frexp(x, &e); // x = m 2^e, 0.5 <= |m| < 1
    return ldexp(nearbyint(ldexp(m, 8)), e - 8);
}

// ranks 0 and 1 add v (a bf16 value in [1, 2)) and t = +-m 2^-9, m in {1, 2, 3, 6, 10}: a
// quarter, a half (tie), three quarters, 1.5 (tie) and 2.5 (tie) ulp of v; the other ranks add +0.
// The sum must be rounded half to even, bit for bit, whatever the order
static void check_bf16_rounding(ncclComm_t comm, size_t n, uint64_t tag) {
    Cmp c;
    Buf buf(n * sizeof(__nv_bfloat16));
    auto part = [&](int r, size_t i) -> double {
        uint64_t u = hash3(tag, 0, i);
        static const double m[5] = {1, 2, 3, 6, 10};
        if (r == 0) { return ((u & 1) ? -1.0 : 1.0) * (1.0 + (double)((u >> 8) % 128) / 128.0); }
        if (r == 1) { return ((u & 2) ? -1.0 : 1.0) * m[(u >> 20) % 5] * 0x1p-9; }
        return 0.0;
    };
    std::vector<__nv_bfloat16> in(n);
    for (size_t i = 0; i < n; i++) { in[i] = from_d<__nv_bfloat16>(part(g_rank, i)); }
    put(buf.at<__nv_bfloat16>(0), in);
    c.flag(ncclAllReduce(buf.p(), buf.p(), n, ncclBfloat16, ncclSum, comm, 0) != ncclSuccess, "error returned");
    std::vector<__nv_bfloat16> got = get(buf.at<__nv_bfloat16>(0), n);
    for (size_t i = 0; i < n; i++) {
        double want = g_size == 1 ? part(0, i) : ref_bf16(part(0, i) + part(1, i));
        c.value(to_d(got[i]), want, 0.0);
    }
    c.flag(!buf.guards_ok(), "guard overwritten");
    report(check_name("AllReduce", "bf16", "sum", n, true, " ties: round half to even"), c);
}

static void suite(ncclComm_t comm, const std::vector<size_t>& counts) {
    uint64_t tag = 1000;
    for (size_t n : counts) {
        check_allreduce<float>(comm, n, ncclSum, false, FULL, tag++);
        check_allreduce<float>(comm, n, ncclSum, true, EXACT, tag++);
        check_allreduce<float>(comm, n, ncclSum, true, FULL, tag++);
        check_allreduce<__nv_bfloat16>(comm, n, ncclSum, false, EXACT, tag++);
        check_allreduce<__nv_bfloat16>(comm, n, ncclSum, true, FULL, tag++);
        check_allreduce<double>(comm, n, ncclSum, true, FULL, tag++);
        check_allreduce<int32_t>(comm, n, ncclSum, false, FULL, tag++);
        check_allreduce<uint8_t>(comm, n, ncclSum, true, FULL, tag++);
        check_allreduce<float>(comm, n, ncclMax, false, FULL, tag++);
        check_allreduce<float>(comm, n, ncclMin, true, FULL, tag++);
        check_allreduce<float>(comm, n, ncclProd, false, FULL, tag++);
        check_allreduce<__nv_bfloat16>(comm, n, ncclMax, true, FULL, tag++);
        check_allreduce<__nv_bfloat16>(comm, n, ncclMin, false, FULL, tag++);
        check_allreduce<__nv_bfloat16>(comm, n, ncclProd, true, FULL, tag++);
        check_bf16_rounding(comm, n, tag++);
        check_reduce_scatter<float>(comm, n, ncclSum, false, FULL, tag++);
        check_reduce_scatter<float>(comm, n, ncclSum, true, EXACT, tag++);
        check_reduce_scatter<float>(comm, n, ncclSum, true, FULL, tag++);
        check_reduce_scatter<__nv_bfloat16>(comm, n, ncclSum, false, EXACT, tag++);
        check_reduce_scatter<__nv_bfloat16>(comm, n, ncclSum, true, FULL, tag++);
        check_reduce_scatter<double>(comm, n, ncclSum, true, FULL, tag++);
        check_reduce_scatter<int32_t>(comm, n, ncclMax, false, FULL, tag++);
        check_allgather<float>(comm, n, false, tag++);
        check_allgather<float>(comm, n, true, tag++);
        check_allgather<__nv_bfloat16>(comm, n, false, tag++);
        check_allgather<__nv_bfloat16>(comm, n, true, tag++);
        check_allgather<uint8_t>(comm, n, false, tag++);
        check_allgather<double>(comm, n, true, tag++);
        for (int root = 0; root < g_size; root++) {
            check_broadcast<float>(comm, n, root, false, tag++);
            check_broadcast<__nv_bfloat16>(comm, n, root, true, tag++);
        }
        check_broadcast<double>(comm, n, g_size - 1, true, tag++);
        check_broadcast<uint8_t>(comm, n, g_size - 1, false, tag++);
    }
}

// ---------------------------------------------------------------------------------------------
// communicators and errors

// stderr of `f` (the messages of emu_nccl.h), kept out of the test's output
template <class F> static std::string captured_stderr(F f) {
    fflush(stderr);
    int saved = dup(2);
    FILE* tmp = tmpfile();
    if (saved < 0 || tmp == nullptr) { fprintf(stderr, "cannot capture stderr\n"); exit(1); }
    dup2(fileno(tmp), 2);
    f();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    std::string s;
    rewind(tmp);
    for (int ch; (ch = fgetc(tmp)) != EOF;) { s += (char)ch; }
    fclose(tmp);
    return s;
}

// a call that must return `want` (and, for an error, say why on stderr)
template <class F> static void check_result(const char* name, ncclResult_t want, F call) {
    ncclResult_t got = ncclSuccess;
    std::string msg = captured_stderr([&] { got = call(); });
    Cmp c;
    char why[96] = "";
    if (got != want) { snprintf(why, sizeof(why), "returned %d, want %d", (int)got, (int)want); }
    c.flag(got != want, why);
    c.flag(want != ncclSuccess && msg.find("emu_nccl (rank ") == std::string::npos, "no message on stderr");
    c.flag(want == ncclSuccess && !msg.empty(), "unexpected message on stderr");
    if (g_rank == 0 && getenv("EMU_NCCL_TEST_VERBOSE") && !msg.empty()) { fputs(msg.c_str(), stdout); }
    report(std::string("error: ") + name, c);
}

static ncclUniqueId root_id() {
    ncclUniqueId id;
    memset(&id, 0, sizeof(id));
    if (g_rank == 0 && ncclGetUniqueId(&id) != ncclSuccess) { fprintf(stderr, "ncclGetUniqueId failed\n"); exit(1); }
#ifdef USE_MPI
    MPI_Bcast(&id, (int)sizeof(id), MPI_BYTE, 0, MPI_COMM_WORLD);
#endif
    return id;
}

static ncclComm_t make_comm() {
    ncclComm_t comm = nullptr;
    if (ncclCommInitRank(&comm, g_size, root_id(), g_rank) != ncclSuccess) {
        fprintf(stderr, "rank %d: ncclCommInitRank failed\n", g_rank);
        exit(1);
    }
    return comm;
}

static void check_comm_queries(ncclComm_t comm) {
    Cmp c;
    int count = -1, rank = -1;
    c.flag(ncclCommCount(comm, &count) != ncclSuccess || count != g_size, "ncclCommCount");
    c.flag(ncclCommUserRank(comm, &rank) != ncclSuccess || rank != g_rank, "ncclCommUserRank");
    c.flag(ncclGroupStart() != ncclSuccess || ncclGroupStart() != ncclSuccess || ncclGroupEnd() != ncclSuccess ||
               ncclGroupEnd() != ncclSuccess, "group nesting");
    for (int r = 0; r <= (int)ncclNumResults; r++) {
        const char* s = ncclGetErrorString((ncclResult_t)r);
        c.flag(s == nullptr || s[0] == '\0', "ncclGetErrorString");
    }
    c.flag(strcmp(ncclGetErrorString(ncclSuccess), ncclGetErrorString(ncclInvalidArgument)) == 0, "ncclGetErrorString");
    report(std::string("ncclCommCount, ncclCommUserRank, groups, ncclGetErrorString") + g_label, c);
}

static void check_errors(ncclComm_t comm) {
    const size_t n = 5, b = n * sizeof(float);
    Buf x((size_t)g_size * b), y((size_t)g_size * b);
    float* xs = x.at<float>(0);
    float* ys = y.at<float>(0);
    std::vector<float> host(n, 1.0f);
    const int next = (g_rank + 1) % g_size;
    check_result("NULL comm", ncclInvalidArgument, [&] { return ncclAllReduce(xs, ys, n, ncclFloat, ncclSum, nullptr, 0); });
    check_result("datatype 42", ncclInvalidArgument, [&] { return ncclAllReduce(xs, ys, n, (ncclDataType_t)42, ncclSum, comm, 0); });
    check_result("op 17", ncclInvalidArgument, [&] { return ncclAllReduce(xs, ys, n, ncclFloat, (ncclRedOp_t)17, comm, 0); });
    check_result("ncclAvg (not provided)", ncclInvalidArgument, [&] { return ncclAllReduce(xs, ys, n, ncclFloat, ncclAvg, comm, 0); });
    check_result("fp16 reduction", ncclInvalidArgument, [&] { return ncclReduceScatter(xs, ys, n, ncclHalf, ncclSum, comm, 0); });
    check_result("host sendbuff", ncclInvalidArgument, [&] { return ncclAllReduce(host.data(), ys, n, ncclFloat, ncclSum, comm, 0); });
    check_result("NULL recvbuff", ncclInvalidArgument, [&] { return ncclAllReduce(xs, nullptr, n, ncclFloat, ncclSum, comm, 0); });
    check_result("AllReduce past the allocation", ncclInvalidArgument, [&] {
        return ncclAllReduce(xs, ys, (size_t)g_size * n + 2 * GUARD / sizeof(float), ncclFloat, ncclSum, comm, 0); });
    check_result("AllGather recvbuff too small", ncclInvalidArgument, [&] {
        return ncclAllGather(xs, ys + 1, n + GUARD / sizeof(float), ncclFloat, comm, 0); });
    check_result("AllReduce partial overlap", ncclInvalidArgument, [&] { return ncclAllReduce(xs, xs + 1, n, ncclFloat, ncclSum, comm, 0); });
    if (g_size > 1) {
        check_result("ReduceScatter overlap, another rank's block", ncclInvalidArgument, [&] {
            return ncclReduceScatter(xs, xs + (size_t)next * n, n, ncclFloat, ncclSum, comm, 0); });
        check_result("AllGather overlap, another rank's block", ncclInvalidArgument, [&] {
            return ncclAllGather(xs + (size_t)next * n, xs, n, ncclFloat, comm, 0); });
    }
    check_result("Broadcast root = nranks", ncclInvalidArgument, [&] { return ncclBroadcast(xs, ys, n, ncclFloat, g_size, comm, 0); });
    check_result("Broadcast root -1", ncclInvalidArgument, [&] { return ncclBroadcast(xs, ys, n, ncclFloat, -1, comm, 0); });
    check_result("ncclGroupEnd without ncclGroupStart", ncclInvalidUsage, [&] { return ncclGroupEnd(); });
    check_result("count 0 with NULL buffers is a no-op", ncclSuccess, [&] { return ncclAllReduce(nullptr, nullptr, 0, ncclFloat, ncclSum, comm, 0); });
    check_result("ncclCommCount(NULL comm)", ncclInvalidArgument, [&] { int k; return ncclCommCount(nullptr, &k); });
    check_result("ncclCommUserRank(rank NULL)", ncclInvalidArgument, [&] { return ncclCommUserRank(comm, nullptr); });
    check_result("ncclGetUniqueId(NULL)", ncclInvalidArgument, [&] { return ncclGetUniqueId(nullptr); });
    check_result("ncclCommDestroy(NULL) is a no-op", ncclSuccess, [&] { return ncclCommDestroy(nullptr); });
}

// ncclCommInitRank's refusals: every rank must refuse (none is left waiting in a collective)
static void check_init_errors() {
    ncclComm_t c = nullptr;
    auto init = [&](int nranks, ncclUniqueId id, int rank) {
        ncclResult_t r = ncclCommInitRank(&c, nranks, id, rank);
        if (r == ncclSuccess) { ncclCommDestroy(c); }
        return r;
    };
    check_result("InitRank nranks = world size + 1", ncclInvalidUsage, [&] { return init(g_size + 1, root_id(), g_rank); });
    check_result("InitRank rank out of range", ncclInvalidUsage, [&] { return init(g_size, root_id(), g_size); });
    ncclUniqueId zero;
    memset(&zero, 0, sizeof(zero));
    check_result("InitRank id not from ncclGetUniqueId", ncclInvalidUsage, [&] { return init(g_size, zero, g_rank); });
#ifdef USE_MPI
    if (g_size > 1) {
        check_result("InitRank id not broadcast (each rank its own)", ncclInvalidUsage, [&] {
            ncclUniqueId own;
            ncclGetUniqueId(&own);
            return init(g_size, own, g_rank);
        });
        check_result("InitRank ranks swapped", ncclInvalidUsage, [&] { return init(g_size, root_id(), g_size - 1 - g_rank); });
        check_result("InitRank EMU_NCCL_PIECE differs between ranks", ncclInvalidUsage, [&] {
            setenv("EMU_NCCL_PIECE", g_rank == 0 ? "3" : "4", 1);
            ncclResult_t r = init(g_size, root_id(), g_rank);
            unsetenv("EMU_NCCL_PIECE");
            return r;
        });
    }
#endif
    check_result("InitRank EMU_NCCL_PIECE=0", ncclInvalidUsage, [&] {
        setenv("EMU_NCCL_PIECE", "0", 1);
        ncclResult_t r = init(g_size, root_id(), g_rank);
        unsetenv("EMU_NCCL_PIECE");
        return r;
    });
    check_result("InitRank after the failures works", ncclSuccess, [&] { return init(g_size, root_id(), g_rank); });
}

int main(int argc, char** argv) {
#ifdef USE_MPI
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
#endif
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--corrupt") == 0) {
            g_corrupt = true;
        } else {
            if (g_rank == 0) { fprintf(stderr, "usage: %s [--corrupt]\n", argv[0]); }
            return 2;
        }
    }
    if (g_rank == 0) { printf("emu_nccl_test: %d rank(s)%s\n", g_size, g_corrupt ? ", --corrupt" : ""); }

    unsetenv("EMU_NCCL_PIECE");
    ncclComm_t comm = make_comm();
    g_label = "";
    check_comm_queries(comm);
    suite(comm, {1, 7, 1029});
    check_errors(comm);
    if (ncclCommDestroy(comm) != ncclSuccess) { g_failed++; }

    // every call in pieces of 3 elements: the split paths (ReduceScatter and AllGather block by block)
    setenv("EMU_NCCL_PIECE", "3", 1);
    comm = make_comm();
    g_label = " [piece 3]";
    check_comm_queries(comm);
    suite(comm, {1, 4, 1029});
    if (ncclCommDestroy(comm) != ncclSuccess) { g_failed++; }
    unsetenv("EMU_NCCL_PIECE");
    g_label = "";

    check_init_errors();

    if (g_rank == 0) { printf("%d passed, %d failed\n", g_passed, g_failed); }
#ifdef USE_MPI
    MPI_Finalize();
#endif
    return g_failed ? 1 : 0;
}
