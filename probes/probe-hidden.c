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
#include "cli.h"
#include "cli_interv.h"

#include <math.h>
#include <signal.h>

static void usage(void)
{
    printf("usage: strata-probe-hidden --model M [--tokenizer TOK] --corpus PATH -o OUT.h5 [options]\n"
           "\n"
           "Dump hidden states (N, layers, positions, D): boundary 0 = token embeddings,\n"
           "boundary l = the residual stream after block l (before the final norm).\n"
           "\n");
    fputs(CLI_MODEL_HELP, stdout);
    fputs(CLI_INTERV_HELP, stdout);
    fputs(CLI_SAMPLING_HELP, stdout);
    printf("                   (with --append, --samples is the number to add)\n"
           "  --layers LIST    residual boundaries 0..L to keep, e.g. 0,4,8-12 (default\n"
           "                   all); for attn_out/mlp_out the blocks 0..L-1 to keep\n"
           "  --positions LIST positions to keep: ranges and strides, e.g.\n"
           "                   0-63,64-4095:16 (entries >= T are dropped; default all)\n"
           "  --sites LIST     resid, attn_out, mlp_out (default resid)\n"
           "  --dtype f32|f16  storage type (default f32)\n"
           "  --gzip LEVEL     deflate level 1-9 (default 0: raw; fp32 activations\n"
           "                   shrink only ~8%% at a tenth of the write speed)\n"
           "  --resume         continue OUT.h5.partial left by an interrupted run\n"
           "  --append         add --samples new samples to the finished OUT.h5\n"
           "  -o OUT.h5        output; written as OUT.h5.partial and renamed when complete\n"
           "  -h, --help       this help\n"
           "\n"
           "Sampling: documents are tokenized with BOS first and concatenated; the\n"
           "stream is cut into non-overlapping windows of T tokens that each start at a\n"
           "document start; a seeded shuffle orders them and draws are taken in that\n"
           "order. Ctrl-C or SIGTERM stops after the current sample and leaves\n"
           "OUT.h5.partial with the completed samples; --resume continues it.\n");
}


/* Copies the kept sites and positions of one forward pass into buf:
 * resid (Lk, P, D), then attn_out (Bk, P, D), then mlp_out (Bk, P, D). */
struct capture {
    float *buf;
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
    float *dst = slot_of(c, v->layer, v->site);
    for (int64_t i = 0; i < c->P; i++) {
        int64_t t = c->pos[i] - v->row0;
        if (t >= 0 && t < v->n_rows)
            memcpy(dst + i * c->D, v->data + t * v->ld, (size_t)c->D * sizeof(float));
    }
    return 0;
}

/* The attributes that say which run a file belongs to; --resume and --append
 * require every one of them to match. */
enum { ID_N = 16 };
struct ident {
    const char *name[ID_N];
    const char *value[ID_N];
    int n;
};

static void id_add(struct ident *id, const char *name, const char *value)
{
    id->name[id->n] = name;
    id->value[id->n++] = value ? value : "";
}

static void id_check(struct strata_dump *d, const struct ident *id, const char *file,
                     int skip_from)
{
    for (int i = 0; i < id->n && i < skip_from; i++) {
        char *v = NULL;
        if (strata_dump_get_attr_str(d, id->name[i], &v) != 0)
            cli_die("resume or append with a dump this program wrote", "%s: %s", file,
                    strata_last_error());
        if (strcmp(v, id->value[i]) != 0)
            cli_die("give the same options as the run that wrote it",
                    "%s: attribute `%s` is \"%.200s\" but this run has \"%.200s\"", file,
                    id->name[i], v, id->value[i]);
        free(v);
    }
}

int main(int argc, char **argv)
{
    cli_init("strata-probe-hidden");
    struct cli_model cm = {0};
    struct cli_interv ci;
    cli_interv_init(&ci);
    struct cli_sampling cs;
    cli_sampling_init(&cs);
    const char *out_path = NULL, *layers_s = NULL, *positions_s = NULL;
    const char *sites_s = "resid";
    int64_t gzip = 0;
    bool resume = false, append = false;
    enum strata_dtype dtype = STRATA_F32;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        } else if (cli_model_option(&cm, argc, argv, &i) || cli_interv_option(&ci, argc, argv, &i)) {
        } else if (!strcmp(a, "--positions")) { /* a list; a scheme name went to cli_model */
            positions_s = cli_value(argc, argv, &i);
        } else if (cli_sampling_option(&cs, argc, argv, &i)) {
        } else if (!strcmp(a, "--layers")) {
            layers_s = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--sites")) {
            sites_s = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--gzip")) {
            gzip = cli_int("--gzip", cli_value(argc, argv, &i), 0, 9);
        } else if (!strcmp(a, "--dtype")) {
            const char *v = cli_value(argc, argv, &i);
            if (!strcmp(v, "f32")) dtype = STRATA_F32;
            else if (!strcmp(v, "f16")) dtype = STRATA_F16;
            else cli_die(NULL, "--dtype '%s': expected f32 or f16", v);
        } else if (!strcmp(a, "--resume")) {
            resume = true;
        } else if (!strcmp(a, "--append")) {
            append = true;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            out_path = cli_value(argc, argv, &i);
        } else {
            cli_die("see strata-probe-hidden --help", "unknown option '%s'", a);
        }
    }
    if (!cm.model_path || !cs.corpus_path || !out_path)
        cli_die("see strata-probe-hidden --help", "--model, --corpus and -o are required");
    if (resume && append) cli_die(NULL, "--resume and --append exclude each other");

    cli_model_load(&cm, true);
    cli_interv_apply_model(&ci, &cm);
    struct strata_model *model = cm.model;
    const struct strata_config *cfg = strata_model_config(model);
    const int64_t L = cfg->n_layer, T = cli_sampling_seq_len(&cs, cfg), D = cfg->dim;
    const int64_t n_samples = cs.n_samples;
    const uint64_t seed = cs.seed;
    const int64_t offset = cs.offset;
    const struct strata_corpus_params cpar = cs.cpar;

    /* What to keep. */
    unsigned sites = 0;
    {
        char *s = strdup(sites_s), *save = NULL;
        for (char *w = strtok_r(s, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
            if (!strcmp(w, "resid")) sites |= STRATA_DUMP_RESID;
            else if (!strcmp(w, "attn_out")) sites |= STRATA_DUMP_ATTN_OUT;
            else if (!strcmp(w, "mlp_out")) sites |= STRATA_DUMP_MLP_OUT;
            else cli_die(NULL, "--sites '%s': expected resid, attn_out, mlp_out", sites_s);
        }
        free(s);
        if (!sites) cli_die(NULL, "--sites '%s' names no site", sites_s);
    }
    int64_t n_layers = 0, n_blocks = 0, n_pos = 0;
    int32_t *layers = cli_index_set("--layers", layers_s ? layers_s : "all", L + 1, "boundary",
                                    false, &n_layers);
    int32_t *blocks = NULL;
    if (sites & (STRATA_DUMP_ATTN_OUT | STRATA_DUMP_MLP_OUT)) {
        blocks = malloc((size_t)(n_layers + 1) * sizeof *blocks);
        for (int64_t i = 0; i < n_layers; i++)
            if (layers[i] < L) blocks[n_blocks++] = layers[i];
        if (!n_blocks) cli_die(NULL, "--layers selects no block 0 .. %lld for attn_out/mlp_out",
                               (long long)L - 1);
    }
    int32_t *positions = cli_index_set("--positions", positions_s ? positions_s : "all", T,
                                       "position", true, &n_pos);

    struct strata_corpus *corpus = cli_sampling_open(&cs);

    /* Provenance; the first entries identify the run (checked by --resume
     * and --append), the rest describe it. */
    char *cmd = cli_command_line(argc, argv), *cfg_json = cli_model_config_json(&cm);
    char seed_s[32], T_s[32], off_s[32];
    snprintf(seed_s, sizeof seed_s, "%llu", (unsigned long long)seed);
    snprintf(T_s, sizeof T_s, "%lld", (long long)T);
    snprintf(off_s, sizeof off_s, "%lld", (long long)offset);
    const char *kind = strata_corpus_kind_name(strata_corpus_kind(corpus));
    struct ident id = {0};
    id_add(&id, "model_path", cm.model_path);
    id_add(&id, "model_config", cfg_json);
    id_add(&id, "tokenizer_path", cm.tok_used);
    id_add(&id, "corpus_path", cs.corpus_path);
    id_add(&id, "corpus_format", kind);
    id_add(&id, "separator", strata_corpus_kind(corpus) == STRATA_CORPUS_TEXT ? cpar.sep : "");
    id_add(&id, "jsonl_field", strata_corpus_kind(corpus) == STRATA_CORPUS_JSONL ? cpar.field : "");
    id_add(&id, "seed", seed_s);
    id_add(&id, "seq_len", T_s);
    id_add(&id, "layers_spec", layers_s ? layers_s : "all");
    id_add(&id, "positions_spec", positions_s ? positions_s : "all");
    id_add(&id, "sites", sites_s);
    id_add(&id, "dtype", dtype == STRATA_F16 ? "f16" : "f32");
    char *iv_json = cli_interv_json(&ci, &cm);
    id_add(&id, "interventions", iv_json);
    const int n_ident = id.n; /* sample_offset and below may differ on --append */
    id_add(&id, "sample_offset", off_s);
    id_add(&id, "strata_version", STRATA_VERSION);

    struct strata_dump *dump = NULL;
    struct strata_samples samples = {0};
    int64_t base = 0; /* dump row of samples.tokens row 0 */
    struct strata_dump_info info;
    char partial[4096];
    snprintf(partial, sizeof partial, "%s.partial", out_path);
    if (resume) {
        cli_check(strata_dump_resume(&dump, out_path), "--resume continues OUT.h5.partial");
        id_check(dump, &id, partial, n_ident + 1);
        cli_check(strata_dump_info(dump, &info), NULL);
        /* The rows' windows were recorded at creation: rebuild exactly those. */
        int64_t N = info.n_samples;
        int64_t *win = malloc((size_t)N * sizeof *win), *draw = malloc((size_t)N * sizeof *draw);
        if (!win || !draw) cli_die(NULL, "out of memory");
        cli_check(strata_dump_read_origin(dump, 0, N, NULL, win, draw), NULL);
        cli_check(strata_samples_build_windows(&samples, corpus, cm.tok, win, draw, N, T),
                  "resume with the corpus the run started with");
        free(win);
        free(draw);
        if (info.n_complete > 0) { /* the same corpus gives the same tokens */
            int32_t *tk = malloc((size_t)T * sizeof *tk);
            int64_t s = info.n_complete - 1;
            struct strata_dump *rd = NULL;
            cli_check(strata_dump_open(&rd, partial), NULL);
            cli_check(strata_dump_read_sample(rd, s, NULL, tk), NULL);
            if (memcmp(tk, samples.tokens + s * T, (size_t)T * sizeof *tk) != 0)
                cli_die("resume with the corpus and tokenizer the run started with",
                        "%s: sample %lld's tokens differ from the corpus' window: the corpus "
                        "changed since the run started", partial, (long long)s);
            strata_dump_free(rd);
            free(tk);
        }
    } else if (append) {
        struct strata_dump *rd = NULL;
        cli_check(strata_dump_open(&rd, out_path), "--append adds samples to a finished OUT.h5");
        id_check(rd, &id, out_path, n_ident);
        cli_check(strata_dump_info(rd, &info), NULL);
        int64_t *draw = malloc((size_t)info.n_samples * sizeof *draw), next = 0;
        cli_check(strata_dump_read_origin(rd, 0, info.n_samples, NULL, NULL, draw), NULL);
        for (int64_t s = 0; s < info.n_samples; s++)
            if (draw[s] + 1 > next) next = draw[s] + 1;
        free(draw);
        strata_dump_free(rd);
        /* The seeded order continues: draws next .. next+N-1 are new windows. */
        cli_check(strata_samples_build_range(&samples, corpus, cm.tok, next, n_samples, T, seed),
                  NULL);
        cli_check(strata_dump_append(&dump, out_path, n_samples), NULL);
        base = info.n_samples;
        cli_check(strata_dump_write_origin(dump, base, n_samples, samples.doc, samples.window,
                                           samples.draw), NULL);
    } else {
        cli_check(strata_samples_build_range(&samples, corpus, cm.tok, offset, n_samples, T, seed),
                  NULL);
        struct strata_dump_params dp = {.n_samples = n_samples, .n_layers = n_layers,
                                        .seq_len = T, .dim = D, .dtype = dtype, .gzip = (int)gzip,
                                        .layers = layers, .positions = positions, .n_pos = n_pos,
                                        .sites = sites, .blocks = blocks, .n_blocks = n_blocks};
        if (!(sites & STRATA_DUMP_RESID)) dp.n_layers = 0;
        cli_check(strata_dump_create(&dump, out_path, &dp), NULL);
        char sampling[512];
        cli_sampling_describe(&cs, &samples, sampling, sizeof sampling);
        int rc = strata_dump_write_origin(dump, 0, n_samples, samples.doc, samples.window,
                                          samples.draw);
        for (int i = 0; i < id.n && !rc; i++) rc = strata_dump_set_attr_str(dump, id.name[i], id.value[i]);
        if (!rc) rc = strata_dump_set_attr_str(dump, "command_line", cmd);
        if (!rc) rc = strata_dump_set_attr_str(dump, "sampling", sampling);
        if (!rc) rc = strata_dump_set_attr_i64(dump, "n_windows", samples.n_windows);
        if (rc) {
            strata_dump_free(dump);
            remove(partial);
            cli_check(rc, NULL);
        }
    }
    cli_check(strata_dump_info(dump, &info), NULL);
    const int64_t N = info.n_samples, s0 = info.n_complete;
    n_layers = info.n_layers;

    struct strata_ctx_params cp = strata_ctx_default_params();
    cp.n_ctx = T;
    cli_interv_ctx_params(&ci, &cm, &cp);
    struct strata_ctx *ctx = NULL;
    cli_check(strata_ctx_create(&ctx, model, &cp), NULL);
    cli_interv_attach(&ci, ctx, model, T);
    const int64_t per = (n_layers + ((sites & STRATA_DUMP_ATTN_OUT) ? n_blocks : 0) +
                         ((sites & STRATA_DUMP_MLP_OUT) ? n_blocks : 0)) * n_pos * D;
    struct capture cap = {.P = n_pos, .D = D, .n_layer = L, .pos = positions};
    cap.buf = malloc((size_t)per * sizeof(float)); /* (layers + 2 blocks, P, D) */
    cap.slot_resid = malloc((size_t)(L + 1) * sizeof(int32_t));
    cap.slot_blk = malloc((size_t)(L + 1) * sizeof(int32_t));
    if (!cap.buf || !cap.slot_resid || !cap.slot_blk)
        cli_die("keep fewer layers or positions", "out of memory for one sample's hidden states");
    for (int64_t b = 0; b <= L; b++) cap.slot_resid[b] = cap.slot_blk[b] = -1;
    if (sites & STRATA_DUMP_RESID)
        for (int64_t i = 0; i < n_layers; i++) cap.slot_resid[layers[i]] = (int32_t)i;
    for (int64_t i = 0; i < n_blocks; i++) cap.slot_blk[blocks[i]] = (int32_t)i;
    float *next = cap.buf + ((sites & STRATA_DUMP_RESID) ? n_layers : 0) * n_pos * D;
    if (sites & STRATA_DUMP_ATTN_OUT) {
        cap.attn = next;
        next += n_blocks * n_pos * D;
    }
    if (sites & STRATA_DUMP_MLP_OUT) cap.mlp = next;
    struct strata_observer obs = {.wants = cap_wants, .observe = cap_observe, .user = &cap};
    cli_check(strata_ctx_add_observer(ctx, &obs), NULL);

    cli_catch_stop();
    /* Test hook: behave as if a signal came after this many samples. */
    const char *stop_env = getenv("STRATA_STOP_AFTER");
    int64_t stop_after = stop_env ? strtoll(stop_env, NULL, 10) : -1;
    struct cli_progress prog;
    cli_progress_start(&prog);
    int rc = 0;
    int64_t s = s0;
    for (; s < N && !rc && !cli_stop_requested; s++) {
        const int32_t *toks = samples.tokens + (s - base) * T; /* (T) */
        if ((rc = strata_forward(ctx, NULL, toks, T, STRATA_LOGITS_NONE))) break;
        for (int64_t i = 0; i < per; i++) {
            if (!isfinite(cap.buf[i])) {
                strata_dump_free(dump);
                cli_die("the checkpoint's weights may be corrupt",
                        "%s: non-finite hidden state at sample %lld (kept entry %lld, position "
                        "%d); %s keeps the samples before it", cm.model_path, (long long)s,
                        (long long)(i / (n_pos * D)), (int)positions[i / D % n_pos], partial);
            }
        }
        rc = strata_dump_write_sample(dump, s, cap.buf, toks);
        cli_progress(&prog, s + 1 - s0, N - s0, (s + 1 - s0) * T, 0);
        if (stop_after >= 0 && s + 1 - s0 >= stop_after) cli_stop_requested = 1;
        if (!rc) cli_test_pause_point(s + 1 - s0);
    }
    int status = 0;
    if (!rc && cli_stop_requested && s < N) {
        cli_progress(&prog, s - s0, N - s0, (s - s0) * T, 1);
        fprintf(stderr, "%s: interrupted after %lld of %lld samples; the completed samples are in "
                "%s (continue with --resume)\n", cli_prog, (long long)s, (long long)N, partial);
        status = 130;
    } else if (!rc && !(rc = strata_dump_finish(dump))) {
        cli_progress(&prog, N - s0, N - s0, (N - s0) * T, 1);
        fprintf(stderr, "%s: wrote %s (%lld samples x %lld layers x %lld positions x %lld dims)\n",
                cli_prog, out_path, (long long)N, (long long)n_layers, (long long)n_pos,
                (long long)D);
    }
    strata_dump_free(dump);
    /* A failed run keeps its .partial: the completed samples stay usable. */
    if (rc) cli_check(rc, "the completed samples stay in OUT.h5.partial");
    free(cap.buf);
    free(cap.slot_resid);
    free(cap.slot_blk);
    strata_ctx_free(ctx);
    cli_interv_free(&ci);
    free(iv_json);
    strata_samples_free(&samples);
    free(cmd);
    free(cfg_json);
    free(layers);
    free(blocks);
    free(positions);
    strata_corpus_free(corpus);
    cli_model_free(&cm);
    return status;
}
