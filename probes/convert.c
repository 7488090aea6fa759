/* strata-convert — write any model strata loads as a Hugging Face checkpoint
 * directory (config.json + model.safetensors + the tokenizer): llama2.c
 * models such as stories260K for the HF path, a bf16/f16 copy, or a pruned
 * model without the blocks ShortGPT (P3) would remove. */
#include "cli/cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { OPT_DTYPE = CLI_KEY_PROG, OPT_DROP };

static const struct cli_opt opts[] = {
    {"dtype", CLI_ARG, OPT_DTYPE, "T", "f32, f16 or bf16 (default f32)"},
    {"drop-layers", CLI_ARG, OPT_DROP, "LIST",
     "blocks to leave out, e.g. 27,26,25 or 20-23 (from 0); the others are renumbered"},
    {0}};

static const struct cli_spec spec = {
    .prog = "strata-convert",
    .synopsis = "--model M -o OUTDIR [options]",
    .about = "Write M as a Hugging Face checkpoint: OUTDIR/config.json and\n"
             "OUTDIR/model.safetensors (written under .partial names and renamed when\n"
             "complete), plus the tokenizer: a tokenizer.json or tokenizer.model is\n"
             "copied with tokenizer_config.json and special_tokens_map.json from beside\n"
             "it; a llama2.c tokenizer (or a tokenizer.model without a tokenizer.json)\n"
             "is written as tokenizer.json + tokenizer_config.json, so the copy loads in\n"
             "Hugging Face transformers as well as in strata. llama2.c's interleaved RoPE rows are permuted to the\n"
             "rotate-half layout, so the copy gives the same hidden states. With\n"
             "--position-embedding, --rope-base or --rope-scaling the copy's config.json\n"
             "records those settings instead of the checkpoint's.\n",
    .groups = CLI_G_MODEL | CLI_G_OUTPUT,
    .opts = opts,
    .output_help = "output directory (created if missing)",
};

struct conv_opts {
    struct strata_save_params sp;
    int32_t *drop;
};

static int conv_option(void *user, int key, const char *arg, struct cli_error *e)
{
    struct conv_opts *c = user;
    switch (key) {
    case OPT_DTYPE:
        if (!strcmp(arg, "f32")) c->sp.dtype = STRATA_DT_F32;
        else if (!strcmp(arg, "f16")) c->sp.dtype = STRATA_DT_F16;
        else if (!strcmp(arg, "bf16")) c->sp.dtype = STRATA_DT_BF16;
        else return cli_fail(e, NULL, "--dtype '%s': expected f32, f16 or bf16", arg);
        return 0;
    case OPT_DROP:
        free(c->drop);
        c->drop = NULL;
        c->sp.n_drop = 0;
        if (cli_parse_block_list(&c->drop, &c->sp.n_drop, "--drop-layers", arg, e)) {
            e->hint = "--drop-layers takes block numbers from 0, e.g. 27,26,25 or 20-23";
            return -1;
        }
        c->sp.drop_layers = c->drop;
        return 0;
    }
    return cli_fail(e, NULL, "option key %d has no handler", key);
}

/* Byte copy through dst.partial + rename. */
static void copy_file(const char *src, const char *dst)
{
    FILE *in = fopen(src, "rb");
    if (!in) cli_die(NULL, "%s: cannot open: %s", src, strerror(errno));
    struct cli_out o;
    FILE *out = cli_out_open(&o, dst);
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) cli_die(NULL, "%s: write failed", dst);
    if (ferror(in)) cli_die(NULL, "%s: read failed", src);
    fclose(in);
    cli_out_commit(&o);
}

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && !strcmp(s + n - k, tail);
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The tokenizer goes along, so the copy loads in transformers as well as
 * in strata (issue 14). A tokenizer.json or tokenizer.model is copied, and
 * from a checkpoint-style directory (the file is named tokenizer.json or
 * tokenizer.model) so are the files Hugging Face keeps beside it; anything
 * else (llama2.c's tokenizer.bin) is written as tokenizer.json +
 * tokenizer_config.json (strata_tokenizer_save_hf), as is a SentencePiece
 * model that has no tokenizer.json beside it, so that transformers needs
 * no sentencepiece to read the copy. strata then reads tokenizer.json first:
 * the same ids (tests/test_convert.py). */
static void save_tokenizer(const struct cli_args *a, const char *out_dir, int64_t max_len)
{
    const struct strata_tokenizer *tok = a->model.tok;
    const char *kind = strata_tokenizer_kind(tok);
    const bool hf = !strcmp(kind, "hf-bpe") || !strcmp(kind, "hf-bytelevel");
    const bool spm = !strcmp(kind, "sentencepiece");
    char *src = cli_strdup(strata_tokenizer_path(tok)); /* the file read, never a directory */
    const char *slash = strrchr(src, '/');
    const char *base = slash ? slash + 1 : src;
    char *src_dir = slash ? cli_sprintf("%.*s", (int)(slash - src), src) : cli_strdup(".");
    const char *copy_as = hf && ends_with(src, ".json")    ? "tokenizer.json"
                          : spm && ends_with(src, ".model") ? "tokenizer.model"
                                                            : NULL;
    static const char *const companions[] = {"tokenizer.json", "tokenizer.model",
                                             "tokenizer_config.json", "special_tokens_map.json"};
    const bool dir_style = !strcmp(base, "tokenizer.json") || !strcmp(base, "tokenizer.model");
    char *beside_json = cli_sprintf("%s/tokenizer.json", src_dir);
    const bool have_json = (copy_as && !strcmp(copy_as, "tokenizer.json")) ||
                           (dir_style && is_file(beside_json));
    free(beside_json);

    if (copy_as) {
        char *dst = cli_sprintf("%s/%s", out_dir, copy_as);
        copy_file(src, dst);
        free(dst);
    }
    if (!have_json && strata_tokenizer_save_hf(tok, out_dir, max_len) != 0) {
        if (copy_as) {
            cli_warn("no tokenizer.json written (%s); the copy keeps %s only", strata_last_error(),
                     copy_as);
        } else if (!strcmp(kind, "llama2c")) {
            cli_warn("no tokenizer.json written (%s); copying the llama2.c tokenizer as "
                     "tokenizer.bin, which strata reads and transformers does not",
                     strata_last_error());
            char *dst = cli_sprintf("%s/tokenizer.bin", out_dir);
            copy_file(src, dst);
            free(dst);
        } else {
            cli_warn("no tokenizer written: %s", strata_last_error());
        }
    }
    /* Hugging Face's own files beside the source win over what
     * strata_tokenizer_save_hf wrote (tokenizer_config.json). */
    for (size_t k = 0; dir_style && k < sizeof companions / sizeof companions[0]; k++) {
        if (copy_as && !strcmp(companions[k], copy_as)) continue;
        char *from = cli_sprintf("%s/%s", src_dir, companions[k]);
        if (is_file(from)) {
            char *dst = cli_sprintf("%s/%s", out_dir, companions[k]);
            copy_file(from, dst);
            free(dst);
        }
        free(from);
    }
    free(src_dir);
    free(src);
}

int main(int argc, char **argv)
{
    struct cli_args a;
    cli_args_init(&a);
    struct conv_opts c = {.sp = strata_save_default_params()};
    cli_parse(&a, &spec, argc, argv, conv_option, &c);
    cli_require(&a, CLI_REQ_MODEL | CLI_REQ_OUTPUT_DIR);
    const char *out_dir = a.out_path;
    cli_model_load(&a, true);
    /* --position-embedding, --rope-base, --rope-scaling: the copy's config */
    if (a.model.pos_s || a.model.rope_base > 0 || a.model.rope_scaling_s) c.sp.config = &a.model.cfg;
    double t0 = cli_now();
    cli_check(strata_model_save_hf(a.model.model, out_dir, &c.sp), NULL);

    const struct strata_config *cfg = strata_model_config(a.model.model);
    save_tokenizer(&a, out_dir, cfg->seq_len);
    cli_info("wrote %s (%d of %d blocks, %s) in %.1f s", out_dir, (int)(cfg->n_layer - c.sp.n_drop),
             (int)cfg->n_layer,
             c.sp.dtype == STRATA_DT_F32 ? "f32" : c.sp.dtype == STRATA_DT_F16 ? "f16" : "bf16",
             cli_now() - t0);
    free(c.drop);
    cli_args_free(&a);
    return 0;
}
