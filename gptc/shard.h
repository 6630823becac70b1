// gptc/shard.h -- the token shard: the one file format between the data pipeline and the trainer.
//
// The format (llm.c's layout, so llm.c's shards load here and ours there), little-endian:
//   int32 header[256] = {20240520 (magic), version, ntok (token count), 0, ...}
//   uint16 tokens[ntok]
//   version 2 only: uint8 flags[ntok], flag[i] = 1 when token i is a target the loss counts (the
//   prediction of token i from the tokens before it), 0 when it is context only (a prompt: the
//   loss mask of supervised fine-tuning). Version 1 has no flags: every target counts.
// Written by data/tokenizer.c (`./tokenizer shards`: version 1; `./tokenizer sft`: version 2),
// read by gptc/dataloader.h. Every document (or record) is preceded by <|endoftext|> (as llm.c's
// fineweb.py does), so that token separates documents and starts the stream. Token ids are uint16:
// vocabularies up to 65536.
// What it is not: the loader (batches, shuffling: gptc/dataloader.h) or the writer (splitting
// text into shards: data/tokenizer.c); just the header both agree on, and its check.

#ifndef GPTC_SHARD_H
#define GPTC_SHARD_H

#include <stdint.h>    // provides: int32_t, uint8_t
#include <stdio.h>     // provides: FILE
#include <string.h>    // provides: memset
#include "utils.h"     // provides: die, fopen_input_or_die, fread_or_die, file_size_or_die

#define SHARD_MAGIC 20240520
#define SHARD_VERSION 1        // tokens only
#define SHARD_VERSION_FLAGS 2  // tokens, then a flag per token
#define SHARD_HEADER_INTS 256
#define MAX_SHARD_TOKENS 2147483647L // the header counts tokens in an int32

// the header of a shard of ntok tokens (0 <= ntok <= MAX_SHARD_TOKENS), with flags (version 2) or
// without (version 1)
static inline void shard_header(int32_t header[SHARD_HEADER_INTS], long ntok, int with_flags) {
    if (ntok < 0 || ntok > MAX_SHARD_TOKENS) {
        die("a shard of %ld tokens: its header counts at most %ld", ntok, MAX_SHARD_TOKENS);
    }
    memset(header, 0, SHARD_HEADER_INTS * sizeof(int32_t));
    header[0] = SHARD_MAGIC;
    header[1] = with_flags ? SHARD_VERSION_FLAGS : SHARD_VERSION;
    header[2] = (int32_t)ntok;
}

// Opens a shard and checks its header against its size; returns the open file positioned at the
// tokens, their count, and whether flags follow them (version 2).
static inline FILE* shard_open(const char* path, long* ntok_out, int* has_flags) {
    FILE* f = fopen_input_or_die(path);
    long fsize = file_size_or_die(f, path);
    int32_t header[SHARD_HEADER_INTS];
    if (fsize < (long)sizeof(header)) {
        die("%s: truncated token shard (%ld bytes, header is 1024)", path, fsize);
    }
    fread_or_die(header, sizeof(int32_t), SHARD_HEADER_INTS, f, path);
    if (header[0] != SHARD_MAGIC) {
        die("%s: bad magic %d in token shard (expected %d; make shards with ./tokenizer or "
            "data/prepare.sh)", path, header[0], SHARD_MAGIC);
    }
    if (header[1] != SHARD_VERSION && header[1] != SHARD_VERSION_FLAGS) {
        die("%s: token shard version %d not supported (expected %d, or %d with loss flags)", path,
            header[1], SHARD_VERSION, SHARD_VERSION_FLAGS);
    }
    long ntok = header[2], per = header[1] == SHARD_VERSION_FLAGS ? 3 : 2; // bytes a token
    if (ntok < 0 || (long)sizeof(header) + per * ntok != fsize) {
        die("%s: header says %ld tokens%s, file holds %ld bytes after the header (truncated?)",
            path, ntok, per == 3 ? " and their flags (version 2: 3 bytes a token)" : "",
            fsize - (long)sizeof(header));
    }
    *ntok_out = ntok;
    *has_flags = per == 3;
    return f;
}

// the index of the first flag of flags[0..n) that is neither 0 nor 1, or n
static inline long shard_first_bad_flag(const uint8_t* flags, long n) {
    uint8_t any = 0;
    for (long i = 0; i < n; i++) { any |= flags[i]; } // vectorizes: the scan runs at memory speed
    if (any <= 1) { return n; }
    long bad = 0;
    while (flags[bad] <= 1) { bad++; }
    return bad;
}

#endif // GPTC_SHARD_H
