/* strata-probe-hidden — run a model over fixed-length samples of a corpus and
 * dump chosen hidden states to HDF5 (docs/FORMAT.md, strata-dump/2): the
 * residual stream at chosen layer boundaries, and the attention / MLP outputs
 * of chosen blocks, at chosen positions. The dump is the input of the
 * analyzers: Block Influence (P3) compares consecutive boundaries, positional
 * vectors (P1) average them over samples.
 *
 * Built for overnight runs: the output is OUT.h5.partial until complete;
 * SIGINT/SIGTERM stop after the current sample and leave a valid .partial;
 * --resume continues it (same run, checked attribute by attribute) and gives
 * the same bytes an uninterrupted run would; --append adds samples to a
 * finished dump, continuing the seeded draw order so none repeats. */
#include "cli/cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { OPT_LAYERS = CLI_KEY_PROG, OPT_POSITIONS, OPT_SITES, OPT_DTYPE, OPT_GZIP, OPT_APPEND,
       OPT_PIPELINE, OPT_BATCH };

static const struct cli_opt opts[] = {
    {"layers", CLI_ARG, OPT_LAYERS, "LIST",
     "residual boundaries 0..L to keep, e.g. 0,4,8-12 (default all); for\n"
     "attn_out/mlp_out the blocks 0..L-1 to keep"},
    {"positions", CLI_ARG, OPT_POSITIONS, "LIST",
     "positions to keep: ranges and strides, e.g. 0-63,64-4095:16 (entries >= T\n"
     "are dropped; default all)"},
    {"sites", CLI_ARG, OPT_SITES, "LIST", "resid, attn_out, mlp_out (default resid)"},
    {"dtype", CLI_ARG, OPT_DTYPE, "f32|f16", "storage type (default f32)"},
    {"gzip", CLI_ARG, OPT_GZIP, "LEVEL",
     "deflate level 1-9 (default 0: raw; fp32 activations shrink only ~8% at a\n"
     "tenth of the write speed)"},
    {"append", CLI_NOARG, OPT_APPEND, NULL,
     "add --samples new samples to the finished OUT.h5 (--samples is then the\n"
     "number to add)"},
    {"batch", CLI_ARG, OPT_BATCH, "S",
     "windows per forward pass (default 1; 0: as many as fill about 2048 rows,\n"
     "faster for short windows, docs/SCALING.md); OpenBLAS may pick other\n"
     "kernels for other row counts, so values can differ from one window a\n"
     "pass in the last float32 bit"},
    {"pipeline", CLI_NOARG, OPT_PIPELINE, NULL,
     "under mpirun -n R: split the blocks (not the samples) over the ranks,\n"
     "for a model that does not fit one machine; rank r runs its share of the\n"
     "blocks and passes the residual stream on; rank 0 writes one dump"},
    {0}};

static const struct cli_spec spec = {
    .prog = "strata-probe-hidden",
    .synopsis = "--model M [--tokenizer TOK] --corpus PATH -o OUT.h5 [options]",
    .about = "Dump hidden states (N, layers, positions, D): boundary 0 = token embeddings,\n"
             "boundary l = the residual stream after block l (before the final norm).\n",
    .groups = CLI_G_MODEL | CLI_G_INTERV | CLI_G_SAMPLING | CLI_G_OUTPUT | CLI_G_RESUME,
    .opts = opts,
    .output_help = "output; written as OUT.h5.partial and renamed when complete",
    .epilog = "Sampling: documents are tokenized with BOS first and concatenated; the\n"
              "stream is cut into non-overlapping windows of T tokens that each start at a\n"
              "document start; a seeded shuffle orders them and draws are taken in that\n"
              "order. Ctrl-C or SIGTERM stops after the current sample and leaves\n"
              "OUT.h5.partial with the completed samples; --resume continues it.\n",
};

struct hidden_opts {
    const char *layers_s, *positions_s, *sites_s;
    enum strata_dtype dtype;
    int64_t gzip, batch;
    bool append, pipeline;
};

static int hidden_option(void *user, int key, const char *arg, struct cli_error *e)
{
    struct hidden_opts *o = user;
    switch (key) {
    case OPT_LAYERS:
        o->layers_s = arg;
        return 0;
    case OPT_POSITIONS:
        o->positions_s = arg;
        return 0;
    case OPT_SITES:
        o->sites_s = arg;
        return 0;
    case OPT_DTYPE:
        if (!strcmp(arg, "f32")) o->dtype = STRATA_DT_F32;
        else if (!strcmp(arg, "f16")) o->dtype = STRATA_DT_F16;
        else return cli_fail(e, NULL, "--dtype '%s': expected f32 or f16", arg);
        return 0;
    case OPT_GZIP:
        return cli_parse_int(&o->gzip, "--gzip", arg, 0, 9, e);
    case OPT_APPEND:
        o->append = true;
        return 0;
    case OPT_PIPELINE:
        o->pipeline = true;
        return 0;
    case OPT_BATCH:
        return cli_parse_int(&o->batch, "--batch", arg, 0, 4096, e);
    }
    return cli_fail(e, NULL, "option key %d has no handler", key);
}

/* Copies the kept sites and positions of one forward pass into buf:
 * resid (Lk, P, D), then attn_out (Bk, P, D), then mlp_out (Bk, P, D). */
struct capture {
    float *buf;          /* (S, per): one sample's kept entries per sequence of a batch */
    int64_t per;         /* floats a sample keeps */
    int64_t P, D, n_layer;
    int32_t *slot_resid; /* (L+1) index of boundary b in the kept list, or -1 */
    int32_t *slot_blk;   /* (L) index of block l in the kept blocks, or -1 */
    float *attn, *mlp;   /* where attn_out / mlp_out start in buf (NULL: not kept) */
    const int32_t *pos;  /* (P) */
};

static float *slot_of(const struct capture *c, int32_t layer, enum strata_site site)
{
    if (site == STRATA_SITE_RESID_PRE || site == STRATA_SITE_RESID_POST) {
        int32_t b = site == STRATA_SITE_RESID_PRE ? layer : layer + 1;
        if (site == STRATA_SITE_RESID_PRE && layer != 0) return NULL; /* = resid_post of l-1 */
        int32_t k = c->slot_resid[b];
        return k < 0 ? NULL : c->buf + (int64_t)k * c->P * c->D;
    }
    float *base = site == STRATA_SITE_ATTN_OUT ? c->attn : site == STRATA_SITE_MLP_OUT ? c->mlp : NULL;
    if (!base || c->slot_blk[layer] < 0) return NULL;
    return base + (int64_t)c->slot_blk[layer] * c->P * c->D;
}

static bool cap_wants(void *u, int32_t layer, enum strata_site site)
{
    return slot_of(u, layer, site) != NULL;
}

static int cap_observe(void *u, const struct strata_view *v)
{
    const struct capture *c = u;
    float *dst = slot_of(c, v->layer, v->site) + v->seq * c->per;
    for (int64_t i = 0; i < c->P; i++) {
        int64_t t = c->pos[i] - v->row0;
        if (t >= 0 && t < v->n_rows)
            memcpy(dst + i * c->D, v->data + t * v->ld, (size_t)c->D * sizeof(float));
    }
    return 0;
}

/* A dump's root attribute, for cli_ident_check. */
static int dump_attr(const void *dump, const char *name, char **value)
{
    return strata_dump_get_attr_str(dump, name, value);
}

/* --sites as STRATA_DUMP_* bits. */
static unsigned parse_sites(const char *sites_s)
{
    unsigned sites = 0;
    char *s = cli_strdup(sites_s), *save = NULL;
    for (char *w = strtok_r(s, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
        if (!strcmp(w, "resid")) sites |= STRATA_DUMP_RESID;
        else if (!strcmp(w, "attn_out")) sites |= STRATA_DUMP_ATTN_OUT;
        else if (!strcmp(w, "mlp_out")) sites |= STRATA_DUMP_MLP_OUT;
        else cli_usage_die(NULL, "--sites '%s': expected resid, attn_out, mlp_out", sites_s);
    }
    free(s);
    if (!sites) cli_usage_die(NULL, "--sites '%s' names no site", sites_s);
    return sites;
}

/* What a run keeps: boundaries, blocks and positions. */
struct selection {
    unsigned sites;
    int32_t *layers, *blocks, *positions; /* (n_layers) (n_blocks) (n_pos) */
    int64_t n_layers, n_blocks, n_pos;
};

static void select_kept(struct selection *k, const struct hidden_opts *o, int64_t L, int64_t T)
{
    k->sites = parse_sites(o->sites_s);
    k->layers = cli_index_set("--layers", o->layers_s ? o->layers_s : "all", L + 1, "boundary",
                              false, &k->n_layers);
    if (k->sites & (STRATA_DUMP_ATTN_OUT | STRATA_DUMP_MLP_OUT)) {
        k->blocks = cli_calloc((size_t)k->n_layers + 1, sizeof *k->blocks, "the block list");
        for (int64_t i = 0; i < k->n_layers; i++)
            if (k->layers[i] < L) k->blocks[k->n_blocks++] = k->layers[i];
        if (!k->n_blocks)
            cli_usage_die(NULL, "--layers selects no block 0 .. %lld for attn_out/mlp_out",
                          (long long)L - 1);
    }
    const char *ps = o->positions_s ? o->positions_s : "all";
    enum strata_pos scheme;
    struct cli_error e;
    if (strcmp(ps, "all") != 0 && cli_parse_position_embedding(&scheme, ps, &e) == 0)
        cli_usage_die("the position scheme is --position-embedding",
                      "--positions '%s': expected positions like 0-63,64-4095:16 or all", ps);
    k->positions = cli_index_set("--positions", ps, T, "position", true, &k->n_pos);
}

static void selection_free(struct selection *k)
{
    free(k->layers);
    free(k->blocks);
    free(k->positions);
}

/* Create, resume or append: the dump to write into, its samples (row 0 of
 * samples->tokens is dump row *base) and the identity it must match. */
static struct strata_dump *open_output(struct cli_args *a, const struct hidden_opts *o,
                                       const struct selection *k, const struct cli_ident *id,
                                       int n_ident, struct strata_corpus *corpus,
                                       struct strata_samples *samples, int64_t *base,
                                       int64_t lo, int64_t hi)
{
    const char *out_path = a->out_path;
    const int64_t T = a->sampling.seq_len, n_samples = hi - lo;
    const struct strata_config *cfg = &a->model.cfg;
    struct strata_dump *dump = NULL;
    struct strata_dump_info info;
    char *partial = cli_partial_path(out_path);
    *base = 0;
    if (a->resume) {
        cli_check(strata_dump_resume(&dump, out_path), "--resume continues OUT.h5.partial");
        cli_ident_check(id, n_ident + 1, dump_attr, dump, partial,
                        "resume or append with a dump this program wrote",
                        "give the same options as the run that wrote it", "this run");
        cli_check(strata_dump_info(dump, &info), NULL);
        if (a->sampling.samples_given && cli_nranks() == 1 && a->sampling.n_samples != info.n_samples)
            cli_usage_die("leave out --samples to finish the run as it started, or start a new "
                          "run (--append adds samples to a finished dump)",
                          "--samples %lld, but %s was started with %lld samples",
                          (long long)a->sampling.n_samples, partial, (long long)info.n_samples);
        /* The rows' windows were recorded at creation: rebuild exactly those. */
        const int64_t N = info.n_samples;
        int64_t *win = cli_calloc((size_t)N, sizeof *win, "the sample origins");
        int64_t *draw = cli_calloc((size_t)N, sizeof *draw, "the sample origins");
        cli_check(strata_dump_read_origin(dump, 0, N, NULL, win, draw), NULL);
        cli_check(strata_samples_build_windows(samples, corpus, a->model.tok, win, draw, N, T),
                  "resume with the corpus the run started with");
        free(win);
        free(draw);
        if (info.n_complete > 0) { /* the same corpus gives the same tokens */
            int32_t *tk = cli_calloc((size_t)T, sizeof *tk, "one sample's tokens");
            const int64_t s = info.n_complete - 1;
            struct strata_dump *rd = NULL;
            cli_check(strata_dump_open(&rd, partial), NULL);
            cli_check(strata_dump_read_sample(rd, s, NULL, tk), NULL);
            if (memcmp(tk, samples->tokens + s * T, (size_t)T * sizeof *tk) != 0)
                cli_die("resume with the corpus and tokenizer the run started with",
                        "%s: sample %lld's tokens differ from the corpus' window: the corpus "
                        "changed since the run started", partial, (long long)s);
            strata_dump_free(rd);
            free(tk);
        }
    } else if (o->append) {
        struct strata_dump *rd = NULL;
        cli_check(strata_dump_open(&rd, out_path), "--append adds samples to a finished OUT.h5");
        cli_ident_check(id, n_ident, dump_attr, rd, out_path,
                        "resume or append with a dump this program wrote",
                        "give the same options as the run that wrote it", "this run");
        cli_check(strata_dump_info(rd, &info), NULL);
        int64_t *draw = cli_calloc((size_t)info.n_samples, sizeof *draw, "the sample origins");
        int64_t next = 0;
        cli_check(strata_dump_read_origin(rd, 0, info.n_samples, NULL, NULL, draw), NULL);
        for (int64_t s = 0; s < info.n_samples; s++)
            if (draw[s] + 1 > next) next = draw[s] + 1;
        free(draw);
        strata_dump_free(rd);
        /* The seeded order continues: draws next .. next+N-1 are new windows. */
        cli_check(strata_samples_build_range(samples, corpus, a->model.tok, next, n_samples, T,
                                             a->sampling.seed),
                  NULL);
        cli_check(strata_dump_append(&dump, out_path, n_samples), NULL);
        *base = info.n_samples;
        cli_check(strata_dump_write_origin(dump, *base, n_samples, samples->doc, samples->window,
                                           samples->draw),
                  NULL);
    } else {
        cli_sampling_build(a, corpus, samples);
        if (cli_nranks() > 1) { /* this rank's shard: rows lo .. hi-1 of the run's samples */
            struct strata_samples all = *samples;
            cli_check(strata_samples_build_windows(samples, corpus, a->model.tok, all.window + lo,
                                                   all.draw + lo, n_samples, T), NULL);
            samples->n_windows = all.n_windows;
            strata_samples_free(&all);
        }
        struct strata_dump_params dp = {.n_samples = n_samples, .n_layers = k->n_layers,
                                        .seq_len = T, .dim = cfg->dim, .dtype = o->dtype,
                                        .gzip = (int)o->gzip, .layers = k->layers,
                                        .positions = k->positions, .n_pos = k->n_pos,
                                        .sites = k->sites, .blocks = k->blocks,
                                        .n_blocks = k->n_blocks};
        if (!(k->sites & STRATA_DUMP_RESID)) dp.n_layers = 0;
        cli_check(strata_dump_create(&dump, out_path, &dp), NULL);
        char *sampling = cli_sampling_describe(a, samples);
        int rc = strata_dump_write_origin(dump, 0, n_samples, samples->doc, samples->window,
                                          samples->draw);
        for (int i = 0; i < id->n && !rc; i++)
            rc = strata_dump_set_attr_str(dump, id->name[i], id->value[i]);
        if (!rc) rc = strata_dump_set_attr_str(dump, "command_line", a->command_line);
        if (!rc) rc = strata_dump_set_attr_str(dump, "sampling", sampling);
        if (!rc) rc = strata_dump_set_attr_i64(dump, "n_windows", samples->n_windows);
        if (!rc && cli_nranks() > 1) { /* which shard of an mpirun run this is */
            rc = strata_dump_set_attr_i64(dump, "shard_rank", cli_rank());
            if (!rc) rc = strata_dump_set_attr_i64(dump, "shard_ranks", cli_nranks());
            if (!rc) rc = strata_dump_set_attr_i64(dump, "shard_first_sample", lo);
        }
        free(sampling);
        if (rc) {
            strata_dump_free(dump);
            remove(partial);
            cli_check(rc, NULL);
        }
    }
    free(partial);
    return dump;
}

/* Row s of the dump from one sample's capture (per floats), refusing
 * non-finite states; a failed run keeps its .partial (the completed samples
 * stay usable). rc: the forward pass's status. */
static void write_checked(struct strata_dump *dump, const struct capture *cap, const float *buf,
                          int64_t per, const struct selection *k, int64_t s, const int32_t *toks,
                          int rc, const char *model_path, const char *partial)
{
    for (int64_t i = 0; i < per && !rc; i++) {
        if (!isfinite(buf[i])) {
            strata_dump_free(dump);
            cli_die("the checkpoint's weights may be corrupt",
                    "%s: non-finite hidden state at sample %lld (kept entry %lld, position %d); %s "
                    "keeps the samples before it", model_path, (long long)s,
                    (long long)(i / (k->n_pos * cap->D)), (int)k->positions[i / cap->D % k->n_pos],
                    partial);
        }
    }
    if (!rc) rc = strata_dump_write_sample(dump, s, buf, toks);
    if (rc) {
        strata_dump_free(dump);
        cli_check(rc, "the completed samples stay in OUT.h5.partial");
    }
}

/* --pipeline: every rank takes every sample; rank r runs blocks
 * [b0, b1) (its cli_share of the L blocks) on the residual stream it
 * receives from rank r-1 (rank 0 embeds the tokens) and sends it to rank
 * r+1. Each rank's capture holds the boundaries and blocks it ran; rank 0
 * gathers the captures, takes each slot from the rank that ran it, and
 * writes one dump equal to a single process's bit for bit. Ranks agree
 * between samples whether to stop (a pass is never cut short here: every
 * rank must finish its part of the exchange). Returns samples written. */
static int64_t run_pipeline(struct strata_ctx *ctx, struct capture *cap, int64_t per,
                            const struct selection *k, struct strata_dump *dump,
                            const struct strata_samples *samples, int64_t base, int64_t s0,
                            int64_t N, int64_t T, const char *model_path, const char *partial,
                            bool *stopped)
{
    const int R = cli_nranks(), r = cli_rank();
    const int32_t L = (int32_t)cap->n_layer;
    int64_t lo, hi;
    cli_share(L, &lo, &hi);
    int64_t *first = cli_calloc((size_t)R + 1, sizeof *first, "the block shares"); /* (R+1) */
    cli_gather(first, &lo, sizeof lo);
    cli_bcast(first, (size_t)R * sizeof *first);
    first[R] = L;
    float *x = cli_calloc((size_t)(T * cap->D), sizeof *x, "the residual stream"); /* (T, D) */
    float *all = r == 0 ? cli_calloc((size_t)(R * per), sizeof *all, "the gathered captures") : NULL;
    float *mine = cli_calloc((size_t)per, sizeof *mine, "one sample's hidden states");
    struct cli_progress prog;
    if (r == 0) cli_progress_start(&prog, NULL, N - s0);
    int64_t s = s0;
    for (; s < N; s++) {
        int64_t stop = cli_stop_requested ? 1 : 0;
        cli_allreduce_max_i64(&stop, 1);
        if (stop) break;
        const int32_t *toks = r == 0 ? samples->tokens + (s - base) * T : NULL; /* (T) */
        memset(cap->buf, 0, (size_t)per * sizeof(float));
        if (r == 0) cli_check(strata_forward_embed(ctx, x, toks, T), NULL);
        else cli_recv(r - 1, 1, x, (size_t)(T * cap->D) * sizeof *x);
        /* boundary 0 is resid_pre of block 0: rank 0's first block */
        cli_check(strata_forward_blocks(ctx, x, T, (int32_t)lo, (int32_t)hi), NULL);
        if (r < R - 1) cli_send(r + 1, 1, x, (size_t)(T * cap->D) * sizeof *x);
        memcpy(mine, cap->buf, (size_t)per * sizeof(float));
        cli_gather(all, mine, (size_t)per * sizeof(float));
        if (r != 0) continue;
        /* each slot from the rank that ran it: boundary b > 0 from the rank
         * holding block b-1, a block's outputs from the rank holding it */
        for (int64_t b = 0; b <= L; b++) {
            const int32_t slot = cap->slot_resid[b];
            if (slot < 0) continue;
            int owner = 0;
            while (b > 0 && !(first[owner] <= b - 1 && b - 1 < first[owner + 1])) owner++;
            const int64_t off = (int64_t)slot * cap->P * cap->D;
            memcpy(cap->buf + off, all + owner * per + off, (size_t)(cap->P * cap->D) * sizeof(float));
        }
        for (int64_t l = 0; l < L; l++) {
            if (cap->slot_blk[l] < 0) continue;
            int owner = 0;
            while (!(first[owner] <= l && l < first[owner + 1])) owner++;
            float *bases[2] = {cap->attn, cap->mlp};
            for (int w = 0; w < 2; w++) {
                if (!bases[w]) continue;
                const int64_t off = (bases[w] - cap->buf) + (int64_t)cap->slot_blk[l] * cap->P * cap->D;
                memcpy(cap->buf + off, all + owner * per + off, (size_t)(cap->P * cap->D) * sizeof(float));
            }
        }
        write_checked(dump, cap, cap->buf, per, k, s, toks, 0, model_path, partial);
        cli_progress(&prog, s + 1 - s0, N - s0, (s + 1 - s0) * T, 0);
        cli_test_pause_point(s + 1 - s0);
    }
    *stopped = s < N;
    if (r == 0) cli_progress(&prog, s - s0, N - s0, (s - s0) * T, 1);
    free(x), free(all), free(mine), free(first);
    return s;
}

int main(int argc, char **argv)
{
    struct cli_args a;
    cli_args_init(&a);
    struct hidden_opts o = {.sites_s = "resid", .dtype = STRATA_DT_F32, .batch = 1};
    cli_parse(&a, &spec, argc, argv, hidden_option, &o);
    cli_require(&a, CLI_REQ_MODEL | CLI_REQ_CORPUS | CLI_REQ_OUTPUT);
    if (a.resume && o.append) cli_usage_die(NULL, "--resume and --append exclude each other");
    /* Under mpirun -n R: rank r writes rows lo .. hi-1 of the run (its
     * contiguous share) to its own shard OUT-0000r-of-0000R.h5; the shards
     * opened together (strata_dump_open_many, the analyzers) in rank order
     * are the single-process dump row for row. Each shard resumes on its own. */
    const int R = cli_nranks();
    int64_t lo = 0, hi = a.sampling.n_samples;
    char *shard_path = NULL;
    const bool pipeline = o.pipeline && R > 1;
    if (pipeline && o.append)
        cli_usage_die(NULL, "--append is not supported with --pipeline");
    if (R > 1 && !pipeline) {
        if (o.append)
            cli_usage_die("append without mpirun, or run more shards with --sample-offset",
                          "--append is not supported under mpirun (%d ranks)", R);
        if (a.sampling.n_samples < R)
            cli_usage_die("give --samples at least the number of ranks",
                          "--samples %lld is fewer than the %d ranks", (long long)a.sampling.n_samples, R);
        cli_share(a.sampling.n_samples, &lo, &hi);
        a.out_path = shard_path = cli_shard_path(a.out_path, cli_rank(), R);
    }
    const char *out_path = a.out_path;

    cli_model_load(&a, true);
    const struct strata_config *cfg = &a.model.cfg;
    const int64_t L = cfg->n_layer, T = cli_sampling_seq_len(&a), D = cfg->dim;
    struct selection k = {0};
    select_kept(&k, &o, L, T);
    struct strata_corpus *corpus = cli_sampling_open(&a);

    /* Provenance; the first entries identify the run (checked by --resume
     * and --append), the rest describe it. */
    char *iv_json = cli_interv_json(&a), off_s[32];
    snprintf(off_s, sizeof off_s, "%lld", (long long)a.sampling.offset);
    struct cli_ident id = {0};
    cli_ident_run(&id, &a, corpus, T);
    cli_ident_add(&id, "layers_spec", o.layers_s ? o.layers_s : "all");
    cli_ident_add(&id, "positions_spec", o.positions_s ? o.positions_s : "all");
    cli_ident_add(&id, "sites", o.sites_s);
    cli_ident_add(&id, "dtype", o.dtype == STRATA_DT_F16 ? "f16" : "f32");
    cli_ident_add(&id, "interventions", iv_json);
    const int n_ident = id.n; /* sample_offset and below may differ on --append */
    cli_ident_add(&id, "sample_offset", off_s);
    cli_ident_add(&id, "strata_version", STRATA_VERSION);

    struct strata_samples samples = {0};
    int64_t base = 0; /* dump row of samples.tokens row 0 */
    /* With --pipeline only rank 0 holds the tokens and the output. */
    const bool writes = !pipeline || cli_rank() == 0;
    struct strata_dump *dump = writes ? open_output(&a, &o, &k, &id, n_ident, corpus, &samples,
                                                    &base, lo, hi)
                                      : NULL;
    struct strata_dump_info info = {0};
    if (writes) cli_check(strata_dump_info(dump, &info), NULL);
    if (pipeline) { /* every rank walks rank 0's rows */
        int64_t nv[3] = {info.n_samples, info.n_complete, info.n_layers};
        cli_bcast(nv, sizeof nv);
        info.n_samples = nv[0], info.n_complete = nv[1], info.n_layers = nv[2];
    }
    const int64_t N = info.n_samples, s0 = info.n_complete;
    if (R > 1 && !pipeline && N != hi - lo)
        cli_die("resume with the --samples and the number of ranks the run started with",
                "%s.partial has %lld samples, but this rank's share of --samples %lld over %d "
                "ranks is %lld", out_path, (long long)N, (long long)a.sampling.n_samples, R,
                (long long)(hi - lo));
    const int64_t n_layers = info.n_layers, n_blocks = k.n_blocks, n_pos = k.n_pos;
    const unsigned sites = k.sites;

    const int64_t per = (n_layers + ((sites & STRATA_DUMP_ATTN_OUT) ? n_blocks : 0) +
                         ((sites & STRATA_DUMP_MLP_OUT) ? n_blocks : 0)) * n_pos * D;
    /* Windows per pass: short windows leave every GEMM under its rate, so
     * they are batched to about 2048 rows (bench_batch: 1.77x at 64 tokens,
     * 1.17x at 512 on a 7B block), while the captures stay under 512 MiB. */
    int64_t S = o.batch;
    if (S == 0) {
        S = T < 2048 ? 2048 / T : 1;
        while (S > 1 && S * per > ((int64_t)1 << 27)) S--;
    }
    if (pipeline || S > N - s0) S = pipeline ? 1 : (N - s0 > 0 ? N - s0 : 1);
    struct strata_ctx_params cp = cli_ctx_params(&a, T);
    cp.n_seq_max = S;
    if (pipeline) cp.abort_callback = NULL; /* a rank may not leave the exchange mid-sample */
    struct strata_ctx *ctx = cli_ctx_create(&a, &cp);
    struct capture cap = {.per = per, .P = n_pos, .D = D, .n_layer = L, .pos = k.positions};
    cap.buf = cli_calloc((size_t)(S * per), sizeof(float), "a batch's hidden states"); /* (S, layers + 2 blocks, P, D) */
    cap.slot_resid = cli_calloc((size_t)(L + 1), sizeof(int32_t), "the capture slots");
    cap.slot_blk = cli_calloc((size_t)(L + 1), sizeof(int32_t), "the capture slots");
    for (int64_t b = 0; b <= L; b++) cap.slot_resid[b] = cap.slot_blk[b] = -1;
    if (sites & STRATA_DUMP_RESID)
        for (int64_t i = 0; i < n_layers; i++) cap.slot_resid[k.layers[i]] = (int32_t)i;
    for (int64_t i = 0; i < n_blocks; i++) cap.slot_blk[k.blocks[i]] = (int32_t)i;
    float *next = cap.buf + ((sites & STRATA_DUMP_RESID) ? n_layers : 0) * n_pos * D;
    if (sites & STRATA_DUMP_ATTN_OUT) {
        cap.attn = next;
        next += n_blocks * n_pos * D;
    }
    if (sites & STRATA_DUMP_MLP_OUT) cap.mlp = next;
    struct strata_observer obs = {.wants = cap_wants, .observe = cap_observe, .user = &cap};
    cli_check(strata_ctx_add_observer(ctx, &obs), NULL);

    char *partial = cli_partial_path(out_path);
    int status = 0, rc = 0;
    if (pipeline) {
        bool stopped = false;
        const int64_t done = run_pipeline(ctx, &cap, per, &k, dump, &samples, base, s0, N, T,
                                          a.model.model_path, partial, &stopped);
        if (stopped) {
            if (writes)
                fprintf(stderr, "%s: interrupted after %lld of %lld samples; the completed samples "
                        "are in %s (continue with --resume)\n", cli_prog, (long long)done,
                        (long long)N, partial);
            status = CLI_EXIT_INTERRUPTED;
        } else if (writes && !(rc = strata_dump_finish(dump))) {
            cli_info("wrote %s (%lld samples x %lld layers x %lld positions x %lld dims; blocks "
                     "over %d ranks)", out_path, (long long)N, (long long)n_layers,
                     (long long)n_pos, (long long)D, R);
        }
        goto finish;
    }
    /* One round: every rank does its next row; they agree on stopping. */
    struct cli_loop loop;
    cli_rounds_begin(&loop, CLI_SPLIT_BLOCK, R > 1 ? a.sampling.n_samples : N, T, s0);
    int64_t g, s = s0; /* g: the run's sample; s: this file's row */
    int64_t b_lo = 0, b_hi = 0; /* rows of the batch computed last: cap.buf holds them */
    while (cli_rounds_next(&loop, &g)) {
        bool completed = true;
        if (g >= 0) {
            s = g - lo;
            int frc = 0;
            if (s < b_lo || s >= b_hi) { /* the next batch: rows s .. s+n-1 of this file */
                const int64_t n = S < N - s ? S : N - s;
                frc = strata_forward_batch(ctx, NULL, samples.tokens + (s - base) * T, n, T,
                                           STRATA_LOGITS_NONE);
                b_lo = s, b_hi = frc ? s : s + n;
            }
            const int32_t *toks = samples.tokens + (s - base) * T; /* (T) */
            if (frc == STRATA_E_INTERRUPTED) { /* stopped mid-sample: the sample is not kept */
                completed = false;
            } else {
                write_checked(dump, &cap, cap.buf + (s - b_lo) * per, per, &k, s, toks, frc,
                              a.model.model_path, partial);
                s++;
            }
        }
        cli_rounds_agree(&loop, completed);
    }
    /* Across ranks a shard is finished only with the whole run, so an
     * interrupted run is .partial shards that --resume continues. */
    if (loop.stopped && loop.done < loop.n) {
        cli_rounds_end(&loop);
        if (R > 1 && cli_rank() == 0)
            fprintf(stderr, "%s: interrupted after %lld of %lld samples; the completed samples "
                    "are in the %d shards like %s (continue with --resume)\n", cli_prog,
                    (long long)loop.done, (long long)loop.n, R, partial);
        else if (R == 1)
            fprintf(stderr, "%s: interrupted after %lld of %lld samples; the completed samples are in "
                    "%s (continue with --resume)\n", cli_prog, (long long)s, (long long)N, partial);
        status = CLI_EXIT_INTERRUPTED;
    } else if (!(rc = strata_dump_finish(dump))) {
        cli_rounds_end(&loop);
        if (R > 1)
            cli_info("wrote %d shards like %s (%lld samples x %lld layers x %lld positions x %lld "
                     "dims)", R, out_path, (long long)loop.n, (long long)n_layers, (long long)n_pos,
                     (long long)D);
        else
            cli_info("wrote %s (%lld samples x %lld layers x %lld positions x %lld dims)", out_path,
                     (long long)N, (long long)n_layers, (long long)n_pos, (long long)D);
    }
finish:
    strata_dump_free(dump);
    if (rc) cli_check(rc, "the completed samples stay in OUT.h5.partial");
    free(partial);
    free(cap.buf);
    free(cap.slot_resid);
    free(cap.slot_blk);
    strata_ctx_free(ctx);
    free(iv_json);
    cli_ident_free(&id);
    strata_samples_free(&samples);
    selection_free(&k);
    strata_corpus_free(corpus);
    cli_args_free(&a);
    free(shard_path);
    return status;
}
