/* corpus.c — a text corpus split into documents, and the fixed-length
 * token samples every probe runs on.
 *
 * Why windows start at document starts: position 0 of every sample is then
 * BOS at the start of a story, as in the model's training data, so
 * position-dependent measurements (positional vectors, attention sinks) are
 * not confounded by samples that begin mid-sentence. Why non-overlapping:
 * samples are meant to be independent draws; two windows sharing tokens
 * would count the same text twice.
 *
 * The sampling rule, fixed so a seed means the same samples everywhere:
 *   1. tokenize each document with BOS first, no EOS; concatenate into one
 *      stream, remembering where each document starts;
 *   2. walk the documents: a window starts at document d's first token and
 *      covers the next seq_len tokens of the stream (crossing into later
 *      documents if d is short); the next window starts at the first
 *      document start at or after the end of this one; a window that would
 *      run past the end of the stream is not available;
 *   3. choose n of the n_windows with a partial Fisher-Yates shuffle:
 *      state = seed; for i = 0 .. n-1: j = i + strata_rng_next(&state) %
 *      (n_windows - i); swap(idx[i], idx[j]); the first n are chosen;
 *   4. sort the chosen windows by stream position.
 * Legend: N samples, T tokens per sample (seq_len).
 */
#include "internal.h"

#include <string.h>

struct strata_corpus {
    char *path;     /* for error messages */
    char *text;     /* every document, each NUL-terminated */
    int64_t n_docs;
    size_t *off;    /* (n_docs) start of document i in text */
    size_t *len;    /* (n_docs) its length in bytes */
};

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* A byte-string search: the corpus need not be free of NUL bytes. */
static const char *find(const char *hay, size_t n, const char *needle, size_t m)
{
    if (m > n) return NULL;
    for (const char *p = hay, *end = hay + (n - m);
         (p = memchr(p, needle[0], (size_t)(end - p) + 1)) != NULL; p++) {
        if (memcmp(p, needle, m) == 0) return p;
        if (p == end) break;
    }
    return NULL;
}

int strata_corpus_load(struct strata_corpus **out, const char *path, const char *sep)
{
    char *data = NULL;
    size_t size = 0;
    struct strata_corpus *c = NULL;
    int rc;
    if (!out || !path || !sep)
        return strata_fail(STRATA_E_ARG, "strata_corpus_load: NULL argument");
    *out = NULL;
    size_t sep_len = strlen(sep);
    if (sep_len == 0)
        return strata_fail(STRATA_E_ARG, "%s: the document separator is empty: give the "
                           "string that separates documents (e.g. \"<|endoftext|>\")", path);
    if ((rc = strata_read_file(&data, &size, path)) != 0) goto fail;

    c = xcalloc(1, sizeof *c);
    c->path = strata_xstrdup(path);
    /* Upper bound on the documents: one more than the separators. */
    size_t cap = 1;
    for (const char *p = data, *end = data + size;
         (p = find(p, (size_t)(end - p), sep, sep_len)) != NULL; p += sep_len)
        cap++;
    c->off = xmalloc(cap * sizeof *c->off);
    c->len = xmalloc(cap * sizeof *c->len);
    c->text = xmalloc(size + 1);

    size_t at = 0;
    const char *p = data, *end = data + size;
    for (;;) {
        const char *q = find(p, (size_t)(end - p), sep, sep_len);
        const char *stop = q ? q : end;
        const char *a = p, *b = stop;
        while (a < b && is_space(*a)) a++;
        while (b > a && is_space(b[-1])) b--;
        if (b > a) {
            size_t n = (size_t)(b - a);
            memcpy(c->text + at, a, n);
            c->text[at + n] = '\0';
            c->off[c->n_docs] = at;
            c->len[c->n_docs] = n;
            c->n_docs++;
            at += n + 1;
        }
        if (!q) break;
        p = q + sep_len;
    }
    if (c->n_docs == 0) {
        rc = strata_fail(STRATA_E_DATA, "%s: no documents (%zu bytes, separator \"%s\"): give "
                         "a non-empty text file whose documents are separated by that "
                         "string", path, size, sep);
        goto fail;
    }
    free(data);
    *out = c;
    return 0;

fail:
    free(data);
    strata_corpus_free(c);
    return rc;
}

void strata_corpus_free(struct strata_corpus *corpus)
{
    if (!corpus) return;
    free(corpus->path);
    free(corpus->text);
    free(corpus->off);
    free(corpus->len);
    free(corpus);
}

int64_t strata_corpus_n_docs(const struct strata_corpus *corpus)
{
    return corpus ? corpus->n_docs : 0;
}

const char *strata_corpus_doc(const struct strata_corpus *corpus, int64_t i, size_t *len)
{
    if (len) *len = 0;
    if (!corpus || i < 0 || i >= corpus->n_docs) return NULL;
    if (len) *len = corpus->len[i];
    return corpus->text + corpus->off[i];
}

/* ----------------------------------------------------------------- samples */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int strata_samples_build(struct strata_samples *out, const struct strata_corpus *corpus,
                         const struct strata_tokenizer *tok, int64_t n,
                         int64_t seq_len, uint64_t seed)
{
    int32_t *stream = NULL;   /* every document's tokens, concatenated */
    int64_t *doc_start = NULL; /* (n_docs) position of each document's BOS */
    int64_t *win = NULL;      /* (n_windows) document index of each window */
    int32_t *ids = NULL;
    int rc = 0;
    if (!out || !corpus || !tok)
        return strata_fail(STRATA_E_ARG, "strata_samples_build: NULL argument");
    memset(out, 0, sizeof *out);
    if (n < 1 || seq_len < 1)
        return strata_fail(STRATA_E_ARG, "%s: samples %lld and seq_len %lld must both be at "
                           "least 1", corpus->path, (long long)n, (long long)seq_len);

    /* Every window starts at a document's BOS, so a tokenizer without one
     * (GPT-2 style) cannot sample this way; say so rather than fail inside
     * encode. */
    if (strata_tokenizer_bos(tok) < 0)
        return strata_fail(STRATA_E_ARG, "corpus %s: tokenizer (%s) has no BOS token, and "
                           "samples start with BOS: use a tokenizer that defines one",
                           corpus->path, strata_tokenizer_kind(tok));

    int64_t n_tok = 0, cap = 1 << 16;
    stream = xmalloc((size_t)cap * sizeof *stream);
    doc_start = xmalloc((size_t)corpus->n_docs * sizeof *doc_start);
    for (int64_t d = 0; d < corpus->n_docs; d++) {
        int64_t n_ids;
        rc = strata_tokenizer_encode(tok, &ids, &n_ids, corpus->text + corpus->off[d],
                                     corpus->len[d], true, false);
        if (rc != 0) goto fail;
        if (n_tok + n_ids > cap) {
            while (n_tok + n_ids > cap) cap *= 2;
            stream = xrealloc(stream, (size_t)cap * sizeof *stream);
        }
        memcpy(stream + n_tok, ids, (size_t)n_ids * sizeof *ids);
        doc_start[d] = n_tok;
        n_tok += n_ids;
        free(ids);
        ids = NULL;
    }

    /* Windows, greedily from the front; document starts only grow, so the
     * first window that would run past the end ends the walk. */
    win = xmalloc((size_t)corpus->n_docs * sizeof *win);
    int64_t n_win = 0;
    for (int64_t d = 0; d < corpus->n_docs;) {
        if (seq_len > n_tok - doc_start[d]) break;
        win[n_win++] = d;
        int64_t end = doc_start[d] + seq_len;
        while (d < corpus->n_docs && doc_start[d] < end) d++;
    }
    if (n_win < n) {
        rc = strata_fail(STRATA_E_DATA, "corpus %s yields only %lld windows of %lld tokens; "
                         "need %lld: lower --samples or --seq-len, or give a larger corpus",
                         corpus->path, (long long)n_win, (long long)seq_len, (long long)n);
        goto fail;
    }

    uint64_t state = seed;
    for (int64_t i = 0; i < n; i++) {
        int64_t j = i + (int64_t)(strata_rng_next(&state) % (uint64_t)(n_win - i));
        int64_t t = win[i];
        win[i] = win[j];
        win[j] = t;
    }
    /* Document index order is stream order. */
    qsort(win, (size_t)n, sizeof *win, cmp_i64);

    out->n = n;
    out->seq_len = seq_len;
    out->n_windows = n_win;
    out->tokens = xmalloc((size_t)n * (size_t)seq_len * sizeof *out->tokens); /* (N, T) */
    out->doc = xmalloc((size_t)n * sizeof *out->doc);                       /* (N) */
    for (int64_t s = 0; s < n; s++) {
        out->doc[s] = win[s];
        memcpy(out->tokens + s * seq_len, stream + doc_start[win[s]],
               (size_t)seq_len * sizeof *out->tokens);
    }

fail:
    free(ids);
    free(stream);
    free(doc_start);
    free(win);
    return rc;
}

void strata_samples_free(struct strata_samples *samples)
{
    if (!samples) return;
    free(samples->tokens);
    free(samples->doc);
    memset(samples, 0, sizeof *samples);
}
