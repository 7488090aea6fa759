/* strata-decay — RoPE's long-term decay and the lower bound of its base
 * (P2, "Base of RoPE bounds context length", Men et al. 2024;
 * ../shared/docs/PAPERS.md). Theory from lib/decay.c (B(m), the upper
 * bound, the paper's grid search), a model's config checked against it,
 * and the decay measured in a model: from strata-probe-attn's reductions
 * (docs/FORMAT.md) and by running the model on inputs built so the
 * query's token reappears at known distances (the similar-vs-random gap).
 *
 * Legend: d head width, n = d/2 frequencies, m relative distance, L context
 * length / layers as the subcommand says, H heads, T tokens. */
#include "cli/cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const int64_t paper_lengths[] = {1000,   2000,   4000,   8000,   16000,  32000,
                                        64000,  128000, 256000, 512000, 1000000};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: strata-decay COMMAND [options]   (COMMAND --help for its options)\n"
        "\n"
        "RoPE long-term decay B(m) = sum_{i<d/2} cos(m base^(-2i/d)) (P2, Men et al. 2024).\n"
        "  curve      B(m) and B(m)/(d/2) for m = 0..M for one or more bases (--upper:\n"
        "             also the bound sum_n |sum_{l<n} e^{i m theta_l}|)\n"
        "  upper      the same as curve --upper\n"
        "  bound      the paper's lower bound on the base per context length, with the\n"
        "             power-law fit base = a * L^k (--paper: the paper's own code)\n"
        "  check      does a model's RoPE base (config.json or checkpoint) clear the bound\n"
        "             (exit 1 when its verdict is fail)\n"
        "  empirical  mean attention logit/probability against distance from a\n"
        "             strata-probe-attn file (docs/FORMAT.md)\n"
        "  gap        similar-vs-random attention logit gap against distance, by running\n"
        "             a model on inputs where the query's token reappears\n"
        "CSV goes to stdout or -o FILE (written as FILE.partial, then renamed). Every\n"
        "command takes --threads N, -q/--quiet, --version and --help.\n");
}

/* Options of every subcommand (each spec lists the ones it takes). */
enum { OPT_BASE = CLI_KEY_PROG, OPT_DIM, OPT_MAX_DIST, OPT_EVERY, OPT_UPPER, OPT_SUMMARY,
       OPT_LENGTHS, OPT_FLOAT32, OPT_CONFIG, OPT_CONTEXT, OPT_SEQ_LEN, OPT_TRIALS, OPT_STRIDE,
       OPT_SEED, OPT_ALLOW_PARTIAL, OPT_PAPER };

struct decay_opts {
    const char *bases_s, *summary, *lengths_s, *cfg_path;
    int64_t d, M, every, context, T, trials, stride;
    bool upper, f32, allow_partial, paper;
    uint64_t seed;
};

static int decay_option(void *user, int key, const char *arg, struct cli_error *e)
{
    struct decay_opts *o = user;
    int64_t v;
    switch (key) {
    case OPT_BASE: o->bases_s = arg; return 0;
    case OPT_DIM: return cli_parse_int(&o->d, "--dim", arg, 1, 1 << 20, e);
    case OPT_MAX_DIST: return cli_parse_int(&o->M, "--max-dist", arg, 0, (int64_t)1 << 32, e);
    case OPT_EVERY: return cli_parse_int(&o->every, "--every", arg, 1, (int64_t)1 << 32, e);
    case OPT_UPPER: o->upper = true; return 0;
    case OPT_SUMMARY: o->summary = arg; return 0;
    case OPT_LENGTHS: o->lengths_s = arg; return 0;
    case OPT_FLOAT32: o->f32 = true; return 0;
    case OPT_PAPER: o->paper = true; return 0;
    case OPT_CONFIG: o->cfg_path = arg; return 0;
    case OPT_CONTEXT: return cli_parse_int(&o->context, "--context", arg, 1, (int64_t)1 << 32, e);
    case OPT_SEQ_LEN: return cli_parse_int(&o->T, "--seq-len", arg, 4, 1 << 20, e);
    case OPT_TRIALS: return cli_parse_int(&o->trials, "--trials", arg, 1, 1 << 24, e);
    case OPT_STRIDE: return cli_parse_int(&o->stride, "--stride", arg, 2, 1 << 20, e);
    case OPT_SEED:
        if (cli_parse_int(&v, "--seed", arg, 0, INT64_MAX, e)) return -1;
        o->seed = (uint64_t)v;
        return 0;
    case OPT_ALLOW_PARTIAL: o->allow_partial = true; return 0;
    }
    return cli_fail(e, NULL, "option key %d has no handler", key);
}

/* Parse a subcommand's argv (argv[0] its name) against spec. */
static void decay_parse(struct cli_args *a, const struct cli_spec *spec, int argc, char **argv,
                        struct decay_opts *o)
{
    cli_args_init(a);
    cli_parse(a, spec, argc, argv, decay_option, o);
}

static const char *out_of(const struct cli_args *a)
{
    return a->out_path ? a->out_path : "-";
}

#define OUTPUT_HELP "CSV output (written as FILE.partial, then renamed; default stdout)"

/* "a,b,c" of numbers > lo into a malloc'ed array. */
static double *parse_list(const char *opt, const char *s, int *n, double lo)
{
    double *v = NULL;
    *n = 0;
    char *copy = cli_strdup(s), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        double x = cli_double(opt, t);
        if (!(x > lo) || !isfinite(x)) cli_usage_die(NULL, "%s: %s must be a number above %g", opt, t, lo);
        v = cli_realloc(v, (size_t)(*n + 1) * sizeof *v, "a list of numbers");
        v[(*n)++] = x;
    }
    free(copy);
    if (*n == 0) cli_usage_die(NULL, "%s: empty list", opt);
    return v;
}

static int32_t check_dim(int64_t d)
{
    if (d <= 0) cli_usage_die("give --dim d, the head width (e.g. 128)", "--dim is required");
    if (d % 2 || d > 4096) cli_usage_die(NULL, "--dim %lld must be even and at most 4096", (long long)d);
    return (int32_t)d;
}

/* ------------------------------------------------------------ curve */

static const struct cli_opt curve_opts[] = {
    {"base", CLI_ARG, OPT_BASE, "B[,B...]", "RoPE bases (theta), each > 1"},
    {"dim", CLI_ARG, OPT_DIM, "d", "head width (even, at most 4096)"},
    {"max-dist", CLI_ARG, OPT_MAX_DIST, "M", "largest distance m"},
    {"every", CLI_ARG, OPT_EVERY, "k", "write every k-th m (default 1)"},
    {"upper", CLI_NOARG, OPT_UPPER, NULL, "also the upper bound (columns upper, upper_norm)"},
    {"summary", CLI_ARG, OPT_SUMMARY, "FILE",
     "CSV base,first_neg,b_at (first_neg = -1 if none up to M)"},
    {0}};

static const struct cli_spec curve_spec = {
    .prog = "strata-decay curve",
    .synopsis = "--base B[,B...] --dim d --max-dist M [--every k] [--upper] [--summary FILE] [-o CSV]",
    .about = "Columns: base, m, b (B(m)), b_norm (B(m)/(d/2)) [, upper, upper_norm].\n"
             "The first m with B(m) < 0 per base goes to stderr (and --summary FILE).\n",
    .groups = CLI_G_OUTPUT,
    .opts = curve_opts,
    .output_help = OUTPUT_HELP,
};

static int cmd_curve(int argc, char **argv, bool upper)
{
    struct cli_args args;
    struct decay_opts o = {.every = 1};
    struct cli_spec sp = curve_spec;
    if (upper) sp.prog = "strata-decay upper", sp.about = "curve --upper: as strata-decay curve.\n";
    decay_parse(&args, &sp, argc, argv, &o);
    const char *out_path = out_of(&args), *bases_s = o.bases_s, *summary = o.summary;
    const int64_t d = o.d, M = o.M, every = o.every;
    upper |= o.upper;
    const int32_t dd = check_dim(d);
    if (!bases_s) cli_usage_die("e.g. --base 10000,500000", "--base is required");
    if (M <= 0) cli_usage_die("e.g. --max-dist 100000", "--max-dist M (> 0) is required");
    int nb;
    double *bases = parse_list("--base", bases_s, &nb, 1.0);
    const int32_t n = dd / 2;
    double *theta = cli_calloc((size_t)n, sizeof *theta, "RoPE frequencies");
    const int64_t chunk = 1 << 16;
    double *b = cli_calloc((size_t)chunk, sizeof *b, "B(m)"), *u = cli_calloc((size_t)chunk, sizeof *u, "B(m)");
    struct cli_out out, sout;
    FILE *f = cli_out_open(&out, out_path);
    FILE *sf = summary ? cli_out_open(&sout, summary) : NULL;
    fprintf(f, "base,m,b,b_norm%s\n", upper ? ",upper,upper_norm" : "");
    if (sf) fprintf(sf, "base,first_neg,b_at\n");
    for (int k = 0; k < nb; k++) {
        strata_rope_freqs(theta, dd, bases[k], NULL, 0);
        int64_t first = -1;
        double at = 0;
        for (int64_t m0 = 0; m0 <= M; m0 += chunk) {
            int64_t cnt = M + 1 - m0 < chunk ? M + 1 - m0 : chunk;
            strata_decay_eval(b, theta, n, m0, cnt);
            if (upper) strata_decay_upper(u, theta, n, m0, cnt);
            for (int64_t j = 0; j < cnt; j++) {
                int64_t m = m0 + j;
                if (first < 0 && b[j] < 0) first = m, at = b[j];
                if (m % every) continue;
                fprintf(f, "%.17g,%lld,%.12g,%.12g", bases[k], (long long)m, b[j], b[j] / n);
                if (upper) fprintf(f, ",%.12g,%.12g", u[j], u[j] / n);
                fputc('\n', f);
            }
        }
        cli_info("base %g, d %d: first m with B(m) < 0: %s%lld", bases[k], (int)dd,
                 first < 0 ? "none up to " : "", (long long)(first < 0 ? M : first));
        if (sf) fprintf(sf, "%.17g,%lld,%.12g\n", bases[k], (long long)first, at);
    }
    cli_out_commit(&out);
    if (sf) cli_out_commit(&sout);
    free(bases);
    free(theta);
    free(b);
    free(u);
    cli_args_free(&args);
    return 0;
}

/* ------------------------------------------------------------ bound */

static const struct cli_opt bound_opts[] = {
    {"dim", CLI_ARG, OPT_DIM, "d", "head width (even, at most 4096)"},
    {"lengths", CLI_ARG, OPT_LENGTHS, "L,...", "context lengths (default: the paper's 1000 .. 1000000)"},
    {"float32", CLI_NOARG, OPT_FLOAT32, NULL,
     "evaluate in float32 as PyTorch would with Hugging Face's inv_freq; adds base_f64, differs"},
    {"paper", CLI_NOARG, OPT_PAPER, NULL,
     "the paper's own evaluation and Figure 1 fit (see above); adds base_f64, differs, fit_length"},
    {0}};

static const struct cli_spec bound_spec = {
    .prog = "strata-decay bound",
    .synopsis = "--dim d [--lengths L,...] [--float32 | --paper] [-o CSV]",
    .about = "The paper's search: bases (i + j/10) 10^x, x = 3..9, i = 1..9, j = 0..9,\n"
             "increasing; the bound for L is the first with B(m) >= 0 for m = 0..L-1.\n"
             "Columns: length, base (0: none on the grid), fit (a L^k), fit_a, fit_k,\n"
             "log_resid (|ln base - ln fit|), min_b (min B(m), m < L, at the bound: its\n"
             "margin), prev_base, prev_first_neg, prev_b (the grid base below, where it\n"
             "first goes negative). The fit is least squares of ln base on ln L.\n"
             "Default: double precision (error < 3e-13 in B), the exact answer.\n"
             "--float32: theta = 1/powf(base, 2i/d), float32 angles, cosf, float32 sum;\n"
             "adds base_f64 and differs (1 where float32 changes the answer).\n"
             "--paper: as the paper computed its table and Figure 1 (docs/DECAY.md):\n"
             "float32 as its Appendix E code (theta = powf(base, -2i/d), then as\n"
             "--float32), at the lengths given (default 1000 .. 1000000, which match\n"
             "its table better than powers of two), and the fit taken at the lengths\n"
             "read with binary prefixes (1000 -> 1024, 10^6 -> 2^20), as its Figure 1\n"
             "places them: column fit_length, and fit = fit_a * fit_length^fit_k. Its\n"
             "table still differs from the paper's at 5 of 11 lengths (16k, 32k, 256k,\n"
             "512k, 1M), where no evaluation tried gives the paper's base.\n",
    .groups = CLI_G_OUTPUT,
    .opts = bound_opts,
    .output_help = OUTPUT_HELP,
};

static int cmd_bound(int argc, char **argv)
{
    struct cli_args args;
    struct decay_opts o = {0};
    decay_parse(&args, &bound_spec, argc, argv, &o);
    const char *out_path = out_of(&args), *lengths_s = o.lengths_s;
    const int64_t d = o.d;
    const bool paper = o.paper, f32 = o.f32 || o.paper;
    if (o.f32 && o.paper)
        cli_usage_die("--paper evaluates in float32 already (the paper's variant)",
                      "--float32 and --paper exclude each other");
    const enum strata_decay_prec prec =
        paper ? STRATA_DECAY_F32_PAPER : f32 ? STRATA_DECAY_F32 : STRATA_DECAY_F64;
    const int32_t dd = check_dim(d);
    int n = (int)(sizeof paper_lengths / sizeof *paper_lengths);
    int64_t *len = cli_calloc((size_t)n, sizeof *len, "the lengths");
    if (lengths_s) {
        double *v = parse_list("--lengths", lengths_s, &n, 0.0);
        len = cli_realloc(len, (size_t)n * sizeof *len, "the lengths");
        for (int i = 0; i < n; i++) {
            if (v[i] != floor(v[i]) || v[i] > (f32 ? 16777216.0 : 1e12))
                cli_usage_die(NULL, "--lengths: %g must be a whole number up to %s", v[i],
                        f32 ? "2^24 with --float32 or --paper" : "1e12");
            len[i] = (int64_t)v[i];
        }
        free(v);
    } else {
        memcpy(len, paper_lengths, sizeof paper_lengths);
    }
    struct strata_decay_bound *r = cli_calloc((size_t)n, sizeof *r, "the bounds"), *r64 = NULL;
    double t0 = cli_now();
    cli_check(strata_decay_bound(r, dd, len, n, prec), NULL);
    double t1 = cli_now();
    if (f32) {
        r64 = cli_calloc((size_t)n, sizeof *r64, "the bounds");
        cli_check(strata_decay_bound(r64, dd, len, n, STRATA_DECAY_F64), NULL);
    }
    /* the fit's x: the lengths searched, or (--paper) where Figure 1 puts them */
    double *fx = cli_calloc((size_t)n, sizeof *fx, "the fit"), *fy = cli_calloc((size_t)n, sizeof *fy, "the fit");
    for (int i = 0; i < n; i++) {
        fx[i] = (double)(paper ? strata_decay_paper_length(len[i]) : len[i]);
        fy[i] = r[i].base;
    }
    double fa, fk, fres;
    if (strata_decay_power_fit(&fa, &fk, &fres, fx, fy, n) != 0)
        cli_note("no power-law fit: %s", strata_last_error());
    struct cli_out out;
    FILE *f = cli_out_open(&out, out_path);
    fprintf(f, "length,base,fit,fit_a,fit_k,log_resid,min_b,prev_base,prev_first_neg,prev_b%s%s\n",
            f32 ? ",base_f64,differs" : "", paper ? ",fit_length" : "");
    int ndiff = 0;
    for (int i = 0; i < n; i++) {
        double fit = fa * pow(fx[i], fk);
        fprintf(f, "%lld,%.17g,%.9g,%.9g,%.9g", (long long)len[i], r[i].base, fit, fa, fk);
        cli_csv_num(f, r[i].base > 0 ? fabs(log(r[i].base / fit)) : (double)NAN, 6); /* empty: none */
        fprintf(f, ",%.9g,%.17g,%lld,%.9g", r[i].min_b, r[i].prev_base,
                (long long)r[i].prev_first_neg, r[i].prev_b);
        if (f32) {
            int diff = r64[i].base != r[i].base;
            ndiff += diff;
            fprintf(f, ",%.17g,%d", r64[i].base, diff);
            if (diff)
                cli_info("L = %lld: float32 gives %g, double %g", (long long)len[i], r[i].base,
                         r64[i].base);
        }
        if (paper) fprintf(f, ",%.17g", fx[i]);
        fputc('\n', f);
    }
    cli_out_commit(&out);
    cli_info("d %d, %d lengths in %.2f s (%s); fit base = %.6g * L^%.6g%s (max |ln residual| %.3g)",
             (int)dd, n, t1 - t0, paper ? "float32, the paper's code" : f32 ? "float32" : "double",
             fa, fk, paper ? " at L = fit_length (1k = 1024, 1M = 2^20)" : "", fres);
    if (f32) cli_info("float32 changes %d of %d answers", ndiff, n);
    free(len);
    free(r);
    free(r64);
    free(fx);
    free(fy);
    cli_args_free(&args);
    return 0;
}

/* ------------------------------------------------------------ check */

struct rope_cfg {
    double base;
    int32_t d;
    int64_t context;
    struct strata_rope_scaling_params sc;
};

static const struct cli_opt check_opts[] = {
    {"config", CLI_ARG, OPT_CONFIG, "PATH", "config.json, a checkpoint directory or a llama2.c .bin"},
    {"context", CLI_ARG, OPT_CONTEXT, "L", "context length (default max_position_embeddings)"},
    {0}};

static const struct cli_spec check_spec = {
    .prog = "strata-decay check",
    .synopsis = "--config config.json|CHECKPOINT [--context L] [-o CSV]",
    .about = "Reads rope_theta (default 10000), head_dim (or hidden_size /\n"
             "num_attention_heads), max_position_embeddings (or --context) and\n"
             "rope_scaling (docs/CHECKPOINTS.md; evaluated with the actual scaled\n"
             "frequencies, dynamic at P = context). Columns: config, base, head_dim,\n"
             "context, scaling, bound (the paper's bound for the context at this d; 0:\n"
             "none on the grid), ratio (base / bound), first_neg (first m with B(m) < 0 for\n"
             "the model's frequencies; = context if none before it), verdict (pass when\n"
             "B(m) >= 0 for all m < context).\n"
             "Exit status: 0 when the verdict is pass; 1 when it is fail (a run-time\n"
             "verdict, not a usage error: the CSV is still written, to stdout or -o FILE,\n"
             "and the reason goes to stderr unless -q); 1 also for a run-time error (no\n"
             "CSV then: unreadable or malformed config, no RoPE); 2 for a bad command\n"
             "line. What a fail means for a model: docs/DECAY.md.\n",
    .groups = CLI_G_OUTPUT,
    .opts = check_opts,
    .output_help = OUTPUT_HELP,
};

static int cmd_check(int argc, char **argv)
{
    struct cli_args args;
    struct decay_opts o = {0};
    decay_parse(&args, &check_spec, argc, argv, &o);
    const char *out_path = out_of(&args), *cfg_path = o.cfg_path;
    struct rope_cfg rc = {0};
    rc.context = o.context;
    if (!cfg_path) cli_usage_die("give --config config.json or a checkpoint", "--config is required");
    struct stat st;
    if (stat(cfg_path, &st) != 0)
        cli_die("give config.json, a checkpoint directory or a llama2.c .bin", "%s: %s", cfg_path,
                strerror(errno));
    char *json_path = cli_sprintf("%s/config.json", cfg_path);
    const size_t pl = strlen(cfg_path);
    struct strata_config c0;
    const struct strata_config *c = &c0;
    struct strata_model *m = NULL;
    const bool dir_json = S_ISDIR(st.st_mode) && access(json_path, R_OK) == 0;
    free(json_path);
    if (dir_json ||
        (pl > 5 && !strcmp(cfg_path + pl - 5, ".json"))) {
        cli_check(strata_config_read_positions(&c0, cfg_path), "see docs/CHECKPOINTS.md");
    } else {
        cli_check(strata_model_load(&m, cfg_path), "give config.json or a checkpoint strata loads");
        c = strata_model_config(m);
    }
    if (c->pos != STRATA_POS_ROPE_HALF && c->pos != STRATA_POS_ROPE_INTERLEAVED)
        cli_die(NULL, "%s: the model does not use RoPE (%s)", cfg_path, strata_pos_name(c->pos));
    rc.base = c->rope_base;
    rc.d = c->head_dim;
    if (rc.d < 2 || rc.d % 2 || rc.d > 4096)
        cli_die(NULL, "%s: head width %d (head_dim or hidden_size/num_attention_heads) must be an "
                "even whole number from 2 to 4096", cfg_path, (int)rc.d);
    if (rc.context <= 0) rc.context = c->seq_len;
    rc.sc = c->scaling;
    strata_model_free(m);
    if (rc.context <= 0)
        cli_die("give --context L", "%s: no max_position_embeddings to take the context from",
                cfg_path);
    if (!(rc.base > 1) || !isfinite(rc.base)) cli_die(NULL, "%s: rope_theta %g must be > 1", cfg_path, rc.base);
    if (rc.context < 1) cli_die(NULL, "%s: context %lld must be >= 1", cfg_path, (long long)rc.context);
    const int32_t n = rc.d / 2;
    double *theta = cli_calloc((size_t)n, sizeof *theta, "RoPE frequencies");
    strata_rope_freqs(theta, rc.d, rc.base, &rc.sc, rc.context);
    double at = 0;
    int64_t first = strata_decay_first_neg(theta, n, rc.context, &at);
    struct strata_decay_bound bd;
    cli_check(strata_decay_bound(&bd, rc.d, &rc.context, 1, STRATA_DECAY_F64), NULL);
    const char *sn[] = {"none", "linear", "dynamic", "yarn", "llama3", "ntk"};
    char scaling[64];
    snprintf(scaling, sizeof scaling, "%s%s%.6g", sn[rc.sc.type], rc.sc.type ? ":" : "",
             rc.sc.type ? rc.sc.factor : 0.0);
    if (!rc.sc.type) scaling[4] = '\0';
    const bool pass = first >= rc.context;
    struct cli_out out;
    FILE *f = cli_out_open(&out, out_path);
    fprintf(f, "config,base,head_dim,context,scaling,bound,ratio,first_neg,verdict\n");
    fprintf(f, "%s,%.17g,%d,%lld,%s,%.17g,%.6g,%lld,%s\n", cfg_path, rc.base, (int)rc.d,
            (long long)rc.context, scaling, bd.base, bd.base > 0 ? rc.base / bd.base : (double)NAN,
            (long long)first, pass ? "pass" : "fail");
    cli_out_commit(&out);
    cli_info("base %g, d %d, context %lld, scaling %s: bound %g (base/bound %.3g); %s -> %s",
             rc.base, (int)rc.d, (long long)rc.context, scaling, bd.base,
             bd.base > 0 ? rc.base / bd.base : (double)NAN,
             pass ? "B(m) >= 0 over the whole context" : "B(m) < 0 inside the context",
             pass ? "PASS" : "FAIL");
    if (!pass)
        cli_info("first m with B(m) < 0 is %lld (B = %.4g), %.3g of the context", (long long)first,
                 at, (double)first / (double)rc.context);
    free(theta);
    cli_args_free(&args);
    return pass ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

/* ------------------------------------------------------------ empirical */

static const struct cli_opt empirical_opts[] = {
    {"allow-partial", CLI_NOARG, OPT_ALLOW_PARTIAL, NULL,
     "use the completed samples of an interrupted run (complete = 0)"},
    {0}};

static const struct cli_spec empirical_spec = {
    .prog = "strata-decay empirical",
    .synopsis = "ATTN.h5 [-o CSV] [--allow-partial]\n"
                "       strata-decay empirical STATS.h5 [STATS2.h5 ...] [-o CSV] [--allow-partial]",
    .about = "Mean attention logit and probability against relative distance m from a\n"
             "strata-probe-attn file (/dist/*, docs/FORMAT.md), or from statistics files of\n"
             "strata-probe-stats (/attn/*; several of disjoint samples are read as one).\n"
             "Columns: block, head (-1: mean over the file's heads), distance, logit_mean,\n"
             "prob_mean, count. Distances with no visible pair (count 0) are left out.\n"
             "An interrupted run's file (.partial, complete = 0) is refused unless\n"
             "--allow-partial.\n",
    .groups = CLI_G_OUTPUT,
    .opts = empirical_opts,
    .output_help = OUTPUT_HELP,
    .min_args = 0,
    .max_args = -1,
};

/* The attention reductions of statistics files as strata-probe-attn's means
 * (struct strata_attn_dist): the same sums divided the same way. */
static void empirical_stats(const char **paths, int n, bool allow_partial, struct strata_attn_dist *r)
{
    struct strata_stats st;
    struct strata_h5 *first = NULL;
    bool complete;
    cli_check(strata_stats_read_many(&st, &first, paths, n, &complete),
              "give statistics files of disjoint samples of one strata-probe-stats setting");
    strata_h5_free(first);
    if (!complete && !allow_partial)
        cli_die("finish it with strata-probe-stats --resume, or pass --allow-partial",
                "%s: the statistics file is incomplete (%lld samples complete)", paths[0],
                (long long)st.n_complete);
    if (st.n_attn_layers < 1)
        cli_die("run strata-probe-stats with --stats including attn",
                "%s: the statistics file keeps no attention reductions (/attn)", paths[0]);
    if (st.n_complete < 1)
        cli_die("resume the run until at least one sample is complete",
                "%s: no complete sample (n_complete 0)", paths[0]);
    r->n_layers = st.n_attn_layers, r->n_heads = st.n_heads, r->seq_len = st.seq_len;
    const size_t tot = (size_t)(r->n_layers * r->n_heads * r->seq_len);
    r->logit_mean = cli_calloc(tot, sizeof *r->logit_mean, "the reductions");
    r->prob_mean = cli_calloc(tot, sizeof *r->prob_mean, "the reductions");
    r->count = cli_calloc(tot, sizeof *r->count, "the reductions");
    for (size_t k = 0; k < tot; k++) {
        const double c = st.count[k];
        r->prob_mean[k] = c > 0 ? st.prob[k] / c : (double)NAN;
        r->logit_mean[k] = c > 0 ? st.logit[k] / c : (double)NAN;
        r->count[k] = c;
    }
    r->layers = cli_calloc((size_t)r->n_layers, sizeof *r->layers, "the layer list");
    r->heads = cli_calloc((size_t)r->n_heads, sizeof *r->heads, "the head list");
    memcpy(r->layers, st.attn_layers, (size_t)r->n_layers * sizeof *r->layers);
    memcpy(r->heads, st.heads, (size_t)r->n_heads * sizeof *r->heads);
    strata_stats_free(&st);
}

/* A strata-probe-attn file (strata_attn_dist_read checks it), refused if
 * it is an interrupted run's unless allow_partial. */
static void empirical_attn(const struct strata_h5 *h, const char *path, bool allow_partial,
                           struct strata_attn_dist *r)
{
    cli_check(strata_attn_dist_read(r, h),
              "strata-decay empirical reads strata-probe-attn output or strata-probe-stats "
              "statistics (docs/FORMAT.md)");
    if (r->complete) return;
    char done[64] = "an unknown number of", of[48] = "";
    if (r->n_complete >= 0) snprintf(done, sizeof done, "%lld", (long long)r->n_complete);
    if (r->n_samples >= 0) snprintf(of, sizeof of, " of %lld", (long long)r->n_samples);
    if (!allow_partial)
        cli_die("finish the probe run (strata-probe-attn), or pass --allow-partial to use "
                "the complete samples", "%s: the attention file is from an interrupted run "
                "(complete = 0): %s%s samples complete", path, done, of);
    if (r->n_complete == 0)
        cli_die("rerun strata-probe-attn", "%s: no complete sample (n_complete 0)", path);
    cli_note("%s: interrupted run; using its %s complete samples", path, done);
}

static int cmd_empirical(int argc, char **argv)
{
    struct cli_args args;
    struct decay_opts o = {0};
    decay_parse(&args, &empirical_spec, argc, argv, &o);
    const char *out_path = out_of(&args), *in_path = args.n_args ? args.args[0] : NULL;
    if (!in_path)
        cli_usage_die("give the HDF5 file strata-probe-attn (or strata-probe-stats) wrote",
                      "no input file given");
    struct strata_h5 *h = NULL;
    cli_check(strata_h5_open(&h, in_path), "give the HDF5 file strata-probe-attn wrote");
    struct strata_attn_dist r = {0};
    if (strata_stats_is(h)) {
        strata_h5_free(h);
        empirical_stats(args.args, args.n_args, o.allow_partial, &r);
    } else {
        if (args.n_args > 1)
            cli_usage_die("several inputs are statistics files of strata-probe-stats",
                          "%s is not a statistics file; give one strata-probe-attn file", in_path);
        empirical_attn(h, in_path, o.allow_partial, &r);
        strata_h5_free(h);
    }
    const int64_t Ls = r.n_layers, Hs = r.n_heads, T = r.seq_len;
    const double *lg = r.logit_mean, *pr = r.prob_mean, *ct = r.count;
    struct cli_out out;
    FILE *f = cli_out_open(&out, out_path);
    fprintf(f, "block,head,distance,logit_mean,prob_mean,count\n");
    for (int64_t a = 0; a < Ls; a++)
        for (int64_t m = 0; m < T; m++) {
            double sl = 0, sp = 0, sc = 0;
            int nh = 0;
            for (int64_t b = 0; b < Hs; b++) {
                size_t k = (size_t)((a * Hs + b) * T + m);
                if (!(ct[k] > 0)) continue;
                fprintf(f, "%d,%d,%lld,%.9g,%.9g,%.17g\n", r.layers[a], r.heads[b], (long long)m,
                        lg[k], pr[k], ct[k]);
                sl += lg[k], sp += pr[k], sc += ct[k], nh++;
            }
            if (nh)
                fprintf(f, "%d,-1,%lld,%.9g,%.9g,%.17g\n", r.layers[a], (long long)m, sl / nh,
                        sp / nh, sc);
        }
    cli_out_commit(&out);
    strata_attn_dist_free(&r);
    cli_args_free(&args);
    return 0;
}

/* ------------------------------------------------------------ gap */

/* Sums of the last query row's logits per (layer, head, distance), split
 * by whether the key holds the query's token. */
struct gap_acc {
    int64_t T, H;
    const int32_t *tokens; /* (T) of the current input */
    double *sim, *rnd;     /* (L, H, T) sums */
    int64_t *n_sim, *n_rnd; /* (L, H, T) counts */
};

static bool gap_wants(void *user, int32_t layer, enum strata_site site)
{
    (void)user, (void)layer;
    return site == STRATA_SITE_ATTN_LOGITS;
}

static int gap_observe(void *user, const struct strata_view *v)
{
    struct gap_acc *g = user;
    const int64_t i = g->T - 1; /* the query: last position */
    if (i < v->row0 || i >= v->row0 + v->n_rows) return 0;
    const float *row = v->data + (i - v->row0) * v->ld;
    const int32_t q = g->tokens[i];
    for (int64_t c = 0; c < v->n_cols; c++) {
        int64_t j = v->col0 + c;
        if (j < 1 || j >= i || !isfinite(row[c])) continue; /* skip BOS (the sink) and the query */
        size_t k = (size_t)(((int64_t)v->layer * g->H + v->head) * g->T + (i - j));
        if (g->tokens[j] == q) g->sim[k] += (double)row[c], g->n_sim[k]++;
        else g->rnd[k] += (double)row[c], g->n_rnd[k]++;
    }
    return 0;
}

static const struct cli_opt gap_opts[] = {
    {"seq-len", CLI_ARG, OPT_SEQ_LEN, "T", "tokens per input (default: the model's seq_len)"},
    {"trials", CLI_ARG, OPT_TRIALS, "N", "inputs (default 64)"},
    {"stride", CLI_ARG, OPT_STRIDE, "K", "copies of the query every K distances (default 8)"},
    {"seed", CLI_ARG, OPT_SEED, "S", "seed of the random tokens (default 0)"},
    {0}};

static const struct cli_spec gap_spec = {
    .prog = "strata-decay gap",
    .synopsis = "--model M [--tokenizer TOK] [--seq-len T] [--trials N] [--stride K] [--seed S] [-o CSV]",
    .about = "The similar-vs-random gap (P2): N inputs of T tokens, each BOS then uniform\n"
             "random tokens; the last token q is the query, and q is also placed at the\n"
             "distances m = 1..T-2 with (m + trial) % K == 0 (other keys never hold q),\n"
             "so over K trials every distance is seen both as a copy of q and as a random\n"
             "token. The query row's attention logits (before softmax) are averaged per\n"
             "layer, head and distance over copies (similar) and others (random); BOS is\n"
             "left out (it is the attention sink). Columns: block, head (-1: mean over\n"
             "heads), distance, similar, random, gap (= similar - random), n_similar,\n"
             "n_random.\n",
    .groups = CLI_G_MODEL | CLI_G_RUNTIME | CLI_G_OUTPUT,
    .opts = gap_opts,
    .output_help = OUTPUT_HELP,
};

static int cmd_gap(int argc, char **argv)
{
    struct cli_args args;
    struct decay_opts o = {.trials = 64, .stride = 8};
    decay_parse(&args, &gap_spec, argc, argv, &o);
    const char *out_path = out_of(&args);
    int64_t T = o.T;
    const int64_t trials = o.trials, stride = o.stride;
    const uint64_t seed = o.seed;
    cli_require(&args, CLI_REQ_MODEL);
    cli_model_load(&args, true);
    const struct strata_config *c = &args.model.cfg;
    if (T == 0) T = c->seq_len;
    if (T > c->seq_len) cli_warn("--seq-len %lld beyond the trained %d", (long long)T, (int)c->seq_len);
    const int64_t L = c->n_layer, H = c->n_head, V = strata_tokenizer_n_vocab(args.model.tok);
    const int32_t bos = strata_tokenizer_bos(args.model.tok);
    const int32_t lo = V > 16 ? 3 : 0; /* llama2.c/SentencePiece: 0..2 are unk, BOS, EOS */
    if (V - lo < 2) cli_die(NULL, "the vocabulary is too small (%lld)", (long long)V);
    struct strata_ctx_params cp = cli_ctx_params(&args, T);
    struct strata_ctx *ctx = cli_ctx_create(&args, &cp);
    const size_t n = (size_t)(L * H * T);
    int32_t *tok = cli_calloc((size_t)T, sizeof *tok, "an input");
    struct gap_acc g = {T, H, tok, cli_calloc(n, sizeof(double), "the gap sums"),
                        cli_calloc(n, sizeof(double), "the gap sums"),
                        cli_calloc(n, sizeof(int64_t), "the gap counts"),
                        cli_calloc(n, sizeof(int64_t), "the gap counts")};
    struct strata_observer obs = {gap_wants, gap_observe, &g};
    cli_check(strata_ctx_add_observer(ctx, &obs), NULL);
    uint64_t rng = seed * 0x9E3779B97F4A7C15ull + 1;
    struct cli_progress prog;
    cli_progress_start(&prog, NULL, trials);
    for (int64_t t = 0; t < trials; t++) {
        const int32_t q = lo + (int32_t)(strata_rng_next(&rng) % (uint64_t)(V - lo));
        tok[0] = bos >= 0 ? bos : q;
        for (int64_t j = 1; j < T - 1; j++) {
            int64_t m = T - 1 - j;
            if ((m + t) % stride == 0 && m <= T - 2) {
                tok[j] = q;
                continue;
            }
            do tok[j] = lo + (int32_t)(strata_rng_next(&rng) % (uint64_t)(V - lo));
            while (tok[j] == q);
        }
        tok[T - 1] = q;
        cli_check(strata_forward(ctx, NULL, tok, T, STRATA_LOGITS_NONE), NULL);
        cli_progress(&prog, t + 1, trials, (t + 1) * T, 0);
    }
    cli_progress(&prog, trials, trials, trials * T, 1);
    struct cli_out out;
    FILE *f = cli_out_open(&out, out_path);
    fprintf(f, "block,head,distance,similar,random,gap,n_similar,n_random\n");
    for (int64_t l = 0; l < L; l++)
        for (int64_t m = 1; m < T - 1; m++) {
            double ms = 0, mr = 0;
            int64_t ns = 0, nr = 0, nh = 0;
            for (int64_t h = 0; h < H; h++) {
                size_t k = (size_t)((l * H + h) * T + m);
                if (!g.n_sim[k] || !g.n_rnd[k]) continue;
                double s = g.sim[k] / (double)g.n_sim[k], r = g.rnd[k] / (double)g.n_rnd[k];
                fprintf(f, "%lld,%lld,%lld,%.9g,%.9g,%.9g,%lld,%lld\n", (long long)l, (long long)h,
                        (long long)m, s, r, s - r, (long long)g.n_sim[k], (long long)g.n_rnd[k]);
                ms += s, mr += r, ns += g.n_sim[k], nr += g.n_rnd[k], nh++;
            }
            if (nh)
                fprintf(f, "%lld,-1,%lld,%.9g,%.9g,%.9g,%lld,%lld\n", (long long)l, (long long)m,
                        ms / (double)nh, mr / (double)nh, (ms - mr) / (double)nh, (long long)ns,
                        (long long)nr);
        }
    cli_out_commit(&out);
    strata_ctx_free(ctx);
    cli_args_free(&args);
    free(tok), free(g.sim), free(g.rnd), free(g.n_sim), free(g.n_rnd);
    return 0;
}

int main(int argc, char **argv)
{
    cli_init("strata-decay");
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("strata-decay %s\n", STRATA_VERSION);
        return 0;
    }
    /* a subcommand parses its own argv: argv[0] is its name */
    if (!strcmp(cmd, "curve")) return cmd_curve(argc - 1, argv + 1, false);
    if (!strcmp(cmd, "upper")) return cmd_curve(argc - 1, argv + 1, true);
    if (!strcmp(cmd, "bound")) return cmd_bound(argc - 1, argv + 1);
    if (!strcmp(cmd, "check")) return cmd_check(argc - 1, argv + 1);
    if (!strcmp(cmd, "empirical")) return cmd_empirical(argc - 1, argv + 1);
    if (!strcmp(cmd, "gap")) return cmd_gap(argc - 1, argv + 1);
    cli_usage_die("see strata-decay --help", "unknown command '%s'", cmd);
}
