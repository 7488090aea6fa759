/* strata-probe-ppl — per-position next-token negative log-likelihood of a
 * model over fixed-length samples of a corpus, with or without
 * interventions (removed blocks, RoPE scaling, attention temperature or
 * window, positional-vector edits), to HDF5 and CSV (docs/FORMAT.md).
 *
 * Why: P1's direct-extrapolation and context-extension experiments
 * (../shared/docs/PAPERS.md) read perplexity against position at lengths
 * C .. 4C, and ShortGPT (P3) the perplexity of a model without some layers.
 * The samples are exactly strata-probe-hidden's for the same corpus, seed and
 * length (both use strata_samples_build), so NLL and hidden states of one
 * run line up sample by sample.
 *
 * Legend: N samples, T tokens per sample, B positions per CSV bucket.
 */
#include "cli.h"
#include "cli_interv.h"

#include <math.h>
#include <signal.h>

static void usage(void)
{
    printf("usage: strata-probe-ppl --model M [--tokenizer TOK] --corpus FILE -o OUT.h5 [options]\n"
           "\n"
           "Next-token negative log-likelihood (natural log) per position: /nll (N, T-1)\n"
           "float64, nll[s,t] = -log p(token t+1 | tokens 0..t) of sample s, and /tokens\n"
           "(N, T) int32; a CSV with mean NLL and perplexity by position, by bucket of\n"
           "positions and over the whole sequence (docs/FORMAT.md).\n"
           "\n"
           CLI_MODEL_HELP CLI_SAMPLING_HELP
           "                   (--seq-len beyond the trained window: direct extrapolation)\n"
           "  --bucket B       positions per CSV bucket (default 64)\n"
           "  --csv OUT.csv    CSV output (default: OUT.h5 with .csv for .h5)\n"
           "  -o OUT.h5        output; written as OUT.h5.partial and renamed when complete\n"
           "  -h, --help       this help\n"
           "\n"
           CLI_INTERV_HELP
           "\n"
           "Sampling is strata-probe-hidden's: the same corpus, --seed and --seq-len give\n"
           "the same /tokens. Ctrl-C stops after the current sample and leaves\n"
           "OUT.h5.partial with the completed samples (n_complete) and no CSV.\n");
}


/* OUT.h5 -> OUT.csv; anything else gets ".csv" appended. Caller free()s. */
static char *csv_beside(const char *out)
{
    size_t n = strlen(out);
    char *s = malloc(n + 5);
    if (!s) cli_die(NULL, "out of memory");
    memcpy(s, out, n + 1);
    if (n > 3 && !strcmp(out + n - 3, ".h5")) s[n - 3] = '\0';
    strcat(s, ".csv");
    return s;
}

/* The CSV of docs/FORMAT.md from sum (T-1): the sum over N samples of
 * nll[s,t]. Means in double; perplexity = exp(mean NLL). */
static void write_csv(const char *path, const double *sum, int64_t N, int64_t T, int64_t B)
{
    struct cli_out o;
    FILE *f = cli_out_open(&o, path);
    const int64_t n = T - 1;
    fprintf(f, "kind,start,end,n_samples,n_values,mean_nll,ppl\n");
    for (int64_t t = 0; t < n; t++) {
        double m = sum[t] / (double)N;
        fprintf(f, "position,%lld,%lld,%lld,%lld,%.10g,%.10g\n", (long long)t, (long long)t + 1,
                (long long)N, (long long)N, m, exp(m));
    }
    double all = 0.0;
    for (int64_t b0 = 0; b0 < n; b0 += B) {
        const int64_t b1 = b0 + B < n ? b0 + B : n;
        double s = 0.0;
        for (int64_t t = b0; t < b1; t++) s += sum[t];
        all += s;
        double m = s / (double)(N * (b1 - b0));
        fprintf(f, "bucket,%lld,%lld,%lld,%lld,%.10g,%.10g\n", (long long)b0, (long long)b1,
                (long long)N, (long long)(N * (b1 - b0)), m, exp(m));
    }
    double m = all / (double)(N * n);
    fprintf(f, "all,0,%lld,%lld,%lld,%.10g,%.10g\n", (long long)n, (long long)N, (long long)(N * n),
            m, exp(m));
    cli_out_commit(&o);
}

int main(int argc, char **argv)
{
    cli_init("strata-probe-ppl");
    struct cli_model cm = {0};
    struct cli_interv ci;
    cli_interv_init(&ci);
    struct cli_sampling cs;
    cli_sampling_init(&cs);
    const char *out_path = NULL, *csv_path = NULL;
    int64_t bucket = 64;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        } else if (cli_model_option(&cm, argc, argv, &i) || cli_interv_option(&ci, argc, argv, &i) ||
                   cli_sampling_option(&cs, argc, argv, &i)) {
        } else if (!strcmp(a, "--bucket")) {
            bucket = cli_int(a, cli_value(argc, argv, &i), 1, 1 << 24);
        } else if (!strcmp(a, "--csv")) {
            csv_path = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            out_path = cli_value(argc, argv, &i);
        } else {
            cli_die("see strata-probe-ppl --help", "unknown option '%s'", a);
        }
    }
    if (!cm.model_path || !cs.corpus_path || !out_path)
        cli_die("see strata-probe-ppl --help", "--model, --corpus and -o are required");
    char *csv_owned = csv_path ? NULL : csv_beside(out_path);
    if (!csv_path) csv_path = csv_owned;

    cli_model_load(&cm, true);
    cli_interv_apply_model(&ci, &cm);
    struct strata_model *model = cm.model;
    const struct strata_config *cfg = strata_model_config(model);
    cli_sampling_seq_len(&cs, cfg);
    struct strata_corpus *corpus = cli_sampling_open(&cs);
    if (cs.seq_len < 2) cli_die("give --seq-len 2 or more", "next-token NLL needs at least 2 tokens");
    struct strata_samples samples = {0};
    cli_sampling_build(&cs, corpus, cm.tok, &samples);

    const int64_t N = cs.n_samples, T = cs.seq_len;
    const uint64_t seed = cs.seed;
    struct strata_ctx_params cp = strata_ctx_default_params();
    cp.n_ctx = T;
    cli_interv_ctx_params(&ci, &cm, &cp);
    struct strata_ctx *ctx = NULL;
    cli_check(strata_ctx_create(&ctx, model, &cp), NULL);
    cli_interv_attach(&ci, ctx, model, T);

    double *nll = malloc((size_t)(T - 1) * sizeof *nll);      /* (T-1) one sample */
    double *sum = calloc((size_t)(T - 1), sizeof *sum);       /* (T-1) over samples */
    if (!nll || !sum) cli_die("lower --seq-len", "out of memory");

    /* From before the .partial exists: a signal during setup still leaves
     * a valid (empty) .partial rather than killing the writer. */
    cli_catch_stop();
    struct strata_h5 *h5 = NULL;
    cli_check(strata_h5_create(&h5, out_path), "check that the directory exists and is writable");
    char partial[4096];
    snprintf(partial, sizeof partial, "%s.partial", out_path);
    const int64_t shape_nll[2] = {N, T - 1}, shape_tok[2] = {N, T};
    int rc = strata_h5_create_dataset(h5, "nll", STRATA_H5_F64, 2, shape_nll);
    if (!rc) rc = strata_h5_create_dataset(h5, "tokens", STRATA_H5_I32, 2, shape_tok);

    char *cmd = cli_command_line(argc, argv), *cfg_json = cli_model_config_json(&cm);
    char *iv_json = cli_interv_json(&ci, &cm);
    char seed_s[32], sampling[512];
    snprintf(seed_s, sizeof seed_s, "%llu", (unsigned long long)seed);
    cli_sampling_describe(&cs, &samples, sampling, sizeof sampling);
    const char *attrs[][2] = {{"format", "strata-ppl/1"},       {"strata_version", STRATA_VERSION},
                              {"command_line", cmd},            {"model_path", cm.model_path},
                              {"model_config", cfg_json},       {"tokenizer_path", cm.tok_used},
                              {"corpus_path", cs.corpus_path},  {"separator", cs.cpar.sep},
                              {"seed", seed_s},                 {"sampling", sampling},
                              {"interventions", iv_json}};
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0] && !rc; i++)
        rc = strata_h5_set_attr_str(h5, "/", attrs[i][0], attrs[i][1]);
    if (!rc) rc = strata_h5_set_attr_i64(h5, "/", "trained_window", cfg->seq_len);
    if (!rc) rc = strata_h5_set_attr_i64(h5, "/", "n_complete", 0);
    if (!rc) rc = strata_h5_set_attr_i64(h5, "/", "complete", 0);
    if (!rc)
        rc = strata_h5_set_attr_str(h5, "nll", "description",
                                    "nll[s,t] = -log p(tokens[s,t+1] | tokens[s,0..t]), natural "
                                    "log, from float32 logits reduced in double");
    free(cmd);
    free(cfg_json);
    free(iv_json);

    struct cli_progress prog;
    cli_progress_start(&prog);
    int64_t s = 0;
    for (; s < N && !rc && !cli_stop_requested; s++) {
        const int32_t *toks = samples.tokens + s * T; /* (T) */
        if ((rc = strata_forward_nll(ctx, nll, toks, T))) break;
        for (int64_t t = 0; t < T - 1; t++) {
            if (!isfinite(nll[t])) {
                strata_h5_free(h5);
                remove(partial);
                cli_die("the checkpoint's weights (or an intervention) give non-finite logits",
                        "%s: non-finite NLL at sample %lld, position %lld", cm.model_path,
                        (long long)s, (long long)t);
            }
            sum[t] += nll[t];
        }
        rc = strata_h5_write_rows(h5, "nll", s, 1, nll);
        if (!rc) rc = strata_h5_write_rows(h5, "tokens", s, 1, toks);
        if (!rc) rc = strata_h5_set_attr_i64(h5, "/", "n_complete", s + 1);
        cli_progress(&prog, s + 1, N, (s + 1) * T, 0);
        if (!rc) cli_test_pause_point(s + 1);
    }
    int status = 0;
    if (!rc && s == N) rc = strata_h5_set_attr_i64(h5, "/", "complete", 1);
    if (!rc && s < N) {
        cli_progress(&prog, s, N, s * T, 1);
        fprintf(stderr, "%s: interrupted after %lld of %lld samples; the completed samples are in %s\n",
                cli_prog, (long long)s, (long long)N, partial);
        strata_h5_free(h5);
        status = 130;
    } else if (!rc && !(rc = strata_h5_finish(h5))) {
        strata_h5_free(h5);
        h5 = NULL;
        write_csv(csv_path, sum, N, T, bucket);
        cli_progress(&prog, N, N, N * T, 1);
        double all = 0.0;
        for (int64_t t = 0; t < T - 1; t++) all += sum[t];
        all /= (double)(N * (T - 1));
        fprintf(stderr, "%s: wrote %s and %s (%lld samples x %lld tokens; mean NLL %.4f, ppl %.4f)\n",
                cli_prog, out_path, csv_path, (long long)N, (long long)T, all, exp(all));
    }
    if (rc) {
        strata_h5_free(h5);
        remove(partial);
        cli_check(rc, NULL);
    }
    free(nll);
    free(sum);
    free(csv_owned);
    strata_ctx_free(ctx);
    cli_interv_free(&ci);
    strata_samples_free(&samples);
    strata_corpus_free(corpus);
    cli_model_free(&cm);
    return status;
}
