// fuzz_eval.c -- libFuzzer harness: the fuzzer's bytes as a multiple-choice eval file (llm.c's
// format, gptc/eval.h), read and checked by eval_read, fitted to a tiny model (eval_fit: tokens < V,
// contexts cut to maxT), and every row of every example laid out as the model would read it.
// Built and run by dev/fuzz/run.sh; see dev/fuzz/README.md.
#include "fuzz_common.h"  // provides: die() that returns here, fz_begin/fz_end, fz_write_input
#include "gptc/eval.h"    // provides: EvalSet, eval_read, eval_fit, eval_row, eval_free

enum { FZ_V = 97, FZ_MAXT = 16 };  // the sweep's tiny model: V=97, maxT=16

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const char* path = fz_write_input("eval", data, size);
    static EvalSet ev;
    static int seq[FZ_MAXT + 1];
    fz_begin();
    if (setjmp(fz_jmp) == 0) {
        memset(&ev, 0, sizeof(ev));
        eval_read(&ev, path, "--eval");
        int T = eval_fit(&ev, FZ_V, FZ_MAXT);
        if (T < 1 || T > FZ_MAXT) { abort(); } // the longest row must fit the model's context
        for (int i = 0; i < ev.n; i++) {
            for (long r = ev.row0[i]; r < ev.row0[i + 1]; r++) {
                int m = eval_row(&ev, i, r, seq);
                if (m < 2 || m - 1 > T) { abort(); }
                for (int j = 0; j < m; j++) { if (seq[j] < 0 || seq[j] >= FZ_V) { abort(); } }
            }
        }
        eval_free(&ev);
    }
    fz_end();
    return 0;
}
