// gptc/dataloader.h -- batches of tokens from shard files, in a seeded order that resumes exactly.
//
// What it is: the data loader of the training loop and of validation. A sample is B*T+1
// consecutive tokens of one shard (gptc/shard.h): the inputs, and the targets shifted by one; a
// shard of ntok tokens holds (ntok-1)/(B*T) samples. A target whose flag is 0 (version 2 shards:
// context the loss does not count, e.g. an SFT prompt) is IGNORED_TARGET in the batch: no loss,
// no gradient (PyTorch's ignore_index); each batch says how many of its targets count.
// Training (shuffle = 1): each epoch visits the shards in a seeded random order and the samples
// of each shard in a seeded random order. Validation (shuffle = 0): everything in file order, the
// same batches every time. The position (epoch, shard, sample) is all a checkpoint needs to resume
// the stream exactly (loader_seek).
// Data parallelism: every rank reads the one stream and takes every ranks-th sample
// (loader_next_rank_batch), so N ranks read exactly what one process reads, and a position means
// the same on any number of ranks.
// Untrusted input: loader_init checks every shard of the glob before the first batch (header,
// size, every token < V and flag 0 or 1, room for one sample), so a bad shard stops a run at
// once, not hours in; a shard is checked again when it is loaded (it may have changed since).
// What it is not: a tokenizer or a prefetcher; one shard is in memory at a time.

#ifndef GPTC_DATALOADER_H
#define GPTC_DATALOADER_H

#include <glob.h>      // provides: glob, globfree
#include <stdint.h>    // provides: uint8_t, uint16_t, uint64_t
#include <stdlib.h>    // provides: malloc, free
#include <string.h>    // provides: memset, strdup
#include "utils.h"     // provides: die, malloc_or_die, fread_or_die, MAX_EPOCH
#include "rand.h"      // provides: Rng, rng_next, stream_key, mix64 (the shuffles, the data hash)
#include "shard.h"     // provides: shard_open, shard_first_bad_flag (the token shard format)

#define IGNORED_TARGET (-1) // a target the loss does not count (its shard flag is 0)

typedef struct {
    char** files; int nfiles;
    long* file_ntok;                    // (nfiles) tokens of each file, from the start-up check
    uint64_t identity;                  // hash of every file's contents, in glob order
    int B, T, V, shuffle;
    uint64_t seed;
    long epoch, shard_pos, sample_pos;  // the position: next sample to read
    int* shard_order;                   // (nfiles) this epoch's order of the files
    int loaded_file;                    // index of the file in `tokens`, -1 if none
    uint16_t* tokens; long ntok;
    uint8_t* flags;                     // (ntok) the loaded shard's flags, or NULL: all count
    int masked;                         // some file has flags (version 2)
    long flagged;                       // tokens flagged 1 in the files with flags
    long nsamples; long* sample_order;  // (nsamples) this shard's order of samples
} DataLoader;

static inline void permute(long* a, long n, uint64_t key) {
    // Fisher-Yates with a counter-based stream: reproducible from (seed, epoch, shard) alone
    Rng r; r.key = key; r.counter = 0;
    for (long i = 0; i < n; i++) { a[i] = i; }
    for (long i = n - 1; i > 0; i--) {
        long j = (long)(rng_next(&r) % (uint64_t)(i + 1));
        long tmp = a[i]; a[i] = a[j]; a[j] = tmp;
    }
}


// the first token >= V in tokens[0..n), as an index, or n (a vectorizable max first: the scan of
// every shard at start-up runs at memory speed)
static inline long first_token_out_of_range(const uint16_t* tokens, long n, int V) {
    uint16_t maxtok = 0;
    for (long i = 0; i < n; i++) { maxtok = tokens[i] > maxtok ? tokens[i] : maxtok; }
    if (maxtok < V) { return n; }
    long bad = 0;
    while (tokens[bad] < V) { bad++; }
    return bad;
}

// Start-up check of one shard, so that a run that cannot finish is found before step 1, not at
// the shard that breaks it: header, size, every token < V and flag 0 or 1, room for one sample of
// B*T+1 tokens. Reads in chunks (bounded memory) and returns a hash of the contents (the flags
// too, when there are), for the data's identity; *flagged: the tokens flagged 1, or -1 (no flags).
static inline uint64_t shard_check(const char* path, int V, long min_tokens, long* ntok_out,
                                   long* flagged) {
    long ntok;
    int has_flags;
    FILE* f = shard_open(path, &ntok, &has_flags);
    if (ntok < min_tokens) {
        die("%s: %ld tokens is fewer than one batch needs (B*T+1 = %ld)", path, ntok, min_tokens);
    }
    const long CHUNK = 1L << 20; // tokens per read; a multiple of 16
    uint16_t* buf = (uint16_t*)malloc_or_die(CHUNK * sizeof(uint16_t));
    // the hash: 4 independent lanes (so the multiplies overlap), each mixing 4 tokens at a time
    uint64_t h[4] = {mix64((uint64_t)ntok), 1, 2, 3};
    for (long done = 0; done < ntok; ) {
        long n = ntok - done < CHUNK ? ntok - done : CHUNK;
        fread_or_die(buf, sizeof(uint16_t), (size_t)n, f, path);
        long bad = first_token_out_of_range(buf, n, V);
        if (bad < n) { die("%s: token %d at index %ld is >= the model's vocab size %d", path, buf[bad], done + bad, V); }
        long i = 0;
        for (; i + 16 <= n; i += 16) {
            for (int lane = 0; lane < 4; lane++) {
                const uint16_t* t = buf + i + 4 * lane;
                uint64_t word = (uint64_t)t[0] | (uint64_t)t[1] << 16 | (uint64_t)t[2] << 32 | (uint64_t)t[3] << 48;
                h[lane] = mix64(h[lane] ^ word);
            }
        }
        for (; i < n; i++) { h[0] = mix64(h[0] ^ buf[i]); } // only the last chunk has a tail
        done += n;
    }
    uint8_t* flags = (uint8_t*)buf; // then the flags (version 2), CHUNK at a time
    *flagged = has_flags ? 0 : -1;
    for (long done = 0; has_flags && done < ntok; done += CHUNK) {
        long n = ntok - done < CHUNK ? ntok - done : CHUNK;
        fread_or_die(flags, 1, (size_t)n, f, path);
        long bad = shard_first_bad_flag(flags, n);
        if (bad < n) { die("%s: flag %d of token %ld is not 0 or 1", path, flags[bad], done + bad); }
        for (long j = 0; j < n; j++) { *flagged += flags[j]; }
        for (long j = 0; j < n; j += 8) { // a flag is 1 bit: 8 a word, zero-padded at the end
            uint64_t word = 0;
            for (long k = j; k < j + 8 && k < n; k++) { word |= (uint64_t)flags[k] << (k - j); }
            h[1] = mix64(h[1] ^ word);
        }
    }
    free(buf);
    fclose(f);
    *ntok_out = ntok;
    return mix64(h[0] ^ mix64(h[1] ^ mix64(h[2] ^ mix64(h[3]))));
}

// reads a whole shard, checking header, size, token range and flags again (a file may have
// changed since the start-up check); *flags_out: its flags, or NULL (version 1)
static inline uint16_t* load_shard(const char* path, int V, long* ntok_out, uint8_t** flags_out) {
    long ntok;
    int has_flags;
    FILE* f = shard_open(path, &ntok, &has_flags);
    uint16_t* tokens = (uint16_t*)malloc_or_die((size_t)ntok * sizeof(uint16_t));
    fread_or_die(tokens, sizeof(uint16_t), (size_t)ntok, f, path);
    uint8_t* flags = has_flags ? (uint8_t*)malloc_or_die((size_t)ntok + 1) : NULL;
    if (has_flags) { fread_or_die(flags, 1, (size_t)ntok, f, path); }
    fclose(f);
    long bad = first_token_out_of_range(tokens, ntok, V);
    if (bad < ntok) { die("%s: token %d at index %ld is >= the model's vocab size %d", path, tokens[bad], bad, V); }
    bad = has_flags ? shard_first_bad_flag(flags, ntok) : ntok;
    if (bad < ntok) { die("%s: flag %d of token %ld is not 0 or 1", path, flags[bad], bad); }
    *ntok_out = ntok;
    *flags_out = flags;
    return tokens;
}

static inline void loader_load_file(DataLoader* d, int file) {
    if (d->loaded_file == file) { return; }
    free(d->tokens); free(d->flags);
    d->tokens = load_shard(d->files[file], d->V, &d->ntok, &d->flags);
    d->loaded_file = file;
    long n = (d->ntok - 1) / ((long)d->B * d->T);
    if (n <= 0) {
        die("%s: %ld tokens is fewer than one batch needs (B*T+1 = %ld)", d->files[file], d->ntok,
            (long)d->B * d->T + 1);
    }
    free(d->sample_order);
    d->nsamples = n;
    d->sample_order = (long*)malloc_or_die((size_t)n * sizeof(long));
    if (d->shuffle) {
        permute(d->sample_order, n, stream_key(d->seed, 1000003ULL * (uint64_t)(d->epoch + 1) + (uint64_t)file));
    } else {
        for (long i = 0; i < n; i++) { d->sample_order[i] = i; }
    }
}

static inline void loader_start_epoch(DataLoader* d) {
    long* order = (long*)malloc_or_die((size_t)d->nfiles * sizeof(long));
    if (d->shuffle) { permute(order, d->nfiles, stream_key(d->seed, 7777ULL + (uint64_t)d->epoch)); }
    else { for (int i = 0; i < d->nfiles; i++) { order[i] = i; } }
    for (int i = 0; i < d->nfiles; i++) { d->shard_order[i] = (int)order[i]; }
    free(order);
    d->loaded_file = -1; // the sample order depends on the epoch: reload even the same file
}

// positions the loader at (epoch, shard_pos, sample_pos): used at start, on reset and on resume;
// `where` names the source of the position (a state file) for the error message
static inline void loader_seek(DataLoader* d, long epoch, long shard_pos, long sample_pos, const char* where) {
    if (epoch < 0 || epoch > MAX_EPOCH) { die("%s: data position: epoch %ld out of range [0, %ld]", where, epoch, MAX_EPOCH); }
    if (shard_pos < 0 || shard_pos >= d->nfiles) {
        die("%s: data position: shard %ld out of range (%d files)", where, shard_pos, d->nfiles);
    }
    d->epoch = epoch;
    loader_start_epoch(d);
    d->shard_pos = shard_pos;
    loader_load_file(d, d->shard_order[shard_pos]);
    if (sample_pos < 0 || sample_pos > d->nsamples) {
        die("%s: data position: sample %ld out of range (%ld samples in %s)", where, sample_pos, d->nsamples,
            d->files[d->shard_order[shard_pos]]);
    }
    d->sample_pos = sample_pos;
}

// Finds the files of a glob pattern and checks every one of them (shard_check) before training.
static inline void loader_init(DataLoader* d, const char* pattern, int B, int T, int V, int shuffle,
                        uint64_t seed, const char* flag) {
    memset(d, 0, sizeof(*d));
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g);
    if (rc != 0 || g.gl_pathc == 0) {
        if (rc == 0) { globfree(&g); }
        die("%s %s: no files match (prepare data with `make data`, see README)", flag, pattern);
    }
    if (g.gl_pathc > 1000000) { die("%s %s: %zu files match, more than the limit 1000000", flag, pattern, (size_t)g.gl_pathc); }
    d->nfiles = (int)g.gl_pathc;
    d->files = (char**)malloc_or_die((size_t)d->nfiles * sizeof(char*));
    d->file_ntok = (long*)malloc_or_die((size_t)d->nfiles * sizeof(long));
    for (int i = 0; i < d->nfiles; i++) {
        d->files[i] = strdup(g.gl_pathv[i]);
        if (d->files[i] == NULL) { die("out of memory"); }
    }
    globfree(&g);
    d->B = B; d->T = T; d->V = V; d->shuffle = shuffle; d->seed = seed;
    uint64_t h = mix64((uint64_t)d->nfiles);
    for (int i = 0; i < d->nfiles; i++) {
        long flagged;
        h = mix64(h ^ shard_check(d->files[i], V, (long)B * T + 1, &d->file_ntok[i], &flagged));
        d->masked |= flagged >= 0;
        d->flagged += flagged >= 0 ? flagged : 0;
    }
    d->identity = h;
    d->shard_order = (int*)malloc_or_die((size_t)d->nfiles * sizeof(int));
    d->loaded_file = -1;
    loader_seek(d, 0, 0, 0, flag);
}

// fills inputs and targets (B,T) with the next sample (a target whose flag is 0: IGNORED_TARGET)
// and advances the position; returns how many of its targets count (B*T without flags)
static inline long loader_next_batch(DataLoader* d, int* inputs, int* targets) {
    if (d->sample_pos >= d->nsamples) {
        d->sample_pos = 0;
        d->shard_pos++;
        if (d->shard_pos >= d->nfiles) { d->shard_pos = 0; d->epoch++; loader_start_epoch(d); }
        loader_load_file(d, d->shard_order[d->shard_pos]);
    }
    long BT = (long)d->B * d->T, start = d->sample_order[d->sample_pos] * BT, counted = BT;
    const uint16_t* tok = d->tokens + start;
    const uint8_t* flag = d->flags != NULL ? d->flags + start + 1 : NULL; // the targets' flags
    if (inputs != NULL) { // NULL: skip the sample (another rank's)
        for (long i = 0; i < BT; i++) { inputs[i] = tok[i]; targets[i] = tok[i + 1]; }
        for (long i = 0; flag != NULL && i < BT; i++) { if (!flag[i]) { targets[i] = IGNORED_TARGET; } }
    }
    if (flag != NULL) { counted = 0; for (long i = 0; i < BT; i++) { counted += flag[i]; } }
    d->sample_pos++;
    return counted;
}

// Data parallelism: the micro-batches of a step are the next ranks x A samples of the one stream,
// whatever the number of ranks; rank r takes every ranks-th of them (r, r + ranks, ...) and skips
// the others. So N ranks x A micro-batches read exactly the samples 1 rank x N*A reads, every rank
// keeps the same position, and a checkpoint's position means the same on any number of ranks.
static inline void loader_next_rank_batch(DataLoader* d, int rank, int ranks, int* inputs, int* targets) {
    for (int j = 0; j < ranks; j++) { loader_next_batch(d, j == rank ? inputs : NULL, j == rank ? targets : NULL); }
}

// A loss over `positions` targets of which `counted` count: the forward returns the sum of the
// counted ones' losses / (B*T) (the others add 0), so times positions / counted it is their mean.
// That factor is exactly 1 when every target counts (version 1 shards: the same bits as a plain
// mean), and 0 when none does: such a batch or step has loss 0 and zero gradient, never NaN.
static inline double counted_scale(long counted, long positions) {
    return counted > 0 ? (double)positions / (double)counted : 0.0;
}

// The counted_scale of the next n samples of the stream (an optimizer step's: every rank's
// micro-batches), the position left where it is. So a step's loss is the sum over all its counted
// targets / their count, not a mean of the micro-batches' (or the ranks') means, which would weigh
// a target by how many others share its micro-batch (the pitfall of gradient accumulation that
// Hugging Face fixed in 2024). Without flags 1 at once; with them, a walk ahead and back (a shard
// is reloaded only when the n samples cross its end).
static inline double loader_scale_ahead(DataLoader* d, long n) {
    if (!d->masked) { return 1.0; }
    long epoch = d->epoch, shard_pos = d->shard_pos, sample_pos = d->sample_pos, counted = 0;
    for (long i = 0; i < n; i++) { counted += loader_next_batch(d, NULL, NULL); }
    if (d->epoch == epoch && d->shard_pos == shard_pos) { d->sample_pos = sample_pos; }
    else { loader_seek(d, epoch, shard_pos, sample_pos, "-i"); }
    return counted_scale(counted, n * d->B * d->T);
}

// the tokens of every file
static inline long loader_tokens(const DataLoader* d) {
    long n = 0;
    for (int i = 0; i < d->nfiles; i++) { n += d->file_ntok[i]; }
    return n;
}

// batches available in one pass over the data (validation uses at most that many)
static inline long loader_total_batches(const DataLoader* d) {
    long total = 0;
    for (int i = 0; i < d->nfiles; i++) { total += (d->file_ntok[i] - 1) / ((long)d->B * d->T); }
    return total;
}

// every token of inputs and targets (n each; targets may be NULL) in [0, V), or a target
// IGNORED_TARGET: a token outside the vocabulary would index past the embedding table
static inline void check_tokens(const int* inputs, const int* targets, size_t n, int V) {
    for (size_t i = 0; i < n; i++) {
        if (inputs[i] < 0 || inputs[i] >= V) { die("input token %d at position %zu is outside [0, %d)", inputs[i], i, V); }
        if (targets != NULL && targets[i] != IGNORED_TARGET && (targets[i] < 0 || targets[i] >= V)) {
            die("target token %d at position %zu is outside [0, %d)", targets[i], i, V);
        }
    }
}

static inline void loader_free(DataLoader* d) {
    for (int i = 0; i < d->nfiles; i++) { free(d->files[i]); }
    free(d->files); free(d->file_ntok); free(d->shard_order); free(d->tokens); free(d->flags);
    free(d->sample_order);
    memset(d, 0, sizeof(*d));
}

#endif // GPTC_DATALOADER_H
