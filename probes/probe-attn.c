/* strata-probe-attn — attention of chosen layers and heads over fixed-length
 * samples of a corpus, written to HDF5 (docs/FORMAT.md).
 *
 * What for: P1 (../shared/docs/PAPERS.md) looks at attention sinks (the mass
 * on the first tokens) and at attention against key position; P2 looks at
 * the mean attention logit and probability against relative distance
 * m = i - j. Short inputs can keep the full (T, T) probability and logit
 * maps (--maps); for long inputs this program never holds a (T, T) map: it
 * reduces the attention tiles (query rows row0.., keys col0..) as the forward
 * pass hands them out, into per-(layer, head) sums in double:
 *   - sum of p[i, i-m] and of logit[i, i-m] over visible pairs, by m;
 *   - mass on the first k keys, by query position i, for each --sink-k k;
 *   - entropy of row i, by query position.
 * Entropy without a log per element: softmax gives p_j = exp(s_j - lse), so
 * lse = s_max - log(p_max) (one log per row) and H = lse - sum_j p_j s_j;
 * that is why the logits tile of each (layer, head, rows) is copied and the
 * reduction runs when its probabilities arrive (they come in that order).
 *
 * A sample is reduced into its own sums first and added to the run's sums
 * only when its forward pass completes, so Ctrl-C (which stops the pass at
 * the next tile) leaves exact reductions over the completed samples.
 *
 * Dimension legend: N samples, L blocks (Ls selected), H query heads (Hs
 * selected), T tokens, B query rows per attention tile, K sink widths.
 */
#include "cli/cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

enum { OPT_LAYERS = CLI_KEY_PROG, OPT_HEADS, OPT_SINK_K, OPT_MAPS, OPT_MAX_MAP_BYTES };

static const struct cli_opt opts[] = {
    {"layers", CLI_ARG, OPT_LAYERS, "LIST", "blocks (0-based), e.g. 0,2,5-7 (default all)"},
    {"heads", CLI_ARG, OPT_HEADS, "LIST", "query heads (0-based), e.g. 0-3,8 (default all)"},
    {"sink-k", CLI_ARG, OPT_SINK_K, "LIST",
     "widths k of the attention sink: mass on keys 0..k-1 (default 1,4)"},
    {"maps", CLI_NOARG, OPT_MAPS, NULL, "also write the full maps /maps/probs and /maps/logits"},
    {"max-map-bytes", CLI_ARG, OPT_MAX_MAP_BYTES, "B",
     "refuse --maps when the two map datasets together would exceed B bytes; "
     "suffixes K, M, G (default 2G)"},
    {0}};

static const struct cli_spec spec = {
    .prog = "strata-probe-attn",
    .synopsis = "--model M [--tokenizer TOK] --corpus FILE -o OUT.h5 [options]",
    .about = "Attention of chosen blocks and heads over N samples of T tokens: reductions\n"
             "against relative distance and query position (always), full probability and\n"
             "logit maps (N, Ls, Hs, T, T) with --maps. Schema: docs/FORMAT.md.\n",
    .groups = CLI_G_MODEL | CLI_G_INTERV | CLI_G_SAMPLING | CLI_G_OUTPUT,
    .opts = opts,
    .output_help = "output; written as OUT.h5.partial and renamed when complete",
    .epilog = "Sampling as strata-probe-hidden: documents are tokenized with BOS first and\n"
              "concatenated; the stream is cut into non-overlapping windows of T tokens that\n"
              "each start at a document start; N windows are chosen by a seeded shuffle.\n"
              "Masked logits (right of the diagonal, left of a sliding window) are -inf.\n"
              "Ctrl-C stops within the current sample and leaves OUT.h5.partial with the\n"
              "reductions (and maps) of the completed samples.\n",
};

struct attn_opts {
    const char *layers_s, *heads_s, *sink_s;
    bool maps;
    double max_map_bytes;
};

static int attn_option(void *user, int key, const char *arg, struct cli_error *e)
{
    struct attn_opts *o = user;
    switch (key) {
    case OPT_LAYERS:
        o->layers_s = arg;
        return 0;
    case OPT_HEADS:
        o->heads_s = arg;
        return 0;
    case OPT_SINK_K:
        o->sink_s = arg;
        return 0;
    case OPT_MAPS:
        o->maps = true;
        return 0;
    case OPT_MAX_MAP_BYTES:
        return cli_parse_bytes(&o->max_map_bytes, "--max-map-bytes", arg, e);
    }
    return cli_fail(e, NULL, "option key %d has no handler", key);
}

/* where (n) for a sorted list of distinct ids below n: the position of
 * each id in the list, or -1. */
static int32_t *positions_in(const int32_t *list, int64_t m, int64_t n)
{
    int32_t *where = cli_calloc((size_t)n, sizeof *where, "an index list");
    for (int64_t i = 0; i < n; i++) where[i] = -1;
    for (int64_t k = 0; k < m; k++) where[list[k]] = (int32_t)k;
    return where;
}

/* ------------------------------------------------------------ reduction */

/* The reductions are lib/attnred.c's (strata_attnred_*); this observer
 * wraps its observer with the stop flag and the --maps copies. */
struct attn_probe {
    int64_t T, B, Ls, Hs, K;
    const int32_t *lsel;   /* (L) position in the selected layers, or -1 */
    const int32_t *hsel;   /* (H) position in the selected heads, or -1 */
    int32_t n_layer, n_head;
    struct strata_attnred *red;
    struct strata_observer red_obs;
    float *map_p;          /* (Ls, Hs, T, T) this sample's probabilities, or NULL */
    float *map_s;          /* (Ls, Hs, T, T) this sample's logits, or NULL */
    char err[256];         /* why observe() stopped the pass */
};

static bool attn_wants(void *user, int32_t layer, enum strata_site site)
{
    const struct attn_probe *a = user;
    return a->red_obs.wants(a->red_obs.user, layer, site);
}

static int attn_observe(void *user, const struct strata_view *v)
{
    struct attn_probe *a = user;
    if (cli_stop_requested) {
        snprintf(a->err, sizeof a->err, "interrupted");
        return 1;
    }
    if (a->red_obs.observe(a->red_obs.user, v)) {
        snprintf(a->err, sizeof a->err, "%s", strata_attnred_error(a->red));
        return 1;
    }
    if (a->map_p) {
        const int32_t li = a->lsel[v->layer], hi = a->hsel[v->head];
        if (li < 0 || hi < 0) return 0;
        const int64_t T = a->T, lh = (int64_t)li * a->Hs + hi;
        float *dst = v->site == STRATA_SITE_ATTN_PROBS ? a->map_p : a->map_s;
        for (int64_t i = 0; i < v->n_rows; i++)
            memcpy(dst + (lh * T + v->row0 + i) * T + v->col0, v->data + i * v->ld,
                   (size_t)v->n_cols * sizeof(float));
    }
    return 0;
}

/* ------------------------------------------------------------ output */

static void h5_check(int rc, struct strata_h5 *f, const char *partial)
{
    if (rc == 0) return;
    strata_h5_free(f);
    remove(partial);
    cli_check(rc, "check free space and permissions of the output directory");
}

/* The selections, the tokens and the netCDF-4 dimensions (docs/FORMAT.md,
 * "Dimensions"): coordinates sample (the draws), block, head, distance (in
 * /dist) and k (in /sink); token, query and key without one. T-long axes of
 * different meaning are different dimensions, so xarray never merges them. */
static int write_axes(struct strata_h5 *f, const struct attn_probe *a, const int32_t *layers,
                      const int32_t *heads, const int32_t *sink_k,
                      const struct strata_samples *smp)
{
    const int64_t T = a->T, N = smp->n, s_t[2] = {N, T};
    static const char *const d_block[1] = {"block"}, *const d_head[1] = {"head"},
                             *const d_tok[2] = {"sample", "token"};
    int32_t *m = cli_alloc((size_t)T * sizeof *m, "the distances"); /* (T) */
    for (int64_t i = 0; i < T; i++) m[i] = (int32_t)i;
    int rc = strata_h5_write_coord(f, "sample", STRATA_DT_I64, N, smp->draw,
                                   "draw of the sample in the seeded shuffle", NULL);
    if (!rc) rc = strata_h5_write_coord(f, "block", STRATA_DT_I32, a->Ls, layers,
                                        "block (0-based; as /layers)", NULL);
    if (!rc) rc = strata_h5_write_coord(f, "head", STRATA_DT_I32, a->Hs, heads,
                                        "query head (0-based; as /heads)", NULL);
    if (!rc) rc = strata_h5_write_coord(f, "dist/distance", STRATA_DT_I32, T, m,
                                        "relative distance m = i - j of query i and key j",
                                        "tokens");
    if (!rc) rc = strata_h5_def_dim(f, "token", T, false);
    if (!rc) rc = strata_h5_def_dim(f, "query", T, false);
    if (!rc) rc = strata_h5_def_dim(f, "key", T, false);
    if (!rc) rc = strata_h5_write_coord(f, "sink/k", STRATA_DT_I32, a->K, sink_k,
                                        "sink width k: keys 0 .. k-1", "tokens");
    if (!rc) rc = strata_h5_write(f, "layers", STRATA_DT_I32, 1, &a->Ls, layers);
    if (!rc) rc = strata_h5_set_dims(f, "layers", d_block);
    if (!rc) rc = strata_h5_write(f, "heads", STRATA_DT_I32, 1, &a->Hs, heads);
    if (!rc) rc = strata_h5_set_dims(f, "heads", d_head);
    if (!rc) rc = strata_h5_write(f, "tokens", STRATA_DT_I32, 2, s_t, smp->tokens);
    if (!rc) rc = strata_h5_set_dims(f, "tokens", d_tok);
    free(m);
    return rc;
}

/* The run's sums in one buffer, per selected (layer, head) pair lh: by
 * distance prob, logit, count (T each), by query position entropy, rows
 * (T each), sink mass (K, T): LH (5 + K) T doubles, so the ranks' sums
 * add up with one reduction. Caller free()s. */
static double *gather_sums(const struct attn_probe *a)
{
    const int64_t T = a->T, LH = a->Ls * a->Hs, K = a->K, per = (5 + K) * T;
    double *sums = cli_calloc((size_t)(LH * per), sizeof(double), "the reductions");
    for (int64_t lh = 0; lh < LH; lh++) {
        const int64_t li = lh / a->Hs, hi = lh % a->Hs;
        double *u = sums + lh * per;
        cli_check(strata_attnred_dist(a->red, li, hi, 0, u, u + T, u + 2 * T), NULL);
        cli_check(strata_attnred_query(a->red, li, hi, u + 3 * T, u + 4 * T, u + 5 * T), NULL);
    }
    return sums;
}

/* The means of the sums (gather_sums, summed over the ranks) over the
 * completed samples, in the file's order; NaN where nothing was summed (a
 * distance beyond a sliding window, a skipped block). */
static int write_reductions(struct strata_h5 *f, const struct attn_probe *a, const double *sums)
{
    const int64_t T = a->T, LH = a->Ls * a->Hs, K = a->K, per = (5 + K) * T;
    double *mp = cli_alloc((size_t)(LH * T) * sizeof(double), "the reductions");
    double *ms = cli_alloc((size_t)(LH * T) * sizeof(double), "the reductions");
    double *mn = cli_alloc((size_t)(LH * T) * sizeof(double), "the reductions");
    double *me = cli_alloc((size_t)(LH * T) * sizeof(double), "the reductions");
    double *mq = cli_alloc((size_t)(LH * T) * sizeof(double), "the reductions");
    double *mk = cli_alloc((size_t)(LH * K * T) * sizeof(double), "the reductions");
    for (int64_t lh = 0; lh < LH; lh++) {
        const double *u = sums + lh * per;
        const double *P = u, *S = u + T, *n = u + 2 * T, *E = u + 3 * T, *q = u + 4 * T,
                     *SK = u + 5 * T;
        for (int64_t m = 0; m < T; m++) {
            mp[lh * T + m] = n[m] > 0 ? P[m] / n[m] : (double)NAN;
            ms[lh * T + m] = n[m] > 0 ? S[m] / n[m] : (double)NAN;
            mn[lh * T + m] = n[m];
        }
        for (int64_t t = 0; t < T; t++) {
            me[lh * T + t] = q[t] > 0 ? E[t] / q[t] : (double)NAN;
            mq[lh * T + t] = q[t];
        }
        for (int64_t k = 0; k < K; k++)
            for (int64_t t = 0; t < T; t++)
                mk[(lh * K + k) * T + t] = q[t] > 0 ? SK[k * T + t] / q[t] : (double)NAN;
    }
    const int64_t s3[3] = {a->Ls, a->Hs, T}, s4[4] = {a->Ls, a->Hs, K, T};
    static const char *const by_dist[3] = {"block", "head", "distance"};
    static const char *const by_query[3] = {"block", "head", "query"};
    static const char *const by_sink[4] = {"block", "head", "k", "query"};
    const struct {
        const char *name, *long_name, *units;
        const double *data;
        const char *const *dims;
    } out[6] = {
        {"dist/prob_mean", "mean attention probability p[i, i-m] by distance m", NULL, mp, by_dist},
        {"dist/logit_mean", "mean attention logit s[i, i-m] by distance m", NULL, ms, by_dist},
        {"dist/count", "(sample, query) pairs in each mean", NULL, mn, by_dist},
        {"entropy", "mean entropy of query row i", "nats", me, by_query},
        {"sink/mass", "mean attention mass on keys 0 .. k-1 of query i", NULL, mk, by_sink},
        {"query_count", "samples averaged at query position i", NULL, mq, by_query},
    };
    int rc = 0;
    for (int i = 0; i < 6 && !rc; i++) {
        rc = strata_h5_write(f, out[i].name, STRATA_DT_F64, i == 4 ? 4 : 3, i == 4 ? s4 : s3,
                             out[i].data);
        if (!rc) rc = strata_h5_set_dims(f, out[i].name, out[i].dims);
        if (!rc) rc = strata_h5_set_attr_str(f, out[i].name, "long_name", out[i].long_name);
        if (!rc && out[i].units) rc = strata_h5_set_attr_str(f, out[i].name, "units", out[i].units);
    }
    free(mp), free(ms), free(mn), free(me), free(mq), free(mk);
    return rc;
}

int main(int argc, char **argv)
{
    struct cli_args a;
    cli_args_init(&a);
    struct attn_opts o = {.layers_s = "all", .heads_s = "all", .sink_s = "1,4",
                          .max_map_bytes = 2.0 * 1073741824.0};
    cli_parse(&a, &spec, argc, argv, attn_option, &o);
    cli_require(&a, CLI_REQ_MODEL | CLI_REQ_CORPUS | CLI_REQ_OUTPUT);
    const char *out_path = a.out_path;
    const bool maps = o.maps;

    cli_model_load(&a, true);
    const struct strata_config *cfg = &a.model.cfg;
    const int64_t T = cli_sampling_seq_len(&a), L = cfg->n_layer, H = cfg->n_head;
    const int64_t n_samples = a.sampling.n_samples;

    struct attn_probe ap = {.T = T, .n_layer = (int32_t)L, .n_head = (int32_t)H};
    int32_t *layers = cli_index_set("--layers", o.layers_s, L, "block", false, &ap.Ls);
    int32_t *heads = cli_index_set("--heads", o.heads_s, H, "head", false, &ap.Hs);
    int32_t *lsel = positions_in(layers, ap.Ls, L), *hsel = positions_in(heads, ap.Hs, H);
    ap.lsel = lsel;
    ap.hsel = hsel;
    /* --sink-k: k is a count of keys, 1..T */
    int32_t *sink_k = cli_index_set("--sink-k", o.sink_s, T + 1, "width", false, &ap.K);
    if (sink_k[0] == 0) cli_usage_die(NULL, "--sink-k '%s': widths must be at least 1", o.sink_s);

    const double map_bytes = 2.0 * (double)n_samples * (double)ap.Ls * (double)ap.Hs *
                             (double)T * (double)T * 4.0;
    if (maps && map_bytes > o.max_map_bytes)
        cli_usage_die("drop --maps and use the reductions (/dist, /sink, /entropy), which are "
                      "computed without T x T maps; or choose fewer --layers/--heads/--samples, a "
                      "shorter --seq-len, or raise --max-map-bytes",
                      "--maps would write %.3g bytes (%lld samples x %lld layers x %lld heads x "
                      "%lld^2 positions x 4 bytes x 2 maps), more than --max-map-bytes %.3g",
                      map_bytes, (long long)n_samples, (long long)ap.Ls, (long long)ap.Hs,
                      (long long)T, o.max_map_bytes);

    struct strata_corpus *corpus = cli_sampling_open(&a);
    struct strata_samples samples = {0};
    cli_sampling_build(&a, corpus, &samples);

    struct strata_ctx_params cp = cli_ctx_params(&a, T);
    struct strata_ctx *ctx = cli_ctx_create(&a, &cp);
    ap.B = cp.attn_block > 0 ? cp.attn_block : 64;
    const int64_t LH = ap.Ls * ap.Hs;
    struct strata_attnred_params rp = strata_attnred_default_params();
    rp.seq_len = T, rp.attn_block = ap.B, rp.n_layer = (int32_t)L, rp.n_head = (int32_t)H;
    rp.layers = layers, rp.n_layers = ap.Ls, rp.heads = heads, rp.n_heads = ap.Hs;
    rp.sink_k = sink_k, rp.n_sink = ap.K;
    cli_check(strata_attnred_create(&ap.red, &rp), "choose fewer --layers/--heads or a shorter --seq-len");
    ap.red_obs = strata_attnred_observer(ap.red);
    const int64_t map_n = LH * T * T; /* floats of one sample's map */
    if (maps) {
        ap.map_p = cli_calloc((size_t)map_n, sizeof(float), "one sample's maps");
        ap.map_s = cli_calloc((size_t)map_n, sizeof(float), "one sample's maps");
    }
    struct strata_observer obs = {.wants = attn_wants, .observe = attn_observe, .user = &ap};
    cli_check(strata_ctx_add_observer(ctx, &obs), NULL);

    /* Under mpirun -n R the samples are dealt out in rounds (sample k R + r
     * to rank r); a round counts only when every rank completed its sample;
     * --maps rows are gathered to rank 0 each round, the sums once at the
     * end; rank 0 alone writes. One rank: R = 1, the plain loop. */
    const int R = cli_nranks();
    const bool writer = cli_rank() == 0;
    float *maps_all = NULL; /* rank 0: (R, 2, Ls, Hs, T, T) a round's maps */
    float *map_both = NULL; /* (2, Ls, Hs, T, T) this rank's probs then logits */
    if (maps && R > 1) {
        map_both = cli_calloc((size_t)(2 * map_n), sizeof(float), "one sample's maps");
        if (writer) maps_all = cli_calloc((size_t)R, (size_t)(2 * map_n) * sizeof(float), "a round's maps");
    }

    /* From here on Ctrl-C leaves a .partial that says what it holds. */
    cli_catch_stop();
    struct strata_h5 *f = NULL;
    char *partial = cli_partial_path(out_path);
    int rc = 0;
    if (writer) {
        cli_check(strata_h5_create(&f, out_path), "check that the output directory exists and is writable");
        struct cli_prov prov;
        cli_prov_init(&prov, &a, &samples);
        for (int i = 0; i < prov.n && !rc; i++)
            if (strcmp(prov.name[i], "interventions") != 0)
                rc = strata_h5_set_attr_str(f, "/", prov.name[i], prov.value[i]);
        if (!rc) rc = strata_h5_set_attr_str(f, "/", "program", "strata-probe-attn");
        if (!rc) rc = strata_h5_set_attr_str(f, "/", "logits_masked", "-inf");
        if (!rc) rc = strata_h5_set_attr_str(f, "/", "interventions", cli_prov_get(&prov, "interventions"));
        cli_prov_free(&prov);
        if (!rc) rc = strata_h5_set_attr_i64(f, "/", "n_samples", n_samples);
        if (!rc) rc = strata_h5_set_attr_i64(f, "/", "seq_len", T);
        if (!rc) rc = strata_h5_set_attr_i64(f, "/", "attn_block", ap.B);
        if (!rc) rc = strata_h5_set_attr_i64(f, "/", "maps", maps);
        if (!rc) rc = write_axes(f, &ap, layers, heads, sink_k, &samples);
        if (maps) {
            static const char *const d_map[5] = {"sample", "block", "head", "query", "key"};
            const struct strata_h5_dset_opts om = {.dims = d_map};
            const int64_t s_m[5] = {n_samples, ap.Ls, ap.Hs, T, T};
            if (!rc) rc = strata_h5_create_dataset_opts(f, "maps/probs", STRATA_DT_F32, 5, s_m, &om);
            if (!rc) rc = strata_h5_create_dataset_opts(f, "maps/logits", STRATA_DT_F32, 5, s_m, &om);
            if (!rc) rc = strata_h5_set_attr_str(f, "maps/probs", "long_name",
                                                 "attention probability p[i, j]");
            if (!rc) rc = strata_h5_set_attr_str(f, "maps/logits", "long_name",
                                                 "attention logit s[i, j] (-inf where masked)");
        }
        h5_check(rc, f, partial);
    }

    struct cli_loop loop;
    cli_rounds_begin(&loop, CLI_SPLIT_CYCLIC, n_samples, T, 0);
    int64_t mine, s = 0; /* s: map rows 0 .. s-1 written (rank 0) */
    while (cli_rounds_next(&loop, &mine)) {
        bool done = true; /* a rank without a sample this round has nothing to drop */
        if (mine >= 0) {
            const int32_t *toks = samples.tokens + mine * T; /* (T) */
            if (maps) { /* keys a tile does not reach are masked: p 0, logit -inf */
                memset(ap.map_p, 0, (size_t)map_n * sizeof(float));
                for (int64_t i = 0; i < map_n; i++) ap.map_s[i] = -INFINITY;
            }
            ap.err[0] = '\0';
            rc = strata_forward(ctx, NULL, toks, T, STRATA_LOGITS_NONE);
            if (rc && !cli_stop_requested) {
                if (writer) {
                    strata_h5_free(f);
                    remove(partial);
                }
                if (rc == STRATA_E_OBSERVER && ap.err[0]) cli_die(NULL, "attention observer: %s", ap.err);
                cli_check(rc, NULL);
            }
            done = rc == 0; /* else stopped by a signal: the sample is dropped */
            rc = 0;
        }
        if (!cli_rounds_agree(&loop, done)) { /* some rank was stopped mid-sample */
            if (mine >= 0) strata_attnred_discard(ap.red);
            break;
        }
        if (mine >= 0 && strata_attnred_commit(ap.red) != 0) {
            if (writer) {
                strata_h5_free(f);
                remove(partial);
            }
            cli_die(NULL, "attention observer: %s", strata_attnred_error(ap.red));
        }
        if (maps) {
            int64_t n_rows = n_samples - s < R ? n_samples - s : R; /* rows of this round */
            const float *all = ap.map_p;
            if (R > 1) {
                memcpy(map_both, ap.map_p, (size_t)map_n * sizeof(float));
                memcpy(map_both + map_n, ap.map_s, (size_t)map_n * sizeof(float));
                cli_gather(maps_all, map_both, (size_t)(2 * map_n) * sizeof(float));
                all = maps_all;
            }
            for (int64_t r = 0; writer && r < n_rows && !rc; r++, s++) {
                const float *p = R > 1 ? all + r * 2 * map_n : ap.map_p;
                const float *l = R > 1 ? p + map_n : ap.map_s;
                rc = strata_h5_write_rows(f, "maps/probs", s, 1, p);
                if (!rc) rc = strata_h5_write_rows(f, "maps/logits", s, 1, l);
            }
            h5_check(rc, writer ? f : NULL, partial);
        }
    }
    s = loop.done;
    /* Every rank's sums to rank 0 (the samples of the agreed rounds). */
    double *sums = gather_sums(&ap);
    cli_reduce_sum_f64(sums, ap.Ls * ap.Hs * (5 + ap.K) * T);
    int status = 0;
    if (!writer) {
        status = s < n_samples ? CLI_EXIT_INTERRUPTED : 0;
    } else {
        rc = write_reductions(f, &ap, sums);
        if (!rc) rc = strata_h5_set_attr_i64(f, "/", "n_complete", s);
        if (!rc && s < n_samples) {
            rc = strata_h5_set_attr_i64(f, "/", "complete", 0);
            cli_rounds_end(&loop);
            fprintf(stderr,
                    "%s: interrupted after %lld of %lld samples; their reductions are in %s\n",
                    cli_prog, (long long)s, (long long)n_samples, partial);
            strata_h5_free(f);
            status = CLI_EXIT_INTERRUPTED;
        } else {
            if (!rc) rc = strata_h5_set_attr_i64(f, "/", "complete", 1);
            if (!rc) rc = strata_h5_finish(f);
            strata_h5_free(f); /* finish closes and renames; the handle is still ours */
            f = NULL;
            if (rc) {
                remove(partial);
                cli_check(rc, "check free space and permissions of the output directory");
            }
            cli_rounds_end(&loop);
            cli_info("wrote %s (%lld samples x %lld layers x %lld heads x %lld tokens%s)", out_path,
                     (long long)n_samples, (long long)ap.Ls, (long long)ap.Hs, (long long)T,
                     maps ? ", with maps" : "");
        }
    }
    free(sums);
    free(maps_all);
    free(map_both);
    free(partial);
    strata_attnred_free(ap.red);
    free(ap.map_p);
    free(ap.map_s);
    free(lsel);
    free(hsel);
    free(layers);
    free(heads);
    free(sink_k);
    strata_ctx_free(ctx);
    strata_samples_free(&samples);
    strata_corpus_free(corpus);
    cli_args_free(&a);
    return status;
}
