/* sampling.c — part of the command-line layer (cli.h): --corpus,
 * --corpus-format, --sep, --jsonl-field, --samples, --seq-len, --seed,
 * --sample-offset: how every program that runs a model over a corpus draws
 * its samples (strata_samples_build_range), so the same options give the
 * same samples in every program. */
#include "cli_internal.h"

#include <stdlib.h>
#include <string.h>

int cli_sampling_option_(struct cli_args *a, int key, const char *arg, struct cli_error *e)
{
    struct cli_sampling *cs = &a->sampling;
    int64_t v;
    switch (key) {
    case K_CORPUS:
        cs->corpus_path = arg;
        return 0;
    case K_CORPUS_FORMAT:
        if (strata_corpus_kind_parse(arg, &cs->cpar.kind) != 0)
            return cli_fail(e, NULL, "--corpus-format '%s': expected auto, text, jsonl, dir or ids",
                            arg);
        return 0;
    case K_SEP:
        cs->cpar.sep = arg;
        return 0;
    case K_JSONL_FIELD:
        cs->cpar.field = arg;
        if (cs->cpar.kind == STRATA_CORPUS_AUTO) cs->cpar.kind = STRATA_CORPUS_JSONL;
        return 0;
    case K_SAMPLES:
        cs->samples_given = true;
        return cli_parse_int(&cs->n_samples, "--samples", arg, 1, INT32_MAX, e);
    case K_SEQ_LEN:
        return cli_parse_int(&cs->seq_len, "--seq-len", arg, 1, 1 << 24, e);
    case K_SEED:
        if (cli_parse_int(&v, "--seed", arg, 0, INT64_MAX, e)) return -1;
        cs->seed = (uint64_t)v;
        return 0;
    case K_SAMPLE_OFFSET:
        return cli_parse_int(&cs->offset, "--sample-offset", arg, 0, INT32_MAX, e);
    case K_BOS:
        if (cli_parse_int(&v, "--bos", arg, -1, INT32_MAX, e)) return -1;
        cs->cpar.ids_bos = (int32_t)v;
        return 0;
    }
    return cli_fail(e, NULL, "option key %d has no handler", key);
}

int64_t cli_sampling_seq_len(struct cli_args *a)
{
    struct cli_sampling *cs = &a->sampling;
    const struct strata_config *cfg = &a->model.cfg;
    if (cs->seq_len == 0) cs->seq_len = cfg->seq_len;
    if (cs->seq_len > cfg->seq_len)
        cli_note("--seq-len %lld is beyond the model's trained window %d", (long long)cs->seq_len,
                 (int)cfg->seq_len);
    return cs->seq_len;
}

struct strata_corpus *cli_sampling_open(const struct cli_args *a)
{
    const struct cli_sampling *cs = &a->sampling;
    if (!cs->corpus_path) cli_usage_die("see --help", "--corpus is required");
    struct strata_corpus *corpus = NULL;
    cli_check(strata_corpus_open(&corpus, cs->corpus_path, &cs->cpar),
              "check --corpus and its format");
    return corpus;
}

void cli_sampling_build(const struct cli_args *a, const struct strata_corpus *corpus,
                        struct strata_samples *samples)
{
    const struct cli_sampling *cs = &a->sampling;
    cli_check(strata_samples_build_range(samples, corpus, a->model.tok, cs->offset, cs->n_samples,
                                         cs->seq_len, cs->seed),
              "use fewer --samples, a smaller --sample-offset or a shorter --seq-len, or a "
              "larger corpus");
}

char *cli_sampling_describe(const struct cli_args *a, const struct strata_samples *samples)
{
    const struct cli_sampling *cs = &a->sampling;
    return cli_sprintf(
        "documents tokenized with BOS first and concatenated; non-overlapping windows of "
        "%lld tokens starting at document starts (%lld available); ordered by a "
        "splitmix64 Fisher-Yates shuffle with seed %llu; draws %lld .. %lld taken, kept in "
        "stream order",
        (long long)cs->seq_len, (long long)samples->n_windows, (unsigned long long)cs->seed,
        (long long)cs->offset, (long long)(cs->offset + cs->n_samples - 1));
}
