/* strata-blockinf — Block Influence (ShortGPT, Men et al. 2024; P3 in
 * ../shared/docs/PAPERS.md) and its variants from a hidden-state dump, with a
 * seeded bootstrap over samples, and the pruning plan that follows from it:
 *   BI_l = 1 - mean over all tokens of all samples of cos(X_l, X_{l+1}),
 * X_l the residual stream entering block l, X_{l+1} the stream leaving it,
 * before the final norm. Averaged, not summed, so scores are comparable
 * across corpora of different sizes. Variants (lib/blockinf.c): angular
 * distance between X_l and X_{l+n}, relative magnitude of the block's
 * update, BI of the attention and MLP sub-blocks. docs/BLOCKINF.md explains
 * each score and the evaluation (scripts/blockinf_eval.py).
 *
 * Memory: two (or n+1) boundaries and two sub-block outputs of one sample
 * at a time, plus each sample's mean per block and metric (N, L) for the
 * bootstrap; shards are read one after the other.
 *
 * Legend: N samples, L blocks, P positions kept, D width, B replicates. */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <math.h>

#define NM STRATA_BI_COUNT

struct opts {
    bool plan;
    const char **paths;
    int n_paths;
    enum strata_bi_metric metrics[NM]; /* in the order asked; metrics[0] ranks the plan */
    int n_metrics;
    bool metric_all;      /* "all": keep only what the dump allows */
    int64_t n;            /* angular span */
    bool n_given;
    bool last_only;
    int64_t n_boot;
    uint64_t seed;
    double ci;
    int64_t remove;       /* K; -1 not given */
    const char *out, *csv;
    bool allow_partial;
};

/* Everything score and plan report about one metric. */
struct mstat {
    double *vals;    /* (N, L) each sample's mean per block; NaN: not scored */
    double *point;   /* (L) mean over samples */
    int64_t *rank;   /* (L) 1 = lowest; 0: not scored */
    int64_t *order;  /* (L) blocks lowest first */
    int64_t n_rank;  /* blocks scored */
    double *reps;    /* (B, L) bootstrap replicates */
    double *lo, *hi; /* (L) percentile interval */
    double *stab;    /* (L) fraction of replicates with the same rank */
    double tau;      /* mean Kendall tau of replicate vs point ranking */
};

static void *xcalloc_(size_t n, size_t size)
{
    return cli_calloc(n, size, "Block Influence scores (use fewer samples or shards per run)");
}

/* --metric LIST into o (a usage error names what is wrong). */
static int parse_metrics(struct opts *o, const char *s, struct cli_error *e)
{
    static const char hint[] = "--metric takes bi, angular, relmag, bi-attn, bi-mlp (comma-separated) or all";
    o->n_metrics = 0;
    o->metric_all = !strcmp(s, "all");
    if (o->metric_all) {
        for (int m = 0; m < NM; m++) o->metrics[o->n_metrics++] = (enum strata_bi_metric)m;
        return 0;
    }
    const char *q = s;
    while (*q) {
        const char *end = strchr(q, ',');
        const size_t n = end ? (size_t)(end - q) : strlen(q);
        char tok[32];
        enum strata_bi_metric m;
        if (n >= sizeof tok) return cli_fail(e, hint, "--metric '%s': unknown metric '%.*s'", s, (int)n, q);
        memcpy(tok, q, n);
        tok[n] = '\0';
        q += n + (end != NULL);
        if (!n) continue;
        if (strata_bi_metric_parse(tok, &m) != 0)
            return cli_fail(e, hint, "--metric '%s': unknown metric '%s'", s, tok);
        for (int i = 0; i < o->n_metrics; i++)
            if (o->metrics[i] == m) return cli_fail(e, NULL, "--metric '%s' names %s twice", s, tok);
        o->metrics[o->n_metrics++] = m;
    }
    if (!o->n_metrics) return cli_fail(e, hint, "--metric '%s' names no metric", s);
    return 0;
}

enum { OPT_METRIC = CLI_KEY_PROG, OPT_N, OPT_TOKENS, OPT_BOOTSTRAP, OPT_SEED, OPT_CI, OPT_REMOVE,
       OPT_CSV, OPT_ALLOW_PARTIAL };

static const struct cli_opt opts[] = {
    {"metric", CLI_ARG, OPT_METRIC, "LIST",
     "bi (default), angular, relmag, bi-attn, bi-mlp, comma-separated, or all\n"
     "(every metric the dump allows); plan takes one. relmag, bi-attn and bi-mlp\n"
     "need a dump made with --sites resid,attn_out,mlp_out"},
    {"n", CLI_ARG, OPT_N, "N", "angular: distance between X_l and X_{l+N} (default 1)"},
    {"tokens", CLI_ARG, OPT_TOKENS, "all|last",
     "score every kept position (default) or the last only"},
    {"bootstrap", CLI_ARG, OPT_BOOTSTRAP, "B",
     "B replicates resampling samples with replacement (default 0: none; plan:\n"
     "1000)"},
    {"seed", CLI_ARG, OPT_SEED, "S", "bootstrap seed (splitmix64, as lib/blockinf.c states; default 0)"},
    {"ci", CLI_ARG, OPT_CI, "C", "confidence level of M_lo .. M_hi (default 0.95; percentile)"},
    {"remove", CLI_ARG, OPT_REMOVE, "K", "plan: blocks to remove (1 .. scored blocks - 1)"},
    {"csv", CLI_ARG, OPT_CSV, "FILE", "plan: also write the ranking as CSV"},
    {"allow-partial", CLI_NOARG, OPT_ALLOW_PARTIAL, NULL,
     "accept an unfinished dump (.partial), using its completed samples"},
    {0}};

static const struct cli_spec spec = {
    .prog = "strata-blockinf",
    .synopsis = "[score] DUMP.h5 [DUMP2.h5 ...] [options] [-o SCORES.csv]\n"
                "       strata-blockinf plan DUMP.h5 [...] --remove K [options] [-o PLAN.json] "
                "[--csv PLAN.csv]",
    .about = "score (the default): Block Influence of every block l (0-based) of a\n"
             "strata-probe-hidden dump, or of several dumps (shards of one run) read as\n"
             "one, or of statistics files of strata-probe-stats (the same numbers), as a\n"
             "long-form CSV: one row per metric and scored block, columns block, metric\n"
             "(bi, angular, ...), span (n of angular, else 1), value, ci_lo, ci_hi (the\n"
             "--bootstrap confidence interval), stability (the fraction of replicates in\n"
             "which the block keeps its rank), rank (1 = lowest, the first to remove),\n"
             "n_tokens. Empty cells: no value (no bootstrap). The first line is a comment\n"
             "naming model, corpus, samples and length (docs/FORMAT.md, CSV files).\n"
             "\n"
             "plan: the K blocks to remove, lowest score first, as JSON {\"remove\": [...],\n"
             "\"order\": [...], ...} (docs/BLOCKINF.md) and, with --csv, as CSV (rank, block,\n"
             "metric, span, value, remove). With --metric angular the plan is one run of\n"
             "K consecutive blocks l..l+K-1 minimising the angular distance between X_l\n"
             "and X_{l+K}.\n"
             "Perplexity with the plan's blocks removed, on held-out samples:\n"
             "scripts/blockinf_eval.py PLAN.json -o DIR (docs/BLOCKINF.md).\n",
    .groups = CLI_G_OUTPUT,
    .opts = opts,
    .output_help = "output (written as FILE.partial, then renamed; default stdout)",
    .min_args = 0,
    .max_args = -1,
};

static int blockinf_option(void *user, int key, const char *arg, struct cli_error *e)
{
    struct opts *o = user;
    switch (key) {
    case OPT_METRIC:
        return parse_metrics(o, arg, e);
    case OPT_N:
        o->n_given = true;
        return cli_parse_int(&o->n, "--n", arg, 1, 1 << 20, e);
    case OPT_TOKENS:
        if (!strcmp(arg, "last")) o->last_only = true;
        else if (!strcmp(arg, "all")) o->last_only = false;
        else return cli_fail(e, NULL, "--tokens '%s': expected all or last", arg);
        return 0;
    case OPT_BOOTSTRAP:
        return cli_parse_int(&o->n_boot, "--bootstrap", arg, 0, 10000000, e);
    case OPT_SEED: {
        int64_t v;
        if (cli_parse_int(&v, "--seed", arg, 0, INT64_MAX, e)) return -1;
        o->seed = (uint64_t)v;
        return 0;
    }
    case OPT_CI:
        if (cli_parse_double(&o->ci, "--ci", arg, -HUGE_VAL, HUGE_VAL, e)) return -1;
        if (!(o->ci > 0 && o->ci < 1)) return cli_fail(e, NULL, "--ci %g: expected 0 < C < 1", o->ci);
        return 0;
    case OPT_REMOVE:
        return cli_parse_int(&o->remove, "--remove", arg, 0, 1 << 20, e);
    case OPT_CSV:
        o->csv = arg;
        return 0;
    case OPT_ALLOW_PARTIAL:
        o->allow_partial = true;
        return 0;
    }
    return cli_fail(e, NULL, "option key %d has no handler", key);
}

static void parse_args(struct opts *o, struct cli_args *a, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->metrics[0] = STRATA_BI_BI;
    o->n_metrics = 1;
    o->n = 1;
    o->n_boot = -1;
    o->ci = 0.95;
    o->remove = -1;
    cli_args_init(a);
    cli_parse(a, &spec, argc, argv, blockinf_option, o);
    o->out = a->out_path ? a->out_path : "-";
    cli_out_check("-o", o->out);
    if (o->csv) cli_out_check("--csv", o->csv);
    o->paths = a->args;
    o->n_paths = a->n_args;
    if (o->n_paths > 0 && !strcmp(o->paths[0], "plan")) o->plan = true, o->paths++, o->n_paths--;
    else if (o->n_paths > 0 && !strcmp(o->paths[0], "score")) o->paths++, o->n_paths--;
    if (!o->n_paths) cli_usage_die("see strata-blockinf --help", "no input dump given");
    if (o->n_boot < 0) o->n_boot = o->plan ? 1000 : 0;
    if (o->plan) {
        if (o->remove < 0) cli_usage_die("see strata-blockinf --help", "plan needs --remove K");
        if (o->remove < 1) cli_usage_die("give --remove 1 or more", "--remove 0 removes nothing");
        if (o->n_metrics != 1 || o->metric_all)
            cli_usage_die("give one --metric to plan with", "plan ranks by one metric, not %s",
                          o->metric_all ? "all" : "several");
        if (o->metrics[0] == STRATA_BI_ANGULAR) {
            if (o->n_given && o->n != o->remove)
                cli_usage_die("an angular plan removes the K consecutive blocks l..l+K-1: drop --n",
                              "--n %lld differs from --remove %lld", (long long)o->n,
                              (long long)o->remove);
            o->n = o->remove;
        }
    } else if (o->remove >= 0 || o->csv) {
        cli_usage_die("--remove and --csv belong to `strata-blockinf plan`", "score takes no %s",
                      o->remove >= 0 ? "--remove" : "--csv");
    }
}

/* The model's block count: model_config's n_layers, else what the dump
 * shows (its last boundary or block). */
static int64_t model_n_layer(const struct strata_dump *dump, const struct strata_dump_info *info)
{
    int64_t L = 0;
    char *cfg = NULL;
    if (strata_dump_get_attr_str(dump, "model_config", &cfg) == 0) {
        cJSON *j = cJSON_Parse(cfg);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "n_layers");
        if (cJSON_IsNumber(v) && !(v->valuedouble >= 1 && v->valuedouble <= (1 << 20) &&
                                   v->valuedouble == floor(v->valuedouble))) {
            const double bad = v->valuedouble;
            cJSON_Delete(j);
            free(cfg);
            cli_die("give a dump written by strata-probe-hidden", "%s: root attribute "
                    "model_config: n_layers %g is not a block count (1 .. 2^20)",
                    strata_dump_path(dump), bad);
        }
        if (cJSON_IsNumber(v)) L = (int64_t)v->valuedouble;
        cJSON_Delete(j);
    }
    free(cfg);
    const int32_t *kept = strata_dump_layers(dump), *blk = strata_dump_blocks(dump);
    const int64_t top_b = info->n_layers > 0 ? kept[info->n_layers - 1] : 0;
    const int64_t top_l = info->n_blocks > 0 ? blk[info->n_blocks - 1] : -1;
    if (L > 0 && (top_b > L || top_l >= L)) /* the file contradicts the model it names */
        cli_die("give a dump written by strata-probe-hidden", "%s: the dump keeps %s %lld, but its "
                "model_config has %lld blocks (boundaries 0..%lld)", strata_dump_path(dump),
                top_b > L ? "boundary" : "block", (long long)(top_b > L ? top_b : top_l),
                (long long)L, (long long)L);
    if (top_b > L) L = top_b; /* no model_config: the dump's own ids say the least L */
    if (top_l + 1 > L) L = top_l + 1;
    return L;
}

struct job {
    int m;     /* metric */
    int64_t l; /* block */
};

/* Stream the dump: every metric asked for, each sample's mean per block. */
static void accumulate(struct mstat *ms, const struct opts *o, struct strata_dump *dump,
                       const struct strata_dump_info *info, int64_t L, bool *want)
{
    const int64_t N = info->n_complete, P = info->n_pos, D = info->dim;
    const int64_t t0 = o->last_only ? P - 1 : 0, n_tok = P - t0;
    const int32_t *kept = strata_dump_layers(dump), *blk = strata_dump_blocks(dump);
    int64_t *bidx = xcalloc_((size_t)(L + 1), sizeof *bidx); /* (L+1) boundary -> dump index, -1 */
    int64_t *kidx = xcalloc_((size_t)(L + 1), sizeof *kidx); /* (L+1) block -> /attn_out index, -1 */
    for (int64_t b = 0; b <= L; b++) bidx[b] = kidx[b] = -1;
    for (int64_t i = 0; i < info->n_layers; i++)
        if (kept[i] <= L) bidx[kept[i]] = i;
    for (int64_t i = 0; i < info->n_blocks; i++)
        if (blk[i] < L) kidx[blk[i]] = i;
    const bool has_attn = info->sites & STRATA_DUMP_ATTN_OUT, has_mlp = info->sites & STRATA_DUMP_MLP_OUT;
    const bool need_attn = want[STRATA_BI_RELMAG] || want[STRATA_BI_ATTN] || want[STRATA_BI_MLP];
    const bool need_mlp = want[STRATA_BI_RELMAG] || want[STRATA_BI_MLP];
    /* Which block each metric can score: which boundaries and sites it needs. */
    bool *can = xcalloc_((size_t)(NM * L), sizeof *can); /* (NM, L) */
    int64_t n_can[NM] = {0};
    for (int m = 0; m < NM; m++) {
        if (!want[m]) continue;
        for (int64_t l = 0; l < L; l++) {
            bool ok = bidx[l] >= 0;
            if (m == STRATA_BI_BI) ok = ok && bidx[l + 1] >= 0;
            else if (m == STRATA_BI_ANGULAR) ok = ok && l + o->n <= L && bidx[l + o->n] >= 0;
            else ok = ok && kidx[l] >= 0 && has_attn && (m == STRATA_BI_ATTN || has_mlp);
            can[m * L + l] = ok;
            n_can[m] += ok;
        }
        if (n_can[m] == 0) {
            const char *name = strata_bi_metric_name((enum strata_bi_metric)m);
            if (m == STRATA_BI_RELMAG || m == STRATA_BI_ATTN || m == STRATA_BI_MLP) {
                if (!has_attn || (m != STRATA_BI_ATTN && !has_mlp))
                    cli_die("make the dump with strata-probe-hidden --sites resid,attn_out,mlp_out",
                            "%s: --metric %s needs the block outputs attn_out%s, but the dump keeps "
                            "no /%s", strata_dump_path(dump), name,
                            m == STRATA_BI_ATTN ? "" : " and mlp_out", has_attn ? "mlp_out" : "attn_out");
                cli_die("keep the block's input boundary and the block (strata-probe-hidden --layers)",
                        "%s: --metric %s scores no block: no block has its input boundary and "
                        "attn_out/mlp_out kept", strata_dump_path(dump), name);
            }
            cli_die("dump the boundaries l and l+n (strata-probe-hidden --layers), or lower --n",
                    "%s: --metric %s%s scores no block: the dump keeps no two boundaries %lld apart "
                    "(model with %lld blocks)", strata_dump_path(dump), name,
                    m == STRATA_BI_ANGULAR ? " (angular)" : "",
                    (long long)(m == STRATA_BI_ANGULAR ? o->n : 1), (long long)L);
        }
    }
    for (int m = 0; m < NM; m++) {
        if (!want[m]) continue;
        ms[m].vals = xcalloc_((size_t)(N * L), sizeof(double));
        for (int64_t i = 0; i < N * L; i++) ms[m].vals[i] = (double)NAN;
    }
    const int64_t R = o->n + 1 > 2 ? o->n + 1 : 2; /* ring of boundaries */
    float *ring = xcalloc_((size_t)(R * P * D), sizeof(float)); /* (R, P, D) */
    float *attn = xcalloc_((size_t)(P * D), sizeof(float));     /* (P, D) */
    float *mlp = xcalloc_((size_t)(P * D), sizeof(float));      /* (P, D) */
    /* A failure frees every buffer before the program exits with the message
     * (msg, hint): nothing is left allocated only through a lost pointer. */
    char msg[1024] = "";
    const char *hint = NULL;
    struct cli_progress prog;
    cli_progress_start(&prog, NULL, 0);
    /* Under mpirun each rank scores its contiguous share of the samples;
     * rank 0 gathers the rows (a sample's row is the same whoever computes
     * it, so the scores equal a single process's bit for bit). */
    int64_t s_lo = 0, s_hi = N;
    cli_share(N, &s_lo, &s_hi);
    for (int64_t s = s_lo; s < s_hi; s++) {
        for (int64_t b = 0; b <= L; b++) {
            if (bidx[b] < 0) continue;
            float *cur = ring + (b % R) * P * D;
            if (strata_dump_read_layer(dump, s, bidx[b], cur)) {
                snprintf(msg, sizeof msg, "%s", strata_last_error());
                goto fail;
            }
            /* (metric, block) pairs that boundary b completes */
            struct job jobs[NM];
            int nj = 0;
            if (want[STRATA_BI_BI] && b >= 1 && can[STRATA_BI_BI * L + b - 1])
                jobs[nj++] = (struct job){STRATA_BI_BI, b - 1};
            if (want[STRATA_BI_ANGULAR] && b >= o->n && can[STRATA_BI_ANGULAR * L + b - o->n])
                jobs[nj++] = (struct job){STRATA_BI_ANGULAR, b - o->n};
            bool blk_read = false;
            for (int m = STRATA_BI_RELMAG; m < NM && b < L; m++)
                if (want[m] && can[m * L + b]) {
                    if (!blk_read) {
                        if ((need_attn && strata_dump_read_site(dump, STRATA_DUMP_ATTN_OUT, s, kidx[b], attn)) ||
                            (need_mlp && has_mlp &&
                             strata_dump_read_site(dump, STRATA_DUMP_MLP_OUT, s, kidx[b], mlp))) {
                            snprintf(msg, sizeof msg, "%s", strata_last_error());
                            goto fail;
                        }
                        blk_read = true;
                    }
                    jobs[nj++] = (struct job){m, b};
                }
            for (int j = 0; j < nj; j++) {
                const int m = jobs[j].m;
                const int64_t l = jobs[j].l;
                const float *x = ring + (l % R) * P * D, *y = m <= STRATA_BI_ANGULAR ? cur : NULL;
                double sum = 0;
                for (int64_t t = t0; t < P; t++) {
                    double v;
                    if (strata_bi_token(&v, (enum strata_bi_metric)m, x + t * D, y ? y + t * D : NULL,
                                        attn + t * D, mlp + t * D, D) != 0) {
                        hint = "the dump holds NaN, Inf or zero hidden states; rerun the probe";
                        snprintf(msg, sizeof msg, "%s: %s undefined at sample %lld, block %lld, "
                                 "position %lld (a zero or non-finite hidden state)",
                                 strata_dump_path(dump), strata_bi_metric_name((enum strata_bi_metric)m),
                                 (long long)s, (long long)l, (long long)strata_dump_positions(dump)[t]);
                        goto fail;
                    }
                    sum += v;
                }
                ms[m].vals[s * L + l] = sum / (double)n_tok;
            }
        }
        cli_progress(&prog, s + 1 - s_lo, s_hi - s_lo, (s + 1 - s_lo) * n_tok, s + 1 == s_hi);
    }
    if (!msg[0] && cli_nranks() > 1) {
        const int nr = cli_nranks();
        double *all = cli_rank() == 0 ? xcalloc_((size_t)(nr * N * L), sizeof(double)) : NULL;
        for (int m = 0; m < NM; m++) {
            if (!want[m]) continue;
            cli_gather(all, ms[m].vals, (size_t)(N * L) * sizeof(double));
            for (int r = 1; all && r < nr; r++) { /* rank r's rows into rank 0's table */
                int64_t lo, hi;
                cli_share_of(N, r, &lo, &hi);
                memcpy(ms[m].vals + lo * L, all + ((int64_t)r * N + lo) * L,
                       (size_t)((hi - lo) * L) * sizeof(double));
            }
        }
        free(all);
    }
fail:
    free(ring);
    free(attn);
    free(mlp);
    free(can);
    free(bidx);
    free(kidx);
    if (msg[0]) cli_die(hint, "%s", msg);
}

/* From statistics files (strata-probe-stats): each sample's mean per block
 * was computed by the probe exactly as accumulate() computes it from a dump
 * (same per-token arithmetic, positions in order, summed in double). */
static void accumulate_stats(struct mstat *ms, const struct opts *o, const struct strata_stats *st,
                             const char *path, bool *want)
{
    const int64_t N = st->n_complete, L = st->n_layer, K = st->n_bi;
    if (K < 1)
        cli_die("run strata-probe-stats with --stats including blockinf",
                "%s: the statistics file keeps no Block Influence (/blockinf)", path);
    for (int m = 0; m < NM; m++) {
        if (!want[m]) continue;
        int64_t k = -1;
        for (int64_t i = 0; i < K && k < 0; i++)
            if (st->bi_metric[i] == m && (m != STRATA_BI_ANGULAR || st->bi_span[i] == o->n)) k = i;
        const char *name = strata_bi_metric_name((enum strata_bi_metric)m);
        if (k < 0)
            cli_die("rerun strata-probe-stats with --angular-n including that span",
                    "%s: the statistics file has no %s for n = %lld", path, name, (long long)o->n);
        const double *src = o->last_only ? st->bi_last : st->bi_mean;
        ms[m].vals = xcalloc_((size_t)(N * L), sizeof(double));
        int64_t scored = 0;
        for (int64_t s = 0; s < N; s++)
            for (int64_t l = 0; l < L; l++) {
                ms[m].vals[s * L + l] = src[(s * K + k) * L + l];
                scored += s == 0 && !isnan(ms[m].vals[l]);
            }
        if (!scored)
            cli_die("keep the boundaries l and l+n (strata-probe-stats --layers), or lower --n",
                    "%s: --metric %s scores no block: the statistics keep no boundary pair it needs",
                    path, name);
    }
}

/* The plan's blocks for score (L): the K lowest, or for angular (scores
 * d(l, l+K)) the run l*..l*+K-1 of the lowest start. out (K); false if
 * there are not enough scored blocks. */
static bool plan_set(int64_t *out, const double *score, int64_t L, int64_t K, bool angular,
                     int64_t *scratch)
{
    int64_t n = strata_bi_order(scratch, NULL, score, L);
    if (angular) {
        if (n < 1) return false;
        for (int64_t k = 0; k < K; k++) out[k] = scratch[0] + k;
        return true;
    }
    if (n < K) return false;
    for (int64_t k = 0; k < K; k++) out[k] = scratch[k];
    return true;
}

static bool same_set(const int64_t *a, const int64_t *b, int64_t K)
{
    for (int64_t i = 0; i < K; i++) {
        bool hit = false;
        for (int64_t j = 0; j < K && !hit; j++) hit = a[i] == b[j];
        if (!hit) return false;
    }
    return true;
}

/* Point estimates, ranks and (with B > 0) the bootstrap of one metric.
 * plan_k > 0: *set_stab = fraction of replicates with the point's plan. */
static void summarize(struct mstat *st, int64_t N, int64_t L, const struct opts *o, int64_t plan_k,
                      bool angular, double *set_stab)
{
    const int64_t B = o->n_boot;
    st->point = xcalloc_((size_t)L, sizeof(double));
    st->rank = xcalloc_((size_t)L, sizeof(int64_t));
    st->order = xcalloc_((size_t)L, sizeof(int64_t));
    for (int64_t l = 0; l < L; l++) {
        double sum = 0;
        for (int64_t s = 0; s < N; s++) sum += st->vals[s * L + l];
        st->point[l] = sum / (double)N; /* NaN stays NaN: not scored */
    }
    st->n_rank = strata_bi_order(st->order, st->rank, st->point, L);
    st->tau = (double)NAN;
    if (B < 1) return;
    st->reps = xcalloc_((size_t)(B * L), sizeof(double));
    cli_check(strata_bi_bootstrap(st->reps, st->vals, N, L, B, o->seed), NULL);
    st->lo = xcalloc_((size_t)L, sizeof(double));
    st->hi = xcalloc_((size_t)L, sizeof(double));
    st->stab = xcalloc_((size_t)L, sizeof(double));
    double *col = xcalloc_((size_t)B, sizeof(double));
    int64_t *ord = xcalloc_((size_t)L, sizeof(int64_t)), *rk = xcalloc_((size_t)L, sizeof(int64_t));
    int64_t *pset = xcalloc_((size_t)(plan_k + 1), sizeof(int64_t));
    int64_t *rset = xcalloc_((size_t)(plan_k + 1), sizeof(int64_t));
    bool have_plan = plan_k > 0 && plan_set(pset, st->point, L, plan_k, angular, ord);
    double tau_sum = 0;
    int64_t same_plan = 0;
    for (int64_t b = 0; b < B; b++) {
        const double *r = st->reps + b * L;
        strata_bi_order(ord, rk, r, L);
        for (int64_t l = 0; l < L; l++) st->stab[l] += rk[l] && rk[l] == st->rank[l];
        double t = strata_bi_kendall(st->rank, rk, L);
        tau_sum += isfinite(t) ? t : 1.0; /* one ranked block: the ranking cannot change */
        if (have_plan && plan_set(rset, r, L, plan_k, angular, ord)) same_plan += same_set(pset, rset, plan_k);
    }
    st->tau = tau_sum / (double)B;
    if (set_stab) *set_stab = (double)same_plan / (double)B;
    for (int64_t l = 0; l < L; l++) {
        if (!st->rank[l]) {
            st->lo[l] = st->hi[l] = st->stab[l] = (double)NAN;
            continue;
        }
        for (int64_t b = 0; b < B; b++) col[b] = st->reps[b * L + l];
        st->lo[l] = strata_bi_quantile(col, B, (1.0 - o->ci) / 2);
        st->hi[l] = strata_bi_quantile(col, B, (1.0 + o->ci) / 2);
        st->stab[l] /= (double)B;
    }
    free(col);
    free(ord);
    free(rk);
    free(pset);
    free(rset);
}

static void mstat_free(struct mstat *st)
{
    free(st->vals);
    free(st->point);
    free(st->rank);
    free(st->order);
    free(st->reps);
    free(st->lo);
    free(st->hi);
    free(st->stab);
}

/* The scores in long form (docs/BLOCKINF.md "Outputs"): one row per metric
 * and scored block, metrics in the order asked, blocks increasing; empty
 * cells for what is not there (no bootstrap: no interval, no stability). */
static void write_scores(const char *path, const char *meta, struct mstat *ms,
                         const struct opts *o, int64_t L, int64_t n_tok)
{
    struct cli_out out;
    FILE *f = cli_out_open(&out, path);
    cli_csv_head(f, meta, "block,metric,span,value,ci_lo,ci_hi,stability,rank,n_tokens");
    for (int i = 0; i < o->n_metrics; i++) {
        const enum strata_bi_metric m = o->metrics[i];
        const struct mstat *st = &ms[m];
        for (int64_t l = 0; l < L; l++) {
            if (!st->rank[l]) continue;
            fprintf(f, "%lld,%s,%lld", (long long)l, strata_bi_metric_name(m),
                    (long long)(m == STRATA_BI_ANGULAR ? o->n : 1));
            cli_csv_num(f, st->point[l], 9);
            cli_csv_num(f, o->n_boot > 0 ? st->lo[l] : (double)NAN, 9);
            cli_csv_num(f, o->n_boot > 0 ? st->hi[l] : (double)NAN, 9);
            cli_csv_num(f, o->n_boot > 0 ? st->stab[l] : (double)NAN, 9);
            fprintf(f, ",%lld,%lld\n", (long long)st->rank[l], (long long)n_tok);
        }
    }
    cli_out_commit(&out);
}

static cJSON *num_or_null(double v)
{
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

static cJSON *int_array(const int64_t *v, int64_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (int64_t i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)v[i]));
    return a;
}

static cJSON *num_array(const double *v, int64_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (int64_t i = 0; i < n; i++) cJSON_AddItemToArray(a, num_or_null(v[i]));
    return a;
}

/* Where the calibration came from, for held-out evaluation
 * (scripts/blockinf_eval.py takes draws below draw_min of the same shuffle). */
/* The calibration input: a dump (shards) or statistics files. */
struct input {
    struct strata_dump *dump;   /* or NULL */
    struct strata_h5 *h5;       /* the first statistics file, or NULL */
    struct strata_stats st;     /* the statistics (h5 != NULL) */
};

static int input_attr(const struct input *in, const char *name, char **v)
{
    return in->dump ? strata_dump_get_attr_str(in->dump, name, v)
                    : strata_h5_get_attr_str(in->h5, "/", name, v);
}

static int input_draws(const struct input *in, int64_t N, int64_t *draw)
{
    if (in->dump) return strata_dump_read_origin(in->dump, 0, N, NULL, NULL, draw);
    memcpy(draw, in->st.draw, (size_t)N * sizeof *draw);
    return 0;
}

static cJSON *calibration(const struct input *in, const struct opts *o, int64_t N,
                          int64_t n_tok)
{
    cJSON *c = cJSON_CreateObject();
    cJSON *d = cJSON_AddArrayToObject(c, "dumps");
    for (int i = 0; i < o->n_paths; i++) cJSON_AddItemToArray(d, cJSON_CreateString(o->paths[i]));
    static const char *const keys[] = {"model_path", "tokenizer_path", "corpus_path",
                                       "corpus_format", "separator", "jsonl_field", "seed",
                                       "seq_len",
                                       "interventions"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char *v = NULL;
        if (input_attr(in, keys[i], &v) == 0) {
            cJSON *item = cJSON_Parse(v); /* numbers and JSON objects as such */
            if (!item || !strcmp(keys[i], "seed") || cJSON_IsString(item) ||
                (!cJSON_IsNumber(item) && !cJSON_IsObject(item))) {
                cJSON_Delete(item);
                item = cJSON_CreateString(v);
            }
            cJSON_AddItemToObject(c, keys[i], item);
        }
        free(v);
    }
    int64_t *draw = xcalloc_((size_t)N, sizeof *draw), lo = INT64_MAX, hi = -1;
    if (input_draws(in, N, draw) == 0)
        for (int64_t s = 0; s < N; s++) {
            lo = draw[s] < lo ? draw[s] : lo;
            hi = draw[s] > hi ? draw[s] : hi;
        }
    free(draw);
    cJSON_AddNumberToObject(c, "n_samples", (double)N);
    cJSON_AddNumberToObject(c, "n_tokens", (double)(N * n_tok));
    if (hi >= 0) {
        cJSON_AddNumberToObject(c, "draw_min", (double)lo);
        cJSON_AddNumberToObject(c, "draw_max", (double)hi);
    }
    return c;
}

static void write_plan(const struct opts *o, const struct input *in, const char *meta,
                       struct mstat *st, int64_t L, int64_t N, int64_t n_tok, const int64_t *rm,
                       double set_stab)
{
    const int64_t K = o->remove;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "format", "strata-blockinf-plan/1");
    cJSON_AddStringToObject(root, "metric", strata_bi_metric_name(o->metrics[0]));
    cJSON_AddNumberToObject(root, "n", (double)o->n);
    cJSON_AddStringToObject(root, "tokens", o->last_only ? "last" : "all");
    cJSON_AddNumberToObject(root, "n_layer", (double)L);
    cJSON_AddItemToObject(root, "remove", int_array(rm, K));
    int64_t *keep = xcalloc_((size_t)L, sizeof *keep), nk = 0;
    for (int64_t l = 0; l < L; l++) {
        bool r = false;
        for (int64_t k = 0; k < K; k++) r |= rm[k] == l;
        if (!r) keep[nk++] = l;
    }
    cJSON_AddItemToObject(root, "keep", int_array(keep, nk));
    free(keep);
    /* order: the removal order for every K' (nested plans); angular's blocks
     * differ per K', so there it is the start ranking of this K */
    cJSON_AddItemToObject(root, "order", int_array(st->order, st->n_rank));
    cJSON_AddItemToObject(root, "score", num_array(st->point, L));
    if (o->n_boot > 0) {
        cJSON *b = cJSON_AddObjectToObject(root, "bootstrap");
        cJSON_AddNumberToObject(b, "replicates", (double)o->n_boot);
        cJSON_AddNumberToObject(b, "seed", (double)o->seed);
        cJSON_AddNumberToObject(b, "ci", o->ci);
        cJSON_AddItemToObject(b, "lo", num_array(st->lo, L));
        cJSON_AddItemToObject(b, "hi", num_array(st->hi, L));
        cJSON_AddItemToObject(b, "rank_stability", num_array(st->stab, L));
        cJSON_AddItemToObject(b, "kendall_tau_mean", num_or_null(st->tau));
        cJSON_AddNumberToObject(b, "remove_stability", set_stab);
    } else {
        cJSON_AddNullToObject(root, "bootstrap");
    }
    cJSON_AddItemToObject(root, "calibration", calibration(in, o, N, n_tok));
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) cli_die(NULL, "out of memory");
    struct cli_out out;
    FILE *f = cli_out_open(&out, o->out);
    fprintf(f, "%s\n", text);
    cli_out_commit(&out);
    free(text);
    if (!o->csv) return;
    f = cli_out_open(&out, o->csv);
    cli_csv_head(f, meta, "rank,block,metric,span,value,remove");
    for (int64_t r = 0; r < st->n_rank; r++) {
        const int64_t l = st->order[r];
        bool rem = false;
        for (int64_t k = 0; k < K; k++) rem |= rm[k] == l;
        fprintf(f, "%lld,%lld,%s,%lld", (long long)r + 1, (long long)l,
                strata_bi_metric_name(o->metrics[0]), (long long)o->n);
        cli_csv_num(f, st->point[l], 9);
        fprintf(f, ",%d\n", rem);
    }
    cli_out_commit(&out);
}

/* The CSVs' first line: where the scores come from (docs/FORMAT.md "CSV
 * files"); the same whatever the ranks or the split into files. Caller
 * free()s. */
static char *csv_meta(const struct input *in, const struct opts *o, int64_t N, int64_t n_pos)
{
    char *model = NULL, *corpus = NULL, *seq_len = NULL;
    input_attr(in, "model_path", &model);
    input_attr(in, "corpus_path", &corpus);
    input_attr(in, "seq_len", &seq_len);
    char n_s[32], p_s[32], b_s[32], ci_s[32], seed_s[32], k_s[32];
    snprintf(n_s, sizeof n_s, "%lld", (long long)N);
    snprintf(p_s, sizeof p_s, "%lld", (long long)n_pos);
    snprintf(b_s, sizeof b_s, "%lld", (long long)o->n_boot);
    snprintf(ci_s, sizeof ci_s, "%g", o->ci);
    snprintf(seed_s, sizeof seed_s, "%llu", (unsigned long long)o->seed);
    snprintf(k_s, sizeof k_s, "%lld", (long long)o->remove);
    const bool boot = o->n_boot > 0;
    char *meta = cli_csv_meta("program", "strata-blockinf", "command", o->plan ? "plan" : "score",
                              "model", model, "corpus", corpus, "n_samples", n_s, "seq_len", seq_len,
                              "positions", p_s, "tokens", o->last_only ? "last" : "all",
                              "bootstrap", b_s, "ci", boot ? ci_s : NULL,
                              "seed", boot ? seed_s : NULL, "remove", o->plan ? k_s : NULL,
                              (const char *)NULL);
    free(model);
    free(corpus);
    free(seq_len);
    return meta;
}

int main(int argc, char **argv)
{
    struct opts o;
    struct cli_args args;
    parse_args(&o, &args, argc, argv);
    struct input in = {0};
    struct strata_dump_info info = {0};
    int64_t N, L;
    bool complete;
    const bool stats = cli_inputs_are_stats(o.paths, o.n_paths);
    if (stats) {
        cli_check(strata_stats_read_many(&in.st, &in.h5, o.paths, o.n_paths, &complete),
                  "give statistics files of disjoint samples of one strata-probe-stats setting");
        info.n_complete = in.st.n_complete, info.n_samples = in.st.n_samples;
        info.n_pos = in.st.n_pos;
        info.sites = STRATA_DUMP_RESID | STRATA_DUMP_ATTN_OUT | STRATA_DUMP_MLP_OUT;
        N = in.st.n_complete, L = in.st.n_layer;
    } else {
        cli_check(strata_dump_open_many(&in.dump, o.paths, o.n_paths),
                  "give dumps written by strata-probe-hidden (shards of one run), or statistics "
                  "files of strata-probe-stats");
        cli_check(strata_dump_info(in.dump, &info), NULL);
        complete = info.complete;
        N = info.n_complete, L = model_n_layer(in.dump, &info);
    }
    if (!complete && !o.allow_partial)
        cli_die("finish or resume the probe run, or pass --allow-partial",
                "%s: the %s is incomplete (%lld samples done)", o.paths[0],
                stats ? "statistics file" : "dump", (long long)N);
    if (N < 1 || L < 1 || info.n_pos < 1)
        cli_die("dump at least one sample of a model with blocks",
                "%s: needs at least one sample and one block (has %lld samples, %lld blocks)",
                o.paths[0], (long long)N, (long long)L);
    const int64_t n_tok = N * (o.last_only ? 1 : info.n_pos);

    /* "all": drop what the dump cannot give (block outputs, or X_{l+n}) */
    bool want[NM] = {false};
    if (o.metric_all) {
        const bool blk = (info.sites & STRATA_DUMP_ATTN_OUT) && (info.sites & STRATA_DUMP_MLP_OUT);
        int n = 0;
        for (int i = 0; i < o.n_metrics; i++)
            if (o.metrics[i] <= STRATA_BI_ANGULAR || blk) o.metrics[n++] = o.metrics[i];
        if (n < o.n_metrics)
            cli_note("the dump keeps no attn_out/mlp_out; scoring bi and angular only (--sites "
                     "resid,attn_out,mlp_out gives all five)");
        o.n_metrics = n;
    }
    for (int i = 0; i < o.n_metrics; i++) want[o.metrics[i]] = true;
    if (want[STRATA_BI_ANGULAR] && o.n >= L + 1)
        cli_usage_die(NULL, "--n %lld: the model has %lld blocks, so X_l and X_{l+n} exist for n <= %lld",
                (long long)o.n, (long long)L, (long long)L);
    if (o.plan && o.remove >= L)
        cli_usage_die("remove fewer blocks than the model has",
                "--remove %lld: the model has %lld blocks (0 .. %lld); K must be below %lld",
                (long long)o.remove, (long long)L, (long long)L - 1, (long long)L);

    struct mstat ms[NM];
    memset(ms, 0, sizeof ms);
    if (stats) accumulate_stats(ms, &o, &in.st, o.paths[0], want);
    else accumulate(ms, &o, in.dump, &info, L, want);
    if (cli_rank() != 0) { /* rank 0 has every sample's rows and writes */
        for (int m = 0; m < NM; m++) free(ms[m].vals);
        strata_dump_free(in.dump);
        strata_stats_free(&in.st);
        strata_h5_free(in.h5);
        cli_args_free(&args);
        return 0;
    }
    const bool angular = o.metrics[0] == STRATA_BI_ANGULAR;
    double set_stab = (double)NAN;
    for (int i = 0; i < o.n_metrics; i++)
        summarize(&ms[o.metrics[i]], N, L, &o, i == 0 && o.plan ? o.remove : 0, angular,
                  i == 0 ? &set_stab : NULL);

    const struct mstat *first = &ms[o.metrics[0]];
    char *meta = csv_meta(&in, &o, N, info.n_pos);
    if (o.plan) {
        int64_t *rm = xcalloc_((size_t)o.remove, sizeof *rm), *scratch = xcalloc_((size_t)L, sizeof *scratch);
        if (!plan_set(rm, first->point, L, o.remove, angular, scratch) ||
            (!angular && o.remove >= first->n_rank))
            cli_die("dump every boundary (the default of strata-probe-hidden), or remove fewer",
                    "--remove %lld: only %lld blocks have a %s score", (long long)o.remove,
                    (long long)first->n_rank, strata_bi_metric_name(o.metrics[0]));
        write_plan(&o, &in, meta, &ms[o.metrics[0]], L, N, n_tok / N, rm, set_stab);
        if (!cli_quiet) {
            fprintf(stderr, "%s: remove", cli_prog);
            for (int64_t k = 0; k < o.remove; k++) fprintf(stderr, " %lld", (long long)rm[k]);
            fprintf(stderr, " (%s%s)", strata_bi_metric_name(o.metrics[0]), angular ? ", one run" : ", lowest first");
            if (o.n_boot > 0)
                fprintf(stderr, "; the same plan in %.1f%% of %lld bootstrap replicates, mean Kendall tau %.3f",
                        100 * set_stab, (long long)o.n_boot, first->tau);
            fprintf(stderr, "\n");
        }
        free(rm);
        free(scratch);
    } else {
        write_scores(o.out, meta, ms, &o, L, n_tok);
        for (int i = 0; i < o.n_metrics && !cli_quiet; i++) {
            const struct mstat *st = &ms[o.metrics[i]];
            fprintf(stderr, "%s: %s", cli_prog, strata_bi_metric_name(o.metrics[i]));
            if (o.metrics[i] == STRATA_BI_ANGULAR) fprintf(stderr, " (n = %lld)", (long long)o.n);
            fprintf(stderr, " lowest first:");
            for (int64_t r = 0; r < st->n_rank; r++) fprintf(stderr, " %lld", (long long)st->order[r]);
            if (o.n_boot > 0) fprintf(stderr, "; mean Kendall tau of %lld replicates %.3f", (long long)o.n_boot, st->tau);
            fprintf(stderr, "\n");
        }
        cli_info("%lld samples x %lld tokens", (long long)N, (long long)(n_tok / N));
    }
    free(meta);
    for (int m = 0; m < NM; m++) mstat_free(&ms[m]);
    strata_dump_free(in.dump);
    strata_h5_free(in.h5);
    strata_stats_free(&in.st);
    cli_args_free(&args);
    return 0;
}
