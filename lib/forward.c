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
 * Weights stored as F16/BF16 (or unaligned F32) are widened to float32 one
 * block at a time into a scratch buffer just before the block runs, so a
 * model costs its stored size plus one float32 block; the classifier is
 * widened in row chunks.
 *
 * Positions (docs/CHECKPOINTS.md): RoPE in either pair layout with
 * Hugging Face's rope_scaling variants (frequencies and angles in double),
 * ALiBi with Baichuan's slopes, or none; optional sliding-window attention.
 *
 * Dimension legend: L blocks, T tokens in this call, P positions in the
 * cache, D width, F MLP width, H query heads, G key/value heads, d head
 * width, V vocabulary, B query rows per attention tile, R classifier rows
 * per chunk.
 */
#include "model.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

/* A sanity bound on workers (machines have far fewer cores), not a buffer
 * size: the pool's arrays are allocated to the count asked for. */
#define MAX_THREADS 1024

/* A context's own workers. Why not OpenBLAS' threads: its thread count is
 * one process-wide setting, so contexts on several threads could not each
 * choose theirs, and attention (many small GEMMs) needs it at one thread
 * while the projections want all. Here every GEMM runs single-threaded
 * OpenBLAS on a share of the work, and the context decides the split. */
struct pool {
    int n;                         /* threads, the caller's included */
    pthread_t *th;                 /* (n) th[1..n-1] */
    struct pool_worker {
        struct pool *pool;
        int i;
    } *worker;                     /* (n) */
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    uint64_t gen;                  /* bumped for every job */
    int pending;                   /* workers still running the job */
    bool quit;
    void (*fn)(void *arg, int i, int n);
    void *arg;
};

struct strata_ctx {
    const struct strata_model *model;
    struct strata_config cfg; /* the model's with this context's settings */
    struct strata_ctx_params p;
    int64_t n_past; /* positions held in the K/V cache */
    struct pool pool;

    struct strata_observer *obs; /* (cap_obs) editors first, then observers */
    int n_obs;                   /* both */
    int n_ed;                    /* editors */
    int cap_obs;
    bool *skip;                                /* (L) blocks to skip */
    uint8_t *want;  /* (L, SITE_COUNT, n_obs) observer i wants the site; sized at each call */
    int64_t want_cap; /* entries allocated for want */
    uint8_t *any;   /* (L, SITE_COUNT) 1: an editor or observer wants it; 2: an observer */

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
    int64_t rope_key;           /* P the table was built for (dynamic NTK); -1: none yet */
    float *alibi;               /* (H) ALiBi slopes, or NULL */
    float *wbuf;                /* (one block's widened weights) or NULL */
    float *cls_buf;             /* (R, D) widened classifier rows, or NULL */
    float *rms_final;           /* (D) final norm weights in float32 */
    int64_t bytes;              /* scratch allocated */
    int n_threads;              /* = pool.n */
    volatile int aborted;       /* the abort callback said stop during this call */
    int64_t n_seq;              /* sequences in this call (strata_forward_batch) */
    int64_t cur_seq;            /* the sequence the views being handed out belong to */
    int64_t cls_rows;           /* R */
};

struct strata_ctx_params strata_ctx_default_params(void)
{
    struct strata_ctx_params p = {.n_ctx = 0, .kv_cache = false, .attn_block = 64,
                                  .skip_layers = NULL, .n_skip = 0, .attn_scale = 1.0,
                                  .pos = STRATA_POS_MODEL, .rope_base = 0.0,
                                  .rope_scaling = {.type = STRATA_SCALING_MODEL},
                                  .sliding_window = -1, .n_threads = 0, .n_seq_max = 1};
    return p;
}

/* Asked between blocks, tiles and GEMM row chunks, on any worker; once it
 * says stop, every later question says so without asking again. */
static bool stop_now(struct strata_ctx *ctx)
{
    if (ctx->aborted) return true;
    if (ctx->p.abort_callback && ctx->p.abort_callback(ctx->p.abort_callback_data)) {
        ctx->aborted = 1;
        return true;
    }
    return false;
}

static int interrupted(void)
{
    return strata_fail(STRATA_E_INTERRUPTED, "the forward pass was asked to stop");
}

/* ------------------------------------------------------------ workers */

static void *pool_main(void *arg)
{
    const struct pool_worker *w = arg;
    struct pool *p = w->pool;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->gen == seen && !p->quit) pthread_cond_wait(&p->go, &p->mu);
        if (p->quit) break;
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        p->fn(p->arg, w->i, p->n);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* n threads in all; fewer if the system refuses some (the work is then
 * split over those that started). */
static void pool_start(struct pool *p, int n)
{
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    p->n = 1;
    p->th = xcalloc((size_t)n, sizeof *p->th);
    p->worker = xcalloc((size_t)n, sizeof *p->worker);
    /* Workers block every signal, so a program's Ctrl-C handler runs on a
     * thread of its own, never inside a GEMM share. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 1; i < n; i++) {
        p->worker[i] = (struct pool_worker){p, i};
        if (pthread_create(&p->th[i], NULL, pool_main, &p->worker[i]) != 0) break;
        p->n = i + 1;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void pool_stop(struct pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->quit = true;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->th[i], NULL);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    free(p->th);
    free(p->worker);
}

/* fn(arg, i, n) for i = 0 .. n-1, i = 0 on the calling thread; returns
 * when all are done. */
static void pool_run(struct pool *p, void (*fn)(void *arg, int i, int n), void *arg)
{
    if (p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->pending = p->n - 1;
    p->gen++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    fn(arg, 0, p->n);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

/* OpenBLAS' own thread count before strata set it to one: the default
 * n_threads. Once per process, before any context computes. */
static int blas_default_threads = 1;
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_single(void)
{
    blas_default_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
}

static float *alloc_floats(int64_t n) { return xmalloc((size_t)n * sizeof(float)); }

/* Scratch of a context, counted for strata_ctx_bytes. */
static float *ctx_floats(struct strata_ctx *ctx, int64_t n)
{
    ctx->bytes += n * (int64_t)sizeof(float);
    return alloc_floats(n);
}

/* ------------------------------------------------------------ positions */

/* cos/sin tables (n_ctx, d/2) valid for a sequence of P positions; rebuilt
 * only when P changes what dynamic NTK scaling computes. Angles in double:
 * at long positions float m*theta loses the low bits that decide the
 * rotation. */
static void ensure_rope(struct strata_ctx *ctx, int64_t P)
{
    const struct strata_config *c = &ctx->cfg;
    if (c->pos != STRATA_POS_ROPE_HALF && c->pos != STRATA_POS_ROPE_INTERLEAVED) return;
    const bool dyn = c->scaling.type == STRATA_SCALING_DYNAMIC;
    const int64_t key = dyn && P > c->scaling.original_max ? P : 0;
    if (key == ctx->rope_key) return;
    /* A dynamic table serves only this P (the next call rebuilds it), so
     * positions beyond P are not computed; a static one serves them all. */
    const int64_t half = c->head_dim / 2, n = key ? P : ctx->p.n_ctx;
    double *theta = xmalloc((size_t)half * sizeof *theta); /* (d/2) */
    double mscale = strata_rope_freqs(theta, c->head_dim, c->rope_base, &c->scaling, P);
    for (int64_t pos = 0; pos < n; pos++) {
        for (int64_t i = 0; i < half; i++) {
            double a = (double)pos * theta[i];
            ctx->rope_cos[pos * half + i] = (float)(mscale * cos(a));
            ctx->rope_sin[pos * half + i] = (float)(mscale * sin(a));
        }
    }
    free(theta);
    ctx->rope_key = key;
}

int strata_ctx_create(struct strata_ctx **out, const struct strata_model *model,
                      const struct strata_ctx_params *params)
{
    *out = NULL;
    struct strata_config cfg;
    int rc = strata_config_resolve(&cfg, model, params);
    if (rc) return rc;
    const struct strata_config *c = &cfg;
    struct strata_ctx_params p = params ? *params : strata_ctx_default_params();
    if (p.n_threads < 0 || p.n_threads > MAX_THREADS)
        return strata_fail(STRATA_E_ARG, "n_threads %d: expected 0 (default) to %d", p.n_threads,
                           MAX_THREADS);
    if (p.n_ctx <= 0) p.n_ctx = c->seq_len;
    if (p.n_seq_max <= 0) p.n_seq_max = 1;
    if (p.kv_cache && p.n_seq_max > 1)
        return strata_fail(STRATA_E_ARG, "n_seq_max %lld: a kv_cache context holds one sequence",
                           (long long)p.n_seq_max);
    if (p.n_seq_max > ((int64_t)1 << 24) / (p.n_ctx > 0 ? p.n_ctx : 1))
        return strata_fail(STRATA_E_ARG, "n_seq_max %lld x n_ctx %lld rows: beyond the supported 2^24",
                           (long long)p.n_seq_max, (long long)p.n_ctx);
    if (p.attn_block <= 0) p.attn_block = 64;
    if (p.attn_scale == 0.0) p.attn_scale = 1.0;
    if (!(p.attn_scale > 0.0) || !isfinite(p.attn_scale))
        return strata_fail(STRATA_E_ARG, "attention scale %g must be finite and > 0", p.attn_scale);
    if (p.n_skip < 0 || (p.n_skip > 0 && !p.skip_layers))
        return strata_fail(STRATA_E_ARG, "n_skip %d without skip_layers", (int)p.n_skip);
    for (int32_t i = 0; i < p.n_skip; i++)
        if (p.skip_layers[i] < 0 || p.skip_layers[i] >= c->n_layer)
            return strata_fail(STRATA_E_ARG, "layer %d to skip is out of range (blocks 0..%d)",
                               (int)p.skip_layers[i], (int)c->n_layer - 1);
    if (p.n_ctx > (int64_t)1 << 24)
        return strata_fail(STRATA_E_ARG, "context of %lld positions is beyond the supported 2^24",
                           (long long)p.n_ctx);
    const int64_t n = p.n_ctx, D = c->dim, F = c->hidden_dim, d = c->head_dim;
    const int64_t Hd = (int64_t)c->n_head * d, kvd = (int64_t)c->n_kv_head * d;
    const int64_t Lc = p.kv_cache ? c->n_layer : 1;
    const int64_t rows = p.n_seq_max * n; /* every sequence of a batch call side by side */

    struct strata_ctx *ctx = xcalloc(1, sizeof *ctx);
    ctx->model = model;
    ctx->cfg = cfg;
    ctx->p = p;
    ctx->any = xcalloc((size_t)c->n_layer * STRATA_SITE_COUNT, sizeof *ctx->any);
    ctx->skip = xcalloc((size_t)c->n_layer, sizeof *ctx->skip);
    for (int32_t i = 0; i < p.n_skip; i++) ctx->skip[p.skip_layers[i]] = true;
    ctx->p.skip_layers = NULL; /* not kept: the caller's array may go away */
    ctx->x = ctx_floats(ctx, rows * D);
    ctx->xb = ctx_floats(ctx, rows * D);
    ctx->delta = ctx_floats(ctx, rows * D);
    ctx->q = ctx_floats(ctx, rows * Hd);
    ctx->att = ctx_floats(ctx, rows * Hd);
    ctx->hg = ctx_floats(ctx, rows * F);
    ctx->hu = ctx_floats(ctx, rows * F);
    ctx->kc = ctx_floats(ctx, Lc * rows * kvd);
    ctx->vc = ctx_floats(ctx, Lc * rows * kvd);
    pthread_once(&blas_once, blas_single);
    int nt = p.n_threads ? p.n_threads : blas_default_threads;
    nt = nt < 1 ? 1 : nt > MAX_THREADS ? MAX_THREADS : nt;
    pool_start(&ctx->pool, nt);
    ctx->n_threads = ctx->pool.n;
    ctx->p.n_threads = ctx->n_threads;
    ctx->tile = ctx_floats(ctx, ctx->n_threads * p.attn_block * n); /* one tile per thread */
    ctx->rope_cos = ctx_floats(ctx, n * d / 2);
    ctx->rope_sin = ctx_floats(ctx, n * d / 2);
    ctx->rope_key = -1;
    if (c->pos == STRATA_POS_ALIBI) {
        ctx->alibi = ctx_floats(ctx, c->n_head);
        strata_alibi_slopes(ctx->alibi, c->n_head);
    }
    /* Scratch for the largest block's weights that cannot be used in place. */
    int64_t wmax = 0;
    for (int32_t l = 0; l < c->n_layer; l++) {
        const struct strata_w *ws = strata_block_ws(&model->blocks[l]);
        int64_t need = 0;
        for (int i = 0; i < STRATA_BLOCK_N_W; i++)
            if (!strata_w_direct(&ws[i])) need += ws[i].n;
        if (need > wmax) wmax = need;
    }
    if (wmax) ctx->wbuf = ctx_floats(ctx, wmax);
    ctx->rms_final = ctx_floats(ctx, D);
    strata_widen(ctx->rms_final, model->rms_final.data, model->rms_final.dtype, D);
    if (!strata_w_direct(&model->wcls)) {
        int64_t R = ((int64_t)1 << 23) / D; /* 32 MiB of rows */
        ctx->cls_rows = R < 1 ? 1 : R > c->vocab_size ? c->vocab_size : R;
        ctx->cls_buf = ctx_floats(ctx, ctx->cls_rows * D);
    }
    *out = ctx;
    return 0;
}

void strata_ctx_free(struct strata_ctx *ctx)
{
    if (!ctx) return;
    pool_stop(&ctx->pool);
    free(ctx->want);
    free(ctx->any);
    free(ctx->obs);
    free(ctx->skip);
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
    free(ctx->alibi);
    free(ctx->wbuf);
    free(ctx->cls_buf);
    free(ctx->rms_final);
    free(ctx);
}

int strata_ctx_add_observer(struct strata_ctx *ctx, const struct strata_observer *obs)
{
    if (!obs || !obs->wants || !obs->observe)
        return strata_fail(STRATA_E_ARG, "observer needs both wants() and observe()");
    if (ctx->n_obs == ctx->cap_obs) {
        ctx->cap_obs = ctx->cap_obs ? 2 * ctx->cap_obs : 8;
        ctx->obs = xrealloc(ctx->obs, (size_t)ctx->cap_obs * sizeof *ctx->obs);
    }
    ctx->obs[ctx->n_obs++] = *obs;
    return 0;
}

int strata_ctx_add_editor(struct strata_ctx *ctx, const struct strata_observer *ed)
{
    int rc = strata_ctx_add_observer(ctx, ed);
    if (rc) return rc;
    /* Move it behind the editors already there, ahead of every observer. */
    struct strata_observer e = ctx->obs[ctx->n_obs - 1];
    memmove(&ctx->obs[ctx->n_ed + 1], &ctx->obs[ctx->n_ed],
            (size_t)(ctx->n_obs - 1 - ctx->n_ed) * sizeof e);
    ctx->obs[ctx->n_ed++] = e;
    return 0;
}

void strata_ctx_clear_observers(struct strata_ctx *ctx) { ctx->n_obs = ctx->n_ed = 0; }
void strata_ctx_reset(struct strata_ctx *ctx) { ctx->n_past = 0; }
int64_t strata_ctx_n_past(const struct strata_ctx *ctx) { return ctx->n_past; }
int64_t strata_ctx_bytes(const struct strata_ctx *ctx) { return ctx->bytes; }
const struct strata_config *strata_ctx_config(const struct strata_ctx *ctx) { return &ctx->cfg; }
int strata_ctx_n_threads(const struct strata_ctx *ctx) { return ctx->n_threads; }

static const char *site_names[STRATA_SITE_COUNT] = {"resid_pre", "attn_logits", "attn_probs", "attn_out",
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
                       "site '%s': unknown site name '%s' (resid_pre, attn_logits, attn_probs, "
                       "attn_out, mlp_out, resid_post)",
                       name, name + off);
}

static bool hidden_wants(void *user, int32_t layer, enum strata_site site)
{
    (void)user;
    return (layer == 0 && site == STRATA_SITE_RESID_PRE) || site == STRATA_SITE_RESID_POST;
}

static int hidden_observe(void *user, const struct strata_view *v)
{
    struct strata_hidden_capture *c = user;
    const int64_t boundary = v->site == STRATA_SITE_RESID_PRE ? 0 : v->layer + 1;
    if (v->row0 + v->n_rows > c->T) return 1; /* more positions than the buffer holds */
    for (int64_t t = 0; t < v->n_rows; t++)
        memcpy(c->hidden + (boundary * c->T + v->row0 + t) * c->D, v->data + t * v->ld,
               (size_t)c->D * sizeof(float));
    return 0;
}

struct strata_observer strata_observer_hidden(struct strata_hidden_capture *cap)
{
    struct strata_observer o = {.wants = hidden_wants, .observe = hidden_observe, .user = cap};
    return o;
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

struct gemm_job {
    struct strata_ctx *ctx;
    float *y;       /* (T, ldy) */
    int64_t ldy;
    const float *x; /* (T, K) */
    const float *w; /* (N, K) */
    int64_t T, N, K;
};

/* Share i of n: a range of output columns, in whole multiples of 16 so every
 * share runs the kernel tiles one call would (test_ctx.c finds 1-3 workers
 * bit-identical; OpenBLAS may still pick another kernel for another column
 * count, which would change only the last float32 bit). */
static void gemm_share(void *arg, int i, int n)
{
    const struct gemm_job *j = arg;
    const int64_t tiles = (j->N + 15) / 16;
    const int64_t c0 = tiles * i / n * 16, c1e = tiles * (i + 1) / n * 16;
    const int64_t c1 = c1e < j->N ? c1e : j->N;
    if (c0 >= c1) return;
    /* Rows in chunks so a stop request is seen within one chunk's time at
     * any T (rows are independent: the same bits as one call). */
    const int64_t R = 4096;
    for (int64_t r0 = 0; r0 < j->T && !stop_now(j->ctx); r0 += R) {
        const int64_t nr = j->T - r0 < R ? j->T - r0 : R;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nr, (int)(c1 - c0), (int)j->K,
                    1.0f, j->x + r0 * j->K, (int)j->K, j->w + c0 * j->K, (int)j->K, 0.0f,
                    j->y + r0 * j->ldy + c0, (int)j->ldy);
    }
}

/* y (T, n_out; row stride ldy) = x (T, n_in) W^T, W (n_out, n_in)
 * row-major, the columns split over the context's workers when the product
 * is large enough to pay for waking them. */
static void linear(struct strata_ctx *ctx, float *y, int64_t ldy, const float *x, const float *w,
                   int64_t T, int64_t n_out, int64_t n_in)
{
    struct gemm_job j = {ctx, y, ldy, x, w, T, n_out, n_in};
    if (T * n_out * n_in < ((int64_t)1 << 21)) gemm_share(&j, 0, 1);
    else pool_run(&ctx->pool, gemm_share, &j);
}

/* Rotate v (T, n_head*d) in place at positions pos0.. . Pairs are
 * (2i, 2i+1) when interleaved, (i, i+d/2) otherwise (rotate_half). */
static void rope_apply(float *v, int64_t T, int64_t n_head, int64_t d, int64_t pos0,
                       const float *cos_t, const float *sin_t, bool interleaved)
{
    const int64_t half = d / 2, width = n_head * d;
    const int64_t stride = interleaved ? 2 : 1, partner = interleaved ? 1 : half;
    for (int64_t t = 0; t < T; t++) {
        const float *cs = cos_t + (pos0 + t) * half, *sn = sin_t + (pos0 + t) * half;
        for (int64_t h = 0; h < n_head; h++) {
            float *r = v + t * width + h * d;
            for (int64_t i = 0; i < half; i++) {
                float *p0 = r + i * stride, *p1 = p0 + partner;
                float a = *p0, b = *p1;
                *p0 = a * cs[i] - b * sn[i];
                *p1 = a * sn[i] + b * cs[i];
            }
        }
    }
}

static void add_into(float *x, const float *dx, int64_t n)
{
    for (int64_t i = 0; i < n; i++) x[i] += dx[i];
}

/* ------------------------------------------------------------ forward */

/* Hand a view to the editors (with `mut`, the writable rows at residual
 * sites) and then the observers that want (layer, site). */
static int notify(struct strata_ctx *ctx, int32_t layer, enum strata_site site, int32_t head,
                  int64_t row0, int64_t col0, int64_t n_rows, int64_t n_cols, int64_t ld,
                  const float *data, float *mut)
{
    const int64_t ls = (int64_t)layer * STRATA_SITE_COUNT + site;
    if (!ctx->any[ls]) return 0;
    const uint8_t *want = ctx->want + ls * ctx->n_obs; /* (n_obs) */
    struct strata_view v = {.layer = layer, .site = site, .head = head, .row0 = row0,
                            .col0 = col0, .n_rows = n_rows, .n_cols = n_cols, .ld = ld,
                            .data = data, .seq = ctx->cur_seq};
    for (int i = 0; i < ctx->n_obs; i++) {
        if (!want[i]) continue;
        v.edit = i < ctx->n_ed ? mut : NULL;
        if (ctx->obs[i].observe(ctx->obs[i].user, &v) != 0)
            return strata_fail(STRATA_E_OBSERVER, "observer %d stopped the forward pass at blk.%d.%s",
                               i, (int)layer, site_names[site]);
    }
    return 0;
}

/* Causal self-attention of T queries (positions pos0..pos0+T-1) against the
 * P = pos0+T keys in k, v (P, G*d), for heads h0, h0+step, ... with tile
 * buffer S; result in ctx->att (T, H*d). A tile of queries qs..qs+nq-1
 * needs keys col0..qs+nq-1 only, where col0 > 0 when a sliding window hides
 * the oldest keys. */
static int attend_heads(struct strata_ctx *ctx, int32_t layer, const float *kb, const float *vb,
                        int64_t T, int64_t pos0, int64_t h0, int64_t step, float *S)
{
    const struct strata_config *c = &ctx->cfg;
    const int64_t d = c->head_dim, Hd = (int64_t)c->n_head * d;
    const int64_t kvd = (int64_t)c->n_kv_head * d, group = c->n_head / c->n_kv_head;
    const int64_t B = ctx->p.attn_block, W = c->sliding_window;
    const float scale = (float)(ctx->p.attn_scale / sqrt((double)d));
    const bool want_probs = ctx->any[(int64_t)layer * STRATA_SITE_COUNT + STRATA_SITE_ATTN_PROBS];
    const bool want_logits = ctx->any[(int64_t)layer * STRATA_SITE_COUNT + STRATA_SITE_ATTN_LOGITS];
    /* S: (nq, nk) with ld nk */

    /* pairs (sequence, head), sequence-major: observers see each sequence's
     * heads in order */
    for (int64_t ph = h0; ph < ctx->n_seq * c->n_head; ph += step) {
        const int64_t sq = ph / c->n_head, h = ph % c->n_head, g = h / group;
        const float *k = kb + sq * T * kvd, *v = vb + sq * T * kvd; /* (T, G*d) this sequence's */
        const float *qseq = ctx->q + sq * T * Hd;
        float *aseq = ctx->att + sq * T * Hd;
        ctx->cur_seq = sq;
        const float slope = ctx->alibi ? ctx->alibi[h] : 0.0f;
        for (int64_t q0 = 0; q0 < T; q0 += B) {
            if (stop_now(ctx)) return STRATA_E_INTERRUPTED;
            const int64_t nq = T - q0 < B ? T - q0 : B;
            const int64_t qs = pos0 + q0;                           /* first query position */
            const int64_t col0 = W > 0 && qs - W + 1 > 0 ? qs - W + 1 : 0;
            const int64_t nk = qs + nq - col0;                      /* keys of the tile */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)nk, (int)d, scale,
                        qseq + q0 * Hd + h * d, (int)Hd, k + col0 * kvd + g * d, (int)kvd,
                        0.0f, S, (int)nk);
            for (int64_t i = 0; i < nq; i++) {
                float *row = S + i * nk;
                const int64_t qp = qs + i;
                const int64_t j0 = W > 0 && qp - W + 1 > col0 ? qp - W + 1 - col0 : 0;
                const int64_t j1 = qp + 1 - col0; /* visible keys: j0 <= j < j1 */
                if (ctx->alibi)
                    for (int64_t j = j0; j < j1; j++) row[j] += slope * (float)(col0 + j - qp);
                if (want_logits) { /* masked keys as -Inf for the logits view */
                    for (int64_t j = 0; j < j0; j++) row[j] = -INFINITY;
                    for (int64_t j = j1; j < nk; j++) row[j] = -INFINITY;
                }
            }
            if (want_logits) {
                int rc = notify(ctx, layer, STRATA_SITE_ATTN_LOGITS, (int32_t)h, qs, col0, nq, nk,
                                nk, S, NULL);
                if (rc) return rc;
            }
            for (int64_t i = 0; i < nq; i++) {
                float *row = S + i * nk;
                const int64_t qp = qs + i;
                const int64_t j0 = W > 0 && qp - W + 1 > col0 ? qp - W + 1 - col0 : 0;
                const int64_t j1 = qp + 1 - col0;
                for (int64_t j = 0; j < j0; j++) row[j] = 0.0f;
                strata_softmax(row + j0, j1 - j0);
                for (int64_t j = j1; j < nk; j++) row[j] = 0.0f;
            }
            if (want_probs) {
                int rc = notify(ctx, layer, STRATA_SITE_ATTN_PROBS, (int32_t)h, qs, col0, nq, nk,
                                nk, S, NULL);
                if (rc) return rc;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nq, (int)d, (int)nk, 1.0f,
                        S, (int)nk, v + col0 * kvd + g * d, (int)kvd, 0.0f,
                        aseq + q0 * Hd + h * d, (int)Hd);
        }
    }
    return 0;
}

struct head_job {
    struct strata_ctx *ctx;
    int32_t layer;
    const float *k, *v;
    int64_t T, pos0;
};

/* Worker i of n takes (sequence, head) pairs i, i+n, ... with its own tile
 * buffer. */
static void head_share(void *arg, int i, int n)
{
    const struct head_job *j = arg;
    const int64_t tile = j->ctx->p.attn_block * j->ctx->p.n_ctx;
    attend_heads(j->ctx, j->layer, j->k, j->v, j->T, j->pos0, i, n, j->ctx->tile + i * tile);
}

/* Why threads here: attention is many small tile GEMMs plus the softmax,
 * too small to split inside one GEMM, but heads are independent, so they
 * are dealt to the context's workers. When an observer wants this layer's
 * attention tiles, the heads run in order on the calling thread so
 * observers see tiles in the documented order and need not be
 * thread-safe. */
static int attention(struct strata_ctx *ctx, int32_t layer, const float *k, const float *v,
                     int64_t T, int64_t pos0)
{
    const uint8_t *any = ctx->any + (int64_t)layer * STRATA_SITE_COUNT;
    const bool observed = any[STRATA_SITE_ATTN_PROBS] || any[STRATA_SITE_ATTN_LOGITS];
    if (observed || ctx->n_threads <= 1 || ctx->n_seq * ctx->cfg.n_head <= 1)
        return attend_heads(ctx, layer, k, v, T, pos0, 0, 1, ctx->tile);
    struct head_job job = {ctx, layer, k, v, T, pos0};
    pool_run(&ctx->pool, head_share, &job);
    return ctx->aborted ? STRATA_E_INTERRUPTED : 0;
}

/* A block's widening, shared out: worker k of n widens its element range
 * of the concatenation of the weights that need it. */
struct widen_job {
    const struct strata_w *ws; /* (STRATA_BLOCK_N_W) */
    float *dst;                /* the block's scratch */
    int64_t total;             /* elements to widen */
};

static void widen_share(void *arg, int k, int n)
{
    const struct widen_job *j = arg;
    const int64_t e0 = j->total * k / n, e1 = j->total * (k + 1) / n;
    int64_t base = 0; /* start of weight i in the concatenation */
    for (int i = 0; i < STRATA_BLOCK_N_W; i++) {
        const struct strata_w *w = &j->ws[i];
        if (strata_w_direct(w)) continue;
        const int64_t a = e0 > base ? e0 : base, b = e1 < base + w->n ? e1 : base + w->n;
        if (a < b)
            strata_widen(j->dst + a, (const char *)w->data + (size_t)(a - base) * strata_dtype_size(w->dtype),
                         w->dtype, b - a);
        base += w->n;
    }
}

/* Float32 pointers to block l's weights (in struct order): the mapping
 * itself where possible, else widened into ctx->wbuf (split over the
 * threads: widening a 7B block is ~200M elements, memory-bound, and the
 * BLAS threads are idle meanwhile); with release_weights the widened
 * tensors' pages are then dropped from the process. */
static void block_weights(struct strata_ctx *ctx, int32_t l, const float *out[STRATA_BLOCK_N_W])
{
    const struct strata_w *ws = strata_block_ws(&ctx->model->blocks[l]);
    int64_t total = 0;
    for (int i = 0; i < STRATA_BLOCK_N_W; i++) {
        if (strata_w_direct(&ws[i])) {
            out[i] = ws[i].data;
            continue;
        }
        out[i] = ctx->wbuf + total;
        total += ws[i].n;
    }
    if (!total) return;
    struct widen_job job = {ws, ctx->wbuf, total};
    if (total < ((int64_t)1 << 20)) widen_share(&job, 0, 1);
    else pool_run(&ctx->pool, widen_share, &job);
    for (int i = 0; i < STRATA_BLOCK_N_W; i++)
        if (ctx->p.release_weights && !strata_w_direct(&ws[i]) && ws[i].t)
            strata_tensor_release(ws[i].t);
}

/* logits (T, V) = xn (T, D) Wcls^T, times the NormHead scale per column. */
static void classifier(struct strata_ctx *ctx, float *logits, const float *xn, int64_t T)
{
    const struct strata_model *m = ctx->model;
    const int64_t V = ctx->cfg.vocab_size, D = ctx->cfg.dim;
    if (strata_w_direct(&m->wcls)) {
        linear(ctx, logits, V, xn, m->wcls.data, T, V, D);
    } else {
        const size_t es = strata_dtype_size(m->wcls.dtype);
        for (int64_t v0 = 0; v0 < V; v0 += ctx->cls_rows) {
            const int64_t nv = V - v0 < ctx->cls_rows ? V - v0 : ctx->cls_rows;
            strata_widen(ctx->cls_buf, (const char *)m->wcls.data + (size_t)(v0 * D) * es,
                         m->wcls.dtype, nv * D);
            linear(ctx, logits + v0, V, xn, ctx->cls_buf, T, nv, D);
        }
    }
    if (m->cls_scale)
        for (int64_t t = 0; t < T; t++)
            for (int64_t v = 0; v < V; v++) logits[t * V + v] *= m->cls_scale[v];
}

static void ask_observers(struct strata_ctx *ctx)
{
    const int64_t L = ctx->cfg.n_layer, n = L * STRATA_SITE_COUNT * ctx->n_obs;
    if (n > ctx->want_cap) {
        ctx->want = xrealloc(ctx->want, (size_t)n);
        ctx->want_cap = n;
    }
    memset(ctx->any, 0, (size_t)(L * STRATA_SITE_COUNT));
    for (int64_t ls = 0; ls < L * STRATA_SITE_COUNT; ls++) {
        uint8_t *want = ctx->want + ls * ctx->n_obs; /* (n_obs) */
        for (int i = 0; i < ctx->n_obs; i++) {
            want[i] = ctx->obs[i].wants(ctx->obs[i].user, (int32_t)(ls / STRATA_SITE_COUNT),
                                        (enum strata_site)(ls % STRATA_SITE_COUNT));
            if (want[i]) ctx->any[ls] |= i < ctx->n_ed ? 1 : 3;
        }
    }
}

/* Blocks 0 .. n-1 must run for the observers (not the editors: an edit no
 * observer sees changes nothing): resid_pre of block l needs blocks below
 * l, any other site of block l needs block l too. */
static int32_t blocks_wanted(const struct strata_ctx *ctx)
{
    int32_t n = 0;
    for (int32_t l = 0; l < ctx->cfg.n_layer; l++)
        for (int s = 0; s < STRATA_SITE_COUNT; s++)
            if (ctx->any[(int64_t)l * STRATA_SITE_COUNT + s] & 2)
                n = s == STRATA_SITE_RESID_PRE ? (l > n ? l : n) : l + 1;
    return n;
}

/* T tokens at positions n_past.. fit the context? */
static int check_span(const struct strata_ctx *ctx, int64_t T)
{
    const int64_t pos0 = ctx->p.kv_cache ? ctx->n_past : 0;
    if (T <= 0) return strata_fail(STRATA_E_ARG, "forward needs at least one token");
    if (pos0 + T > ctx->p.n_ctx)
        return strata_fail(STRATA_E_SHAPE,
                           "%lld tokens at position %lld exceed the context of %lld positions; "
                           "create the context with a larger n_ctx",
                           (long long)T, (long long)pos0, (long long)ctx->p.n_ctx);
    return 0;
}

/* ctx->x (T, D) = the token embeddings. */
static int embed(struct strata_ctx *ctx, const int32_t *tokens, int64_t T)
{
    const struct strata_model *m = ctx->model;
    const struct strata_config *c = &ctx->cfg;
    const int64_t D = c->dim;
    for (int64_t t = 0; t < T; t++)
        if (tokens[t] < 0 || tokens[t] >= c->vocab_size)
            return strata_fail(STRATA_E_ARG, "token %d at index %lld is outside the vocabulary (0..%d)",
                               (int)tokens[t], (long long)t, (int)c->vocab_size - 1);
    const size_t es = strata_dtype_size(m->tok_emb.dtype);
    for (int64_t t = 0; t < T; t++)
        strata_widen(ctx->x + t * D, (const char *)m->tok_emb.data + (size_t)((int64_t)tokens[t] * D) * es,
                     m->tok_emb.dtype, D);
    return 0;
}

/* A residual site of every sequence in turn: rows s*T .. s*T+T-1 of data
 * (n_seq*T, D) are sequence s. */
static int notify_rows(struct strata_ctx *ctx, int32_t layer, enum strata_site site, int64_t pos0,
                       int64_t T, float *data, bool writable)
{
    const int64_t D = ctx->cfg.dim;
    for (int64_t sq = 0; sq < ctx->n_seq; sq++) {
        ctx->cur_seq = sq;
        float *rows = data + sq * T * D;
        int rc = notify(ctx, layer, site, -1, pos0, 0, T, D, D, rows, writable ? rows : NULL);
        if (rc) return rc;
    }
    return 0;
}

/* Blocks l0 .. l1-1 on the residual stream ctx->x (n_seq*T, D), each
 * sequence at positions pos0.. ; the stream after block l1-1 is left in
 * ctx->x. Every GEMM takes the rows of all sequences at once. */
static int run_blocks(struct strata_ctx *ctx, int64_t n_tok, int32_t l0, int32_t l1)
{
    const struct strata_config *c = &ctx->cfg;
    const int64_t T = n_tok, D = c->dim, F = c->hidden_dim, d = c->head_dim;
    const int64_t R = ctx->n_seq * T; /* rows of every GEMM */
    const int64_t Hd = (int64_t)c->n_head * d, kvd = (int64_t)c->n_kv_head * d;
    const int64_t pos0 = ctx->p.kv_cache ? ctx->n_past : 0;
    const int64_t n = ctx->p.n_ctx;

    ensure_rope(ctx, pos0 + T);
    const bool rope = c->pos == STRATA_POS_ROPE_HALF || c->pos == STRATA_POS_ROPE_INTERLEAVED;
    const bool interleaved = c->pos == STRATA_POS_ROPE_INTERLEAVED;

    float *x = ctx->x; /* (T, D) */
    int rc = 0;
    for (int32_t l = l0; l < l1; l++) {
        if (stop_now(ctx)) return interrupted();
        float *kc = ctx->kc + (ctx->p.kv_cache ? (int64_t)l * n * kvd : 0); /* (P, G*d) */
        float *vc = ctx->vc + (ctx->p.kv_cache ? (int64_t)l * n * kvd : 0);
        if ((rc = notify_rows(ctx, l, STRATA_SITE_RESID_PRE, pos0, T, x, true))) return rc;
        if (ctx->skip[l]) { /* the block is removed: its output is its input */
            if ((rc = notify_rows(ctx, l, STRATA_SITE_RESID_POST, pos0, T, x, true))) return rc;
            continue;
        }
        const float *wp[STRATA_BLOCK_N_W];
        block_weights(ctx, l, wp);
        const struct {
            const float *rms_att, *wq, *wk, *wv, *wo, *rms_ffn, *w1, *w2, *w3;
        } W = {wp[0], wp[1], wp[2], wp[3], wp[4], wp[5], wp[6], wp[7], wp[8]},
          *w = &W;

        rmsnorm(ctx->xb, x, w->rms_att, R, D, c->norm_eps);
        linear(ctx, ctx->q, Hd, ctx->xb, w->wq, R, Hd, D);
        linear(ctx, kc + pos0 * kvd, kvd, ctx->xb, w->wk, R, kvd, D);
        linear(ctx, vc + pos0 * kvd, kvd, ctx->xb, w->wv, R, kvd, D);
        for (int64_t sq = 0; rope && sq < ctx->n_seq; sq++) { /* each sequence from pos0 */
            rope_apply(ctx->q + sq * T * Hd, T, c->n_head, d, pos0, ctx->rope_cos, ctx->rope_sin,
                       interleaved);
            rope_apply(kc + (pos0 + sq * T) * kvd, T, c->n_kv_head, d, pos0, ctx->rope_cos,
                       ctx->rope_sin, interleaved);
        }
        if ((rc = attention(ctx, l, kc, vc, T, pos0)))
            return rc == STRATA_E_INTERRUPTED ? interrupted() : rc;
        linear(ctx, ctx->delta, D, ctx->att, w->wo, R, D, Hd);
        if (ctx->aborted) return interrupted();
        if ((rc = notify_rows(ctx, l, STRATA_SITE_ATTN_OUT, pos0, T, ctx->delta, false))) return rc;
        add_into(x, ctx->delta, R * D);

        rmsnorm(ctx->xb, x, w->rms_ffn, R, D, c->norm_eps);
        linear(ctx, ctx->hg, F, ctx->xb, w->w1, R, F, D);
        linear(ctx, ctx->hu, F, ctx->xb, w->w3, R, F, D);
        strata_swiglu(ctx->hg, ctx->hu, R * F);
        linear(ctx, ctx->delta, D, ctx->hg, w->w2, R, D, F);
        if (ctx->aborted) return interrupted(); /* a GEMM above stopped part-way */
        if ((rc = notify_rows(ctx, l, STRATA_SITE_MLP_OUT, pos0, T, ctx->delta, false))) return rc;
        add_into(x, ctx->delta, R * D);
        if ((rc = notify_rows(ctx, l, STRATA_SITE_RESID_POST, pos0, T, x, true))) return rc;
    }

    return 0;
}

int strata_forward_batch(struct strata_ctx *ctx, float *logits, const int32_t *tokens,
                         int64_t n_seq, int64_t n_tok, enum strata_logits mode)
{
    const struct strata_config *c = &ctx->cfg;
    const int64_t T = n_tok, D = c->dim;
    if (mode != STRATA_LOGITS_NONE && !logits)
        return strata_fail(STRATA_E_ARG, "logits requested but no buffer given");
    if (n_seq < 1 || n_seq > ctx->p.n_seq_max)
        return strata_fail(STRATA_E_ARG, "%lld sequences: this context holds 1 .. %lld (n_seq_max)",
                           (long long)n_seq, (long long)ctx->p.n_seq_max);
    ctx->aborted = 0;
    ctx->n_seq = n_seq;
    ctx->cur_seq = 0;
    int rc = check_span(ctx, T);
    if (!rc) rc = embed(ctx, tokens, n_seq * T);
    if (rc) return rc;
    ask_observers(ctx);
    /* Only the work asked for: without logits (and without a cache that
     * later calls continue), the pass ends after the last block whose
     * sites an observer wants; dumping boundaries 0-4 of a 32-block model
     * runs 4 blocks. */
    const int32_t l_end = mode == STRATA_LOGITS_NONE && !ctx->p.kv_cache ? blocks_wanted(ctx)
                                                                         : c->n_layer;
    rc = run_blocks(ctx, T, 0, l_end);
    if (!rc && l_end < c->n_layer) /* its resid_pre is visited at the start of block l_end */
        rc = notify_rows(ctx, l_end, STRATA_SITE_RESID_PRE, 0, T, ctx->x, true);
    if (rc) return rc;
    if (mode == STRATA_LOGITS_ALL) {
        rmsnorm(ctx->xb, ctx->x, ctx->rms_final, n_seq * T, D, c->norm_eps);
        classifier(ctx, logits, ctx->xb, n_seq * T);
    } else if (mode == STRATA_LOGITS_LAST) { /* the last row of each sequence */
        for (int64_t sq = 0; sq < n_seq; sq++)
            rmsnorm(ctx->xb + sq * D, ctx->x + (sq * T + T - 1) * D, ctx->rms_final, 1, D,
                    c->norm_eps);
        classifier(ctx, logits, ctx->xb, n_seq);
    }
    if (ctx->aborted) return interrupted();
    if (ctx->p.kv_cache) ctx->n_past += T;
    return 0;
}

int strata_forward(struct strata_ctx *ctx, float *logits, const int32_t *tokens, int64_t n_tok,
                   enum strata_logits mode)
{
    return strata_forward_batch(ctx, logits, tokens, 1, n_tok, mode);
}

/* Pipeline parts: the same computation as strata_forward, cut at block
 * boundaries so that processes holding different blocks can pass the
 * residual stream between them. */
static int pipeline_check(struct strata_ctx *ctx, int64_t T)
{
    ctx->aborted = 0;
    ctx->n_seq = 1;
    ctx->cur_seq = 0;
    if (ctx->p.kv_cache)
        return strata_fail(STRATA_E_ARG, "the pipeline calls take contexts without kv_cache");
    return check_span(ctx, T);
}

int strata_forward_embed(struct strata_ctx *ctx, float *x, const int32_t *tokens, int64_t n_tok)
{
    int rc = pipeline_check(ctx, n_tok);
    if (!rc) rc = embed(ctx, tokens, n_tok);
    if (!rc) memcpy(x, ctx->x, (size_t)(n_tok * ctx->cfg.dim) * sizeof(float));
    return rc;
}

int strata_forward_blocks(struct strata_ctx *ctx, float *x, int64_t n_tok, int32_t l0, int32_t l1)
{
    int rc = pipeline_check(ctx, n_tok);
    if (rc) return rc;
    if (l0 < 0 || l1 > ctx->cfg.n_layer || l0 > l1)
        return strata_fail(STRATA_E_ARG, "blocks %d..%d: expected 0 <= l0 <= l1 <= %d", (int)l0,
                           (int)l1, (int)ctx->cfg.n_layer);
    const size_t bytes = (size_t)(n_tok * ctx->cfg.dim) * sizeof(float);
    memcpy(ctx->x, x, bytes);
    ask_observers(ctx);
    rc = run_blocks(ctx, n_tok, l0, l1);
    if (!rc) memcpy(x, ctx->x, bytes);
    return rc;
}

int strata_forward_logits(struct strata_ctx *ctx, float *logits, const float *x, int64_t n_tok,
                          enum strata_logits mode)
{
    const struct strata_config *c = &ctx->cfg;
    const int64_t T = n_tok, D = c->dim;
    int rc = pipeline_check(ctx, T);
    if (rc) return rc;
    if (mode == STRATA_LOGITS_NONE) return 0;
    if (!logits) return strata_fail(STRATA_E_ARG, "logits requested but no buffer given");
    const int64_t first = mode == STRATA_LOGITS_LAST ? T - 1 : 0;
    rmsnorm(ctx->xb, x + first * D, ctx->rms_final, T - first, D, c->norm_eps);
    classifier(ctx, logits, ctx->xb, T - first);
    return ctx->aborted ? interrupted() : 0;
}

int strata_forward_nll(struct strata_ctx *ctx, double *nll, const int32_t *tokens, int64_t n_tok)
{
    const struct strata_config *c = &ctx->cfg;
    const int64_t T = n_tok, D = c->dim, V = c->vocab_size;
    if (ctx->p.kv_cache)
        return strata_fail(STRATA_E_ARG, "strata_forward_nll needs a context without kv_cache");
    if (T < 2) return strata_fail(STRATA_E_ARG, "next-token NLL needs at least two tokens");
    ctx->aborted = 0;
    ctx->n_seq = 1;
    ctx->cur_seq = 0;
    int rc = check_span(ctx, T);
    if (!rc) rc = embed(ctx, tokens, T);
    if (rc) return rc;
    ask_observers(ctx);
    if ((rc = run_blocks(ctx, T, 0, c->n_layer))) return rc;
    /* Rows per chunk: about 32 MiB of logits at a time. */
    int64_t R = ((int64_t)1 << 23) / V;
    R = R < 1 ? 1 : R > T - 1 ? T - 1 : R;
    float *lg = alloc_floats(R * V); /* (R, V) */
    rmsnorm(ctx->xb, ctx->x, ctx->rms_final, T - 1, D, c->norm_eps);
    for (int64_t t0 = 0; t0 < T - 1; t0 += R) {
        const int64_t nr = T - 1 - t0 < R ? T - 1 - t0 : R;
        classifier(ctx, lg, ctx->xb + t0 * D, nr);
        if (ctx->aborted) {
            free(lg);
            return interrupted();
        }
        for (int64_t i = 0; i < nr; i++) {
            const float *row = lg + i * V;
            double mx = -(double)INFINITY, sum = 0.0;
            for (int64_t v = 0; v < V; v++) mx = (double)row[v] > mx ? (double)row[v] : mx;
            for (int64_t v = 0; v < V; v++) sum += exp((double)row[v] - mx);
            nll[t0 + i] = mx + log(sum) - (double)row[tokens[t0 + i + 1]];
        }
    }
    free(lg);
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
    const int64_t V = ctx->cfg.vocab_size;
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
