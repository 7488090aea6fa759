/* test_attnred.c — the attention reductions (lib/attnred.c) against a plain
 * computation from full (T, T) maps.
 *
 * A small generated model (tests/mkmodel.h) runs random inputs; one
 * observer captures every head's full probability and logit maps from the
 * tiles, the reductions observe the same pass. The reference then loops over
 * the maps in double, independently of the tile structure: visible keys are
 * those with a finite logit at or left of the diagonal; for each visible
 * pair the distance sums (per part: queries < split and >= split), counts,
 * the sink mass on keys < k, and per row the entropy s_max - log p_max -
 * sum p s (and, as a check of that formula, -sum p log p).
 *
 * Cases: full attention with tiles of 8 rows over 40 positions, every
 * layer and head, no split; a sliding window (W = 7, so tiles start at
 * col0 > 0) with a split at 20, a subset of layers and heads given out of
 * order and a sink width beyond the window; discard; a logits tile left
 * without its probabilities; bad parameters.
 *
 * Tolerance: sums of the same float inputs in double, in another order (the
 * AVX2 dot product of a row, samples summed per sample first):
 * |got - ref| <= 1e-12 * (max |ref| + 1); counts exactly; the entropy
 * formula against -sum p log p within 1e-4 (float32 probabilities).
 *
 * Legend: L blocks, H heads, T tokens, K sink widths, N samples.
 */
#include "check.h"
#include "mkmodel.h"
#include "strata.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { T = 40, L = 3, H = 4, NS = 2 };

/* Full maps of one pass: probs (L, H, T, T) 0 where not reached, logits
 * -inf where not reached. */
struct maps {
    float *p, *s;
};

static bool maps_wants(void *user, int32_t layer, enum strata_site site)
{
    (void)user, (void)layer;
    return site == STRATA_SITE_ATTN_PROBS || site == STRATA_SITE_ATTN_LOGITS;
}

static int maps_observe(void *user, const struct strata_view *v)
{
    struct maps *m = user;
    float *dst = v->site == STRATA_SITE_ATTN_PROBS ? m->p : m->s;
    for (int64_t i = 0; i < v->n_rows; i++)
        memcpy(dst + (((int64_t)v->layer * H + v->head) * T + v->row0 + i) * T + v->col0,
               v->data + i * v->ld, (size_t)v->n_cols * sizeof(float));
    return 0;
}

static void maps_clear(struct maps *m)
{
    for (int64_t i = 0; i < (int64_t)L * H * T * T; i++) m->p[i] = 0.0f, m->s[i] = -INFINITY;
}

/* Reference sums of one (layer, head), over all passes so far. */
struct ref {
    double dp[2][T], ds[2][T], dn[2][T]; /* by distance, per part */
    double ent[T], qn[T], ent_plogp[T];
    double sink[4][T];
};

static void ref_add(struct ref *r, const struct maps *m, int l, int h, int64_t split,
                    const int32_t *sink_k, int K)
{
    for (int i = 0; i < T; i++) {
        const float *pr = m->p + (((int64_t)l * H + h) * T + i) * T;
        const float *sr = m->s + (((int64_t)l * H + h) * T + i) * T;
        const int part = split > 0 && i >= split;
        float smax = -INFINITY, pmax = 0.0f;
        double ps = 0.0, plogp = 0.0;
        int n = 0;
        for (int j = 0; j <= i; j++) {
            if (!isfinite(sr[j])) continue;
            n++;
            r->dp[part][i - j] += (double)pr[j];
            r->ds[part][i - j] += (double)sr[j];
            r->dn[part][i - j] += 1.0;
            ps += (double)pr[j] * (double)sr[j];
            if (pr[j] > 0.0f) plogp -= (double)pr[j] * log((double)pr[j]);
            smax = sr[j] > smax ? sr[j] : smax;
            pmax = pr[j] > pmax ? pr[j] : pmax;
            for (int k = 0; k < K; k++)
                if (j < sink_k[k]) r->sink[k][i] += (double)pr[j];
        }
        if (!n) continue;
        r->ent[i] += (double)smax - log((double)pmax) - ps;
        r->ent_plogp[i] += plogp;
        r->qn[i] += 1.0;
    }
}

static double max_abs(const double *x, int n)
{
    double m = 0;
    for (int i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

/* worst |got - ref| / (max |ref| + 1) */
static double rel_diff(const double *got, const double *ref, int n)
{
    double d = 0, s = max_abs(ref, n) + 1.0;
    for (int i = 0; i < n; i++) d = fabs(got[i] - ref[i]) > d ? fabs(got[i] - ref[i]) : d;
    return d / s;
}

static int same(const double *a, const double *b, int n)
{
    for (int i = 0; i < n; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

/* Run NS random inputs on a context with window W; reduce layers/heads
 * (NULL: all) and compare every selected pair with the reference. */
static void run_case(const struct strata_model *model, const char *name, int64_t W, int64_t split,
                     const int32_t *layers, int n_l, const int32_t *heads, int n_h,
                     const int32_t *sink_k, int K)
{
    struct strata_ctx_params cp = strata_ctx_default_params();
    cp.n_ctx = T;
    cp.attn_block = 8;
    cp.sliding_window = W;
    struct strata_ctx *ctx = NULL;
    CHECK_OK(strata_ctx_create(&ctx, model, &cp));
    if (!ctx) return;
    struct strata_attnred_params ap = strata_attnred_default_params();
    ap.seq_len = T, ap.attn_block = 8, ap.n_layer = L, ap.n_head = H;
    ap.layers = layers, ap.n_layers = n_l, ap.heads = heads, ap.n_heads = n_h;
    ap.sink_k = sink_k, ap.n_sink = K, ap.split = split;
    struct strata_attnred *red = NULL;
    CHECK_OK(strata_attnred_create(&red, &ap));
    if (!red) {
        strata_ctx_free(ctx);
        return;
    }
    struct maps m = {malloc((size_t)L * H * T * T * sizeof(float)),
                     malloc((size_t)L * H * T * T * sizeof(float))};
    struct strata_observer mo = {maps_wants, maps_observe, &m};
    struct strata_observer ro = strata_attnred_observer(red);
    CHECK_OK(strata_ctx_add_observer(ctx, &mo));
    CHECK_OK(strata_ctx_add_observer(ctx, &ro));
    const int nl = layers ? n_l : L, nh = heads ? n_h : H;
    struct ref *ref = calloc((size_t)(nl * nh), sizeof *ref);
    int32_t tok[T];
    uint64_t st = 77 + (uint64_t)W;
    for (int s = 0; s < NS + 1; s++) {
        for (int t = 0; t < T; t++) tok[t] = (int32_t)(strata_rng_next(&st) % 512);
        maps_clear(&m);
        CHECK_OK(strata_forward(ctx, NULL, tok, T, STRATA_LOGITS_NONE));
        if (s == 1) { /* a dropped sample (as after Ctrl-C) leaves no trace */
            strata_attnred_discard(red);
            continue;
        }
        CHECK_OK(strata_attnred_commit(red));
        for (int a = 0; a < nl; a++)
            for (int b = 0; b < nh; b++)
                ref_add(&ref[a * nh + b], &m, layers ? layers[a] : a, heads ? heads[b] : b, split,
                        sink_k, K);
    }
    CHECK(strata_attnred_n_samples(red) == NS);
    int64_t sl, sh, stt, sk;
    strata_attnred_shape(red, &sl, &sh, &stt, &sk);
    CHECK(sl == nl && sh == nh && stt == T && sk == K);
    double worst = 0, worst_ent = 0, worst_plogp = 0;
    int counts_ok = 1, both_ok = 1, empty_ok = 1, any_hidden = 0;
    for (int a = 0; a < nl; a++)
        for (int b = 0; b < nh; b++) {
            const struct ref *r = &ref[a * nh + b];
            double P[3][T], S[3][T], N[3][T], E[T], Q[T], K4[4 * T];
            for (int part = -1; part <= 1; part++)
                CHECK_OK(strata_attnred_dist(red, a, b, part, P[part + 1], S[part + 1], N[part + 1]));
            CHECK_OK(strata_attnred_query(red, a, b, E, Q, K4));
            for (int part = 0; part < 2; part++) {
                worst = fmax(worst, rel_diff(P[part + 1], r->dp[part], T));
                worst = fmax(worst, rel_diff(S[part + 1], r->ds[part], T));
                counts_ok &= same(N[part + 1], r->dn[part], T);
            }
            for (int x = 0; x < T; x++) {
                both_ok &= P[0][x] == (split ? P[1][x] + P[2][x] : P[1][x]);
                both_ok &= S[0][x] == (split ? S[1][x] + S[2][x] : S[1][x]);
                both_ok &= N[0][x] == N[1][x] + N[2][x];
                if (!split) empty_ok &= P[2][x] == 0 && S[2][x] == 0 && N[2][x] == 0;
                any_hidden |= W > 0 && x >= W && N[0][x] == 0;
            }
            counts_ok &= same(Q, r->qn, T);
            worst_ent = fmax(worst_ent, rel_diff(E, r->ent, T));
            worst_plogp = fmax(worst_plogp, max_abs(E, T) > 0 ? rel_diff(E, r->ent_plogp, T) : 0);
            for (int k = 0; k < K; k++) worst = fmax(worst, rel_diff(K4 + k * T, r->sink[k], T));
        }
    printf("%s: max rel diff sums %.3g, entropy %.3g; entropy vs -sum p log p %.3g\n", name, worst,
           worst_ent, worst_plogp);
    CHECK(worst <= 1e-12);
    CHECK(worst_ent <= 1e-12);
    CHECK(worst_plogp <= 1e-4);
    CHECK(counts_ok);
    CHECK(both_ok);
    CHECK(empty_ok);
    if (W > 0) CHECK(any_hidden); /* distances >= W are never visible */
    CHECK(strata_attnred_dist(red, nl, 0, 0, NULL, NULL, NULL) == STRATA_E_ARG);
    CHECK(strata_attnred_dist(red, 0, 0, 2, NULL, NULL, NULL) == STRATA_E_ARG);
    free(ref);
    free(m.p), free(m.s);
    strata_attnred_free(red);
    strata_ctx_free(ctx);
}

static void test_protocol(void)
{
    struct strata_attnred_params ap = strata_attnred_default_params();
    ap.seq_len = T, ap.attn_block = 8, ap.n_layer = L, ap.n_head = H;
    struct strata_attnred *red = NULL;
    CHECK_OK(strata_attnred_create(&red, &ap));
    if (!red) return;
    struct strata_observer o = strata_attnred_observer(red);
    float tile[8 * T];
    for (int i = 0; i < 8 * T; i++) tile[i] = 0.5f;
    struct strata_view v = {.layer = 1, .site = STRATA_SITE_ATTN_PROBS, .head = 2, .row0 = 0,
                            .n_rows = 8, .n_cols = 8, .col0 = 0, .ld = 8, .data = tile};
    CHECK(o.observe(o.user, &v) != 0); /* probabilities without their logits */
    CHECK(strstr(strata_attnred_error(red), "without its logits") != NULL);
    v.site = STRATA_SITE_ATTN_LOGITS;
    CHECK(o.observe(o.user, &v) == 0);
    CHECK(strata_attnred_commit(red) == STRATA_E_DATA); /* logits left waiting */
    CHECK(strata_attnred_n_samples(red) == 0);
    v.n_rows = 9; /* more rows than a tile holds */
    CHECK(o.observe(o.user, &v) != 0);
    v.n_rows = 8, v.layer = L;
    CHECK(o.observe(o.user, &v) != 0);
    CHECK(!o.wants(o.user, L, STRATA_SITE_ATTN_PROBS) && o.wants(o.user, 0, STRATA_SITE_ATTN_LOGITS) &&
          !o.wants(o.user, 0, STRATA_SITE_RESID_POST));
    strata_attnred_free(red);
    strata_attnred_free(NULL);

    const int32_t bad_k[] = {0}, big_k[] = {T + 1}, rep[] = {1, 1}, out[] = {L};
    struct strata_attnred_params q = ap;
    q.sink_k = bad_k, q.n_sink = 1;
    CHECK(strata_attnred_create(&red, &q) == STRATA_E_ARG && red == NULL);
    q.sink_k = big_k;
    CHECK(strata_attnred_create(&red, &q) == STRATA_E_ARG);
    q = ap, q.heads = rep, q.n_heads = 2;
    CHECK(strata_attnred_create(&red, &q) == STRATA_E_ARG);
    q = ap, q.layers = out, q.n_layers = 1;
    CHECK(strata_attnred_create(&red, &q) == STRATA_E_ARG);
    q = ap, q.seq_len = 0;
    CHECK(strata_attnred_create(&red, &q) == STRATA_E_ARG);
    q = ap, q.split = -1;
    CHECK(strata_attnred_create(&red, &q) == STRATA_E_ARG);
}

int main(void)
{
    char tmp[512], path[1024];
    bool owned;
    if (!check_tmpdir(tmp, sizeof tmp, "test-attnred", &owned)) return 2;
    const struct mkmodel_shape shape = {.dim = 32, .hidden_dim = 64, .n_layers = L, .n_heads = H,
                                        .n_kv_heads = 2, .vocab_size = 512, .seq_len = 64};
    snprintf(path, sizeof path, "%s/attnred.bin", tmp);
    CHECK(mkmodel_write(path, &shape, 3) == 0);
    struct strata_model *model = NULL;
    CHECK_OK(strata_model_load(&model, path));
    if (model) {
        const int32_t k1[] = {1, 3};
        run_case(model, "full attention", 0, 0, NULL, 0, NULL, 0, k1, 2);
        const int32_t ls[] = {2, 0}, hs[] = {3, 1}, k2[] = {1, 4, 12};
        run_case(model, "window 7, split 20", 7, 20, ls, 2, hs, 2, k2, 3);
    }
    test_protocol();
    strata_model_free(model);
    unlink(path);
    if (owned) rmdir(tmp);
    return CHECK_DONE("test_attnred");
}
