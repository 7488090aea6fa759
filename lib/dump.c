/* dump.c — hidden-state dumps (docs/FORMAT.md, "strata-dump/2"): the
 * residual stream, attention and MLP outputs of N fixed-length samples, laid
 * out on the result-file layer of lib/h5io.c (which alone calls HDF5).
 *
 * A probe writes one sample at a time and analyzers read one sample or one
 * layer of one sample at a time, so every per-sample dataset has the sample
 * axis first, then the layer axis, chunks of ~1 MiB that never straddle two
 * samples, and one flush per sample: a run killed halfway leaves a .partial
 * whose first n_complete samples are data. Storage is allocated at creation
 * (see h5io.c), so continuing a .partial (strata_dump_resume) writes the
 * same bytes an uninterrupted run would have. The sample axis can grow
 * (strata_dump_append), and several files of one run read as one
 * (strata_dump_open_many).
 *
 * Half floats are converted here with strata_f32_to_f16 / strata_f16_to_f32
 * and moved raw: HDF5's soft conversion is slow and rounds differently.
 *
 * Legend: N samples, Lk kept boundaries, Bk kept blocks, T tokens per sample,
 * P kept positions, D width.
 */
#include "internal.h"
#include "h5io.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#define DUMP_FORMAT "strata-dump/2"
#define DUMP_FORMAT_V1 "strata-dump/1"
#define CHUNK_TARGET ((int64_t)1 << 20) /* bytes a chunk aims at */
#define LAYER_SPLIT ((int64_t)4 << 20)  /* a layer larger than this is split along P */
#define N_SITE 3
#define DUMP_SAMPLE_NAME "draw of the sample in the seeded shuffle (as /sample_draw)"
#define DUMP_BOUNDARY_NAME "residual-stream boundary: 0 embeddings, b after block b (as /layers)"
#define DUMP_BLOCK_NAME "block (0-based; as /blocks)"

static const char *const site_dset[N_SITE] = {"hidden", "attn_out", "mlp_out"};

/* One file of the dump (several for strata_dump_open_many). */
struct shard {
    struct strata_h5 *f;
    int64_t n;     /* samples it presents (its n_complete) */
    int64_t first; /* index of its first sample in the whole */
};

struct strata_dump {
    char *path;      /* as given (the first shard's) */
    bool writer;     /* create / resume / append */
    int n_shard;
    struct shard *sh;
    struct strata_dump_info info;
    int32_t *layers;    /* (Lk) boundary ids of /hidden */
    int32_t *positions; /* (P) */
    int32_t *blocks;    /* (Bk) block ids of /attn_out, /mlp_out */
    uint16_t *h16;      /* (max(Lk, Bk), P, D) writer's half buffer (f16 only) */
};

static int64_t site_count(const struct strata_dump_info *in, int k)
{
    return k == 0 ? in->n_layers : in->n_blocks;
}

/* Chunk (1, k, Pc, D): a layer (P, D) whole unless beyond 4 MiB, then cut
 * along P into ~1 MiB pieces; whole layers grouped k at a time to ~1 MiB. */
static void site_chunk(int64_t chunk[4], int64_t n, int64_t P, int64_t D, int64_t esize)
{
    int64_t layer = P * D * esize, k = 1, pc = P;
    if (layer > LAYER_SPLIT) {
        int64_t pieces = (layer + CHUNK_TARGET - 1) / CHUNK_TARGET;
        pc = (P + pieces - 1) / pieces;
    } else {
        k = CHUNK_TARGET / layer;
        if (k < 1) k = 1;
        if (k > n) k = n;
    }
    chunk[0] = 1;
    chunk[1] = k;
    chunk[2] = pc;
    chunk[3] = D;
}

static struct strata_dump *dump_new(const char *path)
{
    struct strata_dump *d = xcalloc(1, sizeof *d);
    d->path = strata_xstrdup(path);
    d->sh = xcalloc(1, sizeof *d->sh);
    d->n_shard = 1;
    return d;
}

void strata_dump_free(struct strata_dump *dump)
{
    if (!dump) return;
    for (int i = 0; i < dump->n_shard; i++) strata_h5_free(dump->sh[i].f);
    free(dump->sh);
    free(dump->layers);
    free(dump->positions);
    free(dump->blocks);
    free(dump->h16);
    free(dump->path);
    free(dump);
}

static int check_ids(const char *path, const char *what, const int32_t *ids, int64_t n,
                     int64_t hi)
{
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || (hi > 0 && ids[i] >= hi) || (i > 0 && ids[i] <= ids[i - 1]))
            return strata_fail(STRATA_E_ARG, "%s: %s must increase strictly and lie in 0 .. %lld "
                               "(entry %lld is %d)", path, what, (long long)(hi > 0 ? hi - 1 : INT32_MAX),
                               (long long)i, (int)ids[i]);
    return 0;
}

static int32_t *ids_or_range(const int32_t *ids, int64_t n)
{
    int32_t *v = xmalloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = ids ? ids[i] : (int32_t)i;
    return v;
}

/* ------------------------------------------------------------- writing */

int strata_dump_create(struct strata_dump **out, const char *path,
                       const struct strata_dump_params *params)
{
    if (!out) return strata_fail(STRATA_E_ARG, "strata_dump_create: out is NULL");
    *out = NULL;
    if (!path || !path[0] || !params)
        return strata_fail(STRATA_E_ARG, "strata_dump_create: empty path or NULL params");
    const struct strata_dump_params *p = params;
    unsigned sites = p->sites ? p->sites : STRATA_DUMP_RESID;
    int64_t P = p->positions ? p->n_pos : p->seq_len;
    bool resid = sites & STRATA_DUMP_RESID, sub = sites & (STRATA_DUMP_ATTN_OUT | STRATA_DUMP_MLP_OUT);
    if (sites & ~7u)
        return strata_fail(STRATA_E_ARG, "%s: unknown site bits 0x%x", path, sites);
    if (p->n_samples < 1 || p->seq_len < 1 || p->dim < 1 || P < 1 || (resid && p->n_layers < 1) ||
        (sub && p->n_blocks < 1))
        return strata_fail(STRATA_E_ARG, "%s: dump shape N = %lld, layers = %lld, blocks = %lld, "
                           "T = %lld, positions = %lld, D = %lld needs every kept size >= 1", path,
                           (long long)p->n_samples, (long long)p->n_layers,
                           (long long)p->n_blocks, (long long)p->seq_len, (long long)P,
                           (long long)p->dim);
    if (p->dtype != STRATA_DT_F32 && p->dtype != STRATA_DT_F16)
        return strata_fail(STRATA_E_ARG, "%s: dtype %s; a dump holds F32 or F16", path,
                           strata_dtype_name(p->dtype));
    if (p->gzip < 0 || p->gzip > 9)
        return strata_fail(STRATA_E_ARG, "%s: gzip level %d is outside 0 (off) .. 9", path, p->gzip);
    int64_t nl = resid ? p->n_layers : 0, nb = sub ? p->n_blocks : 0;
    int64_t most = nl > nb ? nl : nb, esize = (int64_t)strata_dtype_size(p->dtype);
    /* One sample must fit in memory as floats, the datasets in 64-bit sizes. */
    int64_t lim = (int64_t)(SIZE_MAX / 8 < INT64_MAX / 8 ? SIZE_MAX / 8 : INT64_MAX / 8);
    if (most > lim / P || most * P > lim / p->dim || most * P * p->dim > lim / p->n_samples / 3 ||
        p->dim * esize >= ((int64_t)1 << 32))
        return strata_fail(STRATA_E_SHAPE, "%s: dump shape (N, layers, P, D) = (%lld, %lld, %lld, "
                           "%lld) is too large", path, (long long)p->n_samples, (long long)most,
                           (long long)P, (long long)p->dim);
    int rc;
    if ((resid && p->layers && (rc = check_ids(path, "layers", p->layers, nl, 0))) ||
        (p->positions && (rc = check_ids(path, "positions", p->positions, P, p->seq_len))) ||
        (sub && p->blocks && (rc = check_ids(path, "blocks", p->blocks, nb, 0))))
        return rc;

    struct strata_dump *d = dump_new(path);
    d->writer = true;
    d->info = (struct strata_dump_info){.n_samples = p->n_samples, .n_layers = nl,
                                        .seq_len = p->seq_len, .dim = p->dim, .dtype = p->dtype,
                                        .n_pos = P, .n_blocks = nb,
                                        .sites = sites & 7u, .format = 2};
    d->layers = ids_or_range(p->layers, nl);
    d->blocks = ids_or_range(p->blocks, nb);
    d->positions = ids_or_range(p->positions, P);
    if (p->dtype == STRATA_DT_F16) d->h16 = xmalloc((size_t)(most * P * p->dim) * sizeof *d->h16);
    if ((rc = strata_h5_create(&d->sh[0].f, path))) goto fail;
    struct strata_h5 *f = d->sh[0].f;

    /* netCDF-4 dimensions first (docs/FORMAT.md, "Dimensions"): the
     * coordinates sample (the draws), boundary, block and position, and
     * token and dim without one; then the datasets that use them. */
    const int64_t tshape[2] = {p->n_samples, p->seq_len}, nshape[1] = {p->n_samples};
    struct strata_h5_dset_opts oc = {.extendible = true};
    if ((rc = strata_h5_create_dataset_opts(f, "sample", STRATA_DT_I64, 1, nshape, &oc)) ||
        (rc = strata_h5_def_dim(f, "sample", p->n_samples, true)) ||
        (rc = strata_h5_set_attr_str(f, "sample", "long_name", DUMP_SAMPLE_NAME)) ||
        (rc = strata_h5_def_dim(f, "token", p->seq_len, false)) ||
        (resid && (rc = strata_h5_write_coord(f, "boundary", STRATA_DT_I32, nl, d->layers,
                                              DUMP_BOUNDARY_NAME, NULL))) ||
        (sub && (rc = strata_h5_write_coord(f, "block", STRATA_DT_I32, nb, d->blocks,
                                            DUMP_BLOCK_NAME, NULL))) ||
        (rc = strata_h5_write_coord(f, "position", STRATA_DT_I32, P, d->positions,
                                    "kept position (token index in the sample)", NULL)) ||
        (rc = strata_h5_def_dim(f, "dim", p->dim, false)))
        goto fail;
    static const char *const dim4[4] = {"sample", "boundary", "position", "dim"};
    static const char *const dim4b[4] = {"sample", "block", "position", "dim"};
    static const char *const dim2[2] = {"sample", "token"};
    static const char *const dim1[1] = {"sample"};
    static const char *const site_name[N_SITE] = {
        "residual stream at the boundary", "attention output of the block (added to the stream)",
        "MLP output of the block (added to the stream)"};
    for (int k = 0; k < N_SITE; k++) {
        if (!(sites & (1u << k))) continue;
        int64_t n = site_count(&d->info, k);
        int64_t shape[4] = {p->n_samples, n, P, p->dim}, chunk[4];
        site_chunk(chunk, n, P, p->dim, esize);
        struct strata_h5_dset_opts o = {.chunk = chunk, .extendible = true, .gzip = p->gzip,
                                        .dims = k == 0 ? dim4 : dim4b};
        if ((rc = strata_h5_create_dataset_opts(f, site_dset[k], p->dtype, 4, shape, &o)) ||
            (rc = strata_h5_set_attr_str(f, site_dset[k], "long_name", site_name[k])))
            goto fail;
    }
    struct strata_h5_dset_opts ot = {.extendible = true, .dims = dim2};
    struct strata_h5_dset_opts os = {.extendible = true, .dims = dim1};
    if ((rc = strata_h5_create_dataset_opts(f, "tokens", STRATA_DT_I32, 2, tshape, &ot)) ||
        (rc = strata_h5_set_attr_str(f, "tokens", "long_name", "token id (position 0 is BOS)")) ||
        (rc = strata_h5_create_dataset_opts(f, "sample_doc", STRATA_DT_I64, 1, nshape, &os)) ||
        (rc = strata_h5_create_dataset_opts(f, "sample_window", STRATA_DT_I64, 1, nshape, &os)) ||
        (rc = strata_h5_create_dataset_opts(f, "sample_draw", STRATA_DT_I64, 1, nshape, &os)))
        goto fail;
    const int64_t sl[1] = {nl}, sp[1] = {P}, sb[1] = {nb};
    static const char *const d_bound[1] = {"boundary"}, *const d_pos[1] = {"position"},
                             *const d_block[1] = {"block"};
    if ((resid && ((rc = strata_h5_write(f, "layers", STRATA_DT_I32, 1, sl, d->layers)) ||
                   (rc = strata_h5_set_dims(f, "layers", d_bound)))) ||
        (rc = strata_h5_write(f, "positions", STRATA_DT_I32, 1, sp, d->positions)) ||
        (rc = strata_h5_set_dims(f, "positions", d_pos)) ||
        (sub && ((rc = strata_h5_write(f, "blocks", STRATA_DT_I32, 1, sb, d->blocks)) ||
                 (rc = strata_h5_set_dims(f, "blocks", d_block)))))
        goto fail;
    if ((rc = strata_h5_set_attr_str(f, "/", "format", DUMP_FORMAT)) ||
        (rc = strata_h5_set_attr_i64(f, "/", "n_complete", 0)) ||
        (rc = strata_h5_set_attr_i64(f, "/", "complete", 0)) || (rc = strata_h5_flush(f)))
        goto fail;
    *out = d;
    return 0;
fail:
    if (d->sh[0].f) remove(strata_h5_file_path(d->sh[0].f)); /* half made: not worth keeping */
    strata_dump_free(d);
    return rc;
}

/* The attributes strata maintains itself; callers may not set them. */
static bool reserved_attr(const char *name)
{
    return !strcmp(name, "format") || !strcmp(name, "n_complete") || !strcmp(name, "complete");
}

static int check_writer(const struct strata_dump *d, const char *what)
{
    if (!d) return strata_fail(STRATA_E_ARG, "%s: NULL dump", what);
    if (!d->writer)
        return strata_fail(STRATA_E_ARG, "%s: %s: the dump is open for reading only", d->path, what);
    if (!d->sh[0].f)
        return strata_fail(STRATA_E_ARG, "%s: %s: the dump is finished and closed", d->path, what);
    return 0;
}

static int check_set_attr(const struct strata_dump *d, const char *name)
{
    int rc = check_writer(d, "strata_dump_set_attr");
    if (rc) return rc;
    if (!name || !name[0])
        return strata_fail(STRATA_E_ARG, "%s: empty attribute name", d->path);
    if (reserved_attr(name))
        return strata_fail(STRATA_E_ARG, "%s: attribute `%s` is maintained by strata itself; "
                           "choose another name", d->path, name);
    return 0;
}

int strata_dump_set_attr_str(struct strata_dump *dump, const char *name, const char *value)
{
    int rc = check_set_attr(dump, name);
    if (rc) return rc;
    if (!value)
        return strata_fail(STRATA_E_ARG, "%s: attribute `%s`: value is NULL", dump->path, name);
    return strata_h5_set_attr_str(dump->sh[0].f, "/", name, value);
}

int strata_dump_set_attr_i64(struct strata_dump *dump, const char *name, int64_t value)
{
    int rc = check_set_attr(dump, name);
    if (rc) return rc;
    return strata_h5_set_attr_i64(dump->sh[0].f, "/", name, value);
}

int strata_dump_write_origin(struct strata_dump *dump, int64_t s0, int64_t n, const int64_t *doc,
                             const int64_t *window, const int64_t *draw)
{
    int rc = check_writer(dump, "strata_dump_write_origin");
    if (rc) return rc;
    struct strata_h5 *f = dump->sh[0].f;
    if ((doc && (rc = strata_h5_write_rows(f, "sample_doc", s0, n, doc))) ||
        (window && (rc = strata_h5_write_rows(f, "sample_window", s0, n, window))) ||
        (draw && (rc = strata_h5_write_rows(f, "sample_draw", s0, n, draw))))
        return rc;
    /* the draws are the sample coordinate too (files before it have none) */
    if (draw && strata_h5_has(f, "sample") > 0 &&
        (rc = strata_h5_write_rows(f, "sample", s0, n, draw)))
        return rc;
    return 0;
}

int strata_dump_write_sample(struct strata_dump *dump, int64_t s, const float *hidden,
                             const int32_t *tokens)
{
    int rc = check_writer(dump, "strata_dump_write_sample");
    if (rc) return rc;
    struct strata_dump *d = dump;
    const struct strata_dump_info *in = &d->info;
    if (!hidden || !tokens)
        return strata_fail(STRATA_E_ARG, "%s: write_sample needs both hidden and tokens", d->path);
    if (s != in->n_complete)
        return strata_fail(STRATA_E_ARG, "%s: samples are written in order: expected sample %lld "
                           "of %lld, got %lld", d->path, (long long)in->n_complete,
                           (long long)in->n_samples, (long long)s);
    if (s >= in->n_samples)
        return strata_fail(STRATA_E_ARG, "%s: all %lld samples are already written", d->path,
                           (long long)in->n_samples);
    struct strata_h5 *f = d->sh[0].f;
    const int64_t P = in->n_pos, D = in->dim;
    const float *src = hidden;
    for (int k = 0; k < N_SITE; k++) {
        if (!(in->sites & (1u << k))) continue;
        int64_t n = site_count(in, k);
        const int64_t start[4] = {s, 0, 0, 0}, count[4] = {1, n, P, D};
        const void *buf = src;
        if (in->dtype == STRATA_DT_F16) {
            for (int64_t i = 0; i < n * P * D; i++) {
                d->h16[i] = strata_f32_to_f16(src[i]);
                /* A finite activation beyond half's range would be stored as
                 * Inf: a silently wrong number, so refuse instead. */
                if ((d->h16[i] & 0x7fffu) == 0x7c00u && isfinite(src[i]))
                    return strata_fail(STRATA_E_NAN, "%s: /%s value %g at sample %lld, layer "
                                       "%lld, position %lld exceeds float16's range (65504); "
                                       "use --dtype f32", d->path, site_dset[k], (double)src[i],
                                       (long long)s, (long long)(i / (P * D)),
                                       (long long)d->positions[i / D % P]);
            }
            buf = d->h16;
        }
        if ((rc = strata_h5_write_block(f, site_dset[k], start, count, buf))) return rc;
        src += n * P * D;
    }
    if ((rc = strata_h5_write_rows(f, "tokens", s, 1, tokens))) return rc;
    /* Count the sample only once its data is written out (a full disk fails
     * this first flush), then flush the count: a killed or starved run leaves
     * a file whose n_complete samples are all there, never zeros counted as
     * data. */
    if ((rc = strata_h5_flush(f)) || (rc = strata_h5_set_attr_i64(f, "/", "n_complete", s + 1)) ||
        (rc = strata_h5_flush(f)))
        return rc;
    d->info.n_complete = s + 1;
    return 0;
}

int strata_dump_finish(struct strata_dump *dump)
{
    int rc = check_writer(dump, "strata_dump_finish");
    if (rc) return rc;
    struct strata_dump *d = dump;
    if (d->info.n_complete != d->info.n_samples)
        return strata_fail(STRATA_E_ARG, "%s: only %lld of %lld samples written; a dump is "
                           "finished when full (free it to keep the .partial file)", d->path,
                           (long long)d->info.n_complete, (long long)d->info.n_samples);
    if ((rc = strata_h5_set_attr_i64(d->sh[0].f, "/", "complete", 1))) return rc;
    rc = strata_h5_finish(d->sh[0].f);
    strata_h5_free(d->sh[0].f);
    d->sh[0].f = NULL;
    if (rc == 0) d->info.complete = true;
    return rc;
}

/* ------------------------------------------------------------- reading */

/* ids (n) from 1-D dataset `name`, which must hold exactly n entries. */
static int read_ids(struct strata_h5 *f, const char *path, const char *name, int64_t n,
                    int32_t **ids)
{
    int nd;
    int64_t sh[STRATA_H5_MAX_DIMS];
    int rc = strata_h5_shape(f, name, &nd, sh);
    if (rc) return rc;
    if (nd != 1 || sh[0] != n)
        return strata_fail(STRATA_E_SHAPE, "%s: dataset /%s should hold %lld ids (one per kept "
                           "entry) but has %s %lld", path, name, (long long)n,
                           nd == 1 ? "" : "rank", (long long)(nd == 1 ? sh[0] : nd));
    *ids = xmalloc((size_t)n * sizeof **ids);
    return strata_h5_read(f, name, STRATA_DT_I32, *ids);
}

/* Read the schema facts of file f (one shard) into *in and the id lists. */
static int load_file(struct strata_h5 *f, const char *path, struct strata_dump_info *in,
                     int32_t **layers, int32_t **positions, int32_t **blocks)
{
    char *format = NULL;
    int rc = strata_h5_get_attr_str(f, "/", "format", &format);
    if (rc) {
        if (rc == STRATA_E_FORMAT)
            rc = strata_fail(STRATA_E_FORMAT, "%s: root attribute `format` is missing or not a "
                             "string: not a strata dump (expected \"%s\")", path, DUMP_FORMAT);
        return rc;
    }
    int version = !strcmp(format, DUMP_FORMAT) ? 2 : !strcmp(format, DUMP_FORMAT_V1) ? 1 : 0;
    if (!version) {
        rc = strata_fail(STRATA_E_FORMAT, "%s: root attribute `format` is \"%s\"; this strata "
                         "reads \"%s\" and \"%s\": use the strata version that wrote it", path,
                         format, DUMP_FORMAT, DUMP_FORMAT_V1);
        free(format);
        return rc;
    }
    free(format);
    memset(in, 0, sizeof *in);
    in->format = version;
    int nd;
    int64_t ts[STRATA_H5_MAX_DIMS], sh[STRATA_H5_MAX_DIMS];
    if ((rc = strata_h5_shape(f, "tokens", &nd, ts))) return rc;
    enum strata_dtype tt;
    if (nd != 2 || ts[0] < 1 || ts[1] < 1)
        return strata_fail(STRATA_E_SHAPE, "%s: dataset /tokens should be (sample, position)", path);
    if ((rc = strata_h5_type_of(f, "tokens", &tt))) return rc;
    if (tt != STRATA_DT_I32 && tt != STRATA_DT_I64)
        return strata_fail(STRATA_E_FORMAT, "%s: dataset /tokens holds floats, expected int32 "
                           "token ids", path);
    in->n_samples = ts[0];
    in->seq_len = ts[1];
    bool have_dtype = false;
    for (int k = 0; k < N_SITE; k++) {
        int has = strata_h5_has(f, site_dset[k]);
        if (has < 0) return has;
        if (!has) {
            if (k == 0 && version == 1)
                return strata_fail(STRATA_E_FORMAT, "%s: dataset /hidden is missing; not a "
                                   "complete strata dump (docs/FORMAT.md)", path);
            continue;
        }
        if ((rc = strata_h5_shape(f, site_dset[k], &nd, sh))) return rc;
        if (nd != 4)
            return strata_fail(STRATA_E_SHAPE, "%s: dataset /%s has rank %d, expected 4 (sample, "
                               "layer, position, dim)", path, site_dset[k], nd);
        for (int i = 0; i < 4; i++)
            if (sh[i] < 1)
                return strata_fail(STRATA_E_SHAPE, "%s: dataset /%s has axis %d of size %lld",
                                   path, site_dset[k], i, (long long)sh[i]);
        if (sh[0] != in->n_samples || (in->sites && (sh[2] != in->n_pos || sh[3] != in->dim)))
            return strata_fail(STRATA_E_SHAPE, "%s: dataset /%s has shape (%lld, %lld, %lld, %lld) "
                               "but /tokens holds N = %lld samples%s", path, site_dset[k],
                               (long long)sh[0], (long long)sh[1], (long long)sh[2],
                               (long long)sh[3], (long long)in->n_samples,
                               in->sites ? " and the other sites another (P, D)" : "");
        enum strata_dtype t;
        if ((rc = strata_h5_type_of(f, site_dset[k], &t))) return rc;
        if (t != STRATA_DT_F32 && t != STRATA_DT_F16)
            return strata_fail(STRATA_E_FORMAT, "%s: dataset /%s holds %s; strata reads IEEE "
                               "float32 or float16 only", path, site_dset[k],
                               t == STRATA_DT_F64 ? "float of 8 bytes"
                               : t == STRATA_DT_I64 ? "integer of 8 bytes" : "integer of 4 bytes");
        if (have_dtype && t != in->dtype)
            return strata_fail(STRATA_E_FORMAT, "%s: dataset /%s is not of the other sites' type",
                               path, site_dset[k]);
        in->dtype = t;
        have_dtype = true;
        in->sites |= 1u << k;
        in->n_pos = sh[2];
        in->dim = sh[3];
        if (k == 0) in->n_layers = sh[1];
        else if (in->n_blocks && sh[1] != in->n_blocks)
            return strata_fail(STRATA_E_SHAPE, "%s: /attn_out and /mlp_out keep different numbers "
                               "of blocks", path);
        else in->n_blocks = sh[1];
    }
    if (!in->sites)
        return strata_fail(STRATA_E_FORMAT, "%s: none of /hidden, /attn_out, /mlp_out is there: "
                           "not a strata dump", path);
    if (in->n_layers * in->n_pos > INT64_MAX / 8 / in->dim ||
        in->n_blocks * in->n_pos > INT64_MAX / 8 / in->dim)
        return strata_fail(STRATA_E_SHAPE, "%s: one sample is too large", path);
    if (version == 1) {
        if (in->n_pos != in->seq_len)
            return strata_fail(STRATA_E_SHAPE, "%s: dataset /tokens has shape (%lld, %lld) but "
                               "/hidden holds N = %lld samples of T = %lld positions", path,
                               (long long)ts[0], (long long)ts[1], (long long)in->n_samples,
                               (long long)in->n_pos);
        *layers = ids_or_range(NULL, in->n_layers);
        *positions = ids_or_range(NULL, in->n_pos);
    } else {
        if ((rc = read_ids(f, path, "positions", in->n_pos, positions))) return rc;
        if ((rc = check_ids(path, "dataset /positions", *positions, in->n_pos, in->seq_len)))
            return rc;
        if (in->n_layers && ((rc = read_ids(f, path, "layers", in->n_layers, layers)) ||
                             (rc = check_ids(path, "dataset /layers", *layers, in->n_layers, 0))))
            return rc;
        if (in->n_blocks && ((rc = read_ids(f, path, "blocks", in->n_blocks, blocks)) ||
                             (rc = check_ids(path, "dataset /blocks", *blocks, in->n_blocks, 0))))
            return rc;
    }
    int64_t complete;
    if ((rc = strata_h5_get_attr_i64(f, "/", "n_complete", &in->n_complete)) ||
        (rc = strata_h5_get_attr_i64(f, "/", "complete", &complete)))
        return rc;
    if (in->n_complete < 0 || in->n_complete > in->n_samples)
        return strata_fail(STRATA_E_FORMAT, "%s: root attribute `n_complete` = %lld is outside "
                           "0 .. N = %lld", path, (long long)in->n_complete,
                           (long long)in->n_samples);
    if ((complete != 0 && complete != 1) || (complete == 1 && in->n_complete != in->n_samples))
        return strata_fail(STRATA_E_FORMAT, "%s: root attribute `complete` = %lld disagrees with "
                           "n_complete = %lld of N = %lld", path, (long long)complete,
                           (long long)in->n_complete, (long long)in->n_samples);
    in->complete = complete == 1;
    return 0;
}

static bool same_ids(const int32_t *a, const int32_t *b, int64_t n)
{
    return n == 0 || memcmp(a, b, (size_t)n * sizeof *a) == 0;
}

/* Shard k must be the same run as shard 0: shape, ids, dtype, provenance. */
static int check_shard(struct strata_dump *d, int k, const char *path,
                       const struct strata_dump_info *in, const int32_t *layers,
                       const int32_t *positions, const int32_t *blocks)
{
    const struct strata_dump_info *a = &d->info;
    const char *bad = NULL;
    if (in->seq_len != a->seq_len) bad = "T (tokens per sample)";
    else if (in->dim != a->dim) bad = "D (width)";
    else if (in->sites != a->sites) bad = "the sites kept";
    else if (in->dtype != a->dtype) bad = "the dtype";
    else if (in->n_layers != a->n_layers || !same_ids(layers, d->layers, a->n_layers))
        bad = "the layers kept (/layers)";
    else if (in->n_pos != a->n_pos || !same_ids(positions, d->positions, a->n_pos))
        bad = "the positions kept (/positions)";
    else if (in->n_blocks != a->n_blocks || !same_ids(blocks, d->blocks, a->n_blocks))
        bad = "the blocks kept (/blocks)";
    if (bad)
        return strata_fail(STRATA_E_SHAPE, "%s and %s differ in %s: they are not shards of one "
                           "run", d->path, path, bad);
    static const char *const attrs[] = {"model_config", "corpus_path", "seed", "corpus_format"};
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++) {
        char *x = NULL, *y = NULL;
        int rx = strata_h5_get_attr_str(d->sh[0].f, "/", attrs[i], &x);
        int ry = strata_h5_get_attr_str(d->sh[k].f, "/", attrs[i], &y);
        bool differ = (rx == 0) != (ry == 0) || (rx == 0 && strcmp(x, y) != 0);
        free(x);
        free(y);
        if (differ)
            return strata_fail(STRATA_E_DATA, "%s and %s differ in root attribute `%s`: they are "
                               "not shards of one run", d->path, path, attrs[i]);
    }
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Shards of one run never share a draw (the same shard twice, or two runs
 * with overlapping --sample-offset ranges, would count samples twice). */
static int check_draws(struct strata_dump *d, const char *const *paths)
{
    int64_t total = d->info.n_samples, at = 0;
    int64_t *all = xmalloc((size_t)(total > 0 ? total : 1) * 2 * sizeof *all);
    int rc = 0;
    for (int k = 0; k < d->n_shard && !rc; k++) {
        int has = strata_h5_has(d->sh[k].f, "sample_draw");
        if (has <= 0) continue; /* strata-dump/1: no record */
        int64_t *v = all + at * 2;
        int64_t *tmp = xmalloc((size_t)(d->sh[k].n > 0 ? d->sh[k].n : 1) * sizeof *tmp);
        if (d->sh[k].n) rc = strata_h5_read_rows(d->sh[k].f, "sample_draw", STRATA_DT_I64, 0,
                                                d->sh[k].n, tmp);
        for (int64_t i = 0; i < d->sh[k].n && !rc; i++) {
            v[2 * i] = tmp[i];
            v[2 * i + 1] = k;
        }
        free(tmp);
        at += d->sh[k].n;
    }
    if (!rc) {
        qsort(all, (size_t)at, 2 * sizeof *all, cmp_i64); /* pairs sorted by draw */
        for (int64_t i = 1; i < at; i++)
            if (all[2 * i] == all[2 * i - 2]) {
                rc = strata_fail(STRATA_E_DATA, "%s and %s both hold draw %lld of the sample "
                                 "shuffle: shards of one run must not overlap (same file twice, "
                                 "or overlapping --sample-offset ranges?)",
                                 paths[all[2 * i - 1]], paths[all[2 * i + 1]],
                                 (long long)all[2 * i]);
                break;
            }
    }
    free(all);
    return rc;
}

int strata_dump_open_many(struct strata_dump **out, const char *const *paths, int n)
{
    if (!out) return strata_fail(STRATA_E_ARG, "strata_dump_open: out is NULL");
    *out = NULL;
    if (!paths || n < 1) return strata_fail(STRATA_E_ARG, "strata_dump_open_many: no paths");
    for (int k = 0; k < n; k++)
        if (!paths[k] || !paths[k][0])
            return strata_fail(STRATA_E_ARG, "strata_dump_open: empty path");
    struct strata_dump *d = dump_new(paths[0]);
    d->sh = xrealloc(d->sh, (size_t)n * sizeof *d->sh);
    memset(d->sh, 0, (size_t)n * sizeof *d->sh);
    d->n_shard = n;
    int rc = 0;
    int64_t total = 0;
    bool complete = true;
    for (int k = 0; k < n && !rc; k++) {
        struct strata_dump_info in;
        int32_t *l = NULL, *p = NULL, *b = NULL;
        if ((rc = strata_h5_open(&d->sh[k].f, paths[k])) ||
            (rc = load_file(d->sh[k].f, paths[k], &in, &l, &p, &b))) {
            if (rc == STRATA_E_FORMAT && !strstr(strata_last_error(), "strata")) {
                char *why = strata_xstrdup(strata_last_error()); /* strata_fail reuses its buffer */
                rc = strata_fail(rc, "%s; dumps are written by strata-probe-hidden", why);
                free(why);
            }
        } else if (k == 0) {
            d->info = in;
            d->layers = l;
            d->positions = p;
            d->blocks = b;
            l = p = b = NULL;
        } else {
            rc = check_shard(d, k, paths[k], &in, l, p, b);
        }
        free(l);
        free(p);
        free(b);
        if (rc) break;
        d->sh[k].n = in.n_complete;
        d->sh[k].first = total;
        total += in.n_complete;
        complete = complete && in.complete;
    }
    if (!rc && n > 1) {
        d->info.n_samples = d->info.n_complete = total;
        d->info.complete = complete;
        rc = check_draws(d, paths);
    }
    if (rc) {
        strata_dump_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

int strata_dump_open(struct strata_dump **out, const char *path)
{
    const char *paths[1] = {path};
    return strata_dump_open_many(out, paths, 1);
}

/* A writer on path.partial, continuing at n_complete. */
static int open_writer(struct strata_dump **out, const char *path)
{
    struct strata_dump *d = dump_new(path);
    d->writer = true;
    int rc = strata_h5_open_rw(&d->sh[0].f, path);
    if (!rc) rc = load_file(d->sh[0].f, strata_h5_file_path(d->sh[0].f), &d->info, &d->layers,
                            &d->positions, &d->blocks);
    if (!rc && d->info.format != 2)
        rc = strata_fail(STRATA_E_FORMAT, "%s: a strata-dump/1 file cannot be continued; run "
                         "the probe anew", strata_h5_file_path(d->sh[0].f));
    if (rc) {
        strata_dump_free(d);
        return rc;
    }
    int64_t most = d->info.n_layers > d->info.n_blocks ? d->info.n_layers : d->info.n_blocks;
    if (d->info.dtype == STRATA_DT_F16)
        d->h16 = xmalloc((size_t)(most * d->info.n_pos * d->info.dim) * sizeof *d->h16);
    *out = d;
    return 0;
}

int strata_dump_resume(struct strata_dump **out, const char *path)
{
    if (!out) return strata_fail(STRATA_E_ARG, "strata_dump_resume: out is NULL");
    *out = NULL;
    if (!path || !path[0]) return strata_fail(STRATA_E_ARG, "strata_dump_resume: empty path");
    struct strata_dump *d;
    int rc = open_writer(&d, path);
    if (rc) return rc;
    if (d->info.complete) {
        rc = strata_fail(STRATA_E_ARG, "%s: the run is complete (all %lld samples), yet its name "
                         "still ends in .partial; rename it to %s", strata_h5_file_path(d->sh[0].f),
                         (long long)d->info.n_samples, path);
        strata_dump_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

int strata_dump_append(struct strata_dump **out, const char *path, int64_t n_more)
{
    if (!out) return strata_fail(STRATA_E_ARG, "strata_dump_append: out is NULL");
    *out = NULL;
    if (!path || !path[0] || n_more < 1)
        return strata_fail(STRATA_E_ARG, "strata_dump_append: empty path or n_more < 1");
    struct strata_dump *r = NULL;
    int rc = strata_dump_open(&r, path);
    if (rc) return rc;
    bool ok = r->info.complete && r->info.format == 2;
    strata_dump_free(r);
    if (!ok)
        return strata_fail(STRATA_E_ARG, "%s: only a finished strata-dump/2 file can be appended "
                           "to", path);
    char *partial = xmalloc(strlen(path) + sizeof ".partial");
    sprintf(partial, "%s.partial", path);
    struct stat st;
    if (stat(partial, &st) == 0) {
        rc = strata_fail(STRATA_E_ARG, "%s exists: finish that run first (--resume) or remove "
                         "it", partial);
        free(partial);
        return rc;
    }
    /* The finished name goes away while samples are added, so a name
     * without .partial still always means "complete". */
    if (rename(path, partial) != 0) {
        rc = strata_fail(STRATA_E_IO, "%s: cannot rename to %s: %s", path, partial,
                         strerror(errno));
        free(partial);
        return rc;
    }
    free(partial);
    struct strata_dump *d;
    if ((rc = open_writer(&d, path))) return rc;
    struct strata_h5 *f = d->sh[0].f;
    int64_t n = d->info.n_samples + n_more;
    static const char *const per_sample[] = {"tokens", "sample_doc", "sample_window", "sample_draw"};
    for (int k = 0; k < N_SITE && !rc; k++)
        if (d->info.sites & (1u << k)) rc = strata_h5_extend(f, site_dset[k], n);
    for (size_t i = 0; i < sizeof per_sample / sizeof per_sample[0] && !rc; i++)
        rc = strata_h5_extend(f, per_sample[i], n);
    if (!rc && strata_h5_has(f, "sample") > 0) rc = strata_h5_extend(f, "sample", n);
    if (!rc) rc = strata_h5_set_attr_i64(f, "/", "complete", 0);
    if (!rc) rc = strata_h5_flush(f);
    if (rc) {
        strata_dump_free(d);
        return rc;
    }
    d->info.n_samples = n;
    d->info.complete = false;
    *out = d;
    return 0;
}

const char *strata_dump_path(const struct strata_dump *dump) { return dump ? dump->path : NULL; }

int strata_dump_info(const struct strata_dump *dump, struct strata_dump_info *info)
{
    if (!dump || !info) return strata_fail(STRATA_E_ARG, "strata_dump_info: NULL argument");
    *info = dump->info;
    return 0;
}

const int32_t *strata_dump_layers(const struct strata_dump *d) { return d ? d->layers : NULL; }
const int32_t *strata_dump_positions(const struct strata_dump *d) { return d ? d->positions : NULL; }
const int32_t *strata_dump_blocks(const struct strata_dump *d) { return d ? d->blocks : NULL; }

static int check_open(const struct strata_dump *d, const char *what)
{
    if (!d) return strata_fail(STRATA_E_ARG, "%s: NULL dump", what);
    if (!d->sh[0].f)
        return strata_fail(STRATA_E_ARG, "%s: %s: the dump was finished and closed; open it "
                           "again with strata_dump_open", d->path, what);
    return 0;
}

int strata_dump_get_attr_str(const struct strata_dump *dump, const char *name, char **value)
{
    int rc = check_open(dump, "strata_dump_get_attr_str");
    if (rc) return rc;
    return strata_h5_get_attr_str(dump->sh[0].f, "/", name, value);
}

int strata_dump_get_attr_i64(const struct strata_dump *dump, const char *name, int64_t *value)
{
    int rc = check_open(dump, "strata_dump_get_attr_i64");
    if (rc) return rc;
    return strata_h5_get_attr_i64(dump->sh[0].f, "/", name, value);
}

/* The shard holding sample s, and s's index in it. */
static int locate(const struct strata_dump *d, int64_t s, const char *what, int *k, int64_t *ls)
{
    int rc = check_open(d, what);
    if (rc) return rc;
    if (s < 0 || s >= d->info.n_complete)
        return strata_fail(STRATA_E_ARG, "%s: sample %lld is out of range: %lld of %lld samples "
                           "are written%s", d->path, (long long)s, (long long)d->info.n_complete,
                           (long long)d->info.n_samples,
                           d->info.complete ? "" : " (the dump is incomplete)");
    int i = 0;
    while (i + 1 < d->n_shard && s >= d->sh[i + 1].first) i++;
    *k = i;
    *ls = s - d->sh[i].first;
    return 0;
}

int strata_dump_read_origin(const struct strata_dump *dump, int64_t s0, int64_t n, int64_t *doc,
                            int64_t *window, int64_t *draw)
{
    if (dump && dump->writer && dump->sh[0].f) { /* rows are recorded before their samples */
        struct strata_h5 *f = dump->sh[0].f;
        int rc = 0;
        if (s0 < 0 || n < 0 || s0 + n > dump->info.n_samples)
            return strata_fail(STRATA_E_ARG, "%s: rows %lld .. %lld are outside 0 .. %lld",
                               dump->path, (long long)s0, (long long)(s0 + n - 1),
                               (long long)dump->info.n_samples - 1);
        if (n == 0 || (doc && (rc = strata_h5_read_rows(f, "sample_doc", STRATA_DT_I64, s0, n, doc))) ||
            (window && (rc = strata_h5_read_rows(f, "sample_window", STRATA_DT_I64, s0, n, window))) ||
            (draw && (rc = strata_h5_read_rows(f, "sample_draw", STRATA_DT_I64, s0, n, draw))))
            return rc;
        return 0;
    }
    for (int64_t i = 0; i < n; i++) {
        int k;
        int64_t ls;
        int rc = locate(dump, s0 + i, "strata_dump_read_origin", &k, &ls);
        struct strata_h5 *f = rc ? NULL : dump->sh[k].f;
        if (rc || (doc && (rc = strata_h5_read_rows(f, "sample_doc", STRATA_DT_I64, ls, 1, doc + i))) ||
            (window && (rc = strata_h5_read_rows(f, "sample_window", STRATA_DT_I64, ls, 1, window + i))) ||
            (draw && (rc = strata_h5_read_rows(f, "sample_draw", STRATA_DT_I64, ls, 1, draw + i))))
            return rc;
    }
    return 0;
}

static int read_site(const struct strata_dump *d, int site, int64_t s, int64_t i0, int64_t n,
                     float *out, const char *what)
{
    int k;
    int64_t ls;
    int rc = locate(d, s, what, &k, &ls);
    if (rc) return rc;
    if (!(d->info.sites & (1u << site)))
        return strata_fail(STRATA_E_ARG, "%s: the dump keeps no /%s (see its `sites` attribute)",
                           d->path, site_dset[site]);
    int64_t cnt = site_count(&d->info, site);
    if (i0 < 0 || i0 + n > cnt)
        return strata_fail(STRATA_E_ARG, "%s: /%s entry %lld is out of range 0 .. %lld", d->path,
                           site_dset[site], (long long)i0, (long long)cnt - 1);
    if (!out) return strata_fail(STRATA_E_ARG, "%s: %s: out is NULL", d->path, what);
    const int64_t start[4] = {ls, i0, 0, 0}, count[4] = {1, n, d->info.n_pos, d->info.dim};
    return strata_h5_read_block(d->sh[k].f, site_dset[site], STRATA_DT_F32, start, count, out);
}

int strata_dump_read_sample(const struct strata_dump *dump, int64_t s, float *hidden,
                            int32_t *tokens)
{
    int k;
    int64_t ls;
    int rc = locate(dump, s, "strata_dump_read_sample", &k, &ls);
    if (rc) return rc;
    if (hidden && (rc = read_site(dump, 0, s, 0, dump->info.n_layers, hidden,
                                  "strata_dump_read_sample")))
        return rc;
    if (tokens && (rc = strata_h5_read_rows(dump->sh[k].f, "tokens", STRATA_DT_I32, ls, 1, tokens)))
        return rc;
    return 0;
}

int strata_dump_read_layer(const struct strata_dump *dump, int64_t s, int64_t l, float *out)
{
    return read_site(dump, 0, s, l, 1, out, "strata_dump_read_layer");
}

int strata_dump_read_site(const struct strata_dump *dump, enum strata_dump_site site, int64_t s,
                          int64_t i, float *out)
{
    int k = site == STRATA_DUMP_RESID ? 0 : site == STRATA_DUMP_ATTN_OUT ? 1
          : site == STRATA_DUMP_MLP_OUT ? 2 : -1;
    if (k < 0)
        return strata_fail(STRATA_E_ARG, "%s: unknown dump site %d", dump ? dump->path : "dump",
                           (int)site);
    return read_site(dump, k, s, i, 1, out, "strata_dump_read_site");
}
