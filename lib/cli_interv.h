/* cli_interv.h — the intervention options shared by strata-probe-hidden,
 * strata-probe-attn and strata-probe-ppl (issue 4; P1 and P3 in
 * ../shared/docs/PAPERS.md): remove blocks, change RoPE scaling, the
 * attention temperature or window, and edit hidden states with positional
 * vectors (lib/interv.c). Usable alone or together; described as JSON for
 * the `interventions` provenance attribute.
 *
 * Header-only like cli.h, and included after it. Use:
 *     struct cli_interv ci;  cli_interv_init(&ci);
 *     ... if (cli_interv_option(&ci, argc, argv, &i)) continue; ...
 *     cli_model_load(&cm, ...);          cli_interv_apply_model(&ci, &cm);
 *     cli_interv_ctx_params(&ci, &cp);   strata_ctx_create(&ctx, model, &cp);
 *     cli_interv_attach(&ci, ctx, model, T);  // editors (run before observers)
 *     char *json = cli_interv_json(&ci, &cm);  ...  free(json);
 *     strata_ctx_free(ctx);  cli_interv_free(&ci);
 * --rope-base is cli_model's option (cli.h); it is recorded here too. */
#ifndef STRATA_CLI_INTERV_H
#define STRATA_CLI_INTERV_H

#include "cli.h"

#include <cjson/cJSON.h>
#include <math.h>

#define CLI_INTERV_MAX_EDITS 8

struct cli_edit {
    struct strata_edit_params p; /* t1 resolved by cli_interv_attach when open_end */
    bool open_end;               /* edit to the end of the sequence */
};

struct cli_interv {
    int32_t *skip;           /* (n_skip) blocks to remove, malloc'ed */
    int32_t n_skip;
    const char *rope_scale;  /* --rope-scale as given, or NULL */
    char rope_scale_lib[96]; /* the same in strata_rope_scaling_parse's words */
    double attn_temperature; /* lambda; 0: not given */
    int64_t window;          /* --window W; -1: not given, 0: full attention */
    const char *posvec_path; /* --posvec FILE, or NULL */
    struct cli_edit edits[CLI_INTERV_MAX_EDITS];
    int n_edit;
    struct strata_editor *eds[CLI_INTERV_MAX_EDITS]; /* made by the first attach */
    int64_t interp_window;   /* C of the replacement (for provenance) */
};

#define CLI_INTERV_HELP                                                                     \
    "Interventions (usable together; recorded in the `interventions` attribute):\n"         \
    "  --skip-layers LIST     remove blocks, e.g. 3 or 1,5-7 (from 0): the residual\n"     \
    "                         stream passes through unchanged (ShortGPT, P3)\n"             \
    "  --rope-scale S:F       RoPE scaling linear:F, ntk:F (static NTK-aware),\n"           \
    "                         dynamic-ntk:F or yarn:F, from the model's trained window\n"   \
    "  --attn-temperature X   attention logits X * q.k / sqrt(d) (default 1)\n"             \
    "  --window W             sliding-window attention: query i sees keys i-W < j <= i\n"   \
    "                         (0: full attention, even for a windowed model)\n"            \
    "  --posvec FILE          positional vectors: HDF5 /positional (L+1, T, D) float32\n"  \
    "                         (docs/FORMAT.md), needed by --edit and --replace\n"      \
    "  --edit KIND@B:T0-T1    at boundary B (0 = embeddings, B = after block B) for\n"      \
    "                         positions T0 <= t < T1 (T1 empty: to the end), KIND:\n"       \
    "                         sub-positional (h -= p), add-positional (h += p),\n"          \
    "                         sub-basis (h -= p - u), sub-semantic (h := p); repeatable,\n" \
    "                         applied in the order given\n"                                 \
    "  --replace B:R:ALPHA[:T0]  P1's positional vector replacement at boundary B for\n"    \
    "                         t >= T0 (default 4): h := h - p[t] + ALPHA * p_interp(t/R),\n" \
    "                         p_interp interpolating the in-window vectors\n"

static inline void cli_interv_init(struct cli_interv *ci)
{
    memset(ci, 0, sizeof *ci);
    ci->window = -1;
}

/* A finite number at *s (advanced past it); dies naming opt and spec. */
static inline double cli_interv_real_(const char *opt, const char *spec, const char **s,
                                      const char *hint)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(*s, &end);
    if (errno || end == *s || !isfinite(v)) cli_die(hint, "%s '%s': expected a number at '%s'", opt, spec, *s);
    *s = end;
    return v;
}

static inline struct cli_edit *cli_interv_new_edit_(struct cli_interv *ci, const char *opt)
{
    if (ci->n_edit >= CLI_INTERV_MAX_EDITS)
        cli_die(NULL, "%s: at most %d edits (--edit and --replace together)", opt, CLI_INTERV_MAX_EDITS);
    struct cli_edit *e = &ci->edits[ci->n_edit++];
    e->p = strata_edit_default_params();
    e->open_end = false;
    return e;
}

/* --edit KIND@B:T0-T1 */
static inline void cli_interv_parse_edit_(struct cli_interv *ci, const char *spec)
{
    const char *hint = "--edit KIND@B:T0-T1, e.g. sub-positional@4:0-4 or sub-semantic@2:32- "
                       "(KIND sub-positional, add-positional, sub-basis, sub-semantic)";
    const char *at = strchr(spec, '@');
    if (!at) cli_die(hint, "--edit '%s': no '@' after the kind", spec);
    char kind[32];
    if ((size_t)(at - spec) >= sizeof kind) cli_die(hint, "--edit '%s': unknown kind", spec);
    memcpy(kind, spec, (size_t)(at - spec));
    kind[at - spec] = '\0';
    struct cli_edit *e = cli_interv_new_edit_(ci, "--edit");
    if (strata_edit_kind_parse(kind, &e->p.kind) != 0 || e->p.kind == STRATA_EDIT_REPLACE)
        cli_die(hint, "--edit '%s': unknown kind '%s'%s", spec, kind,
                e->p.kind == STRATA_EDIT_REPLACE ? " (use --replace B:R:ALPHA[:T0])" : "");
    const char *q = at + 1;
    int64_t b = cli_list_num_("--edit", spec, &q, hint);
    if (b > INT32_MAX) cli_die(hint, "--edit '%s': boundary %lld is out of range", spec, (long long)b);
    e->p.boundary = (int32_t)b;
    if (*q++ != ':') cli_die(hint, "--edit '%s': expected ':T0-T1' after the boundary", spec);
    e->p.t0 = cli_list_num_("--edit", spec, &q, hint);
    if (*q++ != '-') cli_die(hint, "--edit '%s': expected '-' after T0", spec);
    if (*q == '\0') {
        e->open_end = true;
    } else {
        e->p.t1 = cli_list_num_("--edit", spec, &q, hint);
        if (*q) cli_die(hint, "--edit '%s': unexpected '%s'", spec, q);
        if (e->p.t1 <= e->p.t0)
            cli_die(hint, "--edit '%s': positions %lld-%lld are empty", spec, (long long)e->p.t0,
                    (long long)e->p.t1);
    }
}

/* --replace B:R:ALPHA[:T0] */
static inline void cli_interv_parse_replace_(struct cli_interv *ci, const char *spec)
{
    const char *hint = "--replace B:R:ALPHA[:T0], e.g. 4:4:1 or 4:5:1.3:4 (P1's settings)";
    struct cli_edit *e = cli_interv_new_edit_(ci, "--replace");
    e->p.kind = STRATA_EDIT_REPLACE;
    e->open_end = true;
    const char *q = spec;
    int64_t b = cli_list_num_("--replace", spec, &q, hint);
    if (b > INT32_MAX) cli_die(hint, "--replace '%s': boundary %lld is out of range", spec, (long long)b);
    e->p.boundary = (int32_t)b;
    if (*q++ != ':') cli_die(hint, "--replace '%s': expected ':R' after the boundary", spec);
    e->p.ratio = cli_interv_real_("--replace", spec, &q, hint);
    if (!(e->p.ratio > 0.0)) cli_die(hint, "--replace '%s': R must be > 0", spec);
    if (*q++ != ':') cli_die(hint, "--replace '%s': expected ':ALPHA' after R", spec);
    e->p.alpha = cli_interv_real_("--replace", spec, &q, hint);
    e->p.t0 = 4;
    if (*q == ':') {
        q++;
        e->p.t0 = cli_list_num_("--replace", spec, &q, hint);
    }
    if (*q) cli_die(hint, "--replace '%s': unexpected '%s'", spec, q);
}

/* Consume argv[*i] (and its value) if it is an intervention option. */
static inline bool cli_interv_option(struct cli_interv *ci, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    if (!strcmp(a, "--skip-layers")) {
        cli_block_list("--skip-layers", cli_value(argc, argv, i),
                       "--skip-layers takes block numbers from 0, e.g. 3 or 1,5-7", &ci->skip,
                       &ci->n_skip);
    } else if (!strcmp(a, "--rope-scale")) {
        const char *v = cli_value(argc, argv, i);
        char *out = ci->rope_scale_lib;
        const size_t n = sizeof ci->rope_scale_lib;
        if (!strncmp(v, "dynamic-ntk:", 12)) /* the paper's name for HF's "dynamic" */
            snprintf(out, n, "dynamic%s", v + 11);
        else if (snprintf(out, n, "%s", v) >= (int)n)
            cli_die(NULL, "--rope-scale '%s': too long", v);
        struct strata_rope_scaling_params sp;
        if (!strchr(out, ':') || strata_rope_scaling_parse(out, 1, &sp))
            cli_die("--rope-scale linear:F, ntk:F, dynamic-ntk:F or yarn:F with F >= 1, e.g. "
                    "linear:4",
                    "--rope-scale '%s': expected TYPE:FACTOR", v);
        ci->rope_scale = v;
    } else if (!strcmp(a, "--attn-temperature")) {
        ci->attn_temperature = cli_double(a, cli_value(argc, argv, i));
        if (!(ci->attn_temperature > 0.0) || !isfinite(ci->attn_temperature))
            cli_die(NULL, "--attn-temperature %g must be finite and > 0", ci->attn_temperature);
    } else if (!strcmp(a, "--window")) {
        ci->window = cli_int(a, cli_value(argc, argv, i), 0, (int64_t)1 << 40);
    } else if (!strcmp(a, "--posvec")) {
        ci->posvec_path = cli_value(argc, argv, i);
    } else if (!strcmp(a, "--edit")) {
        cli_interv_parse_edit_(ci, cli_value(argc, argv, i));
    } else if (!strcmp(a, "--replace")) {
        cli_interv_parse_replace_(ci, cli_value(argc, argv, i));
    } else {
        return false;
    }
    return true;
}

/* After cli_model_load: check layer numbers against the model and apply
 * --rope-scale and --window to its config. */
static inline void cli_interv_apply_model(struct cli_interv *ci, struct cli_model *cm)
{
    struct strata_config c;
    cli_check(strata_config_resolve(&c, cm->model, &cm->cp), NULL);
    for (int32_t k = 0; k < ci->n_skip; k++)
        if (ci->skip[k] >= c.n_layer)
            cli_die("blocks are numbered from 0", "--skip-layers: block %d is out of range (%s has blocks 0..%d)",
                    (int)ci->skip[k], cm->model_path, (int)c.n_layer - 1);
    for (int k = 0; k < ci->n_edit; k++)
        if (ci->edits[k].p.boundary > c.n_layer)
            cli_die("boundary 0 is the embeddings, B the residual stream after block B",
                    "%s at boundary %d: out of range (%s has boundaries 0..%d)",
                    strata_edit_kind_name(ci->edits[k].p.kind), (int)ci->edits[k].p.boundary,
                    cm->model_path, (int)c.n_layer);
    if (ci->n_edit && !ci->posvec_path)
        cli_die("make one with strata-posvec from a strata-probe-hidden dump",
                "--edit and --replace need --posvec FILE");
    if (ci->rope_scale && cm->rope_scaling)
        cli_die(NULL, "give --rope-scale or --rope-scaling, not both");
    if (ci->rope_scale) {
        if (c.pos != STRATA_POS_ROPE_HALF && c.pos != STRATA_POS_ROPE_INTERLEAVED)
            cli_die("--positions rope makes it a RoPE model", "--rope-scale: %s does not use RoPE (%s)",
                    cm->model_path, strata_pos_name(c.pos));
        cli_check(strata_rope_scaling_parse(ci->rope_scale_lib, c.seq_len, &cm->cp.rope_scaling), NULL);
    }
    if (ci->window >= 0) cm->cp.sliding_window = ci->window;
    cli_check(strata_config_resolve(&c, cm->model, &cm->cp), NULL);
}

/* cp from the model overrides and the interventions (after
 * cli_interv_apply_model). */
static inline void cli_interv_ctx_params(const struct cli_interv *ci, const struct cli_model *cm,
                                         struct strata_ctx_params *cp)
{
    const struct strata_ctx_params o = cm->cp;
    cp->pos = o.pos;
    cp->rope_base = o.rope_base;
    cp->rope_scaling = o.rope_scaling;
    cp->sliding_window = o.sliding_window;
    cp->skip_layers = ci->skip;
    cp->n_skip = ci->n_skip;
    if (ci->attn_temperature > 0.0) cp->attn_scale = ci->attn_temperature;
}

/* Make the editors (first call: load --posvec, resolve open ends to seq_len)
 * and add them to ctx in the order given. */
static inline void cli_interv_attach(struct cli_interv *ci, struct strata_ctx *ctx,
                                     const struct strata_model *model, int64_t seq_len)
{
    if (ci->n_edit == 0) return;
    if (!ci->eds[0]) {
        struct strata_posvec *pv = NULL;
        cli_check(strata_posvec_load(&pv, ci->posvec_path),
                  "--posvec takes an HDF5 file with /positional (L+1, T, D) float32 (docs/FORMAT.md)");
        int64_t T_file = 0;
        strata_posvec_shape(pv, NULL, &T_file, NULL);
        const int64_t C = strata_model_config(model)->seq_len;
        ci->interp_window = C < T_file ? C : T_file;
        for (int k = 0; k < ci->n_edit; k++) {
            struct cli_edit *e = &ci->edits[k];
            if (e->open_end) e->p.t1 = seq_len;
            if (e->p.t0 >= e->p.t1)
                cli_die(NULL, "%s at boundary %d: first position %lld is beyond the %lld-token input",
                        strata_edit_kind_name(e->p.kind), (int)e->p.boundary, (long long)e->p.t0,
                        (long long)seq_len);
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

/* The interventions as a JSON object (every key present; null = not
 * given). Caller free()s. */
static inline char *cli_interv_json(const struct cli_interv *ci, const struct cli_model *cm)
{
    cJSON *j = cJSON_CreateObject();
    cJSON *sk = cJSON_AddArrayToObject(j, "skip_layers");
    for (int32_t k = 0; k < ci->n_skip; k++) cJSON_AddItemToArray(sk, cJSON_CreateNumber(ci->skip[k]));
    if (cm && cm->rope_base > 0) cJSON_AddNumberToObject(j, "rope_base", cm->rope_base);
    else cJSON_AddNullToObject(j, "rope_base");
    if (ci->rope_scale) cJSON_AddStringToObject(j, "rope_scale", ci->rope_scale_lib);
    else if (cm && cm->rope_scaling) cJSON_AddStringToObject(j, "rope_scale", cm->rope_scaling);
    else cJSON_AddNullToObject(j, "rope_scale");
    cJSON_AddNumberToObject(j, "attn_temperature", ci->attn_temperature > 0 ? ci->attn_temperature : 1.0);
    if (ci->window >= 0) cJSON_AddNumberToObject(j, "window", (double)ci->window);
    else cJSON_AddNullToObject(j, "window");
    if (ci->posvec_path) cJSON_AddStringToObject(j, "posvec", ci->posvec_path);
    else cJSON_AddNullToObject(j, "posvec");
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
        if (ci->edits[k].open_end && !ci->eds[k]) cJSON_AddStringToObject(o, "t1", "end");
        else cJSON_AddNumberToObject(o, "t1", (double)p->t1);
        if (p->kind == STRATA_EDIT_REPLACE) {
            cJSON_AddNumberToObject(o, "ratio", p->ratio);
            cJSON_AddNumberToObject(o, "alpha", p->alpha);
            cJSON_AddNumberToObject(o, "interp_window", (double)ci->interp_window);
        }
        cJSON_AddItemToArray(ed, o);
    }
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s) cli_die(NULL, "out of memory");
    return s;
}

/* After the last context using the editors is freed. */
static inline void cli_interv_free(struct cli_interv *ci)
{
    for (int k = 0; k < ci->n_edit; k++) strata_editor_free(ci->eds[k]);
    free(ci->skip);
    cli_interv_init(ci);
}

#endif
