/* tok_gguf.c — the tokenizer stored in a GGUF file's metadata, as llama.cpp
 * reads it (tokenizer.ggml.*), built on the shared engine of tokenizer.c:
 *
 *   model "llama": SentencePiece BPE. tokens, scores (merge priority: the
 *       merged piece's score, highest first), token_type (SentencePiece's
 *       numbering: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused,
 *       6 byte); byte fallback through the <0xXX> pieces; a "▁" prefix
 *       unless tokenizer.ggml.add_space_prefix is false; spaces become "▁"
 *       and are not collapsed (Llama 2's normalizer). Same kind as a
 *       tokenizer.model: "sentencepiece".
 *   model "gpt2": byte-level BPE (GPT-2, Llama 3). tokens, merges ("a b",
 *       rank = index), token_type (control, user-defined and unknown tokens
 *       are matched whole in the raw text, like Hugging Face added tokens);
 *       the split pattern from tokenizer.ggml.pre (GPT-2's for gpt-2, mpt,
 *       olmo, ...; Llama 3's for llama-bpe, llama3, ..., which also take a
 *       chunk that is a whole token as it is). Kind "hf-bytelevel".
 *
 * BOS/EOS/unknown ids come from tokenizer.ggml.bos_token_id,
 * eos_token_id, unknown_token_id (SentencePiece defaults 1, 2, 0; none for
 * byte-level). Other tokenizer models (bert, t5, rwkv, ...) and
 * pre-tokenizers strata does not implement are refused by name.
 */
#include "gguf.h"
#include "tok_impl.h"

#include <float.h>
#include <string.h>

#define FAIL(...)                                      \
    do {                                               \
        rc = strata_fail(STRATA_E_FORMAT, __VA_ARGS__); \
        goto fail;                                     \
    } while (0)

static bool str_is(const char *s, size_t n, const char *lit)
{
    return s && n == strlen(lit) && !memcmp(s, lit, n);
}

/* Pre-tokenizer names llama.cpp maps to GPT-2's and Llama 3's patterns. */
static int pre_of(const char *s, size_t n, enum tok_pretok *p, bool *ignore_merges)
{
    static const char *const gpt2[] = {"gpt-2", "gpt2", "phi-2", "mpt", "olmo", "jais",
                                       "trillion", "jina-es", "jina-de", "jina-v2-es",
                                       "jina-v2-de", "gigachat", "a.x-4.0", "mellum"};
    static const char *const llama3[] = {"llama3", "llama-v3", "llama-bpe", "falcon3",
                                         "falcon-h1", "pixtral", "midm-2.0", "lfm2"};
    for (size_t i = 0; i < sizeof gpt2 / sizeof gpt2[0]; i++)
        if (str_is(s, n, gpt2[i])) {
            *p = PRE_GPT2;
            *ignore_merges = false;
            return 0;
        }
    for (size_t i = 0; i < sizeof llama3 / sizeof llama3[0]; i++)
        if (str_is(s, n, llama3[i])) {
            *p = PRE_LLAMA3;
            *ignore_merges = true;
            return 0;
        }
    return -1;
}

/* An id key, or -1 when absent or outside the vocabulary. */
static int get_id(const struct strata_gguf *g, const char *key, int64_t dflt, int64_t n,
                  int32_t *out)
{
    int64_t v;
    int rc = strata_gguf_int(g, key, dflt, INT64_MIN + 1, INT64_MAX, &v);
    if (rc) return rc;
    *out = v >= 0 && v < n ? (int32_t)v : -1;
    return 0;
}

static int build_merges(struct strata_tokenizer *tok, const struct strata_gguf *g)
{
    const char **ms = NULL;
    int32_t *ml = NULL;
    int64_t n_merge = 0;
    int rc = strata_gguf_strs(g, "tokenizer.ggml.merges", &ms, &ml, &n_merge);
    if (rc) return rc;
    if (!ms)
        return strata_fail(STRATA_E_FORMAT, "%s: tokenizer.ggml.model \"gpt2\" needs "
                           "tokenizer.ggml.merges", g->path);
    char *join = strata_tok_merges_alloc(tok, n_merge);
    for (int64_t r = 0; r < n_merge; r++) {
        const char *s = ms[r], *sp = memchr(s, ' ', (size_t)ml[r]);
        const size_t na = sp ? (size_t)(sp - s) : 0, nb = sp ? (size_t)ml[r] - na - 1 : 0;
        int32_t ia = -1, ib = -1, ij = -1;
        if (sp && !memchr(sp + 1, ' ', nb)) {
            ia = strata_tok_lookup(tok, s, na);
            ib = strata_tok_lookup(tok, sp + 1, nb);
        }
        if (ia >= 0 && ib >= 0) {
            memcpy(join, s, na);
            memcpy(join + na, sp + 1, nb);
            ij = strata_tok_lookup(tok, join, na + nb);
        }
        if (ij < 0) {
            rc = strata_fail(STRATA_E_FORMAT,
                             "%s: tokenizer.ggml.merges[%lld] '%.*s': %s", g->path, (long long)r,
                             ml[r] > 64 ? 64 : (int)ml[r], s,
                             !sp || ia < 0 || ib < 0 ? "not two vocabulary pieces separated by "
                                                       "one space"
                                                     : "the merged piece is not in the vocabulary");
            break;
        }
        /* As in tok_hf.c: a later duplicate replaces an earlier one. */
        uint64_t key = (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib;
        uint64_t h = key * 0x9E3779B97F4A7C15ull, i = (h ^ (h >> 32)) & tok->merge_mask;
        while (tok->merge[i].pair != UINT64_MAX && tok->merge[i].pair != key)
            i = (i + 1) & tok->merge_mask;
        tok->merge[i] = (struct tok_merge){key, (uint32_t)r, ij};
    }
    free(join);
    free(ms);
    free(ml);
    return rc;
}

int strata_tok_gguf_load(struct strata_tokenizer **out, const char *path)
{
    struct strata_gguf *g = NULL;
    struct strata_tokenizer *tok = NULL;
    const char **ps = NULL;
    int32_t *pn = NULL;
    double *scores = NULL, *types = NULL;
    bool *want = NULL;
    int64_t n = 0, n_scores = 0, n_types = 0;
    *out = NULL;
    int rc = strata_gguf_open(&g, path, false);
    if (rc) return rc;
    const char *model, *pre;
    size_t mn, pren;
    if ((rc = strata_gguf_str(g, "tokenizer.ggml.model", &model, &mn))) goto fail;
    if (!model)
        FAIL("%s: no tokenizer.ggml.model: this GGUF holds no tokenizer; pass --tokenizer", path);
    const bool spm = str_is(model, mn, "llama"), bytelevel = str_is(model, mn, "gpt2");
    if (!spm && !bytelevel)
        FAIL("%s: tokenizer.ggml.model \"%.*s\" is not supported (llama: SentencePiece BPE, "
             "gpt2: byte-level BPE); pass --tokenizer with the model's tokenizer.json",
             path, (int)(mn > 64 ? 64 : mn), model);
    if ((rc = strata_gguf_strs(g, "tokenizer.ggml.tokens", &ps, &pn, &n))) goto fail;
    if (n == 0) FAIL("%s: tokenizer.ggml.tokens is missing or empty", path);
    if ((rc = strata_gguf_nums(g, "tokenizer.ggml.scores", &scores, &n_scores)) ||
        (rc = strata_gguf_nums(g, "tokenizer.ggml.token_type", &types, &n_types)))
        goto fail;
    if (spm && n_scores != n)
        FAIL("%s: tokenizer.ggml.scores has %lld entries for %lld tokens", path,
             (long long)n_scores, (long long)n);
    if (types && n_types != n)
        FAIL("%s: tokenizer.ggml.token_type has %lld entries for %lld tokens", path,
             (long long)n_types, (long long)n);
    tok = strata_tok_alloc(path, spm ? TOK_SPM : TOK_HF_BYTELEVEL, (int32_t)n);
    for (int64_t i = 0; i < n; i++) {
        double t = types ? types[i] : TT_NORMAL;
        if (!(t >= 0 && t <= 6) || t != (double)(int)t)
            FAIL("%s: token %lld has token_type %g, not 0..6", path, (long long)i, t);
        if (pn[i] == 0) FAIL("%s: token %lld is empty", path, (long long)i);
        tok->type[i] = (uint8_t)(t == 0 ? TT_NORMAL : t); /* 0: llama.cpp's "undefined" */
        if (spm && tok->type[i] == TT_UNUSED)
            FAIL("%s: token %lld '%.*s' is UNUSED; strata does not implement SentencePiece's "
                 "re-splitting of unused pieces", path, (long long)i, pn[i] > 64 ? 64 : pn[i], ps[i]);
    }
    strata_tok_set_pieces(tok, ps, pn);
    want = xcalloc((size_t)n, 1);
    if (spm) {
        bool prefix;
        tok->score = xmalloc((size_t)n * sizeof *tok->score);
        for (int64_t i = 0; i < n; i++) /* float64 arrays: clamp into float's range */
            tok->score[i] = scores[i] > (double)FLT_MAX    ? FLT_MAX
                            : scores[i] < -(double)FLT_MAX ? -FLT_MAX
                                                           : (float)scores[i];
        if ((rc = get_id(g, "tokenizer.ggml.unknown_token_id", 0, n, &tok->unk)) ||
            (rc = get_id(g, "tokenizer.ggml.bos_token_id", 1, n, &tok->bos)) ||
            (rc = get_id(g, "tokenizer.ggml.eos_token_id", 2, n, &tok->eos)) ||
            (rc = strata_gguf_bool(g, "tokenizer.ggml.add_space_prefix", true, &prefix)))
            goto fail;
        tok->byte_fallback = true;
        tok->add_dummy_prefix = prefix;
        tok->remove_extra_ws = false;
        tok->escape_ws = true;
        if ((rc = strata_tok_finish(tok))) goto fail;
        for (int64_t i = 0; i < n; i++) want[i] = tok->type[i] == TT_USER;
        strata_tok_matcher_build(tok, &tok->norm, want);
    } else {
        if ((rc = strata_gguf_str(g, "tokenizer.ggml.pre", &pre, &pren))) goto fail;
        if (pre_of(pre, pren, &tok->pretok, &tok->ignore_merges))
            FAIL("%s: tokenizer.ggml.pre \"%.*s\" is a split pattern strata does not implement "
                 "(it has GPT-2's, e.g. gpt-2, mpt, olmo, and Llama 3's, e.g. llama-bpe); pass "
                 "--tokenizer with the model's tokenizer.json", path,
                 pre ? (int)(pren > 64 ? 64 : pren) : 6, pre ? pre : "(none)");
        if ((rc = get_id(g, "tokenizer.ggml.bos_token_id", -1, n, &tok->bos)) ||
            (rc = get_id(g, "tokenizer.ggml.eos_token_id", -1, n, &tok->eos)))
            goto fail;
        for (int64_t i = 0; i < n; i++) {
            const uint8_t t = tok->type[i];
            if (t == TT_CONTROL || t == TT_USER || t == TT_UNKNOWN) want[i] = true;
            if (t == TT_UNKNOWN) tok->type[i] = TT_CONTROL;
            else if (t != TT_CONTROL && t != TT_USER) tok->type[i] = TT_NORMAL;
        }
        if ((rc = strata_tok_finish(tok)) || (rc = build_merges(tok, g))) goto fail;
        strata_tok_matcher_build(tok, &tok->raw, want);
    }
    *out = tok;
    tok = NULL;
fail:
    free(ps);
    free(pn);
    free(scores);
    free(types);
    free(want);
    strata_gguf_free(g);
    strata_tokenizer_free(tok);
    return rc;
}

int strata_tok_gguf_dir(struct strata_tokenizer **out, const char *dir)
{
    char *file = NULL;
    int rc = strata_gguf_dir_file(&file, dir);
    if (rc) return rc;
    rc = strata_tok_gguf_load(out, file);
    free(file);
    return rc;
}
