/* test_dump_exact.c — the dump holds exactly what the runtime computes.
 * Runs bin/strata-probe-hidden (f32), then recomputes every sample's residual
 * stream from the dump's own /tokens with strata_forward and an observer,
 * and requires bit-identical values at every boundary. */
#include "check.h"
#include "strata.h"

#include <string.h>

struct cap {
    float *h; /* (L+1, T, D) */
    int64_t T, D;
};

static bool wants(void *u, int32_t l, enum strata_site s)
{
    (void)u;
    return (l == 0 && s == STRATA_SITE_RESID_PRE) || s == STRATA_SITE_RESID_POST;
}

static int observe(void *u, const struct strata_view *v)
{
    struct cap *c = u;
    float *dst = c->h + (v->site == STRATA_SITE_RESID_PRE ? 0 : v->layer + 1) * c->T * c->D;
    for (int64_t t = 0; t < v->n_rows; t++)
        memcpy(dst + t * c->D, v->data + t * v->ld, (size_t)c->D * sizeof(float));
    return 0;
}

int main(void)
{
    const char *shared = getenv("SHARED") ? getenv("SHARED") : "../shared";
    const char *bindir = getenv("BINDIR") ? getenv("BINDIR") : "bin";
    char tmp[512], model[1024], cmd[4096], dump_path[1024];
    bool owned;
    if (!check_tmpdir(tmp, sizeof tmp, "dump-exact", &owned)) return 2;
    snprintf(model, sizeof model, "%s/models/stories260K/stories260K.bin", shared);
    snprintf(dump_path, sizeof dump_path, "%s/exact.h5", tmp);
    snprintf(cmd, sizeof cmd,
             "%s/strata-probe-hidden --model %s --tokenizer %s/models/stories260K/tok512.bin "
             "--corpus %s/corpora/tinystories-val-1000.txt --samples 3 --seq-len 200 --seed 5 "
             "-o %s 2>/dev/null",
             bindir, model, shared, shared, dump_path);
    CHECK(system(cmd) == 0);

    struct strata_model *m = NULL;
    struct strata_dump *d = NULL;
    CHECK_OK(strata_model_load(&m, model));
    CHECK_OK(strata_dump_open(&d, dump_path));
    if (!m || !d) return CHECK_DONE("test_dump_exact");
    struct strata_dump_info info;
    CHECK_OK(strata_dump_info(d, &info));
    const int64_t L1 = info.n_layers, T = info.seq_len, D = info.dim;
    CHECK(info.complete && info.n_complete == 3 && L1 == 6 && T == 200 && D == 64);
    struct cap c = {.h = malloc((size_t)(L1 * T * D) * sizeof(float)), .T = T, .D = D};
    float *got = malloc((size_t)(L1 * T * D) * sizeof(float)); /* (L+1, T, D) */
    int32_t *tok = malloc((size_t)T * sizeof *tok);            /* (T) */
    struct strata_ctx_params p = strata_ctx_default_params();
    p.n_ctx = T;
    struct strata_ctx *ctx = NULL;
    CHECK_OK(strata_ctx_create(&ctx, m, &p));
    struct strata_observer obs = {.wants = wants, .observe = observe, .user = &c};
    CHECK_OK(strata_ctx_add_observer(ctx, &obs));
    for (int64_t s = 0; s < info.n_complete; s++) {
        CHECK_OK(strata_dump_read_sample(d, s, got, tok));
        CHECK(tok[0] == STRATA_TOKEN_BOS);
        CHECK_OK(strata_forward(ctx, NULL, tok, T, STRATA_LOGITS_NONE));
        int64_t differ = 0;
        for (int64_t i = 0; i < L1 * T * D; i++) differ += memcmp(&got[i], &c.h[i], 4) != 0;
        printf("sample %lld: %lld of %lld values differ\n", (long long)s, (long long)differ,
               (long long)(L1 * T * D));
        CHECK(differ == 0);
    }
    strata_ctx_free(ctx);
    strata_dump_free(d);
    strata_model_free(m);
    free(c.h);
    free(got);
    free(tok);
    remove(dump_path);
    if (owned) rmdir(tmp);
    return CHECK_DONE("test_dump_exact");
}
