// fuzz_state.c -- libFuzzer harness: the fuzzer's bytes as a training-state file next to a valid
// model file of the sweep's tiny model, resumed the way run_training resumes: load_checkpoint, the
// recorded options (state version 2), then the data position against a real loader.
// Built and run by dev/fuzz/run.sh; see dev/fuzz/README.md.
#include "fuzz_common.h"  // provides: die() that returns here, fz_begin/fz_end
#include "train_gpt.c"    // provides: the loaders (GPT_NO_MAIN)

#define FZ_DESC "L1H1C8T16V97"
enum { FZ_B = 2, FZ_T = 8, FZ_V = 97, FZ_NTOK = 5 * FZ_B * FZ_T + 1 };
static char dir[256], state_path[300], shard_path[300];

// the checkpoint folder: model_00000001.bin written by the trainer's own code, and a token shard
static void setup(void) {
    const char* tmp = getenv("FUZZ_TMP") ? getenv("FUZZ_TMP") : (access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    snprintf(dir, sizeof(dir), "%s/fuzz_state_%ld", tmp, (long)getpid());
    mkdir(dir, 0755);
    snprintf(state_path, sizeof(state_path), "%s/state_00000001.bin", dir);
    snprintf(shard_path, sizeof(shard_path), "%s/shard.bin", dir);
    char model_path[300];
    snprintf(model_path, sizeof(model_path), "%s/model_00000001.bin", dir);
    GPT m;
    gpt_build_from_descriptor(&m, FZ_DESC, 1337);
    gpt_write_model(&m, model_path);
    gpt_free(&m);
    int32_t header[256];
    shard_header(header, FZ_NTOK, 0);
    uint16_t tok[FZ_NTOK];
    for (int i = 0; i < FZ_NTOK; i++) { tok[i] = (uint16_t)((7 * i + 3) % FZ_V); }
    FILE* f = fopen(shard_path, "wb");
    if (f == NULL || fwrite(header, 4, 256, f) != 256 || fwrite(tok, 2, FZ_NTOK, f) != FZ_NTOK) { abort(); }
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (dir[0] == '\0') { setup(); }
    FILE* f = fopen(state_path, "wb");
    if (f == NULL || fwrite(data, 1, size, f) != size) { abort(); }
    fclose(f);
    static GPT model;
    static TrainState st;
    static DataLoader d;
    static int inputs[FZ_B * FZ_T], targets[FZ_B * FZ_T];
    memset(&st, 0, sizeof(st));
    fz_begin();
    if (setjmp(fz_jmp) == 0) {
        load_checkpoint(&model, &st, dir, 1);
        TrainOptions o = default_options();
        o.verbose = 0;
        TrainOptions run = resume_options(&o, st.options, st.options_len, st.step, state_path);
        (void)run;
        loader_init(&d, shard_path, FZ_B, FZ_T, FZ_V, 1, 1337, "-i");
        loader_seek(&d, st.epoch, st.shard_pos, st.sample_pos, state_path);
        loader_next_batch(&d, inputs, targets);
        loader_free(&d);
        gpt_free(&model);
    }
    fz_end();
    return 0;
}
