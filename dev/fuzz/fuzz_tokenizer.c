// fuzz_tokenizer.c -- libFuzzer harness: the fuzzer's bytes as a tokenizer file (data/tokenizer.h's
// tokenizer_init, used by ./tokenizer -t and the trainer's -Z); a file that loads is then used:
// every id decoded, and (version 3) a text with every byte value encoded.
// Built and run by dev/fuzz/run.sh; see dev/fuzz/README.md.
#include "fuzz_common.h"       // provides: die() that returns here, fz_begin/fz_end, fz_write_input
#include "data/tokenizer.h"    // provides: tokenizer_init/decode/encode/free

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const char* path = fz_write_input("tokenizer", data, size);
    static Tokenizer t;
    static TokenizerCache cache;
    static TokenIds ids;
    static uint8_t text[600];
    fz_begin();
    if (setjmp(fz_jmp) == 0) {
        if (tokenizer_init(&t, path) == 0) {
            for (uint32_t i = 0; i < t.vocab_size; i++) {
                size_t len;
                const char* s = tokenizer_decode(&t, i, &len);
                if (s == NULL || s[len] != '\0') { abort(); }
            }
            if (t.n_merges > 0) {
                for (int i = 0; i < 256; i++) { text[i] = (uint8_t)i; }
                memcpy(text + 256, " hello world, hell well hehehe llll", 35);
                tokenizer_cache_init(&cache);
                memset(&ids, 0, sizeof(ids));
                tokenizer_encode(&t, &cache, text, 291, &ids);
                for (size_t i = 0; i < ids.len; i++) { if (ids.ids[i] >= t.vocab_size) { abort(); } }
                tokenids_free(&ids);
                tokenizer_cache_free(&cache);
            }
            tokenizer_free(&t);
        }
    }
    fz_end();
    return 0;
}
