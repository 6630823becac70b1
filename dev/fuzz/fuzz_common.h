// fuzz_common.h -- what every libFuzzer harness of dev/fuzz/ shares: the project's loaders with a
// die() that returns to the harness instead of exiting, and the cleanup that makes that safe.
//
// What it is: an include that a harness puts first, then the header it exercises (or
// `#include "train_gpt.c"` with GPT_NO_MAIN), so the harness calls the real static loader
// functions on the fuzzer's bytes.
// What it is not: a change to the loaders. Nothing in train_gpt.c, gptc/ or data/ is edited;
// the redirection is done with macros that apply only to the text included after this file.
//
// Why: libFuzzer runs every input in one process, and a loader that rejects an input calls
// die() -> exit(1), which libFuzzer would report as a crash. So, within the included code only:
//   exit(code)          -> longjmp back to the harness (fz_jmp), which then continues;
//   malloc/calloc/realloc/free/strdup, fopen/fdopen/fclose, open/close
//                       -> the same calls, recorded, so that what a rejected input left allocated
//                          or open is released by fz_end() (otherwise thousands of iterations
//                          would leak memory and file descriptors);
//   stderr              -> /dev/null (a million "error: ..." lines would drown libFuzzer's output).
// A real bug still crashes: ASan/UBSan reports abort the process as usual, and an allocation larger
// than libFuzzer's -malloc_limit_mb is reported as an out-of-memory crash.

#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

// every system header the included code uses, included BEFORE the macros below rename calls
#include <assert.h>
#include <ctype.h>
#include <dirent.h>
#include <fnmatch.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <glob.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static jmp_buf fz_jmp;
static int fz_armed;   // 1 while a loader runs: exit() returns to fz_jmp

__attribute__((noreturn)) static void fz_exit(int code) {
    if (fz_armed) { fz_armed = 0; longjmp(fz_jmp, 1); }
    _exit(code);
}

// what the loaders hold: allocations, FILEs, descriptors (a loader holds a handful at a time)
enum { FZ_MAX = 1 << 14 };
static void* fz_mem[FZ_MAX]; static int fz_nmem;
static FILE* fz_files[256]; static int fz_nfiles;
static int fz_fds[256]; static int fz_nfds;

static void fz_track(void* p) {
    if (p == NULL) { return; }
    if (fz_nmem == FZ_MAX) { fprintf(stderr, "fuzz_common.h: more than %d live allocations\n", FZ_MAX); abort(); }
    fz_mem[fz_nmem++] = p;
}
static void fz_untrack(void* p) {
    for (int i = fz_nmem - 1; i >= 0; i--) {
        if (fz_mem[i] == p) { fz_mem[i] = fz_mem[--fz_nmem]; return; }
    }
}
static void* fz_malloc(size_t n) { void* p = malloc(n); fz_track(p); return p; }
static void* fz_calloc(size_t n, size_t s) { void* p = calloc(n, s); fz_track(p); return p; }
static void* fz_realloc(void* old, size_t n) {
    void* p = realloc(old, n);
    if (p != NULL || n == 0) { fz_untrack(old); fz_track(p); }
    return p;
}
static void fz_free(void* p) { fz_untrack(p); free(p); }
static char* fz_strdup(const char* s) { char* p = strdup(s); fz_track(p); return p; }

static void fz_track_file(FILE* f) {
    if (f != NULL && fz_nfiles < 256) { fz_files[fz_nfiles++] = f; }
}
static FILE* fz_fopen(const char* path, const char* mode) { FILE* f = fopen(path, mode); fz_track_file(f); return f; }
static void fz_untrack_fd(int fd) {
    for (int i = fz_nfds - 1; i >= 0; i--) { if (fz_fds[i] == fd) { fz_fds[i] = fz_fds[--fz_nfds]; return; } }
}
static FILE* fz_fdopen(int fd, const char* mode) {
    FILE* f = fdopen(fd, mode);
    if (f != NULL) { fz_untrack_fd(fd); fz_track_file(f); } // the FILE owns the descriptor now
    return f;
}
static int fz_fclose(FILE* f) {
    for (int i = fz_nfiles - 1; i >= 0; i--) { if (fz_files[i] == f) { fz_files[i] = fz_files[--fz_nfiles]; break; } }
    return fclose(f);
}
static int fz_open(const char* path, int flags, ...) {
    int mode = 0;
    if (flags & O_CREAT) { va_list ap; va_start(ap, flags); mode = va_arg(ap, int); va_end(ap); }
    int fd = open(path, flags, mode);
    if (fd >= 0 && fz_nfds < 256) { fz_fds[fz_nfds++] = fd; }
    return fd;
}
static int fz_close(int fd) { fz_untrack_fd(fd); return close(fd); }

static FILE* fz_real_stderr(void) { return stderr; } // for the harness's own findings
static FILE* fz_null;
static FILE* fz_stderr(void) {
    if (fz_null == NULL) { fz_null = fopen("/dev/null", "w"); }
    return fz_null;
}

// a file named after the harness and the process, rewritten with each input
static const char* fz_write_input(const char* name, const uint8_t* data, size_t size) {
    static char path[256];
    if (path[0] == '\0') {
        const char* dir = getenv("FUZZ_TMP") ? getenv("FUZZ_TMP") : (access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        snprintf(path, sizeof(path), "%s/fuzz_%s_%ld.bin", dir, name, (long)getpid());
    }
    FILE* f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, size, f) != size || fclose(f) != 0) { perror(path); abort(); }
    return path;
}

// around each call into the loaders:  fz_begin(); if (setjmp(fz_jmp) == 0) { ... } fz_end();
static void fz_begin(void) { fz_armed = 1; }
static void fz_end(void) {
    fz_armed = 0;
    while (fz_nfiles > 0) { fclose(fz_files[--fz_nfiles]); }
    while (fz_nfds > 0) { close(fz_fds[--fz_nfds]); }
    while (fz_nmem > 0) { free(fz_mem[--fz_nmem]); }
}

// from here on, the included project code calls the versions above
#define exit(code) fz_exit(code)
#define malloc(n) fz_malloc(n)
#define calloc(n, s) fz_calloc(n, s)
#define realloc(p, n) fz_realloc(p, n)
#define free(p) fz_free(p)
#define strdup(s) fz_strdup(s)
#define fopen(p, m) fz_fopen(p, m)
#define fdopen(fd, m) fz_fdopen(fd, m)
#define fclose(f) fz_fclose(f)
#define open(...) fz_open(__VA_ARGS__)
#define close(fd) fz_close(fd)
#undef stderr
#define stderr fz_stderr()

#define GPT_NO_MAIN
#endif
