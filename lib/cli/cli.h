/* cli.h — the compiled command-line layer every strata program links
 * (lib/cli/libstrata_cli.a, beside lib/libstrata.a): option tables parsed
 * with getopt_long, the shared option groups (common, model, interventions,
 * sampling, output), die/check helpers, progress lines, the one stop flag,
 * output files written under .partial, provenance, and the sample-loop
 * skeleton of the probes. Not part of libstrata's core: lib/ never prints or
 * exits; this layer does, for programs only.
 *
 * Files: options.c (getopt_long tables, help, number and list parsers),
 *        model.c (model + tokenizer, run-time settings, interventions),
 *        sampling.c (corpus and samples), output.c (.partial files,
 *        provenance, the sample loop), util.c (messages, die helpers,
 *        memory, progress, stop flag, test hooks), mpi.c (ranks with MPI:
 *        share of the samples, reductions, the sample loop over ranks).
 *
 * Errors: parsers (cli_parse_*) never print or exit: they return 0, or -1
 * with a message (and perhaps a hint) in struct cli_error, so they are
 * unit-testable. The dying wrappers print "prog: message" and
 * "  hint: ..." and exit CLI_EXIT_USAGE (2) for a bad command line,
 * CLI_EXIT_FAIL (1) for anything at run time (file, model, HDF5, NaN);
 * interrupted runs exit CLI_EXIT_INTERRUPTED (130).
 *
 * Out of memory: cli_alloc / cli_realloc / cli_strdup die (exit 1) naming
 * what could not be allocated and its size; programs use nothing else.
 *
 * A program:
 *     static const struct cli_opt opts[] = {
 *         {"layers", CLI_ARG, OPT_LAYERS, "LIST", "residual boundaries to keep"},
 *         {0}};
 *     static const struct cli_spec spec = {
 *         .prog = "strata-probe-hidden", .synopsis = "--model M --corpus PATH -o OUT.h5 [options]",
 *         .about = "...", .groups = CLI_G_MODEL | CLI_G_INTERV | CLI_G_SAMPLING | CLI_G_OUTPUT,
 *         .opts = opts};
 *     struct cli_args a;  cli_args_init(&a);
 *     cli_parse(&a, &spec, argc, argv, handle_own_option, &mine);
 *     cli_model_load(&a, true);   ...
 */
#ifndef STRATA_CLI_H
#define STRATA_CLI_H

#include "strata.h"

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#if defined(__GNUC__)
#define CLI_NORETURN __attribute__((noreturn))
#define CLI_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CLI_NORETURN
#define CLI_PRINTF(a, b)
#endif

/* ------------------------------------------------ messages and exiting */

enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAIL = 1,        /* run time: file, model, HDF5, NaN, out of memory */
    CLI_EXIT_USAGE = 2,       /* command line: unknown option, bad value, missing */
    CLI_EXIT_INTERRUPTED = 130 /* stopped by SIGINT/SIGTERM, .partial kept */
};

/* The program's name in every message ("strata-probe-hidden"); set by
 * cli_init. One definition for the whole program (util.c). */
extern const char *cli_prog;
/* -q/--quiet: no progress lines, notes or summary lines (errors and
 * warnings still print). */
extern bool cli_quiet;

/* Name the program and route the library's warnings to stderr as
 * "prog: warning: ...". Call first in main (cli_parse calls it too). */
void cli_init(const char *prog);

/* "prog: message", an optional "  hint: ..." line, exit 1. */
CLI_NORETURN CLI_PRINTF(2, 3) void cli_die(const char *hint, const char *fmt, ...);
/* The same, exit 2: the command line is wrong. */
CLI_NORETURN CLI_PRINTF(2, 3) void cli_usage_die(const char *hint, const char *fmt, ...);
/* Unless rc is 0: die (exit 1) with the library's detailed message
 * (strata_last_error, else strata_strerror(rc)) and the hint. */
void cli_check(int rc, const char *hint);
/* The same, exit 2 (a library parser rejected a command-line value). */
void cli_usage_check(int rc, const char *hint);
/* "prog: note: ..." on stderr unless quiet. */
CLI_PRINTF(1, 2) void cli_note(const char *fmt, ...);
/* "prog: ..." on stderr unless quiet (a run's summary line). */
CLI_PRINTF(1, 2) void cli_info(const char *fmt, ...);
/* "prog: warning: ..." on stderr, always. */
CLI_PRINTF(1, 2) void cli_warn(const char *fmt, ...);

/* Allocate-or-die: zeroed n bytes (n 0 gives a valid 1-byte block); on
 * failure "prog: out of memory for WHAT (X MiB)", exit 1. Caller free()s. */
void *cli_alloc(size_t n, const char *what);
/* calloc-style with overflow check: n * size bytes, zeroed. */
void *cli_calloc(size_t n, size_t size, const char *what);
void *cli_realloc(void *p, size_t n, const char *what);
char *cli_strdup(const char *s);
/* printf into a new string. Caller free()s. */
CLI_PRINTF(1, 2) char *cli_sprintf(const char *fmt, ...);

/* Seconds on a monotonic clock. */
double cli_now(void);

/* argv joined by spaces, for provenance. Caller free()s. */
char *cli_command_line(int argc, char **argv);

/* ---------------------------------------------------------- progress */

/* A progress line on stderr at most every cli_progress_interval seconds
 * (--progress), on a terminal (rewritten in place) or not alike; between
 * samples, and from inside a long sample too (cli_progress_heartbeat, which
 * the contexts' abort callback calls). Nothing when quiet. */
struct cli_progress {
    double t0, last;
    int tty;
    const char *what;               /* e.g. "pass 1 of 2"; NULL: none */
    int64_t done, total, tokens;    /* as of the last cli_progress */
    int64_t printed;                /* done of the last line printed (-1: none) */
};
extern double cli_progress_interval;
/* Starts p (what: a label such as "pass 1 of 2", or NULL; total: the
 * samples to come, 0 if not known yet) and makes it the one the heartbeat
 * reports (once total is known). */
void cli_progress_start(struct cli_progress *p, const char *what, int64_t total);
/* The current progress line again if the interval has passed since the
 * last one, marked "(next running)"; safe from any thread. */
void cli_progress_heartbeat(void);
void cli_progress(struct cli_progress *p, int64_t done, int64_t total, int64_t tokens, int final);

/* -------------------------------------------------------- stop signal */

/* Long runs stop between samples on Ctrl-C or SIGTERM and leave a valid
 * .partial; loops test cli_stop_requested. One flag for the program. */
extern volatile sig_atomic_t cli_stop_requested;
/* Install the SIGINT/SIGTERM handler that sets cli_stop_requested. */
void cli_catch_stop(void);
/* Test hook: with STRATA_TEST_PAUSE_AFTER=k in the environment, once k
 * samples of this run are complete, say "prog: paused after k samples" on
 * stderr and wait for SIGINT or SIGTERM (blocked while the line is written,
 * then the stop flag is polled, so a signal sent after the line cannot be
 * missed, whichever thread runs its handler). */
void cli_test_pause_point(int64_t done);

/* ---------------------------------------------------- option parsing */

/* A hidden-state edit (--edit, --replace). */
struct cli_edit {
    struct strata_edit_params p; /* t1 resolved by cli_interv_attach when open_end */
    bool open_end;               /* to the end of the sequence */
};

/* A parser's complaint: message without the "prog: " prefix, optional
 * hint (static or pointing into hint_buf). */
struct cli_error {
    char msg[512];
    const char *hint;
    char hint_buf[256];
};
/* Fill e (printf-style); returns -1 so parsers can `return cli_fail(...)`. */
CLI_PRINTF(3, 4) int cli_fail(struct cli_error *e, const char *hint, const char *fmt, ...);

/* Numbers. opt names the option in messages ("--samples").
 * Whole number in [lo, hi]. */
int cli_parse_int(int64_t *out, const char *opt, const char *s, int64_t lo, int64_t hi,
                  struct cli_error *e);
/* Finite number in [lo, hi] (NaN, inf and junk refused). */
int cli_parse_double(double *out, const char *opt, const char *s, double lo, double hi,
                     struct cli_error *e);
/* A byte count with an optional binary suffix K, M, G, T (also KiB, KB). */
int cli_parse_bytes(double *out, const char *opt, const char *s, struct cli_error *e);

/* Block numbers "3" or "1,5-7", appended to *list (n_list entries,
 * realloc'ed; caller free()s) in the order given, repeats kept (the
 * library checks them against the model): --skip-layers, --drop-layers. */
int cli_parse_block_list(int32_t **list, int32_t *n_list, const char *opt, const char *s,
                         struct cli_error *e);

/* "all", or items N, A-B and A-B:S (every S-th) separated by commas, as the
 * sorted set of distinct indices below hi (*ids malloc'ed, caller free()s;
 * *n its length; never empty on success). An index >= hi is dropped when
 * clip, else an error naming it as `what` ("block 7 does not exist (0..4
 * here)"). */
int cli_parse_index_set(int32_t **ids, int64_t *n, const char *opt, const char *s, int64_t hi,
                        const char *what, bool clip, struct cli_error *e);

/* --position-embedding: rope, rope-half, rope-interleaved, alibi, none
 * ("rope" = the checkpoint's RoPE layout: STRATA_POS_MODEL resolved at
 * load; kept as the string in the model options). */
int cli_parse_position_embedding(enum strata_pos *out, const char *s, struct cli_error *e);
/* --rope-scaling TYPE[:F]: none, linear:F, ntk:F, dynamic:F (dynamic-ntk:F),
 * yarn:F, llama3:F with F >= 1; original_max 0 (the model's window). */
int cli_parse_rope_scaling(struct strata_rope_scaling_params *out, const char *s,
                           struct cli_error *e);

/* --edit KIND@B:T0-T1 (T1 empty: open end) and --replace B:R:ALPHA[:T0]. */
int cli_parse_edit(struct cli_edit *out, const char *spec, struct cli_error *e);
int cli_parse_replace(struct cli_edit *out, const char *spec, struct cli_error *e);

/* Dying wrappers of the above (exit 2, "see --help"-style hint). */
int64_t cli_int(const char *opt, const char *s, int64_t lo, int64_t hi);
double cli_double(const char *opt, const char *s);
void cli_block_list(const char *opt, const char *s, const char *hint, int32_t **list,
                    int32_t *n_list);
int32_t *cli_index_set(const char *opt, const char *s, int64_t hi, const char *what, bool clip,
                       int64_t *n);

/* One option of a program's table: getopt_long's entry plus its help.
 * key: a short option character ('o'), or CLI_KEY_PROG + k for a long-only
 * option of the program; the shared groups use keys below CLI_KEY_PROG. */
enum { CLI_NOARG = 0, CLI_ARG = 1 };
enum { CLI_KEY_PROG = 0x1000 };
struct cli_opt {
    const char *name; /* long name without "--"; NULL ends a table */
    int has_arg;      /* CLI_NOARG or CLI_ARG */
    int key;          /* what the handler receives */
    const char *arg;  /* value name in the help ("LIST"), or NULL */
    const char *help; /* help text; may hold '\n' for more lines */
};

/* Shared option groups a program takes (common options are always on:
 * -h/--help, --version, -q/--quiet, --threads N). */
enum {
    CLI_G_MODEL = 1 << 0,    /* --model --tokenizer --position-embedding --rope-base --rope-scaling */
    CLI_G_INTERV = 1 << 1,   /* --skip-layers --attn-temperature --window --posvec --edit --replace */
    CLI_G_SAMPLING = 1 << 2, /* --corpus --corpus-format --sep --jsonl-field --samples --seq-len --seed --sample-offset */
    CLI_G_OUTPUT = 1 << 3,   /* -o/--output */
    CLI_G_RESUME = 1 << 4,   /* --resume */
    CLI_G_RUNTIME = 1 << 5,  /* --attn-temperature --window --skip-layers only (no edits) */
};

/* What a program is, for parsing and --help. */
struct cli_spec {
    const char *prog;      /* "strata-probe-hidden" (or "strata-posvec decompose") */
    const char *synopsis;  /* after "usage: PROG " */
    const char *about;     /* paragraphs after the usage line, or NULL */
    unsigned groups;       /* CLI_G_* */
    const struct cli_opt *opts; /* the program's own, {0}-terminated, or NULL */
    const char *epilog;    /* text after the options, or NULL */
    const char *output_help; /* help of -o (default "output, written as OUT.partial and renamed when complete") */
    int min_args, max_args; /* positional arguments allowed (max -1: any) */
    int64_t samples_default; /* --samples default for this program (0: 64) */
};

/* ------------------------------------------------ shared option values */

/* --model and the run-time settings: model options and interventions fill
 * one strata_ctx_params (pos, rope_base, rope_scaling, sliding_window,
 * attn_scale, skip_layers, n_threads); cli_model_load resolves it against
 * the checkpoint. */
struct cli_model {
    const char *model_path;    /* --model */
    const char *tok_path;      /* --tokenizer, or NULL: beside the weights */
    const char *pos_s;         /* --position-embedding as given, or NULL */
    const char *rope_scaling_s;/* --rope-scaling as given, or NULL */
    double rope_base;          /* --rope-base; 0: the model's */
    struct strata_ctx_params cp; /* every run-time setting; n_ctx etc. by the program */
    /* after cli_model_load */
    struct strata_model *model;
    struct strata_tokenizer *tok;
    char tok_used[4096];       /* the path the tokenizer was opened from */
    struct strata_config cfg;  /* what contexts with cp run (strata_config_resolve) */
};

struct cli_interv {
    int32_t *skip;             /* (n_skip) blocks to remove, malloc'ed */
    int32_t n_skip;
    double attn_temperature;   /* lambda; 0: not given */
    int64_t window;            /* --window W; -1: not given, 0: full attention */
    const char *posvec_path;   /* --posvec FILE, or NULL */
    struct cli_edit *edits;    /* (n_edit) malloc'ed, in the order given */
    int n_edit;
    struct strata_editor **eds;/* (n_edit) made by the first cli_interv_attach */
    int64_t interp_window;     /* C of the replacement (provenance) */
};

struct cli_sampling {
    const char *corpus_path;
    struct strata_corpus_params cpar;
    int64_t n_samples;         /* default 64 */
    bool samples_given;        /* --samples was on the command line (--resume checks it) */
    int64_t seq_len;           /* 0: the model's seq_len */
    uint64_t seed;
    int64_t offset;            /* first draw of the seeded order taken */
};

/* Everything the shared groups fill, plus the positional arguments. */
struct cli_args {
    const struct cli_spec *spec;
    struct cli_model model;
    struct cli_interv interv;
    struct cli_sampling sampling;
    const char *out_path;      /* -o, or NULL */
    bool resume;               /* --resume */
    int n_threads;             /* --threads (also in model.cp.n_threads) */
    char *command_line;        /* argv as given, before parsing (getopt_long permutes
                                  nothing here, but provenance wants the words as
                                  typed); owned. cli_parse_args sets it unless set
                                  before: a subcommand parsing argv + 1 sets it from
                                  the whole argv first (cli_command_line) */
    const char **args;         /* (n_args) positional arguments, borrowed from argv; owned array */
    int n_args;
};

/* Defaults: no model, 64 samples, no interventions, window -1. A program
 * may change defaults (a.sampling.seq_len, ...) between cli_args_init and
 * cli_parse. */
void cli_args_init(struct cli_args *a);
/* Frees what parsing and loading made (tokenizer, model, editors, lists). */
void cli_args_free(struct cli_args *a);

/* A program's own options: return 0 if taken, -1 with e filled if the value
 * is bad (usage error). */
typedef int (*cli_handler)(void *user, int key, const char *arg, struct cli_error *e);

/* Parse argv with getopt_long against the shared groups and spec->opts.
 * Returns CLI_PARSE_OK, CLI_PARSE_HELP (--help seen), CLI_PARSE_VERSION
 * (--version seen), or CLI_PARSE_ERROR with e filled; never prints or
 * exits. Required options are not checked here (see cli_require). */
enum { CLI_PARSE_OK = 0, CLI_PARSE_HELP = 1, CLI_PARSE_VERSION = 2, CLI_PARSE_ERROR = -1 };
int cli_parse_args(struct cli_args *a, const struct cli_spec *spec, int argc, char **argv,
                   cli_handler handler, void *user, struct cli_error *e);
/* The program-level wrapper: cli_init(spec->prog) unless cli_init was
 * called before (a subcommand keeps "strata-posvec" in messages while its
 * spec->prog says "strata-posvec decompose"), parse, then --help
 * (usage on stdout, exit 0), --version ("strata-NAME VERSION", exit 0), or
 * an error ("prog: msg" + hint, default "see PROG --help"; exit 2). */
void cli_parse(struct cli_args *a, const struct cli_spec *spec, int argc, char **argv,
               cli_handler handler, void *user);
/* The usage text (--help) on f. */
void cli_usage(const struct cli_spec *spec, FILE *f);
/* Die (exit 2) "--model, --corpus and -o are required" unless every
 * CLI_REQ_* in `what` was given. */
enum { CLI_REQ_MODEL = 1, CLI_REQ_CORPUS = 2, CLI_REQ_OUTPUT = 4,
       CLI_REQ_OUTPUT_DIR = 8 /* -o is a directory (made if missing): required, not a file */ };
void cli_require(const struct cli_args *a, unsigned what);

/* ----------------------------------------------------- model (model.c) */

/* Load --model, resolve the run-time settings against it (a.model.cfg)
 * and check the interventions against it (blocks, boundaries, --posvec,
 * RoPE for --rope-scaling); with need_tokenizer, open --tokenizer, else the
 * one in the checkpoint directory, else llama2.c's tok<V>.bin beside it.
 * Dies on failure (exit 1; exit 2 where the command line is wrong). */
void cli_model_load(struct cli_args *a, bool need_tokenizer);
/* The context parameters of this run: the options' settings, n_ctx. */
struct strata_ctx_params cli_ctx_params(const struct cli_args *a, int64_t n_ctx);
/* Create a context with cp on the loaded model, and attach the edits
 * (editors run before observers). Dies on failure. */
struct strata_ctx *cli_ctx_create(struct cli_args *a, const struct strata_ctx_params *cp);
/* Make the editors (first call: load --posvec, resolve open ends to
 * seq_len) and add them to ctx in the order given. */
void cli_interv_attach(struct cli_args *a, struct strata_ctx *ctx, int64_t seq_len);
/* The interventions as a JSON object (keys skip_layers, rope_base,
 * rope_scale, attn_temperature, window, posvec, edits; null = not given).
 * Caller free()s. */
char *cli_interv_json(const struct cli_args *a);
/* JSON of the config contexts of this run run (strata_config_json of
 * a.model.cfg). Caller free()s. */
char *cli_config_json(const struct cli_args *a);

/* ------------------------------------------------ sampling (sampling.c) */

/* Resolve --seq-len against the model (0: its window; a note when beyond
 * it); returns T. */
int64_t cli_sampling_seq_len(struct cli_args *a);
/* Open --corpus (dies with a hint). Caller strata_corpus_free()s. */
struct strata_corpus *cli_sampling_open(const struct cli_args *a);
/* Draws offset .. offset+N-1 of the seeded order (dies with a hint). */
void cli_sampling_build(const struct cli_args *a, const struct strata_corpus *corpus,
                        struct strata_samples *samples);
/* The sampling rule in words (the `sampling` attribute). Caller free()s. */
char *cli_sampling_describe(const struct cli_args *a, const struct strata_samples *samples);

/* -------------------------------------------------- output (output.c) */

/* Text outputs are written under OUT.partial and renamed when complete;
 * path "-" is stdout. */
struct cli_out {
    FILE *f;
    char *tmp;        /* "OUT.partial", owned; NULL for stdout */
    const char *path;
};
/* Dies (exit 1) if it cannot be created. */
/* Before any work: dies if the output `path` (given as option `opt`) is a
 * directory, or its directory is missing or not writable ("-" is stdout; a
 * device or pipe, written in place, must itself be writable). */
void cli_out_check(const char *opt, const char *path);
/* The same for an output directory `path`: an existing directory must be
 * writable; a missing one is made later, so its parent must be. */
void cli_out_dir_check(const char *opt, const char *path);
FILE *cli_out_open(struct cli_out *o, const char *path);
/* Close and rename; dies on a write error (and removes the .partial). */
void cli_out_commit(struct cli_out *o);
/* Close and remove the .partial (an error path). */
void cli_out_abort(struct cli_out *o);
/* "path.partial". Caller free()s. */
char *cli_partial_path(const char *path);

/* ------------------------------------------------------ CSV (csv.c) */

/* The analyzers' CSVs (docs/FORMAT.md "CSV files"): a first comment line
 * "# key=value ..." naming where the numbers come from, a header line,
 * NaN (no value) as an empty field, lists ';'-separated in one field. */

/* "# k1=v1 k2=v2 ..." from (key, value) pairs ending with a NULL key; a NULL
 * or empty value leaves its pair out; white space, '%', ',' and control
 * bytes of a value are written %XX. Caller free()s. */
char *cli_csv_meta(const char *key, ...);
/* The comment line meta (NULL: none) and the header, each with '\n'. */
void cli_csv_head(FILE *f, const char *meta, const char *header);
/* ",v" as %.<digits>g; "," alone for NaN; ",inf" / ",-inf". */
void cli_csv_num(FILE *f, double v, int digits);

/* Provenance attributes shared by the probes' outputs, as (name, value)
 * pairs: strata_version, command_line, model_path, model_config,
 * tokenizer_path, corpus_path, separator, seed, sampling, interventions. */
struct cli_prov {
    char *command_line, *model_config, *interventions, *sampling; /* owned */
    char seed[32];
    const char *name[16];
    const char *value[16];
    int n;
};
/* Fill p from a (after cli_model_load) and samples (NULL: no sampling). */
void cli_prov_init(struct cli_prov *p, const struct cli_args *a,
                   const struct strata_samples *samples);
void cli_prov_free(struct cli_prov *p);
/* The value of attribute name in p, or NULL. */
const char *cli_prov_get(const struct cli_prov *p, const char *name);

/* The probes' sample loop: stop signal, progress, test hooks.
 *     struct cli_loop l;  cli_loop_begin(&l, s0, N, T);
 *     for (s = s0; cli_loop_more(&l, s); s++) { ...; cli_loop_done(&l, s); }
 *     cli_loop_end(&l, s);   // final progress line
 * STRATA_STOP_AFTER=k (test hook): behave as if a signal came after k
 * samples of this run. */
struct cli_loop {
    int64_t s0, n, T;
    int64_t stop_after; /* -1: none */
    struct cli_progress prog;
    /* cli_rounds_* only (mpi.c, "ranks" below) */
    int split;          /* CLI_SPLIT_BLOCK or CLI_SPLIT_CYCLIC */
    int64_t N;          /* samples of the whole run */
    int64_t next, hi;   /* this rank's next sample; its samples end before hi */
    int64_t round, n_rounds;
    int64_t done;       /* samples completed by all ranks in this run (agreed) */
    bool stopped;       /* every rank agreed to stop (or this rank's pause ended) */
};
void cli_loop_begin(struct cli_loop *l, int64_t s0, int64_t n, int64_t T);
bool cli_loop_more(const struct cli_loop *l, int64_t s);
/* After sample s completed successfully. */
void cli_loop_done(struct cli_loop *l, int64_t s);
/* After the loop: the final progress line over samples s0 .. s-1. */
void cli_loop_end(struct cli_loop *l, int64_t s);

/* The attributes that say which run a file belongs to: --resume, --append
 * and merge require them to match. Values are copies; names are borrowed
 * (string literals). */
struct cli_ident {
    const char **name; /* (n) */
    char **value;      /* (n) */
    int n, cap;
};
void cli_ident_add(struct cli_ident *id, const char *name, const char *value);
/* The run's own: model_path, model_config (as run), tokenizer_path,
 * corpus_path, corpus_format, separator, jsonl_field, seed, seq_len = T. */
void cli_ident_run(struct cli_ident *id, const struct cli_args *a,
                   const struct strata_corpus *corpus, int64_t T);
/* Die unless get(obj, name, &value) gives the value of each of the first n
 * entries (n < 0: all): hint_missing when an attribute cannot be read,
 * hint_differs when it differs from `other`'s ("this run", a file). */
void cli_ident_check(const struct cli_ident *id, int n,
                     int (*get)(const void *obj, const char *name, char **value), const void *obj,
                     const char *file, const char *hint_missing, const char *hint_differs,
                     const char *other);
void cli_ident_free(struct cli_ident *id);

/* Are the inputs statistics files (strata-stats/1, strata-probe-stats)
 * rather than dumps? Mixed inputs are a usage error (exit 2). */
bool cli_inputs_are_stats(const char *const *paths, int n);

/* ------------------------------------------------- ranks (mpi.c, MPI)
 *
 * Under `mpirun -n R` a program is rank 0..R-1 of R; run plainly it is rank
 * 0 of 1 (an Open MPI singleton, started isolated: no daemon, ~20 ms).
 * cli_parse calls cli_mpi_init and MPI_Finalize runs at exit, so a program
 * that parses with cli_parse needs nothing more for the plain case. lib/
 * never sees MPI; built without Open MPI (-DSTRATA_NO_MPI) every call below
 * is the single-process one.
 *
 * With R > 1 the layer's output is one rank's: notes, summary lines, the
 * progress line, --help and command-line errors (exit 2, identical on every
 * rank) print on rank 0 only; run-time errors (cli_die, cli_check: exit 1)
 * print "prog: rank r of R: message" on the rank that met them and abort the
 * whole job (MPI_Abort), since a rank that merely exited would leave the
 * others waiting in a collective. Warnings print on every rank.
 *
 * Every function here except cli_rank, cli_nranks, cli_share and
 * cli_shard_path is collective: every rank calls it, in the same order.
 * Reductions and gathers are no-ops (or a copy) with one rank.
 *
 * How the probes use it:
 *   - strata-probe-hidden: contiguous shares (CLI_SPLIT_BLOCK), one shard a
 *     rank (cli_shard_path), each shard resumable on its own; the shards
 *     read back in rank order are the single-process dump row for row;
 *   - strata-probe-ppl: cyclic rounds (CLI_SPLIT_CYCLIC): each round rank r
 *     does sample k R + r, cli_gather brings the R rows to rank 0, which
 *     writes them in sample order (so n_complete stays a prefix);
 *   - strata-probe-attn: cyclic rounds; a round's samples are added to the
 *     sums only if every rank completed its own (cli_rounds_agree); at the
 *     end cli_reduce_sum_f64 sums each rank's sums on rank 0.
 * A statistics probe does the same as probe-attn: accumulate its own
 * samples' sums, reduce them to rank 0 at the end (or at a stop), write there.
 */

/* Initialise MPI once (idempotent; cli_parse calls it) and finalize at exit.
 * STRATA_NO_MPI=1 in the environment skips MPI altogether (rank 0 of 1; an
 * escape hatch where Open MPI's runtime cannot start). */
void cli_mpi_init(void);
/* This process' rank (0 .. R-1) and the number of ranks R (1 without mpirun). */
int cli_rank(void);
int cli_nranks(void);
/* With R > 1, MPI_Abort(code) (flushes stdout and stderr first); else
 * returns. cli_die calls it. */
void cli_mpi_abort(int code);

/* This rank's contiguous share [*lo, *hi) of [0, n): rank order, sizes
 * differ by at most one (the first n % R ranks get one more). Not
 * collective. */
void cli_share(int64_t n, int64_t *lo, int64_t *hi);
/* The share of rank `rank` (for gathering what each rank computed). */
void cli_share_of(int64_t n, int rank, int64_t *lo, int64_t *hi);
/* Rank r's output for path OUT.h5 when R > 1: OUT-0000r-of-0000R.h5 (the
 * zero-padded numbers sort in rank order; a path without .h5 gets the
 * suffix appended); path itself (a copy) when R is 1. Caller free()s. */
char *cli_shard_path(const char *path, int rank, int nranks);

/* Wait for every rank. */
void cli_barrier(void);
/* In place: on rank 0 buf (n) becomes the sum of every rank's buf; other
 * ranks' buf is left as it was. Summation order is MPI's (deterministic for
 * a given R, not the single-process order: results agree to rounding). */
void cli_reduce_sum_f64(double *buf, int64_t n);
void cli_reduce_sum_i64(int64_t *buf, int64_t n);
/* In place on every rank: sum, or maximum, over ranks. */
void cli_allreduce_sum_i64(int64_t *buf, int64_t n);
void cli_allreduce_max_i64(int64_t *buf, int64_t n);
/* Rank 0's bytes to every rank. */
void cli_bcast(void *buf, size_t bytes);
/* Every rank sends bytes from send; rank 0 receives R * bytes into recv, in
 * rank order (recv is ignored, may be NULL, on other ranks). */
void cli_gather(void *recv, const void *send, size_t bytes);
/* Point to point (for pipeline mode: activations from the rank holding
 * blocks l0..l1-1 to the next): blocking, any size, matched by tag. Not
 * collective; dies when built without MPI. */
void cli_send(int dest, int tag, const void *buf, size_t bytes);
void cli_recv(int src, int tag, void *buf, size_t bytes);

/* The sample loop over ranks, in rounds: in each round every rank does at
 * most one sample, then cli_rounds_agree (one allreduce) settles whether
 * every rank completed its sample, whether any rank was asked to stop
 * (SIGINT/SIGTERM; mpirun forwards them to every rank), and how many
 * samples are done; so every rank stops after the same round. One progress
 * line (rank 0) counts the samples of all ranks; STRATA_STOP_AFTER=k and
 * STRATA_TEST_PAUSE_AFTER=k count them too.
 *     struct cli_loop l;
 *     cli_rounds_begin(&l, CLI_SPLIT_CYCLIC, N, T, 0);
 *     int64_t s;                               // -1: no sample this round
 *     while (cli_rounds_next(&l, &s)) {
 *         bool ok = s < 0 || run_sample(s);    // false: stopped mid-sample
 *         if (cli_rounds_agree(&l, ok)) { ...keep the round's samples... }
 *         else { ...drop them... }
 *     }
 *     cli_rounds_end(&l);                      // final progress line
 *     // l.done samples were kept; l.stopped && l.done < N: interrupted
 * Splits: CLI_SPLIT_BLOCK: this rank's samples are its cli_share of [0, N),
 * starting `done` into it (its own shard's n_complete on resume);
 * CLI_SPLIT_CYCLIC: samples done .. N-1 dealt in turn, round k giving rank r
 * sample done + k R + r (so after each agreed round the samples completed
 * are exactly done .. done + l.done - 1, a prefix). With R = 1 both are the
 * plain loop. begin and agree are collective; next is not. */
enum { CLI_SPLIT_BLOCK = 0, CLI_SPLIT_CYCLIC = 1 };
void cli_rounds_begin(struct cli_loop *l, int split, int64_t n, int64_t T, int64_t done);
bool cli_rounds_next(struct cli_loop *l, int64_t *s);
/* completed: this rank's sample of the round finished (true for a rank that
 * had none); returns true when every rank's did. */
bool cli_rounds_agree(struct cli_loop *l, bool completed);
void cli_rounds_end(struct cli_loop *l);

/* Pipeline mode (not built yet) would use: cli_share over the blocks
 * (rank r holds blocks lo..hi-1 and loads only their weights), cli_send /
 * cli_recv of the (T, D) residual stream between consecutive ranks, and
 * cli_bcast of the tokens; it needs from lib/ a call that runs blocks
 * l0..l1-1 of a context on given activations (and the embedding / final
 * norm + logits apart), plus loading a block range only. */

#endif
