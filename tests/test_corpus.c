/* test_corpus.c — corpus splitting and the sample-building rule.
 *
 * lib/corpus.c cuts a text file into trimmed, non-empty documents and
 * draws fixed-length token windows from it by a rule documented in
 * strata.h and corpus.c. Here the documents are split again independently
 * (strstr + trim), the token stream and the windows are recomputed from the
 * rule, and the seeded choice is replayed, so any drift in the rule shows.
 * Hand-made corpora cover the edges (windows crossing documents, a window
 * running past the end, separators at either end, empty documents) and the
 * errors (empty corpus, too few windows, bad arguments).
 * Data: $SHARED (default ../shared); scratch files in $STRATA_TMP or a
 * mkdtemp directory.
 */
#include "check.h"
#include "internal.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *shared_dir;

static char tmp_dir[4096];
static bool tmp_owned;
static const char SEP[] = "<|endoftext|>";

static char *path_of(const char *dir, const char *rel)
{
    size_t n = strlen(dir) + strlen(rel) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, rel);
    return p;
}


/* Write text to a scratch file; returns its malloc'ed path. */
static char *scratch(const char *name, const char *text)
{
    char *path = path_of(tmp_dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
    return path;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static bool error_names(const char *needle)
{
    return strstr(strata_last_error(), needle) != NULL;
}

static bool ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* The documents as the test understands the rule: split on sep, trim,
 * drop empties. Fills docs (NUL-terminated copies) and returns the count. */
static int split_docs(const char *text, const char *sep, char ***docs)
{
    int n = 0, cap = 16;
    *docs = malloc((size_t)cap * sizeof **docs);
    for (const char *p = text;;) {
        const char *q = strstr(p, sep);
        const char *a = p, *b = q ? q : p + strlen(p);
        while (a < b && ws(*a)) a++;
        while (b > a && ws(b[-1])) b--;
        if (b > a) {
            if (n == cap) *docs = realloc(*docs, (size_t)(cap *= 2) * sizeof **docs);
            (*docs)[n] = malloc((size_t)(b - a) + 1);
            memcpy((*docs)[n], a, (size_t)(b - a));
            (*docs)[n][b - a] = '\0';
            n++;
        }
        if (!q) break;
        p = q + strlen(sep);
    }
    return n;
}

/* The stream of the rule: each document with BOS first, no EOS. */
struct stream {
    int32_t *tok;
    int64_t n;
    int64_t *start; /* (n_docs) */
    int64_t n_docs;
};

static struct stream make_stream(const struct strata_corpus *c, const struct strata_tokenizer *tok)
{
    struct stream s = {NULL, 0, NULL, strata_corpus_n_docs(c)};
    s.start = malloc((size_t)s.n_docs * sizeof *s.start);
    for (int64_t d = 0; d < s.n_docs; d++) {
        size_t len;
        const char *text = strata_corpus_doc(c, d, &len);
        int32_t *ids = NULL;
        int64_t n = 0;
        if (strata_tokenizer_encode(tok, &ids, &n, text, len, true, false) != 0) abort();
        s.tok = realloc(s.tok, (size_t)(s.n + n) * sizeof *s.tok);
        memcpy(s.tok + s.n, ids, (size_t)n * sizeof *ids);
        s.start[d] = s.n;
        s.n += n;
        free(ids);
    }
    return s;
}

/* Window starts (as document indices) of the rule; returns the count. */
static int64_t make_windows(const struct stream *s, int64_t seq_len, int64_t *win)
{
    int64_t n = 0, d = 0;
    while (d < s->n_docs && s->start[d] + seq_len <= s->n) {
        win[n++] = d;
        int64_t end = s->start[d] + seq_len;
        while (d < s->n_docs && s->start[d] < end) d++;
    }
    return n;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Replays the documented choice: partial Fisher-Yates with splitmix64. */
static void choose(int64_t *win, int64_t n_win, int64_t n, uint64_t seed)
{
    uint64_t state = seed;
    for (int64_t i = 0; i < n; i++) {
        int64_t j = i + (int64_t)(strata_rng_next(&state) % (uint64_t)(n_win - i));
        int64_t t = win[i];
        win[i] = win[j];
        win[j] = t;
    }
    qsort(win, (size_t)n, sizeof *win, cmp_i64);
}

/* Everything a built sample set must satisfy against the recomputation. */
static void check_samples(const struct strata_samples *smp, const struct stream *s,
                          int64_t n, int64_t seq_len, uint64_t seed)
{
    int64_t *win = malloc((size_t)s->n_docs * sizeof *win);
    int64_t n_win = make_windows(s, seq_len, win);
    CHECK(smp->n == n && smp->seq_len == seq_len && smp->n_windows == n_win);
    CHECK(smp->tokens && smp->doc);
    if (smp->n != n || !smp->tokens || !smp->doc || smp->n_windows != n_win || n > n_win) {
        free(win);
        return;
    }
    choose(win, n_win, n, seed);
    int n_bos = 0, n_sorted = 0, n_apart = 0, n_slice = 0, n_doc = 0;
    for (int64_t i = 0; i < n; i++) {
        const int32_t *row = smp->tokens + i * seq_len; /* (T) */
        int64_t d = smp->doc[i];
        n_doc += d == win[i];
        n_bos += row[0] == STRATA_TOKEN_BOS;
        if (d < 0 || d >= s->n_docs) continue;
        n_slice += s->start[d] + seq_len <= s->n &&
                   memcmp(row, s->tok + s->start[d], (size_t)seq_len * sizeof *row) == 0;
        if (i + 1 < n) {
            n_sorted += smp->doc[i + 1] > d;
            /* Non-overlapping: the next sample starts at or after this end. */
            n_apart += smp->doc[i + 1] < s->n_docs &&
                       s->start[smp->doc[i + 1]] >= s->start[d] + seq_len;
        }
    }
    CHECK(n_doc == n);           /* exactly the documented seeded choice */
    CHECK(n_bos == n);           /* every sample starts with BOS */
    CHECK(n_slice == n);         /* and is the stream slice at its document */
    CHECK(n_sorted == n - 1);    /* in stream order */
    CHECK(n_apart == n - 1);     /* without overlap */
    free(win);
}

static void free_stream(struct stream *s)
{
    free(s->tok);
    free(s->start);
}

/* ------------------------------------------------------------------ tests */

static void test_shared_corpus(const char *tok_path, bool san)
{
    char *path = path_of(shared_dir, "corpora/tinystories-val-1000.txt");
    struct strata_corpus *c = NULL;
    struct strata_tokenizer *tok = NULL;
    CHECK_OK(strata_corpus_load(&c, path, SEP));
    CHECK_OK(strata_tokenizer_load(&tok, tok_path, 512));
    if (!c || !tok) goto done;

    /* 1000 stories, each equal to the independent split. */
    char *all = check_slurp(path, NULL), **docs = NULL;
    int n_docs = all ? split_docs(all, SEP, &docs) : 0;
    CHECK(n_docs == 1000);
    CHECK(strata_corpus_n_docs(c) == n_docs);
    int n_same = 0;
    for (int i = 0; i < n_docs && i < strata_corpus_n_docs(c); i++) {
        size_t len = 0;
        const char *d = strata_corpus_doc(c, i, &len);
        n_same += d && len == strlen(docs[i]) && memcmp(d, docs[i], len) == 0 && d[len] == '\0' &&
                  len > 0 && !ws(d[0]) && !ws(d[len - 1]);
    }
    CHECK(n_same == n_docs);
    for (int i = 0; i < n_docs; i++) free(docs[i]);
    free(docs);
    free(all);
    size_t len = 7;
    CHECK(strata_corpus_doc(c, 1000, &len) == NULL && len == 0);
    CHECK(strata_corpus_doc(c, -1, NULL) == NULL);

    struct stream s = make_stream(c, tok);
    /* Samples as the probes draw them, a second draw with the same seed,
     * one with another seed. */
    struct strata_samples a, b, other;
    double t0 = now_s();
    CHECK_OK(strata_samples_build(&a, c, tok, 64, 256, 1));
    double dt = now_s() - t0;
    printf("samples: 64 of %lld windows of 256 tokens in %.3f s\n", (long long)a.n_windows, dt);
    if (!san) CHECK(dt < 1.0);
    check_samples(&a, &s, 64, 256, 1);
    int64_t n_win256 = a.n_windows;
    CHECK_OK(strata_samples_build(&b, c, tok, 64, 256, 1));
    CHECK(a.tokens && b.tokens && memcmp(a.tokens, b.tokens, 64 * 256 * sizeof *a.tokens) == 0);
    CHECK(a.doc && b.doc && memcmp(a.doc, b.doc, 64 * sizeof *a.doc) == 0);
    CHECK_OK(strata_samples_build(&other, c, tok, 64, 256, 2));
    check_samples(&other, &s, 64, 256, 2);
    CHECK(a.doc && other.doc && memcmp(a.doc, other.doc, 64 * sizeof *a.doc) != 0);
    strata_samples_free(&a);
    strata_samples_free(&b);
    strata_samples_free(&other);
    CHECK(a.tokens == NULL && a.doc == NULL && a.n == 0);

    /* Other shapes: windows longer than most stories (so they cross
     * documents), every window chosen, one-token windows (each document
     * is a window holding just its BOS). */
    CHECK_OK(strata_samples_build(&a, c, tok, 16, 1024, 99));
    check_samples(&a, &s, 16, 1024, 99);
    int64_t n_all = a.n_windows;
    strata_samples_free(&a);
    CHECK_OK(strata_samples_build(&a, c, tok, n_all, 1024, 5));
    check_samples(&a, &s, n_all, 1024, 5);
    strata_samples_free(&a);
    CHECK_OK(strata_samples_build(&a, c, tok, 10, 1, 3));
    check_samples(&a, &s, 10, 1, 3);
    CHECK(a.n_windows == 1000);
    strata_samples_free(&a);

    /* More samples than windows: the message says what to change. */
    a.n = 123;
    CHECK(strata_samples_build(&a, c, tok, 100000, 256, 1) == STRATA_E_DATA);
    CHECK(a.n == 0 && a.tokens == NULL && a.doc == NULL);
    CHECK(error_names(path) && error_names("windows of 256 tokens") && error_names("need 100000") &&
          error_names("--samples"));
    char want[128];
    snprintf(want, sizeof want, "yields only %lld windows", (long long)n_win256);
    CHECK(error_names(want));
    CHECK(strata_samples_build(&a, c, tok, 0, 256, 1) == STRATA_E_ARG);
    CHECK(strata_samples_build(&a, c, tok, 4, 0, 1) == STRATA_E_ARG);
    CHECK(strata_samples_build(&a, c, tok, 4, -5, 1) == STRATA_E_ARG);
    free_stream(&s);

done:
    strata_tokenizer_free(tok);
    strata_corpus_free(c);
    free(path);
}

/* Small corpora whose tokens are known by hand (tok512: "a" -> 261,
 * "the" -> 265, "a a" -> 261 261; see test_tokenizer.c). */
static void test_small_corpora(const char *tok_path)
{
    struct strata_tokenizer *tok = NULL;
    struct strata_corpus *c = NULL;
    CHECK_OK(strata_tokenizer_load(&tok, tok_path, 512));
    if (!tok) return;

    /* Separators at both ends, doubled, whitespace-only and untrimmed
     * documents. Documents: "a", "the", "a a", "a". */
    char *path = scratch("small.txt", "<|endoftext|>  a \n<|endoftext|><|endoftext|> \t\r\n"
                                      "<|endoftext|>\nthe\n\n<|endoftext|>a a<|endoftext|>  a"
                                      "<|endoftext|>\n");
    CHECK_OK(strata_corpus_load(&c, path, SEP));
    CHECK(strata_corpus_n_docs(c) == 4);
    static const char *want_docs[] = {"a", "the", "a a", "a"};
    for (int i = 0; i < 4 && i < strata_corpus_n_docs(c); i++) {
        size_t len;
        const char *d = strata_corpus_doc(c, i, &len);
        CHECK(d && len == strlen(want_docs[i]) && strcmp(d, want_docs[i]) == 0);
    }
    /* Stream: [1 261] [1 265] [1 261 261] [1 261], starts 0 2 4 7, 9
     * tokens. T = 3: doc 0 covers 0..2, the next start at or after 3 is
     * doc 2 (4), covering 4..6; doc 3 at 7 would need 7..9, past the end.
     * So 2 windows: [1 261 1] (crossing into doc 1) and [1 261 261]. */
    struct strata_samples s;
    CHECK_OK(strata_samples_build(&s, c, tok, 2, 3, 12345));
    static const int32_t want_tok[] = {1, 261, 1, 1, 261, 261};
    CHECK(s.n == 2 && s.seq_len == 3 && s.n_windows == 2);
    CHECK(s.tokens && memcmp(s.tokens, want_tok, sizeof want_tok) == 0);
    CHECK(s.doc && s.doc[0] == 0 && s.doc[1] == 2);
    strata_samples_free(&s);
    /* T = 2: every document is a window of its own (starts 0 2 4 7). */
    CHECK_OK(strata_samples_build(&s, c, tok, 4, 2, 0));
    static const int32_t want_t2[] = {1, 261, 1, 265, 1, 261, 1, 261};
    CHECK(s.n_windows == 4 && s.tokens && memcmp(s.tokens, want_t2, sizeof want_t2) == 0);
    strata_samples_free(&s);
    /* T = 9 is the whole stream: one window; T = 10 none. */
    CHECK_OK(strata_samples_build(&s, c, tok, 1, 9, 0));
    CHECK(s.n_windows == 1 && s.doc && s.doc[0] == 0);
    strata_samples_free(&s);
    CHECK(strata_samples_build(&s, c, tok, 1, 10, 0) == STRATA_E_DATA);
    CHECK(error_names(path) && error_names("yields only 0 windows of 10 tokens; need 1"));
    CHECK(strata_samples_build(&s, c, tok, 3, 3, 0) == STRATA_E_DATA);
    CHECK(error_names("yields only 2 windows of 3 tokens; need 3"));
    strata_corpus_free(c);
    c = NULL;

    /* No separator at all: one document; another separator. */
    char *one = scratch("one.txt", "  just one story\n");
    CHECK_OK(strata_corpus_load(&c, one, SEP));
    CHECK(strata_corpus_n_docs(c) == 1);
    strata_corpus_free(c);
    CHECK_OK(strata_corpus_load(&c, one, " "));
    CHECK(strata_corpus_n_docs(c) == 3);
    size_t len;
    const char *d = strata_corpus_doc(c, 2, &len);
    CHECK(d && len == 5 && strcmp(d, "story") == 0);
    strata_corpus_free(c);
    c = NULL;

    /* Empty corpora: the message names the file and the separator. */
    char *blank = scratch("blank.txt", " \n\t<|endoftext|>\n\n<|endoftext|>  ");
    c = (struct strata_corpus *)1;
    CHECK(strata_corpus_load(&c, blank, SEP) == STRATA_E_DATA);
    CHECK(c == NULL && error_names(blank) && error_names(SEP) && error_names("no documents"));
    char *empty = scratch("empty.txt", "");
    CHECK(strata_corpus_load(&c, empty, SEP) == STRATA_E_DATA);
    CHECK(error_names(empty) && error_names(SEP));
    char *missing = path_of(tmp_dir, "no-such-corpus.txt");
    CHECK(strata_corpus_load(&c, missing, SEP) == STRATA_E_IO && error_names(missing));
    CHECK(strata_corpus_load(&c, one, "") == STRATA_E_ARG && error_names(one));
    CHECK(strata_corpus_n_docs(NULL) == 0);
    strata_corpus_free(NULL);
    strata_samples_free(NULL);

    const char *files[] = {path, one, blank, empty};
    for (int i = 0; i < 4; i++) unlink(files[i]);
    free(path);
    free(one);
    free(blank);
    free(empty);
    free(missing);
    strata_tokenizer_free(tok);
}

int main(void)
{
    shared_dir = getenv("SHARED") ? getenv("SHARED") : "../shared";
    bool san = getenv("STRATA_SAN") && strcmp(getenv("STRATA_SAN"), "1") == 0;
    if (!check_tmpdir(tmp_dir, sizeof tmp_dir, "test-corpus", &tmp_owned)) return 2;
    char *tok512 = path_of(shared_dir, "models/stories260K/tok512.bin");
    test_small_corpora(tok512);
    test_shared_corpus(tok512, san);
    free(tok512);
    if (tmp_owned) rmdir(tmp_dir);
    return CHECK_DONE("test_corpus");
}
