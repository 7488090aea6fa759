/* runner.c — part of strata-posvec (analyzers/posvec.c, docs/POSVEC.md):
 * the in-process model runs of attention, beyond-window, extension and
 * methods. The model is loaded once; every configuration (RoPE scaling,
 * temperature, window, an editor) is a context of it with its own settings,
 * and all run on the same samples (in lockstep when hidden states are
 * compared with run 0, else one context at a time) -- drawn by the command-line
 * layer's sampling (lib/cli/sampling.c), exactly as strata-probe-ppl draws
 * them -- so one forward pass per sample and configuration gives NLL,
 * attention statistics (lib/attnred.c, strata-probe-attn's reductions) and
 * hidden states together.
 *
 * Legend: L blocks (L+1 boundaries b), T positions, D width, H heads,
 * N samples, C the trained window.
 */
#include "posvec.h"

char *posvec_cmdline = NULL;

struct parse_ctx {
    struct runner *rn;
    cli_handler handler;
    void *user;
};

static int runner_option(void *user, int key, const char *arg, struct cli_error *e)
{
    struct parse_ctx *pc = user;
    if (key == OPT_PV) {
        pc->rn->pv_path = arg;
        return 0;
    }
    return pc->handler ? pc->handler(pc->user, key, arg, e)
                       : cli_fail(e, NULL, "option key %d has no handler", key);
}

void runner_parse(struct runner *rn, const struct cli_spec *spec, int argc, char **argv,
                  cli_handler handler, void *user)
{
    struct parse_ctx pc = {rn, handler, user};
    if (posvec_cmdline) rn->a.command_line = cli_strdup(posvec_cmdline);
    cli_parse(&rn->a, spec, argc, argv, runner_option, &pc);
    rn->N = rn->a.sampling.n_samples;
    rn->dir = rn->a.out_path;
    char hint[128];
    snprintf(hint, sizeof hint, "see %s --help", spec->prog);
    if (!rn->dir || !rn->pv_path) cli_usage_die(hint, "need --pv PV.h5 and -o DIR");
    cli_require(&rn->a, CLI_REQ_MODEL | CLI_REQ_CORPUS);
}

void runner_load(struct runner *rn)
{
    cli_model_load(&rn->a, true);
    rn->corp = cli_sampling_open(&rn->a);
}

void runner_free(struct runner *rn)
{
    strata_corpus_free(rn->corp);
    cli_args_free(&rn->a);
}

const struct strata_config *runner_config(const struct runner *rn)
{
    return &rn->a.model.cfg;
}

/* The attention window W the model was trained with: its sliding window,
 * or the trained context C for a full-attention model. P1's attention
 * window extension widens this window, so wext:R:X means R*W. */
int64_t run_model_window(const struct strata_config *c)
{
    return c->sliding_window > 0 ? c->sliding_window : c->seq_len;
}

/* Kinds of configuration names: "direct", RoPE scaling "TYPE:F" as
 * --rope-scaling takes it (linear, ntk, dynamic or dynamic-ntk, yarn,
 * llama3), "temp:X", "window:W", "wext:R:X" (window R*W, temperature X;
 * W = run_model_window). RoPE scalings extend from the trained context C. */
void run_parse(struct run *r, const char *spec, const struct strata_config *c)
{
    memset(r, 0, sizeof *r);
    r->name = cli_strdup(spec);
    r->temp = 1.0;
    r->window = -1;
    const char *hint = "methods: direct, linear:F, ntk:F, dynamic:F (dynamic-ntk:F), yarn:F, "
                       "llama3:F, temp:X, window:W, wext:R:X";
    if (!strcmp(spec, "direct")) return;
    if (!strncmp(spec, "temp:", 5)) {
        r->temp = cli_double(spec, spec + 5);
    } else if (!strncmp(spec, "window:", 7)) {
        r->window = cli_int(spec, spec + 7, 1, (int64_t)1 << 40);
    } else if (!strncmp(spec, "wext:", 5)) {
        char *end;
        double rr = strtod(spec + 5, &end);
        if (*end != ':' || !(rr > 0) || !isfinite(rr)) cli_usage_die(hint, "'%s': expected wext:R:X", spec);
        r->window = (int64_t)llround(rr * (double)run_model_window(c));
        r->temp = cli_double(spec, end + 1);
    } else {
        struct cli_error e;
        if (cli_parse_rope_scaling(&r->sc, spec, &e)) cli_usage_die(hint, "unknown method '%s'", spec);
        r->sc.original_max = c->seq_len;
        r->has_scale = true;
    }
    if (!(r->temp > 0) || !isfinite(r->temp)) cli_usage_die(hint, "'%s': temperature must be > 0", spec);
}

/* Sums over heads of the run's attention reductions: sink on key 0 by
 * query, probability against distance (all queries), logit against
 * distance (queries < C and >= C). */
static void collect_attention(struct run *r)
{
    const int64_t L = r->L, H = r->H, T = r->T;
    double *P = xalloc((size_t)T * sizeof *P), *S = xalloc((size_t)T * sizeof *S);
    double *N = xalloc((size_t)T * sizeof *N);
    for (int64_t l = 0; l < L; l++)
        for (int64_t h = 0; h < H; h++) {
            cli_check(strata_attnred_query(r->red, l, h, NULL, NULL, P), NULL);
            for (int64_t i = 0; i < T; i++) r->sink[l * T + i] += P[i];
            cli_check(strata_attnred_dist(r->red, l, h, -1, P, NULL, N), NULL);
            for (int64_t m = 0; m < T; m++) r->pd[l * T + m] += P[m], r->pdn[l * T + m] += N[m];
            for (int part = 0; part < 2; part++) {
                cli_check(strata_attnred_dist(r->red, l, h, part, NULL, S, N), NULL);
                const int64_t o = part * L * T + l * T;
                for (int64_t m = 0; m < T; m++) r->lg[o + m] += S[m], r->lgn[o + m] += N[m];
            }
        }
    free(P), free(S), free(N);
}

/* Make run r's context (and editor, reductions, hidden capture) and its
 * sums for samples of T tokens. pv: the PV file, loaded on first need. */
static void run_setup(struct runner *rn, struct run *r, int64_t T, bool attn, bool hidden,
                      struct strata_posvec **pv)
{
    const struct strata_config *c0 = runner_config(rn);
    const int64_t L = c0->n_layer, D = c0->dim, C = c0->seq_len;
    static const int32_t sink_k[1] = {1};
    struct strata_ctx_params cp = cli_ctx_params(&rn->a, T);
    if (r->has_scale) cp.rope_scaling = r->sc;
    if (r->window >= 0) cp.sliding_window = r->window;
    cp.attn_scale = r->temp;
    cli_check(strata_ctx_create(&r->ctx, rn->a.model.model, &cp), NULL);
    const struct strata_config c = *strata_ctx_config(r->ctx);
    if (r->has_edit) {
        if (!*pv) cli_check(strata_posvec_load(pv, rn->pv_path), "--pv takes strata-posvec decompose output");
        cli_check(strata_editor_create(&r->editor, rn->a.model.model, *pv, &r->ed),
                  "--pv must cover every position of the input: decompose a dump of this length");
        struct strata_observer e = strata_editor_observer(r->editor);
        cli_check(strata_ctx_add_editor(r->ctx, &e), NULL);
    }
    r->L = L, r->H = c.n_head, r->T = T, r->C = C;
    if (attn) {
        struct strata_attnred_params ap = strata_attnred_default_params();
        ap.seq_len = T;
        ap.attn_block = cp.attn_block;
        ap.n_layer = (int32_t)L;
        ap.n_head = c.n_head;
        ap.sink_k = sink_k;
        ap.n_sink = 1;
        ap.split = C;
        cli_check(strata_attnred_create(&r->red, &ap), NULL);
        struct strata_observer o = strata_attnred_observer(r->red);
        cli_check(strata_ctx_add_observer(r->ctx, &o), NULL);
    }
    if (!r->nll) {
        r->nll = xalloc((size_t)T * sizeof(double));
        r->sink = xalloc((size_t)(L * T) * sizeof(double));
        r->pd = xalloc((size_t)(L * T) * sizeof(double));
        r->pdn = xalloc((size_t)(L * T) * sizeof(double));
        r->lg = xalloc((size_t)(2 * L * T) * sizeof(double));
        r->lgn = xalloc((size_t)(2 * L * T) * sizeof(double));
        r->hcos = xalloc((size_t)(L + 1) * sizeof(double));
    }
    if (hidden) {
        r->hid = xalloc((size_t)((L + 1) * T * D) * sizeof(float));
        r->cap = (struct strata_hidden_capture){.hidden = r->hid, .T = T, .D = D};
        struct strata_observer ho = strata_observer_hidden(&r->cap);
        cli_check(strata_ctx_add_observer(r->ctx, &ho), NULL);
        cli_check(strata_pvsum_init(&r->acc, L + 1, T, D), NULL);
    }
}

/* One forward pass of run r on tokens (T): NLL and reductions summed. */
static void run_sample(struct run *r, double *nll, const int32_t *tokens, int64_t T)
{
    int rc = strata_forward_nll(r->ctx, nll, tokens, T);
    if (rc == STRATA_E_OBSERVER && r->red && strata_attnred_error(r->red)[0])
        cli_die(NULL, "attention reductions: %s", strata_attnred_error(r->red));
    cli_check(rc, NULL);
    if (r->red) cli_check(strata_attnred_commit(r->red), NULL);
    for (int64_t t = 0; t < T - 1; t++) r->nll[t] += nll[t];
}

/* Collect the reductions and drop what only the runs needed: context,
 * editor, reductions (the sums stay). */
static void run_finish(struct run *r)
{
    if (r->red) collect_attention(r);
    strata_attnred_free(r->red);
    strata_editor_free(r->editor);
    strata_ctx_free(r->ctx);
    r->red = NULL, r->editor = NULL, r->ctx = NULL;
}

/* Run every configuration on the same N samples of T tokens. Without
 * hidden states the configurations are independent and run one after the
 * other, one context at a time (a grid of 125 settings holds one context's
 * memory and threads, not 125); with them, in lockstep, since every run
 * compares its hidden states with run 0's on the same sample. */
void runner_go(struct runner *rn, struct run *runs, int n_run, bool attn, bool hidden)
{
    const struct strata_config *c0 = runner_config(rn);
    const int64_t L = c0->n_layer, T = rn->T, D = c0->dim;
    struct strata_posvec *pv = NULL;
    /* the probes' sampling: draws --sample-offset .. of the seeded order */
    struct strata_samples smp;
    const int64_t T_opt = rn->a.sampling.seq_len;
    rn->a.sampling.seq_len = T;
    cli_sampling_build(&rn->a, rn->corp, &smp);
    rn->a.sampling.seq_len = T_opt;
    double *nll = xalloc((size_t)T * sizeof(double));
    struct cli_progress prog;
    cli_progress_start(&prog, NULL, hidden ? rn->N : n_run * rn->N);
    if (!hidden) {
        for (int k = 0; k < n_run; k++) {
            run_setup(rn, &runs[k], T, attn, false, &pv);
            for (int64_t s = 0; s < rn->N; s++) {
                run_sample(&runs[k], nll, smp.tokens + s * T, T);
                const int64_t done = k * rn->N + s + 1, total = n_run * rn->N;
                cli_progress(&prog, done, total, done * T, done == total);
            }
            run_finish(&runs[k]);
        }
    } else {
        for (int k = 0; k < n_run; k++) run_setup(rn, &runs[k], T, attn, true, &pv);
        for (int64_t s = 0; s < rn->N; s++) {
            for (int k = 0; k < n_run; k++) {
                struct run *r = &runs[k];
                run_sample(r, nll, smp.tokens + s * T, T);
                for (int64_t b = 0; b <= L; b++) {
                    strata_pvsum_add_layer(&r->acc, b, r->hid + b * T * D);
                    for (int64_t t = 0; t < T; t++)
                        r->hcos[b] += strata_pv_cos(r->hid + (b * T + t) * D, runs[0].hid + (b * T + t) * D, D);
                }
                strata_pvsum_count(&r->acc, 1);
            }
            cli_progress(&prog, s + 1, rn->N, (s + 1) * T * n_run, s + 1 == rn->N);
        }
        for (int k = 0; k < n_run; k++) run_finish(&runs[k]);
    }
    strata_posvec_free(pv);
    free(nll);
    strata_samples_free(&smp);
}

void runs_free(struct run *runs, int n_run)
{
    for (int k = 0; k < n_run; k++) {
        struct run *r = &runs[k];
        strata_ctx_free(r->ctx);
        strata_editor_free(r->editor);
        strata_attnred_free(r->red);
        free(r->hid), free(r->nll), free(r->sink), free(r->pd), free(r->pdn);
        free(r->lg), free(r->lgn), free(r->hcos), free(r->name);
        strata_pvsum_free(&r->acc);
        memset(r, 0, sizeof *r);
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
