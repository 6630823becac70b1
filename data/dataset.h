// data/dataset.h -- how ./tokenizer writes a dataset: whole, or not at all (data/tokenizer.c's
// shards, sft and eval commands).
//
// What it is: the bookkeeping of what a run created (g_created, removed on any exit), the
// interrupt handling of a long run (SIGINT, SIGTERM, SIGHUP: noted, acted on between pieces of
// work), and the replacement of a dataset under a prefix, staged and committed as described below.
// What it is not: the shards' contents (data/tokenizer.c's ShardWriter) or their format
// (gptc/shard.h). Included once, by data/tokenizer.c, after data/tokenizer.h (tok_xrealloc) and
// gptc/utils.h (die, malloc_or_die); every function is static.

#ifndef DATA_DATASET_H
#define DATA_DATASET_H

#include <dirent.h>       // provides: opendir, readdir (listing a dataset)
#include <errno.h>        // provides: errno, EINTR
#include <fcntl.h>        // provides: open, O_RDONLY, O_DIRECTORY (syncing and locking a folder)
#include <signal.h>       // provides: sigaction, raise, sig_atomic_t
#include <stdarg.h>       // provides: va_list (format_path)
#include <stdio.h>        // provides: fprintf, rename, remove, snprintf
#include <stdlib.h>       // provides: qsort, exit
#include <string.h>       // provides: strcmp, strlen, memset, strerror
#include <sys/file.h>     // provides: flock (one dataset replacement at a time in a folder)
#include <sys/stat.h>     // provides: stat, mkdir
#include <unistd.h>       // provides: fsync, getpid, rmdir
#include "tokenizer.h"    // provides: tok_xrealloc, and (gptc/utils.h) die, malloc_or_die

// ----------------------------------------------------------------------------
// What this run created, and its interrupts
typedef struct { char** paths; size_t n, cap; } PathList;

static void path_list_add(PathList* l, const char* path) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->paths = (char**)tok_xrealloc(l->paths, l->cap * sizeof(char*), "paths");
    }
    l->paths[l->n] = (char*)malloc_or_die(strlen(path) + 1);
    strcpy(l->paths[l->n++], path);
}

static void path_list_free(PathList* l) {
    for (size_t i = 0; i < l->n; i++) free(l->paths[i]);
    free(l->paths);
    memset(l, 0, sizeof(*l));
}

// What this run created and has not handed over yet (folders made for an output, the staging
// folder and its shards): remove_created, registered with atexit in main, removes them newest
// first on ANY exit -- die(), tokenizer.h's own error exits, an interrupted `shards` -- so a
// failing run leaves nothing of its own behind. It removes nothing else: remove() takes only
// empty folders, so a folder that holds someone's file stays. Cleared once the output is in place.
// (The tokenizer file's temp is gptc/utils.h's g_atomic_tmp, removed here too.)
static PathList g_created;

static void remove_created(void) {
    for (size_t i = g_created.n; i > 0; i--) remove(g_created.paths[i - 1]);
    if (g_atomic_tmp[0] != '\0') remove(g_atomic_tmp);
}

static void created_clear(void) { path_list_free(&g_created); }

// snprintf into a path buffer; a path that does not fit is an error, never a cut-off name.
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void format_path(char* out, size_t cap, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap) die("%.100s...: path too long", out);
}

// Ctrl-C (SIGINT), kill (SIGTERM) or a closed terminal (SIGHUP) during `shards`: the handler only
// notes the signal; the run stops at its next check (stop_if_signalled: between files, encoded
// pieces and documents, never inside dataset_commit), removes what it created and dies of the
// same signal, as a shell script expects. SIGKILL cannot be caught: see the shards section.
static volatile sig_atomic_t g_stop_signal;

static void note_stop_signal(int sig) { g_stop_signal = sig; }

static void catch_stop_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = note_stop_signal;
    sa.sa_flags = 0; // no SA_RESTART: a read of stdin that waits returns EINTR (read_stdin)
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

static void stop_if_signalled(const char* what) {
    int sig = g_stop_signal;
    if (sig == 0) return;
    fprintf(stderr, "error: %s: interrupted by signal %d: removed what this run wrote "
            "(an existing dataset is untouched)\n", what, sig);
    remove_created();
    signal(sig, SIG_DFL);
    raise(sig);
    exit(1); // not reached
}


// ----------------------------------------------------------------------------
// Replacing a dataset
//
// A dataset is every file PREFIX_train_NNNNNN.bin and PREFIX_val_NNNNNN.bin (six or more digits:
// the names this program writes; nothing else under PREFIX is touched), and it is replaced whole
// or not at all:
//  1. Before any input is read, a dataset already under PREFIX is refused without --replace.
//  2. The shards are written into the staging folder PREFIX.tmp.PID/, which the trainer's glob
//     PREFIX_train_*.bin never looks into; each is synced (fsync) when it is closed.
//  3. dataset_commit, holding a lock (flock) on PREFIX's folder so that two runs never commit at
//     once, lists the old dataset again, moves its shards into PREFIX.tmp.PID/replaced/, syncs the
//     folder, moves the new shards into place, syncs the folder again, and only then deletes the
//     old shards and the staging folder. A failed move undoes the moves before it.
// A failure or an interrupt (SIGINT, SIGTERM, SIGHUP) before step 3 removes the staging folder and
// leaves every file under PREFIX as it was. The one window: a SIGKILL, a crash or a power loss
// during step 3's moves (one rename per shard and two folder syncs: milliseconds) leaves PART of
// the old dataset or PART of the new one under PREFIX, and the rest in PREFIX.tmp.PID/ -- never
// some of each, because the folder is synced after the last old shard is out and before the
// first new one is in. Run again with --replace. A SIGKILL at any other moment leaves only the
// staging folder (the next run warns about it), which no glob of the dataset matches.

#define MAX_PREFIX_BYTES 2000 // OUT_PREFIX: room for PREFIX.tmp.PID/PREFIX_train_NNNNNN.bin in 4096

static int compare_strings(const void* a, const void* b) { return strcmp(*(char* const*)a, *(char* const*)b); }

// "data/brown/brown" -> folder "data/brown", name part "brown"; "brown" -> ".", "brown"; "/b" -> "/", "b".
static const char* split_prefix(const char* prefix, char* dir, size_t cap) {
    const char* slash = strrchr(prefix, '/');
    if (!slash) { format_path(dir, cap, "."); return prefix; }
    format_path(dir, cap, "%.*s", slash == prefix ? 1 : (int)(slash - prefix), prefix);
    return slash + 1;
}

// Is `name` a shard this program writes for the name part `base`: base_train_NNNNNN.bin or
// base_val_NNNNNN.bin with six or more digits ("%06d")?
static int is_shard_name(const char* name, const char* base) {
    size_t n = strlen(base);
    if (strncmp(name, base, n) != 0) return 0;
    const char* p = name + n;
    if (strncmp(p, "_train_", 7) == 0) p += 7;
    else if (strncmp(p, "_val_", 5) == 0) p += 5;
    else return 0;
    const char* digits = p;
    while (*p >= '0' && *p <= '9') p++;
    return p - digits >= 6 && strcmp(p, ".bin") == 0;
}

// The file names of the dataset `base` in folder `dir` -> *old, sorted. With `warn`, it also
// names what else the trainer's globs base_train_*.bin / base_val_*.bin match there (left as
// is), and the staging folders of runs that were killed.
static void dataset_list(const char* dir, const char* base, PathList* old, int warn) {
    DIR* d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return; // no folder yet: no dataset
        die("%s: cannot open folder: %s", dir, strerror(errno));
    }
    size_t n = strlen(base);
    struct dirent* ent;
    while ((ent = readdir(d)) != NULL) {
        const char* name = ent->d_name;
        if (strncmp(name, base, n) != 0) continue;
        char path[4096];
        format_path(path, sizeof(path), "%s/%s", dir, name);
        if (is_shard_name(name, base)) {
            struct stat st;
            if (lstat(path, &st) != 0) {
                if (errno == ENOENT) continue; // just moved by a run committing (step 1 holds no lock)
                die("%s: cannot stat: %s", path, strerror(errno));
            }
            if (S_ISDIR(st.st_mode)) die("%s: is a folder, not a shard (move it away)", path);
            path_list_add(old, name);
            continue;
        }
        if (!warn) continue;
        const char* rest = name + n;
        size_t len = strlen(name);
        int globbed = strncmp(rest, "_train_", 7) == 0 || strncmp(rest, "_val_", 5) == 0;
        if (globbed && len > 4 && strcmp(name + len - 4, ".bin") == 0) {
            fprintf(stderr, "warning: %s: not a shard name ./tokenizer writes, so it is neither replaced nor removed, "
                    "but the trainer's glob for this prefix matches it\n", path);
        } else if (strncmp(rest, ".tmp.", 5) == 0 && rest[5] && strspn(rest + 5, "0123456789") == strlen(rest + 5)) {
            long pid = strtol(rest + 5, NULL, 10);
            if (pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH)
                fprintf(stderr, "warning: %s: staging folder of a run that was killed (process %ld is gone): "
                        "remove it\n", path, pid);
        }
    }
    closedir(d);
    if (old->n > 1) qsort(old->paths, old->n, sizeof(char*), compare_strings); // (paths: NULL when none)
}

// Step 3 above: puts the shards `fresh` (file names in `stage`) in place of the dataset `base` in
// `dir`, or leaves `dir` as it was and dies. Returns how many old shards it replaced.
static size_t dataset_commit(const char* dir, const char* base, const char* stage, const PathList* fresh,
                             int replace, const char* prefix) {
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd < 0) die("%s: cannot open folder: %s", dir, strerror(errno));
    while (flock(dfd, LOCK_EX) != 0) { // waits while another run commits; nothing has moved yet,
        if (errno != EINTR) die("%s: cannot lock folder: %s", dir, strerror(errno));
        stop_if_signalled(prefix); // so Ctrl-C here stops the run as anywhere before the commit
    }
    PathList old;
    memset(&old, 0, sizeof(old));
    dataset_list(dir, base, &old, 0); // again: another run may have committed meanwhile
    if (old.n > 0 && !replace)
        die("%s: another run wrote a dataset there meanwhile (%s/%s): it is left as it is, and this run's "
            "shards are removed (--replace replaces it)", prefix, dir, old.paths[0]);
    char trash[4096], from[4096], to[4096], failed[4096] = "";
    format_path(trash, sizeof(trash), "%s/replaced", stage);
    if (old.n > 0) {
        if (mkdir(trash, 0755) != 0) die("%s: cannot create folder: %s", trash, strerror(errno));
        path_list_add(&g_created, trash); // removed at exit only while empty: old shards stay
    }
    size_t n_out = 0, n_in = 0; // old shards moved out, new ones moved in
    int err = 0;
    for (; n_out < old.n; n_out++) {
        format_path(from, sizeof(from), "%s/%s", dir, old.paths[n_out]);
        format_path(to, sizeof(to), "%s/%s", trash, old.paths[n_out]);
        if (rename(from, to) != 0) { err = errno; format_path(failed, sizeof(failed), "%s", from); break; }
    }
    // on disk, the old dataset is gone before the first new shard appears: no crash shows both
    if (!failed[0] && fsync(dfd) != 0) { err = errno; format_path(failed, sizeof(failed), "%s", dir); }
    for (; !failed[0] && n_in < fresh->n; n_in++) {
        format_path(from, sizeof(from), "%s/%s", stage, fresh->paths[n_in]);
        format_path(to, sizeof(to), "%s/%s", dir, fresh->paths[n_in]);
        if (rename(from, to) != 0) { err = errno; format_path(failed, sizeof(failed), "%s", from); break; }
    }
    if (!failed[0] && fsync(dfd) != 0) { err = errno; format_path(failed, sizeof(failed), "%s", dir); }
    if (failed[0]) { // undo: the new shards back into the staging folder (or deleted), the old back
        int undone = 1;
        while (n_in > 0) {
            n_in--;
            format_path(from, sizeof(from), "%s/%s", dir, fresh->paths[n_in]);
            format_path(to, sizeof(to), "%s/%s", stage, fresh->paths[n_in]);
            if (rename(from, to) != 0 && unlink(from) != 0) undone = 0;
        }
        while (n_out > 0) {
            n_out--;
            format_path(from, sizeof(from), "%s/%s", trash, old.paths[n_out]);
            format_path(to, sizeof(to), "%s/%s", dir, old.paths[n_out]);
            if (rename(from, to) != 0) undone = 0;
        }
        fsync(dfd);
        if (!undone)
            die("%s: cannot move into place (%s), and undoing the moves failed too: the old shards missing "
                "from %s are in %s", failed, strerror(err), dir, trash);
        die("%s: cannot move into place (%s): %s's dataset is left as it was", failed, strerror(err), prefix);
    }
    created_clear(); // in place: from here on, an exit removes nothing
    int litter = 0;
    for (size_t i = 0; i < old.n; i++) {
        format_path(from, sizeof(from), "%s/%s", trash, old.paths[i]);
        if (unlink(from) != 0) litter = 1;
    }
    if ((old.n > 0 && rmdir(trash) != 0) || rmdir(stage) != 0) litter = 1;
    if (litter)
        fprintf(stderr, "warning: %s: the new dataset is in place, but removing this folder failed: remove it\n", stage);
    close(dfd); // releases the lock
    size_t replaced = old.n;
    path_list_free(&old);
    return replaced;
}


#endif // DATA_DATASET_H
