/* test_interv — the runtime interventions of issue 4 checked at the sites
 * where they act, on stories260K (llama2.c, interleaved RoPE, 5 blocks,
 * d = 8):
 *
 * - linear RoPE scaling by r: the layer-0 attention logits (attn_logits site)
 *   of query r*t against key r*t' under linear:r equal the unscaled logits of
 *   t against t' for a sequence B with B[t] = A[r*t]. In layer 0, q and k
 *   depend on the token only, and the rotation angle (r t)(theta_i / r)
 *   equals t theta_i in exact arithmetic; what may differ is rounding (theta
 *   / r and the product in double, cos/sin rounded to float, and the sgemm's
 *   summation order for tiles of other shapes), so the tolerance is
 *   1e-5 * max|logit|.
 * - attention temperature lambda: logits at lambda = 2 are exactly twice the
 *   logits at 1 (the scale is folded into the sgemm's alpha; doubling is
 *   exact in float), at lambda = 0.7 within 1e-6 relative.
 * - editors (lib/interv.c) through a positional-vector file written with
 *   strata_h5_write: sub-semantic at boundary 2, positions 4..39, makes the
 *   captured boundary equal p bit for bit there and leaves the other
 *   positions of that boundary and all earlier boundaries bit-identical;
 *   sub-positional then add-positional (two editors) equals the unedited
 *   run within float rounding (1e-5 of the boundary's scale); replace r = 1,
 *   alpha = 1 is bit-identical; replace r = 2, alpha = 1.5 at boundary 0
 *   equals emb + alpha*((1-f) p[i] + f p[i+1]) - p[t] computed here in double
 *   (1e-6); an editor added as an observer stops the forward pass.
 * - bad files and parameters: wrong D, wrong L, positions beyond the file,
 *   NaN in the file, no /positional, a missing file, boundary out of range.
 */
#include "check.h"
#include "strata.h"

#include <stdlib.h>
#include <string.h>

/* Layer-0 attention logits of every head into (H, T, T), -Inf where masked. */
struct logits_cap {
    float *out; /* (H, T, T) */
    int64_t T;
};

static bool lg_wants(void *user, int32_t layer, enum strata_site site)
{
    (void)user;
    return layer == 0 && site == STRATA_SITE_ATTN_LOGITS;
}

static int lg_observe(void *user, const struct strata_view *v)
{
    struct logits_cap *c = user;
    for (int64_t i = 0; i < v->n_rows; i++)
        for (int64_t j = 0; j < v->n_cols; j++)
            c->out[((int64_t)v->head * c->T + v->row0 + i) * c->T + v->col0 + j] =
                v->data[i * v->ld + j];
    return 0;
}

/* sc: the context's RoPE scaling, NULL for the model's. */
static int run_logits(const struct strata_model *m, const int32_t *tok, int64_t T, double scale,
                      const struct strata_rope_scaling_params *sc, float *out)
{
    struct strata_ctx_params p = strata_ctx_default_params();
    p.n_ctx = T;
    p.attn_scale = scale;
    if (sc) p.rope_scaling = *sc;
    struct strata_ctx *ctx = NULL;
    int rc = strata_ctx_create(&ctx, m, &p);
    if (rc) return rc;
    struct logits_cap cap = {out, T};
    struct strata_observer o = {lg_wants, lg_observe, &cap};
    rc = strata_ctx_add_observer(ctx, &o);
    if (!rc) rc = strata_forward(ctx, NULL, tok, T, STRATA_LOGITS_NONE);
    strata_ctx_free(ctx);
    return rc;
}

static void test_rope_and_temperature(struct strata_model *m)
{
    const struct strata_config c0 = *strata_model_config(m);
    const int64_t H = c0.n_head, r = 4, n = 64, TA = r * n;
    int32_t *A = malloc((size_t)TA * sizeof *A), *B = malloc((size_t)n * sizeof *B);
    uint64_t st = 42;
    for (int64_t t = 0; t < TA; t++) A[t] = 3 + (int32_t)(strata_rng_next(&st) % 500);
    A[0] = 1;
    for (int64_t t = 0; t < n; t++) B[t] = A[r * t];
    float *la = malloc((size_t)(H * TA * TA) * sizeof(float));
    float *lb = malloc((size_t)(H * n * n) * sizeof(float));
    float *lc = malloc((size_t)(H * n * n) * sizeof(float));

    struct strata_rope_scaling_params lin4;
    CHECK_OK(strata_rope_scaling_parse("linear:4", c0.seq_len, &lin4));
    CHECK_OK(run_logits(m, A, TA, 1.0, &lin4, la));
    CHECK_OK(run_logits(m, B, n, 1.0, NULL, lb));
    double worst = 0.0, big = 0.0;
    for (int64_t h = 0; h < H; h++)
        for (int64_t t = 0; t < n; t++)
            for (int64_t u = 0; u <= t; u++) {
                double a = (double)la[(h * TA + r * t) * TA + r * u], b = (double)lb[(h * n + t) * n + u];
                worst = fabs(a - b) > worst ? fabs(a - b) : worst;
                big = fabs(b) > big ? fabs(b) : big;
            }
    printf("linear:4 layer-0 logits at (4t, 4t') vs unscaled (t, t'): max diff %.3g (max |logit| %.3g)\n",
           worst, big);
    CHECK(big > 0.1 && worst <= 1e-5 * big);

    /* Temperature: lambda = 2 exact, 0.7 to rounding; masked entries stay -Inf. */
    CHECK_OK(run_logits(m, B, n, 2.0, NULL, lc));
    int64_t bad = 0;
    for (int64_t i = 0; i < H * n * n; i++)
        if (!(lc[i] == 2.0f * lb[i] || (isinf(lc[i]) && isinf(lb[i])))) bad++;
    printf("attn temperature 2: %lld logits differ from 2x (want 0)\n", (long long)bad);
    CHECK(bad == 0);
    CHECK_OK(run_logits(m, B, n, 0.7, NULL, lc));
    worst = 0.0;
    for (int64_t h = 0; h < H; h++)
        for (int64_t t = 0; t < n; t++)
            for (int64_t u = 0; u <= t; u++) {
                int64_t i = (h * n + t) * n + u;
                double d = fabs((double)lc[i] - 0.7 * (double)lb[i]);
                worst = d > worst ? d : worst;
            }
    printf("attn temperature 0.7: max |logit - 0.7 x unscaled| %.3g\n", worst);
    CHECK(worst <= 1e-6 * big);
    free(A);
    free(B);
    free(la);
    free(lb);
    free(lc);
}

/* Hidden states (L+1, T, D) with the given editors (NULL-terminated). */
static int run_hidden(const struct strata_model *m, const int32_t *tok, int64_t T, float *hidden,
                      struct strata_editor **eds)
{
    const struct strata_config *c = strata_model_config(m);
    struct strata_ctx_params p = strata_ctx_default_params();
    p.n_ctx = T;
    struct strata_ctx *ctx = NULL;
    int rc = strata_ctx_create(&ctx, m, &p);
    if (rc) return rc;
    struct strata_hidden_capture cap = {hidden, T, c->dim};
    struct strata_observer obs = strata_observer_hidden(&cap);
    rc = strata_ctx_add_observer(ctx, &obs);
    for (int k = 0; eds && eds[k] && !rc; k++) {
        struct strata_observer e = strata_editor_observer(eds[k]);
        rc = strata_ctx_add_editor(ctx, &e);
    }
    if (!rc) rc = strata_forward(ctx, NULL, tok, T, STRATA_LOGITS_NONE);
    strata_ctx_free(ctx);
    return rc;
}

static int write_posvec(const char *path, const float *p, int64_t L1, int64_t T, int64_t D)
{
    struct strata_h5 *f = NULL;
    int rc = strata_h5_create(&f, path);
    const int64_t shape[3] = {L1, T, D};
    if (!rc) rc = strata_h5_write(f, "positional", STRATA_DT_F32, 3, shape, p);
    if (!rc) rc = strata_h5_finish(f);
    strata_h5_free(f);
    return rc;
}

static struct strata_edit_params edit(enum strata_edit_kind k, int32_t b, int64_t t0, int64_t t1)
{
    struct strata_edit_params e = strata_edit_default_params();
    e.kind = k;
    e.boundary = b;
    e.t0 = t0;
    e.t1 = t1;
    return e;
}

static void test_editors(struct strata_model *m, const char *dir)
{
    const struct strata_config *c = strata_model_config(m);
    const int64_t L1 = c->n_layer + 1, D = c->dim, T = 96, FT = 128; /* file covers 128 */
    const int64_t n = L1 * T * D;
    int32_t *tok = malloc((size_t)T * sizeof *tok);
    uint64_t st = 7;
    for (int64_t t = 0; t < T; t++) tok[t] = 3 + (int32_t)(strata_rng_next(&st) % 500);
    tok[0] = 1;
    float *h0 = malloc((size_t)n * sizeof(float)), *h1 = malloc((size_t)n * sizeof(float));
    CHECK_OK(run_hidden(m, tok, T, h0, NULL));

    /* p: random vectors of the hidden states' scale (any p exercises the edits). */
    float *p = malloc((size_t)(L1 * FT * D) * sizeof(float));
    for (int64_t i = 0; i < L1 * FT * D; i++)
        p[i] = (float)((double)(strata_rng_next(&st) >> 11) / 9007199254740992.0 - 0.5);
    char path[4200];
    snprintf(path, sizeof path, "%s/interv_posvec.h5", dir);
    CHECK_OK(write_posvec(path, p, L1, FT, D));
    struct strata_posvec *pv = NULL;
    CHECK_OK(strata_posvec_load(&pv, path));
    if (!pv) goto out;
    int64_t pl, pt, pd;
    strata_posvec_shape(pv, &pl, &pt, &pd);
    CHECK(pl == L1 && pt == FT && pd == D);
    CHECK(memcmp(strata_posvec_data(pv), p, (size_t)(L1 * FT * D) * sizeof(float)) == 0);

    /* sub-semantic at boundary 2, positions 4..39. */
    struct strata_editor *eds[3] = {NULL, NULL, NULL};
    struct strata_edit_params e = edit(STRATA_EDIT_SUB_SEMANTIC, 2, 4, 40);
    CHECK_OK(strata_editor_create(&eds[0], m, pv, &e));
    CHECK_OK(run_hidden(m, tok, T, h1, eds));
    bool eq_p = true, same_before = true, same_outside = true, changed_after = false;
    for (int64_t t = 0; t < T; t++) {
        const float *a = h1 + (2 * T + t) * D, *b = h0 + (2 * T + t) * D;
        if (t >= 4 && t < 40) eq_p &= memcmp(a, p + (2 * FT + t) * D, (size_t)D * 4) == 0;
        else same_outside &= memcmp(a, b, (size_t)D * 4) == 0;
    }
    same_before = memcmp(h1, h0, (size_t)(2 * T * D) * 4) == 0;
    for (int64_t i = 3 * T * D; i < n; i++) changed_after |= h1[i] != h0[i];
    CHECK(eq_p);
    CHECK(same_outside);
    CHECK(same_before);
    CHECK(changed_after);
    strata_editor_free(eds[0]);

    /* sub-positional then add-positional at boundary 3: identity up to rounding. */
    e = edit(STRATA_EDIT_SUB_POSITIONAL, 3, 0, T);
    CHECK_OK(strata_editor_create(&eds[0], m, pv, &e));
    e.kind = STRATA_EDIT_ADD_POSITIONAL;
    CHECK_OK(strata_editor_create(&eds[1], m, pv, &e));
    CHECK_OK(run_hidden(m, tok, T, h1, eds));
    double worst = 0.0, scale = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)h1[i] - (double)h0[i]);
        worst = d > worst ? d : worst;
        scale = fabs((double)h0[i]) > scale ? fabs((double)h0[i]) : scale;
    }
    printf("sub-positional + add-positional at boundary 3: max diff %.3g (scale %.3g)\n", worst, scale);
    CHECK(worst <= 1e-5 * scale);
    strata_editor_free(eds[0]);
    strata_editor_free(eds[1]);
    eds[1] = NULL;

    /* replace r = 1, alpha = 1: bit-identical (zero delta). */
    e = edit(STRATA_EDIT_REPLACE, 2, 4, T);
    CHECK_OK(strata_editor_create(&eds[0], m, pv, &e));
    CHECK_OK(run_hidden(m, tok, T, h1, eds));
    CHECK(memcmp(h1, h0, (size_t)n * 4) == 0);
    strata_editor_free(eds[0]);

    /* replace r = 2, alpha = 1.5 at boundary 0 against the formula. */
    e = edit(STRATA_EDIT_REPLACE, 0, 4, T);
    e.ratio = 2.0;
    e.alpha = 1.5;
    CHECK_OK(strata_editor_create(&eds[0], m, pv, &e));
    CHECK_OK(run_hidden(m, tok, T, h1, eds));
    worst = 0.0;
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < D; j++) {
            double want = (double)h0[t * D + j];
            if (t >= 4) {
                double x = (double)t / 2.0, f = x - floor(x);
                int64_t i = (int64_t)floor(x);
                want += 1.5 * ((1 - f) * (double)p[i * D + j] + f * (double)p[(i + 1) * D + j]) -
                        (double)p[t * D + j];
            }
            double d = fabs((double)h1[t * D + j] - want);
            worst = d > worst ? d : worst;
        }
    printf("replace 0:2:1.5 vs formula: max diff %.3g\n", worst);
    CHECK(worst <= 1e-6);

    /* An editor added as an observer cannot edit: the pass stops. */
    {
        struct strata_ctx *ctx = NULL;
        struct strata_ctx_params cp = strata_ctx_default_params();
        cp.n_ctx = T;
        CHECK_OK(strata_ctx_create(&ctx, m, &cp));
        struct strata_observer o = strata_editor_observer(eds[0]);
        CHECK_OK(strata_ctx_add_observer(ctx, &o));
        CHECK(strata_forward(ctx, NULL, tok, T, STRATA_LOGITS_NONE) == STRATA_E_OBSERVER);
        strata_ctx_free(ctx);
    }
    strata_editor_free(eds[0]);
    eds[0] = NULL;

    /* Bad parameters. */
    struct strata_editor *bad = NULL;
    e = edit(STRATA_EDIT_SUB_POSITIONAL, (int32_t)L1, 0, 4);
    CHECK(strata_editor_create(&bad, m, pv, &e) == STRATA_E_ARG && !bad);
    e = edit(STRATA_EDIT_SUB_POSITIONAL, 1, 0, FT + 1);
    CHECK(strata_editor_create(&bad, m, pv, &e) == STRATA_E_SHAPE && !bad);
    CHECK(strstr(strata_last_error(), "interv_posvec.h5") != NULL);
    e = edit(STRATA_EDIT_SUB_POSITIONAL, 1, 5, 5);
    CHECK(strata_editor_create(&bad, m, pv, &e) == STRATA_E_ARG && !bad);
    e = edit(STRATA_EDIT_REPLACE, 1, 4, 8);
    e.ratio = 0.0;
    CHECK(strata_editor_create(&bad, m, pv, &e) == STRATA_E_ARG && !bad);
    enum strata_edit_kind k;
    CHECK(strata_edit_kind_parse("sub-semantic", &k) == 0 && k == STRATA_EDIT_SUB_SEMANTIC);
    CHECK(strata_edit_kind_parse("sub-everything", &k) == STRATA_E_ARG);
    strata_posvec_free(pv);

    /* Bad files: wrong D, wrong L (loads, refused by the editor), NaN, no
     * /positional, missing. */
    snprintf(path, sizeof path, "%s/interv_bad.h5", dir);
    CHECK_OK(write_posvec(path, p, L1, FT / 2, 2 * D));
    CHECK_OK(strata_posvec_load(&pv, path));
    e = edit(STRATA_EDIT_SUB_POSITIONAL, 1, 0, 4);
    CHECK(pv && strata_editor_create(&bad, m, pv, &e) == STRATA_E_SHAPE);
    CHECK(strstr(strata_last_error(), "width") != NULL);
    strata_posvec_free(pv);
    CHECK_OK(write_posvec(path, p, L1 - 1, FT, D));
    CHECK_OK(strata_posvec_load(&pv, path));
    CHECK(pv && strata_editor_create(&bad, m, pv, &e) == STRATA_E_SHAPE);
    CHECK(strstr(strata_last_error(), "boundaries") != NULL);
    strata_posvec_free(pv);
    p[(1 * FT + 7) * D + 3] = NAN;
    CHECK_OK(write_posvec(path, p, L1, FT, D));
    pv = NULL;
    CHECK(strata_posvec_load(&pv, path) == STRATA_E_NAN && !pv);
    CHECK(strstr(strata_last_error(), "boundary 1, position 7") != NULL);
    {
        struct strata_h5 *f = NULL;
        const int64_t shape[2] = {4, 4};
        CHECK_OK(strata_h5_create(&f, path));
        CHECK_OK(strata_h5_write(f, "other", STRATA_DT_F32, 2, shape, p));
        CHECK_OK(strata_h5_finish(f));
        strata_h5_free(f);
    }
    CHECK(strata_posvec_load(&pv, path) != 0 && !pv);
    CHECK(strstr(strata_last_error(), "positional") != NULL);
    snprintf(path, sizeof path, "%s/interv_missing.h5", dir);
    CHECK(strata_posvec_load(&pv, path) != 0 && !pv);
    CHECK(strstr(strata_last_error(), "interv_missing.h5") != NULL);
out:
    free(tok);
    free(h0);
    free(h1);
    free(p);
}

int main(void)
{
    const char *shared = getenv("SHARED") ? getenv("SHARED") : "../shared";
    char path[4096], dir[4096];
    bool owned = false;
    if (!check_tmpdir(dir, sizeof dir, "interv", &owned)) return 1;
    snprintf(path, sizeof path, "%s/models/stories260K/stories260K.bin", shared);
    struct strata_model *m = NULL;
    CHECK_OK(strata_model_load(&m, path));
    if (m) {
        test_rope_and_temperature(m);
        test_editors(m, dir);
    }
    strata_model_free(m);
    if (owned) {
        char f[4300];
        snprintf(f, sizeof f, "%s/interv_posvec.h5", dir);
        remove(f);
        snprintf(f, sizeof f, "%s/interv_bad.h5", dir);
        remove(f);
        rmdir(dir);
    }
    return CHECK_DONE("test_interv");
}
