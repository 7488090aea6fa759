/* tokenizer.c — tokenizers for every checkpoint strata reads: llama2.c's
 * tok512.bin/tokenizer.bin, SentencePiece tokenizer.model (tok_spm.c) and
 * Hugging Face tokenizer.json (tok_hf.c). This file holds what they share:
 * the vocabulary table, the BPE merge engine, strata_tokenizer_open, and
 * encode/decode.
 *
 * Why our own: every probe feeds token ids to a model, so the ids must be
 * exactly the ones the model was trained with — llama2.c run.c's encode()
 * including its quirks (it does not pre-split on whitespace, so runs of
 * spaces merge differently; see tests/test_tokenizer.c), SentencePiece's
 * BPE, or Hugging Face tokenizers' BPE. What we do not copy is run.c's
 * cost: it rescans every adjacent pair after each merge, with a bsearch of
 * strcmp per pair, O(n^2 log V) per text. Here one engine gives each
 * library's merge order: a doubly linked list of symbols and a binary heap
 * of candidate pairs keyed (priority, left position), with a hash table for
 * string -> id: O(n log n) per text. The priority is the merged piece's
 * score (llama2.c, SentencePiece: highest first) or the merge's rank
 * (Hugging Face: lowest first); ties go to the leftmost pair in all three.
 *
 * llama2.c file format (native endian, as llama2.c writes it):
 *   int32 max_token_length
 *   per token: float32 score, int32 len, len bytes (no terminator)
 * Ids 0, 1, 2 are <unk>, BOS, EOS; ids 3..258 are the byte pieces "<0xXX>".
 *
 * Where run.c has undefined behaviour we choose, and say so:
 *   - no " " piece for the dummy prefix: the prefix takes the byte-fallback
 *     id of ' ' like any other missing code point (run.c indexes vocab[-1]);
 *   - byte fallback needs ids 3..258; a smaller vocabulary that meets a byte
 *     it lacks makes encode fail instead of emitting an id out of range;
 *   - text is (pointer, length), so a NUL byte is one more code point
 *     (run.c stops at it); pieces are compared as byte strings;
 *   - duplicate pieces: the lowest id wins (run.c's bsearch picks any).
 */
#include "tok_impl.h"

#include <string.h>
#include <sys/stat.h>

/* run.c starts its search for the best pair at this score, so a piece
 * scoring at or below it (or NaN) is never produced by a merge. */
#define MERGE_FLOOR (-1e10f)

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h ^ (h >> 29); /* fold high bits in: the table uses the low ones */
}

static int32_t slot_find(const struct strata_tokenizer *tok, const struct tok_slot *slot,
                         uint64_t mask, const char *s, size_t n)
{
    uint64_t h = hash_bytes(s, n);
    uint32_t tag = (uint32_t)(h >> 32);
    for (uint64_t i = h & mask;; i = (i + 1) & mask) {
        int32_t id = slot[i].id;
        if (id < 0) return -1;
        if (slot[i].tag == tag && (size_t)tok->len[id] == n &&
            memcmp(tok->arena + tok->off[id], s, n) == 0)
            return id;
    }
}

int32_t strata_tok_lookup(const struct strata_tokenizer *tok, const char *s, size_t n)
{
    if (n > (size_t)tok->max_token_length) return -1; /* no piece is that long */
    return slot_find(tok, tok->slot, tok->mask, s, n);
}

/* A table of the ids with want[id] (all when want is NULL); duplicates keep
 * the lowest id. */
static struct tok_slot *slot_build(const struct strata_tokenizer *tok, const bool *want,
                                   uint64_t *mask)
{
    uint64_t cap = 16, n = 0;
    for (int32_t id = 0; id < tok->n_vocab; id++) n += !want || want[id];
    /* Most lookups are misses (pairs that are no piece): a load factor of
     * at most 1/4 keeps their linear probe runs short. */
    while (cap < 4 * n) cap *= 2;
    *mask = cap - 1;
    struct tok_slot *slot = xmalloc(cap * sizeof *slot);
    for (uint64_t i = 0; i < cap; i++) slot[i] = (struct tok_slot){0, -1};
    for (int32_t id = 0; id < tok->n_vocab; id++) {
        if (want && !want[id]) continue;
        const char *s = tok->arena + tok->off[id];
        size_t len = (size_t)tok->len[id];
        if (slot_find(tok, slot, *mask, s, len) >= 0) continue;
        uint64_t h = hash_bytes(s, len), i = h & *mask;
        while (slot[i].id >= 0) i = (i + 1) & *mask;
        slot[i] = (struct tok_slot){(uint32_t)(h >> 32), id};
    }
    return slot;
}

void strata_tok_matcher_build(const struct strata_tokenizer *tok, struct tok_matcher *mt,
                              const bool *want)
{
    strata_tok_matcher_free(mt);
    bool any = false;
    for (int32_t id = 0; id < tok->n_vocab; id++) any |= want[id] && tok->len[id] > 0;
    if (!any) return;
    bool *w = xmalloc((size_t)tok->n_vocab);
    for (int32_t id = 0; id < tok->n_vocab; id++) w[id] = want[id] && tok->len[id] > 0;
    mt->slot = slot_build(tok, w, &mt->mask);
    mt->pair2 = xcalloc(65536 / 8, 1);
    mt->lens = xmalloc((size_t)tok->n_vocab * sizeof *mt->lens);
    for (int32_t id = 0; id < tok->n_vocab; id++) {
        if (!w[id]) continue;
        const unsigned char *s = (const unsigned char *)tok->arena + tok->off[id];
        int32_t len = tok->len[id];
        mt->first[s[0] >> 3] |= (uint8_t)(1u << (s[0] & 7));
        if (len >= 2) {
            unsigned k = (unsigned)s[0] << 8 | s[1];
            mt->pair2[k >> 3] |= (uint8_t)(1u << (k & 7));
        }
        bool seen = false;
        for (int32_t j = 0; j < mt->n_lens && !seen; j++) seen = mt->lens[j] == len;
        if (!seen) mt->lens[mt->n_lens++] = len;
    }
    for (int32_t i = 1; i < mt->n_lens; i++) /* longest first: few lengths, insertion sort */
        for (int32_t j = i; j > 0 && mt->lens[j] > mt->lens[j - 1]; j--) {
            int32_t t = mt->lens[j];
            mt->lens[j] = mt->lens[j - 1];
            mt->lens[j - 1] = t;
        }
    free(w);
}

void strata_tok_matcher_free(struct tok_matcher *mt)
{
    free(mt->slot);
    free(mt->lens);
    free(mt->pair2);
    memset(mt, 0, sizeof *mt);
}

/* The longest matchable piece starting at s[0] (n bytes left); -1 if none. */
static int32_t matcher_at(const struct strata_tokenizer *tok, const struct tok_matcher *mt,
                          const char *s, size_t n)
{
    unsigned char c0 = (unsigned char)s[0];
    if (!(mt->first[c0 >> 3] & (1u << (c0 & 7)))) return -1;
    bool two = false;
    if (n >= 2) {
        unsigned k = (unsigned)c0 << 8 | (unsigned char)s[1];
        two = mt->pair2[k >> 3] & (1u << (k & 7));
    }
    for (int32_t j = 0; j < mt->n_lens; j++) {
        size_t len = (size_t)mt->lens[j];
        if (len > n || (len >= 2 && !two)) continue;
        int32_t id = slot_find(tok, mt->slot, mt->mask, s, len);
        if (id >= 0) return id;
    }
    return -1;
}

int strata_tok_split_matches(const struct strata_tokenizer *tok, const struct tok_matcher *mt,
                             struct tok_enc *e, const char *s, size_t n, bool at_start,
                             tok_seg_fn seg)
{
    int rc;
    size_t from = 0;
    if (mt->slot) {
        for (size_t i = 0; i < n;) {
            int32_t id = matcher_at(tok, mt, s + i, n - i);
            if (id < 0) {
                i++;
                continue;
            }
            if (i > from && (rc = seg(tok, e, s + from, i - from, at_start && from == 0)) != 0)
                return rc;
            strata_tok_emit(e, id);
            i += (size_t)tok->len[id];
            from = i;
        }
    }
    if (n > from) return seg(tok, e, s + from, n - from, at_start && from == 0);
    return 0;
}

/* ------------------------------------------------------------ building */

struct strata_tokenizer *strata_tok_alloc(const char *path, enum tok_kind kind, int32_t n_vocab)
{
    struct strata_tokenizer *tok = xcalloc(1, sizeof *tok);
    tok->path = strata_xstrdup(path);
    tok->kind = kind;
    tok->n_vocab = n_vocab;
    tok->bos = tok->eos = tok->unk = -1;
    tok->type = xmalloc((size_t)n_vocab);
    memset(tok->type, TT_NORMAL, (size_t)n_vocab);
    tok->off = xmalloc((size_t)n_vocab * sizeof *tok->off);
    tok->len = xmalloc((size_t)n_vocab * sizeof *tok->len);
    tok->surf_off = xmalloc((size_t)n_vocab * sizeof *tok->surf_off);
    tok->surf_len = xmalloc((size_t)n_vocab * sizeof *tok->surf_len);
    for (int b = 0; b < 256; b++) tok->byte_id[b] = -1;
    return tok;
}

void strata_tok_set_pieces(struct strata_tokenizer *tok, const char *const *s, const int32_t *n)
{
    size_t total = 0;
    for (int32_t i = 0; i < tok->n_vocab; i++) total += (size_t)n[i] + 1;
    tok->arena = xmalloc(total);
    size_t at = 0;
    tok->max_token_length = 0;
    for (int32_t i = 0; i < tok->n_vocab; i++) {
        if (n[i] > 0) memcpy(tok->arena + at, s[i], (size_t)n[i]);
        tok->arena[at + (size_t)n[i]] = '\0';
        tok->off[i] = at;
        tok->len[i] = n[i];
        if (n[i] > tok->max_token_length) tok->max_token_length = n[i];
        at += (size_t)n[i] + 1;
    }
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* The byte a "<0xXX>" piece stands for, or -1. run.c tests this with a lax
 * sscanf; we require the exact six-character form, which is what every byte
 * piece of a llama2.c export, SentencePiece model or tokenizer.json is. */
static int byte_piece(const char *p, size_t n)
{
    if (n != 6 || memcmp(p, "<0x", 3) != 0 || p[5] != '>') return -1;
    int hi = hex_digit(p[3]), lo = hex_digit(p[4]);
    return hi >= 0 && lo >= 0 ? hi * 16 + lo : -1;
}

/* Inverse of GPT-2's byte -> character map: the byte a code point stands
 * for, or -1. */
static int gpt2_byte(uint32_t cp)
{
    if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255))
        return (int)cp;
    if (cp < 256 || cp > 256 + 68) return -1;
    int k = 0; /* the k-th byte outside the printable ranges maps to 256 + k */
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
        if (printable) continue;
        if ((uint32_t)(256 + k) == cp) return b;
        k++;
    }
    return -1;
}

int strata_tok_gpt2_char(unsigned char b, char out[4])
{
    uint32_t cp = b;
    if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)) {
        int k = 0;
        for (int x = 0; x < b; x++)
            k += !((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || x >= 174);
        cp = 256 + (uint32_t)k;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

int strata_tok_finish(struct strata_tokenizer *tok)
{
    /* Surfaces: at most as long as the piece (every rewrite shrinks). */
    size_t total = 0;
    for (int32_t i = 0; i < tok->n_vocab; i++) total += (size_t)tok->len[i] + 1;
    tok->surf = xmalloc(total);
    size_t at = 0;
    for (int32_t i = 0; i < tok->n_vocab; i++) {
        const char *p = tok->arena + tok->off[i];
        size_t n = (size_t)tok->len[i], k = 0;
        char *o = tok->surf + at;
        int b = byte_piece(p, n);
        if (tok->kind == TOK_LLAMA2C || tok->kind == TOK_HF_BPE) {
            if (b >= 0 && tok->type[i] != TT_CONTROL && tok->type[i] != TT_USER)
                tok->type[i] = TT_BYTE;
        }
        if (tok->type[i] == TT_BYTE && b >= 0) {
            o[k++] = (char)b;
        } else if (tok->kind == TOK_LLAMA2C) {
            memcpy(o, p, n);
            k = n;
        } else if (tok->kind == TOK_HF_BYTELEVEL) {
            /* Characters of GPT-2's alphabet become their byte; anything
             * else (added tokens' own text) stays as it is. */
            for (size_t j = 0; j < n;) {
                unsigned char c = (unsigned char)p[j];
                if (c >= 0xC2 && c <= 0xC5 && j + 1 < n) { /* U+0080..U+017F */
                    uint32_t cp = (uint32_t)(c & 0x1F) << 6 | ((unsigned char)p[j + 1] & 0x3F);
                    int byte = gpt2_byte(cp);
                    if (byte >= 0) {
                        o[k++] = (char)byte;
                        j += 2;
                        continue;
                    }
                }
                o[k++] = (char)c; /* ASCII is itself; the rest (added tokens) stays raw */
                j++;
            }
        } else { /* SentencePiece style: "▁" (E2 96 81) is a space */
            for (size_t j = 0; j < n;) {
                if (j + 3 <= n && memcmp(p + j, "\xe2\x96\x81", 3) == 0) {
                    o[k++] = ' ';
                    j += 3;
                } else {
                    o[k++] = p[j++];
                }
            }
        }
        o[k] = '\0';
        tok->surf_off[i] = at;
        tok->surf_len[i] = (int32_t)k;
        at += k + 1;
    }
    tok->slot = slot_build(tok, NULL, &tok->mask);

    for (int b = 0; b < 256; b++) {
        char s[8];
        int32_t id = -1;
        if (tok->kind == TOK_LLAMA2C) {
            id = b + 3 < tok->n_vocab ? b + 3 : -1; /* ids 0..2 are <unk>, BOS, EOS */
        } else if (tok->kind == TOK_HF_BYTELEVEL) {
            int n = strata_tok_gpt2_char((unsigned char)b, s);
            id = strata_tok_lookup(tok, s, (size_t)n);
        } else {
            snprintf(s, sizeof s, "<0x%02X>", b);
            id = strata_tok_lookup(tok, s, 6);
            if (id >= 0 && tok->type[id] != TT_BYTE) id = -1;
        }
        tok->byte_id[b] = id;
    }
    return 0;
}

static int32_t rd_i32(const unsigned char *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

int strata_tokenizer_load(struct strata_tokenizer **out, const char *path,
                          int32_t vocab_size)
{
    struct strata_map map = {0};
    struct strata_tokenizer *tok = NULL;
    const char **ps = NULL;
    int32_t *pn = NULL;
    int rc;
    if (!out || !path) return strata_fail(STRATA_E_ARG, "strata_tokenizer_load: NULL argument");
    *out = NULL;
    if ((rc = strata_map_file(&map, path)) != 0) goto fail;
    const unsigned char *data = map.data;
    size_t size = map.size;
    if (size < 4) {
        rc = strata_fail(STRATA_E_FORMAT, "%s: %zu bytes is too short for a llama2.c tokenizer "
                         "(it starts with an int32 max_token_length)", path, size);
        goto fail;
    }
    int32_t max_len = rd_i32(data);
    if (max_len < 0) {
        rc = strata_fail(STRATA_E_FORMAT, "%s: max_token_length %d is negative: not a llama2.c "
                         "tokenizer file", path, max_len);
        goto fail;
    }

    /* First pass: validate and count, so the arrays are allocated once. */
    int64_t n = 0;
    size_t pos = 4;
    for (;;) {
        if (vocab_size > 0 && n == vocab_size) break;
        if (vocab_size <= 0 && pos == size) break;
        if (size - pos < 8) {
            if (vocab_size > 0)
                rc = strata_fail(STRATA_E_FORMAT, "%s: truncated at entry %lld of %d "
                                 "(file ends at byte %zu): the file is incomplete, or the "
                                 "model's vocab_size %d does not belong to this tokenizer",
                                 path, (long long)n, vocab_size, size, vocab_size);
            else
                rc = strata_fail(STRATA_E_FORMAT, "%s: truncated header of entry %lld "
                                 "(%zu stray bytes at the end): the file is incomplete",
                                 path, (long long)n, size - pos);
            goto fail;
        }
        int32_t len = rd_i32(data + pos + 4);
        if (len < 0 || len > max_len) {
            rc = strata_fail(STRATA_E_FORMAT, "%s: entry %lld has length %d outside 0..%d "
                             "(max_token_length): not a llama2.c tokenizer file, or corrupt",
                             path, (long long)n, len, max_len);
            goto fail;
        }
        if (size - pos - 8 < (size_t)len) {
            rc = strata_fail(STRATA_E_FORMAT, "%s: entry %lld is truncated (needs %d bytes, "
                             "%zu left): the file is incomplete", path, (long long)n, len,
                             size - pos - 8);
            goto fail;
        }
        pos += 8 + (size_t)len;
        if (++n > INT32_MAX) {
            rc = strata_fail(STRATA_E_FORMAT, "%s: more than %d entries", path, INT32_MAX);
            goto fail;
        }
    }
    if (pos != size) {
        rc = strata_fail(STRATA_E_FORMAT, "%s: %zu bytes of trailing data after entry %d: the "
                         "file holds more tokens than vocab_size %d (pass the model's "
                         "vocab_size, or <= 0 to read to the end)", path, size - pos,
                         vocab_size - 1, vocab_size);
        goto fail;
    }
    if (n < 3) {
        rc = strata_fail(STRATA_E_FORMAT, "%s: %lld entries; a llama2.c tokenizer has at "
                         "least <unk>, BOS and EOS", path, (long long)n);
        goto fail;
    }

    tok = strata_tok_alloc(path, TOK_LLAMA2C, (int32_t)n);
    tok->bos = STRATA_TOKEN_BOS;
    tok->eos = STRATA_TOKEN_EOS;
    tok->unk = 0;
    tok->score = xmalloc((size_t)n * sizeof *tok->score);
    ps = xmalloc((size_t)n * sizeof *ps);
    pn = xmalloc((size_t)n * sizeof *pn);
    pos = 4;
    for (int32_t i = 0; i < tok->n_vocab; i++) {
        memcpy(&tok->score[i], data + pos, 4);
        pn[i] = rd_i32(data + pos + 4);
        ps[i] = (const char *)data + pos + 8;
        pos += 8 + (size_t)pn[i];
    }
    /* set_pieces keeps the longest piece as max_token_length, not the
     * header's claim: a header may say 2^31-1 and every encode would then
     * size its buffers from it; no merge can be longer than a piece. */
    strata_tok_set_pieces(tok, ps, pn);
    if ((rc = strata_tok_finish(tok)) != 0) goto fail;
    free(ps);
    free(pn);
    strata_unmap_file(&map);
    *out = tok;
    return 0;

fail:
    free(ps);
    free(pn);
    strata_unmap_file(&map);
    strata_tokenizer_free(tok);
    return rc;
}

/* What a file holds, by its first bytes: a JSON object, a SentencePiece
 * ModelProto, or (anything else) llama2.c. */
static int open_file(struct strata_tokenizer **out, const char *path)
{
    struct strata_map map = {0};
    int rc = strata_map_file(&map, path);
    if (rc != 0) return rc;
    const unsigned char *d = map.data;
    size_t i = 0;
    while (i < map.size && (d[i] == ' ' || d[i] == '\t' || d[i] == '\n' || d[i] == '\r')) i++;
    bool json = i < map.size && d[i] == '{';
    bool gguf = map.size >= 4 && memcmp(d, "GGUF", 4) == 0;
    bool spm = !json && !gguf && strata_tok_spm_sniff(d, map.size);
    strata_unmap_file(&map);
    if (json) return strata_tok_hf_load(out, path);
    if (gguf) return strata_tok_gguf_load(out, path);
    if (spm) return strata_tok_spm_load(out, path);
    return strata_tokenizer_load(out, path, 0);
}

int strata_tokenizer_open(struct strata_tokenizer **out, const char *path)
{
    if (!out || !path) return strata_fail(STRATA_E_ARG, "strata_tokenizer_open: NULL argument");
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0)
        return strata_fail(STRATA_E_IO, "%s: no such file or directory: give a tokenizer file "
                           "or a checkpoint directory", path);
    if (!S_ISDIR(st.st_mode)) return open_file(out, path);
    /* The one place this order is written (docs/CHECKPOINTS.md, Tokenizers).
     * tokenizer.model before tokenizer.bin: llama2.c's export spells "▁" as
     * a space, so a .bin reads a literal U+2581 in the text as bytes. */
    static const char *const names[] = {"tokenizer.json", "tokenizer.model", "tokenizer.bin"};
    for (int k = 0; k < 3; k++) {
        size_t n = strlen(path) + strlen(names[k]) + 2;
        char *p = xmalloc(n);
        snprintf(p, n, "%s/%s", path, names[k]);
        bool found = stat(p, &st) == 0 && S_ISREG(st.st_mode);
        int rc = found ? open_file(out, p) : 0;
        free(p);
        if (found) return rc;
    }
    int rc = strata_tok_gguf_dir(out, path); /* the one .gguf file there, if any */
    if (rc != 1) return rc;
    return strata_fail(STRATA_E_IO, "%s: directory has no tokenizer.json, tokenizer.model, "
                       "tokenizer.bin or .gguf file: pass the tokenizer file itself", path);
}

void strata_tokenizer_free(struct strata_tokenizer *tok)
{
    if (!tok) return;
    free(tok->path);
    free(tok->score);
    free(tok->type);
    free(tok->arena);
    free(tok->off);
    free(tok->len);
    free(tok->surf);
    free(tok->surf_off);
    free(tok->surf_len);
    free(tok->slot);
    free(tok->merge);
    strata_tok_matcher_free(&tok->raw);
    strata_tok_matcher_free(&tok->norm);
    for (int i = 0; i < tok->n_norm; i++) {
        free(tok->norm_op[i].a);
        free(tok->norm_op[i].b);
    }
    free(tok);
}

int32_t strata_tokenizer_n_vocab(const struct strata_tokenizer *tok)
{
    return tok ? tok->n_vocab : 0;
}

int32_t strata_tokenizer_bos(const struct strata_tokenizer *tok)
{
    return tok ? tok->bos : -1;
}

int32_t strata_tokenizer_eos(const struct strata_tokenizer *tok)
{
    return tok ? tok->eos : -1;
}

const char *strata_tokenizer_path(const struct strata_tokenizer *tok)
{
    return tok ? tok->path : NULL;
}

const char *strata_tokenizer_kind(const struct strata_tokenizer *tok)
{
    if (!tok) return "none";
    switch (tok->kind) {
    case TOK_LLAMA2C: return "llama2c";
    case TOK_SPM: return "sentencepiece";
    case TOK_HF_BPE: return "hf-bpe";
    case TOK_HF_BYTELEVEL: return "hf-bytelevel";
    }
    return "none";
}

/* ------------------------------------------------------------ the engine */

/* Symbols are runs of the chunk covered by one token. Merging keeps the
 * left symbol and kills the right one, so a symbol's index is the position
 * of its first piece and index order is text order. */

/* Scores order descending: map the float to a 32-bit priority that sorts
 * ascending. -0 == +0 for run.c's and SentencePiece's ">", so -0 is +0. */
static uint32_t score_priority(float score)
{
    uint32_t u;
    score += 0.0f;
    memcpy(&u, &score, 4);
    u = (u & 0x80000000u) ? ~u : u | 0x80000000u; /* ascending as unsigned */
    return ~u;
}

static bool cand_before(const struct tok_cand *a, const struct tok_cand *b)
{
    return a->key < b->key;
}

static void heap_push(struct tok_enc *e, struct tok_cand c)
{
    int64_t i = e->n_heap++;
    while (i > 0) {
        int64_t parent = (i - 1) / 2;
        if (!cand_before(&c, &e->heap[parent])) break;
        e->heap[i] = e->heap[parent];
        i = parent;
    }
    e->heap[i] = c;
}

static struct tok_cand heap_pop(struct tok_enc *e)
{
    struct tok_cand top = e->heap[0];
    struct tok_cand last = e->heap[--e->n_heap];
    int64_t i = 0, n = e->n_heap;
    for (;;) {
        int64_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && cand_before(&e->heap[child + 1], &e->heap[child])) child++;
        if (!cand_before(&e->heap[child], &last)) break;
        e->heap[i] = e->heap[child];
        i = child;
    }
    if (n > 0) e->heap[i] = last;
    return top;
}

static const struct tok_merge *merge_find(const struct strata_tokenizer *tok, int32_t a,
                                          int32_t b)
{
    if (!tok->merge) return NULL;
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    for (uint64_t i = (h ^ (h >> 32)) & tok->merge_mask;; i = (i + 1) & tok->merge_mask) {
        if (tok->merge[i].pair == UINT64_MAX) return NULL;
        if (tok->merge[i].pair == key) return &tok->merge[i];
    }
}

/* Queue the merge of symbol l with its right neighbour, if the kind's rule
 * allows one. */
static void try_pair(const struct strata_tokenizer *tok, struct tok_enc *e, int32_t l)
{
    if (l < 0) return;
    int32_t r = e->sym[l].next;
    if (r < 0) return;
    const struct tok_sym *sl = &e->sym[l], *sr = &e->sym[r];
    int32_t id;
    uint32_t prio;
    if (tok->kind == TOK_LLAMA2C) {
        /* run.c joins the two pieces' strings, whatever text they came from. */
        int32_t a = sl->id, b = sr->id;
        size_t la = (size_t)tok->len[a], lb = (size_t)tok->len[b];
        if (la + lb > (size_t)tok->max_token_length) return;
        memcpy(e->buf, tok->arena + tok->off[a], la);
        memcpy(e->buf + la, tok->arena + tok->off[b], lb);
        id = strata_tok_lookup(tok, e->buf, la + lb);
        if (id < 0 || !(tok->score[id] > MERGE_FLOOR)) return;
        prio = score_priority(tok->score[id]);
    } else if (tok->kind == TOK_SPM) {
        /* SentencePiece joins the symbols' text (contiguous in the chunk)
         * and looks it up among normal, user-defined and unused pieces. */
        if (sl->frozen || sr->frozen) return;
        id = strata_tok_lookup(tok, e->text + sl->start, sr->end - sl->start);
        if (id < 0) return;
        uint8_t t = tok->type[id];
        if (t != TT_NORMAL && t != TT_USER && t != TT_UNUSED) return;
        prio = score_priority(tok->score[id]);
    } else { /* Hugging Face: the merge list decides, by rank */
        if (sl->id < 0 || sr->id < 0) return;
        const struct tok_merge *mg = merge_find(tok, sl->id, sr->id);
        if (!mg) return;
        id = mg->id;
        prio = mg->rank;
    }
    struct tok_cand c = {(uint64_t)prio << 32 | (uint32_t)l, r, id, sr->ver};
    heap_push(e, c);
}

void strata_tok_enc_reserve(struct tok_enc *e, size_t n)
{
    if (n <= e->sym_cap) return;
    size_t cap = e->sym_cap ? e->sym_cap : 64;
    while (cap < n) cap *= 2;
    e->sym = xrealloc(e->sym, cap * sizeof *e->sym);
    /* n-1 initial pairs + 2 per merge */
    e->heap = xrealloc(e->heap, 3 * cap * sizeof *e->heap);
    e->sym_cap = cap;
}

void strata_tok_sym_push(struct tok_enc *e, int32_t id, size_t start, size_t end, bool frozen)
{
    strata_tok_enc_reserve(e, (size_t)e->n_sym + 1);
    int32_t i = e->n_sym++;
    e->sym[i] = (struct tok_sym){id, i - 1, -1, 0, (uint32_t)start, (uint32_t)end, frozen, false};
    if (i > 0) e->sym[i - 1].next = i;
}

void strata_tok_emit(struct tok_enc *e, int32_t id)
{
    if (e->n_ids == e->ids_cap) {
        e->ids_cap = e->ids_cap ? 2 * e->ids_cap : 64;
        e->ids = xrealloc(e->ids, (size_t)e->ids_cap * sizeof *e->ids);
    }
    e->ids[e->n_ids++] = id;
}

void strata_tok_merge_all(const struct strata_tokenizer *tok, struct tok_enc *e)
{
    e->n_heap = 0;
    for (int32_t i = 0; i + 1 < e->n_sym; i++) try_pair(tok, e, i);
    while (e->n_heap > 0) {
        struct tok_cand c = heap_pop(e);
        int32_t left = (int32_t)(uint32_t)c.key;
        struct tok_sym *l = &e->sym[left], *r = &e->sym[c.right];
        /* Stale if either side merged since the pair was queued. The left
         * side can only change by merging with its right neighbour, which
         * then leaves the list for good, so l->next == right rules that
         * out; the right side may have grown by merging further right,
         * which its version shows. */
        if (l->dead || r->dead || l->next != c.right || r->ver != c.ver_right) continue;
        l->id = c.id;
        l->ver++;
        l->end = r->end;
        l->next = r->next;
        if (r->next >= 0) e->sym[r->next].prev = left;
        r->dead = true;
        try_pair(tok, e, l->prev);
        try_pair(tok, e, left);
    }
}

/* ------------------------------------------------------------------ encode */

/* The byte-fallback id of byte b, checked against the vocabulary. */
static int fallback(const struct strata_tokenizer *tok, unsigned char b, size_t at,
                    int32_t *id)
{
    *id = tok->byte_id[b];
    if (*id < 0)
        return strata_fail(STRATA_E_ARG, "%s: text byte 0x%02x at offset %zu is not in the "
                           "vocabulary and byte fallback needs id %d, but the tokenizer has "
                           "only %d entries: use a tokenizer with byte pieces, or clean the "
                           "text", tok->path, b, at, (int)b + 3, tok->n_vocab);
    return 0;
}

static int llama2c_encode(const struct strata_tokenizer *tok, struct tok_enc *e,
                          const char *text, size_t len, bool bos)
{
    int rc;
    int32_t id;
    e->buf_cap = 2 * (size_t)tok->max_token_length + 8;
    e->buf = xmalloc(e->buf_cap);
    strata_tok_enc_reserve(e, len + 2); /* one symbol a byte, plus BOS and the prefix */
    /* run.c keeps BOS in the merge list, so it can merge. */
    if (bos) strata_tok_sym_push(e, tok->bos, 0, 0, false);
    if (len > 0) { /* add_dummy_prefix, but only for non-empty text (as run.c) */
        id = strata_tok_lookup(tok, " ", 1);
        if (id < 0 && (rc = fallback(tok, ' ', 0, &id)) != 0) return rc;
        strata_tok_sym_push(e, id, 0, 0, false);
    }
    /* Code points as run.c cuts them: a non-continuation byte starts one,
     * continuation bytes extend it up to 4 bytes; stray continuation bytes
     * group the same way. A code point not in the vocabulary falls back to
     * one token per byte. */
    const unsigned char *u = (const unsigned char *)text;
    size_t start = 0, cp_len = 0;
    for (size_t i = 0; i < len; i++) {
        if ((u[i] & 0xC0) != 0x80) cp_len = 0;
        if (cp_len == 0) start = i;
        cp_len++;
        if (i + 1 < len && (u[i + 1] & 0xC0) == 0x80 && cp_len < 4) continue;
        id = strata_tok_lookup(tok, text + start, cp_len);
        if (id >= 0) {
            strata_tok_sym_push(e, id, start, i + 1, false);
        } else {
            for (size_t k = start; k < start + cp_len; k++) {
                if ((rc = fallback(tok, u[k], k, &id)) != 0) return rc;
                strata_tok_sym_push(e, id, k, k + 1, false);
            }
        }
        cp_len = 0;
    }
    strata_tok_merge_all(tok, e);
    for (int32_t i = e->n_sym > 0 ? 0 : -1; i >= 0; i = e->sym[i].next)
        strata_tok_emit(e, e->sym[i].id);
    return 0;
}

int strata_tokenizer_encode(const struct strata_tokenizer *tok, int32_t **tokens,
                            int64_t *n, const char *text, size_t len, bool bos,
                            bool eos)
{
    struct tok_enc e = {0};
    int rc = 0;
    if (!tok || !tokens || !n || (!text && len > 0))
        return strata_fail(STRATA_E_ARG, "strata_tokenizer_encode: NULL argument");
    *tokens = NULL;
    *n = 0;
    if (len > (size_t)INT32_MAX / 4)
        return strata_fail(STRATA_E_ARG, "%s: text of %zu bytes is too long to encode in one "
                           "call: split it", tok->path, len);
    if ((bos && tok->bos < 0) || (eos && tok->eos < 0))
        return strata_fail(STRATA_E_ARG, "%s: the tokenizer has no %s token: encode without "
                           "it", tok->path, bos && tok->bos < 0 ? "BOS" : "EOS");
    if (tok->kind == TOK_LLAMA2C) {
        rc = llama2c_encode(tok, &e, text, len, bos);
    } else {
        if (bos) strata_tok_emit(&e, tok->bos);
        rc = tok->kind == TOK_SPM ? strata_tok_spm_encode(tok, &e, text, len)
                                  : strata_tok_hf_encode(tok, &e, text, len);
    }
    if (rc == 0) {
        if (eos) strata_tok_emit(&e, tok->eos);
        *tokens = e.ids ? e.ids : xmalloc(sizeof *e.ids);
        *n = e.n_ids;
        e.ids = NULL;
    }
    free(e.ids);
    free(e.sym);
    free(e.heap);
    free(e.buf);
    free(e.norm);
    free(e.map);
    return rc;
}

/* ------------------------------------------------------------------ decode */

const char *strata_tokenizer_piece(const struct strata_tokenizer *tok, int32_t prev,
                                   int32_t tok_id, size_t *len)
{
    if (len) *len = 0;
    if (!tok || tok_id < 0 || tok_id >= tok->n_vocab) return NULL;
    const char *p = tok->surf + tok->surf_off[tok_id];
    size_t n = (size_t)tok->surf_len[tok_id];
    /* SentencePiece's decoder strips the dummy-prefix space after BOS; a
     * byte piece <0x20> is a real space and stays. Byte-level BPE adds no
     * dummy prefix, so nothing to strip. */
    if (tok->kind != TOK_HF_BYTELEVEL && tok->bos >= 0 && prev == tok->bos &&
        tok->type[tok_id] != TT_BYTE && n > 0 && p[0] == ' ') {
        p++;
        n--;
    }
    if (len) *len = n;
    return p;
}

int strata_tokenizer_decode(const struct strata_tokenizer *tok, char **text,
                            size_t *len, const int32_t *tokens, int64_t n,
                            bool after_bos)
{
    if (!tok || !text || (!tokens && n > 0) || n < 0)
        return strata_fail(STRATA_E_ARG, "strata_tokenizer_decode: NULL argument or n < 0");
    *text = NULL;
    if (len) *len = 0;
    size_t total = 0, piece_len;
    for (int64_t i = 0; i < n; i++) {
        int32_t prev = i > 0 ? tokens[i - 1] : after_bos ? tok->bos : -1;
        if (!strata_tokenizer_piece(tok, prev, tokens[i], &piece_len))
            return strata_fail(STRATA_E_ARG, "%s: token %d at index %lld is outside the "
                               "vocabulary 0..%d: these ids come from another tokenizer",
                               tok->path, tokens[i], (long long)i, tok->n_vocab - 1);
        total += piece_len;
    }
    char *s = xmalloc(total + 1);
    size_t at = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t prev = i > 0 ? tokens[i - 1] : after_bos ? tok->bos : -1;
        const char *p = strata_tokenizer_piece(tok, prev, tokens[i], &piece_len);
        memcpy(s + at, p, piece_len);
        at += piece_len;
    }
    s[at] = '\0';
    *text = s;
    if (len) *len = at;
    return 0;
}
