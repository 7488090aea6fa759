/* output.c — part of the command-line layer (cli.h): text outputs written
 * under OUT.partial and renamed when complete (an interrupted run never
 * leaves a file that looks finished), the provenance attributes every probe
 * records, and the probes' sample loop (stop signal, progress, test hooks). */
#include "cli_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *cli_partial_path(const char *path)
{
    return cli_sprintf("%s.partial", path);
}

void cli_out_check(const char *opt, const char *path)
{
    if (!path || !strcmp(path, "-")) return;
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        cli_usage_die("give a file name, e.g. DIR/out.h5", "%s %s is a directory", opt, path);
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) { /* a device or pipe: written in place */
        if (access(path, W_OK) != 0)
            cli_die("give a writable output", "%s %s: not writable: %s", opt, path, strerror(errno));
        return;
    }
    char *dir = cli_strdup(path), *slash = strrchr(dir, '/');
    if (!slash) strcpy(dir, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
    const bool ok = stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
    if (!ok || access(dir, W_OK) != 0) {
        const char *why = ok ? "is not writable" : "does not exist";
        char *msg = cli_sprintf("%s %s: directory %s %s", opt, path, dir, why);
        free(dir);
        cli_die("create the directory, or give a writable one", "%s", msg);
    }
    free(dir);
}

void cli_out_dir_check(const char *opt, const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            cli_usage_die("give a directory (made if missing)", "%s %s exists and is not a directory",
                          opt, path);
        if (access(path, W_OK) != 0)
            cli_die("give a writable directory", "%s %s: directory is not writable", opt, path);
        return;
    }
    cli_out_check(opt, path); /* to be made: its parent must exist and take it */
}

FILE *cli_out_open(struct cli_out *o, const char *path)
{
    o->path = path;
    o->tmp = NULL;
    if (!strcmp(path, "-")) {
        o->f = stdout;
        return o->f;
    }
    /* A device or pipe (-o /dev/null, a FIFO) is written directly: renaming
     * a .partial onto it would replace it by a regular file. */
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
        o->f = fopen(path, "w");
        if (!o->f) cli_die(NULL, "%s: cannot open for writing: %s", path, strerror(errno));
        return o->f;
    }
    o->tmp = cli_partial_path(path);
    o->f = fopen(o->tmp, "w");
    if (!o->f)
        cli_die("check that the directory exists and is writable", "%s: cannot create: %s",
                o->tmp, strerror(errno));
    return o->f;
}

void cli_out_commit(struct cli_out *o)
{
    if (o->f == stdout) {
        fflush(stdout);
        return;
    }
    if (!o->tmp) { /* a device or pipe, written directly */
        int bad = ferror(o->f) | fclose(o->f);
        o->f = NULL;
        if (bad) cli_die("check the device or pipe", "%s: write failed", o->path);
        return;
    }
    int bad = ferror(o->f) | fclose(o->f);
    o->f = NULL;
    if (bad || rename(o->tmp, o->path) != 0) {
        remove(o->tmp);
        cli_die("check free space and permissions", "%s: write failed", o->path);
    }
    free(o->tmp);
    o->tmp = NULL;
}

void cli_out_abort(struct cli_out *o)
{
    if (o->f && o->f != stdout) {
        fclose(o->f);
        if (o->tmp) remove(o->tmp);
    }
    o->f = NULL;
    free(o->tmp);
    o->tmp = NULL;
}

/* --------------------------------------------------------- provenance */

static void prov_add(struct cli_prov *p, const char *name, const char *value)
{
    p->name[p->n] = name;
    p->value[p->n++] = value ? value : "";
}

void cli_prov_init(struct cli_prov *p, const struct cli_args *a,
                   const struct strata_samples *samples)
{
    memset(p, 0, sizeof *p);
    p->command_line = cli_strdup(a->command_line ? a->command_line : "");
    p->model_config = cli_config_json(a);
    p->interventions = cli_interv_json(a);
    snprintf(p->seed, sizeof p->seed, "%llu", (unsigned long long)a->sampling.seed);
    if (samples) p->sampling = cli_sampling_describe(a, samples);
    prov_add(p, "strata_version", STRATA_VERSION);
    prov_add(p, "command_line", p->command_line);
    prov_add(p, "model_path", a->model.model_path);
    prov_add(p, "model_config", p->model_config);
    prov_add(p, "tokenizer_path", a->model.tok_used);
    if (samples) {
        prov_add(p, "corpus_path", a->sampling.corpus_path);
        prov_add(p, "separator", a->sampling.cpar.sep);
        prov_add(p, "seed", p->seed);
        prov_add(p, "sampling", p->sampling);
    }
    prov_add(p, "interventions", p->interventions);
}

void cli_prov_free(struct cli_prov *p)
{
    free(p->command_line);
    free(p->model_config);
    free(p->interventions);
    free(p->sampling);
    memset(p, 0, sizeof *p);
}

const char *cli_prov_get(const struct cli_prov *p, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->name[i], name)) return p->value[i];
    return NULL;
}

/* -------------------------------------------------------- sample loop */

void cli_loop_begin(struct cli_loop *l, int64_t s0, int64_t n, int64_t T)
{
    l->s0 = s0;
    l->n = n;
    l->T = T;
    const char *e = getenv("STRATA_STOP_AFTER");
    l->stop_after = e ? strtoll(e, NULL, 10) : -1;
    cli_catch_stop();
    cli_progress_start(&l->prog, NULL, n - s0);
}

bool cli_loop_more(const struct cli_loop *l, int64_t s)
{
    return s < l->n && !cli_stop_requested;
}

void cli_loop_done(struct cli_loop *l, int64_t s)
{
    const int64_t done = s + 1 - l->s0;
    cli_progress(&l->prog, done, l->n - l->s0, done * l->T, 0);
    if (l->stop_after >= 0 && done >= l->stop_after) cli_stop_requested = 1;
    cli_test_pause_point(done);
}

void cli_loop_end(struct cli_loop *l, int64_t s)
{
    cli_progress(&l->prog, s - l->s0, l->n - l->s0, (s - l->s0) * l->T, 1);
}

void cli_ident_add(struct cli_ident *id, const char *name, const char *value)
{
    if (id->n == id->cap) {
        id->cap = id->cap ? 2 * id->cap : 24;
        id->name = cli_realloc(id->name, (size_t)id->cap * sizeof *id->name, "the run's identity");
        id->value = cli_realloc(id->value, (size_t)id->cap * sizeof *id->value, "the run's identity");
    }
    id->name[id->n] = name;
    id->value[id->n++] = cli_strdup(value ? value : "");
}

void cli_ident_run(struct cli_ident *id, const struct cli_args *a,
                   const struct strata_corpus *corpus, int64_t T)
{
    const struct cli_sampling *cs = &a->sampling;
    const enum strata_corpus_kind ck = strata_corpus_kind(corpus);
    char *cfg_json = cli_config_json(a), seed_s[32], T_s[32];
    snprintf(seed_s, sizeof seed_s, "%llu", (unsigned long long)cs->seed);
    snprintf(T_s, sizeof T_s, "%lld", (long long)T);
    cli_ident_add(id, "model_path", a->model.model_path);
    cli_ident_add(id, "model_config", cfg_json);
    cli_ident_add(id, "tokenizer_path", a->model.tok_used);
    cli_ident_add(id, "corpus_path", cs->corpus_path);
    cli_ident_add(id, "corpus_format", strata_corpus_kind_name(ck));
    cli_ident_add(id, "separator", ck == STRATA_CORPUS_TEXT ? cs->cpar.sep : "");
    cli_ident_add(id, "jsonl_field", ck == STRATA_CORPUS_JSONL ? cs->cpar.field : "");
    cli_ident_add(id, "seed", seed_s);
    cli_ident_add(id, "seq_len", T_s);
    free(cfg_json);
}

void cli_ident_check(const struct cli_ident *id, int n,
                     int (*get)(const void *obj, const char *name, char **value), const void *obj,
                     const char *file, const char *hint_missing, const char *hint_differs,
                     const char *other)
{
    for (int i = 0; i < id->n && (n < 0 || i < n); i++) {
        char *v = NULL;
        if (get(obj, id->name[i], &v) != 0) cli_die(hint_missing, "%s: %s", file, strata_last_error());
        if (strcmp(v, id->value[i]) != 0)
            cli_die(hint_differs, "%s: attribute `%s` is \"%.200s\" but %s has \"%.200s\"", file,
                    id->name[i], v, other, id->value[i]);
        free(v);
    }
}

void cli_ident_free(struct cli_ident *id)
{
    for (int i = 0; i < id->n; i++) free(id->value[i]);
    free(id->name);
    free(id->value);
    memset(id, 0, sizeof *id);
}
