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
 *
 * This file holds main, decompose, merge and formation; PV-file I/O, the
 * model runs and the studies that use them are in analyzers/posvec/
 * (posvec.h lists the parts).
 */
#include "posvec/posvec.h"

#include <cjson/cJSON.h>

/* ---------------------------------------------------------- decompose */

static void per_layer_csv(const struct pvfile *f, const char *csv_path, const char *meta)
{
    struct strata_pv_stats *st = xalloc((size_t)f->Lk * sizeof *st);
    cli_check(strata_pvsum_stats(&f->acc, st), NULL);
    struct cli_out o;
    FILE *out = cli_out_open(&o, csv_path);
    cli_csv_head(out, meta, "boundary,n_samples,var_total,var_pos,frac_pos,frac_pos_corr,u_norm,"
                            "p_norm_mean,c_rms,c_norm_mean");
    for (int64_t i = 0; i < f->Lk; i++) {
        double cm = DNAN; /* mean |c| needs the raw states: none after merge or from statistics */
        if (f->cnorm) {
            cm = 0;
            for (int64_t t = 0; t < f->T; t++) cm += f->cnorm[i * f->T + t] / (double)f->T;
        }
        fprintf(out, "%d,%lld", (int)f->layers[i], (long long)f->acc.n);
        const double v[8] = {st[i].var_total, st[i].var_pos, st[i].frac_pos, st[i].frac_pos_corr,
                             st[i].u_norm, st[i].p_norm, st[i].c_rms, cm};
        for (int k = 0; k < 8; k++) cli_csv_num(out, v[k], 9);
        fputc('\n', out);
    }
    cli_out_commit(&o);
    free(st);
}

/* The per-boundary CSV's comment line from the input's attributes (a dump
 * or statistics file: get reads one root attribute, caller free()s). */
static char *input_meta(const char *command, int (*get)(void *, const char *, char **), void *src,
                        int64_t N, const char *model_config)
{
    char *model = NULL, *corpus = NULL, *seq_len = NULL;
    if (get(src, "model_path", &model)) model = NULL;
    if (get(src, "corpus_path", &corpus)) corpus = NULL;
    if (get(src, "seq_len", &seq_len)) seq_len = NULL;
    char *m = pv_meta(command, model, corpus, N, seq_len, pv_config_window(model_config), NULL, 0);
    free(model), free(corpus), free(seq_len);
    return m;
}

static int dump_attr(void *d, const char *name, char **v)
{
    return strata_dump_get_attr_str(d, name, v);
}

static int h5_attr(void *h, const char *name, char **v)
{
    return strata_h5_get_attr_str(h, "/", name, v);
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

/* Options of decompose, merge and formation. */
struct pv_opts {
    const char *csv_path;
    bool allow_partial;
    int64_t n_comp, stride;
    struct list thr;
};

static int pv_option(void *user, int key, const char *arg, struct cli_error *e)
{
    struct pv_opts *o = user;
    switch (key) {
    case OPT_CSV:
        o->csv_path = arg;
        return 0;
    case OPT_ALLOW_PARTIAL:
        o->allow_partial = true;
        return 0;
    case OPT_COMPONENTS:
        return cli_parse_int(&o->n_comp, "--components", arg, 1, 1 << 20, e);
    case OPT_STRIDE:
        return cli_parse_int(&o->stride, "--stride", arg, 1, 1 << 30, e);
    case OPT_THRESHOLDS:
        list_add(&o->thr, arg);
        return 0;
    }
    return cli_fail(e, NULL, "option key %d has no handler", key);
}

/* Parse a subcommand's command line (the whole program's in provenance). */
static void pv_parse(struct cli_args *a, const struct cli_spec *spec, int argc, char **argv,
                     struct pv_opts *o)
{
    cli_args_init(a);
    a->command_line = cli_strdup(posvec_cmdline);
    cli_parse(a, spec, argc, argv, pv_option, o);
    if (!a->out_path) {
        char hint[128];
        snprintf(hint, sizeof hint, "see %s --help", spec->prog);
        cli_usage_die(hint, "-o is required");
    }
}

static const struct cli_opt decompose_opts[] = {
    {"csv", CLI_ARG, OPT_CSV, "F", "per-boundary CSV (default: PV.h5 with .csv)"},
    {"allow-partial", CLI_NOARG, OPT_ALLOW_PARTIAL, NULL,
     "use the completed samples of an unfinished dump"},
    {0}};

static const struct cli_spec decompose_spec = {
    .prog = "strata-posvec decompose",
    .synopsis = "DUMP.h5 [DUMP2.h5 ...] -o PV.h5 [--csv F] [--allow-partial]",
    .about = "Mean-based decomposition of a strata-probe-hidden dump (or shards of one\n"
             "run, read as one), streaming over samples: p[b,t] = mean_s h[s,b,t]. Also\n"
             "takes strata-probe-stats files (their sums; no /semantic_norm then).\n"
             "PV.h5 (docs/POSVEC.md): /positional (Lk, T, D) float32 -- the file\n"
             "--posvec reads -- with /layers (Lk) and /positions (T) naming the\n"
             "boundaries and positions the dump kept, the sums /sum (Lk, T, D) and\n"
             "/sumsq (Lk, T) in float64 (for merge), /semantic_norm (Lk, T) the mean\n"
             "|c| = |h - p| (a second pass). The CSV (default PV.csv) has one row per\n"
             "boundary: variance total / explained by position, |u|, mean |p|, |c|.\n",
    .groups = CLI_G_OUTPUT,
    .opts = decompose_opts,
    .output_help = "output PV.h5 (written as PV.h5.partial, then renamed)",
    .min_args = 1,
    .max_args = -1,
};

/* decompose from statistics files: the probe kept exactly the sums pass 1
 * computes from a dump (strata_pvsum); mean |c| needs a second pass over the
 * raw states and is left out, as after merge. */
static void decompose_stats(const char **paths, int n_paths, const char *out, const char *csv_path,
                            bool allow_partial, const char *cmdline)
{
    struct strata_stats st;
    struct strata_h5 *first = NULL;
    bool complete;
    cli_check(strata_stats_read_many(&st, &first, paths, n_paths, &complete),
              "give statistics files of disjoint samples of one strata-probe-stats setting");
    if (!complete && !allow_partial)
        cli_die("finish or resume the probe run, or pass --allow-partial",
                "%s: the statistics file is incomplete (%lld samples done)", paths[0],
                (long long)st.n_complete);
    if (!st.has_posvec || st.n_complete < 1)
        cli_die("run strata-probe-stats with --stats including posvec",
                "%s: no positional-vector sums (/posvec) over at least one sample", paths[0]);
    const int64_t P = st.n_pos, D = st.dim;
    for (int64_t k = 0; k < st.n_layers * P * D; k++)
        if (!isfinite(st.pv.sum[k]) || (k % D == 0 && !isfinite(st.pv.sumsq[k / D]))) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s: dataset /posvec/%s holds a non-finite value at "
                     "boundary %d, position %d (a NaN/Inf hidden state)", paths[0],
                     isfinite(st.pv.sum[k]) ? "sumsq" : "sum", (int)st.layers[k / (P * D)],
                     (int)st.positions[(k / D) % P]);
            strata_stats_free(&st);
            strata_h5_free(first);
            cli_die("rerun the probe; the model produced NaN/Inf", "%s", msg);
        }
    struct pvfile f = {.Lk = st.n_layers, .T = st.n_pos, .D = st.dim};
    f.acc = st.pv;
    memset(&st.pv, 0, sizeof st.pv);
    f.layers = xalloc((size_t)f.Lk * sizeof(int32_t));
    f.positions = xalloc((size_t)f.T * sizeof(int32_t));
    memcpy(f.layers, st.layers, (size_t)f.Lk * sizeof(int32_t));
    memcpy(f.positions, st.positions, (size_t)f.T * sizeof(int32_t));
    if (strata_h5_get_attr_str(first, "/", "model_config", &f.model_config)) f.model_config = NULL;
    char *src = cli_command_line(n_paths, (char **)paths);
    pv_write(&f, out, cmdline, src);
    char *c = csv_path ? NULL : default_csv(out);
    char *meta = input_meta("decompose", h5_attr, first, f.acc.n, f.model_config);
    per_layer_csv(&f, csv_path ? csv_path : c, meta);
    free(meta);
    cli_info("wrote %s and %s from statistics (%lld samples, %lld boundaries, %lld positions, D "
             "%lld; no mean |c|: it needs the raw states)", out, csv_path ? csv_path : c,
             (long long)f.acc.n, (long long)f.Lk, (long long)f.T, (long long)f.D);
    free(c);
    free(src);
    pv_free(&f);
    strata_stats_free(&st);
    strata_h5_free(first);
}

static int cmd_decompose(int argc, char **argv, const char *cmdline)
{
    struct cli_args a;
    struct pv_opts po = {0};
    pv_parse(&a, &decompose_spec, argc, argv, &po);
    const char *out = a.out_path, *csv_path = po.csv_path;
    const bool allow_partial = po.allow_partial;
    const char **paths = a.args;
    const int n_paths = a.n_args;

    if (cli_inputs_are_stats(paths, n_paths)) {
        decompose_stats(paths, n_paths, out, csv_path, allow_partial, cmdline);
        cli_args_free(&a);
        return 0;
    }
    struct strata_dump *dump = NULL;
    cli_check(strata_dump_open_many(&dump, paths, n_paths),
              "give dumps written by strata-probe-hidden (shards of one run), or statistics "
              "files of strata-probe-stats");
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
    cli_progress_start(&prog, "pass 1 of 2 (sums)", 0);
    char msg[1024] = ""; /* a failure: every buffer is freed, then the message */
    const char *hint = NULL;
    /* Under mpirun each rank sums its contiguous share of the samples; the
     * sums are reduced (and the mean shared) between the passes, so the
     * result equals a single process's up to float64 summation order. */
    int64_t s_lo = 0, s_hi = N;
    cli_share(N, &s_lo, &s_hi);
    for (int64_t s = s_lo; s < s_hi && !msg[0]; s++) { /* pass 1: the sums */
        for (int64_t i = 0; i < Lk && !msg[0]; i++) {
            if (strata_dump_read_layer(dump, s, i, h)) {
                snprintf(msg, sizeof msg, "%s", strata_last_error());
                break;
            }
            for (int64_t k = 0; k < T * D && !msg[0]; k++)
                if (!isfinite(h[k])) {
                    hint = "rerun the probe; the model produced NaN/Inf";
                    snprintf(msg, sizeof msg, "%s: non-finite hidden state at sample %lld, "
                             "boundary %d, position %d", paths[0], (long long)s,
                             (int)f.layers[i], (int)f.positions[k / D]);
                }
            if (!msg[0]) strata_pvsum_add_layer(&f.acc, i, h);
        }
        if (msg[0]) {
            free(h);
            pv_free(&f);
            strata_dump_free(dump);
            cli_args_free(&a);
            cli_die(hint, "%s", msg);
        }
        strata_pvsum_count(&f.acc, 1);
        cli_progress(&prog, s + 1 - s_lo, s_hi - s_lo, (s + 1 - s_lo) * T, s + 1 == s_hi);
    }
    cli_progress_start(&prog, "pass 2 of 2 (|c|)", 0);
    if (cli_nranks() > 1) {
        cli_reduce_sum_f64(f.acc.sum, Lk * T * D);
        cli_reduce_sum_f64(f.acc.sumsq, Lk * T);
        cli_reduce_sum_i64(&f.acc.n, 1);
        cli_bcast(f.acc.sum, (size_t)(Lk * T * D) * sizeof(double));
        cli_bcast(f.acc.sumsq, (size_t)(Lk * T) * sizeof(double));
        cli_bcast(&f.acc.n, sizeof f.acc.n);
    }
    f.p = xalloc((size_t)(Lk * T * D) * sizeof(float));
    cli_check(strata_pvsum_mean(&f.acc, f.p), NULL);
    f.cnorm = cli_calloc((size_t)(Lk * T), sizeof(double), "the mean |c| per position");
    for (int64_t s = s_lo; s < s_hi; s++) { /* pass 2: mean |c| needs p */
        for (int64_t i = 0; i < Lk; i++) {
            cli_check(strata_dump_read_layer(dump, s, i, h), NULL);
            for (int64_t t = 0; t < T; t++) {
                const float *x = h + t * D, *pt = f.p + (i * T + t) * D;
                double cc = 0;
                for (int64_t k = 0; k < D; k++) cc += ((double)x[k] - (double)pt[k]) * ((double)x[k] - (double)pt[k]);
                f.cnorm[i * T + t] += sqrt(cc) / (double)N;
            }
        }
        cli_progress(&prog, s + 1 - s_lo, s_hi - s_lo, (s + 1 - s_lo) * T, s + 1 == s_hi);
    }
    cli_reduce_sum_f64(f.cnorm, Lk * T);
    if (cli_rank() != 0) { /* rank 0 writes */
        free(h);
        pv_free(&f);
        strata_dump_free(dump);
        cli_args_free(&a);
        return 0;
    }
    char *src = cli_command_line(n_paths, (char **)paths);
    pv_write(&f, out, cmdline, src);
    char *c = csv_path ? NULL : default_csv(out);
    char *meta = input_meta("decompose", dump_attr, dump, N, f.model_config);
    per_layer_csv(&f, csv_path ? csv_path : c, meta);
    free(meta);
    cli_info("wrote %s and %s (%lld samples, %lld boundaries, %lld positions, D %lld)", out,
             csv_path ? csv_path : c, (long long)N, (long long)Lk, (long long)T, (long long)D);
    free(c);
    free(src);
    free(h);
    pv_free(&f);
    strata_dump_free(dump);
    cli_args_free(&a);
    return 0;
}

static const struct cli_opt merge_opts[] = {
    {"csv", CLI_ARG, OPT_CSV, "F", "per-boundary CSV (default: PV.h5 with .csv)"},
    {0}};

static const struct cli_spec merge_spec = {
    .prog = "strata-posvec merge",
    .synopsis = "PV1.h5 PV2.h5 [...] -o PV.h5 [--csv F]",
    .about = "Add the sums of decompositions of disjoint sample sets (shards of one run)\n"
             "and write the positional vectors of the union: the same as one decompose\n"
             "over all samples up to double rounding. The shards must agree on shape,\n"
             "boundaries, positions and model. /semantic_norm (mean |c|) needs p and\n"
             "is not mergeable; it is left out (the CSV's c_rms is exact).\n",
    .groups = CLI_G_OUTPUT,
    .opts = merge_opts,
    .output_help = "output PV.h5 (written as PV.h5.partial, then renamed)",
    .min_args = 1,
    .max_args = -1,
};

static int cmd_merge(int argc, char **argv, const char *cmdline)
{
    struct cli_args args;
    struct pv_opts po = {0};
    pv_parse(&args, &merge_spec, argc, argv, &po);
    const char *out = args.out_path, *csv_path = po.csv_path;
    char **paths = (char **)args.args;
    const int n = args.n_args;
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
    char *meta = pv_file_meta("merge", paths[0], &a);
    per_layer_csv(&a, csv_path ? csv_path : c, meta);
    free(meta);
    cli_info("merged %d files, %lld samples -> %s", n, (long long)a.acc.n, out);
    free(c);
    free(src);
    pv_free(&a);
    cli_args_free(&args);
    return 0;
}

/* ---------------------------------------------------------- formation */

static const struct cli_opt formation_opts[] = {
    {"components", CLI_ARG, OPT_COMPONENTS, "K", "principal axes written (default 3)"},
    {"stride", CLI_ARG, OPT_STRIDE, "S", "cos.csv every S positions (default ceil(T/128))"},
    {"thresholds", CLI_ARG, OPT_THRESHOLDS, "LIST",
     "cosine thresholds of distinct.csv (default 0.9,0.95,0.99)"},
    {0}};

static const struct cli_spec formation_spec = {
    .prog = "strata-posvec formation",
    .synopsis = "PV.h5 -o DIR [--components K] [--stride S] [--thresholds 0.9,0.95,0.99]",
    .about = "How positional vectors form, per boundary b (docs/POSVEC.md). Writes in DIR:\n"
             "  pca_scores.csv   boundary,t,pc1..pc3: m[b,t] = p[b,t] - u[b] projected on\n"
             "                   the first principal axes of {p[b,t]}_t\n"
             "  pca_var.csv      boundary,k,eigval,explained,cumulative (every component)\n"
             "  pca_components.csv  boundary,k,i,value: the K unit eigenvectors\n"
             "  cos.csv          boundary,t1,t2,cos of p[b,t1], p[b,t2] every S positions\n"
             "  norms.csv        boundary,t,p_norm,m_norm,c_norm_mean (|p|, |m|, mean |c|)\n"
             "  layers.csv       boundary,boundary_next,mean_cos,min_cos (p of consecutive\n"
             "                   boundaries)\n"
             "  distinct.csv     boundary,threshold,n_distinct,leaders (first 16,\n"
             "                   ';'-separated): leader clustering in position order, a\n"
             "                   position joins the first leader with cos >= threshold,\n"
             "                   else leads\n",
    .groups = CLI_G_OUTPUT,
    .opts = formation_opts,
    .output_help = "output directory (created)",
    .min_args = 1,
    .max_args = 1,
};

static int cmd_formation(int argc, char **argv)
{
    struct cli_args args;
    struct pv_opts po = {.n_comp = 3};
    pv_parse(&args, &formation_spec, argc, argv, &po);
    const char *in = args.args[0], *dir = args.out_path;
    const int64_t n_comp = po.n_comp;
    int64_t stride = po.stride;
    if (!po.thr.n) list_add(&po.thr, "0.9,0.95,0.99");
    const int n_thr = po.thr.n;
    double *thr = xalloc((size_t)n_thr * sizeof *thr);
    for (int k = 0; k < n_thr; k++) thr[k] = cli_double("--thresholds", po.thr.item[k]);
    struct pvfile f;
    pv_read(&f, in);
    const int64_t Lk = f.Lk, T = f.T, D = f.D, K = n_comp < D ? n_comp : D;
    if (!stride) stride = (T + 127) / 128;
    double *ev = xalloc((size_t)D * sizeof *ev), *comp = xalloc((size_t)(D * D) * sizeof *comp);
    struct csv cs, cv, cc, cn, cl, cd, cp;
    char *meta = pv_file_meta("formation", in, &f);
    FILE *fs = csv_open(&cs, dir, "pca_scores.csv", meta, "boundary,t,pc1,pc2,pc3");
    FILE *fv = csv_open(&cv, dir, "pca_var.csv", meta, "boundary,k,eigval,explained,cumulative");
    FILE *fp = csv_open(&cp, dir, "pca_components.csv", meta, "boundary,k,i,value");
    FILE *fc = csv_open(&cc, dir, "cos.csv", meta, "boundary,t1,t2,cos");
    FILE *fn = csv_open(&cn, dir, "norms.csv", meta, "boundary,t,p_norm,m_norm,c_norm_mean");
    FILE *fl = csv_open(&cl, dir, "layers.csv", meta, "boundary,boundary_next,mean_cos,min_cos");
    FILE *fd = csv_open(&cd, dir, "distinct.csv", meta, "boundary,threshold,n_distinct,leaders");
    free(meta);
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
            fprintf(fn, "%d,%d,%.9g,%.9g", b, (int)f.positions[t], sqrt(pn), sqrt(mn));
            cli_csv_num(fn, f.cnorm ? f.cnorm[i * T + t] : DNAN, 9); /* none after merge */
            fputc('\n', fn);
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
            fprintf(fd, "%d,%g,%lld,", b, thr[k], (long long)nd);
            int shown = 0; /* a list in one field: ';'-separated (docs/FORMAT.md) */
            for (int64_t t = 0; t < T && shown < 16; t++)
                if (leader[t] == t) fprintf(fd, "%s%d", shown++ ? ";" : "", (int)f.positions[t]);
            fputc('\n', fd);
        }
    }
    csv_close(&cs), csv_close(&cv), csv_close(&cp), csv_close(&cc);
    csv_close(&cn), csv_close(&cl), csv_close(&cd);
    free(ev), free(comp), free(leader), free(u), free(thr);
    list_free(&po.thr);
    pv_free(&f);
    cli_args_free(&args);
    return 0;
}
/* ---------------------------------------------------------------- main */

static void usage(FILE *f)
{
    fprintf(f, "usage: strata-posvec COMMAND [options]   (COMMAND --help for each)\n\n"
               "Positional vectors (P1, Dong et al. 2024; docs/POSVEC.md):\n"
               "  decompose DUMP.h5 [...] -o PV.h5   p = mean over samples of /hidden, sums\n"
               "  merge PV1.h5 PV2.h5 [...] -o PV.h5 add the sums of shards\n"
               "  formation PV.h5 -o DIR             PCA, similarity, norms, distinct vectors\n"
               "  attention --pv PV.h5 ...           remove p, m or c at a boundary: sink, ppl\n"
               "  beyond-window --pv PV2C.h5 ...     p, sink, logits and ppl beyond the window\n"
               "  extension --pv PV.h5 ...           the same under RoPE scaling / temperature\n"
               "  methods --pv PV.h5 ...             replacement and window extension by ppl\n"
               "\n"
               "Every command takes --threads N, -q/--quiet, --version and --help; the\n"
               "commands that run the model take the probes' model and sampling options.\n");
}

int main(int argc, char **argv)
{
    cli_init(POSVEC_PROG);
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *c = argv[1];
    if (!strcmp(c, "-h") || !strcmp(c, "--help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(c, "--version")) {
        printf("%s %s\n", POSVEC_PROG, STRATA_VERSION);
        return 0;
    }
    posvec_cmdline = cli_command_line(argc, argv);
    /* a subcommand parses its own argv: argv[0] is its name */
    int rc;
    if (!strcmp(c, "decompose")) rc = cmd_decompose(argc - 1, argv + 1, posvec_cmdline);
    else if (!strcmp(c, "merge")) rc = cmd_merge(argc - 1, argv + 1, posvec_cmdline);
    else if (!strcmp(c, "formation")) rc = cmd_formation(argc - 1, argv + 1);
    else if (!strcmp(c, "attention")) rc = cmd_attention(argc - 1, argv + 1);
    else if (!strcmp(c, "beyond-window")) rc = cmd_beyond(argc - 1, argv + 1, false);
    else if (!strcmp(c, "extension")) rc = cmd_beyond(argc - 1, argv + 1, true);
    else if (!strcmp(c, "methods")) rc = cmd_methods(argc - 1, argv + 1);
    else cli_usage_die("see strata-posvec --help", "unknown command '%s'", c);
    free(posvec_cmdline);
    return rc;
}
