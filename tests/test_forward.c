/* test_forward.c — the batched forward pass against a plain reference.
 *
 * The reference below is written the way llama2.c's run.c computes (one
 * position at a time, naive loops, a K/V cache), but in double precision and
 * sharing no code with lib/forward.c. Every residual boundary, every
 * attention/MLP output, attention probabilities and logits are compared.
 *
 * Tolerance: |strata - ref| <= 2e-5 * max|ref| over the tensor compared
 * (float32 sgemm against double loops; observed errors are ~1e-6 relative).
 */
#include "check.h"
#include "model.h"

/* llama2.c models hold float32 weights in place. */
#define F32(w) ((const float *)(w).data)
#include "mkmodel.h"

#include <string.h>
#include <unistd.h>

#define TOL 2e-5

/* ---------------------------------------------------------- reference */

struct ref_out {
    double *resid;   /* (L+1, T, D) */
    double *attn;    /* (L, T, D) attention output (added to the stream) */
    double *mlp;     /* (L, T, D) */
    double *probs;   /* (L, H, T, T) */
    double *logits;  /* (T, V) */
};

static void ref_rmsnorm(double *o, const double *x, const float *w, int64_t D)
{
    double ss = 0;
    for (int64_t i = 0; i < D; i++) ss += x[i] * x[i];
    double s = 1.0 / sqrt(ss / (double)D + 1e-5);
    for (int64_t i = 0; i < D; i++) o[i] = (double)w[i] * x[i] * s;
}

static void ref_matvec(double *y, const double *x, const float *w, int64_t n_out, int64_t n_in)
{
    for (int64_t r = 0; r < n_out; r++) {
        double acc = 0;
        for (int64_t i = 0; i < n_in; i++) acc += (double)w[r * n_in + i] * x[i];
        y[r] = acc;
    }
}

static void ref_forward(struct ref_out *o, const struct strata_model *m, const int32_t *tok,
                        int64_t T)
{
    const struct strata_config *c = &m->cfg;
    const int64_t D = c->dim, F = c->hidden_dim, L = c->n_layer, H = c->n_head, d = c->head_dim;
    const int64_t kvd = c->n_kv_head * d, V = c->vocab_size, grp = H / c->n_kv_head;
    double *kc = calloc((size_t)(L * T * kvd), sizeof(double));
    double *vc = calloc((size_t)(L * T * kvd), sizeof(double));
    double *x = malloc((size_t)D * sizeof(double)), *xb = malloc((size_t)D * sizeof(double));
    double *q = malloc((size_t)D * sizeof(double)), *att = malloc((size_t)D * sizeof(double));
    double *dx = malloc((size_t)D * sizeof(double));
    double *h1 = malloc((size_t)F * sizeof(double)), *h3 = malloc((size_t)F * sizeof(double));
    double *sc = malloc((size_t)T * sizeof(double));
    for (int64_t pos = 0; pos < T; pos++) {
        for (int64_t i = 0; i < D; i++) x[i] = (double)F32(m->tok_emb)[(int64_t)tok[pos] * D + i];
        memcpy(o->resid + pos * D, x, (size_t)D * sizeof(double));
        for (int64_t l = 0; l < L; l++) {
            const struct strata_block_w *w = &m->blocks[l];
            double *k = kc + (l * T + pos) * kvd, *v = vc + (l * T + pos) * kvd;
            ref_rmsnorm(xb, x, F32(w->rms_att), D);
            ref_matvec(q, xb, F32(w->wq), D, D);
            ref_matvec(k, xb, F32(w->wk), kvd, D);
            ref_matvec(v, xb, F32(w->wv), kvd, D);
            for (int64_t i = 0; i < D; i += 2) { /* run.c's interleaved RoPE */
                int64_t hd = i % d;
                double a = (double)pos * pow(10000.0, -(double)hd / (double)d);
                double cs = cos(a), sn = sin(a);
                double q0 = q[i], q1 = q[i + 1];
                q[i] = q0 * cs - q1 * sn;
                q[i + 1] = q0 * sn + q1 * cs;
                if (i < kvd) {
                    double k0 = k[i], k1 = k[i + 1];
                    k[i] = k0 * cs - k1 * sn;
                    k[i + 1] = k0 * sn + k1 * cs;
                }
            }
            for (int64_t h = 0; h < H; h++) {
                const int64_t g = h / grp;
                double mx = -(double)INFINITY, sum = 0;
                for (int64_t t = 0; t <= pos; t++) {
                    double s = 0;
                    for (int64_t i = 0; i < d; i++) s += q[h * d + i] * kc[(l * T + t) * kvd + g * d + i];
                    sc[t] = s / sqrt((double)d);
                    if (sc[t] > mx) mx = sc[t];
                }
                for (int64_t t = 0; t <= pos; t++) sum += (sc[t] = exp(sc[t] - mx));
                double *prow = o->probs + ((l * H + h) * T + pos) * T;
                for (int64_t t = 0; t < T; t++) prow[t] = t <= pos ? sc[t] / sum : 0.0;
                for (int64_t i = 0; i < d; i++) {
                    double acc = 0;
                    for (int64_t t = 0; t <= pos; t++) acc += prow[t] * vc[(l * T + t) * kvd + g * d + i];
                    att[h * d + i] = acc;
                }
            }
            ref_matvec(dx, att, F32(w->wo), D, D);
            memcpy(o->attn + (l * T + pos) * D, dx, (size_t)D * sizeof(double));
            for (int64_t i = 0; i < D; i++) x[i] += dx[i];
            ref_rmsnorm(xb, x, F32(w->rms_ffn), D);
            ref_matvec(h1, xb, F32(w->w1), F, D);
            ref_matvec(h3, xb, F32(w->w3), F, D);
            for (int64_t i = 0; i < F; i++) h1[i] = h1[i] / (1.0 + exp(-h1[i])) * h3[i];
            ref_matvec(dx, h1, F32(w->w2), D, F);
            memcpy(o->mlp + (l * T + pos) * D, dx, (size_t)D * sizeof(double));
            for (int64_t i = 0; i < D; i++) x[i] += dx[i];
            memcpy(o->resid + ((l + 1) * T + pos) * D, x, (size_t)D * sizeof(double));
        }
        ref_rmsnorm(xb, x, F32(m->rms_final), D);
        ref_matvec(o->logits + pos * V, xb, F32(m->wcls), V, D);
    }
    free(kc), free(vc), free(x), free(xb), free(q), free(att), free(dx), free(h1), free(h3), free(sc);
}

/* ---------------------------------------------------------- capture */

struct cap {
    int64_t T, D, H;
    float *resid, *attn, *mlp; /* as ref_out, float */
    float *probs;              /* (L, H, T, T) */
    int64_t tiles;
};

static bool cap_wants(void *u, int32_t l, enum strata_site s)
{
    (void)u, (void)l, (void)s;
    return true;
}

static int cap_observe(void *u, const struct strata_view *v)
{
    struct cap *c = u;
    const int64_t T = c->T, D = c->D, l = v->layer;
    if (v->site == STRATA_SITE_ATTN_PROBS) {
        c->tiles++;
        for (int64_t i = 0; i < v->n_rows; i++)
            for (int64_t j = 0; j < v->n_cols; j++)
                c->probs[((l * c->H + v->head) * T + v->row0 + i) * T + j] = v->data[i * v->ld + j];
        return 0;
    }
    float *dst = v->site == STRATA_SITE_RESID_PRE    ? c->resid + l * T * D
                 : v->site == STRATA_SITE_RESID_POST ? c->resid + (l + 1) * T * D
                 : v->site == STRATA_SITE_ATTN_OUT   ? c->attn + l * T * D
                                                     : c->mlp + l * T * D;
    for (int64_t t = 0; t < v->n_rows; t++)
        memcpy(dst + (v->row0 + t) * D, v->data + t * v->ld, (size_t)D * sizeof(float));
    return 0;
}

/* max |a - b| / max |b| over n values; prints it. */
static double rel_err(const char *what, const float *a, const double *b, int64_t n)
{
    double md = 0, mb = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (!(e <= md)) md = e; /* NaN propagates as a failure */
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
    }
    double r = md / (mb > 0 ? mb : 1);
    printf("  %-28s max|diff| %.3g  max|ref| %.3g  rel %.3g\n", what, md, mb, r);
    return r;
}

static void compare_model(const char *path, int64_t T, const char *label)
{
    printf("%s (T=%lld)\n", label, (long long)T);
    struct strata_model *m = NULL;
    CHECK_OK(strata_model_load(&m, path));
    if (!m) return;
    const struct strata_config *c = strata_model_config(m);
    const int64_t L = c->n_layer, D = c->dim, H = c->n_head, V = c->vocab_size;
    int32_t *tok = malloc((size_t)T * sizeof *tok);
    uint64_t st = 42;
    tok[0] = 1;
    for (int64_t t = 1; t < T; t++) tok[t] = (int32_t)(strata_rng_next(&st) % (uint64_t)V);

    struct ref_out r = {
        .resid = malloc((size_t)((L + 1) * T * D) * sizeof(double)),
        .attn = malloc((size_t)(L * T * D) * sizeof(double)),
        .mlp = malloc((size_t)(L * T * D) * sizeof(double)),
        .probs = malloc((size_t)(L * H * T * T) * sizeof(double)),
        .logits = malloc((size_t)(T * V) * sizeof(double)),
    };
    ref_forward(&r, m, tok, T);

    struct cap cp = {.T = T, .D = D, .H = H,
                     .resid = calloc((size_t)((L + 1) * T * D), sizeof(float)),
                     .attn = calloc((size_t)(L * T * D), sizeof(float)),
                     .mlp = calloc((size_t)(L * T * D), sizeof(float)),
                     .probs = calloc((size_t)(L * H * T * T), sizeof(float))};
    float *logits = malloc((size_t)(T * V) * sizeof(float));
    struct strata_ctx_params p = strata_ctx_default_params();
    p.n_ctx = T;
    p.attn_block = 7; /* a tile size that does not divide T */
    struct strata_ctx *ctx = NULL;
    CHECK_OK(strata_ctx_create(&ctx, m, &p));
    struct strata_observer obs = {.wants = cap_wants, .observe = cap_observe, .user = &cp};
    CHECK_OK(strata_ctx_add_observer(ctx, &obs));
    CHECK_OK(strata_forward(ctx, logits, tok, T, STRATA_LOGITS_ALL));

    for (int64_t l = 0; l <= L; l++) {
        char what[64];
        snprintf(what, sizeof what, "resid layer %lld", (long long)l);
        CHECK(rel_err(what, cp.resid + l * T * D, r.resid + l * T * D, T * D) <= TOL);
    }
    CHECK(rel_err("attn_out (all blocks)", cp.attn, r.attn, L * T * D) <= TOL);
    CHECK(rel_err("mlp_out (all blocks)", cp.mlp, r.mlp, L * T * D) <= TOL);
    CHECK(rel_err("attn_probs (all)", cp.probs, r.probs, L * H * T * T) <= TOL);
    CHECK(rel_err("logits (T, V)", logits, r.logits, T * V) <= TOL);
    CHECK(cp.tiles == L * H * ((T + 6) / 7));
    double worst_row = 0; /* every probability row sums to one */
    for (int64_t i = 0; i < L * H * T; i++) {
        double s = 0;
        for (int64_t j = 0; j < T; j++) s += (double)cp.probs[i * T + j];
        if (fabs(s - 1) > worst_row) worst_row = fabs(s - 1);
    }
    printf("  attention rows: max |sum - 1| %.3g\n", worst_row);
    CHECK(worst_row < 1e-5);

    /* The same sequence through a K/V-cached context in three calls, and
     * LAST-only logits, must give the same last-row logits. */
    struct strata_ctx_params pk = strata_ctx_default_params();
    pk.n_ctx = T;
    pk.kv_cache = true;
    struct strata_ctx *kctx = NULL;
    CHECK_OK(strata_ctx_create(&kctx, m, &pk));
    float *last = malloc((size_t)V * sizeof(float));
    int64_t a = T / 3, b = T / 3 + 1;
    CHECK_OK(strata_forward(kctx, last, tok, a, STRATA_LOGITS_LAST));
    CHECK_OK(strata_forward(kctx, last, tok + a, b, STRATA_LOGITS_LAST));
    CHECK_OK(strata_forward(kctx, last, tok + a + b, T - a - b, STRATA_LOGITS_LAST));
    CHECK(strata_ctx_n_past(kctx) == T);
    CHECK(rel_err("cached, last logits", last, r.logits + (T - 1) * V, V) <= TOL);
    /* Past the context: a clear error, not a write out of bounds. */
    CHECK(strata_forward(kctx, last, tok, 1, STRATA_LOGITS_LAST) == STRATA_E_SHAPE);
    int32_t bad = (int32_t)V;
    CHECK(strata_forward(ctx, NULL, &bad, 1, STRATA_LOGITS_NONE) == STRATA_E_ARG);

    free(last);
    strata_ctx_free(kctx);
    strata_ctx_free(ctx);
    free(logits);
    free(cp.resid), free(cp.attn), free(cp.mlp), free(cp.probs);
    free(r.resid), free(r.attn), free(r.mlp), free(r.probs), free(r.logits);
    free(tok);
    strata_model_free(m);
}

/* ---------------------------------------------------------- load errors */

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
}

static void check_load_error(const char *path, int want, const char *needle)
{
    struct strata_model *m = (struct strata_model *)&m; /* must be reset to NULL */
    int rc = strata_model_load(&m, path);
    CHECK(rc == want);
    CHECK(m == NULL);
    CHECK(strstr(strata_last_error(), path) != NULL);
    if (needle) CHECK(strstr(strata_last_error(), needle) != NULL);
    printf("  error as expected: %s\n", strata_last_error());
}

static void load_errors(const char *tmp, const char *good)
{
    printf("load errors\n");
    struct strata_map map;
    CHECK_OK(strata_map_file(&map, good));
    char p[1024];
    snprintf(p, sizeof p, "%s/missing.bin", tmp);
    check_load_error(p, STRATA_E_IO, "cannot open");
    snprintf(p, sizeof p, "%s/trunc.bin", tmp);
    write_bytes(p, map.data, map.size - 100);
    check_load_error(p, STRATA_E_SHAPE, "truncated");
    snprintf(p, sizeof p, "%s/long.bin", tmp);
    char *longer = calloc(map.size + 4, 1);
    memcpy(longer, map.data, map.size);
    write_bytes(p, longer, map.size + 4);
    check_load_error(p, STRATA_E_SHAPE, "wrongly sized");
    snprintf(p, sizeof p, "%s/hdr.bin", tmp);
    write_bytes(p, map.data, 20);
    check_load_error(p, STRATA_E_FORMAT, "too short");
    int32_t h[7];
    memcpy(h, map.data, sizeof h);
    h[3] = 7; /* 64 is not divisible by 7 heads */
    memcpy(longer, h, sizeof h);
    snprintf(p, sizeof p, "%s/heads.bin", tmp);
    write_bytes(p, longer, map.size);
    check_load_error(p, STRATA_E_FORMAT, "n_heads");
    h[3] = -5;
    memcpy(longer, h, sizeof h);
    write_bytes(p, longer, map.size);
    check_load_error(p, STRATA_E_FORMAT, "n_heads");
    snprintf(p, sizeof p, "%s/empty.bin", tmp);
    write_bytes(p, "", 0);
    check_load_error(p, STRATA_E_FORMAT, "empty");
    free(longer);
    strata_unmap_file(&map);
}

int main(void)
{
    const char *shared = getenv("SHARED") ? getenv("SHARED") : "../shared";
    char tmp[512];
    bool tmp_owned;
    if (!check_tmpdir(tmp, sizeof tmp, "test-forward", &tmp_owned)) return 2;
    char path[1024];
    snprintf(path, sizeof path, "%s/models/stories260K/stories260K.bin", shared);
    compare_model(path, 150, "stories260K");

    /* Other shapes: MHA (G == H), a separate classifier, wide GQA. */
    const struct mkmodel_shape shapes[] = {
        {.dim = 48, .hidden_dim = 96, .n_layers = 3, .n_heads = 3, .n_kv_heads = 3,
         .vocab_size = 300, .seq_len = 128, .separate_classifier = 1},
        {.dim = 128, .hidden_dim = 200, .n_layers = 2, .n_heads = 8, .n_kv_heads = 2,
         .vocab_size = 512, .seq_len = 256, .separate_classifier = 0},
        {.dim = 64, .hidden_dim = 160, .n_layers = 4, .n_heads = 2, .n_kv_heads = 1,
         .vocab_size = 100, .seq_len = 64, .separate_classifier = 1},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        char p[1024], label[128];
        snprintf(p, sizeof p, "%s/gen%zu.bin", tmp, i);
        CHECK(mkmodel_write(p, &shapes[i], 1000 + i) == 0);
        snprintf(label, sizeof label, "generated D=%d H=%d G=%d sep_cls=%d", shapes[i].dim,
                 shapes[i].n_heads, shapes[i].n_kv_heads, shapes[i].separate_classifier);
        compare_model(p, 70, label);
        remove(p);
    }
    load_errors(tmp, path);

    /* Saving takes F32, F16 or BF16; any other dtype is refused, naming it,
     * before anything is written. */
    struct strata_model *m = NULL;
    CHECK_OK(strata_model_load(&m, path));
    struct strata_save_params sp = strata_save_default_params();
    sp.dtype = STRATA_DT_I32;
    char out[1100];
    snprintf(out, sizeof out, "%s/save-i32", tmp);
    CHECK(strata_model_save_hf(m, out, &sp) == STRATA_E_ARG);
    CHECK(strstr(strata_last_error(), "dtype I32") != NULL && access(out, F_OK) != 0);
    strata_model_free(m);
    if (tmp_owned) { /* load_errors' files */
        const char *files[] = {"trunc.bin", "long.bin", "hdr.bin", "heads.bin", "empty.bin"};
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
            char p[1200];
            snprintf(p, sizeof p, "%s/%s", tmp, files[i]);
            remove(p);
        }
        rmdir(tmp);
    }
    return CHECK_DONE("test_forward");
}
