// gptc/utils.h -- how every program of this project fails, allocates, reads and writes files.
//
// What it is: how bad input is handled: die() prints ONE line "error: ..." on stderr and exits with
// status 1 (the tokenizer and the safetensors reader use it too, with open_input and read_fd:
// every input file must be a regular file); the trainer's sizes from untrusted numbers go through
// checked_mul/checked_add; its output files are written to a temp file and renamed, so an
// interrupted write never destroys a good file. And the limits every untrusted number of the
// trainer (file headers, flags, descriptors) is checked against, each with its reason. (data/'s
// readers keep their own size checks and temp files, with messages naming their formats.)
// What it is not: a general library. It includes only system headers (nothing of this project),
// and it is written in the common subset of C11 and C++ (train_gpt.cu and the CUDA emulator
// compile it as C++). Every function is static, so an includer pays only for what it calls.

#ifndef GPTC_UTILS_H
#define GPTC_UTILS_H

#include <errno.h>     // provides: errno, ENOENT, EINTR
#include <math.h>      // provides: isfinite
#include <signal.h>    // provides: signal, SIGXFSZ, SIG_IGN
#include <fcntl.h>     // provides: open, O_RDONLY, O_NONBLOCK
#include <stdarg.h>    // provides: va_list (die)
#include <stdint.h>    // provides: uint64_t, SIZE_MAX
#include <stdio.h>     // provides: FILE, fopen, fdopen, fread, fwrite, fprintf, snprintf, rename
#include <stdlib.h>    // provides: malloc, calloc, free, exit
#include <string.h>    // provides: strerror
#include <sys/stat.h>  // provides: fstat, S_ISREG, S_ISDIR, ...
#include <time.h>      // provides: clock_gettime
#include <unistd.h>    // provides: read, close, fsync, getpid, sleep

// ----------------------------------------------------------------------------------------------
// Limits on untrusted numbers. Within them every size below fits size_t and every count the
// layers keep in an int (rows B*T, channels up to 4C or Vp) fits an int.

#define MAX_LAYERS 1024             // L: GPT-2 XL has 48: a deeper model here is a typo
#define MAX_CHANNELS 65536          // C: GPT-2 XL has 1600; 4C stays far below INT_MAX
#define MAX_SEQ_LEN (1 << 20)       // maxT: GPT-2 has 1024; attention's T^2 per head must fit memory
#define MAX_VOCAB 65536             // V: token shards store ids as uint16
#define MAX_PADDED_VOCAB (MAX_VOCAB + 128)
#define MAX_PARAMETERS (1ULL << 34) // 16 G floats (64 GiB for the weights alone): past any machine
                                    // this trains on; GPT-2 XL has 1.6 G
// Tokens of one micro-batch: the layers count rows (B*T) in an int, and 2^24 is also where a float
// stops counting tokens exactly. (GPT-2's largest batches are 2^19 tokens, split into micro-batches.)
#define MAX_MICRO_BATCH_TOKENS (1L << 24)
#define MAX_STEPS (1L << 30)        // -x: steps are counted in an int by the schedule
#define MAX_EPOCH (1L << 40)        // epochs name RNG streams: 2^40 passes over any data set is never reached
#define MAX_DROPOUT 0.99f           // -D: p = 1 would scale the kept elements by 1/0

// ----------------------------------------------------------------------------------------------
// Errors

// The temp file of the atomic write in progress (open_for_atomic_write), "" when none: die()
// removes it, so a failed save leaves neither a half-written file nor its temp behind.
static char g_atomic_tmp[4200];
// This process's rank in a data-parallel job (gptc/comm.h sets it): an error that every rank hits
// (a bad flag, a missing file) is printed once, by rank 0, whose exit ends the whole job; another
// rank waits 2 s first, so its line comes only when it alone failed.
static int g_error_rank = 0;

// One line "error: ..." on stderr, then exit(1): how every program of this project fails.
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2), noreturn))
#endif
static inline void die(const char* fmt, ...) {
    if (g_error_rank > 0) { sleep(2); }
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    if (g_atomic_tmp[0] != '\0') { remove(g_atomic_tmp); }
    exit(1);
}

// A write past the file-size limit (ulimit -f) would kill the process with SIGXFSZ: no error
// line, and the temp file left behind. Ignored, the write fails with EFBIG instead, and its error
// path says so and cleans up. Every program that writes files calls this first.
static inline void writes_fail_past_size_limit(void) { signal(SIGXFSZ, SIG_IGN); }

// The sizes of a model from a source we did not write (a file header, a descriptor, a config.json):
// every one positive and within the limits above, and C divisible by NH, so that no size computed
// from them overflows.
static inline void check_model_sizes(int maxT, int V, int L, int NH, int C, int Vp, const char* where) {
    if (maxT <= 0 || V <= 0 || L <= 0 || NH <= 0 || C <= 0 || Vp <= 0) {
        die("%s: model sizes must be positive (maxT=%d V=%d L=%d NH=%d C=%d Vp=%d)", where, maxT, V, L, NH,
            C, Vp);
    }
    if (L > MAX_LAYERS) { die("%s: L=%d layers is more than the limit %d", where, L, MAX_LAYERS); }
    if (C > MAX_CHANNELS) { die("%s: C=%d channels is more than the limit %d", where, C, MAX_CHANNELS); }
    if (maxT > MAX_SEQ_LEN) { die("%s: maxT=%d is more than the limit %d", where, maxT, MAX_SEQ_LEN); }
    if (V > MAX_VOCAB) { die("%s: V=%d does not fit uint16 token shards (limit %d)", where, V, MAX_VOCAB); }
    if (C % NH != 0) { die("%s: channels C=%d is not divisible by heads NH=%d", where, C, NH); }
    if (Vp < V || Vp > MAX_PADDED_VOCAB) {
        die("%s: padded vocab Vp=%d must be in [V=%d, %d]", where, Vp, V, MAX_PADDED_VOCAB);
    }
    // GPT-2's parameter count in double: exact far past the bound, so this cannot overflow itself
    double n = ((double)Vp + maxT) * C + (double)L * (12.0 * C * C + 13.0 * C) + 2.0 * C;
    if (n > (double)MAX_PARAMETERS) {
        die("%s: %.3g parameters is more than the limit %.3g (L=%d C=%d maxT=%d Vp=%d)", where, n,
            (double)MAX_PARAMETERS, L, C, maxT, Vp);
    }
}

// A loaded tensor must be finite: a NaN or inf in a file would train silently into NaN.
// Returns the index of the first non-finite element of x (n), or n.
static inline size_t first_nonfinite(const float* x, size_t n) {
    size_t bad = n;
    #pragma omp parallel for reduction(min:bad)
    for (size_t i = 0; i < n; i++) { if (!isfinite(x[i]) && i < bad) { bad = i; } }
    return bad;
}

// ----------------------------------------------------------------------------------------------
// Checked sizes and memory

// Sizes computed from untrusted numbers (file headers, model descriptors, flags) are multiplied
// only here: a product that does not fit size_t is an error naming what was being sized, never a
// wrapped-around small allocation that is later written past its end.
static inline size_t checked_mul(size_t a, size_t b, const char* what) {
    if (a != 0 && b > SIZE_MAX / a) { die("%s: size overflows (%zu x %zu)", what, a, b); }
    return a * b;
}
static inline size_t checked_add(size_t a, size_t b, const char* what) {
    if (b > SIZE_MAX - a) { die("%s: size overflows (%zu + %zu)", what, a, b); }
    return a + b;
}

static inline void* malloc_or_die(size_t bytes) {
    void* p = malloc(bytes);
    if (p == NULL && bytes > 0) { die("out of memory allocating %zu bytes", bytes); }
    return p;
}

static inline void* calloc_or_die(size_t n, size_t size) {
    void* p = calloc(n, size);
    if (p == NULL && n > 0) { die("out of memory allocating %zu bytes", n * size); }
    return p;
}

// ----------------------------------------------------------------------------------------------
// Input files: regular files only, read exactly

// What a file that is not a regular file is, for error messages ("is a FIFO, not a regular file").
static inline const char* file_kind(mode_t mode) {
    if (S_ISDIR(mode)) { return "a directory"; }
    if (S_ISFIFO(mode)) { return "a FIFO"; }
    if (S_ISCHR(mode)) { return "a character device"; }
    if (S_ISBLK(mode)) { return "a block device"; }
#ifdef S_ISSOCK // POSIX, hidden by strict -std=c11
    if (S_ISSOCK(mode)) { return "a socket"; }
#endif
    return "not a plain file";
}

// Opens an input file for reading: returns its descriptor and stores its size, or returns -1
// (printing nothing, errno ENOENT) if it does not exist. Anything but a regular file is an
// error: a directory reads as garbage, a FIFO or a terminal would block forever, /dev/zero never
// ends. O_NONBLOCK makes open() itself return at once on a FIFO without a writer (it changes
// nothing for regular files), and the type is checked on the opened descriptor, not on the name,
// so nothing can be swapped in between.
static inline int open_input(const char* path, size_t* size) {
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT) { return -1; }
        die("%s: cannot open: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) { die("%s: cannot stat: %s", path, strerror(errno)); }
    if (!S_ISREG(st.st_mode)) { die("%s: is %s, not a regular file", path, file_kind(st.st_mode)); }
    if (st.st_size < 0 || (uint64_t)st.st_size > (uint64_t)(SIZE_MAX / 2)) {
        die("%s: size %lld does not fit in memory", path, (long long)st.st_size);
    }
    *size = (size_t)st.st_size;
    return fd;
}

// Reads up to n bytes (fewer only at the end of the file); a read error names the file.
static inline size_t read_fd(int fd, void* buf, size_t n, const char* path) {
    size_t got = 0;
    while (got < n) {
        size_t want = n - got < ((size_t)1 << 30) ? n - got : ((size_t)1 << 30); // read() caps ~2 GB
        ssize_t r = read(fd, (char*)buf + got, want);
        if (r < 0 && errno == EINTR) { continue; }
        if (r < 0) { die("%s: read error: %s", path, strerror(errno)); }
        if (r == 0) { break; }
        got += (size_t)r;
    }
    return got;
}

static inline FILE* fopen_or_die(const char* path, const char* mode) {
    FILE* f = fopen(path, mode);
    if (f == NULL) { die("%s: cannot open (%s)", path, strerror(errno)); }
    return f;
}

// an input file as a stdio stream (open_input's checks: a regular file, or an error)
static inline FILE* fopen_input_or_die(const char* path) {
    size_t size;
    int fd = open_input(path, &size);
    if (fd < 0) { die("%s: cannot open (%s)", path, strerror(ENOENT)); }
    FILE* f = fdopen(fd, "rb");
    if (f == NULL) { die("%s: cannot open (%s)", path, strerror(errno)); }
    return f;
}

// reads exactly n items or names the file and says it is truncated
static inline void fread_or_die(void* dst, size_t size, size_t n, FILE* f, const char* path) {
    size_t got = fread(dst, size, n, f);
    if (got != n) {
        die("%s: truncated file (wanted %zu items of %zu bytes, got %zu)", path, n, size, got);
    }
}

static inline long file_size_or_die(FILE* f, const char* path) {
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) { die("%s: cannot stat (%s)", path, strerror(errno)); }
    return (long)sb.st_size;
}

// ----------------------------------------------------------------------------------------------
// Output files: written whole, or not at all

static inline void fwrite_or_die(const void* src, size_t size, size_t n, FILE* f, const char* path) {
    if (fwrite(src, size, n, f) != n) { die("%s: write failed (%s)", path, strerror(errno)); }
}

// Writes to path.tmp.PID, then finish_atomic_write renames it to path: an interrupted save never
// destroys an existing file, and two processes writing the same path never share a temp file.
// A write error between the two (fwrite_or_die, or die for any reason) removes the temp file.
static inline FILE* open_for_atomic_write(const char* path, char* tmp, size_t tmpsize) {
    if (snprintf(tmp, tmpsize, "%s.tmp.%ld", path, (long)getpid()) >= (int)tmpsize ||
        strlen(tmp) >= sizeof(g_atomic_tmp)) {
        die("%s: path too long", path);
    }
    FILE* f = fopen_or_die(tmp, "wb");
    snprintf(g_atomic_tmp, sizeof(g_atomic_tmp), "%s", tmp);
    return f;
}
static inline void finish_atomic_write(FILE* f, const char* tmp, const char* path) {
    if (fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0) {
        die("%s: write failed (%s)", tmp, strerror(errno));
    }
    if (rename(tmp, path) != 0) { die("%s: cannot rename to %s (%s)", tmp, path, strerror(errno)); }
    g_atomic_tmp[0] = '\0';
}

// ----------------------------------------------------------------------------------------------
// Time

static inline double wall_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif // GPTC_UTILS_H
