/* tok_save.c — write a tokenizer as Hugging Face files (tokenizer.json,
 * tokenizer_config.json), so that a checkpoint strata-convert writes loads
 * in transformers as well as in strata (issue 14), even when it came from a
 * llama2.c tokenizer.bin that no Hugging Face tool reads.
 *
 * What is written is what transformers' LlamaConverter
 * (convert_slow_tokenizer.py) makes of a SentencePiece BPE model with byte
 * fallback:
 *   model       BPE, byte_fallback, fuse_unk, unk_token = the <unk> piece,
 *               vocab = every piece with its id, merges derived from the
 *               scores as SentencePieceExtractor does: each split of a
 *               piece (at a character boundary) into two pieces that are
 *               both in the vocabulary is a merge; a piece's merges in
 *               order of (left id, right id); all merges then stably sorted
 *               by the merged piece's score, highest first
 *   normalizer  Prepend("▁") (when the model adds a dummy prefix), then
 *               Replace(" " -> "▁")
 *   pre_tokenizer none; post_processor TemplateProcessing "<s> $A"
 *   decoder     Replace("▁" -> " "), ByteFallback, Fuse, Strip(1 leading
 *               space, with the dummy prefix)
 *   added_tokens the unknown and control pieces (special), user-defined
 *               pieces (not special, matched after normalization)
 * tokenizer_config.json names bos/eos/unk, tokenizer_class LlamaTokenizer,
 * legacy true (the behaviour the merges above encode) and model_max_length.
 *
 * From a llama2.c tokenizer.bin (llama2.c's tokenizer.py export): every
 * space in a piece was a "▁" and is one again (the .bin spells "▁" as a
 * space, so the original cannot hold a literal U+2581 and nothing is lost);
 * ids 0, 1, 2 are <unk>, <s>, </s> (the export writes BOS/EOS as "\n<s>\n"
 * and "\n</s>\n": the newlines are dropped). The scores are the model's.
 *
 * strata reads the result back as kind hf-bpe, which encodes as the
 * source did (tests/test_convert.py checks it on TinyStories, and against
 * python tokenizers where installed); the llama2.c kind differs only
 * where run.c differs from SentencePiece (invalid UTF-8, a literal U+2581;
 * docs/CHECKPOINTS.md).
 */
#include "tok_impl.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char LOWER_BLOCK[] = "\xe2\x96\x81"; /* U+2581, SentencePiece's space */

struct merge_row {
    int32_t left, right; /* the two halves' ids */
    float score;         /* the merged piece's score */
    int64_t order;       /* position before the score sort (stable) */
};

static int by_halves(const void *pa, const void *pb)
{
    const struct merge_row *a = pa, *b = pb;
    if (a->left != b->left) return a->left < b->left ? -1 : 1;
    return (a->right > b->right) - (a->right < b->right);
}

static int by_score(const void *pa, const void *pb)
{
    const struct merge_row *a = pa, *b = pb;
    if (a->score > b->score) return -1;
    if (a->score < b->score) return 1;
    return (a->order > b->order) - (a->order < b->order);
}

/* Write text to dir/name through dir/name.partial and a rename. */
static int write_atomic(const char *dir, const char *name, const char *text)
{
    char *path = strata_path_join(dir, name);
    size_t n = strlen(path) + 9;
    char *tmp = xmalloc(n);
    snprintf(tmp, n, "%s.partial", path);
    int rc = 0;
    FILE *f = fopen(tmp, "wb");
    bool ok = f && fputs(text, f) != EOF && fputc('\n', f) != EOF;
    if (f && fclose(f) != 0) ok = false;
    if (!ok)
        rc = strata_fail(STRATA_E_IO, "%s: cannot write: %s", tmp, strerror(errno));
    else if (rename(tmp, path) != 0)
        rc = strata_fail(STRATA_E_IO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    if (rc) remove(tmp);
    free(tmp);
    free(path);
    return rc;
}


/* {"id": content, "type_id": type_id}: a TemplateProcessing piece. */
static cJSON *template_piece(const char *content, int type_id)
{
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "id", content);
    cJSON_AddNumberToObject(t, "type_id", type_id);
    return t;
}

int strata_tokenizer_save_hf(const struct strata_tokenizer *tok, const char *dir,
                             int64_t model_max_length)
{
    if (!tok || !dir) return strata_fail(STRATA_E_ARG, "strata_tokenizer_save_hf: NULL argument");
    const bool l2c = tok->kind == TOK_LLAMA2C;
    if (!l2c && tok->kind != TOK_SPM)
        return strata_fail(STRATA_E_ARG, "%s: a %s tokenizer already is a tokenizer.json: copy "
                           "the file instead of writing one", tok->path,
                           strata_tokenizer_kind(tok));
    if (!l2c && (tok->remove_extra_ws || !tok->escape_ws || !tok->byte_fallback))
        return strata_fail(STRATA_E_ARG, "%s: normalizer_spec remove_extra_whitespaces %d, "
                           "escape_whitespaces %d, byte_fallback %d: only the Llama form "
                           "(0, 1, 1) has a tokenizer.json equivalent; keep the tokenizer.model",
                           tok->path, tok->remove_extra_ws, tok->escape_ws, tok->byte_fallback);
    if (tok->unk < 0)
        return strata_fail(STRATA_E_ARG, "%s: the tokenizer has no <unk> piece, which a "
                           "tokenizer.json with byte fallback needs", tok->path);
    const int32_t V = tok->n_vocab;
    const bool dummy = l2c || tok->add_dummy_prefix;

    /* Pieces as tokenizer.json spells them (hp, hn), and their types. */
    char **hp = xcalloc((size_t)V, sizeof *hp);
    int32_t *hn = xmalloc((size_t)V * sizeof *hn);
    uint8_t *type = xmalloc((size_t)V);
    struct strata_tokenizer *look = NULL;
    struct merge_row *rows = NULL;
    int rc = 0;
    for (int32_t i = 0; i < V; i++) {
        const char *p = tok->arena + tok->off[i];
        size_t n = (size_t)tok->len[i];
        type[i] = tok->type[i];
        if (l2c) {
            if (i == tok->unk) type[i] = TT_UNKNOWN;
            else if (i == tok->bos || i == tok->eos) type[i] = TT_CONTROL;
            if (type[i] == TT_CONTROL) /* "\n<s>\n" -> "<s>" */
                while (n > 0 && (p[0] == '\n' || p[n - 1] == '\n')) {
                    if (p[0] == '\n') p++, n--;
                    else n--;
                }
        }
        size_t spaces = 0;
        for (size_t j = 0; j < n; j++) spaces += p[j] == ' ';
        char *q = xmalloc(n + 2 * spaces + 1);
        size_t k = 0;
        for (size_t j = 0; j < n; j++) {
            if (l2c && p[j] == ' ') {
                memcpy(q + k, LOWER_BLOCK, 3);
                k += 3;
            } else {
                q[k++] = p[j];
            }
        }
        q[k] = '\0';
        hp[i] = q;
        hn[i] = (int32_t)k;
        for (size_t j = 0; j < k;) {
            size_t c = strata_tok_utf8_len(q + j, k - j);
            if (c == 0 || (c == 1 && q[j] == '\0')) {
                rc = strata_fail(STRATA_E_FORMAT, "%s: piece %d is not valid UTF-8 text, which "
                                 "tokenizer.json cannot hold", tok->path, (int)i);
                goto done;
            }
            j += c;
        }
        if (k == 0) {
            rc = strata_fail(STRATA_E_FORMAT, "%s: piece %d is empty", tok->path, (int)i);
            goto done;
        }
    }

    /* A lookup over the new spellings; a vocabulary is a JSON object, so
     * two ids may not share a piece. */
    look = strata_tok_alloc(tok->path, TOK_HF_BPE, V);
    strata_tok_set_pieces(look, (const char *const *)hp, hn);
    if ((rc = strata_tok_finish(look)) != 0) goto done;
    for (int32_t i = 0; i < V; i++) {
        int32_t j = strata_tok_lookup(look, hp[i], (size_t)hn[i]);
        if (j != i) {
            rc = strata_fail(STRATA_E_FORMAT, "%s: pieces %d and %d are both '%s'; a "
                             "tokenizer.json vocabulary needs distinct pieces", tok->path,
                             (int)j, (int)i, hp[i]);
            goto done;
        }
    }

    /* Merges, as SentencePieceExtractor derives them from the scores. */
    int64_t n_rows = 0, cap = 1024;
    rows = xmalloc((size_t)cap * sizeof *rows);
    for (int32_t i = 0; i < V; i++) {
        const int64_t first = n_rows;
        for (int32_t k = 1; k < hn[i]; k++) {
            if (((unsigned char)hp[i][k] & 0xC0) == 0x80) continue; /* inside a character */
            int32_t l = strata_tok_lookup(look, hp[i], (size_t)k);
            int32_t r = l < 0 ? -1 : strata_tok_lookup(look, hp[i] + k, (size_t)(hn[i] - k));
            if (r < 0) continue;
            if (n_rows == cap) rows = xrealloc(rows, (size_t)(cap *= 2) * sizeof *rows);
            rows[n_rows++] = (struct merge_row){l, r, tok->score ? tok->score[i] : 0.0f, 0};
        }
        qsort(rows + first, (size_t)(n_rows - first), sizeof *rows, by_halves);
    }
    for (int64_t m = 0; m < n_rows; m++) rows[m].order = m;
    qsort(rows, (size_t)n_rows, sizeof *rows, by_score);
    bool spaced = false; /* a piece with a space cannot be written "a b" */
    for (int32_t i = 0; i < V && !spaced; i++) spaced = strchr(hp[i], ' ') != NULL;

    /* tokenizer.json */
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "version", "1.0");
    cJSON_AddNullToObject(j, "truncation");
    cJSON_AddNullToObject(j, "padding");
    cJSON *added = cJSON_AddArrayToObject(j, "added_tokens");
    for (int32_t i = 0; i < V; i++) {
        if (type[i] != TT_UNKNOWN && type[i] != TT_CONTROL && type[i] != TT_USER) continue;
        cJSON *a = cJSON_CreateObject();
        cJSON_AddNumberToObject(a, "id", i);
        cJSON_AddStringToObject(a, "content", hp[i]);
        cJSON_AddBoolToObject(a, "single_word", false);
        cJSON_AddBoolToObject(a, "lstrip", false);
        cJSON_AddBoolToObject(a, "rstrip", false);
        cJSON_AddBoolToObject(a, "normalized", type[i] == TT_USER);
        cJSON_AddBoolToObject(a, "special", type[i] != TT_USER);
        cJSON_AddItemToArray(added, a);
    }
    cJSON *norm = cJSON_AddObjectToObject(j, "normalizer");
    cJSON_AddStringToObject(norm, "type", "Sequence");
    cJSON *steps = cJSON_AddArrayToObject(norm, "normalizers");
    if (dummy) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "type", "Prepend");
        cJSON_AddStringToObject(s, "prepend", LOWER_BLOCK);
        cJSON_AddItemToArray(steps, s);
    }
    cJSON *rep = cJSON_CreateObject();
    cJSON_AddStringToObject(rep, "type", "Replace");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(rep, "pattern"), "String", " ");
    cJSON_AddStringToObject(rep, "content", LOWER_BLOCK);
    cJSON_AddItemToArray(steps, rep);
    cJSON_AddNullToObject(j, "pre_tokenizer");
    if (tok->bos >= 0) {
        const char *b = hp[tok->bos];
        cJSON *pp = cJSON_AddObjectToObject(j, "post_processor");
        cJSON_AddStringToObject(pp, "type", "TemplateProcessing");
        cJSON *single = cJSON_AddArrayToObject(pp, "single");
        cJSON *pair = cJSON_AddArrayToObject(pp, "pair");
        const char *parts[4] = {b, "A", b, "B"}; /* single: the first two */
        for (int k = 0; k < 6; k++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddItemToObject(x, k % 2 ? "Sequence" : "SpecialToken",
                                  template_piece(parts[k < 2 ? k : k - 2], k < 4 ? 0 : 1));
            cJSON_AddItemToArray(k < 2 ? single : pair, x);
        }
        cJSON *sp = cJSON_AddObjectToObject(cJSON_AddObjectToObject(pp, "special_tokens"), b);
        const int bos_id = tok->bos;
        cJSON_AddStringToObject(sp, "id", b);
        cJSON_AddItemToObject(sp, "ids", cJSON_CreateIntArray(&bos_id, 1));
        cJSON_AddItemToObject(sp, "tokens", cJSON_CreateStringArray(&b, 1));
    } else {
        cJSON_AddNullToObject(j, "post_processor");
    }
    cJSON *dec = cJSON_AddObjectToObject(j, "decoder");
    cJSON_AddStringToObject(dec, "type", "Sequence");
    cJSON *ds = cJSON_AddArrayToObject(dec, "decoders");
    cJSON *d0 = cJSON_CreateObject();
    cJSON_AddStringToObject(d0, "type", "Replace");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(d0, "pattern"), "String", LOWER_BLOCK);
    cJSON_AddStringToObject(d0, "content", " ");
    cJSON_AddItemToArray(ds, d0);
    static const char *const plain[] = {"ByteFallback", "Fuse"};
    for (int k = 0; k < 2; k++) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "type", plain[k]);
        cJSON_AddItemToArray(ds, d);
    }
    if (dummy) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "type", "Strip");
        cJSON_AddStringToObject(d, "content", " ");
        cJSON_AddNumberToObject(d, "start", 1);
        cJSON_AddNumberToObject(d, "stop", 0);
        cJSON_AddItemToArray(ds, d);
    }
    cJSON *model = cJSON_AddObjectToObject(j, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    cJSON_AddStringToObject(model, "unk_token", hp[tok->unk]);
    cJSON_AddNullToObject(model, "continuing_subword_prefix");
    cJSON_AddNullToObject(model, "end_of_word_suffix");
    cJSON_AddBoolToObject(model, "fuse_unk", true);
    cJSON_AddBoolToObject(model, "byte_fallback", true);
    cJSON_AddBoolToObject(model, "ignore_merges", false);
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    for (int32_t i = 0; i < V; i++) cJSON_AddNumberToObject(vocab, hp[i], i);
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    for (int64_t m = 0; m < n_rows; m++) {
        const char *l = hp[rows[m].left], *r = hp[rows[m].right];
        if (spaced) {
            const char *two[2] = {l, r};
            cJSON_AddItemToArray(merges, cJSON_CreateStringArray(two, 2));
            continue;
        }
        size_t nl = strlen(l), nr = strlen(r);
        char *s = xmalloc(nl + nr + 2);
        memcpy(s, l, nl);
        s[nl] = ' ';
        memcpy(s + nl + 1, r, nr + 1);
        cJSON_AddItemToArray(merges, cJSON_CreateString(s));
        free(s);
    }
    char *text = strata_json_text(j);
    rc = write_atomic(dir, "tokenizer.json", text);
    free(text);
    if (rc) goto done;

    /* tokenizer_config.json: what transformers' AutoTokenizer needs. */
    cJSON *c = cJSON_CreateObject();
    cJSON_AddBoolToObject(c, "add_bos_token", tok->bos >= 0);
    cJSON_AddBoolToObject(c, "add_eos_token", false);
    if (tok->bos >= 0) cJSON_AddStringToObject(c, "bos_token", hp[tok->bos]);
    if (tok->eos >= 0) cJSON_AddStringToObject(c, "eos_token", hp[tok->eos]);
    cJSON_AddStringToObject(c, "unk_token", hp[tok->unk]);
    cJSON_AddNullToObject(c, "pad_token");
    cJSON_AddBoolToObject(c, "clean_up_tokenization_spaces", false);
    cJSON_AddBoolToObject(c, "legacy", true);
    if (model_max_length > 0) cJSON_AddNumberToObject(c, "model_max_length", (double)model_max_length);
    cJSON_AddStringToObject(c, "tokenizer_class", "LlamaTokenizer");
    text = strata_json_text(c);
    rc = write_atomic(dir, "tokenizer_config.json", text);
    free(text);

done:
    for (int32_t i = 0; i < V; i++) free(hp[i]);
    free(hp);
    free(hn);
    free(type);
    free(rows);
    strata_tokenizer_free(look);
    return rc;
}
