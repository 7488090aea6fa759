/* test_forward_parts — only the work asked for, and the pass in parts
 * (issue 12).
 *
 * What is checked, on a generated 8-block GQA model:
 * - early stop: without logits, a pass whose observer wants boundaries up to
 *   b runs blocks 0 .. b-1 only. Proved by an editor on the last block
 *   (editors do not ask for work) that counts its calls: 0 with an early
 *   stop, 1 when logits are asked for. The boundaries seen equal a full
 *   pass's bit for bit; an observer of resid_pre of block b (the stream
 *   entering it) is still called, with the same rows;
 * - the pass in parts: strata_forward_embed, strata_forward_blocks over
 *   [0, a) and [a, L), strata_forward_logits give strata_forward's logits
 *   and every boundary bit for bit (the parts are what pipeline ranks run);
 *   bad block ranges and kv_cache contexts are refused;
 * - stop requests (the abort callback): a request raised by an observer of
 *   block 2 ends the pass with STRATA_E_INTERRUPTED before the last block,
 *   the callback is asked inside blocks (tiles, GEMM row chunks), and the
 *   next call runs whole with the same bits;
 * - batches: strata_forward_batch of 3 sequences equals 3 strata_forward
 *   calls bit for bit (every boundary, all logits, last-row logits).
 */
#include "check.h"
#include "mkmodel.h"
#include "strata.h"

#include <string.h>

enum { T = 96 };

struct upto {
    int32_t b;     /* boundaries 0 .. b wanted */
    float *hidden; /* (L+1, T, D), boundaries 0 .. b filled */
    int64_t D;
};

static bool upto_wants(void *user, int32_t layer, enum strata_site site)
{
    const struct upto *u = user;
    return (layer == 0 && site == STRATA_SITE_RESID_PRE) ||
           (site == STRATA_SITE_RESID_POST && layer + 1 <= u->b);
}

static int upto_observe(void *user, const struct strata_view *v)
{
    struct upto *u = user;
    const int64_t b = v->site == STRATA_SITE_RESID_PRE ? 0 : v->layer + 1;
    for (int64_t t = 0; t < v->n_rows; t++)
        memcpy(u->hidden + (b * T + v->row0 + t) * u->D, v->data + t * v->ld,
               (size_t)u->D * sizeof(float));
    return 0;
}

/* An editor on the last block that only counts the calls it gets. */
struct counter {
    int32_t layer;
    int calls;
};

static bool count_wants(void *user, int32_t layer, enum strata_site site)
{
    const struct counter *k = user;
    return layer == k->layer && site == STRATA_SITE_RESID_POST;
}

static int count_observe(void *user, const struct strata_view *v)
{
    (void)v;
    ((struct counter *)user)->calls++;
    return 0;
}

/* Wants resid_pre of block `layer` only. */
struct pre {
    int32_t layer;
    float *rows; /* (T, D) */
    int64_t D;
    int calls;
};

static bool pre_wants(void *user, int32_t layer, enum strata_site site)
{
    return layer == ((struct pre *)user)->layer && site == STRATA_SITE_RESID_PRE;
}

static int pre_observe(void *user, const struct strata_view *v)
{
    struct pre *p = user;
    p->calls++;
    for (int64_t t = 0; t < v->n_rows; t++)
        memcpy(p->rows + (v->row0 + t) * p->D, v->data + t * v->ld, (size_t)p->D * sizeof(float));
    return 0;
}

/* Stop requests: an observer of block 2 raises the flag (an event, not a
 * time), the callback reports it; calls counts how often it was asked. */
struct stopper {
    volatile int flag;
    int calls;
};

static bool stop_cb(void *data)
{
    struct stopper *st = data;
    __atomic_add_fetch(&st->calls, 1, __ATOMIC_RELAXED);
    return st->flag;
}

static bool raise_wants(void *user, int32_t layer, enum strata_site site)
{
    (void)user;
    return layer == 2 && site == STRATA_SITE_ATTN_OUT;
}

static int raise_observe(void *user, const struct strata_view *v)
{
    (void)v;
    ((struct stopper *)user)->flag = 1;
    return 0;
}

/* Every boundary of every sequence of a batch call: hidden (S, L+1, T, D). */
struct batch_cap {
    float *hidden;
    int64_t L, D;
};

static bool bcap_wants(void *user, int32_t layer, enum strata_site site)
{
    (void)user;
    return (layer == 0 && site == STRATA_SITE_RESID_PRE) || site == STRATA_SITE_RESID_POST;
}

static int bcap_observe(void *user, const struct strata_view *v)
{
    struct batch_cap *bc = user;
    const int64_t b = v->site == STRATA_SITE_RESID_PRE ? 0 : v->layer + 1;
    for (int64_t t = 0; t < v->n_rows; t++)
        memcpy(bc->hidden + ((v->seq * (bc->L + 1) + b) * T + v->row0 + t) * bc->D,
               v->data + t * v->ld, (size_t)bc->D * sizeof(float));
    return 0;
}

int main(void)
{
    char tmp[512], path[1024];
    bool owned;
    if (!check_tmpdir(tmp, sizeof tmp, "test-forward-parts", &owned)) return 2;
    const struct mkmodel_shape shape = {.dim = 128, .hidden_dim = 256, .n_layers = 8, .n_heads = 8,
                                        .n_kv_heads = 2, .vocab_size = 200, .seq_len = 128,
                                        .separate_classifier = 1};
    snprintf(path, sizeof path, "%s/parts.bin", tmp);
    CHECK(mkmodel_write(path, &shape, 3) == 0);
    struct strata_model *m = NULL;
    CHECK_OK(strata_model_load(&m, path));
    if (!m) return CHECK_DONE("test_forward_parts");
    const struct strata_config *c = strata_model_config(m);
    const int64_t L = c->n_layer, D = c->dim, V = c->vocab_size;
    int32_t tok[T];
    uint64_t st = 9;
    for (int t = 0; t < T; t++) tok[t] = (int32_t)(strata_rng_next(&st) % (uint64_t)V);

    struct strata_ctx_params p = strata_ctx_default_params();
    p.n_ctx = T;
    const size_t hsz = (size_t)((L + 1) * T * D);
    float *full = calloc(hsz, sizeof(float)), *part = calloc(hsz, sizeof(float));
    float *lg_full = calloc((size_t)(T * V), sizeof(float)), *lg_part = calloc((size_t)(T * V), sizeof(float));

    /* The full pass with logits: every boundary, and the counter runs. */
    struct strata_ctx *ctx = NULL;
    CHECK_OK(strata_ctx_create(&ctx, m, &p));
    struct strata_hidden_capture cap = {full, T, D};
    struct strata_observer ho = strata_observer_hidden(&cap);
    struct counter k = {(int32_t)L - 1, 0};
    struct strata_observer ko = {count_wants, count_observe, &k};
    CHECK_OK(strata_ctx_add_observer(ctx, &ho));
    CHECK_OK(strata_ctx_add_editor(ctx, &ko));
    CHECK_OK(strata_forward(ctx, lg_full, tok, T, STRATA_LOGITS_ALL));
    CHECK(k.calls == 1);
    strata_ctx_free(ctx);

    /* Early stop at boundary 3: blocks 0..2 run, the last block never. */
    const int32_t b = 3;
    struct upto u = {b, part, D};
    struct strata_observer uo = {upto_wants, upto_observe, &u};
    k.calls = 0;
    CHECK_OK(strata_ctx_create(&ctx, m, &p));
    CHECK_OK(strata_ctx_add_observer(ctx, &uo));
    CHECK_OK(strata_ctx_add_editor(ctx, &ko));
    CHECK_OK(strata_forward(ctx, NULL, tok, T, STRATA_LOGITS_NONE));
    CHECK(k.calls == 0);
    CHECK(!memcmp(part, full, (size_t)((b + 1) * T * D) * sizeof(float)));
    /* the same context asked for logits runs every block */
    CHECK_OK(strata_forward(ctx, lg_part, tok, T, STRATA_LOGITS_ALL));
    CHECK(k.calls == 1);
    CHECK(!memcmp(lg_part, lg_full, (size_t)(T * V) * sizeof(float)));
    strata_ctx_free(ctx);

    /* resid_pre of block 5 alone: blocks 0..4 run, and its rows are
     * boundary 5. */
    struct pre pr = {5, calloc((size_t)(T * D), sizeof(float)), D, 0};
    struct strata_observer po = {pre_wants, pre_observe, &pr};
    k.calls = 0;
    CHECK_OK(strata_ctx_create(&ctx, m, &p));
    CHECK_OK(strata_ctx_add_observer(ctx, &po));
    CHECK_OK(strata_ctx_add_editor(ctx, &ko));
    CHECK_OK(strata_forward(ctx, NULL, tok, T, STRATA_LOGITS_NONE));
    CHECK(pr.calls == 1 && k.calls == 0);
    CHECK(!memcmp(pr.rows, full + 5 * T * D, (size_t)(T * D) * sizeof(float)));
    strata_ctx_free(ctx);
    free(pr.rows);

    /* The pass in parts, as two pipeline ranks would run it. */
    memset(part, 0, hsz * sizeof(float));
    float *x = calloc((size_t)(T * D), sizeof(float)); /* (T, D) the stream passed along */
    struct strata_hidden_capture cap2 = {part, T, D};
    struct strata_observer ho2 = strata_observer_hidden(&cap2);
    CHECK_OK(strata_ctx_create(&ctx, m, &p));
    CHECK_OK(strata_ctx_add_observer(ctx, &ho2));
    CHECK_OK(strata_forward_embed(ctx, x, tok, T));
    CHECK(!memcmp(x, full, (size_t)(T * D) * sizeof(float)));
    CHECK_OK(strata_forward_blocks(ctx, x, T, 0, 5));
    CHECK_OK(strata_forward_blocks(ctx, x, T, 5, (int32_t)L));
    CHECK_OK(strata_forward_logits(ctx, lg_part, x, T, STRATA_LOGITS_ALL));
    CHECK(!memcmp(part + T * D, full + T * D, (size_t)(L * T * D) * sizeof(float)));
    CHECK(!memcmp(lg_part, lg_full, (size_t)(T * V) * sizeof(float)));
    CHECK(strata_forward_blocks(ctx, x, T, 3, 2) == STRATA_E_ARG);
    CHECK(strata_forward_blocks(ctx, x, T, 0, (int32_t)L + 1) == STRATA_E_ARG);
    CHECK(strata_forward_blocks(ctx, x, T + 1000, 0, 1) == STRATA_E_SHAPE);
    strata_ctx_free(ctx);
    p.kv_cache = true;
    CHECK_OK(strata_ctx_create(&ctx, m, &p));
    CHECK(strata_forward_blocks(ctx, x, T, 0, 1) == STRATA_E_ARG);
    strata_ctx_free(ctx);

    /* A stop request mid-block (after block 2's attention) ends the pass
     * there: STRATA_E_INTERRUPTED, the last block never runs; the callback
     * is asked within blocks (tiles, GEMM chunks), not only between them;
     * the next call runs whole and gives the same logits. */
    p.kv_cache = false;
    struct stopper stp = {0, 0};
    p.abort_callback = stop_cb;
    p.abort_callback_data = &stp;
    struct strata_observer ro = {raise_wants, raise_observe, &stp};
    k.calls = 0;
    CHECK_OK(strata_ctx_create(&ctx, m, &p));
    CHECK_OK(strata_ctx_add_observer(ctx, &ro));
    CHECK_OK(strata_ctx_add_editor(ctx, &ko));
    CHECK(strata_forward(ctx, lg_part, tok, T, STRATA_LOGITS_ALL) == STRATA_E_INTERRUPTED);
    CHECK(k.calls == 0 && stp.calls > 3 * (int)L / 8);
    printf("stop request after block 2's attention: interrupted; the callback was asked %d times\n",
           stp.calls);
    stp.flag = 0;
    stp.calls = 0;
    strata_ctx_clear_observers(ctx);
    CHECK_OK(strata_forward(ctx, lg_part, tok, T, STRATA_LOGITS_ALL));
    CHECK(!memcmp(lg_part, lg_full, (size_t)(T * V) * sizeof(float)));
    CHECK(stp.calls > (int)L); /* asked inside blocks too */
    strata_ctx_free(ctx);

    /* Batches: S sequences in one call equal S strata_forward calls, every
     * boundary and all logits bit for bit (the GEMMs take more rows; an
     * output's sum over K does not change), also with LOGITS_LAST and with
     * workers splitting (sequence, head) pairs. */
    {
        enum { S = 3 };
        int32_t btok[S * T];
        for (int i = 0; i < S * T; i++) btok[i] = (int32_t)(strata_rng_next(&st) % (uint64_t)V);
        const size_t per = (size_t)((L + 1) * T * D);
        float *bh = calloc(S * per, sizeof(float)), *sh = calloc(per, sizeof(float));
        float *blg = calloc((size_t)(S * T * V), sizeof(float)), *slg = calloc((size_t)(T * V), sizeof(float));
        float *blast = calloc((size_t)(S * V), sizeof(float)), *slast = calloc((size_t)V, sizeof(float));
        struct strata_ctx_params bp = strata_ctx_default_params();
        bp.n_ctx = T;
        bp.n_seq_max = S;
        struct strata_ctx *bctx = NULL, *sctx = NULL;
        CHECK_OK(strata_ctx_create(&bctx, m, &bp));
        struct batch_cap bc = {bh, L, D};
        struct strata_observer bo = {bcap_wants, bcap_observe, &bc};
        CHECK_OK(strata_ctx_add_observer(bctx, &bo));
        CHECK_OK(strata_forward_batch(bctx, blg, btok, S, T, STRATA_LOGITS_ALL));
        CHECK_OK(strata_forward_batch(bctx, blast, btok, S, T, STRATA_LOGITS_LAST));
        CHECK(strata_forward_batch(bctx, blg, btok, S + 1, T, STRATA_LOGITS_ALL) == STRATA_E_ARG);
        p = strata_ctx_default_params();
        p.n_ctx = T;
        CHECK_OK(strata_ctx_create(&sctx, m, &p));
        struct strata_hidden_capture sc = {sh, T, D};
        struct strata_observer so = strata_observer_hidden(&sc);
        CHECK_OK(strata_ctx_add_observer(sctx, &so));
        for (int q = 0; q < S; q++) {
            CHECK_OK(strata_forward(sctx, slg, btok + q * T, T, STRATA_LOGITS_ALL));
            CHECK(!memcmp(bh + q * per, sh, per * sizeof(float)));
            CHECK(!memcmp(blg + (size_t)q * T * V, slg, (size_t)(T * V) * sizeof(float)));
            CHECK_OK(strata_forward(sctx, slast, btok + q * T, T, STRATA_LOGITS_LAST));
            CHECK(!memcmp(blast + (size_t)q * V, slast, (size_t)V * sizeof(float)));
        }
        strata_ctx_free(bctx);
        strata_ctx_free(sctx);
        bp.kv_cache = true;
        CHECK(strata_ctx_create(&bctx, m, &bp) == STRATA_E_ARG && !bctx);
        free(bh), free(sh), free(blg), free(slg), free(blast), free(slast);
    }

    free(x), free(full), free(part), free(lg_full), free(lg_part);
    strata_model_free(m);
    remove(path);
    if (owned) rmdir(tmp);
    return CHECK_DONE("test_forward_parts");
}
