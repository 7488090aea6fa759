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

/* The per-(layer, head) sums, one block of doubles; the same layout for one
 * sample's sums and the run's. With LH = Ls * Hs and lh = li * Hs + hi:
 *   dist_p   (Ls, Hs, T) sum of p over visible pairs at distance m, stored at
 *                        index T-1-m (so a row of keys adds to a contiguous,
 *                        increasing range); flipped when written
 *   dist_s   (Ls, Hs, T) the same for logits
 *   dist_n   (Ls, Hs, T) number of those pairs, as a difference array over
 *                        the same index (its prefix sum is the count)
 *   ent      (Ls, Hs, T) sum of the entropy of row i, by query position i
 *   qn       (Ls, Hs, T) number of rows summed at position i
 *   sink     (Ls, Hs, K, T) sum of the mass on keys < k, by query position */
enum { A_DIST_P, A_DIST_S, A_DIST_N, A_ENT, A_QN, A_SINK };

struct attn_probe {
    int64_t T, B, Ls, Hs, K;
    const int32_t *lsel;   /* (L) position in the selected layers, or -1 */
    const int32_t *hsel;   /* (H) position in the selected heads, or -1 */
    int32_t n_layer, n_head;
    const int32_t *sink_k; /* (K) */
    double *acc;           /* (sample sums, layout above) */
    int64_t n_acc;         /* doubles in acc */
    float *lg;             /* (B, T) logits tile waiting for its probabilities */
    bool pending;          /* lg holds a tile */
    int64_t pl, ph, prow0, pcol0, prows, pcols; /* identity of that tile */
    float *map_p;          /* (Ls, Hs, T, T) this sample's probabilities, or NULL */
    float *map_s;          /* (Ls, Hs, T, T) this sample's logits, or NULL */
    char err[256];         /* why observe() stopped the pass */
};

static double *acc_at(const struct attn_probe *a, double *base, int which, int64_t lh)
{
    const int64_t LHT = a->Ls * a->Hs * a->T;
    if (which == A_SINK) return base + A_SINK * LHT + lh * a->K * a->T;
    return base + which * LHT + lh * a->T;
}

static bool attn_wants(void *user, int32_t layer, enum strata_site site)
{
    const struct attn_probe *a = user;
    return (site == STRATA_SITE_ATTN_LOGITS || site == STRATA_SITE_ATTN_PROBS) && layer >= 0 &&
           layer < a->n_layer && a->lsel[layer] >= 0;
}

/* One row of visible keys (n): P[j] += p[j] and S[j] += s[j] in double;
 * *ps = sum_j p[j] s[j] (double), *smax = max s, *pmax = max p. The row
 * loop of every tile, so AVX2 where the build has it (GCC at -O2 vectorizes
 * none of it: double accumulation of floats, reductions without
 * -ffast-math). */
static void reduce_row(double *P, double *S, const float *p, const float *s, int64_t n,
                       double *ps, float *smax, float *pmax)
{
    int64_t j = 0;
    double dot = 0.0;
    float sm = -INFINITY, pm = 0.0f;
#if defined(__AVX2__) && defined(__FMA__)
    __m256d vdot = _mm256_setzero_pd();
    __m256 vsm = _mm256_set1_ps(-INFINITY), vpm = _mm256_setzero_ps();
    for (; j + 8 <= n; j += 8) {
        const __m256 p8 = _mm256_loadu_ps(p + j), s8 = _mm256_loadu_ps(s + j);
        vsm = _mm256_max_ps(vsm, s8);
        vpm = _mm256_max_ps(vpm, p8);
        const __m256d plo = _mm256_cvtps_pd(_mm256_castps256_ps128(p8));
        const __m256d phi = _mm256_cvtps_pd(_mm256_extractf128_ps(p8, 1));
        const __m256d slo = _mm256_cvtps_pd(_mm256_castps256_ps128(s8));
        const __m256d shi = _mm256_cvtps_pd(_mm256_extractf128_ps(s8, 1));
        _mm256_storeu_pd(P + j, _mm256_add_pd(_mm256_loadu_pd(P + j), plo));
        _mm256_storeu_pd(P + j + 4, _mm256_add_pd(_mm256_loadu_pd(P + j + 4), phi));
        _mm256_storeu_pd(S + j, _mm256_add_pd(_mm256_loadu_pd(S + j), slo));
        _mm256_storeu_pd(S + j + 4, _mm256_add_pd(_mm256_loadu_pd(S + j + 4), shi));
        vdot = _mm256_fmadd_pd(plo, slo, vdot);
        vdot = _mm256_fmadd_pd(phi, shi, vdot);
    }
    double d4[4];
    float f8[8], g8[8];
    _mm256_storeu_pd(d4, vdot);
    _mm256_storeu_ps(f8, vsm);
    _mm256_storeu_ps(g8, vpm);
    dot = (d4[0] + d4[1]) + (d4[2] + d4[3]);
    for (int k = 0; k < 8; k++) {
        sm = f8[k] > sm ? f8[k] : sm;
        pm = g8[k] > pm ? g8[k] : pm;
    }
#endif
    for (; j < n; j++) {
        P[j] += (double)p[j];
        S[j] += (double)s[j];
        dot += (double)p[j] * (double)s[j];
        sm = s[j] > sm ? s[j] : sm;
        pm = p[j] > pm ? p[j] : pm;
    }
    *ps = dot;
    *smax = sm;
    *pmax = pm;
}

/* Reduce one probability tile p (rows, ld) with its logits s (rows, cols):
 * O(tile), one log per row; pair counts go into a difference array (+1 at
 * the first distance index of the row, -1 after its last), O(1) per row. */
static void reduce_tile(struct attn_probe *a, int64_t lh, const struct strata_view *v,
                        const float *s)
{
    const int64_t T = a->T, nc = v->n_cols, col0 = v->col0;
    double *dp = acc_at(a, a->acc, A_DIST_P, lh), *ds = acc_at(a, a->acc, A_DIST_S, lh);
    double *dn = acc_at(a, a->acc, A_DIST_N, lh), *ent = acc_at(a, a->acc, A_ENT, lh);
    double *qn = acc_at(a, a->acc, A_QN, lh), *sink = acc_at(a, a->acc, A_SINK, lh);
    for (int64_t i = 0; i < v->n_rows; i++) {
        const int64_t qp = v->row0 + i;
        const float *pr = v->data + i * v->ld; /* (nc) */
        const float *sr = s + i * nc;          /* (nc) */
        int64_t j1 = qp + 1 - col0;            /* visible keys: j0 <= j < j1 */
        if (j1 > nc) j1 = nc;
        int64_t j0 = 0;
        while (j0 < j1 && sr[j0] == -INFINITY) j0++;
        if (j0 >= j1) continue;
        /* key col0+j is at distance m = qp-col0-j, stored at T-1-m = off+j */
        const int64_t off = T - 1 - qp + col0;
        double ps;
        float smax, pmax;
        reduce_row(dp + off + j0, ds + off + j0, pr + j0, sr + j0, j1 - j0, &ps, &smax, &pmax);
        dn[off + j0] += 1.0;
        if (off + j1 < T) dn[off + j1] -= 1.0;
        ent[qp] += (double)smax - log((double)pmax) - ps;
        qn[qp] += 1.0;
        for (int64_t k = 0; k < a->K; k++) {
            int64_t je = a->sink_k[k] - col0; /* keys < k are j < je */
            if (je > j1) je = j1;
            double m = 0.0;
            for (int64_t j = j0; j < je; j++) m += (double)pr[j];
            sink[k * T + qp] += m;
        }
    }
}

static int attn_observe(void *user, const struct strata_view *v)
{
    struct attn_probe *a = user;
    if (cli_stop_requested) {
        snprintf(a->err, sizeof a->err, "interrupted");
        return 1;
    }
    if (v->layer < 0 || v->layer >= a->n_layer || v->head < 0 || v->head >= a->n_head) {
        snprintf(a->err, sizeof a->err, "tile of layer %d head %d is out of range",
                 (int)v->layer, (int)v->head);
        return 1;
    }
    const int32_t li = a->lsel[v->layer], hi = a->hsel[v->head];
    if (li < 0 || hi < 0) return 0;
    if (v->row0 < 0 || v->n_rows > a->B || v->row0 + v->n_rows > a->T || v->col0 < 0 ||
        v->col0 + v->n_cols > a->T) {
        snprintf(a->err, sizeof a->err,
                 "tile rows %lld+%lld, cols %lld+%lld does not fit T %lld, B %lld",
                 (long long)v->row0, (long long)v->n_rows, (long long)v->col0,
                 (long long)v->n_cols, (long long)a->T, (long long)a->B);
        return 1;
    }
    if (v->site == STRATA_SITE_ATTN_LOGITS) {
        for (int64_t i = 0; i < v->n_rows; i++)
            memcpy(a->lg + i * v->n_cols, v->data + i * v->ld, (size_t)v->n_cols * sizeof(float));
        a->pending = true;
        a->pl = v->layer, a->ph = v->head, a->prow0 = v->row0, a->pcol0 = v->col0;
        a->prows = v->n_rows, a->pcols = v->n_cols;
        return 0;
    }
    if (v->site != STRATA_SITE_ATTN_PROBS) return 0;
    if (!a->pending || a->pl != v->layer || a->ph != v->head || a->prow0 != v->row0 ||
        a->pcol0 != v->col0 || a->prows != v->n_rows || a->pcols != v->n_cols) {
        snprintf(a->err, sizeof a->err,
                 "probability tile of blk.%d head %d rows %lld.. came without its logits tile",
                 (int)v->layer, (int)v->head, (long long)v->row0);
        return 1;
    }
    a->pending = false;
    const int64_t lh = (int64_t)li * a->Hs + hi;
    reduce_tile(a, lh, v, a->lg);
    if (a->map_p) {
        const int64_t T = a->T;
        for (int64_t i = 0; i < v->n_rows; i++) {
            const int64_t at = (lh * T + v->row0 + i) * T + v->col0;
            memcpy(a->map_p + at, v->data + i * v->ld, (size_t)v->n_cols * sizeof(float));
            memcpy(a->map_s + at, a->lg + i * v->n_cols, (size_t)v->n_cols * sizeof(float));
        }
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

/* The means of the run's sums over the completed samples, in the file's
 * order; NaN where nothing was summed (a distance beyond a sliding window, a
 * skipped block). */
static int write_reductions(struct strata_h5 *f, const struct attn_probe *a, double *sum)
{
    const int64_t T = a->T, LH = a->Ls * a->Hs, K = a->K;
    double *mp = cli_alloc((size_t)(LH * T) * sizeof(double), "the reductions");
    double *ms = cli_alloc((size_t)(LH * T) * sizeof(double), "the reductions");
    double *mn = cli_alloc((size_t)(LH * T) * sizeof(double), "the reductions");
    double *me = cli_alloc((size_t)(LH * T) * sizeof(double), "the reductions");
    double *mk = cli_alloc((size_t)(LH * K * T) * sizeof(double), "the reductions");
    for (int64_t lh = 0; lh < LH; lh++) {
        const double *dp = acc_at(a, sum, A_DIST_P, lh), *ds = acc_at(a, sum, A_DIST_S, lh);
        double *dn = acc_at(a, sum, A_DIST_N, lh);
        const double *ent = acc_at(a, sum, A_ENT, lh);
        const double *qn = acc_at(a, sum, A_QN, lh), *sink = acc_at(a, sum, A_SINK, lh);
        for (int64_t x = 1; x < T; x++) dn[x] += dn[x - 1]; /* counts from differences */
        for (int64_t m = 0; m < T; m++) {
            const double n = dn[T - 1 - m];
            mp[lh * T + m] = n > 0 ? dp[T - 1 - m] / n : (double)NAN;
            ms[lh * T + m] = n > 0 ? ds[T - 1 - m] / n : (double)NAN;
            mn[lh * T + m] = n;
        }
        for (int64_t t = 0; t < T; t++) me[lh * T + t] = qn[t] > 0 ? ent[t] / qn[t] : (double)NAN;
        for (int64_t k = 0; k < K; k++)
            for (int64_t t = 0; t < T; t++)
                mk[(lh * K + k) * T + t] = qn[t] > 0 ? sink[k * T + t] / qn[t] : (double)NAN;
    }
    const int64_t s3[3] = {a->Ls, a->Hs, T}, s4[4] = {a->Ls, a->Hs, K, T};
    int rc = strata_h5_write(f, "dist/prob_mean", STRATA_DT_F64, 3, s3, mp);
    if (!rc) rc = strata_h5_write(f, "dist/logit_mean", STRATA_DT_F64, 3, s3, ms);
    if (!rc) rc = strata_h5_write(f, "dist/count", STRATA_DT_F64, 3, s3, mn);
    if (!rc) rc = strata_h5_write(f, "entropy", STRATA_DT_F64, 3, s3, me);
    if (!rc) rc = strata_h5_write(f, "sink/mass", STRATA_DT_F64, 4, s4, mk);
    if (!rc) { /* rows per query position: N, or 0 for a block that was skipped */
        for (int64_t lh = 0; lh < LH; lh++)
            memcpy(mn + lh * T, acc_at(a, sum, A_QN, lh), (size_t)T * sizeof(double));
        rc = strata_h5_write(f, "query_count", STRATA_DT_F64, 3, s3, mn);
    }
    free(mp);
    free(ms);
    free(mn);
    free(me);
    free(mk);
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
    ap.sink_k = sink_k;
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
    ap.n_acc = LH * T * (A_SINK + ap.K);
    ap.acc = cli_calloc((size_t)ap.n_acc, sizeof(double), "the reductions");
    double *total = cli_calloc((size_t)ap.n_acc, sizeof(double), "the reductions");
    ap.lg = cli_calloc((size_t)(ap.B * T), sizeof(float), "a logits tile");
    const int64_t map_n = LH * T * T; /* floats of one sample's map */
    if (maps) {
        ap.map_p = cli_calloc((size_t)map_n, sizeof(float), "one sample's maps");
        ap.map_s = cli_calloc((size_t)map_n, sizeof(float), "one sample's maps");
    }
    struct strata_observer obs = {.wants = attn_wants, .observe = attn_observe, .user = &ap};
    cli_check(strata_ctx_add_observer(ctx, &obs), NULL);

    /* From here on Ctrl-C leaves a .partial that says what it holds. */
    cli_catch_stop();
    struct strata_h5 *f = NULL;
    char *partial = cli_partial_path(out_path);
    cli_check(strata_h5_create(&f, out_path), "check that the output directory exists and is writable");

    struct cli_prov prov;
    cli_prov_init(&prov, &a, &samples);
    int rc = 0;
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
    const int64_t s_l[1] = {ap.Ls}, s_h[1] = {ap.Hs}, s_k[1] = {ap.K}, s_t[2] = {n_samples, T};
    if (!rc) rc = strata_h5_write(f, "layers", STRATA_DT_I32, 1, s_l, layers);
    if (!rc) rc = strata_h5_write(f, "heads", STRATA_DT_I32, 1, s_h, heads);
    if (!rc) rc = strata_h5_write(f, "sink/k", STRATA_DT_I32, 1, s_k, sink_k);
    if (!rc) rc = strata_h5_write(f, "tokens", STRATA_DT_I32, 2, s_t, samples.tokens);
    if (maps) {
        const int64_t s_m[5] = {n_samples, ap.Ls, ap.Hs, T, T};
        if (!rc) rc = strata_h5_create_dataset(f, "maps/probs", STRATA_DT_F32, 5, s_m);
        if (!rc) rc = strata_h5_create_dataset(f, "maps/logits", STRATA_DT_F32, 5, s_m);
    }
    h5_check(rc, f, partial);

    struct cli_loop loop;
    cli_loop_begin(&loop, 0, n_samples, T);
    int64_t s = 0;
    for (; !rc && cli_loop_more(&loop, s); s++) {
        const int32_t *toks = samples.tokens + s * T; /* (T) */
        if (maps) { /* keys a tile does not reach are masked: p 0, logit -inf */
            memset(ap.map_p, 0, (size_t)map_n * sizeof(float));
            for (int64_t i = 0; i < map_n; i++) ap.map_s[i] = -INFINITY;
        }
        ap.pending = false;
        ap.err[0] = '\0';
        rc = strata_forward(ctx, NULL, toks, T, STRATA_LOGITS_NONE);
        if (!rc && ap.pending) {
            snprintf(ap.err, sizeof ap.err, "a logits tile came without its probabilities");
            rc = STRATA_E_OBSERVER;
        }
        if (rc) {
            memset(ap.acc, 0, (size_t)ap.n_acc * sizeof(double));
            if (cli_stop_requested) rc = 0; /* the sample is dropped; its sums with it */
            break;
        }
        for (int64_t i = 0; i < ap.n_acc; i++) {
            total[i] += ap.acc[i];
            ap.acc[i] = 0.0;
        }
        if (maps) {
            rc = strata_h5_write_rows(f, "maps/probs", s, 1, ap.map_p);
            if (!rc) rc = strata_h5_write_rows(f, "maps/logits", s, 1, ap.map_s);
            if (rc) break;
        }
        cli_loop_done(&loop, s);
    }
    if (rc == STRATA_E_OBSERVER && ap.err[0]) {
        strata_h5_free(f);
        remove(partial);
        cli_die(NULL, "attention observer: %s", ap.err);
    }
    if (!rc) rc = write_reductions(f, &ap, total);
    if (!rc) rc = strata_h5_set_attr_i64(f, "/", "n_complete", s);
    int status = 0;
    if (!rc && s < n_samples) {
        rc = strata_h5_set_attr_i64(f, "/", "complete", 0);
        cli_loop_end(&loop, s);
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
        cli_loop_end(&loop, n_samples);
        cli_info("wrote %s (%lld samples x %lld layers x %lld heads x %lld tokens%s)", out_path,
                 (long long)n_samples, (long long)ap.Ls, (long long)ap.Hs, (long long)T,
                 maps ? ", with maps" : "");
    }
    free(partial);
    free(ap.acc);
    free(total);
    free(ap.lg);
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
