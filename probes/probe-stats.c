/* strata-probe-stats — run a model over fixed-length samples of a corpus and
 * keep mergeable sufficient statistics instead of raw hidden states
 * (docs/FORMAT.md, strata-stats/1; issue 12). Llama-2-7B keeps 33 x 4096
 * floats per token: a P1 study over 1000 x 4096 tokens is a 2.2 TB dump,
 * while its statistics are the sums over samples, (Lk, P, D) doubles.
 *   P1 (positional vectors): per kept boundary and position, the sum over
 *      samples of h and of |h|^2, and the count (strata_pvsum);
 *   P3 (Block Influence): per sample and block, the mean over the kept
 *      positions of each metric strata-blockinf reports (and the value at
 *      the last position), computed exactly as strata-blockinf computes it
 *      from a dump, so the bootstrap over samples follows;
 *   P2 (empirical decay): strata-probe-attn's attention reductions as sums.
 * strata-blockinf, strata-posvec decompose and strata-decay empirical read
 * the file wherever they read a dump / attention file. Papers:
 * ../shared/docs/PAPERS.md.
 *
 * Streaming: the observer sees one boundary at a time and keeps a ring of
 * max(span)+1 boundaries of (P, D) floats, so memory is the sums plus a few
 * boundaries, whatever N. The file is written as OUT.h5.partial; the sums
 * are saved every --checkpoint seconds, on Ctrl-C and at the end; --resume
 * continues a .partial and gives the file an uninterrupted run gives.
 * Under mpirun -n R: cyclic rounds (cli_rounds_*, lib/cli/cli.h), each rank
 * sums its own samples, the P3 rows are gathered and the sums reduced to rank
 * 0, which alone writes the single-process file (docs/FORMAT.md).
 * `strata-probe-stats merge A.h5 B.h5 ... -o OUT.h5` merges files of
 * disjoint sample ranges into the file of one pass over all of them.
 *
 * Legend: N samples, L blocks, Lk kept boundaries, P kept positions,
 * D width, T tokens, K Block Influence rows, Ls/Hs attention blocks/heads. */
#include "cli/cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { OPT_LAYERS = CLI_KEY_PROG, OPT_POSITIONS, OPT_STATS, OPT_ANGULAR_N, OPT_ATTN_LAYERS,
       OPT_HEADS, OPT_SINK_K, OPT_CHECKPOINT, OPT_ALLOW_PARTIAL };

static const struct cli_opt opts[] = {
    {"layers", CLI_ARG, OPT_LAYERS, "LIST",
     "residual boundaries 0..L to keep, e.g. 0,4,8-12 (default all): the P1 sums\n"
     "and the blocks Block Influence can score (as strata-probe-hidden --layers)"},
    {"positions", CLI_ARG, OPT_POSITIONS, "LIST",
     "positions to keep, e.g. 0-63,64-4095:16 (entries >= T dropped; default all)"},
    {"stats", CLI_ARG, OPT_STATS, "LIST",
     "what to keep: posvec (P1 sums), blockinf (P3 per-sample means), attn (P2\n"
     "attention reductions); default posvec,blockinf,attn"},
    {"angular-n", CLI_ARG, OPT_ANGULAR_N, "LIST",
     "spans n of the angular distance X_l vs X_{l+n} (default 1; e.g. 1-4)"},
    {"attn-layers", CLI_ARG, OPT_ATTN_LAYERS, "LIST", "attn: blocks (default all)"},
    {"heads", CLI_ARG, OPT_HEADS, "LIST", "attn: query heads (default all)"},
    {"sink-k", CLI_ARG, OPT_SINK_K, "LIST", "attn: sink widths k (default 1,4)"},
    {"checkpoint", CLI_ARG, OPT_CHECKPOINT, "SEC",
     "save the sums to OUT.h5.partial every SEC seconds (default 60)"},
    {0}};

static const struct cli_spec spec = {
    .prog = "strata-probe-stats",
    .synopsis = "--model M [--tokenizer TOK] --corpus PATH -o OUT.h5 [options]\n"
                "       strata-probe-stats merge A.h5 B.h5 [...] -o OUT.h5",
    .about = "Streaming statistics (docs/FORMAT.md, strata-stats/1) instead of raw hidden\n"
             "states: P1 sums per kept boundary and position, P3 per-sample Block Influence\n"
             "means (bi, angular, relmag, bi-attn, bi-mlp), P2 attention reductions.\n"
             "strata-blockinf, strata-posvec decompose and strata-decay empirical read it\n"
             "wherever they read a dump. merge: files of disjoint sample ranges (e.g.\n"
             "--sample-offset 0 and N) into one equal to one pass over both.\n",
    .groups = CLI_G_MODEL | CLI_G_INTERV | CLI_G_SAMPLING | CLI_G_OUTPUT | CLI_G_RESUME,
    .opts = opts,
    .output_help = "output; written as OUT.h5.partial and renamed when complete",
    .epilog = "Samples are drawn as by strata-probe-hidden (the same options give the same\n"
              "samples). Ctrl-C or SIGTERM stops the current sample and leaves\n"
              "OUT.h5.partial with the statistics of complete samples (all completed ones,\n"
              "or with posvec kept and a pass stopped half-way, those of the last\n"
              "checkpoint); --resume continues it. Under mpirun -n R the samples are dealt\n"
              "out to the ranks in turn and rank 0 writes the one file a plain run writes\n"
              "(sums to float64 rounding).\n",
};

struct stats_opts {
    const char *layers_s, *positions_s, *stats_s, *angular_s, *attn_layers_s, *heads_s, *sink_s;
    double checkpoint;
};

static int stats_option(void *user, int key, const char *arg, struct cli_error *e)
{
    struct stats_opts *o = user;
    switch (key) {
    case OPT_LAYERS: o->layers_s = arg; return 0;
    case OPT_POSITIONS: o->positions_s = arg; return 0;
    case OPT_STATS: o->stats_s = arg; return 0;
    case OPT_ANGULAR_N: o->angular_s = arg; return 0;
    case OPT_ATTN_LAYERS: o->attn_layers_s = arg; return 0;
    case OPT_HEADS: o->heads_s = arg; return 0;
    case OPT_SINK_K: o->sink_s = arg; return 0;
    case OPT_CHECKPOINT: return cli_parse_double(&o->checkpoint, "--checkpoint", arg, 0, 1e9, e);
    }
    return cli_fail(e, NULL, "option key %d has no handler", key);
}

/* ------------------------------------------------------------ observer */

/* Sees the residual stream at the kept boundaries and the block outputs of
 * the kept blocks, one at a time, and adds them into st at row `row`. */
struct sobs {
    struct strata_stats *st;
    int64_t L, P, D, R;   /* R: ring length, max span + 1 */
    const int32_t *pos;   /* (P) */
    int32_t *slot;        /* (L+1) kept index of boundary b, or -1 */
    float *ring;          /* (R, P, D) the last kept boundaries, slot b % R */
    float *attn, *mlp;    /* (P, D) block outputs of the current block (0 if skipped) */
    int64_t row;          /* the sample being reduced */
    char err[300];
};

static bool sobs_wants(void *user, int32_t layer, enum strata_site site)
{
    const struct sobs *o = user;
    const bool bi = o->st->n_bi > 0;
    switch (site) {
    case STRATA_SITE_RESID_PRE: return layer == 0 && o->slot[0] >= 0;
    case STRATA_SITE_RESID_POST: return o->slot[layer + 1] >= 0 || (bi && o->slot[layer] >= 0);
    case STRATA_SITE_ATTN_OUT:
    case STRATA_SITE_MLP_OUT: return bi && o->slot[layer] >= 0;
    default: return false;
    }
}

/* Copy the kept positions of a (T, D) view into dst (P, D); false (and err)
 * on a non-finite value. */
static bool take(struct sobs *o, float *dst, const struct strata_view *v, const char *what,
                 int64_t id)
{
    for (int64_t i = 0; i < o->P; i++) {
        const int64_t t = o->pos[i] - v->row0;
        if (t < 0 || t >= v->n_rows) continue;
        const float *src = v->data + t * v->ld;
        for (int64_t k = 0; k < o->D; k++)
            if (!isfinite(src[k])) {
                snprintf(o->err, sizeof o->err, "non-finite %s %lld at sample %lld, position %d",
                         what, (long long)id, (long long)o->row, (int)o->pos[i]);
                return false;
            }
        memcpy(dst + i * o->D, src, (size_t)o->D * sizeof(float));
    }
    return true;
}

/* Row k of the Block Influence rows for block l: the per-token metric over
 * the kept positions in order, summed in double and divided by P -- the
 * arithmetic of strata-blockinf on a dump -- and the last position's value. */
static bool score(struct sobs *o, int64_t k, int64_t l, const float *x, const float *y)
{
    struct strata_stats *st = o->st;
    const int64_t P = o->P, D = o->D;
    const enum strata_bi_metric m = (enum strata_bi_metric)st->bi_metric[k];
    double sum = 0, v = 0;
    for (int64_t t = 0; t < P; t++) {
        if (strata_bi_token(&v, m, x + t * D, y ? y + t * D : NULL, o->attn + t * D,
                            o->mlp + t * D, D) != 0) {
            snprintf(o->err, sizeof o->err, "%s undefined at sample %lld, block %lld, position %d "
                     "(a zero or non-finite hidden state)", strata_bi_metric_name(m),
                     (long long)o->row, (long long)l, (int)o->pos[t]);
            return false;
        }
        sum += v;
    }
    const int64_t i = (o->row * st->n_bi + k) * o->L + l;
    st->bi_mean[i] = sum / (double)P;
    st->bi_last[i] = v;
    return true;
}

static float *ring_at(const struct sobs *o, int64_t b)
{
    return o->ring + (b % o->R) * o->P * o->D;
}

static int sobs_observe(void *user, const struct strata_view *v)
{
    struct sobs *o = user;
    struct strata_stats *st = o->st;
    const int64_t PD = o->P * o->D;
    if (v->site == STRATA_SITE_ATTN_OUT) return take(o, o->attn, v, "attn_out of block", v->layer) ? 0 : 1;
    if (v->site == STRATA_SITE_MLP_OUT) return take(o, o->mlp, v, "mlp_out of block", v->layer) ? 0 : 1;
    const int64_t b = v->site == STRATA_SITE_RESID_PRE ? 0 : v->layer + 1;
    if (v->site == STRATA_SITE_RESID_POST && st->n_bi > 0 && o->slot[b - 1] >= 0) {
        /* the sub-block scores of block b-1: its input and its two outputs */
        for (int64_t k = 0; k < st->n_bi; k++)
            if (st->bi_metric[k] >= STRATA_BI_RELMAG && !score(o, k, b - 1, ring_at(o, b - 1), NULL))
                return 1;
        memset(o->attn, 0, (size_t)PD * sizeof(float));
        memset(o->mlp, 0, (size_t)PD * sizeof(float));
    }
    if (o->slot[b] < 0) return 0;
    float *cur = ring_at(o, b);
    if (!take(o, cur, v, "hidden state at boundary", b)) return 1;
    if (st->has_posvec) strata_pvsum_add_layer(&st->pv, o->slot[b], cur);
    for (int64_t k = 0; k < st->n_bi; k++) {
        const int64_t n = st->bi_metric[k] == STRATA_BI_ANGULAR ? st->bi_span[k] : 1;
        if (st->bi_metric[k] >= STRATA_BI_RELMAG || b < n || o->slot[b - n] < 0) continue;
        if (!score(o, k, b - n, ring_at(o, b - n), cur)) return 1;
    }
    return 0;
}

/* P2: strata-probe-attn's reductions. A fresh reducer per sample, so its
 * run sums are exactly the sample's, added here in sample order: the same
 * additions strata_attnred_commit makes over a run, and a resumed run
 * continues them from the saved sums. */
struct aobs {
    struct strata_attnred_params rp;
    struct strata_attnred *red;
    struct strata_observer red_obs;
};

static bool aobs_wants(void *user, int32_t layer, enum strata_site site)
{
    const struct aobs *a = user;
    return a->red_obs.wants(a->red_obs.user, layer, site);
}

static int aobs_observe(void *user, const struct strata_view *v)
{
    const struct aobs *a = user;
    return a->red_obs.observe(a->red_obs.user, v);
}

static void aobs_fresh(struct aobs *a)
{
    strata_attnred_free(a->red);
    a->red = NULL;
    cli_check(strata_attnred_create(&a->red, &a->rp),
              "choose fewer --attn-layers/--heads or a shorter --seq-len");
    a->red_obs = strata_attnred_observer(a->red);
}

static void aobs_add(struct aobs *a, struct strata_stats *st, double *buf)
{
    const int64_t T = st->seq_len, K = st->n_sink;
    double *P = buf, *S = buf + T, *n = buf + 2 * T, *E = buf + 3 * T, *q = buf + 4 * T;
    double *SK = buf + 5 * T; /* (K, T) */
    if (strata_attnred_commit(a->red) != 0)
        cli_die(NULL, "attention observer: %s", strata_attnred_error(a->red));
    for (int64_t li = 0; li < st->n_attn_layers; li++)
        for (int64_t hi = 0; hi < st->n_heads; hi++) {
            const int64_t lh = li * st->n_heads + hi;
            cli_check(strata_attnred_dist(a->red, li, hi, 0, P, S, n), NULL);
            cli_check(strata_attnred_query(a->red, li, hi, E, q, SK), NULL);
            for (int64_t m = 0; m < T; m++) {
                st->prob[lh * T + m] += P[m];
                st->logit[lh * T + m] += S[m];
                st->count[lh * T + m] += n[m];
                st->entropy[lh * T + m] += E[m];
                st->rows[lh * T + m] += q[m];
            }
            for (int64_t k = 0; k < K * T; k++) st->sink[lh * K * T + k] += SK[k];
        }
    aobs_fresh(a);
}

/* ------------------------------------------------------------ identity */

/* The attributes that say which run a file belongs to (cli_ident): --resume
 * and merge require every one to match. A file's root attribute: */
static int file_attr(const void *f, const char *name, char **value)
{
    return strata_h5_get_attr_str(f, "/", name, value);
}

static const char *const ident_names[] = {
    "model_path", "model_config", "tokenizer_path", "corpus_path", "corpus_format", "separator",
    "jsonl_field", "seed", "seq_len", "layers_spec", "positions_spec", "stats", "angular_n",
    "attn_layers_spec", "heads_spec", "sink_k_spec", "interventions"};
#define N_IDENT ((int)(sizeof ident_names / sizeof ident_names[0]))

/* ------------------------------------------------------------ merge */

static const struct cli_opt merge_opts[] = {
    {"allow-partial", CLI_NOARG, OPT_ALLOW_PARTIAL, NULL,
     "merge the completed samples of unfinished files (.partial) too"},
    {0}};

static const struct cli_spec merge_spec = {
    .prog = "strata-probe-stats merge",
    .synopsis = "A.h5 B.h5 [...] -o OUT.h5 [--allow-partial]",
    .about = "Merge statistics files of disjoint sample ranges of one setting (e.g. runs\n"
             "with --sample-offset 0 and --sample-offset N) into the file of one pass over\n"
             "all of them: sums added, per-sample rows in stream order. Refuses files of\n"
             "different models or settings (naming the attribute) and overlapping draws.\n",
    .groups = CLI_G_OUTPUT,
    .opts = merge_opts,
    .output_help = "output; written as OUT.h5.partial and renamed when complete",
    .min_args = 1,
    .max_args = -1,
};

static int merge_option(void *user, int key, const char *arg, struct cli_error *e)
{
    (void)arg;
    if (key == OPT_ALLOW_PARTIAL) {
        *(bool *)user = true;
        return 0;
    }
    return cli_fail(e, NULL, "option key %d has no handler", key);
}

static int cmd_merge(int argc, char **argv)
{
    struct cli_args a;
    cli_args_init(&a);
    a.command_line = cli_command_line(argc + 1, argv - 1);
    bool allow_partial = false;
    cli_parse(&a, &merge_spec, argc, argv, merge_option, &allow_partial);
    cli_require(&a, CLI_REQ_OUTPUT);
    const char *hint = "merge statistics files of one setting (strata-probe-stats)";
    struct strata_stats acc = {0};
    struct cli_ident id = {0};
    struct strata_h5 *first = NULL;
    int64_t offset = INT64_MAX;
    for (int i = 0; i < a.n_args; i++) {
        struct strata_h5 *h = NULL;
        struct strata_stats st;
        cli_check(strata_h5_open(&h, a.args[i]), hint);
        if (!strata_stats_is(h))
            cli_die("give files written by strata-probe-stats (a dump is strata-probe-hidden's)",
                    "%s: not a statistics file (format is not %s)", a.args[i], STRATA_STATS_FORMAT);
        cli_check(strata_stats_load(&st, h), hint);
        int64_t complete = 0;
        cli_check(strata_h5_get_attr_i64(h, "/", "complete", &complete), hint);
        if (!complete && !allow_partial)
            cli_die("finish it with --resume, or pass --allow-partial",
                    "%s: unfinished (%lld of %lld samples)", a.args[i], (long long)st.n_complete,
                    (long long)st.n_samples);
        if (i == 0) {
            for (int k = 0; k < N_IDENT; k++) {
                char *v = NULL;
                cli_check(strata_h5_get_attr_str(h, "/", ident_names[k], &v), hint);
                cli_ident_add(&id, ident_names[k], v);
                free(v);
            }
        } else {
            cli_ident_check(&id, -1, file_attr, h, a.args[i], "merge only files of the same "
                            "model, corpus and options", "merge only files of the same model, "
                            "corpus and options", a.args[0]);
        }
        for (int64_t s = 0; s < st.n_complete; s++) offset = st.draw[s] < offset ? st.draw[s] : offset;
        strata_stats_trim(&st);
        if (i == 0) {
            acc = st;
            first = h;
            continue;
        }
        int rc = strata_stats_merge(&acc, &st);
        if (rc) cli_die("merge disjoint sample ranges of one setting", "%s and %s: %s", a.args[0],
                        a.args[i], strata_last_error());
        strata_stats_free(&st);
        strata_h5_free(h);
    }
    if (acc.n_complete < 1) cli_die(NULL, "%s: no completed samples to merge", a.args[0]);
    struct strata_h5 *f = NULL;
    cli_check(strata_stats_create(&f, a.out_path, &acc),
              "check that the output directory exists and is writable");
    acc.pv.n = acc.n_complete;
    int rc = strata_stats_save(f, &acc, 0);
    for (int k = 0; k < id.n && !rc; k++) rc = strata_h5_set_attr_str(f, "/", id.name[k], id.value[k]);
    char off_s[32];
    snprintf(off_s, sizeof off_s, "%lld", (long long)(offset == INT64_MAX ? 0 : offset));
    char *src = cli_command_line(a.n_args, (char **)a.args);
    if (!rc) rc = strata_h5_set_attr_str(f, "/", "sample_offset", off_s);
    if (!rc) rc = strata_h5_set_attr_str(f, "/", "strata_version", STRATA_VERSION);
    if (!rc) rc = strata_h5_set_attr_str(f, "/", "program", "strata-probe-stats merge");
    if (!rc) rc = strata_h5_set_attr_str(f, "/", "command_line", a.command_line);
    if (!rc) rc = strata_h5_set_attr_str(f, "/", "sources", src);
    char *sampling = NULL;
    if (!rc && strata_h5_get_attr_str(first, "/", "sampling", &sampling) == 0) {
        char *s2 = cli_sprintf("merged from %d files: %s", a.n_args, src);
        rc = strata_h5_set_attr_str(f, "/", "sampling", s2);
        free(s2);
    }
    int64_t nw = 0;
    if (!rc && strata_h5_get_attr_i64(first, "/", "n_windows", &nw) == 0)
        rc = strata_h5_set_attr_i64(f, "/", "n_windows", nw);
    if (!rc) rc = strata_h5_set_attr_i64(f, "/", "complete", 1);
    if (!rc) rc = strata_h5_finish(f);
    strata_h5_free(f);
    cli_check(rc, "check free space and permissions of the output directory");
    cli_info("merged %d files, %lld samples -> %s", a.n_args, (long long)acc.n_complete, a.out_path);
    free(sampling);
    free(src);
    strata_h5_free(first);
    strata_stats_free(&acc);
    cli_ident_free(&id);
    cli_args_free(&a);
    return 0;
}

/* ------------------------------------------------------------ ranks */

/* Every rank's sums (P1 pvsum, P2 attention) added into rank 0's; the other
 * ranks' then restart from zero, so the next reduction adds only what they
 * summed since. Nothing with one rank. */
static void reduce_sums(struct strata_stats *st, bool writer)
{
    if (cli_nranks() < 2) return;
    const int64_t npv = st->pv.n_layers * st->pv.seq_len * st->pv.dim, nsq = st->pv.n_layers * st->pv.seq_len;
    const int64_t na = st->n_attn_layers * st->n_heads * st->seq_len;
    double *bufs[8];
    int64_t lens[8];
    int nb = 0;
    if (st->has_posvec) bufs[nb] = st->pv.sum, lens[nb++] = npv, bufs[nb] = st->pv.sumsq, lens[nb++] = nsq;
    if (st->n_attn_layers > 0) {
        double *at[5] = {st->prob, st->logit, st->count, st->entropy, st->rows};
        for (int i = 0; i < 5; i++) bufs[nb] = at[i], lens[nb++] = na;
        bufs[nb] = st->sink, lens[nb++] = na * st->n_sink;
    }
    for (int i = 0; i < nb; i++) {
        cli_reduce_sum_f64(bufs[i], lens[i]);
        if (!writer) memset(bufs[i], 0, (size_t)lens[i] * sizeof(double));
    }
}

/* ------------------------------------------------------------ main */

/* --stats LIST into the three flags. */
static void parse_stats(const char *s, bool *posvec, bool *bi, bool *attn)
{
    *posvec = *bi = *attn = false;
    char *c = cli_strdup(s), *save = NULL;
    for (char *w = strtok_r(c, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
        if (!strcmp(w, "posvec")) *posvec = true;
        else if (!strcmp(w, "blockinf")) *bi = true;
        else if (!strcmp(w, "attn")) *attn = true;
        else cli_usage_die(NULL, "--stats '%s': expected posvec, blockinf, attn", s);
    }
    free(c);
    if (!*posvec && !*bi && !*attn) cli_usage_die(NULL, "--stats '%s' names nothing to keep", s);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "merge")) {
        cli_init("strata-probe-stats");
        return cmd_merge(argc - 1, argv + 1);
    }
    struct cli_args a;
    cli_args_init(&a);
    struct stats_opts o = {.stats_s = "posvec,blockinf,attn", .angular_s = "1",
                           .attn_layers_s = "all", .heads_s = "all", .sink_s = "1,4",
                           .checkpoint = 60};
    cli_parse(&a, &spec, argc, argv, stats_option, &o);
    cli_require(&a, CLI_REQ_MODEL | CLI_REQ_CORPUS | CLI_REQ_OUTPUT);
    const char *out_path = a.out_path;
    bool want_pv, want_bi, want_attn;
    parse_stats(o.stats_s, &want_pv, &want_bi, &want_attn);

    cli_model_load(&a, true);
    const struct strata_config *cfg = &a.model.cfg;
    const int64_t L = cfg->n_layer, T = cli_sampling_seq_len(&a), D = cfg->dim, H = cfg->n_head;

    /* what this run keeps */
    struct strata_stats st = {.seq_len = T, .dim = D, .n_layer = L, .has_posvec = want_pv};
    st.layers = cli_index_set("--layers", o.layers_s ? o.layers_s : "all", L + 1, "boundary",
                              false, &st.n_layers);
    {
        const char *ps = o.positions_s ? o.positions_s : "all";
        enum strata_pos scheme;
        struct cli_error e;
        if (strcmp(ps, "all") != 0 && cli_parse_position_embedding(&scheme, ps, &e) == 0)
            cli_usage_die("the position scheme is --position-embedding",
                          "--positions '%s': expected positions like 0-63,64-4095:16 or all", ps);
        st.positions = cli_index_set("--positions", ps, T, "position", true, &st.n_pos);
    }
    int64_t n_span = 0, max_span = 1;
    int32_t *spans = cli_index_set("--angular-n", o.angular_s, L + 1, "span", false, &n_span);
    if (spans[0] < 1) cli_usage_die(NULL, "--angular-n '%s': spans start at 1", o.angular_s);
    if (want_bi) {
        st.n_bi = 4 + n_span;
        st.bi_metric = cli_calloc((size_t)st.n_bi, sizeof(int32_t), "the metric list");
        st.bi_span = cli_calloc((size_t)st.n_bi, sizeof(int32_t), "the metric list");
        int64_t k = 0;
        st.bi_metric[k] = STRATA_BI_BI, st.bi_span[k++] = 1;
        for (int64_t i = 0; i < n_span; i++) {
            st.bi_metric[k] = STRATA_BI_ANGULAR, st.bi_span[k++] = spans[i];
            if (spans[i] > max_span) max_span = spans[i];
        }
        st.bi_metric[k] = STRATA_BI_RELMAG, st.bi_span[k++] = 1;
        st.bi_metric[k] = STRATA_BI_ATTN, st.bi_span[k++] = 1;
        st.bi_metric[k] = STRATA_BI_MLP, st.bi_span[k++] = 1;
    }
    free(spans);
    if (want_attn) {
        st.attn_layers = cli_index_set("--attn-layers", o.attn_layers_s, L, "block", false,
                                       &st.n_attn_layers);
        st.heads = cli_index_set("--heads", o.heads_s, H, "head", false, &st.n_heads);
        st.sink_k = cli_index_set("--sink-k", o.sink_s, T + 1, "width", false, &st.n_sink);
        if (st.sink_k[0] == 0) cli_usage_die(NULL, "--sink-k '%s': widths must be at least 1", o.sink_s);
    }
    struct strata_corpus *corpus = cli_sampling_open(&a);

    /* provenance; ident_names identify the run (--resume and merge check them) */
    char *iv_json = cli_interv_json(&a), off_s[32];
    snprintf(off_s, sizeof off_s, "%lld", (long long)a.sampling.offset);
    struct cli_ident id = {0};
    cli_ident_run(&id, &a, corpus, T);
    cli_ident_add(&id, "layers_spec", o.layers_s ? o.layers_s : "all");
    cli_ident_add(&id, "positions_spec", o.positions_s ? o.positions_s : "all");
    cli_ident_add(&id, "stats", o.stats_s);
    cli_ident_add(&id, "angular_n", want_bi ? o.angular_s : "");
    cli_ident_add(&id, "attn_layers_spec", want_attn ? o.attn_layers_s : "");
    cli_ident_add(&id, "heads_spec", want_attn ? o.heads_s : "");
    cli_ident_add(&id, "sink_k_spec", want_attn ? o.sink_s : "");
    cli_ident_add(&id, "interventions", iv_json);

    /* Under mpirun -n R every rank builds the same samples and its own
     * (zeroed) sums; rank 0 alone opens and writes the file. */
    const int R = cli_nranks();
    const bool writer = cli_rank() == 0;
    struct strata_samples samples = {0};
    struct strata_h5 *f = NULL;
    char *partial = cli_partial_path(out_path);
    const char *hint_w = "check free space and permissions of the output directory";
    if (a.resume) {
        if (writer) {
            struct strata_stats old;
            cli_check(strata_stats_resume(&f, out_path), "--resume continues OUT.h5.partial");
            if (!strata_stats_is(f))
                cli_die("--resume continues a strata-probe-stats OUT.h5.partial", "%s: not a "
                        "statistics file", partial);
            cli_ident_check(&id, -1, file_attr, f, partial, "give the same options as the run that "
                            "wrote it", "give the same options as the run that wrote it", "this run");
            cli_check(strata_stats_load(&old, f), NULL);
            /* the rows' windows were recorded at creation: rebuild exactly those */
            cli_check(strata_samples_build_windows(&samples, corpus, a.model.tok, old.window,
                                                   old.draw, old.n_samples, T),
                      "resume with the corpus the run started with");
            if (memcmp(samples.tokens, old.tokens, (size_t)(old.n_samples * T) * sizeof(int32_t)))
                cli_die("resume with the corpus and tokenizer the run started with",
                        "%s: the samples' tokens differ from the corpus' windows: the corpus "
                        "changed since the run started", partial);
            strata_stats_free(&st);
            st = old;
        }
        /* the other ranks: the same windows (rank 0's), zero sums */
        int64_t hdr[2] = {st.n_samples, st.n_complete};
        cli_bcast(hdr, sizeof hdr);
        int64_t *win = writer ? st.window : cli_calloc((size_t)hdr[0] + 1, sizeof(int64_t), "the windows");
        int64_t *draw = writer ? st.draw : cli_calloc((size_t)hdr[0] + 1, sizeof(int64_t), "the windows");
        cli_bcast(win, (size_t)hdr[0] * sizeof(int64_t));
        cli_bcast(draw, (size_t)hdr[0] * sizeof(int64_t));
        if (!writer) {
            cli_check(strata_samples_build_windows(&samples, corpus, a.model.tok, win, draw, hdr[0], T),
                      "resume with the corpus the run started with");
            st.n_samples = hdr[0];
            cli_check(strata_stats_alloc(&st), NULL);
            memcpy(st.tokens, samples.tokens, (size_t)(samples.n * T) * sizeof(int32_t));
            memcpy(st.doc, samples.doc, (size_t)samples.n * sizeof(int64_t));
            memcpy(st.window, samples.window, (size_t)samples.n * sizeof(int64_t));
            memcpy(st.draw, samples.draw, (size_t)samples.n * sizeof(int64_t));
            st.n_complete = hdr[1];
            free(win), free(draw);
        }
    } else {
        cli_sampling_build(&a, corpus, &samples);
        st.n_samples = samples.n;
        cli_check(strata_stats_alloc(&st), NULL);
        memcpy(st.tokens, samples.tokens, (size_t)(samples.n * T) * sizeof(int32_t));
        memcpy(st.doc, samples.doc, (size_t)samples.n * sizeof(int64_t));
        memcpy(st.window, samples.window, (size_t)samples.n * sizeof(int64_t));
        memcpy(st.draw, samples.draw, (size_t)samples.n * sizeof(int64_t));
        if (writer) {
            cli_check(strata_stats_create(&f, out_path, &st), hint_w);
            char *sampling = cli_sampling_describe(&a, &samples);
            int rc = 0;
            for (int i = 0; i < id.n && !rc; i++) rc = strata_h5_set_attr_str(f, "/", id.name[i], id.value[i]);
            if (!rc) rc = strata_h5_set_attr_str(f, "/", "sample_offset", off_s);
            if (!rc) rc = strata_h5_set_attr_str(f, "/", "strata_version", STRATA_VERSION);
            if (!rc) rc = strata_h5_set_attr_str(f, "/", "program", "strata-probe-stats");
            if (!rc) rc = strata_h5_set_attr_str(f, "/", "command_line", a.command_line);
            if (!rc) rc = strata_h5_set_attr_str(f, "/", "sampling", sampling);
            if (!rc) rc = strata_h5_set_attr_i64(f, "/", "n_windows", samples.n_windows);
            if (!rc) rc = strata_stats_save(f, &st, 0);
            free(sampling);
            if (rc) {
                strata_h5_free(f);
                remove(partial);
                cli_check(rc, hint_w);
            }
        }
    }
    const int64_t N = st.n_samples, s0 = st.n_complete, P = st.n_pos;

    struct strata_ctx_params cp = cli_ctx_params(&a, T);
    struct strata_ctx *ctx = cli_ctx_create(&a, &cp);
    struct sobs so = {.st = &st, .L = L, .P = P, .D = D, .R = max_span + 1, .pos = st.positions};
    if (so.R < 2) so.R = 2;
    so.slot = cli_calloc((size_t)(L + 2), sizeof(int32_t), "the boundary slots");
    for (int64_t b = 0; b <= L + 1; b++) so.slot[b] = -1;
    for (int64_t i = 0; i < st.n_layers; i++) so.slot[st.layers[i]] = (int32_t)i;
    so.ring = cli_calloc((size_t)(so.R * P * D), sizeof(float), "the boundary ring");
    so.attn = cli_calloc((size_t)(P * D), sizeof(float), "one block's outputs");
    so.mlp = cli_calloc((size_t)(P * D), sizeof(float), "one block's outputs");
    if (st.has_posvec || st.n_bi > 0) {
        struct strata_observer obs = {.wants = sobs_wants, .observe = sobs_observe, .user = &so};
        cli_check(strata_ctx_add_observer(ctx, &obs), NULL);
    }
    struct aobs ao = {0};
    double *abuf = NULL;
    if (st.n_attn_layers > 0) {
        ao.rp = strata_attnred_default_params();
        ao.rp.seq_len = T, ao.rp.attn_block = cp.attn_block > 0 ? cp.attn_block : 64;
        ao.rp.n_layer = (int32_t)L, ao.rp.n_head = (int32_t)H;
        ao.rp.layers = st.attn_layers, ao.rp.n_layers = st.n_attn_layers;
        ao.rp.heads = st.heads, ao.rp.n_heads = st.n_heads;
        ao.rp.sink_k = st.sink_k, ao.rp.n_sink = st.n_sink;
        aobs_fresh(&ao);
        struct strata_observer obs = {.wants = aobs_wants, .observe = aobs_observe, .user = &ao};
        cli_check(strata_ctx_add_observer(ctx, &obs), NULL);
        abuf = cli_calloc((size_t)((5 + st.n_sink) * T), sizeof(double), "one pair's reductions");
    }

    /* Cyclic rounds (docs/FORMAT.md): round k gives rank r sample s0 + k R + r.
     * A round counts only when every rank completed its sample
     * (cli_rounds_agree); its P3 rows are gathered to rank 0, in sample order;
     * each rank sums its own samples (P1, P2), reduced to rank 0 at
     * checkpoints, on a stop and at the end (the other ranks then restart
     * from zero). One rank: the plain loop, the single-process additions. */
    const int64_t KL = st.n_bi * L;
    double *brow = NULL, *ball = NULL; /* (2, K, L) this rank's rows; (R, 2, K, L) rank 0 */
    if (KL > 0 && R > 1) {
        brow = cli_calloc((size_t)(2 * KL), sizeof(double), "a Block Influence row");
        if (writer) ball = cli_calloc((size_t)R, (size_t)(2 * KL) * sizeof(double), "a round's rows");
    }
    struct cli_loop loop;
    cli_rounds_begin(&loop, CLI_SPLIT_CYCLIC, N, T, s0);
    int64_t mine = -1, saved = s0;
    bool tainted = false; /* the P1 sums in memory hold part of a dropped round */
    double last = cli_now();
    while (cli_rounds_next(&loop, &mine)) {
        bool ok = true;
        if (mine >= 0) {
            so.row = mine;
            so.err[0] = '\0';
            const int rc = strata_forward(ctx, NULL, st.tokens + mine * T, T, STRATA_LOGITS_NONE);
            if (rc == STRATA_E_INTERRUPTED || (rc && cli_stop_requested && !so.err[0])) {
                ok = false; /* stopped inside the pass: this rank's sample is not complete */
            } else if (rc) { /* the file keeps the last checkpoint: complete samples only */
                if (writer) strata_h5_free(f);
                if (so.err[0])
                    cli_die("the checkpoint's weights may be corrupt", "%s: %s; %s keeps the "
                            "samples of the last checkpoint", a.model.model_path, so.err, partial);
                cli_check(rc, "OUT.h5.partial keeps the samples of the last checkpoint");
            }
        }
        const int64_t before = loop.done;
        if (!cli_rounds_agree(&loop, ok)) { /* some rank did not complete: drop the round */
            if (mine >= 0 && st.n_attn_layers > 0) aobs_fresh(&ao);
            if (st.has_posvec) tainted = true;
            break;
        }
        if (mine >= 0) {
            if (st.n_attn_layers > 0) aobs_add(&ao, &st, abuf);
            if (st.has_posvec) strata_pvsum_count(&st.pv, 1);
        }
        if (brow) { /* the round's P3 rows to rank 0 */
            for (int64_t i = 0; i < KL; i++) {
                brow[i] = mine >= 0 ? st.bi_mean[mine * KL + i] : (double)NAN;
                brow[KL + i] = mine >= 0 ? st.bi_last[mine * KL + i] : (double)NAN;
            }
            cli_gather(ball, brow, (size_t)(2 * KL) * sizeof(double));
            for (int64_t r = 0; writer && r < loop.done - before; r++) {
                const int64_t row = s0 + before + r;
                memcpy(st.bi_mean + row * KL, ball + r * 2 * KL, (size_t)KL * sizeof(double));
                memcpy(st.bi_last + row * KL, ball + (r * 2 + 1) * KL, (size_t)KL * sizeof(double));
            }
        }
        st.n_complete = s0 + loop.done;
        int64_t ckpt = writer && cli_now() - last >= o.checkpoint && st.n_complete < N;
        cli_bcast(&ckpt, sizeof ckpt);
        if (ckpt) {
            reduce_sums(&st, writer);
            if (writer) {
                const int rc = strata_stats_save(f, &st, saved);
                if (rc) {
                    strata_h5_free(f);
                    cli_check(rc, "OUT.h5.partial keeps the samples of the last checkpoint");
                }
            }
            saved = st.n_complete;
            last = cli_now();
        }
    }
    const int64_t done = s0 + loop.done;
    int status = 0;
    if (tainted) {
        /* stopped inside a pass: the P1 sums in memory hold part of the dropped
         * round, so they are not saved; the file keeps the last checkpoint,
         * complete samples only */
        status = CLI_EXIT_INTERRUPTED;
        if (writer) {
            cli_rounds_end(&loop);
            strata_h5_free(f);
            fprintf(stderr, "%s: interrupted during sample %lld; %s holds the statistics of the "
                    "%lld samples of the last checkpoint (continue with --resume)\n", cli_prog,
                    (long long)done, partial, (long long)saved);
        }
    } else {
        reduce_sums(&st, writer);
        if (!writer) {
            status = done < N ? CLI_EXIT_INTERRUPTED : 0;
        } else {
            int rc = strata_stats_save(f, &st, saved);
            if (!rc && done < N) {
                cli_rounds_end(&loop);
                strata_h5_free(f);
                fprintf(stderr, "%s: interrupted after %lld of %lld samples; their statistics are "
                        "in %s (continue with --resume)\n", cli_prog, (long long)done, (long long)N,
                        partial);
                status = CLI_EXIT_INTERRUPTED;
            } else {
                if (!rc) rc = strata_h5_set_attr_i64(f, "/", "complete", 1);
                if (!rc) rc = strata_h5_finish(f);
                strata_h5_free(f);
                cli_check(rc, hint_w);
                cli_rounds_end(&loop);
                cli_info("wrote %s (%lld samples; %lld boundaries x %lld positions x %lld dims%s%s)",
                         out_path, (long long)N, (long long)st.n_layers, (long long)P, (long long)D,
                         st.n_bi ? ", Block Influence" : "", st.n_attn_layers ? ", attention" : "");
            }
        }
    }
    free(brow), free(ball);
    free(partial);
    free(so.slot), free(so.ring), free(so.attn), free(so.mlp), free(abuf);
    strata_attnred_free(ao.red);
    strata_ctx_free(ctx);
    strata_stats_free(&st);
    strata_samples_free(&samples);
    strata_corpus_free(corpus);
    cli_ident_free(&id);
    free(iv_json);
    cli_args_free(&a);
    return status;
}
