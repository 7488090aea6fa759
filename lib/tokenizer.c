/* tokenizer.c — the llama2.c tokenizer (tok512.bin, tokenizer.bin): load,
 * encode, decode.
 *
 * Why our own: every probe feeds token ids to a model trained with
 * llama2.c's tokenizer, so the ids must be exactly those of run.c's encode()
 * (karpathy/llama2.c) — including its quirks, which differ from
 * SentencePiece in places (it does not pre-split on whitespace, so runs of
 * spaces merge differently; see tests/test_tokenizer.c). What we do not copy
 * is its cost: run.c rescans every adjacent pair after each merge, with a
 * bsearch of strcmp per pair, O(n^2 log V) per text. Here the same merge
 * order comes out of a doubly linked list of symbols and a binary heap of
 * candidate pairs keyed (score desc, left position asc), with a hash table
 * for string -> id: O(n log n) per text.
 *
 * File format (native endian, as llama2.c writes it):
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
#include "internal.h"

#include <string.h>

/* The tag (high hash bits) rejects most non-matching slots without
 * touching the piece itself. */
struct slot {
    uint32_t tag;
    int32_t id; /* -1: empty */
};

struct strata_tokenizer {
    char *path;               /* for error messages */
    int32_t n_vocab;          /* V */
    int32_t max_token_length; /* longest piece in bytes (checked at load) */
    float *score;             /* (V) merge priority; higher merges first */
    char *arena;              /* every piece, each NUL-terminated */
    size_t *off;              /* (V) start of piece i in arena */
    int32_t *len;             /* (V) bytes of piece i */
    struct slot *slot;        /* (mask+1) open-addressing string -> id table */
    uint64_t mask;
    unsigned char byte_piece[512]; /* (256, 2): byte b, NUL, for decoded <0xXX> */
};

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

static int32_t lookup(const struct strata_tokenizer *tok, const char *s, size_t n)
{
    if (n > (size_t)tok->max_token_length) return -1; /* no piece is that long */
    uint64_t h = hash_bytes(s, n);
    uint32_t tag = (uint32_t)(h >> 32);
    for (uint64_t i = h & tok->mask;; i = (i + 1) & tok->mask) {
        int32_t id = tok->slot[i].id;
        if (id < 0) return -1;
        if (tok->slot[i].tag == tag && (size_t)tok->len[id] == n &&
            memcmp(tok->arena + tok->off[id], s, n) == 0)
            return id;
    }
}

static void build_table(struct strata_tokenizer *tok)
{
    uint64_t cap = 16;
    /* Most lookups are misses (pairs that are no piece): a load factor of
     * at most 1/4 keeps their linear probe runs short. */
    while (cap < 4 * (uint64_t)tok->n_vocab) cap *= 2;
    tok->mask = cap - 1;
    tok->slot = xmalloc(cap * sizeof *tok->slot);
    for (uint64_t i = 0; i < cap; i++) tok->slot[i] = (struct slot){0, -1};
    for (int32_t id = 0; id < tok->n_vocab; id++) {
        const char *s = tok->arena + tok->off[id];
        size_t n = (size_t)tok->len[id];
        if (lookup(tok, s, n) >= 0) continue; /* duplicate: keep the lowest id */
        uint64_t h = hash_bytes(s, n), i = h & tok->mask;
        while (tok->slot[i].id >= 0) i = (i + 1) & tok->mask;
        tok->slot[i] = (struct slot){(uint32_t)(h >> 32), id};
    }
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
    size_t pos = 4, text_bytes = 0;
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
        text_bytes += (size_t)len + 1;
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

    tok = xcalloc(1, sizeof *tok);
    tok->path = strata_xstrdup(path);
    tok->n_vocab = (int32_t)n;
    tok->max_token_length = max_len;
    tok->score = xmalloc((size_t)n * sizeof *tok->score);
    tok->off = xmalloc((size_t)n * sizeof *tok->off);
    tok->len = xmalloc((size_t)n * sizeof *tok->len);
    tok->arena = xmalloc(text_bytes);
    pos = 4;
    size_t at = 0;
    for (int32_t i = 0; i < tok->n_vocab; i++) {
        memcpy(&tok->score[i], data + pos, 4);
        int32_t len = rd_i32(data + pos + 4);
        memcpy(tok->arena + at, data + pos + 8, (size_t)len);
        tok->arena[at + (size_t)len] = '\0';
        tok->off[i] = at;
        tok->len[i] = len;
        at += (size_t)len + 1;
        pos += 8 + (size_t)len;
    }
    for (int b = 0; b < 256; b++) {
        tok->byte_piece[2 * b] = (unsigned char)b;
        tok->byte_piece[2 * b + 1] = 0;
    }
    build_table(tok);
    strata_unmap_file(&map);
    *out = tok;
    return 0;

fail:
    strata_unmap_file(&map);
    strata_tokenizer_free(tok);
    return rc;
}

void strata_tokenizer_free(struct strata_tokenizer *tok)
{
    if (!tok) return;
    free(tok->path);
    free(tok->score);
    free(tok->arena);
    free(tok->off);
    free(tok->len);
    free(tok->slot);
    free(tok);
}

int32_t strata_tokenizer_n_vocab(const struct strata_tokenizer *tok)
{
    return tok ? tok->n_vocab : 0;
}

/* ------------------------------------------------------------------ encode */

/* A symbol is a run of text currently covered by one token. Merging keeps
 * the left symbol and kills the right one, so a symbol's index is the
 * position of its first piece and index order is text order. */
struct sym {
    int32_t id;    /* token; -1 once merged into its left neighbour */
    int32_t prev;  /* neighbours in the list, -1 at the ends */
    int32_t next;
    uint32_t ver;  /* bumped whenever id changes, to spot stale heap entries */
};

/* A candidate merge of symbols left and left's next neighbour. */
struct cand {
    uint64_t key;  /* order_key(): smallest first */
    int32_t right;
    int32_t id;    /* merged piece */
    uint32_t ver_right;
};

/* run.c picks the highest score and, among equals, the leftmost pair; one
 * integer compare does both: the high half orders scores descending, the
 * low half is the left symbol, i.e. its position. */
static uint64_t order_key(float score, int32_t left)
{
    uint32_t u;
    score += 0.0f; /* -0 == +0 for run.c's ">", so map -0 to +0 */
    memcpy(&u, &score, 4);
    u = (u & 0x80000000u) ? ~u : u | 0x80000000u; /* ascending as unsigned */
    return ((uint64_t)~u << 32) | (uint32_t)left;
}

struct merger {
    struct sym *sym;
    struct cand *heap;
    int64_t n_heap;
    char *buf;     /* (2 * max_token_length) concatenation scratch */
};

static bool cand_before(const struct cand *a, const struct cand *b)
{
    return a->key < b->key;
}

static void heap_push(struct merger *m, struct cand c)
{
    int64_t i = m->n_heap++;
    while (i > 0) {
        int64_t parent = (i - 1) / 2;
        if (!cand_before(&c, &m->heap[parent])) break;
        m->heap[i] = m->heap[parent];
        i = parent;
    }
    m->heap[i] = c;
}

static struct cand heap_pop(struct merger *m)
{
    struct cand top = m->heap[0];
    struct cand last = m->heap[--m->n_heap];
    int64_t i = 0, n = m->n_heap;
    for (;;) {
        int64_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && cand_before(&m->heap[child + 1], &m->heap[child])) child++;
        if (!cand_before(&m->heap[child], &last)) break;
        m->heap[i] = m->heap[child];
        i = child;
    }
    if (n > 0) m->heap[i] = last;
    return top;
}

/* Queue the merge of symbol l with its right neighbour if the joined
 * pieces are a piece themselves. */
static void try_pair(const struct strata_tokenizer *tok, struct merger *m, int32_t l)
{
    if (l < 0) return;
    int32_t r = m->sym[l].next;
    if (r < 0) return;
    int32_t a = m->sym[l].id, b = m->sym[r].id;
    size_t la = (size_t)tok->len[a], lb = (size_t)tok->len[b];
    if (la + lb > (size_t)tok->max_token_length) return;
    memcpy(m->buf, tok->arena + tok->off[a], la);
    memcpy(m->buf + la, tok->arena + tok->off[b], lb);
    int32_t id = lookup(tok, m->buf, la + lb);
    if (id < 0 || !(tok->score[id] > MERGE_FLOOR)) return;
    struct cand c = {order_key(tok->score[id], l), r, id, m->sym[r].ver};
    heap_push(m, c);
}

/* Append token id as a new symbol at the end of the list. */
static void push_sym(struct merger *m, int32_t *n_sym, int32_t id)
{
    int32_t i = (*n_sym)++;
    m->sym[i] = (struct sym){id, i - 1, -1, 0};
    if (i > 0) m->sym[i - 1].next = i;
}

/* The byte-fallback id of byte b, checked against the vocabulary. */
static int fallback(const struct strata_tokenizer *tok, unsigned char b, size_t at,
                    int32_t *id)
{
    *id = (int32_t)b + 3; /* ids 0..2 are <unk>, BOS, EOS */
    if (*id >= tok->n_vocab)
        return strata_fail(STRATA_E_ARG, "%s: text byte 0x%02x at offset %zu is not in the "
                           "vocabulary and byte fallback needs id %d, but the tokenizer has "
                           "only %d entries: use a tokenizer with byte pieces, or clean the "
                           "text", tok->path, b, at, *id, tok->n_vocab);
    return 0;
}

int strata_tokenizer_encode(const struct strata_tokenizer *tok, int32_t **tokens,
                            int64_t *n, const char *text, size_t len, bool bos,
                            bool eos)
{
    struct merger m = {0};
    int rc = 0;
    if (!tok || !tokens || !n || (!text && len > 0))
        return strata_fail(STRATA_E_ARG, "strata_tokenizer_encode: NULL argument");
    *tokens = NULL;
    *n = 0;
    if (len > (size_t)INT32_MAX - 8)
        return strata_fail(STRATA_E_ARG, "%s: text of %zu bytes is too long to encode in one "
                           "call: split it", tok->path, len);

    /* Every byte yields at most one symbol, plus BOS and the dummy prefix. */
    size_t cap = len + 2;
    m.sym = xmalloc(cap * sizeof *m.sym);
    m.heap = xmalloc(3 * cap * sizeof *m.heap); /* n-1 initial pairs + 2 per merge */
    m.buf = xmalloc(2 * (size_t)tok->max_token_length + 8);
    int32_t n_sym = 0, id;

    if (bos) push_sym(&m, &n_sym, STRATA_TOKEN_BOS);
    if (len > 0) { /* add_dummy_prefix, but only for non-empty text (as run.c) */
        id = lookup(tok, " ", 1);
        if (id < 0 && (rc = fallback(tok, ' ', 0, &id)) != 0) goto fail;
        push_sym(&m, &n_sym, id);
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
        id = lookup(tok, text + start, cp_len);
        if (id >= 0) {
            push_sym(&m, &n_sym, id);
        } else {
            for (size_t k = start; k < start + cp_len; k++) {
                if ((rc = fallback(tok, u[k], k, &id)) != 0) goto fail;
                push_sym(&m, &n_sym, id);
            }
        }
        cp_len = 0;
    }

    for (int32_t i = 0; i + 1 < n_sym; i++) try_pair(tok, &m, i);
    while (m.n_heap > 0) {
        struct cand c = heap_pop(&m);
        int32_t left = (int32_t)(uint32_t)c.key;
        struct sym *l = &m.sym[left], *r = &m.sym[c.right];
        /* Stale if either side merged since the pair was queued. The left
         * side can only change by merging with its right neighbour, which
         * then leaves the list for good, so l->next == right rules that
         * out; the right side may have grown by merging further right,
         * which its version shows. */
        if (l->id < 0 || r->id < 0 || l->next != c.right || r->ver != c.ver_right)
            continue;
        l->id = c.id;
        l->ver++;
        l->next = r->next;
        if (r->next >= 0) m.sym[r->next].prev = left;
        r->id = -1;
        try_pair(tok, &m, l->prev);
        try_pair(tok, &m, left);
    }

    int64_t count = eos;
    for (int32_t i = n_sym > 0 ? 0 : -1; i >= 0; i = m.sym[i].next) count++;
    int32_t *ids = xmalloc((size_t)count * sizeof *ids);
    int64_t k = 0;
    for (int32_t i = n_sym > 0 ? 0 : -1; i >= 0; i = m.sym[i].next) ids[k++] = m.sym[i].id;
    if (eos) ids[k++] = STRATA_TOKEN_EOS;
    STRATA_ASSERT(k == count);
    *tokens = ids;
    *n = count;

fail:
    free(m.sym);
    free(m.heap);
    free(m.buf);
    return rc;
}

/* ------------------------------------------------------------------ decode */

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

const char *strata_tokenizer_piece(const struct strata_tokenizer *tok, int32_t prev,
                                   int32_t tok_id, size_t *len)
{
    if (len) *len = 0;
    if (!tok || tok_id < 0 || tok_id >= tok->n_vocab) return NULL;
    const char *p = tok->arena + tok->off[tok_id];
    size_t n = (size_t)tok->len[tok_id];
    /* SentencePiece's decoder strips the dummy-prefix space after BOS. */
    if (prev == STRATA_TOKEN_BOS && n > 0 && p[0] == ' ') {
        p++;
        n--;
    }
    /* Byte pieces "<0xXX>" stand for the raw byte. run.c tests this with a
     * lax sscanf; we require the exact six-character form, which is what
     * every byte piece of a llama2.c export looks like. */
    if (n == 6 && memcmp(p, "<0x", 3) == 0 && p[5] == '>') {
        int hi = hex_digit(p[3]), lo = hex_digit(p[4]);
        if (hi >= 0 && lo >= 0) {
            if (len) *len = 1;
            return (const char *)tok->byte_piece + 2 * (hi * 16 + lo);
        }
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
        int32_t prev = i > 0 ? tokens[i - 1] : after_bos ? STRATA_TOKEN_BOS : -1;
        if (!strata_tokenizer_piece(tok, prev, tokens[i], &piece_len))
            return strata_fail(STRATA_E_ARG, "%s: token %d at index %lld is outside the "
                               "vocabulary 0..%d: these ids come from another tokenizer",
                               tok->path, tokens[i], (long long)i, tok->n_vocab - 1);
        total += piece_len;
    }
    char *s = xmalloc(total + 1);
    size_t at = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t prev = i > 0 ? tokens[i - 1] : after_bos ? STRATA_TOKEN_BOS : -1;
        const char *p = strata_tokenizer_piece(tok, prev, tokens[i], &piece_len);
        memcpy(s + at, p, piece_len);
        at += piece_len;
    }
    s[at] = '\0';
    *text = s;
    if (len) *len = at;
    return 0;
}
