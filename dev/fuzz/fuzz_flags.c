// fuzz_flags.c -- libFuzzer harness: the fuzzer's bytes as a command line (NUL or newline separated
// arguments) for parse_options, the trainer's flag parser.
// Built and run by dev/fuzz/run.sh; see dev/fuzz/README.md.
#include "fuzz_common.h"  // provides: die() that returns here, fz_begin/fz_end
#include "gptc/cli.h"    // provides: parse_options (the flag table)

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static char buf[4096];
    static char* argv[65];
    if (size >= sizeof(buf)) { return 0; }
    memcpy(buf, data, size);
    buf[size] = '\0';
    int argc = 0;
    argv[argc++] = (char*)"train_gpt";
    for (size_t i = 0; i < size; i++) { if (buf[i] == '\n') { buf[i] = '\0'; } }
    for (char* p = buf; argc < 64 && p < buf + size; p += strlen(p) + 1) { argv[argc++] = p; }
    argv[argc] = NULL;
    fz_begin();
    if (setjmp(fz_jmp) == 0) {
        TrainOptions o = parse_options(argc, argv);
        (void)o;
    }
    fz_end();
    return 0;
}
