/* test_ctx — one loaded model, many contexts (issue 11).
 *
 * The model is read-only after loading; every run-time setting (position
 * scheme, RoPE base and scaling, sliding window, attention temperature,
 * skipped blocks, threads) is a context parameter. What is checked, on a
 * generated GQA model wide enough that the GEMMs, heads and widening are
 * split over the context's workers:
 * - each setting changes the result (control: a test that cannot fail
 *   otherwise), and a context with that setting on a shared model gives
 *   exactly (bit for bit: hidden states at every boundary and all logits)
 *   what a context on a separately loaded copy of the model gives;
 * - contexts created before and after another context with other settings
 *   are unaffected by it (the old model-wide setter leaked a window change
 *   into existing contexts);
 * - the same contexts run at the same time on separate threads, repeatedly,
 *   give the same bits as run one after the other;
 * - the worker count does not change the bits (a GEMM's columns are split,
 *   never its sums);
 * - strata_config_resolve and strata_ctx_config report the settings, and
 *   refuse bad ones naming the field.
 */
#include "check.h"
#include "mkmodel.h"
#include "strata.h"

#include <pthread.h>
#include <string.h>

enum { T = 160 };

struct result {
    float *hidden; /* (L+1, T, D) */
    float *logits; /* (T, V) */
};

struct job {
    struct strata_ctx *ctx;
    const int32_t *tok; /* (T) */
    struct result *res;
    int reps;
    int rc;
};

static void result_alloc(struct result *r, const struct strata_config *c)
{
    r->hidden = calloc((size_t)(c->n_layer + 1) * T * (size_t)c->dim, sizeof(float));
    r->logits = calloc((size_t)T * (size_t)c->vocab_size, sizeof(float));
}

static void result_free(struct result *r)
{
    free(r->hidden);
    free(r->logits);
}

static bool result_same(const struct result *a, const struct result *b, const struct strata_config *c)
{
    return !memcmp(a->hidden, b->hidden, (size_t)(c->n_layer + 1) * T * (size_t)c->dim * sizeof(float)) &&
           !memcmp(a->logits, b->logits, (size_t)T * (size_t)c->vocab_size * sizeof(float));
}

static double result_maxdiff(const struct result *a, const struct result *b, const struct strata_config *c)
{
    double m = 0;
    const size_t n = (size_t)T * (size_t)c->vocab_size;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a->logits[i] - (double)b->logits[i]);
        m = d > m ? d : m;
    }
    return m;
}

/* A context of m with params p and a hidden-state capture into r. */
static struct strata_ctx *make_ctx(const struct strata_model *m, struct strata_ctx_params p,
                                   struct strata_hidden_capture *cap, struct result *r)
{
    const struct strata_config *c = strata_model_config(m);
    p.n_ctx = T;
    struct strata_ctx *ctx = NULL;
    if (strata_ctx_create(&ctx, m, &p) != 0) {
        fprintf(stderr, "ctx: %s\n", strata_last_error());
        return NULL;
    }
    *cap = (struct strata_hidden_capture){r->hidden, T, c->dim};
    struct strata_observer o = strata_observer_hidden(cap);
    if (strata_ctx_add_observer(ctx, &o) != 0) {
        strata_ctx_free(ctx);
        return NULL;
    }
    return ctx;
}

static void *run_job(void *arg)
{
    struct job *j = arg;
    for (int r = 0; r < j->reps && !j->rc; r++)
        j->rc = strata_forward(j->ctx, j->res->logits, j->tok, T, STRATA_LOGITS_ALL);
    return NULL;
}

static int run_once(struct strata_ctx *ctx, const int32_t *tok, struct result *r)
{
    return strata_forward(ctx, r->logits, tok, T, STRATA_LOGITS_ALL);
}

/* The settings under test. */
#define N_SET 6
static struct strata_ctx_params setting(int k)
{
    struct strata_ctx_params p = strata_ctx_default_params();
    switch (k) {
    case 0: break; /* the checkpoint's settings */
    case 1: p.rope_base = 500.0; break;
    case 2: strata_rope_scaling_parse("linear:4", 0, &p.rope_scaling); break;
    case 3: p.sliding_window = 24; break;
    case 4: p.attn_scale = 1.7; break;
    case 5: {
        static const int32_t skip[] = {1};
        p.skip_layers = skip;
        p.n_skip = 1;
        p.pos = STRATA_POS_ALIBI;
        break;
    }
    }
    return p;
}

static void test_resolve(const struct strata_model *m)
{
    const struct strata_config *c0 = strata_model_config(m);
    struct strata_config c;
    struct strata_ctx_params p = strata_ctx_default_params();
    CHECK_OK(strata_config_resolve(&c, m, &p));
    CHECK(c.pos == c0->pos && c.rope_base == c0->rope_base && c.sliding_window == c0->sliding_window &&
          c.scaling.type == c0->scaling.type);
    p.rope_base = 500.0;
    p.sliding_window = 7;
    CHECK_OK(strata_rope_scaling_parse("dynamic-ntk:2", 0, &p.rope_scaling));
    CHECK_OK(strata_config_resolve(&c, m, &p));
    CHECK(c.rope_base == 500.0 && c.sliding_window == 7 && c.scaling.type == STRATA_SCALING_DYNAMIC &&
          c.scaling.factor == 2.0 && c.scaling.original_max == c0->seq_len);
    CHECK(c.dim == c0->dim && c.n_layer == c0->n_layer && c.vocab_size == c0->vocab_size);
    /* the model itself never changes */
    CHECK(strata_model_config(m)->rope_base == c0->rope_base);

    struct strata_ctx_params bad = strata_ctx_default_params();
    bad.rope_base = 0.5;
    CHECK(strata_config_resolve(&c, m, &bad) == STRATA_E_ARG && strstr(strata_last_error(), "rope_base"));
    bad = strata_ctx_default_params();
    bad.sliding_window = -2;
    CHECK(strata_config_resolve(&c, m, &bad) == STRATA_E_ARG &&
          strstr(strata_last_error(), "sliding_window"));
    bad = strata_ctx_default_params();
    bad.pos = (enum strata_pos)9;
    CHECK(strata_config_resolve(&c, m, &bad) == STRATA_E_ARG);
    bad = strata_ctx_default_params();
    bad.n_threads = -1;
    struct strata_ctx *ctx = NULL;
    CHECK(strata_ctx_create(&ctx, m, &bad) == STRATA_E_ARG && !ctx);
    CHECK(strata_rope_scaling_parse("dynamic-ntk:x", 0, &bad.rope_scaling) == STRATA_E_ARG);

    /* strata_ctx_config reports what the context runs */
    p = setting(3);
    p.n_ctx = T;
    CHECK_OK(strata_ctx_create(&ctx, m, &p));
    if (ctx) {
        CHECK(strata_ctx_config(ctx)->sliding_window == 24);
        char *j = strata_config_json(strata_ctx_config(ctx));
        CHECK(j && strstr(j, "\"sliding_window\":24"));
        free(j);
    }
    strata_ctx_free(ctx);
}

int main(void)
{
    char tmp[512], path[1024];
    bool owned;
    if (!check_tmpdir(tmp, sizeof tmp, "test-ctx", &owned)) return 2;
    /* 4 blocks so skipping one matters; 8 heads over 2 KV heads; D*D*T
     * above the size where a GEMM is split over workers. */
    const struct mkmodel_shape shape = {.dim = 256, .hidden_dim = 512, .n_layers = 4, .n_heads = 8,
                                        .n_kv_heads = 2, .vocab_size = 300, .seq_len = 256,
                                        .separate_classifier = 1};
    snprintf(path, sizeof path, "%s/ctx.bin", tmp);
    CHECK(mkmodel_write(path, &shape, 11) == 0);
    struct strata_model *shared = NULL;
    CHECK_OK(strata_model_load(&shared, path));
    if (!shared) return CHECK_DONE("test_ctx");
    const struct strata_config *c = strata_model_config(shared);
    test_resolve(shared);

    int32_t tok[T];
    uint64_t st = 5;
    for (int t = 0; t < T; t++) tok[t] = (int32_t)(strata_rng_next(&st) % (uint64_t)c->vocab_size);

    /* Reference: each setting on its own, separately loaded model. */
    struct result ref[N_SET], got[N_SET], par[N_SET];
    for (int k = 0; k < N_SET; k++) {
        result_alloc(&ref[k], c);
        result_alloc(&got[k], c);
        result_alloc(&par[k], c);
        struct strata_model *own = NULL;
        CHECK_OK(strata_model_load(&own, path));
        struct strata_hidden_capture cap;
        struct strata_ctx *ctx = own ? make_ctx(own, setting(k), &cap, &ref[k]) : NULL;
        CHECK(ctx != NULL);
        if (ctx) CHECK_OK(run_once(ctx, tok, &ref[k]));
        strata_ctx_free(ctx);
        strata_model_free(own);
    }
    for (int k = 1; k < N_SET; k++) /* control: every setting changes the logits */
        CHECK(result_maxdiff(&ref[k], &ref[0], c) > 1e-3);

    /* All settings as contexts of the one shared model, all alive at once,
     * created in an order that puts other settings before and after each. */
    struct strata_ctx *ctx[N_SET] = {0};
    struct strata_hidden_capture cap[N_SET];
    for (int k = N_SET - 1; k >= 0; k -= 2) ctx[k] = make_ctx(shared, setting(k), &cap[k], &got[k]);
    for (int k = 0; k < N_SET; k += 2) ctx[k] = make_ctx(shared, setting(k), &cap[k], &got[k]);
    for (int k = 0; k < N_SET; k++) {
        CHECK(ctx[k] != NULL);
        if (!ctx[k]) continue;
        CHECK_OK(run_once(ctx[k], tok, &got[k]));
        CHECK(result_same(&got[k], &ref[k], c));
        if (!result_same(&got[k], &ref[k], c))
            fprintf(stderr, "setting %d: shared model differs from its own model by %.3g\n", k,
                    result_maxdiff(&got[k], &ref[k], c));
    }
    for (int k = 0; k < N_SET; k++) strata_ctx_free(ctx[k]);

    /* The same on threads: every setting's context on its own thread, all at
     * once, several passes each. */
    pthread_t th[N_SET];
    struct job job[N_SET];
    struct strata_hidden_capture pcap[N_SET];
    for (int k = 0; k < N_SET; k++) {
        ctx[k] = make_ctx(shared, setting(k), &pcap[k], &par[k]);
        job[k] = (struct job){ctx[k], tok, &par[k], 3, ctx[k] ? 0 : -1};
    }
    for (int k = 0; k < N_SET; k++) CHECK(pthread_create(&th[k], NULL, run_job, &job[k]) == 0);
    for (int k = 0; k < N_SET; k++) {
        pthread_join(th[k], NULL);
        CHECK(job[k].rc == 0);
        CHECK(result_same(&par[k], &ref[k], c));
    }
    for (int k = 0; k < N_SET; k++) strata_ctx_free(ctx[k]);

    /* Worker count: 1, 2 and 3 workers give the same bits. */
    for (int nt = 1; nt <= 3; nt++) {
        struct strata_ctx_params p = setting(0);
        p.n_threads = nt;
        struct result r;
        result_alloc(&r, c);
        struct strata_hidden_capture hc;
        struct strata_ctx *x = make_ctx(shared, p, &hc, &r);
        CHECK(x && strata_ctx_n_threads(x) == nt);
        if (x) CHECK_OK(run_once(x, tok, &r));
        CHECK(result_same(&r, &ref[0], c));
        strata_ctx_free(x);
        result_free(&r);
    }
    printf("%d settings: shared-model contexts, sequential and on %d threads at once, equal "
           "separately loaded models bit for bit\n", N_SET, N_SET);
    for (int k = 0; k < N_SET; k++) result_free(&ref[k]), result_free(&got[k]), result_free(&par[k]);
    strata_model_free(shared);
    remove(path);
    if (owned) rmdir(tmp);
    return CHECK_DONE("test_ctx");
}
