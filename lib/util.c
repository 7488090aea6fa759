/* util.c — errors, logging, allocation, file mapping, dtypes, half floats, PRNG.
 * The small things every other lib/ file leans on. */
#include "h5io.h"
#include "internal.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static _Thread_local char last_error[1024];
static strata_log_fn log_fn;
static void *log_user;

const char *strata_strerror(int status)
{
    switch (status) {
    case STRATA_OK: return "ok";
    case STRATA_E_IO: return "I/O error";
    case STRATA_E_FORMAT: return "bad file format";
    case STRATA_E_SHAPE: return "shape mismatch";
    case STRATA_E_ARG: return "invalid argument";
    case STRATA_E_NOMEM: return "out of memory";
    case STRATA_E_HDF5: return "HDF5 error";
    case STRATA_E_NAN: return "non-finite value";
    case STRATA_E_DATA: return "not enough data";
    case STRATA_E_OBSERVER: return "stopped by an observer";
    case STRATA_E_INTERRUPTED: return "interrupted";
    default: return "unknown error";
    }
}

const char *strata_last_error(void) { return last_error; }

int strata_fail(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

void strata_log_set(strata_log_fn fn, void *user)
{
    log_fn = fn;
    log_user = user;
}

void strata_log(enum strata_log_level level, const char *fmt, ...)
{
    if (!log_fn) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_fn(level, msg, log_user);
}

static void oom(size_t n, const char *file, int line)
{
    fprintf(stderr, "%s:%d: out of memory allocating %zu bytes\n", file, line, n);
    abort();
}

void *strata_xmalloc_(size_t n, const char *file, int line)
{
    void *p = malloc(n ? n : 1);
    if (!p) oom(n, file, line);
    return p;
}

void *strata_xcalloc_(size_t n, size_t size, const char *file, int line)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size, file, line);
    return p;
}

void *strata_xrealloc_(void *p, size_t n, const char *file, int line)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n, file, line);
    return q;
}

char *strata_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = xmalloc(n);
    memcpy(d, s, n);
    return d;
}

char *strata_xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

bool strata_has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

char *strata_path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = xmalloc(a + b + 2);
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

int strata_map_file(struct strata_map *map, const char *path)
{
    map->data = NULL;
    map->size = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return strata_fail(STRATA_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return strata_fail(STRATA_E_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return strata_fail(STRATA_E_FORMAT, "%s: file is empty", path);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return strata_fail(STRATA_E_IO, "%s: mmap failed: %s", path, strerror(errno));
    map->data = p;
    map->size = (size_t)st.st_size;
    return 0;
}

void strata_unmap_file(struct strata_map *map)
{
    if (map->data) munmap(map->data, map->size);
    map->data = NULL;
    map->size = 0;
}

int strata_read_file(char **data, size_t *size, const char *path)
{
    *data = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return strata_fail(STRATA_E_IO, "%s: cannot open: %s", path, strerror(errno));
    /* Only regular files: /dev/zero, a FIFO or a directory would be read
     * until memory runs out (or never end). */
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return strata_fail(STRATA_E_IO, "%s: not a regular file (a device, FIFO or directory); "
                           "give a file", path);
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) buf = xrealloc(buf, cap *= 2);
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return strata_fail(STRATA_E_IO, "%s: read error", path);
    }
    buf[n] = '\0';
    *data = buf;
    *size = n;
    return 0;
}

const char *strata_dtype_name(enum strata_dtype dtype)
{
    switch (dtype) {
    case STRATA_DT_F32: return "F32";
    case STRATA_DT_F16: return "F16";
    case STRATA_DT_BF16: return "BF16";
    case STRATA_DT_F64: return "F64";
    case STRATA_DT_I32: return "I32";
    case STRATA_DT_I64: return "I64";
    }
    return "?";
}

size_t strata_dtype_size(enum strata_dtype dtype)
{
    switch (dtype) {
    case STRATA_DT_F16:
    case STRATA_DT_BF16: return 2;
    case STRATA_DT_F32:
    case STRATA_DT_I32: return 4;
    case STRATA_DT_F64:
    case STRATA_DT_I64: return 8;
    }
    return 0;
}

/* Half floats: bit manipulation rather than F16C so results do not depend on
 * the build's -march; round to nearest even as IEEE 754 requires. */
uint16_t strata_f32_to_f16(float x)
{
    uint32_t f;
    memcpy(&f, &x, 4);
    uint32_t sign = (f >> 16) & 0x8000u;
    uint32_t exp = (f >> 23) & 0xffu;
    uint32_t man = f & 0x7fffffu;
    if (exp == 0xffu) /* Inf or NaN (keep NaN quiet and non-zero) */
        return (uint16_t)(sign | 0x7c00u | (man ? 0x200u | (man >> 13) : 0));
    int32_t e = (int32_t)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00u); /* overflow -> Inf */
    if (e <= 0) {                                   /* subnormal or zero */
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t half = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1u))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) half++; /* may carry into Inf: correct */
    return (uint16_t)(sign | half);
}

float strata_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t f;
    if (exp == 0x1fu) {
        f = sign | 0x7f800000u | (man << 13);
    } else if (exp == 0) {
        if (man == 0) {
            f = sign;
        } else { /* normalize the subnormal */
            int e = -1;
            do {
                man <<= 1;
                e++;
            } while (!(man & 0x400u));
            f = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else {
        f = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float x;
    memcpy(&x, &f, 4);
    return x;
}

uint64_t strata_rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

const char *strata_shape_text(char *buf, size_t n, int n_dim, const int64_t *shape)
{
    size_t k = (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < n_dim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "%s)", n_dim == 1 ? "," : "");
    return buf;
}

int strata_h5_want_shape(const struct strata_h5 *f, const char *name, int n_dim, const int64_t *want,
                      const char *dims)
{
    int nd;
    int64_t sh[STRATA_H5_MAX_DIMS];
    int rc = strata_h5_shape(f, name, &nd, sh);
    if (rc) return rc;
    bool ok = nd == n_dim;
    for (int i = 0; ok && i < n_dim; i++) ok = sh[i] == want[i];
    if (!ok) {
        char a[160], b[160];
        return strata_fail(STRATA_E_FORMAT, "%s: dataset /%s has shape %s; expected %s = %s",
                           strata_h5_file_path(f), name, strata_shape_text(a, sizeof a, nd, sh),
                           strata_shape_text(b, sizeof b, n_dim, want), dims);
    }
    return 0;
}

char *strata_json_text(struct cJSON *o)
{
    char *txt = cJSON_Print(o);
    cJSON_Delete(o);
    STRATA_ASSERT(txt);
    char *copy = strata_xstrdup(txt);
    cJSON_free(txt);
    return copy;
}
