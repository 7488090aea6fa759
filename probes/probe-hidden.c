/* strata-probe-hidden — run a model over fixed-length samples of a corpus and
 * dump the residual stream at every layer boundary to HDF5 (docs/FORMAT.md).
 * The dump is the input of the analyzers: Block Influence (P3) compares
 * consecutive boundaries, positional vectors (P1) average them over samples. */
#include "cli.h"

#include <math.h>
#include <signal.h>

static void usage(void)
{
    printf("usage: strata-probe-hidden --model M [--tokenizer TOK] --corpus FILE -o OUT.h5 [options]\n"
           "\n"
           "Dump hidden states (N, L+1, T, D): layer 0 = token embeddings, layer l = the\n"
           "residual stream after block l (before the final norm).\n"
           "\n"
           CLI_MODEL_HELP
           "  --corpus FILE    text file of documents\n"
           "  --sep STR        document separator (default \"<|endoftext|>\")\n"
           "  --samples N      number of samples (default 64)\n"
           "  --seq-len T      tokens per sample (default: the model's seq_len)\n"
           "  --seed S         sample selection seed (default 0)\n"
           "  --dtype f32|f16  storage type of /hidden (default f32)\n"
           "  --gzip LEVEL     deflate level 1-9 (default 0: raw; fp32 activations\n"
           "                   shrink only ~8%% at a tenth of the write speed)\n"
           "  -o OUT.h5        output; written as OUT.h5.partial and renamed when complete\n"
           "  -h, --help       this help\n"
           "\n"
           "Sampling: documents are tokenized with BOS first and concatenated; the\n"
           "stream is cut into non-overlapping windows of T tokens that each start at a\n"
           "document start; N windows are chosen by a seeded shuffle. Ctrl-C stops after\n"
           "the current sample and leaves OUT.h5.partial with the completed samples.\n");
}

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

int main(int argc, char **argv)
{
    cli_init("strata-probe-hidden");
    struct cli_model cm = {0};
    const char *corpus_path = NULL, *out_path = NULL;
    const char *sep = "<|endoftext|>";
    int64_t n_samples = 64, seq_len = 0, gzip = 0;
    uint64_t seed = 0;
    enum strata_dtype dtype = STRATA_F32;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        } else if (cli_model_option(&cm, argc, argv, &i)) {
        } else if (!strcmp(a, "--corpus")) {
            corpus_path = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--sep")) {
            sep = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--samples")) {
            n_samples = cli_int("--samples", cli_value(argc, argv, &i), 1, INT32_MAX);
        } else if (!strcmp(a, "--seq-len")) {
            seq_len = cli_int("--seq-len", cli_value(argc, argv, &i), 1, 1 << 24);
        } else if (!strcmp(a, "--seed")) {
            seed = (uint64_t)cli_int("--seed", cli_value(argc, argv, &i), 0, INT64_MAX);
        } else if (!strcmp(a, "--gzip")) {
            gzip = cli_int("--gzip", cli_value(argc, argv, &i), 0, 9);
        } else if (!strcmp(a, "--dtype")) {
            const char *v = cli_value(argc, argv, &i);
            if (!strcmp(v, "f32")) dtype = STRATA_F32;
            else if (!strcmp(v, "f16")) dtype = STRATA_F16;
            else cli_die(NULL, "--dtype '%s': expected f32 or f16", v);
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            out_path = cli_value(argc, argv, &i);
        } else {
            cli_die("see strata-probe-hidden --help", "unknown option '%s'", a);
        }
    }
    if (!cm.model_path || !corpus_path || !out_path)
        cli_die("see strata-probe-hidden --help", "--model, --corpus and -o are required");

    cli_model_load(&cm, true);
    struct strata_model *model = cm.model;
    struct strata_tokenizer *tok = cm.tok;
    const struct strata_config *cfg = strata_model_config(model);
    if (seq_len == 0) seq_len = cfg->seq_len;
    if (seq_len > cfg->seq_len)
        fprintf(stderr, "%s: note: --seq-len %lld is beyond the model's trained window %d\n",
                cli_prog, (long long)seq_len, (int)cfg->seq_len);
    struct strata_corpus *corpus = NULL;
    cli_check(strata_corpus_load(&corpus, corpus_path, sep), "check --corpus and --sep");
    struct strata_samples samples = {0};
    cli_check(strata_samples_build(&samples, corpus, tok, n_samples, seq_len, seed), NULL);

    const int64_t L1 = cfg->n_layer + 1, T = seq_len, D = cfg->dim;
    struct strata_ctx_params cp = strata_ctx_default_params();
    cp.n_ctx = T;
    struct strata_ctx *ctx = NULL;
    cli_check(strata_ctx_create(&ctx, model, &cp), NULL);
    struct strata_hidden_capture cap = {.T = T, .D = D};
    cap.hidden = malloc((size_t)(L1 * T * D) * sizeof(float));
    if (!cap.hidden) cli_die("lower --seq-len", "out of memory for one sample's hidden states");
    struct strata_observer obs = strata_observer_hidden(&cap);
    cli_check(strata_ctx_add_observer(ctx, &obs), NULL);

    struct strata_dump_params dp = {.n_samples = n_samples, .n_layers = L1, .seq_len = T,
                                    .dim = D, .dtype = dtype, .gzip = (int)gzip};
    struct strata_dump *dump = NULL;
    cli_check(strata_dump_create(&dump, out_path, &dp), NULL);
    char partial[4096];
    snprintf(partial, sizeof partial, "%s.partial", out_path);

    char *cmd = cli_command_line(argc, argv), *cfg_json = strata_model_config_json(model);
    char seed_s[32], sampling[512];
    snprintf(seed_s, sizeof seed_s, "%llu", (unsigned long long)seed);
    snprintf(sampling, sizeof sampling,
             "documents tokenized with BOS first and concatenated; non-overlapping windows of "
             "%lld tokens starting at document starts (%lld available); %lld chosen by "
             "splitmix64 Fisher-Yates shuffle with seed %llu, kept in stream order",
             (long long)T, (long long)samples.n_windows, (long long)n_samples,
             (unsigned long long)seed);
    const char *attrs[][2] = {{"strata_version", STRATA_VERSION}, {"command_line", cmd},
                              {"model_path", cm.model_path},         {"model_config", cfg_json},
                              {"tokenizer_path", cm.tok_used},       {"corpus_path", corpus_path},
                              {"separator", sep},                 {"seed", seed_s},
                              {"sampling", sampling},
                              {"dtype", dtype == STRATA_F16 ? "f16" : "f32"}};
    int rc = 0;
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0] && !rc; i++)
        rc = strata_dump_set_attr_str(dump, attrs[i][0], attrs[i][1]);
    free(cmd);
    free(cfg_json);

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    struct cli_progress prog;
    cli_progress_start(&prog);
    int64_t s = 0;
    for (; s < n_samples && !rc && !stop_requested; s++) {
        const int32_t *toks = samples.tokens + s * T; /* (T) */
        if ((rc = strata_forward(ctx, NULL, toks, T, STRATA_LOGITS_NONE))) break;
        for (int64_t i = 0; i < L1 * T * D; i++) {
            if (!isfinite(cap.hidden[i])) {
                int64_t l = i / (T * D), t = (i / D) % T;
                strata_dump_free(dump);
                remove(partial);
                cli_die("the checkpoint's weights may be corrupt",
                        "%s: non-finite hidden state at sample %lld, layer %lld, position %lld",
                        cm.model_path, (long long)s, (long long)l, (long long)t);
            }
        }
        rc = strata_dump_write_sample(dump, s, cap.hidden, toks);
        cli_progress(&prog, s + 1, n_samples, (s + 1) * T, 0);
    }
    int status = 0;
    if (!rc && stop_requested && s < n_samples) {
        cli_progress(&prog, s, n_samples, s * T, 1);
        fprintf(stderr, "%s: interrupted after %lld of %lld samples; the completed samples are in %s\n",
                cli_prog, (long long)s, (long long)n_samples, partial);
        status = 130;
    } else if (!rc && !(rc = strata_dump_finish(dump))) {
        cli_progress(&prog, n_samples, n_samples, n_samples * T, 1);
        fprintf(stderr, "%s: wrote %s (%lld samples x %lld layers x %lld tokens x %lld dims)\n",
                cli_prog, out_path, (long long)n_samples, (long long)L1, (long long)T, (long long)D);
    }
    strata_dump_free(dump);
    if (rc) {
        remove(partial);
        cli_check(rc, NULL);
    }
    free(cap.hidden);
    strata_ctx_free(ctx);
    strata_samples_free(&samples);
    strata_corpus_free(corpus);
    cli_model_free(&cm);
    return status;
}
