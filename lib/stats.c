/* stats.c — the streaming-statistics file, strata-stats/1 (docs/FORMAT.md;
 * issue 12): what strata-probe-stats keeps of a run instead of raw hidden
 * states. Sums over samples for P1 (positional vectors: the strata_pvsum
 * sums), per-sample means over tokens for P3 (Block Influence and its
 * variants, what strata-blockinf's bootstrap needs), and the attention
 * reductions of P2 (strata_attnred sums), so the analyzers give the numbers
 * of the raw dump of the same samples, and files of disjoint samples merge
 * into the file of one pass over all of them. Papers: ../shared/docs/PAPERS.md.
 *
 * Every HDF5 call goes through lib/h5io.c (strata_h5_*).
 *
 * Legend: N rows (samples), T tokens, D width, L blocks, Lk kept boundaries,
 * P kept positions, K Block Influence rows, Ls/Hs/Ks attention blocks, heads,
 * sink widths. */
#include "h5io.h"
#include "internal.h"

#include <math.h>
#include <string.h>

static size_t n_attn(const struct strata_stats *st) /* elements of one (Ls, Hs, T) array */
{
    return (size_t)(st->n_attn_layers * st->n_heads * st->seq_len);
}

int strata_stats_alloc(struct strata_stats *st)
{
    const int64_t N = st->n_samples, T = st->seq_len, L = st->n_layer, K = st->n_bi;
    if (N < 0 || T < 1 || st->dim < 1 || L < 1 || st->n_pos < 1 || K < 0)
        return strata_fail(STRATA_E_ARG, "statistics: bad shape (N %lld, T %lld, D %lld, L %lld)",
                           (long long)N, (long long)T, (long long)st->dim, (long long)L);
    st->tokens = xcalloc((size_t)(N * T) + 1, sizeof(int32_t));
    st->doc = xcalloc((size_t)N + 1, sizeof(int64_t));
    st->window = xcalloc((size_t)N + 1, sizeof(int64_t));
    st->draw = xcalloc((size_t)N + 1, sizeof(int64_t));
    if (st->has_posvec) {
        int rc = strata_pvsum_init(&st->pv, st->n_layers, st->n_pos, st->dim);
        if (rc) return rc;
    }
    if (K > 0) {
        st->bi_mean = xcalloc((size_t)(N * K * L) + 1, sizeof(double));
        st->bi_last = xcalloc((size_t)(N * K * L) + 1, sizeof(double));
        for (int64_t i = 0; i < N * K * L; i++) st->bi_mean[i] = st->bi_last[i] = (double)NAN;
    }
    if (st->n_attn_layers > 0) {
        const size_t n = n_attn(st);
        st->prob = xcalloc(n, sizeof(double));
        st->logit = xcalloc(n, sizeof(double));
        st->count = xcalloc(n, sizeof(double));
        st->entropy = xcalloc(n, sizeof(double));
        st->rows = xcalloc(n, sizeof(double));
        st->sink = xcalloc(n * (size_t)st->n_sink + 1, sizeof(double));
    }
    return 0;
}

void strata_stats_free(struct strata_stats *st)
{
    if (!st) return;
    free(st->layers), free(st->positions), free(st->tokens);
    free(st->doc), free(st->window), free(st->draw);
    strata_pvsum_free(&st->pv);
    free(st->bi_metric), free(st->bi_span), free(st->bi_mean), free(st->bi_last);
    free(st->attn_layers), free(st->heads), free(st->sink_k);
    free(st->prob), free(st->logit), free(st->count), free(st->entropy), free(st->rows);
    free(st->sink);
    memset(st, 0, sizeof *st);
}

/* Dimension names of the datasets (docs/FORMAT.md, "Dimensions"). */
static const char *const d_sample[1] = {"sample"}, *const d_tokens[2] = {"sample", "token"},
                         *const d_bound[1] = {"boundary"}, *const d_pos[1] = {"position"},
                         *const d_sum[3] = {"boundary", "position", "dim"},
                         *const d_sumsq[2] = {"boundary", "position"}, *const d_row[1] = {"row"},
                         *const d_bi[3] = {"sample", "row", "block"},
                         *const d_ablock[1] = {"block"}, *const d_head[1] = {"head"},
                         *const d_dist[3] = {"block", "head", "distance"},
                         *const d_query[3] = {"block", "head", "query"},
                         *const d_sink[4] = {"block", "head", "sink_k", "query"};

/* Every dataset, its netCDF-4 dimensions and coordinates, the selections
 * and origins; the sums and rows are written as samples complete. */
static int create_all(struct strata_h5 *f, const struct strata_stats *st)
{
    const int64_t N = st->n_samples, T = st->seq_len, K = st->n_bi, L = st->n_layer;
    int rc = 0;
    const int64_t s_n[1] = {N}, s_t[2] = {N, T};
    rc = strata_h5_write_coord(f, "sample", STRATA_DT_I64, N, st->draw,
                               "draw of the sample in the seeded shuffle (as /sample_draw)", NULL);
    if (!rc) rc = strata_h5_def_dim(f, "token", T, false);
    if (!rc) rc = strata_h5_write_coord(f, "boundary", STRATA_DT_I32, st->n_layers, st->layers,
                                        "residual-stream boundary: 0 embeddings, b after block b "
                                        "(as /layers)", NULL);
    if (!rc) rc = strata_h5_write_coord(f, "position", STRATA_DT_I32, st->n_pos, st->positions,
                                        "kept position (as /positions)", NULL);
    if (!rc) rc = strata_h5_def_dim(f, "dim", st->dim, false);
    if (!rc) rc = strata_h5_write(f, "layers", STRATA_DT_I32, 1, &st->n_layers, st->layers);
    if (!rc) rc = strata_h5_set_dims(f, "layers", d_bound);
    if (!rc) rc = strata_h5_write(f, "positions", STRATA_DT_I32, 1, &st->n_pos, st->positions);
    if (!rc) rc = strata_h5_set_dims(f, "positions", d_pos);
    if (!rc) rc = strata_h5_write(f, "tokens", STRATA_DT_I32, 2, s_t, st->tokens);
    if (!rc) rc = strata_h5_set_dims(f, "tokens", d_tokens);
    static const char *const origins[3] = {"sample_doc", "sample_window", "sample_draw"};
    const int64_t *origin[3] = {st->doc, st->window, st->draw};
    for (int i = 0; i < 3 && !rc; i++) {
        rc = strata_h5_write(f, origins[i], STRATA_DT_I64, 1, s_n, origin[i]);
        if (!rc) rc = strata_h5_set_dims(f, origins[i], d_sample);
    }
    if (!rc && st->has_posvec) {
        const int64_t s3[3] = {st->n_layers, st->n_pos, st->dim}, s2[2] = {st->n_layers, st->n_pos};
        struct strata_h5_dset_opts o3 = {.dims = d_sum}, o2 = {.dims = d_sumsq};
        rc = strata_h5_create_dataset_opts(f, "posvec/sum", STRATA_DT_F64, 3, s3, &o3);
        if (!rc) rc = strata_h5_create_dataset_opts(f, "posvec/sumsq", STRATA_DT_F64, 2, s2, &o2);
    }
    if (!rc && K > 0) {
        const int64_t s3[3] = {N, K, L};
        int32_t *ids = xmalloc((size_t)L * sizeof *ids);
        for (int64_t l = 0; l < L; l++) ids[l] = (int32_t)l;
        rc = strata_h5_def_dim(f, "blockinf/row", K, false);
        if (!rc) rc = strata_h5_write_coord(f, "blockinf/block", STRATA_DT_I32, L, ids,
                                            "block l (boundary l to l+1)", NULL);
        free(ids);
        if (!rc) rc = strata_h5_write(f, "blockinf/metric", STRATA_DT_I32, 1, &K, st->bi_metric);
        if (!rc) rc = strata_h5_set_dims(f, "blockinf/metric", d_row);
        if (!rc) rc = strata_h5_write(f, "blockinf/span", STRATA_DT_I32, 1, &K, st->bi_span);
        if (!rc) rc = strata_h5_set_dims(f, "blockinf/span", d_row);
        struct strata_h5_dset_opts o = {.dims = d_bi};
        if (!rc) rc = strata_h5_create_dataset_opts(f, "blockinf/mean", STRATA_DT_F64, 3, s3, &o);
        if (!rc) rc = strata_h5_create_dataset_opts(f, "blockinf/last", STRATA_DT_F64, 3, s3, &o);
    }
    if (!rc && st->n_attn_layers > 0) {
        const int64_t s3[3] = {st->n_attn_layers, st->n_heads, T};
        const int64_t s4[4] = {st->n_attn_layers, st->n_heads, st->n_sink, T};
        int32_t *m = xmalloc((size_t)T * sizeof *m);
        for (int64_t t = 0; t < T; t++) m[t] = (int32_t)t;
        rc = strata_h5_write_coord(f, "attn/block", STRATA_DT_I32, st->n_attn_layers,
                                   st->attn_layers, "block (0-based; as /attn/layers)", NULL);
        if (!rc) rc = strata_h5_write_coord(f, "attn/head", STRATA_DT_I32, st->n_heads, st->heads,
                                            "query head (0-based; as /attn/heads)", NULL);
        if (!rc) rc = strata_h5_write_coord(f, "attn/sink_k", STRATA_DT_I32, st->n_sink,
                                            st->sink_k, "sink width k: keys 0 .. k-1", "tokens");
        if (!rc) rc = strata_h5_write_coord(f, "attn/distance", STRATA_DT_I32, T, m,
                                            "relative distance m = i - j of query i and key j",
                                            "tokens");
        free(m);
        if (!rc) rc = strata_h5_def_dim(f, "attn/query", T, false);
        if (!rc) rc = strata_h5_write(f, "attn/layers", STRATA_DT_I32, 1, &st->n_attn_layers, st->attn_layers);
        if (!rc) rc = strata_h5_set_dims(f, "attn/layers", d_ablock);
        if (!rc) rc = strata_h5_write(f, "attn/heads", STRATA_DT_I32, 1, &st->n_heads, st->heads);
        if (!rc) rc = strata_h5_set_dims(f, "attn/heads", d_head);
        static const char *const names[] = {"attn/prob_sum", "attn/logit_sum", "attn/count",
                                            "attn/entropy_sum", "attn/query_count"};
        struct strata_h5_dset_opts od = {.dims = d_dist}, oq = {.dims = d_query},
                                   os = {.dims = d_sink};
        for (int i = 0; i < 5 && !rc; i++)
            rc = strata_h5_create_dataset_opts(f, names[i], STRATA_DT_F64, 3, s3, i < 3 ? &od : &oq);
        if (!rc) rc = strata_h5_create_dataset_opts(f, "attn/sink_sum", STRATA_DT_F64, 4, s4, &os);
    }
    if (!rc) rc = strata_h5_set_attr_str(f, "/", "format", STRATA_STATS_FORMAT);
    if (!rc) rc = strata_h5_set_attr_i64(f, "/", "n_block", L);
    if (!rc) rc = strata_h5_set_attr_i64(f, "/", "dim", st->dim);
    if (!rc) rc = strata_h5_set_attr_i64(f, "/", "n_complete", 0);
    if (!rc) rc = strata_h5_set_attr_i64(f, "/", "complete", 0);
    return rc;
}

int strata_stats_create(struct strata_h5 **out, const char *path, const struct strata_stats *st)
{
    int rc = strata_h5_create(out, path);
    if (rc) return rc;
    if ((rc = create_all(*out, st))) {
        strata_h5_free(*out);
        *out = NULL;
    }
    return rc;
}

int strata_stats_resume(struct strata_h5 **out, const char *path)
{
    return strata_h5_open_rw(out, path);
}

int strata_stats_save(struct strata_h5 *f, const struct strata_stats *st, int64_t row0)
{
    int rc = 0;
    const int64_t n = st->n_complete - row0, KL = st->n_bi * st->n_layer;
    if (st->has_posvec) {
        rc = strata_h5_write_rows(f, "posvec/sum", 0, st->n_layers, st->pv.sum);
        if (!rc) rc = strata_h5_write_rows(f, "posvec/sumsq", 0, st->n_layers, st->pv.sumsq);
    }
    if (!rc && st->n_bi > 0 && n > 0) {
        rc = strata_h5_write_rows(f, "blockinf/mean", row0, n, st->bi_mean + row0 * KL);
        if (!rc) rc = strata_h5_write_rows(f, "blockinf/last", row0, n, st->bi_last + row0 * KL);
    }
    if (!rc && st->n_attn_layers > 0) {
        const int64_t Ls = st->n_attn_layers;
        rc = strata_h5_write_rows(f, "attn/prob_sum", 0, Ls, st->prob);
        if (!rc) rc = strata_h5_write_rows(f, "attn/logit_sum", 0, Ls, st->logit);
        if (!rc) rc = strata_h5_write_rows(f, "attn/count", 0, Ls, st->count);
        if (!rc) rc = strata_h5_write_rows(f, "attn/entropy_sum", 0, Ls, st->entropy);
        if (!rc) rc = strata_h5_write_rows(f, "attn/query_count", 0, Ls, st->rows);
        if (!rc) rc = strata_h5_write_rows(f, "attn/sink_sum", 0, Ls, st->sink);
    }
    if (!rc) rc = strata_h5_set_attr_i64(f, "/", "n_complete", st->n_complete);
    if (!rc) rc = strata_h5_flush(f);
    return rc;
}

int strata_stats_is(const struct strata_h5 *f)
{
    char *fmt = NULL;
    int is = strata_h5_get_attr_str(f, "/", "format", &fmt) == 0 && !strcmp(fmt, STRATA_STATS_FORMAT);
    free(fmt);
    return is;
}

/* Elements of a dataset past which a file is refused before allocating
 * (2^36: 512 GiB of doubles), so no size product overflows. */
#define MAX_ELEMS ((int64_t)1 << 36)

/* Read a 1-D int32 dataset of n >= 1 entries into *out (malloc'ed). */
static int read_list(const struct strata_h5 *f, const char *name, int64_t *n, int32_t **out)
{
    int nd;
    int64_t sh[STRATA_H5_MAX_DIMS];
    int rc = strata_h5_shape(f, name, &nd, sh);
    if (rc) return rc;
    if (nd != 1 || sh[0] < 1 || sh[0] > MAX_ELEMS) {
        char a[160];
        return strata_fail(STRATA_E_FORMAT, "%s: dataset /%s has shape %s; expected a non-empty "
                           "list (n,)", strata_h5_file_path(f), name, strata_shape_text(a, sizeof a, nd, sh));
    }
    *n = sh[0];
    *out = xcalloc((size_t)sh[0], sizeof(int32_t));
    return strata_h5_read(f, name, STRATA_DT_I32, *out);
}

/* STRATA_E_NOMEM naming the dataset unless the product of dims (n) is at
 * most MAX_ELEMS (every factor >= 1). */
static int size_ok(const struct strata_h5 *f, const char *name, int n, const int64_t *dims)
{
    int64_t p = 1;
    for (int i = 0; i < n; i++) {
        if (dims[i] > MAX_ELEMS / p)
            return strata_fail(STRATA_E_NOMEM, "%s: dataset /%s would hold more than 2^36 "
                               "elements: not a statistics file this machine can read",
                               strata_h5_file_path(f), name);
        p *= dims[i] > 0 ? dims[i] : 1;
    }
    return 0;
}

/* Every dataset's rank and shape is checked against the ones that fix its
 * axes (/tokens: N, T; /layers: Lk; /positions: P; /blockinf/metric: K;
 * the /attn lists: Ls, Hs, Ks; attributes n_block: L, dim: D) before
 * anything is read into a buffer sized from them. */
int strata_stats_load(struct strata_stats *st, const struct strata_h5 *f)
{
    memset(st, 0, sizeof *st);
    const char *path = strata_h5_file_path(f);
    if (!strata_stats_is(f))
        return strata_fail(STRATA_E_FORMAT, "%s: not a statistics file (root attribute format is "
                           "not \"%s\")", path, STRATA_STATS_FORMAT);
    int nd, rc;
    int64_t sh[STRATA_H5_MAX_DIMS], complete = 0;
    if ((rc = strata_h5_shape(f, "tokens", &nd, sh))) return rc;
    if (nd != 2 || sh[0] < 0 || sh[1] < 1) {
        char a[160];
        return strata_fail(STRATA_E_FORMAT, "%s: dataset /tokens has shape %s; expected (N, T)",
                           path, strata_shape_text(a, sizeof a, nd, sh));
    }
    if ((rc = size_ok(f, "tokens", 2, sh))) return rc;
    st->n_samples = sh[0];
    st->seq_len = sh[1];
    if ((rc = strata_h5_get_attr_i64(f, "/", "n_block", &st->n_layer)) ||
        (rc = strata_h5_get_attr_i64(f, "/", "dim", &st->dim)) ||
        (rc = strata_h5_get_attr_i64(f, "/", "n_complete", &st->n_complete)) ||
        (rc = strata_h5_get_attr_i64(f, "/", "complete", &complete)))
        return rc;
    if (st->n_complete < 0 || st->n_complete > st->n_samples || st->n_layer < 1 ||
        st->n_layer > MAX_ELEMS || st->dim < 1 || st->dim > MAX_ELEMS)
        return strata_fail(STRATA_E_FORMAT, "%s: n_complete %lld, n_block %lld or dim %lld out of "
                           "range", path, (long long)st->n_complete, (long long)st->n_layer,
                           (long long)st->dim);
    if ((complete != 0 && complete != 1) || (complete == 1 && st->n_complete != st->n_samples))
        return strata_fail(STRATA_E_FORMAT, "%s: attribute complete is %lld with n_complete %lld "
                           "of %lld samples; expected 0, or 1 with every sample", path,
                           (long long)complete, (long long)st->n_complete,
                           (long long)st->n_samples);
    if ((rc = read_list(f, "layers", &st->n_layers, &st->layers)) ||
        (rc = read_list(f, "positions", &st->n_pos, &st->positions)))
        goto fail;
    st->has_posvec = strata_h5_has(f, "posvec/sum") == 1;
    if (strata_h5_has(f, "blockinf/metric") == 1) {
        int64_t k2 = 0;
        if ((rc = read_list(f, "blockinf/metric", &st->n_bi, &st->bi_metric)) ||
            (rc = read_list(f, "blockinf/span", &k2, &st->bi_span)))
            goto fail;
        if (k2 != st->n_bi) {
            rc = strata_fail(STRATA_E_FORMAT, "%s: dataset /blockinf/span has shape (%lld,); "
                             "expected (%lld,) = (K) of /blockinf/metric", path, (long long)k2,
                             (long long)st->n_bi);
            goto fail;
        }
        for (int64_t k = 0; k < st->n_bi; k++)
            if (st->bi_metric[k] < 0 || st->bi_metric[k] >= STRATA_BI_COUNT || st->bi_span[k] < 1) {
                rc = strata_fail(STRATA_E_FORMAT, "%s: /blockinf/metric or /blockinf/span entry "
                                 "%lld is (%d, %d); expected a metric 0..%d and a span >= 1", path,
                                 (long long)k, (int)st->bi_metric[k], (int)st->bi_span[k],
                                 STRATA_BI_COUNT - 1);
                goto fail;
            }
    }
    if (strata_h5_has(f, "attn/layers") == 1) {
        if ((rc = read_list(f, "attn/layers", &st->n_attn_layers, &st->attn_layers)) ||
            (rc = read_list(f, "attn/heads", &st->n_heads, &st->heads)) ||
            (rc = read_list(f, "attn/sink_k", &st->n_sink, &st->sink_k)))
            goto fail;
    }
    const int64_t N = st->n_samples, T = st->seq_len, K = st->n_bi, L = st->n_layer;
    const int64_t s_n[1] = {N};
    const int64_t pv3[3] = {st->n_layers, st->n_pos, st->dim}, pv2[2] = {st->n_layers, st->n_pos};
    const int64_t bi3[3] = {N, K, L};
    const int64_t at3[3] = {st->n_attn_layers, st->n_heads, T};
    const int64_t at4[4] = {st->n_attn_layers, st->n_heads, st->n_sink, T};
    static const char *const at_names[] = {"attn/prob_sum", "attn/logit_sum", "attn/count",
                                           "attn/entropy_sum", "attn/query_count"};
    /* every shape before any allocation sized from the others */
    if ((rc = strata_h5_want_shape(f, "sample_window", 1, s_n, "(N) of /tokens")) ||
        (rc = strata_h5_want_shape(f, "sample_draw", 1, s_n, "(N) of /tokens")) ||
        (rc = strata_h5_want_shape(f, "sample_doc", 1, s_n, "(N) of /tokens")))
        goto fail;
    if (st->has_posvec &&
        ((rc = size_ok(f, "posvec/sum", 3, pv3)) ||
         (rc = strata_h5_want_shape(f, "posvec/sum", 3, pv3, "(Lk, P, D) of /layers, /positions, dim")) ||
         (rc = strata_h5_want_shape(f, "posvec/sumsq", 2, pv2, "(Lk, P) of /layers, /positions"))))
        goto fail;
    if (K > 0 &&
        ((rc = size_ok(f, "blockinf/mean", 3, bi3)) ||
         (rc = strata_h5_want_shape(f, "blockinf/mean", 3, bi3, "(N, K, L) of /tokens, /blockinf/metric, n_block")) ||
         (rc = strata_h5_want_shape(f, "blockinf/last", 3, bi3, "(N, K, L) of /tokens, /blockinf/metric, n_block"))))
        goto fail;
    if (st->n_attn_layers > 0) {
        if ((rc = size_ok(f, "attn/sink_sum", 4, at4))) goto fail;
        for (int i = 0; i < 5; i++)
            if ((rc = strata_h5_want_shape(f, at_names[i], 3, at3, "(Ls, Hs, T) of /attn/layers, /attn/heads, /tokens")))
                goto fail;
        if ((rc = strata_h5_want_shape(f, "attn/sink_sum", 4, at4,
                             "(Ls, Hs, Ks, T) of /attn/layers, /attn/heads, /attn/sink_k, /tokens")))
            goto fail;
    }
    /* the selections are st's now; allocate the data and read it */
    if ((rc = strata_stats_alloc(st))) goto fail;
    if ((rc = strata_h5_read(f, "tokens", STRATA_DT_I32, st->tokens))) goto fail;
    if ((rc = strata_h5_read(f, "sample_doc", STRATA_DT_I64, st->doc)) ||
        (rc = strata_h5_read(f, "sample_window", STRATA_DT_I64, st->window)) ||
        (rc = strata_h5_read(f, "sample_draw", STRATA_DT_I64, st->draw)))
        goto fail;
    if (st->has_posvec) {
        if ((rc = strata_h5_read(f, "posvec/sum", STRATA_DT_F64, st->pv.sum)) ||
            (rc = strata_h5_read(f, "posvec/sumsq", STRATA_DT_F64, st->pv.sumsq)))
            goto fail;
        st->pv.n = st->n_complete;
    }
    if (K > 0 && st->n_complete > 0 &&
        ((rc = strata_h5_read_rows(f, "blockinf/mean", STRATA_DT_F64, 0, st->n_complete, st->bi_mean)) ||
         (rc = strata_h5_read_rows(f, "blockinf/last", STRATA_DT_F64, 0, st->n_complete, st->bi_last))))
        goto fail;
    if (st->n_attn_layers > 0) {
        double *dst[5] = {st->prob, st->logit, st->count, st->entropy, st->rows};
        for (int i = 0; i < 5; i++)
            if ((rc = strata_h5_read(f, at_names[i], STRATA_DT_F64, dst[i]))) goto fail;
        if ((rc = strata_h5_read(f, "attn/sink_sum", STRATA_DT_F64, st->sink))) goto fail;
    }
    return 0;
fail:
    strata_stats_free(st);
    return rc;
}

void strata_stats_trim(struct strata_stats *st)
{
    st->n_samples = st->n_complete;
}

static bool same_list(const int32_t *a, int64_t na, const int32_t *b, int64_t nb)
{
    return na == nb && (na == 0 || !memcmp(a, b, (size_t)na * sizeof *a));
}

static void add_into(double *dst, const double *src, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

int strata_stats_merge(struct strata_stats *dst, const struct strata_stats *src)
{
    const char *what = NULL;
    if (dst->seq_len != src->seq_len) what = "the sequence length (/tokens)";
    else if (dst->dim != src->dim || dst->n_layer != src->n_layer) what = "the model's width or block count";
    else if (!same_list(dst->layers, dst->n_layers, src->layers, src->n_layers)) what = "/layers";
    else if (!same_list(dst->positions, dst->n_pos, src->positions, src->n_pos)) what = "/positions";
    else if (dst->has_posvec != src->has_posvec) what = "/posvec (present in one file only)";
    else if (!same_list(dst->bi_metric, dst->n_bi, src->bi_metric, src->n_bi) ||
             !same_list(dst->bi_span, dst->n_bi, src->bi_span, src->n_bi))
        what = "/blockinf/metric or /blockinf/span";
    else if (!same_list(dst->attn_layers, dst->n_attn_layers, src->attn_layers, src->n_attn_layers) ||
             !same_list(dst->heads, dst->n_heads, src->heads, src->n_heads) ||
             !same_list(dst->sink_k, dst->n_sink, src->sink_k, src->n_sink))
        what = "/attn/layers, /attn/heads or /attn/sink_k";
    if (what) return strata_fail(STRATA_E_SHAPE, "statistics files differ in %s", what);
    const int64_t na = dst->n_complete, nb = src->n_complete, N = na + nb, T = dst->seq_len;
    const int64_t KL = dst->n_bi * dst->n_layer;
    /* rows in stream order (windows increase within each file) */
    int32_t *tok = xcalloc((size_t)(N * T) + 1, sizeof *tok);
    int64_t *doc = xcalloc((size_t)N + 1, sizeof *doc), *win = xcalloc((size_t)N + 1, sizeof *win);
    int64_t *draw = xcalloc((size_t)N + 1, sizeof *draw);
    double *bm = KL ? xcalloc((size_t)(N * KL), sizeof *bm) : NULL;
    double *bl = KL ? xcalloc((size_t)(N * KL), sizeof *bl) : NULL;
    int64_t i = 0, j = 0;
    for (int64_t r = 0; r < N; r++) {
        const bool from_a = j >= nb || (i < na && dst->window[i] < src->window[j]);
        if (i < na && j < nb && dst->window[i] == src->window[j]) {
            int rc = strata_fail(STRATA_E_DATA, "statistics files overlap: draw %lld (window %lld) "
                                 "is in both; merge only disjoint sample ranges (--sample-offset)",
                                 (long long)src->draw[j], (long long)src->window[j]);
            free(tok), free(doc), free(win), free(draw), free(bm), free(bl);
            return rc;
        }
        const struct strata_stats *s = from_a ? dst : src;
        const int64_t k = from_a ? i++ : j++;
        memcpy(tok + r * T, s->tokens + k * T, (size_t)T * sizeof *tok);
        doc[r] = s->doc[k], win[r] = s->window[k], draw[r] = s->draw[k];
        if (KL) {
            memcpy(bm + r * KL, s->bi_mean + k * KL, (size_t)KL * sizeof *bm);
            memcpy(bl + r * KL, s->bi_last + k * KL, (size_t)KL * sizeof *bl);
        }
    }
    /* same corpus, seed and T (the caller checks the attributes): windows and
     * draws correspond one to one, so distinct windows are distinct draws */
    free(dst->tokens), free(dst->doc), free(dst->window), free(dst->draw);
    free(dst->bi_mean), free(dst->bi_last);
    dst->tokens = tok, dst->doc = doc, dst->window = win, dst->draw = draw;
    dst->bi_mean = bm, dst->bi_last = bl;
    dst->n_samples = dst->n_complete = N;
    if (dst->has_posvec) {
        int rc = strata_pvsum_merge(&dst->pv, &src->pv);
        if (rc) return rc;
        dst->pv.n = N;
    }
    if (dst->n_attn_layers > 0) {
        const size_t n = n_attn(dst);
        add_into(dst->prob, src->prob, n);
        add_into(dst->logit, src->logit, n);
        add_into(dst->count, src->count, n);
        add_into(dst->entropy, src->entropy, n);
        add_into(dst->rows, src->rows, n);
        add_into(dst->sink, src->sink, n * (size_t)dst->n_sink);
    }
    return 0;
}

/* Root attributes statistics files read together must share. */
static const char *const shared_attrs[] = {"model_config", "corpus_path", "corpus_format",
                                           "separator", "seed", "seq_len", "interventions"};

int strata_stats_read_many(struct strata_stats *st, struct strata_h5 **first,
                           const char *const *paths, int n, bool *complete)
{
    memset(st, 0, sizeof *st);
    *first = NULL;
    *complete = true;
    if (n < 1) return strata_fail(STRATA_E_ARG, "statistics: no file given");
    int rc = 0;
    struct strata_h5 *h = NULL;
    for (int i = 0; i < n; i++) {
        struct strata_stats one;
        int64_t done = 0;
        if ((rc = strata_h5_open(&h, paths[i]))) goto fail;
        if ((rc = strata_stats_load(&one, h))) goto fail;
        if ((rc = strata_h5_get_attr_i64(h, "/", "complete", &done))) {
            strata_stats_free(&one);
            goto fail;
        }
        *complete = *complete && done == 1;
        strata_stats_trim(&one);
        if (i == 0) {
            *st = one;
            *first = h;
            h = NULL;
            continue;
        }
        for (size_t k = 0; k < sizeof shared_attrs / sizeof *shared_attrs && !rc; k++) {
            char *a = NULL, *b = NULL;
            const int ra = strata_h5_get_attr_str(*first, "/", shared_attrs[k], &a);
            const int rb = strata_h5_get_attr_str(h, "/", shared_attrs[k], &b);
            if (ra != rb || (ra == 0 && strcmp(a, b)))
                rc = strata_fail(STRATA_E_SHAPE, "%s and %s differ in attribute `%s`: give "
                                 "statistics of one model, corpus and setting", paths[0], paths[i],
                                 shared_attrs[k]);
            free(a), free(b);
        }
        if (!rc && (rc = strata_stats_merge(st, &one))) {
            char why[512];
            snprintf(why, sizeof why, "%s", strata_last_error());
            rc = strata_fail(rc, "%s and %s: %s", paths[0], paths[i], why);
        }
        strata_stats_free(&one);
        strata_h5_free(h);
        h = NULL;
        if (rc) goto fail;
    }
    return 0;
fail:
    strata_h5_free(h);
    strata_h5_free(*first);
    *first = NULL;
    strata_stats_free(st);
    return rc;
}
