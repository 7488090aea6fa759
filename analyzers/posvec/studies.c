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

/* ----------------------------------------------------------- attention */

int cmd_attention(int argc, char **argv)
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

int cmd_beyond(int argc, char **argv, bool extension)
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

int cmd_methods(int argc, char **argv)
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
