/* cli.h — what every strata program shares on the command line: error
 * reporting with a hint, number parsing, progress lines, provenance of argv.
 * Header-only and for programs only: lib/ itself never prints or exits. */
#ifndef STRATA_CLI_H
#define STRATA_CLI_H

#include "strata.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* One name for the whole program, also when it is built from several files
 * (analyzers/<name>/): a weak definition in every file, merged by the
 * linker, so cli_init in main names the messages of every part. */
#if defined(__GNUC__)
__attribute__((weak))
#endif
const char *cli_prog = "strata";

static inline void cli_log(enum strata_log_level level, const char *msg, void *user)
{
    (void)user;
    if (level >= STRATA_LOG_WARN) fprintf(stderr, "%s: warning: %s\n", cli_prog, msg);
}

static inline void cli_init(const char *prog)
{
    cli_prog = prog;
    strata_log_set(cli_log, NULL);
}

/* One line "prog: message", an optional "  hint: ..." line, exit 1. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3), noreturn))
#endif
static void cli_die(const char *hint, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", cli_prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (hint) fprintf(stderr, "  hint: %s\n", hint);
    exit(1);
}

/* Report a failed lib call (its detailed message) and exit. */
static inline void cli_check(int rc, const char *hint)
{
    if (rc == 0) return;
    const char *msg = strata_last_error();
    cli_die(hint, "%s", msg[0] ? msg : strata_strerror(rc));
}

static inline int64_t cli_int(const char *opt, const char *s, int64_t lo, int64_t hi)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi)
        cli_die(NULL, "%s '%s': expected a whole number from %lld to %lld", opt, s, (long long)lo,
                (long long)hi);
    return (int64_t)v;
}

static inline double cli_double(const char *opt, const char *s)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || v != v)
        cli_die(NULL, "%s '%s': expected a number", opt, s);
    return v;
}

/* The value after option argv[*i]; dies if it is missing. */
static inline const char *cli_value(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) cli_die(NULL, "option %s needs a value (see --help)", argv[*i]);
    return argv[++*i];
}

static inline double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* argv joined by spaces, for provenance. Caller free()s. */
static inline char *cli_command_line(int argc, char **argv)
{
    size_t n = 1;
    for (int i = 0; i < argc; i++) n += strlen(argv[i]) + 1;
    char *s = malloc(n);
    if (!s) cli_die(NULL, "out of memory");
    s[0] = '\0';
    for (int i = 0; i < argc; i++) {
        if (i) strcat(s, " ");
        strcat(s, argv[i]);
    }
    return s;
}

/* A progress line on stderr: rewritten in place on a terminal, one line
 * every few seconds otherwise (logs stay readable). */
struct cli_progress {
    double t0, last;
    int tty;
};

static inline void cli_progress_start(struct cli_progress *p)
{
    p->t0 = p->last = cli_now();
    p->tty = isatty(2);
}

static inline void cli_progress(struct cli_progress *p, int64_t done, int64_t total,
                                int64_t tokens, int final)
{
    double now = cli_now();
    if (!final && now - p->last < (p->tty ? 0.2 : 5.0)) return;
    p->last = now;
    double el = now - p->t0, rate = el > 0 ? (double)tokens / el : 0.0;
    double eta = done > 0 ? el * (double)(total - done) / (double)done : 0.0;
    fprintf(stderr, "%s%s: %lld/%lld samples, %.0f tokens/s, %.1f s elapsed, ETA %.1f s%s",
            p->tty ? "\r" : "", cli_prog, (long long)done, (long long)total, rate, el, eta,
            p->tty && !final ? "" : "\n");
}

/* ----------------------------------------------------- stop on a signal */

/* Long runs stop between samples on Ctrl-C or SIGTERM and leave a valid
 * .partial; the loop checks cli_stop_requested. */
static volatile sig_atomic_t cli_stop_requested;

static void cli_on_stop_signal_(int sig)
{
    (void)sig;
    cli_stop_requested = 1;
}

static inline void cli_catch_stop(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = cli_on_stop_signal_;
    sa.sa_flags = SA_RESTART; /* only a flag is set: interrupted I/O just goes on */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Test hook, so that tests synchronise on an event instead of on timing:
 * with STRATA_TEST_PAUSE_AFTER=k in the environment, once k samples of this
 * run are complete the program says "paused after k samples" on stderr and
 * waits for SIGINT or SIGTERM, which then stops it as at any other moment.
 * The signals are blocked before the flag is tested, so one sent after the
 * line cannot be missed. */
static inline void cli_test_pause_point(int64_t done)
{
    const char *e = getenv("STRATA_TEST_PAUSE_AFTER");
    if (!e || strtoll(e, NULL, 10) != done) return;
    sigset_t stop, old;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop, &old);
    fprintf(stderr, "%s: paused after %lld samples\n", cli_prog, (long long)done);
    fflush(stderr);
    sigset_t wait = old;
    sigdelset(&wait, SIGINT);
    sigdelset(&wait, SIGTERM);
    while (!cli_stop_requested) sigsuspend(&wait);
    sigprocmask(SIG_SETMASK, &old, NULL);
}

/* ------------------------------------------------------------- lists */

/* A whole number >= 0 at *s (advanced past it); dies naming opt and spec. */
static inline int64_t cli_list_num_(const char *opt, const char *spec, const char **s,
                                    const char *hint)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(*s, &end, 10);
    if (errno || end == *s || v < 0)
        cli_die(hint, "%s '%s': expected a whole number at '%s'", opt, spec, *s);
    *s = end;
    return (int64_t)v;
}

/* Block numbers "3" or "1,5-7", appended to *list (n_list entries,
 * realloc'ed; caller free()s) in the order given, repeats kept: the
 * library checks them against the model (--skip-layers, --drop-layers). */
static inline void cli_block_list(const char *opt, const char *s, const char *hint,
                                  int32_t **list, int32_t *n_list)
{
    const int32_t n0 = *n_list;
    const char *q = s;
    while (*q) {
        int64_t a = cli_list_num_(opt, s, &q, hint), b = a;
        if (*q == '-') {
            q++;
            b = cli_list_num_(opt, s, &q, hint);
            if (b < a)
                cli_die(hint, "%s '%s': range %lld-%lld is backwards", opt, s, (long long)a,
                        (long long)b);
        }
        if (b > INT32_MAX || b - a > 1 << 20) cli_die(hint, "%s '%s': too many layers", opt, s);
        for (int64_t l = a; l <= b; l++) {
            int32_t *grown = realloc(*list, (size_t)(*n_list + 1) * sizeof *grown);
            if (!grown) cli_die(NULL, "out of memory");
            *list = grown;
            (*list)[(*n_list)++] = (int32_t)l;
        }
        if (*q == ',') q++;
        else if (*q) cli_die(hint, "%s '%s': unexpected '%s'", opt, s, q);
    }
    if (*n_list == n0) cli_die(hint, "%s '%s': no layers", opt, s);
}

/* "all", or items N, A-B and A-B:S (every S-th) separated by commas, as the
 * sorted set of distinct indices below hi (malloc'ed; *n its length;
 * never empty). An index >= hi is dropped when clip, else an error naming
 * it as `what` (e.g. "block 7 does not exist (0..4 here)"). */
static inline int32_t *cli_index_set(const char *opt, const char *s, int64_t hi, const char *what,
                                     bool clip, int64_t *n)
{
    const char *hint = "give indices and ranges like 0,4,8-12 or 0-63,64-4095:16, or 'all'";
    bool *on = calloc((size_t)hi, 1);
    if (!on) cli_die(NULL, "out of memory");
    if (!strcmp(s, "all")) {
        for (int64_t i = 0; i < hi; i++) on[i] = true;
    } else {
        const char *q = s;
        while (*q) {
            int64_t a = cli_list_num_(opt, s, &q, hint), b = a, step = 1;
            if (*q == '-') {
                q++;
                b = cli_list_num_(opt, s, &q, hint);
                if (b < a) cli_die(hint, "%s '%s': range %lld-%lld is backwards", opt, s,
                                   (long long)a, (long long)b);
            }
            if (*q == ':') {
                q++;
                step = cli_list_num_(opt, s, &q, hint);
                if (step < 1) cli_die(hint, "%s '%s': a stride is at least 1", opt, s);
            }
            if (*q == ',') q++;
            else if (*q) cli_die(hint, "%s '%s': unexpected '%s'", opt, s, q);
            if (!clip && b >= hi)
                cli_die(hint, "%s '%s': %s %lld does not exist (0..%lld here)", opt, s, what,
                        (long long)b, (long long)hi - 1);
            for (int64_t v = a; v <= b && v < hi; v += step) on[v] = true;
        }
    }
    int32_t *ids = malloc((size_t)(hi > 0 ? hi : 1) * sizeof *ids);
    if (!ids) cli_die(NULL, "out of memory");
    *n = 0;
    for (int64_t i = 0; i < hi; i++)
        if (on[i]) ids[(*n)++] = (int32_t)i;
    free(on);
    if (*n == 0) cli_die(hint, "%s '%s' selects no %s below %lld", opt, s, what, (long long)hi);
    return ids;
}

/* ------------------------------------------------------ model options */

/* --model, --tokenizer, --positions, --rope-base: the same in every program
 * that runs a model. */
struct cli_model {
    const char *model_path, *tok_path, *positions, *rope_scaling;
    double rope_base; /* 0: the model's */
    struct strata_ctx_params cp; /* the overrides, as context settings */
    struct strata_model *model;
    struct strata_tokenizer *tok;
    char tok_used[4096]; /* the path the tokenizer was opened from */
};

#define CLI_MODEL_HELP                                                                   \
    "  --model M        checkpoint: a Hugging Face directory (safetensors or PyTorch\n"  \
    "                   .bin, f32/f16/bf16, one file or shards), a weight file in it,\n" \
    "                   or a llama2.c .bin (docs/CHECKPOINTS.md)\n"                      \
    "  --tokenizer TOK  tokenizer.json, tokenizer.model or a llama2.c tokenizer\n"      \
    "                   (default: the one beside the weights)\n"                         \
    "  --position-embedding P  override the position scheme: rope, alibi, none\n"       \
    "                   (also --positions P where a program does not select positions)\n" \
    "  --rope-base B    override the RoPE base (theta)\n"                              \
    "  --rope-scaling S override rope_scaling: none, linear:F, dynamic:F, yarn:F or\n" \
    "                   llama3:F (trained window = the model's)\n"

/* Consume argv[*i] (and its value) if it is a model option. */
static inline bool cli_model_option(struct cli_model *cm, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    if (!strcmp(a, "--model")) cm->model_path = cli_value(argc, argv, i);
    else if (!strcmp(a, "--tokenizer")) cm->tok_path = cli_value(argc, argv, i);
    else if (!strcmp(a, "--position-embedding")) cm->positions = cli_value(argc, argv, i);
    /* --positions is also the position selection of probes (a list of
     * numbers); a scheme name only is taken here. */
    else if (!strcmp(a, "--positions") && *i + 1 < argc &&
             (argv[*i + 1][0] < '0' || argv[*i + 1][0] > '9'))
        cm->positions = cli_value(argc, argv, i);
    else if (!strcmp(a, "--rope-scaling")) cm->rope_scaling = cli_value(argc, argv, i);
    else if (!strcmp(a, "--rope-base")) {
        cm->rope_base = cli_double(a, cli_value(argc, argv, i));
        if (!(cm->rope_base > 1.0)) cli_die(NULL, "--rope-base %g must be > 1", cm->rope_base);
    } else return false;
    return true;
}

/* Load the model (with overrides) and, if asked, its tokenizer: --tokenizer,
 * else the checkpoint directory, else llama2.c's tok<V>.bin beside it. */
static inline void cli_model_load(struct cli_model *cm, bool need_tokenizer)
{
    if (!cm->model_path) cli_die("see --help", "--model is required");
    cli_check(strata_model_load(&cm->model, cm->model_path),
              "--model takes a checkpoint directory or file (docs/CHECKPOINTS.md)");
    struct strata_config c = *strata_model_config(cm->model);
    cm->cp = strata_ctx_default_params();
    if (cm->positions) cli_check(strata_pos_parse(cm->positions, c.pos, &cm->cp.pos), NULL);
    if (cm->rope_base > 0) cm->cp.rope_base = cm->rope_base;
    if (cm->rope_scaling)
        cli_check(strata_rope_scaling_parse(cm->rope_scaling, c.seq_len, &cm->cp.rope_scaling), NULL);
    cli_check(strata_config_resolve(&c, cm->model, &cm->cp), NULL);
    if (!need_tokenizer) return;
    const size_t n = sizeof cm->tok_used;
    if (cm->tok_path) {
        snprintf(cm->tok_used, n, "%s", cm->tok_path);
        cli_check(strata_tokenizer_open(&cm->tok, cm->tok_used), NULL);
    } else if (snprintf(cm->tok_used, n, "%s", strata_model_dir(cm->model)),
               strata_tokenizer_open(&cm->tok, cm->tok_used) != 0) {
        snprintf(cm->tok_used, n, "%s/tok%d.bin", strata_model_dir(cm->model), (int)c.vocab_size);
        if (access(cm->tok_used, R_OK) != 0)
            cli_die("give --tokenizer FILE", "no tokenizer beside %s (%s)", cm->model_path,
                    strata_last_error());
        cli_check(strata_tokenizer_open(&cm->tok, cm->tok_used), NULL);
    }
    if (strata_tokenizer_n_vocab(cm->tok) > c.vocab_size)
        cli_die("the tokenizer must belong to the model",
                "tokenizer has %d tokens but the model's vocabulary is %d",
                (int)strata_tokenizer_n_vocab(cm->tok), (int)c.vocab_size);
}

/* Context parameters carrying the model overrides. */
static inline struct strata_ctx_params cli_model_ctx_params(const struct cli_model *cm)
{
    return cm->cp;
}

/* The config runs get (model + overrides) as JSON; caller free()s. */
static inline char *cli_model_config_json(const struct cli_model *cm)
{
    struct strata_config c;
    cli_check(strata_config_resolve(&c, cm->model, &cm->cp), NULL);
    return strata_config_json(&c);
}

static inline void cli_model_free(struct cli_model *cm)
{
    strata_tokenizer_free(cm->tok);
    strata_model_free(cm->model);
    cm->tok = NULL;
    cm->model = NULL;
}

/* Outputs are written under OUT.partial and renamed when complete, so an
 * interrupted run never leaves a file that looks finished. path "-" is stdout. */
struct cli_out {
    FILE *f;
    char tmp[4096];
    const char *path;
};

static inline FILE *cli_out_open(struct cli_out *o, const char *path)
{
    o->path = path;
    if (!strcmp(path, "-")) {
        o->f = stdout;
        o->tmp[0] = '\0';
        return o->f;
    }
    if (snprintf(o->tmp, sizeof o->tmp, "%s.partial", path) >= (int)sizeof o->tmp)
        cli_die(NULL, "output path too long: %s", path);
    o->f = fopen(o->tmp, "w");
    if (!o->f)
        cli_die("check that the directory exists and is writable", "%s: cannot create: %s",
                o->tmp, strerror(errno));
    return o->f;
}

static inline void cli_out_commit(struct cli_out *o)
{
    if (o->f == stdout) {
        fflush(stdout);
        return;
    }
    int bad = ferror(o->f) | fclose(o->f);
    if (bad || rename(o->tmp, o->path) != 0) {
        remove(o->tmp);
        cli_die("check free space and permissions", "%s: write failed", o->path);
    }
}

/* ------------------------------------------------------ sampling options */

/* --corpus, --corpus-format, --sep, --jsonl-field, --samples, --seq-len,
 * --seed: how every probe draws its samples (strata_samples_build), so the
 * same options give the same samples in every probe. */
struct cli_sampling {
    const char *corpus_path;
    struct strata_corpus_params cpar;
    int64_t n_samples; /* default 64 */
    int64_t seq_len;   /* 0: the model's seq_len */
    uint64_t seed;
    int64_t offset;    /* first draw of the seeded order taken */
};

#define CLI_SAMPLING_HELP                                                                 \
    "  --corpus PATH    documents: a text file (--sep), a .jsonl file, a directory\n"     \
    "                   of .txt files (sorted by name) or a .ids file of token ids\n"     \
    "                   (one document a line)\n"                                          \
    "  --corpus-format F  auto (default), text, jsonl, dir or ids\n"                     \
    "  --sep STR        text: document separator (default \"<|endoftext|>\")\n"          \
    "  --jsonl-field K  jsonl: the string field holding the text (default text)\n"        \
    "  --samples N      number of samples (default 64)\n"                                 \
    "  --seq-len T      tokens per sample (default: the model's seq_len)\n"               \
    "  --seed S         sample selection seed (default 0)\n"                             \
    "  --sample-offset K  take draws K .. K+N-1 of the seeded order (a shard of a\n"     \
    "                   larger run, or samples held out from one; default 0)\n"

static inline void cli_sampling_init(struct cli_sampling *cs)
{
    memset(cs, 0, sizeof *cs);
    cs->cpar = strata_corpus_default_params();
    cs->n_samples = 64;
}

/* Consume argv[*i] (and its value) if it is a sampling option. */
static inline bool cli_sampling_option(struct cli_sampling *cs, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    if (!strcmp(a, "--corpus")) {
        cs->corpus_path = cli_value(argc, argv, i);
    } else if (!strcmp(a, "--corpus-format")) {
        cli_check(strata_corpus_kind_parse(cli_value(argc, argv, i), &cs->cpar.kind), NULL);
    } else if (!strcmp(a, "--sep")) {
        cs->cpar.sep = cli_value(argc, argv, i);
    } else if (!strcmp(a, "--jsonl-field")) {
        cs->cpar.field = cli_value(argc, argv, i);
        if (cs->cpar.kind == STRATA_CORPUS_AUTO) cs->cpar.kind = STRATA_CORPUS_JSONL;
    } else if (!strcmp(a, "--samples")) {
        cs->n_samples = cli_int(a, cli_value(argc, argv, i), 1, INT32_MAX);
    } else if (!strcmp(a, "--seq-len")) {
        cs->seq_len = cli_int(a, cli_value(argc, argv, i), 1, 1 << 24);
    } else if (!strcmp(a, "--seed")) {
        cs->seed = (uint64_t)cli_int(a, cli_value(argc, argv, i), 0, INT64_MAX);
    } else if (!strcmp(a, "--sample-offset")) {
        cs->offset = cli_int(a, cli_value(argc, argv, i), 0, INT32_MAX);
    } else {
        return false;
    }
    return true;
}

/* Resolve --seq-len against the model (a note when it exceeds the trained
 * window); returns T. */
static inline int64_t cli_sampling_seq_len(struct cli_sampling *cs, const struct strata_config *cfg)
{
    if (cs->seq_len == 0) cs->seq_len = cfg->seq_len;
    if (cs->seq_len > cfg->seq_len)
        fprintf(stderr, "%s: note: --seq-len %lld is beyond the model's trained window %d\n",
                cli_prog, (long long)cs->seq_len, (int)cfg->seq_len);
    return cs->seq_len;
}

/* The samples: draws offset .. offset+N-1 of the seeded order. */
static inline void cli_sampling_build(const struct cli_sampling *cs,
                                      const struct strata_corpus *corpus,
                                      const struct strata_tokenizer *tok,
                                      struct strata_samples *samples)
{
    cli_check(strata_samples_build_range(samples, corpus, tok, cs->offset, cs->n_samples,
                                         cs->seq_len, cs->seed),
              "use fewer --samples, a smaller --sample-offset or a shorter --seq-len, or a "
              "larger corpus");
}

/* The sampling rule in words (the `sampling` attribute of every probe's
 * output). */
static inline void cli_sampling_describe(const struct cli_sampling *cs,
                                         const struct strata_samples *samples, char *buf,
                                         size_t size)
{
    snprintf(buf, size,
             "documents tokenized with BOS first and concatenated; non-overlapping windows of "
             "%lld tokens starting at document starts (%lld available); ordered by a "
             "splitmix64 Fisher-Yates shuffle with seed %llu; draws %lld .. %lld taken, kept in "
             "stream order",
             (long long)cs->seq_len, (long long)samples->n_windows, (unsigned long long)cs->seed,
             (long long)cs->offset, (long long)(cs->offset + cs->n_samples - 1));
}

static inline struct strata_corpus *cli_sampling_open(const struct cli_sampling *cs)
{
    if (!cs->corpus_path) cli_die("see --help", "--corpus is required");
    struct strata_corpus *corpus = NULL;
    cli_check(strata_corpus_open(&corpus, cs->corpus_path, &cs->cpar),
              "check --corpus and its format");
    return corpus;
}

#endif
