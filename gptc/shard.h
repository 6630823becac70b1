// gptc/shard.h -- the token shard: the one file format between the data pipeline and the trainer.
//
// The format (llm.c's layout, so llm.c's shards load here and ours there), little-endian:
//   int32 header[256] = {20240520 (magic), 1 (version), ntok (token count), 0, ...}
//   uint16 tokens[ntok]
// Written by data/tokenizer.c (`./tokenizer shards`, data/prepare.sh), read by gptc/dataloader.h.
// Every document is preceded by <|endoftext|> (as llm.c's fineweb.py does), so that token
// separates documents and starts the stream. Token ids are uint16: vocabularies up to 65536.
// What it is not: the loader (batches, shuffling: gptc/dataloader.h) or the writer (splitting
// text into shards: data/tokenizer.c); just the header both agree on, and its check.

#ifndef GPTC_SHARD_H
#define GPTC_SHARD_H

#include <stdint.h>    // provides: int32_t
#include <stdio.h>     // provides: FILE
#include <string.h>    // provides: memset
#include "utils.h"     // provides: die, fopen_input_or_die, fread_or_die, file_size_or_die

#define SHARD_MAGIC 20240520
#define SHARD_VERSION 1
#define SHARD_HEADER_INTS 256
#define MAX_SHARD_TOKENS 2147483647L // the header counts tokens in an int32

// the header of a shard of ntok tokens (0 <= ntok <= MAX_SHARD_TOKENS)
static inline void shard_header(int32_t header[SHARD_HEADER_INTS], long ntok) {
    if (ntok < 0 || ntok > MAX_SHARD_TOKENS) {
        die("a shard of %ld tokens: its header counts at most %ld", ntok, MAX_SHARD_TOKENS);
    }
    memset(header, 0, SHARD_HEADER_INTS * sizeof(int32_t));
    header[0] = SHARD_MAGIC;
    header[1] = SHARD_VERSION;
    header[2] = (int32_t)ntok;
}

// Opens a shard and checks its header against its size; returns the open file positioned at the
// tokens, and their count.
static inline FILE* shard_open(const char* path, long* ntok_out) {
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
    if (header[1] != SHARD_VERSION) {
        die("%s: token shard version %d not supported (expected %d)", path, header[1], SHARD_VERSION);
    }
    long ntok = header[2];
    if (ntok < 0 || (long)sizeof(header) + 2 * ntok != fsize) {
        die("%s: header says %ld tokens, file holds %ld bytes of tokens (truncated?)", path, ntok,
            fsize - (long)sizeof(header));
    }
    *ntok_out = ntok;
    return f;
}

#endif // GPTC_SHARD_H
