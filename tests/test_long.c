/* test_long — long inputs (issue 4): an 8192-token forward pass through
 * stories260K (trained window 512) and a generated model of width 1024 runs
 * with scratch memory linear in T, and its first rows equal a short run.
 *
 * What is checked:
 * - strata_ctx_bytes(n) is affine in n (bytes(8192) - bytes(4096) equals
 *   2 * (bytes(4096) - bytes(2048)) exactly): no (T, T) buffer anywhere, for
 *   both models, with and without a kv cache;
 * - the 8192-token pass gives finite hidden states at every boundary and
 *   finite next-token NLL (strata_forward_nll) at every position;
 * - causality and tiling: rows 0..P-1 of the long pass equal a separate
 *   P-token pass (P = 512, a tile boundary and the trained window) within
 *   1e-5 relative to the largest value of the boundary (the GEMMs see other
 *   shapes, so only float rounding may differ);
 * - the NLL of the long pass at positions < P equals the short pass's within
 *   5e-5 + 2e-6 |NLL| (float32 logits, reduced in double).
 * Under STRATA_SAN=1 the width-1024 model runs 2048 tokens instead.
 */
#include "check.h"
#include "mkmodel.h"
#include "strata.h"

#include <string.h>

static int64_t ctx_bytes(const struct strata_model *m, int64_t n, bool cache)
{
    struct strata_ctx_params p = strata_ctx_default_params();
    p.n_ctx = n;
    p.kv_cache = cache;
    struct strata_ctx *ctx = NULL;
    if (strata_ctx_create(&ctx, m, &p) != 0) return -1;
    int64_t b = strata_ctx_bytes(ctx);
    strata_ctx_free(ctx);
    return b;
}

/* Hidden states (L+1, T, D) and NLL (T-1) of tokens (T). */
static int run(const struct strata_model *m, const int32_t *tok, int64_t T, float *hidden,
               double *nll)
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
    if (!rc) rc = strata_forward_nll(ctx, nll, tok, T);
    strata_ctx_free(ctx);
    return rc;
}

static void check_model(const char *path, const char *label, int64_t T, int64_t P)
{
    struct strata_model *m = NULL;
    CHECK(strata_model_load(&m, path) == 0);
    if (!m) return;
    const struct strata_config *c = strata_model_config(m);
    for (int cache = 0; cache < 2; cache++) {
        int64_t b2 = ctx_bytes(m, 2048, cache), b4 = ctx_bytes(m, 4096, cache),
                b8 = ctx_bytes(m, 8192, cache);
        CHECK(b2 > 0 && b8 - b4 == 2 * (b4 - b2));
        printf("%s: context scratch %s kv cache: %.1f MB at 8192 positions, %.1f KB per "
               "position (affine in n: %s)\n",
               label, cache ? "with" : "without", (double)b8 / 1e6,
               (double)(b8 - b4) / 4096.0 / 1e3, b8 - b4 == 2 * (b4 - b2) ? "yes" : "NO");
    }

    const int64_t L1 = c->n_layer + 1, D = c->dim;
    int32_t *tok = malloc((size_t)T * sizeof *tok); /* (T) */
    uint64_t st = 99;
    tok[0] = 1;
    for (int64_t t = 1; t < T; t++) tok[t] = 3 + (int32_t)(strata_rng_next(&st) % (uint64_t)(c->vocab_size - 3));
    float *hl = malloc((size_t)(L1 * T * D) * sizeof *hl);  /* (L+1, T, D) */
    float *hs = malloc((size_t)(L1 * P * D) * sizeof *hs);  /* (L+1, P, D) */
    double *nl = malloc((size_t)(T - 1) * sizeof *nl);      /* (T-1) */
    double *ns = malloc((size_t)(P - 1) * sizeof *ns);      /* (P-1) */
    CHECK(run(m, tok, T, hl, nl) == 0);
    CHECK(run(m, tok, P, hs, ns) == 0);
    bool finite = true;
    for (int64_t i = 0; i < L1 * T * D; i++) finite &= isfinite(hl[i]) != 0;
    for (int64_t i = 0; i < T - 1; i++) finite &= isfinite(nl[i]) && nl[i] >= 0.0;
    CHECK(finite);
    double worst = 0.0, worst_nll = 0.0, mean_in = 0.0, mean_out = 0.0;
    for (int64_t l = 0; l < L1; l++) {
        double mx = 0.0, diff = 0.0;
        for (int64_t i = 0; i < P * D; i++) {
            double a = (double)hs[l * P * D + i], b = (double)hl[l * T * D + i];
            mx = fabs(a) > mx ? fabs(a) : mx;
            diff = fabs(a - b) > diff ? fabs(a - b) : diff;
        }
        worst = diff / mx > worst ? diff / mx : worst;
    }
    for (int64_t t = 0; t < P - 1; t++) {
        /* float32 logits (|logit| ~ 10 for a trained model, hundreds for a
         * random one) carry ~1e-6 relative error into the NLL */
        double e = fabs(nl[t] - ns[t]) / (5e-5 + 2e-6 * fabs(ns[t]));
        worst_nll = e > worst_nll ? e : worst_nll;
        mean_in += nl[t] / (double)(P - 1);
    }
    for (int64_t t = P - 1; t < T - 1; t++) mean_out += nl[t] / (double)(T - P);
    CHECK(worst <= 1e-5);
    CHECK(worst_nll <= 1.0);
    printf("%s: %lld tokens: finite %s; first %lld rows vs a %lld-token run: hidden rel %.2e, "
           "NLL error %.2f of tolerance; mean NLL (random tokens) %.3f inside, %.3f beyond\n",
           label, (long long)T, finite ? "yes" : "NO", (long long)P, (long long)P, worst, worst_nll,
           mean_in, mean_out);
    free(tok), free(hl), free(hs), free(nl), free(ns);
    strata_model_free(m);
}

int main(void)
{
    const char *shared = getenv("SHARED") ? getenv("SHARED") : "../shared";
    const bool san = getenv("STRATA_SAN") && !strcmp(getenv("STRATA_SAN"), "1");
    char tmp[512], path[1024];
    bool owned;
    if (!check_tmpdir(tmp, sizeof tmp, "test-long", &owned)) return 2;
    snprintf(path, sizeof path, "%s/models/stories260K/stories260K.bin", shared);
    check_model(path, "stories260K", 8192, 512);

    const struct mkmodel_shape w1024 = {.dim = 1024, .hidden_dim = 2048, .n_layers = 1,
                                        .n_heads = 16, .n_kv_heads = 4, .vocab_size = 512,
                                        .seq_len = 8192, .separate_classifier = 0};
    snprintf(path, sizeof path, "%s/long-w1024.bin", tmp);
    CHECK(mkmodel_write(path, &w1024, 77) == 0);
    check_model(path, "width 1024", san ? 2048 : 8192, 512);
    remove(path);
    if (owned) rmdir(tmp);
    return CHECK_DONE("test_long");
}
