/* check.h — the tiny test harness: CHECK and CHECK_CLOSE count failures,
 * and every test program ends with CHECK_DONE(), which prints
 * "<name>: N passed, N failed" and returns non-zero on any failure. */
#ifndef STRATA_CHECK_H
#define STRATA_CHECK_H

#include <math.h>
#include <stdio.h>

static int check_passed, check_failed;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (cond) {                                                              \
            check_passed++;                                                      \
        } else {                                                                 \
            check_failed++;                                                      \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
        }                                                                        \
    } while (0)

/* |got - want| <= tol; prints both on failure. */
#define CHECK_CLOSE(got, want, tol)                                              \
    do {                                                                         \
        double g_ = (double)(got), w_ = (double)(want), t_ = (double)(tol);      \
        if (fabs(g_ - w_) <= t_) {                                               \
            check_passed++;                                                      \
        } else {                                                                 \
            check_failed++;                                                      \
            fprintf(stderr, "%s:%d: CHECK_CLOSE(%s, %s): %.9g vs %.9g (tol %.3g)\n", \
                    __FILE__, __LINE__, #got, #want, g_, w_, t_);                \
        }                                                                        \
    } while (0)

/* A status call that must succeed; prints strata_last_error() otherwise. */
#define CHECK_OK(call)                                                           \
    do {                                                                         \
        int rc_ = (call);                                                        \
        if (rc_ == 0) {                                                          \
            check_passed++;                                                      \
        } else {                                                                 \
            check_failed++;                                                      \
            fprintf(stderr, "%s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #call,  \
                    strata_strerror(rc_), strata_last_error());                  \
        }                                                                        \
    } while (0)

/* Scratch directory: $STRATA_TMP when set (tests/run.sh removes it), else a
 * fresh mkdtemp directory under /tmp; returns false (after perror) only when
 * neither exists. *owned tells the caller to rmdir it at the end. */
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>
static inline bool check_tmpdir(char *buf, size_t size, const char *name, bool *owned)
{
    const char *t = getenv("STRATA_TMP");
    *owned = !(t && *t);
    if (!*owned) {
        snprintf(buf, size, "%s", t);
        return true;
    }
    snprintf(buf, size, "/tmp/strata-%s.XXXXXX", name);
    if (mkdtemp(buf)) return true;
    perror("mkdtemp");
    return false;
}

/* Whole file, NUL-terminated, malloc'ed (NULL if unreadable); *size its
 * length when size is not NULL. Plain stdio, independent of lib/. */
static inline char *check_slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = '\0';
    if (size) *size = n;
    return buf;
}

#define CHECK_DONE(name)                                                         \
    (printf("%s: %d passed, %d failed\n", (name), check_passed, check_failed),   \
     check_failed ? 1 : 0)

#endif
