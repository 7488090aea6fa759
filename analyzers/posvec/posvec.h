/* posvec.h — private to strata-posvec: what its parts share.
 *   analyzers/posvec.c          main, decompose, merge, formation
 *   analyzers/posvec/pvfile.c   PV-file I/O, lists
 *   analyzers/posvec/csv.c      CSV outputs and their provenance line
 *   analyzers/posvec/runner.c   in-process multi-configuration model runs
 *   analyzers/posvec/studies.c  attention, beyond-window, extension, methods
 * P1 (Dong et al. 2024, ../shared/docs/PAPERS.md), docs/POSVEC.md.
 *
 * Command lines go through the shared layer (lib/cli/cli.h): model options
 * and sampling options are the probes' own, so the same options draw the
 * same samples as strata-probe-ppl and strata-probe-attn.
 *
 * Legend: L blocks (L+1 boundaries b), Lk boundaries kept, T positions,
 * D width, H heads, N samples, C the trained window.
 */
#ifndef STRATA_POSVEC_H
#define STRATA_POSVEC_H

#include "cli/cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define POSVEC_PROG "strata-posvec"
#define PV_FORMAT "strata-posvec/1"
#define DNAN ((double)NAN)

/* ------------------------------------------------ PV files (pvfile.c) */

struct pvfile {
    int64_t Lk, T, D;     /* boundaries kept, positions, width */
    int32_t *layers;      /* (Lk) boundary ids */
    int32_t *positions;   /* (T) positions */
    float *p;             /* (Lk, T, D) */
    struct strata_pvsum acc;
    double *cnorm;        /* (Lk, T) mean over samples of |c|, or NULL */
    char *model_config;   /* JSON of the dump's model */
};

void pv_free(struct pvfile *f);
/* n zeroed bytes or die (cli_alloc); never NULL. */
void *xalloc(size_t n);
/* Read a strata-posvec/1 file into f (dies with a hint on any problem). */
void pv_read(struct pvfile *f, const char *path);
/* Write f with provenance: cmd is the command line, src the source files. */
void pv_write(const struct pvfile *f, const char *path, const char *cmd, const char *src);
/* Die unless f keeps boundaries 0 .. L and positions 0 .. T-1. */
void pv_require_full(const struct pvfile *f, const char *path, int64_t L);

/* --------------------------------------------------------- CSV (csv.c) */

struct csv {
    struct cli_out o;
    char *path;           /* dir/name, owned */
    FILE *f;
};

/* Create dir if needed, open dir/name (committed by csv_close), write the
 * comment line meta (from pv_meta; NULL: none) and the header. */
FILE *csv_open(struct csv *c, const char *dir, const char *name, const char *meta,
               const char *header);
void csv_close(struct csv *c);
/* The CSVs' first line (docs/FORMAT.md "CSV files"): program, command and
 * what is known of model, corpus, N, T (a number or a ';'-list), C, the PV
 * file read and its samples (NULL, empty or 0: left out). Caller free()s. */
char *pv_meta(const char *command, const char *model, const char *corpus, int64_t n_samples,
              const char *seq_len, int64_t trained_window, const char *pv, int64_t pv_samples);
/* The same for numbers computed from a PV file f read from path: its N,
 * its T (when it keeps positions 0..T-1), model and corpus from pv_origin. */
char *pv_file_meta(const char *command, const char *path, const struct pvfile *f);
/* The trained window C (seq_len) of a model_config JSON, 0 if absent. */
int64_t pv_config_window(const char *model_config);
/* Model path, corpus path and seq_len behind a file: its own root
 * attributes, else those of the first of its `sources` (followed up to 4
 * files deep) while they can be opened; NULL where not found. Caller
 * free()s the three. */
void pv_origin(const char *path, char **model, char **corpus, char **seq_len);

/* A comma-separated list: its items, as many as given. */
struct list {
    char **item;          /* (n) owned strings */
    int n;
};
/* Append the items of s (comma-separated, empty items dropped). */
void list_add(struct list *l, const char *s);
void list_free(struct list *l);

/* ------------------------------------------- model runs (runner.c) */

/* One configuration of the model, run in lockstep with the others on the
 * same samples: a context of the one loaded model with its own settings. */
struct run {
    char *name;            /* owned */
    bool has_scale;        /* rope scaling of its own (else the options') */
    struct strata_rope_scaling_params sc;
    double temp;           /* attention logit scale lambda */
    int64_t window;        /* sliding window, -1 = as loaded */
    bool has_edit;
    struct strata_edit_params ed;
    /* state */
    struct strata_ctx *ctx;
    struct strata_editor *editor;
    struct strata_attnred *red; /* attention reductions (lib/attnred.c), or NULL */
    float *hid;            /* (L+1, T, D) this sample's hidden states */
    struct strata_hidden_capture cap;
    int64_t L, H, T, C;
    /* sums over samples */
    double *nll;           /* (T-1) */
    double *sink;          /* (L, T) attention on key 0 per query, summed over heads */
    double *pd, *pdn;      /* (L, T) probability against distance: sum, count */
    double *lg, *lgn;      /* (2, L, T) logit against distance, queries < C / >= C */
    double *hcos;          /* (L+1) sum over positions of cos to run 0 */
    struct strata_pvsum acc; /* hidden states, for positional vectors */
};

/* The model, the corpus and the options every run shares. */
struct runner {
    struct cli_args a;     /* model and sampling options (lib/cli) */
    const char *pv_path;   /* --pv */
    const char *dir;       /* -o DIR */
    struct strata_corpus *corp;
    int64_t N, T;          /* samples; T: tokens of this round's samples */
};

/* The program's own option keys (each subcommand takes some). */
enum {
    OPT_PV = CLI_KEY_PROG, OPT_CSV, OPT_ALLOW_PARTIAL, OPT_COMPONENTS, OPT_STRIDE, OPT_THRESHOLDS,
    OPT_BOUNDARY, OPT_KINDS, OPT_RANGES, OPT_BUCKET, OPT_METHODS, OPT_LENGTHS, OPT_REPLACE,
    OPT_GRID_LAYERS, OPT_GRID_R, OPT_GRID_ALPHA, OPT_GRID_LENGTH
};

#define PV_OPT_HELP "positional vectors: a strata-posvec decompose (or merge) file"

/* The command line of the whole program (set in main; provenance). */
extern char *posvec_cmdline;

/* Parse a run subcommand's argv: model and sampling groups, -o DIR,
 * --pv and the subcommand's own options (handler). */
void runner_parse(struct runner *rn, const struct cli_spec *spec, int argc, char **argv,
                  cli_handler handler, void *user);
/* Load the model and tokenizer and open the corpus. */
void runner_load(struct runner *rn);
void runner_free(struct runner *rn);
/* The loaded model's configuration (as the options resolve it). */
const struct strata_config *runner_config(const struct runner *rn);
/* Configuration from its name: direct, linear:F, ntk:F, dynamic:F
 * (dynamic-ntk:F), yarn:F, llama3:F, temp:X, window:W, wext:R:X. */
void run_parse(struct run *r, const char *spec, const struct strata_config *c);
int64_t run_model_window(const struct strata_config *c);
/* Run every configuration on the same rn->N samples of rn->T tokens;
 * attn: attention reductions (sink, distance); hidden: positional vectors. */
void runner_go(struct runner *rn, struct run *runs, int n_run, bool attn, bool hidden);
/* Free the runs' state (contexts, sums, names). */
void runs_free(struct run *runs, int n_run);
/* Mean NLL over prediction columns t0 <= t < t1. */
double run_nll(const struct run *r, int64_t N, int64_t t0, int64_t t1);
/* Mean sink mass of block l over queries q0 <= i < q1. */
double run_sink(const struct run *r, int64_t N, int64_t l, int64_t q0, int64_t q1);
/* Correlation of mean logit against distance, inside vs beyond the window. */
double run_logit_sim(const struct run *r, int64_t l);
/* best (Tx), cos (Tx): for each row of x (Tx, D) the best of the first C rows of y (>= C, D). */
void best_match(int32_t *best, double *cos, const float *x, int64_t Tx, const float *y,
                int64_t C, int64_t D);

/* ------------------------------------------------ commands (studies.c) */

int cmd_attention(int argc, char **argv);
/* beyond-window (extension false) and extension (true). */
int cmd_beyond(int argc, char **argv, bool extension);
int cmd_methods(int argc, char **argv);

#endif
