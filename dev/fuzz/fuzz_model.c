// fuzz_model.c -- libFuzzer harness: the fuzzer's bytes as a model file (train_gpt.c's
// gpt_build_from_checkpoint, the loader behind -e FILE and behind every resume).
// Built and run by dev/fuzz/run.sh; see dev/fuzz/README.md.
#include "fuzz_common.h"  // provides: die() that returns here, fz_begin/fz_end, fz_write_input
#include "train_gpt.c"    // provides: the loaders (GPT_NO_MAIN)

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const char* path = fz_write_input("model", data, size);
    static GPT model;
    fz_begin();
    if (setjmp(fz_jmp) == 0) {
        gpt_build_from_checkpoint(&model, path);
        // a loaded model must be usable: its size_t sizes exact (so its tensors lie inside its weights)
        unsigned __int128 exact = 0;
        for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
            const ParamSpec* s = &model.specs[k];
            exact += (unsigned __int128)s->dims[0] * s->dims[1] * s->dims[2];
        }
        if (exact != (unsigned __int128)model.num_parameters) {
            fprintf(fz_real_stderr(), "fuzz_model: loaded a header whose parameter count wraps size_t "
                    "(maxT=%d V=%d L=%d NH=%d C=%d Vp=%d)\n", model.config.max_seq_len, model.config.vocab_size,
                    model.config.num_layers, model.config.num_heads, model.config.channels,
                    model.config.padded_vocab_size);
            abort();
        }
        gpt_free(&model);
    }
    fz_end();
    return 0;
}
