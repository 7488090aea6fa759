/* studies.c — part of strata-posvec (analyzers/posvec.c, docs/POSVEC.md):
 * P1's experiments that run the model (runner.c): attention (remove p, m or
 * c at a boundary and watch the attention sink and perplexity),
 * beyond-window and extension (positional vectors past the trained window,
 * directly and under RoPE scaling / temperature) and methods (training-free
 * window extension by perplexity).
 *
 * Legend: L blocks (L+1 boundaries b), Lk boundaries kept, T positions,
 * D width, N samples, C the trained window.
 */
#include "posvec.h"

/* The CSVs' comment line of a model run: its model, corpus, N, T (or
 * seq_len, e.g. methods' ';'-list of lengths), C, the PV file and its N. */
static char *runner_meta(const struct runner *rn, const char *command, const char *seq_len,
                         int64_t pv_samples)
{
    char *t = seq_len ? NULL : cli_sprintf("%lld", (long long)rn->T);
    char *m = pv_meta(command, rn->a.model.model_path, rn->a.sampling.corpus_path, rn->N,
                      seq_len ? seq_len : t, runner_config(rn)->seq_len, rn->pv_path, pv_samples);
    free(t);
    return m;
}

/* ----------------------------------------------------------- attention */

static const struct cli_opt attention_opts[] = {
    {"pv", CLI_ARG, OPT_PV, "PV.h5", PV_OPT_HELP " covering --seq-len, every boundary"},
    {"boundary", CLI_ARG, OPT_BOUNDARY, "B", "edited boundary (default 1)"},
    {"kinds", CLI_ARG, OPT_KINDS, "LIST",
     "edits: sub-positional, sub-basis, sub-semantic (default all three)"},
    {"ranges", CLI_ARG, OPT_RANGES, "LIST", "position ranges T0-T1 (default 0-4,32-256)"},
    {0}};

static const struct cli_spec attention_spec = {
    .prog = "strata-posvec attention",
    .synopsis = "--pv PV.h5 --model M --corpus FILE -o DIR [options]",
    .about = "Remove a component of the hidden states at boundary B for a range of\n"
             "positions (the runtime's editors, as strata-probe-attn/-ppl --edit) and\n"
             "compare with the unedited run on the same samples (drawn as strata-probe-ppl\n"
             "draws them). Writes in DIR:\n"
             "  attention_summary.csv  run,kind,boundary,t0,t1,block,sink,sink_base,\n"
             "                         hidden_cos,mean_nll,ppl,ppl_base\n"
             "    sink = mean attention on token 0 (all heads, all queries) in block\n"
             "    `block`; hidden_cos = mean cos of boundary block+1 to the unedited run;\n"
             "    boundary, t0, t1 are empty for the unedited run\n"
             "  attention_dist.csv     run,block,distance,prob: mean attention against\n"
             "                         relative distance (all heads)\n"
             "--seq-len defaults to the trained window.\n",
    .groups = CLI_G_MODEL | CLI_G_SAMPLING | CLI_G_OUTPUT,
    .opts = attention_opts,
    .output_help = "output directory (created)",
    .samples_default = 16,
};

struct attention_opts {
    int64_t boundary;
    struct list kinds, ranges;
};

static int attention_option(void *user, int key, const char *arg, struct cli_error *e)
{
    struct attention_opts *o = user;
    switch (key) {
    case OPT_BOUNDARY:
        return cli_parse_int(&o->boundary, "--boundary", arg, 0, 1 << 20, e);
    case OPT_KINDS:
        list_add(&o->kinds, arg);
        return 0;
    case OPT_RANGES:
        list_add(&o->ranges, arg);
        return 0;
    }
    return cli_fail(e, NULL, "option key %d has no handler", key);
}

int cmd_attention(int argc, char **argv)
{
    struct runner rn = {0};
    cli_args_init(&rn.a);
    struct attention_opts ao = {.boundary = 1};
    runner_parse(&rn, &attention_spec, argc, argv, attention_option, &ao);
    if (!ao.kinds.n) list_add(&ao.kinds, "sub-positional,sub-basis,sub-semantic");
    if (!ao.ranges.n) list_add(&ao.ranges, "0-4,32-256");
    const int64_t boundary = ao.boundary;
    const char *dir = rn.dir;
    runner_load(&rn);
    const struct strata_config *c = runner_config(&rn);
    rn.T = rn.a.sampling.seq_len ? rn.a.sampling.seq_len : c->seq_len;
    struct pvfile f;
    pv_read(&f, rn.pv_path);
    pv_require_full(&f, rn.pv_path, c->n_layer);
    if (boundary > c->n_layer)
        cli_usage_die(NULL, "--boundary %lld: the model has boundaries 0..%d", (long long)boundary,
                      (int)c->n_layer);
    const int nk = ao.kinds.n, nr = ao.ranges.n;
    struct run *runs = xalloc((size_t)(1 + nk * nr) * sizeof *runs);
    int n = 1;
    run_parse(&runs[0], "direct", c);
    free(runs[0].name);
    runs[0].name = cli_strdup("none");
    for (int a = 0; a < nk; a++)
        for (int b = 0; b < nr; b++) {
            const char *kind = ao.kinds.item[a], *range = ao.ranges.item[b];
            struct run *r = &runs[n++];
            run_parse(r, "direct", c);
            r->has_edit = true;
            r->ed = strata_edit_default_params();
            r->ed.boundary = (int32_t)boundary;
            if (strata_edit_kind_parse(kind, &r->ed.kind) || r->ed.kind == STRATA_EDIT_REPLACE ||
                r->ed.kind == STRATA_EDIT_ADD_POSITIONAL)
                cli_usage_die("--kinds sub-positional, sub-basis, sub-semantic", "unknown kind '%s'", kind);
            long long t0, t1;
            char tail;
            if (sscanf(range, "%lld-%lld%c", &t0, &t1, &tail) != 2 || t0 < 0 || t1 <= t0)
                cli_usage_die("--ranges T0-T1,...", "bad range '%s'", range);
            r->ed.t0 = t0, r->ed.t1 = t1 < rn.T ? t1 : rn.T;
            if (r->ed.t0 >= rn.T)
                cli_usage_die(NULL, "range '%s' lies beyond --seq-len %lld", range, (long long)rn.T);
            free(r->name);
            r->name = cli_sprintf("%s@%lld:%lld-%lld", kind, (long long)boundary, t0,
                                  (long long)r->ed.t1);
        }
    runner_go(&rn, runs, n, true, true);
    struct csv cs, cd;
    char *meta = runner_meta(&rn, "attention", NULL, f.acc.n);
    FILE *fs = csv_open(&cs, dir, "attention_summary.csv", meta,
                        "run,kind,boundary,t0,t1,block,sink,sink_base,hidden_cos,mean_nll,ppl,ppl_base");
    FILE *fd = csv_open(&cd, dir, "attention_dist.csv", meta, "run,block,distance,prob");
    free(meta);
    const int64_t N = rn.N, T = rn.T, L = c->n_layer;
    const double base = run_nll(&runs[0], N, 0, T);
    for (int k = 0; k < n; k++) {
        const struct run *r = &runs[k];
        const double nl = run_nll(r, N, 0, T);
        for (int64_t l = 0; l < L; l++) {
            if (k)
                fprintf(fs, "%s,%s,%d,%lld,%lld,%lld", r->name, strata_edit_kind_name(r->ed.kind),
                        (int)r->ed.boundary, (long long)r->ed.t0, (long long)r->ed.t1, (long long)l);
            else /* the unedited run: no boundary, no range */
                fprintf(fs, "%s,none,,,,%lld", r->name, (long long)l);
            const double v[6] = {run_sink(r, N, l, 0, T), run_sink(&runs[0], N, l, 0, T),
                                 r->hcos[l + 1] / (double)(N * T), nl, exp(nl), exp(base)};
            for (int i = 0; i < 6; i++) cli_csv_num(fs, v[i], 6);
            fputc('\n', fs);
            for (int64_t m = 0; m < T; m++)
                if (r->pdn[l * T + m] > 0)
                    fprintf(fd, "%s,%lld,%lld,%.6g\n", r->name, (long long)l, (long long)m,
                            r->pd[l * T + m] / r->pdn[l * T + m]);
        }
        cli_info("%-36s ppl %.4f (unedited %.4f), sink(block 1) %.3f", r->name, exp(nl), exp(base),
                 L > 1 ? run_sink(r, N, 1, 0, T) : DNAN);
    }
    csv_close(&cs), csv_close(&cd);
    runs_free(runs, n);
    free(runs);
    pv_free(&f);
    list_free(&ao.kinds), list_free(&ao.ranges);
    runner_free(&rn);
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
        fprintf(fs, "%s,%lld", name, (long long)b);
        const double v[9] = {cin / (double)(C < T ? C : T), T > C ? cout / (double)(T - C) : DNAN,
                             slope, 1.0 / slope, b < L ? run_sink(r, N, b, 0, C) : DNAN,
                             b < L ? run_sink(r, N, b, C, T) : DNAN,
                             b < L ? run_logit_sim(r, b) : DNAN, exp(run_nll(r, N, 0, C - 1)),
                             exp(run_nll(r, N, C - 1, T))};
        for (int k = 0; k < 9; k++) cli_csv_num(fs, v[k], 6);
        fputc('\n', fs);
    }
    free(best), free(cs);
}

static const struct cli_opt beyond_opts[] = {
    {"pv", CLI_ARG, OPT_PV, "PV.h5", PV_OPT_HELP " of T > C positions"},
    {"bucket", CLI_ARG, OPT_BUCKET, "B", "positions per perplexity bucket (default 64)"},
    {0}};

static const struct cli_spec beyond_spec = {
    .prog = "strata-posvec beyond-window",
    .synopsis = "--pv PV.h5 --model M --corpus FILE -o DIR [options]",
    .about = "Inputs longer than the trained window C (direct extrapolation). PV.h5 must\n"
             "come from a dump of T > C tokens (probe-hidden --seq-len 2C); the model\n"
             "runs N new samples of T tokens (--seq-len, default the PV's T). Writes in DIR:\n"
             "  beyond_match.csv  run,boundary,t,best_t,max_cos: for every t the\n"
             "                    in-window position t' < C whose p[b,t'] is most similar\n"
             "  beyond_summary.csv run,boundary,cos_in,cos_beyond,slope,ratio,sink_in,\n"
             "                    sink_beyond,logit_sim,ppl_in,ppl_beyond (see POSVEC.md)\n"
             "  beyond_ppl.csv    start,end,mean_nll,ppl per bucket of predictions\n",
    .groups = CLI_G_MODEL | CLI_G_SAMPLING | CLI_G_OUTPUT,
    .opts = beyond_opts,
    .output_help = "output directory (created)",
    .samples_default = 8,
};

static const struct cli_opt extension_opts[] = {
    {"pv", CLI_ARG, OPT_PV, "PV.h5", PV_OPT_HELP ", any length >= C"},
    {"methods", CLI_ARG, OPT_METHODS, "LIST",
     "direct, linear:F, ntk:F, dynamic:F (dynamic-ntk:F), yarn:F, llama3:F\n"
     "(RoPE scaling as --rope-scaling), temp:X (attention logits X q.k/sqrt(d)),\n"
     "window:W, wext:R:X; repeatable (default: direct, linear:4, ntk:4,\n"
     "dynamic-ntk:4, temp:1.2)"},
    {"stride", CLI_ARG, OPT_STRIDE, "S", "heatmap stride (default ceil(T/64))"},
    {0}};

static const struct cli_spec extension_spec = {
    .prog = "strata-posvec extension",
    .synopsis = "--pv PV.h5 --model M --corpus FILE -o DIR [--methods LIST] [--seq-len T]",
    .about = "Context window extension: for each method the model runs N samples of T\n"
             "tokens (--seq-len, default 2C) and its positional vectors are decomposed in\n"
             "memory and compared with the original ones (PV.h5). Writes in DIR:\n"
             "  extension_summary.csv as beyond_summary.csv, one row per method and\n"
             "                    boundary; slope = least-squares slope of best_t\n"
             "                    against t (t >= 4), ratio = 1/slope the effective\n"
             "                    interpolation ratio\n"
             "  extension_match.csv  run,boundary,t,best_t,max_cos\n"
             "  extension_heatmap.csv run,boundary,t_ext,t_orig,cos every S positions\n",
    .groups = CLI_G_MODEL | CLI_G_SAMPLING | CLI_G_OUTPUT,
    .opts = extension_opts,
    .output_help = "output directory (created)",
    .samples_default = 8,
};

struct beyond_opts {
    int64_t stride, bucket;
    struct list methods;
};

static int beyond_option(void *user, int key, const char *arg, struct cli_error *e)
{
    struct beyond_opts *o = user;
    switch (key) {
    case OPT_BUCKET:
        return cli_parse_int(&o->bucket, "--bucket", arg, 1, 1 << 30, e);
    case OPT_STRIDE:
        return cli_parse_int(&o->stride, "--stride", arg, 1, 1 << 30, e);
    case OPT_METHODS:
        list_add(&o->methods, arg);
        return 0;
    }
    return cli_fail(e, NULL, "option key %d has no handler", key);
}

int cmd_beyond(int argc, char **argv, bool extension)
{
    struct runner rn = {0};
    cli_args_init(&rn.a);
    struct beyond_opts bo = {.bucket = 64};
    runner_parse(&rn, extension ? &extension_spec : &beyond_spec, argc, argv, beyond_option, &bo);
    if (!bo.methods.n) list_add(&bo.methods, "direct,linear:4,ntk:4,dynamic-ntk:4,temp:1.2");
    int64_t stride = bo.stride;
    const int64_t bucket = bo.bucket;
    const char *dir = rn.dir;
    runner_load(&rn);
    const struct strata_config *c = runner_config(&rn);
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
    rn.T = rn.a.sampling.seq_len ? rn.a.sampling.seq_len : extension ? 2 * C : o.T;
    if (rn.T <= C) cli_usage_die(NULL, "--seq-len %lld must exceed the trained window %lld", (long long)rn.T, (long long)C);
    if (!stride) stride = (rn.T + 63) / 64;
    const int n = extension ? bo.methods.n : 1;
    struct run *runs = xalloc((size_t)n * sizeof *runs);
    for (int k = 0; k < n; k++) run_parse(&runs[k], extension ? bo.methods.item[k] : "direct", c);
    runner_go(&rn, runs, n, true, extension);
    const int64_t T = rn.T, N = rn.N;
    struct csv cm, ch, cs, cp;
    const char *pre = extension ? "extension" : "beyond";
    char *meta = runner_meta(&rn, extension ? "extension" : "beyond-window", NULL, o.acc.n);
    char *nm = cli_sprintf("%s_match.csv", pre);
    /* beyond-window matches the PV file's own p: its samples and length */
    char *mmeta = extension ? NULL : pv_file_meta("beyond-window", rn.pv_path, &o);
    FILE *fm = csv_open(&cm, dir, nm, extension ? meta : mmeta, "run,boundary,t,best_t,max_cos");
    free(mmeta);
    free(nm);
    nm = cli_sprintf("%s_summary.csv", pre);
    FILE *fs = csv_open(&cs, dir, nm, meta, "run,boundary,cos_in,cos_beyond,slope,ratio,sink_in,"
                                            "sink_beyond,logit_sim,ppl_in,ppl_beyond");
    free(nm);
    FILE *fh = extension ? csv_open(&ch, dir, "extension_heatmap.csv", meta,
                                    "run,boundary,t_ext,t_orig,cos")
                         : NULL;
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
            /* in-window p matched against themselves: cos_in 1; no slope here */
            fprintf(fs, "direct,%lld,1", (long long)b);
            const double v[8] = {ci / (double)(o.T - C), DNAN, DNAN,
                                 b < L ? run_sink(&runs[0], N, b, 0, C) : DNAN,
                                 b < L ? run_sink(&runs[0], N, b, C, T) : DNAN,
                                 b < L ? run_logit_sim(&runs[0], b) : DNAN,
                                 exp(run_nll(&runs[0], N, 0, C - 1)), exp(run_nll(&runs[0], N, C - 1, T))};
            for (int k = 0; k < 8; k++) cli_csv_num(fs, v[k], 6);
            fputc('\n', fs);
            free(best), free(cs2);
        }
        FILE *fp = csv_open(&cp, dir, "beyond_ppl.csv", meta, "start,end,mean_nll,ppl");
        for (int64_t t = 0; t < T - 1; t += bucket) {
            double m = run_nll(&runs[0], N, t, t + bucket);
            fprintf(fp, "%lld,%lld", (long long)t, (long long)(t + bucket < T - 1 ? t + bucket : T - 1));
            cli_csv_num(fp, m, 6);
            cli_csv_num(fp, exp(m), 6);
            fputc('\n', fp);
        }
        csv_close(&cp);
    } else {
        float *p = xalloc((size_t)((L + 1) * T * c->dim) * sizeof(float));
        for (int k = 0; k < n; k++) {
            cli_check(strata_pvsum_mean(&runs[k].acc, p), NULL);
            write_match(fm, fh, fs, runs[k].name, p, &o, &runs[k], N, stride);
            cli_info("%-16s ppl in %.4f, beyond %.4f", runs[k].name,
                     exp(run_nll(&runs[k], N, 0, C - 1)), exp(run_nll(&runs[k], N, C - 1, T)));
        }
        free(p);
        csv_close(&ch);
    }
    csv_close(&cm), csv_close(&cs);
    free(meta);
    runs_free(runs, n);
    free(runs);
    pv_free(&o);
    list_free(&bo.methods);
    runner_free(&rn);
    return 0;
}

/* ------------------------------------------------------------- methods */

/* A replacement run: spec B:R:ALPHA[:T0] as the probes' --replace takes it
 * (cli_parse_replace), for positions T0 (default 4) .. T-1. */
static void replace_run(struct run *r, const char *spec, const struct strata_config *c, int64_t T)
{
    struct cli_edit ed;
    struct cli_error e;
    if (cli_parse_replace(&ed, spec, &e)) cli_usage_die(e.hint, "%s", e.msg);
    run_parse(r, "direct", c);
    free(r->name);
    r->name = cli_sprintf("replace:%s", spec);
    r->has_edit = true;
    r->ed = ed.p;
    r->ed.t1 = T;
}

static const struct cli_opt methods_opts[] = {
    {"pv", CLI_ARG, OPT_PV, "PV.h5", PV_OPT_HELP " covering the longest length"},
    {"lengths", CLI_ARG, OPT_LENGTHS, "LIST",
     "input lengths, numbers or multiples of the window like 2C (default\n"
     "C,2C,3C,4C)"},
    {"methods", CLI_ARG, OPT_METHODS, "LIST",
     "direct, linear:F, ntk:F, dynamic:F (dynamic-ntk:F), yarn:F, llama3:F\n"
     "(RoPE scaling as --rope-scaling), temp:X, window:W (window:C: the trained\n"
     "context), wext:R:X (P1's window extension: window R*W, W the model's\n"
     "sliding window, or C without one; attention temperature X); repeatable\n"
     "(default: direct, linear:4, ntk:4, dynamic-ntk:4, window:C, wext:2:1.1)"},
    {"replace", CLI_ARG, OPT_REPLACE, "LIST",
     "positional vector replacements B:R:ALPHA[:T0] as the probes' --replace,\n"
     "e.g. 2:4:1,2:5:1.3; repeatable"},
    {"grid-layers", CLI_ARG, OPT_GRID_LAYERS, "LIST",
     "boundaries of the replacement grid (default 1..L-1; 'none' to skip)"},
    {"grid-r", CLI_ARG, OPT_GRID_R, "LIST", "ratios R of the grid (default 2,4)"},
    {"grid-alpha", CLI_ARG, OPT_GRID_ALPHA, "LIST", "scales ALPHA of the grid (default 1,1.3)"},
    {"grid-length", CLI_ARG, OPT_GRID_LENGTH, "T", "length of the grid search (default 2C)"},
    {0}};

static const struct cli_spec methods_spec = {
    .prog = "strata-posvec methods",
    .synopsis = "--pv PV.h5 --model M --corpus FILE -o DIR [options]",
    .about = "P1's training-free extension methods against direct extrapolation and RoPE\n"
             "scaling, by perplexity at several lengths (N samples each, drawn as\n"
             "strata-probe-ppl draws them). Writes in DIR:\n"
             "  methods.csv  method,length,mean_nll,ppl,ppl_in,ppl_beyond (in: predictions\n"
             "               of positions < C; beyond: >= C)\n"
             "  grid.csv     boundary,r,alpha,length,ppl,ppl_beyond of the replacement\n"
             "               grid (best = lowest ppl; printed); the first row, with an\n"
             "               empty boundary, is no replacement\n",
    .groups = CLI_G_MODEL | CLI_G_SAMPLING | CLI_G_OUTPUT,
    .opts = methods_opts,
    .output_help = "output directory (created)",
    .samples_default = 8,
};

struct methods_opts {
    struct list lengths, methods, replace, gl, gr, ga;
    int64_t grid_len;
};

static int methods_option(void *user, int key, const char *arg, struct cli_error *e)
{
    struct methods_opts *o = user;
    switch (key) {
    case OPT_LENGTHS:
        list_add(&o->lengths, arg);
        return 0;
    case OPT_METHODS:
        list_add(&o->methods, arg);
        return 0;
    case OPT_REPLACE:
        list_add(&o->replace, arg);
        return 0;
    case OPT_GRID_LAYERS:
        list_add(&o->gl, arg);
        return 0;
    case OPT_GRID_R:
        list_add(&o->gr, arg);
        return 0;
    case OPT_GRID_ALPHA:
        list_add(&o->ga, arg);
        return 0;
    case OPT_GRID_LENGTH:
        return cli_parse_int(&o->grid_len, "--grid-length", arg, 2, 1 << 24, e);
    }
    return cli_fail(e, NULL, "option key %d has no handler", key);
}

/* A length: a number, or kC (k times the trained window). */
static int64_t parse_length(const char *s, int64_t C)
{
    const size_t n = strlen(s);
    if (n && s[n - 1] == 'C') {
        int64_t k = 1;
        if (n > 1) {
            char *num = cli_strdup(s);
            num[n - 1] = '\0';
            k = cli_int("--lengths", num, 1, 1 << 20);
            free(num);
        }
        if (k * C > (1 << 24)) cli_usage_die(NULL, "--lengths '%s': too long", s);
        return k * C;
    }
    return cli_int("--lengths", s, 2, 1 << 24);
}

int cmd_methods(int argc, char **argv)
{
    struct runner rn = {0};
    cli_args_init(&rn.a);
    struct methods_opts mo = {0};
    runner_parse(&rn, &methods_spec, argc, argv, methods_option, &mo);
    if (rn.a.sampling.seq_len)
        cli_usage_die("give the lengths with --lengths and --grid-length",
                      "methods runs several lengths; --seq-len does not apply");
    if (!mo.methods.n) list_add(&mo.methods, "direct,linear:4,ntk:4,dynamic-ntk:4,window:C,wext:2:1.1");
    if (!mo.gr.n) list_add(&mo.gr, "2,4");
    if (!mo.ga.n) list_add(&mo.ga, "1,1.3");
    const char *dir = rn.dir;
    runner_load(&rn);
    const struct strata_config *c = runner_config(&rn);
    const int64_t C = c->seq_len, L = c->n_layer;
    if (!mo.lengths.n) list_add(&mo.lengths, "C,2C,3C,4C");
    const int n_len = mo.lengths.n;
    int64_t *lens = xalloc((size_t)n_len * sizeof *lens);
    for (int k = 0; k < n_len; k++) lens[k] = parse_length(mo.lengths.item[k], C);
    const int64_t grid_len = mo.grid_len ? mo.grid_len : 2 * C;
    struct pvfile f;
    pv_read(&f, rn.pv_path);
    pv_require_full(&f, rn.pv_path, L);
    const int nm = mo.methods.n, nr = mo.replace.n;
    struct csv cm, cg;
    char *lens_s = cli_strdup("");
    for (int k = 0; k < n_len; k++) {
        char *t = cli_sprintf("%s%s%lld", lens_s, k ? ";" : "", (long long)lens[k]);
        free(lens_s);
        lens_s = t;
    }
    char *meta = runner_meta(&rn, "methods", lens_s, f.acc.n);
    free(lens_s);
    FILE *fm = csv_open(&cm, dir, "methods.csv", meta, "method,length,mean_nll,ppl,ppl_in,ppl_beyond");
    struct run *runs = xalloc((size_t)(nm + nr) * sizeof *runs);
    for (int li = 0; li < n_len; li++) {
        rn.T = lens[li];
        int n = 0;
        for (int k = 0; k < nm; k++) {
            const char *m = mo.methods.item[k];
            char *spec = !strcmp(m, "window:C") ? cli_sprintf("window:%lld", (long long)C) : cli_strdup(m);
            run_parse(&runs[n], spec, c);
            free(runs[n].name);
            runs[n++].name = cli_strdup(m);
            free(spec);
        }
        for (int k = 0; k < nr; k++) {
            if (rn.T > f.T) {
                cli_note("skipping %s at length %lld: %s covers %lld positions", mo.replace.item[k],
                         (long long)rn.T, rn.pv_path, (long long)f.T);
                continue;
            }
            replace_run(&runs[n++], mo.replace.item[k], c, rn.T);
        }
        cli_info("length %lld, %d methods", (long long)rn.T, n);
        runner_go(&rn, runs, n, false, false);
        for (int k = 0; k < n; k++) {
            const double m = run_nll(&runs[k], rn.N, 0, rn.T);
            fprintf(fm, "%s,%lld", runs[k].name, (long long)rn.T);
            const double v[4] = {m, exp(m), exp(run_nll(&runs[k], rn.N, 0, C - 1)),
                                 exp(run_nll(&runs[k], rn.N, C - 1, rn.T))};
            for (int i = 0; i < 4; i++) cli_csv_num(fm, v[i], 6);
            fputc('\n', fm);
        }
        runs_free(runs, n);
    }
    free(runs);
    csv_close(&cm);
    /* the grid at one length: direct, then every (boundary, R, ALPHA) */
    char *gl_s = cli_sprintf("%lld", (long long)grid_len);
    char *gmeta = runner_meta(&rn, "methods", gl_s, f.acc.n);
    free(gl_s);
    FILE *fg = csv_open(&cg, dir, "grid.csv", gmeta, "boundary,r,alpha,length,ppl,ppl_beyond");
    free(gmeta);
    free(meta);
    if (!(mo.gl.n == 1 && !strcmp(mo.gl.item[0], "none"))) {
        if (!mo.gl.n) {
            if (L < 2) list_add(&mo.gl, "0");
            for (int64_t b = 1; b < L; b++) {
                char *it = cli_sprintf("%lld", (long long)b);
                list_add(&mo.gl, it);
                free(it);
            }
        }
        const int ngl = mo.gl.n, ngr = mo.gr.n, nga = mo.ga.n;
        rn.T = grid_len;
        if (rn.T > f.T) cli_die("use a --pv from a longer dump or a shorter --grid-length",
                                "--grid-length %lld exceeds the %lld positions of %s", (long long)rn.T, (long long)f.T, rn.pv_path);
        const int n_grid = 1 + ngl * ngr * nga;
        runs = xalloc((size_t)n_grid * sizeof *runs);
        int n = 0;
        run_parse(&runs[n++], "direct", c);
        for (int a = 0; a < ngl; a++)
            for (int b = 0; b < ngr; b++)
                for (int d = 0; d < nga; d++) {
                    char *spec = cli_sprintf("%s:%s:%s", mo.gl.item[a], mo.gr.item[b], mo.ga.item[d]);
                    replace_run(&runs[n++], spec, c, rn.T);
                    free(spec);
                }
        cli_info("grid at length %lld, %d settings", (long long)rn.T, n - 1);
        runner_go(&rn, runs, n, false, false);
        int best = 0;
        for (int k = 0; k < n; k++) {
            const double m = run_nll(&runs[k], rn.N, 0, rn.T);
            if (m < run_nll(&runs[best], rn.N, 0, rn.T)) best = k;
            if (k == 0) fprintf(fg, ",1,1,%lld", (long long)rn.T); /* no replacement: no boundary */
            else fprintf(fg, "%d,%g,%g,%lld", (int)runs[k].ed.boundary, runs[k].ed.ratio,
                         runs[k].ed.alpha, (long long)rn.T);
            cli_csv_num(fg, exp(m), 6);
            cli_csv_num(fg, exp(run_nll(&runs[k], rn.N, C - 1, rn.T)), 6);
            fputc('\n', fg);
        }
        cli_info("best at length %lld: %s ppl %.4f (direct %.4f)", (long long)rn.T,
                 best ? runs[best].name : "direct (no replacement helps)",
                 exp(run_nll(&runs[best], rn.N, 0, rn.T)), exp(run_nll(&runs[0], rn.N, 0, rn.T)));
        runs_free(runs, n);
        free(runs);
    }
    csv_close(&cg);
    free(lens);
    pv_free(&f);
    list_free(&mo.lengths), list_free(&mo.methods), list_free(&mo.replace);
    list_free(&mo.gl), list_free(&mo.gr), list_free(&mo.ga);
    runner_free(&rn);
    return 0;
}
