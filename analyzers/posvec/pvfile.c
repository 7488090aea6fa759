/* pvfile.c — part of strata-posvec (analyzers/posvec.c, docs/POSVEC.md):
 * reading and writing PV files (the strata-posvec/1 HDF5 layout of
 * decompose and merge) and the comma-separated option lists. Kept apart
 * from the commands so decompose, merge and the studies read and check PV
 * files the same way (the CSV outputs: csv.c).
 *
 * Legend: Lk boundaries kept, T positions, D width.
 */
#include "posvec.h"

void pv_free(struct pvfile *f)
{
    free(f->layers);
    free(f->positions);
    free(f->p);
    free(f->cnorm);
    free(f->model_config);
    strata_pvsum_free(&f->acc);
    memset(f, 0, sizeof *f);
}

void *xalloc(size_t n)
{
    return cli_alloc(n, "positional-vector data");
}

/* Die unless x (n) is finite, naming the dataset and the element. */
static void pv_finite_f64(const double *x, int64_t n, const char *path, const char *name,
                          const char *hint)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            cli_die(hint, "%s: dataset /%s holds a non-finite value (element %lld)", path, name,
                    (long long)i);
}

/* Die unless list (n) is strictly increasing from 0 or more. */
static void pv_increasing(const int32_t *list, int64_t n, const char *path, const char *name,
                          const char *hint)
{
    for (int64_t i = 0; i < n; i++)
        if (list[i] < 0 || (i > 0 && list[i] <= list[i - 1]))
            cli_die(hint, "%s: dataset /%s must hold increasing values >= 0; entry %lld is %d",
                    path, name, (long long)i, (int)list[i]);
}

/* Every dataset's rank and shape is checked against /sum (which fixes Lk, T
 * and D), and every attribute's type, before anything is read into a
 * buffer: a file that disagrees with itself is an error naming the file,
 * the dataset and the shape expected, never a read past a buffer. */
void pv_read(struct pvfile *f, const char *path)
{
    struct strata_h5 *h = NULL;
    const char *hint = "give a file written by strata-posvec decompose or merge";
    memset(f, 0, sizeof *f);
    cli_check(strata_h5_open(&h, path), hint);
    char *fmt = NULL;
    if (strata_h5_get_attr_str(h, "/", "format", &fmt) || strcmp(fmt, PV_FORMAT))
        cli_die(hint, "%s: not a %s file (no sums to merge or analyze)", path, PV_FORMAT);
    free(fmt);
    int nd;
    int64_t sh[STRATA_H5_MAX_DIMS], n;
    cli_check(strata_h5_shape(h, "sum", &nd, sh), hint);
    if (nd != 3 || sh[0] < 1 || sh[1] < 1 || sh[2] < 1) {
        char a[160];
        cli_die(hint, "%s: dataset /sum has shape %s; expected (Lk, T, D), none empty", path,
                strata_shape_text(a, sizeof a, nd, sh));
    }
    const int64_t Lk = sh[0], T = sh[1], D = sh[2];
    if (Lk > ((int64_t)1 << 36) / T / D)
        cli_die(hint, "%s: dataset /sum (%lld, %lld, %lld) is too large", path, (long long)Lk,
                (long long)T, (long long)D);
    const int64_t s3[3] = {Lk, T, D}, s2[2] = {Lk, T};
    cli_check(strata_h5_want_shape(h, "sumsq", 2, s2, "(Lk, T) of /sum"), hint);
    cli_check(strata_h5_want_shape(h, "layers", 1, &Lk, "(Lk) of /sum"), hint);
    cli_check(strata_h5_want_shape(h, "positions", 1, &T, "(T) of /sum"), hint);
    cli_check(strata_h5_want_shape(h, "positional", 3, s3, "(Lk, T, D) of /sum"), hint);
    const bool has_cnorm = strata_h5_shape(h, "semantic_norm", &nd, sh) == 0;
    if (has_cnorm) cli_check(strata_h5_want_shape(h, "semantic_norm", 2, s2, "(Lk, T) of /sum"), hint);
    cli_check(strata_h5_get_attr_i64(h, "/", "n_samples", &n), hint);
    if (n < 1)
        cli_die(hint, "%s: attribute n_samples is %lld; expected 1 or more", path, (long long)n);
    /* absent is allowed; present, it must be one string */
    const int has_cfg = strata_h5_has_attr(h, "/", "model_config");
    cli_check(has_cfg < 0 ? has_cfg : 0, hint);
    f->model_config = NULL;
    if (has_cfg) cli_check(strata_h5_get_attr_str(h, "/", "model_config", &f->model_config), hint);
    cli_check(strata_pvsum_init(&f->acc, Lk, T, D), hint);
    f->Lk = Lk, f->T = T, f->D = D;
    f->acc.n = n;
    f->layers = xalloc((size_t)Lk * sizeof(int32_t));
    f->positions = xalloc((size_t)T * sizeof(int32_t));
    f->p = xalloc((size_t)(Lk * T * D) * sizeof(float));
    cli_check(strata_h5_read(h, "sum", STRATA_DT_F64, f->acc.sum), hint);
    cli_check(strata_h5_read(h, "sumsq", STRATA_DT_F64, f->acc.sumsq), hint);
    cli_check(strata_h5_read(h, "layers", STRATA_DT_I32, f->layers), hint);
    cli_check(strata_h5_read(h, "positions", STRATA_DT_I32, f->positions), hint);
    cli_check(strata_h5_read(h, "positional", STRATA_DT_F32, f->p), hint);
    pv_increasing(f->layers, Lk, path, "layers", hint);
    pv_increasing(f->positions, T, path, "positions", hint);
    pv_finite_f64(f->acc.sum, Lk * T * D, path, "sum", hint);
    pv_finite_f64(f->acc.sumsq, Lk * T, path, "sumsq", hint);
    for (int64_t i = 0; i < Lk * T * D; i++)
        if (!isfinite(f->p[i]))
            cli_die(hint, "%s: dataset /positional holds a non-finite value at boundary %d, "
                    "position %d", path, (int)f->layers[i / (T * D)],
                    (int)f->positions[(i / D) % T]);
    if (has_cnorm) {
        f->cnorm = xalloc((size_t)(Lk * T) * sizeof(double));
        cli_check(strata_h5_read(h, "semantic_norm", STRATA_DT_F64, f->cnorm), hint);
    }
    strata_h5_free(h);
}

void pv_write(const struct pvfile *f, const char *path, const char *cmd, const char *src)
{
    struct strata_h5 *h = NULL;
    const char *hint = "check that the output directory exists and is writable";
    const int64_t s3[3] = {f->Lk, f->T, f->D}, s2[2] = {f->Lk, f->T};
    float *p = xalloc((size_t)(f->Lk * f->T * f->D) * sizeof(float)); /* (Lk, T, D) */
    cli_check(strata_pvsum_mean(&f->acc, p), NULL);
    /* netCDF-4 dimensions (docs/FORMAT.md): coordinates boundary and
     * position (copies of /layers, /positions), dim without one */
    static const char *const d3[3] = {"boundary", "position", "dim"}, *const d2[2] = {"boundary", "position"};
    static const char *const d_b[1] = {"boundary"}, *const d_p[1] = {"position"};
    cli_check(strata_h5_create(&h, path), hint);
    cli_check(strata_h5_write_coord(h, "boundary", STRATA_DT_I32, f->Lk, f->layers,
                                    "residual-stream boundary: 0 embeddings, b after block b "
                                    "(as /layers)", NULL), hint);
    cli_check(strata_h5_write_coord(h, "position", STRATA_DT_I32, f->T, f->positions,
                                    "position (as /positions)", NULL), hint);
    cli_check(strata_h5_def_dim(h, "dim", f->D, false), hint);
    cli_check(strata_h5_write(h, "positional", STRATA_DT_F32, 3, s3, p), hint);
    cli_check(strata_h5_set_dims(h, "positional", d3), hint);
    cli_check(strata_h5_set_attr_str(h, "positional", "long_name",
                                     "positional vector: mean over samples of the hidden state"), hint);
    cli_check(strata_h5_write(h, "sum", STRATA_DT_F64, 3, s3, f->acc.sum), hint);
    cli_check(strata_h5_set_dims(h, "sum", d3), hint);
    cli_check(strata_h5_write(h, "sumsq", STRATA_DT_F64, 2, s2, f->acc.sumsq), hint);
    cli_check(strata_h5_set_dims(h, "sumsq", d2), hint);
    cli_check(strata_h5_write(h, "layers", STRATA_DT_I32, 1, &f->Lk, f->layers), hint);
    cli_check(strata_h5_set_dims(h, "layers", d_b), hint);
    cli_check(strata_h5_write(h, "positions", STRATA_DT_I32, 1, &f->T, f->positions), hint);
    cli_check(strata_h5_set_dims(h, "positions", d_p), hint);
    if (f->cnorm) {
        cli_check(strata_h5_write(h, "semantic_norm", STRATA_DT_F64, 2, s2, f->cnorm), hint);
        cli_check(strata_h5_set_dims(h, "semantic_norm", d2), hint);
    }
    cli_check(strata_h5_set_attr_str(h, "/", "format", PV_FORMAT), hint);
    cli_check(strata_h5_set_attr_str(h, "/", "strata_version", STRATA_VERSION), hint);
    cli_check(strata_h5_set_attr_str(h, "/", "command_line", cmd), hint);
    cli_check(strata_h5_set_attr_str(h, "/", "sources", src), hint);
    cli_check(strata_h5_set_attr_i64(h, "/", "n_samples", f->acc.n), hint);
    if (f->model_config)
        cli_check(strata_h5_set_attr_str(h, "/", "model_config", f->model_config), hint);
    /* Where the states came from, copied from the first source while it
     * exists, so CSVs made from this file later name model and corpus even
     * after the (large) dump is deleted (pv_origin reads them here first). */
    char *first = cli_strdup(src ? src : ""), *sp = strchr(first, ' ');
    if (sp) *sp = '\0';
    char *model = NULL, *corpus = NULL, *seq_len = NULL;
    if (*first) pv_origin(first, &model, &corpus, &seq_len);
    if (model) cli_check(strata_h5_set_attr_str(h, "/", "model_path", model), hint);
    if (corpus) cli_check(strata_h5_set_attr_str(h, "/", "corpus_path", corpus), hint);
    if (seq_len) cli_check(strata_h5_set_attr_str(h, "/", "seq_len", seq_len), hint);
    free(first), free(model), free(corpus), free(seq_len);
    cli_check(strata_h5_finish(h), hint);
    strata_h5_free(h);
    free(p);
}

/* Tools that edit the model need every boundary and every position. */
void pv_require_full(const struct pvfile *f, const char *path, int64_t L)
{
    bool ok = f->Lk == L + 1;
    for (int64_t i = 0; ok && i < f->Lk; i++) ok = f->layers[i] == i;
    if (!ok)
        cli_die("decompose a dump of every boundary (strata-probe-hidden without --layers)",
                "%s keeps %lld of the model's %lld boundaries; edits need all of them", path,
                (long long)f->Lk, (long long)(L + 1));
    for (int64_t t = 0; t < f->T; t++)
        if (f->positions[t] != t)
            cli_die("decompose a dump of every position (no --positions)",
                    "%s keeps a subset of positions; edits need 0 .. T-1", path);
}

void list_add(struct list *l, const char *s)
{
    const char *q = s;
    while (*q) {
        const char *e = strchr(q, ',');
        size_t n = e ? (size_t)(e - q) : strlen(q);
        if (n) {
            l->item = cli_realloc(l->item, (size_t)(l->n + 1) * sizeof *l->item, "a list");
            char *it = cli_alloc(n + 1, "a list item");
            memcpy(it, q, n);
            l->item[l->n++] = it;
        }
        q += n + (e != NULL);
    }
}

void list_free(struct list *l)
{
    for (int i = 0; i < l->n; i++) free(l->item[i]);
    free(l->item);
    l->item = NULL;
    l->n = 0;
}
