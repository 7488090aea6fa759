/* tokenize_tool — test tool: encode byte strings with any tokenizer strata
 * opens (strata_tokenizer_open: a file or a checkpoint directory), for the
 * Python references to compare against (tests/test_spm_ref.py,
 * tests/test_convert.py). The strings are arbitrary bytes, invalid UTF-8
 * included, so they travel in a length-prefixed file, not on the command
 * line.
 *
 * usage: tokenize_tool [--bos] [--eos] TOKENIZER IN OUT
 *   IN   records, each a uint32 little-endian byte length + that many bytes
 *   OUT  first line "kind <strata_tokenizer_kind>", then one line per record:
 *        its ids separated by spaces (an empty line for none), or
 *        "error: <message>" when encode refuses the record
 * Exit 0 when every record was handled, 1 when the tokenizer or a file
 * cannot be read or written, 2 on a usage error.
 */
#include "strata.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int die(const char *what, const char *path)
{
    fprintf(stderr, "tokenize_tool: %s %s\n", what, path);
    return 1;
}

int main(int argc, char **argv)
{
    bool bos = false, eos = false;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--bos")) bos = true;
        else if (!strcmp(argv[i], "--eos")) eos = true;
        else break;
    }
    if (argc - i != 3) {
        fprintf(stderr, "usage: tokenize_tool [--bos] [--eos] TOKENIZER IN OUT\n");
        return 2;
    }
    const char *tok_path = argv[i], *in_path = argv[i + 1], *out_path = argv[i + 2];
    struct strata_tokenizer *tok = NULL;
    if (strata_tokenizer_open(&tok, tok_path) != 0) {
        fprintf(stderr, "tokenize_tool: %s\n", strata_last_error());
        return 1;
    }
    FILE *in = fopen(in_path, "rb");
    if (!in) return die("cannot read", in_path);
    FILE *out = fopen(out_path, "wb");
    if (!out) return die("cannot write", out_path);
    fprintf(out, "kind %s\n", strata_tokenizer_kind(tok));
    unsigned char head[4];
    char *buf = NULL;
    int rc = 0;
    while (fread(head, 1, 4, in) == 4) {
        size_t n = (size_t)head[0] | (size_t)head[1] << 8 | (size_t)head[2] << 16 |
                   (size_t)head[3] << 24;
        buf = realloc(buf, n + 1);
        if (!buf || fread(buf, 1, n, in) != n) {
            rc = die("truncated record in", in_path);
            break;
        }
        int32_t *ids = NULL;
        int64_t n_ids = 0;
        if (strata_tokenizer_encode(tok, &ids, &n_ids, buf, n, bos, eos) != 0) {
            fprintf(out, "error: %s\n", strata_last_error());
            continue;
        }
        for (int64_t k = 0; k < n_ids; k++) fprintf(out, k ? " %d" : "%d", (int)ids[k]);
        fputc('\n', out);
        free(ids);
    }
    if (ferror(in)) rc = die("read failed:", in_path);
    if (fclose(out) != 0) rc = die("write failed:", out_path);
    fclose(in);
    free(buf);
    strata_tokenizer_free(tok);
    return rc;
}
