/* runner.c — part of strata-posvec (analyzers/posvec.c, docs/POSVEC.md):
 * the in-process model runs of attention, beyond-window, extension and
 * methods. Every configuration (RoPE scaling, temperature, window, an
 * editor) gets its own model handle and runs in lockstep with the others on
 * the same samples -- drawn as strata-probe-ppl draws them -- so one
 * forward pass per sample and configuration gives NLL, attention statistics
 * and hidden states together.
 *
 * Legend: L blocks (L+1 boundaries b), T positions, D width, H heads,
 * N samples, C the trained window.
 */
#include "posvec.h"

static bool run_wants(void *user, int32_t layer, enum strata_site site)
{
    const struct run *r = user;
    (void)layer;
    return site == STRATA_SITE_ATTN_PROBS || (r->logits && site == STRATA_SITE_ATTN_LOGITS);
}

static int run_observe(void *user, const struct strata_view *v)
{
    struct run *r = user;
    const int64_t T = r->T, l = v->layer;
    for (int64_t a = 0; a < v->n_rows; a++) {
        const int64_t i = v->row0 + a;
        const float *row = v->data + a * v->ld;
        int64_t j0 = v->col0;
        if (r->W > 0 && i - r->W + 1 > j0) j0 = i - r->W + 1;
        if (v->site == STRATA_SITE_ATTN_PROBS) {
            if (v->col0 == 0 && j0 == 0) r->sink[l * T + i] += (double)row[0];
            for (int64_t j = j0; j <= i; j++) {
                r->pd[l * T + i - j] += (double)row[j - v->col0];
                r->pdn[l * T + i - j] += 1;
            }
        } else {
            const int64_t o = (i >= r->C ? r->L * T : 0) + l * T;
            for (int64_t j = j0; j <= i; j++) {
                if (!isfinite(row[j - v->col0])) continue;
                r->lg[o + i - j] += (double)row[j - v->col0];
                r->lgn[o + i - j] += 1;
            }
        }
    }
    return 0;
}

void runner_init(struct runner *rn)
{
    memset(rn, 0, sizeof *rn);
    rn->sep = "<|endoftext|>";
    rn->N = 16;
}

bool runner_option(struct runner *rn, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    if (cli_model_option(&rn->cm, argc, argv, i)) return true;
    if (!strcmp(a, "--corpus")) rn->corpus = cli_value(argc, argv, i);
    else if (!strcmp(a, "--sep")) rn->sep = cli_value(argc, argv, i);
    else if (!strcmp(a, "--samples")) rn->N = cli_int(a, cli_value(argc, argv, i), 1, 1 << 24);
    else if (!strcmp(a, "--seq-len")) rn->T = cli_int(a, cli_value(argc, argv, i), 2, 1 << 24);
    else if (!strcmp(a, "--seed")) rn->seed = (uint64_t)cli_int(a, cli_value(argc, argv, i), 0, INT64_MAX);
    else if (!strcmp(a, "--pv")) rn->pv_path = cli_value(argc, argv, i);
    else return false;
    return true;
}

void runner_load(struct runner *rn)
{
    if (!rn->corpus) cli_die("see --help", "--corpus is required");
    cli_model_load(&rn->cm, true);
    cli_check(strata_corpus_load(&rn->corp, rn->corpus, rn->sep), "check --corpus and --sep");
}

/* Kinds of configuration names: "direct", "linear:F", "ntk:F",
 * "dynamic-ntk:F", "yarn:F", "temp:X", "window:W", "wext:R:X" (window R*C,
 * temperature X). */
void run_parse(struct run *r, const char *spec, int64_t C)
{
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", spec);
    r->temp = 1.0;
    r->window = -1;
    const char *hint = "methods: direct, linear:F, ntk:F, dynamic-ntk:F, yarn:F, temp:X, window:W, "
                       "wext:R:X";
    if (!strcmp(spec, "direct")) return;
    if (!strncmp(spec, "temp:", 5)) r->temp = cli_double(spec, spec + 5);
    else if (!strncmp(spec, "window:", 7)) r->window = cli_int(spec, spec + 7, 1, 1 << 30);
    else if (!strncmp(spec, "wext:", 5)) {
        char *end;
        double rr = strtod(spec + 5, &end);
        if (*end != ':' || !(rr > 0)) cli_die(hint, "'%s': expected wext:R:X", spec);
        r->window = (int64_t)llround(rr * (double)C);
        r->temp = cli_double(spec, end + 1);
    } else {
        if (!strncmp(spec, "dynamic-ntk:", 12)) snprintf(r->scale, sizeof r->scale, "dynamic%s", spec + 11);
        else snprintf(r->scale, sizeof r->scale, "%s", spec);
        struct strata_rope_scaling_params sp;
        if (strata_rope_scaling_parse(r->scale, C, &sp)) cli_die(hint, "unknown method '%s'", spec);
    }
    if (!(r->temp > 0) || !isfinite(r->temp)) cli_die(hint, "'%s': temperature must be > 0", spec);
}

/* Run every configuration on the same N samples of T tokens. */
void runner_go(struct runner *rn, struct run *runs, int n_run, bool logits, bool hidden)
{
    struct strata_config c0 = *strata_model_config(rn->cm.model);
    const int64_t L = c0.n_layer, T = rn->T, D = c0.dim, C = c0.seq_len;
    struct strata_posvec *pv = NULL;
    for (int k = 0; k < n_run; k++) { /* one model, a context per configuration */
        struct run *r = &runs[k];
        struct strata_ctx_params cp = cli_model_ctx_params(&rn->cm);
        if (r->scale[0]) cli_check(strata_rope_scaling_parse(r->scale, C, &cp.rope_scaling), NULL);
        if (r->window >= 0) cp.sliding_window = r->window;
        cp.n_ctx = T;
        cp.attn_scale = r->temp;
        cli_check(strata_ctx_create(&r->ctx, rn->cm.model, &cp), NULL);
        const struct strata_config c = *strata_ctx_config(r->ctx);
        if (r->has_edit) {
            if (!pv) cli_check(strata_posvec_load(&pv, rn->pv_path), "--pv takes strata-posvec decompose output");
            cli_check(strata_editor_create(&r->editor, rn->cm.model, pv, &r->ed),
                      "--pv must cover every position of the input: decompose a dump of this length");
            struct strata_observer e = strata_editor_observer(r->editor);
            cli_check(strata_ctx_add_editor(r->ctx, &e), NULL);
        }
        r->L = L, r->H = c.n_head, r->T = T, r->C = C, r->W = c.sliding_window, r->logits = logits;
        struct strata_observer o = {.wants = run_wants, .observe = run_observe, .user = r};
        cli_check(strata_ctx_add_observer(r->ctx, &o), NULL);
        r->nll = xalloc((size_t)T * sizeof(double));
        r->sink = xalloc((size_t)(L * T) * sizeof(double));
        r->pd = xalloc((size_t)(L * T) * sizeof(double));
        r->pdn = xalloc((size_t)(L * T) * sizeof(double));
        r->lg = xalloc((size_t)(2 * L * T) * sizeof(double));
        r->lgn = xalloc((size_t)(2 * L * T) * sizeof(double));
        r->hcos = xalloc((size_t)(L + 1) * sizeof(double));
        if (hidden) {
            r->hid = xalloc((size_t)((L + 1) * T * D) * sizeof(float));
            r->cap = (struct strata_hidden_capture){.hidden = r->hid, .T = T, .D = D};
            struct strata_observer ho = strata_observer_hidden(&r->cap);
            cli_check(strata_ctx_add_observer(r->ctx, &ho), NULL);
            cli_check(strata_pvsum_init(&r->acc, L + 1, T, D), NULL);
        }
    }
    strata_posvec_free(pv);
    struct strata_samples smp;
    cli_check(strata_samples_build(&smp, rn->corp, rn->cm.tok, rn->N, T, rn->seed),
              "use fewer --samples or a shorter --seq-len, or a larger corpus");
    double *nll = xalloc((size_t)T * sizeof(double));
    struct cli_progress prog;
    cli_progress_start(&prog);
    for (int64_t s = 0; s < rn->N; s++) {
        for (int k = 0; k < n_run; k++) {
            struct run *r = &runs[k];
            cli_check(strata_forward_nll(r->ctx, nll, smp.tokens + s * T, T), NULL);
            for (int64_t t = 0; t < T - 1; t++) r->nll[t] += nll[t];
            if (!hidden) continue;
            for (int64_t b = 0; b <= L; b++) {
                strata_pvsum_add_layer(&r->acc, b, r->hid + b * T * D);
                for (int64_t t = 0; t < T; t++)
                    r->hcos[b] += strata_pv_cos(r->hid + (b * T + t) * D, runs[0].hid + (b * T + t) * D, D);
            }
            strata_pvsum_count(&r->acc, 1);
        }
        cli_progress(&prog, s + 1, rn->N, (s + 1) * T * n_run, s + 1 == rn->N);
    }
    free(nll);
    strata_samples_free(&smp);
}

void runs_free(struct run *runs, int n_run)
{
    for (int k = 0; k < n_run; k++) {
        struct run *r = &runs[k];
        strata_ctx_free(r->ctx);
        strata_editor_free(r->editor);
        free(r->hid), free(r->nll), free(r->sink), free(r->pd), free(r->pdn);
        free(r->lg), free(r->lgn), free(r->hcos);
        strata_pvsum_free(&r->acc);
    }
}

/* Mean NLL over prediction columns t0 <= t < t1 (column t predicts token t+1). */
double run_nll(const struct run *r, int64_t N, int64_t t0, int64_t t1)
{
    if (t1 > r->T - 1) t1 = r->T - 1;
    double s = 0;
    for (int64_t t = t0; t < t1; t++) s += r->nll[t];
    return t1 > t0 ? s / (double)(N * (t1 - t0)) : DNAN;
}

/* Mean sink mass of block l over queries q0 <= i < q1 (all heads). */
double run_sink(const struct run *r, int64_t N, int64_t l, int64_t q0, int64_t q1)
{
    double s = 0;
    for (int64_t i = q0; i < q1 && i < r->T; i++) s += r->sink[l * r->T + i];
    return q1 > q0 ? s / (double)(N * r->H * (q1 - q0)) : DNAN;
}

/* Pearson correlation of the mean logit against distance 0 .. C-1 for
 * queries inside the window and beyond it (P1's logit similarity). */
double run_logit_sim(const struct run *r, int64_t l)
{
    const int64_t T = r->T, o = r->L * T + l * T;
    double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0, n = 0;
    for (int64_t m = 0; m < r->C && m < T; m++) {
        if (r->lgn[l * T + m] == 0 || r->lgn[o + m] == 0) continue;
        const double a = r->lg[l * T + m] / r->lgn[l * T + m], b = r->lg[o + m] / r->lgn[o + m];
        sa += a, sb += b, saa += a * a, sbb += b * b, sab += a * b, n += 1;
    }
    if (n < 2) return DNAN;
    const double va = saa - sa * sa / n, vb = sbb - sb * sb / n;
    return va > 0 && vb > 0 ? (sab - sa * sb / n) / sqrt(va * vb) : DNAN;
}

/* For each t of x (Tx, D), the best match among the first C rows of y:
 * best (Tx), cos (Tx). */
void best_match(int32_t *best, double *cos, const float *x, int64_t Tx, const float *y,
                       int64_t C, int64_t D)
{
    for (int64_t t = 0; t < Tx; t++) {
        best[t] = 0, cos[t] = -2;
        for (int64_t u = 0; u < C; u++) {
            double c = strata_pv_cos(x + t * D, y + u * D, D);
            if (c > cos[t]) cos[t] = c, best[t] = (int32_t)u;
        }
    }
}
