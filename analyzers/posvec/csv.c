/* csv.c — part of strata-posvec (analyzers/posvec.c, docs/POSVEC.md): the
 * CSV outputs every command writes, with the conventions of docs/FORMAT.md
 * "CSV files" (lib/cli/csv.c): a first comment line naming model, corpus,
 * samples, length and trained window, so plots can say what they show;
 * empty fields for NaN; lists ';'-separated.
 *
 * Legend: T positions, C the trained window, N samples.
 */
#include "posvec.h"

#include <cjson/cJSON.h>

FILE *csv_open(struct csv *c, const char *dir, const char *name, const char *meta,
               const char *header)
{
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        cli_die("check the path of -o DIR", "%s: cannot create directory: %s", dir, strerror(errno));
    c->path = cli_sprintf("%s/%s", dir, name);
    c->f = cli_out_open(&c->o, c->path);
    cli_csv_head(c->f, meta, header);
    return c->f;
}

void csv_close(struct csv *c)
{
    cli_out_commit(&c->o);
    cli_info("wrote %s", c->path);
    free(c->path);
    c->path = NULL;
}

char *pv_meta(const char *command, const char *model, const char *corpus, int64_t n_samples,
              const char *seq_len, int64_t trained_window, const char *pv, int64_t pv_samples)
{
    char n[32] = "", c[32] = "", pn[32] = "";
    if (n_samples > 0) snprintf(n, sizeof n, "%lld", (long long)n_samples);
    if (trained_window > 0) snprintf(c, sizeof c, "%lld", (long long)trained_window);
    if (pv_samples > 0) snprintf(pn, sizeof pn, "%lld", (long long)pv_samples);
    return cli_csv_meta("program", POSVEC_PROG, "command", command, "model", model, "corpus", corpus,
                        "n_samples", n, "seq_len", seq_len, "trained_window", c, "pv", pv,
                        "pv_samples", pn, (const char *)NULL);
}

char *pv_file_meta(const char *command, const char *path, const struct pvfile *f)
{
    char *model, *corpus, *seq_len;
    pv_origin(path, &model, &corpus, &seq_len);
    if (!seq_len && f->positions[f->T - 1] == f->T - 1) seq_len = cli_sprintf("%lld", (long long)f->T);
    char *m = pv_meta(command, model, corpus, f->acc.n, seq_len, pv_config_window(f->model_config),
                      path, 0);
    free(model), free(corpus), free(seq_len);
    return m;
}

int64_t pv_config_window(const char *model_config)
{
    int64_t C = 0;
    cJSON *j = model_config ? cJSON_Parse(model_config) : NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "seq_len");
    if (cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble < 1e15) C = (int64_t)v->valuedouble;
    cJSON_Delete(j);
    return C;
}

/* An attribute of the root group, or NULL (absent, not a string). */
static char *root_attr(struct strata_h5 *h, const char *name)
{
    char *v = NULL;
    if (strata_h5_get_attr_str(h, "/", name, &v)) return NULL;
    return v;
}

void pv_origin(const char *path, char **model, char **corpus, char **seq_len)
{
    *model = *corpus = *seq_len = NULL;
    char *cur = cli_strdup(path);
    for (int depth = 0; depth < 4 && cur && !*model; depth++) {
        struct strata_h5 *h = NULL;
        if (strata_h5_open(&h, cur)) break; /* gone or unreadable: what is known stays */
        *model = root_attr(h, "model_path");
        if (*model) {
            *corpus = root_attr(h, "corpus_path");
            *seq_len = root_attr(h, "seq_len");
        }
        char *src = *model ? NULL : root_attr(h, "sources");
        strata_h5_free(h);
        free(cur);
        cur = NULL;
        if (src) { /* the first source (the list is space-separated) */
            char *sp = strchr(src, ' ');
            if (sp) *sp = '\0';
            if (*src) cur = cli_strdup(src);
            free(src);
        }
    }
    free(cur);
}
