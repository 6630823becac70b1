// tokenizer.h: GPT-2's byte-level BPE tokenizer, decode and encode, as a header-only library.
//
// What it is: the exact GPT-2 tokenizer. Encoding reproduces the ids of OpenAI's encoder.py
// (and of the JavaScript ports we test against) byte for byte; decoding maps ids back to bytes.
// What it is not: a general tokenizer library (no other vocabularies' regexes, no special
// tokens besides <|endoftext|>, which the caller inserts itself), and not thread-safe by magic:
// a Tokenizer is read-only after tokenizer_init and may be shared by threads, but every
// thread needs its own TokenizerCache.
//
// Non-obvious rules:
// - Text is split into pre-tokens by GPT-2's regex
//       's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   implemented by hand as a small state machine (tok_pretoken_end), with the Unicode classes
//   \p{L}, \p{N}, \s from unicode_tables.h. \s is JavaScript's (as in the reference encoders).
// - Invalid UTF-8 never stops encoding: every byte that is not part of a well-formed UTF-8
//   sequence counts as one character of class OTHER (like U+FFFD would) and is encoded as its
//   raw byte, so decode(encode(x)) == x for every byte string x.
// - BPE inside a pre-token follows GPT-2's bpe(): repeatedly take the adjacent pair with the
//   lowest merge rank and merge ALL its non-overlapping occurrences left to right.
// - "<|endoftext|>" inside text is ordinary text here (as in GPT-2's encoder.py); the data
//   pipeline inserts the id tokenizer->eot between documents itself.
// - The library compiles as C11 and as C++ (nvcc, g++): casts on malloc, no VLAs, no designated
//   initializers. File input uses POSIX (open, fstat, read): it must tell regular files from
//   FIFOs and devices, which stdio cannot. Every function is static inline, so an includer
//   that only decodes gets no unused-function warnings.
//
// Tokenizer file (little-endian), llm.c's layout extended with a version 3:
//   int32 header[256]   [0] magic 20240328, [1] version (1, 2 or 3), [2] vocab_size V,
//                       [3] eot id (version >= 2; version 1 means 50256),
//                       [4] number of merges M (version 3), all other entries 0
//   V times             uint8 length n, then n bytes: the bytes of token 0, 1, ..., V-1
//   (version 3 only)    M times uint32 left, uint32 right, uint32 merged: merge rules in rank
//                       order (rank = index), token ids, bytes(merged) == bytes(left)+bytes(right)
// Compatibility is one way: llm.c's version 1/2 files load here (for decoding only: they have
// no merges), but llm.c's loader checks the version and rejects anything but 1 and 2, so it
// does not read our version 3 files. (A version 2 file is our file's first 1024 + token-table
// bytes with [1] = 2 and [4] = 0; this library does not write one.)
// Every input file is untrusted: tokenizer_init reads and checks the header before the rest,
// and input files must be regular files (open_input, gptc/utils.h).

#ifndef TOKENIZER_H
#define TOKENIZER_H

#include <stdint.h>         // provides: uint8_t, uint32_t, uint64_t, int32_t, SIZE_MAX
#include <stdio.h>          // provides: fprintf, snprintf
#include <stdlib.h>         // provides: realloc, free, exit
#include <string.h>         // provides: memcpy, memcmp, memset
#include <unistd.h>         // provides: close
#include "unicode_tables.h" // provides: unicode_block_index, unicode_blocks, unicode_ascii_class
#include "../gptc/utils.h"  // provides: die, open_input, read_fd (regular files only, read exactly)

#define TOKENIZER_MAGIC 20240328
#define TOKENIZER_VERSION 3          // the version this file writes: token table + merges
#define TOK_NONE 0xFFFFFFFFu         // "no merge" rank / "no token" id
#define TOK_SMALL 64                 // pre-tokens up to this many bytes use the array BPE
#define TOK_CACHE_SLOTS (1u << 17)   // pre-token cache: open addressing, power of two
#define TOK_CACHE_MAX_KEY 64         // longer pre-tokens are rare: not cached
// The longest pre-token the heap BPE takes: it needs ~25 bytes of memory per byte and ~0.4 s per
// MB, so 64 MiB costs 1.6 GB and half a minute. No text has such words; a longer run of one
// character class (a dump of 'a's, of spaces, of zeros) is an error, not a memory blow-up.
#define TOK_MAX_PRETOKEN (64u << 20)
#define TOK_FIX_HINT "rebuild it with: make data/gpt2_tokenizer.bin"
#define TOK_HEADER_BYTES 1024        // int32 header[256]
#define TOK_MAX_VOCAB (1 << 20)      // vocab_size bound of the file header: see tokenizer_init

// Character classes of the pre-tokenizer (values as in unicode_tables.h).
enum { TOK_OTHER = 0, TOK_LETTER = 1, TOK_NUMBER = 2, TOK_SPACE = 3 };

// ----------------------------------------------------------------------------
// Data structures

// One slot of the merge hash table. 8 bytes, so the whole table (1 MB for GPT-2) stays in a
// core's L2 cache: BPE does one lookup per candidate pair, and that is its main cost.
typedef struct {
    uint32_t pair;   // left << 16 | right (encoding needs vocab_size <= 65536, as uint16 shards do)
    uint32_t rank;   // merge priority: lower merges first; TOK_NONE marks an empty slot
} TokMerge;

typedef struct Tokenizer {
    uint32_t vocab_size;
    uint32_t eot;            // <|endoftext|>, 50256 for GPT-2
    int version;             // of the file it was loaded from
    // decoding: token i is token_len[i] bytes at token_bytes + token_offset[i], then a NUL
    char* token_bytes;
    uint32_t* token_offset;  // (V,)
    uint32_t* token_len;     // (V,)
    // encoding (version 3 files only; n_merges == 0 means "decode only")
    uint32_t n_merges;
    uint32_t byte_token[256];  // the single-byte token of each byte value
    TokMerge* merges;          // hash table (left, right) -> rank
    uint32_t merge_bits;       // the table has 2^merge_bits slots
    uint32_t* merge_result;    // (n_merges,) rank -> the token the pair becomes
} Tokenizer;

// A growable list of token ids; the encoder appends to it.
typedef struct {
    uint32_t* ids;
    size_t len, cap;
} TokenIds;

typedef struct {
    uint32_t tag;      // high half of the key's hash; 0 marks an empty slot (real tags are odd)
    uint32_t off;      // into TokenizerCache.arena: the key bytes (padded to 4), then the ids
    uint16_t key_len;
    uint16_t n_ids;
} TokCacheSlot;

typedef struct { uint32_t rank, pos; } TokHeapItem;

// Per-thread encoder state: a cache pre-token bytes -> ids (most words of a text repeat, so
// most pre-tokens skip BPE entirely), and scratch arrays for the BPE of long pre-tokens.
// The cache is wiped when half full: it never changes results, only speed.
typedef struct TokenizerCache {
    TokCacheSlot* slots;  // TOK_CACHE_SLOTS
    uint32_t used;
    uint32_t* arena; size_t arena_len, arena_cap;  // in 4-byte words
    // long pre-tokens: a doubly linked list of tokens over byte positions, and a min-heap of
    // candidate pairs ordered by (rank, position)
    uint32_t* tok; uint32_t* prev; uint32_t* next; size_t work_cap;
    TokHeapItem* heap; size_t heap_len, heap_cap;
    uint32_t* batch; size_t batch_cap;   // nodes merged in the current rank (heap BPE)
    int force_heap;  // testing knob: use the heap BPE for every pre-token
} TokenizerCache;

// ----------------------------------------------------------------------------
// Small helpers

static inline void* tok_xrealloc(void* p, size_t bytes, const char* what) {
    void* q = realloc(p, bytes ? bytes : 1);
    if (!q) {
        fprintf(stderr, "error: %s:%d: out of memory allocating %zu bytes for %s\n",
                __FILE__, __LINE__, bytes, what);
        exit(1);
    }
    return q;
}

// Bad tokenizer file: one line naming the file, the problem and the fix, then exit.
#if defined(__GNUC__)
__attribute__((noreturn))
#endif
static inline void tok_file_error(const char* path, const char* what) {
    fprintf(stderr, "error: %s: %s (%s)\n", path, what, TOK_FIX_HINT);
    exit(1);
}

// a * b for a size computed from untrusted numbers (a file header, a flag): a product that does
// not fit size_t is an error naming the file and what was being sized, never a wrapped-around
// small number that a later write runs past.
static inline size_t tok_mul_size(size_t a, size_t b, const char* path, const char* what) {
    if (b != 0 && a > SIZE_MAX / b) die("%s: %s of %zu x %zu bytes does not fit in memory", path, what, a, b);
    return a * b;
}

static inline void tokenids_reserve(TokenIds* t, size_t extra) {
    if (t->len + extra <= t->cap) return;
    size_t cap = t->cap ? t->cap : 1024;
    while (cap < t->len + extra) cap *= 2;
    t->ids = (uint32_t*)tok_xrealloc(t->ids, cap * sizeof(uint32_t), "token ids");
    t->cap = cap;
}

static inline void tokenids_push(TokenIds* t, uint32_t id) {
    if (t->len == t->cap) tokenids_reserve(t, 1);
    t->ids[t->len++] = id;
}

static inline void tokenids_free(TokenIds* t) {
    free(t->ids);
    t->ids = NULL;
    t->len = t->cap = 0;
}

static inline uint32_t tok_read_u32(const uint8_t* p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

// ----------------------------------------------------------------------------
// Loading and decoding

static inline uint32_t tok_pair_slot(const Tokenizer* t, uint32_t pair) {
    return (pair * 0x9E3779B1u) >> (32 - t->merge_bits); // Fibonacci hashing: top bits
}

// The merge rank of the adjacent pair (left, right), TOK_NONE if they never merge; the token
// they become goes to *merged.
static inline uint32_t tok_merge_find(const Tokenizer* t, uint32_t left, uint32_t right, uint32_t* merged) {
    uint32_t pair = left << 16 | right, mask = (1u << t->merge_bits) - 1;
    for (uint32_t i = tok_pair_slot(t, pair);; i = (i + 1) & mask) {
        const TokMerge* m = &t->merges[i];
        if (m->rank == TOK_NONE) return TOK_NONE;
        if (m->pair == pair) { *merged = t->merge_result[m->rank]; return m->rank; }
    }
}

// Reads the tokenizer file `path` into `t`. Returns 0 on success; -1 (printing nothing) if
// `path` does not exist, so a caller can fall back to printing raw ids. Anything else that is
// wrong (not a regular file, bad header, a size that does not match the header, inconsistent
// tables) is a one-line error naming the file, and exit(1).
// Order matters for untrusted files: the 1024-byte header is read and checked first, then the
// size it implies is compared with the real file size, and only then is the rest allocated and
// read. So /dev/zero or a FIFO costs no read at all, and a 3 GB file of something else one 1 KB
// read, not its size.
static inline int tokenizer_init(Tokenizer* t, const char* path) {
    memset(t, 0, sizeof(*t));
    size_t size;
    int fd = open_input(path, &size);
    if (fd < 0) return -1;
    char what[256];
    uint8_t head[TOK_HEADER_BYTES];
    size_t got = read_fd(fd, head, sizeof(head), path);
    if (got < TOK_HEADER_BYTES) {
        snprintf(what, sizeof(what), "truncated: %zu bytes, shorter than the %d-byte header", got, TOK_HEADER_BYTES);
        tok_file_error(path, what);
    }
    int32_t header[256];
    for (int i = 0; i < 256; i++) header[i] = (int32_t)tok_read_u32(head + 4 * i);
    // The header's numbers, each with the bound that keeps what follows safe:
    // [0] magic: tells a tokenizer file from anything else before we trust a single number.
    if (header[0] != TOKENIZER_MAGIC) {
        snprintf(what, sizeof(what), "bad magic %d, expected %d: not a tokenizer file", header[0], TOKENIZER_MAGIC);
        tok_file_error(path, what);
    }
    // [1] version: 1 and 2 are llm.c's (token table only), 3 ours (+ merges).
    int version = header[1];
    if (version < 1 || version > TOKENIZER_VERSION) {
        snprintf(what, sizeof(what), "unsupported version %d, this build reads versions 1 to %d", version, TOKENIZER_VERSION);
        tok_file_error(path, what);
    }
    // [2] vocab_size V: 1..TOK_MAX_VOCAB. Real vocabularies have at most ~256k tokens; the bound
    // also keeps the token table (at most 256 bytes a token) under 2^28 bytes, so the uint32
    // offsets into it cannot overflow.
    if (header[2] <= 0 || header[2] > TOK_MAX_VOCAB) {
        snprintf(what, sizeof(what), "vocab_size %d is out of range 1..%d", header[2], TOK_MAX_VOCAB);
        tok_file_error(path, what);
    }
    uint32_t V = (uint32_t)header[2];
    // [3] eot: an id, so below V (version 1 files have no field: GPT-2's 50256).
    uint32_t eot = version == 1 ? 50256u : (uint32_t)header[3];
    if (eot >= V) {
        snprintf(what, sizeof(what), "eot token %u is not below vocab_size %u", eot, V);
        tok_file_error(path, what);
    }
    // [4] merges M (version 3): 1..V-1. Every merge makes one new token out of two, so a
    // vocabulary of V tokens has fewer than V merges; with none, the file cannot encode (it
    // would be a version 2 file). Encoding packs a pair of ids in 32 bits: V <= 65536.
    uint32_t M = 0;
    if (version == 3) {
        if (V > 65536) {
            snprintf(what, sizeof(what), "vocab_size %u: encoding supports at most 65536 tokens", V);
            tok_file_error(path, what);
        }
        if (header[4] <= 0 || (uint32_t)header[4] >= V) {
            snprintf(what, sizeof(what), "merge count %d is out of range 1..%u (vocab_size - 1)", header[4], V - 1);
            tok_file_error(path, what);
        }
        M = (uint32_t)header[4];
    }
    // The size the header implies: each token is a length byte plus 0..255 bytes, each merge 12
    // bytes. Checked against the real size before anything is allocated.
    size_t merge_bytes = tok_mul_size(M, 12, path, "merge table");
    size_t lo = TOK_HEADER_BYTES + (size_t)V + merge_bytes;
    size_t hi = TOK_HEADER_BYTES + tok_mul_size(V, 256, path, "token table") + merge_bytes;
    if (size < lo || size > hi) {
        snprintf(what, sizeof(what), "%zu bytes, but its header (version %d, vocab_size %u, %u merges) needs %zu to %zu",
                 size, version, V, M, lo, hi);
        tok_file_error(path, what);
    }
    size -= TOK_HEADER_BYTES; // from here on, buf and pos are the part after the header
    uint8_t* buf = (uint8_t*)tok_xrealloc(NULL, size, "tokenizer file");
    got = read_fd(fd, buf, size, path);
    close(fd);
    if (got != size) {
        snprintf(what, sizeof(what), "truncated while reading: %zu of %zu bytes after the header", got, size);
        tok_file_error(path, what);
    }

    // token table: first pass finds the offsets, then copy into NUL-terminated strings
    t->token_offset = (uint32_t*)tok_xrealloc(NULL, tok_mul_size(V, sizeof(uint32_t), path, "token offsets"), "token offsets");
    t->token_len = (uint32_t*)tok_xrealloc(NULL, tok_mul_size(V, sizeof(uint32_t), path, "token lengths"), "token lengths");
    size_t pos = 0, total = 0;
    for (uint32_t i = 0; i < V; i++) {
        if (pos >= size || pos + 1 + buf[pos] > size) {
            snprintf(what, sizeof(what), "truncated: token table ends inside token %u of %u", i, V);
            tok_file_error(path, what);
        }
        t->token_len[i] = buf[pos];
        t->token_offset[i] = (uint32_t)total;
        total += buf[pos] + 1u; // +1: the NUL
        pos += 1 + buf[pos];
    }
    t->token_bytes = (char*)tok_xrealloc(NULL, total, "token bytes");
    pos = 0;
    for (uint32_t i = 0; i < V; i++) {
        memcpy(t->token_bytes + t->token_offset[i], buf + pos + 1, t->token_len[i]);
        t->token_bytes[t->token_offset[i] + t->token_len[i]] = '\0';
        pos += 1 + t->token_len[i];
    }
    t->vocab_size = V;
    t->eot = eot;
    t->version = version;
    if (version < 3 && pos != size) { // llm.c's files end with the token table
        snprintf(what, sizeof(what), "%zu bytes after the token table, expected none (a version %d file ends there)",
                 size - pos, version);
        tok_file_error(path, what);
    }

    if (version == 3) {
        if (size - pos != merge_bytes) {
            snprintf(what, sizeof(what), "expected %zu bytes of merges after the token table, found %zu",
                     merge_bytes, size - pos);
            tok_file_error(path, what);
        }
        for (int b = 0; b < 256; b++) t->byte_token[b] = TOK_NONE;
        for (uint32_t i = 0; i < V; i++)
            if (t->token_len[i] == 1 && i != eot) {
                uint8_t b = (uint8_t)t->token_bytes[t->token_offset[i]];
                if (t->byte_token[b] == TOK_NONE) t->byte_token[b] = i;
            }
        for (int b = 0; b < 256; b++)
            if (t->byte_token[b] == TOK_NONE) {
                snprintf(what, sizeof(what), "no single-byte token for byte 0x%02x", b);
                tok_file_error(path, what);
            }
        t->merge_bits = 1;
        while ((1u << t->merge_bits) < 2 * M + 2) t->merge_bits++; // load <= 1/2: short probes
        uint32_t slots = 1u << t->merge_bits;
        t->merges = (TokMerge*)tok_xrealloc(NULL, slots * sizeof(TokMerge), "merge table");
        for (uint32_t i = 0; i < slots; i++) t->merges[i].rank = TOK_NONE;
        t->merge_result = (uint32_t*)tok_xrealloc(NULL, M * sizeof(uint32_t), "merge results");
        for (uint32_t r = 0; r < M; r++) {
            const uint8_t* m = buf + pos + 12 * (size_t)r;
            uint32_t l = tok_read_u32(m), rt = tok_read_u32(m + 4), mg = tok_read_u32(m + 8);
            if (l >= V || rt >= V || mg >= V) {
                snprintf(what, sizeof(what), "merge %u refers to a token id outside [0, %u)", r, V);
                tok_file_error(path, what);
            }
            if (t->token_len[mg] != t->token_len[l] + t->token_len[rt] ||
                memcmp(t->token_bytes + t->token_offset[mg], t->token_bytes + t->token_offset[l], t->token_len[l]) != 0 ||
                memcmp(t->token_bytes + t->token_offset[mg] + t->token_len[l], t->token_bytes + t->token_offset[rt], t->token_len[rt]) != 0) {
                snprintf(what, sizeof(what), "merge %u: token %u is not token %u followed by token %u", r, mg, l, rt);
                tok_file_error(path, what);
            }
            uint32_t merged;
            if (tok_merge_find(t, l, rt, &merged) != TOK_NONE) {
                snprintf(what, sizeof(what), "merge %u repeats the pair (%u, %u)", r, l, rt);
                tok_file_error(path, what);
            }
            uint32_t i = tok_pair_slot(t, l << 16 | rt);
            while (t->merges[i].rank != TOK_NONE) i = (i + 1) & (slots - 1);
            t->merges[i].pair = l << 16 | rt;
            t->merges[i].rank = r;
            t->merge_result[r] = mg;
        }
        t->n_merges = M;
    }
    free(buf);
    return 0;
}

// The bytes of token `id` (NUL-terminated; *len excludes the NUL, tokens may contain NUL
// bytes), or NULL if id is out of range. `len` may be NULL.
static inline const char* tokenizer_decode(const Tokenizer* t, uint32_t id, size_t* len) {
    if (id >= t->vocab_size) return NULL;
    if (len) *len = t->token_len[id];
    return t->token_bytes + t->token_offset[id];
}

static inline void tokenizer_free(Tokenizer* t) {
    free(t->token_bytes);
    free(t->token_offset);
    free(t->token_len);
    free(t->merges);
    free(t->merge_result);
    memset(t, 0, sizeof(*t));
}

// ----------------------------------------------------------------------------
// Pre-tokenization: GPT-2's regex as a state machine

// Decodes the character at s[i] (i < n): returns its class and stores its length in *len.
// A byte that does not start a well-formed UTF-8 sequence (stray continuation byte, overlong
// form, surrogate, > U+10FFFF, truncated sequence) is a 1-byte character of class OTHER.
static inline int tok_char_class(const uint8_t* s, size_t n, size_t i, size_t* len) {
    uint32_t b0 = s[i], cp;
    *len = 1;
    if (b0 < 0x80) {
        cp = b0;
    } else if (b0 >= 0xC2 && b0 <= 0xDF) {
        if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80) return TOK_OTHER;
        cp = ((b0 & 0x1F) << 6) | (s[i + 1] & 0x3Fu);
        *len = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        if (i + 2 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80) return TOK_OTHER;
        cp = ((b0 & 0x0F) << 12) | ((s[i + 1] & 0x3Fu) << 6) | (s[i + 2] & 0x3Fu);
        if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)) return TOK_OTHER; // overlong, surrogate
        *len = 3;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        if (i + 3 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 || (s[i + 3] & 0xC0) != 0x80)
            return TOK_OTHER;
        cp = ((b0 & 0x07) << 18) | ((s[i + 1] & 0x3Fu) << 12) | ((s[i + 2] & 0x3Fu) << 6) | (s[i + 3] & 0x3Fu);
        if (cp < 0x10000 || cp > 0x10FFFF) return TOK_OTHER; // overlong, out of range
        *len = 4;
    } else {
        return TOK_OTHER; // continuation byte, C0/C1 (always overlong), F5..FF
    }
    return (unicode_blocks[unicode_block_index[cp >> 8]][(cp & 255) >> 2] >> (2 * (cp & 3))) & 3;
}

// End of the run of characters of class `cls` that continues at s[i].
static inline size_t tok_run_end(const uint8_t* s, size_t n, size_t i, int cls) {
    while (i < n) {
        uint8_t b = s[i];
        if (b < 0x80) { // fast path: most text is ASCII
            if (unicode_ascii_class[b] != cls) break;
            i++;
        } else {
            size_t len;
            if (tok_char_class(s, n, i, &len) != cls) break;
            i += len;
        }
    }
    return i;
}

// Where the pre-token starting at s[i] ends (i < n). The alternatives of the regex, in order:
//   's 't 're 've 'm 'll 'd   ?\p{L}+   ?\p{N}+   ?[^\s\p{L}\p{N}]+   \s+(?!\S)   \s+
// The classes are disjoint, so after the contractions and the optional leading space the first
// character alone decides which alternative matches, and each run is greedy.
static inline size_t tok_pretoken_end(const uint8_t* s, size_t n, size_t i) {
    uint8_t b = s[i];
    if (b == '\'' && i + 1 < n) {
        uint8_t c1 = s[i + 1];
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return i + 2;
        if (i + 2 < n) {
            uint8_t c2 = s[i + 2];
            if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return i + 3;
        }
    }
    size_t len;
    if (b == ' ' && i + 1 < n) { // " word", " 123", " ?!": the space joins the run after it
        int next = tok_char_class(s, n, i + 1, &len);
        if (next != TOK_SPACE) return tok_run_end(s, n, i + 1 + len, next);
    }
    int cls = tok_char_class(s, n, i, &len);
    if (cls != TOK_SPACE) return tok_run_end(s, n, i + len, cls);
    // Whitespace: \s+(?!\S) takes the whole run if it reaches the end of the text, else the run
    // minus its last character (which then starts the next pre-token, e.g. " word"); a single
    // whitespace character before a non-space is taken alone by \s+.
    size_t last = i, j = i + len;
    while (j < n) {
        if (tok_char_class(s, n, j, &len) != TOK_SPACE) break;
        last = j;
        j += len;
    }
    if (j == n) return n;
    return last > i ? last : j;
}

// ----------------------------------------------------------------------------
// BPE of one pre-token

static inline void tokenizer_cache_init(TokenizerCache* c) {
    memset(c, 0, sizeof(*c));
    c->slots = (TokCacheSlot*)tok_xrealloc(NULL, TOK_CACHE_SLOTS * sizeof(TokCacheSlot), "token cache");
    memset(c->slots, 0, TOK_CACHE_SLOTS * sizeof(TokCacheSlot));
}

static inline void tokenizer_cache_free(TokenizerCache* c) {
    free(c->slots); free(c->arena);
    free(c->tok); free(c->prev); free(c->next); free(c->heap); free(c->batch);
    memset(c, 0, sizeof(*c));
}

// Hash of a short byte string, 8 bytes at a time (multiply-xorshift mixing). Low bit set so
// that 0 can mark empty slots.
static inline uint64_t tok_bytes_hash(const uint8_t* p, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
        p += 8; n -= 8;
    }
    uint64_t w = 0;
    for (size_t k = 0; k < n; k++) w |= (uint64_t)p[k] << (8 * k);
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 29;
    return h | 1;
}

// Array BPE for short pre-tokens (m <= TOK_SMALL): each round scans all pairs for the lowest
// rank, then merges every occurrence of that pair in one left-to-right pass, as GPT-2's bpe().
// rank[k], merged[k] describe the pair (tok[k], tok[k+1]); after a pass only the pairs that
// touch a newly merged token are looked up again, the others keep their rank.
static inline void tok_bpe_small(const Tokenizer* t, const uint8_t* p, size_t m, TokenIds* out) {
    uint32_t tok[TOK_SMALL], rank[TOK_SMALL], merged[TOK_SMALL];
    uint8_t fresh[TOK_SMALL]; // tok[k] was made in the last pass
    for (size_t k = 0; k < m; k++) tok[k] = t->byte_token[p[k]];
    for (size_t k = 0; k + 1 < m; k++) rank[k] = tok_merge_find(t, tok[k], tok[k + 1], &merged[k]);
    rank[m - 1] = TOK_NONE; merged[m - 1] = TOK_NONE;
    while (m > 1) {
        uint32_t best = TOK_NONE;
        for (size_t k = 0; k + 1 < m; k++) if (rank[k] < best) best = rank[k];
        if (best == TOK_NONE) break;
        // in place: w <= k, so we only overwrite entries already read
        size_t w = 0, k = 0;
        while (k < m) {
            if (k + 1 < m && rank[k] == best) { tok[w] = merged[k]; fresh[w] = 1; k += 2; }
            else { tok[w] = tok[k]; rank[w] = rank[k]; merged[w] = merged[k]; fresh[w] = 0; k++; }
            w++;
        }
        m = w;
        rank[m - 1] = TOK_NONE;
        for (k = 0; k < m; k++) {
            if (!fresh[k]) continue;
            if (k > 0) rank[k - 1] = tok_merge_find(t, tok[k - 1], tok[k], &merged[k - 1]);
            if (k + 1 < m) rank[k] = tok_merge_find(t, tok[k], tok[k + 1], &merged[k]);
        }
    }
    tokenids_reserve(out, m);
    for (size_t k = 0; k < m; k++) out->ids[out->len++] = tok[k];
}

static inline int tok_heap_less(TokHeapItem a, TokHeapItem b) {
    return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos);
}

static inline void tok_heap_push(TokenizerCache* c, uint32_t rank, uint32_t pos) {
    if (c->heap_len == c->heap_cap) {
        c->heap_cap = c->heap_cap ? 2 * c->heap_cap : 1024;
        c->heap = (TokHeapItem*)tok_xrealloc(c->heap, c->heap_cap * sizeof(TokHeapItem), "bpe heap");
    }
    size_t i = c->heap_len++;
    TokHeapItem item; item.rank = rank; item.pos = pos;
    while (i > 0 && tok_heap_less(item, c->heap[(i - 1) / 2])) { c->heap[i] = c->heap[(i - 1) / 2]; i = (i - 1) / 2; }
    c->heap[i] = item;
}

static inline TokHeapItem tok_heap_pop(TokenizerCache* c) {
    TokHeapItem top = c->heap[0], last = c->heap[--c->heap_len];
    size_t i = 0, n = c->heap_len;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && tok_heap_less(c->heap[child + 1], c->heap[child])) child++;
        if (!tok_heap_less(c->heap[child], last)) break;
        c->heap[i] = c->heap[child];
        i = child;
    }
    if (n > 0) c->heap[i] = last;
    return top;
}

// Pushes the pair that starts at node `pos`, if there is one and it can merge.
static inline void tok_heap_push_pair(const Tokenizer* t, TokenizerCache* c, uint32_t pos) {
    if (pos == TOK_NONE || c->next[pos] == TOK_NONE) return;
    uint32_t merged, rank = tok_merge_find(t, c->tok[pos], c->tok[c->next[pos]], &merged);
    if (rank != TOK_NONE) tok_heap_push(c, rank, pos);
}

// Heap BPE for long pre-tokens: O(m log m) instead of the array version's O(m^2), so a
// megabyte-long "word" is fine. Tokens form a linked list over byte positions (a merged token
// keeps the position of its left part); the heap holds candidate pairs by (rank, position),
// possibly stale, checked when popped. To follow GPT-2's "merge all occurrences of the best
// pair" exactly, all pairs of the lowest rank are merged left to right before the pairs they
// create enter the heap.
static inline void tok_bpe_heap(const Tokenizer* t, TokenizerCache* c, const uint8_t* p, size_t m, TokenIds* out) {
    if (m > TOK_MAX_PRETOKEN)
        die("a single pre-token (a run of letters, digits, symbols or spaces) of %zu bytes: longer than the "
                "%d MiB this encoder takes (~25 bytes of memory per byte)", m, TOK_MAX_PRETOKEN >> 20);
    if (m > c->work_cap) {
        c->work_cap = m;
        c->tok = (uint32_t*)tok_xrealloc(c->tok, m * sizeof(uint32_t), "bpe tokens");
        c->prev = (uint32_t*)tok_xrealloc(c->prev, m * sizeof(uint32_t), "bpe links");
        c->next = (uint32_t*)tok_xrealloc(c->next, m * sizeof(uint32_t), "bpe links");
    }
    uint32_t n = (uint32_t)m;
    for (uint32_t k = 0; k < n; k++) {
        c->tok[k] = t->byte_token[p[k]];
        c->prev[k] = k == 0 ? TOK_NONE : k - 1;
        c->next[k] = k + 1 == n ? TOK_NONE : k + 1;
    }
    c->heap_len = 0;
    for (uint32_t k = 0; k + 1 < n; k++) tok_heap_push_pair(t, c, k);
    while (c->heap_len > 0) {
        uint32_t rank = c->heap[0].rank;
        size_t n_batch = 0;
        // same rank = same pair; the heap yields its occurrences left to right
        while (c->heap_len > 0 && c->heap[0].rank == rank) {
            uint32_t pos = tok_heap_pop(c).pos, merged = TOK_NONE;
            uint32_t right = c->next[pos];
            // stale entry: its left token died in an earlier merge, or the pair changed
            if (c->tok[pos] == TOK_NONE || right == TOK_NONE) continue;
            if (tok_merge_find(t, c->tok[pos], c->tok[right], &merged) != rank) continue;
            c->tok[pos] = merged;
            c->tok[right] = TOK_NONE;
            c->next[pos] = c->next[right];
            if (c->next[right] != TOK_NONE) c->prev[c->next[right]] = pos;
            if (n_batch == c->batch_cap) {
                c->batch_cap = c->batch_cap ? 2 * c->batch_cap : 256;
                c->batch = (uint32_t*)tok_xrealloc(c->batch, c->batch_cap * sizeof(uint32_t), "bpe batch");
            }
            c->batch[n_batch++] = pos;
        }
        for (size_t k = 0; k < n_batch; k++) {
            uint32_t pos = c->batch[k];
            if (c->tok[pos] == TOK_NONE) continue;
            tok_heap_push_pair(t, c, c->prev[pos]); // duplicates are harmless: checked on pop
            tok_heap_push_pair(t, c, pos);
        }
    }
    for (uint32_t k = 0; k != TOK_NONE; k = c->next[k]) tokenids_push(out, c->tok[k]);
}

// a[0..n) == b[0..n) for the short keys of the cache (a libc memcmp call costs more here).
static inline int tok_equal(const uint8_t* a, const uint8_t* b, size_t n) {
    size_t k = 0;
    for (; k + 8 <= n; k += 8) {
        uint64_t x, y;
        memcpy(&x, a + k, 8);
        memcpy(&y, b + k, 8);
        if (x != y) return 0;
    }
    for (; k < n; k++) if (a[k] != b[k]) return 0;
    return 1;
}

// Appends the ids of one pre-token, through the cache when it is short enough.
static inline void tok_encode_pretoken(const Tokenizer* t, TokenizerCache* c, const uint8_t* p, size_t m, TokenIds* out) {
    if (m == 1) { tokenids_push(out, t->byte_token[p[0]]); return; }
    if (c->force_heap) { tok_bpe_heap(t, c, p, m, out); return; }
    if (m > TOK_CACHE_MAX_KEY) {
        if (m <= TOK_SMALL) tok_bpe_small(t, p, m, out); else tok_bpe_heap(t, c, p, m, out);
        return;
    }
    uint64_t h = tok_bytes_hash(p, m);
    uint32_t tag = (uint32_t)(h >> 32) | 1, i = (uint32_t)h & (TOK_CACHE_SLOTS - 1);
    for (;; i = (i + 1) & (TOK_CACHE_SLOTS - 1)) {
        const TokCacheSlot* s = &c->slots[i];
        if (s->tag == 0) break;
        if (s->tag == tag && s->key_len == m && tok_equal((const uint8_t*)(c->arena + s->off), p, m)) {
            const uint32_t* ids = c->arena + s->off + (m + 3) / 4;
            tokenids_reserve(out, s->n_ids);
            for (uint32_t k = 0; k < s->n_ids; k++) out->ids[out->len + k] = ids[k];
            out->len += s->n_ids;
            return;
        }
    }
    size_t start = out->len;
    if (m <= TOK_SMALL) tok_bpe_small(t, p, m, out); else tok_bpe_heap(t, c, p, m, out);
    size_t n_ids = out->len - start, words = (m + 3) / 4 + n_ids;
    if (c->used >= TOK_CACHE_SLOTS / 2) { // half full: wipe it (keeps probes short, memory bounded)
        memset(c->slots, 0, TOK_CACHE_SLOTS * sizeof(TokCacheSlot));
        c->used = 0;
        c->arena_len = 0;
        i = (uint32_t)h & (TOK_CACHE_SLOTS - 1);
    }
    if (c->arena_len + words > c->arena_cap) {
        c->arena_cap = c->arena_cap ? 2 * c->arena_cap : (1 << 18);
        c->arena = (uint32_t*)tok_xrealloc(c->arena, c->arena_cap * sizeof(uint32_t), "token cache");
    }
    TokCacheSlot* s = &c->slots[i];
    s->tag = tag;
    s->off = (uint32_t)c->arena_len;
    s->key_len = (uint16_t)m;
    s->n_ids = (uint16_t)n_ids;
    c->arena[c->arena_len + (m - 1) / 4] = 0; // zero the padding of the last key word
    memcpy(c->arena + c->arena_len, p, m);
    memcpy(c->arena + c->arena_len + (m + 3) / 4, out->ids + start, n_ids * sizeof(uint32_t));
    c->arena_len += words;
    c->used++;
}

// ----------------------------------------------------------------------------
// Encoding

// Appends the GPT-2 token ids of text[0..n) to `out`. `cache` may be NULL (a temporary one is
// made: fine for one call, slow for many). Returns 0, or -1 if `t` was loaded from a
// decode-only file (version 1/2: no merges).
static inline int tokenizer_encode(const Tokenizer* t, TokenizerCache* cache, const void* text, size_t n, TokenIds* out) {
    if (t->n_merges == 0) return -1;
    TokenizerCache local;
    TokenizerCache* c = cache;
    if (!c) { tokenizer_cache_init(&local); c = &local; }
    const uint8_t* s = (const uint8_t*)text;
    tokenids_reserve(out, n / 4 + 16); // English runs ~4.5 bytes per token
    size_t i = 0;
    while (i < n) {
        size_t end = tok_pretoken_end(s, n, i);
        tok_encode_pretoken(t, c, s + i, end - i, out);
        i = end;
    }
    if (!cache) tokenizer_cache_free(&local);
    return 0;
}

// A position where text may be cut into pieces that encode independently: the ids of
// text[0..p) followed by those of text[p..n) equal the ids of text[0..n). We use
// "<printable ASCII> <space> <ASCII letter>" (cut before the space): the printable non-space
// character ends every pre-token that contains it, and the space then starts " word" in both
// cases. Returns the first such position in [from, n), or n if there is none.
static inline size_t tokenizer_safe_split(const void* text, size_t n, size_t from) {
    const uint8_t* s = (const uint8_t*)text;
    if (from < 1) from = 1;
    for (size_t p = from; p + 1 < n; p++) {
        if (s[p] != ' ') continue;
        uint8_t before = s[p - 1], after = s[p + 1];
        if (before > 0x20 && before < 0x7F &&
            ((after >= 'a' && after <= 'z') || (after >= 'A' && after <= 'Z'))) return p;
    }
    return n;
}

#endif // TOKENIZER_H
