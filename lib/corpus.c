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
 *   3. order the windows with a partial Fisher-Yates shuffle (draw i =
 *      idx[i] after: state = seed; for i = 0 .. first+n-1: j = i +
 *      strata_rng_next(&state) % (n_windows - i); swap(idx[i], idx[j]));
 *      a run takes draws first .. first+n-1 (first = 0 but for append/shards);
 *   4. sort the chosen windows by stream position.
 * Legend: N samples, T tokens per sample (seq_len).
 */
#include "internal.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

struct strata_corpus {
    char *path;     /* for error messages */
    enum strata_corpus_kind kind; /* never AUTO */
    char *text;     /* text kinds: every document, each NUL-terminated */
    int32_t *ids;   /* IDS: every document's ids, one after the other */
    int64_t n_docs, cap_docs;
    size_t *off;    /* (n_docs) start of document i in text (ids) */
    size_t *len;    /* (n_docs) its length in bytes (ids) */
    size_t used, cap; /* of text (ids) */
    int32_t ids_bos, ids_n_vocab; /* IDS without a tokenizer (strata_corpus_params) */
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

/* Append document a .. b (trimmed; dropped when empty). */
static void add_doc(struct strata_corpus *c, const char *a, const char *b)
{
    while (a < b && is_space(*a)) a++;
    while (b > a && is_space(b[-1])) b--;
    if (b == a) return;
    size_t n = (size_t)(b - a);
    if (c->n_docs == c->cap_docs) {
        c->cap_docs = c->cap_docs ? 2 * c->cap_docs : 64;
        c->off = xrealloc(c->off, (size_t)c->cap_docs * sizeof *c->off);
        c->len = xrealloc(c->len, (size_t)c->cap_docs * sizeof *c->len);
    }
    if (c->used + n + 1 > c->cap) {
        while (c->used + n + 1 > c->cap) c->cap = c->cap ? 2 * c->cap : 4096;
        c->text = xrealloc(c->text, c->cap);
    }
    memcpy(c->text + c->used, a, n);
    c->text[c->used + n] = '\0';
    c->off[c->n_docs] = c->used;
    c->len[c->n_docs++] = n;
    c->used += n + 1;
}

static int load_text(struct strata_corpus *c, const char *data, size_t size, const char *sep)
{
    size_t sep_len = strlen(sep);
    if (sep_len == 0)
        return strata_fail(STRATA_E_ARG, "%s: the document separator is empty: give the "
                           "string that separates documents (e.g. \"<|endoftext|>\")", c->path);
    const char *p = data, *end = data + size;
    for (;;) {
        const char *q = find(p, (size_t)(end - p), sep, sep_len);
        add_doc(c, p, q ? q : end);
        if (!q) break;
        p = q + sep_len;
    }
    return 0;
}

/* JSON Lines: every non-blank line an object whose string `field` is a document. */
static int load_jsonl(struct strata_corpus *c, const char *data, size_t size, const char *field)
{
    const char *p = data, *end = data + size;
    for (int64_t line = 1; p < end; line++) {
        const char *q = memchr(p, '\n', (size_t)(end - p));
        if (!q) q = end;
        const char *a = p;
        while (a < q && is_space(*a)) a++;
        if (a < q) {
            cJSON *j = cJSON_ParseWithLength(a, (size_t)(q - a));
            const cJSON *v = j ? cJSON_GetObjectItemCaseSensitive(j, field) : NULL;
            if (!cJSON_IsString(v)) {
                cJSON_Delete(j);
                return strata_fail(STRATA_E_FORMAT, "%s:%lld: %s: each line must be a JSON object "
                                   "with a string field \"%s\" (--jsonl-field)", c->path,
                                   (long long)line, j ? "no such string field" : "malformed JSON",
                                   field);
            }
            add_doc(c, v->valuestring, v->valuestring + strlen(v->valuestring));
            cJSON_Delete(j);
        }
        p = q + 1;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every *.txt file of directory c->path, sorted by name (bytewise), one document each. */
static int load_dir(struct strata_corpus *c)
{
    DIR *dp = opendir(c->path);
    if (!dp) return strata_fail(STRATA_E_IO, "%s: cannot open directory: %s", c->path, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(dp))) {
        if (e->d_name[0] == '.' || !strata_has_suffix(e->d_name, ".txt")) continue;
        if (n == cap) names = xrealloc(names, (cap = cap ? 2 * cap : 64) * sizeof *names);
        names[n++] = strata_xstrdup(e->d_name);
    }
    closedir(dp);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char *fp = strata_path_join(c->path, names[i]), *data = NULL;
        size_t size = 0;
        if (!rc && (rc = strata_read_file(&data, &size, fp)) == 0) add_doc(c, data, data + size);
        free(data);
        free(fp);
        free(names[i]);
    }
    free(names);
    return rc;
}

/* Pre-tokenized: one document a line of whitespace-separated ids. */
static int load_ids(struct strata_corpus *c, const char *data, size_t size)
{
    const char *p = data, *end = data + size;
    for (int64_t line = 1; p < end; line++) {
        const char *q = memchr(p, '\n', (size_t)(end - p));
        if (!q) q = end;
        size_t start = c->used;
        while (p < q) {
            while (p < q && is_space(*p)) p++;
            if (p == q) break;
            int64_t v = 0;
            const char *s = p;
            while (p < q && *p >= '0' && *p <= '9' && v <= INT32_MAX) v = v * 10 + (*p++ - '0');
            if (p == s || v > INT32_MAX || (p < q && !is_space(*p)))
                return strata_fail(STRATA_E_FORMAT, "%s:%lld: expected whitespace-separated "
                                   "token ids (0 .. 2147483647), found \"%.20s\"", c->path,
                                   (long long)line, s);
            if (c->used == c->cap)
                c->ids = xrealloc(c->ids, (c->cap = c->cap ? 2 * c->cap : 4096) * sizeof *c->ids);
            c->ids[c->used++] = (int32_t)v;
        }
        if (c->used > start) {
            if (c->n_docs == c->cap_docs) {
                c->cap_docs = c->cap_docs ? 2 * c->cap_docs : 64;
                c->off = xrealloc(c->off, (size_t)c->cap_docs * sizeof *c->off);
                c->len = xrealloc(c->len, (size_t)c->cap_docs * sizeof *c->len);
            }
            c->off[c->n_docs] = start;
            c->len[c->n_docs++] = c->used - start;
        }
        p = q + 1;
    }
    return 0;
}

struct strata_corpus_params strata_corpus_default_params(void)
{
    return (struct strata_corpus_params){STRATA_CORPUS_AUTO, "<|endoftext|>", "text", 1, 0};
}

static const char *const kind_names[] = {"auto", "text", "jsonl", "dir", "ids"};

const char *strata_corpus_kind_name(enum strata_corpus_kind kind)
{
    return (unsigned)kind < 5 ? kind_names[kind] : "unknown";
}

int strata_corpus_kind_parse(const char *s, enum strata_corpus_kind *out)
{
    for (int i = 0; i < 5; i++)
        if (s && !strcmp(s, kind_names[i])) {
            *out = (enum strata_corpus_kind)i;
            return 0;
        }
    return strata_fail(STRATA_E_ARG, "corpus format \"%s\": expected auto, text, jsonl, dir or ids",
                       s ? s : "");
}

enum strata_corpus_kind strata_corpus_kind(const struct strata_corpus *corpus)
{
    return corpus ? corpus->kind : STRATA_CORPUS_AUTO;
}

enum strata_corpus_kind strata_corpus_kind_resolve(const char *path, enum strata_corpus_kind kind)
{
    if (kind != STRATA_CORPUS_AUTO || !path) return kind;
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return STRATA_CORPUS_DIR;
    if (strata_has_suffix(path, ".jsonl")) return STRATA_CORPUS_JSONL;
    if (strata_has_suffix(path, ".ids")) return STRATA_CORPUS_IDS;
    return STRATA_CORPUS_TEXT;
}

int strata_corpus_open(struct strata_corpus **out, const char *path,
                       const struct strata_corpus_params *params)
{
    if (!out || !path || !params) return strata_fail(STRATA_E_ARG, "strata_corpus_open: NULL argument");
    *out = NULL;
    struct strata_corpus_params pr = *params;
    struct strata_corpus_params def = strata_corpus_default_params();
    if (!pr.sep) pr.sep = def.sep;
    if (!pr.field) pr.field = def.field;
    pr.kind = strata_corpus_kind_resolve(path, pr.kind);
    if ((unsigned)pr.kind > STRATA_CORPUS_IDS)
        return strata_fail(STRATA_E_ARG, "%s: unknown corpus kind %d", path, (int)pr.kind);
    struct strata_corpus *c = xcalloc(1, sizeof *c);
    c->path = strata_xstrdup(path);
    c->kind = pr.kind;
    c->ids_bos = pr.ids_bos, c->ids_n_vocab = pr.ids_n_vocab;
    char *data = NULL;
    size_t size = 0;
    int rc;
    if (pr.kind == STRATA_CORPUS_DIR) rc = load_dir(c);
    else if ((rc = strata_read_file(&data, &size, path)) == 0)
        rc = pr.kind == STRATA_CORPUS_TEXT    ? load_text(c, data, size, pr.sep)
             : pr.kind == STRATA_CORPUS_JSONL ? load_jsonl(c, data, size, pr.field)
                                              : load_ids(c, data, size);
    free(data);
    if (!rc && c->n_docs == 0)
        rc = strata_fail(STRATA_E_DATA, "%s: no documents (read as %s%s%s%s): give a non-empty "
                         "corpus", path, kind_names[pr.kind],
                         pr.kind == STRATA_CORPUS_TEXT ? ", separator \"" : "",
                         pr.kind == STRATA_CORPUS_TEXT ? pr.sep : "",
                         pr.kind == STRATA_CORPUS_TEXT ? "\"" : "");
    if (rc) {
        strata_corpus_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int strata_corpus_load(struct strata_corpus **out, const char *path, const char *sep)
{
    if (!out || !path || !sep) return strata_fail(STRATA_E_ARG, "strata_corpus_load: NULL argument");
    struct strata_corpus_params p = strata_corpus_default_params();
    p.kind = STRATA_CORPUS_TEXT;
    p.sep = sep;
    return strata_corpus_open(out, path, &p);
}

void strata_corpus_free(struct strata_corpus *corpus)
{
    if (!corpus) return;
    free(corpus->path);
    free(corpus->text);
    free(corpus->ids);
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
    if (!corpus || i < 0 || i >= corpus->n_docs || !corpus->text) return NULL;
    if (len) *len = corpus->len[i];
    return corpus->text + corpus->off[i];
}

/* ----------------------------------------------------------------- samples */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The token stream of the whole corpus and where each document starts
 * (rule step 1), and the windows (step 2). */
struct stream {
    int32_t *tok;      /* every document's tokens, concatenated */
    int64_t n_tok;
    int64_t *doc_start; /* (n_docs) position of each document's BOS */
    int64_t *win;      /* (n_win) document index of each window, stream order */
    int64_t n_win;
};

static void stream_free(struct stream *s)
{
    free(s->tok);
    free(s->doc_start);
    free(s->win);
}

static int stream_build(struct stream *st, const struct strata_corpus *corpus,
                        const struct strata_tokenizer *tok, int64_t seq_len)
{
    memset(st, 0, sizeof *st);
    if (!corpus) return strata_fail(STRATA_E_ARG, "strata_samples_build: NULL argument");
    if (!tok && corpus->kind != STRATA_CORPUS_IDS)
        return strata_fail(STRATA_E_ARG, "corpus %s: a %s corpus needs a tokenizer (only token-id "
                           ".ids corpora are read without one)", corpus->path,
                           kind_names[corpus->kind]);
    if (seq_len < 1)
        return strata_fail(STRATA_E_ARG, "%s: seq_len %lld must be at least 1", corpus->path,
                           (long long)seq_len);
    /* Every window starts at a document's BOS, so a tokenizer without one
     * (GPT-2 style) cannot sample this way; say so rather than fail inside
     * encode. */
    int32_t bos = tok ? strata_tokenizer_bos(tok) : corpus->ids_bos;
    int32_t n_vocab = tok ? strata_tokenizer_n_vocab(tok)
                          : corpus->ids_n_vocab > 0 ? corpus->ids_n_vocab : INT32_MAX;
    if (tok && bos < 0)
        return strata_fail(STRATA_E_ARG, "corpus %s: tokenizer (%s) has no BOS token, and "
                           "samples start with BOS: use a tokenizer that defines one",
                           corpus->path, strata_tokenizer_kind(tok));
    int64_t cap = 1 << 16;
    int32_t *ids = NULL;
    int rc = 0;
    st->tok = xmalloc((size_t)cap * sizeof *st->tok);
    st->doc_start = xmalloc((size_t)corpus->n_docs * sizeof *st->doc_start);
    for (int64_t d = 0; d < corpus->n_docs; d++) {
        int64_t n_ids;
        const int32_t *src;
        bool add_bos = false;
        if (corpus->kind == STRATA_CORPUS_IDS) {
            src = corpus->ids + corpus->off[d];
            n_ids = (int64_t)corpus->len[d];
            for (int64_t i = 0; i < n_ids; i++)
                if (src[i] >= n_vocab) {
                    rc = strata_fail(STRATA_E_DATA, "%s: document %lld (line) holds token id %d, "
                                     "beyond the %s's %d ids", corpus->path, (long long)d,
                                     (int)src[i], tok ? "tokenizer" : "model", (int)n_vocab);
                    goto fail;
                }
            add_bos = bos >= 0 && src[0] != bos;
        } else {
            if ((rc = strata_tokenizer_encode(tok, &ids, &n_ids, corpus->text + corpus->off[d],
                                              corpus->len[d], true, false)))
                goto fail;
            src = ids;
        }
        int64_t need = st->n_tok + n_ids + (add_bos ? 1 : 0);
        if (need > cap) {
            while (need > cap) cap *= 2;
            st->tok = xrealloc(st->tok, (size_t)cap * sizeof *st->tok);
        }
        st->doc_start[d] = st->n_tok;
        if (add_bos) st->tok[st->n_tok++] = bos;
        memcpy(st->tok + st->n_tok, src, (size_t)n_ids * sizeof *src);
        st->n_tok += n_ids;
        free(ids);
        ids = NULL;
    }
    /* Windows, greedily from the front; document starts only grow, so the
     * first window that would run past the end ends the walk. */
    st->win = xmalloc((size_t)corpus->n_docs * sizeof *st->win);
    for (int64_t d = 0; d < corpus->n_docs;) {
        if (seq_len > st->n_tok - st->doc_start[d]) break;
        st->win[st->n_win++] = d;
        int64_t end = st->doc_start[d] + seq_len;
        while (d < corpus->n_docs && st->doc_start[d] < end) d++;
    }
    return 0;
fail:
    free(ids);
    stream_free(st);
    memset(st, 0, sizeof *st);
    return rc;
}

static void fill_samples(struct strata_samples *out, const struct stream *st, int64_t n,
                         int64_t seq_len)
{
    out->n = n;
    out->seq_len = seq_len;
    out->n_windows = st->n_win;
    out->tokens = xmalloc((size_t)n * (size_t)seq_len * sizeof *out->tokens); /* (N, T) */
    out->doc = xmalloc((size_t)n * sizeof *out->doc);                       /* (N) */
    for (int64_t s = 0; s < n; s++) {
        out->doc[s] = st->win[out->window[s]];
        memcpy(out->tokens + s * seq_len, st->tok + st->doc_start[out->doc[s]],
               (size_t)seq_len * sizeof *out->tokens);
    }
}

int strata_samples_build_range(struct strata_samples *out, const struct strata_corpus *corpus,
                               const struct strata_tokenizer *tok, int64_t first, int64_t n,
                               int64_t seq_len, uint64_t seed)
{
    if (!out) return strata_fail(STRATA_E_ARG, "strata_samples_build: NULL argument");
    memset(out, 0, sizeof *out);
    if (!corpus || first < 0 || n < 1)
        return strata_fail(STRATA_E_ARG, "%s: samples %lld (from draw %lld) must be at least 1",
                           corpus ? corpus->path : "corpus", (long long)n, (long long)first);
    struct stream st;
    int rc = stream_build(&st, corpus, tok, seq_len);
    if (rc) return rc;
    int64_t n_win = st.n_win;
    if (n_win < first + n) {
        rc = strata_fail(STRATA_E_DATA, "corpus %s yields only %lld windows of %lld tokens; "
                         "need %lld%s: lower --samples or --seq-len, or give a larger corpus",
                         corpus->path, (long long)n_win, (long long)seq_len, (long long)(first + n),
                         first ? " (counting the draws before this run's)" : "");
        stream_free(&st);
        return rc;
    }
    /* Partial Fisher-Yates over window indices: draw i is idx[i]. */
    int64_t *idx = xmalloc((size_t)n_win * sizeof *idx);
    for (int64_t i = 0; i < n_win; i++) idx[i] = i;
    uint64_t state = seed;
    for (int64_t i = 0; i < first + n; i++) {
        int64_t j = i + (int64_t)(strata_rng_next(&state) % (uint64_t)(n_win - i));
        int64_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
    /* (window, draw) pairs of this run, kept in stream order. */
    int64_t *pair = xmalloc((size_t)n * 2 * sizeof *pair);
    for (int64_t i = 0; i < n; i++) {
        pair[2 * i] = idx[first + i];
        pair[2 * i + 1] = first + i;
    }
    qsort(pair, (size_t)n, 2 * sizeof *pair, cmp_i64);
    out->window = xmalloc((size_t)n * sizeof *out->window);
    out->draw = xmalloc((size_t)n * sizeof *out->draw);
    for (int64_t i = 0; i < n; i++) {
        out->window[i] = pair[2 * i];
        out->draw[i] = pair[2 * i + 1];
    }
    fill_samples(out, &st, n, seq_len);
    free(pair);
    free(idx);
    stream_free(&st);
    return 0;
}

int strata_samples_build(struct strata_samples *out, const struct strata_corpus *corpus,
                         const struct strata_tokenizer *tok, int64_t n,
                         int64_t seq_len, uint64_t seed)
{
    return strata_samples_build_range(out, corpus, tok, 0, n, seq_len, seed);
}

int strata_samples_build_windows(struct strata_samples *out, const struct strata_corpus *corpus,
                                 const struct strata_tokenizer *tok, const int64_t *window,
                                 const int64_t *draw, int64_t n, int64_t seq_len)
{
    if (!out) return strata_fail(STRATA_E_ARG, "strata_samples_build: NULL argument");
    memset(out, 0, sizeof *out);
    if (!corpus || !window || n < 1)
        return strata_fail(STRATA_E_ARG, "strata_samples_build_windows: no windows given");
    struct stream st;
    int rc = stream_build(&st, corpus, tok, seq_len);
    if (rc) return rc;
    for (int64_t i = 0; i < n; i++)
        if (window[i] < 0 || window[i] >= st.n_win) {
            rc = strata_fail(STRATA_E_DATA, "corpus %s yields %lld windows of %lld tokens, but "
                             "window %lld is asked for: not the corpus the samples came from",
                             corpus->path, (long long)st.n_win, (long long)seq_len,
                             (long long)window[i]);
            stream_free(&st);
            return rc;
        }
    out->window = xmalloc((size_t)n * sizeof *out->window);
    out->draw = xmalloc((size_t)n * sizeof *out->draw);
    memcpy(out->window, window, (size_t)n * sizeof *window);
    for (int64_t i = 0; i < n; i++) out->draw[i] = draw ? draw[i] : -1;
    fill_samples(out, &st, n, seq_len);
    stream_free(&st);
    return 0;
}

void strata_samples_free(struct strata_samples *samples)
{
    if (!samples) return;
    free(samples->tokens);
    free(samples->doc);
    free(samples->window);
    free(samples->draw);
    memset(samples, 0, sizeof *samples);
}
