// gptc/checkpoint.h -- the output directory of a run: checkpoints, the training state, the log,
// and the lock that keeps two runs out of one directory.
//
// Layout of an output directory (-o):
//   model_NNNNNNNN.bin  the weights after NNNNNNNN completed steps (the model file, below)
//   state_NNNNNNNN.bin  everything else a resume needs (below); written last, so a state file
//                       marks a complete checkpoint
//   log.txt             "s:S trl:LOSS norm:NORM lr:LR" per step (S = steps done before it, i.e.
//                       the step printed as S+1), "s:S vl:LOSS" per validation after S steps;
//                       losses with 9 significant digits (they read back exactly); with
//                       --val-eval also "s:S eval:ACC_NORM" (4 decimals, llm.c's line, gptc/eval.h)
//   .lock               an advisory flock held for the whole run (the kernel drops it when the
//                       process ends, even on kill -9), naming the holder
// The model file (llm.c's layout, so llm.c's fp32 checkpoints load here, and train_gpt -e loads
// any of ours), little-endian:
//   int32 header[256] = {20240326 (magic), 3 (version: fp32), maxT, V, L, NH, C, Vp,
//       checksum kind, checksum, 0...}
//   then every parameter as float32 in the order of train_gpt.c's parameter table (GPT_PARAMETERS):
//   wte (Vp,C), wpe (maxT,C), ln1w (L,C), ln1b (L,C), qkvw (L,3C,C), qkvb (L,3C), attprojw (L,C,C),
//   attprojb (L,C), ln2w (L,C), ln2b (L,C), fcw (L,4C,C), fcb (L,4C), fcprojw (L,C,4C), fcprojb (L,C),
//   lnfw (C), lnfb (C). Linear weights are (out, in); rows V..Vp-1 of wte are 0.
//   The checksum (slots 8, 9; llm.c leaves them 0 and ignores them): kind CKPT_CRC32C, then the
//   CRC-32C of the whole file with those two slots read as 0. Kind 0: none recorded (llm.c's
//   files, dev/train_gpt.py's), nothing verified; any other kind is an error.
// The state file (version 2), little-endian:
//   int64 header[64], its slots named by the StateSlot enum below: {20240527, 2, step,
//       num_parameters, epoch, shard_pos, sample_pos, sampler rng key, rng counter, B, T,
//       options_len, training-data identity, checksum kind, checksum, 0...}
//   options_len bytes: the options that define the run, as NUL-terminated strings
//       "flag", "value", "flag", "value", ... (gptc/cli.h's run_options_record)
//   AdamW's m, then v: num_parameters float32 each
//   The checksum, as the model file's: kind CKPT_CRC32C, then the CRC-32C of the whole file
//   with the two checksum slots read as 0 (kind 0: none, from before it was recorded).
// Both checksums are verified whenever the file is read (-e, -y 1): a flipped bit in a
// checkpoint is one error line naming the file, not a run that resumes from damaged weights.
// Every file goes through a temp file + rename (gptc/utils.h), so a crash never destroys the
// previous checkpoint. Reading checks every field: the header against the file name, the model,
// the file's size and its range, before anything is allocated.
// What it is not: the model's config checks (train_gpt.c's config_validate) or the options'
// meaning (gptc/cli.h). Functions take plain arrays and paths, not the GPT struct (a reader names a
// bad tensor through a TensorName callback on an opaque model pointer).

#ifndef GPTC_CHECKPOINT_H
#define GPTC_CHECKPOINT_H

#include <fcntl.h>     // provides: open, O_RDWR, O_CREAT
#include <dirent.h>    // provides: opendir, readdir, closedir
#include <fnmatch.h>   // provides: fnmatch
#include <stdint.h>    // provides: int64_t, uint64_t
#include <stdio.h>     // provides: snprintf, sscanf, fgets, remove
#include <string.h>    // provides: memset, strrchr, strspn, strstr
#include <sys/file.h>  // provides: flock
#include <sys/stat.h>  // provides: mkdir, stat
#include <unistd.h>    // provides: pread, pwrite, ftruncate, gethostname, getpid
#include "utils.h"     // provides: die, fopen_input_or_die, fread_or_die, checked_mul, atomic writes
#include "rand.h"      // provides: Rng (the sampler's state)

// Room for a path in an output directory: prepare_out_dir keeps -o to CKPT_PATH_BYTES - 64 bytes,
// so every name in it fits; a temp name (".tmp.PID" appended, gptc/utils.h) fits CKPT_TMP_BYTES.
#define CKPT_PATH_BYTES 4096
#define CKPT_TMP_BYTES (CKPT_PATH_BYTES + 64)

// ----------------------------------------------------------------------------------------------
// CRC-32C (Castagnoli; the checksum of iSCSI, ext4 and SSE4.2's crc32 instruction): reflected
// polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF; crc32c("123456789") =
// 0xE3069283. crc32c_update(crc, p, n) continues a running value: start at 0, feed the bytes in
// order. With SSE4.2 (x86-64 -march=native) the instruction does 8 bytes at a time; elsewhere a
// table, 8 bytes at a time ("slicing-by-8"). Both give the same value.
#define CKPT_CRC32C 0x43524333 // "CRC3" as a little-endian int32: a kind one flipped bit cannot zero

// the table form: every build compiles it (test_gpt holds the instruction form to it)
static inline uint32_t crc32c_table_update(uint32_t crc, const void* data, size_t n) {
    static uint32_t table[8][256]; // table[k][b]: the CRC of byte b followed by k zero bytes
    static int ready = 0;
    if (!ready) {
        for (uint32_t b = 0; b < 256; b++) {
            uint32_t c = b;
            for (int i = 0; i < 8; i++) { c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u))); }
            table[0][b] = c;
        }
        for (int k = 1; k < 8; k++) {
            for (int b = 0; b < 256; b++) {
                table[k][b] = (table[k - 1][b] >> 8) ^ table[0][table[k - 1][b] & 0xff];
            }
        }
        ready = 1;
    }
    const unsigned char* p = (const unsigned char*)data;
    uint32_t c = ~crc;
    for (; n >= 8; n -= 8, p += 8) {
        uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        c = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^ table[5][(lo >> 16) & 0xff] ^
            table[4][lo >> 24] ^ table[3][p[4]] ^ table[2][p[5]] ^ table[1][p[6]] ^ table[0][p[7]];
    }
    for (; n > 0; n--, p++) { c = (c >> 8) ^ table[0][(c ^ *p) & 0xff]; }
    return ~c;
}

#if defined(__SSE4_2__) && defined(__x86_64__)
#include <nmmintrin.h> // provides: _mm_crc32_u8, _mm_crc32_u64
static inline uint32_t crc32c_update(uint32_t crc, const void* data, size_t n) {
    const unsigned char* p = (const unsigned char*)data;
    uint64_t c = ~crc;
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = _mm_crc32_u64(c, w);
    }
    uint32_t c32 = (uint32_t)c;
    for (; n > 0; n--, p++) { c32 = _mm_crc32_u8(c32, *p); }
    return ~c32;
}
#else
static inline uint32_t crc32c_update(uint32_t crc, const void* data, size_t n) {
    return crc32c_table_update(crc, data, n);
}
#endif

// Verifies a file's recorded checksum (kind, value) against the CRC computed while reading it.
static inline void checksum_verify(const char* path, int64_t kind, uint32_t recorded, uint32_t computed) {
    if (kind == 0) { return; } // none recorded: llm.c's files, and ours from before
    if (kind != CKPT_CRC32C) { die("%s: unknown checksum kind %lld (corrupt file?)", path, (long long)kind); }
    if (recorded != computed) {
        die("%s: checksum mismatch (CRC-32C recorded %08x, computed %08x): the file was changed or "
            "damaged after it was written", path, recorded, computed);
    }
}

#define MODEL_MAGIC 20240326
#define MODEL_VERSION_FP32 3
#define MODEL_HEADER_INTS 256
#define MODEL_HEADER_BYTES (MODEL_HEADER_INTS * sizeof(int32_t))
enum ModelSlot { // config: 6 slots from 2
    MODEL_SLOT_MAGIC, MODEL_SLOT_VERSION, MODEL_SLOT_CONFIG,
    MODEL_SLOT_CHECKSUM_KIND = MODEL_SLOT_CONFIG + 6, MODEL_SLOT_CHECKSUM
};

// Opens a model file and checks its magic and version; returns the file positioned at the weights,
// its size, and its config {maxT, V, L, NH, C, Vp} (unchecked: the caller validates it and the
// size it implies).
static inline FILE* model_file_open(const char* path, int config[6], long* fsize) {
    FILE* f = fopen_input_or_die(path);
    *fsize = file_size_or_die(f, path);
    int32_t header[MODEL_HEADER_INTS];
    if (*fsize < (long)sizeof(header)) { die("%s: truncated model file (%ld bytes, header is 1024)", path, *fsize); }
    fread_or_die(header, sizeof(int32_t), MODEL_HEADER_INTS, f, path);
    if (header[MODEL_SLOT_MAGIC] != MODEL_MAGIC) {
        die("%s: bad magic %d in model file (expected %d; is this an llm.c/train_gpt model file?)",
            path, header[MODEL_SLOT_MAGIC], MODEL_MAGIC);
    }
    if (header[MODEL_SLOT_VERSION] != MODEL_VERSION_FP32) {
        die("%s: model file version %d not supported (expected %d = fp32%s)", path, header[MODEL_SLOT_VERSION],
            MODEL_VERSION_FP32, header[MODEL_SLOT_VERSION] == 5 ? "; version 5 is llm.c's bf16 export" : "");
    }
    for (int i = 0; i < 6; i++) { config[i] = header[MODEL_SLOT_CONFIG + i]; }
    return f;
}

// The name of the tensor that holds element i of a model's flat parameters (for error messages)
typedef const char* (*TensorName)(const void* model, size_t i);

// Reads the n weights of an opened model file (from model_file_open) and closes it; the file's
// checksum must match, and every weight must be finite: a NaN or inf would train silently into NaN.
static inline void model_file_read(FILE* f, const char* path, float* params, size_t n, TensorName name,
                                   const void* model) {
    int32_t header[MODEL_HEADER_INTS];
    rewind(f);
    fread_or_die(header, sizeof(int32_t), MODEL_HEADER_INTS, f, path);
    fread_or_die(params, sizeof(float), n, f, path);
    fclose(f);
    int32_t kind = header[MODEL_SLOT_CHECKSUM_KIND];
    uint32_t recorded = (uint32_t)header[MODEL_SLOT_CHECKSUM];
    header[MODEL_SLOT_CHECKSUM_KIND] = header[MODEL_SLOT_CHECKSUM] = 0;
    uint32_t crc = crc32c_update(0, header, sizeof(header));
    checksum_verify(path, kind, recorded, crc32c_update(crc, params, n * sizeof(float)));
    size_t bad = first_nonfinite(params, n);
    if (bad < n) {
        die("%s: parameter %zu (in %s) is %g: the file holds non-finite weights (a diverged run?)", path,
            bad, name(model, bad), (double)params[bad]);
    }
}

// writes a model file: config {maxT, V, L, NH, C, Vp}, then the n parameters
static inline void model_file_write(const char* path, const int config[6], const float* params, size_t n) {
    char tmp[CKPT_TMP_BYTES];
    FILE* f = open_for_atomic_write(path, tmp, sizeof(tmp));
    int32_t header[MODEL_HEADER_INTS];
    memset(header, 0, sizeof(header));
    header[MODEL_SLOT_MAGIC] = MODEL_MAGIC;
    header[MODEL_SLOT_VERSION] = MODEL_VERSION_FP32;
    for (int i = 0; i < 6; i++) { header[MODEL_SLOT_CONFIG + i] = config[i]; }
    uint32_t crc = crc32c_update(0, header, sizeof(header)); // (the checksum slots still 0)
    header[MODEL_SLOT_CHECKSUM_KIND] = CKPT_CRC32C;
    header[MODEL_SLOT_CHECKSUM] = (int32_t)crc32c_update(crc, params, n * sizeof(float));
    fwrite_or_die(header, sizeof(int32_t), MODEL_HEADER_INTS, f, tmp);
    fwrite_or_die(params, sizeof(float), n, f, tmp);
    finish_atomic_write(f, tmp, path);
}

#define STATE_MAGIC 20240527
#define STATE_VERSION 2
#define MAX_OPTIONS_BYTES 65536 // the recorded options: a few hundred bytes, plus paths

// the slots of the state file's int64 header[64]
enum StateSlot {
    STATE_SLOT_MAGIC, STATE_SLOT_VERSION, STATE_SLOT_STEP, STATE_SLOT_NUM_PARAMETERS,
    STATE_SLOT_EPOCH, STATE_SLOT_SHARD_POS, STATE_SLOT_SAMPLE_POS, STATE_SLOT_RNG_KEY,
    STATE_SLOT_RNG_COUNTER, STATE_SLOT_B, STATE_SLOT_T, STATE_SLOT_OPTIONS_LEN,
    STATE_SLOT_DATA_IDENTITY, STATE_SLOT_CHECKSUM_KIND, STATE_SLOT_CHECKSUM,
    STATE_HEADER_SLOTS = 64
};

typedef struct {
    long step;
    long epoch, shard_pos, sample_pos;
    Rng rng;
    uint64_t data_identity;    // DataLoader.identity of the training data
    int B, T;                  // of the state file's header: must agree with its recorded -b, -t
    char* options; size_t options_len; // the recorded options (malloc'd; see the format above)
} TrainState;

static inline void checkpoint_paths(char* model_path, char* state_path, size_t size, const char* dir,
                                    long step) {
    snprintf(model_path, size, "%s/model_%08ld.bin", dir, step);
    snprintf(state_path, size, "%s/state_%08ld.bin", dir, step);
}

// Writes st, the batch (B, T) and AdamW's moments m, v (n floats each) as a state file.
static inline void state_write(const char* path, const TrainState* st, int B, int T, const float* m,
                               const float* v, size_t n) {
    char tmp[CKPT_TMP_BYTES];
    FILE* f = open_for_atomic_write(path, tmp, sizeof(tmp));
    int64_t header[STATE_HEADER_SLOTS];
    memset(header, 0, sizeof(header));
    header[STATE_SLOT_MAGIC] = STATE_MAGIC;
    header[STATE_SLOT_VERSION] = STATE_VERSION;
    header[STATE_SLOT_STEP] = st->step;
    header[STATE_SLOT_NUM_PARAMETERS] = (int64_t)n;
    header[STATE_SLOT_EPOCH] = st->epoch;
    header[STATE_SLOT_SHARD_POS] = st->shard_pos;
    header[STATE_SLOT_SAMPLE_POS] = st->sample_pos;
    header[STATE_SLOT_RNG_KEY] = (int64_t)st->rng.key;
    header[STATE_SLOT_RNG_COUNTER] = (int64_t)st->rng.counter;
    header[STATE_SLOT_B] = B;
    header[STATE_SLOT_T] = T;
    header[STATE_SLOT_OPTIONS_LEN] = (int64_t)st->options_len;
    header[STATE_SLOT_DATA_IDENTITY] = (int64_t)st->data_identity;
    uint32_t crc = crc32c_update(0, header, sizeof(header)); // (the checksum slots still 0)
    crc = crc32c_update(crc, st->options, st->options_len);
    crc = crc32c_update(crc, m, n * sizeof(float));
    header[STATE_SLOT_CHECKSUM_KIND] = CKPT_CRC32C;
    header[STATE_SLOT_CHECKSUM] = (int64_t)crc32c_update(crc, v, n * sizeof(float));
    fwrite_or_die(header, sizeof(int64_t), STATE_HEADER_SLOTS, f, tmp);
    fwrite_or_die(st->options, 1, st->options_len, f, tmp);
    fwrite_or_die(m, sizeof(float), n, f, tmp);
    fwrite_or_die(v, sizeof(float), n, f, tmp);
    finish_atomic_write(f, tmp, path);
}

// Reads the state file of checkpoint `step` into st and AdamW's moments into *m, *v (malloc'd,
// n floats each: finite, and v >= 0), for a model of n parameters (from model_path, its tensors
// named by name) and context maxT. The data position is range-checked later, against the data
// (loader_seek); the options by the caller (resume_options).
static inline void state_read(const char* path, long step, size_t n, const char* model_path, int maxT,
                              TrainState* st, float** m, float** v, TensorName name, const void* model) {
    FILE* f = fopen_input_or_die(path);
    long fsize = file_size_or_die(f, path);
    int64_t h[STATE_HEADER_SLOTS];
    if (fsize < (long)sizeof(h)) { die("%s: truncated state file (%ld bytes, header is 512)", path, fsize); }
    fread_or_die(h, sizeof(int64_t), STATE_HEADER_SLOTS, f, path);
    if (h[STATE_SLOT_MAGIC] != STATE_MAGIC) {
        die("%s: bad magic %lld in state file (expected %d)", path, (long long)h[STATE_SLOT_MAGIC], STATE_MAGIC);
    }
    if (h[STATE_SLOT_VERSION] != STATE_VERSION) {
        die("%s: state file version %lld not supported (expected %d%s)", path,
            (long long)h[STATE_SLOT_VERSION], STATE_VERSION, h[STATE_SLOT_VERSION] == 1 ?
            "; version 1 did not record the run's options: restart from its model with -e" : "");
    }
    if (h[STATE_SLOT_STEP] != step) {
        die("%s: header says step %lld, the file name says %ld (renamed or corrupt file)", path,
            (long long)h[STATE_SLOT_STEP], step);
    }
    if (h[STATE_SLOT_NUM_PARAMETERS] != (int64_t)n) {
        die("%s: state is for %lld parameters but %s has %zu", path,
            (long long)h[STATE_SLOT_NUM_PARAMETERS], model_path, n);
    }
    int64_t epoch = h[STATE_SLOT_EPOCH], shard = h[STATE_SLOT_SHARD_POS], sample = h[STATE_SLOT_SAMPLE_POS];
    if (epoch < 0 || epoch > MAX_EPOCH || shard < 0 || sample < 0) {
        die("%s: data position (epoch %lld, shard %lld, sample %lld) out of range", path, (long long)epoch,
            (long long)shard, (long long)sample);
    }
    int64_t B = h[STATE_SLOT_B], T = h[STATE_SLOT_T];
    if (B < 1 || B > MAX_MICRO_BATCH_TOKENS || T < 1 || T > maxT || B * T > MAX_MICRO_BATCH_TOKENS) {
        // (the product only of bounded factors)
        die("%s: batch B=%lld T=%lld out of range", path, (long long)B, (long long)T);
    }
    int64_t options_len = h[STATE_SLOT_OPTIONS_LEN];
    if (options_len < 0 || options_len > MAX_OPTIONS_BYTES) {
        die("%s: options length %lld out of range [0, %d]", path, (long long)options_len, MAX_OPTIONS_BYTES);
    }
    size_t moments = checked_mul(2 * sizeof(float), n, path);
    size_t expect = checked_add(sizeof(h) + (size_t)options_len, moments, path);
    if ((size_t)fsize != expect) { die("%s: state file is %ld bytes, expected %zu (truncated?)", path, fsize, expect); }
    st->options_len = (size_t)options_len;
    st->options = (char*)malloc_or_die(st->options_len + 1);
    fread_or_die(st->options, 1, st->options_len, f, path);
    st->options[st->options_len] = '\0';
    *m = (float*)malloc_or_die(n * sizeof(float));
    *v = (float*)malloc_or_die(n * sizeof(float));
    fread_or_die(*m, sizeof(float), n, f, path);
    fread_or_die(*v, sizeof(float), n, f, path);
    fclose(f);
    int64_t kind = h[STATE_SLOT_CHECKSUM_KIND], recorded = h[STATE_SLOT_CHECKSUM];
    if (kind == CKPT_CRC32C && (recorded < 0 || recorded > (int64_t)UINT32_MAX)) {
        die("%s: checksum slot holds %lld, not a 32-bit CRC (corrupt file?)", path, (long long)recorded);
    }
    h[STATE_SLOT_CHECKSUM_KIND] = h[STATE_SLOT_CHECKSUM] = 0;
    uint32_t crc = crc32c_update(0, h, sizeof(h));
    crc = crc32c_update(crc, st->options, st->options_len);
    crc = crc32c_update(crc, *m, n * sizeof(float));
    checksum_verify(path, kind, (uint32_t)recorded, crc32c_update(crc, *v, n * sizeof(float)));
    for (int j = 0; j < 2; j++) {
        size_t bad = first_nonfinite(j == 0 ? *m : *v, n);
        if (bad < n) { die("%s: AdamW %c[%zu] (in %s) is not finite", path, "mv"[j], bad, name(model, bad)); }
    }
    for (size_t i = 0; i < n; i++) {
        if ((*v)[i] < 0.0f) {
            die("%s: AdamW v[%zu] (in %s) is negative (%g): a second moment is a mean of squares", path, i,
                name(model, i), (double)(*v)[i]);
        }
    }
    st->step = (long)h[STATE_SLOT_STEP];
    st->epoch = (long)epoch; st->shard_pos = (long)shard; st->sample_pos = (long)sample;
    st->rng.key = (uint64_t)h[STATE_SLOT_RNG_KEY]; st->rng.counter = (uint64_t)h[STATE_SLOT_RNG_COUNTER];
    st->data_identity = (uint64_t)h[STATE_SLOT_DATA_IDENTITY];
    st->B = (int)B; st->T = (int)T;
}

// The steps that have a state file in dir, ascending (malloc'd, *count of them; NULL if none).
// Only names that are exactly state_<digits>.bin count. The directory is read, not globbed: -o
// may hold glob characters ("runs/exp[12]"), which must never reach another run's directory.
static inline long* list_checkpoints(const char* dir, size_t* count) {
    long* steps = NULL;
    size_t cap = 0;
    *count = 0;
    DIR* d = opendir(dir);
    if (d == NULL) { return NULL; }
    for (struct dirent* e = readdir(d); e != NULL; e = readdir(d)) {
        if (strncmp(e->d_name, "state_", 6) != 0) { continue; }
        const char* digits = e->d_name + 6;
        size_t nd = strspn(digits, "0123456789");
        if (nd == 0 || nd > 12 || strcmp(digits + nd, ".bin") != 0) { continue; }
        if (*count == cap) {
            cap = cap ? 2 * cap : 16;
            long* grown = (long*)realloc(steps, cap * sizeof(long));
            if (grown == NULL) { die("out of memory listing %s", dir); }
            steps = grown;
        }
        steps[(*count)++] = strtol(digits, NULL, 10);
    }
    closedir(d);
    // ascending (insertion sort: a directory holds a handful)
    for (size_t i = 1; i < *count; i++) {
        long x = steps[i];
        size_t j = i;
        while (j > 0 && steps[j - 1] > x) { steps[j] = steps[j - 1]; j--; }
        steps[j] = x;
    }
    return steps;
}

// the largest step with a state file in dir, or -1
static inline long latest_checkpoint(const char* dir) {
    size_t n;
    long* steps = list_checkpoints(dir, &n);
    long best = n > 0 ? steps[n - 1] : -1;
    free(steps);
    return best;
}

// keeps the newest `keep` checkpoints in dir and removes the others (keep <= 0: keeps all).
// The state file goes first: without it the pair is no longer a checkpoint.
static inline void remove_old_checkpoints(const char* dir, int keep) {
    if (keep <= 0) { return; }
    size_t n;
    long* steps = list_checkpoints(dir, &n);
    for (size_t i = 0; i + (size_t)keep < n; i++) {
        char model_path[CKPT_PATH_BYTES], state_path[CKPT_PATH_BYTES];
        checkpoint_paths(model_path, state_path, sizeof(model_path), dir, steps[i]);
        if (remove(state_path) != 0 || remove(model_path) != 0) {
            fprintf(stderr, "warning: could not remove old checkpoint %s (%s)\n", model_path, strerror(errno));
        }
    }
    free(steps);
}

// log.txt of a resumed run: the lines of steps before the checkpoint's, as the uninterrupted run
// wrote them (a killed run logged steps past its last checkpoint; they are run again), and the
// validation at the checkpoint's step itself when the resumed run will not redo it (keep_val_at_step)
static inline void truncate_log(const char* path, long step, int keep_val_at_step) {
    FILE* f = fopen(path, "rb");
    if (f == NULL) { return; }
    char tmp[CKPT_TMP_BYTES];
    FILE* out = open_for_atomic_write(path, tmp, sizeof(tmp));
    char line[512];
    while (fgets(line, sizeof(line), f) != NULL) {
        long s;
        int keep = sscanf(line, "s:%ld", &s) == 1 &&
                   (s < step || (s == step && keep_val_at_step && (strstr(line, " vl:") != NULL ||
                                                                   strstr(line, " eval:") != NULL)));
        if (keep) { fwrite_or_die(line, 1, strlen(line), out, tmp); }
    }
    fclose(f);
    finish_atomic_write(out, tmp, path);
}

// dir/log.txt, to append to: a new run's, empty; a resumed run's (resume_step >= 0) first cut
// back to the lines before its checkpoint (truncate_log)
static inline FILE* log_open(const char* dir, long resume_step, int keep_val_at_step) {
    char path[CKPT_PATH_BYTES];
    snprintf(path, sizeof(path), "%s/log.txt", dir);
    if (resume_step >= 0) { truncate_log(path, resume_step, keep_val_at_step); }
    return fopen_or_die(path, resume_step >= 0 ? "a" : "w");
}

// One run per output directory: an advisory lock on dir/.lock, held until the run ends (or the
// process dies: the kernel releases it). The file says who holds it, for the error message.
static inline int lock_out_dir(const char* dir) {
    char path[CKPT_PATH_BYTES];
    snprintf(path, sizeof(path), "%s/.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    if (fd < 0) { die("%s: cannot open the lock file (%s)", path, strerror(errno)); }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char holder[256] = "";
        ssize_t n = pread(fd, holder, sizeof(holder) - 1, 0);
        holder[n > 0 ? n : 0] = '\0';
        holder[strcspn(holder, "\n")] = '\0';
        die("-o %s: another run is using this directory (%s); wait for it to end or choose another -o",
            dir, holder[0] != '\0' ? holder : "holder unknown");
    }
    char host[128] = "?";
    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    char who[256];
    int len = snprintf(who, sizeof(who), "pid %ld on %s\n", (long)getpid(), host);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, who, (size_t)len, 0) != len) {
        die("%s: cannot write the lock file (%s)", path, strerror(errno));
    }
    return fd;
}

// Removes the temp files that runs killed mid-write left in dir (model_*.bin.tmp.PID,
// state_*.bin.tmp.PID, log.txt.tmp.PID): under the lock no live run writes there, so every one is
// a dead run's, and never a complete file (a complete one was renamed into place).
// Names are matched in dir's own listing (as list_checkpoints: never a glob of the path).
static inline void remove_dead_temp_files(const char* dir) {
    static const char* const patterns[] = {"model_*.bin.tmp.*", "state_*.bin.tmp.*", "log.txt.tmp.*"};
    DIR* d = opendir(dir);
    if (d == NULL) { return; }
    for (struct dirent* e = readdir(d); e != NULL; e = readdir(d)) {
        const char* pid = strrchr(e->d_name, '.');
        if (pid == NULL || pid[1] == '\0' || strspn(pid + 1, "0123456789") != strlen(pid + 1)) { continue; }
        for (int p = 0; p < 3; p++) {
            if (fnmatch(patterns[p], e->d_name, 0) != 0) { continue; }
            char path[CKPT_TMP_BYTES];
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            if (remove(path) == 0) { printf("note: removed %s, the temp file of an interrupted save\n", path); }
            break;
        }
    }
    closedir(d);
}

// Checks the output directory before anything is written: the paths fit, the directory exists,
// no other run uses it (a lock, returned in *lock_fd), and a fresh run (resume 0) does not mix with
// an earlier run's checkpoints; the temp files of killed runs are removed. Returns the checkpoint
// step to resume from, or -1.
static inline long prepare_out_dir(const char* dir, int resume, int* lock_fd) {
    if (strlen(dir) + 64 > CKPT_PATH_BYTES) {
        die("-o %.60s...: path too long (limit %d bytes)", dir, CKPT_PATH_BYTES - 64);
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) { die("-o %s: cannot create directory (%s)", dir, strerror(errno)); }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) { die("-o %s: not a directory", dir); }
    *lock_fd = lock_out_dir(dir);
    remove_dead_temp_files(dir);
    long latest = latest_checkpoint(dir);
    if (!resume && latest >= 0) {
        die("-o %s: holds the checkpoints of an earlier run (latest: step %ld); resume it with -y 1, "
            "choose another -o, or delete them", dir, latest);
    }
    return resume ? latest : -1;
}

#endif // GPTC_CHECKPOINT_H
