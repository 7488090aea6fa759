/* posvec.h — private to strata-posvec: what its parts share.
 *   analyzers/posvec.c          main, decompose, merge, formation
 *   analyzers/posvec/pvfile.c   PV-file I/O and CSV outputs
 *   analyzers/posvec/runner.c   in-process multi-configuration model runs
 *   analyzers/posvec/studies.c  attention, beyond-window, extension, methods
 * P1 (Dong et al. 2024, ../shared/docs/PAPERS.md), docs/POSVEC.md.
 *
 * Legend: L blocks (L+1 boundaries b), Lk boundaries kept, T positions,
 * D width, H heads, N samples, C the trained window.
 */
#ifndef STRATA_POSVEC_H
#define STRATA_POSVEC_H

#include "cli.h"

#include <math.h>

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
/* calloc or die; never NULL. */
void *xalloc(size_t n);
/* Read a strata-posvec/1 file into f (dies with a hint on any problem). */
void pv_read(struct pvfile *f, const char *path);
/* Write f with provenance: cmd is the command line, src the source files. */
void pv_write(const struct pvfile *f, const char *path, const char *cmd, const char *src);
/* Die unless f keeps boundaries 0 .. L and positions 0 .. T-1. */
void pv_require_full(const struct pvfile *f, const char *path, int64_t L);

/* ------------------------------------------------------ CSV (pvfile.c) */

struct csv {
    struct cli_out o;
    char path[4096];
    FILE *f;
};

/* Create dir if needed, open dir/name (committed by csv_close), write header. */
FILE *csv_open(struct csv *c, const char *dir, const char *name, const char *header);
void csv_close(struct csv *c);
/* Split a comma list into (at most max) items; s is modified. */
int split(char *s, char **items, int max);

/* ------------------------------------------- model runs (runner.c) */

/* One configuration of the model, run in lockstep with the others on the
 * same samples. Each has its own model handle because the runtime reads the
 * position settings from the model at every call. */
struct run {
    char name[96];
    char scale[64];        /* strata_rope_scaling_parse words, "" = as loaded */
    double temp;           /* attention logit scale lambda */
    int64_t window;        /* sliding window, -1 = as loaded */
    bool has_edit;
    struct strata_edit_params ed;
    /* state */
    struct strata_ctx *ctx;
    struct strata_editor *editor;
    float *hid;            /* (L+1, T, D) this sample's hidden states */
    struct strata_hidden_capture cap;
    int64_t L, H, T, C, W;
    bool logits;           /* profile logits against distance */
    /* sums over samples */
    double *nll;           /* (T-1) */
    double *sink;          /* (L, T) attention on key 0 per query, summed over heads */
    double *pd, *pdn;      /* (L, T) probability against distance: sum, count */
    double *lg, *lgn;      /* (2, L, T) logit against distance, queries < C / >= C */
    double *hcos;          /* (L+1) sum over positions of cos to run 0 */
    struct strata_pvsum acc; /* hidden states, for positional vectors */
};

struct runner {
    struct cli_model cm;
    const char *corpus, *sep, *pv_path;
    int64_t N, T;
    uint64_t seed;
    struct strata_corpus *corp;
};

#define RUNNER_HELP                                                                        \
    "  --model M, --tokenizer TOK, --positions P, --rope-base B as the probes\n"          \
    "  --corpus FILE    documents separated by --sep (default <|endoftext|>)\n"           \
    "  --samples N      samples per configuration (default 16); drawn as\n"             \
    "                   strata-probe-ppl draws them (same --seed, same tokens)\n"         \
    "  --seed S         sample selection seed (default 0)\n"                             \
    "  -o DIR           output directory (created)\n"

void runner_init(struct runner *rn);
/* Consume argv[*i] (and its value) if it is a runner option. */
bool runner_option(struct runner *rn, int argc, char **argv, int *i);
void runner_load(struct runner *rn);
/* Configuration from its name: direct, linear:F, ntk:F, dynamic-ntk:F,
 * yarn:F, temp:X, window:W, wext:R:X. */
void run_parse(struct run *r, const char *spec, int64_t C);
/* Run every configuration on the same rn->N samples of rn->T tokens. */
void runner_go(struct runner *rn, struct run *runs, int n_run, bool logits, bool hidden);
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
