/*
dev/test_safetensors.c -- proves data/safetensors.h: Hugging Face GPT-2 checkpoints in and out of
train_gpt.c, against PyTorch.

dev/hf_gpt2.py --write DIR writes small GPT-2s in the layout of openai-community/gpt2 (several
variants: F32, BF16, F16, with and without the "transformer." prefix, with a tied lm_head, without
config.json) and, for each, PyTorch's logits on a fixed batch. This program:

  units     float32 -> bf16 rounding (st_f32_to_bf16) against an independent definition of round
            to nearest even, on 1.5 M bit patterns (every exponent/mantissa-top with the low
            halves 0, 1, 0x7fff, 0x8000, 0x8001, 0xffff, and random ones); bf16 and f16 widening
            on all 65536 inputs against 2^e * (1 + m / 2^k) evaluated in double; the parameter
            table of the header against train_gpt.c's GPT_PARAMETERS (names and sizes)
  per model config (config.json, or inferred from the shapes) = the descriptor the file was made
            from; hf_gpt2_load into a GPT of gpt_setup, gpt_forward (CPU), logits against
            PyTorch's within the fp32 activation bound of test_gpt.c; export F32 -> import is bit
            exact; export BF16 -> import equals an independent round-to-nearest-even of every
            weight, and (for an F32 file) equals torch's own bf16 rounding of the same weights
            (the BF16 file dev/hf_gpt2.py wrote of that model). Writes the exports, with the C
            logits of each, to DIR/export/NAME_{f32,bf16}/ for the next step.
  --compare after dev/hf_gpt2.py --read of each export: PyTorch's logits of our exports against our
            logits of them, and for the F32 exports against the original PyTorch logits bit for bit
            (same weights, same PyTorch code).

Every check prints its name, max error, bound and OK/FAILED, and proves that it can fail: it also
runs against a reference perturbed past its bound (one element moved, one bit flipped) and must
reject that. --corrupt NAME perturbs the reference of check NAME for real: that run must fail.

usage: ./test_safetensors [--corrupt NAME] DIR
       ./test_safetensors [--corrupt NAME] --compare DIR
       ./test_safetensors --load PATH     load one checkpoint (dir or .safetensors file) and print its
                                          config: for dev/test_safetensors.sh's malformed inputs
       ./test_safetensors --roundtrip DESC DIR   GPT-2 sizes (d12, d24, d36, d48) saved and loaded,
                                          checked and timed (a benchmark: large files, not in the .sh)
       ./test_safetensors --trainer FLAG...   the trainer itself (train_gpt.c's train_main) with these
                                          flags: dev/test_safetensors.sh's --export cases, in this
                                          build and the sanitizer one
Build: gcc -O2 -march=native -fopenmp -Wall -Wextra -o build/test_safetensors dev/test_safetensors.c -lm -ljansson
Last line: "N passed, N failed"; the exit status is non-zero on any failure.
*/

#define GPT_NO_MAIN
#include "../train_gpt.c"          // provides: GPT, gpt_setup, gpt_forward, config_from_descriptor, die
#include "../data/safetensors.h"   // provides: st_*, hf_gpt2_read_config / load / save, HF_GPT2_PARAMS

// The fp32 bound of test_gpt.c for activations: |ours - ref| <= atol + rtol |ref|, atol = 3e-5 *
// rms(ref). Both sides compute the same float32 formulas, summed in different orders (our blocked
// matmuls, PyTorch's BLAS), so a sum of K terms differs by ~sqrt(K) ulp of its terms; test_gpt.c's
// comment above ACT_RTOL derives it and measured 1.2e-5 * rms at d12.
#define ACT_RTOL 1e-5f
#define ACT_FLOOR 3e-5f
#define LOGITS_MAGIC 20261130 // dev/hf_gpt2.py's logits file
#define LOGITS_VERSION 1

static int g_passed = 0, g_failed = 0;
static const char* g_corrupt = NULL;

// snprintf that refuses to cut: a path or check name too long for its buffer is an error
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void fmt(char* buf, size_t size, const char* f, ...) {
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(buf, size, f, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size) { die("name too long: %.60s...", buf); }
}

static int corrupt_now(const char* name) {
    if (g_corrupt == NULL || strcmp(g_corrupt, name) != 0) { return 0; }
    printf("(--corrupt: perturbing the reference of %s)\n", name);
    return 1;
}

static void verdict(const char* name, int ok, int can_fail, const char* detail) {
    int pass = ok && can_fail;
    printf("%-34s %s  %s%s\n", name, detail, pass ? "OK" : "FAILED", can_fail ? "" : " (this check cannot fail)");
    if (pass) { g_passed++; } else { g_failed++; }
}

// ----------------------------------------------------------------------------------------------
// Comparisons

// max |a - ref| and whether every element is within atol + rtol |ref|; `stride_a` lets (B,T,Vp)
// logits meet a (B,T,V) reference
static int within(const float* a, const float* ref, size_t rows, size_t cols, size_t stride_a,
                  float atol, float rtol, double* max_abs) {
    int ok = 1;
    *max_abs = 0.0;
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < cols; c++) {
            double x = a[r * stride_a + c], y = ref[r * cols + c], err = fabs(x - y);
            if (!(err <= atol + rtol * fabs(y))) { ok = 0; } // !(<=) also catches NaN
            if (err > *max_abs || err != err) { *max_abs = err; }
        }
    }
    return ok;
}

static void check_close(const char* name, const float* ours, float* ref, size_t rows, size_t cols, size_t stride_a) {
    double ss = 0.0;
    for (size_t i = 0; i < rows * cols; i++) { ss += (double)ref[i] * ref[i]; }
    float atol = (float)(ACT_FLOOR * sqrt(ss / (double)(rows * cols)));
    size_t mid = rows * cols / 2;
    if (corrupt_now(name)) { ref[mid] += 100.0f * (atol + ACT_RTOL * fabsf(ref[mid])); }
    double max_abs;
    int ok = within(ours, ref, rows, cols, stride_a, atol, ACT_RTOL, &max_abs);
    // sensitivity: the largest reference element moved by twice its bound must be rejected
    size_t worst = 0;
    for (size_t i = 0; i < rows * cols; i++) { if (fabsf(ref[i]) > fabsf(ref[worst])) { worst = i; } }
    float saved = ref[worst];
    ref[worst] = saved + 2.0f * (atol + ACT_RTOL * fabsf(saved));
    double unused;
    int can_fail = !within(ours, ref, rows, cols, stride_a, atol, ACT_RTOL, &unused);
    ref[worst] = saved;
    char detail[160];
    snprintf(detail, sizeof(detail), "n=%-7zu max_abs %.2e | atol %.1e rtol %.0e", rows * cols, max_abs, atol, ACT_RTOL);
    verdict(name, ok, can_fail, detail);
}

static size_t count_differ(const float* a, const float* b, size_t n, size_t* first) {
    size_t bad = 0;
    *first = 0;
    for (size_t i = 0; i < n; i++) {
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0) { if (bad == 0) { *first = i; } bad++; }
    }
    return bad;
}

// bit-for-bit equality of n floats; proves it can fail by flipping one bit of the reference
static void check_exact(const char* name, const float* ours, float* ref, size_t n) {
    uint32_t bit = 1;
    if (corrupt_now(name)) { uint32_t u; memcpy(&u, &ref[n / 2], 4); u ^= bit; memcpy(&ref[n / 2], &u, 4); }
    size_t first;
    size_t bad = count_differ(ours, ref, n, &first);
    uint32_t u;
    memcpy(&u, &ref[n / 3], 4);
    u ^= bit;
    float saved = ref[n / 3];
    memcpy(&ref[n / 3], &u, 4);
    size_t unused;
    int can_fail = count_differ(ours, ref, n, &unused) != bad;
    ref[n / 3] = saved;
    char detail[160];
    snprintf(detail, sizeof(detail), "n=%-7zu %zu differ%s (bit-exact)", n, bad, bad ? "" : "     ");
    if (bad) { snprintf(detail, sizeof(detail), "n=%-7zu %zu differ, first at %zu: %.9g vs %.9g", n, bad, first, (double)ours[first], (double)ref[first]); }
    verdict(name, bad == 0, can_fail, detail);
}

// ----------------------------------------------------------------------------------------------
// Units: the conversions

// Round to nearest, ties to even, from its definition: the two bf16 neighbours of x (truncated,
// and one bf16 ulp further from zero), the nearer one, on a tie the one with an even last bit.
// Differences are exact in double (both operands are floats within 2^-7 relative of each other).
static uint16_t bf16_reference(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if (isnan(x)) { return 0xffff; }              // any NaN; compared by class below
    uint32_t lo = u & 0xffff0000u, hi = lo + 0x10000u;
    double xd = x, dlo, dhi;
    float flo, fhi;
    memcpy(&flo, &lo, 4);
    dlo = fabs(xd - (double)flo);
    if ((hi & 0x7f800000u) == 0x7f800000u) { dhi = fabs(ldexp(x < 0 ? -1.0 : 1.0, 128) - xd); } // next is past FLT_MAX: inf
    else { memcpy(&fhi, &hi, 4); dhi = fabs((double)fhi - xd); }
    if (isinf(x)) { return (uint16_t)(u >> 16); }
    if (dlo < dhi) { return (uint16_t)(lo >> 16); }
    if (dhi < dlo) { return (uint16_t)(hi >> 16); }
    return ((lo >> 16) & 1u) ? (uint16_t)(hi >> 16) : (uint16_t)(lo >> 16);
}

static int bf16_same(uint16_t got, uint16_t want, float x) {
    if (isnan(x)) { return (got & 0x7f80u) == 0x7f80u && (got & 0x7fu) != 0 && (got >> 15) == (uint16_t)(signbit(x) != 0); }
    return got == want;
}

// st_f32_to_bf16 on 1.5 M patterns; `flip` perturbs the reference (sensitivity, --corrupt)
static size_t bf16_mismatches(int flip, uint32_t* first) {
    size_t bad = 0;
    const uint32_t lows[6] = {0x0000, 0x0001, 0x7fff, 0x8000, 0x8001, 0xffff};
    uint64_t rng = 0x9E3779B97F4A7C15ULL;
    for (uint32_t i = 0; i < 65536u * 6 + (1u << 20); i++) {
        uint32_t u;
        if (i < 65536u * 6) { u = (i / 6) << 16 | lows[i % 6]; }
        else { rng = mix64(rng + GOLDEN); u = (uint32_t)rng; }
        float x;
        memcpy(&x, &u, 4);
        uint16_t want = bf16_reference(x);
        if (flip && i == 6 * 0x3f80 + 3) { want ^= 1; } // 1.0 + a tie: the reference rounds it to even
        if (!bf16_same(st_f32_to_bf16(x), want, x)) { if (bad == 0) { *first = u; } bad++; }
    }
    return bad;
}

// st_bf16_to_f32 and st_f16_to_f32 on every input against sign * 2^(e - bias) * (1 + m / 2^k), or
// the subnormal m * 2^(1 - bias - k), in double; NaN must stay NaN
static size_t widen_mismatches(int f16, int flip) {
    size_t bad = 0;
    int ebits = f16 ? 5 : 8, mbits = f16 ? 10 : 7, bias = f16 ? 15 : 127;
    for (uint32_t h = 0; h < 65536; h++) {
        int sign = (int)(h >> 15), e = (int)((h >> mbits) & ((1u << ebits) - 1)), m = (int)(h & ((1u << mbits) - 1));
        double want;
        if (e == (1 << ebits) - 1) { want = m ? NAN : INFINITY; }
        else if (e == 0) { want = ldexp((double)m, 1 - bias - mbits); }
        else { want = ldexp(1.0 + ldexp((double)m, -mbits), e - bias); }
        if (sign) { want = -want; }
        if (flip && h == 0x3c01) { want *= 1.5; }
        float got = f16 ? st_f16_to_f32((uint16_t)h) : st_bf16_to_f32((uint16_t)h);
        int ok = isnan(want) ? (isnan(got) != 0) : ((double)got == want && (signbit(got) != 0) == (signbit(want) != 0));
        if (!ok) { bad++; }
    }
    return bad;
}

static void test_units(void) {
    printf("== units\n");
    uint32_t first = 0, unused;
    int corrupt = corrupt_now("bf16 rounding");
    size_t bad = bf16_mismatches(corrupt, &first);
    char detail[160];
    snprintf(detail, sizeof(detail), "1572864 patterns, %zu differ from round-to-nearest-even%s", bad, bad ? "" : "");
    if (bad) { snprintf(detail, sizeof(detail), "%zu differ, first 0x%08x", bad, first); }
    verdict("bf16 rounding", bad == 0, bf16_mismatches(1, &unused) > 0, detail);
    const char* names[2] = {"bf16 widening", "f16 widening"};
    for (int f16 = 0; f16 < 2; f16++) {
        size_t b = widen_mismatches(f16, corrupt_now(names[f16]));
        snprintf(detail, sizeof(detail), "65536 inputs, %zu differ from the formula", b);
        verdict(names[f16], b == 0, widen_mismatches(f16, 1) > 0, detail);
    }
    // the header's table against train_gpt.c's, for a config whose dimensions all differ
    GPTConfig gc;
    if (config_from_descriptor(&gc, "L3H5C60T17V311") != NULL) { die("bad descriptor"); }
    GPT model;
    gpt_setup_table(&model, &gc);
    HfGpt2Config hc;
    hc.maxT = gc.max_seq_len; hc.V = gc.vocab_size; hc.L = gc.num_layers; hc.NH = gc.num_heads; hc.C = gc.channels;
    size_t sizes[HF_GPT2_NPARAMS];
    size_t total = hf_gpt2_layout(&hc, gc.padded_vocab_size, sizes, "table");
    int same = NUM_PARAMETER_TENSORS == HF_GPT2_NPARAMS && total == model.num_parameters;
    int differ_at = -1;
    for (int k = 0; same && k < HF_GPT2_NPARAMS; k++) {
        if (strcmp(HF_GPT2_PARAMS[k].ours, model.specs[k].name) != 0 || sizes[k] != model.specs[k].size) { same = 0; differ_at = k; }
    }
    snprintf(detail, sizeof(detail), "%d tensors, %zu floats%s", HF_GPT2_NPARAMS, total, same ? " = GPT_PARAMETERS" : "");
    if (!same) { snprintf(detail, sizeof(detail), "differs from GPT_PARAMETERS at %d", differ_at); }
    verdict("table = GPT_PARAMETERS", same && !corrupt_now("table = GPT_PARAMETERS"), sizes[0] != sizes[1], detail);
}

// ----------------------------------------------------------------------------------------------
// Logits files (dev/hf_gpt2.py): int32 header[8] = {20261130, 1, B, T, V, 0, 0, 0}, int32 tokens
// (B,T), float32 logits (B,T,V)

typedef struct { int B, T, V; int* tokens; float* logits; } Logits;

static void logits_read(Logits* lg, const char* path) {
    FILE* f = fopen_input_or_die(path);
    long size = file_size_or_die(f, path);
    int h[8];
    if (size < 32) { die("%s: truncated logits file (%ld bytes)", path, size); }
    fread_or_die(h, sizeof(int), 8, f, path);
    if (h[0] != LOGITS_MAGIC || h[1] != LOGITS_VERSION) {
        die("%s: not a logits file (magic %d version %d; write it with dev/hf_gpt2.py)", path, h[0], h[1]);
    }
    if (h[2] <= 0 || h[3] <= 0 || h[4] <= 0 || h[2] > 4096 || h[3] > 65536 || h[4] > MAX_VOCAB) {
        die("%s: bad sizes B=%d T=%d V=%d", path, h[2], h[3], h[4]);
    }
    lg->B = h[2]; lg->T = h[3]; lg->V = h[4];
    size_t BT = (size_t)lg->B * lg->T;
    if ((size_t)size != 32 + 4 * BT + 4 * BT * lg->V) { die("%s: %ld bytes, expected %zu", path, size, 32 + 4 * BT * (1 + lg->V)); }
    lg->tokens = (int*)malloc_or_die(BT * sizeof(int));
    lg->logits = (float*)malloc_or_die(BT * lg->V * sizeof(float));
    fread_or_die(lg->tokens, sizeof(int), BT, f, path);
    fread_or_die(lg->logits, sizeof(float), BT * lg->V, f, path);
    fclose(f);
}

static void logits_write(const char* path, const Logits* lg, const float* logits, int Vp) {
    char tmp[4200];
    FILE* f = open_for_atomic_write(path, tmp, sizeof(tmp));
    int h[8] = {LOGITS_MAGIC, LOGITS_VERSION, lg->B, lg->T, lg->V, 0, 0, 0};
    size_t BT = (size_t)lg->B * lg->T;
    fwrite_or_die(h, sizeof(int), 8, f, tmp);
    fwrite_or_die(lg->tokens, sizeof(int), BT, f, tmp);
    for (size_t i = 0; i < BT; i++) { fwrite_or_die(logits + i * Vp, sizeof(float), (size_t)lg->V, f, tmp); }
    finish_atomic_write(f, tmp, path);
}

static void logits_free(Logits* lg) { free(lg->tokens); free(lg->logits); }

// ----------------------------------------------------------------------------------------------
// Checkpoints

typedef struct { char name[64], model[64], dtype[16], desc[64]; } Variant;

// DIR/variants.txt: "NAME MODEL DTYPE DESCRIPTOR" per line
static int read_variants(const char* dir, Variant* v, int cap) {
    char path[4200];
    fmt(path, sizeof(path), "%s/variants.txt", dir);
    FILE* f = fopen_input_or_die(path);
    int n = 0;
    char line[512];
    while (fgets(line, sizeof(line), f) != NULL) {
        if (n == cap) { die("%s: more than %d variants", path, cap); }
        if (sscanf(line, "%63s %63s %15s %63s", v[n].name, v[n].model, v[n].dtype, v[n].desc) != 4) {
            die("%s: bad line '%s'", path, line);
        }
        n++;
    }
    fclose(f);
    if (n == 0) { die("%s: no variants", path); }
    return n;
}

static int same_config(const HfGpt2Config* a, const HfGpt2Config* b) {
    return a->maxT == b->maxT && a->V == b->V && a->L == b->L && a->NH == b->NH && a->C == b->C;
}

// a GPT of the checkpoint's config with its weights, as -e loads it (train_gpt.c: every check of
// the file against its config, then the weights' allocation, then the weights)
static void load_model(GPT* model, HfGpt2Config* hc, const char* path) {
    gpt_build_from_safetensors(model, path);
    hf_gpt2_read_config(path, hc);
}

static void test_variant(const char* dir, const Variant* v, const Variant* all, int nall) {
    char path[4200], name[128];
    printf("== %s (%s, %s)\n", v->name, v->desc, v->dtype);
    fmt(path, sizeof(path), "%s/%s", dir, v->name);
    GPT model;
    HfGpt2Config hc;
    load_model(&model, &hc, path);
    const GPTConfig* gc = &model.config;
    size_t N = model.num_parameters;
    int Vp = gc->padded_vocab_size;

    // the config: from config.json, or inferred from the shapes, = the descriptor it was made from
    GPTConfig want;
    if (config_from_descriptor(&want, v->desc) != NULL) { die("%s: bad descriptor %s", dir, v->desc); }
    HfGpt2Config wc;
    wc.maxT = want.max_seq_len; wc.V = want.vocab_size; wc.L = want.num_layers; wc.NH = want.num_heads; wc.C = want.channels;
    fmt(name, sizeof(name), "%s/config", v->name);
    if (corrupt_now(name)) { wc.NH++; }
    char detail[200];
    snprintf(detail, sizeof(detail), "L=%d NH=%d C=%d maxT=%d V=%d (%s)", hc.L, hc.NH, hc.C, hc.maxT, hc.V, v->desc);
    HfGpt2Config other = wc;
    other.maxT++;
    verdict(name, same_config(&hc, &wc), !same_config(&hc, &other), detail);

    // the forward against PyTorch's
    Logits lg;
    fmt(path, sizeof(path), "%s/%s/logits.bin", dir, v->name);
    logits_read(&lg, path);
    if (lg.V != gc->vocab_size || lg.T > gc->max_seq_len) { die("%s: V=%d T=%d does not fit the model", path, lg.V, lg.T); }
    size_t BT = (size_t)lg.B * lg.T;
    gpt_forward(&model, lg.tokens, NULL, lg.B, lg.T);
    fmt(name, sizeof(name), "%s/logits", v->name);
    check_close(name, model.acts.logits, lg.logits, BT, (size_t)lg.V, (size_t)Vp);

    float* orig = (float*)malloc_or_die(N * sizeof(float));
    memcpy(orig, model.params_memory, N * sizeof(float));
    float* back = (float*)malloc_or_die(N * sizeof(float));
    fmt(path, sizeof(path), "%s/export", dir);
    if (mkdir(path, 0777) != 0 && errno != EEXIST) { die("%s: cannot create (%s)", path, strerror(errno)); }
    for (int bf16 = 0; bf16 < 2; bf16++) {
        char edir[4200];
        fmt(edir, sizeof(edir), "%s/export/%s_%s", dir, v->name, bf16 ? "bf16" : "f32");
        hf_gpt2_save(edir, &hc, orig, Vp, bf16, 1); // 1: the sanitizer build runs again over them
        HfGpt2Config ec;
        hf_gpt2_read_config(edir, &ec);
        fmt(name, sizeof(name), "%s_%s/config", v->name, bf16 ? "bf16" : "f32");
        other = hc;
        other.C++;
        if (corrupt_now(name)) { ec.L++; }
        verdict(name, same_config(&ec, &hc), !same_config(&ec, &other), "config.json read back = the model's");
        memset(back, 0xff, N * sizeof(float)); // NaNs: the loader must write every element, padding too
        hf_gpt2_load(edir, &ec, back, Vp);
        // every tensor of the export in the dtype asked for
        fmt(path, sizeof(path), "%s/model.safetensors", edir);
        SafeTensors st;
        st_open(&st, path);
        int wrong = 0;
        for (int i = 0; i < st.n; i++) { if (st.tensors[i].dtype != (bf16 ? ST_BF16 : ST_F32)) { wrong++; } }
        fmt(name, sizeof(name), "%s_%s/dtype", v->name, bf16 ? "bf16" : "f32");
        snprintf(detail, sizeof(detail), "%d tensors, %d not %s", st.n, wrong, bf16 ? "BF16" : "F32");
        verdict(name, wrong == 0 && st.n == 4 + 12 * hc.L && !corrupt_now(name), st.n > 0, detail);
        st_close(&st);
        float* ref = (float*)malloc_or_die(N * sizeof(float));
        if (!bf16) {
            memcpy(ref, orig, N * sizeof(float));
            fmt(name, sizeof(name), "%s_f32/round trip", v->name);
            check_exact(name, back, ref, N);
        } else {
            // independent rounding of every weight (the padding rows of wte stay 0)
            for (size_t i = 0; i < N; i++) { uint32_t u = (uint32_t)bf16_reference(orig[i]) << 16; memcpy(&ref[i], &u, 4); }
            fmt(name, sizeof(name), "%s_bf16/round to nearest even", v->name);
            check_exact(name, back, ref, N);
            // torch's rounding of the same weights: the BF16 file of the same model, if this is F32
            for (int j = 0; j < nall && strcmp(v->dtype, "F32") == 0; j++) {
                if (strcmp(all[j].model, v->model) != 0 || strcmp(all[j].dtype, "BF16") != 0) { continue; }
                fmt(path, sizeof(path), "%s/%s", dir, all[j].name);
                HfGpt2Config tc;
                hf_gpt2_read_config(path, &tc);
                if (!same_config(&tc, &hc)) { die("%s: not the model of %s", path, v->name); }
                hf_gpt2_load(path, &tc, ref, Vp);
                fmt(name, sizeof(name), "%s_bf16/= torch (%s)", v->name, all[j].name);
                check_exact(name, back, ref, N);
                break;
            }
        }
        free(ref);
        // our logits of the export, for --compare against PyTorch's
        memcpy(model.params_memory, back, N * sizeof(float));
        gpt_forward(&model, lg.tokens, NULL, lg.B, lg.T);
        fmt(path, sizeof(path), "%s/c_logits.bin", edir);
        logits_write(path, &lg, model.acts.logits, Vp);
    }
    free(orig);
    free(back);
    logits_free(&lg);
    gpt_free(&model);
}

// PyTorch's logits of our exports (dev/hf_gpt2.py --read wrote DIR/export/*/torch_logits.bin)
static void compare_exports(const char* dir, const Variant* v, int n) {
    printf("== exports read by PyTorch\n");
    for (int i = 0; i < n; i++) {
        for (int bf16 = 0; bf16 < 2; bf16++) {
            char path[4200], name[128];
            const char* kind = bf16 ? "bf16" : "f32";
            Logits ours, torch_, orig;
            fmt(path, sizeof(path), "%s/export/%s_%s/c_logits.bin", dir, v[i].name, kind);
            logits_read(&ours, path);
            fmt(path, sizeof(path), "%s/export/%s_%s/torch_logits.bin", dir, v[i].name, kind);
            logits_read(&torch_, path);
            size_t BT = (size_t)ours.B * ours.T;
            if (torch_.B != ours.B || torch_.T != ours.T || torch_.V != ours.V ||
                memcmp(torch_.tokens, ours.tokens, BT * sizeof(int)) != 0) {
                die("%s: not the batch of c_logits.bin", path);
            }
            fmt(name, sizeof(name), "%s_%s/torch logits", v[i].name, kind);
            check_close(name, ours.logits, torch_.logits, BT, (size_t)ours.V, (size_t)ours.V);
            if (!bf16) { // the same weights as the original file: PyTorch must give the same bits
                fmt(path, sizeof(path), "%s/%s/logits.bin", dir, v[i].name);
                logits_read(&orig, path);
                if (orig.B != ours.B || orig.T != ours.T || orig.V != ours.V) { die("%s: another batch", path); }
                fmt(name, sizeof(name), "%s_f32/torch = original", v[i].name);
                check_exact(name, torch_.logits, orig.logits, BT * ours.V);
                logits_free(&orig);
            }
            logits_free(&ours);
            logits_free(&torch_);
        }
    }
}

// GPT-2's real sizes (d12 .. d48) through save and load: random weights of the descriptor, saved
// F32 and BF16 under DIR, read back (config.json, and without it from the shapes), compared, timed.
// A benchmark as much as a check: not part of dev/test_safetensors.sh (d48 is a 6.2 GB file).
static void roundtrip(const char* desc, const char* dir) {
    GPT model;
    gpt_build_from_descriptor(&model, desc, 1337);
    const GPTConfig* gc = &model.config;
    HfGpt2Config hc;
    hc.maxT = gc->max_seq_len; hc.V = gc->vocab_size; hc.L = gc->num_layers; hc.NH = gc->num_heads; hc.C = gc->channels;
    size_t N = model.num_parameters;
    printf("== %s round trip: %zu parameters\n", desc, N);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) { die("%s: cannot create (%s)", dir, strerror(errno)); }
    float* back = (float*)malloc_or_die(N * sizeof(float));
    for (int bf16 = 0; bf16 < 2; bf16++) {
        char edir[4200], name[128], cfg[4200], moved[4200];
        fmt(edir, sizeof(edir), "%s/%s_%s", dir, desc, bf16 ? "bf16" : "f32");
        memset(back, 0xff, N * sizeof(float)); // NaNs (and the pages touched, so the load is timed alone)
        double t0 = wall_seconds();
        hf_gpt2_save(edir, &hc, model.params_memory, gc->padded_vocab_size, bf16, 1);
        double t1 = wall_seconds();
        HfGpt2Config rc;
        hf_gpt2_read_config(edir, &rc);
        hf_gpt2_load(edir, &rc, back, gc->padded_vocab_size);
        double t2 = wall_seconds();
        double mb = (double)(N - (size_t)(gc->padded_vocab_size - gc->vocab_size) * gc->channels) * (bf16 ? 2 : 4) / 1e6;
        printf("%s: save %.0f MB in %.2f s (%.0f MB/s), load in %.2f s (%.0f MB/s)\n", edir, mb, t1 - t0,
               mb / (t1 - t0), t2 - t1, mb / (t2 - t1));
        fmt(name, sizeof(name), "%s_%s/config", desc, bf16 ? "bf16" : "f32");
        HfGpt2Config other = hc;
        other.L++;
        verdict(name, same_config(&rc, &hc), !same_config(&rc, &other), "config.json read back = the model's");
        float* ref = (float*)malloc_or_die(N * sizeof(float));
        if (bf16) { for (size_t i = 0; i < N; i++) { uint32_t u = (uint32_t)bf16_reference(model.params_memory[i]) << 16; memcpy(&ref[i], &u, 4); } }
        else { memcpy(ref, model.params_memory, N * sizeof(float)); }
        fmt(name, sizeof(name), "%s_%s/%s", desc, bf16 ? "bf16" : "f32", bf16 ? "round to nearest even" : "round trip");
        check_exact(name, back, ref, N);
        free(ref);
        // without config.json: the config from the shapes and GPT-2's head count for C
        fmt(cfg, sizeof(cfg), "%s/config.json", edir);
        fmt(moved, sizeof(moved), "%s/config.json.moved", edir);
        if (rename(cfg, moved) != 0) { die("%s: cannot rename (%s)", cfg, strerror(errno)); }
        hf_gpt2_read_config(edir, &rc);
        if (rename(moved, cfg) != 0) { die("%s: cannot rename (%s)", moved, strerror(errno)); }
        fmt(name, sizeof(name), "%s_%s/inferred config", desc, bf16 ? "bf16" : "f32");
        verdict(name, same_config(&rc, &hc), !same_config(&rc, &other), "from the shapes = the model's");
    }
    free(back);
    gpt_free(&model);
}

int main(int argc, char** argv) {
    const char* usage = "usage: ./test_safetensors [--corrupt NAME] [--compare] DIR | --load PATH | --roundtrip DESC DIR"
                        " | --trainer FLAG...";
    const char* dir = NULL;
    int compare = 0;
    if (argc > 1 && strcmp(argv[1], "--trainer") == 0) { return train_main(argc - 1, argv + 1, &cpu_backend); }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--corrupt") == 0 && i + 1 < argc) { g_corrupt = argv[++i]; }
        else if (strcmp(argv[i], "--compare") == 0) { compare = 1; }
        else if (strcmp(argv[i], "--load") == 0 && i + 1 < argc) {
            const char* path = argv[++i];
            GPT model;
            HfGpt2Config hc;
            load_model(&model, &hc, path);
            printf("%s: L=%d NH=%d C=%d maxT=%d V=%d, %zu parameters\n", path, hc.L, hc.NH, hc.C, hc.maxT, hc.V,
                   model.num_parameters);
            gpt_free(&model);
            return 0;
        }
        else if (strcmp(argv[i], "--roundtrip") == 0 && i + 2 < argc) {
            roundtrip(argv[i + 1], argv[i + 2]);
            printf("\n%d passed, %d failed\n", g_passed, g_failed);
            return g_failed == 0 ? 0 : 1;
        }
        else if (argv[i][0] == '-' || dir != NULL) { die("%s: unexpected argument (%s)", argv[i], usage); }
        else { dir = argv[i]; }
    }
    if (dir == NULL) { die("%s", usage); }
    Variant v[32];
    int n = read_variants(dir, v, 32);
    if (compare) {
        compare_exports(dir, v, n);
    } else {
        test_units();
        for (int i = 0; i < n; i++) { test_variant(dir, &v[i], v, n); }
    }
    printf("\n%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
