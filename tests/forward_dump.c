/* forward_dump — test tool: run a model (any format strata loads) over the
 * given token ids and write the residual stream at every boundary and the
 * logits as float32 .npy files, for the numpy references to compare against
 * (tests/test_hf_ref.py, tests/test_convert.py).
 *
 * usage: forward_dump --model PATH --tokens 1,5,9 --hidden H.npy --logits L.npy
 *                     [--positions rope|rope-half|rope-interleaved|alibi|none]
 *                     [--attn-block B] [--release-weights]
 */
#include "cli.h"

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
    cli_init("forward_dump");
    const char *model_path = NULL, *tokens_arg = NULL, *hidden_path = NULL, *logits_path = NULL;
    const char *positions = NULL;
    int64_t attn_block = 0;
    bool release = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--model")) model_path = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--tokens")) tokens_arg = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--hidden")) hidden_path = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--logits")) logits_path = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--positions")) positions = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--release-weights")) release = true;
        else if (!strcmp(a, "--attn-block"))
            attn_block = cli_int(a, cli_value(argc, argv, &i), 1, 1 << 20);
        else cli_die("see the usage in tests/forward_dump.c", "unknown option '%s'", a);
    }
    if (!model_path || !tokens_arg || !hidden_path || !logits_path)
        cli_die("give --model, --tokens, --hidden and --logits", "missing argument");

    struct strata_model *m = NULL;
    cli_check(strata_model_load(&m, model_path), NULL);
    struct strata_ctx_params cp = strata_ctx_default_params();
    if (positions) cli_check(strata_pos_parse(positions, strata_model_config(m)->pos, &cp.pos), NULL);
    const struct strata_config *cfg = strata_model_config(m);

    int64_t T = 1;
    for (const char *p = tokens_arg; *p; p++) T += *p == ',';
    int32_t *tok = malloc((size_t)T * sizeof *tok); /* (T) */
    const char *p = tokens_arg;
    for (int64_t t = 0; t < T; t++) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || (*end && *end != ',')) cli_die(NULL, "--tokens: '%s' is not a list of ids", tokens_arg);
        tok[t] = (int32_t)v;
        p = *end ? end + 1 : end;
    }

    cp.n_ctx = T;
    if (attn_block) cp.attn_block = attn_block;
    cp.release_weights = release;
    struct strata_ctx *ctx = NULL;
    cli_check(strata_ctx_create(&ctx, m, &cp), NULL);
    const int64_t L = cfg->n_layer, D = cfg->dim, V = cfg->vocab_size;
    struct strata_hidden_capture cap = {calloc((size_t)((L + 1) * T * D), sizeof(float)), T, D};
    float *logits = malloc((size_t)(T * V) * sizeof(float)); /* (T, V) */
    struct strata_observer obs = strata_observer_hidden(&cap);
    cli_check(strata_ctx_add_observer(ctx, &obs), NULL);
    cli_check(strata_forward(ctx, logits, tok, T, STRATA_LOGITS_ALL), NULL);

    const int64_t hs[3] = {L + 1, T, D}, ls[2] = {T, V};
    write_npy(hidden_path, cap.hidden, hs, 3);
    write_npy(logits_path, logits, ls, 2);
    free(cap.hidden);
    free(logits);
    free(tok);
    strata_ctx_free(ctx);
    strata_model_free(m);
    return 0;
}
