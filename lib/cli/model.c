/* model.c — part of the command-line layer (cli.h): the model options and
 * the interventions (issue 4; P1 and P3 in ../shared/docs/PAPERS.md), which
 * together fill one strata_ctx_params: the loaded model stays read-only and
 * every run-time setting (position scheme, RoPE base and scaling, window,
 * attention temperature, skipped blocks, threads) is a context parameter.
 * Also loading model and tokenizer, the hidden-state editors (lib/interv.c)
 * and the `interventions` provenance JSON. */
#include "cli_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_model_option_(struct cli_args *a, int key, const char *arg, struct cli_error *e)
{
    struct cli_model *cm = &a->model;
    switch (key) {
    case K_MODEL:
        cm->model_path = arg;
        return 0;
    case K_TOKENIZER:
        cm->tok_path = arg;
        return 0;
    case K_POS_EMB: {
        enum strata_pos p; /* "rope" is resolved against the checkpoint at load */
        if (cli_parse_position_embedding(&p, arg, e)) return -1;
        cm->pos_s = arg;
        return 0;
    }
    case K_ROPE_BASE:
        if (cli_parse_double(&cm->rope_base, "--rope-base", arg, -HUGE_VAL, HUGE_VAL, e)) return -1;
        if (!(cm->rope_base > 1.0))
            return cli_fail(e, NULL, "--rope-base %g must be > 1", cm->rope_base);
        cm->cp.rope_base = cm->rope_base;
        return 0;
    case K_ROPE_SCALING:
        if (cli_parse_rope_scaling(&cm->cp.rope_scaling, arg, e)) return -1;
        cm->rope_scaling_s = arg;
        return 0;
    }
    return cli_fail(e, NULL, "option key %d has no handler", key);
}

static void add_edit(struct cli_interv *ci, const struct cli_edit *ed)
{
    ci->edits = cli_realloc(ci->edits, (size_t)(ci->n_edit + 1) * sizeof *ci->edits, "the edits");
    ci->edits[ci->n_edit++] = *ed;
}

int cli_interv_option_(struct cli_args *a, int key, const char *arg, struct cli_error *e)
{
    struct cli_interv *ci = &a->interv;
    struct cli_edit ed;
    switch (key) {
    case K_SKIP:
        if (cli_parse_block_list(&ci->skip, &ci->n_skip, "--skip-layers", arg, e)) {
            e->hint = "--skip-layers takes block numbers from 0, e.g. 3 or 1,5-7";
            return -1;
        }
        return 0;
    case K_ATTN_TEMP:
        if (cli_parse_double(&ci->attn_temperature, "--attn-temperature", arg, -HUGE_VAL,
                             HUGE_VAL, e))
            return -1;
        if (!(ci->attn_temperature > 0.0))
            return cli_fail(e, NULL, "--attn-temperature %g must be finite and > 0",
                            ci->attn_temperature);
        return 0;
    case K_WINDOW:
        return cli_parse_int(&ci->window, "--window", arg, 0, (int64_t)1 << 40, e);
    case K_POSVEC:
        ci->posvec_path = arg;
        return 0;
    case K_EDIT:
        if (cli_parse_edit(&ed, arg, e)) return -1;
        add_edit(ci, &ed);
        return 0;
    case K_REPLACE:
        if (cli_parse_replace(&ed, arg, e)) return -1;
        add_edit(ci, &ed);
        return 0;
    }
    return cli_fail(e, NULL, "option key %d has no handler", key);
}

/* The run-time settings of the options (n_ctx left to the caller). */
/* A context's abort callback: Ctrl-C or SIGTERM (the program's one stop
 * flag) ends a forward pass between blocks, tiles or GEMM row chunks, so a
 * run stops within a fraction of a second whatever the sequence length. */
static bool stop_requested(void *data)
{
    (void)data;
    cli_progress_heartbeat(); /* asked often enough to keep progress steady */
    return cli_stop_requested != 0;
}

static struct strata_ctx_params settings(const struct cli_args *a)
{
    struct strata_ctx_params cp = a->model.cp;
    cp.abort_callback = stop_requested;
    cp.abort_callback_data = NULL;
    const struct cli_interv *ci = &a->interv;
    cp.skip_layers = ci->skip;
    cp.n_skip = ci->n_skip;
    if (ci->attn_temperature > 0.0) cp.attn_scale = ci->attn_temperature;
    if (ci->window >= 0) cp.sliding_window = ci->window;
    return cp;
}

void cli_model_load(struct cli_args *a, bool need_tokenizer)
{
    struct cli_model *cm = &a->model;
    const struct cli_interv *ci = &a->interv;
    if (!cm->model_path) cli_usage_die("see --help", "--model is required");
    cli_check(strata_model_load(&cm->model, cm->model_path),
              "--model takes a checkpoint directory or file (docs/CHECKPOINTS.md)");
    const struct strata_config *mc = strata_model_config(cm->model);
    if (cm->pos_s) cli_usage_check(strata_pos_parse(cm->pos_s, mc->pos, &cm->cp.pos), NULL);
    struct strata_ctx_params cp = settings(a);
    cli_check(strata_config_resolve(&cm->cfg, cm->model, &cp), NULL);
    const struct strata_config *c = &cm->cfg;

    for (int32_t k = 0; k < ci->n_skip; k++)
        if (ci->skip[k] >= c->n_layer)
            cli_usage_die("blocks are numbered from 0",
                          "--skip-layers: block %d is out of range (%s has blocks 0..%d)",
                          (int)ci->skip[k], cm->model_path, (int)c->n_layer - 1);
    for (int k = 0; k < ci->n_edit; k++)
        if (ci->edits[k].p.boundary > c->n_layer)
            cli_usage_die("boundary 0 is the embeddings, B the residual stream after block B",
                          "%s at boundary %d: out of range (%s has boundaries 0..%d)",
                          strata_edit_kind_name(ci->edits[k].p.kind), (int)ci->edits[k].p.boundary,
                          cm->model_path, (int)c->n_layer);
    if (ci->n_edit && !ci->posvec_path)
        cli_usage_die("make one with strata-posvec from a strata-probe-hidden dump",
                      "--edit and --replace need --posvec FILE");
    if (cm->rope_scaling_s && cm->cp.rope_scaling.type != STRATA_SCALING_NONE &&
        c->pos != STRATA_POS_ROPE_HALF && c->pos != STRATA_POS_ROPE_INTERLEAVED)
        cli_usage_die("--position-embedding rope makes it a RoPE model",
                      "--rope-scaling: %s does not use RoPE (%s)", cm->model_path,
                      strata_pos_name(c->pos));

    if (!need_tokenizer) return;
    const size_t n = sizeof cm->tok_used;
    a->sampling.cpar.ids_n_vocab = c->vocab_size;
    if (cm->tok_path) {
        snprintf(cm->tok_used, n, "%s", cm->tok_path);
        cli_check(strata_tokenizer_open(&cm->tok, cm->tok_used), NULL);
    } else if (c->format && !strcmp(c->format, "gguf")) { /* the tokenizer is in the file */
        snprintf(cm->tok_used, n, "%s", cm->model_path);
        cli_check(strata_tokenizer_open(&cm->tok, cm->tok_used), "give --tokenizer FILE");
    } else if (snprintf(cm->tok_used, n, "%s", strata_model_dir(cm->model)),
               strata_tokenizer_open(&cm->tok, cm->tok_used) != 0) {
        snprintf(cm->tok_used, n, "%s/tok%d.bin", strata_model_dir(cm->model), (int)c->vocab_size);
        if (access(cm->tok_used, R_OK) != 0) {
            /* Token ids need no tokenizer: the model's vocabulary bounds them. */
            const struct cli_sampling *cs = &a->sampling;
            if (cs->corpus_path &&
                strata_corpus_kind_resolve(cs->corpus_path, cs->cpar.kind) == STRATA_CORPUS_IDS) {
                snprintf(cm->tok_used, n, "none");
                cli_note("no tokenizer beside %s: reading the .ids corpus as given, BOS id %d "
                         "(--bos)", cm->model_path, (int)a->sampling.cpar.ids_bos);
                return;
            }
            cli_die("give --tokenizer FILE", "no tokenizer beside %s (%s)", cm->model_path,
                    strata_last_error());
        }
        cli_check(strata_tokenizer_open(&cm->tok, cm->tok_used), NULL);
    }
    /* Provenance names the file read, not the directory it was found in. */
    if (strata_tokenizer_path(cm->tok)) snprintf(cm->tok_used, n, "%s", strata_tokenizer_path(cm->tok));
    const int32_t nv = strata_tokenizer_n_vocab(cm->tok);
    if (nv > c->vocab_size)
        cli_die("the tokenizer must belong to the model",
                "%s: the tokenizer has %d tokens but the model's vocabulary is %d", cm->tok_used,
                (int)nv, (int)c->vocab_size);
    /* Fewer is common (a vocabulary padded for GEMM tiles) but can also mean
     * the wrong tokenizer: say both sizes. */
    if (nv < c->vocab_size)
        cli_note("warning: %s has %d tokens, the model's vocabulary %d (padded, or another "
                 "model's tokenizer?)", cm->tok_used, (int)nv, (int)c->vocab_size);
}

struct strata_ctx_params cli_ctx_params(const struct cli_args *a, int64_t n_ctx)
{
    struct strata_ctx_params cp = settings(a);
    cp.n_ctx = n_ctx;
    return cp;
}

struct strata_ctx *cli_ctx_create(struct cli_args *a, const struct strata_ctx_params *cp)
{
    struct strata_ctx *ctx = NULL;
    cli_check(strata_ctx_create(&ctx, a->model.model, cp), NULL);
    cli_interv_attach(a, ctx, cp->n_ctx);
    return ctx;
}

/* The in-window positions a replacement interpolates: the trained window C,
 * or fewer if the positional-vector file has fewer (T_file). */
static int64_t interp_window(int64_t C, int64_t T_file)
{
    return C < T_file ? C : T_file;
}

void cli_interv_attach(struct cli_args *a, struct strata_ctx *ctx, int64_t seq_len)
{
    struct cli_interv *ci = &a->interv;
    if (ci->n_edit == 0) return;
    const struct strata_model *model = a->model.model;
    if (!ci->eds) {
        ci->eds = cli_calloc((size_t)ci->n_edit, sizeof *ci->eds, "the editors");
        struct strata_posvec *pv = NULL;
        cli_check(strata_posvec_load(&pv, ci->posvec_path),
                  "--posvec takes an HDF5 file with /positional (L+1, T, D) float32 (docs/FORMAT.md)");
        int64_t T_file = 0;
        strata_posvec_shape(pv, NULL, &T_file, NULL);
        ci->interp_window = interp_window(a->model.cfg.seq_len, T_file);
        for (int k = 0; k < ci->n_edit; k++) {
            struct cli_edit *e = &ci->edits[k];
            if (e->open_end) e->p.t1 = seq_len;
            if (e->p.t0 >= e->p.t1)
                cli_usage_die(NULL,
                              "%s at boundary %d: first position %lld is beyond the %lld-token input",
                              strata_edit_kind_name(e->p.kind), (int)e->p.boundary,
                              (long long)e->p.t0, (long long)seq_len);
            cli_check(strata_editor_create(&ci->eds[k], model, pv, &e->p),
                      "make --posvec from a dump of this model with at least as many positions as the input");
        }
        strata_posvec_free(pv);
    }
    for (int k = 0; k < ci->n_edit; k++) {
        struct strata_observer o = strata_editor_observer(ci->eds[k]);
        cli_check(strata_ctx_add_editor(ctx, &o), NULL);
    }
}

/* --rope-scaling in strata_rope_scaling_parse's canonical words
 * (dynamic-ntk:F is recorded as dynamic:F). */
static void scaling_words(char *out, size_t n, const char *s)
{
    if (!strncmp(s, "dynamic-ntk:", 12)) snprintf(out, n, "dynamic%s", s + 11);
    else snprintf(out, n, "%s", s);
}

char *cli_interv_json(const struct cli_args *a)
{
    const struct cli_interv *ci = &a->interv;
    const struct cli_model *cm = &a->model;
    cJSON *j = cJSON_CreateObject();
    if (!j) cli_die(NULL, "out of memory for the interventions JSON");
    cJSON *sk = cJSON_AddArrayToObject(j, "skip_layers");
    for (int32_t k = 0; k < ci->n_skip; k++) cJSON_AddItemToArray(sk, cJSON_CreateNumber(ci->skip[k]));
    if (cm->rope_base > 0) cJSON_AddNumberToObject(j, "rope_base", cm->rope_base);
    else cJSON_AddNullToObject(j, "rope_base");
    if (cm->rope_scaling_s) {
        char w[128];
        scaling_words(w, sizeof w, cm->rope_scaling_s);
        cJSON_AddStringToObject(j, "rope_scale", w);
    } else {
        cJSON_AddNullToObject(j, "rope_scale");
    }
    cJSON_AddNumberToObject(j, "attn_temperature", ci->attn_temperature > 0 ? ci->attn_temperature : 1.0);
    if (ci->window >= 0) cJSON_AddNumberToObject(j, "window", (double)ci->window);
    else cJSON_AddNullToObject(j, "window");
    if (ci->posvec_path) cJSON_AddStringToObject(j, "posvec", ci->posvec_path);
    else cJSON_AddNullToObject(j, "posvec");
    /* Record the values the run resolves (cli_interv_attach), whether or not
     * it has attached the editors yet: t1 of an open end is the input
     * length, interp_window comes from the --posvec file's positions. */
    int64_t iw = ci->interp_window;
    const int64_t seq_len = a->sampling.seq_len ? a->sampling.seq_len : cm->cfg.seq_len;
    if (ci->n_edit && !iw && ci->posvec_path) {
        struct strata_h5 *h = NULL;
        int nd;
        int64_t sh[STRATA_H5_MAX_DIMS];
        if (strata_h5_open(&h, ci->posvec_path) == 0 && strata_h5_shape(h, "positional", &nd, sh) == 0 &&
            nd == 3)
            iw = interp_window(cm->cfg.seq_len, sh[1]);
        strata_h5_free(h);
    }
    cJSON *ed = cJSON_AddArrayToObject(j, "edits");
    for (int k = 0; k < ci->n_edit; k++) {
        const struct strata_edit_params *p = &ci->edits[k].p;
        cJSON *o = cJSON_CreateObject();
        char site[64];
        if (p->boundary == 0) snprintf(site, sizeof site, "blk.0.resid_pre");
        else snprintf(site, sizeof site, "blk.%d.resid_post", (int)p->boundary - 1);
        cJSON_AddStringToObject(o, "kind", strata_edit_kind_name(p->kind));
        cJSON_AddNumberToObject(o, "boundary", p->boundary);
        cJSON_AddStringToObject(o, "site", site);
        cJSON_AddNumberToObject(o, "t0", (double)p->t0);
        const bool unresolved = ci->edits[k].open_end && !(ci->eds && ci->eds[k]);
        cJSON_AddNumberToObject(o, "t1", (double)(unresolved ? seq_len : p->t1));
        if (p->kind == STRATA_EDIT_REPLACE) {
            cJSON_AddNumberToObject(o, "ratio", p->ratio);
            cJSON_AddNumberToObject(o, "alpha", p->alpha);
            cJSON_AddNumberToObject(o, "interp_window", (double)iw);
        }
        cJSON_AddItemToArray(ed, o);
    }
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s) cli_die(NULL, "out of memory for the interventions JSON");
    return s;
}

char *cli_config_json(const struct cli_args *a)
{
    char *s = strata_config_json(&a->model.cfg);
    if (!s) cli_die(NULL, "out of memory for the model config JSON");
    return s;
}
