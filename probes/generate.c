/* strata-generate — greedy text generation, as llama2.c's run.c does it at
 * temperature 0, from any checkpoint strata loads. Its output is the end-to-end
 * check that loader, tokenizer and forward pass agree with the reference
 * implementation byte for byte. */
#include "cli.h"

#include <ctype.h>

static void usage(void)
{
    printf("usage: strata-generate --model M [--tokenizer TOK] [options]\n"
           "\n"
           "Greedy (argmax) generation, as llama2.c's run.c with -t 0.\n"
           "\n" CLI_MODEL_HELP
           "  --prompt TEXT     text to continue (default: empty, start from BOS)\n"
           "  --steps N         positions to run, prompt included (default 256,\n"
           "                    clamped to the model's seq_len)\n"
           "  --temperature T   only 0 (greedy) is implemented\n"
           "  -h, --help        this help\n"
           "\n"
           "Prints the text and a newline (BOS not printed; stops where run.c does,\n"
           "at BOS, for llama2.c tokenizers, else at the tokenizer's EOS);\n"
           "newline; tokens/s on stderr.\n");
}

/* run.c's safe_printf: a lone control byte is not printed. */
static void print_piece(const char *p, size_t n)
{
    if (n == 1 && !isprint((unsigned char)p[0]) && !isspace((unsigned char)p[0])) return;
    fwrite(p, 1, n, stdout);
}

int main(int argc, char **argv)
{
    cli_init("strata-generate");
    struct cli_model cm = {0};
    const char *prompt = "";
    int64_t steps = 256;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        } else if (cli_model_option(&cm, argc, argv, &i)) {
        } else if (!strcmp(a, "--prompt")) {
            prompt = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--steps")) {
            steps = cli_int("--steps", cli_value(argc, argv, &i), 1, INT32_MAX);
        } else if (!strcmp(a, "--temperature")) {
            double t = cli_double("--temperature", cli_value(argc, argv, &i));
            if (t != 0.0) cli_die("use --temperature 0", "only greedy decoding is implemented");
        } else {
            cli_die("see strata-generate --help", "unknown option '%s'", a);
        }
    }
    cli_model_load(&cm, true);
    struct strata_model *model = cm.model;
    struct strata_tokenizer *tok = cm.tok;
    const struct strata_config *cfg = strata_model_config(model);
    if (steps > cfg->seq_len) steps = cfg->seq_len;

    int32_t *ptoks = NULL;
    int64_t n_prompt = 0;
    cli_check(strata_tokenizer_encode(tok, &ptoks, &n_prompt, prompt, strlen(prompt), true, false),
              NULL);
    struct strata_ctx_params cp = strata_ctx_default_params();
    cp.n_ctx = steps;
    cp.kv_cache = true;
    struct strata_ctx *ctx = NULL;
    cli_check(strata_ctx_create(&ctx, model, &cp), NULL);

    int32_t *out = malloc((size_t)steps * sizeof *out);
    if (!out) cli_die(NULL, "out of memory");
    int64_t n_out = 0;
    double t0 = cli_now();
    const int32_t stop = !strcmp(strata_tokenizer_kind(tok), "llama2c") ? strata_tokenizer_bos(tok)
                                                                        : strata_tokenizer_eos(tok);
    cli_check(strata_generate_greedy(ctx, out, &n_out, ptoks, n_prompt, steps, stop), NULL);
    double el = cli_now() - t0;
    int32_t prev = ptoks[0];
    for (int64_t i = 0; i < n_out; i++) {
        size_t len = 0;
        const char *piece = strata_tokenizer_piece(tok, prev, out[i], &len);
        if (piece) print_piece(piece, len);
        prev = out[i];
    }
    printf("\n");
    fprintf(stderr, "%s: %lld tokens, %.1f tokens/s\n", cli_prog, (long long)n_out,
            el > 0 ? (double)n_out / el : 0.0);
    free(out);
    free(ptoks);
    strata_ctx_free(ctx);
    cli_model_free(&cm);
    return 0;
}
