/* strata-generate — greedy text generation, as llama2.c's run.c does it at
 * temperature 0, from any checkpoint strata loads. Its output is the end-to-end
 * check that loader, tokenizer and forward pass agree with the reference
 * implementation byte for byte. */
#include "cli/cli.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

enum { OPT_PROMPT = CLI_KEY_PROG, OPT_STEPS, OPT_TEMPERATURE };

static const struct cli_opt opts[] = {
    {"prompt", CLI_ARG, OPT_PROMPT, "TEXT", "text to continue (default: empty, start from BOS)"},
    {"steps", CLI_ARG, OPT_STEPS, "N",
     "positions to run, prompt included (default 256, clamped to the\n"
     "model's seq_len)"},
    {"temperature", CLI_ARG, OPT_TEMPERATURE, "T", "only 0 (greedy) is implemented"},
    {0}};

static const struct cli_spec spec = {
    .prog = "strata-generate",
    .synopsis = "--model M [--tokenizer TOK] [options]",
    .about = "Greedy (argmax) generation, as llama2.c's run.c with -t 0.\n",
    .groups = CLI_G_MODEL,
    .opts = opts,
    .epilog = "Prints the text and a newline (BOS not printed; stops where run.c does,\n"
              "at BOS, for llama2.c tokenizers, else at the tokenizer's EOS);\n"
              "tokens/s on stderr.\n",
};

struct gen_opts {
    const char *prompt;
    int64_t steps;
};

static int gen_option(void *user, int key, const char *arg, struct cli_error *e)
{
    struct gen_opts *g = user;
    double t;
    switch (key) {
    case OPT_PROMPT:
        g->prompt = arg;
        return 0;
    case OPT_STEPS:
        return cli_parse_int(&g->steps, "--steps", arg, 1, INT32_MAX, e);
    case OPT_TEMPERATURE:
        if (cli_parse_double(&t, "--temperature", arg, 0.0, 1e30, e)) return -1;
        if (t != 0.0) return cli_fail(e, "use --temperature 0", "only greedy decoding is implemented");
        return 0;
    }
    return cli_fail(e, NULL, "option key %d has no handler", key);
}

/* run.c's safe_printf: a lone control byte is not printed. */
static void print_piece(const char *p, size_t n)
{
    if (n == 1 && !isprint((unsigned char)p[0]) && !isspace((unsigned char)p[0])) return;
    fwrite(p, 1, n, stdout);
}

int main(int argc, char **argv)
{
    struct cli_args a;
    cli_args_init(&a);
    struct gen_opts g = {.prompt = "", .steps = 256};
    cli_parse(&a, &spec, argc, argv, gen_option, &g);
    cli_require(&a, CLI_REQ_MODEL);
    cli_model_load(&a, true);
    struct strata_tokenizer *tok = a.model.tok;
    int64_t steps = g.steps;
    if (steps > a.model.cfg.seq_len) steps = a.model.cfg.seq_len;

    int32_t *ptoks = NULL;
    int64_t n_prompt = 0;
    cli_check(strata_tokenizer_encode(tok, &ptoks, &n_prompt, g.prompt, strlen(g.prompt), true,
                                      false),
              NULL);
    struct strata_ctx_params cp = cli_ctx_params(&a, steps);
    cp.kv_cache = true;
    struct strata_ctx *ctx = cli_ctx_create(&a, &cp);

    int32_t *out = cli_calloc((size_t)steps, sizeof *out, "the generated tokens");
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
    cli_info("%lld tokens, %.1f tokens/s", (long long)n_out, el > 0 ? (double)n_out / el : 0.0);
    free(out);
    free(ptoks);
    strata_ctx_free(ctx);
    cli_args_free(&a);
    return 0;
}
