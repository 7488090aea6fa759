/* test_cli_opts.c — the command-line layer (lib/cli/) called directly:
 * every value parser (index and block lists, numbers, byte counts,
 * --edit/--replace specs, --rope-scaling, --position-embedding) on good
 * and bad input, getopt_long-level parsing of a probe-like option table
 * (--positions LIST next to --position-embedding, unknown options, missing
 * values, abbreviations, positional arguments), --help text, and the exit
 * codes of the program-level wrappers (2 for the command line, 1 at run
 * time), run in child processes. */
#include "check.h"
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static bool has(const struct cli_error *e, const char *needle)
{
    bool ok = strstr(e->msg, needle) != NULL;
    if (!ok) fprintf(stderr, "  message '%s' lacks '%s'\n", e->msg, needle);
    return ok;
}

static bool ids_are(const int32_t *ids, int64_t n, const int32_t *want, int64_t m)
{
    if (n != m) return false;
    for (int64_t i = 0; i < n; i++)
        if (ids[i] != want[i]) return false;
    return true;
}

static void test_index_sets(void)
{
    struct cli_error e;
    int32_t *ids = NULL;
    int64_t n = 0;
    CHECK(cli_parse_index_set(&ids, &n, "--layers", "all", 5, "boundary", false, &e) == 0);
    CHECK(ids_are(ids, n, (int32_t[]){0, 1, 2, 3, 4}, 5));
    free(ids);
    CHECK(cli_parse_index_set(&ids, &n, "--layers", "0,4,8-12", 20, "boundary", false, &e) == 0);
    CHECK(ids_are(ids, n, (int32_t[]){0, 4, 8, 9, 10, 11, 12}, 7));
    free(ids);
    CHECK(cli_parse_index_set(&ids, &n, "--positions", "0-63:16", 100, "position", true, &e) == 0);
    CHECK(ids_are(ids, n, (int32_t[]){0, 16, 32, 48}, 4));
    free(ids);
    CHECK(cli_parse_index_set(&ids, &n, "--positions", "0-63,64-4095:16", 128, "position", true, &e) == 0);
    CHECK(n == 68 && ids && ids[63] == 63 && ids[64] == 64 && ids[67] == 112);
    free(ids);
    CHECK(cli_parse_index_set(&ids, &n, "--heads", "4,1,1", 8, "head", false, &e) == 0);
    CHECK(ids_are(ids, n, (int32_t[]){1, 4}, 2)); /* sorted, distinct */
    free(ids);
    /* out of range: an error without clip, dropped with it */
    CHECK(cli_parse_index_set(&ids, &n, "--layers", "0-9", 5, "block", false, &e) == -1);
    CHECK(has(&e, "block 9 does not exist (0..4 here)") && ids == NULL);
    CHECK(cli_parse_index_set(&ids, &n, "--positions", "0-9", 5, "position", true, &e) == 0);
    CHECK(ids_are(ids, n, (int32_t[]){0, 1, 2, 3, 4}, 5));
    free(ids);
    CHECK(cli_parse_index_set(&ids, &n, "--positions", "10-12", 5, "position", true, &e) == -1);
    CHECK(has(&e, "selects no position below 5"));
    /* malformed */
    CHECK(cli_parse_index_set(&ids, &n, "--layers", "5-3", 10, "block", false, &e) == -1);
    CHECK(has(&e, "range 5-3 is backwards") && e.hint != NULL);
    CHECK(cli_parse_index_set(&ids, &n, "--layers", "1,x", 10, "block", false, &e) == -1);
    CHECK(has(&e, "expected a whole number at 'x'"));
    CHECK(cli_parse_index_set(&ids, &n, "--layers", "3;4", 10, "block", false, &e) == -1);
    CHECK(has(&e, "unexpected ';4'"));
    CHECK(cli_parse_index_set(&ids, &n, "--layers", "0-8:0", 10, "block", false, &e) == -1);
    CHECK(has(&e, "stride is at least 1"));
    CHECK(cli_parse_index_set(&ids, &n, "--layers", "-1", 10, "block", false, &e) == -1);
    CHECK(cli_parse_index_set(&ids, &n, "--layers", "", 10, "block", false, &e) == -1);
    CHECK(cli_parse_index_set(&ids, &n, "--positions", "rope", 10, "position", true, &e) == -1);
    CHECK(has(&e, "--positions 'rope'"));
}

static void test_block_lists(void)
{
    struct cli_error e;
    int32_t *list = NULL, n = 0;
    CHECK(cli_parse_block_list(&list, &n, "--skip-layers", "3", &e) == 0);
    CHECK(ids_are(list, n, (int32_t[]){3}, 1));
    CHECK(cli_parse_block_list(&list, &n, "--skip-layers", "1,5-7", &e) == 0); /* appends */
    CHECK(ids_are(list, n, (int32_t[]){3, 1, 5, 6, 7}, 5));
    CHECK(cli_parse_block_list(&list, &n, "--drop-layers", "27,26,26", &e) == 0); /* order, repeats kept */
    CHECK(n == 8 && list[5] == 27 && list[6] == 26 && list[7] == 26);
    free(list);
    list = NULL;
    n = 0;
    CHECK(cli_parse_block_list(&list, &n, "--skip-layers", "7-5", &e) == -1);
    CHECK(has(&e, "backwards"));
    CHECK(cli_parse_block_list(&list, &n, "--skip-layers", "1,x", &e) == -1);
    CHECK(has(&e, "--skip-layers '1,x'"));
    CHECK(cli_parse_block_list(&list, &n, "--skip-layers", "", &e) == -1);
    CHECK(has(&e, "no layers"));
    CHECK(cli_parse_block_list(&list, &n, "--skip-layers", "0-99999999", &e) == -1);
    CHECK(has(&e, "too many"));
    free(list);
}

static void test_numbers(void)
{
    struct cli_error e;
    int64_t v = 0;
    double d = 0;
    CHECK(cli_parse_int(&v, "--samples", "5", 1, 10, &e) == 0 && v == 5);
    CHECK(cli_parse_int(&v, "--samples", "0", 1, 10, &e) == -1);
    CHECK(has(&e, "--samples '0': expected a whole number from 1 to 10"));
    CHECK(cli_parse_int(&v, "--samples", "11", 1, 10, &e) == -1);
    CHECK(cli_parse_int(&v, "--samples", "5x", 1, 10, &e) == -1);
    CHECK(cli_parse_int(&v, "--samples", "", 1, 10, &e) == -1);
    CHECK(cli_parse_int(&v, "--samples", "99999999999999999999999", 1, INT64_MAX, &e) == -1);
    CHECK(cli_parse_int(&v, "--seed", "-3", -5, 5, &e) == 0 && v == -3);
    CHECK(cli_parse_double(&d, "--rope-base", "10000.5", 1, 1e30, &e) == 0 && d == 10000.5);
    CHECK(cli_parse_double(&d, "--rope-base", "1e4", 1, 1e30, &e) == 0 && d == 1e4);
    CHECK(cli_parse_double(&d, "--x", "nan", -1e30, 1e30, &e) == -1);
    CHECK(has(&e, "expected a number"));
    CHECK(cli_parse_double(&d, "--x", "inf", -1e30, 1e30, &e) == -1);
    CHECK(cli_parse_double(&d, "--x", "1e400", -1e30, 1e30, &e) == -1);
    CHECK(cli_parse_double(&d, "--x", "abc", -1e30, 1e30, &e) == -1);
    CHECK(cli_parse_double(&d, "--x", "1.5.2", -1e30, 1e30, &e) == -1);
    CHECK(cli_parse_double(&d, "--x", "3", 0, 2, &e) == -1);
    CHECK(has(&e, "from 0 to 2"));
    CHECK(cli_parse_bytes(&d, "--max-map-bytes", "500M", &e) == 0 && d == 500.0 * 1048576.0);
    CHECK(cli_parse_bytes(&d, "--max-map-bytes", "2G", &e) == 0 && d == 2.0 * 1073741824.0);
    CHECK(cli_parse_bytes(&d, "--max-map-bytes", "1KiB", &e) == 0 && d == 1024.0);
    CHECK(cli_parse_bytes(&d, "--max-map-bytes", "3KB", &e) == 0 && d == 3072.0);
    CHECK(cli_parse_bytes(&d, "--max-map-bytes", "123", &e) == 0 && d == 123.0);
    CHECK(cli_parse_bytes(&d, "--max-map-bytes", "10X", &e) == -1);
    CHECK(cli_parse_bytes(&d, "--max-map-bytes", "-1", &e) == -1);
    CHECK(cli_parse_bytes(&d, "--max-map-bytes", "nanG", &e) == -1);
}

static void test_edits(void)
{
    struct cli_error e;
    struct cli_edit ed;
    CHECK(cli_parse_edit(&ed, "sub-positional@4:0-4", &e) == 0);
    CHECK(ed.p.kind == STRATA_EDIT_SUB_POSITIONAL && ed.p.boundary == 4 && ed.p.t0 == 0 &&
          ed.p.t1 == 4 && !ed.open_end);
    CHECK(cli_parse_edit(&ed, "sub-semantic@2:32-", &e) == 0);
    CHECK(ed.p.kind == STRATA_EDIT_SUB_SEMANTIC && ed.p.boundary == 2 && ed.p.t0 == 32 && ed.open_end);
    CHECK(cli_parse_edit(&ed, "add-positional@0:1-2", &e) == 0 && ed.p.kind == STRATA_EDIT_ADD_POSITIONAL);
    CHECK(cli_parse_edit(&ed, "sub-basis@3:0-", &e) == 0 && ed.p.kind == STRATA_EDIT_SUB_BASIS);
    CHECK(cli_parse_edit(&ed, "sub-foo@1:0-4", &e) == -1);
    CHECK(has(&e, "unknown kind 'sub-foo'"));
    CHECK(cli_parse_edit(&ed, "sub-positional@1", &e) == -1);
    CHECK(has(&e, "expected ':T0-T1'"));
    CHECK(cli_parse_edit(&ed, "sub-positional@1:9-3", &e) == -1);
    CHECK(has(&e, "empty"));
    CHECK(cli_parse_edit(&ed, "sub-positional", &e) == -1);
    CHECK(has(&e, "no '@'"));
    CHECK(cli_parse_edit(&ed, "sub-positional@x:0-4", &e) == -1);
    CHECK(cli_parse_edit(&ed, "sub-positional@1:0-4z", &e) == -1);
    CHECK(has(&e, "unexpected 'z'"));
    CHECK(cli_parse_edit(&ed, "replace@1:0-4", &e) == -1);
    CHECK(has(&e, "--replace"));
    CHECK(cli_parse_replace(&ed, "4:4:1", &e) == 0);
    CHECK(ed.p.kind == STRATA_EDIT_REPLACE && ed.p.boundary == 4 && ed.p.ratio == 4.0 &&
          ed.p.alpha == 1.0 && ed.p.t0 == 4 && ed.open_end);
    CHECK(cli_parse_replace(&ed, "4:5:1.3:8", &e) == 0 && ed.p.alpha == 1.3 && ed.p.t0 == 8);
    CHECK(cli_parse_replace(&ed, "1:0:1", &e) == -1);
    CHECK(has(&e, "R must be > 0"));
    CHECK(cli_parse_replace(&ed, "1:2", &e) == -1);
    CHECK(has(&e, "ALPHA"));
    CHECK(cli_parse_replace(&ed, "1:2:x", &e) == -1);
    CHECK(has(&e, "expected a number at 'x'"));
    CHECK(cli_parse_replace(&ed, "1:2:1:4x", &e) == -1);
    CHECK(cli_parse_replace(&ed, "1:nan:1", &e) == -1);
}

static void test_positions(void)
{
    struct cli_error e;
    struct strata_rope_scaling_params sp;
    CHECK(cli_parse_rope_scaling(&sp, "linear:4", &e) == 0);
    CHECK(sp.type == STRATA_SCALING_LINEAR && sp.factor == 4.0 && sp.original_max == 0);
    CHECK(cli_parse_rope_scaling(&sp, "ntk:2", &e) == 0 && sp.type == STRATA_SCALING_NTK && sp.factor == 2.0);
    CHECK(cli_parse_rope_scaling(&sp, "dynamic:2", &e) == 0 && sp.type == STRATA_SCALING_DYNAMIC);
    CHECK(cli_parse_rope_scaling(&sp, "dynamic-ntk:2", &e) == 0);
    CHECK(sp.type == STRATA_SCALING_DYNAMIC && sp.factor == 2.0);
    CHECK(cli_parse_rope_scaling(&sp, "yarn:4", &e) == 0 && sp.type == STRATA_SCALING_YARN);
    CHECK(cli_parse_rope_scaling(&sp, "llama3:8", &e) == 0 && sp.type == STRATA_SCALING_LLAMA3);
    CHECK(cli_parse_rope_scaling(&sp, "none", &e) == 0 && sp.type == STRATA_SCALING_NONE);
    const char *bad[] = {"linear", "cubic:2", "linear:0.5", "linear:x", "linear:", "", "ntk"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(cli_parse_rope_scaling(&sp, bad[i], &e) == -1);
        CHECK(has(&e, "TYPE:FACTOR"));
    }
    enum strata_pos p;
    CHECK(cli_parse_position_embedding(&p, "alibi", &e) == 0 && p == STRATA_POS_ALIBI);
    CHECK(cli_parse_position_embedding(&p, "none", &e) == 0 && p == STRATA_POS_NONE);
    CHECK(cli_parse_position_embedding(&p, "rope-half", &e) == 0 && p == STRATA_POS_ROPE_HALF);
    CHECK(cli_parse_position_embedding(&p, "rope-interleaved", &e) == 0 &&
          p == STRATA_POS_ROPE_INTERLEAVED);
    CHECK(cli_parse_position_embedding(&p, "rope", &e) == 0);
    CHECK(cli_parse_position_embedding(&p, "all", &e) == -1);
    CHECK(has(&e, "--position-embedding 'all'"));
    CHECK(cli_parse_position_embedding(&p, "0-63", &e) == -1);
}

/* ------------------------------------------------------ getopt level */

enum { OPT_POSITIONS = CLI_KEY_PROG, OPT_MAPS };
static const struct cli_opt probe_opts[] = {
    {"positions", CLI_ARG, OPT_POSITIONS, "LIST", "positions to keep"},
    {"maps", CLI_NOARG, OPT_MAPS, NULL, "also write maps"},
    {0}};
static const struct cli_spec probe_spec = {
    .prog = "strata-test",
    .synopsis = "--model M -o OUT [options]",
    .groups = CLI_G_MODEL | CLI_G_INTERV | CLI_G_SAMPLING | CLI_G_OUTPUT | CLI_G_RESUME,
    .opts = probe_opts,
};
static const struct cli_spec files_spec = {
    .prog = "strata-files", .synopsis = "FILE... [options]", .min_args = 1, .max_args = -1,
};

struct probe_vals {
    const char *positions;
    bool maps;
};

static int probe_option(void *user, int key, const char *arg, struct cli_error *e)
{
    struct probe_vals *v = user;
    if (key == OPT_POSITIONS) v->positions = arg;
    else if (key == OPT_MAPS) v->maps = true;
    else return cli_fail(e, NULL, "key %d", key);
    return 0;
}

/* Parse a NULL-terminated argument list (after the program name). */
static int parse(struct cli_args *a, const struct cli_spec *spec, struct probe_vals *v,
                 struct cli_error *e, const char **words)
{
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)"strata-test";
    for (; *words && argc < 63; words++) argv[argc++] = (char *)*words;
    argv[argc] = NULL;
    cli_args_init(a);
    memset(v, 0, sizeof *v);
    return cli_parse_args(a, spec, argc, argv, probe_option, v, e);
}

static void test_getopt(void)
{
    struct cli_args a;
    struct probe_vals v;
    struct cli_error e;
    int rc = parse(&a, &probe_spec, &v, &e,
                   (const char *[]){"--model", "m.bin", "--positions", "all", "--position-embedding",
                                    "alibi", "--rope-scaling", "dynamic-ntk:2", "--samples", "3",
                                    "-o", "out.h5", "--threads", "2", "--skip-layers", "1,3",
                                    "--window", "0", "--attn-temperature", "1.5", "--maps",
                                    "--seed=7", "--resume", "--edit", "sub-positional@1:0-4", NULL});
    CHECK(rc == CLI_PARSE_OK);
    if (rc) fprintf(stderr, "  %s\n", e.msg);
    CHECK(v.positions && !strcmp(v.positions, "all") && v.maps);
    CHECK(a.model.model_path && !strcmp(a.model.model_path, "m.bin"));
    CHECK(a.model.pos_s && !strcmp(a.model.pos_s, "alibi"));
    CHECK(a.model.cp.rope_scaling.type == STRATA_SCALING_DYNAMIC && a.model.cp.rope_scaling.factor == 2.0);
    CHECK(a.sampling.n_samples == 3 && a.sampling.seed == 7 && a.resume);
    CHECK(a.out_path && !strcmp(a.out_path, "out.h5"));
    CHECK(a.n_threads == 2 && a.model.cp.n_threads == 2);
    CHECK(a.interv.n_skip == 2 && a.interv.skip[1] == 3 && a.interv.window == 0);
    CHECK(a.interv.attn_temperature == 1.5 && a.interv.n_edit == 1);
    struct strata_ctx_params cp = cli_ctx_params(&a, 77);
    CHECK(cp.n_ctx == 77 && cp.n_skip == 2 && cp.sliding_window == 0 && cp.attn_scale == 1.5 &&
          cp.n_threads == 2);
    CHECK(a.command_line && strstr(a.command_line, "strata-test --model m.bin --positions all"));
    cli_args_free(&a);

    /* defaults */
    CHECK(parse(&a, &probe_spec, &v, &e, (const char *[]){NULL}) == CLI_PARSE_OK);
    CHECK(a.sampling.n_samples == 64 && a.interv.window == -1 && !a.model.model_path &&
          a.model.cp.rope_scaling.type == STRATA_SCALING_MODEL && a.model.cp.n_threads == 0);
    cli_args_free(&a);

    CHECK(parse(&a, &probe_spec, &v, &e, (const char *[]){"--positions", "0-63,64-4095:16", NULL}) ==
          CLI_PARSE_OK);
    CHECK(v.positions && !strcmp(v.positions, "0-63,64-4095:16"));
    cli_args_free(&a);

    CHECK(parse(&a, &probe_spec, &v, &e, (const char *[]){"--model", "m", "--bogus", NULL}) ==
          CLI_PARSE_ERROR);
    CHECK(has(&e, "unknown option '--bogus'"));
    cli_args_free(&a);
    CHECK(parse(&a, &probe_spec, &v, &e, (const char *[]){"--bogus=3", NULL}) == CLI_PARSE_ERROR);
    CHECK(has(&e, "unknown option '--bogus'"));
    cli_args_free(&a);
    CHECK(parse(&a, &probe_spec, &v, &e, (const char *[]){"-Z", NULL}) == CLI_PARSE_ERROR);
    CHECK(has(&e, "unknown option '-Z'"));
    cli_args_free(&a);
    CHECK(parse(&a, &probe_spec, &v, &e, (const char *[]){"--model", NULL}) == CLI_PARSE_ERROR);
    CHECK(has(&e, "option '--model' needs a value"));
    cli_args_free(&a);
    CHECK(parse(&a, &probe_spec, &v, &e, (const char *[]){"-o", NULL}) == CLI_PARSE_ERROR);
    CHECK(has(&e, "needs a value"));
    cli_args_free(&a);
    CHECK(parse(&a, &probe_spec, &v, &e, (const char *[]){"--samples", "x", NULL}) == CLI_PARSE_ERROR);
    CHECK(has(&e, "--samples 'x'"));
    cli_args_free(&a);
    CHECK(parse(&a, &probe_spec, &v, &e, (const char *[]){"--samples", "0", NULL}) == CLI_PARSE_ERROR);
    cli_args_free(&a);
    CHECK(parse(&a, &probe_spec, &v, &e, (const char *[]){"--threads", "-1", NULL}) == CLI_PARSE_ERROR);
    CHECK(has(&e, "--threads '-1'"));
    cli_args_free(&a);
    CHECK(parse(&a, &probe_spec, &v, &e, (const char *[]){"--window", "-1", NULL}) == CLI_PARSE_ERROR);
    CHECK(has(&e, "--window"));
    cli_args_free(&a);
    CHECK(parse(&a, &probe_spec, &v, &e, (const char *[]){"--rope-scaling", "cubic:2", NULL}) ==
          CLI_PARSE_ERROR);
    CHECK(has(&e, "TYPE:FACTOR"));
    cli_args_free(&a);
    CHECK(parse(&a, &probe_spec, &v, &e, (const char *[]){"--position-embedding", "all", NULL}) ==
          CLI_PARSE_ERROR);
    cli_args_free(&a);
    CHECK(parse(&a, &probe_spec, &v, &e, (const char *[]){"--maps=1", NULL}) == CLI_PARSE_ERROR);
    CHECK(has(&e, "takes no value"));
    cli_args_free(&a);
    CHECK(parse(&a, &probe_spec, &v, &e, (const char *[]){"--s", "1", NULL}) == CLI_PARSE_ERROR);
    CHECK(has(&e, "ambiguous option '--s'"));
    cli_args_free(&a);
    /* a unique prefix is getopt_long's abbreviation */
    CHECK(parse(&a, &probe_spec, &v, &e, (const char *[]){"--rope-scal", "linear:2", NULL}) ==
          CLI_PARSE_OK);
    CHECK(a.model.cp.rope_scaling.type == STRATA_SCALING_LINEAR);
    cli_args_free(&a);
    CHECK(parse(&a, &probe_spec, &v, &e, (const char *[]){"stray", NULL}) == CLI_PARSE_ERROR);
    CHECK(has(&e, "unexpected argument 'stray'"));
    cli_args_free(&a);
    CHECK(parse(&a, &probe_spec, &v, &e, (const char *[]){"--edit", "sub-foo@1:0-4", NULL}) ==
          CLI_PARSE_ERROR);
    CHECK(has(&e, "unknown kind"));
    cli_args_free(&a);
    CHECK(parse(&a, &probe_spec, &v, &e, (const char *[]){"--help", NULL}) == CLI_PARSE_HELP);
    cli_args_free(&a);
    CHECK(parse(&a, &probe_spec, &v, &e, (const char *[]){"-h", NULL}) == CLI_PARSE_HELP);
    cli_args_free(&a);
    CHECK(parse(&a, &probe_spec, &v, &e, (const char *[]){"--version", NULL}) == CLI_PARSE_VERSION);
    cli_args_free(&a);
    CHECK(parse(&a, &probe_spec, &v, &e, (const char *[]){"-q", NULL}) == CLI_PARSE_OK && cli_quiet);
    cli_quiet = false;
    cli_args_free(&a);

    /* positional arguments, in order, options between them */
    CHECK(parse(&a, &files_spec, &v, &e, (const char *[]){"a.h5", "-q", "b.h5", NULL}) == CLI_PARSE_OK);
    CHECK(a.n_args == 2 && !strcmp(a.args[0], "a.h5") && !strcmp(a.args[1], "b.h5"));
    cli_quiet = false;
    cli_args_free(&a);
    CHECK(parse(&a, &files_spec, &v, &e, (const char *[]){"a.h5", "--", "-b.h5", NULL}) == CLI_PARSE_OK);
    CHECK(a.n_args == 2 && !strcmp(a.args[1], "-b.h5"));
    cli_args_free(&a);
    CHECK(parse(&a, &probe_spec, &v, &e, (const char *[]){"--", "x", NULL}) == CLI_PARSE_ERROR);
    CHECK(has(&e, "unexpected argument 'x'"));
    cli_args_free(&a);
    CHECK(parse(&a, &files_spec, &v, &e, (const char *[]){"-q", NULL}) == CLI_PARSE_ERROR);
    CHECK(has(&e, "missing argument"));
    cli_quiet = false;
    cli_args_free(&a);
    /* groups a program does not take are unknown options there */
    CHECK(parse(&a, &files_spec, &v, &e, (const char *[]){"x", "--model", "m", NULL}) == CLI_PARSE_ERROR);
    CHECK(has(&e, "unknown option '--model'"));
    cli_args_free(&a);

    /* --help text */
    FILE *f = tmpfile();
    if (f) {
        cli_usage(&probe_spec, f);
        rewind(f);
        char buf[1 << 14];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        fclose(f);
        CHECK(!strncmp(buf, "usage: strata-test ", 19));
        CHECK(strstr(buf, "--positions LIST") && strstr(buf, "--position-embedding P") &&
              strstr(buf, "--rope-scaling TYPE:F") && strstr(buf, "--threads N") &&
              strstr(buf, "-q, --quiet") && strstr(buf, "--version") && strstr(buf, "-o, --output OUT") &&
              strstr(buf, "--resume") && strstr(buf, "(default 64)"));
        CHECK(!strstr(buf, "--rope-scale "));
    }
}

/* ---------------------------------------------- exit codes (children) */

static int child_status(int which)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stderr) || !freopen("/dev/null", "w", stdout)) _exit(99);
        struct cli_args a;
        cli_args_init(&a);
        struct probe_vals v = {0};
        char *bogus[] = {(char *)"strata-test", (char *)"--bogus", NULL};
        char *help[] = {(char *)"strata-test", (char *)"--help", NULL};
        char *version[] = {(char *)"strata-test", (char *)"--version", NULL};
        char *missing[] = {(char *)"strata-test", (char *)"--samples", NULL};
        char *none[] = {(char *)"strata-test", NULL};
        switch (which) {
        case 0: cli_parse(&a, &probe_spec, 2, bogus, probe_option, &v); break;
        case 1: cli_parse(&a, &probe_spec, 2, help, probe_option, &v); break;
        case 2: cli_parse(&a, &probe_spec, 2, version, probe_option, &v); break;
        case 3: cli_parse(&a, &probe_spec, 2, missing, probe_option, &v); break;
        case 4:
            cli_parse(&a, &probe_spec, 1, none, probe_option, &v);
            cli_require(&a, CLI_REQ_MODEL | CLI_REQ_OUTPUT);
            break;
        case 5: cli_int("--samples", "x", 1, 5); break;
        case 6: cli_die(NULL, "a run-time error"); break;
        case 7: cli_check(STRATA_E_IO, NULL); break;
        case 8: cli_alloc(SIZE_MAX / 2, "a test buffer"); break;
        case 9: cli_index_set("--layers", "9", 4, "block", false, &(int64_t){0}); break;
        }
        _exit(0);
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

static void test_exit_codes(void)
{
    CHECK(child_status(0) == 2); /* unknown option */
    CHECK(child_status(1) == 0); /* --help */
    CHECK(child_status(2) == 0); /* --version */
    CHECK(child_status(3) == 2); /* missing value */
    CHECK(child_status(4) == 2); /* missing required option */
    CHECK(child_status(5) == 2); /* bad number */
    CHECK(child_status(6) == 1); /* run time */
    CHECK(child_status(7) == 1); /* a failed library call */
    CHECK(child_status(8) == 1); /* out of memory */
    CHECK(child_status(9) == 2); /* index out of range */
}

int main(void)
{
    cli_init("test_cli_opts");
    test_index_sets();
    test_block_lists();
    test_numbers();
    test_edits();
    test_positions();
    test_getopt();
    test_exit_codes();
    return CHECK_DONE("test_cli_opts");
}
