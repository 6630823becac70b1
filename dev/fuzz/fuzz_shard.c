// fuzz_shard.c -- libFuzzer harness: the fuzzer's bytes as a token shard, read by load_shard and by
// the whole data loader (loader_init, which checks every shard of a glob, then batches).
// Built and run by dev/fuzz/run.sh; see dev/fuzz/README.md.
#include "fuzz_common.h"  // provides: die() that returns here, fz_begin/fz_end, fz_write_input
#include "gptc/dataloader.h" // provides: load_shard, loader_init/next_batch/free

enum { FZ_B = 2, FZ_T = 8, FZ_V = 97 };  // the sweep's tiny model: B=2 T=8 V=97

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const char* path = fz_write_input("shard", data, size);
    static DataLoader d;
    static int inputs[FZ_B * FZ_T], targets[FZ_B * FZ_T];
    fz_begin();
    if (setjmp(fz_jmp) == 0) {
        long ntok = 0;
        uint8_t* flags = NULL;
        uint16_t* tokens = load_shard(path, FZ_V, &ntok, &flags);
        free(tokens); free(flags);
    }
    fz_end();
    fz_begin();
    if (setjmp(fz_jmp) == 0) {
        loader_init(&d, path, FZ_B, FZ_T, FZ_V, 1, 1337, "-i");
        for (int i = 0; i < 8; i++) {  // past the end of a small shard: the next epoch
            loader_next_batch(&d, inputs, targets);
            for (int j = 0; j < FZ_B * FZ_T; j++) {
                if (inputs[j] < 0 || inputs[j] >= FZ_V || targets[j] < IGNORED_TARGET || targets[j] >= FZ_V) { abort(); }
            }
        }
        loader_free(&d);
    }
    fz_end();
    return 0;
}
