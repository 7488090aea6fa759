/* tensors.c — the tensor set (mapped weight files indexed by name), the
 * safetensors reader and streaming writer, and the dtype helpers: widening
 * F16/BF16 to float32 one layer at a time and float32 -> bfloat16.
 *
 * safetensors (huggingface/safetensors): 8-byte little-endian header length
 * N, N bytes of JSON {name: {dtype, shape, data_offsets: [b, e]},
 * "__metadata__": {str: str}}, then the data region, offsets relative to
 * its start 8 + N. Every number in the header is checked against the file
 * before a pointer into the mapping is formed, so a damaged file is an error
 * naming the file and the tensor rather than a crash later.
 *
 * torch.save archives are parsed in torchzip.c.
 */
/* madvise(MADV_DONTNEED) is outside POSIX; glibc's posix_madvise treats
 * POSIX_MADV_DONTNEED as a no-op, which would keep every touched page of a
 * 7B model resident. */
#define _DEFAULT_SOURCE

#include "tensors.h"
#include "torchzip.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__AVX2__) || (defined(__F16C__) && defined(__AVX__))
#include <immintrin.h>
#endif

/* --------------------------------------------------------------- dtypes */

static float bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t strata_f32_to_bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: keep sign, force quiet so it stays NaN */
        return (uint16_t)((u >> 16) | 0x40u);
    /* Round to nearest even; a carry into the exponent is the correct
     * rounding (up to Inf for the largest finite values). */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

void strata_widen(float *dst, const void *src, enum strata_dtype t, int64_t n)
{
    const uint8_t *s = src;
    int64_t i = 0;
    switch (t) {
    case STRATA_DT_F32:
        if (n > 0) memcpy(dst, src, (size_t)n * 4);
        return;
    case STRATA_DT_F16:
#if defined(__F16C__) && defined(__AVX__)
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + 2 * i))));
#endif
        for (; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = strata_f16_to_f32(h);
        }
        return;
    case STRATA_DT_BF16:
#if defined(__AVX2__)
        for (; i + 8 <= n; i += 8) {
            __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(s + 2 * i)));
            _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
        }
#endif
        for (; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = bf16_to_f32(h);
        }
        return;
    default:
        break;
    }
    STRATA_ASSERT(!"strata_widen: not a weight dtype (F32, F16, BF16)");
}

/* --------------------------------------------------------------- the set */

struct strata_tensors {
    struct strata_tensor *t;  /* (n) */
    int64_t n, cap;
    struct strata_map *maps;  /* (n_file) */
    char **files;             /* (n_file) paths, owned */
    int64_t n_file, cap_file;
    int64_t *slots;           /* (n_slot) open addressing: tensor index + 1, 0 empty */
    int64_t n_slot;
};

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static void slots_insert(struct strata_tensors *ts, int64_t idx)
{
    uint64_t mask = (uint64_t)ts->n_slot - 1;
    for (uint64_t h = name_hash(ts->t[idx].name) & mask;; h = (h + 1) & mask) {
        if (!ts->slots[h]) {
            ts->slots[h] = idx + 1;
            return;
        }
    }
}

/* Keep the table at most half full. */
static void slots_reserve(struct strata_tensors *ts, int64_t n)
{
    if (2 * n <= ts->n_slot) return;
    int64_t cap = ts->n_slot ? ts->n_slot : 64;
    while (2 * n > cap) cap *= 2;
    free(ts->slots);
    ts->slots = xcalloc((size_t)cap, sizeof *ts->slots);
    ts->n_slot = cap;
    for (int64_t i = 0; i < ts->n; i++) slots_insert(ts, i);
}

int strata_tensors_create(struct strata_tensors **out)
{
    *out = xcalloc(1, sizeof **out);
    return 0;
}

void strata_tensors_free(struct strata_tensors *ts)
{
    if (!ts) return;
    for (int64_t i = 0; i < ts->n; i++) free((char *)ts->t[i].name);
    for (int64_t i = 0; i < ts->n_file; i++) {
        strata_unmap_file(&ts->maps[i]);
        free(ts->files[i]);
    }
    free(ts->t);
    free(ts->maps);
    free(ts->files);
    free(ts->slots);
    free(ts);
}

int64_t strata_tensors_count(const struct strata_tensors *ts) { return ts->n; }

const struct strata_tensor *strata_tensors_at(const struct strata_tensors *ts, int64_t i)
{
    STRATA_ASSERT(i >= 0 && i < ts->n);
    return &ts->t[i];
}

const struct strata_tensor *strata_tensors_find(const struct strata_tensors *ts, const char *name)
{
    if (!ts->n_slot) return NULL;
    uint64_t mask = (uint64_t)ts->n_slot - 1;
    for (uint64_t h = name_hash(name) & mask; ts->slots[h]; h = (h + 1) & mask)
        if (strcmp(ts->t[ts->slots[h] - 1].name, name) == 0) return &ts->t[ts->slots[h] - 1];
    return NULL;
}

void strata_tensor_release(const struct strata_tensor *t)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)t->data;
    uintptr_t bytes = (uintptr_t)t->n_elem * strata_dtype_size(t->dtype);
    uintptr_t lo = (a + page - 1) & ~(page - 1), hi = (a + bytes) & ~(page - 1);
    /* Advisory: on failure the pages simply stay resident. */
    if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

/* ----------------------------------------------------- safetensors read */

/* A JSON number that is a non-negative integer below 2^53 (exact in a
 * double), so sizes and offsets cannot be rounded or wrapped. */
static bool json_uint(const cJSON *j, uint64_t *v)
{
    if (!cJSON_IsNumber(j)) return false;
    double d = j->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0) || d != (double)(uint64_t)d) return false;
    *v = (uint64_t)d;
    return true;
}

/* qsort: tensors by where their data starts. */
static int cmp_data(const void *a, const void *b)
{
    const char *x = (const char *)(*(const struct strata_tensor *const *)a)->data;
    const char *y = (const char *)(*(const struct strata_tensor *const *)b)->data;
    return x < y ? -1 : x > y;
}

static int parse_safetensors(const char *path, const uint8_t *data, size_t size,
                             struct strata_tensor **out, int64_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    /* torch.save before 1.6 pickles its magic number 0x1950a86a20f9469cfc6c
     * first; a safetensors header length can begin 0x80 too, so test all of it. */
    static const uint8_t legacy[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c,
                                     0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
    if (size >= sizeof legacy && memcmp(data, legacy, sizeof legacy) == 0)
        return strata_fail(STRATA_E_FORMAT, "%s: a legacy (pre-1.6) torch.save pickle; strata "
                           "reads safetensors and zip torch.save files: re-save it with a recent "
                           "torch or convert it to safetensors", path);
    if (size < 8)
        return strata_fail(STRATA_E_FORMAT, "%s: %zu bytes is too short for a safetensors file",
                           path, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | data[i];
    if (hlen > size - 8)
        return strata_fail(STRATA_E_FORMAT, "%s: safetensors header length %" PRIu64 " runs past "
                           "the end of the file (%zu bytes): truncated, or not a safetensors file",
                           path, hlen, size);
    if (hlen < 2 || data[8] != '{')
        return strata_fail(STRATA_E_FORMAT, "%s: not a safetensors file (the header does not "
                           "start with '{')", path);
    const char *hdr = (const char *)data + 8;
    const char *end_parse = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &end_parse, 0);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long off = at && at >= hdr && at <= hdr + hlen ? (long)(at - hdr) : -1;
        return strata_fail(STRATA_E_FORMAT, "%s: safetensors header is not valid JSON (near "
                           "header byte %ld)", path, off);
    }
    int rc = 0;
    struct strata_tensor *ts = NULL;
    int64_t n = 0;
    uint64_t dsize = size - 8 - hlen;
    /* Only trailing spaces (the padding) may follow the JSON object. */
    for (const char *q = end_parse; q && q < hdr + hlen; q++) {
        if (*q != ' ' && *q != '\n' && *q != '\r' && *q != '\t' && *q != '\0') {
            rc = strata_fail(STRATA_E_FORMAT, "%s: safetensors header has bytes after its JSON "
                             "object (at header byte %td)", path, q - hdr);
            goto fail;
        }
    }
    if (!cJSON_IsObject(root)) {
        rc = strata_fail(STRATA_E_FORMAT, "%s: safetensors header is not a JSON object", path);
        goto fail;
    }
    ts = xcalloc((size_t)cJSON_GetArraySize(root) + 1, sizeof *ts);
    for (const cJSON *e = root->child; e; e = e->next) {
        const char *name = e->string;
        if (strcmp(name, "__metadata__") == 0) continue;
        struct strata_tensor *t = &ts[n];
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
        const cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        if (!cJSON_IsObject(e) || !cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(of) ||
            cJSON_GetArraySize(of) != 2) {
            rc = strata_fail(STRATA_E_FORMAT, "%s: tensor '%s': header entry needs \"dtype\" "
                             "(string), \"shape\" (array) and \"data_offsets\" ([begin, end])",
                             path, name);
            goto fail;
        }
        if (strcmp(dt->valuestring, "F32") == 0) t->dtype = STRATA_DT_F32;
        else if (strcmp(dt->valuestring, "F16") == 0) t->dtype = STRATA_DT_F16;
        else if (strcmp(dt->valuestring, "BF16") == 0) t->dtype = STRATA_DT_BF16;
        else {
            rc = strata_fail(STRATA_E_FORMAT, "%s: tensor '%s': dtype %s is not supported; "
                             "strata reads F32, F16 and BF16", path, name, dt->valuestring);
            goto fail;
        }
        size_t es = strata_dtype_size(t->dtype);
        int nd = cJSON_GetArraySize(sh);
        if (nd > STRATA_MAX_DIMS) {
            rc = strata_fail(STRATA_E_FORMAT, "%s: tensor '%s': %d dimensions (at most %d)",
                             path, name, nd, STRATA_MAX_DIMS);
            goto fail;
        }
        t->n_dim = nd;
        uint64_t n_elem = 1;
        int d = 0;
        for (const cJSON *s = sh->child; s; s = s->next, d++) {
            uint64_t v;
            if (!json_uint(s, &v)) {
                rc = strata_fail(STRATA_E_FORMAT, "%s: tensor '%s': shape entry %d is not a "
                                 "non-negative integer", path, name, d);
                goto fail;
            }
            if (v && n_elem > (uint64_t)INT64_MAX / es / v) {
                rc = strata_fail(STRATA_E_FORMAT, "%s: tensor '%s': shape overflows", path, name);
                goto fail;
            }
            n_elem *= v;
            t->shape[d] = (int64_t)v;
        }
        uint64_t b, en;
        if (!json_uint(of->child, &b) || !json_uint(of->child->next, &en) || en < b) {
            rc = strata_fail(STRATA_E_FORMAT, "%s: tensor '%s': data_offsets are not integers "
                             "0 <= begin <= end", path, name);
            goto fail;
        }
        if (en - b != n_elem * es) {
            char shape[256] = "";
            for (int k = 0, len = 0; k < nd && len < (int)sizeof shape - 24; k++)
                len += snprintf(shape + len, sizeof shape - (size_t)len, "%s%" PRId64,
                                k ? ", " : "", t->shape[k]);
            rc = strata_fail(STRATA_E_SHAPE, "%s: tensor '%s': shape [%s] of %s needs %" PRIu64
                             " bytes but data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64,
                             path, name, shape, dt->valuestring, n_elem * es, b, en, en - b);
            goto fail;
        }
        if (en > dsize) {
            rc = strata_fail(STRATA_E_FORMAT, "%s: truncated: tensor '%s' needs bytes up to %"
                             PRIu64 " but the file has %zu", path, name, 8 + hlen + en, size);
            goto fail;
        }
        t->n_elem = (int64_t)n_elem;
        t->data = data + 8 + hlen + b;
        t->name = strata_xstrdup(name);
        n++;
    }
    /* Tensors may not share bytes: overlapping data_offsets would make two
     * weights one (a lenient file is refused, not guessed at). */
    if (n > 1) {
        const struct strata_tensor **by = xmalloc((size_t)n * sizeof *by);
        for (int64_t i = 0; i < n; i++) by[i] = &ts[i];
        qsort(by, (size_t)n, sizeof *by, cmp_data);
        for (int64_t i = 1; i < n && !rc; i++) {
            const char *prev_end = (const char *)by[i - 1]->data +
                                   (size_t)by[i - 1]->n_elem * strata_dtype_size(by[i - 1]->dtype);
            if ((const char *)by[i]->data < prev_end)
                rc = strata_fail(STRATA_E_FORMAT, "%s: tensors '%s' and '%s' overlap in the file "
                                 "(their data_offsets share bytes)", path, by[i - 1]->name,
                                 by[i]->name);
        }
        free(by);
        if (rc) goto fail;
    }
    cJSON_Delete(root);
    *out = ts;
    *n_out = n;
    return 0;
fail:
    for (int64_t i = 0; i < n; i++) free((char *)ts[i].name);
    free(ts);
    cJSON_Delete(root);
    return rc;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp((*(const struct strata_tensor *const *)a)->name,
                  (*(const struct strata_tensor *const *)b)->name);
}

int strata_tensors_add_file(struct strata_tensors *ts, const char *path)
{
    struct strata_map map;
    int rc = strata_map_file(&map, path);
    if (rc) return rc;
    struct strata_tensor *nt = NULL, **sorted = NULL;
    int64_t n = 0;
    const uint8_t *d = map.data;
    if (map.size >= 4 && memcmp(d, "PK\3\4", 4) == 0)
        rc = strata_torchzip_read(path, d, map.size, &nt, &n);
    else
        rc = parse_safetensors(path, d, map.size, &nt, &n);
    if (rc) goto fail;
    /* Names must be unique within the file and across the set; check all
     * before adding any, so a failed add leaves the set as it was. */
    sorted = xmalloc((size_t)(n ? n : 1) * sizeof *sorted);
    for (int64_t i = 0; i < n; i++) sorted[i] = &nt[i];
    qsort(sorted, (size_t)n, sizeof *sorted, name_cmp);
    for (int64_t i = 0; i + 1 < n; i++) {
        if (strcmp(sorted[i]->name, sorted[i + 1]->name) == 0) {
            rc = strata_fail(STRATA_E_FORMAT, "%s: tensor '%s' appears twice in the file",
                             path, sorted[i]->name);
            goto fail;
        }
    }
    for (int64_t i = 0; i < n; i++) {
        const struct strata_tensor *old = strata_tensors_find(ts, nt[i].name);
        if (old) {
            rc = strata_fail(STRATA_E_FORMAT, "%s: tensor '%s' is also in %s; a checkpoint names "
                             "each tensor once (mixed shards of two checkpoints?)",
                             path, nt[i].name, old->file);
            goto fail;
        }
    }
    if (ts->n_file == ts->cap_file) {
        ts->cap_file = ts->cap_file ? 2 * ts->cap_file : 4;
        ts->maps = xrealloc(ts->maps, (size_t)ts->cap_file * sizeof *ts->maps);
        ts->files = xrealloc(ts->files, (size_t)ts->cap_file * sizeof *ts->files);
    }
    char *file = strata_xstrdup(path);
    ts->maps[ts->n_file] = map;
    ts->files[ts->n_file++] = file;
    if (ts->n + n > ts->cap) {
        while (ts->n + n > ts->cap) ts->cap = ts->cap ? 2 * ts->cap : 64;
        ts->t = xrealloc(ts->t, (size_t)ts->cap * sizeof *ts->t);
    }
    slots_reserve(ts, ts->n + n);
    for (int64_t i = 0; i < n; i++) {
        nt[i].file = file;
        ts->t[ts->n] = nt[i];
        slots_insert(ts, ts->n++);
    }
    free(sorted);
    free(nt);
    return 0;
fail:
    for (int64_t i = 0; i < n; i++) free((char *)nt[i].name);
    free(nt);
    free(sorted);
    strata_unmap_file(&map);
    return rc;
}

/* --------------------------------------------------- safetensors write */

struct strata_st_writer {
    FILE *f;
    char *path, *partial;
    uint64_t total, written;
    bool finished;
};

struct sbuf {
    char *s;
    size_t n, cap;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        while (b->n + n + 1 > b->cap) b->cap = b->cap ? 2 * b->cap : 4096;
        b->s = xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void sb_str(struct sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* A JSON string literal; UTF-8 passes through, control bytes are escaped. */
static void sb_json(struct sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            sb_put(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            sb_put(b, esc, 6);
        } else {
            sb_put(b, (const char *)&c, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static void sb_u64(struct sbuf *b, uint64_t v)
{
    char num[32];
    snprintf(num, sizeof num, "%" PRIu64, v);
    sb_str(b, num);
}

int strata_st_writer_create(struct strata_st_writer **out, const char *path,
                            const struct strata_tensor *specs, int64_t n, const char *metadata)
{
    *out = NULL;
    struct sbuf h = {NULL, 0, 0};
    const struct strata_tensor **sorted = NULL;
    cJSON *meta = NULL;
    int rc = 0;
    if (n < 0) return strata_fail(STRATA_E_ARG, "%s: negative tensor count", path);
    sb_str(&h, "{");
    if (metadata) {
        meta = cJSON_Parse(metadata);
        if (!cJSON_IsObject(meta)) {
            rc = strata_fail(STRATA_E_ARG, "%s: safetensors metadata is not a JSON object", path);
            goto fail;
        }
        sb_str(&h, "\"__metadata__\":{");
        for (const cJSON *m = meta->child; m; m = m->next) {
            if (!cJSON_IsString(m)) {
                rc = strata_fail(STRATA_E_ARG, "%s: safetensors metadata '%s' is not a string "
                                 "(the format allows only string values)", path, m->string);
                goto fail;
            }
            sb_json(&h, m->string);
            sb_str(&h, ":");
            sb_json(&h, m->valuestring);
            if (m->next) sb_str(&h, ",");
        }
        sb_str(&h, n ? "}," : "}");
    }
    uint64_t offset = 0;
    for (int64_t i = 0; i < n; i++) {
        const struct strata_tensor *t = &specs[i];
        if (!t->name || !*t->name || strcmp(t->name, "__metadata__") == 0 ||
            (t->dtype != STRATA_DT_F32 && t->dtype != STRATA_DT_F16 && t->dtype != STRATA_DT_BF16) ||
            t->n_dim < 0 || t->n_dim > STRATA_MAX_DIMS) {
            rc = strata_fail(STRATA_E_ARG, "%s: tensor %" PRId64 " ('%s'): needs a name, a dtype "
                             "F32/F16/BF16 and 0..%d dimensions", path, i,
                             t->name ? t->name : "(null)", STRATA_MAX_DIMS);
            goto fail;
        }
        uint64_t es = strata_dtype_size(t->dtype), bytes = es;
        for (int32_t d = 0; d < t->n_dim; d++) {
            uint64_t s = (uint64_t)t->shape[d];
            if (t->shape[d] < 0 || (s && bytes > (1ull << 53) / s)) {
                rc = strata_fail(STRATA_E_ARG, "%s: tensor '%s': bad shape", path, t->name);
                goto fail;
            }
            bytes *= s;
        }
        if (offset + bytes > (1ull << 53)) {
            rc = strata_fail(STRATA_E_ARG, "%s: tensors exceed 2^53 bytes", path);
            goto fail;
        }
        sb_json(&h, t->name);
        sb_str(&h, ":{\"dtype\":\"");
        sb_str(&h, strata_dtype_name(t->dtype));
        sb_str(&h, "\",\"shape\":[");
        for (int32_t d = 0; d < t->n_dim; d++) {
            if (d) sb_str(&h, ",");
            sb_u64(&h, (uint64_t)t->shape[d]);
        }
        sb_str(&h, "],\"data_offsets\":[");
        sb_u64(&h, offset);
        sb_str(&h, ",");
        sb_u64(&h, offset + bytes);
        sb_str(&h, i + 1 < n ? "]}," : "]}");
        offset += bytes;
    }
    sb_str(&h, "}");
    /* Duplicate names would make the JSON ambiguous. */
    sorted = xmalloc((size_t)(n ? n : 1) * sizeof *sorted);
    for (int64_t i = 0; i < n; i++) sorted[i] = &specs[i];
    qsort(sorted, (size_t)n, sizeof *sorted, name_cmp);
    for (int64_t i = 0; i + 1 < n; i++) {
        if (strcmp(sorted[i]->name, sorted[i + 1]->name) == 0) {
            rc = strata_fail(STRATA_E_ARG, "%s: tensor '%s' given twice", path, sorted[i]->name);
            goto fail;
        }
    }
    /* Pad with spaces so the data region starts 8-byte aligned, as the
     * reference writer does (readers may then use F32 data in place). */
    while (h.n % 8) sb_str(&h, " ");
    struct strata_st_writer *w = xcalloc(1, sizeof *w);
    w->path = strata_xstrdup(path);
    w->partial = xmalloc(strlen(path) + sizeof ".partial");
    sprintf(w->partial, "%s.partial", path);
    w->total = offset;
    w->f = fopen(w->partial, "wb");
    if (!w->f) {
        rc = strata_fail(STRATA_E_IO, "%s: cannot create: %s", w->partial, strerror(errno));
        strata_st_writer_free(w);
        goto fail;
    }
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)h.n >> (8 * i));
    if (fwrite(len, 1, 8, w->f) != 8 || fwrite(h.s, 1, h.n, w->f) != h.n) {
        rc = strata_fail(STRATA_E_IO, "%s: write failed: %s", w->partial, strerror(errno));
        strata_st_writer_free(w);
        goto fail;
    }
    *out = w;
fail:
    free(h.s);
    free(sorted);
    cJSON_Delete(meta);
    return rc;
}

int strata_st_writer_write(struct strata_st_writer *w, const void *bytes, size_t n)
{
    if (w->finished || !w->f)
        return strata_fail(STRATA_E_ARG, "%s: write after finish", w->path);
    if (n > w->total - w->written)
        return strata_fail(STRATA_E_ARG, "%s: %zu more bytes than the header's %" PRIu64
                           " (%" PRIu64 " written)", w->path, n, w->total, w->written);
    if (n && fwrite(bytes, 1, n, w->f) != n)
        return strata_fail(STRATA_E_IO, "%s: write failed: %s", w->partial, strerror(errno));
    w->written += n;
    return 0;
}

int strata_st_writer_finish(struct strata_st_writer *w)
{
    if (w->finished || !w->f) return strata_fail(STRATA_E_ARG, "%s: finished twice", w->path);
    if (w->written != w->total)
        return strata_fail(STRATA_E_ARG, "%s: %" PRIu64 " data bytes written, the header "
                           "declares %" PRIu64, w->path, w->written, w->total);
    int err = fflush(w->f) != 0 || fsync(fileno(w->f)) != 0;
    err |= fclose(w->f) != 0;
    w->f = NULL;
    if (err) return strata_fail(STRATA_E_IO, "%s: write failed: %s", w->partial, strerror(errno));
    if (rename(w->partial, w->path) != 0)
        return strata_fail(STRATA_E_IO, "%s: cannot rename to %s: %s", w->partial, w->path,
                           strerror(errno));
    w->finished = true;
    return 0;
}

void strata_st_writer_free(struct strata_st_writer *w)
{
    if (!w) return;
    if (w->f) fclose(w->f);
    if (!w->finished) remove(w->partial);
    free(w->path);
    free(w->partial);
    free(w);
}
