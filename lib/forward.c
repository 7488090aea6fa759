/* forward.c — the instrumented forward pass of a Llama-family transformer
 * (RMSNorm, RoPE, grouped-query causal attention, SwiGLU), over all T tokens
 * of a sequence at once.
 *
 * Why it is shaped this way: almost all the work of a transformer is the
 * projections, so every projection is one cblas_sgemm over all T tokens
 * (weights are used in place from the mmapped checkpoint, never copied).
 * Attention is computed in tiles of B query rows against the causal prefix of
 * keys, so memory is (B, T) per tile and stays linear in T; the (T, T) map
 * exists only as the stream of tiles handed to observers that ask for it.
 *
 * Dimension legend: L blocks, T tokens in this call, P positions in the
 * cache, D width, F MLP width, H query heads, G key/value heads, d head
 * width, V vocabulary, B query rows per attention tile.
 */
#include "internal.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#define MAX_OBSERVERS 16

struct strata_ctx {
    const struct strata_model *model;
    struct strata_ctx_params p;
    int64_t n_past; /* positions held in the K/V cache */

    struct strata_observer obs[MAX_OBSERVERS];
    int n_obs;
    uint32_t *want; /* (L, SITE_COUNT) bit i: observer i wants the site */

    float *x;     /* (n_ctx, D) residual stream */
    float *xb;    /* (n_ctx, D) normed input of a sub-block */
    float *delta; /* (n_ctx, D) output of a sub-block before it is added */
    float *q;     /* (n_ctx, H*d) */
    float *att;   /* (n_ctx, H*d) attention output, heads side by side */
    float *hg;    /* (n_ctx, F) gate, then SwiGLU product */
    float *hu;    /* (n_ctx, F) up */
    float *kc;    /* (Lc, n_ctx, G*d) keys; Lc = L with kv_cache, else 1 */
    float *vc;    /* (Lc, n_ctx, G*d) values */
    float *tile;  /* (B, n_ctx) attention scores/probabilities */
    float *rope_cos, *rope_sin; /* (n_ctx, d/2) */
};

struct strata_ctx_params strata_ctx_default_params(void)
{
    struct strata_ctx_params p = {.n_ctx = 0, .kv_cache = false, .attn_block = 64};
    return p;
}

static float *alloc_floats(int64_t n) { return xmalloc((size_t)n * sizeof(float)); }

int strata_ctx_create(struct strata_ctx **out, const struct strata_model *model,
                      const struct strata_ctx_params *params)
{
    *out = NULL;
    const struct strata_config *c = &model->cfg;
    struct strata_ctx_params p = params ? *params : strata_ctx_default_params();
    if (p.n_ctx <= 0) p.n_ctx = c->seq_len;
    if (p.attn_block <= 0) p.attn_block = 64;
    if (p.n_ctx > (int64_t)1 << 24)
        return strata_fail(STRATA_E_ARG, "context of %lld positions is beyond the supported 2^24",
                           (long long)p.n_ctx);
    const int64_t n = p.n_ctx, D = c->dim, F = c->hidden_dim, d = c->head_dim;
    const int64_t Hd = (int64_t)c->n_head * d, kvd = (int64_t)c->n_kv_head * d;
    const int64_t Lc = p.kv_cache ? c->n_layer : 1;

    struct strata_ctx *ctx = xcalloc(1, sizeof *ctx);
    ctx->model = model;
    ctx->p = p;
    ctx->want = xcalloc((size_t)c->n_layer * STRATA_SITE_COUNT, sizeof *ctx->want);
    ctx->x = alloc_floats(n * D);
    ctx->xb = alloc_floats(n * D);
    ctx->delta = alloc_floats(n * D);
    ctx->q = alloc_floats(n * Hd);
    ctx->att = alloc_floats(n * Hd);
    ctx->hg = alloc_floats(n * F);
    ctx->hu = alloc_floats(n * F);
    ctx->kc = alloc_floats(Lc * n * kvd);
    ctx->vc = alloc_floats(Lc * n * kvd);
    ctx->tile = alloc_floats(p.attn_block * n);
    ctx->rope_cos = alloc_floats(n * d / 2);
    ctx->rope_sin = alloc_floats(n * d / 2);
    /* Angles in double: at long positions float m*theta loses the low bits
     * that decide the rotation. */
    for (int64_t pos = 0; pos < n; pos++) {
        for (int64_t i = 0; i < d / 2; i++) {
            double theta = pow(c->rope_base, -2.0 * (double)i / (double)d);
            double a = (double)pos * theta;
            ctx->rope_cos[pos * (d / 2) + i] = (float)cos(a);
            ctx->rope_sin[pos * (d / 2) + i] = (float)sin(a);
        }
    }
    *out = ctx;
    return 0;
}

void strata_ctx_free(struct strata_ctx *ctx)
{
    if (!ctx) return;
    free(ctx->want);
    free(ctx->x);
    free(ctx->xb);
    free(ctx->delta);
    free(ctx->q);
    free(ctx->att);
    free(ctx->hg);
    free(ctx->hu);
    free(ctx->kc);
    free(ctx->vc);
    free(ctx->tile);
    free(ctx->rope_cos);
    free(ctx->rope_sin);
    free(ctx);
}

int strata_ctx_add_observer(struct strata_ctx *ctx, const struct strata_observer *obs)
{
    if (ctx->n_obs >= MAX_OBSERVERS)
        return strata_fail(STRATA_E_ARG, "at most %d observers per context", MAX_OBSERVERS);
    if (!obs || !obs->wants || !obs->observe)
        return strata_fail(STRATA_E_ARG, "observer needs both wants() and observe()");
    ctx->obs[ctx->n_obs++] = *obs;
    return 0;
}

void strata_ctx_clear_observers(struct strata_ctx *ctx) { ctx->n_obs = 0; }
void strata_ctx_reset(struct strata_ctx *ctx) { ctx->n_past = 0; }
int64_t strata_ctx_n_past(const struct strata_ctx *ctx) { return ctx->n_past; }

static const char *site_names[STRATA_SITE_COUNT] = {"resid_pre", "attn_probs", "attn_out",
                                                    "mlp_out", "resid_post"};

const char *strata_site_name(enum strata_site site)
{
    return (unsigned)site < STRATA_SITE_COUNT ? site_names[site] : "?";
}

int strata_site_parse(const char *name, int32_t *layer, enum strata_site *site)
{
    long l = -1;
    int off = 0;
    if (sscanf(name, "blk.%ld.%n", &l, &off) != 1 || off == 0 || l < 0 || l > 1 << 20)
        return strata_fail(STRATA_E_ARG, "site '%s' is not of the form blk.<layer>.<site>", name);
    for (int s = 0; s < STRATA_SITE_COUNT; s++) {
        if (strcmp(name + off, site_names[s]) == 0) {
            *layer = (int32_t)l;
            *site = (enum strata_site)s;
            return 0;
        }
    }
    return strata_fail(STRATA_E_ARG,
                       "site '%s': unknown site name '%s' (resid_pre, attn_probs, attn_out, "
                       "mlp_out, resid_post)",
                       name, name + off);
}

/* ------------------------------------------------------------ kernels */

/* out (T, D) = x (T, D) / rms(x) * w (D), row by row; sums in double. */
static void rmsnorm(float *out, const float *x, const float *w, int64_t T, int64_t D, float eps)
{
    for (int64_t t = 0; t < T; t++) {
        const float *xr = x + t * D;
        float *o = out + t * D;
        double ss = 0.0;
        for (int64_t i = 0; i < D; i++) ss += (double)xr[i] * (double)xr[i];
        float s = (float)(1.0 / sqrt(ss / (double)D + (double)eps));
        for (int64_t i = 0; i < D; i++) o[i] = w[i] * (s * xr[i]);
    }
}

/* y (T, n_out) = x (T, n_in) W^T, W (n_out, n_in) row-major. */
static void linear(float *y, const float *x, const float *w, int64_t T, int64_t n_out,
                   int64_t n_in)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)n_out, (int)n_in, 1.0f, x,
                (int)n_in, w, (int)n_in, 0.0f, y, (int)n_out);
}

/* Rotate (T, n_head*d) in place at positions pos0.. (interleaved pairs). */
static void rope_interleaved(float *v, int64_t T, int64_t n_head, int64_t d, int64_t pos0,
                             const float *cos_t, const float *sin_t)
{
    const int64_t half = d / 2, width = n_head * d;
    for (int64_t t = 0; t < T; t++) {
        const float *cs = cos_t + (pos0 + t) * half, *sn = sin_t + (pos0 + t) * half;
        for (int64_t h = 0; h < n_head; h++) {
            float *r = v + t * width + h * d;
            for (int64_t i = 0; i < half; i++) {
                float a = r[2 * i], b = r[2 * i + 1];
                r[2 * i] = a * cs[i] - b * sn[i];
                r[2 * i + 1] = a * sn[i] + b * cs[i];
            }
        }
    }
}

static void add_into(float *x, const float *dx, int64_t n)
{
    for (int64_t i = 0; i < n; i++) x[i] += dx[i];
}

/* ------------------------------------------------------------ forward */

static int notify(struct strata_ctx *ctx, int32_t layer, enum strata_site site, int32_t head,
                  int64_t row0, int64_t n_rows, int64_t n_cols, int64_t ld, const float *data)
{
    uint32_t mask = ctx->want[(int64_t)layer * STRATA_SITE_COUNT + site];
    if (!mask) return 0;
    struct strata_view v = {.layer = layer, .site = site, .head = head, .row0 = row0,
                            .n_rows = n_rows, .n_cols = n_cols, .ld = ld, .data = data};
    for (int i = 0; i < ctx->n_obs; i++) {
        if (!(mask & (1u << i))) continue;
        if (ctx->obs[i].observe(ctx->obs[i].user, &v) != 0)
            return strata_fail(STRATA_E_OBSERVER, "observer %d stopped the forward pass at blk.%d.%s",
                               i, (int)layer, site_names[site]);
    }
    return 0;
}

/* Causal self-attention of T queries (positions pos0..pos0+T-1) against the
 * P = pos0+T keys in k, v (P, G*d); result in ctx->att (T, H*d). */
static int attention(struct strata_ctx *ctx, int32_t layer, const float *k, const float *v,
                     int64_t T, int64_t pos0)
{
    const struct strata_config *c = &ctx->model->cfg;
    const int64_t d = c->head_dim, Hd = (int64_t)c->n_head * d;
    const int64_t kvd = (int64_t)c->n_kv_head * d, group = c->n_head / c->n_kv_head;
    const int64_t B = ctx->p.attn_block;
    const float scale = (float)(1.0 / sqrt((double)d));
    const bool want_probs = ctx->want[(int64_t)layer * STRATA_SITE_COUNT + STRATA_SITE_ATTN_PROBS];
    float *S = ctx->tile; /* (nq, nk) with ld nk */

    for (int64_t h = 0; h < c->n_head; h++) {
        const int64_t g = h / group;
        for (int64_t q0 = 0; q0 < T; q0 += B) {
            const int64_t nq = T - q0 < B ? T - q0 : B;
            const int64_t nk = pos0 + q0 + nq; /* keys the last query of the tile sees */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)nk, (int)d, scale,
                        ctx->q + q0 * Hd + h * d, (int)Hd, k + g * d, (int)kvd, 0.0f, S, (int)nk);
            for (int64_t i = 0; i < nq; i++) {
                float *row = S + i * nk;
                const int64_t n_see = pos0 + q0 + i + 1;
                strata_softmax(row, n_see);
                for (int64_t j = n_see; j < nk; j++) row[j] = 0.0f;
            }
            if (want_probs) {
                int rc = notify(ctx, layer, STRATA_SITE_ATTN_PROBS, (int32_t)h, pos0 + q0, nq, nk,
                                nk, S);
                if (rc) return rc;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nq, (int)d, (int)nk, 1.0f,
                        S, (int)nk, v + g * d, (int)kvd, 0.0f, ctx->att + q0 * Hd + h * d,
                        (int)Hd);
        }
    }
    return 0;
}

static void ask_observers(struct strata_ctx *ctx)
{
    const int64_t L = ctx->model->cfg.n_layer;
    memset(ctx->want, 0, (size_t)L * STRATA_SITE_COUNT * sizeof *ctx->want);
    for (int i = 0; i < ctx->n_obs; i++)
        for (int32_t l = 0; l < L; l++)
            for (int s = 0; s < STRATA_SITE_COUNT; s++)
                if (ctx->obs[i].wants(ctx->obs[i].user, l, (enum strata_site)s))
                    ctx->want[(int64_t)l * STRATA_SITE_COUNT + s] |= 1u << i;
}

int strata_forward(struct strata_ctx *ctx, float *logits, const int32_t *tokens, int64_t n_tok,
                   enum strata_logits mode)
{
    const struct strata_model *m = ctx->model;
    const struct strata_config *c = &m->cfg;
    const int64_t T = n_tok, D = c->dim, F = c->hidden_dim, d = c->head_dim;
    const int64_t Hd = (int64_t)c->n_head * d, kvd = (int64_t)c->n_kv_head * d;
    const int64_t pos0 = ctx->p.kv_cache ? ctx->n_past : 0;
    const int64_t n = ctx->p.n_ctx;

    if (T <= 0) return strata_fail(STRATA_E_ARG, "forward needs at least one token");
    if (pos0 + T > n)
        return strata_fail(STRATA_E_SHAPE,
                           "%lld tokens at position %lld exceed the context of %lld positions; "
                           "create the context with a larger n_ctx",
                           (long long)T, (long long)pos0, (long long)n);
    if (mode != STRATA_LOGITS_NONE && !logits)
        return strata_fail(STRATA_E_ARG, "logits requested but no buffer given");
    for (int64_t t = 0; t < T; t++)
        if (tokens[t] < 0 || tokens[t] >= c->vocab_size)
            return strata_fail(STRATA_E_ARG, "token %d at index %lld is outside the vocabulary (0..%d)",
                               (int)tokens[t], (long long)t, (int)c->vocab_size - 1);
    ask_observers(ctx);

    float *x = ctx->x; /* (T, D) */
    for (int64_t t = 0; t < T; t++)
        memcpy(x + t * D, m->tok_emb + (int64_t)tokens[t] * D, (size_t)D * sizeof(float));

    int rc = 0;
    for (int32_t l = 0; l < c->n_layer; l++) {
        const struct strata_block_w *w = &m->blocks[l];
        float *kc = ctx->kc + (ctx->p.kv_cache ? (int64_t)l * n * kvd : 0); /* (P, G*d) */
        float *vc = ctx->vc + (ctx->p.kv_cache ? (int64_t)l * n * kvd : 0);
        if ((rc = notify(ctx, l, STRATA_SITE_RESID_PRE, -1, pos0, T, D, D, x))) return rc;

        rmsnorm(ctx->xb, x, w->rms_att, T, D, c->norm_eps);
        linear(ctx->q, ctx->xb, w->wq, T, Hd, D);
        linear(kc + pos0 * kvd, ctx->xb, w->wk, T, kvd, D);
        linear(vc + pos0 * kvd, ctx->xb, w->wv, T, kvd, D);
        rope_interleaved(ctx->q, T, c->n_head, d, pos0, ctx->rope_cos, ctx->rope_sin);
        rope_interleaved(kc + pos0 * kvd, T, c->n_kv_head, d, pos0, ctx->rope_cos, ctx->rope_sin);
        if ((rc = attention(ctx, l, kc, vc, T, pos0))) return rc;
        linear(ctx->delta, ctx->att, w->wo, T, D, Hd);
        if ((rc = notify(ctx, l, STRATA_SITE_ATTN_OUT, -1, pos0, T, D, D, ctx->delta))) return rc;
        add_into(x, ctx->delta, T * D);

        rmsnorm(ctx->xb, x, w->rms_ffn, T, D, c->norm_eps);
        linear(ctx->hg, ctx->xb, w->w1, T, F, D);
        linear(ctx->hu, ctx->xb, w->w3, T, F, D);
        strata_swiglu(ctx->hg, ctx->hu, T * F);
        linear(ctx->delta, ctx->hg, w->w2, T, D, F);
        if ((rc = notify(ctx, l, STRATA_SITE_MLP_OUT, -1, pos0, T, D, D, ctx->delta))) return rc;
        add_into(x, ctx->delta, T * D);
        if ((rc = notify(ctx, l, STRATA_SITE_RESID_POST, -1, pos0, T, D, D, x))) return rc;
    }

    if (mode != STRATA_LOGITS_NONE) {
        const int64_t first = mode == STRATA_LOGITS_LAST ? T - 1 : 0;
        rmsnorm(ctx->xb, x + first * D, m->rms_final, T - first, D, c->norm_eps);
        linear(logits, ctx->xb, m->wcls, T - first, c->vocab_size, D);
    }
    if (ctx->p.kv_cache) ctx->n_past += T;
    return 0;
}

int strata_generate_greedy(struct strata_ctx *ctx, int32_t *out, int64_t *n_out,
                           const int32_t *prompt, int64_t n_prompt, int64_t steps, int32_t stop)
{
    *n_out = 0;
    if (!ctx->p.kv_cache)
        return strata_fail(STRATA_E_ARG, "greedy generation needs a context with kv_cache");
    if (n_prompt < 1) return strata_fail(STRATA_E_ARG, "generation needs a prompt of at least BOS");
    if (steps > ctx->p.n_ctx)
        return strata_fail(STRATA_E_SHAPE, "%lld steps exceed the context of %lld positions",
                           (long long)steps, (long long)ctx->p.n_ctx);
    const int64_t V = ctx->model->cfg.vocab_size;
    float *logits = alloc_floats(V); /* (1, V) */
    strata_ctx_reset(ctx);
    int rc = 0;
    /* As run.c: position pos consumes token[pos] and proposes token[pos+1];
     * the prompt is forced, so it runs in one batched call. */
    int64_t n_forced = n_prompt <= steps ? n_prompt : steps + 1;
    for (int64_t i = 1; i < n_forced; i++) {
        if (prompt[i] == stop) goto done;
        out[(*n_out)++] = prompt[i];
    }
    if (n_forced > steps || steps < 1) goto done; /* the prompt alone fills every step */
    if ((rc = strata_forward(ctx, logits, prompt, n_forced, STRATA_LOGITS_LAST))) goto done;
    for (int64_t pos = n_forced - 1; pos < steps; pos++) {
        if (pos > n_forced - 1) {
            int32_t tok = out[*n_out - 1];
            if ((rc = strata_forward(ctx, logits, &tok, 1, STRATA_LOGITS_LAST))) goto done;
        }
        int32_t best = 0;
        for (int64_t i = 1; i < V; i++)
            if (logits[i] > logits[best]) best = (int32_t)i;
        if (best == stop) break;
        out[(*n_out)++] = best;
    }
done:
    free(logits);
    return rc;
}
