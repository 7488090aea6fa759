/* gguf.c — GGUF files (llama.cpp's format, ggml docs/gguf.md, v2 and v3,
 * little-endian): the parser of the header, metadata and tensor directory,
 * and typed access to the metadata. gguf_model.c loads models from it,
 * tok_gguf.c the tokenizer, quant.c decodes the block types.
 *
 * File layout: "GGUF", u32 version, u64 n_tensors, u64 n_kv; n_kv times
 * (string key, u32 type, value); n_tensors times (string name, u32 n_dims,
 * u64 ne[n_dims], u32 ggml type, u64 offset); zero padding to the alignment
 * (general.alignment, default 32); the data section, tensor offsets
 * relative to its start. Strings are u64 length + bytes; arrays are u32
 * element type, u64 count, elements.
 *
 * Why so many checks: every count, length and offset comes from the file,
 * so each is compared with the bytes that remain before it sizes anything
 * or forms a pointer; a damaged or hostile file is an error naming the file
 * and the field, never a crash, a hang or a huge allocation. Tensors must
 * lie inside the data section without overlapping, names and keys are
 * unique, and a type id ggml does not define is named with its tensor.
 */
#include "gguf.h"

#include <dirent.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------ types */

static const struct {
    const char *name;
    uint32_t blck; /* values a block */
    uint32_t size; /* bytes a block */
} ggml_types[40] = {
    [0] = {"F32", 1, 4},         [1] = {"F16", 1, 2},         [2] = {"Q4_0", 32, 18},
    [3] = {"Q4_1", 32, 20},      [6] = {"Q5_0", 32, 22},      [7] = {"Q5_1", 32, 24},
    [8] = {"Q8_0", 32, 34},      [9] = {"Q8_1", 32, 36},      [10] = {"Q2_K", 256, 84},
    [11] = {"Q3_K", 256, 110},   [12] = {"Q4_K", 256, 144},   [13] = {"Q5_K", 256, 176},
    [14] = {"Q6_K", 256, 210},   [15] = {"Q8_K", 256, 292},   [16] = {"IQ2_XXS", 256, 66},
    [17] = {"IQ2_XS", 256, 74},  [18] = {"IQ3_XXS", 256, 98}, [19] = {"IQ1_S", 256, 50},
    [20] = {"IQ4_NL", 32, 18},   [21] = {"IQ3_S", 256, 110},  [22] = {"IQ2_S", 256, 82},
    [23] = {"IQ4_XS", 256, 136}, [24] = {"I8", 1, 1},         [25] = {"I16", 1, 2},
    [26] = {"I32", 1, 4},        [27] = {"I64", 1, 8},        [28] = {"F64", 1, 8},
    [29] = {"IQ1_M", 256, 56},   [30] = {"BF16", 1, 2},       [34] = {"TQ1_0", 256, 54},
    [35] = {"TQ2_0", 256, 66},   [39] = {"MXFP4", 32, 17},
};
#define N_GGML_TYPES (sizeof ggml_types / sizeof ggml_types[0])

const char *strata_ggml_type_name(uint32_t type)
{
    return type < N_GGML_TYPES && ggml_types[type].name ? ggml_types[type].name : "?";
}

static const char *const vtype_names[GGUF_N_VTYPE] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
    "bool", "string", "array", "uint64", "int64", "float64"};
static const uint8_t vtype_size[GGUF_N_VTYPE] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

/* ------------------------------------------------------------ reader */

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

struct rd {
    const uint8_t *base;
    size_t pos, size;
    const char *path;
};

static int need(const struct rd *r, uint64_t n, const char *what)
{
    if ((uint64_t)(r->size - r->pos) >= n) return 0;
    return strata_fail(STRATA_E_FORMAT,
                       "%s: truncated: %s at byte %zu needs %llu bytes but the file ends at byte "
                       "%zu; the download or copy is incomplete",
                       r->path, what, r->pos, (unsigned long long)n, r->size);
}

static int rd_u32(struct rd *r, uint32_t *v, const char *what)
{
    int rc = need(r, 4, what);
    if (rc) return rc;
    *v = le32(r->base + r->pos);
    r->pos += 4;
    return 0;
}

static int rd_u64(struct rd *r, uint64_t *v, const char *what)
{
    int rc = need(r, 8, what);
    if (rc) return rc;
    *v = le64(r->base + r->pos);
    r->pos += 8;
    return 0;
}

/* A string of at most max bytes; *s points into the mapping. */
static int rd_str(struct rd *r, const char **s, uint64_t *n, uint64_t max, const char *what)
{
    int rc = rd_u64(r, n, what);
    if (rc) return rc;
    if (*n > max)
        return strata_fail(STRATA_E_FORMAT,
                           "%s: %s at byte %zu has length %llu (at most %llu allowed); the file "
                           "is corrupt",
                           r->path, what, r->pos - 8, (unsigned long long)*n,
                           (unsigned long long)max);
    if ((rc = need(r, *n, what))) return rc;
    *s = (const char *)r->base + r->pos;
    r->pos += (size_t)*n;
    return 0;
}

/* One metadata value of type `type`, checked and skipped; kv records where. */
static int rd_value(struct rd *r, struct gguf_kv *kv, const char *key, int key_len)
{
    int rc;
    char what[160];
    snprintf(what, sizeof what, "the value of key \"%.*s\"", key_len > 100 ? 100 : key_len, key);
    if (kv->type >= GGUF_N_VTYPE)
        return strata_fail(STRATA_E_FORMAT,
                           "%s: key \"%.*s\" has value type %u, which GGUF does not define "
                           "(0..12); the file is corrupt",
                           r->path, key_len, key, kv->type);
    if (kv->type == GGUF_STR) {
        const char *s;
        if ((rc = rd_str(r, &s, &kv->n, UINT64_MAX, what))) return rc;
        kv->val = (const uint8_t *)s;
    } else if (kv->type == GGUF_ARR) {
        if ((rc = rd_u32(r, &kv->arr_type, what)) || (rc = rd_u64(r, &kv->n, what))) return rc;
        if (kv->arr_type >= GGUF_N_VTYPE || kv->arr_type == GGUF_ARR)
            return strata_fail(STRATA_E_FORMAT,
                               "%s: key \"%.*s\" is an array of type %u; strata reads arrays of "
                               "numbers, booleans and strings (no nested arrays)",
                               r->path, key_len, key, kv->arr_type);
        kv->val = r->base + r->pos;
        const uint64_t left = r->size - r->pos;
        const uint64_t min = kv->arr_type == GGUF_STR ? 8 : vtype_size[kv->arr_type];
        if (kv->n > left / min)
            return strata_fail(STRATA_E_FORMAT,
                               "%s: key \"%.*s\" claims %llu elements but only %llu bytes "
                               "follow; the file is truncated or corrupt",
                               r->path, key_len, key, (unsigned long long)kv->n,
                               (unsigned long long)left);
        if (kv->arr_type == GGUF_STR) {
            for (uint64_t i = 0; i < kv->n; i++) {
                const char *s;
                uint64_t n;
                if ((rc = rd_str(r, &s, &n, UINT64_MAX, what))) return rc;
            }
        } else {
            if (kv->arr_type == GGUF_BOOL)
                for (uint64_t i = 0; i < kv->n; i++)
                    if (r->base[r->pos + i] > 1)
                        return strata_fail(STRATA_E_FORMAT,
                                           "%s: key \"%.*s\" element %llu is bool %u (0 or 1)",
                                           r->path, key_len, key, (unsigned long long)i,
                                           r->base[r->pos + i]);
            r->pos += (size_t)(kv->n * min);
        }
    } else {
        if ((rc = need(r, vtype_size[kv->type], what))) return rc;
        kv->val = r->base + r->pos;
        if (kv->type == GGUF_BOOL && kv->val[0] > 1)
            return strata_fail(STRATA_E_FORMAT, "%s: key \"%.*s\" is bool %u (0 or 1)", r->path,
                               key_len, key, kv->val[0]);
        r->pos += vtype_size[kv->type];
    }
    kv->end = r->base + r->pos;
    return 0;
}

/* ------------------------------------------------------------ sorting */

static int cmp_kv(const void *a, const void *b)
{
    const struct gguf_kv *x = *(const struct gguf_kv *const *)a, *y = *(const struct gguf_kv *const *)b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

/* qsort has no context argument; per thread, so models load concurrently. */
static _Thread_local const struct gguf_tensor *sort_t;

static int cmp_name(const void *a, const void *b)
{
    return strcmp(sort_t[*(const int64_t *)a].name, sort_t[*(const int64_t *)b].name);
}

static int cmp_offset(const void *a, const void *b)
{
    const struct gguf_tensor *x = &sort_t[*(const int64_t *)a], *y = &sort_t[*(const int64_t *)b];
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return (x->size > y->size) - (x->size < y->size);
}

/* ------------------------------------------------------------ parse */

static int parse_tensors(struct strata_gguf *g, struct rd *r)
{
    int rc;
    const int64_t n = g->n_t_file;
    g->t = xcalloc((size_t)n + 1, sizeof *g->t);
    for (int64_t i = 0; i < n; i++) {
        struct gguf_tensor *t = &g->t[i];
        const char *name;
        uint64_t len;
        char what[64];
        snprintf(what, sizeof what, "the name of tensor %lld", (long long)i);
        if ((rc = rd_str(r, &name, &len, 256, what))) return rc;
        if (len == 0 || memchr(name, 0, (size_t)len))
            return strata_fail(STRATA_E_FORMAT, "%s: tensor %lld has an empty name or one with a "
                               "NUL byte; the file is corrupt", g->path, (long long)i);
        t->name = strata_xstrndup(name, (size_t)len);
        g->n_t = i + 1;
        if ((rc = rd_u32(r, &t->n_dim, "a tensor's n_dims"))) return rc;
        if (t->n_dim > 4)
            return strata_fail(STRATA_E_FORMAT,
                               "%s: tensor \"%s\" has n_dims %u; GGUF tensors have at most 4",
                               g->path, t->name, t->n_dim);
        t->n_elem = 1;
        for (int k = 0; k < 4; k++) t->ne[k] = 1;
        for (uint32_t k = 0; k < t->n_dim; k++) {
            uint64_t ne;
            if ((rc = rd_u64(r, &ne, "a tensor dimension"))) return rc;
            if (ne > (uint64_t)INT64_MAX || (ne && (uint64_t)t->n_elem > (uint64_t)INT64_MAX / ne))
                return strata_fail(STRATA_E_FORMAT,
                                   "%s: tensor \"%s\": dimension %u (%llu) makes more elements "
                                   "than any file can hold; the file is corrupt",
                                   g->path, t->name, k, (unsigned long long)ne);
            t->ne[k] = (int64_t)ne;
            t->n_elem *= (int64_t)ne;
        }
        if ((rc = rd_u32(r, &t->type, "a tensor's type"))) return rc;
        if (t->type >= N_GGML_TYPES || !ggml_types[t->type].name)
            return strata_fail(STRATA_E_FORMAT,
                               "%s: tensor \"%s\" has ggml type %u, which strata does not know "
                               "(the file is newer than strata, or damaged)",
                               g->path, t->name, t->type);
        const uint64_t blck = ggml_types[t->type].blck, bsize = ggml_types[t->type].size;
        if (t->ne[0] % (int64_t)blck)
            return strata_fail(STRATA_E_FORMAT,
                               "%s: tensor \"%s\" of type %s has rows of %lld values, not a "
                               "multiple of its block size %llu",
                               g->path, t->name, ggml_types[t->type].name, (long long)t->ne[0],
                               (unsigned long long)blck);
        const uint64_t n_blocks = (uint64_t)t->n_elem / blck;
        if (n_blocks > UINT64_MAX / bsize)
            return strata_fail(STRATA_E_FORMAT, "%s: tensor \"%s\" is too large; the file is "
                               "corrupt", g->path, t->name);
        t->size = n_blocks * bsize;
        if ((rc = rd_u64(r, &t->offset, "a tensor's offset"))) return rc;
        if (t->offset % g->alignment)
            return strata_fail(STRATA_E_FORMAT,
                               "%s: tensor \"%s\" starts at data offset %llu, not a multiple of "
                               "the alignment %llu; the file is corrupt",
                               g->path, t->name, (unsigned long long)t->offset,
                               (unsigned long long)g->alignment);
    }
    /* The data section starts at the next multiple of the alignment. */
    const uint64_t a = g->alignment;
    const uint64_t data_at = ((uint64_t)r->pos + a - 1) / a * a;
    const uint64_t data_size = data_at <= r->size ? r->size - data_at : 0;
    for (int64_t i = 0; i < n; i++) {
        struct gguf_tensor *t = &g->t[i];
        if (data_at > r->size || t->offset > data_size || t->size > data_size - t->offset)
            return strata_fail(STRATA_E_FORMAT,
                               "%s: tensor \"%s\" (%s, %llu bytes at data offset %llu) reaches "
                               "beyond the end of the file (data section: %llu bytes from byte "
                               "%llu); the file is truncated or corrupt",
                               g->path, t->name, ggml_types[t->type].name,
                               (unsigned long long)t->size, (unsigned long long)t->offset,
                               (unsigned long long)data_size, (unsigned long long)data_at);
        t->data = r->base + data_at + t->offset;
    }
    int64_t *ix = xmalloc(((size_t)n + 1) * sizeof *ix);
    for (int64_t i = 0; i < n; i++) ix[i] = i;
    sort_t = g->t;
    qsort(ix, (size_t)n, sizeof *ix, cmp_offset);
    for (int64_t i = 1; i < n; i++) {
        const struct gguf_tensor *p = &g->t[ix[i - 1]], *q = &g->t[ix[i]];
        if (p->offset + p->size > q->offset) {
            free(ix);
            return strata_fail(STRATA_E_FORMAT,
                               "%s: tensors \"%s\" and \"%s\" overlap in the data section "
                               "(bytes %llu..%llu and %llu..); the file is corrupt",
                               g->path, p->name, q->name, (unsigned long long)p->offset,
                               (unsigned long long)(p->offset + p->size),
                               (unsigned long long)q->offset);
        }
    }
    qsort(ix, (size_t)n, sizeof *ix, cmp_name);
    g->by_name = ix;
    for (int64_t i = 1; i < n; i++)
        if (!strcmp(g->t[ix[i - 1]].name, g->t[ix[i]].name))
            return strata_fail(STRATA_E_FORMAT,
                               "%s: tensor \"%s\" is given twice; the file is corrupt", g->path,
                               g->t[ix[i]].name);
    g->view = xcalloc((size_t)n + 1, sizeof *g->view);
    g->deq = xcalloc((size_t)n + 1, sizeof *g->deq);
    return 0;
}

static int parse(struct strata_gguf *g, bool with_tensors)
{
    struct rd r = {g->map.data, 0, g->map.size, g->path};
    const uint8_t *b = r.base;
    if (r.size < 4 || memcmp(b, "GGUF", 4) != 0)
        return strata_fail(STRATA_E_FORMAT, "%s: no GGUF magic (the file does not start with "
                           "\"GGUF\")", g->path);
    if (r.size < 24)
        return strata_fail(STRATA_E_FORMAT, "%s: %zu bytes is too short for a GGUF header (24); "
                           "the file is truncated", g->path, r.size);
    g->version = le32(b + 4);
    if (g->version != 2 && g->version != 3) {
        const uint32_t v = g->version;
        const uint32_t sw = (v >> 24) | ((v >> 8) & 0xff00u) | ((v << 8) & 0xff0000u) | (v << 24);
        if (sw >= 1 && sw <= 3)
            return strata_fail(STRATA_E_FORMAT,
                               "%s: a big-endian GGUF (version %u, byte-swapped); strata reads "
                               "little-endian GGUF only: convert the model again without "
                               "--bigendian", g->path, sw);
        if (v == 1)
            return strata_fail(STRATA_E_FORMAT, "%s: GGUF version 1 (2023, 32-bit counts) is not "
                               "supported; convert the model again with a current llama.cpp",
                               g->path);
        return strata_fail(STRATA_E_FORMAT, "%s: GGUF version %u; strata reads versions 2 and 3",
                           g->path, v);
    }
    const uint64_t n_t = le64(b + 8), n_kv = le64(b + 16);
    r.pos = 24;
    /* A key-value pair takes at least 13 bytes, a tensor entry 24. */
    if (n_kv > (r.size - 24) / 13 || n_t > (r.size - 24) / 24)
        return strata_fail(STRATA_E_FORMAT,
                           "%s: the header claims %llu tensors and %llu metadata keys, more than "
                           "%zu bytes can hold; the file is corrupt or truncated",
                           g->path, (unsigned long long)n_t, (unsigned long long)n_kv, r.size);
    g->n_t_file = (int64_t)n_t;
    g->kv = xcalloc((size_t)n_kv + 1, sizeof *g->kv);
    g->kv_begin = 24;
    int rc;
    for (uint64_t i = 0; i < n_kv; i++) {
        struct gguf_kv *kv = &g->kv[i];
        char what[64];
        snprintf(what, sizeof what, "metadata key %llu", (unsigned long long)i);
        uint64_t len;
        if ((rc = rd_str(&r, &kv->key, &len, 65535, what))) return rc;
        kv->key_len = (size_t)len;
        if (len == 0)
            return strata_fail(STRATA_E_FORMAT, "%s: metadata key %llu is empty; the file is "
                               "corrupt", g->path, (unsigned long long)i);
        g->n_kv = (int64_t)i + 1;
        if ((rc = rd_u32(&r, &kv->type, what))) return rc;
        if ((rc = rd_value(&r, kv, kv->key, (int)len))) return rc;
    }
    g->kv_end = r.pos;
    const struct gguf_kv **ks = xmalloc(((size_t)n_kv + 1) * sizeof *ks);
    for (uint64_t i = 0; i < n_kv; i++) ks[i] = &g->kv[i];
    qsort(ks, (size_t)n_kv, sizeof *ks, cmp_kv);
    for (uint64_t i = 1; i < n_kv; i++)
        if (!cmp_kv(&ks[i - 1], &ks[i])) {
            rc = strata_fail(STRATA_E_FORMAT, "%s: metadata key \"%.*s\" is given twice; the "
                             "file is corrupt", g->path, (int)ks[i]->key_len, ks[i]->key);
            free(ks);
            return rc;
        }
    free(ks);
    int64_t align;
    if ((rc = strata_gguf_int(g, "general.alignment", 32, 1, (int64_t)1 << 30, &align))) return rc;
    if (align & (align - 1))
        return strata_fail(STRATA_E_FORMAT, "%s: general.alignment %lld is not a power of two",
                           g->path, (long long)align);
    g->alignment = (uint64_t)align;
    return with_tensors ? parse_tensors(g, &r) : 0;
}

int strata_gguf_open(struct strata_gguf **out, const char *path, bool with_tensors)
{
    *out = NULL;
    struct strata_gguf *g = xcalloc(1, sizeof *g);
    g->path = strata_xstrdup(path);
    g->alignment = 32;
    int rc = strata_map_file(&g->map, path);
    if (!rc) rc = parse(g, with_tensors);
    if (rc) {
        strata_gguf_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

void strata_gguf_free(struct strata_gguf *g)
{
    if (!g) return;
    for (int64_t i = 0; i < g->n_t; i++) {
        free(g->t[i].name);
        if (g->deq) free(g->deq[i]);
    }
    free(g->t);
    free(g->kv);
    free(g->by_name);
    free(g->view);
    free(g->deq);
    strata_unmap_file(&g->map);
    free(g->path);
    free(g);
}

bool strata_gguf_sniff(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    char m[4];
    bool yes = fread(m, 1, 4, f) == 4 && memcmp(m, "GGUF", 4) == 0;
    fclose(f);
    return yes;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int strata_gguf_dir_file(char **out, const char *dir)
{
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) return strata_fail(STRATA_E_IO, "%s: cannot read the directory", dir);
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strata_has_suffix(e->d_name, ".gguf")) continue;
        char *p = strata_path_join(dir, e->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
            names = xrealloc(names, (n + 1) * sizeof *names);
            names[n++] = p;
        } else {
            free(p);
        }
    }
    closedir(d);
    if (n == 1) {
        *out = names[0];
        free(names);
        return 0;
    }
    int rc = 1;
    if (n > 1) {
        qsort(names, n, sizeof *names, cmp_str);
        rc = strata_fail(STRATA_E_ARG, "%s: holds %zu .gguf files (%s, %s%s); name the one to "
                         "load", dir, n, names[0], names[1], n > 2 ? ", ..." : "");
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

/* ------------------------------------------------------------ metadata */

const struct gguf_kv *strata_gguf_kv(const struct strata_gguf *g, const char *key)
{
    const size_t n = strlen(key);
    for (int64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key_len == n && !memcmp(g->kv[i].key, key, n)) return &g->kv[i];
    return NULL;
}

/* The number at p of scalar type t as double (integers exactly below 2^53). */
static double num_at(const uint8_t *p, uint32_t t)
{
    switch (t) {
    case GGUF_U8: return p[0];
    case GGUF_I8: return (int8_t)p[0];
    case GGUF_U16: return (uint16_t)(p[0] | p[1] << 8);
    case GGUF_I16: return (int16_t)(uint16_t)(p[0] | p[1] << 8);
    case GGUF_U32: return le32(p);
    case GGUF_I32: return (int32_t)le32(p);
    case GGUF_U64: return (double)le64(p);
    case GGUF_I64: return (double)(int64_t)le64(p);
    case GGUF_F32: {
        uint32_t u = le32(p);
        float f;
        memcpy(&f, &u, 4);
        return (double)f;
    }
    case GGUF_F64: {
        uint64_t u = le64(p);
        double f;
        memcpy(&f, &u, 8);
        return f;
    }
    default: return (double)NAN;
    }
}

static bool is_int(uint32_t t) { return t <= GGUF_I32 || t == GGUF_U64 || t == GGUF_I64; }
static bool is_num(uint32_t t) { return is_int(t) || t == GGUF_F32 || t == GGUF_F64; }

int strata_gguf_int(const struct strata_gguf *g, const char *key, int64_t dflt, int64_t lo,
                    int64_t hi, int64_t *out)
{
    const struct gguf_kv *kv = strata_gguf_kv(g, key);
    if (!kv) {
        if (dflt < lo)
            return strata_fail(STRATA_E_FORMAT, "%s: required metadata key \"%s\" is missing",
                               g->path, key);
        *out = dflt;
        return 0;
    }
    if (!is_int(kv->type))
        return strata_fail(STRATA_E_FORMAT, "%s: metadata key \"%s\" is a%s %s; an integer is "
                           "expected", g->path, key, kv->type == GGUF_ARR ? "n" : "",
                           vtype_names[kv->type]);
    bool ok;
    int64_t v;
    if (kv->type == GGUF_U64) {
        uint64_t u = le64(kv->val);
        ok = u <= (uint64_t)hi;
        v = ok ? (int64_t)u : hi;
    } else if (kv->type == GGUF_I64) {
        v = (int64_t)le64(kv->val);
        ok = true;
    } else {
        v = (int64_t)num_at(kv->val, kv->type);
        ok = true;
    }
    if (!ok || v < lo || v > hi) {
        char val[32];
        if (kv->type == GGUF_U64) snprintf(val, sizeof val, "%llu", (unsigned long long)le64(kv->val));
        else snprintf(val, sizeof val, "%lld", (long long)v);
        return strata_fail(STRATA_E_FORMAT, "%s: metadata key \"%s\" = %s is out of range "
                           "(%lld..%lld)", g->path, key, val, (long long)lo, (long long)hi);
    }
    *out = v;
    return 0;
}

int strata_gguf_num(const struct strata_gguf *g, const char *key, double dflt, double *out)
{
    const struct gguf_kv *kv = strata_gguf_kv(g, key);
    if (!kv) {
        if (isnan(dflt))
            return strata_fail(STRATA_E_FORMAT, "%s: required metadata key \"%s\" is missing",
                               g->path, key);
        *out = dflt;
        return 0;
    }
    double v = is_num(kv->type) ? num_at(kv->val, kv->type) : (double)NAN;
    if (!isfinite(v))
        return strata_fail(STRATA_E_FORMAT, "%s: metadata key \"%s\" must be a finite number",
                           g->path, key);
    *out = v;
    return 0;
}

int strata_gguf_bool(const struct strata_gguf *g, const char *key, bool dflt, bool *out)
{
    const struct gguf_kv *kv = strata_gguf_kv(g, key);
    *out = dflt;
    if (!kv) return 0;
    if (kv->type != GGUF_BOOL)
        return strata_fail(STRATA_E_FORMAT, "%s: metadata key \"%s\" must be a bool", g->path, key);
    *out = kv->val[0] != 0;
    return 0;
}

int strata_gguf_str(const struct strata_gguf *g, const char *key, const char **s, size_t *n)
{
    const struct gguf_kv *kv = strata_gguf_kv(g, key);
    *s = NULL;
    *n = 0;
    if (!kv) return 0;
    if (kv->type != GGUF_STR)
        return strata_fail(STRATA_E_FORMAT, "%s: metadata key \"%s\" must be a string", g->path,
                           key);
    *s = (const char *)kv->val;
    *n = (size_t)kv->n;
    return 0;
}

int strata_gguf_strs(const struct strata_gguf *g, const char *key, const char ***s, int32_t **n,
                     int64_t *count)
{
    const struct gguf_kv *kv = strata_gguf_kv(g, key);
    *s = NULL;
    *n = NULL;
    *count = 0;
    if (!kv) return 0;
    if (kv->type != GGUF_ARR || kv->arr_type != GGUF_STR)
        return strata_fail(STRATA_E_FORMAT, "%s: metadata key \"%s\" must be an array of strings",
                           g->path, key);
    if (kv->n > INT32_MAX / 2)
        return strata_fail(STRATA_E_FORMAT, "%s: metadata key \"%s\" has %llu strings; too many",
                           g->path, key, (unsigned long long)kv->n);
    *s = xmalloc(((size_t)kv->n + 1) * sizeof **s);
    *n = xmalloc(((size_t)kv->n + 1) * sizeof **n);
    const uint8_t *p = kv->val; /* validated by rd_value */
    for (uint64_t i = 0; i < kv->n; i++) {
        uint64_t len = le64(p);
        if (len > INT32_MAX) {
            free(*s);
            free(*n);
            *s = NULL;
            *n = NULL;
            return strata_fail(STRATA_E_FORMAT, "%s: metadata key \"%s\" element %llu is %llu "
                               "bytes long; too long", g->path, key, (unsigned long long)i,
                               (unsigned long long)len);
        }
        (*s)[i] = (const char *)p + 8;
        (*n)[i] = (int32_t)len;
        p += 8 + len;
    }
    *count = (int64_t)kv->n;
    return 0;
}

int strata_gguf_nums(const struct strata_gguf *g, const char *key, double **v, int64_t *count)
{
    const struct gguf_kv *kv = strata_gguf_kv(g, key);
    *v = NULL;
    *count = 0;
    if (!kv) return 0;
    if (kv->type != GGUF_ARR || !is_num(kv->arr_type))
        return strata_fail(STRATA_E_FORMAT, "%s: metadata key \"%s\" must be an array of numbers",
                           g->path, key);
    *v = xmalloc(((size_t)kv->n + 1) * sizeof **v);
    for (uint64_t i = 0; i < kv->n; i++)
        (*v)[i] = num_at(kv->val + i * vtype_size[kv->arr_type], kv->arr_type);
    *count = (int64_t)kv->n;
    return 0;
}
