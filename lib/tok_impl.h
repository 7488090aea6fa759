/* tok_impl.h — the tokenizer's private layout, shared by the files that
 * implement it (not part of the API, not for the rest of lib/):
 *   tokenizer.c  vocabulary table, the one BPE merge engine, llama2.c
 *                format, strata_tokenizer_open, encode/decode for all kinds
 *   tok_spm.c    SentencePiece tokenizer.model (protobuf) loader + normalizer
 *   tok_gguf.c   the tokenizer inside a GGUF file (llama.cpp's tokenizer.ggml.*)
 *   tok_hf.c     Hugging Face tokenizer.json loader, normalizers and
 *                pre-tokenizers (GPT-2 and Llama 3 split patterns)
 *   tok_save.c   writing a llama2.c or SentencePiece tokenizer as
 *                tokenizer.json + tokenizer_config.json
 * One engine serves every kind: symbols in a linked list, candidate merges
 * in a heap keyed (priority, left position); the priority is the merged
 * piece's score for llama2.c and SentencePiece (higher first) and the merge
 * rank for Hugging Face BPE (lower first).
 * The functions below are private but link across these files, so
 * libstrata.a exports them: they carry the strata_ prefix like every
 * exported symbol, to stay out of the user's namespace.
 */
#ifndef STRATA_TOK_IMPL_H
#define STRATA_TOK_IMPL_H

#include "internal.h"

#include <stdbool.h>
#include <stdint.h>

enum tok_kind { TOK_LLAMA2C, TOK_SPM, TOK_HF_BPE, TOK_HF_BYTELEVEL };

/* Piece types, numbered as SentencePiece's ModelProto and GGUF number them.
 * Hugging Face added tokens map to CONTROL (special) or USER (not special). */
enum tok_type { TT_NORMAL = 1, TT_UNKNOWN, TT_CONTROL, TT_USER, TT_UNUSED, TT_BYTE };

/* Pre-tokenizers: how a (normalized) segment is cut into independent BPE
 * chunks. */
enum tok_pretok {
    PRE_NONE,      /* the whole segment is one chunk */
    PRE_METASPACE, /* HF Metaspace with split: a chunk starts at each "▁" */
    PRE_GPT2,      /* GPT-2's pattern (also ByteLevel's use_regex) */
    PRE_LLAMA3     /* Llama 3's pattern */
};

/* Hugging Face normalizer steps, applied in order. */
enum tok_norm_op { NORM_PREPEND, NORM_REPLACE };
struct tok_norm {
    enum tok_norm_op op;
    char *a; /* PREPEND: the prefix; REPLACE: the pattern (a plain string) */
    char *b; /* REPLACE: the content */
};
#define TOK_MAX_NORM 8

/* Open-addressing string -> id table entry; the tag (high hash bits)
 * rejects most non-matching slots without touching the piece. */
struct tok_slot {
    uint32_t tag;
    int32_t id; /* -1: empty */
};

/* Hugging Face merge (a, b) -> (rank, merged id). */
struct tok_merge {
    uint64_t pair; /* (uint64)a << 32 | b; UINT64_MAX: empty */
    uint32_t rank;
    int32_t id;
};

/* Pieces matched verbatim in the text before anything else: SentencePiece
 * user-defined pieces, Hugging Face added tokens. Leftmost-longest. */
struct tok_matcher {
    struct tok_slot *slot; /* only the matchable ids */
    uint64_t mask;
    int32_t *lens;         /* distinct byte lengths, longest first */
    int32_t n_lens;
    uint8_t first[32];     /* bitset of first bytes */
    uint8_t *pair2;        /* (65536 / 8) bitset of first two bytes, for lengths >= 2 */
};

struct strata_tokenizer {
    char *path;               /* for error messages */
    enum tok_kind kind;
    int32_t n_vocab;          /* V */
    int32_t max_token_length; /* longest piece in bytes */
    int32_t bos, eos, unk;    /* -1: none */
    float *score;             /* (V) llama2.c/SentencePiece merge priority; NULL for HF */
    uint8_t *type;            /* (V) enum tok_type */
    char *arena;              /* every piece as the vocabulary spells it, NUL-terminated */
    size_t *off;              /* (V) start of piece i in arena */
    int32_t *len;             /* (V) bytes of piece i */
    char *surf;               /* the bytes every piece decodes to, NUL-terminated */
    size_t *surf_off;         /* (V) */
    int32_t *surf_len;        /* (V) */
    struct tok_slot *slot;    /* (mask+1) string -> lowest id */
    uint64_t mask;
    int32_t byte_id[256];     /* token standing for raw byte b (fallback or byte-level); -1 none */

    struct tok_matcher raw;   /* matched on the raw text (HF added, normalized: false) */
    struct tok_matcher norm;  /* matched after normalization (SPM user-defined, HF normalized: true) */

    /* SentencePiece normalizer_spec and trainer_spec. */
    bool add_dummy_prefix, remove_extra_ws, escape_ws;
    bool byte_fallback;       /* SPM and hf-bpe: unknown characters become <0xXX> pieces */

    /* Hugging Face. */
    struct tok_merge *merge;  /* (merge_mask+1) */
    uint64_t merge_mask;
    struct tok_norm norm_op[TOK_MAX_NORM];
    int n_norm;
    enum tok_pretok pretok;
    char meta_rep[8];         /* Metaspace replacement, UTF-8 */
    int meta_prepend;         /* Metaspace: 0 never, 1 first, 2 always */
    bool meta_active;         /* a Metaspace pre-tokenizer is present (split or not) */
    bool prefix_space;        /* ByteLevel add_prefix_space */
    bool ignore_merges;       /* a chunk that is a whole piece is taken as it is */
    bool fuse_unk;            /* consecutive unknown characters become one <unk> */
};

/* tokenizer.c: shared machinery for the loaders. */
struct strata_tokenizer *strata_tok_alloc(const char *path, enum tok_kind kind, int32_t n_vocab);
/* Copy piece i (bytes s, n) in; call for every id, then strata_tok_finish. */
void strata_tok_set_pieces(struct strata_tokenizer *tok, const char *const *s, const int32_t *n);
/* Build the lookup table, surfaces and byte ids; 0 or a status. */
int strata_tok_finish(struct strata_tokenizer *tok);
int32_t strata_tok_lookup(const struct strata_tokenizer *tok, const char *s, size_t n);
/* Build a matcher over the ids with want[id] set. */
void strata_tok_matcher_build(const struct strata_tokenizer *tok, struct tok_matcher *mt,
                              const bool *want);
void strata_tok_matcher_free(struct tok_matcher *mt);

/* tok_spm.c */
bool strata_tok_spm_sniff(const unsigned char *data, size_t size);
int strata_tok_spm_load(struct strata_tokenizer **out, const char *path);
/* An empty merge table (open addressing, power-of-two size, load <= 1/2)
 * for n_merge merges, and a scratch buffer for joining two pieces (caller
 * free()s it). */
char *strata_tok_merges_alloc(struct strata_tokenizer *tok, int64_t n_merge);

/* Bytes of the valid UTF-8 character at s (n bytes left), 1..4, or 0 when
 * s[0] starts none, by SentencePiece's DecodeUTF8 (util.cc): a truncated
 * sequence, a lone continuation byte, an overlong form, a surrogate or a
 * value past U+10FFFF. */
size_t strata_tok_utf8_len(const char *s, size_t n);
/* text with every byte that starts no valid character replaced by U+FFFD,
 * as SentencePiece's normalizer does (so a truncated 2-byte tail becomes
 * two U+FFFD); NULL when text is valid UTF-8. Caller free()s; *out_len is
 * at most 3 * len. */
char *strata_tok_replace_invalid_utf8(const char *text, size_t len, size_t *out_len);

/* tok_gguf.c: the tokenizer in a GGUF file's metadata; _dir: the one .gguf
 * file in a directory (1 if there is none). */
int strata_tok_gguf_load(struct strata_tokenizer **out, const char *path);
int strata_tok_gguf_dir(struct strata_tokenizer **out, const char *dir);

/* tok_hf.c */
int strata_tok_hf_load(struct strata_tokenizer **out, const char *path);
/* End of the pre-tokenizer chunk that starts at byte i of s (n bytes), for
 * PRE_GPT2 and PRE_LLAMA3; always > i. Invalid UTF-8 bytes count as one
 * character each, outside every class. */
size_t strata_tok_pretok_next(enum tok_pretok p, const char *s, size_t n, size_t i);
/* The UTF-8 spelling of GPT-2's byte-level stand-in for byte b; returns its
 * length (1 or 2). */
int strata_tok_gpt2_char(unsigned char b, char out[4]);

/* The encoder's growable scratch, shared by the kinds' text passes. */
struct tok_sym {
    int32_t id;     /* token; TOK_SYM_UNKNOWN: text with no piece (SentencePiece) */
    int32_t prev;   /* neighbours in the list, -1 at the ends */
    int32_t next;
    uint32_t ver;   /* bumped whenever id changes, to spot stale heap entries */
    uint32_t start; /* span of the chunk text this symbol covers */
    uint32_t end;
    bool frozen;    /* a user-defined piece: never merged */
    bool dead;      /* merged into its left neighbour */
};
#define TOK_SYM_UNKNOWN (-2)

struct tok_cand {
    uint64_t key; /* (priority << 32 | left position): smallest first */
    int32_t right;
    int32_t id;   /* merged piece */
    uint32_t ver_right;
};

struct tok_enc {
    struct tok_sym *sym;
    int32_t n_sym;
    size_t sym_cap;
    struct tok_cand *heap;
    int64_t n_heap;
    char *buf;         /* concatenation scratch (llama2.c) */
    size_t buf_cap;
    const char *text;  /* the chunk the spans index */
    int32_t *ids;      /* output */
    int64_t n_ids, ids_cap;
    char *norm;        /* normalized segment scratch */
    size_t norm_cap;
    char *map;         /* byte-level mapped chunk scratch */
    size_t map_cap;
};

void strata_tok_emit(struct tok_enc *e, int32_t id);
/* Room for n symbols (and their heap). */
void strata_tok_enc_reserve(struct tok_enc *e, size_t n);
void strata_tok_sym_push(struct tok_enc *e, int32_t id, size_t start, size_t end, bool frozen);
/* Merge the symbols e->sym[0 .. n_sym) (one chunk over e->text). */
void strata_tok_merge_all(const struct strata_tokenizer *tok, struct tok_enc *e);
/* Split s (n) by matcher mt: calls seg(tok, e, piece, len, at_start) for
 * the text between matches and emits the matched ids. */
typedef int (*tok_seg_fn)(const struct strata_tokenizer *tok, struct tok_enc *e,
                          const char *s, size_t n, bool at_start);
int strata_tok_split_matches(const struct strata_tokenizer *tok, const struct tok_matcher *mt,
                             struct tok_enc *e, const char *s, size_t n, bool at_start,
                             tok_seg_fn seg);
int strata_tok_spm_encode(const struct strata_tokenizer *tok, struct tok_enc *e,
                          const char *text, size_t len);
int strata_tok_hf_encode(const struct strata_tokenizer *tok, struct tok_enc *e,
                         const char *text, size_t len);

#endif
