/* interv.c — hidden-state interventions of P1 (Dong et al., "Exploring
 * Context Window of Large Language Models via Decomposed Positional
 * Vectors"; ../shared/docs/PAPERS.md) as editors of the runtime.
 *
 * A positional-vector file holds p[b,t], the mean over samples of the
 * residual stream at boundary b and position t (strata-posvec writes it from
 * a strata-probe-hidden dump). From it an editor removes a component of the
 * hidden states at one boundary for a range of positions -- the positional
 * vector p, the positional basis m = p - u (u = mean over positions of p),
 * or the semantic part c = h - p -- or performs P1's positional vector
 * replacement h' = h - p[t] + alpha * p_interp(t / r), which lets a model
 * see, beyond its trained window, positional vectors interpolated from the
 * ones it knows.
 *
 * Why editors, and why these sites: the forward pass hands editors the
 * writable rows of the residual stream (strata_ctx_add_editor). Boundary b
 * is edited where the dumps record it (blk.0.resid_pre for b = 0,
 * blk.<b-1>.resid_post otherwise), so a capture observer of boundary b
 * sees the edited state, and block b and everything after it compute from
 * it. Each edit is one delta per element computed in double and added once,
 * so an edit whose delta is exactly zero (replacement with r = 1, alpha = 1
 * in the window) leaves the forward pass bit-identical.
 *
 * Dimension legend: L blocks (L+1 boundaries), T positions of the file,
 * D width, C interpolation window.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

struct strata_posvec {
    char *path;
    int64_t n_layers, T, D; /* L+1, T, D */
    float *p;               /* (L+1, T, D) */
};

struct strata_editor {
    struct strata_edit_params e;
    int64_t T, D, C; /* the file's positions, width, interpolation window */
    float *p;        /* (T, D) boundary b of the file */
    double *u;       /* (D) mean over the T positions of p */
};

/* ---------------------------------------------------------- posvec file */

int strata_posvec_load(struct strata_posvec **out, const char *path)
{
    *out = NULL;
    struct strata_h5 *f = NULL;
    struct strata_posvec *pv = NULL;
    int n_dim = 0;
    int64_t shape[STRATA_H5_MAX_DIMS] = {0};
    int rc = strata_h5_open(&f, path);
    if (rc) goto fail;
    if ((rc = strata_h5_shape(f, "positional", &n_dim, shape))) goto fail;
    if (n_dim != 3 || shape[0] < 1 || shape[1] < 1 || shape[2] < 1) {
        rc = strata_fail(STRATA_E_FORMAT,
                         "%s: /positional has %d dimensions; expected (L+1, T, D) with none empty",
                         path, n_dim);
        goto fail;
    }
    if (shape[0] > ((int64_t)1 << 40) / shape[1] / shape[2]) {
        rc = strata_fail(STRATA_E_NOMEM, "%s: /positional (%lld, %lld, %lld) is too large", path,
                         (long long)shape[0], (long long)shape[1], (long long)shape[2]);
        goto fail;
    }
    pv = xcalloc(1, sizeof *pv);
    pv->path = strata_xstrdup(path);
    pv->n_layers = shape[0];
    pv->T = shape[1];
    pv->D = shape[2];
    pv->p = xmalloc((size_t)(pv->n_layers * pv->T * pv->D) * sizeof(float));
    if ((rc = strata_h5_read(f, "positional", STRATA_DT_F32, pv->p))) goto fail;
    for (int64_t i = 0; i < pv->n_layers * pv->T * pv->D; i++) {
        if (!isfinite(pv->p[i])) {
            int64_t b = i / (pv->T * pv->D), t = (i / pv->D) % pv->T;
            rc = strata_fail(STRATA_E_NAN,
                             "%s: /positional holds a non-finite value at boundary %lld, "
                             "position %lld",
                             path, (long long)b, (long long)t);
            goto fail;
        }
    }
    strata_h5_free(f);
    *out = pv;
    return 0;
fail:
    strata_h5_free(f);
    strata_posvec_free(pv);
    return rc;
}

void strata_posvec_free(struct strata_posvec *pv)
{
    if (!pv) return;
    free(pv->path);
    free(pv->p);
    free(pv);
}

void strata_posvec_shape(const struct strata_posvec *pv, int64_t *n_layers, int64_t *seq_len,
                         int64_t *dim)
{
    if (n_layers) *n_layers = pv->n_layers;
    if (seq_len) *seq_len = pv->T;
    if (dim) *dim = pv->D;
}

const float *strata_posvec_data(const struct strata_posvec *pv) { return pv->p; }
const char *strata_posvec_path(const struct strata_posvec *pv) { return pv->path; }

/* ---------------------------------------------------------------- edits */

static const char *kind_names[] = {"sub-positional", "add-positional", "sub-basis",
                                   "sub-semantic", "replace"};
#define N_KINDS ((int)(sizeof kind_names / sizeof kind_names[0]))

const char *strata_edit_kind_name(enum strata_edit_kind kind)
{
    return (unsigned)kind < (unsigned)N_KINDS ? kind_names[kind] : "?";
}

int strata_edit_kind_parse(const char *s, enum strata_edit_kind *out)
{
    for (int k = 0; k < N_KINDS; k++) {
        if (!strcmp(s, kind_names[k])) {
            *out = (enum strata_edit_kind)k;
            return 0;
        }
    }
    return strata_fail(STRATA_E_ARG,
                       "edit kind '%s': expected sub-positional, add-positional, sub-basis, "
                       "sub-semantic or replace",
                       s);
}

struct strata_edit_params strata_edit_default_params(void)
{
    struct strata_edit_params e = {.kind = STRATA_EDIT_SUB_POSITIONAL, .boundary = 0, .t0 = 0,
                                   .t1 = 0, .ratio = 1.0, .alpha = 1.0};
    return e;
}

int strata_editor_create(struct strata_editor **out, const struct strata_model *model,
                         const struct strata_posvec *pv, const struct strata_edit_params *params)
{
    *out = NULL;
    const struct strata_config *c = strata_model_config(model);
    const struct strata_edit_params e = *params;
    const int64_t L = c->n_layer;
    if ((unsigned)e.kind >= (unsigned)N_KINDS)
        return strata_fail(STRATA_E_ARG, "edit kind %d is unknown", (int)e.kind);
    if (pv->n_layers != L + 1)
        return strata_fail(STRATA_E_SHAPE,
                           "%s: /positional has %lld boundaries but the model has %lld "
                           "(L+1 = %lld blocks + 1); make it from a dump of this model",
                           pv->path, (long long)pv->n_layers, (long long)L + 1, (long long)L);
    if (pv->D != c->dim)
        return strata_fail(STRATA_E_SHAPE, "%s: /positional has width %lld but the model's is %d",
                           pv->path, (long long)pv->D, (int)c->dim);
    if (e.boundary < 0 || e.boundary > L)
        return strata_fail(STRATA_E_ARG, "%s at boundary %d: out of range (0 .. %lld)",
                           kind_names[e.kind], (int)e.boundary, (long long)L);
    if (e.t0 < 0 || e.t1 <= e.t0)
        return strata_fail(STRATA_E_ARG, "%s at boundary %d: positions %lld-%lld are empty or negative",
                           kind_names[e.kind], (int)e.boundary, (long long)e.t0, (long long)e.t1);
    if (e.t1 > pv->T)
        return strata_fail(STRATA_E_SHAPE,
                           "%s at boundary %d: positions up to %lld, but %s holds positional "
                           "vectors for positions 0 .. %lld only",
                           kind_names[e.kind], (int)e.boundary, (long long)e.t1 - 1, pv->path,
                           (long long)pv->T - 1);
    if (e.kind == STRATA_EDIT_REPLACE &&
        !(e.ratio > 0.0 && isfinite(e.ratio) && isfinite(e.alpha)))
        return strata_fail(STRATA_E_ARG, "replace: ratio %g must be finite and > 0, alpha %g finite",
                           e.ratio, e.alpha);

    struct strata_editor *ed = xcalloc(1, sizeof *ed);
    ed->e = e;
    ed->T = pv->T;
    ed->D = pv->D;
    ed->C = c->seq_len > 0 && c->seq_len < pv->T ? c->seq_len : pv->T;
    ed->p = xmalloc((size_t)(ed->T * ed->D) * sizeof(float));
    memcpy(ed->p, pv->p + (int64_t)e.boundary * ed->T * ed->D,
           (size_t)(ed->T * ed->D) * sizeof(float));
    ed->u = xcalloc((size_t)ed->D, sizeof(double));
    for (int64_t t = 0; t < ed->T; t++)
        for (int64_t j = 0; j < ed->D; j++) ed->u[j] += (double)ed->p[t * ed->D + j];
    for (int64_t j = 0; j < ed->D; j++) ed->u[j] /= (double)ed->T;
    *out = ed;
    return 0;
}

void strata_editor_free(struct strata_editor *ed)
{
    if (!ed) return;
    free(ed->p);
    free(ed->u);
    free(ed);
}

static bool editor_wants(void *user, int32_t layer, enum strata_site site)
{
    const struct strata_editor *ed = user;
    const int32_t b = ed->e.boundary;
    if (b == 0) return layer == 0 && site == STRATA_SITE_RESID_PRE;
    return layer == b - 1 && site == STRATA_SITE_RESID_POST;
}

/* h (D) at position t, edited in place. */
static void edit_row(const struct strata_editor *ed, float *h, int64_t t)
{
    const int64_t D = ed->D;
    const float *pt = ed->p + t * D; /* (D) */
    switch (ed->e.kind) {
    case STRATA_EDIT_SUB_POSITIONAL:
        for (int64_t j = 0; j < D; j++) h[j] -= pt[j];
        break;
    case STRATA_EDIT_ADD_POSITIONAL:
        for (int64_t j = 0; j < D; j++) h[j] += pt[j];
        break;
    case STRATA_EDIT_SUB_BASIS:
        for (int64_t j = 0; j < D; j++) h[j] = (float)((double)h[j] - ((double)pt[j] - ed->u[j]));
        break;
    case STRATA_EDIT_SUB_SEMANTIC:
        memcpy(h, pt, (size_t)D * sizeof(float));
        break;
    case STRATA_EDIT_REPLACE: {
        const double x = (double)t / ed->e.ratio, alpha = ed->e.alpha;
        const int64_t last = ed->C - 1;
        int64_t i = (int64_t)floor(x);
        double f = x - (double)i;
        if (x >= (double)last) i = last, f = 0.0; /* beyond the window: the last in-window vector */
        const float *a = ed->p + i * D, *b = f > 0.0 ? a + D : NULL; /* (D) each */
        for (int64_t j = 0; j < D; j++) {
            double interp = b ? (1.0 - f) * (double)a[j] + f * (double)b[j] : (double)a[j];
            const float d = (float)(alpha * interp - (double)pt[j]);
            if (d != 0.0f) h[j] += d; /* a zero delta leaves even -0.0 as it was */
        }
        break;
    }
    }
}

static int editor_observe(void *user, const struct strata_view *v)
{
    const struct strata_editor *ed = user;
    if (!v->edit) return 1; /* added with strata_ctx_add_observer: it could not edit; stop */
    const int64_t lo = v->row0 > ed->e.t0 ? v->row0 : ed->e.t0;
    const int64_t end = v->row0 + v->n_rows, hi = end < ed->e.t1 ? end : ed->e.t1;
    for (int64_t t = lo; t < hi; t++) edit_row(ed, v->edit + (t - v->row0) * v->ld, t);
    return 0;
}

struct strata_observer strata_editor_observer(struct strata_editor *ed)
{
    struct strata_observer o = {.wants = editor_wants, .observe = editor_observe, .user = ed};
    return o;
}
