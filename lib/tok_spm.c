/* tok_spm.c — SentencePiece tokenizer.model files (Llama 2, Baichuan):
 * read the ModelProto protobuf ourselves and encode as SentencePiece's BPE
 * model does (sentencepiece bpe_model.cc, normalizer.cc).
 *
 * Why no libprotobuf: the file needs four message types and five wire
 * rules, and strata takes no dependency it can avoid. Wire format: each
 * field is a varint key (field << 3 | wire type); wire type 0 is a varint,
 * 1 eight bytes, 2 a varint length + bytes (strings, sub-messages), 5 four
 * bytes (float). Fields read (sentencepiece_model.proto):
 *   ModelProto      1 pieces (repeated SentencePiece), 2 trainer_spec,
 *                   3 normalizer_spec
 *   SentencePiece   1 piece, 2 score (float), 3 type (1 NORMAL, 2 UNKNOWN,
 *                   3 CONTROL, 4 USER_DEFINED, 5 UNUSED, 6 BYTE)
 *   TrainerSpec     3 model_type (1 UNIGRAM, 2 BPE, 3 WORD, 4 CHAR),
 *                   24 treat_whitespace_as_suffix, 35 byte_fallback,
 *                   40 unk_id, 41 bos_id, 42 eos_id
 *   NormalizerSpec  1 name, 2 precompiled_charsmap, 3 add_dummy_prefix
 *                   (default true), 4 remove_extra_whitespaces (true),
 *                   5 escape_whitespaces (true)
 * Encoding: normalize (drop extra spaces if asked, dummy-prefix space,
 * spaces -> "▁", each byte that starts no valid UTF-8 character -> U+FFFD
 * as normalizer.cc's NormalizePrefix does, so invalid input never reaches
 * byte fallback as raw bytes), cut into user-defined pieces (longest match, never merged)
 * and code points, merge the best-scoring adjacent pair whose joined text
 * is a piece (leftmost on ties), then each symbol is its piece, or its
 * bytes' <0xXX> pieces with byte_fallback, or <unk>.
 * Not supported, and refused at load with a message: UNIGRAM/WORD/CHAR
 * models, normalizers with a precompiled charsmap (nmt_nfkc...), UNUSED
 * pieces (SentencePiece re-splits them after merging), suffix whitespace.
 */
#include "tok_impl.h"

#include <string.h>

struct pb {
    const unsigned char *p, *end;
};

static bool pb_varint(struct pb *b, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (b->p >= b->end) return false;
        unsigned char c = *b->p++;
        *v |= (uint64_t)(c & 0x7F) << shift;
        if (c < 0x80) return true;
    }
    return false;
}

/* Next field of b: number, wire type, varint or fixed value in *v, bytes
 * in *sub for wire type 2. false on a truncated or malformed field. */
static bool pb_next(struct pb *b, uint32_t *field, uint32_t *wire, uint64_t *v, struct pb *sub)
{
    uint64_t key;
    if (!pb_varint(b, &key)) return false;
    *field = (uint32_t)(key >> 3);
    *wire = (uint32_t)(key & 7);
    if (*field == 0) return false;
    switch (*wire) {
    case 0: return pb_varint(b, v);
    case 1:
        if (b->end - b->p < 8) return false;
        memcpy(v, b->p, 8);
        b->p += 8;
        return true;
    case 5: {
        if (b->end - b->p < 4) return false;
        uint32_t u;
        memcpy(&u, b->p, 4);
        *v = u;
        b->p += 4;
        return true;
    }
    case 2:
        if (!pb_varint(b, v) || *v > (uint64_t)(b->end - b->p)) return false;
        sub->p = b->p;
        sub->end = b->p + *v;
        b->p += *v;
        return true;
    default: return false; /* groups (3, 4) are not in this schema */
    }
}

bool strata_tok_spm_sniff(const unsigned char *data, size_t size)
{
    /* A ModelProto starts with its first piece: key 0x0A (field 1, bytes),
     * a length, then the piece's own key 0x0A. A llama2.c file starts with
     * a small int32 whose second byte is 0, so it never looks like this. */
    struct pb b = {data, data + size}, sub;
    uint32_t field, wire;
    uint64_t v;
    if (size < 3 || data[0] != 0x0A) return false;
    if (!pb_next(&b, &field, &wire, &v, &sub)) return false;
    return v > 0 && sub.p[0] == 0x0A;
}

int strata_tok_spm_load(struct strata_tokenizer **out, const char *path)
{
    struct strata_map map = {0};
    struct strata_tokenizer *tok = NULL;
    const char **ps = NULL;
    int32_t *pn = NULL;
    float *score = NULL;
    uint8_t *type = NULL;
    bool *user = NULL;
    int rc;
    *out = NULL;
    if ((rc = strata_map_file(&map, path)) != 0) return rc;

    struct pb b = {map.data, (const unsigned char *)map.data + map.size}, sub, sub2;
    uint32_t field, wire, f2, w2;
    uint64_t v, v2;
    int64_t n = 0, cap = 0;
    uint64_t model_type = 1, unk_id = 0, bos_id = 1, eos_id = 2; /* proto defaults */
    bool byte_fallback = false, suffix = false;
    bool dummy = true, extra_ws = true, escape = true;
    char name[64] = "";
    size_t charsmap = 0;
    while (b.p < b.end) {
        const unsigned char *at = b.p;
        if (!pb_next(&b, &field, &wire, &v, &sub)) {
            rc = strata_fail(STRATA_E_FORMAT, "%s: protobuf field at byte %zu is truncated or "
                             "malformed: the tokenizer.model is incomplete or not a "
                             "SentencePiece model", path, (size_t)(at - (const unsigned char *)map.data));
            goto fail;
        }
        if (wire != 2 || field > 3) continue; /* self-test data, denormalizer, unknown */
        bool ok = true;
        if (field == 1) {
            if (n == cap) {
                cap = cap ? 2 * cap : 1024;
                ps = xrealloc(ps, (size_t)cap * sizeof *ps);
                pn = xrealloc(pn, (size_t)cap * sizeof *pn);
                score = xrealloc(score, (size_t)cap * sizeof *score);
                type = xrealloc(type, (size_t)cap);
            }
            ps[n] = "";
            pn[n] = 0;
            score[n] = 0;
            type[n] = TT_NORMAL;
            while (ok && sub.p < sub.end) {
                ok = pb_next(&sub, &f2, &w2, &v2, &sub2);
                if (!ok) break;
                if (f2 == 1 && w2 == 2) {
                    ps[n] = (const char *)sub2.p;
                    pn[n] = (int32_t)(sub2.end - sub2.p);
                } else if (f2 == 2 && w2 == 5) {
                    uint32_t u = (uint32_t)v2;
                    memcpy(&score[n], &u, 4);
                } else if (f2 == 3 && w2 == 0) {
                    if (v2 < 1 || v2 > 6) {
                        rc = strata_fail(STRATA_E_FORMAT, "%s: piece %lld has type %llu, not "
                                         "1..6 (NORMAL..BYTE)", path, (long long)n,
                                         (unsigned long long)v2);
                        goto fail;
                    }
                    type[n] = (uint8_t)v2;
                }
            }
            n++;
        } else if (field == 2) {
            while (ok && sub.p < sub.end) {
                ok = pb_next(&sub, &f2, &w2, &v2, &sub2);
                if (!ok || w2 != 0) continue;
                if (f2 == 3) model_type = v2;
                else if (f2 == 24) suffix = v2 != 0;
                else if (f2 == 35) byte_fallback = v2 != 0;
                else if (f2 == 40) unk_id = v2;
                else if (f2 == 41) bos_id = v2;
                else if (f2 == 42) eos_id = v2;
            }
        } else {
            while (ok && sub.p < sub.end) {
                ok = pb_next(&sub, &f2, &w2, &v2, &sub2);
                if (!ok) break;
                if (f2 == 1 && w2 == 2) {
                    size_t k = (size_t)(sub2.end - sub2.p);
                    if (k >= sizeof name) k = sizeof name - 1;
                    memcpy(name, sub2.p, k);
                    name[k] = '\0';
                } else if (f2 == 2 && w2 == 2) {
                    charsmap = (size_t)(sub2.end - sub2.p);
                } else if (w2 == 0) {
                    if (f2 == 3) dummy = v2 != 0;
                    else if (f2 == 4) extra_ws = v2 != 0;
                    else if (f2 == 5) escape = v2 != 0;
                }
            }
        }
        if (!ok) {
            rc = strata_fail(STRATA_E_FORMAT, "%s: field %u at byte %zu holds a truncated or "
                             "malformed message: the tokenizer.model is corrupt", path, field,
                             (size_t)(at - (const unsigned char *)map.data));
            goto fail;
        }
    }
    if (n == 0) {
        rc = strata_fail(STRATA_E_FORMAT, "%s: no pieces: not a SentencePiece model", path);
        goto fail;
    }
    if (n > INT32_MAX / 2) {
        rc = strata_fail(STRATA_E_FORMAT, "%s: %lld pieces is too many", path, (long long)n);
        goto fail;
    }
    if (model_type != 2) {
        static const char *const names[] = {"?", "UNIGRAM", "BPE", "WORD", "CHAR"};
        rc = strata_fail(STRATA_E_FORMAT, "%s: trainer_spec.model_type is %s; strata encodes "
                         "only SentencePiece BPE models (Llama 2, Baichuan)", path,
                         model_type <= 4 ? names[model_type] : "unknown");
        goto fail;
    }
    if (charsmap > 0) {
        rc = strata_fail(STRATA_E_FORMAT, "%s: normalizer_spec '%s' has a precompiled charsmap "
                         "(%zu bytes); strata supports only the identity normalizer", path,
                         name, charsmap);
        goto fail;
    }
    if (suffix) {
        rc = strata_fail(STRATA_E_FORMAT, "%s: treat_whitespace_as_suffix is not supported",
                         path);
        goto fail;
    }
    for (int64_t i = 0; i < n; i++) {
        if (pn[i] == 0) {
            rc = strata_fail(STRATA_E_FORMAT, "%s: piece %lld is empty", path, (long long)i);
            goto fail;
        }
        if (type[i] == TT_UNUSED) {
            rc = strata_fail(STRATA_E_FORMAT, "%s: piece %lld '%.*s' is UNUSED; strata does not "
                             "implement SentencePiece's re-splitting of unused pieces", path,
                             (long long)i, pn[i], ps[i]);
            goto fail;
        }
    }

    tok = strata_tok_alloc(path, TOK_SPM, (int32_t)n);
    tok->score = score;
    score = NULL;
    memcpy(tok->type, type, (size_t)n);
    strata_tok_set_pieces(tok, ps, pn);
    /* Ids: SentencePiece writes -1 as a 64-bit varint; anything outside
     * the vocabulary means "none". */
    tok->unk = unk_id < (uint64_t)n ? (int32_t)unk_id : -1;
    tok->bos = bos_id < (uint64_t)n ? (int32_t)bos_id : -1;
    tok->eos = eos_id < (uint64_t)n ? (int32_t)eos_id : -1;
    tok->byte_fallback = byte_fallback;
    tok->add_dummy_prefix = dummy;
    tok->remove_extra_ws = extra_ws;
    tok->escape_ws = escape;
    if ((rc = strata_tok_finish(tok)) != 0) goto fail;
    user = xmalloc((size_t)n);
    for (int64_t i = 0; i < n; i++) user[i] = type[i] == TT_USER;
    strata_tok_matcher_build(tok, &tok->norm, user);
    free(user);
    free(ps);
    free(pn);
    free(type);
    strata_unmap_file(&map);
    *out = tok;
    return 0;

fail:
    free(ps);
    free(pn);
    free(score);
    free(type);
    strata_unmap_file(&map);
    strata_tokenizer_free(tok);
    return rc;
}

/* One stretch of normalized text between user-defined pieces: code points
 * (the normalizer left only valid UTF-8; a stray byte would be one symbol),
 * merged, then emitted. */
static int spm_segment(const struct strata_tokenizer *tok, struct tok_enc *e, const char *s,
                       size_t n, bool at_start)
{
    (void)at_start;
    const unsigned char *u = (const unsigned char *)s;
    e->text = s;
    e->n_sym = 0;
    strata_tok_enc_reserve(e, n);
    for (size_t i = 0; i < n;) {
        size_t k = 1;
        if (u[i] >= 0xC0) {
            size_t want = u[i] >= 0xF0 ? 4 : u[i] >= 0xE0 ? 3 : 2;
            while (k < want && i + k < n && (u[i + k] & 0xC0) == 0x80) k++;
            if (k < want) k = 1;
        }
        int32_t id = strata_tok_lookup(tok, s + i, k);
        if (id >= 0 && tok->type[id] != TT_NORMAL && tok->type[id] != TT_USER) id = -1;
        strata_tok_sym_push(e, id >= 0 ? id : TOK_SYM_UNKNOWN, i, i + k, false);
        i += k;
    }
    strata_tok_merge_all(tok, e);
    for (int32_t i = e->n_sym > 0 ? 0 : -1; i >= 0; i = e->sym[i].next) {
        const struct tok_sym *y = &e->sym[i];
        if (y->id >= 0) {
            strata_tok_emit(e, y->id);
            continue;
        }
        bool bytes = tok->byte_fallback;
        for (uint32_t k = y->start; bytes && k < y->end; k++) bytes = tok->byte_id[u[k]] >= 0;
        if (bytes) {
            for (uint32_t k = y->start; k < y->end; k++) strata_tok_emit(e, tok->byte_id[u[k]]);
        } else {
            if (tok->unk < 0)
                return strata_fail(STRATA_E_ARG, "%s: text has '%.*s', which is no piece, and "
                                   "the model has neither byte fallback nor <unk>", tok->path,
                                   (int)(y->end - y->start), s + y->start);
            strata_tok_emit(e, tok->unk);
        }
    }
    return 0;
}

size_t strata_tok_utf8_len(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    if (n == 0) return 0;
    unsigned char b = s[0];
    if (b < 0x80) return 1;
    if (b >= 0xC2 && b <= 0xDF) return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (b >= 0xE0 && b <= 0xEF) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        if ((b == 0xE0 && s[1] < 0xA0) || (b == 0xED && s[1] >= 0xA0)) return 0; /* overlong, surrogate */
        return 3;
    }
    if (b >= 0xF0 && b <= 0xF4) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if ((b == 0xF0 && s[1] < 0x90) || (b == 0xF4 && s[1] >= 0x90)) return 0; /* overlong, > U+10FFFF */
        return 4;
    }
    return 0; /* continuation byte, C0/C1 (overlong), F5..FF */
}

char *strata_tok_replace_invalid_utf8(const char *text, size_t len, size_t *out_len)
{
    size_t i = 0, c;
    while (i < len && (c = strata_tok_utf8_len(text + i, len - i)) > 0) i += c;
    if (i == len) return NULL;
    char *o = xmalloc(3 * len + 1);
    memcpy(o, text, i);
    size_t k = i;
    while (i < len) {
        c = strata_tok_utf8_len(text + i, len - i);
        if (c == 0) {
            memcpy(o + k, "\xef\xbf\xbd", 3);
            k += 3;
            i++;
        } else {
            memcpy(o + k, text + i, c);
            k += c;
            i += c;
        }
    }
    *out_len = k;
    return o;
}

int strata_tok_spm_encode(const struct strata_tokenizer *tok, struct tok_enc *e,
                          const char *text, size_t len)
{
    /* Normalize into e->norm: "▁" is 3 bytes, so at most 3 per byte + 3. */
    size_t cap = 3 * len + 4;
    if (cap > e->norm_cap) {
        e->norm = xrealloc(e->norm, cap);
        e->norm_cap = cap;
    }
    size_t a = 0, b = len;
    if (tok->remove_extra_ws) {
        while (a < b && text[a] == ' ') a++;
        while (b > a && text[b - 1] == ' ') b--;
    }
    if (a == b) return 0; /* nothing left: no dummy prefix either */
    char *o = e->norm;
    size_t k = 0;
    static const char ws[] = "\xe2\x96\x81";
    if (tok->add_dummy_prefix) {
        if (tok->escape_ws) {
            memcpy(o + k, ws, 3);
            k += 3;
        } else {
            o[k++] = ' ';
        }
    }
    for (size_t i = a; i < b;) {
        if (text[i] == ' ') {
            bool extra = tok->remove_extra_ws && i > a && text[i - 1] == ' ';
            i++;
            if (extra) continue;
            if (tok->escape_ws) {
                memcpy(o + k, ws, 3);
                k += 3;
            } else {
                o[k++] = ' ';
            }
            continue;
        }
        /* SentencePiece's normalizer (NormalizePrefix) turns each byte
         * that starts no valid UTF-8 character into U+FFFD (3 bytes, still
         * within 3 per input byte) and copies valid characters whole. */
        size_t c = strata_tok_utf8_len(text + i, b - i);
        if (c == 0) {
            memcpy(o + k, "\xef\xbf\xbd", 3);
            k += 3;
            i++;
            continue;
        }
        memcpy(o + k, text + i, c);
        k += c;
        i += c;
    }
    /* User-defined pieces are matched on the normalized text and stay whole. */
    return strata_tok_split_matches(tok, &tok->norm, e, o, k, true, spm_segment);
}
