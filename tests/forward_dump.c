/* forward_dump — test tool: run a model (any format strata loads) over the
 * given token ids and write the residual stream at every boundary and the
 * logits as float32 .npy files, for the numpy references to compare against
 * (tests/test_hf_ref.py, tests/test_convert.py).
 *
 * usage: forward_dump --model PATH --tokens 1,5,9 --hidden H.npy --logits L.npy
 *                     [--position-embedding rope|rope-half|rope-interleaved|alibi|none]
 *                     [--attn-block B] [--release-weights] [the model options of lib/cli]
 */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

enum { OPT_TOKENS = CLI_KEY_PROG, OPT_HIDDEN, OPT_LOGITS, OPT_ATTN_BLOCK, OPT_RELEASE };

static const struct cli_opt opts[] = {
    {"tokens", CLI_ARG, OPT_TOKENS, "IDS", "token ids, comma-separated"},
    {"hidden", CLI_ARG, OPT_HIDDEN, "H.npy", "residual stream (L+1, T, D) float32"},
    {"logits", CLI_ARG, OPT_LOGITS, "L.npy", "logits (T, V) float32"},
    {"attn-block", CLI_ARG, OPT_ATTN_BLOCK, "B", "query rows per attention tile"},
    {"release-weights", CLI_NOARG, OPT_RELEASE, NULL, "drop widened weight pages after use"},
    {0}};

static const struct cli_spec spec = {
    .prog = "forward_dump",
    .synopsis = "--model PATH --tokens 1,5,9 --hidden H.npy --logits L.npy [options]",
    .groups = CLI_G_MODEL,
    .opts = opts,
};

struct dump_opts {
    const char *tokens, *hidden, *logits;
    int64_t attn_block;
    bool release;
};

static int dump_option(void *user, int key, const char *arg, struct cli_error *e)
{
    struct dump_opts *o = user;
    switch (key) {
    case OPT_TOKENS: o->tokens = arg; return 0;
    case OPT_HIDDEN: o->hidden = arg; return 0;
    case OPT_LOGITS: o->logits = arg; return 0;
    case OPT_ATTN_BLOCK: return cli_parse_int(&o->attn_block, "--attn-block", arg, 1, 1 << 20, e);
    case OPT_RELEASE: o->release = true; return 0;
    }
    return cli_fail(e, NULL, "option key %d has no handler", key);
}

/* NumPy format 1.0: magic, version, header length, a Python dict literal
 * padded so the data starts at a multiple of 64 bytes. */
static void write_npy(const char *path, const float *data, const int64_t *shape, int n_dim)
{
    char dict[256];
    int k = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    int64_t n = 1;
    for (int i = 0; i < n_dim; i++) {
        k += snprintf(dict + k, sizeof dict - (size_t)k, "%lld, ", (long long)shape[i]);
        n *= shape[i];
    }
    k += snprintf(dict + k, sizeof dict - (size_t)k, "), }");
    while ((10 + k + 1) % 64) dict[k++] = ' ';
    dict[k++] = '\n';
    struct cli_out o;
    FILE *f = cli_out_open(&o, path);
    unsigned char head[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(k & 0xff),
                              (unsigned char)(k >> 8)};
    if (fwrite(head, 1, 10, f) != 10 || fwrite(dict, 1, (size_t)k, f) != (size_t)k ||
        fwrite(data, sizeof(float), (size_t)n, f) != (size_t)n)
        cli_die(NULL, "%s: write failed", path);
    cli_out_commit(&o);
}

int main(int argc, char **argv)
{
    struct cli_args a;
    cli_args_init(&a);
    struct dump_opts o = {0};
    cli_parse(&a, &spec, argc, argv, dump_option, &o);
    if (!a.model.model_path || !o.tokens || !o.hidden || !o.logits)
        cli_usage_die("give --model, --tokens, --hidden and --logits", "missing argument");
    cli_model_load(&a, false);
    const struct strata_config *cfg = &a.model.cfg;

    int64_t T = 1;
    for (const char *p = o.tokens; *p; p++) T += *p == ',';
    int32_t *tok = cli_calloc((size_t)T, sizeof *tok, "the tokens"); /* (T) */
    const char *p = o.tokens;
    for (int64_t t = 0; t < T; t++) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || (*end && *end != ','))
            cli_usage_die(NULL, "--tokens: '%s' is not a list of ids", o.tokens);
        tok[t] = (int32_t)v;
        p = *end ? end + 1 : end;
    }

    struct strata_ctx_params cp = cli_ctx_params(&a, T);
    if (o.attn_block) cp.attn_block = o.attn_block;
    cp.release_weights = o.release;
    struct strata_ctx *ctx = cli_ctx_create(&a, &cp);
    const int64_t L = cfg->n_layer, D = cfg->dim, V = cfg->vocab_size;
    struct strata_hidden_capture cap = {
        cli_calloc((size_t)((L + 1) * T * D), sizeof(float), "the hidden states"), T, D};
    float *logits = cli_calloc((size_t)(T * V), sizeof(float), "the logits"); /* (T, V) */
    struct strata_observer obs = strata_observer_hidden(&cap);
    cli_check(strata_ctx_add_observer(ctx, &obs), NULL);
    cli_check(strata_forward(ctx, logits, tok, T, STRATA_LOGITS_ALL), NULL);

    const int64_t hs[3] = {L + 1, T, D}, ls[2] = {T, V};
    write_npy(o.hidden, cap.hidden, hs, 3);
    write_npy(o.logits, logits, ls, 2);
    free(cap.hidden);
    free(logits);
    free(tok);
    strata_ctx_free(ctx);
    cli_args_free(&a);
    return 0;
}
