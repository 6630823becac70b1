// gptc/cli.h -- the trainer's flags: one table (TRAIN_FLAGS) drives the options struct, the
// defaults, parsing with bounds, -h, the options a checkpoint records and how a resumed run
// merges them.
//
// What it is: the command line of train_gpt and train_gptcu, and (at the end) the lines a run prints
// about itself at its start and its end. A flag is one row of TRAIN_FLAGS:
//   field    the TrainOptions member it sets
//   flag     as typed: "-x" or "--top-p"; every flag takes one value ("-x 100")
//   kind     STR (text), INT / LONG (an integer in [lo, hi]), FLOAT (a finite number in [lo, hi]),
//            CHOICE (one of the words of its metavar, e.g. <f32|bf16>)
//   def      the default
//   run      1: the option defines the run's trajectory. Every checkpoint records it, and a run
//            resumed with -y 1 takes it from there (resume_options): a run flag not given takes
//            the checkpoint's value, one given with the checkpoint's value is fine, one given
//            with another value is an error naming it -- except -x, which may grow (train
//            longer), and -i, compared by the data's content (the caller checks its identity)
//   meta     the value's name in -h
//   help     the text of -h (README.md's flag table says the same; make test compares them)
// A flag given twice takes its last value. Bad values are one "error:" line naming the flag (or,
// for a checkpoint's record, the state file): see die_flag.
// What it is not: getopt (no bundling, no "--flag=value"). The rules between flags are checked
// here where they need nothing else (batch_arithmetic); those that need the model (-t against its
// maxT) are the training loop's.

#ifndef GPTC_CLI_H
#define GPTC_CLI_H

#include <ctype.h>     // provides: isdigit
#include <errno.h>     // provides: errno
#include <math.h>      // provides: isfinite
#include <stdio.h>     // provides: FILE, fprintf, snprintf
#include <stdlib.h>    // provides: strtol, strtod, strtof, exit
#include <string.h>    // provides: strcmp, strlen, strnlen, strchr, memcpy, memset
#include <sys/resource.h> // provides: getrusage (the summary's peak memory)
#include "utils.h"     // provides: die, malloc_or_die, the MAX_* limits
#include "checkpoint.h" // provides: MAX_OPTIONS_BYTES (the record of the options in a state file)
#include "comm.h"      // provides: comm_check_same (every rank runs the same options), g_comm
#include "dataloader.h" // provides: DataLoader (the banner's data line)
#ifdef _OPENMP
#include <omp.h>       // provides: omp_get_max_threads (the banner's threads)
#endif

//    field           flag            kind    def                             lo     hi               run meta      help
#define TRAIN_FLAGS(X) \
    X(init,           "-e",           STR,    "L4H4C256",                     0,     0,                 1, "<init>", \
      "model file, Hugging Face checkpoint (.safetensors, or a directory holding\n" \
      "model.safetensors + config.json), or descriptor d12/d24/.. or e.g.\n" \
      "L4H4C256T1024V50257; a checkpoint starts a new run from its weights:\n" \
      "fresh AdamW state, step 0") \
    X(train_pattern,  "-i",           STR,    "data/brown/brown_train_*.bin", 0,     0,                 1, "<glob>", \
      "train token shards") \
    X(val_pattern,    "-j",           STR,    "data/brown/brown_val_*.bin",   0,     0,                 0, "<glob>", \
      "validation token shards, \"\" = none") \
    X(out_dir,        "-o",           STR,    "out",                          0,     0,                 0, "<dir>", \
      "output dir for log.txt and checkpoints, \"\" = none") \
    X(B,              "-b",           INT,    4,                              1,     MAX_MICRO_BATCH_TOKENS, 1, "<int>", \
      "micro-batch size B") \
    X(T,              "-t",           INT,    128,                            1,     MAX_SEQ_LEN,       1, "<int>", \
      "sequence length T (<= the model's maxT)") \
    X(total_batch,    "-d",           LONG,   -1,                             -1,    1L << 40,          1, "<int>", \
      "tokens per optimizer step, a multiple of B*T; -1 = B*T") \
    X(max_steps,      "-x",           INT,    300,                            1,     MAX_STEPS,         1, "<int>", \
      "number of training steps") \
    X(lr,             "-l",           FLOAT,  1e-3f,                          1e-12, 10.0,              1, "<float>", \
      "peak learning rate") \
    X(warmup,         "-u",           INT,    20,                             0,     MAX_STEPS,         1, "<int>", \
      "warmup steps: the lr peaks at step -u") \
    X(final_frac,     "-q",           FLOAT,  0.1f,                           0.0,   1.0,               1, "<float>", \
      "lr at the last step as a fraction of the peak (cosine decay)") \
    X(weight_decay,   "-c",           FLOAT,  0.1f,                           0.0,   1e3,               1, "<float>", \
      "weight decay (lr * decay < 1)") \
    X(grad_clip,      "-G",           FLOAT,  1.0f,                           0.0,   1e9,               1, "<float>", \
      "gradient clip (global norm), 0 = off") \
    X(dropout,        "-D",           FLOAT,  0.0f,                           0.0,   MAX_DROPOUT,       1, "<float>", \
      "dropout probability in training (embeddings, attention, residual\n" \
      "branches), 0 = off; GPT-2 used 0.1") \
    X(seed,           "-S",           LONG,   1337,                           0,     0x7fffffffffffffffL, 1, "<int>", \
      "random seed (init, shuffling, sampling)") \
    X(beta1,          "--beta1",      FLOAT,  0.9f,                           0.0,   0.999999,          1, "<float>", \
      "AdamW beta1") \
    X(beta2,          "--beta2",      FLOAT,  0.95f,                          0.0,   0.999999,          1, "<float>", \
      "AdamW beta2") \
    X(eps,            "--eps",        FLOAT,  1e-8f,                          1e-30, 1.0,               1, "<float>", \
      "AdamW epsilon") \
    X(val_every,      "-v",           INT,    50,                             0,     MAX_STEPS,         0, "<int>", \
      "validate every N steps, 0 = never") \
    X(val_batches,    "-m",           INT,    10,                             1,     1L << 30,          0, "<int>", \
      "validation batches") \
    X(sample_every,   "-s",           INT,    100,                            0,     MAX_STEPS,         0, "<int>", \
      "sample every N steps, 0 = never") \
    X(gen_len,        "-g",           INT,    64,                             1,     MAX_SEQ_LEN,       0, "<int>", \
      "tokens to generate per sample") \
    X(top_k,          "-K",           INT,    40,                             0,     1L << 30,          0, "<int>", \
      "top-k for sampling, 0 = all") \
    X(temperature,    "-H",           FLOAT,  1.0f,                           1e-6,  1e6,               0, "<float>", \
      "sampling temperature") \
    X(top_p,          "--top-p",      FLOAT,  1.0f,                           1e-6,  1.0,               0, "<float>", \
      "nucleus sampling: the smallest set of tokens with this much\n" \
      "probability, 1 = off") \
    X(prompt,         "--prompt",     STR,    NULL,                           0,     0,                 0, "<text>", \
      "no training: generate -g tokens after the text with the model of -e,\n" \
      "then exit") \
    X(kv_cache,       "--kv-cache",   INT,    1,                              0,     1,                 0, "<0|1>", \
      "generation with a KV cache (1) or a full forward per token (0)") \
    X(export_dir,     "--export",     STR,    NULL,                           0,     0,                 0, "<dir>", \
      "no training: write the model of -e as a Hugging Face GPT-2 checkpoint\n" \
      "(dir/model.safetensors + dir/config.json), then exit") \
    X(export_dtype,   "--export-dtype", CHOICE, "f32",                        0,     0,                 0, "<f32|bf16>", \
      "the weights' type in the export") \
    X(export_overwrite, "--export-overwrite", INT, 0,                         0,     1,                 0, "<0|1>", \
      "1: --export may replace the model.safetensors and config.json in dir") \
    X(eval_path,      "--eval",       STR,    NULL,                           0,     0,                 0, "<file>", \
      "no training: score the model of -e on a multiple-choice eval file\n" \
      "(llm.c's format, e.g. HellaSwag's), print acc and acc_norm, then exit") \
    X(val_eval,       "--val-eval",   STR,    NULL,                           0,     0,                 0, "<file>", \
      "score this eval file at every validation (-v); log.txt gets\n" \
      "s:S eval:ACC_NORM") \
    X(ckpt_every,     "-n",           INT,    100,                            0,     MAX_STEPS,         0, "<int>", \
      "checkpoint every N steps, 0 = only at the end") \
    X(keep_last,      "-k",           INT,    0,                              0,     1L << 30,          0, "<int>", \
      "keep only the newest N checkpoints, 0 = all") \
    X(resume,         "-y",           INT,    0,                              0,     1,                 0, "<0|1>", \
      "resume from the latest checkpoint in -o, with its options") \
    X(zero,           "-z",           INT,    0,                              0,     1,                 0, "<0|1>", \
      "ZeRO-1 under mpirun: AdamW state sharded over the ranks") \
    X(tokenizer_path, "-Z",           STR,    "data/gpt2_tokenizer.bin",      0,     0,                 0, "<path>", \
      "tokenizer file: samples as text, --prompt's encoding")

// the C type of each kind
#define FLAG_CTYPE_STR const char*
#define FLAG_CTYPE_CHOICE const char*
#define FLAG_CTYPE_INT int
#define FLAG_CTYPE_LONG long
#define FLAG_CTYPE_FLOAT float

// FLAG_init, FLAG_train_pattern, ...: each flag's row number
#define X_FLAG_ENUM(field, flag, kind, def, lo, hi, run, meta, help) FLAG_##field,
enum { TRAIN_FLAGS(X_FLAG_ENUM) NUM_FLAGS };
#undef X_FLAG_ENUM

typedef struct {
#define X_FLAG_FIELD(field, flag, kind, def, lo, hi, run, meta, help) FLAG_CTYPE_##kind field;
    TRAIN_FLAGS(X_FLAG_FIELD)
#undef X_FLAG_FIELD
    int verbose;                      // 0 for tests: no per-step output
    unsigned char given[NUM_FLAGS];   // given[FLAG_x] = 1: the flag was on the command line
} TrainOptions;

typedef struct { const char* flag; int run; const char* meta; const char* help; } FlagInfo;
#define X_FLAG_INFO(field, flag, kind, def, lo, hi, run, meta, help) {flag, run, meta, help},
static const FlagInfo FLAG_INFO[NUM_FLAGS] = { TRAIN_FLAGS(X_FLAG_INFO) };
#undef X_FLAG_INFO

static inline TrainOptions default_options(void) {
    TrainOptions o;
    memset(&o, 0, sizeof(o));
#define X_FLAG_DEFAULT(field, flag, kind, def, lo, hi, run, meta, help) o.field = def;
    TRAIN_FLAGS(X_FLAG_DEFAULT)
#undef X_FLAG_DEFAULT
    o.verbose = 1;
    return o;
}

// the row of a flag as typed, or -1
static inline int flag_index(const char* f) {
    for (int k = 0; k < NUM_FLAGS; k++) { if (strcmp(FLAG_INFO[k].flag, f) == 0) { return k; } }
    return -1;
}

// ----------------------------------------------------------------------------------------------
// Values: parsed with their bounds, and printed back as the command line would give them

// Where flag values come from, for error messages: the command line (NULL), or a state file whose
// recorded options are being read back.
static const char* g_options_source = NULL;
#define die_flag(fmt, ...) \
    (g_options_source != NULL ? die("%s: recorded option " fmt, g_options_source, __VA_ARGS__) \
                              : die(fmt, __VA_ARGS__))

static inline void flag_parse_LONG(long* dst, const char* flag, const char* s, long lo, long hi,
                                   const char* meta) {
    (void)meta;
    char* end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') { die_flag("%s %s: not an integer", flag, s); }
    if (v < lo || v > hi) { die_flag("%s %s: must be in [%ld, %ld]", flag, s, lo, hi); }
    *dst = v;
}
static inline void flag_parse_INT(int* dst, const char* flag, const char* s, long lo, long hi,
                                  const char* meta) {
    long v;
    flag_parse_LONG(&v, flag, s, lo, hi, meta);
    *dst = (int)v;
}
static inline void flag_parse_FLOAT(float* dst, const char* flag, const char* s, double lo, double hi,
                                    const char* meta) {
    (void)meta;
    char* end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v)) { die_flag("%s %s: not a number", flag, s); }
    if (v < lo || v > hi) { die_flag("%s %s: must be in [%g, %g]", flag, s, lo, hi); }
    *dst = v == 0.0 ? 0.0f : (float)v; // -0 is 0: recorded and compared as "0"
}
static inline void flag_parse_STR(const char** dst, const char* flag, const char* s, long lo, long hi,
                                  const char* meta) {
    (void)flag; (void)lo; (void)hi; (void)meta;
    *dst = s;
}
// one of the words of meta "<a|b|c>"; the error lists them: "a, b or c"
static inline void flag_parse_CHOICE(const char** dst, const char* flag, const char* s, long lo, long hi,
                                     const char* meta) {
    (void)lo; (void)hi;
    char words[128];
    snprintf(words, sizeof(words), "%s", meta + 1);
    words[strcspn(words, ">")] = '\0';
    size_t n = strlen(s);
    for (const char* w = words; *w != '\0'; ) {
        size_t len = strcspn(w, "|");
        if (len == n && strncmp(w, s, n) == 0) { *dst = s; return; }
        w += len + (w[len] == '|');
    }
    char* last = strrchr(words, '|');
    if (last != NULL) { *last = '\0'; }
    for (char* p = words; (p = strchr(p, '|')) != NULL; ) { *p = ','; } // "a, b or c"
    die_flag("%s %s: %s%s%s", flag, s, words, last != NULL ? " or " : "", last != NULL ? last + 1 : "");
}

// the shortest decimal text that reads back as the same float (at most 9 significant digits)
static inline void format_float(char* buf, size_t n, float x) {
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(buf, n, "%.*g", digits, (double)x);
        if (strtof(buf, NULL) == x) { return; }
    }
}
static inline void flag_format_STR(char* buf, size_t n, const char* x) { snprintf(buf, n, "%s", x ? x : ""); }
static inline void flag_format_CHOICE(char* buf, size_t n, const char* x) { flag_format_STR(buf, n, x); }
static inline void flag_format_INT(char* buf, size_t n, int x) { snprintf(buf, n, "%d", x); }
static inline void flag_format_LONG(char* buf, size_t n, long x) { snprintf(buf, n, "%ld", x); }
static inline void flag_format_FLOAT(char* buf, size_t n, float x) { format_float(buf, n, x); }

// sets option k from its value text (the command line, or a checkpoint's record)
static inline void apply_flag(TrainOptions* o, int k, const char* v) {
    const char* f = FLAG_INFO[k].flag;
#define X_FLAG_APPLY(field, flag, kind, def, lo, hi, run, meta, help) \
    if (k == FLAG_##field) { flag_parse_##kind(&o->field, f, v, lo, hi, meta); }
    TRAIN_FLAGS(X_FLAG_APPLY)
#undef X_FLAG_APPLY
    if (k == FLAG_total_batch && o->total_batch == 0) { die_flag("%s %s: must be positive, or -1 for B*T", f, v); }
}

// the text of option k's value, as the command line would give it (floats: the shortest text
// that reads back exactly). For the record of a run, -d -1 is written as what it means, B*T.
static inline void flag_value_text(const TrainOptions* o, int k, char* buf, size_t n) {
#define X_FLAG_FORMAT(field, flag, kind, def, lo, hi, run, meta, help) \
    if (k == FLAG_##field) { flag_format_##kind(buf, n, o->field); }
    TRAIN_FLAGS(X_FLAG_FORMAT)
#undef X_FLAG_FORMAT
    if (k == FLAG_total_batch && o->total_batch <= 0) { snprintf(buf, n, "%ld", (long)o->B * o->T); }
}

// dst's option k takes src's value
static inline void flag_copy(TrainOptions* dst, const TrainOptions* src, int k) {
#define X_FLAG_COPY(field, flag, kind, def, lo, hi, run, meta, help) \
    if (k == FLAG_##field) { dst->field = src->field; }
    TRAIN_FLAGS(X_FLAG_COPY)
#undef X_FLAG_COPY
}

// What a command line asks for: a training run, or one of the modes that train nothing (--prompt,
// --export, --eval), one at a time; --prompt and --export run one process.
enum { MODE_TRAIN, MODE_PROMPT, MODE_EXPORT, MODE_EVAL };
static inline int run_mode(const TrainOptions* o) {
    int mode = MODE_TRAIN, n = 0;
    if (o->prompt != NULL) { mode = MODE_PROMPT; n++; }
    if (o->export_dir != NULL) { mode = MODE_EXPORT; n++; }
    if (o->eval_path != NULL) { mode = MODE_EVAL; n++; }
    if (n > 1) { die("--prompt, --export and --eval: one at a time"); }
    if ((mode == MODE_PROMPT || mode == MODE_EXPORT) && g_comm.size > 1) {
        die("%s: runs one process (not under mpirun -np %d)",
            mode == MODE_PROMPT ? "--prompt" : "--export", g_comm.size);
    }
    return mode;
}

// ----------------------------------------------------------------------------------------------
// Model descriptors (-e)

// -e's model descriptors: "d12" (GPT-2 124M: 12 layers, 12 heads, 768 channels; d24, d36, d48 the
// larger GPT-2s, any other dN: N layers, N heads, 64N channels), or letter + number pairs such as
// "L3H5C60T17V311" (L layers, H heads, C channels, T maxT (1024), V vocab (GPT-2's 50257); each
// letter at most once). Fills sizes = {maxT, V, L, NH, C}; returns NULL, or what is wrong with desc.
static inline const char* parse_descriptor(const char* desc, int sizes[5]) {
    struct { int max_seq_len, vocab_size, num_layers, num_heads, channels; } c;
    c.max_seq_len = 1024; c.vocab_size = 50257; c.num_layers = 0; c.num_heads = 0; c.channels = 0;
    if (desc[0] == 'd' && isdigit((unsigned char)desc[1])) {
        char* end;
        errno = 0;
        long n = strtol(desc + 1, &end, 10);
        if (errno != 0 || *end != '\0' || n <= 0 || n > MAX_LAYERS) { return "dN needs N in [1, 1024]"; }
        c.num_layers = (int)n;
        if (n == 12)      { c.num_heads = 12; c.channels = 768; }
        else if (n == 24) { c.num_heads = 16; c.channels = 1024; }
        else if (n == 36) { c.num_heads = 20; c.channels = 1280; }
        else if (n == 48) { c.num_heads = 25; c.channels = 1600; }
        else              { c.num_heads = (int)n; c.channels = 64 * (int)n; }
    } else {
        const char* p = desc;
        char seen[8] = {0};
        int nseen = 0;
        if (*p == '\0') { return "empty"; }
        while (*p != '\0') {
            char key = *p++;
            if (strchr("LHCTV", key) == NULL) { return "letters are L, H, C, T, V"; }
            if (memchr(seen, key, (size_t)nseen) != NULL) { return "a letter appears twice"; }
            seen[nseen++] = key;
            if (!isdigit((unsigned char)*p)) { return "each letter needs a number"; }
            char* end;
            errno = 0;
            long n = strtol(p, &end, 10);
            if (errno != 0 || n <= 0 || n > 1000000000L) { return "a number is out of range"; }
            p = end;
            if (key == 'L') { c.num_layers = (int)n; }
            else if (key == 'H') { c.num_heads = (int)n; }
            else if (key == 'C') { c.channels = (int)n; }
            else if (key == 'T') { c.max_seq_len = (int)n; }
            else { c.vocab_size = (int)n; }
        }
        if (c.num_layers == 0 || c.num_heads == 0 || c.channels == 0) { return "L, H and C are required"; }
    }
    sizes[0] = c.max_seq_len; sizes[1] = c.vocab_size; sizes[2] = c.num_layers; sizes[3] = c.num_heads;
    sizes[4] = c.channels;
    return NULL;
}

// ----------------------------------------------------------------------------------------------
// The command line and -h

static inline void usage(FILE* to, const char* prog) {
    TrainOptions d = default_options();
    fprintf(to, "usage: %s [-flag value ...]\n", prog);
    for (int k = 0; k < NUM_FLAGS; k++) {
        const FlagInfo* fi = &FLAG_INFO[k];
        char head[64], def[4200];
        snprintf(head, sizeof(head), "%s %s", fi->flag, fi->meta);
        flag_value_text(&d, k, def, sizeof(def));
        if (k == FLAG_total_batch) { snprintf(def, sizeof(def), "%ld", d.total_batch); } // -1, not B*T
        // the help's lines, the last with the default
        const char* line = fi->help;
        for (int first = 1; ; first = 0) {
            size_t len = strcspn(line, "\n");
            int last = line[len] == '\0';
            fprintf(to, "  %-19s %.*s", first ? head : "", (int)len, line);
            if (last && def[0] != '\0') { fprintf(to, " (default %s)", def); }
            fprintf(to, "\n");
            if (last) { break; }
            line += len + 1;
        }
    }
    fprintf(to, "  %-19s this help\n", "-h");
    fprintf(to, "On -y 1 the run's options (");
    for (int k = 0, n = 0; k < NUM_FLAGS; k++) {
        if (FLAG_INFO[k].run) { fprintf(to, "%s%s", n++ > 0 ? " " : "", FLAG_INFO[k].flag); }
    }
    fprintf(to, ") come from\nthe checkpoint; giving one with another value is an error, except a "
                "larger -x (train longer).\n");
}

static inline TrainOptions parse_options(int argc, char** argv) {
    TrainOptions o = default_options();
    for (int i = 1; i < argc; i += 2) {
        const char* f = argv[i];
        if (strcmp(f, "-h") == 0 || strcmp(f, "--help") == 0) { usage(stdout, argv[0]); exit(0); }
        int k = flag_index(f);
        if (k < 0) {
            if (f[0] == '-' && f[1] != '\0' && (f[1] == '-' || f[2] == '\0')) {
                die("%s: unknown flag (-h lists the flags)", f);
            }
            die("%s: not a flag (flags are -x value; -h lists them)", f);
        }
        if (i + 1 >= argc) { die("%s: missing value", f); }
        apply_flag(&o, k, argv[i + 1]);
        o.given[k] = 1;
    }
    return o;
}

// ----------------------------------------------------------------------------------------------
// The run's options in a checkpoint, and a resumed run's options

// the record of a run's options for its checkpoints: "flag\0value\0" for each run flag
static inline char* run_options_record(const TrainOptions* o, size_t* len) {
    char* rec = (char*)malloc_or_die(MAX_OPTIONS_BYTES);
    size_t n = 0;
    for (int k = 0; k < NUM_FLAGS; k++) {
        if (!FLAG_INFO[k].run) { continue; }
        char value[4200];
        flag_value_text(o, k, value, sizeof(value));
        size_t lf = strlen(FLAG_INFO[k].flag) + 1, lv = strlen(value) + 1;
        if (n + lf + lv > MAX_OPTIONS_BYTES) { die("the run's options are longer than %d bytes", MAX_OPTIONS_BYTES); }
        memcpy(rec + n, FLAG_INFO[k].flag, lf); n += lf;
        memcpy(rec + n, value, lv); n += lv;
    }
    *len = n;
    return rec;
}

// The options of a checkpoint's record (rec, len bytes, read from state_path) over o: each
// recorded run flag is validated as the command line would be. A record lacks no run flag except
// -D, which came after the first checkpoints of state version 2 (absent = -D 0).
static inline TrainOptions recorded_options(const TrainOptions* o, const char* rec, size_t len,
                                            const char* state_path) {
    TrainOptions ck = *o;
    g_options_source = state_path;
    unsigned char seen[NUM_FLAGS] = {0};
    size_t i = 0;
    while (i < len) {
        const char* f = rec + i;
        size_t lf = strnlen(f, len - i);
        if (i + lf + 1 >= len) { die("%s: recorded options are cut short", state_path); }
        const char* v = f + lf + 1;
        size_t lv = strnlen(v, len - i - lf - 1);
        if (i + lf + 1 + lv >= len) { die("%s: recorded options are cut short", state_path); }
        int k = flag_index(f);
        if (k < 0 || !FLAG_INFO[k].run || seen[k]) {
            die("%s: recorded option %.40s is unknown or repeated", state_path, f);
        }
        seen[k] = 1;
        apply_flag(&ck, k, v);
        i += lf + 1 + lv + 1;
    }
    for (int k = 0; k < NUM_FLAGS; k++) {
        if (!FLAG_INFO[k].run || seen[k]) { continue; }
        if (k == FLAG_dropout) { ck.dropout = 0.0f; continue; }
        die("%s: recorded options lack %s", state_path, FLAG_INFO[k].flag);
    }
    g_options_source = NULL;
    return ck;
}

// Resume: the run's options from the checkpoint's record (rec, len bytes, read from state_path,
// whose run has done `step` steps) merged with the command line's (o), by the rules at the top.
// Returns the merged options; their strings point into o or rec.
static inline TrainOptions resume_options(const TrainOptions* o, const char* rec, size_t len, long step,
                                          const char* state_path) {
    TrainOptions ck = recorded_options(o, rec, len, state_path);
    TrainOptions run = ck;
    for (int k = 0; k < NUM_FLAGS; k++) {
        if (!FLAG_INFO[k].run || !o->given[k]) { continue; }
        const char* f = FLAG_INFO[k].flag;
        if (k == FLAG_train_pattern) { run.train_pattern = o->train_pattern; continue; }
        // the given value, read in the context of the checkpoint's other options (-d -1 = B*T)
        TrainOptions given = ck;
        flag_copy(&given, o, k);
        char have[4200], want[4200];
        flag_value_text(&ck, k, have, sizeof(have));
        flag_value_text(&given, k, want, sizeof(want));
        if (strcmp(have, want) == 0) { continue; }
        if (k == FLAG_max_steps) {
            if (o->max_steps <= step) {
                die("-x %d: the checkpoint has already done %ld steps; give a larger -x to train further",
                    o->max_steps, step);
            }
            run.max_steps = o->max_steps;
            continue;
        }
        die("%s %s: the checkpoint %s was trained with %s %s; a resumed run keeps its options (drop the "
            "flag, or start a new run from the checkpoint's model with -e and another -o)", f, want,
            state_path, f, have);
    }
    if (run.max_steps <= step) {
        die("%s: the run is complete (%ld of -x %d steps); give a larger -x to train further", state_path,
            step, run.max_steps);
    }
    if (run.max_steps != ck.max_steps && o->verbose) { // (after every check: a refused resume prints nothing)
        printf("note: -x %d overrides the checkpoint's -x %d: the schedule's decay now ends at step %d\n",
               run.max_steps, ck.max_steps, run.max_steps);
    }
    return run;
}

// Every rank of a data-parallel job must run the same thing: the run's options (-i compared by the
// data's content instead: each machine may mount the shards elsewhere), -z, the model (its sizes
// m = {L, NH, C, maxT, V, Vp}), the data (the training and validation shards' identities), and the
// same build (backend, compile time). The lowest rank that differs names the first difference and
// stops the job (gptc/comm.h).
static inline void check_ranks_agree(const TrainOptions* o, const int m[6], uint64_t train_data,
                                     uint64_t val_data, const char* backend) {
    if (g_comm.size == 1) { return; }
    TrainOptions same = *o;
    same.train_pattern = "(compared by content)";
    size_t len;
    char* rec = run_options_record(&same, &len);
    char extra[600];
    int n = snprintf(extra, sizeof(extra),
                     "-z%c%d%cmodel%cL%dH%dC%dT%dV%dVp%d%cdata%c%016llx %016llx%cbuild%c%.100s %s %s",
                     0, o->zero, 0, 0, m[0], m[1], m[2], m[3], m[4], m[5], 0, 0,
                     (unsigned long long)train_data, (unsigned long long)val_data, 0, 0, backend,
                     __DATE__, __TIME__);
    if (len + (size_t)n + 1 > MAX_OPTIONS_BYTES) { die("the run's options are too long"); }
    memcpy(rec + len, extra, (size_t)n + 1);
    comm_check_same(rec, len + (size_t)n + 1);
    free(rec);
}

// The batch arithmetic of a step on `ranks` processes, checked: -d tokens per step (-1: B*T on each
// rank) in micro-batches of B*T tokens on each rank; and AdamW's lr * wd < 1. Sets o->total_batch
// to the tokens per step (-1 resolved: what the run does, and what its checkpoints record) and
// returns the micro-batches per step on each rank.
static inline int batch_arithmetic(TrainOptions* o, int ranks) {
    long micro = (long)o->B * o->T;
    long total = o->total_batch > 0 ? o->total_batch : micro * ranks;
    if (total % (micro * ranks) != 0) {
        die("-d %ld: total batch is not a multiple of B*T*ranks = %ld*%d", total, micro, ranks);
    }
    // micro-batches per step: 2^24 keeps 1/accum's divisor exact and a step finite in time
    if (total / micro > (1L << 24)) {
        die("-d %ld: %ld micro-batches of B*T = %ld per step is more than the limit %ld", total,
            total / micro, micro, 1L << 24);
    }
    if ((double)o->lr * o->weight_decay >= 1.0) {
        die("-l %g -c %g: lr * weight decay = %g must be below 1 (AdamW scales each weight by "
            "1 - lr*wd every step)", o->lr, o->weight_decay, (double)o->lr * o->weight_decay);
    }
    o->total_batch = total;
    return (int)(total / (micro * ranks));
}

// ----------------------------------------------------------------------------------------------
// What a run prints at its start (after the model's line) and at its end, and what stops it

// The run's notes on its flags, printed after every check that can stop the run (so that an error
// stays one line): samples longer than the -t window they are drawn in (kv_cache: the backend's
// generation has a KV cache and needs no window), and a warmup the run never leaves
static inline void flag_notes(const TrainOptions* o, int kv_cache) {
    if (o->verbose && o->sample_every > 0 && !kv_cache && o->gen_len > o->T - 1) {
        printf("note: -g %d is more than T-1 = %d: samples are %d tokens (they fit the -t %d "
               "window)\n", o->gen_len, o->T - 1, o->T - 1, o->T);
    }
    if (o->warmup >= o->max_steps && g_comm.rank == 0) {
        fprintf(stderr, "warning: -u %d >= -x %d: the run ends within its warmup; the learning "
                "rate never decays\n", o->warmup, o->max_steps);
    }
}

// a non-finite loss or gradient norm ends the run before anything is saved
static inline void check_finite(const char* what, double x, long step) {
    if (!isfinite(x)) {
        die("step %ld: the %s is %g: the run diverged (nothing saved after the last checkpoint); "
            "lower -l, raise -u, or set -G", step, what, x);
    }
}

// the batch, the ranks and the AdamW state each holds (gptc/comm.h), the data and its check's time
static inline void print_run_banner(const TrainOptions* o, int accum, long total_batch, const char* backend,
                                    size_t state, size_t state_mine, int zero, const DataLoader* train,
                                    int have_val, double t_check) {
    char where[64] = "1 thread";
#ifdef _OPENMP
    snprintf(where, sizeof(where), "%d threads", omp_get_max_threads());
#endif
    printf("batch: B=%d T=%d, %d micro-batch(es) per step%s = %ld tokens; %s, %s\n", o->B, o->T,
           accum, g_comm.size > 1 ? " on each rank" : "", total_batch, backend, where);
    comm_print_shards(state, state_mine, zero);
    char mask[96] = ""; // version-2 shards: how many of the tokens are targets the loss counts
    if (train->masked) { snprintf(mask, sizeof(mask), "; a loss mask: %ld flagged to count", train->flagged); }
    printf("data: %d train shard(s) %s (%ld tokens%s), %s%s; all checked in %.2f s\n", train->nfiles,
           o->train_pattern, loader_tokens(train), mask, have_val ? "val " : "no validation",
           have_val ? o->val_pattern : "", t_check);
}

static inline int compare_doubles(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

// "summary: ..." for `timed` steps of step_ms (sorted here), gflop and `tokens` each: the median
// step time (the first step warms caches and the allocator: the median of the rest is the honest
// number), tokens/s, GFLOP/s, and the process's peak memory.
static inline void print_summary(double* step_ms, int timed, double gflop, long tokens) {
    int skip = timed > 3 ? 1 : 0;
    qsort(step_ms + skip, (size_t)(timed - skip), sizeof(double), compare_doubles);
    double median = step_ms[skip + (timed - skip) / 2];
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("summary: median step %.1f ms over %d steps | %.0f tok/s | %.1f GFLOP/step, %.1f GFLOP/s "
           "| peak RSS %.0f MiB\n", median, timed - skip, (double)tokens / (median / 1000.0), gflop,
           gflop / (median / 1000.0), (double)ru.ru_maxrss / 1024.0);
}

#endif // GPTC_CLI_H
