/* strata-posvec — positional vectors (Dong et al., "Exploring Context Window
 * of Large Language Models via Decomposed Positional Vectors", NeurIPS 2024;
 * P1 in ../shared/docs/PAPERS.md; docs/POSVEC.md).
 *
 * decompose/merge turn strata-probe-hidden dumps into p[b,t] = mean_s
 * h[s,b,t] (and mergeable sums); formation describes p inside the window;
 * attention, beyond-window, extension and methods run the model in-process
 * through the runtime's editors (lib/interv.c), observers and
 * strata_forward_nll -- the same calls strata-probe-ppl and strata-probe-attn
 * make, on the same samples (strata_samples_build) -- so one forward pass per
 * sample gives NLL, attention statistics and hidden states together, and
 * every configuration runs in lockstep on the same sample.
 *
 * Legend: L blocks (L+1 boundaries b), Lk boundaries kept, T positions,
 * D width, H heads, N samples, C the trained window.
 */
#include "cli.h"

#include <cjson/cJSON.h>
#include <math.h>

#define PV_FORMAT "strata-posvec/1"
#define DNAN ((double)NAN)

/* ------------------------------------------------------------ PV files */

struct pvfile {
    int64_t Lk, T, D;     /* boundaries kept, positions, width */
    int32_t *layers;      /* (Lk) boundary ids */
    int32_t *positions;   /* (T) positions */
    float *p;             /* (Lk, T, D) */
    struct strata_pvsum acc;
    double *cnorm;        /* (Lk, T) mean over samples of |c|, or NULL */
    char *model_config;   /* JSON of the dump's model */
};

static void pv_free(struct pvfile *f)
{
    free(f->layers);
    free(f->positions);
    free(f->p);
    free(f->cnorm);
    free(f->model_config);
    strata_pvsum_free(&f->acc);
    memset(f, 0, sizeof *f);
}

static void *xalloc(size_t n)
{
    void *p = calloc(n ? n : 1, 1);
    if (!p) cli_die(NULL, "out of memory");
    return p;
}

static void pv_read(struct pvfile *f, const char *path)
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
    if (nd != 3) cli_die(hint, "%s: /sum is not 3-D", path);
    cli_check(strata_h5_get_attr_i64(h, "/", "n_samples", &n), hint);
    cli_check(strata_pvsum_init(&f->acc, sh[0], sh[1], sh[2]), hint);
    f->Lk = sh[0], f->T = sh[1], f->D = sh[2];
    f->acc.n = n;
    f->layers = xalloc((size_t)f->Lk * sizeof(int32_t));
    f->positions = xalloc((size_t)f->T * sizeof(int32_t));
    f->p = xalloc((size_t)(f->Lk * f->T * f->D) * sizeof(float));
    cli_check(strata_h5_read(h, "sum", STRATA_H5_F64, f->acc.sum), hint);
    cli_check(strata_h5_read(h, "sumsq", STRATA_H5_F64, f->acc.sumsq), hint);
    cli_check(strata_h5_read(h, "layers", STRATA_H5_I32, f->layers), hint);
    cli_check(strata_h5_read(h, "positions", STRATA_H5_I32, f->positions), hint);
    cli_check(strata_h5_read(h, "positional", STRATA_H5_F32, f->p), hint);
    if (strata_h5_shape(h, "semantic_norm", &nd, sh) == 0) {
        f->cnorm = xalloc((size_t)(f->Lk * f->T) * sizeof(double));
        cli_check(strata_h5_read(h, "semantic_norm", STRATA_H5_F64, f->cnorm), hint);
    }
    if (strata_h5_get_attr_str(h, "/", "model_config", &f->model_config)) f->model_config = NULL;
    strata_h5_free(h);
}

static void pv_write(const struct pvfile *f, const char *path, const char *cmd, const char *src)
{
    struct strata_h5 *h = NULL;
    const char *hint = "check that the output directory exists and is writable";
    const int64_t s3[3] = {f->Lk, f->T, f->D}, s2[2] = {f->Lk, f->T};
    float *p = xalloc((size_t)(f->Lk * f->T * f->D) * sizeof(float)); /* (Lk, T, D) */
    cli_check(strata_pvsum_mean(&f->acc, p), NULL);
    cli_check(strata_h5_create(&h, path), hint);
    cli_check(strata_h5_write(h, "positional", STRATA_H5_F32, 3, s3, p), hint);
    cli_check(strata_h5_write(h, "sum", STRATA_H5_F64, 3, s3, f->acc.sum), hint);
    cli_check(strata_h5_write(h, "sumsq", STRATA_H5_F64, 2, s2, f->acc.sumsq), hint);
    cli_check(strata_h5_write(h, "layers", STRATA_H5_I32, 1, &f->Lk, f->layers), hint);
    cli_check(strata_h5_write(h, "positions", STRATA_H5_I32, 1, &f->T, f->positions), hint);
    if (f->cnorm) cli_check(strata_h5_write(h, "semantic_norm", STRATA_H5_F64, 2, s2, f->cnorm), hint);
    cli_check(strata_h5_set_attr_str(h, "/", "format", PV_FORMAT), hint);
    cli_check(strata_h5_set_attr_str(h, "/", "strata_version", STRATA_VERSION), hint);
    cli_check(strata_h5_set_attr_str(h, "/", "command_line", cmd), hint);
    cli_check(strata_h5_set_attr_str(h, "/", "sources", src), hint);
    cli_check(strata_h5_set_attr_i64(h, "/", "n_samples", f->acc.n), hint);
    if (f->model_config)
        cli_check(strata_h5_set_attr_str(h, "/", "model_config", f->model_config), hint);
    cli_check(strata_h5_finish(h), hint);
    strata_h5_free(h);
    free(p);
}

/* Tools that edit the model need every boundary and every position. */
static void pv_require_full(const struct pvfile *f, const char *path, int64_t L)
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

/* ------------------------------------------------------ CSV outputs */

struct csv {
    struct cli_out o;
    char path[4096];
    FILE *f;
};

static FILE *csv_open(struct csv *c, const char *dir, const char *name, const char *header)
{
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        cli_die(NULL, "%s: cannot create directory: %s", dir, strerror(errno));
    snprintf(c->path, sizeof c->path, "%s/%s", dir, name);
    c->f = cli_out_open(&c->o, c->path);
    fprintf(c->f, "%s\n", header);
    return c->f;
}

static void csv_close(struct csv *c)
{
    cli_out_commit(&c->o);
    fprintf(stderr, "%s: wrote %s\n", cli_prog, c->path);
}

/* Split a comma list into (at most max) items; s is modified. */
static int split(char *s, char **items, int max)
{
    int n = 0;
    for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
        if (n == max) cli_die(NULL, "list '%s...': at most %d items", items[0], max);
        items[n++] = tok;
    }
    return n;
}

/* ---------------------------------------------------------- decompose */

static void per_layer_csv(const struct pvfile *f, const char *csv_path)
{
    struct strata_pv_stats *st = xalloc((size_t)f->Lk * sizeof *st);
    cli_check(strata_pvsum_stats(&f->acc, st), NULL);
    struct cli_out o;
    FILE *out = cli_out_open(&o, csv_path);
    fprintf(out, "layer,n_samples,var_total,var_pos,frac_pos,frac_pos_corr,u_norm,p_norm_mean,c_rms,c_norm_mean\n");
    for (int64_t i = 0; i < f->Lk; i++) {
        double cm = DNAN;
        if (f->cnorm) {
            cm = 0;
            for (int64_t t = 0; t < f->T; t++) cm += f->cnorm[i * f->T + t] / (double)f->T;
        }
        fprintf(out, "%d,%lld,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g\n", (int)f->layers[i],
                (long long)f->acc.n, st[i].var_total, st[i].var_pos, st[i].frac_pos,
                st[i].frac_pos_corr, st[i].u_norm,
                st[i].p_norm, st[i].c_rms, cm);
    }
    cli_out_commit(&o);
    free(st);
}

static char *default_csv(const char *out_path)
{
    size_t n = strlen(out_path);
    char *s = xalloc(n + 8);
    strcpy(s, out_path);
    if (n > 3 && !strcmp(s + n - 3, ".h5")) s[n - 3] = '\0';
    strcat(s, ".csv");
    return s;
}

static int cmd_decompose(int argc, char **argv, const char *cmdline)
{
    const char *out = NULL, *csv_path = NULL;
    bool allow_partial = false;
    const char **paths = xalloc((size_t)argc * sizeof *paths);
    int n_paths = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: strata-posvec decompose DUMP.h5 [DUMP2.h5 ...] -o PV.h5 [--csv F] "
                   "[--allow-partial]\n\n"
                   "Mean-based decomposition of a strata-probe-hidden dump (or shards of one\n"
                   "run, read as one), streaming over samples: p[b,t] = mean_s h[s,b,t].\n"
                   "PV.h5 (docs/POSVEC.md): /positional (Lk, T, D) float32 -- the file\n"
                   "--posvec reads -- with /layers (Lk) and /positions (T) naming the\n"
                   "boundaries and positions the dump kept, the sums /sum (Lk, T, D) and\n"
                   "/sumsq (Lk, T) in float64 (for merge), /semantic_norm (Lk, T) the mean\n"
                   "|c| = |h - p| (a second pass). The CSV (default PV.csv) has one row per\n"
                   "boundary: variance total / explained by position, |u|, mean |p|, |c|.\n\n"
                   "  -o PV.h5         output (written as PV.h5.partial, then renamed)\n"
                   "  --csv F          per-boundary CSV (default: PV.h5 with .csv)\n"
                   "  --allow-partial  use the completed samples of an unfinished dump\n");
            return 0;
        } else if (!strcmp(a, "-o")) out = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--csv")) csv_path = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--allow-partial")) allow_partial = true;
        else if (a[0] == '-' && a[1]) cli_die("see strata-posvec decompose --help", "unknown option '%s'", a);
        else paths[n_paths++] = a;
    }
    if (!n_paths || !out) cli_die("see strata-posvec decompose --help", "need DUMP.h5 and -o PV.h5");
    struct strata_dump *dump = NULL;
    cli_check(strata_dump_open_many(&dump, paths, n_paths),
              "give dumps written by strata-probe-hidden (shards of one run)");
    struct strata_dump_info info;
    cli_check(strata_dump_info(dump, &info), NULL);
    if (!info.complete && !allow_partial)
        cli_die("finish or resume the probe run, or pass --allow-partial",
                "%s: the dump is incomplete (%lld of %lld samples)", paths[0],
                (long long)info.n_complete, (long long)info.n_samples);
    if (!(info.sites & STRATA_DUMP_RESID) || info.n_layers < 1 || info.n_complete < 1)
        cli_die("dump the residual stream (--sites resid) of at least one sample",
                "%s: no residual-stream samples to average", paths[0]);
    struct pvfile f = {.Lk = info.n_layers, .T = info.n_pos, .D = info.dim};
    const int64_t N = info.n_complete, T = f.T, D = f.D, Lk = f.Lk;
    cli_check(strata_pvsum_init(&f.acc, Lk, T, D), NULL);
    f.layers = xalloc((size_t)Lk * sizeof(int32_t));
    f.positions = xalloc((size_t)T * sizeof(int32_t));
    memcpy(f.layers, strata_dump_layers(dump), (size_t)Lk * sizeof(int32_t));
    memcpy(f.positions, strata_dump_positions(dump), (size_t)T * sizeof(int32_t));
    if (strata_dump_get_attr_str(dump, "model_config", &f.model_config)) f.model_config = NULL;
    float *h = xalloc((size_t)(T * D) * sizeof(float)); /* (T, D) one boundary of one sample */
    struct cli_progress prog;
    cli_progress_start(&prog);
    for (int64_t s = 0; s < N; s++) { /* pass 1: the sums */
        for (int64_t i = 0; i < Lk; i++) {
            cli_check(strata_dump_read_layer(dump, s, i, h), NULL);
            for (int64_t k = 0; k < T * D; k++)
                if (!isfinite(h[k]))
                    cli_die("rerun the probe; the model produced NaN/Inf",
                            "%s: non-finite hidden state at sample %lld, boundary %d, position %d",
                            paths[0], (long long)s, (int)f.layers[i], (int)f.positions[k / D]);
            strata_pvsum_add_layer(&f.acc, i, h);
        }
        strata_pvsum_count(&f.acc, 1);
        cli_progress(&prog, s + 1, 2 * N, (s + 1) * T, 0);
    }
    f.p = xalloc((size_t)(Lk * T * D) * sizeof(float));
    cli_check(strata_pvsum_mean(&f.acc, f.p), NULL);
    f.cnorm = xalloc((size_t)(Lk * T) * sizeof(double));
    for (int64_t s = 0; s < N; s++) { /* pass 2: mean |c| needs p */
        for (int64_t i = 0; i < Lk; i++) {
            cli_check(strata_dump_read_layer(dump, s, i, h), NULL);
            for (int64_t t = 0; t < T; t++) {
                const float *x = h + t * D, *pt = f.p + (i * T + t) * D;
                double cc = 0;
                for (int64_t k = 0; k < D; k++) cc += ((double)x[k] - (double)pt[k]) * ((double)x[k] - (double)pt[k]);
                f.cnorm[i * T + t] += sqrt(cc) / (double)N;
            }
        }
        cli_progress(&prog, N + s + 1, 2 * N, (N + s + 1) * T, s + 1 == N);
    }
    char *src = cli_command_line(n_paths, (char **)paths);
    pv_write(&f, out, cmdline, src);
    char *c = csv_path ? NULL : default_csv(out);
    per_layer_csv(&f, csv_path ? csv_path : c);
    fprintf(stderr, "%s: wrote %s and %s (%lld samples, %lld boundaries, %lld positions, D %lld)\n",
            cli_prog, out, csv_path ? csv_path : c, (long long)N, (long long)Lk, (long long)T,
            (long long)D);
    free(c);
    free(src);
    free(h);
    free(paths);
    pv_free(&f);
    strata_dump_free(dump);
    return 0;
}

static int cmd_merge(int argc, char **argv, const char *cmdline)
{
    const char *out = NULL, *csv_path = NULL;
    char **paths = xalloc((size_t)argc * sizeof *paths);
    int n = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: strata-posvec merge PV1.h5 PV2.h5 [...] -o PV.h5 [--csv F]\n\n"
                   "Add the sums of decompositions of disjoint sample sets (shards of one run)\n"
                   "and write the positional vectors of the union: the same as one decompose\n"
                   "over all samples up to double rounding. The shards must agree on shape,\n"
                   "boundaries, positions and model. /semantic_norm (mean |c|) needs p and\n"
                   "is not mergeable; it is left out (the CSV's c_rms is exact).\n");
            return 0;
        } else if (!strcmp(argv[i], "-o")) out = cli_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--csv")) csv_path = cli_value(argc, argv, &i);
        else if (argv[i][0] == '-') cli_die("see strata-posvec merge --help", "unknown option '%s'", argv[i]);
        else paths[n++] = argv[i];
    }
    if (n < 1 || !out) cli_die("see strata-posvec merge --help", "need PV files and -o PV.h5");
    struct pvfile a, b;
    pv_read(&a, paths[0]);
    for (int k = 1; k < n; k++) {
        pv_read(&b, paths[k]);
        const char *hint = "merge only decompositions of the same model, boundaries and positions";
        if (b.Lk != a.Lk || b.T != a.T || b.D != a.D)
            cli_die(hint, "%s has shape (%lld, %lld, %lld) but %s has (%lld, %lld, %lld)", paths[k],
                    (long long)b.Lk, (long long)b.T, (long long)b.D, paths[0], (long long)a.Lk,
                    (long long)a.T, (long long)a.D);
        if (memcmp(a.layers, b.layers, (size_t)a.Lk * 4) || memcmp(a.positions, b.positions, (size_t)a.T * 4))
            cli_die(hint, "%s and %s keep different boundaries or positions", paths[0], paths[k]);
        if ((a.model_config == NULL) != (b.model_config == NULL) ||
            (a.model_config && strcmp(a.model_config, b.model_config)))
            cli_die(hint, "%s and %s come from different models (model_config)", paths[0], paths[k]);
        cli_check(strata_pvsum_merge(&a.acc, &b.acc), hint);
        pv_free(&b);
    }
    free(a.cnorm);
    a.cnorm = NULL;
    char *src = cli_command_line(n, paths);
    pv_write(&a, out, cmdline, src);
    char *c = csv_path ? NULL : default_csv(out);
    per_layer_csv(&a, csv_path ? csv_path : c);
    fprintf(stderr, "%s: merged %d files, %lld samples -> %s\n", cli_prog, n, (long long)a.acc.n, out);
    free(c);
    free(src);
    free(paths);
    pv_free(&a);
    return 0;
}

/* ---------------------------------------------------------- formation */

static int cmd_formation(int argc, char **argv)
{
    const char *in = NULL, *dir = NULL;
    int64_t n_comp = 3, stride = 0;
    double thr[8] = {0.9, 0.95, 0.99};
    int n_thr = 3;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: strata-posvec formation PV.h5 -o DIR [--components K] [--stride S]\n"
                   "                                [--thresholds 0.9,0.95,0.99]\n\n"
                   "How positional vectors form, per boundary b (docs/POSVEC.md). Writes in DIR:\n"
                   "  pca_scores.csv   b,t,pc1..pcK: m[b,t] = p[b,t] - u[b] projected on the\n"
                   "                   first K principal axes of {p[b,t]}_t\n"
                   "  pca_var.csv      b,k,eigval,explained,cumulative (every component)\n"
                   "  pca_components.csv  b,k,i,value: the K unit eigenvectors\n"
                   "  cos.csv          b,t1,t2,cos of p[b,t1], p[b,t2] every S positions\n"
                   "                   (default S = ceil(T/128))\n"
                   "  norms.csv        b,t,p_norm,m_norm,c_norm_mean (|p|, |m|, mean |c|)\n"
                   "  layers.csv       b,b_next,mean_cos,min_cos (p of consecutive boundaries)\n"
                   "  distinct.csv     b,threshold,n_distinct,leaders (first 16): leader\n"
                   "                   clustering in position order, a position joins the\n"
                   "                   first leader with cos >= threshold, else leads\n");
            return 0;
        } else if (!strcmp(a, "-o")) dir = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--components")) n_comp = cli_int(a, cli_value(argc, argv, &i), 1, 64);
        else if (!strcmp(a, "--stride")) stride = cli_int(a, cli_value(argc, argv, &i), 1, 1 << 30);
        else if (!strcmp(a, "--thresholds")) {
            char *items[8], *s = strdup(cli_value(argc, argv, &i));
            n_thr = split(s, items, 8);
            for (int k = 0; k < n_thr; k++) thr[k] = cli_double(a, items[k]);
            free(s);
        } else if (a[0] == '-') cli_die("see strata-posvec formation --help", "unknown option '%s'", a);
        else in = a;
    }
    if (!in || !dir) cli_die("see strata-posvec formation --help", "need PV.h5 and -o DIR");
    struct pvfile f;
    pv_read(&f, in);
    const int64_t Lk = f.Lk, T = f.T, D = f.D, K = n_comp < D ? n_comp : D;
    if (!stride) stride = (T + 127) / 128;
    double *ev = xalloc((size_t)D * sizeof *ev), *comp = xalloc((size_t)(D * D) * sizeof *comp);
    struct csv cs, cv, cc, cn, cl, cd, cp;
    FILE *fs = csv_open(&cs, dir, "pca_scores.csv", "layer,t,pc1,pc2,pc3");
    FILE *fv = csv_open(&cv, dir, "pca_var.csv", "layer,k,eigval,explained,cumulative");
    FILE *fp = csv_open(&cp, dir, "pca_components.csv", "layer,k,i,value");
    FILE *fc = csv_open(&cc, dir, "cos.csv", "layer,t1,t2,cos");
    FILE *fn = csv_open(&cn, dir, "norms.csv", "layer,t,p_norm,m_norm,c_norm_mean");
    FILE *fl = csv_open(&cl, dir, "layers.csv", "layer,layer_next,mean_cos,min_cos");
    FILE *fd = csv_open(&cd, dir, "distinct.csv", "layer,threshold,n_distinct,leaders");
    int32_t *leader = xalloc((size_t)T * sizeof *leader);
    double *u = xalloc((size_t)D * sizeof *u);
    for (int64_t i = 0; i < Lk; i++) {
        const float *p = f.p + i * T * D; /* (T, D) */
        const int b = f.layers[i];
        cli_check(strata_pv_pca(ev, comp, p, T, D), NULL);
        double tot = 0, cum = 0;
        for (int64_t k = 0; k < D; k++) tot += ev[k];
        for (int64_t k = 0; k < D; k++) {
            cum += ev[k];
            fprintf(fv, "%d,%lld,%.9g,%.9g,%.9g\n", b, (long long)k, ev[k], tot > 0 ? ev[k] / tot : 0,
                    tot > 0 ? cum / tot : 0);
        }
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = 0; j < D; j++)
                fprintf(fp, "%d,%lld,%lld,%.9g\n", b, (long long)k, (long long)j, comp[k * D + j]);
        memset(u, 0, (size_t)D * sizeof *u);
        for (int64_t t = 0; t < T; t++)
            for (int64_t j = 0; j < D; j++) u[j] += (double)p[t * D + j] / (double)T;
        for (int64_t t = 0; t < T; t++) {
            double sc[3] = {0, 0, 0}, pn = 0, mn = 0;
            for (int64_t j = 0; j < D; j++) {
                const double m = (double)p[t * D + j] - u[j];
                for (int64_t k = 0; k < 3 && k < K; k++) sc[k] += m * comp[k * D + j];
                pn += (double)p[t * D + j] * (double)p[t * D + j];
                mn += m * m;
            }
            fprintf(fs, "%d,%d,%.9g,%.9g,%.9g\n", b, (int)f.positions[t], sc[0], sc[1], sc[2]);
            fprintf(fn, "%d,%d,%.9g,%.9g,%.9g\n", b, (int)f.positions[t], sqrt(pn), sqrt(mn),
                    f.cnorm ? f.cnorm[i * T + t] : DNAN);
        }
        for (int64_t t1 = 0; t1 < T; t1 += stride)
            for (int64_t t2 = 0; t2 < T; t2 += stride)
                fprintf(fc, "%d,%d,%d,%.6f\n", b, (int)f.positions[t1], (int)f.positions[t2],
                        strata_pv_cos(p + t1 * D, p + t2 * D, D));
        if (i + 1 < Lk) {
            double sum = 0, mn = 2;
            for (int64_t t = 0; t < T; t++) {
                double c = strata_pv_cos(p + t * D, p + (T + t) * D, D);
                sum += c;
                mn = c < mn ? c : mn;
            }
            fprintf(fl, "%d,%d,%.9g,%.9g\n", b, (int)f.layers[i + 1], sum / (double)T, mn);
        }
        for (int k = 0; k < n_thr; k++) {
            int64_t nd = strata_pv_clusters(leader, p, T, D, thr[k]);
            fprintf(fd, "%d,%g,%lld,\"", b, thr[k], (long long)nd);
            int shown = 0;
            for (int64_t t = 0; t < T && shown < 16; t++)
                if (leader[t] == t) fprintf(fd, "%s%d", shown++ ? " " : "", (int)f.positions[t]);
            fprintf(fd, "\"\n");
        }
    }
    csv_close(&cs), csv_close(&cv), csv_close(&cp), csv_close(&cc);
    csv_close(&cn), csv_close(&cl), csv_close(&cd);
    free(ev), free(comp), free(leader), free(u);
    pv_free(&f);
    return 0;
}

/* ----------------------------------------------- in-process model runs */

/* One configuration of the model, run in lockstep with the others on the
 * same samples. Each has its own model handle because the runtime reads the
 * position settings from the model at every call. */
struct run {
    char name[96];
    char scale[64];        /* strata_rope_scaling_parse words, "" = as loaded */
    double temp;           /* attention logit scale lambda */
    int64_t window;        /* sliding window, -1 = as loaded */
    bool has_edit;
    struct strata_edit_params ed;
    /* state */
    struct strata_model *model;
    struct strata_ctx *ctx;
    struct strata_editor *editor;
    float *hid;            /* (L+1, T, D) this sample's hidden states */
    struct strata_hidden_capture cap;
    int64_t L, H, T, C, W;
    bool logits;           /* profile logits against distance */
    /* sums over samples */
    double *nll;           /* (T-1) */
    double *sink;          /* (L, T) attention on key 0 per query, summed over heads */
    double *pd, *pdn;      /* (L, T) probability against distance: sum, count */
    double *lg, *lgn;      /* (2, L, T) logit against distance, queries < C / >= C */
    double *hcos;          /* (L+1) sum over positions of cos to run 0 */
    struct strata_pvsum acc; /* hidden states, for positional vectors */
};

static bool run_wants(void *user, int32_t layer, enum strata_site site)
{
    const struct run *r = user;
    (void)layer;
    return site == STRATA_SITE_ATTN_PROBS || (r->logits && site == STRATA_SITE_ATTN_LOGITS);
}

static int run_observe(void *user, const struct strata_view *v)
{
    struct run *r = user;
    const int64_t T = r->T, l = v->layer;
    for (int64_t a = 0; a < v->n_rows; a++) {
        const int64_t i = v->row0 + a;
        const float *row = v->data + a * v->ld;
        int64_t j0 = v->col0;
        if (r->W > 0 && i - r->W + 1 > j0) j0 = i - r->W + 1;
        if (v->site == STRATA_SITE_ATTN_PROBS) {
            if (v->col0 == 0 && j0 == 0) r->sink[l * T + i] += (double)row[0];
            for (int64_t j = j0; j <= i; j++) {
                r->pd[l * T + i - j] += (double)row[j - v->col0];
                r->pdn[l * T + i - j] += 1;
            }
        } else {
            const int64_t o = (i >= r->C ? r->L * T : 0) + l * T;
            for (int64_t j = j0; j <= i; j++) {
                if (!isfinite(row[j - v->col0])) continue;
                r->lg[o + i - j] += (double)row[j - v->col0];
                r->lgn[o + i - j] += 1;
            }
        }
    }
    return 0;
}

struct runner {
    struct cli_model cm;
    const char *corpus, *sep, *pv_path;
    int64_t N, T;
    uint64_t seed;
    struct strata_corpus *corp;
};

static void runner_init(struct runner *rn)
{
    memset(rn, 0, sizeof *rn);
    rn->sep = "<|endoftext|>";
    rn->N = 16;
}

#define RUNNER_HELP                                                                        \
    "  --model M, --tokenizer TOK, --positions P, --rope-base B as the probes\n"          \
    "  --corpus FILE    documents separated by --sep (default <|endoftext|>)\n"           \
    "  --samples N      samples per configuration (default 16); drawn as\n"             \
    "                   strata-probe-ppl draws them (same --seed, same tokens)\n"         \
    "  --seed S         sample selection seed (default 0)\n"                             \
    "  -o DIR           output directory (created)\n"

static bool runner_option(struct runner *rn, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    if (cli_model_option(&rn->cm, argc, argv, i)) return true;
    if (!strcmp(a, "--corpus")) rn->corpus = cli_value(argc, argv, i);
    else if (!strcmp(a, "--sep")) rn->sep = cli_value(argc, argv, i);
    else if (!strcmp(a, "--samples")) rn->N = cli_int(a, cli_value(argc, argv, i), 1, 1 << 24);
    else if (!strcmp(a, "--seq-len")) rn->T = cli_int(a, cli_value(argc, argv, i), 2, 1 << 24);
    else if (!strcmp(a, "--seed")) rn->seed = (uint64_t)cli_int(a, cli_value(argc, argv, i), 0, INT64_MAX);
    else if (!strcmp(a, "--pv")) rn->pv_path = cli_value(argc, argv, i);
    else return false;
    return true;
}

static void runner_load(struct runner *rn)
{
    if (!rn->corpus) cli_die("see --help", "--corpus is required");
    cli_model_load(&rn->cm, true);
    cli_check(strata_corpus_load(&rn->corp, rn->corpus, rn->sep), "check --corpus and --sep");
}

/* Kinds of configuration names: "direct", "linear:F", "ntk:F",
 * "dynamic-ntk:F", "yarn:F", "temp:X", "window:W", "wext:R:X" (window R*C,
 * temperature X). */
static void run_parse(struct run *r, const char *spec, int64_t C)
{
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", spec);
    r->temp = 1.0;
    r->window = -1;
    const char *hint = "methods: direct, linear:F, ntk:F, dynamic-ntk:F, yarn:F, temp:X, window:W, "
                       "wext:R:X";
    if (!strcmp(spec, "direct")) return;
    if (!strncmp(spec, "temp:", 5)) r->temp = cli_double(spec, spec + 5);
    else if (!strncmp(spec, "window:", 7)) r->window = cli_int(spec, spec + 7, 1, 1 << 30);
    else if (!strncmp(spec, "wext:", 5)) {
        char *end;
        double rr = strtod(spec + 5, &end);
        if (*end != ':' || !(rr > 0)) cli_die(hint, "'%s': expected wext:R:X", spec);
        r->window = (int64_t)llround(rr * (double)C);
        r->temp = cli_double(spec, end + 1);
    } else {
        if (!strncmp(spec, "dynamic-ntk:", 12)) snprintf(r->scale, sizeof r->scale, "dynamic%s", spec + 11);
        else snprintf(r->scale, sizeof r->scale, "%s", spec);
        struct strata_rope_scaling_params sp;
        if (strata_rope_scaling_parse(r->scale, C, &sp)) cli_die(hint, "unknown method '%s'", spec);
    }
    if (!(r->temp > 0) || !isfinite(r->temp)) cli_die(hint, "'%s': temperature must be > 0", spec);
}

/* Run every configuration on the same N samples of T tokens. */
static void runner_go(struct runner *rn, struct run *runs, int n_run, bool logits, bool hidden)
{
    struct strata_config c0 = *strata_model_config(rn->cm.model);
    const int64_t L = c0.n_layer, T = rn->T, D = c0.dim, C = c0.seq_len;
    struct strata_posvec *pv = NULL;
    for (int k = 0; k < n_run; k++) {
        struct run *r = &runs[k];
        cli_check(strata_model_load(&r->model, rn->cm.model_path), NULL);
        struct strata_config c = c0;
        if (r->scale[0]) cli_check(strata_rope_scaling_parse(r->scale, C, &c.scaling), NULL);
        if (r->window >= 0) c.sliding_window = r->window;
        cli_check(strata_model_set_config(r->model, &c), NULL);
        struct strata_ctx_params cp = strata_ctx_default_params();
        cp.n_ctx = T;
        cp.attn_scale = r->temp;
        cli_check(strata_ctx_create(&r->ctx, r->model, &cp), NULL);
        if (r->has_edit) {
            if (!pv) cli_check(strata_posvec_load(&pv, rn->pv_path), "--pv takes strata-posvec decompose output");
            cli_check(strata_editor_create(&r->editor, r->model, pv, &r->ed),
                      "--pv must cover every position of the input: decompose a dump of this length");
            struct strata_observer e = strata_editor_observer(r->editor);
            cli_check(strata_ctx_add_editor(r->ctx, &e), NULL);
        }
        r->L = L, r->H = c.n_head, r->T = T, r->C = C, r->W = c.sliding_window, r->logits = logits;
        struct strata_observer o = {.wants = run_wants, .observe = run_observe, .user = r};
        cli_check(strata_ctx_add_observer(r->ctx, &o), NULL);
        r->nll = xalloc((size_t)T * sizeof(double));
        r->sink = xalloc((size_t)(L * T) * sizeof(double));
        r->pd = xalloc((size_t)(L * T) * sizeof(double));
        r->pdn = xalloc((size_t)(L * T) * sizeof(double));
        r->lg = xalloc((size_t)(2 * L * T) * sizeof(double));
        r->lgn = xalloc((size_t)(2 * L * T) * sizeof(double));
        r->hcos = xalloc((size_t)(L + 1) * sizeof(double));
        if (hidden) {
            r->hid = xalloc((size_t)((L + 1) * T * D) * sizeof(float));
            r->cap = (struct strata_hidden_capture){.hidden = r->hid, .T = T, .D = D};
            struct strata_observer ho = strata_observer_hidden(&r->cap);
            cli_check(strata_ctx_add_observer(r->ctx, &ho), NULL);
            cli_check(strata_pvsum_init(&r->acc, L + 1, T, D), NULL);
        }
    }
    strata_posvec_free(pv);
    struct strata_samples smp;
    cli_check(strata_samples_build(&smp, rn->corp, rn->cm.tok, rn->N, T, rn->seed),
              "use fewer --samples or a shorter --seq-len, or a larger corpus");
    double *nll = xalloc((size_t)T * sizeof(double));
    struct cli_progress prog;
    cli_progress_start(&prog);
    for (int64_t s = 0; s < rn->N; s++) {
        for (int k = 0; k < n_run; k++) {
            struct run *r = &runs[k];
            cli_check(strata_forward_nll(r->ctx, nll, smp.tokens + s * T, T), NULL);
            for (int64_t t = 0; t < T - 1; t++) r->nll[t] += nll[t];
            if (!hidden) continue;
            for (int64_t b = 0; b <= L; b++) {
                strata_pvsum_add_layer(&r->acc, b, r->hid + b * T * D);
                for (int64_t t = 0; t < T; t++)
                    r->hcos[b] += strata_pv_cos(r->hid + (b * T + t) * D, runs[0].hid + (b * T + t) * D, D);
            }
            strata_pvsum_count(&r->acc, 1);
        }
        cli_progress(&prog, s + 1, rn->N, (s + 1) * T * n_run, s + 1 == rn->N);
    }
    free(nll);
    strata_samples_free(&smp);
}

static void runs_free(struct run *runs, int n_run)
{
    for (int k = 0; k < n_run; k++) {
        struct run *r = &runs[k];
        strata_ctx_free(r->ctx);
        strata_editor_free(r->editor);
        strata_model_free(r->model);
        free(r->hid), free(r->nll), free(r->sink), free(r->pd), free(r->pdn);
        free(r->lg), free(r->lgn), free(r->hcos);
        strata_pvsum_free(&r->acc);
    }
}

/* Mean NLL over prediction columns t0 <= t < t1 (column t predicts token t+1). */
static double run_nll(const struct run *r, int64_t N, int64_t t0, int64_t t1)
{
    if (t1 > r->T - 1) t1 = r->T - 1;
    double s = 0;
    for (int64_t t = t0; t < t1; t++) s += r->nll[t];
    return t1 > t0 ? s / (double)(N * (t1 - t0)) : DNAN;
}

/* Mean sink mass of block l over queries q0 <= i < q1 (all heads). */
static double run_sink(const struct run *r, int64_t N, int64_t l, int64_t q0, int64_t q1)
{
    double s = 0;
    for (int64_t i = q0; i < q1 && i < r->T; i++) s += r->sink[l * r->T + i];
    return q1 > q0 ? s / (double)(N * r->H * (q1 - q0)) : DNAN;
}

/* Pearson correlation of the mean logit against distance 0 .. C-1 for
 * queries inside the window and beyond it (P1's logit similarity). */
static double run_logit_sim(const struct run *r, int64_t l)
{
    const int64_t T = r->T, o = r->L * T + l * T;
    double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0, n = 0;
    for (int64_t m = 0; m < r->C && m < T; m++) {
        if (r->lgn[l * T + m] == 0 || r->lgn[o + m] == 0) continue;
        const double a = r->lg[l * T + m] / r->lgn[l * T + m], b = r->lg[o + m] / r->lgn[o + m];
        sa += a, sb += b, saa += a * a, sbb += b * b, sab += a * b, n += 1;
    }
    if (n < 2) return DNAN;
    const double va = saa - sa * sa / n, vb = sbb - sb * sb / n;
    return va > 0 && vb > 0 ? (sab - sa * sb / n) / sqrt(va * vb) : DNAN;
}

/* For each t of x (Tx, D), the best match among the first C rows of y:
 * best (Tx), cos (Tx). */
static void best_match(int32_t *best, double *cos, const float *x, int64_t Tx, const float *y,
                       int64_t C, int64_t D)
{
    for (int64_t t = 0; t < Tx; t++) {
        best[t] = 0, cos[t] = -2;
        for (int64_t u = 0; u < C; u++) {
            double c = strata_pv_cos(x + t * D, y + u * D, D);
            if (c > cos[t]) cos[t] = c, best[t] = (int32_t)u;
        }
    }
}

/* ----------------------------------------------------------- attention */

static int cmd_attention(int argc, char **argv)
{
    struct runner rn;
    runner_init(&rn);
    const char *dir = NULL;
    char kinds_s[256] = "sub-positional,sub-basis,sub-semantic", ranges_s[256] = "0-4,32-256";
    int64_t boundary = 1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: strata-posvec attention --pv PV.h5 --model M --corpus FILE -o DIR [options]\n\n"
                   "Remove a component of the hidden states at boundary B for a range of\n"
                   "positions (the runtime's editors, as strata-probe-attn/-ppl --edit) and\n"
                   "compare with the unedited run on the same samples. Writes in DIR:\n"
                   "  attention_summary.csv  run,kind,boundary,t0,t1,layer,sink,sink_base,\n"
                   "                         hidden_cos,mean_nll,ppl,ppl_base\n"
                   "    sink = mean attention on token 0 (all heads, all queries) in block\n"
                   "    `layer`; hidden_cos = mean cos of boundary layer+1 to the unedited run\n"
                   "  attention_dist.csv     run,layer,distance,prob: mean attention against\n"
                   "                         relative distance (all heads)\n\n"
                   "  --pv PV.h5       positional vectors (decompose) covering --seq-len\n"
                   "  --boundary B     edited boundary (default 1)\n"
                   "  --kinds LIST     sub-positional,sub-basis,sub-semantic (default all)\n"
                   "  --ranges LIST    position ranges T0-T1 (default 0-4,32-256)\n"
                   "  --seq-len T      tokens per sample (default: the trained window)\n" RUNNER_HELP);
            return 0;
        } else if (!strcmp(a, "-o")) dir = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--boundary")) boundary = cli_int(a, cli_value(argc, argv, &i), 0, 1 << 20);
        else if (!strcmp(a, "--kinds")) snprintf(kinds_s, sizeof kinds_s, "%s", cli_value(argc, argv, &i));
        else if (!strcmp(a, "--ranges")) snprintf(ranges_s, sizeof ranges_s, "%s", cli_value(argc, argv, &i));
        else if (!runner_option(&rn, argc, argv, &i))
            cli_die("see strata-posvec attention --help", "unknown option '%s'", a);
    }
    if (!dir || !rn.pv_path) cli_die("see strata-posvec attention --help", "need --pv PV.h5 and -o DIR");
    runner_load(&rn);
    const struct strata_config *c = strata_model_config(rn.cm.model);
    if (!rn.T) rn.T = c->seq_len;
    struct pvfile f;
    pv_read(&f, rn.pv_path);
    pv_require_full(&f, rn.pv_path, c->n_layer);
    if (boundary > c->n_layer) cli_die(NULL, "--boundary %lld: the model has boundaries 0..%d", (long long)boundary, (int)c->n_layer);
    char *kinds[8], *ranges[8];
    int nk = split(kinds_s, kinds, 8), nr = split(ranges_s, ranges, 8);
    struct run runs[1 + 64];
    int n = 1;
    run_parse(&runs[0], "direct", c->seq_len);
    snprintf(runs[0].name, sizeof runs[0].name, "none");
    for (int a = 0; a < nk; a++)
        for (int b = 0; b < nr; b++) {
            struct run *r = &runs[n++];
            run_parse(r, "direct", c->seq_len);
            r->has_edit = true;
            r->ed = strata_edit_default_params();
            r->ed.boundary = (int32_t)boundary;
            if (strata_edit_kind_parse(kinds[a], &r->ed.kind) || r->ed.kind == STRATA_EDIT_REPLACE ||
                r->ed.kind == STRATA_EDIT_ADD_POSITIONAL)
                cli_die("--kinds sub-positional, sub-basis, sub-semantic", "unknown kind '%s'", kinds[a]);
            long long t0, t1;
            if (sscanf(ranges[b], "%lld-%lld", &t0, &t1) != 2 || t0 < 0 || t1 <= t0)
                cli_die("--ranges T0-T1,...", "bad range '%s'", ranges[b]);
            r->ed.t0 = t0, r->ed.t1 = t1 < rn.T ? t1 : rn.T;
            if (r->ed.t0 >= rn.T) cli_die(NULL, "range '%s' lies beyond --seq-len %lld", ranges[b], (long long)rn.T);
            snprintf(r->name, sizeof r->name, "%s@%lld:%lld-%lld", kinds[a], (long long)boundary, t0,
                     (long long)r->ed.t1);
        }
    runner_go(&rn, runs, n, false, true);
    struct csv cs, cd;
    FILE *fs = csv_open(&cs, dir, "attention_summary.csv",
                        "run,kind,boundary,t0,t1,layer,sink,sink_base,hidden_cos,mean_nll,ppl,ppl_base");
    FILE *fd = csv_open(&cd, dir, "attention_dist.csv", "run,layer,distance,prob");
    const int64_t N = rn.N, T = rn.T, L = c->n_layer;
    const double base = run_nll(&runs[0], N, 0, T);
    for (int k = 0; k < n; k++) {
        const struct run *r = &runs[k];
        const double nl = run_nll(r, N, 0, T);
        for (int64_t l = 0; l < L; l++) {
            fprintf(fs, "%s,%s,%d,%lld,%lld,%lld,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g\n", r->name,
                    k ? strata_edit_kind_name(r->ed.kind) : "none", k ? (int)r->ed.boundary : -1,
                    (long long)(k ? r->ed.t0 : 0), (long long)(k ? r->ed.t1 : 0), (long long)l,
                    run_sink(r, N, l, 0, T), run_sink(&runs[0], N, l, 0, T),
                    r->hcos[l + 1] / (double)(N * T), nl, exp(nl), exp(base));
            for (int64_t m = 0; m < T; m++)
                if (r->pdn[l * T + m] > 0)
                    fprintf(fd, "%s,%lld,%lld,%.6g\n", r->name, (long long)l, (long long)m,
                            r->pd[l * T + m] / r->pdn[l * T + m]);
        }
        fprintf(stderr, "%s: %-36s ppl %.4f (unedited %.4f), sink(block 1) %.3f\n", cli_prog, r->name,
                exp(nl), exp(base), L > 1 ? run_sink(r, N, 1, 0, T) : DNAN);
    }
    csv_close(&cs), csv_close(&cd);
    runs_free(runs, n);
    pv_free(&f);
    strata_corpus_free(rn.corp);
    cli_model_free(&rn.cm);
    return 0;
}

/* ---------------------------------------- beyond-window and extension */

/* Rows of one run beyond the window: match of each p to the in-window
 * original; summary per layer. orig (L+1, To, D) with To >= C. */
static void write_match(FILE *fm, FILE *fh, FILE *fs, const char *name, const float *p,
                        const struct pvfile *o, const struct run *r, int64_t N, int64_t stride)
{
    const int64_t T = r->T, C = r->C, D = o->D, L = r->L;
    int32_t *best = xalloc((size_t)T * sizeof *best);
    double *cs = xalloc((size_t)T * sizeof *cs);
    for (int64_t i = 0; i < o->Lk; i++) {
        const int64_t b = o->layers[i];
        const float *x = p + b * T * D, *y = o->p + i * o->T * D;
        best_match(best, cs, x, T, y, C, D);
        double sx = 0, sy = 0, sxx = 0, sxy = 0, n = 0, cin = 0, cout = 0;
        for (int64_t t = 0; t < T; t++) {
            if (fm) fprintf(fm, "%s,%lld,%lld,%d,%.6f\n", name, (long long)b, (long long)t, (int)best[t], cs[t]);
            if (t >= 4) sx += (double)t, sy += best[t], sxx += (double)t * (double)t,
                        sxy += (double)t * best[t], n += 1;
            if (t < C) cin += cs[t];
            else cout += cs[t];
        }
        const double slope = (sxy - sx * sy / n) / (sxx - sx * sx / n);
        if (fh)
            for (int64_t t = 0; t < T; t += stride)
                for (int64_t u = 0; u < C; u += stride)
                    fprintf(fh, "%s,%lld,%lld,%lld,%.5f\n", name, (long long)b, (long long)t,
                            (long long)u, strata_pv_cos(x + t * D, y + u * D, D));
        fprintf(fs, "%s,%lld,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g\n", name, (long long)b,
                cin / (double)(C < T ? C : T), T > C ? cout / (double)(T - C) : DNAN, slope,
                1.0 / slope, b < L ? run_sink(r, N, b, 0, C) : DNAN,
                b < L ? run_sink(r, N, b, C, T) : DNAN, b < L ? run_logit_sim(r, b) : DNAN,
                exp(run_nll(r, N, 0, C - 1)), exp(run_nll(r, N, C - 1, T)));
    }
    free(best), free(cs);
}

static int cmd_beyond(int argc, char **argv, bool extension)
{
    struct runner rn;
    runner_init(&rn);
    rn.N = 8;
    const char *dir = NULL;
    char methods_s[512] = "direct,linear:4,ntk:4,dynamic-ntk:4,temp:1.2";
    int64_t stride = 0, bucket = 64;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            if (!extension)
                printf("usage: strata-posvec beyond-window --pv PV.h5 --model M --corpus FILE -o DIR\n\n"
                       "Inputs longer than the trained window C (direct extrapolation). PV.h5 must\n"
                       "come from a dump of T > C tokens (probe-hidden --seq-len 2C); the model\n"
                       "runs N new samples of T tokens. Writes in DIR:\n"
                       "  beyond_match.csv  run,layer,t,best_t,max_cos: for every t the in-window\n"
                       "                    position t' < C whose p[b,t'] is most similar\n"
                       "  beyond_summary.csv run,layer,cos_in,cos_beyond,slope,ratio,sink_in,\n"
                       "                    sink_beyond,logit_sim,ppl_in,ppl_beyond (see POSVEC.md)\n"
                       "  beyond_ppl.csv    start,end,mean_nll,ppl per bucket of predictions\n\n"
                       "  --pv PV.h5       positional vectors of T > C positions\n"
                       "  --bucket B       positions per perplexity bucket (default 64)\n" RUNNER_HELP);
            else
                printf("usage: strata-posvec extension --pv PV.h5 --model M --corpus FILE -o DIR\n"
                       "                                [--methods LIST] [--seq-len T]\n\n"
                       "Context window extension: for each method the model runs N samples of T\n"
                       "tokens (default 2C) and its positional vectors are decomposed in memory\n"
                       "and compared with the original ones (PV.h5, any length >= C).\n"
                       "Methods: direct, linear:F, ntk:F, dynamic-ntk:F, yarn:F (RoPE scaling),\n"
                       "temp:X (attention logits X q.k/sqrt(d)), window:W, wext:R:X.\n"
                       "Writes in DIR:\n"
                       "  extension_summary.csv as beyond_summary.csv, one row per method and\n"
                       "                    boundary; slope = least-squares slope of best_t\n"
                       "                    against t (t >= 4), ratio = 1/slope the effective\n"
                       "                    interpolation ratio\n"
                       "  extension_match.csv  method,layer,t,best_t,max_cos\n"
                       "  extension_heatmap.csv method,layer,t_ext,t_orig,cos every S positions\n\n"
                       "  --methods LIST   (default direct,linear:4,ntk:4,dynamic-ntk:4,temp:1.2)\n"
                       "  --stride S       heatmap stride (default ceil(T/64))\n" RUNNER_HELP);
            return 0;
        } else if (!strcmp(a, "-o")) dir = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--methods") && extension) snprintf(methods_s, sizeof methods_s, "%s", cli_value(argc, argv, &i));
        else if (!strcmp(a, "--stride")) stride = cli_int(a, cli_value(argc, argv, &i), 1, 1 << 30);
        else if (!strcmp(a, "--bucket")) bucket = cli_int(a, cli_value(argc, argv, &i), 1, 1 << 30);
        else if (!runner_option(&rn, argc, argv, &i))
            cli_die("see --help", "unknown option '%s'", a);
    }
    if (!dir || !rn.pv_path) cli_die("see --help", "need --pv PV.h5 and -o DIR");
    runner_load(&rn);
    const struct strata_config *c = strata_model_config(rn.cm.model);
    const int64_t C = c->seq_len, L = c->n_layer;
    struct pvfile o;
    pv_read(&o, rn.pv_path);
    for (int64_t t = 0; t < o.T; t++)
        if (o.positions[t] != t) cli_die("decompose a dump of every position", "%s keeps a subset of positions", rn.pv_path);
    if (o.D != c->dim || o.layers[o.Lk - 1] > L) cli_die(NULL, "%s does not belong to this model", rn.pv_path);
    if (o.T < C) cli_die("decompose a dump of at least the trained window", "%s covers %lld positions < C = %lld", rn.pv_path, (long long)o.T, (long long)C);
    if (!extension && o.T <= C)
        cli_die("make the dump with strata-probe-hidden --seq-len 2C",
                "%s covers %lld positions, not beyond the trained window %lld", rn.pv_path, (long long)o.T, (long long)C);
    if (!rn.T) rn.T = extension ? 2 * C : o.T;
    if (rn.T <= C) cli_die(NULL, "--seq-len %lld must exceed the trained window %lld", (long long)rn.T, (long long)C);
    if (!stride) stride = (rn.T + 63) / 64;
    char *items[32];
    int n = extension ? split(methods_s, items, 32) : 1;
    struct run *runs = xalloc((size_t)n * sizeof *runs);
    for (int k = 0; k < n; k++) run_parse(&runs[k], extension ? items[k] : "direct", C);
    runner_go(&rn, runs, n, true, extension);
    const int64_t T = rn.T, N = rn.N;
    struct csv cm, ch, cs, cp;
    const char *pre = extension ? "extension" : "beyond";
    char nm[64];
    snprintf(nm, sizeof nm, "%s_match.csv", pre);
    FILE *fm = csv_open(&cm, dir, nm, "run,layer,t,best_t,max_cos");
    snprintf(nm, sizeof nm, "%s_summary.csv", pre);
    FILE *fs = csv_open(&cs, dir, nm, "run,layer,cos_in,cos_beyond,slope,ratio,sink_in,sink_beyond,"
                                      "logit_sim,ppl_in,ppl_beyond");
    FILE *fh = extension ? csv_open(&ch, dir, "extension_heatmap.csv", "run,layer,t_ext,t_orig,cos") : NULL;
    if (!extension) { /* the dump's own p, beyond the window */
        for (int64_t i = 0; i < o.Lk; i++) {
            const int64_t b = o.layers[i];
            int32_t *best = xalloc((size_t)o.T * sizeof *best);
            double *cs2 = xalloc((size_t)o.T * sizeof *cs2);
            best_match(best, cs2, o.p + i * o.T * o.D, o.T, o.p + i * o.T * o.D, C, o.D);
            for (int64_t t = C; t < o.T; t++)
                fprintf(fm, "direct,%lld,%lld,%d,%.6f\n", (long long)b, (long long)t, (int)best[t], cs2[t]);
            double ci = 0;
            for (int64_t t = C; t < o.T; t++) ci += cs2[t];
            fprintf(fs, "direct,%lld,1,%.6g,NaN,NaN,%.6g,%.6g,%.6g,%.6g,%.6g\n", (long long)b,
                    ci / (double)(o.T - C), b < L ? run_sink(&runs[0], N, b, 0, C) : DNAN,
                    b < L ? run_sink(&runs[0], N, b, C, T) : DNAN,
                    b < L ? run_logit_sim(&runs[0], b) : DNAN, exp(run_nll(&runs[0], N, 0, C - 1)),
                    exp(run_nll(&runs[0], N, C - 1, T)));
            free(best), free(cs2);
        }
        FILE *fp = csv_open(&cp, dir, "beyond_ppl.csv", "start,end,mean_nll,ppl");
        for (int64_t t = 0; t < T - 1; t += bucket) {
            double m = run_nll(&runs[0], N, t, t + bucket);
            fprintf(fp, "%lld,%lld,%.6g,%.6g\n", (long long)t, (long long)(t + bucket < T - 1 ? t + bucket : T - 1), m, exp(m));
        }
        csv_close(&cp);
    } else {
        float *p = xalloc((size_t)((L + 1) * T * c->dim) * sizeof(float));
        for (int k = 0; k < n; k++) {
            cli_check(strata_pvsum_mean(&runs[k].acc, p), NULL);
            write_match(fm, fh, fs, runs[k].name, p, &o, &runs[k], N, stride);
            fprintf(stderr, "%s: %-16s ppl in %.4f, beyond %.4f\n", cli_prog, runs[k].name,
                    exp(run_nll(&runs[k], N, 0, C - 1)), exp(run_nll(&runs[k], N, C - 1, T)));
        }
        free(p);
        csv_close(&ch);
    }
    csv_close(&cm), csv_close(&cs);
    runs_free(runs, n);
    free(runs);
    pv_free(&o);
    strata_corpus_free(rn.corp);
    cli_model_free(&rn.cm);
    return 0;
}

/* ------------------------------------------------------------- methods */

static void replace_run(struct run *r, const char *spec, int64_t C, int64_t T)
{
    double b, rr, al;
    char tail;
    if (sscanf(spec, "%lf:%lf:%lf%c", &b, &rr, &al, &tail) != 3 || b < 0 || !(rr > 0) || b != floor(b))
        cli_die("--replace B:R:ALPHA, e.g. 2:4:1", "bad replacement '%s'", spec);
    run_parse(r, "direct", C);
    snprintf(r->name, sizeof r->name, "replace:%s", spec);
    r->has_edit = true;
    r->ed = strata_edit_default_params();
    r->ed.kind = STRATA_EDIT_REPLACE;
    r->ed.boundary = (int32_t)b, r->ed.ratio = rr, r->ed.alpha = al, r->ed.t0 = 4, r->ed.t1 = T;
}

static int cmd_methods(int argc, char **argv)
{
    struct runner rn;
    runner_init(&rn);
    rn.N = 8;
    const char *dir = NULL;
    char len_s[256] = "", meth_s[512] = "direct,linear:4,ntk:4,dynamic-ntk:4,window:C,wext:2:1.1",
         rep_s[256] = "", gl_s[64] = "", gr_s[64] = "2,4", ga_s[64] = "1,1.3";
    int64_t grid_len = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: strata-posvec methods --pv PV.h5 --model M --corpus FILE -o DIR [options]\n\n"
                   "P1's training-free extension methods against direct extrapolation and RoPE\n"
                   "scaling, by perplexity at several lengths (N samples each, drawn as\n"
                   "strata-probe-ppl draws them). Writes in DIR:\n"
                   "  methods.csv  method,length,mean_nll,ppl,ppl_in,ppl_beyond (in: predictions\n"
                   "               of positions < C; beyond: >= C)\n"
                   "  grid.csv     layer,r,alpha,length,ppl,ppl_beyond of the replacement grid\n"
                   "               (best = lowest ppl; printed)\n\n"
                   "  --pv PV.h5       positional vectors covering the longest length\n"
                   "  --lengths LIST   default C,2C,3C,4C\n"
                   "  --methods LIST   direct, linear:F, ntk:F, dynamic-ntk:F, yarn:F, temp:X,\n"
                   "                   window:W (W = C allowed as 'window:C'), wext:R:X (window\n"
                   "                   R*C, attention temperature X)\n"
                   "                   (default direct,linear:4,ntk:4,dynamic-ntk:4,window:C,wext:2:1.1)\n"
                   "  --replace LIST   replacements B:R:ALPHA (t >= 4), e.g. 2:4:1,2:5:1.3\n"
                   "  --grid-layers L  boundaries of the grid (default 1..L-1; 'none' to skip)\n"
                   "  --grid-r LIST    default 2,4     --grid-alpha LIST  default 1,1.3\n"
                   "  --grid-length T  length of the grid search (default 2C)\n" RUNNER_HELP);
            return 0;
        } else if (!strcmp(a, "-o")) dir = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--lengths")) snprintf(len_s, sizeof len_s, "%s", cli_value(argc, argv, &i));
        else if (!strcmp(a, "--methods")) snprintf(meth_s, sizeof meth_s, "%s", cli_value(argc, argv, &i));
        else if (!strcmp(a, "--replace")) snprintf(rep_s, sizeof rep_s, "%s", cli_value(argc, argv, &i));
        else if (!strcmp(a, "--grid-layers")) snprintf(gl_s, sizeof gl_s, "%s", cli_value(argc, argv, &i));
        else if (!strcmp(a, "--grid-r")) snprintf(gr_s, sizeof gr_s, "%s", cli_value(argc, argv, &i));
        else if (!strcmp(a, "--grid-alpha")) snprintf(ga_s, sizeof ga_s, "%s", cli_value(argc, argv, &i));
        else if (!strcmp(a, "--grid-length")) grid_len = cli_int(a, cli_value(argc, argv, &i), 2, 1 << 24);
        else if (!runner_option(&rn, argc, argv, &i))
            cli_die("see strata-posvec methods --help", "unknown option '%s'", a);
    }
    if (!dir || !rn.pv_path) cli_die("see strata-posvec methods --help", "need --pv PV.h5 and -o DIR");
    runner_load(&rn);
    const struct strata_config *c = strata_model_config(rn.cm.model);
    const int64_t C = c->seq_len, L = c->n_layer;
    int64_t lens[16];
    int n_len = 4;
    if (len_s[0]) {
        char *it[16];
        n_len = split(len_s, it, 16);
        for (int k = 0; k < n_len; k++) lens[k] = cli_int("--lengths", it[k], 2, 1 << 24);
    } else for (int k = 0; k < 4; k++) lens[k] = (k + 1) * C;
    if (!grid_len) grid_len = 2 * C;
    struct pvfile f;
    pv_read(&f, rn.pv_path);
    pv_require_full(&f, rn.pv_path, L);
    char *mi[32], *ri[16];
    int nm = split(meth_s, mi, 32), nr = rep_s[0] ? split(rep_s, ri, 16) : 0;
    struct csv cm, cg;
    FILE *fm = csv_open(&cm, dir, "methods.csv", "method,length,mean_nll,ppl,ppl_in,ppl_beyond");
    struct run runs[48];
    for (int li = 0; li < n_len; li++) {
        rn.T = lens[li];
        int n = 0;
        for (int k = 0; k < nm; k++) {
            char spec[64];
            if (!strcmp(mi[k], "window:C")) snprintf(spec, sizeof spec, "window:%lld", (long long)C);
            else snprintf(spec, sizeof spec, "%s", mi[k]);
            run_parse(&runs[n], spec, C);
            snprintf(runs[n++].name, sizeof runs[0].name, "%s", mi[k]);
        }
        for (int k = 0; k < nr; k++) {
            if (rn.T > f.T) {
                fprintf(stderr, "%s: skipping %s at length %lld: %s covers %lld positions\n", cli_prog,
                        ri[k], (long long)rn.T, rn.pv_path, (long long)f.T);
                continue;
            }
            replace_run(&runs[n++], ri[k], C, rn.T);
        }
        fprintf(stderr, "%s: length %lld, %d methods\n", cli_prog, (long long)rn.T, n);
        runner_go(&rn, runs, n, false, false);
        for (int k = 0; k < n; k++) {
            const double m = run_nll(&runs[k], rn.N, 0, rn.T);
            fprintf(fm, "%s,%lld,%.6g,%.6g,%.6g,%.6g\n", runs[k].name, (long long)rn.T, m, exp(m),
                    exp(run_nll(&runs[k], rn.N, 0, C - 1)), exp(run_nll(&runs[k], rn.N, C - 1, rn.T)));
        }
        runs_free(runs, n);
    }
    csv_close(&cm);
    /* the grid at one length */
    FILE *fg = csv_open(&cg, dir, "grid.csv", "layer,r,alpha,length,ppl,ppl_beyond");
    if (strcmp(gl_s, "none")) {
        char *gl[16], *gr[8], *ga[8];
        char def[64] = "";
        for (int64_t b = 1; b < L; b++) snprintf(def + strlen(def), sizeof def - strlen(def), "%s%lld", b > 1 ? "," : "", (long long)b);
        if (!gl_s[0]) snprintf(gl_s, sizeof gl_s, "%s", def[0] ? def : "0");
        int ngl = split(gl_s, gl, 16), ngr = split(gr_s, gr, 8), nga = split(ga_s, ga, 8), n = 0;
        rn.T = grid_len;
        if (rn.T > f.T) cli_die("use a --pv from a longer dump or a shorter --grid-length",
                                "--grid-length %lld exceeds the %lld positions of %s", (long long)rn.T, (long long)f.T, rn.pv_path);
        if (ngl * ngr * nga > 47) cli_die(NULL, "grid too large (at most 47 settings)");
        run_parse(&runs[n++], "direct", C);
        for (int a = 0; a < ngl; a++)
            for (int b = 0; b < ngr; b++)
                for (int d = 0; d < nga; d++) {
                    char spec[96];
                    snprintf(spec, sizeof spec, "%s:%s:%s", gl[a], gr[b], ga[d]);
                    replace_run(&runs[n++], spec, C, rn.T);
                }
        fprintf(stderr, "%s: grid at length %lld, %d settings\n", cli_prog, (long long)rn.T, n - 1);
        runner_go(&rn, runs, n, false, false);
        int best = 0;
        for (int k = 0; k < n; k++) {
            const double m = run_nll(&runs[k], rn.N, 0, rn.T);
            if (m < run_nll(&runs[best], rn.N, 0, rn.T)) best = k;
            if (k == 0) fprintf(fg, "-1,1,1,%lld,%.6g,%.6g\n", (long long)rn.T, exp(m), exp(run_nll(&runs[k], rn.N, C - 1, rn.T)));
            else fprintf(fg, "%d,%g,%g,%lld,%.6g,%.6g\n", (int)runs[k].ed.boundary, runs[k].ed.ratio,
                         runs[k].ed.alpha, (long long)rn.T, exp(m), exp(run_nll(&runs[k], rn.N, C - 1, rn.T)));
        }
        fprintf(stderr, "%s: best at length %lld: %s ppl %.4f (direct %.4f)\n", cli_prog, (long long)rn.T,
                best ? runs[best].name : "direct (no replacement helps)",
                exp(run_nll(&runs[best], rn.N, 0, rn.T)), exp(run_nll(&runs[0], rn.N, 0, rn.T)));
        runs_free(runs, n);
    }
    csv_close(&cg);
    pv_free(&f);
    strata_corpus_free(rn.corp);
    cli_model_free(&rn.cm);
    return 0;
}

/* ---------------------------------------------------------------- main */

static void usage(void)
{
    printf("usage: strata-posvec COMMAND [options]   (COMMAND --help for each)\n\n"
           "Positional vectors (P1, Dong et al. 2024; docs/POSVEC.md):\n"
           "  decompose DUMP.h5 [...] -o PV.h5   p = mean over samples of /hidden, sums\n"
           "  merge PV1.h5 PV2.h5 [...] -o PV.h5 add the sums of shards\n"
           "  formation PV.h5 -o DIR             PCA, similarity, norms, distinct vectors\n"
           "  attention --pv PV.h5 ...           remove p, m or c at a boundary: sink, ppl\n"
           "  beyond-window --pv PV2C.h5 ...     p, sink, logits and ppl beyond the window\n"
           "  extension --pv PV.h5 ...           the same under RoPE scaling / temperature\n"
           "  methods --pv PV.h5 ...             replacement and window extension by ppl\n");
}

int main(int argc, char **argv)
{
    cli_init("strata-posvec");
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage();
        return argc < 2;
    }
    char *cmdline = cli_command_line(argc, argv);
    const char *c = argv[1];
    int rc;
    if (!strcmp(c, "decompose")) rc = cmd_decompose(argc, argv, cmdline);
    else if (!strcmp(c, "merge")) rc = cmd_merge(argc, argv, cmdline);
    else if (!strcmp(c, "formation")) rc = cmd_formation(argc, argv);
    else if (!strcmp(c, "attention")) rc = cmd_attention(argc, argv);
    else if (!strcmp(c, "beyond-window")) rc = cmd_beyond(argc, argv, false);
    else if (!strcmp(c, "extension")) rc = cmd_beyond(argc, argv, true);
    else if (!strcmp(c, "methods")) rc = cmd_methods(argc, argv);
    else cli_die("see strata-posvec --help", "unknown command '%s'", c);
    free(cmdline);
    return rc;
}
