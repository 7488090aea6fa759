/* attnred.c — reductions of attention tiles for inputs too long for (T, T)
 * maps: the one implementation behind strata-probe-attn's /dist, /sink and
 * /entropy (docs/FORMAT.md) and strata-posvec's attention sink, attention
 * against distance and logit similarity (P1, P2 in
 * ../shared/docs/PAPERS.md). An observer of attn_logits and attn_probs
 * (strata.h, struct strata_view): the forward pass hands out, per head and in
 * increasing row0, a logits tile and then the probability tile of the same
 * rows; this file reduces them, per selected (layer, head), into sums in
 * double:
 *   - sum of p[i, i-m] and of logit[i, i-m] over visible pairs, and their
 *     count, by distance m, for queries i < split and i >= split apart;
 *   - mass on the first k keys, by query position i, for each sink width k;
 *   - entropy of row i, and the number of rows, by query position.
 * Entropy without a log per element: softmax gives p_j = exp(s_j - lse), so
 * lse = s_max - log(p_max) (one log per row) and H = lse - sum_j p_j s_j;
 * that is why the logits tile is copied and reduced when its probabilities
 * arrive.
 *
 * A forward pass adds into the pending sample's sums; commit adds them to
 * the run's sums (discard drops them), so a pass stopped half-way (Ctrl-C)
 * leaves the run's sums exact over the completed samples.
 *
 * The arithmetic is strata-probe-attn's, operation for operation (double
 * accumulation of float inputs in the same order, AVX2 where the build has
 * it), so its outputs did not change when it moved here.
 *
 * Legend: L blocks (Ls selected), H query heads (Hs selected), T tokens,
 * B query rows per attention tile, K sink widths, 2 parts (queries below
 * and from the split).
 */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

/* Per (layer, head), with lh = li * Hs + hi, one block of doubles:
 *   dist_p[part] (T) sum of p over visible pairs at distance m, stored at
 *                    index T-1-m (so a row of keys adds to a contiguous,
 *                    increasing range); flipped when read
 *   dist_s[part] (T) the same for logits
 *   dist_n[part] (T) number of those pairs, as a difference array over the
 *                    same index (its prefix sum is the count)
 *   ent          (T) sum of the entropy of row i, by query position i
 *   qn           (T) number of rows summed at position i
 *   sink         (K, T) sum of the mass on keys < k, by query position
 * part 1 exists only with a split. Arrays are laid out [kind][lh][T] as
 * strata-probe-attn laid out its own. */
enum { A_DIST_P, A_DIST_S, A_DIST_N, A_ENT, A_QN, A_SINK };

struct strata_attnred {
    int64_t T, B, Ls, Hs, K, split, parts;
    int32_t n_layer, n_head;
    int32_t *lsel;   /* (L) position in the selected layers, or -1 */
    int32_t *hsel;   /* (H) position in the selected heads, or -1 */
    int32_t *sink_k; /* (K) */
    int64_t n_acc;   /* doubles in acc and total */
    double *acc;     /* the pending sample's sums */
    double *total;   /* the run's sums */
    int64_t n_samples; /* samples committed */
    float *lg;       /* (B, T) logits tile waiting for its probabilities */
    bool pending;    /* lg holds a tile */
    int64_t pl, ph, prow0, pcol0, prows, pcols; /* identity of that tile */
    char err[256];   /* why observe() stopped the pass */
};

struct strata_attnred_params strata_attnred_default_params(void)
{
    struct strata_attnred_params p;
    memset(&p, 0, sizeof p);
    return p;
}

/* Index of kind `which` (part for the distance kinds) of pair lh. */
static double *at(const struct strata_attnred *r, double *base, int which, int part, int64_t lh)
{
    const int64_t LHT = r->Ls * r->Hs * r->T;
    if (which <= A_DIST_N) return base + (which * r->parts + part) * LHT + lh * r->T;
    const int64_t o = 3 * r->parts * LHT;
    if (which == A_SINK) return base + o + 2 * LHT + lh * r->K * r->T;
    return base + o + (which - A_ENT) * LHT + lh * r->T;
}

/* where (n): the position of each id of list (m, distinct, < n), or -1;
 * NULL list: every id. */
static int selection(int32_t **where, int64_t *n_sel, const int32_t *list, int64_t m, int32_t n,
                     const char *what)
{
    int32_t *w = malloc((size_t)(n > 0 ? n : 1) * sizeof *w);
    if (!w) return strata_fail(STRATA_E_NOMEM, "attention reductions: no memory for the %s list", what);
    for (int32_t i = 0; i < n; i++) w[i] = list ? -1 : i;
    if (list) {
        for (int64_t k = 0; k < m; k++) {
            if (list[k] < 0 || list[k] >= n || w[list[k]] >= 0) {
                free(w);
                return strata_fail(STRATA_E_ARG,
                                   "attention reductions: %s %d is out of range (0..%d) or repeated",
                                   what, (int)list[k], (int)n - 1);
            }
            w[list[k]] = (int32_t)k;
        }
    }
    *where = w;
    *n_sel = list ? m : n;
    return 0;
}

int strata_attnred_create(struct strata_attnred **out, const struct strata_attnred_params *p)
{
    *out = NULL;
    if (!p || p->seq_len < 1 || p->n_layer < 1 || p->n_head < 1 || p->attn_block < 0 ||
        p->split < 0 || p->n_sink < 0 || (p->n_sink > 0 && !p->sink_k) ||
        (p->layers && p->n_layers < 1) || (p->heads && p->n_heads < 1))
        return strata_fail(STRATA_E_ARG, "attention reductions: seq_len, n_layer, n_head must be "
                                         ">= 1, attn_block, split, n_sink >= 0, selections non-empty");
    const int64_t T = p->seq_len;
    for (int64_t k = 0; k < p->n_sink; k++)
        if (p->sink_k[k] < 1 || p->sink_k[k] > T)
            return strata_fail(STRATA_E_ARG, "attention reductions: sink width %d is not in 1..%lld",
                               (int)p->sink_k[k], (long long)T);
    struct strata_attnred *r = calloc(1, sizeof *r);
    if (!r) return strata_fail(STRATA_E_NOMEM, "attention reductions: no memory");
    r->T = T;
    r->B = p->attn_block > 0 ? p->attn_block : 64;
    r->K = p->n_sink;
    r->split = p->split;
    r->parts = p->split > 0 ? 2 : 1;
    r->n_layer = p->n_layer;
    r->n_head = p->n_head;
    int rc = selection(&r->lsel, &r->Ls, p->layers, p->n_layers, p->n_layer, "layer");
    if (!rc) rc = selection(&r->hsel, &r->Hs, p->heads, p->n_heads, p->n_head, "head");
    if (rc) {
        strata_attnred_free(r);
        return rc;
    }
    const double n = (double)(r->Ls * r->Hs) * (double)T * (double)(3 * r->parts + 2 + r->K);
    if (n * 16.0 + (double)(r->B * T) * 4.0 > 0.5 * (double)SIZE_MAX) {
        strata_attnred_free(r);
        return strata_fail(STRATA_E_NOMEM, "attention reductions of %lld x %lld heads x %lld "
                           "positions are too large", (long long)r->Ls, (long long)r->Hs, (long long)T);
    }
    r->n_acc = (int64_t)n;
    r->sink_k = malloc((size_t)(r->K > 0 ? r->K : 1) * sizeof *r->sink_k);
    r->acc = calloc((size_t)r->n_acc, sizeof(double));
    r->total = calloc((size_t)r->n_acc, sizeof(double));
    r->lg = calloc((size_t)(r->B * T), sizeof(float));
    if (!r->sink_k || !r->acc || !r->total || !r->lg) {
        strata_attnred_free(r);
        return strata_fail(STRATA_E_NOMEM, "attention reductions: no memory for %.3g MiB",
                           n * 16.0 / 1048576.0);
    }
    if (r->K) memcpy(r->sink_k, p->sink_k, (size_t)r->K * sizeof *r->sink_k);
    *out = r;
    return 0;
}

void strata_attnred_free(struct strata_attnred *r)
{
    if (!r) return;
    free(r->lsel);
    free(r->hsel);
    free(r->sink_k);
    free(r->acc);
    free(r->total);
    free(r->lg);
    free(r);
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
 * the first distance index of the row, -1 after its last), O(1) per row.
 * Visible keys of a row: from the first finite logit to the diagonal. */
static void reduce_tile(struct strata_attnred *r, int64_t lh, const struct strata_view *v,
                        const float *s)
{
    const int64_t T = r->T, nc = v->n_cols, col0 = v->col0;
    double *ent = at(r, r->acc, A_ENT, 0, lh), *qn = at(r, r->acc, A_QN, 0, lh);
    double *sink = at(r, r->acc, A_SINK, 0, lh);
    for (int64_t i = 0; i < v->n_rows; i++) {
        const int64_t qp = v->row0 + i;
        const int part = r->split > 0 && qp >= r->split;
        double *dp = at(r, r->acc, A_DIST_P, part, lh), *ds = at(r, r->acc, A_DIST_S, part, lh);
        double *dn = at(r, r->acc, A_DIST_N, part, lh);
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
        for (int64_t k = 0; k < r->K; k++) {
            int64_t je = r->sink_k[k] - col0; /* keys < k are j < je */
            if (je > j1) je = j1;
            double m = 0.0;
            for (int64_t j = j0; j < je; j++) m += (double)pr[j];
            sink[k * T + qp] += m;
        }
    }
}

static bool attnred_wants(void *user, int32_t layer, enum strata_site site)
{
    const struct strata_attnred *r = user;
    return (site == STRATA_SITE_ATTN_LOGITS || site == STRATA_SITE_ATTN_PROBS) && layer >= 0 &&
           layer < r->n_layer && r->lsel[layer] >= 0;
}

static int attnred_observe(void *user, const struct strata_view *v)
{
    struct strata_attnred *r = user;
    if (v->site != STRATA_SITE_ATTN_LOGITS && v->site != STRATA_SITE_ATTN_PROBS) return 0;
    if (v->layer < 0 || v->layer >= r->n_layer || v->head < 0 || v->head >= r->n_head) {
        snprintf(r->err, sizeof r->err, "tile of layer %d head %d is out of range",
                 (int)v->layer, (int)v->head);
        return 1;
    }
    const int32_t li = r->lsel[v->layer], hi = r->hsel[v->head];
    if (li < 0 || hi < 0) return 0;
    if (v->row0 < 0 || v->n_rows > r->B || v->row0 + v->n_rows > r->T || v->col0 < 0 ||
        v->col0 + v->n_cols > r->T) {
        snprintf(r->err, sizeof r->err,
                 "tile rows %lld+%lld, cols %lld+%lld does not fit T %lld, B %lld",
                 (long long)v->row0, (long long)v->n_rows, (long long)v->col0,
                 (long long)v->n_cols, (long long)r->T, (long long)r->B);
        return 1;
    }
    if (v->site == STRATA_SITE_ATTN_LOGITS) {
        for (int64_t i = 0; i < v->n_rows; i++)
            memcpy(r->lg + i * v->n_cols, v->data + i * v->ld, (size_t)v->n_cols * sizeof(float));
        r->pending = true;
        r->pl = v->layer, r->ph = v->head, r->prow0 = v->row0, r->pcol0 = v->col0;
        r->prows = v->n_rows, r->pcols = v->n_cols;
        return 0;
    }
    if (!r->pending || r->pl != v->layer || r->ph != v->head || r->prow0 != v->row0 ||
        r->pcol0 != v->col0 || r->prows != v->n_rows || r->pcols != v->n_cols) {
        snprintf(r->err, sizeof r->err,
                 "probability tile of blk.%d head %d rows %lld.. came without its logits tile",
                 (int)v->layer, (int)v->head, (long long)v->row0);
        return 1;
    }
    r->pending = false;
    reduce_tile(r, (int64_t)li * r->Hs + hi, v, r->lg);
    return 0;
}

struct strata_observer strata_attnred_observer(struct strata_attnred *r)
{
    struct strata_observer o = {.wants = attnred_wants, .observe = attnred_observe, .user = r};
    return o;
}

const char *strata_attnred_error(const struct strata_attnred *r)
{
    return r->err;
}

int strata_attnred_commit(struct strata_attnred *r)
{
    if (r->pending) {
        r->pending = false;
        memset(r->acc, 0, (size_t)r->n_acc * sizeof(double));
        snprintf(r->err, sizeof r->err, "a logits tile came without its probabilities");
        return strata_fail(STRATA_E_DATA, "attention reductions: %s", r->err);
    }
    for (int64_t i = 0; i < r->n_acc; i++) {
        r->total[i] += r->acc[i];
        r->acc[i] = 0.0;
    }
    r->n_samples++;
    r->err[0] = '\0';
    return 0;
}

void strata_attnred_discard(struct strata_attnred *r)
{
    memset(r->acc, 0, (size_t)r->n_acc * sizeof(double));
    r->pending = false;
    r->err[0] = '\0';
}

int64_t strata_attnred_n_samples(const struct strata_attnred *r)
{
    return r->n_samples;
}

static int pair_index(const struct strata_attnred *r, int64_t li, int64_t hi, int64_t *lh)
{
    if (li < 0 || li >= r->Ls || hi < 0 || hi >= r->Hs)
        return strata_fail(STRATA_E_ARG, "attention reductions: pair (%lld, %lld) is not one of "
                           "the %lld x %lld selected", (long long)li, (long long)hi,
                           (long long)r->Ls, (long long)r->Hs);
    *lh = li * r->Hs + hi;
    return 0;
}

int strata_attnred_dist(const struct strata_attnred *r, int64_t li, int64_t hi, int part,
                        double *prob, double *logit, double *count)
{
    int64_t lh;
    int rc = pair_index(r, li, hi, &lh);
    if (rc) return rc;
    if (part < -1 || part > 1)
        return strata_fail(STRATA_E_ARG, "attention reductions: part %d is not -1, 0 or 1", part);
    const int64_t T = r->T;
    const int p0 = part < 0 ? 0 : part;
    /* a part that is not kept (no split) holds nothing; both parts without a
     * split is part 0 as it is (no "+ 0.0" that would turn -0.0 into 0.0) */
    const bool empty = p0 >= r->parts, both = part < 0 && r->parts == 2;
    const double *dp = at(r, r->total, A_DIST_P, empty ? 0 : p0, lh);
    const double *ds = at(r, r->total, A_DIST_S, empty ? 0 : p0, lh);
    const double *dn = at(r, r->total, A_DIST_N, empty ? 0 : p0, lh);
    const double *dp1 = at(r, r->total, A_DIST_P, 1, lh), *ds1 = at(r, r->total, A_DIST_S, 1, lh);
    const double *dn1 = at(r, r->total, A_DIST_N, 1, lh);
    double n = 0.0, n1 = 0.0;
    for (int64_t x = 0; x < T; x++) { /* x = T-1-m: counts from differences, in x order */
        const int64_t m = T - 1 - x;
        n += dn[x];
        if (both) n1 += dn1[x];
        if (empty) {
            if (prob) prob[m] = 0.0;
            if (logit) logit[m] = 0.0;
            if (count) count[m] = 0.0;
            continue;
        }
        if (prob) prob[m] = both ? dp[x] + dp1[x] : dp[x];
        if (logit) logit[m] = both ? ds[x] + ds1[x] : ds[x];
        if (count) count[m] = both ? n + n1 : n;
    }
    return 0;
}

int strata_attnred_query(const struct strata_attnred *r, int64_t li, int64_t hi, double *entropy,
                         double *rows, double *sink)
{
    int64_t lh;
    int rc = pair_index(r, li, hi, &lh);
    if (rc) return rc;
    const size_t bytes = (size_t)r->T * sizeof(double);
    if (entropy) memcpy(entropy, at(r, r->total, A_ENT, 0, lh), bytes);
    if (rows) memcpy(rows, at(r, r->total, A_QN, 0, lh), bytes);
    if (sink && r->K) memcpy(sink, at(r, r->total, A_SINK, 0, lh), bytes * (size_t)r->K);
    return 0;
}

void strata_attnred_shape(const struct strata_attnred *r, int64_t *n_layers, int64_t *n_heads,
                          int64_t *seq_len, int64_t *n_sink)
{
    if (n_layers) *n_layers = r->Ls;
    if (n_heads) *n_heads = r->Hs;
    if (seq_len) *seq_len = r->T;
    if (n_sink) *n_sink = r->K;
}
