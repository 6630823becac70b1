// tokenizer.c: the ./tokenizer command line: GPT-2 encode / decode, building the tokenizer file
// from GPT-2's encoder.json + vocab.bpe, turning text files into llm.c token shards, and JSONL
// prompt/completion records into shards with a loss mask (`sft`, supervised fine-tuning), and
// multiple-choice records (HellaSwag's jsonl) into an eval file (`eval`).
//
// What it is: a thin driver around tokenizer.h (which does the actual tokenization) plus the
// file formats of the data pipeline. What it is not: a dataset downloader (data/prepare.sh
// fetches and cleans text, then calls `./tokenizer shards`).
//
// Non-obvious rules:
// - Parallel encoding cuts text only at positions where GPT-2's regex is known to start a new
//   pre-token (tokenizer_safe_split), so the ids are identical to a single-threaded run.
// - `encode` treats "<|endoftext|>" as plain text, like GPT-2's encoder.py (use --special to
//   turn it into id 50256); `shards` always treats it as a document separator.
// - `shards` replaces a dataset whole or not at all, and only with --replace (an existing one is
//   refused: re-encoding a large corpus costs hours). The new shards are written into a staging
//   folder PREFIX.tmp.PID/ (which the trainer's glob PREFIX_train_*.bin does not match) and moved
//   into place only when all are written and synced; see the shards section for the one window a
//   SIGKILL or power loss can hit. A failing run removes only what it created (g_created).
// - Every other written file (the tokenizer file of `build`) goes to NAME.tmp.PID, is synced and
//   renamed (gptc/utils.h's atomic write): two runs never share a temp file.
// - A write past `ulimit -f` fails with EFBIG (SIGXFSZ is ignored): one error line, like any
//   other failed write, and the temp files are removed.
// - No shard is smaller than SHARD_MIN_TOKENS (one training batch of B=64, T=1024) unless its
//   whole split is (then a warning says so): a split's short last part joins the shard before.
// - Every input is untrusted: input files must be regular files (a FIFO or /dev/zero is an
//   error, never a hang), numeric flags are parsed strictly and bounded, and `build` refuses
//   vocabularies that would make a tokenizer file that cannot encode.
//
// Shard file: gptc/shard.h (llm.c's format: an int32 header[256], then uint16 token ids; `sft`
// writes version 2, a uint8 flag per token after them). Every document is preceded by
// <|endoftext|> (as llm.c's fineweb.py does), so the id 50256 separates documents and starts the
// stream; `sft` puts it between records (see the sft section).

#include <ctype.h>        // provides: isspace, isdigit
#include <dirent.h>       // provides: opendir, readdir (walking input folders, listing a dataset)
#include <errno.h>        // provides: errno
#include <fcntl.h>        // provides: open, O_RDONLY, O_DIRECTORY (syncing and locking a folder)
#include <signal.h>       // provides: sigaction, raise, kill, sig_atomic_t
#include <stdarg.h>       // provides: va_list (format_path)
#include <stdint.h>       // provides: uint16_t, uint32_t, uint64_t
#include <stdio.h>        // provides: FILE, fopen, fwrite, printf, rename, remove
#include <stdlib.h>       // provides: malloc, free, qsort, exit, atexit
#include <string.h>       // provides: strcmp, memcmp, strerror
#include <sys/file.h>     // provides: flock (one dataset replacement at a time in a folder)
#include <sys/stat.h>     // provides: stat, lstat, fstat, S_ISREG, S_ISDIR, mkdir
#include <unistd.h>       // provides: fsync, getpid, unlink, rmdir
#ifdef _OPENMP
#include <omp.h>          // provides: omp_get_max_threads, omp_get_thread_num
#endif
#include "tokenizer.h"    // provides: Tokenizer, tokenizer_init/encode/decode, TokenIds, TokenizerCache,
                          // and (gptc/utils.h) die, malloc_or_die, open_input, read_fd, file_kind,
                          // fwrite_or_die, open/finish_atomic_write, writes_fail_past_size_limit
#include "../gptc/shard.h" // provides: shard_header, SHARD_HEADER_INTS (the token shard format)
#include "dataset.h"      // provides: PathList, g_created, format_path, stop_if_signalled,
                          // dataset_list, dataset_commit (a dataset replaced whole or not at all)
#ifdef USE_JANSSON
#include <jansson.h>      // provides: json_loadb, json_object_get, json_string_value (sft's JSONL)
#endif

#define DEFAULT_TOKENIZER "data/gpt2_tokenizer.bin"
#define EOT_TEXT "<|endoftext|>"
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the shard and tokenizer files are little-endian, and tokenizer.c writes them (and formats ids) natively"
#endif
#define MAX_STDIN_BYTES (2ull << 30)  // stdin is read whole, up to 2 GiB (see read_stdin)
#define MAX_THREADS 1024                // --threads: see main
// shards: the smallest shard written (unless a whole split is smaller). train_gpt reads B*T+1
// tokens from one shard for each batch and refuses a shard that cannot hold one; 65,537 tokens
// hold a batch of B=64, T=1024 (GPT-2's full context, llm.c's micro-batch for GPT-2 124M), and
// 128 batches of the trainer's default B=4, T=128. A split's short last shard joins the one
// before it instead (see ShardWriter).
#define SHARD_MIN_TOKENS 65537
// --shard-tokens: from SHARD_MIN_TOKENS (smaller full shards could not hold that batch) to 2e9:
// the header stores the count as int32, and a shard may grow by SHARD_MIN_TOKENS - 1 when the
// short tail of a split joins it (2e9 + 65536 < 2^31).
#define SHARD_MAX_TOKENS 2000000000

// ----------------------------------------------------------------------------
// Errors, files, timing (die, open_input, read_fd, wall_seconds: gptc/utils.h)

// Reads all of stdin (a pipe, a terminal or a redirected file). The buffer gets one extra NUL
// byte. stdin may never end (/dev/zero, `yes |`), and encode and shards hold all of it plus its
// ids (4 bytes a token, about one token per 4 bytes of text) in memory: past MAX_STDIN_BYTES it
// is an error (give shards files instead: it reads them in batches).
static uint8_t* read_stdin(size_t* len) {
    struct stat st;
    size_t cap = 1 << 16, n = 0;
    if (fstat(0, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 && (uint64_t)st.st_size < MAX_STDIN_BYTES)
        cap = (size_t)st.st_size + 1; // a redirected file: one allocation, and EOF right after
    uint8_t* buf = (uint8_t*)malloc_or_die(cap + 1);
    for (;;) {
        // read_fd's loop, but an interrupted `shards` stops here: a terminal or a pipe may never
        // send more, and read_fd would resume waiting
        ssize_t r = read(0, buf + n, cap - n < (1u << 30) ? cap - n : (1u << 30));
        if (r < 0 && errno == EINTR) { stop_if_signalled("stdin"); continue; }
        if (r < 0) die("stdin: read error: %s", strerror(errno));
        if (r == 0) break;
        n += (size_t)r;
        if (n < cap) continue;
        if (cap >= MAX_STDIN_BYTES) die("stdin: %llu bytes or more: too large for one input (split it into files for shards)",
                                        (unsigned long long)MAX_STDIN_BYTES);
        cap *= 2;
        buf = (uint8_t*)tok_xrealloc(buf, cap + 1, "stdin");
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

// Reads a whole input file ('-' = stdin); only regular files (open_input says why). The
// buffer gets one extra NUL byte.
static uint8_t* read_file(const char* path, size_t* len) {
    if (strcmp(path, "-") == 0) return read_stdin(len);
    size_t size;
    int fd = open_input(path, &size);
    if (fd < 0) die("%s: no such file", path);
    uint8_t* buf = (uint8_t*)malloc_or_die(size + 1);
    size_t got = read_fd(fd, buf, size, path);
    close(fd);
    if (got != size) die("%s: changed while reading: %zu of %zu bytes", path, got, size);
    buf[size] = 0;
    *len = size;
    return buf;
}

// mkdir -p of the folder part of `path` ("data/brown/brown" -> data/brown). Folders it makes are
// this run's (g_created) until the output is in place.
static void make_parent_dirs(const char* path) {
    char buf[4096];
    format_path(buf, sizeof(buf), "%s", path);
    for (char* p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) == 0) path_list_add(&g_created, buf);
        else if (errno != EEXIST) die("%s: cannot create folder: %s", buf, strerror(errno));
        *p = '/';
    }
}

// Counts bytes that are not part of well-formed UTF-8 (the encoder keeps them as raw bytes).
static size_t count_invalid_utf8(const uint8_t* s, size_t n) {
    size_t bad = 0, i = 0, len;
    while (i < n) {
        if (s[i] < 0x80) { i++; continue; }
        tok_char_class(s, n, i, &len);
        if (len == 1) bad++; // a byte >= 0x80 that decodes alone is never valid UTF-8
        i += len;
    }
    return bad;
}

// ----------------------------------------------------------------------------
// Parallel encoding of many texts

typedef struct {
    const uint8_t* text;
    size_t len;
    TokenIds ids;    // output
} Segment;

typedef struct {
    size_t seg;          // which segment
    size_t start, end;   // byte range in it
    TokenIds ids;
} Piece;

typedef struct {
    const Tokenizer* tok;
    int threads;
    size_t chunk_bytes;      // pieces are about this long (cut at safe positions)
    TokenizerCache* caches;  // one per thread
    int force_heap;
} Encoder;

static void encoder_init(Encoder* e, const Tokenizer* t, int threads, size_t chunk_bytes, int force_heap) {
    e->tok = t;
    e->threads = threads < 1 ? 1 : threads;
    e->chunk_bytes = chunk_bytes;
    e->force_heap = force_heap;
    e->caches = (TokenizerCache*)malloc_or_die(e->threads * sizeof(TokenizerCache));
    for (int i = 0; i < e->threads; i++) {
        tokenizer_cache_init(&e->caches[i]);
        e->caches[i].force_heap = force_heap;
    }
}

static void encoder_free(Encoder* e) {
    for (int i = 0; i < e->threads; i++) tokenizer_cache_free(&e->caches[i]);
    free(e->caches);
}

// Encodes every segment into its own ids. Segments are cut into ~chunk_bytes pieces at safe
// positions and the pieces are spread over the threads; results equal one thread's.
static void encode_segments(Encoder* e, Segment* segs, size_t n_segs) {
    size_t n_pieces = 0, cap = 64;
    Piece* pieces = (Piece*)malloc_or_die(cap * sizeof(Piece));
    for (size_t s = 0; s < n_segs; s++) {
        size_t start = 0;
        do {
            size_t end = segs[s].len;
            if (e->threads > 1 && segs[s].len - start > 2 * e->chunk_bytes)
                end = tokenizer_safe_split(segs[s].text, segs[s].len, start + e->chunk_bytes);
            if (n_pieces == cap) { cap *= 2; pieces = (Piece*)tok_xrealloc(pieces, cap * sizeof(Piece), "pieces"); }
            Piece* p = &pieces[n_pieces++];
            p->seg = s; p->start = start; p->end = end;
            memset(&p->ids, 0, sizeof(p->ids));
            start = end;
        } while (start < segs[s].len);
    }
    // dynamic schedule: pieces differ in length (last piece of a document, short documents)
#ifdef _OPENMP
    #pragma omp parallel for schedule(dynamic, 1) num_threads(e->threads)
#endif
    for (size_t i = 0; i < n_pieces; i++) {
        int thread = 0;
#ifdef _OPENMP
        thread = omp_get_thread_num();
#endif
        if (g_stop_signal) continue; // `shards` was interrupted: the caller stops after the loop
        Piece* p = &pieces[i];
        tokenizer_encode(e->tok, &e->caches[thread], segs[p->seg].text + p->start, p->end - p->start, &p->ids);
    }
    for (size_t i = 0; i < n_pieces; i++) {
        TokenIds* dst = &segs[pieces[i].seg].ids;
        if (dst->ids == NULL) { *dst = pieces[i].ids; continue; } // a segment's first piece: no copy
        tokenids_reserve(dst, pieces[i].ids.len);
        memcpy(dst->ids + dst->len, pieces[i].ids.ids, pieces[i].ids.len * sizeof(uint32_t));
        dst->len += pieces[i].ids.len;
        tokenids_free(&pieces[i].ids);
    }
    free(pieces);
}

// Calls back for each part of text between occurrences of "<|endoftext|>" (empty parts too).
// With `paragraphs`, parts are also cut after every "\n\n" (which stays with the part before),
// as llm.c's tinyshakespeare recipe does.
typedef void (*PartFn)(void* ctx, const uint8_t* text, size_t len, int ends_with_eot);

static void split_parts(const uint8_t* s, size_t n, int paragraphs, PartFn fn, void* ctx) {
    const size_t eot_len = strlen(EOT_TEXT);
    size_t start = 0, i = 0;
    while (i < n) {
        if (s[i] == '<' && n - i >= eot_len && memcmp(s + i, EOT_TEXT, eot_len) == 0) {
            fn(ctx, s + start, i - start, 1);
            i += eot_len;
            start = i;
        } else if (paragraphs && s[i] == '\n' && i + 1 < n && s[i + 1] == '\n') {
            i += 2;
            fn(ctx, s + start, i - start, 0);
            start = i;
        } else {
            i++;
        }
    }
    fn(ctx, s + start, n - start, 0);
}

typedef struct { Segment* segs; size_t n, cap; int* eot_after; int keep_empty; } SegmentList;

static void segment_list_add(void* ctx, const uint8_t* text, size_t len, int ends_with_eot) {
    SegmentList* l = (SegmentList*)ctx;
    if (len == 0 && !l->keep_empty) return;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->segs = (Segment*)tok_xrealloc(l->segs, l->cap * sizeof(Segment), "segments");
        l->eot_after = (int*)tok_xrealloc(l->eot_after, l->cap * sizeof(int), "segments");
    }
    Segment* s = &l->segs[l->n];
    s->text = text; s->len = len;
    memset(&s->ids, 0, sizeof(s->ids));
    l->eot_after[l->n++] = ends_with_eot;
}

// ----------------------------------------------------------------------------
// encode / decode

// Prints ids as decimal text separated by single spaces; id_printer_end adds the newline.
// Formatting is done here into a 64 KiB buffer (reused, so it stays in cache), written with one
// fwrite when full.
#define ID_PRINTER_BYTES (1 << 16)
typedef struct { char* buf; size_t len; int started; } IdPrinter;

static const char digit_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

static void id_printer_put(IdPrinter* p, const uint32_t* ids, size_t n) {
    // locals, not p->len: stores through char* could alias it and force reloads
    char* out = p->buf + p->len;
    char* full = p->buf + ID_PRINTER_BYTES - 16; // room for a space, 10 digits, an 8-byte store
    size_t started = (size_t)p->started;
    for (size_t i = 0; i < n; i++) {
        if (out > full) { fwrite_or_die(p->buf, 1, (size_t)(out - p->buf), stdout, "stdout"); out = p->buf; }
        *out = ' ';
        out += started; // a space before every id but the first
        started = 1;
        uint32_t v = ids[i];
        if (v < 100000) {
            // Ids below 100000 (all of GPT-2's) without a branch on their length, which varies
            // at random (the mispredictions cost more than the digits): the 5 digits with
            // leading zeros go into one word, first digit in the lowest byte, so on a
            // little-endian machine its bytes in memory are the digits in order; shifting out
            // the leading zeros and storing 8 bytes leaves the digits at `out` (the bytes past
            // them are overwritten by what follows).
            uint32_t len = 1 + (v >= 10) + (v >= 100) + (v >= 1000) + (v >= 10000);
            uint16_t mid, low; // digits 2-3 and 4-5, as two characters each
            memcpy(&mid, digit_pairs + 2 * (v / 100 % 100), 2);
            memcpy(&low, digit_pairs + 2 * (v % 100), 2);
            uint64_t w = (uint64_t)('0' + v / 10000) | (uint64_t)mid << 8 | (uint64_t)low << 24;
            w >>= 8 * (5 - len);
            memcpy(out, &w, 8);
            out += len;
            continue;
        }
        char digits[10];
        int d = 0;
        do { digits[d++] = (char)('0' + v % 10); v /= 10; } while (v);
        while (d > 0) *out++ = digits[--d];
    }
    p->len = (size_t)(out - p->buf);
    p->started = (int)started;
}

static void id_printer_end(IdPrinter* p) {
    p->buf[p->len++] = '\n';
    fwrite_or_die(p->buf, 1, p->len, stdout, "stdout");
    p->len = 0;
}

static void need_merges(const Tokenizer* t, const char* path) {
    if (t->n_merges == 0) {
        fprintf(stderr, "error: %s: version %d file can only decode, encoding needs version %d with merges (%s)\n",
                path, t->version, TOKENIZER_VERSION, TOK_FIX_HINT);
        exit(1);
    }
}

static int cmd_encode(const Tokenizer* t, const char* tok_path, Encoder* e, int special) {
    need_merges(t, tok_path);
    size_t n;
    uint8_t* text = read_stdin(&n);
    SegmentList parts;
    memset(&parts, 0, sizeof(parts));
    parts.keep_empty = 1;
    if (special) split_parts(text, n, 0, segment_list_add, &parts);
    else segment_list_add(&parts, text, n, 0);
    encode_segments(e, parts.segs, parts.n);
    IdPrinter p;
    p.buf = (char*)malloc_or_die(ID_PRINTER_BYTES);
    p.len = 0; p.started = 0;
    for (size_t i = 0; i < parts.n; i++) {
        id_printer_put(&p, parts.segs[i].ids.ids, parts.segs[i].ids.len);
        if (parts.eot_after[i]) id_printer_put(&p, &t->eot, 1);
        tokenids_free(&parts.segs[i].ids);
    }
    id_printer_end(&p);
    free(p.buf); free(parts.segs); free(parts.eot_after); free(text);
    return 0;
}

static int cmd_decode(const Tokenizer* t) {
    size_t n;
    uint8_t* text = read_stdin(&n);
    size_t i = 0, count = 0, out_len = 0;
    char* out = (char*)malloc_or_die(1 << 16);
    while (i < n) {
        if (isspace(text[i])) { i++; continue; }
        size_t start = i;
        uint64_t v = 0;
        while (i < n && isdigit(text[i]) && v <= 0xFFFFFFFFu) v = 10 * v + (text[i++] - '0');
        if (i == start || (i < n && !isspace(text[i])) || v >= t->vocab_size) {
            while (i < n && !isspace(text[i]) && i - start < 20) i++;
            fprintf(stderr, "error: stdin: token %zu '%.*s' is not a token id in [0, %u) (decode wants ids separated by whitespace)\n",
                    count, (int)(i - start), (const char*)text + start, t->vocab_size);
            exit(1);
        }
        size_t len = 0;
        const char* bytes = tokenizer_decode(t, (uint32_t)v, &len);
        if (out_len + len > (1 << 16)) { fwrite_or_die(out, 1, out_len, stdout, "stdout"); out_len = 0; }
        memcpy(out + out_len, bytes, len);
        out_len += len;
        count++;
    }
    fwrite_or_die(out, 1, out_len, stdout, "stdout");
    free(out); free(text);
    return 0;
}

// ----------------------------------------------------------------------------
// build: encoder.json + vocab.bpe -> tokenizer file (version 3)

// GPT-2 stores token bytes as printable unicode characters: bytes that are printable in Latin-1
// stand for themselves, the other 68 bytes (controls, space, 0x7F-0xA0, 0xAD) are shifted to
// U+0100 and up, in byte order (GPT-2's bytes_to_unicode).
static void unicode_to_byte_table(int table[324]) {
    for (int cp = 0; cp < 324; cp++) table[cp] = -1;
    int shifted = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        table[printable ? b : 256 + shifted++] = b;
    }
}

// Appends the UTF-8 encoding of code point cp.
static size_t utf8_put(uint8_t* out, uint32_t cp) {
    if (cp < 0x80) { out[0] = (uint8_t)cp; return 1; }
    if (cp < 0x800) { out[0] = (uint8_t)(0xC0 | (cp >> 6)); out[1] = (uint8_t)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12)); out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F)); return 3;
    }
    out[0] = (uint8_t)(0xF0 | (cp >> 18)); out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F)); out[3] = (uint8_t)(0x80 | (cp & 0x3F)); return 4;
}

// Maps a GPT-2 token string (UTF-8 of byte-standing-in characters) to raw bytes, at most `cap`
// of them; -1 if some character is not one of the 256 stand-ins, -2 if there are more than cap.
static int token_string_to_bytes(const uint8_t* s, size_t n, const int table[324], uint8_t* out, size_t cap, size_t* out_len) {
    size_t i = 0, k = 0, len;
    while (i < n) {
        if (k == cap) return -2;
        uint32_t cp = s[i];
        if (s[i] < 0x80) len = 1;
        else if ((s[i] & 0xE0) == 0xC0 && i + 1 < n) { cp = ((s[i] & 0x1Fu) << 6) | (s[i + 1] & 0x3Fu); len = 2; }
        else return -1; // every stand-in is below U+0800
        if (cp >= 324 || table[cp] < 0) return -1;
        out[k++] = (uint8_t)table[cp];
        i += len;
    }
    *out_len = k;
    return 0;
}

// A minimal map bytes -> id for building (open addressing over tok_bytes_hash).
typedef struct { uint8_t** key; size_t* len; uint32_t* id; size_t mask; } BytesMap;

static void bytes_map_init(BytesMap* m, size_t n) {
    size_t slots = 1;
    while (slots < 2 * n) slots *= 2;
    m->key = (uint8_t**)malloc_or_die(slots * sizeof(uint8_t*));
    m->len = (size_t*)malloc_or_die(slots * sizeof(size_t));
    m->id = (uint32_t*)malloc_or_die(slots * sizeof(uint32_t));
    for (size_t i = 0; i < slots; i++) m->key[i] = NULL;
    m->mask = slots - 1;
}

// Returns the slot of `key`: its id if present, else the empty slot where it would go.
static size_t bytes_map_slot(const BytesMap* m, const uint8_t* key, size_t len) {
    size_t i = (size_t)tok_bytes_hash(key, len) & m->mask;
    while (m->key[i] && !(m->len[i] == len && memcmp(m->key[i], key, len) == 0)) i = (i + 1) & m->mask;
    return i;
}

// Parses one JSON string at s[*i] (which must be '"') into UTF-8 in out; returns its length.
static size_t parse_json_string(const uint8_t* s, size_t n, size_t* i, uint8_t* out, size_t cap, const char* path) {
    if (*i >= n || s[*i] != '"') die("%s: expected a JSON string at byte %zu", path, *i);
    size_t k = 0, p = *i + 1;
    while (p < n && s[p] != '"') {
        if (k + 4 > cap) die("%s: %s", path, "JSON string too long for a token");
        if (s[p] != '\\') { out[k++] = s[p++]; continue; }
        if (++p >= n) break;
        char c = (char)s[p++];
        switch (c) {
            case 'n': out[k++] = '\n'; break;
            case 't': out[k++] = '\t'; break;
            case 'r': out[k++] = '\r'; break;
            case 'b': out[k++] = '\b'; break;
            case 'f': out[k++] = '\f'; break;
            case 'u': {
                uint32_t cp = 0;
                for (int d = 0; d < 4; d++, p++) {
                    if (p >= n || !isxdigit(s[p])) die("%s: %s", path, "bad \\u escape in JSON");
                    cp = 16 * cp + (uint32_t)(isdigit(s[p]) ? s[p] - '0' : (tolower(s[p]) - 'a' + 10));
                }
                if (cp >= 0xD800 && cp <= 0xDFFF) die("%s: %s", path, "surrogate \\u escape: not a GPT-2 token");
                k += utf8_put(out + k, cp);
                break;
            }
            default: out[k++] = (uint8_t)c; // \" \\ \/
        }
    }
    if (p >= n) die("%s: %s", path, "unterminated JSON string");
    *i = p + 1;
    return k;
}

static void skip_space(const uint8_t* s, size_t n, size_t* i) { while (*i < n && isspace(s[*i])) (*i)++; }

static int cmd_build(const char* json_path, const char* bpe_path, const char* out_path) {
    int table[324];
    unicode_to_byte_table(table);
    size_t n;
    uint8_t* js = read_file(json_path, &n);
    // encoder.json: {"token string": id, ...}; ids must be exactly 0 .. V-1
    size_t cap = 1 << 16, count = 0;
    uint8_t** tok_bytes = (uint8_t**)malloc_or_die(cap * sizeof(uint8_t*));
    size_t* tok_len = (size_t*)malloc_or_die(cap * sizeof(size_t));
    for (size_t k = 0; k < cap; k++) tok_bytes[k] = NULL;
    uint32_t V = 0, eot = TOK_NONE;
    size_t i = 0;
    skip_space(js, n, &i);
    if (i >= n || js[i] != '{') die("%s: %s", json_path, "not a JSON object (expected GPT-2's encoder.json)");
    i++;
    uint8_t str[1024], raw[1024];
    for (;;) {
        skip_space(js, n, &i);
        if (i < n && js[i] == '}') break;
        size_t slen = parse_json_string(js, n, &i, str, sizeof(str), json_path), rlen;
        skip_space(js, n, &i);
        if (i >= n || js[i] != ':') die("%s: %s", json_path, "expected ':' after a key");
        i++;
        skip_space(js, n, &i);
        uint64_t id = 0;
        size_t digits = 0;
        while (i < n && isdigit(js[i]) && id < (1u << 24)) { id = 10 * id + (js[i++] - '0'); digits++; }
        if (digits == 0 || id >= cap) die("%s: %s", json_path, "token id missing or too large");
        if (tok_bytes[id]) die("%s: %s", json_path, "a token id appears twice");
        if (slen == strlen(EOT_TEXT) && memcmp(str, EOT_TEXT, slen) == 0) {
            eot = (uint32_t)id; memcpy(raw, str, slen); rlen = slen;
        } else if (token_string_to_bytes(str, slen, table, raw, sizeof(raw), &rlen) != 0) {
            die("%s: token string '%s' uses a character outside GPT-2's byte alphabet", json_path, (const char*)str);
        }
        if (rlen == 0 || rlen > 255) die("%s: %s", json_path, "a token is empty or longer than 255 bytes");
        tok_bytes[id] = (uint8_t*)malloc_or_die(rlen);
        memcpy(tok_bytes[id], raw, rlen);
        tok_len[id] = rlen;
        count++;
        if (id + 1 > V) V = (uint32_t)id + 1;
        skip_space(js, n, &i);
        if (i < n && js[i] == ',') i++;
    }
    free(js);
    if (count != V) die("%s: %s", json_path, "token ids are not exactly 0 .. V-1");
    if (eot == TOK_NONE) die("%s: %s", json_path, "no <|endoftext|> token");
    // byte-level BPE starts every word from single bytes: all 256 must be tokens
    int has_byte[256] = {0};
    for (uint32_t id = 0; id < V; id++) if (tok_len[id] == 1 && id != eot) has_byte[tok_bytes[id][0]] = 1;
    for (int b = 0; b < 256; b++)
        if (!has_byte[b]) die("%s: no single-byte token for byte 0x%02x (GPT-2's encoder.json has all 256)", json_path, b);
    BytesMap map;
    bytes_map_init(&map, V);
    for (uint32_t id = 0; id < V; id++) {
        size_t s = bytes_map_slot(&map, tok_bytes[id], tok_len[id]);
        if (map.key[s]) die("%s: %s", json_path, "two tokens have the same bytes");
        map.key[s] = tok_bytes[id]; map.len[s] = tok_len[id]; map.id[s] = id;
    }

    // vocab.bpe: "#version: 0.2", then one merge "left right" per line, in rank order
    uint8_t* bpe = read_file(bpe_path, &n);
    size_t merges_cap = 1 << 16, M = 0;
    uint32_t* merges = (uint32_t*)malloc_or_die(3 * merges_cap * sizeof(uint32_t));
    uint8_t* made = (uint8_t*)malloc_or_die(V); // made[id]: some merge already makes token id
    memset(made, 0, V);
    size_t line = 0;
    i = 0;
    while (i < n) {
        size_t end = i;
        while (end < n && bpe[end] != '\n') end++;
        line++;
        const uint8_t* l = bpe + i;
        size_t llen = end - i;
        i = end + 1;
        if (llen == 0 || (line == 1 && l[0] == '#')) continue;
        const uint8_t* sp = (const uint8_t*)memchr(l, ' ', llen);
        if (!sp) die("%s: line %zu has no space between the two parts of a merge", bpe_path, line);
        uint8_t a[255], b[255], ab[510]; // a token is at most 255 bytes (its length is a uint8)
        size_t alen, blen;
        int ra = token_string_to_bytes(l, (size_t)(sp - l), table, a, sizeof(a), &alen);
        int rb = token_string_to_bytes(sp + 1, llen - (size_t)(sp - l) - 1, table, b, sizeof(b), &blen);
        if (ra == -2 || rb == -2) die("%s: line %zu: a merge part longer than 255 bytes is not a token", bpe_path, line);
        if (ra != 0 || rb != 0) die("%s: line %zu: a merge uses a character outside GPT-2's byte alphabet", bpe_path, line);
        memcpy(ab, a, alen); memcpy(ab + alen, b, blen);
        size_t sa = bytes_map_slot(&map, a, alen), sb = bytes_map_slot(&map, b, blen);
        size_t sab = bytes_map_slot(&map, ab, alen + blen);
        if (!map.key[sa] || !map.key[sb] || !map.key[sab])
            die("%s: line %zu: a merge's parts or result is not in %s", bpe_path, line, json_path);
        // each merge makes a new token (so a pair cannot repeat either, and there are fewer
        // merges than tokens, as tokenizer_init requires)
        if (made[map.id[sab]]) die("%s: line %zu: token %u is made twice (each merge makes a new token)", bpe_path, line, map.id[sab]);
        made[map.id[sab]] = 1;
        if (M == merges_cap) { merges_cap *= 2; merges = (uint32_t*)tok_xrealloc(merges, 3 * merges_cap * sizeof(uint32_t), "merges"); }
        merges[3 * M] = map.id[sa]; merges[3 * M + 1] = map.id[sb]; merges[3 * M + 2] = map.id[sab];
        M++;
    }
    free(bpe); free(made);
    if (M == 0) die("%s: no merges (expected GPT-2's vocab.bpe: a '#version' line, then one merge 'left right' per line)", bpe_path);

    // write to OUT.tmp.PID, then rename: a half-written tokenizer file never appears, and a
    // failed write (a full disk, ulimit -f) removes the temp (die, or remove_created at exit)
    char tmp[4200];
    make_parent_dirs(out_path);
    FILE* f = open_for_atomic_write(out_path, tmp, sizeof(tmp));
    int32_t header[256];
    memset(header, 0, sizeof(header));
    header[0] = TOKENIZER_MAGIC; header[1] = TOKENIZER_VERSION; header[2] = (int32_t)V;
    header[3] = (int32_t)eot; header[4] = (int32_t)M;
    fwrite_or_die(header, sizeof(int32_t), 256, f, tmp);
    for (uint32_t id = 0; id < V; id++) {
        uint8_t len = (uint8_t)tok_len[id];
        fwrite_or_die(&len, 1, 1, f, tmp);
        fwrite_or_die(tok_bytes[id], 1, len, f, tmp);
    }
    fwrite_or_die(merges, sizeof(uint32_t), 3 * M, f, tmp);
    if (fflush(f) != 0) die("%s: write failed (%s)", tmp, strerror(errno));
    // load it back before it takes the real name: every consistency check of tokenizer_init
    Tokenizer t;
    if (tokenizer_init(&t, tmp) != 0) die("%s: %s", tmp, "vanished after writing");
    tokenizer_free(&t);
    finish_atomic_write(f, tmp, out_path); // fsync, close, rename
    created_clear(); // the folders made for it now hold it
    printf("wrote %s: %u tokens, %zu merges, eot %u\n", out_path, V, M, eot);
    for (uint32_t id = 0; id < V; id++) free(tok_bytes[id]);
    free(tok_bytes); free(tok_len); free(merges);
    free(map.key); free(map.len); free(map.id);
    return 0;
}

// ----------------------------------------------------------------------------
// shards: text files -> llm.c token shards, replaced whole or not at all (data/dataset.h)

// Writes one split's shards into the staging folder. A shard is closed at shard_tokens only once
// SHARD_MIN_TOKENS more tokens have arrived (held back in `tail`): so no shard but a split's only
// one is shorter than SHARD_MIN_TOKENS, and at the end a shorter tail joins the last shard, which
// then holds up to shard_tokens + SHARD_MIN_TOKENS - 1 tokens.
typedef struct {
    const char* stage;      // the staging folder PREFIX.tmp.PID
    const char* base;       // the prefix's name part: shards are base_SPLIT_NNNNNN.bin
    const char* split;      // "train" or "val"
    size_t shard_tokens;    // tokens per shard (the last one may be shorter or a bit longer)
    uint16_t tail[SHARD_MIN_TOKENS]; size_t tail_len; // past shard_tokens, not yet placed
    uint8_t tail_flags[SHARD_MIN_TOKENS];                // (flagged: theirs)
    int flagged;            // version 2 (`sft`): a loss flag per token, written after the tokens
    uint8_t* flags; size_t flags_cap; // the open shard's flags (flagged)
    uint64_t counted;       // tokens flagged 1 in the split (flagged)
    int index;              // current shard number
    size_t count;           // tokens in the current shard
    uint64_t total;
    FILE* f;
    char path[4096];        // the open shard, in the staging folder
    uint16_t buf[1 << 15];
    size_t buf_len;
    PathList written;       // file names of the finished shards, for dataset_commit
} ShardWriter;

static void shard_flush(ShardWriter* w) {
    fwrite_or_die(w->buf, sizeof(uint16_t), w->buf_len, w->f, w->path);
    w->buf_len = 0;
}

static void shard_close(ShardWriter* w) {
    if (!w->f) return;
    shard_flush(w);
    size_t counted = 0;
    if (w->flagged) { // the flags follow the tokens (gptc/shard.h, version 2)
        fwrite_or_die(w->flags, 1, w->count, w->f, w->path);
        for (size_t i = 0; i < w->count; i++) counted += w->flags[i];
    }
    int32_t header[SHARD_HEADER_INTS];
    shard_header(header, (long)w->count, w->flagged);
    if (fseek(w->f, 0, SEEK_SET) != 0) die("%s: seek failed: %s", w->path, strerror(errno));
    fwrite_or_die(header, sizeof(int32_t), SHARD_HEADER_INTS, w->f, w->path);
    // synced now: dataset_commit's folder syncs then publish complete files
    if (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0 || fclose(w->f) != 0)
        die("%s: write failed (%s)", w->path, strerror(errno));
    if (w->flagged) printf("  wrote %s (%zu tokens, %zu of them counted targets)\n", w->path, w->count, counted);
    else printf("  wrote %s (%zu tokens)\n", w->path, w->count);
    path_list_add(&w->written, strrchr(w->path, '/') + 1);
    w->f = NULL;
    w->index++;
    w->count = 0;
}

// Appends one token (and its loss flag, when the shards have them) to the open shard, opening the
// next one if none is.
static void shard_put(ShardWriter* w, uint16_t id, uint8_t flag) {
    if (!w->f) { // open lazily: no empty trailing shard
        format_path(w->path, sizeof(w->path), "%s/%s_%s_%06d.bin", w->stage, w->base, w->split, w->index);
        w->f = fopen(w->path, "wb");
        if (!w->f) die("%s: cannot create: %s", w->path, strerror(errno));
        path_list_add(&g_created, w->path);
        int32_t header[SHARD_HEADER_INTS];
        memset(header, 0, sizeof(header)); // the real header is written on close
        fwrite_or_die(header, sizeof(int32_t), SHARD_HEADER_INTS, w->f, w->path);
    }
    w->buf[w->buf_len++] = id;
    if (w->flagged) {
        if (w->count == w->flags_cap) {
            w->flags_cap = w->flags_cap ? 2 * w->flags_cap : 1 << 16;
            w->flags = (uint8_t*)tok_xrealloc(w->flags, w->flags_cap, "loss flags");
        }
        w->flags[w->count] = flag;
        w->counted += flag;
    }
    w->count++;
    if (w->buf_len == sizeof(w->buf) / sizeof(w->buf[0])) shard_flush(w);
}

// Appends n tokens, each with the loss flag `flag` (1: a target the loss counts; ignored by
// shards without flags).
static void shard_write(ShardWriter* w, const uint32_t* ids, size_t n, uint8_t flag) {
    for (size_t i = 0; i < n; i++) {
        uint16_t id = (uint16_t)ids[i]; // vocab <= 65536 checked in dataset_begin
        w->total++;
        if (w->count < w->shard_tokens) { shard_put(w, id, flag); continue; }
        // the shard is full: the next tokens start a new one only once there are enough of them
        w->tail_flags[w->tail_len] = flag;
        w->tail[w->tail_len++] = id;
        if (w->tail_len == SHARD_MIN_TOKENS) {
            shard_close(w);
            for (size_t k = 0; k < w->tail_len; k++) shard_put(w, w->tail[k], w->tail_flags[k]);
            w->tail_len = 0;
        }
    }
}

// End of the split: a short tail joins the last shard.
static void shard_finish(ShardWriter* w) {
    for (size_t k = 0; k < w->tail_len; k++) shard_put(w, w->tail[k], w->tail_flags[k]);
    w->tail_len = 0;
    shard_close(w);
}

// Adds a file, or every file under a folder (recursively, hidden names skipped, sorted so the
// document order and thus the train/val split never depend on the file system). Anything but
// regular files and folders (a FIFO, /dev/zero) is an error here, before any shard is written;
// read_file checks again on the opened file. `depth` bounds the recursion (a symlink loop).
static void collect_inputs(PathList* out, const char* path, int depth) {
    struct stat st;
    if (strcmp(path, "-") == 0) { path_list_add(out, path); return; }
    if (stat(path, &st) != 0) {
        if (errno == ENOENT) die("%s: no such file", path);
        die("%s: %s", path, strerror(errno));
    }
    if (S_ISREG(st.st_mode)) { path_list_add(out, path); return; }
    if (!S_ISDIR(st.st_mode)) die("%s: is %s, not a regular file or folder", path, file_kind(st.st_mode));
    if (depth > 64) die("%s: folders nested more than 64 deep (a symlink loop?)", path);
    DIR* d = opendir(path);
    if (!d) die("%s: cannot open folder: %s", path, strerror(errno));
    PathList here;
    memset(&here, 0, sizeof(here));
    struct dirent* ent;
    while ((ent = readdir(d)) != NULL) {
        if (ent->d_name[0] == '.') continue;
        char child[4096];
        if (snprintf(child, sizeof(child), "%s/%s", path, ent->d_name) >= (int)sizeof(child))
            die("%.100s...: path too long", path);
        path_list_add(&here, child);
    }
    closedir(d);
    qsort(here.paths, here.n, sizeof(char*), compare_strings);
    for (size_t i = 0; i < here.n; i++) collect_inputs(out, here.paths[i], depth + 1);
    path_list_free(&here);
}

typedef struct {
    size_t shard_tokens, val_every, batch_bytes;
    int paragraphs;
    int replace;      // --replace: an existing dataset under the prefix may be replaced (whole)
} ShardOptions;

// A dataset being written (shards and sft): its input files, its folder, name part and staging
// folder, and the writers of its two splits.
typedef struct {
    const char* prefix;
    PathList files;
    char dir[4096], stage[4096];
    const char* base;
    ShardWriter* w[2]; // [0] train, [1] val
} Dataset;

// Steps 1-2 above for OUT_PREFIX: the inputs collected, a dataset already there refused without
// --replace (before hours of encoding, not after), the staging folder made, the writers opened
// (flagged: version-2 shards with a loss flag per token).
static void dataset_begin(Dataset* d, const Tokenizer* t, const char* tok_path, const ShardOptions* o,
                          const char* prefix, char** inputs, int n_inputs, int flagged) {
    need_merges(t, tok_path);
    if (t->vocab_size > 65536) die("%s: vocab_size %u does not fit uint16 shards", tok_path, t->vocab_size);
    if (strlen(prefix) > MAX_PREFIX_BYTES)
        die("%.100s...: output prefix longer than %d bytes", prefix, MAX_PREFIX_BYTES);
    memset(d, 0, sizeof(*d));
    d->prefix = prefix;
    for (int i = 0; i < n_inputs; i++) collect_inputs(&d->files, inputs[i], 0);
    if (d->files.n == 0) die("%s: %s", n_inputs ? inputs[0] : "(no input)", "no input files");
    d->base = split_prefix(prefix, d->dir, sizeof(d->dir));
    PathList old;
    memset(&old, 0, sizeof(old));
    dataset_list(d->dir, d->base, &old, 1);
    if (old.n > 0 && !o->replace)
        die("%s: a dataset is already there (%zu shards: %s/%s, ...): give --replace to replace it whole, "
            "or another OUT_PREFIX", prefix, old.n, d->dir, old.paths[0]);
    path_list_free(&old);
    catch_stop_signals();
    make_parent_dirs(prefix);
    format_path(d->stage, sizeof(d->stage), "%s.tmp.%ld", prefix, (long)getpid());
    if (mkdir(d->stage, 0755) != 0)
        die("%s: cannot create the staging folder: %s%s", d->stage, strerror(errno),
            errno == EEXIST ? " (left by a killed run: remove it)" : "");
    path_list_add(&g_created, d->stage);
    for (int k = 0; k < 2; k++) {
        ShardWriter* w = d->w[k] = (ShardWriter*)malloc_or_die(sizeof(ShardWriter));
        memset(w, 0, sizeof(ShardWriter));
        w->stage = d->stage;
        w->base = d->base;
        w->split = k == 0 ? "train" : "val";
        w->shard_tokens = o->shard_tokens;
        w->flagged = flagged;
    }
}

// The end of both splits (their short tails placed), then step 3: the new shards in place of
// the old dataset (dataset_commit). `units`/`n_units`: what the inputs held ("documents",
// "records"), for the errors. Returns how many old shards were replaced.
static size_t dataset_end(Dataset* d, const ShardOptions* o, const char* units, size_t n_units) {
    ShardWriter** w = d->w;
    shard_finish(w[0]);
    shard_finish(w[1]);
    // never a half-usable dataset: these exits remove the staging folder (remove_created)
    if (n_units == 0) die("%s: no %s found in the inputs", d->files.paths[0], units);
    if (w[0]->total == 0 || w[1]->total == 0)
        die("%s: only %zu %s, so the %s split is empty (give more %s, --val-every N%s)", d->prefix, n_units, units,
            w[0]->total == 0 ? "train" : "val", units, w[0]->flagged ? "" : ", or --doc-split paragraphs");
    for (int k = 0; k < 2; k++)
        if (w[k]->total < SHARD_MIN_TOKENS)
            fprintf(stderr, "warning: %s: the %s split is only %llu tokens, less than one batch of B=64, T=1024 (%d): "
                    "train_gpt can use it only with B*T+1 <= %llu\n", d->prefix, w[k]->split,
                    (unsigned long long)w[k]->total, SHARD_MIN_TOKENS, (unsigned long long)w[k]->total);
    stop_if_signalled(d->prefix); // the last check: dataset_commit runs to its end
    PathList fresh;
    memset(&fresh, 0, sizeof(fresh));
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < w[k]->written.n; i++) path_list_add(&fresh, w[k]->written.paths[i]);
    size_t replaced = dataset_commit(d->dir, d->base, d->stage, &fresh, o->replace, d->prefix);
    path_list_free(&fresh);
    return replaced;
}

// the last lines of a run: where the dataset is, and what it replaced
static void dataset_free(Dataset* d, size_t replaced) {
    printf("%s: in place as %s_{train,val}_NNNNNN.bin", d->w[0]->flagged ? "sft" : "shards", d->prefix);
    if (replaced > 0) printf(" (the previous dataset's %zu shard(s) removed)", replaced);
    printf("\n");
    for (int k = 0; k < 2; k++) {
        path_list_free(&d->w[k]->written);
        free(d->w[k]->flags);
        free(d->w[k]);
    }
    path_list_free(&d->files);
}

static int cmd_shards(const Tokenizer* t, const char* tok_path, Encoder* e, const ShardOptions* o,
                      const char* prefix, char** inputs, int n_inputs) {
    Dataset ds;
    dataset_begin(&ds, t, tok_path, o, prefix, inputs, n_inputs, 0);
    PathList files = ds.files;
    ShardWriter** w = ds.w;
    printf("shards: %zu input files -> %s_{train,val}_NNNNNN.bin (every %zu%s document is val, %zu tokens per shard)\n",
           files.n, prefix, o->val_every, o->val_every == 1 ? "st" : o->val_every == 2 ? "nd" : o->val_every == 3 ? "rd" : "th",
           o->shard_tokens);
    double t0 = wall_seconds();
    size_t n_docs = 0, n_val_docs = 0, n_used_files = 0;
    uint64_t total_bytes = 0;
    size_t next_file = 0;
    while (next_file < files.n) {
        // Batch: read files until ~batch_bytes of text, encode it all in parallel, write in order.
        SegmentList docs;
        memset(&docs, 0, sizeof(docs));
        uint8_t** buffers = (uint8_t**)malloc_or_die(files.n * sizeof(uint8_t*));
        size_t n_buffers = 0, batch = 0;
        while (next_file < files.n && batch < o->batch_bytes) {
            stop_if_signalled(prefix);
            const char* path = files.paths[next_file++];
            size_t len;
            uint8_t* text = read_file(path, &len);
            if (len == 0) { fprintf(stderr, "warning: %s: empty file, skipped\n", path); free(text); continue; }
            if (memchr(text, 0, len)) {
                fprintf(stderr, "warning: %s: contains NUL bytes, looks binary, skipped\n", path);
                free(text);
                continue;
            }
            size_t bad = count_invalid_utf8(text, len);
            if (bad) fprintf(stderr, "warning: %s: %zu bytes of invalid UTF-8, kept as raw byte tokens\n", path, bad);
            buffers[n_buffers++] = text;
            batch += len;
            total_bytes += len;
            n_used_files++;
            split_parts(text, len, o->paragraphs, segment_list_add, &docs);
        }
        encode_segments(e, docs.segs, docs.n);
        for (size_t d = 0; d < docs.n; d++) {
            stop_if_signalled(prefix);
            // deterministic split: documents 0, N, 2N, ... are validation
            ShardWriter* out = w[n_docs % o->val_every == 0 ? 1 : 0];
            if (out == w[1]) n_val_docs++;
            shard_write(out, &t->eot, 1, 1);
            shard_write(out, docs.segs[d].ids.ids, docs.segs[d].ids.len, 1);
            tokenids_free(&docs.segs[d].ids);
            n_docs++;
        }
        for (size_t b = 0; b < n_buffers; b++) free(buffers[b]);
        free(buffers); free(docs.segs); free(docs.eot_after);
    }
    if (n_docs == 0) die("%s: no text found in the inputs (all empty or binary)", inputs[0]);
    double secs = wall_seconds() - t0;
    size_t replaced = dataset_end(&ds, o, "documents", n_docs);
    printf("shards: %zu documents from %zu files, %.2f MB of text: train %llu tokens in %zu shard(s), "
           "val %llu tokens in %zu shard(s) (%zu documents); %.1f MB/s\n",
           n_docs, n_used_files, total_bytes / 1e6, (unsigned long long)w[0]->total, w[0]->written.n,
           (unsigned long long)w[1]->total, w[1]->written.n, n_val_docs, total_bytes / 1e6 / secs);
    dataset_free(&ds, replaced);
    return 0;
}

// ----------------------------------------------------------------------------
// sft: JSONL records -> shards with a loss mask (supervised fine-tuning)
//
// Each line of the inputs is one JSON object with string fields "prompt" and "completion" (other
// fields are ignored; blank lines are skipped); a line that is not such an object is an error
// naming the file and line. Every record goes to one split (records 0, N, 2N, ... to val) as
//   prompt tokens (flag 0) | completion tokens (flag 1) | <|endoftext|> (flag 1)
// after one <|endoftext|> (flag 0) that starts each split's stream, so every record's context
// starts with <|endoftext|>, as a document's does in `shards`, and the model learns to end its
// answer: train_gpt counts the loss of the completion and of its end token only. Prompt and
// completion are encoded apart (the ids do not depend on where one ends and the other starts),
// and "<|endoftext|>" inside them is plain text (as in `encode`), never a separator. Records are
// packed one after another like documents, so a training window may start inside a record.

#ifdef USE_JANSSON
// one line of a JSONL file parsed (duplicate keys refused); NULL and a one-line reason in why
static json_t* json_line(const uint8_t* line, size_t len, char* why, size_t cap) {
    json_error_t err;
    json_t* j = json_loadb((const char*)line, len, JSON_REJECT_DUPLICATES, &err);
    if (!j) {
        for (char* c = err.text; *c; c++) if ((unsigned char)*c < 0x20) *c = '?'; // one line
        snprintf(why, cap, "not valid JSON: %s (column %d)", err.text, err.column);
    }
    return j;
}

// the fields of one line; NULL and a one-line reason (in why) when it is not a record
static json_t* sft_record(const uint8_t* line, size_t len, char* why, size_t cap) {
    json_t* j = json_line(line, len, why, cap);
    if (!j) return NULL;
    const char* missing = !json_is_object(j) ? "not a JSON object"
                        : !json_is_string(json_object_get(j, "prompt")) ? "no \"prompt\" string"
                        : !json_is_string(json_object_get(j, "completion")) ? "no \"completion\" string" : NULL;
    if (missing) {
        snprintf(why, cap, "%s (a record is {\"prompt\": \"...\", \"completion\": \"...\"})", missing);
        json_decref(j);
        return NULL;
    }
    return j;
}

// A batch of records: each one's prompt and completion as segments 2r and 2r+1 (keep_empty: an
// empty prompt or completion is still a segment), the parsed objects that hold their text.
typedef struct { SegmentList segs; json_t** recs; size_t n, cap, bytes; } SftBatch;

// Encodes the batch (in parallel) and writes its records in order; *n_rec counts records so far.
static void sft_flush(SftBatch* b, Encoder* e, const Tokenizer* t, ShardWriter** w, const ShardOptions* o,
                      size_t* n_rec, size_t* n_val) {
    encode_segments(e, b->segs.segs, b->segs.n);
    for (size_t r = 0; r < b->n; r++) {
        ShardWriter* out = w[*n_rec % o->val_every == 0 ? 1 : 0];
        *n_val += out == w[1];
        if (out->total == 0) shard_write(out, &t->eot, 1, 0); // the split's stream starts here
        Segment* prompt = &b->segs.segs[2 * r];
        shard_write(out, prompt[0].ids.ids, prompt[0].ids.len, 0);
        shard_write(out, prompt[1].ids.ids, prompt[1].ids.len, 1);
        shard_write(out, &t->eot, 1, 1);
        tokenids_free(&prompt[0].ids);
        tokenids_free(&prompt[1].ids);
        json_decref(b->recs[r]);
        (*n_rec)++;
    }
    b->segs.n = 0; b->n = 0; b->bytes = 0;
}
#endif

static int cmd_sft(const Tokenizer* t, const char* tok_path, Encoder* e, const ShardOptions* o,
                   const char* prefix, char** inputs, int n_inputs) {
#ifndef USE_JANSSON
    (void)t; (void)tok_path; (void)e; (void)o; (void)prefix; (void)inputs; (void)n_inputs;
    die("sft: this ./tokenizer was built without Jansson, which reads the JSONL (apt-get install "
        "libjansson-dev, then make tokenizer)");
#else
    Dataset ds;
    dataset_begin(&ds, t, tok_path, o, prefix, inputs, n_inputs, 1);
    printf("sft: %zu input files -> %s_{train,val}_NNNNNN.bin (version 2: a loss flag per token; records 0, "
           "%zu, %zu, ... are val)\n", ds.files.n, prefix, o->val_every, 2 * o->val_every);
    SftBatch b;
    memset(&b, 0, sizeof(b));
    b.segs.keep_empty = 1;
    size_t n_rec = 0, n_val = 0;
    for (size_t f = 0; f < ds.files.n; f++) {
        const char* path = ds.files.paths[f];
        size_t len, line_no = 0;
        uint8_t* text = read_file(path, &len);
        for (size_t pos = 0; pos < len; ) {
            stop_if_signalled(prefix);
            const uint8_t* nl = (const uint8_t*)memchr(text + pos, '\n', len - pos);
            size_t end = nl ? (size_t)(nl - text) : len, n = end - pos;
            const uint8_t* line = text + pos;
            pos = end + 1;
            line_no++;
            size_t k = 0;
            while (k < n && isspace(line[k])) k++;
            if (k == n) continue; // a blank line
            char why[300];
            json_t* rec = sft_record(line, n, why, sizeof(why));
            if (!rec) die("%s:%zu: %s", path, line_no, why);
            if (b.n == b.cap) {
                b.cap = b.cap ? 2 * b.cap : 1024;
                b.recs = (json_t**)tok_xrealloc(b.recs, b.cap * sizeof(json_t*), "records");
            }
            b.recs[b.n++] = rec;
            for (int field = 0; field < 2; field++) {
                json_t* v = json_object_get(rec, field == 0 ? "prompt" : "completion");
                segment_list_add(&b.segs, (const uint8_t*)json_string_value(v), json_string_length(v), 0);
                b.bytes += json_string_length(v);
            }
            if (b.bytes >= o->batch_bytes) sft_flush(&b, e, t, ds.w, o, &n_rec, &n_val);
        }
        sft_flush(&b, e, t, ds.w, o, &n_rec, &n_val);
        free(text);
    }
    free(b.recs); free(b.segs.segs); free(b.segs.eot_after);
    size_t replaced = dataset_end(&ds, o, "records", n_rec);
    ShardWriter** w = ds.w;
    printf("sft: %zu records from %zu files: train %llu tokens (%llu counted) in %zu shard(s), val %llu tokens "
           "(%llu counted) in %zu shard(s) (%zu records)\n", n_rec, ds.files.n, (unsigned long long)w[0]->total,
           (unsigned long long)w[0]->counted, w[0]->written.n, (unsigned long long)w[1]->total,
           (unsigned long long)w[1]->counted, w[1]->written.n, n_val);
    dataset_free(&ds, replaced);
    return 0;
#endif
}

// ----------------------------------------------------------------------------
// eval: multiple-choice JSONL records -> an eval file (gptc/eval.h reads it: llm.c's format)
//
// Each line of the inputs is one JSON object with a string "ctx", an array "endings" of at least
// two strings and an integer "label" (the index of the right ending): HellaSwag's jsonl as it is
// (other fields are ignored; blank lines are skipped); a line that is not such an object is an
// error naming the file and line. Rendered as llm.c's dev/data/hellaswag.py renders HellaSwag: the
// context's tokens, and each ending's as the tokens of " " + ending (GPT-2 keeps a word's leading
// space in its token); "<|endoftext|>" inside them is plain text (as in `encode`). The file:
//   int32 header[256] = {20240522, 1, N, the longest example's bytes, 0...}, then per example the
//   uint16 stream 65535, bytes, index, label, K, ctx_len, ctx..., K times (len, tokens...)
// so N <= 65536 records (the index is a uint16), none of more than 65534 bytes, and a context of
// at least one token. Written to OUT.tmp.PID, then renamed (gptc/utils.h's atomic write).

#define EVAL_FILE_MAGIC 20240522
#define EVAL_FILE_MAX_RECORDS 65536
#define EVAL_FILE_MAX_BYTES 65534

#ifdef USE_JANSSON
// the fields of one line, checked; NULL and a one-line reason (in why) when it is not a record
static json_t* eval_record(const uint8_t* line, size_t len, char* why, size_t cap) {
    json_t* j = json_line(line, len, why, cap);
    if (!j) return NULL;
    json_t* ends = json_object_get(j, "endings");
    json_t* label = json_object_get(j, "label");
    size_t K = json_is_array(ends) ? json_array_size(ends) : 0, strings = 0;
    for (size_t k = 0; k < K; k++) strings += json_is_string(json_array_get(ends, k));
    const char* bad = !json_is_object(j) ? "not a JSON object"
                    : !json_is_string(json_object_get(j, "ctx")) ? "no \"ctx\" string"
                    : !json_is_array(ends) ? "no \"endings\" array"
                    : K < 2 ? "fewer than 2 endings"
                    : strings != K ? "an ending is not a string"
                    : !json_is_integer(label) ? "no integer \"label\""
                    : json_integer_value(label) < 0 || json_integer_value(label) >= (json_int_t)K
                      ? "\"label\" is not the index of an ending" : NULL;
    if (bad) {
        snprintf(why, cap, "%s (a record is {\"ctx\": \"...\", \"endings\": [\"...\", ...], "
                 "\"label\": N})", bad);
        json_decref(j);
        return NULL;
    }
    return j;
}

// appends n bytes to a growing buffer
static void bytes_add(uint8_t** buf, size_t* len, size_t* cap, const void* src, size_t n) {
    if (n == 0) return;
    while (*len + n > *cap) {
        *cap = *cap ? 2 * *cap : 1 << 16;
        *buf = (uint8_t*)tok_xrealloc(*buf, *cap, "records");
    }
    memcpy(*buf + *len, src, n);
    *len += n;
}
#endif

static int cmd_eval(const Tokenizer* t, const char* tok_path, Encoder* e, const char* out_path,
                    char** inputs, int n_inputs) {
#ifndef USE_JANSSON
    (void)t; (void)tok_path; (void)e; (void)out_path; (void)inputs; (void)n_inputs;
    die("eval: this ./tokenizer was built without Jansson, which reads the JSONL (apt-get install "
        "libjansson-dev, then make tokenizer)");
#else
    need_merges(t, tok_path);
    // every record's texts, one after another in one buffer: the context, then " " + each ending
    // (text r's bytes start at off[r]); per record: K, the label, and where it came from
    uint8_t* text = NULL;
    size_t text_len = 0, text_cap = 0, n_text = 0, n_rec = 0, cap = 0, *off = NULL;
    uint32_t* rec = NULL; // (4 per record) K, label, input file, line
    for (int f = 0; f < n_inputs; f++) {
        size_t len, line_no = 0;
        uint8_t* in = read_file(inputs[f], &len);
        for (size_t pos = 0; pos < len; ) {
            const uint8_t* nl = (const uint8_t*)memchr(in + pos, '\n', len - pos);
            size_t end = nl ? (size_t)(nl - in) : len, n = end - pos, k = 0;
            const uint8_t* line = in + pos;
            pos = end + 1;
            line_no++;
            while (k < n && isspace(line[k])) k++;
            if (k == n) continue; // a blank line
            char why[300];
            json_t* j = eval_record(line, n, why, sizeof(why));
            if (!j) die("%s:%zu: %s", inputs[f], line_no, why);
            if (n_rec == EVAL_FILE_MAX_RECORDS) {
                die("%s:%zu: more than %d records (the eval file's index field is a uint16)", inputs[f],
                    line_no, EVAL_FILE_MAX_RECORDS);
            }
            json_t* ends = json_object_get(j, "endings");
            size_t K = json_array_size(ends);
            if (n_text + K + 1 > cap) {
                cap = 2 * (n_text + K + 1);
                off = (size_t*)tok_xrealloc(off, (cap + 1) * sizeof(size_t), "records");
                rec = (uint32_t*)tok_xrealloc(rec, 4 * cap * sizeof(uint32_t), "records");
            }
            json_t* ctx = json_object_get(j, "ctx");
            off[n_text++] = text_len;
            bytes_add(&text, &text_len, &text_cap, json_string_value(ctx), json_string_length(ctx));
            for (size_t k2 = 0; k2 < K; k2++) {
                json_t* s = json_array_get(ends, k2);
                off[n_text++] = text_len;
                bytes_add(&text, &text_len, &text_cap, " ", 1);
                bytes_add(&text, &text_len, &text_cap, json_string_value(s), json_string_length(s));
            }
            uint32_t r[4] = {(uint32_t)K, (uint32_t)json_integer_value(json_object_get(j, "label")),
                             (uint32_t)f, (uint32_t)(line_no < UINT32_MAX ? line_no : UINT32_MAX)};
            memcpy(rec + 4 * n_rec++, r, sizeof(r));
            json_decref(j);
        }
        free(in);
    }
    if (n_rec == 0) die("eval: no records in %d input file(s)", n_inputs);
    off[n_text] = text_len;
    // encoded all at once (in parallel), then written example by example
    SegmentList segs;
    memset(&segs, 0, sizeof(segs));
    segs.keep_empty = 1;
    for (size_t i = 0; i < n_text; i++) segment_list_add(&segs, text + off[i], off[i + 1] - off[i], 0);
    encode_segments(e, segs.segs, segs.n);
    make_parent_dirs(out_path);
    char tmp[4200];
    FILE* out = open_for_atomic_write(out_path, tmp, sizeof(tmp));
    int32_t header[256] = {EVAL_FILE_MAGIC, 1, (int32_t)n_rec, 0};
    fwrite_or_die(header, sizeof(int32_t), 256, out, tmp);
    uint16_t* ex = (uint16_t*)malloc_or_die((EVAL_FILE_MAX_BYTES / 2 + 1) * sizeof(uint16_t));
    size_t longest = 0, kmin = SIZE_MAX, kmax = 0, s = 0;
    for (size_t r = 0; r < n_rec; r++) {
        size_t K = rec[4 * r], m = 6, bytes = 2 * (6 + K); // the fields, the endings' lengths...
        for (size_t k = 0; k <= K; k++) bytes += 2 * segs.segs[s + k].ids.len; // ...the tokens
        const char* where = inputs[rec[4 * r + 2]];
        if (segs.segs[s].ids.len == 0) {
            die("%s:%u: the context has no tokens (the eval format scores the first ending token "
                "after one)", where, rec[4 * r + 3]);
        }
        if (bytes > EVAL_FILE_MAX_BYTES) {
            die("%s:%u: the example is %zu bytes, more than the eval format's %d (a uint16 field)",
                where, rec[4 * r + 3], bytes, EVAL_FILE_MAX_BYTES);
        }
        uint16_t head[6] = {65535, (uint16_t)bytes, (uint16_t)r, (uint16_t)rec[4 * r + 1],
                            (uint16_t)K, (uint16_t)segs.segs[s].ids.len};
        memcpy(ex, head, sizeof(head));
        for (size_t k = 0; k <= K; k++, s++) {
            TokenIds* ids = &segs.segs[s].ids;
            if (k > 0) ex[m++] = (uint16_t)ids->len;
            for (size_t i = 0; i < ids->len; i++) ex[m++] = (uint16_t)ids->ids[i];
            tokenids_free(ids);
        }
        fwrite_or_die(ex, sizeof(uint16_t), m, out, tmp);
        if (2 * m > longest) longest = 2 * m;
        if (K < kmin) kmin = K;
        if (K > kmax) kmax = K;
    }
    header[3] = (int32_t)longest; // the longest example: known now, written into the header
    if (fseek(out, 12, SEEK_SET) != 0) die("%s: cannot seek: %s", tmp, strerror(errno));
    fwrite_or_die(&header[3], sizeof(int32_t), 1, out, tmp);
    finish_atomic_write(out, tmp, out_path);
    created_clear();
    printf("eval: %zu records from %d file(s) -> %s (K = %zu..%zu endings, the longest example %zu "
           "bytes)\n", n_rec, n_inputs, out_path, kmin, kmax, longest);
    free(ex); free(segs.segs); free(segs.eot_after); free(text); free(off); free(rec);
    return 0;
#endif
}

// ----------------------------------------------------------------------------
// bench: MB/s on one file, one thread and all threads

static int cmd_bench(const Tokenizer* t, const char* tok_path, const char* path, int threads, size_t chunk_bytes, int reps) {
    need_merges(t, tok_path);
    size_t n;
    uint8_t* text = read_file(path, &n);
    // each repetition starts from an empty cache: we time encoding a corpus from scratch
    double best1 = 1e30, bestN = 1e30;
    size_t n_ids = 0;
    TokenIds ids1;
    memset(&ids1, 0, sizeof(ids1));
    for (int r = 0; r < reps; r++) {
        Encoder e;
        encoder_init(&e, t, 1, chunk_bytes, 0);
        Segment seg;
        seg.text = text; seg.len = n;
        memset(&seg.ids, 0, sizeof(seg.ids));
        double t0 = wall_seconds();
        encode_segments(&e, &seg, 1);
        double dt = wall_seconds() - t0;
        if (dt < best1) best1 = dt;
        n_ids = seg.ids.len;
        tokenids_free(&ids1);
        ids1 = seg.ids;
        encoder_free(&e);
    }
    int same = 1;
    for (int r = 0; r < reps; r++) {
        Encoder e;
        encoder_init(&e, t, threads, chunk_bytes, 0);
        Segment seg;
        seg.text = text; seg.len = n;
        memset(&seg.ids, 0, sizeof(seg.ids));
        double t0 = wall_seconds();
        encode_segments(&e, &seg, 1);
        double dt = wall_seconds() - t0;
        if (dt < bestN) bestN = dt;
        if (seg.ids.len != ids1.len || memcmp(seg.ids.ids, ids1.ids, ids1.len * sizeof(uint32_t)) != 0) same = 0;
        tokenids_free(&seg.ids);
        encoder_free(&e);
    }
    printf("C single-thread: %.1f MB/s (%zu bytes -> %zu tokens, best of %d)\n", n / 1e6 / best1, n, n_ids, reps);
    printf("C %d threads:     %.1f MB/s (ids %s single-thread)\n", threads, n / 1e6 / bestN,
           same ? "identical to" : "DIFFER FROM");
    tokenids_free(&ids1);
    free(text);
    return same ? 0 : 1;
}

// ----------------------------------------------------------------------------
// main

static void usage(int status) {
    fprintf(status ? stderr : stdout,
        "usage: ./tokenizer [options] COMMAND [args]\n"
        "  encode                 stdin text -> token ids, space-separated, then a newline\n"
        "  decode                 stdin token ids (whitespace-separated) -> text\n"
        "  build ENCODER_JSON VOCAB_BPE OUT   make a tokenizer file from GPT-2's vocab files\n"
        "  shards OUT_PREFIX INPUT...         text files/folders ('-' = stdin) -> OUT_PREFIX_{train,val}_NNNNNN.bin\n"
        "  sft OUT_PREFIX JSONL...            {\"prompt\": ..., \"completion\": ...} lines ('-' = stdin) -> shards\n"
        "                                     with a loss flag per token (only the completions count)\n"
        "  eval OUT JSONL...                  {\"ctx\": ..., \"endings\": [...], \"label\": N} lines (HellaSwag's\n"
        "                                     jsonl) -> OUT, a multiple-choice eval file (llm.c's format)\n"
        "  bench FILE             encoding speed in MB/s, one thread and all threads\n"
        "options:\n"
        "  -t FILE                tokenizer file (default " DEFAULT_TOKENIZER ")\n"
        "  --threads N            threads for large inputs, 1..1024 (default: all cores)\n"
        "  --special              encode: the text <|endoftext|> becomes id 50256 (default: plain text)\n"
        "  --shard-tokens N       shards, sft: tokens per shard, 65537..2000000000 (default 100000000);\n"
        "                         a split's last shard may hold up to 65536 more (no shard < 65537)\n"
        "  --val-every N          shards, sft: documents (records) 0, N, 2N, ... go to val, 2..1e9 (default 20)\n"
        "  --doc-split MODE       shards: 'file' (default: a file is a document) or 'paragraphs'\n"
        "                         (also cut after every blank line); <|endoftext|> always cuts\n"
        "  --replace              shards, sft: replace the dataset already under OUT_PREFIX, whole\n"
        "                         (default: refuse to touch it)\n"
        "  --reps N               bench: repetitions, best is reported, 1..1000 (default 5)\n"
        "  --chunk-bytes N        parallel piece size, 4096..2^30 (default 1048576)\n"
        "  --bpe-heap             use the long-word BPE for every word (testing)\n");
    exit(status);
}

// How much of an argument to quote in an error: up to its first control character (a newline
// would break the one-line rule), at most 60 bytes, "..." marking a cut: "%.*s%s", SHOWN(s).
static int shown(const char* s) {
    int n = 0;
    while (n < 60 && s[n] && (unsigned char)s[n] >= 0x20 && s[n] != 0x7F) n++;
    return n;
}
#define SHOWN(s) shown(s), (s), ((s)[shown(s)] ? "..." : "")

// Wrong arguments for a command: one line, and where to look.
static void check_args(const char* cmd, int n_args, int lo, int hi, const char* want) {
    if (n_args - 1 < lo || n_args - 1 > hi)
        die("%s takes %s, got %d argument(s) (see ./tokenizer --help)", cmd, want, n_args - 1);
}

// A numeric flag: decimal digits only (no sign, space, 0x or exponent), overflow-checked, within
// [lo, hi]; `why` says where the bounds come from. Anything else is a one-line error.
static size_t parse_count(const char* flag, const char* value, uint64_t lo, uint64_t hi, const char* why) {
    if (!value) die("%s needs a value", flag);
    if (!value[0]) die("%s: '' is not a whole number", flag);
    uint64_t v = 0;
    int overflow = 0;
    for (const char* p = value; *p; p++) {
        if (*p < '0' || *p > '9') die("%s: '%.*s%s' is not a whole number", flag, SHOWN(value));
        if (v > (UINT64_MAX - 9) / 10) overflow = 1; // keep checking the digits, stop growing
        else v = 10 * v + (uint64_t)(*p - '0');
    }
    if (overflow || v < lo || v > hi)
        die("%s: '%.*s%s' is out of range %llu..%llu (%s)", flag, SHOWN(value), (unsigned long long)lo,
            (unsigned long long)hi, why);
    return (size_t)v;
}

int main(int argc, char** argv) {
    writes_fail_past_size_limit(); // a write past ulimit -f: EFBIG, one error line, temps removed
    atexit(remove_created);        // on any exit: what this run created and did not hand over
    const char* tok_path = DEFAULT_TOKENIZER;
    int threads = 1, special = 0, force_heap = 0, reps = 5;
#ifdef _OPENMP
    threads = omp_get_max_threads();
    if (threads > MAX_THREADS) threads = MAX_THREADS;
#endif
    size_t chunk_bytes = 1 << 20;
    ShardOptions so;
    so.shard_tokens = 100000000; so.val_every = 20; so.batch_bytes = 64u << 20; so.paragraphs = 0; so.replace = 0;
    char* args[4096];
    int n_args = 0;
    for (int i = 1; i < argc; i++) {
        const char* a = argv[i];
        const char* v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-t") == 0 || strcmp(a, "--tokenizer") == 0) { if (!v) die("%s needs a value", a); tok_path = v; i++; }
        else if (strcmp(a, "--threads") == 0) {
            threads = (int)parse_count(a, v, 1, MAX_THREADS, "each thread keeps its own ~2 MB encoder cache, "
                                       "and threads beyond the cores only cost memory");
            i++;
        }
        else if (strcmp(a, "--special") == 0) special = 1;
        else if (strcmp(a, "--bpe-heap") == 0) force_heap = 1;
        else if (strcmp(a, "--replace") == 0) so.replace = 1;
        else if (strcmp(a, "--shard-tokens") == 0) {
            so.shard_tokens = parse_count(a, v, SHARD_MIN_TOKENS, SHARD_MAX_TOKENS, "a shard holds one batch of "
                                          "B=64, T=1024, and its count fits the header's int32");
            i++;
        }
        else if (strcmp(a, "--val-every") == 0) {
            so.val_every = parse_count(a, v, 2, 1000000000, "1 would leave train empty; beyond 1e9 only "
                                       "document 0 is val anyway");
            i++;
        }
        else if (strcmp(a, "--reps") == 0) {
            reps = (int)parse_count(a, v, 1, 1000, "each repetition encodes the file twice");
            i++;
        }
        else if (strcmp(a, "--chunk-bytes") == 0) {
            chunk_bytes = parse_count(a, v, 4096, 1u << 30, "smaller pieces cost more in overhead than they "
                                      "gain, larger ones only remove parallelism");
            i++;
        }
        else if (strcmp(a, "--doc-split") == 0) {
            if (!v) die("%s needs a value", a);
            if (strcmp(v, "file") != 0 && strcmp(v, "paragraphs") != 0) die("--doc-split: '%.*s%s' is not 'file' or 'paragraphs'", SHOWN(v));
            so.paragraphs = strcmp(v, "paragraphs") == 0;
            i++;
        }
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) usage(0);
        else if (a[0] == '-' && a[1] != 0) die("unknown option '%.*s%s' (see ./tokenizer --help)", SHOWN(a));
        else if (n_args < 4096) args[n_args++] = argv[i];
        else die("too many arguments (at most 4096; give shards a folder instead of many files)");
    }
    if (n_args == 0) die("no command: use encode, decode, build, shards, sft, eval or bench (see ./tokenizer --help)");
    const char* cmd = args[0];
    if (strcmp(cmd, "build") == 0) {
        check_args(cmd, n_args, 3, 3, "ENCODER_JSON VOCAB_BPE OUT");
        return cmd_build(args[1], args[2], args[3]);
    }
    if (strcmp(cmd, "encode") == 0 || strcmp(cmd, "decode") == 0) check_args(cmd, n_args, 0, 0, "no arguments (it reads stdin)");
    else if (strcmp(cmd, "shards") == 0) check_args(cmd, n_args, 2, 4095, "OUT_PREFIX INPUT...");
    else if (strcmp(cmd, "sft") == 0) check_args(cmd, n_args, 2, 4095, "OUT_PREFIX JSONL...");
    else if (strcmp(cmd, "eval") == 0) check_args(cmd, n_args, 2, 4095, "OUT JSONL...");
    else if (strcmp(cmd, "bench") == 0) check_args(cmd, n_args, 1, 1, "FILE");
    else die("unknown command '%.*s%s': use encode, decode, build, shards, sft, eval or bench (see ./tokenizer --help)", SHOWN(cmd));
    Tokenizer t;
    if (tokenizer_init(&t, tok_path) != 0)
        die("%s: no such file (build it with: make data/gpt2_tokenizer.bin, or pass -t FILE)", tok_path);
    int rc = 0;
    if (strcmp(cmd, "decode") == 0) {
        rc = cmd_decode(&t);
    } else if (strcmp(cmd, "bench") == 0) {
        rc = cmd_bench(&t, tok_path, args[1], threads, chunk_bytes, reps);
    } else {
        Encoder e;
        encoder_init(&e, &t, threads, chunk_bytes, force_heap);
        if (strcmp(cmd, "encode") == 0) rc = cmd_encode(&t, tok_path, &e, special);
        else if (strcmp(cmd, "sft") == 0) rc = cmd_sft(&t, tok_path, &e, &so, args[1], args + 2, n_args - 2);
        else if (strcmp(cmd, "eval") == 0) rc = cmd_eval(&t, tok_path, &e, args[1], args + 2, n_args - 2);
        else rc = cmd_shards(&t, tok_path, &e, &so, args[1], args + 2, n_args - 2);
        encoder_free(&e);
    }
    tokenizer_free(&t);
    return rc;
}
