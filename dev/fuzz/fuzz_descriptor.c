// fuzz_descriptor.c -- libFuzzer harness: the fuzzer's bytes as a model descriptor (-e d12,
// -e L4H4C256T1024V50257): config_from_descriptor (gptc/cli.h's parse_descriptor), then
// config_validate. A descriptor that passes both must have sizes that fit: the parameter count and its bytes are recomputed exactly (128-bit) and
// compared with the size_t values of the shape table. No weights are allocated (a valid descriptor
// may describe a model of many GB).
// Built and run by dev/fuzz/run.sh; see dev/fuzz/README.md.
#include "fuzz_common.h"  // provides: die() that returns here, fz_begin/fz_end
#include "train_gpt.c"    // provides: config_from_descriptor, config_validate, param_specs (GPT_NO_MAIN)

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static char desc[128];
    if (size >= sizeof(desc)) { return 0; }
    memcpy(desc, data, size);
    desc[size] = '\0';
    static GPTConfig cfg;
    static ParamSpec specs[NUM_PARAMETER_TENSORS];
    fz_begin();
    if (setjmp(fz_jmp) == 0) {
        int ok = config_from_descriptor(&cfg, desc) == NULL;
        if (ok) {
            config_validate(&cfg, desc);
            param_specs(specs, &cfg);
            unsigned __int128 exact = 0;
            size_t counted = 0;
            for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
                exact += (unsigned __int128)specs[k].dims[0] * specs[k].dims[1] * specs[k].dims[2];
                counted += specs[k].size;
            }
            // the table's size_t arithmetic must be exact, and the weights' bytes must fit size_t
            if (exact != (unsigned __int128)counted || exact * sizeof(float) > (unsigned __int128)SIZE_MAX) {
                fprintf(fz_real_stderr(), "fuzz_descriptor: %s passes config_validate but its size does not fit "
                        "size_t (%zu parameters in size_t arithmetic)\n", desc, counted);
                abort();
            }
        }
    }
    fz_end();
    return 0;
}
