/* cli_internal.h — declarations shared by the files of the command-line
 * layer (the .c files of lib/cli) only. */
#ifndef STRATA_CLI_INTERNAL_H
#define STRATA_CLI_INTERNAL_H

#include "cli.h"

/* cli_init unless a name was set before (util.c). */
void cli_init_default_(const char *prog);

/* cli_test_pause_point with the line printed only when say; true if it
 * paused (then a stop signal came). */
bool cli_test_pause_point_(int64_t done, bool say);

/* Keys of the shared groups' options (below CLI_KEY_PROG). */
enum {
    K_HELP = 'h', K_QUIET = 'q', K_OUTPUT = 'o',
    K_VERSION = 0x100, K_THREADS, K_PROGRESS,
    K_MODEL = 0x200, K_TOKENIZER, K_POS_EMB, K_ROPE_BASE, K_ROPE_SCALING,
    K_SKIP = 0x300, K_ATTN_TEMP, K_WINDOW, K_POSVEC, K_EDIT, K_REPLACE,
    K_CORPUS = 0x400, K_CORPUS_FORMAT, K_SEP, K_JSONL_FIELD, K_SAMPLES, K_SEQ_LEN, K_SEED,
    K_SAMPLE_OFFSET, K_BOS,
    K_RESUME = 0x500
};

/* The group handlers (model.c, sampling.c): 0 taken, -1 bad value. */
int cli_model_option_(struct cli_args *a, int key, const char *arg, struct cli_error *e);
int cli_interv_option_(struct cli_args *a, int key, const char *arg, struct cli_error *e);
int cli_sampling_option_(struct cli_args *a, int key, const char *arg, struct cli_error *e);

#endif
