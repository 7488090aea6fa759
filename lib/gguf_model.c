/* gguf_model.c — Llama-family ("llama") and Baichuan ("baichuan") models
 * from GGUF files (gguf.c parses them); docs/CHECKPOINTS.md is the
 * user-facing description.
 *
 * Config from the metadata ({arch}.block_count, embedding_length,
 * feed_forward_length, attention.head_count(_kv), key_length,
 * layer_norm_rms_epsilon, rope.freq_base, context_length, rope.scaling.*),
 * the vocabulary size from token_embd.weight. Every tensor of the file must
 * be one strata uses (or Llama 3's rope_freqs.weight): an extra tensor
 * (biases, experts, extra norms) means an architecture strata would run
 * wrongly, so it is refused by name, as llama.cpp refuses it.
 *
 * Weights: F32, F16 and BF16 tensors stay in the mapping in their stored
 * dtype and are widened per block by the forward pass, as for safetensors.
 * Q8_0, Q4_0, Q4_K and Q6_K tensors are dequantized once, at load, into
 * float32 buffers the model owns (quant.c): simplest, and exact, at 4 bytes
 * a weight of memory (checked against the machine's memory first).
 *
 * RoPE: llama.cpp's converters permute q/k rows of Hugging Face checkpoints
 * back to Meta's interleaved pairs (rope type NORM), so a GGUF Llama or
 * Baichuan is STRATA_POS_ROPE_INTERLEAVED, like llama2.c; Baichuan 13B
 * (5120 wide, 40 blocks) is ALiBi, as llama.cpp decides it.
 */
#include "gguf.h"
#include "model.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Loader state: the model, its file, and which tensors were taken. */
struct ld {
    struct strata_model *m;
    struct strata_gguf *g;
    bool *used; /* (n_t) */
};

static int64_t find_tensor(const struct strata_gguf *g, const char *name)
{
    int64_t lo = 0, hi = g->n_t - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(g->t[g->by_name[mid]].name, name);
        if (!c) return g->by_name[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

/* The tensor `name` as a weight of shape (rows, cols), or (rows) when cols
 * is 0: GGUF writes ne reversed, so a (rows, cols) matrix is ne = [cols,
 * rows]. F32/F16/BF16 stay mapped; block types are dequantized here. */
static int get_w(struct ld *x, struct strata_w *out, const char *name, int64_t rows, int64_t cols)
{
    struct strata_gguf *g = x->g;
    const int64_t i = find_tensor(g, name);
    if (i < 0)
        return strata_fail(STRATA_E_FORMAT, "%s: tensor \"%s\" is missing from the GGUF", g->path,
                           name);
    const struct gguf_tensor *t = &g->t[i];
    bool ok = cols ? t->n_dim == 2 && t->ne[0] == cols && t->ne[1] == rows
                   : t->n_dim == 1 && t->ne[0] == rows;
    if (!ok) {
        char have[128];
        int k = snprintf(have, sizeof have, "[");
        for (uint32_t j = 0; j < t->n_dim; j++)
            k += snprintf(have + k, sizeof have - (size_t)k, j ? ", %lld" : "%lld", (long long)t->ne[j]);
        snprintf(have + k, sizeof have - (size_t)k, "]");
        char want[64];
        if (cols) snprintf(want, sizeof want, "[%lld, %lld]", (long long)cols, (long long)rows);
        else snprintf(want, sizeof want, "[%lld]", (long long)rows);
        return strata_fail(STRATA_E_SHAPE,
                           "%s: tensor \"%s\" has ne %s but the metadata implies %s; the weights "
                           "do not belong to this metadata", g->path, name, have, want);
    }
    x->used[i] = true;
    out->n = t->n_elem;
    if (t->type == GGML_F32 || t->type == GGML_F16 || t->type == GGML_BF16) {
        struct strata_tensor *v = &g->view[i];
        v->name = t->name;
        v->dtype = t->type == GGML_F32 ? STRATA_DT_F32 : t->type == GGML_F16 ? STRATA_DT_F16
                                                                             : STRATA_DT_BF16;
        v->n_dim = 1;
        v->shape[0] = t->n_elem;
        v->n_elem = t->n_elem;
        v->data = t->data;
        v->file = g->path;
        out->data = t->data;
        out->dtype = v->dtype;
        out->t = v;
        return 0;
    }
    if (!strata_quant_supported(t->type))
        return strata_fail(STRATA_E_FORMAT,
                           "%s: tensor \"%s\" has type %s; strata reads F32, F16, BF16, Q8_0, "
                           "Q4_0, Q4_K and Q6_K (requantize, e.g. llama-quantize to Q8_0 or "
                           "Q4_K_M, or use an F16 GGUF)",
                           g->path, name, strata_ggml_type_name(t->type));
    if (!g->deq[i]) {
        g->deq[i] = xmalloc((size_t)t->n_elem * sizeof(float) + 1);
        strata_dequantize(g->deq[i], t->data, t->type, t->n_elem);
    }
    out->data = g->deq[i];
    out->dtype = STRATA_DT_F32;
    out->t = NULL;
    return 0;
}

/* Dequantized copies cost 4 bytes a weight: refuse before allocating what
 * the machine cannot hold (a 7B Q4_K model needs 27 GB). */
static int check_dequant_memory(const struct strata_gguf *g)
{
    double bytes = 0.0;
    for (int64_t i = 0; i < g->n_t; i++)
        if (strata_quant_supported(g->t[i].type)) bytes += 4.0 * (double)g->t[i].n_elem;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    double mem = pages > 0 && page > 0 ? (double)pages * (double)page : 0.0;
    if (mem > 0.0 && bytes > mem)
        return strata_fail(STRATA_E_NOMEM,
                           "%s: the quantized tensors are dequantized to float32 at load and "
                           "need %.1f GiB, more than this machine's %.1f GiB; use a smaller "
                           "model or a machine with more memory",
                           g->path, bytes / 1073741824.0, mem / 1073741824.0);
    return 0;
}

/* Llama 3.x GGUFs carry their RoPE scaling as rope_freqs.weight (d/2
 * divisors of the frequencies) instead of metadata. Recognise Meta's
 * llama3 scheme (low 1, high 4, original window 8192, factor = the largest
 * divisor) and refuse anything else rather than run other frequencies. */
static int rope_freqs(struct ld *x, int64_t i)
{
    struct strata_config *c = &x->m->cfg;
    const struct gguf_tensor *t = &x->g->t[i];
    const int64_t half = c->head_dim / 2;
    x->used[i] = true;
    if (c->head_dim % 2 || t->type != GGML_F32 || t->n_dim != 1 || t->ne[0] != half)
        return strata_fail(STRATA_E_FORMAT, "%s: tensor \"rope_freqs.weight\" must be F32 of %lld "
                           "values (half the head width %d, which must be even)", x->g->path,
                           (long long)half, (int)c->head_dim);
    float *f = xmalloc((size_t)half * sizeof *f);
    double *base = xmalloc((size_t)half * sizeof *base), *sc = xmalloc((size_t)half * sizeof *sc);
    memcpy(f, t->data, (size_t)half * sizeof *f);
    float fbig = 0.0f;
    bool ones = true;
    for (int64_t k = 0; k < half; k++) {
        if (!(f[k] >= 1.0f) || !isfinite(f[k])) fbig = NAN;
        else if (f[k] > fbig) fbig = f[k];
        ones = ones && f[k] == 1.0f;
    }
    int rc = 0;
    struct strata_rope_scaling_params p = {.type = STRATA_SCALING_LLAMA3, .factor = (double)fbig,
                                           .original_max = 8192, .low_freq_factor = 1.0,
                                           .high_freq_factor = 4.0, .beta_fast = 32.0,
                                           .beta_slow = 1.0};
    bool match = !ones && fbig >= 1.0f;
    if (match) {
        strata_rope_freqs(base, c->head_dim, c->rope_base, NULL, 0);
        strata_rope_freqs(sc, c->head_dim, c->rope_base, &p, 0);
        for (int64_t k = 0; k < half && match; k++)
            match = fabs(base[k] / sc[k] - (double)f[k]) <= 1e-4 * (double)f[k];
    }
    if (!ones && !match)
        rc = strata_fail(STRATA_E_FORMAT,
                         "%s: tensor \"rope_freqs.weight\" holds per-frequency RoPE divisors that "
                         "are not Llama 3's scheme (factor, low 1, high 4, original window 8192); "
                         "strata cannot reproduce them",
                         x->g->path);
    else if (!ones && c->scaling.type != STRATA_SCALING_NONE)
        rc = strata_fail(STRATA_E_FORMAT, "%s: both rope.scaling metadata and rope_freqs.weight "
                         "are given; which one applies is unclear", x->g->path);
    else if (!ones)
        c->scaling = p;
    free(f);
    free(base);
    free(sc);
    return rc;
}

static int read_scaling(struct ld *x, const char *arch)
{
    struct strata_gguf *g = x->g;
    struct strata_config *c = &x->m->cfg;
    char k[160];
#define KEY(s) (snprintf(k, sizeof k, "%s.%s", arch, s), k)
    const char *type;
    size_t tn;
    double factor, lin, bf, bs, attn;
    int64_t orig;
    int rc;
    if ((rc = strata_gguf_str(g, KEY("rope.scaling.type"), &type, &tn)) ||
        (rc = strata_gguf_num(g, KEY("rope.scaling.factor"), 0.0, &factor)) ||
        (rc = strata_gguf_num(g, KEY("rope.scale_linear"), 0.0, &lin)) ||
        (rc = strata_gguf_int(g, KEY("rope.scaling.original_context_length"), 0, 0,
                              (int64_t)1 << 40, &orig)) ||
        (rc = strata_gguf_num(g, KEY("rope.scaling.yarn_beta_fast"), 32.0, &bf)) ||
        (rc = strata_gguf_num(g, KEY("rope.scaling.yarn_beta_slow"), 1.0, &bs)) ||
        (rc = strata_gguf_num(g, KEY("rope.scaling.yarn_attn_factor"), 1.0, &attn)))
        return rc;
    struct strata_rope_scaling_params *p = &c->scaling;
    memset(p, 0, sizeof *p);
    if (factor == 0.0) factor = lin;
    bool none = !type ? !(lin > 0.0 && lin != 1.0) : tn == 4 && !memcmp(type, "none", 4);
    if (none) return 0;
    bool linear = !type || (tn == 6 && !memcmp(type, "linear", 6));
    bool yarn = type && tn == 4 && !memcmp(type, "yarn", 4);
    if (!linear && !yarn)
        return strata_fail(STRATA_E_FORMAT, "%s: %s.rope.scaling.type \"%.*s\" is not supported "
                           "(none, linear, yarn)", g->path, arch, (int)(tn > 64 ? 64 : tn), type);
    if (!(factor >= 1.0))
        return strata_fail(STRATA_E_FORMAT, "%s: %s.rope.scaling.factor %g must be >= 1", g->path,
                           arch, factor);
    p->type = linear ? STRATA_SCALING_LINEAR : STRATA_SCALING_YARN;
    p->factor = factor;
    p->original_max = orig > 0 ? orig : c->seq_len;
    p->low_freq_factor = 1.0;
    p->high_freq_factor = 4.0;
    p->beta_fast = bf;
    p->beta_slow = bs;
    /* llama.cpp multiplies its yarn_attn_factor into 0.1 ln s + 1. */
    if (yarn && attn != 1.0) p->attention_factor = attn * (0.1 * log(factor) + 1.0);
    return 0;
#undef KEY
}

static int load_config(struct ld *x, const char *arch, bool baichuan)
{
    struct strata_gguf *g = x->g;
    struct strata_config *c = &x->m->cfg;
    char k[160];
#define KEY(s) (snprintf(k, sizeof k, "%s.%s", arch, s), k)
    const int64_t BIG = (int64_t)1 << 20;
    int64_t L, D, F, H, G, dk, dv, nrot, C, E;
    double eps, theta;
    int rc;
    if ((rc = strata_gguf_int(g, KEY("block_count"), -1, 1, 4096, &L)) ||
        (rc = strata_gguf_int(g, KEY("embedding_length"), -1, 1, BIG, &D)) ||
        (rc = strata_gguf_int(g, KEY("feed_forward_length"), -1, 1, 8 * BIG, &F)) ||
        (rc = strata_gguf_int(g, KEY("attention.head_count"), -1, 1, 65536, &H)) ||
        (rc = strata_gguf_int(g, KEY("attention.head_count_kv"), H, 1, H, &G)) ||
        (rc = strata_gguf_int(g, KEY("expert_count"), 0, 0, INT32_MAX, &E)))
        return rc;
    if (E > 0)
        return strata_fail(STRATA_E_FORMAT, "%s: %s.expert_count %lld: mixture-of-experts models "
                           "are not supported", g->path, arch, (long long)E);
    if (H % G)
        return strata_fail(STRATA_E_FORMAT, "%s: %s.attention.head_count %lld is not a multiple "
                           "of head_count_kv %lld", g->path, arch, (long long)H, (long long)G);
    if (baichuan && G != H)
        return strata_fail(STRATA_E_FORMAT, "%s: Baichuan has no grouped-query attention but "
                           "head_count_kv %lld != head_count %lld", g->path, (long long)G,
                           (long long)H);
    if (!strata_gguf_kv(g, KEY("attention.key_length")) && D % H)
        return strata_fail(STRATA_E_FORMAT, "%s: %s.embedding_length %lld is not divisible by "
                           "head_count %lld and there is no attention.key_length", g->path, arch,
                           (long long)D, (long long)H);
    if ((rc = strata_gguf_int(g, KEY("attention.key_length"), D / H, 1, 65536, &dk)) ||
        (rc = strata_gguf_int(g, KEY("attention.value_length"), dk, 1, 65536, &dv)) ||
        (rc = strata_gguf_int(g, KEY("rope.dimension_count"), dk, 0, 65536, &nrot)) ||
        (rc = strata_gguf_num(g, KEY("rope.freq_base"), 10000.0, &theta)) ||
        (rc = strata_gguf_num(g, KEY("attention.layer_norm_rms_epsilon"), (double)NAN, &eps)) ||
        (rc = strata_gguf_int(g, KEY("context_length"), -1, 1, (int64_t)1 << 40, &C)))
        return rc;
    if (!(eps > 0.0 && eps < 1.0))
        return strata_fail(STRATA_E_FORMAT, "%s: %s.attention.layer_norm_rms_epsilon %g must be in "
                           "(0, 1)", g->path, arch, eps);
    if (dv != dk)
        return strata_fail(STRATA_E_FORMAT, "%s: key_length %lld != value_length %lld is not "
                           "supported", g->path, (long long)dk, (long long)dv);
    if (nrot != dk)
        return strata_fail(STRATA_E_FORMAT, "%s: %s.rope.dimension_count %lld differs from the "
                           "head width %lld; partial rotary embeddings are not supported",
                           g->path, arch, (long long)nrot, (long long)dk);
    c->dim = (int32_t)D;
    c->hidden_dim = (int32_t)F;
    c->n_layer = (int32_t)L;
    c->n_head = (int32_t)H;
    c->n_kv_head = (int32_t)G;
    c->head_dim = (int32_t)dk;
    c->seq_len = C > INT32_MAX ? INT32_MAX : (int32_t)C;
    c->norm_eps = (float)eps;
    c->rope_base = theta;
    c->sliding_window = 0;
    /* llama.cpp's baichuan graph: ALiBi for the 13B shape, RoPE otherwise;
     * it has no NormHead (Baichuan 2 GGUFs are made from a checkpoint whose
     * lm_head was normalized first, as Baichuan 2's README says). */
    c->pos = baichuan && D == 5120 && L == 40 ? STRATA_POS_ALIBI : STRATA_POS_ROPE_INTERLEAVED;
    return read_scaling(x, arch);
#undef KEY
}

static int load_weights(struct ld *x)
{
    struct strata_model *m = x->m;
    struct strata_gguf *g = x->g;
    struct strata_config *c = &m->cfg;
    const int64_t D = c->dim, F = c->hidden_dim, d = c->head_dim;
    const int64_t Hd = (int64_t)c->n_head * d, kvd = (int64_t)c->n_kv_head * d;
    int rc;
    const int64_t e = find_tensor(g, "token_embd.weight");
    if (e < 0 || g->t[e].n_dim != 2 || g->t[e].ne[0] != D || g->t[e].ne[1] < 1 ||
        g->t[e].ne[1] > (1 << 24))
        return strata_fail(STRATA_E_FORMAT, "%s: tensor \"token_embd.weight\" is %s; it must be "
                           "ne [%lld, V] with 1 <= V <= 2^24", g->path,
                           e < 0 ? "missing" : "of another shape", (long long)D);
    const int64_t V = g->t[e].ne[1];
    c->vocab_size = (int32_t)V;
    int64_t v_meta;
    char k[160];
    snprintf(k, sizeof k, "%s.vocab_size", m->arch);
    if ((rc = strata_gguf_int(g, k, V, 1, 1 << 24, &v_meta))) return rc;
    const struct gguf_kv *toks = strata_gguf_kv(g, "tokenizer.ggml.tokens");
    if (v_meta != V || (toks && toks->type == GGUF_ARR && toks->n != (uint64_t)V))
        return strata_fail(STRATA_E_SHAPE, "%s: token_embd.weight has %lld rows but %s says %llu "
                           "tokens", g->path, (long long)V,
                           v_meta != V ? k : "tokenizer.ggml.tokens",
                           (unsigned long long)(v_meta != V ? (uint64_t)v_meta : toks->n));
    if ((rc = get_w(x, &m->tok_emb, "token_embd.weight", V, D))) return rc;
    if ((rc = get_w(x, &m->rms_final, "output_norm.weight", D, 0))) return rc;
    c->shared_classifier = find_tensor(g, "output.weight") < 0;
    if (c->shared_classifier) m->wcls = m->tok_emb;
    else if ((rc = get_w(x, &m->wcls, "output.weight", V, D))) return rc;
    m->blocks = xcalloc((size_t)c->n_layer, sizeof *m->blocks);
    char name[96];
    for (int32_t l = 0; l < c->n_layer; l++) {
        struct strata_block_w *b = &m->blocks[l];
#define W(field, suffix, rows, cols)                                            \
    do {                                                                        \
        snprintf(name, sizeof name, "blk.%d.%s", (int)l, suffix);               \
        if ((rc = get_w(x, &b->field, name, rows, cols))) return rc;            \
    } while (0)
        W(rms_att, "attn_norm.weight", D, 0);
        W(wq, "attn_q.weight", Hd, D);
        W(wk, "attn_k.weight", kvd, D);
        W(wv, "attn_v.weight", kvd, D);
        W(wo, "attn_output.weight", D, Hd);
        W(rms_ffn, "ffn_norm.weight", D, 0);
        W(w1, "ffn_gate.weight", F, D);
        W(w2, "ffn_down.weight", D, F);
        W(w3, "ffn_up.weight", F, D);
#undef W
    }
    for (int64_t i = 0; i < g->n_t; i++) {
        if (x->used[i]) continue;
        if (!strcmp(g->t[i].name, "rope_freqs.weight")) {
            if ((rc = rope_freqs(x, i))) return rc;
            continue;
        }
        return strata_fail(STRATA_E_FORMAT,
                           "%s: tensor \"%s\" is not part of a %s model as strata reads it "
                           "(biases, experts, extra norms and other layers are not supported)",
                           g->path, g->t[i].name, m->arch);
    }
    return 0;
}

int strata_gguf_load(struct strata_model *m, const char *path)
{
    struct stat st;
    char *file = NULL;
    int rc;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        rc = strata_gguf_dir_file(&file, path);
        if (rc == 1)
            return strata_fail(STRATA_E_IO, "%s: no config.json and no .gguf file: not a "
                               "checkpoint directory", path);
        if (rc) return rc;
        m->dir = strata_xstrdup(path);
    } else {
        file = strata_xstrdup(path);
        const char *slash = strrchr(path, '/');
        m->dir = slash ? strata_xstrndup(path, (size_t)(slash - path)) : strata_xstrdup(".");
    }
    rc = strata_gguf_open(&m->gguf, file, true);
    free(file);
    if (rc) return rc;
    struct strata_gguf *g = m->gguf;
    m->format = "gguf";
    if (g->n_t == 0)
        return strata_fail(STRATA_E_FORMAT, "%s: the GGUF holds no tensors (a vocabulary-only "
                           "file?); it can serve as --tokenizer but not as --model", g->path);
    const char *arch;
    size_t an;
    if ((rc = strata_gguf_str(g, "general.architecture", &arch, &an))) return rc;
    if (!arch)
        return strata_fail(STRATA_E_FORMAT, "%s: no general.architecture: not a model GGUF",
                           g->path);
    const bool baichuan = an == 8 && !memcmp(arch, "baichuan", 8);
    if (!baichuan && !(an == 5 && !memcmp(arch, "llama", 5)))
        return strata_fail(STRATA_E_FORMAT, "%s: general.architecture \"%.*s\" is not supported "
                           "(llama, baichuan)", g->path, (int)(an > 64 ? 64 : an), arch);
    m->arch = strata_xstrndup(arch, an);
    if ((rc = check_dequant_memory(g))) return rc;
    struct ld x = {m, g, xcalloc((size_t)g->n_t, sizeof(bool))};
    rc = load_config(&x, m->arch, baichuan);
    if (!rc) rc = load_weights(&x);
    free(x.used);
    return rc;
}

bool strata_gguf_is_model_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) return false;
    if (S_ISREG(st.st_mode)) return strata_gguf_sniff(path);
    if (!S_ISDIR(st.st_mode)) return false;
    char *cfg = strata_path_join(path, "config.json");
    bool hf = stat(cfg, &st) == 0;
    free(cfg);
    if (hf) return false;
    char *file = NULL;
    int rc = strata_gguf_dir_file(&file, path); /* several: load names them */
    free(file);
    return rc != 1;
}
