/* mkmodel.c — command line around tests/mkmodel.h: write a random llama2.c
 * checkpoint of a chosen shape.
 *
 * Why: the shipped model (stories260K) has one shape; the reference tests
 * need others (no GQA, 4:1 GQA, separate classifier, other head widths) and
 * `make bench` needs a wide one (D >= 1024) that nobody can download here.
 * Built into build/tests/mkmodel by the Makefile's test pattern rule; it is
 * a tool, not a test (tests/run.sh runs only build/tests/test_*).
 */
#include "mkmodel.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mkmodel [options] -o FILE\n"
            "Write a random, well-conditioned llama2.c checkpoint (legacy format).\n"
            "\n"
            "  --dim D                 residual width (default 64)\n"
            "  --hidden F              SwiGLU width (default 8*D/3 rounded up to a multiple of 4)\n"
            "  --layers L              blocks (default 5)\n"
            "  --heads H               query heads (default 8; D/H must be even)\n"
            "  --kv-heads G            key/value heads (default H; H %% G == 0)\n"
            "  --vocab V               vocabulary (default 512, tok512.bin's)\n"
            "  --seq-len S             trained context / freq_cis rows (default 512)\n"
            "  --separate-classifier   write a classifier matrix of its own\n"
            "  --seed X                random stream (default 1)\n"
            "  -o FILE                 output path\n"
            "  -h, --help              this text\n"
            "\n"
            "The default shape is stories260K's except for the weights and kv-heads.\n");
}

/* Whole-string integer in [lo, hi], or exit 2 naming the option. */
static int64_t parse_int(const char *opt, const char *s, int64_t lo, int64_t hi)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 0);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "mkmodel: %s wants an integer in %" PRId64 "..%" PRId64 ", got '%s'\n",
                opt, lo, hi, s);
        exit(2);
    }
    return (int64_t)v;
}

int main(int argc, char **argv)
{
    struct mkmodel_shape s = {.dim = 64, .hidden_dim = 0, .n_layers = 5, .n_heads = 8,
                              .n_kv_heads = 0, .vocab_size = 512, .seq_len = 512,
                              .separate_classifier = false};
    uint64_t seed = 1;
    const char *out = NULL;
    const int64_t imax = INT32_MAX;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--separate-classifier")) {
            s.separate_classifier = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "mkmodel: %s needs a value (or is unknown); see --help\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--dim")) s.dim = (int32_t)parse_int(a, v, 2, imax);
        else if (!strcmp(a, "--hidden")) s.hidden_dim = (int32_t)parse_int(a, v, 1, imax);
        else if (!strcmp(a, "--layers")) s.n_layers = (int32_t)parse_int(a, v, 1, imax);
        else if (!strcmp(a, "--heads")) s.n_heads = (int32_t)parse_int(a, v, 1, imax);
        else if (!strcmp(a, "--kv-heads")) s.n_kv_heads = (int32_t)parse_int(a, v, 1, imax);
        else if (!strcmp(a, "--vocab")) s.vocab_size = (int32_t)parse_int(a, v, 1, imax);
        else if (!strcmp(a, "--seq-len")) s.seq_len = (int32_t)parse_int(a, v, 1, imax);
        else if (!strcmp(a, "--seed")) seed = (uint64_t)parse_int(a, v, 0, INT64_MAX);
        else if (!strcmp(a, "-o")) out = v;
        else {
            fprintf(stderr, "mkmodel: unknown option '%s'; see --help\n", a);
            return 2;
        }
    }
    if (!out) {
        fprintf(stderr, "mkmodel: no output file; give -o FILE (see --help)\n");
        return 2;
    }
    if (s.hidden_dim == 0) s.hidden_dim = (int32_t)(((8 * (int64_t)s.dim + 2) / 3 + 3) / 4 * 4);
    if (s.n_kv_heads == 0) s.n_kv_heads = s.n_heads;
    if (s.dim % s.n_heads || (s.dim / s.n_heads) % 2 || s.n_heads % s.n_kv_heads) {
        fprintf(stderr,
                "mkmodel: dim %d, heads %d, kv-heads %d: need dim %% heads == 0, an even head "
                "width and heads %% kv-heads == 0\n",
                (int)s.dim, (int)s.n_heads, (int)s.n_kv_heads);
        return 2;
    }
    if (mkmodel_write(out, &s, seed) != 0) {
        fprintf(stderr, "mkmodel: %s: %s\n", out, strerror(errno));
        return 1;
    }
    return 0;
}
