/* strata-convert — write any model strata loads as a Hugging Face checkpoint
 * directory (config.json + model.safetensors + the tokenizer): llama2.c
 * models such as stories260K for the HF path, a bf16/f16 copy, or a pruned
 * model without the blocks ShortGPT (P3) would remove. */
#include "cli.h"

static void usage(void)
{
    printf("usage: strata-convert --model M -o OUTDIR [options]\n"
           "\n"
           "Write M as a Hugging Face checkpoint: OUTDIR/config.json and\n"
           "OUTDIR/model.safetensors (written under .partial names and renamed when\n"
           "complete), plus the tokenizer as OUTDIR/tokenizer.json, tokenizer.model or\n"
           "tokenizer.bin. llama2.c's interleaved RoPE rows are permuted to the\n"
           "rotate-half layout, so the copy gives the same hidden states.\n"
           "\n" CLI_MODEL_HELP
           "  --dtype T          f32, f16 or bf16 (default f32)\n"
           "  --drop-layers LIST blocks to leave out, e.g. 27,26,25 or 20-23 (from 0);\n"
           "                     the others are renumbered\n"
           "  -o OUTDIR          output directory (created if missing)\n"
           "  -h, --help         this help\n");
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

int main(int argc, char **argv)
{
    cli_init("strata-convert");
    struct cli_model cm = {0};
    const char *out_dir = NULL;
    struct strata_save_params sp = strata_save_default_params();
    int32_t *drop = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        } else if (cli_model_option(&cm, argc, argv, &i)) {
        } else if (!strcmp(a, "--dtype")) {
            const char *v = cli_value(argc, argv, &i);
            if (!strcmp(v, "f32")) sp.dtype = STRATA_SAVE_F32;
            else if (!strcmp(v, "f16")) sp.dtype = STRATA_SAVE_F16;
            else if (!strcmp(v, "bf16")) sp.dtype = STRATA_SAVE_BF16;
            else cli_die(NULL, "--dtype '%s': expected f32, f16 or bf16", v);
        } else if (!strcmp(a, "--drop-layers")) {
            free(drop);
            drop = NULL;
            sp.n_drop = 0;
            cli_block_list(a, cli_value(argc, argv, &i),
                           "--drop-layers takes block numbers from 0, e.g. 27,26,25 or 20-23",
                           &drop, &sp.n_drop);
            sp.drop_layers = drop;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            out_dir = cli_value(argc, argv, &i);
        } else {
            cli_die("see strata-convert --help", "unknown option '%s'", a);
        }
    }
    if (!cm.model_path || !out_dir) cli_die("see strata-convert --help", "--model and -o are required");
    cli_model_load(&cm, true);
    double t0 = cli_now();
    cli_check(strata_model_save_hf(cm.model, out_dir, &sp), NULL);

    /* The tokenizer goes along under the name its kind is found by. */
    const char *kind = strata_tokenizer_kind(cm.tok);
    const char *name = !strcmp(kind, "sentencepiece") ? "tokenizer.model"
                       : !strcmp(kind, "llama2c")     ? "tokenizer.bin"
                                                      : "tokenizer.json";
    char src[8192], dst[8192];
    snprintf(src, sizeof src, "%s", cm.tok_used);
    struct stat st;
    if (stat(src, &st) == 0 && S_ISDIR(st.st_mode)) /* found in the checkpoint directory */
        snprintf(src, sizeof src, "%s/%s", cm.tok_used, name);
    if (snprintf(dst, sizeof dst, "%s/%s", out_dir, name) >= (int)sizeof dst)
        cli_die(NULL, "output path too long: %s", out_dir);
    copy_file(src, dst);

    const struct strata_config *c = strata_model_config(cm.model);
    fprintf(stderr, "%s: wrote %s (%d of %d blocks, %s) in %.1f s\n", cli_prog, out_dir,
            (int)(c->n_layer - sp.n_drop), (int)c->n_layer,
            sp.dtype == STRATA_SAVE_F32 ? "f32" : sp.dtype == STRATA_SAVE_F16 ? "f16" : "bf16",
            cli_now() - t0);
    free(drop);
    cli_model_free(&cm);
    return 0;
}
