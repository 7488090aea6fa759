/* internal.h — declarations shared inside lib/ only (not part of the API). */
#ifndef STRATA_INTERNAL_H
#define STRATA_INTERNAL_H

#include "strata.h"

#include <stdio.h>
#include <stdlib.h>

/* Bugs: print file:line and abort; never compiled out. */
#define STRATA_ASSERT(x)                                                        \
    do {                                                                        \
        if (!(x)) {                                                             \
            fprintf(stderr, "%s:%d: STRATA_ASSERT(%s) failed\n", __FILE__,      \
                    __LINE__, #x);                                              \
            abort();                                                            \
        }                                                                       \
    } while (0)

#if defined(__GNUC__)
#define STRATA_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define STRATA_PRINTF(a, b)

#endif
/* Out of memory is not recoverable for a research tool: report and abort. */
#define xmalloc(n) strata_xmalloc_((n), __FILE__, __LINE__)
#define xcalloc(n, s) strata_xcalloc_((n), (s), __FILE__, __LINE__)
#define xrealloc(p, n) strata_xrealloc_((p), (n), __FILE__, __LINE__)
void *strata_xmalloc_(size_t n, const char *file, int line);
void *strata_xcalloc_(size_t n, size_t size, const char *file, int line);
void *strata_xrealloc_(void *p, size_t n, const char *file, int line);
char *strata_xstrdup(const char *s);
char *strata_xstrndup(const char *s, size_t n);
bool strata_has_suffix(const char *s, const char *suffix);
/* dir + "/" + name, malloc'ed. */
char *strata_path_join(const char *dir, const char *name);

/* Record the detailed message for strata_last_error() and return `status`,
 * so failures read `return strata_fail(STRATA_E_IO, "%s: ...", path);`. */
int strata_fail(int status, const char *fmt, ...) STRATA_PRINTF(2, 3);
void strata_log(enum strata_log_level level, const char *fmt, ...) STRATA_PRINTF(2, 3);

/* cJSON's indented text of o, which is deleted, as a strata-owned
 * malloc'ed string (allocate-or-die). o is a cJSON *. */
struct cJSON;
char *strata_json_text(struct cJSON *o);

/* A read-only mapping of a whole file. */
struct strata_map {
    void *data;
    size_t size;
};
int strata_map_file(struct strata_map *map, const char *path);
void strata_unmap_file(struct strata_map *map);

/* Whole file into a malloc'ed, NUL-terminated buffer. */
int strata_read_file(char **data, size_t *size, const char *path);


/* vecmath.c: elementwise kernels (AVX2 when built for it). */
void strata_vexp(float *x, int64_t n);               /* x = exp(x) */
float strata_vmax(const float *x, int64_t n);        /* max, -Inf for n == 0 */
void strata_softmax(float *x, int64_t n);            /* in place, max-shifted */
void strata_swiglu(float *g, const float *u, int64_t n); /* g = silu(g) * u */

#endif
