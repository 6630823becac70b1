// gptc/eval.h -- multiple-choice evaluation (HellaSwag and the like): an eval file read and
// checked, its completions scored by the model, the accuracies counted over every rank of a job.
//
// The eval file (llm.c's format, dev/data/data_common.py's write_evalfile, so llm.c's
// hellaswag_val.bin reads unchanged), little-endian:
//   int32 header[256] = {20240522 (magic), 1 (version), N (examples), the longest example's bytes,
//       0...}
//   then N examples, each a stream of uint16:
//     65535 (start), bytes (the example's size, these fields included), index (0, 1, ... N-1),
//     label (the right completion), K (completions), ctx_len, ctx_len context tokens,
//     then K times: len, len completion tokens
// llm.c asks for K = 4; here any K >= 2. Written by llm.c's dev/data/hellaswag.py (HellaSwag) and
// by dev/evalfile.py (the tests).
//
// How an example is scored (completion style, as llm.c's and lm-eval's HellaSwag): completion k is
// scored alone after the context, never after another completion: one row, context + completion k,
// goes through the model, and the cross-entropies of the completion's tokens (each predicted from
// the context and the completion's earlier tokens) are summed: sum_k, and mean_k = sum_k / len_k.
// acc counts the examples whose lowest sum is the label's, acc_norm those whose lowest mean is.
// Ties go to the lowest index (as torch.argmin and llm.c's strict <). A row of m tokens puts m - 1
// through the model (the last token is only a target); an example whose context and longest
// completion do not fit the model's context (ctx_len + longest - 1 > maxT) keeps the last
// maxT + 1 - longest tokens of its context for all its completions (cut from the left, counted in
// a note); a completion longer than maxT is an error.
//
// What it is not: the model. eval_run reaches it through a callback (EvalLosses: train_gpt.c's
// score_rows, the Backend's forward and its per-position losses), B rows a forward, the rows of
// consecutive examples packed together (an example's rows may span two forwards), each forward
// as long as its longest row (padding is never scored). On the CPU a row's losses do not depend
// on the other rows or on B, so the counts are the same for any -b and any number of ranks.
// Ranks: each scores a contiguous block of the examples; the counts are summed (gptc/comm.h).
// Untrusted input: eval_load checks every field of the file before the model is built (eval_fit
// then checks what needs the model: tokens < V, completions <= maxT); each problem is one
// "error:" line naming the file, the example and the field.

#ifndef GPTC_EVAL_H
#define GPTC_EVAL_H

#include <math.h>      // provides: isfinite
#include <stdint.h>    // provides: uint16_t, uint32_t, uint64_t
#include <stdio.h>     // provides: printf, fprintf
#include <stdlib.h>    // provides: free
#include <string.h>    // provides: memset
#include "utils.h"     // provides: die, malloc_or_die, open_input, read_fd, wall_seconds
#include "rand.h"      // provides: mix64 (the file's identity, compared across ranks)
#include "comm.h"      // provides: g_comm, comm_allreduce_sum_f64, comm_allreduce_minmax_u64

#define EVAL_MAGIC 20240522
#define EVAL_VERSION 1
#define EVAL_HEADER_INTS 256
#define EVAL_START 65535          // the first uint16 of every example
#define EVAL_MAX_EXAMPLES 65536   // the index field is a uint16
#define EVAL_MIN_BYTES 22         // 6 fields, 1 context token, K = 2 completions of 1 token
// an example's fields, as uint16 offsets from its start
enum { EV_START, EV_BYTES, EV_INDEX, EV_LABEL, EV_K, EV_CTX_LEN, EV_CTX };

typedef struct {
    const char* path;
    uint16_t* data; size_t n16;  // the examples' stream (the file after its header), n16 uint16
    int n, longest;              // N and the longest example's bytes (the header's, checked)
    long rows;                   // completions in the file: one row each
    uint32_t* example;           // (n) where example i starts in data
    long* row0;                  // (n+1) example i's rows are row0[i] .. row0[i+1]-1
    uint32_t* completion;        // (rows) where each row's completion (its len field) is in data
    int* keep;                   // (n) eval_fit: the context tokens example i keeps
    int T, cut;                  // eval_fit: the longest row through the model; examples cut
    uint64_t identity;           // a hash of the file's contents (the ranks must read the same)
} EvalSet;

// the per-position losses (B*T, row b at b*T) of a forward of inputs and targets (B,T)
typedef const float* (*EvalLosses)(void* ctx, const int* inputs, const int* targets, int B, int T);

typedef struct { double n, correct, correct_norm, seconds; long rows; } EvalResult;
// what eval_run hands back besides the counts, for this rank's examples (the tests compare them
// with PyTorch's): every row's summed and mean cross-entropy, each example's two choices
typedef struct { double* sum; double* mean; int* pred; int* pred_norm; } EvalScores;

// ----------------------------------------------------------------------------------------------
// Reading and checking the file

// field f of example i
static inline unsigned ev_field(const EvalSet* ev, int i, int f) {
    return ev->data[ev->example[i] + f];
}

// Example i at e (left uint16 of the file from there): its fields against its bytes field, the
// file and the header. Returns its size in uint16.
static inline size_t eval_check_example(const uint16_t* e, size_t left, int i, int longest,
                                        const char* path) {
    if (left < EV_CTX) { die("%s: example %d: truncated (%zu bytes left)", path, i, 2 * left); }
    if (e[EV_START] != EVAL_START) {
        die("%s: example %d: start field %u, expected %d (or a length before it is wrong)", path, i,
            e[EV_START], EVAL_START);
    }
    unsigned bytes = e[EV_BYTES], n = bytes / 2, K = e[EV_K], ctx = e[EV_CTX_LEN];
    if (bytes % 2 != 0 || bytes < EVAL_MIN_BYTES) {
        die("%s: example %d: bytes field %u, must be even and at least %d", path, i, bytes,
            EVAL_MIN_BYTES);
    }
    if (n > left) {
        die("%s: example %d: bytes field %u runs past the end of the file (%zu bytes left: "
            "truncated?)", path, i, bytes, 2 * left);
    }
    if (bytes > (unsigned)longest) {
        die("%s: example %d: bytes field %u, more than the header's longest example (%d)", path, i,
            bytes, longest);
    }
    if (e[EV_INDEX] != (unsigned)i) {
        die("%s: example %d: index field %u, expected %d", path, i, e[EV_INDEX], i);
    }
    if (K < 2) { die("%s: example %d: K=%u completions, at least 2 are needed", path, i, K); }
    if (e[EV_LABEL] >= K) {
        die("%s: example %d: label %u, not below K=%u", path, i, e[EV_LABEL], K);
    }
    if (ctx == 0) {
        die("%s: example %d: context length 0 (the first completion token needs one)", path, i);
    }
    if (EV_CTX + ctx > n) {
        die("%s: example %d: context length %u runs past the example's %u bytes", path, i, ctx,
            bytes);
    }
    size_t q = EV_CTX + ctx; // completion k's len field
    for (unsigned k = 0; k < K; k++) {
        if (q >= n) {
            die("%s: example %d: completion %u of K=%u starts past the example's %u bytes", path,
                i, k, K, bytes);
        }
        if (e[q] == 0) { die("%s: example %d: completion %u has length 0", path, i, k); }
        if (q + 1 + e[q] > n) {
            die("%s: example %d: completion %u's length %u runs past the example's %u bytes",
                path, i, k, e[q], bytes);
        }
        q += 1 + (size_t)e[q];
    }
    if (q != n) {
        die("%s: example %d: bytes field %u disagrees with its fields' %zu bytes", path, i, bytes,
            2 * q);
    }
    return n;
}

// Reads and checks path (flag: how the command line named it, for errors). Nothing of the model is
// needed yet; nothing is allocated before the header has been checked against the file's size.
static inline void eval_read(EvalSet* ev, const char* path, const char* flag) {
    ev->path = path;
    size_t size;
    int fd = open_input(path, &size);
    if (fd < 0) { die("%s %s: eval file not found", flag, path); }
    int32_t h[EVAL_HEADER_INTS];
    if (size < sizeof(h)) {
        die("%s: truncated eval file (%zu bytes, the header is 1024)", path, size);
    }
    if (read_fd(fd, h, sizeof(h), path) != sizeof(h)) { die("%s: the file shrank", path); }
    if (h[0] != EVAL_MAGIC) {
        die("%s: bad magic %d in eval file (expected %d: llm.c's eval format, e.g. its "
            "hellaswag_val.bin)", path, h[0], EVAL_MAGIC);
    }
    if (h[1] != EVAL_VERSION) {
        die("%s: eval file version %d not supported (expected %d)", path, h[1], EVAL_VERSION);
    }
    if (h[2] < 1 || h[2] > EVAL_MAX_EXAMPLES) {
        die("%s: header: N=%d examples, must be in [1, %d] (the index field is a uint16)", path,
            h[2], EVAL_MAX_EXAMPLES);
    }
    if (h[3] < EVAL_MIN_BYTES || h[3] > 65534 || h[3] % 2 != 0) {
        die("%s: header: longest example %d bytes, must be even and in [%d, 65534]", path, h[3],
            EVAL_MIN_BYTES);
    }
    ev->n = h[2]; ev->longest = h[3];
    size_t body = size - sizeof(h);
    if (body % 2 != 0) { die("%s: %zu bytes after the header: odd (truncated?)", path, body); }
    if (body < (size_t)ev->n * EVAL_MIN_BYTES || body > (size_t)ev->n * (size_t)ev->longest) {
        die("%s: %zu bytes of examples cannot hold the header's N=%d examples of %d to %d bytes "
            "(truncated, or N or the longest example is wrong)", path, body, ev->n, EVAL_MIN_BYTES,
            ev->longest);
    }
    ev->n16 = body / 2;
    ev->data = (uint16_t*)malloc_or_die(body);
    if (read_fd(fd, ev->data, body, path) != body) { die("%s: the file shrank", path); }
    close(fd);
    ev->example = (uint32_t*)malloc_or_die((size_t)ev->n * sizeof(uint32_t));
    ev->row0 = (long*)malloc_or_die(((size_t)ev->n + 1) * sizeof(long));
    ev->keep = (int*)malloc_or_die((size_t)ev->n * sizeof(int));
    size_t p = 0;
    int longest = 0;
    for (int i = 0; i < ev->n; i++) {
        if (p == ev->n16) {
            die("%s: the header's N=%d examples, the file ends after %d (truncated?)", path, ev->n,
                i);
        }
        size_t n = eval_check_example(ev->data + p, ev->n16 - p, i, ev->longest, path);
        ev->example[i] = (uint32_t)p;
        ev->row0[i] = ev->rows;
        ev->rows += ev->data[p + EV_K];
        if (2 * (int)n > longest) { longest = 2 * (int)n; }
        p += n;
    }
    ev->row0[ev->n] = ev->rows;
    if (p != ev->n16) {
        die("%s: %zu bytes after the header's N=%d examples (N is wrong, or trailing data)", path,
            2 * (ev->n16 - p), ev->n);
    }
    if (longest != ev->longest) {
        die("%s: header: longest example %d bytes, but the longest is %d", path, ev->longest,
            longest);
    }
    // where each row's completion (its len field) starts (rows <= bytes / 4 of the file)
    ev->completion = (uint32_t*)malloc_or_die((size_t)ev->rows * sizeof(uint32_t));
    for (int i = 0; i < ev->n; i++) {
        size_t q = ev->example[i] + EV_CTX + ev_field(ev, i, EV_CTX_LEN);
        for (long r = ev->row0[i]; r < ev->row0[i + 1]; r++) {
            ev->completion[r] = (uint32_t)q;
            q += 1 + (size_t)ev->data[q];
        }
    }
    uint64_t hash = mix64((uint64_t)ev->n16);
    for (size_t i = 0; i < ev->n16; i++) { hash = mix64(hash ^ ev->data[i]); }
    ev->identity = hash;
}

// What needs the model (V, maxT): every token < V, every completion <= maxT tokens; the contexts
// cut to fit (see the top); ev->T the longest row through the model. Returns ev->T.
static inline int eval_fit(EvalSet* ev, int V, int maxT) {
    ev->T = 1; ev->cut = 0;
    for (int i = 0; i < ev->n; i++) {
        int ctx = (int)ev_field(ev, i, EV_CTX_LEN), longest = 0;
        const uint16_t* c = ev->data + ev->example[i] + EV_CTX;
        for (int j = 0; j < ctx; j++) {
            if (c[j] >= V) {
                die("%s: example %d: context token %d is %u, outside the model's vocabulary "
                    "(V=%d)", ev->path, i, j, c[j], V);
            }
        }
        for (long r = ev->row0[i]; r < ev->row0[i + 1]; r++) {
            const uint16_t* t = ev->data + ev->completion[r];
            int k = (int)(r - ev->row0[i]);
            for (int j = 1; j <= t[0]; j++) {
                if (t[j] >= V) {
                    die("%s: example %d: completion %d's token %d is %u, outside the model's "
                        "vocabulary (V=%d)", ev->path, i, k, j - 1, t[j], V);
                }
            }
            if (t[0] > maxT) {
                die("%s: example %d: completion %d is %u tokens, more than the model's context "
                    "(maxT=%d) holds", ev->path, i, k, t[0], maxT);
            }
            if (t[0] > longest) { longest = t[0]; }
        }
        ev->keep[i] = ctx + longest - 1 <= maxT ? ctx : maxT + 1 - longest;
        ev->cut += ev->keep[i] < ctx;
        if (ev->keep[i] + longest - 1 > ev->T) { ev->T = ev->keep[i] + longest - 1; }
    }
    if (ev->cut > 0 && g_comm.rank == 0) {
        fprintf(stderr, "note: %s: %d of %d examples do not fit the model's context (maxT=%d): "
                "their contexts keep their last tokens\n", ev->path, ev->cut, ev->n, maxT);
    }
    return ev->T;
}

// The eval file path (NULL: none), read and checked (eval_read); every rank of a job must read the
// same file, or none (a collective: one error names the difference). Returns whether there is one.
static inline int eval_load(EvalSet* ev, const char* path, const char* flag) {
    memset(ev, 0, sizeof(*ev));
    if (path != NULL) { eval_read(ev, path, flag); }
    uint64_t lo = 0, hi = 0;
    comm_allreduce_minmax_u64(path != NULL ? ev->identity | 1 : 0, &lo, &hi);
    if (lo != hi) {
        die("%s: the ranks of the job read different eval files (or only some of them one)", flag);
    }
    return path != NULL;
}

// --val-eval: the eval file of a training run (path NULL: none), scored at every validation, so
// the run must validate (have_val); eval_fit for the model (V, maxT). Returns whether there is one.
static inline int eval_open(EvalSet* ev, const char* path, int have_val, int V, int maxT) {
    if (path != NULL && !have_val) {
        die("--val-eval %s: scored at every validation, and this run has none (-v 0 or -j \"\")",
            path);
    }
    if (eval_load(ev, path, "--val-eval")) { eval_fit(ev, V, maxT); }
    return path != NULL;
}

static inline void eval_free(EvalSet* ev) {
    free(ev->data); free(ev->example); free(ev->row0); free(ev->completion); free(ev->keep);
    memset(ev, 0, sizeof(*ev));
}

// ----------------------------------------------------------------------------------------------
// Scoring

// Row r (a completion of example i) as the model sees it: seq = the kept context, then the
// completion; returns its length m (the model reads m - 1 tokens, and the completion's tokens are
// the targets of positions keep-1 .. m-2)
static inline int eval_row(const EvalSet* ev, int i, long r, int* seq) {
    int ctx = (int)ev_field(ev, i, EV_CTX_LEN), keep = ev->keep[i], m = 0;
    const uint16_t* c = ev->data + ev->example[i] + EV_CTX + (ctx - keep);
    const uint16_t* t = ev->data + ev->completion[r];
    for (int j = 0; j < keep; j++) { seq[m++] = c[j]; }
    for (int j = 1; j <= t[0]; j++) { seq[m++] = t[j]; }
    return m;
}

// Scores this rank's block of the examples, B rows a forward, and counts over every rank (a
// collective); out (or NULL): the scores and choices of this rank's rows and examples.
static inline EvalResult eval_run(const EvalSet* ev, int B, EvalLosses losses, void* ctx,
                                  EvalScores* out) {
    double t0 = wall_seconds();
    int lo = (int)((long)ev->n * g_comm.rank / g_comm.size);
    int hi = (int)((long)ev->n * (g_comm.rank + 1) / g_comm.size);
    long r0 = ev->row0[lo], r1 = ev->row0[hi];
    long nr = r1 - r0; // this rank's rows
    double* sum = (double*)malloc_or_die(((size_t)nr + 1) * sizeof(double));
    // its rows shortest first (a counting sort by the tokens each puts through the model): the rows
    // of a forward are then about as long as each other and little of it is padding (on the CPU
    // the scores are the same bits in any order)
    int* rex = (int*)malloc_or_die(((size_t)nr + 1) * sizeof(int)); // row r0+j: example rex[j]
    long* order = (long*)malloc_or_die(((size_t)nr + 1) * sizeof(long));
    long* at = (long*)calloc_or_die((size_t)ev->T + 2, sizeof(long));
    for (long r = r0, i = lo; r < r1; r++) {
        while (r >= ev->row0[i + 1]) { i++; }
        rex[r - r0] = (int)i;
        at[ev->keep[i] + ev->data[ev->completion[r]]]++; // (its tokens through the model, plus 1)
    }
    for (int len = 1; len <= ev->T + 1; len++) { at[len] += at[len - 1]; }
    for (long r = r1 - 1; r >= r0; r--) {
        order[--at[ev->keep[rex[r - r0]] + ev->data[ev->completion[r]]]] = r;
    }
    int* seq = (int*)malloc_or_die(((size_t)ev->T + 1) * sizeof(int));
    int* in = (int*)malloc_or_die(2 * (size_t)B * ev->T * sizeof(int));
    int* tg = in + (size_t)B * ev->T;
    for (long j = 0; j < nr; j += B) {
        // this forward's rows order[j .. j+nb-1], padded with token 0 (never scored) to the
        // longest, the last
        int nb = nr - j < B ? (int)(nr - j) : B;
        long last = order[j + nb - 1];
        int T = ev->keep[rex[last - r0]] + ev->data[ev->completion[last]] - 1;
        memset(in, 0, (size_t)nb * T * sizeof(int));
        memset(tg, 0, (size_t)nb * T * sizeof(int));
        for (int b = 0; b < nb; b++) {
            int m = eval_row(ev, rex[order[j + b] - r0], order[j + b], seq);
            for (int t = 0; t < m - 1; t++) { in[(size_t)b * T + t] = seq[t]; }
            for (int t = 0; t < m - 1; t++) { tg[(size_t)b * T + t] = seq[t + 1]; }
        }
        const float* loss = losses(ctx, in, tg, nb, T);
        for (int b = 0; b < nb; b++) {
            long r = order[j + b];
            int i = rex[r - r0], first = ev->keep[i] - 1;
            int m = first + 1 + ev->data[ev->completion[r]];
            double s = 0.0; // the completion's tokens are the targets of positions first .. m-2
            for (int t = first; t < m - 1; t++) { s += loss[(size_t)b * T + t]; }
            if (!isfinite(s)) {
                die("%s: example %d, completion %ld: the loss is %g (the model's forward "
                    "overflowed)", ev->path, i, r - ev->row0[i], s);
            }
            sum[r - r0] = s;
        }
    }
    // the choices: the lowest sum (acc) and the lowest mean (acc_norm), ties to the lowest index
    double count[3] = {(double)(hi - lo), 0.0, 0.0};
    for (int e = lo; e < hi; e++) {
        int best = 0, best_norm = 0, label = (int)ev_field(ev, e, EV_LABEL);
        double s_best = 0.0, m_best = 0.0;
        for (long r = ev->row0[e]; r < ev->row0[e + 1]; r++) {
            int k = (int)(r - ev->row0[e]);
            double s = sum[r - r0], m = s / ev->data[ev->completion[r]]; // (its length)
            if (k == 0 || s < s_best) { best = k; s_best = s; }
            if (k == 0 || m < m_best) { best_norm = k; m_best = m; }
            if (out != NULL) { out->sum[r] = s; out->mean[r] = m; }
        }
        if (out != NULL) { out->pred[e] = best; out->pred_norm[e] = best_norm; }
        count[1] += best == label;
        count[2] += best_norm == label;
    }
    comm_allreduce_sum_f64(count, 3);
    free(sum); free(rex); free(order); free(at); free(seq); free(in);
    EvalResult res = {count[0], count[1], count[2], wall_seconds() - t0, ev->rows};
    return res;
}

// --eval's last line (rank 0): "eval: N examples | acc A | acc_norm B", after a line of timing
static inline void eval_print(EvalResult r, const EvalSet* ev) {
    if (g_comm.rank != 0) { return; }
    printf("eval %s: %ld completions scored in %.2f s (%.1f completions/s)\n", ev->path, r.rows,
           r.seconds, (double)r.rows / (r.seconds > 0.0 ? r.seconds : 1e-9));
    printf("eval: %.0f examples | acc %.4f | acc_norm %.4f\n", r.n, r.correct / r.n,
           r.correct_norm / r.n);
    fflush(stdout);
}

// --val-eval after `step` steps: scored (eval_run), printed (verbose) and logged in log.txt as
// llm.c logs it, "s:S eval:ACC_NORM"
static inline void eval_at_step(const EvalSet* ev, int B, EvalLosses losses, void* ctx, long step,
                                int verbose, FILE* logf) {
    EvalResult r = eval_run(ev, B, losses, ctx, NULL);
    if (verbose) {
        printf("step %ld: eval acc %.4f acc_norm %.4f (%.0f examples, %.1f s)\n", step,
               r.correct / r.n, r.correct_norm / r.n, r.n, r.seconds);
    }
    if (logf != NULL) { fprintf(logf, "s:%ld eval:%.4f\n", step, r.correct_norm / r.n); }
    if (logf != NULL) { fflush(logf); }
}

#endif // GPTC_EVAL_H
