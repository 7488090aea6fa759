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
#include "cli/cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { OPT_BUCKET = CLI_KEY_PROG, OPT_CSV };

static const struct cli_opt opts[] = {
    {"bucket", CLI_ARG, OPT_BUCKET, "B", "positions per CSV bucket (default 64)"},
    {"csv", CLI_ARG, OPT_CSV, "OUT.csv", "CSV output (default: OUT.h5 with .csv for .h5)"},
    {0}};

static const struct cli_spec spec = {
    .prog = "strata-probe-ppl",
    .synopsis = "--model M [--tokenizer TOK] --corpus FILE -o OUT.h5 [options]",
    .about = "Next-token negative log-likelihood (natural log) per position: /nll (N, T-1)\n"
             "float64, nll[s,t] = -log p(token t+1 | tokens 0..t) of sample s, and /tokens\n"
             "(N, T) int32; a CSV with mean NLL and perplexity by position, by bucket of\n"
             "positions and over the whole sequence (docs/FORMAT.md). --seq-len beyond\n"
             "the trained window: direct extrapolation.\n",
    .groups = CLI_G_MODEL | CLI_G_INTERV | CLI_G_SAMPLING | CLI_G_OUTPUT,
    .opts = opts,
    .output_help = "output; written as OUT.h5.partial and renamed when complete",
    .epilog = "Sampling is strata-probe-hidden's: the same corpus, --seed and --seq-len give\n"
              "the same /tokens. Ctrl-C stops after the current sample and leaves\n"
              "OUT.h5.partial with the completed samples (n_complete) and no CSV.\n",
};

struct ppl_opts {
    int64_t bucket;
    const char *csv_path;
};

static int ppl_option(void *user, int key, const char *arg, struct cli_error *e)
{
    struct ppl_opts *o = user;
    switch (key) {
    case OPT_BUCKET:
        return cli_parse_int(&o->bucket, "--bucket", arg, 1, 1 << 24, e);
    case OPT_CSV:
        o->csv_path = arg;
        return 0;
    }
    return cli_fail(e, NULL, "option key %d has no handler", key);
}

/* OUT.h5 -> OUT.csv; anything else gets ".csv" appended. Caller free()s. */
static char *csv_beside(const char *out)
{
    size_t n = strlen(out);
    char *s = cli_alloc(n + 5, "a file name");
    memcpy(s, out, n + 1);
    if (n > 3 && !strcmp(out + n - 3, ".h5")) s[n - 3] = '\0';
    strcat(s, ".csv");
    return s;
}

/* The CSV of docs/FORMAT.md from sum (T-1): the sum over N samples of
 * nll[s,t]. Means in double; perplexity = exp(mean NLL). */
static void write_csv(const char *path, const char *meta, const double *sum, int64_t N, int64_t T,
                      int64_t B)
{
    struct cli_out o;
    FILE *f = cli_out_open(&o, path);
    const int64_t n = T - 1;
    cli_csv_head(f, meta, "kind,start,end,n_samples,n_values,mean_nll,ppl");
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
    struct cli_args a;
    cli_args_init(&a);
    struct ppl_opts o = {.bucket = 64};
    cli_parse(&a, &spec, argc, argv, ppl_option, &o);
    cli_require(&a, CLI_REQ_MODEL | CLI_REQ_CORPUS | CLI_REQ_OUTPUT);
    const char *out_path = a.out_path;
    char *csv_owned = o.csv_path ? NULL : csv_beside(out_path);
    const char *csv_path = o.csv_path ? o.csv_path : csv_owned;

    cli_model_load(&a, true);
    const int64_t T = cli_sampling_seq_len(&a), N = a.sampling.n_samples;
    struct strata_corpus *corpus = cli_sampling_open(&a);
    if (T < 2) cli_usage_die("give --seq-len 2 or more", "next-token NLL needs at least 2 tokens");
    struct strata_samples samples = {0};
    cli_sampling_build(&a, corpus, &samples);

    struct strata_ctx_params cp = cli_ctx_params(&a, T);
    struct strata_ctx *ctx = cli_ctx_create(&a, &cp);
    /* Under mpirun -n R the samples are dealt out in rounds (sample k R + r
     * to rank r); each round's rows are gathered to rank 0, which alone
     * writes, in sample order: the file and the sums are the single
     * process'. One rank: R = 1, the plain loop. */
    const int R = cli_nranks();
    const bool writer = cli_rank() == 0;
    /* one row: NLL (T-1) then tokens (T), as bytes */
    const size_t row_bytes = (size_t)(T - 1) * sizeof(double) + (size_t)T * sizeof(int32_t);
    char *row = cli_alloc(row_bytes, "one sample's NLL");
    char *rows = writer ? cli_calloc((size_t)R, row_bytes, "a round's NLL rows") : NULL;
    double *nll = (double *)(void *)row; /* (T-1) */
    double *sum = cli_calloc((size_t)(T - 1), sizeof *sum, "the NLL sums"); /* (T-1) */

    /* From before the .partial exists: a signal during setup still leaves
     * a valid (empty) .partial rather than killing the writer. */
    cli_catch_stop();
    struct strata_h5 *h5 = NULL;
    char *partial = cli_partial_path(out_path);
    int rc = 0;
    if (writer) {
        cli_check(strata_h5_create(&h5, out_path), "check that the directory exists and is writable");
        /* netCDF-4 dimensions (docs/FORMAT.md): sample (the draws), target
         * (the predicted token's position, 1 .. T-1), token (0 .. T-1) */
        const int64_t shape_nll[2] = {N, T - 1}, shape_tok[2] = {N, T};
        static const char *const d_nll[2] = {"sample", "target"}, *const d_tok[2] = {"sample", "token"};
        const struct strata_h5_dset_opts o_nll = {.dims = d_nll}, o_tok = {.dims = d_tok};
        int32_t *target = cli_alloc((size_t)(T - 1) * sizeof *target, "the positions"); /* (T-1) */
        for (int64_t t = 0; t < T - 1; t++) target[t] = (int32_t)(t + 1);
        rc = strata_h5_write_coord(h5, "sample", STRATA_DT_I64, N, samples.draw,
                                   "draw of the sample in the seeded shuffle", NULL);
        if (!rc) rc = strata_h5_write_coord(h5, "target", STRATA_DT_I32, T - 1, target,
                                            "position of the predicted token", NULL);
        free(target);
        if (!rc) rc = strata_h5_def_dim(h5, "token", T, false);
        if (!rc) rc = strata_h5_create_dataset_opts(h5, "nll", STRATA_DT_F64, 2, shape_nll, &o_nll);
        if (!rc) rc = strata_h5_create_dataset_opts(h5, "tokens", STRATA_DT_I32, 2, shape_tok, &o_tok);
        if (!rc) rc = strata_h5_set_attr_str(h5, "nll", "long_name", "next-token negative log-likelihood");
        if (!rc) rc = strata_h5_set_attr_str(h5, "nll", "units", "nats");

        struct cli_prov prov;
        cli_prov_init(&prov, &a, &samples);
        if (!rc) rc = strata_h5_set_attr_str(h5, "/", "format", "strata-ppl/1");
        for (int i = 0; i < prov.n && !rc; i++)
            rc = strata_h5_set_attr_str(h5, "/", prov.name[i], prov.value[i]);
        if (!rc) rc = strata_h5_set_attr_i64(h5, "/", "trained_window", a.model.cfg.seq_len);
        if (!rc) rc = strata_h5_set_attr_i64(h5, "/", "n_complete", 0);
        if (!rc) rc = strata_h5_set_attr_i64(h5, "/", "complete", 0);
        if (!rc)
            rc = strata_h5_set_attr_str(h5, "nll", "description",
                                        "nll[s,t] = -log p(tokens[s,t+1] | tokens[s,0..t]), natural "
                                        "log, from float32 logits reduced in double");
        cli_prov_free(&prov);
        if (rc) {
            strata_h5_free(h5);
            remove(partial);
            cli_check(rc, NULL);
        }
    }

    struct cli_loop loop;
    cli_rounds_begin(&loop, CLI_SPLIT_CYCLIC, N, T, 0);
    int64_t mine, s = 0; /* s: samples 0 .. s-1 written */
    while (!rc && cli_rounds_next(&loop, &mine)) {
        bool completed = true;
        if (mine >= 0) {
            const int32_t *toks = samples.tokens + mine * T; /* (T) */
            rc = strata_forward_nll(ctx, nll, toks, T);
            if (rc == STRATA_E_INTERRUPTED) { /* stopped mid-sample: the round is dropped */
                completed = false;
                rc = 0;
            } else if (rc && writer) {
                strata_h5_free(h5);
                remove(partial);
            }
            cli_check(rc, NULL);
            memcpy(row + (size_t)(T - 1) * sizeof(double), toks, (size_t)T * sizeof(int32_t));
        }
        const bool keep = cli_rounds_agree(&loop, completed);
        cli_gather(rows, row, row_bytes);
        for (int r = 0; keep && writer && r < R && !rc && s < N; r++, s++) {
            const double *rn = (const double *)(void *)(rows + (size_t)r * row_bytes); /* (T-1) */
            const int32_t *rt = (const int32_t *)(const void *)(rn + (T - 1));       /* (T) */
            for (int64_t t = 0; t < T - 1; t++) {
                if (!isfinite(rn[t])) {
                    strata_h5_free(h5);
                    remove(partial);
                    cli_die("the checkpoint's weights (or an intervention) give non-finite logits",
                            "%s: non-finite NLL at sample %lld, position %lld", a.model.model_path,
                            (long long)s, (long long)t);
                }
                sum[t] += rn[t];
            }
            rc = strata_h5_write_rows(h5, "nll", s, 1, rn);
            if (!rc) rc = strata_h5_write_rows(h5, "tokens", s, 1, rt);
            if (!rc) rc = strata_h5_set_attr_i64(h5, "/", "n_complete", s + 1);
        }
        if (rc) { /* rank 0's write failed: stop every rank */
            strata_h5_free(h5);
            remove(partial);
            cli_check(rc, NULL);
        }
    }
    s = loop.done;
    int status = 0;
    if (!writer) { /* rank 0 wrote; the others only say how they ended */
        status = s < N ? CLI_EXIT_INTERRUPTED : 0;
    } else if (s < N) {
        cli_rounds_end(&loop);
        fprintf(stderr, "%s: interrupted after %lld of %lld samples; the completed samples are in %s\n",
                cli_prog, (long long)s, (long long)N, partial);
        strata_h5_free(h5);
        status = CLI_EXIT_INTERRUPTED;
    } else {
        rc = strata_h5_set_attr_i64(h5, "/", "complete", 1);
        if (!rc) rc = strata_h5_finish(h5);
        if (rc) {
            strata_h5_free(h5);
            remove(partial);
            cli_check(rc, NULL);
        }
        strata_h5_free(h5);
        h5 = NULL;
        char n_s[32], t_s[32], c_s[32];
        snprintf(n_s, sizeof n_s, "%lld", (long long)N);
        snprintf(t_s, sizeof t_s, "%lld", (long long)T);
        snprintf(c_s, sizeof c_s, "%d", (int)a.model.cfg.seq_len);
        char *meta = cli_csv_meta("program", "strata-probe-ppl", "model", a.model.model_path, "corpus",
                                  a.sampling.corpus_path, "n_samples", n_s, "seq_len", t_s,
                                  "trained_window", c_s, NULL);
        write_csv(csv_path, meta, sum, N, T, o.bucket);
        free(meta);
        cli_rounds_end(&loop);
        double all = 0.0;
        for (int64_t t = 0; t < T - 1; t++) all += sum[t];
        all /= (double)(N * (T - 1));
        cli_info("wrote %s and %s (%lld samples x %lld tokens; mean NLL %.4f, ppl %.4f)", out_path,
                 csv_path, (long long)N, (long long)T, all, exp(all));
    }
    free(partial);
    free(row);
    free(rows);
    free(sum);
    free(csv_owned);
    strata_ctx_free(ctx);
    strata_samples_free(&samples);
    strata_corpus_free(corpus);
    cli_args_free(&a);
    return status;
}
