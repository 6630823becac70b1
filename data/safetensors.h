// safetensors.h: Hugging Face's safetensors format, and GPT-2 checkpoints in it, as a header-only
// library.
//
// What it is: a strict reader and a writer of safetensors files (the format of
// huggingface/safetensors), and on top of them the mapping between a Hugging Face GPT-2
// checkpoint (openai-community/gpt2, -medium, -large, -xl: model.safetensors + config.json) and
// the flat parameter block of train_gpt.c, in both directions.
// What it is not: a general tensor library. It reads F32, BF16 and F16 tensors (converted exactly
// to float) and writes F32 and BF16; it does not map files into memory, and it knows no model but
// GPT-2. It does not depend on train_gpt.c: the GPT-2 functions take plain arrays and a small
// config struct, and the parameter order is its own table (HF_GPT2_PARAMS), which
// dev/test_safetensors.c holds against train_gpt.c's GPT_PARAMETERS.
//
// The file format (huggingface/safetensors, its README's "Format"):
//   8 bytes   N, little-endian uint64: the length of the header
//   N bytes   UTF-8 JSON, one object: {"NAME": {"dtype": "F32", "shape": [d0, d1, ...],
//             "data_offsets": [begin, end]}, ..., optionally "__metadata__": {string: string}};
//             offsets count bytes from the first byte after the header, end is one past the last
//   the rest  the data section: every tensor row-major, little-endian
// Non-obvious rules:
// - Every input file is untrusted. N is checked against a bound and against the file size before
//   anything is allocated or read; every tensor's dtype and shape must give exactly end - begin
//   bytes (products checked for overflow); every range must lie inside the data section; and, as
//   the reference implementation requires, the ranges must tile the data section exactly: no
//   overlap, no hole, nothing after the last tensor. Any violation is one line "error: FILE: ..."
//   naming the tensor (die), never a crash and never a partly loaded model.
// - The header is parsed with Jansson (Debian's libjansson-dev; link with -ljansson), not a
//   hand-written parser: JSON has enough corner cases (escapes, surrogates, number syntax,
//   nesting depth) that a small, well-kept and fuzzed library is the safer place for them. It is
//   used strictly: JSON_REJECT_DUPLICATES (the format forbids duplicate keys, and two entries for
//   one name would make "which tensor is this" ambiguous); after the object only spaces (0x20),
//   the format's padding, may follow (Jansson would also pass tabs and newlines); no
//   JSON_DECODE_ANY (the header must be an object); no JSON_ALLOW_NUL (a NUL inside a name would
//   cut it short in C). Numbers must be integers (a real such as 8.0 is refused). Before Jansson
//   sees the header, its cost is bounded: at most ST_MAX_HEADER_ITEMS values and keys, no string
//   or number longer than ST_MAX_TOKEN (st_check_header_cost: a tree of small allocations of
//   ~40-250 bytes per value of 3 bytes of text made 99 MB of "{}," cost 7.6 GB).
// - Writing goes to PATH.tmp.PID, then rename(): an interrupted save never destroys a good file.
//   The header is padded with spaces to a multiple of 8 bytes (as the reference writer does), so
//   the data section starts 8-byte aligned. BF16 is rounded to nearest, ties to even.
// - An export (hf_gpt2_save) is two files that only make sense together: both go in or neither
//   does, and an existing export is replaced only when the caller says so (hf_gpt2_save's comment
//   says how, and what window remains).
// - GPT-2's Hugging Face layout differs from ours in three ways: its four matrices are Conv1D
//   weights stored (in, out), ours are (out, in); its wte has V rows, ours Vp (rows V..Vp-1 are 0);
//   its per-layer tensors are separate ("h.3.ln_1.weight"), ours are stacked over L.
// - The library compiles as C11 and as C++ (g++, nvcc): casts on malloc, no VLAs, no designated
//   initializers. Every function is static inline. It assumes a little-endian host, as the format
//   does (checked at compile time).

#ifndef SAFETENSORS_H
#define SAFETENSORS_H

#include <errno.h>     // provides: errno, EEXIST, EINTR
#include <math.h>      // provides: isfinite, fabs
#include <stdint.h>    // provides: uint16_t, uint32_t, uint64_t, UINT64_MAX
#include <stdio.h>     // provides: FILE, fopen, fwrite, snprintf, rename, remove
#include <stdlib.h>    // provides: malloc, calloc, free, qsort, atexit
#include <string.h>    // provides: memcpy, memcmp, strcmp, strlen, strerror
#include <sys/stat.h>  // provides: stat, lstat, mkdir, chmod, S_ISDIR
#include <dirent.h>    // provides: opendir, readdir (is an export's directory empty?)
#include <fcntl.h>     // provides: open, O_RDONLY (fsync of a directory)
#include <unistd.h>    // provides: pread, fsync, getpid, readlink, link, unlink, rmdir
#include "../gptc/utils.h" // provides: die (one line "error: ...", exit 1), open_input, read_fd

// A Hugging Face GPT-2 config: context, vocabulary, layers, heads, channels
typedef struct { int maxT, V, L, NH, C; } HfGpt2Config;

// Whether path names a Hugging Face checkpoint: a .safetensors file (its config.json beside it), or a
// directory holding model.safetensors + config.json. (Also in builds without Jansson, which then
// refuse it by name.)
static inline int hf_gpt2_is_path(const char* path) {
    size_t n = strlen(path);
    struct stat sb;
    return (n >= 12 && strcmp(path + n - 12, ".safetensors") == 0) || (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode));
}

#ifndef USE_JANSSON
// Built without Jansson (Debian's libjansson-dev): safetensors are neither read nor written, and
// the two entry points say how to get them.
static inline void hf_gpt2_read_config(const char* path, HfGpt2Config* cfg) {
    (void)cfg;
    die("-e %s: this build reads no safetensors (it was built without Jansson: apt-get install "
        "libjansson-dev, then make)", path);
}
static inline void hf_gpt2_check_size(const char* path, const HfGpt2Config* c, size_t stored) {
    (void)path; (void)c; (void)stored;
}
static inline void hf_gpt2_load(const char* path, const HfGpt2Config* cfg, float* params, int Vp) {
    (void)path; (void)cfg; (void)params; (void)Vp;
}
static inline void hf_gpt2_save(const char* dir, const HfGpt2Config* cfg, const float* params, int Vp, int bf16,
                                int overwrite) {
    (void)cfg; (void)params; (void)Vp; (void)bf16; (void)overwrite;
    die("--export %s: this build writes no safetensors (it was built without Jansson: apt-get install "
        "libjansson-dev, then make)", dir);
}
#else
#include <jansson.h>   // provides: json_loadb, json_dumps, json_t and its accessors (-ljansson)

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.h reads and writes little-endian data in place: a big-endian host needs byte swaps"
#endif

// The reference implementation refuses headers over 100 MB, and so do we: GPT-2 XL's header is
// ~60 KB (628 entries, mask buffers included). The length alone does not bound what parsing
// costs (JSON values of 2 or 3 bytes each cost Jansson 40-250 bytes), so the header's items and
// its longest token are bounded too (st_check_header_cost). Within these bounds a header costs at
// most ~2x its length (the text and Jansson's copies of its strings) plus ~30 MB for the values.
#define ST_MAX_HEADER 100000000ULL
#define ST_MAX_HEADER_ITEMS (1 << 18) // values and keys: a tensor's entry has 10-14, GPT-2 XL ~7,800
#define ST_MAX_TOKEN (1 << 20)         // bytes of one string or number: GPT-2's names are < 40
#define ST_MAX_DIMS 8          // GPT-2 needs 4 (the attention-mask buffers); numpy allows 32
#define ST_CHUNK ((size_t)1 << 16) // elements converted per block when reading or writing

// dtypes: the three readable as float, and everything else the format defines
enum { ST_F32 = 0, ST_BF16 = 1, ST_F16 = 2, ST_OTHER = 3 };

typedef struct {
    char* name;
    char dtype_name[12];        // as written in the file: "F32", "BF16", "I64", ...
    int dtype;                  // ST_F32, ST_BF16, ST_F16, or ST_OTHER (valid, not readable)
    int ndim;
    uint64_t shape[ST_MAX_DIMS];
    uint64_t numel;             // product of shape (1 for a scalar, shape [])
    uint64_t begin, end;        // byte range in the data section
} StTensor;

typedef struct {
    char* path;
    int fd;
    uint64_t file_size;
    uint64_t data_start;        // 8 + N
    uint64_t data_size;         // file_size - data_start
    StTensor* tensors; int n;   // in the header's order
} SafeTensors;

// One tensor to write: `data` is float32, row-major in `shape`; with transpose (ndim 2 only) it
// is row-major (shape[1], shape[0]) and is written transposed.
typedef struct {
    const char* name;
    int dtype;                  // ST_F32 or ST_BF16
    int ndim;
    uint64_t shape[ST_MAX_DIMS];
    const float* data;
    int transpose;
} StWriteTensor;

// ----------------------------------------------------------------------------
// Small helpers

// A name from an untrusted header, made safe to print on one line: control bytes as \xNN, and
// long names cut (the JSON decoder has already refused invalid UTF-8).
static inline const char* st_show(const char* s, char* buf, size_t size) {
    size_t o = 0;
    for (size_t i = 0; s[i] != '\0' && o + 8 < size; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i >= 120) { memcpy(buf + o, "...", 3); o += 3; break; }
        if (c < 0x20 || c == 0x7f) { o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c); }
        else { buf[o++] = (char)c; }
    }
    buf[o] = '\0';
    return buf;
}

static inline uint64_t st_mul(uint64_t a, uint64_t b, const char* path, const char* what) {
    if (a != 0 && b > UINT64_MAX / a) die("%s: %s: size overflows (%llu x %llu)", path, what,
                                              (unsigned long long)a, (unsigned long long)b);
    return a * b;
}

static inline void* st_malloc(size_t bytes) {
    void* p = malloc(bytes > 0 ? bytes : 1);
    if (p == NULL) die("out of memory allocating %zu bytes", bytes);
    return p;
}

static inline char* st_strdup(const char* s) {
    size_t n = strlen(s) + 1;
    char* d = (char*)st_malloc(n);
    memcpy(d, s, n);
    return d;
}

// exactly n bytes at offset off (the file was measured at open: a short read means it shrank)
static inline void st_pread(int fd, void* buf, size_t n, uint64_t off, const char* path) {
    size_t got = 0;
    while (got < n) {
        size_t want = n - got < ((size_t)1 << 30) ? n - got : ((size_t)1 << 30);
        ssize_t r = pread(fd, (char*)buf + got, want, (off_t)(off + got));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) die("%s: read error: %s", path, strerror(errno));
        if (r == 0) die("%s: truncated while reading (the file shrank after it was opened?)", path);
        got += (size_t)r;
    }
}

// Conversions. bf16 is the top half of a float32, so widening is a shift. f16 (IEEE binary16) has
// 5 exponent bits: normal numbers re-bias the exponent, subnormals are mant * 2^-24 (exact in
// float), inf and NaN keep their meaning.
static inline float st_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, mant = h & 0x3ffu, u;
    if (exp == 0) {
        float f = (float)mant * (1.0f / 16777216.0f); // 2^-24: mant has 10 bits, exact
        return sign ? -f : f;
    }
    if (exp == 31) u = sign | 0x7f800000u | (mant << 13); // inf, or NaN with its payload
    else u = sign | ((exp - 15 + 127) << 23) | (mant << 13);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// Round to nearest, ties to even: add just under half a bf16 ulp, plus one when the kept half is
// odd, and cut. A carry out of the mantissa bumps the exponent, as rounding up must, and the
// largest floats round to inf. NaN is kept a (quiet) NaN instead, with its sign.
static inline uint16_t st_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

// dst[r][c] = src[c][r] for r < nr, c < nc (leading dimensions ld_dst, ld_src), in 32 x 32 tiles:
// a tile's source rows stay in cache while its destination rows are written in order
static inline void st_transpose(float* dst, size_t ld_dst, const float* src, size_t ld_src, size_t nr, size_t nc) {
    for (size_t r0 = 0; r0 < nr; r0 += 32) {
        size_t r1 = r0 + 32 < nr ? r0 + 32 : nr;
        for (size_t c0 = 0; c0 < nc; c0 += 32) {
            size_t c1 = c0 + 32 < nc ? c0 + 32 : nc;
            for (size_t r = r0; r < r1; r++) {
                for (size_t c = c0; c < c1; c++) dst[r * ld_dst + c] = src[c * ld_src + r];
            }
        }
    }
}

// ----------------------------------------------------------------------------
// Reading

typedef struct { const char* name; int size; int dtype; } StDtype;
// the format's dtypes with their element sizes (huggingface/safetensors' Dtype); one missing here
// (a newer, sub-byte type) is refused as unknown, since its size cannot be checked
static const StDtype ST_DTYPES[] = {
    {"F32", 4, ST_F32}, {"BF16", 2, ST_BF16}, {"F16", 2, ST_F16}, {"F64", 8, ST_OTHER},
    {"BOOL", 1, ST_OTHER}, {"U8", 1, ST_OTHER}, {"I8", 1, ST_OTHER}, {"F8_E5M2", 1, ST_OTHER},
    {"F8_E4M3", 1, ST_OTHER}, {"I16", 2, ST_OTHER}, {"U16", 2, ST_OTHER}, {"I32", 4, ST_OTHER},
    {"U32", 4, ST_OTHER}, {"I64", 8, ST_OTHER}, {"U64", 8, ST_OTHER},
};

static inline int st_dtype_size(int dtype) { return dtype == ST_F32 ? 4 : 2; } // readable ones

// a JSON number that must be a non-negative integer
static inline uint64_t st_json_uint(const json_t* v, const char* path, const char* name, const char* what) {
    char nb[160];
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        die("%s: tensor '%s': %s must be non-negative integers", path, st_show(name, nb, sizeof(nb)), what);
    }
    return (uint64_t)json_integer_value(v);
}

// one header entry: {"dtype": ..., "shape": [...], "data_offsets": [b, e]}, nothing else
static inline void st_parse_entry(StTensor* t, const char* name, const json_t* v, const SafeTensors* st) {
    const char* path = st->path;
    char nb[160], what[180];
    const char* shown = st_show(name, nb, sizeof(nb));
    snprintf(what, sizeof(what), "tensor '%s'", shown);
    if (!json_is_object(v)) die("%s: tensor '%s': entry is not a JSON object", path, shown);
    const json_t* dtype = json_object_get(v, "dtype");
    const json_t* shape = json_object_get(v, "shape");
    const json_t* offs = json_object_get(v, "data_offsets");
    if (dtype == NULL || shape == NULL || offs == NULL || json_object_size(v) != 3) {
        die("%s: tensor '%s': entry must have exactly the keys dtype, shape and data_offsets", path, shown);
    }
    const char* dname = json_is_string(dtype) ? json_string_value(dtype) : NULL;
    const StDtype* dt = NULL;
    for (size_t i = 0; dname != NULL && i < sizeof(ST_DTYPES) / sizeof(ST_DTYPES[0]); i++) {
        if (strcmp(dname, ST_DTYPES[i].name) == 0) dt = &ST_DTYPES[i];
    }
    if (dt == NULL) {
        char db[64];
        die("%s: tensor '%s': unknown dtype %s%s%s", path, shown, dname ? "'" : "",
                dname ? st_show(dname, db, sizeof(db)) : "(not a string)", dname ? "'" : "");
    }
    if (!json_is_array(shape) || json_array_size(shape) > ST_MAX_DIMS) {
        die("%s: tensor '%s': shape must be an array of at most %d dimensions", path, shown, ST_MAX_DIMS);
    }
    if (!json_is_array(offs) || json_array_size(offs) != 2) {
        die("%s: tensor '%s': data_offsets must be an array [begin, end]", path, shown);
    }
    t->name = st_strdup(name);
    snprintf(t->dtype_name, sizeof(t->dtype_name), "%s", dt->name);
    t->dtype = dt->dtype;
    t->ndim = (int)json_array_size(shape);
    t->numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        t->shape[d] = st_json_uint(json_array_get(shape, (size_t)d), path, name, "shape dimensions");
        t->numel = st_mul(t->numel, t->shape[d], path, what);
    }
    uint64_t bytes = st_mul(t->numel, (uint64_t)dt->size, path, what);
    t->begin = st_json_uint(json_array_get(offs, 0), path, name, "data_offsets");
    t->end = st_json_uint(json_array_get(offs, 1), path, name, "data_offsets");
    if (t->end < t->begin) {
        die("%s: tensor '%s': data_offsets [%llu, %llu] end before they begin", path, shown,
                (unsigned long long)t->begin, (unsigned long long)t->end);
    }
    if (t->end - t->begin != bytes) {
        char sh[160];
        size_t o = 0;
        sh[0] = '\0';
        for (int d = 0; d < t->ndim && o < sizeof(sh) - 24; d++) {
            o += (size_t)snprintf(sh + o, sizeof(sh) - o, "%s%llu", d ? ", " : "", (unsigned long long)t->shape[d]);
        }
        die("%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes, but %s of shape [%s] needs %llu",
                path, shown, (unsigned long long)t->begin, (unsigned long long)t->end,
                (unsigned long long)(t->end - t->begin), dt->name, sh, (unsigned long long)bytes);
    }
    if (t->end > st->data_size) {
        die("%s: tensor '%s': data_offsets [%llu, %llu] run past the end of the data section (%llu bytes; "
                "truncated file?)", path, shown, (unsigned long long)t->begin, (unsigned long long)t->end,
                (unsigned long long)st->data_size);
    }
}

static inline int st_cmp_range(const void* a, const void* b) {
    const StTensor* x = *(const StTensor* const*)a;
    const StTensor* y = *(const StTensor* const*)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

// the ranges, sorted, must follow each other without overlap or gap and end at the data's end
static inline void st_check_tiling(const SafeTensors* st) {
    const StTensor** order = (const StTensor**)st_malloc((size_t)st->n * sizeof(StTensor*));
    for (int i = 0; i < st->n; i++) order[i] = &st->tensors[i];
    qsort(order, (size_t)st->n, sizeof(StTensor*), st_cmp_range);
    uint64_t at = 0;
    const StTensor* prev = NULL;
    for (int i = 0; i < st->n; i++) {
        const StTensor* t = order[i];
        char a[160], b[160];
        if (t->begin < at) {
            die("%s: tensors '%s' [%llu, %llu) and '%s' [%llu, %llu) overlap", st->path,
                    st_show(prev->name, a, sizeof(a)), (unsigned long long)prev->begin,
                    (unsigned long long)prev->end, st_show(t->name, b, sizeof(b)),
                    (unsigned long long)t->begin, (unsigned long long)t->end);
        }
        if (t->begin > at) {
            die("%s: bytes [%llu, %llu) of the data section, before tensor '%s', belong to no tensor",
                    st->path, (unsigned long long)at, (unsigned long long)t->begin, st_show(t->name, a, sizeof(a)));
        }
        at = t->end;
        prev = t;
    }
    if (at != st->data_size) {
        die("%s: the data section has %llu bytes after the last tensor (%llu of %llu used): not a "
                "safetensors file as written, or data appended", st->path,
                (unsigned long long)(st->data_size - at), (unsigned long long)at, (unsigned long long)st->data_size);
    }
    free(order);
}

// What parsing the header will cost, bounded before Jansson sees it (see ST_MAX_HEADER): the items
// (every value and key but the first follows a '{', '[', ',' or ':' outside strings, so those
// count them) and the longest string, number or literal. A byte count, not a parse: a header that
// passes can still be invalid JSON, which Jansson then refuses.
static inline void st_check_header_cost(const char* text, size_t n, const char* path) {
    size_t items = 0, run = 0; // run: bytes of the current string, number or literal
    int in_string = 0;
    for (size_t i = 0; i < n; i++) {
        char c = text[i];
        if (in_string) {
            if (c == '"') { in_string = 0; run = 0; continue; }
            if (c == '\\') i++; // an escaped byte (a '"' too) belongs to the string
        } else if (c == '"') {
            in_string = 1; run = 0; continue;
        } else if (c == '{' || c == '[' || c == ',' || c == ':') {
            if (++items > ST_MAX_HEADER_ITEMS) {
                die("%s: header holds more than %d JSON items (values and keys; GPT-2's has ~13 a tensor): "
                        "refused before parsing", path, ST_MAX_HEADER_ITEMS);
            }
            run = 0; continue;
        } else if (c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            run = 0; continue;
        }
        if (++run > ST_MAX_TOKEN) {
            die("%s: header holds a string or number of more than %d bytes (at byte %zu): refused before "
                    "parsing", path, ST_MAX_TOKEN, i);
        }
    }
}

// Opens and checks a file; every tensor's place in it is known afterwards, nothing else is read.
static inline void st_open(SafeTensors* st, const char* path) {
    memset(st, 0, sizeof(*st));
    size_t size;
    int fd = open_input(path, &size);
    if (fd < 0) die("%s: cannot open: %s", path, strerror(ENOENT));
    st->path = st_strdup(path);
    st->fd = fd;
    st->file_size = size;
    if (size < 8) die("%s: %zu bytes: too short for a safetensors file (8-byte header length first)", path, size);
    unsigned char lenb[8];
    st_pread(fd, lenb, 8, 0, path);
    uint64_t N = 0;
    for (int i = 7; i >= 0; i--) N = (N << 8) | lenb[i];
    if (N > ST_MAX_HEADER) {
        die("%s: header length %llu is more than the limit %llu (not a safetensors file?)", path,
                (unsigned long long)N, (unsigned long long)ST_MAX_HEADER);
    }
    if (N > size - 8) {
        die("%s: header length %llu runs past the end of the file (%zu bytes; truncated, or not a "
                "safetensors file)", path, (unsigned long long)N, size);
    }
    if (N < 2) die("%s: header length %llu is too short for a JSON object", path, (unsigned long long)N);
    st->data_start = 8 + N;
    st->data_size = size - st->data_start;
    char* text = (char*)st_malloc((size_t)N);
    st_pread(fd, text, (size_t)N, 8, path);
    st_check_header_cost(text, (size_t)N, path);
    json_error_t err;
    // JSON_DISABLE_EOF_CHECK: Jansson stops after the object (err.position), and we check the rest
    json_t* root = json_loadb(text, (size_t)N, JSON_REJECT_DUPLICATES | JSON_DISABLE_EOF_CHECK, &err);
    if (root == NULL) {
        char eb[200];
        die("%s: header is not valid JSON: %s (at byte %d of the header)", path,
                st_show(err.text, eb, sizeof(eb)), err.position);
    }
    for (size_t i = (size_t)err.position; i < (size_t)N; i++) {
        if (text[i] != ' ') {
            die("%s: header byte %zu, after its JSON object, is 0x%02x: the format pads the header with "
                    "spaces (0x20) only", path, i, (unsigned)(unsigned char)text[i]);
        }
    }
    free(text);
    if (!json_is_object(root)) die("%s: header is not a JSON object", path);
    size_t count = json_object_size(root); // < ST_MAX_HEADER_ITEMS
    st->tensors = (StTensor*)calloc(count > 0 ? count : 1, sizeof(StTensor));
    if (st->tensors == NULL) die("out of memory for %zu tensor entries", count);
    const char* key;
    json_t* value;
    json_object_foreach(root, key, value) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(value)) die("%s: __metadata__ is not a JSON object", path);
            const char* mk;
            json_t* mv;
            json_object_foreach(value, mk, mv) {
                char mb[160];
                if (!json_is_string(mv)) {
                    die("%s: __metadata__ '%s' is not a string (metadata maps strings to strings)", path,
                            st_show(mk, mb, sizeof(mb)));
                }
            }
            continue;
        }
        st_parse_entry(&st->tensors[st->n], key, value, st);
        st->n++;
    }
    json_decref(root);
    st_check_tiling(st);
}

static inline void st_close(SafeTensors* st) {
    if (st->fd >= 0) close(st->fd);
    for (int i = 0; i < st->n; i++) free(st->tensors[i].name);
    free(st->tensors);
    free(st->path);
    memset(st, 0, sizeof(*st));
    st->fd = -1;
}

static inline const StTensor* st_find(const SafeTensors* st, const char* name) {
    for (int i = 0; i < st->n; i++) {
        if (strcmp(st->tensors[i].name, name) == 0) return &st->tensors[i];
    }
    return NULL;
}

// Elements [first, first + count) of a tensor, as float (F32 copied, BF16 and F16 widened exactly).
static inline void st_read_f32_range(const SafeTensors* st, const StTensor* t, uint64_t first, size_t count, float* out) {
    char nb[160];
    if (t->dtype == ST_OTHER) {
        die("%s: tensor '%s' is %s; only F32, BF16 and F16 are read", st->path,
                st_show(t->name, nb, sizeof(nb)), t->dtype_name);
    }
    if (first > t->numel || count > t->numel - first) {
        die("%s: tensor '%s': elements [%llu, +%zu) are outside its %llu", st->path,
                st_show(t->name, nb, sizeof(nb)), (unsigned long long)first, count, (unsigned long long)t->numel);
    }
    uint64_t esize = (uint64_t)st_dtype_size(t->dtype);
    uint64_t off = st->data_start + t->begin + first * esize;
    if (t->dtype == ST_F32) { st_pread(st->fd, out, count * 4, off, st->path); return; }
    uint16_t* buf = (uint16_t*)st_malloc(ST_CHUNK * sizeof(uint16_t));
    for (size_t done = 0; done < count; done += ST_CHUNK) {
        size_t m = count - done < ST_CHUNK ? count - done : ST_CHUNK;
        st_pread(st->fd, buf, m * 2, off + done * 2, st->path);
        if (t->dtype == ST_BF16) { for (size_t i = 0; i < m; i++) out[done + i] = st_bf16_to_f32(buf[i]); }
        else { for (size_t i = 0; i < m; i++) out[done + i] = st_f16_to_f32(buf[i]); }
    }
    free(buf);
}

static inline void st_read_f32(const SafeTensors* st, const StTensor* t, float* out) {
    st_read_f32_range(st, t, 0, (size_t)t->numel, out);
}

// ----------------------------------------------------------------------------
// Writing

static inline void st_fwrite(FILE* f, const void* p, size_t n, const char* tmp) {
    if (n > 0 && fwrite(p, 1, n, f) != n) {
        int e = errno;
        fclose(f);
        remove(tmp);
        die("%s: write failed (%s)", tmp, strerror(e));
    }
}

// PATH.tmp.PID, written in full, synced, then renamed over PATH
static inline FILE* st_open_tmp(const char* path, char* tmp, size_t size) {
    if (snprintf(tmp, size, "%s.tmp.%ld", path, (long)getpid()) >= (int)size) die("%s: path too long", path);
    FILE* f = fopen(tmp, "wb");
    if (f == NULL) die("%s: cannot create (%s)", tmp, strerror(errno));
    return f;
}
// path NULL: the temp file is left complete and synced, for the caller to rename
static inline void st_finish_tmp(FILE* f, const char* tmp, const char* path) {
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        int e = errno;
        fclose(f);
        remove(tmp);
        die("%s: write failed (%s)", tmp, strerror(e));
    }
    if (fclose(f) != 0) { int e = errno; remove(tmp); die("%s: write failed (%s)", tmp, strerror(e)); }
    if (path != NULL && rename(tmp, path) != 0) die("%s: cannot rename to %s (%s)", tmp, path, strerror(errno));
}

static inline json_t* st_json_checked(json_t* v) {
    if (v == NULL) die("out of memory building a JSON header");
    return v;
}
static inline void st_json_set(json_t* obj, const char* key, json_t* v) {
    if (json_object_set_new(obj, key, st_json_checked(v)) != 0) {
        die("cannot add '%s' to a JSON header (not UTF-8, or out of memory)", key);
    }
}
static inline void st_json_append(json_t* arr, json_t* v) {
    if (json_array_append_new(arr, st_json_checked(v)) != 0) die("out of memory building a JSON header");
}

// m floats as F32, or rounded to BF16 through `half` (ST_CHUNK elements)
static inline void st_write_block(FILE* f, const float* src, size_t m, int dtype, uint16_t* half, const char* tmp) {
    if (dtype == ST_F32) { st_fwrite(f, src, m * 4, tmp); return; }
    for (size_t k = 0; k < m; k++) half[k] = st_f32_to_bf16(src[k]);
    st_fwrite(f, half, m * 2, tmp);
}

// Writes tensors in the given order, converted from float32 to their dtype, to PATH.tmp.PID (its
// name in tmp), complete and synced; st_write renames it to PATH. metadata_json: NULL, or a JSON
// object of strings (e.g. {"format":"pt"}, which transformers requires) stored as __metadata__.
static inline void st_write_tmp(const char* path, char* tmp, size_t tmp_size, const StWriteTensor* tensors,
                                int n, const char* metadata_json) {
    json_t* root = st_json_checked(json_object());
    if (metadata_json != NULL) {
        json_error_t err;
        json_t* meta = json_loads(metadata_json, JSON_REJECT_DUPLICATES, &err);
        if (meta == NULL || !json_is_object(meta)) die("%s: metadata is not a JSON object: %s", path, metadata_json);
        const char* mk;
        json_t* mv;
        json_object_foreach(meta, mk, mv) {
            if (!json_is_string(mv)) die("%s: metadata value of '%s' is not a string", path, mk);
        }
        st_json_set(root, "__metadata__", meta);
    }
    uint64_t at = 0;
    uint64_t* bytes = (uint64_t*)st_malloc((size_t)(n > 0 ? n : 1) * sizeof(uint64_t));
    for (int i = 0; i < n; i++) {
        const StWriteTensor* t = &tensors[i];
        if (t->dtype != ST_F32 && t->dtype != ST_BF16) die("%s: tensor '%s': only F32 and BF16 are written", path, t->name);
        if (t->ndim < 0 || t->ndim > ST_MAX_DIMS || (t->transpose && t->ndim != 2)) {
            die("%s: tensor '%s': bad ndim %d%s", path, t->name, t->ndim, t->transpose ? " (transpose needs 2)" : "");
        }
        if (strcmp(t->name, "__metadata__") == 0 || json_object_get(root, t->name) != NULL) {
            die("%s: tensor name '%s' is used twice (or reserved)", path, t->name);
        }
        uint64_t numel = 1;
        json_t* shape = st_json_checked(json_array());
        for (int d = 0; d < t->ndim; d++) {
            numel = st_mul(numel, t->shape[d], path, t->name);
            st_json_append(shape, json_integer((json_int_t)t->shape[d]));
        }
        bytes[i] = st_mul(numel, t->dtype == ST_F32 ? 4 : 2, path, t->name);
        if (bytes[i] > (uint64_t)INT64_MAX - at) die("%s: the data section would pass 2^63 bytes", path);
        json_t* offs = st_json_checked(json_array());
        st_json_append(offs, json_integer((json_int_t)at));
        st_json_append(offs, json_integer((json_int_t)(at + bytes[i])));
        json_t* entry = st_json_checked(json_object());
        st_json_set(entry, "dtype", json_string(t->dtype == ST_F32 ? "F32" : "BF16"));
        st_json_set(entry, "shape", shape);
        st_json_set(entry, "data_offsets", offs);
        st_json_set(root, t->name, entry);
        at += bytes[i];
    }
    char* text = json_dumps(root, JSON_COMPACT);
    if (text == NULL) die("%s: cannot encode the header (a tensor name that is not UTF-8?)", path);
    json_decref(root);
    size_t len = strlen(text), padded = (len + 7) / 8 * 8;
    if (padded > ST_MAX_HEADER) die("%s: a header of %zu bytes would be past the readers' limit", path, padded);
    FILE* f = st_open_tmp(path, tmp, tmp_size);
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    st_fwrite(f, lenb, 8, tmp);
    st_fwrite(f, text, len, tmp);
    st_fwrite(f, "       ", padded - len, tmp); // at most 7 spaces
    free(text);
    // data: converted (and transposed) in blocks through one buffer, of at least one output row
    size_t buf_n = ST_CHUNK;
    for (int i = 0; i < n; i++) {
        if (tensors[i].transpose && tensors[i].shape[1] > buf_n) buf_n = (size_t)tensors[i].shape[1];
    }
    float* buf = (float*)st_malloc(buf_n * sizeof(float));
    uint16_t* half = (uint16_t*)st_malloc(ST_CHUNK * sizeof(uint16_t));
    for (int i = 0; i < n; i++) {
        const StWriteTensor* t = &tensors[i];
        uint64_t numel = bytes[i] / (t->dtype == ST_F32 ? 4 : 2);
        if (!t->transpose) {
            for (uint64_t c0 = 0; c0 < numel; c0 += ST_CHUNK) {
                size_t m = (size_t)(numel - c0 < ST_CHUNK ? numel - c0 : ST_CHUNK);
                st_write_block(f, t->data + c0, m, t->dtype, half, tmp);
            }
            continue;
        }
        // output row r is column r of the (cols, rows) source, gathered `step` rows at a time
        uint64_t rows = t->shape[0], cols = t->shape[1];
        uint64_t step = cols > 0 ? buf_n / cols : 1;
        for (uint64_t r0 = 0; r0 < rows; r0 += step) {
            uint64_t nr = rows - r0 < step ? rows - r0 : step;
            st_transpose(buf, (size_t)cols, t->data + r0, (size_t)rows, (size_t)nr, (size_t)cols);
            for (size_t k = 0; k < (size_t)(nr * cols); k += ST_CHUNK) { // `half` holds ST_CHUNK
                size_t m = (size_t)(nr * cols) - k < ST_CHUNK ? (size_t)(nr * cols) - k : ST_CHUNK;
                st_write_block(f, buf + k, m, t->dtype, half, tmp);
            }
        }
    }
    free(buf);
    free(half);
    free(bytes);
    st_finish_tmp(f, tmp, NULL);
}

static inline void st_write(const char* path, const StWriteTensor* tensors, int n, const char* metadata_json) {
    char tmp[4200];
    st_write_tmp(path, tmp, sizeof(tmp), tensors, n, metadata_json);
    if (rename(tmp, path) != 0) { int e = errno; remove(tmp); die("%s: cannot rename to %s (%s)", tmp, path, strerror(e)); }
}

// ----------------------------------------------------------------------------
// GPT-2 checkpoints of Hugging Face transformers (GPT2LMHeadModel)

// dimensions of the table below
enum { HD_1, HD_C, HD_3C, HD_4C, HD_V, HD_T };

// Our parameters in train_gpt.c's GPT_PARAMETERS order, with their Hugging Face names. `rows` x
// `cols` is one (layer's) tensor in OUR orientation; `conv1d` marks the four matrices that HF
// stores transposed, (in, out) = (cols, rows). wte has Vp rows here and V in the file.
typedef struct { const char* ours; const char* hf; int per_layer; int conv1d; int rows, cols; } HfGpt2Param;
static const HfGpt2Param HF_GPT2_PARAMS[16] = {
    {"wte",      "wte.weight",         0, 0, HD_V,  HD_C},
    {"wpe",      "wpe.weight",         0, 0, HD_T,  HD_C},
    {"ln1w",     "ln_1.weight",        1, 0, HD_C,  HD_1},
    {"ln1b",     "ln_1.bias",          1, 0, HD_C,  HD_1},
    {"qkvw",     "attn.c_attn.weight", 1, 1, HD_3C, HD_C},
    {"qkvb",     "attn.c_attn.bias",   1, 0, HD_3C, HD_1},
    {"attprojw", "attn.c_proj.weight", 1, 1, HD_C,  HD_C},
    {"attprojb", "attn.c_proj.bias",   1, 0, HD_C,  HD_1},
    {"ln2w",     "ln_2.weight",        1, 0, HD_C,  HD_1},
    {"ln2b",     "ln_2.bias",          1, 0, HD_C,  HD_1},
    {"fcw",      "mlp.c_fc.weight",    1, 1, HD_4C, HD_C},
    {"fcb",      "mlp.c_fc.bias",      1, 0, HD_4C, HD_1},
    {"fcprojw",  "mlp.c_proj.weight",  1, 1, HD_C,  HD_4C},
    {"fcprojb",  "mlp.c_proj.bias",    1, 0, HD_C,  HD_1},
    {"lnfw",     "ln_f.weight",        0, 0, HD_C,  HD_1},
    {"lnfb",     "ln_f.bias",          0, 0, HD_C,  HD_1},
};
#define HF_GPT2_NPARAMS 16
#define HF_GPT2_EOT 50256 // <|endoftext|>, GPT-2's bos and eos

static inline uint64_t hf_gpt2_dim(const HfGpt2Config* c, int code) {
    switch (code) {
    case HD_C: return (uint64_t)c->C;
    case HD_3C: return 3 * (uint64_t)c->C;
    case HD_4C: return 4 * (uint64_t)c->C;
    case HD_V: return (uint64_t)c->V;
    case HD_T: return (uint64_t)c->maxT;
    default: return 1;
    }
}

// The element count of each of our 16 tensors (sizes[k]); returns the total. Checks the config
// first: the numbers may come from an untrusted config.json.
static inline size_t hf_gpt2_layout(const HfGpt2Config* c, int Vp, size_t* sizes, const char* where) {
    if (c->maxT <= 0 || c->V <= 0 || c->L <= 0 || c->NH <= 0 || c->C <= 0 || Vp < c->V) {
        die("%s: bad GPT-2 config (maxT=%d V=%d L=%d NH=%d C=%d, padded V %d)", where, c->maxT, c->V,
                c->L, c->NH, c->C, Vp);
    }
    if (c->C % c->NH != 0) die("%s: n_embd C=%d is not divisible by n_head NH=%d", where, c->C, c->NH);
    uint64_t total = 0;
    for (int k = 0; k < HF_GPT2_NPARAMS; k++) {
        const HfGpt2Param* p = &HF_GPT2_PARAMS[k];
        uint64_t rows = k == 0 ? (uint64_t)Vp : hf_gpt2_dim(c, p->rows);
        uint64_t n = st_mul(st_mul(p->per_layer ? (uint64_t)c->L : 1, rows, where, p->ours),
                            hf_gpt2_dim(c, p->cols), where, p->ours);
        if (n > SIZE_MAX / 8 || total + n > SIZE_MAX / 8) die("%s: the model does not fit in memory", where);
        if (sizes != NULL) sizes[k] = (size_t)n;
        total += n;
    }
    return (size_t)total;
}

// PATH: a directory (PATH/model.safetensors, PATH/config.json) or a .safetensors file (its
// config.json is the one beside it)
static inline void hf_gpt2_paths(const char* path, char* st_path, char* cfg_path, size_t size) {
    struct stat sb;
    if (stat(path, &sb) != 0) die("%s: cannot open: %s", path, strerror(errno));
    int w;
    if (S_ISDIR(sb.st_mode)) {
        w = snprintf(st_path, size, "%s/model.safetensors", path);
        snprintf(cfg_path, size, "%s/config.json", path);
        struct stat s2;
        if (stat(st_path, &s2) != 0) {
            char idx[4200];
            snprintf(idx, sizeof(idx), "%s/model.safetensors.index.json", path);
            if (stat(idx, &s2) == 0) die("%s: a sharded checkpoint (model.safetensors.index.json): not supported", path);
        }
    } else {
        w = snprintf(st_path, size, "%s", path);
        const char* slash = strrchr(path, '/');
        if (slash == NULL) snprintf(cfg_path, size, "config.json");
        else snprintf(cfg_path, size, "%.*s/config.json", (int)(slash - path), path);
    }
    if (w < 0 || (size_t)w >= size) die("%s: path too long", path);
}

// "transformer." when the file names its tensors as GPT2LMHeadModel's state dict does, else ""
static inline const char* hf_gpt2_prefix(const SafeTensors* st) {
    return st_find(st, "transformer.wte.weight") != NULL ? "transformer." : "";
}

// an integer field of config.json in [1, 2^30]
static inline int hf_gpt2_cfg_int(const json_t* root, const char* key, const char* path) {
    const json_t* v = json_object_get(root, key);
    if (v == NULL) die("%s: no \"%s\" (a GPT-2 config.json has n_layer, n_head, n_embd, n_positions, vocab_size)", path, key);
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > (1 << 30)) {
        die("%s: \"%s\" must be an integer in [1, 2^30]", path, key);
    }
    return (int)json_integer_value(v);
}

// Reads the config of a checkpoint (PATH as for hf_gpt2_paths). From config.json when there is
// one, refusing settings that would make transformers compute something else than train_gpt.c;
// without it, from the tensor shapes, with the head count of the four GPT-2 sizes. "Without it"
// means no such name: a config.json that is there but cannot be read (a dangling symlink, as in a
// Hugging Face cache whose blob is missing; no permission) is an error, not a guess.
static inline void hf_gpt2_read_config(const char* path, HfGpt2Config* cfg) {
    char st_path[4200], cfg_path[4200];
    hf_gpt2_paths(path, st_path, cfg_path, sizeof(st_path));
    size_t size;
    int fd = open_input(cfg_path, &size); // dies on any error but "no such file"
    struct stat lsb;
    if (fd < 0 && lstat(cfg_path, &lsb) == 0) {
        char target[4200], tb[160];
        ssize_t n = readlink(cfg_path, target, sizeof(target) - 1);
        target[n > 0 ? n : 0] = '\0';
        die("%s: cannot open: a symbolic link to '%s', which does not exist (an incomplete download?)",
                cfg_path, st_show(target, tb, sizeof(tb)));
    }
    if (fd >= 0) {
        if (size > (1u << 24)) die("%s: %zu bytes is too large for a config.json", cfg_path, size);
        char* text = (char*)st_malloc(size);
        if (read_fd(fd, text, size, cfg_path) != size) die("%s: truncated while reading", cfg_path);
        close(fd);
        json_error_t err;
        json_t* root = json_loadb(text, size, JSON_REJECT_DUPLICATES, &err);
        free(text);
        if (root == NULL) {
            char eb[200];
            die("%s: not valid JSON: %s (line %d, column %d)", cfg_path, st_show(err.text, eb, sizeof(eb)),
                    err.line, err.column);
        }
        if (!json_is_object(root)) die("%s: not a JSON object", cfg_path);
        cfg->L = hf_gpt2_cfg_int(root, "n_layer", cfg_path);
        cfg->NH = hf_gpt2_cfg_int(root, "n_head", cfg_path);
        cfg->C = hf_gpt2_cfg_int(root, "n_embd", cfg_path);
        cfg->maxT = hf_gpt2_cfg_int(root, "n_positions", cfg_path);
        cfg->V = hf_gpt2_cfg_int(root, "vocab_size", cfg_path);
        // the settings of transformers' GPT2Config that change the function the model computes
        const json_t* v = json_object_get(root, "model_type");
        if (v != NULL && !(json_is_string(v) && strcmp(json_string_value(v), "gpt2") == 0)) {
            die("%s: model_type is not \"gpt2\"", cfg_path);
        }
        v = json_object_get(root, "activation_function");
        if (v != NULL && !(json_is_string(v) && (strcmp(json_string_value(v), "gelu_new") == 0 ||
                                                 strcmp(json_string_value(v), "gelu_pytorch_tanh") == 0))) {
            die("%s: activation_function is not \"gelu_new\" (the tanh GELU train_gpt.c computes)", cfg_path);
        }
        v = json_object_get(root, "layer_norm_epsilon");
        if (v != NULL && !(json_is_number(v) && fabs(json_number_value(v) - 1e-5) <= 1e-12)) {
            die("%s: layer_norm_epsilon is not 1e-5 (train_gpt.c's LayerNorm uses 1e-5)", cfg_path);
        }
        v = json_object_get(root, "n_inner");
        if (v != NULL && !json_is_null(v) && !(json_is_integer(v) && json_integer_value(v) == 4 * (json_int_t)cfg->C)) {
            die("%s: n_inner is not 4 * n_embd (train_gpt.c's MLP is 4C wide)", cfg_path);
        }
        const char* must_true[2] = {"scale_attn_weights", "tie_word_embeddings"};
        const char* must_false[3] = {"scale_attn_by_inverse_layer_idx", "add_cross_attention", "is_encoder_decoder"};
        for (int i = 0; i < 2; i++) {
            v = json_object_get(root, must_true[i]);
            if (v != NULL && !json_is_true(v)) die("%s: %s must be true for train_gpt.c's GPT-2", cfg_path, must_true[i]);
        }
        for (int i = 0; i < 3; i++) {
            v = json_object_get(root, must_false[i]);
            if (v != NULL && !json_is_false(v)) die("%s: %s must be false for train_gpt.c's GPT-2", cfg_path, must_false[i]);
        }
        json_decref(root);
    } else {
        SafeTensors st;
        st_open(&st, st_path);
        const char* prefix = hf_gpt2_prefix(&st);
        char name[128];
        snprintf(name, sizeof(name), "%swte.weight", prefix);
        const StTensor* wte = st_find(&st, name);
        snprintf(name, sizeof(name), "%swpe.weight", prefix);
        const StTensor* wpe = st_find(&st, name);
        if (wte == NULL || wpe == NULL || wte->ndim != 2 || wpe->ndim != 2) {
            die("%s: no config.json beside it, and no 2-D wte.weight and wpe.weight to infer one from", st_path);
        }
        if (wte->shape[0] < 1 || wte->shape[0] > (1u << 30) || wte->shape[1] < 1 || wte->shape[1] > (1u << 30) ||
            wpe->shape[0] < 1 || wpe->shape[0] > (1u << 30)) {
            die("%s: wte.weight / wpe.weight shapes out of range", st_path);
        }
        cfg->V = (int)wte->shape[0];
        cfg->C = (int)wte->shape[1];
        cfg->maxT = (int)wpe->shape[0];
        cfg->L = 0;
        for (;;) {
            snprintf(name, sizeof(name), "%sh.%d.ln_1.weight", prefix, cfg->L);
            if (st_find(&st, name) == NULL) break;
            cfg->L++;
        }
        if (cfg->L == 0) die("%s: no config.json beside it, and no layer h.0 to infer one from", st_path);
        const int sizes[4][2] = {{768, 12}, {1024, 16}, {1280, 20}, {1600, 25}};
        cfg->NH = 0;
        for (int i = 0; i < 4; i++) if (cfg->C == sizes[i][0]) cfg->NH = sizes[i][1];
        if (cfg->NH == 0) {
            die("%s: no config.json beside it, and n_embd=%d is none of GPT-2's sizes (768, 1024, 1280, "
                    "1600): the head count is unknown (hint: add a config.json with n_head)", st_path, cfg->C);
        }
        st_close(&st);
    }
}

// One expected tensor of the file: its place in the table order (slot), our tensor k (-1: a
// mask buffer, skipped) and layer l, and the file's entry. Slots: wte 0, wpe 1, then each
// per-layer tensor of HF_GPT2_PARAMS for l = 0..L-1, then ln_f; the 12 L + 4 weights come first,
// the mask buffers (attn.bias, attn.masked_bias of layer l) after them.
typedef struct { uint64_t slot; int k, l; const StTensor* t; } HfGpt2Expected;

// the first slot of our tensor k (L slots for a per-layer one, else 1)
static inline uint64_t hf_gpt2_slot0(int k, int L) {
    uint64_t s = 0;
    for (int i = 0; i < k; i++) s += HF_GPT2_PARAMS[i].per_layer ? (uint64_t)L : 1;
    return s;
}

// The name of slot s (for "missing tensor"): the inverse of hf_gpt2_classify
static inline void hf_gpt2_slot_name(char* buf, size_t size, const char* prefix, uint64_t s, int L) {
    for (int k = 0; k < HF_GPT2_NPARAMS; k++) {
        uint64_t n = HF_GPT2_PARAMS[k].per_layer ? (uint64_t)L : 1;
        if (s >= n) { s -= n; continue; }
        if (HF_GPT2_PARAMS[k].per_layer) snprintf(buf, size, "%sh.%llu.%s", prefix, (unsigned long long)s, HF_GPT2_PARAMS[k].hf);
        else snprintf(buf, size, "%s%s", prefix, HF_GPT2_PARAMS[k].hf);
        return;
    }
    snprintf(buf, size, "%s(slot %llu)", prefix, (unsigned long long)s); // not reached: s < 12 L + 4
}

// Which expected tensor a file's name is, parsed (not searched: a hostile file may hold ~25,000
// names): 1 and x filled, or 0 for a name GPT-2 with L layers does not have. Layer numbers as
// transformers writes them: decimal, no leading zero, below L.
static inline int hf_gpt2_classify(const char* name, const char* prefix, int L, HfGpt2Expected* x) {
    size_t np = strlen(prefix);
    if (strncmp(name, prefix, np) != 0) return 0;
    const char* r = name + np;
    if (strncmp(r, "h.", 2) != 0) { // wte, wpe, ln_f
        for (int k = 0; k < HF_GPT2_NPARAMS; k++) {
            if (HF_GPT2_PARAMS[k].per_layer || strcmp(r, HF_GPT2_PARAMS[k].hf) != 0) continue;
            x->k = k; x->l = 0; x->slot = hf_gpt2_slot0(k, L);
            return 1;
        }
        return 0;
    }
    r += 2;
    if (*r < '0' || *r > '9' || (r[0] == '0' && r[1] >= '0' && r[1] <= '9')) return 0;
    long l = 0;
    for (; *r >= '0' && *r <= '9'; r++) {
        l = 10 * l + (*r - '0');
        if (l >= L) return 0;
    }
    if (*r++ != '.') return 0;
    x->l = (int)l;
    if (strcmp(r, "attn.bias") == 0 || strcmp(r, "attn.masked_bias") == 0) {
        x->k = -1; x->slot = 12 * (uint64_t)L + 4 + 2 * (uint64_t)l + (r[5] == 'm');
        return 1;
    }
    for (int k = 0; k < HF_GPT2_NPARAMS; k++) {
        if (!HF_GPT2_PARAMS[k].per_layer || strcmp(r, HF_GPT2_PARAMS[k].hf) != 0) continue;
        x->k = k; x->slot = hf_gpt2_slot0(k, L) + (uint64_t)l;
        return 1;
    }
    return 0;
}

static inline int hf_gpt2_cmp_slot(const void* a, const void* b) {
    uint64_t x = ((const HfGpt2Expected*)a)->slot, y = ((const HfGpt2Expected*)b)->slot;
    return x < y ? -1 : x > y;
}

// The file of config cfg, checked against it before anything of the model's size exists: every
// name one that GPT-2 with cfg->L layers has, none of its 12 L + 4 weights missing, each of them
// a float type of exactly the config's shape, lm_head (if there) shaped like wte. Returns the
// file's expected tensors sorted by slot (the weights first, in table order; free() it) and
// lm_head (or NULL). Memory: a few words per tensor of the file (never per layer of the config).
static inline HfGpt2Expected* hf_gpt2_match(const SafeTensors* st, const HfGpt2Config* cfg, const StTensor** lm_head) {
    char nb[160];
    const char* prefix = hf_gpt2_prefix(st);
    const int L = cfg->L;
    HfGpt2Expected* ex = (HfGpt2Expected*)st_malloc((size_t)st->n * sizeof(HfGpt2Expected));
    int n = 0;
    *lm_head = NULL;
    for (int i = 0; i < st->n; i++) {
        const StTensor* t = &st->tensors[i];
        if (strcmp(t->name, "lm_head.weight") == 0) { *lm_head = t; continue; }
        if (!hf_gpt2_classify(t->name, prefix, L, &ex[n])) {
            die("%s: unexpected tensor '%s' (GPT-2 with L=%d layers, names %s)", st->path,
                    st_show(t->name, nb, sizeof(nb)), L,
                    prefix[0] ? "all with the prefix 'transformer.'" : "without a prefix, like 'wte.weight'");
        }
        ex[n++].t = t;
    }
    qsort(ex, (size_t)n, sizeof(HfGpt2Expected), hf_gpt2_cmp_slot);
    // names are unique (the JSON has no duplicate key), so the weights are slots 0, 1, 2, ... with
    // no gap: the first gap is the first missing tensor in table order
    const uint64_t nweights = 12 * (uint64_t)L + 4;
    for (uint64_t s = 0; s < nweights; s++) {
        if (s < (uint64_t)n && ex[s].slot == s) continue;
        char name[128];
        hf_gpt2_slot_name(name, sizeof(name), prefix, s, L);
        die("%s: missing tensor '%s' (the file has %d tensors, GPT-2 with L=%d layers at least %llu)",
                st->path, name, st->n, L, (unsigned long long)nweights);
    }
    // dtypes and shapes in table order (the first error does not depend on the file's order)
    for (uint64_t s = 0; s < nweights; s++) {
        const HfGpt2Param* p = &HF_GPT2_PARAMS[ex[s].k];
        const StTensor* t = ex[s].t;
        uint64_t rows = hf_gpt2_dim(cfg, p->rows), cols = hf_gpt2_dim(cfg, p->cols);
        // the file's shape: (cols, rows) for Conv1D, (rows) for vectors, else (rows, cols)
        int ndim = p->cols == HD_1 ? 1 : 2;
        uint64_t want[2] = {p->conv1d ? cols : rows, p->conv1d ? rows : cols};
        if (t->dtype == ST_OTHER) {
            die("%s: tensor '%s' is %s, expected F32, BF16 or F16", st->path, t->name, t->dtype_name);
        }
        if (t->ndim != ndim || t->shape[0] != want[0] || (ndim == 2 && t->shape[1] != want[1])) {
            char got[160];
            size_t o = 0;
            got[0] = '\0';
            for (int d = 0; d < t->ndim && o < sizeof(got) - 24; d++) {
                o += (size_t)snprintf(got + o, sizeof(got) - o, "%s%llu", d ? ", " : "", (unsigned long long)t->shape[d]);
            }
            char exp[64];
            if (ndim == 1) snprintf(exp, sizeof(exp), "%llu", (unsigned long long)want[0]);
            else snprintf(exp, sizeof(exp), "%llu, %llu", (unsigned long long)want[0], (unsigned long long)want[1]);
            die("%s: tensor '%s' has shape [%s], expected [%s] for L=%d NH=%d C=%d maxT=%d V=%d", st->path,
                    t->name, got, exp, cfg->L, cfg->NH, cfg->C, cfg->maxT, cfg->V);
        }
    }
    const StTensor* lm = *lm_head;
    if (lm != NULL && (lm->dtype == ST_OTHER || lm->ndim != 2 || lm->shape[0] != (uint64_t)cfg->V ||
                       lm->shape[1] != (uint64_t)cfg->C)) {
        die("%s: tensor 'lm_head.weight' is %s of %d dimensions, expected a float (%d, %d) tied to wte",
                st->path, lm->dtype_name, lm->ndim, cfg->V, cfg->C);
    }
    return ex;
}

// Before the caller allocates the weights of config c (`stored` of them in the file): the
// safetensors file of path passes its own checks (header, dtypes, offsets) and hf_gpt2_match's
// (every name, every shape the config's): all in memory bounded by the header, so a config.json
// that says a huge model beside another file is refused before the huge model is allocated. (The
// file's size, checked first, then follows from the shapes: the tensors tile its data section.)
static inline void hf_gpt2_check_size(const char* path, const HfGpt2Config* c, size_t stored) {
    char st_path[4200], cfg_path[4200];
    hf_gpt2_paths(path, st_path, cfg_path, sizeof(st_path));
    hf_gpt2_layout(c, c->V, NULL, cfg_path); // (the caller's config: checked again, cheaply)
    SafeTensors st;
    st_open(&st, st_path);
    if (st.file_size < 2 * (uint64_t)stored) {
        die("%s: %llu bytes cannot hold the %zu weights of %s (L=%d NH=%d C=%d maxT=%d V=%d)", st_path,
            (unsigned long long)st.file_size, stored, cfg_path, c->L, c->NH, c->C, c->maxT, c->V);
    }
    const StTensor* lm_head;
    free(hf_gpt2_match(&st, c, &lm_head));
    st_close(&st);
}

static inline int hf_gpt2_cmp_begin(const void* a, const void* b) {
    uint64_t x = (*(const HfGpt2Expected* const*)a)->t->begin, y = (*(const HfGpt2Expected* const*)b)->t->begin;
    return x < y ? -1 : x > y;
}

// Fills `params` (our flat layout, hf_gpt2_layout's total for this config and Vp) from a
// checkpoint. Every tensor the config implies must be there with its exact shape and finite
// values (hf_gpt2_match); the attention-mask buffers are skipped; lm_head.weight, if present,
// must equal wte.
static inline void hf_gpt2_load(const char* path, const HfGpt2Config* cfg, float* params, int Vp) {
    char st_path[4200], cfg_path[4200];
    hf_gpt2_paths(path, st_path, cfg_path, sizeof(st_path));
    size_t sizes[HF_GPT2_NPARAMS];
    hf_gpt2_layout(cfg, Vp, sizes, st_path);
    SafeTensors st;
    st_open(&st, st_path);
    const StTensor* lm_head;
    HfGpt2Expected* ex = hf_gpt2_match(&st, cfg, &lm_head);
    const int nread = 12 * cfg->L + 4; // the weights: ex[0 .. nread)
    // the largest tensor that passes through a buffer: a Conv1D matrix (transposed), and the
    // pieces of lm_head compared with wte
    uint64_t C = (uint64_t)cfg->C;
    size_t tmp_n = (size_t)(4 * C * C > (1u << 20) ? 4 * C * C : (1u << 20));
    float* tmp = (float*)st_malloc(tmp_n * sizeof(float));
    size_t offset[HF_GPT2_NPARAMS];
    size_t at = 0;
    for (int k = 0; k < HF_GPT2_NPARAMS; k++) { offset[k] = at; at += sizes[k]; }
    // the reads, in the file's order: from a cold cache the disk's readahead streams them
    HfGpt2Expected** order = (HfGpt2Expected**)st_malloc((size_t)nread * sizeof(HfGpt2Expected*));
    for (int j = 0; j < nread; j++) order[j] = &ex[j];
    qsort(order, (size_t)nread, sizeof(HfGpt2Expected*), hf_gpt2_cmp_begin);
    for (int q = 0; q < nread; q++) {
        const HfGpt2Expected* x = order[q];
        const HfGpt2Param* p = &HF_GPT2_PARAMS[x->k];
        uint64_t rows = hf_gpt2_dim(cfg, p->rows), cols = hf_gpt2_dim(cfg, p->cols);
        float* dst = params + offset[x->k] + (size_t)x->l * (size_t)(rows * cols);
        if (p->conv1d) {
            // file (cols, rows) = (in, out) -> ours (rows, cols) = (out, in)
            st_read_f32(&st, x->t, tmp);
            st_transpose(dst, (size_t)cols, tmp, (size_t)rows, (size_t)rows, (size_t)cols);
        } else {
            st_read_f32(&st, x->t, dst);
        }
        size_t nonfinite = 0;
        for (uint64_t i = 0; i < rows * cols; i++) nonfinite += !isfinite(dst[i]);
        for (uint64_t i = 0; nonfinite > 0; i++) { // a NaN or inf would train silently into NaN
            if (!isfinite(dst[i])) {
                die("%s: tensor '%s' element %llu is %g: non-finite weights", st_path, x->t->name,
                        (unsigned long long)i, (double)dst[i]);
            }
        }
        if (x->k == 0) { // wte: the padding rows V..Vp-1
            memset(dst + rows * cols, 0, (size_t)((uint64_t)(Vp - cfg->V) * cols) * sizeof(float));
        }
    }
    free(order);
    if (lm_head != NULL) {
        uint64_t n = (uint64_t)cfg->V * C;
        const float* wte = params + offset[0];
        for (uint64_t i0 = 0; i0 < n; i0 += tmp_n) {
            size_t m = (size_t)(n - i0 < tmp_n ? n - i0 : tmp_n);
            st_read_f32_range(&st, lm_head, i0, m, tmp);
            for (size_t i = 0; i < m; i++) {
                if (memcmp(&tmp[i], &wte[i0 + i], sizeof(float)) != 0) {
                    die("%s: tensor 'lm_head.weight' differs from wte.weight (element %llu: %g vs %g): this "
                            "model ties its output head to the token embedding", st_path,
                            (unsigned long long)(i0 + i), (double)tmp[i], (double)wte[i0 + i]);
                }
            }
        }
    }
    free(tmp);
    free(ex);
    st_close(&st);
}

// ----------------------------------------------------------------------------
// Export: both files or neither

// What an export in progress has made, so that any exit before it is done (die() from anywhere:
// a write error, a full disk, EFBIG past ulimit -f, out of memory) takes it back: st_export_undo
// runs at exit. Names are "" when there is nothing of that kind to remove.
typedef struct {
    int active, registered;
    char tmp[2][4200];    // the temp files of model.safetensors and config.json
    char stage[4100];     // DIR.tmp.PID: the staging directory, before it is renamed onto DIR
    char staged[2][4200]; // the two files inside it
    char backup[4200];    // a hard link to DIR's previous model.safetensors
} StExport;
static StExport g_st_export;

static inline void st_export_undo(void) {
    StExport* x = &g_st_export;
    if (!x->active) return;
    for (int i = 0; i < 2; i++) {
        if (x->tmp[i][0] != '\0') unlink(x->tmp[i]);
        if (x->staged[i][0] != '\0') unlink(x->staged[i]);
    }
    if (x->stage[0] != '\0') rmdir(x->stage);
    if (x->backup[0] != '\0') unlink(x->backup);
    x->active = 0;
}

// fsync of a directory, so that its entries (a rename, a new file) survive a crash: 0 or an errno
static inline int st_sync_dir(const char* dir) {
    int fd = open(dir, O_RDONLY);
    if (fd < 0) return errno;
    int e = fsync(fd) != 0 ? errno : 0;
    close(fd);
    return e == EINVAL ? 0 : e; // a file system that cannot sync a directory
}

// 1 if directory dir holds nothing, 0 if it holds something, -1 if it cannot be read
static inline int st_dir_empty(const char* dir) {
    DIR* d = opendir(dir);
    if (d == NULL) return -1;
    int empty = 1;
    for (struct dirent* e; empty && (e = readdir(d)) != NULL; ) {
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    }
    closedir(d);
    return empty;
}

// Every weight an export writes must load back (hf_gpt2_load): finite, and in BF16 within its
// finite range. A float of magnitude 0x7f7f8000 (3.3962e38, halfway between BF16's largest
// finite value 3.3895e38 and 2^128) or more rounds to inf, as do inf and NaN themselves. The
// element is named in the file's coordinates (a Conv1D matrix is written transposed).
static inline void hf_gpt2_check_values(const char* dir, const StWriteTensor* ts, int n, int bf16) {
    const uint32_t limit = bf16 ? 0x7f7f8000u : 0x7f800000u;
    for (int i = 0; i < n; i++) {
        const StWriteTensor* t = &ts[i];
        const float* x = t->data;
        size_t numel = (size_t)(t->ndim == 1 ? t->shape[0] : t->shape[0] * t->shape[1]), bad = numel;
        #pragma omp parallel for reduction(min:bad)
        for (size_t j = 0; j < numel; j++) {
            uint32_t u;
            memcpy(&u, &x[j], 4);
            if ((u & 0x7fffffffu) >= limit && j < bad) bad = j;
        }
        if (bad == numel) continue;
        char at[64];
        if (t->ndim == 1) snprintf(at, sizeof(at), "%zu", bad);
        else if (t->transpose) snprintf(at, sizeof(at), "%zu, %zu", bad % (size_t)t->shape[0], bad / (size_t)t->shape[0]);
        else snprintf(at, sizeof(at), "%zu, %zu", bad / (size_t)t->shape[1], bad % (size_t)t->shape[1]);
        die("--export %s: tensor '%s' element [%s] is %g: %s", dir, t->name, at, (double)x[bad],
            isfinite(x[bad]) ? "past BF16's largest finite value 3.3895e+38, it would be written as inf "
                               "(--export-dtype f32 keeps it)" : "a non-finite weight");
    }
}

// Writes DIR/model.safetensors (HF names without prefix, Conv1D orientation, wte's V real rows,
// F32 or BF16, no lm_head: transformers ties it to wte) and DIR/config.json, as
// GPT2LMHeadModel.from_pretrained(DIR) loads them. Both files or neither:
// - Checked before anything is written: the path; DIR is a directory or absent, and its parent
//   exists; DIR holds no model.safetensors or config.json unless `overwrite` (--export-overwrite
//   1), and even then no directory stands at those names; every weight loads back (finite, and
//   within BF16's range for bf16).
// - DIR absent, or an empty directory of its own (not a mount point, not a symlink): both files
//   are written into the sibling DIR.tmp.PID, synced, and that directory is renamed onto DIR, one
//   atomic step. (An empty DIR that existed is thus a new directory: its permission bits are
//   copied, its owner, ACLs and extended attributes are not.)
// - Otherwise (DIR holds other files): both are written to temp files beside their names
//   (NAME.tmp.PID), synced, then renamed over them, model.safetensors first. The one window left:
//   a crash or SIGKILL between those two renames leaves the new model.safetensors beside the old
//   config.json. If the second rename fails, the first is undone (the old model.safetensors is put
//   back from a hard link made before; a file system without hard links cannot, and the error
//   says so).
// - Any exit before the end (every error dies) removes what it made (st_export_undo, at exit);
//   only a kill leaves its *.tmp.PID behind.
static inline void hf_gpt2_save(const char* dir_arg, const HfGpt2Config* cfg, const float* params, int Vp, int bf16,
                                int overwrite) {
    if (dir_arg[0] == '\0') die("--export \"\": an empty path (give the directory to write)");
    size_t sizes[HF_GPT2_NPARAMS];
    hf_gpt2_layout(cfg, Vp, sizes, dir_arg);
    // DIR without its trailing slashes ("out/" is out, its sibling out.tmp.PID), and its parent
    char dir[4000], parent[4000], path[2][4100];
    size_t len = strlen(dir_arg);
    while (len > 1 && dir_arg[len - 1] == '/') len--;
    if (len >= sizeof(dir)) die("--export %s: path too long", dir_arg);
    memcpy(dir, dir_arg, len);
    dir[len] = '\0';
    const char* slash = strrchr(dir, '/');
    const char* base = slash != NULL ? slash + 1 : dir;
    if (slash == NULL) snprintf(parent, sizeof(parent), ".");
    else snprintf(parent, sizeof(parent), "%.*s", slash == dir ? 1 : (int)(slash - dir), dir);
    const char* names[2] = {"model.safetensors", "config.json"};
    for (int i = 0; i < 2; i++) snprintf(path[i], sizeof(path[i]), "%s/%s", dir, names[i]);

    // the tensors: HF's module order: wte, wpe, then layer by layer, then ln_f
    const int L = cfg->L;
    int n = 4 + 12 * L;
    StWriteTensor* ts = (StWriteTensor*)calloc((size_t)n, sizeof(StWriteTensor));
    char* tnames = (char*)calloc((size_t)n, 64);
    if (ts == NULL || tnames == NULL) die("out of memory");
    size_t offset[HF_GPT2_NPARAMS];
    size_t at = 0;
    for (int k = 0; k < HF_GPT2_NPARAMS; k++) { offset[k] = at; at += sizes[k]; }
    int i = 0;
    for (int pass = 0; pass < 3; pass++) {
        for (int l = 0; l < (pass == 1 ? L : 1); l++) {
            for (int k = 0; k < HF_GPT2_NPARAMS; k++) {
                const HfGpt2Param* p = &HF_GPT2_PARAMS[k];
                int group = p->per_layer ? 1 : (k < 2 ? 0 : 2);
                if (group != pass) continue;
                uint64_t rows = hf_gpt2_dim(cfg, p->rows), cols = hf_gpt2_dim(cfg, p->cols);
                StWriteTensor* t = &ts[i];
                char* name = tnames + (size_t)i * 64;
                if (p->per_layer) snprintf(name, 64, "h.%d.%s", l, p->hf);
                else snprintf(name, 64, "%s", p->hf);
                t->name = name;
                t->dtype = bf16 ? ST_BF16 : ST_F32;
                t->ndim = p->cols == HD_1 ? 1 : 2;
                t->shape[0] = p->conv1d ? cols : rows;
                t->shape[1] = p->conv1d ? rows : cols;
                t->transpose = p->conv1d;
                t->data = params + offset[k] + (size_t)l * (size_t)(rows * cols); // wte: its first V rows
                i++;
            }
        }
    }
    hf_gpt2_check_values(dir, ts, n, bf16);
    // config.json: GPT2Config's fields (transformers' defaults for the rest)
    int eot = cfg->V > HF_GPT2_EOT ? HF_GPT2_EOT : cfg->V - 1; // GPT-2's <|endoftext|>, or the last id
    json_t* c = json_pack("{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:n, s:s, s:f, s:f, s:f, s:f, s:f, s:b, s:b, s:i, s:i, s:s, s:b}",
                          "architectures", "GPT2LMHeadModel", "model_type", "gpt2",
                          "vocab_size", cfg->V, "n_positions", cfg->maxT, "n_ctx", cfg->maxT,
                          "n_embd", cfg->C, "n_layer", L, "n_head", cfg->NH, "n_inner",
                          "activation_function", "gelu_new", "layer_norm_epsilon", 1e-5,
                          "initializer_range", 0.02, "resid_pdrop", 0.1, "embd_pdrop", 0.1, "attn_pdrop", 0.1,
                          "scale_attn_weights", 1, "tie_word_embeddings", 1,
                          "bos_token_id", eot, "eos_token_id", eot,
                          "torch_dtype", bf16 ? "bfloat16" : "float32", "use_cache", 1);
    if (c == NULL) die("%s: cannot build config.json (out of memory?)", dir);
    char* text = json_dumps(c, JSON_INDENT(2) | JSON_REAL_PRECISION(9));
    json_decref(c);
    if (text == NULL) die("out of memory encoding config.json");

    // what is there now
    struct stat dsb, psb, sb;
    int exists = lstat(dir, &dsb) == 0;
    if (!exists && errno != ENOENT) die("--export %s: cannot stat (%s)", dir, strerror(errno));
    if (!exists && stat(parent, &psb) != 0) {
        die("--export %s: its parent directory %s %s", dir, parent,
            errno == ENOENT ? "does not exist (create it first)" : strerror(errno));
    }
    if (!exists && !S_ISDIR(psb.st_mode)) die("--export %s: its parent %s is not a directory", dir, parent);
    if (exists && (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))) die("--export %s: exists and is not a directory", dir);
    for (int j = 0; exists && j < 2; j++) {
        if (lstat(path[j], &sb) != 0) continue;
        if (!overwrite) {
            die("--export %s: already holds an export (%s): give --export-overwrite 1 to replace it, or another "
                "directory", dir, names[j]);
        }
        if (!S_ISREG(sb.st_mode) && !S_ISLNK(sb.st_mode)) {
            die("--export %s: %s is %s: a file cannot replace it", dir, path[j], file_kind(sb.st_mode));
        }
    }
    StExport* x = &g_st_export;
    memset(x->tmp, 0, sizeof(x->tmp)); memset(x->staged, 0, sizeof(x->staged));
    x->stage[0] = x->backup[0] = '\0';
    if (!x->registered) { atexit(st_export_undo); x->registered = 1; }
    x->active = 1;
    // a staging directory beside DIR, for a DIR that is absent or empty and of its own file system
    // (a mount point cannot be renamed onto), where the parent lets us create it
    int staged = !exists || (S_ISDIR(dsb.st_mode) && strcmp(base, ".") != 0 && strcmp(base, "..") != 0 &&
                             st_dir_empty(dir) == 1 && stat(parent, &psb) == 0 && psb.st_dev == dsb.st_dev);
    if (staged) {
        snprintf(x->stage, sizeof(x->stage), "%s.tmp.%ld", dir, (long)getpid());
        if (mkdir(x->stage, 0777) != 0) {
            int e = errno;
            x->stage[0] = '\0';
            if (!exists) die("--export %s: cannot create %s.tmp.%ld (%s)", dir, dir, (long)getpid(), strerror(e));
            staged = 0; // an empty DIR whose parent we cannot write: in place
        } else if (exists) {
            chmod(x->stage, dsb.st_mode & 07777); // DIR keeps its permissions
        }
    }
    char into[2][4200];
    for (int j = 0; j < 2; j++) {
        if (snprintf(into[j], sizeof(into[j]), "%s/%s", staged ? x->stage : dir, names[j]) >= (int)sizeof(into[j])) {
            die("--export %s: path too long", dir);
        }
    }
    // both temp files, complete and synced: config.json (small) first
    FILE* f = st_open_tmp(into[1], x->tmp[1], sizeof(x->tmp[1]));
    st_fwrite(f, text, strlen(text), x->tmp[1]);
    st_fwrite(f, "\n", 1, x->tmp[1]);
    st_finish_tmp(f, x->tmp[1], NULL);
    free(text);
    st_write_tmp(into[0], x->tmp[0], sizeof(x->tmp[0]), ts, n, "{\"format\":\"pt\"}");
    free(ts);
    free(tnames);
    if (staged) {
        for (int j = 0; j < 2; j++) {
            memcpy(x->staged[j], into[j], sizeof(x->staged[j]));
            if (rename(x->tmp[j], into[j]) != 0) die("--export %s: cannot rename %s (%s)", dir, x->tmp[j], strerror(errno));
            x->tmp[j][0] = '\0';
        }
        int e = st_sync_dir(x->stage);
        if (e != 0) die("--export %s: cannot sync %s (%s)", dir, x->stage, strerror(e));
        if (rename(x->stage, dir) != 0) {
            die("--export %s: cannot rename %s onto it (%s)", dir, x->stage, strerror(errno));
        }
        x->active = 0;
        st_sync_dir(parent); // done: the rename is the export, its durability is the file system's
        return;
    }
    // in place: the names once more (a directory made there since cannot be replaced), a hard link
    // to the old model.safetensors to undo the first rename with, then the two renames
    int had_model = 0;
    for (int j = 0; j < 2; j++) {
        if (lstat(path[j], &sb) != 0) continue;
        if (!S_ISREG(sb.st_mode) && !S_ISLNK(sb.st_mode)) {
            die("--export %s: %s is %s: a file cannot replace it", dir, path[j], file_kind(sb.st_mode));
        }
        if (j == 0) had_model = 1;
    }
    if (had_model) {
        snprintf(x->backup, sizeof(x->backup), "%s.old.%ld", path[0], (long)getpid());
        if (link(path[0], x->backup) != 0) x->backup[0] = '\0';
    }
    if (rename(x->tmp[0], path[0]) != 0) die("--export %s: cannot rename %s (%s)", dir, x->tmp[0], strerror(errno));
    x->tmp[0][0] = '\0';
    if (rename(x->tmp[1], path[1]) != 0) {
        int e = errno;
        const char* undo = "the new model.safetensors removed";
        if (!had_model) { if (unlink(path[0]) != 0) undo = "the new model.safetensors could not be removed"; }
        else if (x->backup[0] != '\0' && rename(x->backup, path[0]) == 0) { undo = "the old model.safetensors put back"; }
        else if (x->backup[0] != '\0') { undo = "the old model.safetensors is in model.safetensors.old.PID"; x->backup[0] = '\0'; }
        else { undo = "the old model.safetensors is lost (no hard link could keep it)"; }
        die("--export %s: cannot rename %s (%s); %s", dir, x->tmp[1], strerror(e), undo);
    }
    x->tmp[1][0] = '\0';
    if (x->backup[0] != '\0') unlink(x->backup);
    x->backup[0] = '\0';
    x->active = 0;
    st_sync_dir(dir);
}

#endif // USE_JANSSON
#endif // SAFETENSORS_H
