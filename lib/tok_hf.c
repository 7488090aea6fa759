/* tok_hf.c — Hugging Face tokenizer.json: load the BPE model, normalizer,
 * pre-tokenizer and added tokens, and encode as the `tokenizers` library
 * does. Two kinds:
 *   hf-bpe        SentencePiece-style BPE (Llama 2, Mistral, TinyLlama):
 *                 normalizer Prepend("▁") + Replace(" " -> "▁") or a
 *                 Metaspace pre-tokenizer; symbols are code points; a code
 *                 point missing from the vocabulary becomes its <0xXX> byte
 *                 pieces (byte_fallback) or <unk>.
 *   hf-bytelevel  GPT-2 / GPT-NeoX / Llama 3: the text is cut by a split
 *                 pattern, every byte of a chunk stands for one character of
 *                 GPT-2's byte alphabet, chunks merge independently.
 * Merges apply lowest rank first (rank = index in "merges"), leftmost on
 * ties, as tokenizers' Word::merge_all does.
 *
 * Order of work, as tokenizers' AddedVocabulary does it: added tokens with
 * "normalized": false are matched on the raw text (leftmost-longest); the
 * text between them is normalized; added tokens with "normalized": true are
 * matched on that; the rest is pre-tokenized into chunks and each chunk goes
 * through the BPE model.
 *
 * The split patterns are regular expressions in the file; rather than carry
 * a regex engine, strata recognises the two patterns in use by their exact
 * text and runs a hand-written matcher for each (strata_tok_pretok_next), with
 * \p{L}, \p{N} and \s from lib/unicode_tables.h. Any other pattern is an
 * error that quotes it. Text that is not valid UTF-8 (tokenizers never sees
 * any: a Rust string cannot hold it): hf-bpe replaces each byte that starts
 * no valid character by U+FFFD first, as SentencePiece does (the model it
 * was converted from); hf-bytelevel keeps the bytes, each mapped to its
 * GPT-2 character like any other byte, and the split patterns treat each
 * invalid byte as a character of no class.
 *
 * Not supported (refused at load, with the field named): model types other
 * than BPE, continuing_subword_prefix / end_of_word_suffix, normalizers
 * other than Prepend/Replace(String)/Sequence of them, pre-tokenizers other
 * than Metaspace, ByteLevel and Split(one of the two patterns) + ByteLevel.
 * Ignored: dropout (inference never samples), added tokens' lstrip/rstrip/
 * single_word, truncation and padding.
 */
#include "tok_impl.h"
#include "unicode_tables.h"

#include <cjson/cJSON.h>
#include <string.h>

static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char LLAMA3_PATTERN[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}"
    "\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* ------------------------------------------------------ character classes */

enum { C_OTHER, C_L, C_N, C_S };

static bool in_ranges(const uint32_t (*r)[2], size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid][0]) hi = mid;
        else if (cp > r[mid][1]) lo = mid + 1;
        else return true;
    }
    return false;
}

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static int char_class(uint32_t cp)
{
    if (cp < 0x80) {
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return C_L;
        if (cp >= '0' && cp <= '9') return C_N;
        if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return C_S;
        return C_OTHER;
    }
    if (cp == UINT32_MAX) return C_OTHER; /* invalid UTF-8 byte */
    if (in_ranges(uni_letter, N_OF(uni_letter), cp)) return C_L;
    if (in_ranges(uni_number, N_OF(uni_number), cp)) return C_N;
    if (in_ranges(uni_space, N_OF(uni_space), cp)) return C_S;
    return C_OTHER;
}

struct ch {
    uint32_t cp;  /* UINT32_MAX: an invalid byte; 0 with len 0: end of text */
    size_t len;
    int cls;
};

/* The character at byte i; strict UTF-8 (no overlongs, surrogates or
 * values past U+10FFFF), else one invalid byte. */
static struct ch char_at(const char *str, size_t n, size_t i)
{
    struct ch c = {0, 0, C_OTHER};
    if (i >= n) return c;
    const unsigned char *s = (const unsigned char *)str + i;
    size_t left = n - i;
    unsigned char b = s[0];
    uint32_t cp = UINT32_MAX;
    size_t k = 1;
    if (b < 0x80) {
        cp = b;
    } else if (b >= 0xC2 && b <= 0xDF && left >= 2 && (s[1] & 0xC0) == 0x80) {
        cp = (uint32_t)(b & 0x1F) << 6 | (s[1] & 0x3F);
        k = 2;
    } else if (b >= 0xE0 && b <= 0xEF && left >= 3 && (s[1] & 0xC0) == 0x80 &&
               (s[2] & 0xC0) == 0x80) {
        uint32_t v = (uint32_t)(b & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
        if (v >= 0x800 && (v < 0xD800 || v > 0xDFFF)) {
            cp = v;
            k = 3;
        }
    } else if (b >= 0xF0 && b <= 0xF4 && left >= 4 && (s[1] & 0xC0) == 0x80 &&
               (s[2] & 0xC0) == 0x80 && (s[3] & 0xC0) == 0x80) {
        uint32_t v = (uint32_t)(b & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 |
                     (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
        if (v >= 0x10000 && v <= 0x10FFFF) {
            cp = v;
            k = 4;
        }
    }
    c.cp = cp;
    c.len = k;
    c.cls = char_class(cp);
    return c;
}

/* Extend from i over characters of class cls; returns the end. */
static size_t run_of(const char *s, size_t n, size_t i, int cls)
{
    for (;;) {
        struct ch c = char_at(s, n, i);
        if (c.len == 0 || c.cls != cls) return i;
        i += c.len;
    }
}

static bool is_crlf(struct ch c)
{
    return c.cp == '\r' || c.cp == '\n';
}

/* A whitespace run from i (first char is \s): \s+(?!\S) then \s+. */
static size_t space_tail(const char *s, size_t n, size_t i)
{
    size_t end = i, last = i, count = 0;
    for (;;) {
        struct ch c = char_at(s, n, end);
        if (c.len == 0 || c.cls != C_S) break;
        last = end;
        end += c.len;
        count++;
    }
    if (end == n) return end;      /* nothing follows: (?!\S) holds at the end */
    if (count >= 2) return last;   /* give back one space: it is no \S */
    return end;                    /* \s+ */
}

/* Case-insensitive contraction after an apostrophe at i (Llama 3), or the
 * case-sensitive one (GPT-2): 's 't 're 've 'm 'll 'd. Returns the length
 * after the apostrophe, or 0. U+017F (long s) folds to s. */
static size_t contraction(const char *s, size_t n, size_t i, bool fold)
{
    struct ch a = char_at(s, n, i + 1);
    if (a.len == 0) return 0;
    uint32_t x = a.cp;
    if (fold && x == 0x17F) x = 's';
    if (fold && x < 0x80) x |= 0x20 * (x >= 'A' && x <= 'Z');
    if (x == 's' || x == 't' || x == 'm' || x == 'd') return a.len;
    if (x != 'r' && x != 'v' && x != 'l') return 0;
    struct ch b = char_at(s, n, i + 1 + a.len);
    if (b.len == 0) return 0;
    uint32_t y = b.cp;
    if (fold && y < 0x80) y |= 0x20 * (y >= 'A' && y <= 'Z');
    if ((x == 'r' && y == 'e') || (x == 'v' && y == 'e') || (x == 'l' && y == 'l'))
        return a.len + b.len;
    return 0;
}

static size_t gpt2_next(const char *s, size_t n, size_t i)
{
    struct ch c = char_at(s, n, i);
    if (c.cp == '\'') {
        size_t k = contraction(s, n, i, false);
        if (k) return i + 1 + k;
    }
    /* ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+' */
    if (c.cp == ' ') {
        struct ch d = char_at(s, n, i + 1);
        if (d.len && d.cls != C_S) return run_of(s, n, i + 1, d.cls);
    }
    if (c.cls != C_S) return run_of(s, n, i, c.cls);
    return space_tail(s, n, i);
}

static size_t llama3_next(const char *s, size_t n, size_t i)
{
    struct ch c = char_at(s, n, i);
    if (c.cp == '\'') {
        size_t k = contraction(s, n, i, true);
        if (k) return i + 1 + k;
    }
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (c.cls == C_L) return run_of(s, n, i, C_L);
    if (c.cls != C_N && !is_crlf(c)) {
        struct ch d = char_at(s, n, i + c.len);
        if (d.len && d.cls == C_L) return run_of(s, n, i + c.len, C_L);
    }
    /* \p{N}{1,3} */
    if (c.cls == C_N) {
        size_t end = i;
        for (int k = 0; k < 3; k++) {
            struct ch d = char_at(s, n, end);
            if (d.len == 0 || d.cls != C_N) break;
            end += d.len;
        }
        return end;
    }
    /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
    size_t j = i;
    if (c.cp == ' ') {
        struct ch d = char_at(s, n, i + 1);
        if (d.len && d.cls == C_OTHER) j = i + 1;
    }
    if (char_at(s, n, j).cls == C_OTHER && char_at(s, n, j).len) {
        size_t end = run_of(s, n, j, C_OTHER);
        for (;;) {
            struct ch d = char_at(s, n, end);
            if (d.len == 0 || !is_crlf(d)) return end;
            end += d.len;
        }
    }
    /* \s*[\r\n]+ : up to and including the run's last \r or \n */
    size_t end = i, last_nl = SIZE_MAX;
    for (;;) {
        struct ch d = char_at(s, n, end);
        if (d.len == 0 || d.cls != C_S) break;
        if (is_crlf(d)) last_nl = end;
        end += d.len;
    }
    if (last_nl != SIZE_MAX) return last_nl + 1;
    return space_tail(s, n, i);
}

size_t strata_tok_pretok_next(enum tok_pretok p, const char *s, size_t n, size_t i)
{
    if (i >= n) return n;
    size_t end = p == PRE_LLAMA3 ? llama3_next(s, n, i) : gpt2_next(s, n, i);
    STRATA_ASSERT(end > i && end <= n);
    return end;
}

/* ------------------------------------------------------------------ load */

#define FAIL(...)                                                               \
    do {                                                                        \
        rc = strata_fail(STRATA_E_FORMAT, __VA_ARGS__);                         \
        goto fail;                                                              \
    } while (0)

/* "a b" or ["a", "b"]; false if neither. */
static bool merge_parts(const cJSON *m, const char **a, size_t *na, const char **b, size_t *nb)
{
    if (cJSON_IsString(m)) {
        const char *s = m->valuestring, *sp = strchr(s, ' ');
        if (!sp || strchr(sp + 1, ' ')) return false;
        *a = s;
        *na = (size_t)(sp - s);
        *b = sp + 1;
        *nb = strlen(sp + 1);
        return true;
    }
    if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2) {
        const cJSON *x = cJSON_GetArrayItem(m, 0), *y = cJSON_GetArrayItem(m, 1);
        if (!cJSON_IsString(x) || !cJSON_IsString(y)) return false;
        *a = x->valuestring;
        *na = strlen(x->valuestring);
        *b = y->valuestring;
        *nb = strlen(y->valuestring);
        return true;
    }
    return false;
}

static const char *type_of(const cJSON *o)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(t) ? t->valuestring : "";
}

static bool flag(const cJSON *o, const char *key, bool dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

/* Normalizer steps into tok->norm_op; 0 or a status. */
static int add_normalizer(struct strata_tokenizer *tok, const cJSON *o, const char *path)
{
    const char *t = type_of(o);
    if (strcmp(t, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "normalizers"), *x;
        if (!cJSON_IsArray(list))
            return strata_fail(STRATA_E_FORMAT, "%s: field normalizer.normalizers: expected an "
                               "array", path);
        cJSON_ArrayForEach(x, list) {
            int rc = add_normalizer(tok, x, path);
            if (rc) return rc;
        }
        return 0;
    }
    if (tok->n_norm == TOK_MAX_NORM)
        return strata_fail(STRATA_E_FORMAT, "%s: field normalizer: more than %d steps", path,
                           TOK_MAX_NORM);
    struct tok_norm *op = &tok->norm_op[tok->n_norm];
    if (strcmp(t, "Prepend") == 0) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "prepend");
        if (!cJSON_IsString(p))
            return strata_fail(STRATA_E_FORMAT, "%s: field normalizer Prepend.prepend: expected "
                               "a string", path);
        *op = (struct tok_norm){NORM_PREPEND, strata_xstrdup(p->valuestring), NULL};
    } else if (strcmp(t, "Replace") == 0) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(o, "pattern");
        const cJSON *str = cJSON_GetObjectItemCaseSensitive(pat, "String");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(o, "content");
        if (!cJSON_IsString(str) || !cJSON_IsString(content) || !str->valuestring[0])
            return strata_fail(STRATA_E_FORMAT, "%s: field normalizer Replace: strata supports "
                               "only {\"pattern\": {\"String\": non-empty}, \"content\": "
                               "string}", path);
        *op = (struct tok_norm){NORM_REPLACE, strata_xstrdup(str->valuestring),
                                strata_xstrdup(content->valuestring)};
    } else {
        return strata_fail(STRATA_E_FORMAT, "%s: field normalizer: type '%s' is not supported "
                           "(strata knows Sequence, Prepend, Replace)", path, t);
    }
    tok->n_norm++;
    return 0;
}

static int set_split(struct strata_tokenizer *tok, const cJSON *o, const char *path)
{
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(o, "pattern");
    const cJSON *re = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
    const cJSON *beh = cJSON_GetObjectItemCaseSensitive(o, "behavior");
    if (!cJSON_IsString(re))
        return strata_fail(STRATA_E_FORMAT, "%s: field pre_tokenizer Split.pattern: strata "
                           "supports only {\"Regex\": ...}", path);
    if (!cJSON_IsString(beh) || strcmp(beh->valuestring, "Isolated") != 0 ||
        flag(o, "invert", false))
        return strata_fail(STRATA_E_FORMAT, "%s: field pre_tokenizer Split: strata supports "
                           "only behavior \"Isolated\" without invert", path);
    if (strcmp(re->valuestring, GPT2_PATTERN) == 0) tok->pretok = PRE_GPT2;
    else if (strcmp(re->valuestring, LLAMA3_PATTERN) == 0) tok->pretok = PRE_LLAMA3;
    else
        return strata_fail(STRATA_E_FORMAT, "%s: field pre_tokenizer Split.pattern: unknown "
                           "regex \"%s\"; strata implements only the GPT-2 and Llama 3 "
                           "patterns", path, re->valuestring);
    return 0;
}

/* Pre-tokenizer into tok; *bytelevel set when a ByteLevel step is present. */
static int set_pretok(struct strata_tokenizer *tok, const cJSON *o, const char *path,
                      bool *bytelevel, bool nested)
{
    const char *t = type_of(o);
    if (strcmp(t, "Sequence") == 0 && !nested) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "pretokenizers"), *x;
        if (!cJSON_IsArray(list))
            return strata_fail(STRATA_E_FORMAT, "%s: field pre_tokenizer.pretokenizers: "
                               "expected an array", path);
        int k = 0;
        cJSON_ArrayForEach(x, list) {
            /* The one sequence in use: Split(pattern) then ByteLevel without
             * its own regex. */
            const char *tx = type_of(x);
            bool ok = (k == 0 && strcmp(tx, "Split") == 0) ||
                      (k == 1 && strcmp(tx, "ByteLevel") == 0 && !flag(x, "use_regex", true));
            if (!ok)
                return strata_fail(STRATA_E_FORMAT, "%s: field pre_tokenizer: Sequence step %d "
                                   "'%s' is not supported (strata knows [Split, ByteLevel "
                                   "with use_regex false])", path, k, tx);
            int rc = set_pretok(tok, x, path, bytelevel, true);
            if (rc) return rc;
            k++;
        }
        if (k != 2)
            return strata_fail(STRATA_E_FORMAT, "%s: field pre_tokenizer: Sequence of %d steps "
                               "is not supported (strata knows [Split, ByteLevel])", path, k);
        return 0;
    }
    if (strcmp(t, "Split") == 0 && nested) return set_split(tok, o, path);
    if (strcmp(t, "ByteLevel") == 0) {
        *bytelevel = true;
        tok->prefix_space = flag(o, "add_prefix_space", true);
        if (!nested && flag(o, "use_regex", true)) tok->pretok = PRE_GPT2;
        return 0;
    }
    if (strcmp(t, "Metaspace") == 0 && !nested) {
        const cJSON *rep = cJSON_GetObjectItemCaseSensitive(o, "replacement");
        const cJSON *scheme = cJSON_GetObjectItemCaseSensitive(o, "prepend_scheme");
        const char *r = cJSON_IsString(rep) ? rep->valuestring : "\xe2\x96\x81";
        if (!r[0] || strlen(r) >= sizeof tok->meta_rep)
            return strata_fail(STRATA_E_FORMAT, "%s: field pre_tokenizer Metaspace.replacement "
                               "must be one character", path);
        strcpy(tok->meta_rep, r);
        tok->meta_active = true;
        tok->meta_prepend = flag(o, "add_prefix_space", true) ? 2 : 0;
        if (cJSON_IsString(scheme)) {
            const char *s = scheme->valuestring;
            if (strcmp(s, "always") == 0) tok->meta_prepend = 2;
            else if (strcmp(s, "first") == 0) tok->meta_prepend = 1;
            else if (strcmp(s, "never") == 0) tok->meta_prepend = 0;
            else
                return strata_fail(STRATA_E_FORMAT, "%s: field pre_tokenizer Metaspace."
                                   "prepend_scheme '%s' is not always/first/never", path, s);
        }
        if (flag(o, "split", true)) tok->pretok = PRE_METASPACE;
        return 0;
    }
    return strata_fail(STRATA_E_FORMAT, "%s: field pre_tokenizer: type '%s' is not supported "
                       "(strata knows Metaspace, ByteLevel, Sequence[Split, ByteLevel])", path,
                       t[0] ? t : "(none)");
}

/* The id of a special token named in tokenizer_config.json (a string or
 * {"content": ...}); -1 if absent or unknown. */
static int32_t config_token(const struct strata_tokenizer *tok, const cJSON *cfg, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    if (!cJSON_IsString(v)) return -1;
    return strata_tok_lookup(tok, v->valuestring, strlen(v->valuestring));
}

/* BOS from a TemplateProcessing post-processor: the special token before
 * $A in the single-sequence template. */
static int32_t template_bos(const struct strata_tokenizer *tok, const cJSON *pp)
{
    if (!cJSON_IsObject(pp)) return -1;
    if (strcmp(type_of(pp), "Sequence") == 0) {
        const cJSON *x;
        cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(pp, "processors")) {
            int32_t id = template_bos(tok, x);
            if (id >= 0) return id;
        }
        return -1;
    }
    if (strcmp(type_of(pp), "TemplateProcessing") != 0) return -1;
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(pp, "single"), 0);
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(first, "SpecialToken");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(sp, "id");
    if (!cJSON_IsString(name)) return -1;
    const cJSON *def = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(pp, "special_tokens"), name->valuestring);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(def, "ids");
    const cJSON *id = cJSON_GetArrayItem(ids, 0);
    if (cJSON_IsNumber(id) && id->valuedouble >= 0 && id->valuedouble < tok->n_vocab)
        return (int32_t)id->valuedouble;
    return strata_tok_lookup(tok, name->valuestring, strlen(name->valuestring));
}

static int32_t first_of(const struct strata_tokenizer *tok, const char *const *names, int n)
{
    for (int i = 0; i < n; i++) {
        int32_t id = strata_tok_lookup(tok, names[i], strlen(names[i]));
        if (id >= 0) return id;
    }
    return -1;
}

static cJSON *parse_json_file(const char *path, int *rc)
{
    char *text = NULL;
    size_t size = 0;
    if ((*rc = strata_read_file(&text, &size, path)) != 0) return NULL;
    cJSON *doc = cJSON_ParseWithLength(text, size);
    if (!doc) {
        const char *err = cJSON_GetErrorPtr();
        size_t at = err && err >= text && err <= text + size ? (size_t)(err - text) : 0;
        *rc = strata_fail(STRATA_E_FORMAT, "%s: malformed JSON near byte %zu: the file is "
                          "corrupt or truncated", path, at);
    }
    free(text);
    return doc;
}

int strata_tok_hf_load(struct strata_tokenizer **out, const char *path)
{
    struct strata_tokenizer *tok = NULL;
    const char **ps = NULL;
    int32_t *pn = NULL;
    bool *want = NULL, *want_norm = NULL;
    cJSON *cfg = NULL;
    int rc;
    *out = NULL;
    cJSON *doc = parse_json_file(path, &rc);
    if (!doc) return rc;
    if (!cJSON_IsObject(doc)) FAIL("%s: top level is not a JSON object", path);

    const cJSON *model = cJSON_GetObjectItemCaseSensitive(doc, "model");
    if (!cJSON_IsObject(model)) FAIL("%s: field model: missing or not an object", path);
    if (strcmp(type_of(model), "BPE") != 0)
        FAIL("%s: field model.type is '%s'; strata supports only BPE", path, type_of(model));
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(doc, "added_tokens");
    if (!cJSON_IsObject(vocab)) FAIL("%s: field model.vocab: missing or not an object", path);
    if (!cJSON_IsArray(merges)) FAIL("%s: field model.merges: missing or not an array", path);
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added))
        FAIL("%s: field added_tokens: not an array", path);
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int k = 0; k < 2; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(model, affixes[k]);
        if (cJSON_IsString(v) && v->valuestring[0])
            FAIL("%s: field model.%s '%s' is not supported", path, affixes[k], v->valuestring);
    }

    /* Ids: vocabulary and added tokens together must cover 0..V-1. */
    int64_t n = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, vocab) {
        if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble >= INT32_MAX / 2 ||
            x->valuedouble != (double)(int64_t)x->valuedouble)
            FAIL("%s: field model.vocab[\"%s\"]: id is not a non-negative integer", path,
                 x->string);
        if ((int64_t)x->valuedouble + 1 > n) n = (int64_t)x->valuedouble + 1;
    }
    cJSON_ArrayForEach(x, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(x, "id");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(x, "content");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= INT32_MAX / 2 ||
            !cJSON_IsString(c))
            FAIL("%s: field added_tokens: an entry lacks an integer id or a content string",
                 path);
        if ((int64_t)id->valuedouble + 1 > n) n = (int64_t)id->valuedouble + 1;
    }
    if (n == 0) FAIL("%s: field model.vocab is empty", path);
    /* The ids are dense, so they cannot reach past the number of entries
     * given: refuse before anything is sized by a stray large id. */
    const int64_t n_entries = (int64_t)cJSON_GetArraySize(vocab) + (added ? cJSON_GetArraySize(added) : 0);
    if (n > n_entries) { /* name the first id missing, from a map the entries can fill */
        bool *seen = xcalloc((size_t)n_entries + 1, 1);
        cJSON_ArrayForEach(x, vocab) if (x->valuedouble <= (double)n_entries) seen[(int64_t)x->valuedouble] = true;
        cJSON_ArrayForEach(x, added) {
            const double v = cJSON_GetObjectItemCaseSensitive(x, "id")->valuedouble;
            if (v <= (double)n_entries) seen[(int64_t)v] = true;
        }
        int64_t hole = 0;
        while (seen[hole]) hole++;
        free(seen);
        FAIL("%s: id %lld is neither in model.vocab nor in added_tokens (ids reach %lld with %lld "
             "entries; they must cover 0..V-1)", path, (long long)hole, (long long)(n - 1),
             (long long)n_entries);
    }
    ps = xcalloc((size_t)n, sizeof *ps);
    pn = xcalloc((size_t)n, sizeof *pn);
    want = xcalloc((size_t)n, 1);
    want_norm = xcalloc((size_t)n, 1);
    cJSON_ArrayForEach(x, vocab) {
        int32_t id = (int32_t)x->valuedouble;
        if (ps[id]) FAIL("%s: field model.vocab: id %d is given twice ('%s', '%s')", path, id,
                         ps[id], x->string);
        ps[id] = x->string;
        pn[id] = (int32_t)strlen(x->string);
    }
    tok = strata_tok_alloc(path, TOK_HF_BPE, (int32_t)n);
    cJSON_ArrayForEach(x, added) {
        int32_t id = (int32_t)cJSON_GetObjectItemCaseSensitive(x, "id")->valuedouble;
        const char *c = cJSON_GetObjectItemCaseSensitive(x, "content")->valuestring;
        ps[id] = c;
        pn[id] = (int32_t)strlen(c);
        tok->type[id] = flag(x, "special", false) ? TT_CONTROL : TT_USER;
        if (flag(x, "normalized", false)) want_norm[id] = true;
        else want[id] = true;
    }
    for (int64_t i = 0; i < n; i++)
        if (!ps[i]) FAIL("%s: id %lld is neither in model.vocab nor in added_tokens", path,
                         (long long)i);

    /* Normalizer, pre-tokenizer: they decide the kind. */
    const cJSON *nz = cJSON_GetObjectItemCaseSensitive(doc, "normalizer");
    if (nz && !cJSON_IsNull(nz) && (rc = add_normalizer(tok, nz, path)) != 0) goto fail;
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(doc, "pre_tokenizer");
    bool bytelevel = false;
    if (pt && !cJSON_IsNull(pt) && (rc = set_pretok(tok, pt, path, &bytelevel, false)) != 0)
        goto fail;
    tok->kind = bytelevel ? TOK_HF_BYTELEVEL : TOK_HF_BPE;
    tok->byte_fallback = flag(model, "byte_fallback", false);
    tok->fuse_unk = flag(model, "fuse_unk", false);
    tok->ignore_merges = flag(model, "ignore_merges", false);
    if (bytelevel && tok->byte_fallback)
        FAIL("%s: field model.byte_fallback: true with a ByteLevel pre-tokenizer is not "
             "supported", path);
    strata_tok_set_pieces(tok, ps, pn);
    if ((rc = strata_tok_finish(tok)) != 0) goto fail;
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    if (cJSON_IsString(unk)) {
        tok->unk = strata_tok_lookup(tok, unk->valuestring, strlen(unk->valuestring));
        if (tok->unk < 0)
            FAIL("%s: field model.unk_token '%s' is not in the vocabulary", path,
                 unk->valuestring);
    }
    /* A byte-level vocabulary may lack bytes that valid UTF-8 never has
     * (GPT-NeoX: 0xC0, 0xC1, 0xF5..0xFF); encode refuses text with them. */

    /* Merges: rank = index; a later duplicate replaces an earlier one, as
     * tokenizers' HashMap collect does. */
    int64_t n_merge = cJSON_GetArraySize(merges);
    char *join = strata_tok_merges_alloc(tok, n_merge);
    int64_t rank = 0;
    cJSON_ArrayForEach(x, merges) {
        const char *a, *b;
        size_t na, nb;
        int32_t ia = -1, ib = -1, ij = -1;
        bool parts = merge_parts(x, &a, &na, &b, &nb);
        if (parts) {
            ia = strata_tok_lookup(tok, a, na);
            ib = strata_tok_lookup(tok, b, nb);
        }
        if (ia >= 0 && ib >= 0) {
            memcpy(join, a, na);
            memcpy(join + na, b, nb);
            ij = strata_tok_lookup(tok, join, na + nb);
        }
        if (ij < 0) {
            free(join);
            if (!parts) FAIL("%s: field model.merges[%lld]: expected \"a b\" or [a, b]", path,
                             (long long)rank);
            FAIL("%s: field model.merges[%lld] ('%.*s' '%.*s'): %s is not in the vocabulary",
                 path, (long long)rank, (int)na, a, (int)nb, b,
                 ia < 0 ? "the left part" : ib < 0 ? "the right part" : "the merged token");
        }
        uint64_t key = (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib;
        uint64_t h = key * 0x9E3779B97F4A7C15ull, i = (h ^ (h >> 32)) & tok->merge_mask;
        while (tok->merge[i].pair != UINT64_MAX && tok->merge[i].pair != key)
            i = (i + 1) & tok->merge_mask;
        tok->merge[i] = (struct tok_merge){key, (uint32_t)rank, ij};
        rank++;
    }
    free(join);

    /* Added tokens: with no normalizer both groups see the same text, so
     * one pass over the raw text does. */
    if (tok->n_norm == 0)
        for (int64_t i = 0; i < n; i++) want[i] |= want_norm[i], want_norm[i] = false;
    strata_tok_matcher_build(tok, &tok->raw, want);
    strata_tok_matcher_build(tok, &tok->norm, want_norm);

    /* BOS/EOS: tokenizer_config.json beside the file decides if present;
     * else the post-processor's template; else the usual names. */
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0;
    char *cfg_path = xmalloc(dir_len + 32);
    memcpy(cfg_path, path, dir_len);
    strcpy(cfg_path + dir_len, "tokenizer_config.json");
    FILE *f = fopen(cfg_path, "rb");
    if (f) {
        fclose(f);
        int rc2;
        cfg = parse_json_file(cfg_path, &rc2);
        if (!cfg) {
            free(cfg_path);
            rc = rc2;
            goto fail;
        }
    }
    free(cfg_path);
    static const char *const bos_names[] = {"<s>", "<|begin_of_text|>", "<|endoftext|>"};
    static const char *const eos_names[] = {"</s>", "<|end_of_text|>", "<|endoftext|>"};
    tok->bos = config_token(tok, cfg, "bos_token");
    if (tok->bos < 0) tok->bos = template_bos(tok, cJSON_GetObjectItemCaseSensitive(doc, "post_processor"));
    if (tok->bos < 0) tok->bos = first_of(tok, bos_names, 3);
    tok->eos = config_token(tok, cfg, "eos_token");
    if (tok->eos < 0) tok->eos = first_of(tok, eos_names, 3);

    cJSON_Delete(cfg);
    cJSON_Delete(doc);
    free(ps);
    free(pn);
    free(want);
    free(want_norm);
    *out = tok;
    return 0;

fail:
    cJSON_Delete(cfg);
    cJSON_Delete(doc);
    free(ps);
    free(pn);
    free(want);
    free(want_norm);
    strata_tokenizer_free(tok);
    return rc;
}

/* ---------------------------------------------------------------- encode */

/* One pre-tokenized chunk through the BPE model. */
static int hf_chunk(const struct strata_tokenizer *tok, struct tok_enc *e, const char *c,
                    size_t n)
{
    if (n == 0) return 0;
    const unsigned char *u = (const unsigned char *)c;
    e->text = c;
    e->n_sym = 0;
    strata_tok_enc_reserve(e, n);
    if (tok->kind == TOK_HF_BYTELEVEL) {
        if (tok->ignore_merges) {
            size_t need = 2 * n + 1;
            if (need > e->map_cap) {
                e->map = xrealloc(e->map, need);
                e->map_cap = need;
            }
            size_t k = 0;
            for (size_t i = 0; i < n; i++) k += (size_t)strata_tok_gpt2_char(u[i], e->map + k);
            int32_t id = strata_tok_lookup(tok, e->map, k);
            if (id >= 0) {
                strata_tok_emit(e, id);
                return 0;
            }
        }
        for (size_t i = 0; i < n; i++) {
            if (tok->byte_id[u[i]] < 0)
                return strata_fail(STRATA_E_ARG, "%s: text byte 0x%02x has no byte-level token "
                                   "(it never occurs in valid UTF-8): clean the text",
                                   tok->path, u[i]);
            strata_tok_sym_push(e, tok->byte_id[u[i]], i, i + 1, false);
        }
    } else {
        if (tok->ignore_merges) {
            int32_t id = strata_tok_lookup(tok, c, n);
            if (id >= 0) {
                strata_tok_emit(e, id);
                return 0;
            }
        }
        bool last_unk = false;
        for (size_t i = 0; i < n;) {
            size_t k = char_at(c, n, i).len;
            int32_t id = strata_tok_lookup(tok, c + i, k);
            bool bytes = id < 0 && tok->byte_fallback;
            for (size_t j = i; bytes && j < i + k; j++) bytes = tok->byte_id[u[j]] >= 0;
            if (id >= 0) {
                strata_tok_sym_push(e, id, i, i + k, false);
                last_unk = false;
            } else if (bytes) {
                for (size_t j = i; j < i + k; j++)
                    strata_tok_sym_push(e, tok->byte_id[u[j]], j, j + 1, false);
                last_unk = false;
            } else if (tok->unk >= 0) {
                if (tok->fuse_unk && last_unk) e->sym[e->n_sym - 1].end = (uint32_t)(i + k);
                else strata_tok_sym_push(e, tok->unk, i, i + k, false);
                last_unk = true;
            } else {
                return strata_fail(STRATA_E_ARG, "%s: text has '%.*s' at a chunk's byte %zu, "
                                   "which is not in the vocabulary, and the tokenizer has "
                                   "neither byte fallback nor unk_token", tok->path, (int)k,
                                   c + i, i);
            }
            i += k;
        }
    }
    strata_tok_merge_all(tok, e);
    for (int32_t i = e->n_sym > 0 ? 0 : -1; i >= 0; i = e->sym[i].next)
        strata_tok_emit(e, e->sym[i].id);
    return 0;
}

/* Pre-tokenize one normalized segment and run its chunks. */
static int hf_pretok(const struct strata_tokenizer *tok, struct tok_enc *e, const char *s,
                     size_t n, bool at_start)
{
    int rc = 0;
    char *t = NULL;
    if (tok->meta_active) {
        /* Metaspace: spaces become the replacement, which is prepended
         * unless the segment starts with it (scheme "first": only the
         * segment at the start of the text). */
        size_t rl = strlen(tok->meta_rep), k = 0;
        t = xmalloc(n * rl + rl + 1);
        bool pre = tok->meta_prepend == 2 || (tok->meta_prepend == 1 && at_start);
        for (size_t i = 0; i < n; i++) {
            if (s[i] == ' ') {
                memcpy(t + k, tok->meta_rep, rl);
                k += rl;
            } else {
                t[k++] = s[i];
            }
        }
        if (pre && !(k >= rl && memcmp(t, tok->meta_rep, rl) == 0)) {
            memmove(t + rl, t, k);
            memcpy(t, tok->meta_rep, rl);
            k += rl;
        }
        if (tok->pretok == PRE_METASPACE) { /* each replacement starts a chunk */
            size_t from = 0;
            for (size_t i = 1; i + rl <= k && rc == 0; i++) {
                if (memcmp(t + i, tok->meta_rep, rl) != 0) continue;
                rc = hf_chunk(tok, e, t + from, i - from);
                from = i;
            }
            if (rc == 0) rc = hf_chunk(tok, e, t + from, k - from);
        } else {
            rc = hf_chunk(tok, e, t, k);
        }
        free(t);
        return rc;
    }
    if (tok->kind == TOK_HF_BYTELEVEL && tok->prefix_space && n > 0 && s[0] != ' ') {
        t = xmalloc(n + 1);
        t[0] = ' ';
        memcpy(t + 1, s, n);
        s = t;
        n++;
    }
    if (tok->pretok == PRE_GPT2 || tok->pretok == PRE_LLAMA3) {
        for (size_t i = 0; i < n && rc == 0;) {
            size_t end = strata_tok_pretok_next(tok->pretok, s, n, i);
            rc = hf_chunk(tok, e, s + i, end - i);
            i = end;
        }
    } else {
        rc = hf_chunk(tok, e, s, n);
    }
    free(t);
    return rc;
}

/* Normalize a segment between raw-matched added tokens, then split it on
 * the normalized added tokens. */
static int hf_normalize(const struct strata_tokenizer *tok, struct tok_enc *e, const char *s,
                        size_t n, bool at_start)
{
    if (tok->n_norm == 0) return hf_pretok(tok, e, s, n, at_start);
    char *cur = xmalloc(n + 1);
    memcpy(cur, s, n);
    size_t len = n;
    for (int k = 0; k < tok->n_norm; k++) {
        const struct tok_norm *op = &tok->norm_op[k];
        if (op->op == NORM_PREPEND) {
            if (len == 0) continue; /* tokenizers prepends to non-empty text only */
            size_t pl = strlen(op->a);
            char *next = xmalloc(len + pl + 1);
            memcpy(next, op->a, pl);
            memcpy(next + pl, cur, len);
            free(cur);
            cur = next;
            len += pl;
        } else {
            size_t pl = strlen(op->a), cl = strlen(op->b), hits = 0;
            for (size_t i = 0; i + pl <= len;) {
                if (memcmp(cur + i, op->a, pl) == 0) {
                    hits++;
                    i += pl;
                } else {
                    i++;
                }
            }
            if (hits == 0) continue;
            char *next = xmalloc(len + hits * cl + 1);
            size_t o = 0;
            for (size_t i = 0; i < len;) {
                if (i + pl <= len && memcmp(cur + i, op->a, pl) == 0) {
                    memcpy(next + o, op->b, cl);
                    o += cl;
                    i += pl;
                } else {
                    next[o++] = cur[i++];
                }
            }
            free(cur);
            cur = next;
            len = o;
        }
    }
    int rc = strata_tok_split_matches(tok, &tok->norm, e, cur, len, at_start, hf_pretok);
    free(cur);
    return rc;
}

int strata_tok_hf_encode(const struct strata_tokenizer *tok, struct tok_enc *e,
                         const char *text, size_t len)
{
    /* hf-bpe is SentencePiece's model in tokenizers' clothes: invalid
     * UTF-8 becomes U+FFFD byte by byte as SentencePiece does, before
     * anything else (tokenizers itself takes only valid strings). Byte-level
     * BPE maps bytes, so raw bytes stay raw bytes there. */
    size_t n = len;
    char *fixed = tok->kind == TOK_HF_BPE ? strata_tok_replace_invalid_utf8(text, len, &n) : NULL;
    int rc = strata_tok_split_matches(tok, &tok->raw, e, fixed ? fixed : text, n, true,
                                      hf_normalize);
    free(fixed);
    return rc;
}

char *strata_tok_merges_alloc(struct strata_tokenizer *tok, int64_t n_merge)
{
    uint64_t cap = 16;
    while (cap < 2 * (uint64_t)n_merge + 2) cap *= 2;
    tok->merge = xmalloc(cap * sizeof *tok->merge);
    tok->merge_mask = cap - 1;
    for (uint64_t i = 0; i < cap; i++) tok->merge[i].pair = UINT64_MAX;
    return xmalloc(2 * (size_t)tok->max_token_length + 2);
}
