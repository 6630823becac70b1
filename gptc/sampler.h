// gptc/sampler.h -- text generation around a model: the prompt in, tokens drawn, tokens out.
//
// What it is: sample_token draws from softmax(logits / temperature), restricted to the top_k
// largest logits and to the smallest set of tokens whose probability adds up to top_p (nucleus
// sampling, Holtzman et al., "The Curious Case of Neural Text Degeneration"), with a seeded Rng
// (gptc/rand.h): the same logits, options and generator state always give the same token.
// sample_sequence draws token after token, asking the model for each next position's logits
// through a callback; encode_prompt, print_token, sample_and_print and sample_text are its text
// ends (data/tokenizer.h).
// What it is not: the model. train_gpt.c's next_logits is the callback: a KV-cached decode of one
// position, or a full forward over the sequence so far.

#ifndef GPTC_SAMPLER_H
#define GPTC_SAMPLER_H

#include <math.h>      // provides: expf, INFINITY
#include <stdio.h>     // provides: printf, fwrite, fprintf
#include "utils.h"     // provides: die, malloc_or_die, wall_seconds
#include "rand.h"      // provides: Rng, rng_uniform
#include "../data/tokenizer.h" // provides: Tokenizer, tokenizer_encode/decode, TokenIds

typedef struct {
    float temperature; // > 0
    int top_k;         // 0 or >= V: no restriction
    float top_p;       // 1: no restriction
} SampleOptions;

// Token i comes before token j in the nucleus's order: by value descending, ties by index (a
// fixed order: the same draw gives the same token).
static inline int nucleus_before(const float* w, int i, int j) {
    return w[i] > w[j] || (w[i] == w[j] && i < j);
}
// restores the max-heap (first in nucleus order at the root) below position at, of n entries
static inline void nucleus_sift_down(int* heap, int n, int at, const float* w) {
    for (;;) {
        int c = 2 * at + 1;
        if (c >= n) { return; }
        if (c + 1 < n && nucleus_before(w, heap[c + 1], heap[c])) { c++; }
        if (!nucleus_before(w, heap[c], heap[at])) { return; }
        int t = heap[at]; heap[at] = heap[c]; heap[c] = t;
        at = c;
    }
}

// A token drawn from logits (V) under the options; work (V floats) and order (V ints) are scratch.
static inline int sample_token(const float* logits, int V, const SampleOptions* so, Rng* rng, float* work, int* order) {
    float maxval = -INFINITY;
    for (int v = 0; v < V; v++) { if (logits[v] > maxval) { maxval = logits[v]; } }
    float threshold = -INFINITY;
    if (so->top_k > 0 && so->top_k < V) {
        // the k-th largest logit: select it from a copy (quickselect)
        for (int v = 0; v < V; v++) { work[v] = logits[v]; }
        int lo = 0, hi = V - 1, want = so->top_k - 1; // descending order position
        while (lo < hi) {
            float pivot = work[(lo + hi) / 2];
            int i = lo, j = hi;
            while (i <= j) {
                while (work[i] > pivot) { i++; }
                while (work[j] < pivot) { j--; }
                if (i <= j) { float t = work[i]; work[i] = work[j]; work[j] = t; i++; j--; }
            }
            if (want <= j) { hi = j; } else if (want >= i) { lo = i; } else { break; }
        }
        threshold = work[want];
    }
    double sum = 0.0;
    for (int v = 0; v < V; v++) {
        work[v] = logits[v] >= threshold ? expf((logits[v] - maxval) / so->temperature) : 0.0f;
        sum += work[v];
    }
    if (so->top_p < 1.0f) {
        // keep the most probable tokens, in order, until their mass reaches top_p of the total;
        // zero the rest. The order comes from a heap (built in O(n), each token taken in
        // O(log n)), so only the kept tokens are ordered: a few dozen for a trained model, not V.
        int n = 0;
        for (int v = 0; v < V; v++) { if (work[v] > 0.0f) { order[n++] = v; } }
        for (int at = n / 2 - 1; at >= 0; at--) { nucleus_sift_down(order, n, at, work); }
        double kept = 0.0, target = (double)so->top_p * sum;
        int left = n; // order[0..left) is the heap of the tokens not yet kept
        while (left > 0 && kept < target) {
            kept += work[order[0]];
            order[0] = order[--left];
            nucleus_sift_down(order, left, 0, work);
        }
        for (int i = 0; i < left; i++) { work[order[i]] = 0.0f; }
        sum = kept;
    }
    double r = (double)rng_uniform(rng) * sum;
    double acc = 0.0;
    for (int v = 0; v < V; v++) {
        acc += work[v];
        if (r < acc) { return v; }
    }
    for (int v = V - 1; v >= 0; v--) { if (work[v] > 0.0f) { return v; } }
    return 0;
}

// the (V) logits of the position after seq[0..len-1], from the model behind ctx
typedef const float* (*NextLogits)(void* ctx, const int* seq, int len);

// Generates up to max_new tokens after the n_prompt tokens of seq (whose room is for `window`
// tokens in all), stopping early at the end-of-text token `eot` (which is not emitted; -1: never)
// or when the window is full. Each new token goes to emit(token, emit_ctx) as it is drawn, and
// into seq. Returns the number of tokens generated.
static inline int sample_sequence(NextLogits next, void* ctx, int V, int* seq, int n_prompt, int window,
                                  int max_new, const SampleOptions* so, Rng* rng, int eot,
                                  void (*emit)(int token, void* emit_ctx), void* emit_ctx) {
    float* work = (float*)malloc_or_die((size_t)V * sizeof(float));
    int* order = (int*)malloc_or_die((size_t)V * sizeof(int));
    int len = n_prompt, made = 0;
    while (made < max_new && len < window) {
        const float* logits = next(ctx, seq, len);
        for (int v = 0; v < V; v++) {
            if (!isfinite(logits[v])) { // NaN or inf: the forward overflowed; no token is drawn
                die("generation: the logits at position %d are not finite (logit %d is %g): the "
                    "model's forward overflowed", len - 1, v, (double)logits[v]);
            }
        }
        int token = sample_token(logits, V, so, rng, work, order);
        if (token == eot) { break; }
        seq[len++] = token;
        made++;
        emit(token, emit_ctx);
    }
    free(work); free(order);
    return made;
}

// Encodes a prompt for a model of context maxT and vocabulary V with tok (read from tok_path)
// into seq (room for maxT): a prompt longer than the context keeps its last maxT tokens (said on
// stderr); an empty prompt is <|endoftext|> alone (GPT-2's unconditional start). Returns the
// token count, >= 1.
static inline int encode_prompt(const Tokenizer* tok, const char* tok_path, const char* text, int maxT,
                                int V, int* seq) {
    TokenIds ids;
    memset(&ids, 0, sizeof(ids));
    if (tokenizer_encode(tok, NULL, text, strlen(text), &ids) != 0) {
        die("-Z %s: a decode-only tokenizer file (version %d): encoding needs version 3", tok_path,
            tok->version);
    }
    if (ids.len == 0) { tokenids_push(&ids, tok->eot); }
    size_t n = ids.len, first = n > (size_t)maxT ? n - (size_t)maxT : 0;
    for (size_t i = first; i < n; i++) { // (checked before the note: an error stays one line)
        if ((int)ids.ids[i] >= V) { die("--prompt: token %u is outside the model's vocabulary (V=%d)", ids.ids[i], V); }
    }
    if (first > 0) {
        fprintf(stderr, "note: the prompt is %zu tokens, the context %d: it keeps its last %d\n", n, maxT,
                maxT);
        n = (size_t)maxT;
    }
    for (size_t i = 0; i < n; i++) { seq[i] = (int)ids.ids[first + i]; }
    tokenids_free(&ids);
    return (int)n;
}

// prints a token as text (with a tokenizer: ctx, else NULL) or as its id
static inline void print_token(int token, void* ctx) {
    const Tokenizer* tok = (const Tokenizer*)ctx;
    if (tok != NULL) {
        size_t len;
        const char* s = tokenizer_decode(tok, (uint32_t)token, &len);
        if (s != NULL) { fwrite(s, 1, len, stdout); }
    } else {
        printf("%d ", token);
    }
    fflush(stdout);
}

// The training loop's samples: up to n tokens after an end-of-text token (tok's, or the last id
// without a tokenizer), printed between "---" lines as they are drawn (as text, or ids).
static inline void sample_and_print(NextLogits next, void* ctx, int V, int window, int n, const Tokenizer* tok,
                                    const SampleOptions* so, Rng* rng) {
    int len = n + 1 < window ? n + 1 : window;
    int* seq = (int*)malloc_or_die((size_t)len * sizeof(int));
    seq[0] = tok != NULL && (int)tok->eot < V ? (int)tok->eot : V - 1;
    printf("generating:\n---\n");
    sample_sequence(next, ctx, V, seq, 1, len, n, so, rng, seq[0], print_token, (void*)tok);
    printf("\n---\n");
    free(seq);
}

// --prompt's output: the prompt's text, then up to max_new tokens drawn after its n tokens in seq
// (room for `window`), as they come, stopping at <|endoftext|>; then on stderr the speed (`how`:
// which backend and path). Returns the number of tokens drawn.
static inline int sample_text(NextLogits next, void* ctx, int V, int* seq, int n, int window, int max_new,
                              const Tokenizer* tok, const char* prompt, const SampleOptions* so, Rng* rng,
                              const char* how) {
    fwrite(prompt, 1, strlen(prompt), stdout);
    fflush(stdout);
    double t0 = wall_seconds();
    int made = sample_sequence(next, ctx, V, seq, n, window, max_new, so, rng, (int)tok->eot, print_token,
                               (void*)tok);
    double sec = wall_seconds() - t0;
    printf("\n");
    fflush(stdout);
    fprintf(stderr, "generated %d tokens after a %d-token prompt in %.2f s: %.1f tok/s (%s)\n", made, n, sec,
            made / (sec > 0 ? sec : 1e-9), how);
    return made;
}

#endif // GPTC_SAMPLER_H
