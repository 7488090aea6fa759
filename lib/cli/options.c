/* options.c — part of the command-line layer (cli.h): the option tables of
 * the shared groups, parsing with getopt_long, --help text, and the value
 * parsers (numbers, block and index lists, position scheme, RoPE scaling,
 * hidden-state edits). Parsers return a status and a message; only the
 * program-level wrappers print and exit, so tests/test_cli_opts.c calls
 * every one of them directly. */
#include "cli_internal.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int cli_fail(struct cli_error *e, const char *hint, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->hint = hint;
    return -1;
}

/* ------------------------------------------------------------ numbers */

int cli_parse_int(int64_t *out, const char *opt, const char *s, int64_t lo, int64_t hi,
                  struct cli_error *e)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi)
        return cli_fail(e, NULL, "%s '%s': expected a whole number from %lld to %lld", opt, s,
                        (long long)lo, (long long)hi);
    *out = (int64_t)v;
    return 0;
}

int cli_parse_double(double *out, const char *opt, const char *s, double lo, double hi,
                     struct cli_error *e)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !isfinite(v))
        return cli_fail(e, NULL, "%s '%s': expected a number", opt, s);
    if (v < lo || v > hi)
        return cli_fail(e, NULL, "%s '%s': expected a number from %g to %g", opt, s, lo, hi);
    *out = v;
    return 0;
}

int cli_parse_bytes(double *out, const char *opt, const char *s, struct cli_error *e)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end), mul = 1.0;
    bool ok = end != s && !errno && isfinite(v) && v >= 0.0;
    if (ok && *end) {
        static const char units[] = "KMGT";
        const char *u = strchr(units, toupper((unsigned char)*end));
        ok = u != NULL && *u;
        if (ok) {
            mul = pow(1024.0, (double)(u - units + 1));
            end++;
            if (*end == 'i') end++;
            if (*end == 'B') end++;
            ok = *end == '\0';
        }
    }
    if (!ok) return cli_fail(e, NULL, "%s '%s': expected a byte count like 500M or 2G", opt, s);
    *out = v * mul;
    return 0;
}

/* -------------------------------------------------------------- lists */

/* A whole number >= 0 at *s (advanced past it). */
static int list_num(int64_t *out, const char *opt, const char *spec, const char **s,
                    const char *hint, struct cli_error *e)
{
    char *end = NULL;
    errno = 0;
    if (!isdigit((unsigned char)**s))
        return cli_fail(e, hint, "%s '%s': expected a whole number at '%s'", opt, spec, *s);
    long long v = strtoll(*s, &end, 10);
    if (errno || end == *s || v < 0)
        return cli_fail(e, hint, "%s '%s': expected a whole number at '%s'", opt, spec, *s);
    *s = end;
    *out = (int64_t)v;
    return 0;
}

int cli_parse_block_list(int32_t **list, int32_t *n_list, const char *opt, const char *s,
                         struct cli_error *e)
{
    static const char hint[] = "give block numbers from 0, e.g. 3 or 1,5-7";
    const int32_t n0 = *n_list;
    const char *q = s;
    while (*q) {
        int64_t a, b;
        if (list_num(&a, opt, s, &q, hint, e)) return -1;
        b = a;
        if (*q == '-') {
            q++;
            if (list_num(&b, opt, s, &q, hint, e)) return -1;
            if (b < a)
                return cli_fail(e, hint, "%s '%s': range %lld-%lld is backwards", opt, s,
                                (long long)a, (long long)b);
        }
        if (b > INT32_MAX || b - a > 1 << 20)
            return cli_fail(e, hint, "%s '%s': too many layers", opt, s);
        int32_t *grown = cli_realloc(*list, (size_t)(*n_list + (b - a + 1)) * sizeof *grown,
                                     "a block list");
        *list = grown;
        for (int64_t l = a; l <= b; l++) (*list)[(*n_list)++] = (int32_t)l;
        if (*q == ',') q++;
        else if (*q) return cli_fail(e, hint, "%s '%s': unexpected '%s'", opt, s, q);
    }
    if (*n_list == n0) return cli_fail(e, hint, "%s '%s': no layers", opt, s);
    return 0;
}

int cli_parse_index_set(int32_t **ids, int64_t *n, const char *opt, const char *s, int64_t hi,
                        const char *what, bool clip, struct cli_error *e)
{
    static const char hint[] = "give indices and ranges like 0,4,8-12 or 0-63,64-4095:16, or 'all'";
    *ids = NULL;
    *n = 0;
    if (hi < 0) hi = 0;
    if (hi > INT32_MAX) return cli_fail(e, NULL, "%s: %lld %ss are too many", opt, (long long)hi, what);
    bool *on = cli_alloc((size_t)hi, "an index list");
    if (!strcmp(s, "all")) {
        for (int64_t i = 0; i < hi; i++) on[i] = true;
    } else {
        const char *q = s;
        if (!*q) {
            free(on);
            return cli_fail(e, hint, "%s '': expected indices", opt);
        }
        while (*q) {
            int64_t a, b, step = 1;
            if (list_num(&a, opt, s, &q, hint, e)) goto fail;
            b = a;
            if (*q == '-') {
                q++;
                if (list_num(&b, opt, s, &q, hint, e)) goto fail;
                if (b < a) {
                    cli_fail(e, hint, "%s '%s': range %lld-%lld is backwards", opt, s,
                             (long long)a, (long long)b);
                    goto fail;
                }
            }
            if (*q == ':') {
                q++;
                if (list_num(&step, opt, s, &q, hint, e)) goto fail;
                if (step < 1) {
                    cli_fail(e, hint, "%s '%s': a stride is at least 1", opt, s);
                    goto fail;
                }
            }
            if (*q == ',') q++;
            else if (*q) {
                cli_fail(e, hint, "%s '%s': unexpected '%s'", opt, s, q);
                goto fail;
            }
            if (!clip && b >= hi) {
                cli_fail(e, hint, "%s '%s': %s %lld does not exist (0..%lld here)", opt, s, what,
                         (long long)b, (long long)hi - 1);
                goto fail;
            }
            for (int64_t v = a; v <= b && v < hi; v += step) on[v] = true;
        }
    }
    *ids = cli_calloc((size_t)(hi > 0 ? hi : 1), sizeof **ids, "an index list");
    for (int64_t i = 0; i < hi; i++)
        if (on[i]) (*ids)[(*n)++] = (int32_t)i;
    free(on);
    if (*n == 0) {
        free(*ids);
        *ids = NULL;
        return cli_fail(e, hint, "%s '%s' selects no %s below %lld", opt, s, what, (long long)hi);
    }
    return 0;
fail:
    free(on);
    return -1;
}

/* ------------------------------------------------- position settings */

int cli_parse_position_embedding(enum strata_pos *out, const char *s, struct cli_error *e)
{
    static const char *const names[] = {"rope", "rope-half", "rope-interleaved", "alibi", "none"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(s, names[i]))
            return strata_pos_parse(s, STRATA_POS_ROPE_HALF, out) == 0
                       ? 0
                       : cli_fail(e, NULL, "--position-embedding '%s': %s", s, strata_last_error());
    return cli_fail(e, "--positions LIST selects positions; the scheme is --position-embedding",
                    "--position-embedding '%s': expected rope, rope-half, rope-interleaved, alibi "
                    "or none", s);
}

int cli_parse_rope_scaling(struct strata_rope_scaling_params *out, const char *s,
                           struct cli_error *e)
{
    static const char hint[] = "--rope-scaling TYPE:FACTOR with TYPE linear, ntk (static "
                               "NTK-aware), dynamic (or dynamic-ntk), yarn or llama3 and "
                               "FACTOR >= 1, e.g. linear:4; or none";
    if (strcmp(s, "none") != 0 && !strchr(s, ':'))
        return cli_fail(e, hint, "--rope-scaling '%s': expected TYPE:FACTOR", s);
    struct strata_rope_scaling_params p;
    if (strata_rope_scaling_parse(s, 0, &p) != 0)
        return cli_fail(e, hint, "--rope-scaling '%s': expected TYPE:FACTOR (%s)", s,
                        strata_last_error());
    *out = p;
    return 0;
}

/* ---------------------------------------------------------------- edits */

/* A finite number at *s (advanced past it). */
static int real_at(double *out, const char *opt, const char *spec, const char **s,
                   const char *hint, struct cli_error *e)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(*s, &end);
    if (errno || end == *s || !isfinite(v))
        return cli_fail(e, hint, "%s '%s': expected a number at '%s'", opt, spec, *s);
    *s = end;
    *out = v;
    return 0;
}

int cli_parse_edit(struct cli_edit *out, const char *spec, struct cli_error *e)
{
    static const char hint[] = "--edit KIND@B:T0-T1, e.g. sub-positional@4:0-4 or sub-semantic@2:32- "
                               "(KIND sub-positional, add-positional, sub-basis, sub-semantic)";
    struct cli_edit ed = {.p = strata_edit_default_params(), .open_end = false};
    const char *at = strchr(spec, '@');
    if (!at) return cli_fail(e, hint, "--edit '%s': no '@' after the kind", spec);
    char kind[32];
    if ((size_t)(at - spec) >= sizeof kind) return cli_fail(e, hint, "--edit '%s': unknown kind", spec);
    memcpy(kind, spec, (size_t)(at - spec));
    kind[at - spec] = '\0';
    if (strata_edit_kind_parse(kind, &ed.p.kind) != 0 || ed.p.kind == STRATA_EDIT_REPLACE)
        return cli_fail(e, hint, "--edit '%s': unknown kind '%s'%s", spec, kind,
                        !strcmp(kind, strata_edit_kind_name(STRATA_EDIT_REPLACE))
                            ? " (use --replace B:R:ALPHA[:T0])"
                            : "");
    const char *q = at + 1;
    int64_t b;
    if (list_num(&b, "--edit", spec, &q, hint, e)) return -1;
    if (b > INT32_MAX)
        return cli_fail(e, hint, "--edit '%s': boundary %lld is out of range", spec, (long long)b);
    ed.p.boundary = (int32_t)b;
    if (*q++ != ':') return cli_fail(e, hint, "--edit '%s': expected ':T0-T1' after the boundary", spec);
    if (list_num(&ed.p.t0, "--edit", spec, &q, hint, e)) return -1;
    if (*q++ != '-') return cli_fail(e, hint, "--edit '%s': expected '-' after T0", spec);
    if (*q == '\0') {
        ed.open_end = true;
    } else {
        if (list_num(&ed.p.t1, "--edit", spec, &q, hint, e)) return -1;
        if (*q) return cli_fail(e, hint, "--edit '%s': unexpected '%s'", spec, q);
        if (ed.p.t1 <= ed.p.t0)
            return cli_fail(e, hint, "--edit '%s': positions %lld-%lld are empty", spec,
                            (long long)ed.p.t0, (long long)ed.p.t1);
    }
    *out = ed;
    return 0;
}

int cli_parse_replace(struct cli_edit *out, const char *spec, struct cli_error *e)
{
    static const char hint[] = "--replace B:R:ALPHA[:T0], e.g. 4:4:1 or 4:5:1.3:4 (P1's settings)";
    struct cli_edit ed = {.p = strata_edit_default_params(), .open_end = true};
    ed.p.kind = STRATA_EDIT_REPLACE;
    const char *q = spec;
    int64_t b;
    if (list_num(&b, "--replace", spec, &q, hint, e)) return -1;
    if (b > INT32_MAX)
        return cli_fail(e, hint, "--replace '%s': boundary %lld is out of range", spec, (long long)b);
    ed.p.boundary = (int32_t)b;
    if (*q++ != ':') return cli_fail(e, hint, "--replace '%s': expected ':R' after the boundary", spec);
    if (real_at(&ed.p.ratio, "--replace", spec, &q, hint, e)) return -1;
    if (!(ed.p.ratio > 0.0)) return cli_fail(e, hint, "--replace '%s': R must be > 0", spec);
    if (*q++ != ':') return cli_fail(e, hint, "--replace '%s': expected ':ALPHA' after R", spec);
    if (real_at(&ed.p.alpha, "--replace", spec, &q, hint, e)) return -1;
    ed.p.t0 = 4;
    if (*q == ':') {
        q++;
        if (list_num(&ed.p.t0, "--replace", spec, &q, hint, e)) return -1;
    }
    if (*q) return cli_fail(e, hint, "--replace '%s': unexpected '%s'", spec, q);
    *out = ed;
    return 0;
}

/* ---------------------------------------------------- dying wrappers */

static CLI_NORETURN void usage_fail(const struct cli_error *e)
{
    cli_usage_die(e->hint, "%s", e->msg);
}

int64_t cli_int(const char *opt, const char *s, int64_t lo, int64_t hi)
{
    struct cli_error e;
    int64_t v;
    if (cli_parse_int(&v, opt, s, lo, hi, &e)) usage_fail(&e);
    return v;
}

double cli_double(const char *opt, const char *s)
{
    struct cli_error e;
    double v;
    if (cli_parse_double(&v, opt, s, -HUGE_VAL, HUGE_VAL, &e)) usage_fail(&e);
    return v;
}

void cli_block_list(const char *opt, const char *s, const char *hint, int32_t **list,
                    int32_t *n_list)
{
    struct cli_error e;
    if (cli_parse_block_list(list, n_list, opt, s, &e)) {
        if (hint) e.hint = hint;
        usage_fail(&e);
    }
}

int32_t *cli_index_set(const char *opt, const char *s, int64_t hi, const char *what, bool clip,
                       int64_t *n)
{
    struct cli_error e;
    int32_t *ids = NULL;
    if (cli_parse_index_set(&ids, n, opt, s, hi, what, clip, &e)) usage_fail(&e);
    return ids;
}

/* ------------------------------------------------------ option tables */

static const struct cli_opt common_opts[] = {
    {"threads", CLI_ARG, K_THREADS, "N",
     "worker threads of each model context (default 0: OpenBLAS's count,\n"
     "OPENBLAS_NUM_THREADS)"},
    {"quiet", CLI_NOARG, K_QUIET, NULL, "no progress lines, notes or summary"},
    {"progress", CLI_ARG, K_PROGRESS, "S",
     "a progress line every S seconds, also inside a long sample, on a\n"
     "terminal or not (default 5; 0: after every sample)"},
    {"version", CLI_NOARG, K_VERSION, NULL, "print the program's version and exit"},
    {"help", CLI_NOARG, K_HELP, NULL, "this help"},
    {0}};

static const struct cli_opt model_opts[] = {
    {"model", CLI_ARG, K_MODEL, "M",
     "checkpoint: a Hugging Face directory (safetensors or PyTorch .bin,\n"
     "f32/f16/bf16, one file or shards), a weight file in it, a llama2.c\n"
     ".bin, or a GGUF file (docs/CHECKPOINTS.md)"},
    {"tokenizer", CLI_ARG, K_TOKENIZER, "TOK",
     "tokenizer.json, tokenizer.model, a llama2.c tokenizer or a GGUF\n"
     "(default: the one beside the weights; a GGUF model's own)"},
    {"position-embedding", CLI_ARG, K_POS_EMB, "P",
     "override the position scheme: rope, rope-half, rope-interleaved, alibi,\n"
     "none (rope: the checkpoint's RoPE layout)"},
    {"rope-base", CLI_ARG, K_ROPE_BASE, "B", "override the RoPE base (theta)"},
    {"rope-scaling", CLI_ARG, K_ROPE_SCALING, "TYPE:F",
     "RoPE scaling from the model's trained window: linear:F, ntk:F (static\n"
     "NTK-aware), dynamic:F (or dynamic-ntk:F), yarn:F, llama3:F, or none"},
    {0}};

static const struct cli_opt runtime_opts[] = {
    {"skip-layers", CLI_ARG, K_SKIP, "LIST",
     "remove blocks, e.g. 3 or 1,5-7 (from 0): the residual stream passes\n"
     "through unchanged (ShortGPT, P3)"},
    {"attn-temperature", CLI_ARG, K_ATTN_TEMP, "X",
     "attention logits X * q.k / sqrt(d) (default 1)"},
    {"window", CLI_ARG, K_WINDOW, "W",
     "sliding-window attention: query i sees keys i-W < j <= i (0: full\n"
     "attention, even for a windowed model)"},
    {0}};

static const struct cli_opt edit_opts[] = {
    {"posvec", CLI_ARG, K_POSVEC, "FILE",
     "positional vectors: HDF5 /positional (L+1, T, D) float32\n"
     "(docs/FORMAT.md), needed by --edit and --replace"},
    {"edit", CLI_ARG, K_EDIT, "KIND@B:T0-T1",
     "at boundary B (0 = embeddings, B = after block B) for positions\n"
     "T0 <= t < T1 (T1 empty: to the end), KIND: sub-positional (h -= p),\n"
     "add-positional (h += p), sub-basis (h -= p - u), sub-semantic (h := p);\n"
     "repeatable, applied in the order given"},
    {"replace", CLI_ARG, K_REPLACE, "B:R:ALPHA[:T0]",
     "P1's positional vector replacement at boundary B for t >= T0 (default\n"
     "4): h := h - p[t] + ALPHA * p_interp(t/R), p_interp interpolating the\n"
     "in-window vectors"},
    {0}};

static const struct cli_opt sampling_opts[] = {
    {"corpus", CLI_ARG, K_CORPUS, "PATH",
     "documents: a text file (--sep), a .jsonl file, a directory of .txt\n"
     "files (sorted by name) or a .ids file of token ids (one document a line)"},
    {"corpus-format", CLI_ARG, K_CORPUS_FORMAT, "F", "auto (default), text, jsonl, dir or ids"},
    {"sep", CLI_ARG, K_SEP, "STR", "text: document separator (default \"<|endoftext|>\")"},
    {"jsonl-field", CLI_ARG, K_JSONL_FIELD, "K",
     "jsonl: the string field holding the text (default text)"},
    {"samples", CLI_ARG, K_SAMPLES, "N", "number of samples (default %S)"},
    {"seq-len", CLI_ARG, K_SEQ_LEN, "T", "tokens per sample (default: the model's seq_len)"},
    {"seed", CLI_ARG, K_SEED, "S", "sample selection seed (default 0)"},
    {"sample-offset", CLI_ARG, K_SAMPLE_OFFSET, "K",
     "take draws K .. K+N-1 of the seeded order (a shard of a larger run, or\n"
     "samples held out from one; default 0)"},
    {"bos", CLI_ARG, K_BOS, "ID",
     "ids: the BOS id each document starts with (prepended where missing)\n"
     "when no tokenizer is found (default 1, Llama's; -1: none)"},
    {0}};

static const struct cli_opt output_opts[] = {
    {"output", CLI_ARG, K_OUTPUT, "OUT", "output; written as OUT.partial and renamed when complete"},
    {0}};

static const struct cli_opt resume_opts[] = {
    {"resume", CLI_NOARG, K_RESUME, NULL, "continue OUT.partial left by an interrupted run"},
    {0}};

/* The tables of a spec, in help order; returns their count. */
static int tables_of(const struct cli_spec *spec, const struct cli_opt *t[8], const char *title[8])
{
    int n = 0;
    if (spec->opts) title[n] = "Options:", t[n++] = spec->opts;
    if (spec->groups & CLI_G_OUTPUT) title[n] = NULL, t[n++] = output_opts;
    if (spec->groups & CLI_G_RESUME) title[n] = NULL, t[n++] = resume_opts;
    if (spec->groups & CLI_G_MODEL) title[n] = "Model:", t[n++] = model_opts;
    if (spec->groups & (CLI_G_INTERV | CLI_G_RUNTIME))
        title[n] = "Interventions (usable together; recorded in the `interventions` attribute):",
        t[n++] = runtime_opts;
    if (spec->groups & CLI_G_INTERV) title[n] = NULL, t[n++] = edit_opts;
    if (spec->groups & CLI_G_SAMPLING) title[n] = "Sampling:", t[n++] = sampling_opts;
    title[n] = "Common:", t[n++] = common_opts;
    return n;
}

/* "  -o, --output OUT" and its help, wrapped at column 26. */
static void print_opt(FILE *f, const struct cli_opt *o, int64_t samples_default,
                      const char *output_help)
{
    char left[128];
    int n;
    if (o->key < 128 && isalnum(o->key))
        n = snprintf(left, sizeof left, "  -%c, --%s%s%s", o->key, o->name, o->arg ? " " : "",
                     o->arg ? o->arg : "");
    else
        n = snprintf(left, sizeof left, "  --%s%s%s", o->name, o->arg ? " " : "",
                     o->arg ? o->arg : "");
    const int col = 26;
    fputs(left, f);
    if (n + 2 > col) fprintf(f, "\n%*s", col, "");
    else fprintf(f, "%*s", col - n, "");
    const char *h = o->key == K_OUTPUT && output_help ? output_help : o->help ? o->help : "";
    /* words wrapped at column 79; "%S" is the --samples default */
    int at = col;
    bool first = true;
    for (const char *p = h; *p;) {
        while (*p == ' ' || *p == '\n') p++;
        if (!*p) break;
        const char *w = p;
        while (*p && *p != ' ' && *p != '\n') p++;
        char word[256];
        int len = (int)(p - w) < (int)sizeof word - 1 ? (int)(p - w) : (int)sizeof word - 1;
        memcpy(word, w, (size_t)len);
        word[len] = '\0';
        char *pc = strstr(word, "%S");
        if (pc) {
            char rest[256];
            snprintf(rest, sizeof rest, "%s", pc + 2);
            snprintf(pc, sizeof word - (size_t)(pc - word), "%lld%s", (long long)samples_default, rest);
            len = (int)strlen(word);
        }
        if (!first && at + 1 + len > 79) {
            fprintf(f, "\n%*s", col, "");
            at = col;
        } else if (!first) {
            fputc(' ', f);
            at++;
        }
        fputs(word, f);
        at += len;
        first = false;
    }
    fputc('\n', f);
}

void cli_usage(const struct cli_spec *spec, FILE *f)
{
    fprintf(f, "usage: %s %s\n", spec->prog, spec->synopsis ? spec->synopsis : "[options]");
    if (spec->about) fprintf(f, "\n%s", spec->about);
    const struct cli_opt *t[8];
    const char *title[8];
    int n = tables_of(spec, t, title);
    const int64_t sd = spec->samples_default > 0 ? spec->samples_default : 64;
    for (int k = 0; k < n; k++) {
        if (title[k]) fprintf(f, "\n%s\n", title[k]);
        for (const struct cli_opt *o = t[k]; o->name; o++) print_opt(f, o, sd, spec->output_help);
    }
    if (spec->epilog) fprintf(f, "\n%s", spec->epilog);
}

/* ------------------------------------------------------------ parsing */

void cli_args_init(struct cli_args *a)
{
    memset(a, 0, sizeof *a);
    a->model.cp = strata_ctx_default_params();
    a->interv.window = -1;
    a->sampling.cpar = strata_corpus_default_params();
    a->sampling.n_samples = 64;
}

void cli_args_free(struct cli_args *a)
{
    for (int k = 0; k < a->interv.n_edit; k++)
        if (a->interv.eds) strata_editor_free(a->interv.eds[k]);
    free(a->interv.eds);
    free(a->interv.edits);
    free(a->interv.skip);
    strata_tokenizer_free(a->model.tok);
    strata_model_free(a->model.model);
    free(a->command_line);
    free(a->args);
    memset(a, 0, sizeof *a);
}

static int common_option(struct cli_args *a, int key, const char *arg, struct cli_error *e)
{
    switch (key) {
    case K_QUIET:
        cli_quiet = true;
        return 0;
    case K_PROGRESS: {
        const double v = strtod(arg, NULL);
        char *end;
        (void)strtod(arg, &end);
        if (end == arg || *end || !(v >= 0) || !(v <= 86400))
            return cli_fail(e, NULL, "--progress '%s': expected seconds from 0 to 86400", arg);
        cli_progress_interval = v;
        return 0;
    }
    case K_THREADS: {
        int64_t v;
        if (cli_parse_int(&v, "--threads", arg, 0, 1024, e)) return -1;
        a->n_threads = (int)v;
        a->model.cp.n_threads = (int)v;
        return 0;
    }
    case K_OUTPUT:
        a->out_path = arg;
        return 0;
    case K_RESUME:
        a->resume = true;
        return 0;
    }
    return cli_fail(e, NULL, "option key %d has no handler", key);
}

/* The long option named by argv word w ("--name" or "--name=value"), as
 * getopt_long matches it: exact, else a unique prefix; *n_match counts the
 * candidates. */
static const struct option *match_long(const struct option *lo, const char *w, int *n_match)
{
    const char *name = w + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const struct option *hit = NULL;
    *n_match = 0;
    for (const struct option *o = lo; o->name; o++) {
        if (strncmp(o->name, name, len) != 0) continue;
        if (strlen(o->name) == len) {
            *n_match = 1;
            return o;
        }
        hit = o;
        ++*n_match;
    }
    return *n_match == 1 ? hit : NULL;
}

int cli_parse_args(struct cli_args *a, const struct cli_spec *spec, int argc, char **argv,
                   cli_handler handler, void *user, struct cli_error *e)
{
    a->spec = spec;
    e->msg[0] = '\0';
    e->hint = NULL;
    if (!a->command_line) a->command_line = cli_command_line(argc, argv);
    if (spec->samples_default > 0) a->sampling.n_samples = spec->samples_default;
    const struct cli_opt *t[8];
    const char *title[8];
    const int n_tab = tables_of(spec, t, title);
    int n_opt = 0;
    for (int k = 0; k < n_tab; k++)
        for (const struct cli_opt *o = t[k]; o->name; o++) n_opt++;
    struct option *lo = cli_calloc((size_t)n_opt + 1, sizeof *lo, "the option table");
    char *shorts = cli_alloc((size_t)(2 * n_opt + 4), "the option table");
    char *sp = shorts;
    *sp++ = '-'; /* positional arguments come back in order, as key 1 */
    *sp++ = ':'; /* a missing value is ':' */
    int i = 0;
    for (int k = 0; k < n_tab; k++)
        for (const struct cli_opt *o = t[k]; o->name; o++, i++) {
            lo[i] = (struct option){o->name, o->has_arg ? required_argument : no_argument, NULL, o->key};
            if (o->key < 128 && isalnum(o->key)) {
                *sp++ = (char)o->key;
                if (o->has_arg) *sp++ = ':';
            }
        }
    *sp = '\0';
    int status = CLI_PARSE_OK, key;
    optind = 0; /* glibc: full reinitialisation, so parsing may run again */
    opterr = 0;
    while (status == CLI_PARSE_OK && (key = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
        const char *w = argv[optind - 1 < argc ? optind - 1 : argc - 1];
        if (key == '?' || key == ':') {
            int n_match = 0;
            const struct option *o = NULL;
            if (!strncmp(w, "--", 2)) o = match_long(lo, w, &n_match);
            if (key == ':') {
                if (o) cli_fail(e, NULL, "option '--%s' needs a value", o->name);
                else cli_fail(e, NULL, "option '-%c' needs a value", optopt);
            } else if (!strncmp(w, "--", 2)) {
                const char *eq = strchr(w, '=');
                int len = eq ? (int)(eq - w) : (int)strlen(w);
                if (n_match > 1) cli_fail(e, NULL, "ambiguous option '%.*s'", len, w);
                else if (o && o->has_arg == no_argument)
                    cli_fail(e, NULL, "option '--%s' takes no value", o->name);
                else cli_fail(e, NULL, "unknown option '%.*s'", len, w);
            } else {
                cli_fail(e, NULL, "unknown option '-%c'", optopt);
            }
            status = CLI_PARSE_ERROR;
        } else if (key == 1) {
            if (spec->max_args >= 0 && a->n_args >= spec->max_args) {
                if (optarg[0] == '-' && optarg[1]) cli_fail(e, NULL, "unknown option '%s'", optarg);
                else cli_fail(e, NULL, "unexpected argument '%s'", optarg);
                status = CLI_PARSE_ERROR;
            } else {
                a->args = cli_realloc(a->args, (size_t)(a->n_args + 1) * sizeof *a->args,
                                      "the argument list");
                a->args[a->n_args++] = optarg;
            }
        } else if (key == K_HELP) {
            status = CLI_PARSE_HELP;
        } else if (key == K_VERSION) {
            status = CLI_PARSE_VERSION;
        } else {
            int rc;
            if (key >= CLI_KEY_PROG || (key < 128 && key != K_QUIET && key != K_OUTPUT))
                rc = handler ? handler(user, key, optarg, e)
                             : cli_fail(e, NULL, "option '%s' has no handler", w);
            else if (key >= K_MODEL && key < K_SKIP) rc = cli_model_option_(a, key, optarg, e);
            else if (key >= K_SKIP && key < K_CORPUS) rc = cli_interv_option_(a, key, optarg, e);
            else if (key >= K_CORPUS && key < K_RESUME) rc = cli_sampling_option_(a, key, optarg, e);
            else rc = common_option(a, key, optarg, e);
            if (rc) status = CLI_PARSE_ERROR;
        }
    }
    /* after "--" every word is a positional argument */
    for (int k = optind; status == CLI_PARSE_OK && k < argc; k++) {
        if (spec->max_args >= 0 && a->n_args >= spec->max_args) {
            cli_fail(e, NULL, "unexpected argument '%s'", argv[k]);
            status = CLI_PARSE_ERROR;
        } else {
            a->args = cli_realloc(a->args, (size_t)(a->n_args + 1) * sizeof *a->args,
                                  "the argument list");
            a->args[a->n_args++] = argv[k];
        }
    }
    if (status == CLI_PARSE_OK && a->n_args < spec->min_args) {
        cli_fail(e, NULL, "missing argument%s", spec->min_args - a->n_args > 1 ? "s" : "");
        status = CLI_PARSE_ERROR;
    }
    free(lo);
    free(shorts);
    return status;
}

void cli_parse(struct cli_args *a, const struct cli_spec *spec, int argc, char **argv,
               cli_handler handler, void *user)
{
    cli_init_default_(spec->prog);
    cli_mpi_init(); /* rank 0 of 1 without mpirun; finalized at exit */
    struct cli_error e;
    int rc = cli_parse_args(a, spec, argc, argv, handler, user, &e);
    if (rc == CLI_PARSE_HELP) {
        if (cli_rank() == 0) cli_usage(spec, stdout);
        exit(CLI_EXIT_OK);
    }
    if (rc == CLI_PARSE_VERSION) {
        if (cli_rank() == 0) printf("%s %s\n", cli_prog, STRATA_VERSION);
        exit(CLI_EXIT_OK);
    }
    if (rc != CLI_PARSE_OK) {
        char hint[160];
        snprintf(hint, sizeof hint, "see %s --help", spec->prog);
        cli_usage_die(e.hint ? e.hint : hint, "%s", e.msg);
    }
}

void cli_require(const struct cli_args *a, unsigned what)
{
    const char *names[3];
    int n = 0;
    bool missing = false;
    if (what & CLI_REQ_MODEL) names[n++] = "--model", missing |= !a->model.model_path;
    if (what & CLI_REQ_CORPUS) names[n++] = "--corpus", missing |= !a->sampling.corpus_path;
    if (what & (CLI_REQ_OUTPUT | CLI_REQ_OUTPUT_DIR)) names[n++] = "-o", missing |= !a->out_path;
    /* before any work: a run that could not rename its result at the end
     * would have computed for nothing */
    if (!missing && (what & CLI_REQ_OUTPUT)) cli_out_check("-o", a->out_path);
    if (!missing && (what & CLI_REQ_OUTPUT_DIR)) cli_out_dir_check("-o", a->out_path);
    if (!missing) return;
    char hint[160];
    snprintf(hint, sizeof hint, "see %s --help", a->spec ? a->spec->prog : cli_prog);
    if (n == 1) cli_usage_die(hint, "%s is required", names[0]);
    if (n == 2) cli_usage_die(hint, "%s and %s are required", names[0], names[1]);
    cli_usage_die(hint, "%s, %s and %s are required", names[0], names[1], names[2]);
}
