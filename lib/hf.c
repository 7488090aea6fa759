/* hf.c — Hugging Face checkpoints (Llama, Mistral, Baichuan 2): config.json
 * to strata_config, weights by name from safetensors or torch .bin files
 * (tensors.c), shards through their index. docs/CHECKPOINTS.md is the spec.
 *
 * Why so strict: a config field that is silently defaulted or a tensor of
 * the wrong shape gives a model that runs and produces plausible but wrong
 * hidden states, which is the worst outcome for an interpretability tool.
 * So every field is type- and range-checked, every tensor's shape is checked
 * against the config, and every error names the file and the field.
 */
#include "model.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

bool strata_hf_is_weight_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    unsigned char h[9];
    size_t n = fread(h, 1, sizeof h, f);
    fclose(f);
    if (n >= 4 && h[0] == 'P' && h[1] == 'K' && h[2] == 3 && h[3] == 4) return true;
    /* safetensors: u64 header length, then the JSON header's '{'. A llama2.c
     * checkpoint starts with dim, hidden_dim as int32, so byte 8 is the low
     * byte of n_layers, never '{' (123) in practice... but check the length
     * too: a header longer than 100 MB is not a header. */
    if (n < 9 || h[8] != '{') return false;
    uint64_t len = 0;
    for (int i = 7; i >= 0; i--) len = len << 8 | h[i];
    return len >= 2 && len < 100u * 1000 * 1000;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* ------------------------------------------------------------ config.json */

struct cfg_reader {
    const cJSON *root;
    const char *path;
};

/* Integer field in [lo, hi]; `dflt` < lo means required. */
static int cfg_int(const struct cfg_reader *r, const char *key, int64_t dflt, int64_t lo,
                   int64_t hi, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->root, key);
    if (!v || cJSON_IsNull(v)) {
        if (dflt < lo)
            return strata_fail(STRATA_E_FORMAT, "%s: required field \"%s\" is missing", r->path,
                               key);
        *out = dflt;
        return 0;
    }
    double x = cJSON_IsNumber(v) ? v->valuedouble : (double)NAN;
    if (!(x == floor(x)) || x < (double)lo || x > (double)hi)
        return strata_fail(STRATA_E_FORMAT,
                           "%s: field \"%s\" must be an integer in %lld..%lld", r->path, key,
                           (long long)lo, (long long)hi);
    *out = (int64_t)x;
    return 0;
}

static int cfg_num(const struct cfg_reader *r, const char *key, double dflt, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->root, key);
    if (!v || cJSON_IsNull(v)) {
        if (isnan(dflt)) /* NAN marks a required field */
            return strata_fail(STRATA_E_FORMAT, "%s: required field \"%s\" is missing", r->path,
                               key);
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return strata_fail(STRATA_E_FORMAT, "%s: field \"%s\" must be a finite number", r->path,
                           key);
    *out = v->valuedouble;
    return 0;
}

static int cfg_bool(const struct cfg_reader *r, const char *key, bool dflt, bool *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->root, key);
    if (!v || cJSON_IsNull(v)) {
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsBool(v))
        return strata_fail(STRATA_E_FORMAT, "%s: field \"%s\" must be true or false", r->path,
                           key);
    *out = cJSON_IsTrue(v);
    return 0;
}

/* String field or NULL when absent/null; a non-string is an error. */
static int cfg_str(const struct cfg_reader *r, const char *key, const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->root, key);
    *out = NULL;
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsString(v))
        return strata_fail(STRATA_E_FORMAT, "%s: field \"%s\" must be a string", r->path, key);
    *out = v->valuestring;
    return 0;
}

enum arch { ARCH_LLAMA, ARCH_MISTRAL, ARCH_BAICHUAN };

static int parse_rope_scaling(const struct cfg_reader *top, const cJSON *rs, int64_t max_pos,
                              struct strata_rope_scaling_params *p)
{
    memset(p, 0, sizeof *p);
    if (!rs || cJSON_IsNull(rs)) return 0;
    if (!cJSON_IsObject(rs))
        return strata_fail(STRATA_E_FORMAT, "%s: field \"rope_scaling\" must be an object or null",
                           top->path);
    /* Field errors read "config.json: rope_scaling: field ..." */
    char where[4096];
    snprintf(where, sizeof where, "%s: rope_scaling", top->path);
    struct cfg_reader r = {rs, where};
    const char *type;
    int rc = cfg_str(&r, "rope_type", &type);
    if (!rc && !type) rc = cfg_str(&r, "type", &type);
    if (rc) return rc;
    if (!type)
        return strata_fail(STRATA_E_FORMAT, "%s: needs \"rope_type\" (or \"type\")", where);
    static const char *names[] = {"default", "linear", "dynamic", "yarn", "llama3"};
    int t = -1;
    for (int i = 0; i < 5; i++)
        if (!strcmp(type, names[i])) t = i;
    if (t < 0)
        return strata_fail(STRATA_E_FORMAT,
                           "%s: type \"%s\" is not supported (default, linear, dynamic, yarn, "
                           "llama3)",
                           where, type);
    if (t == 0) return 0;
    p->type = (enum strata_rope_scaling)t;
    int64_t omax = 0;
    if ((rc = cfg_num(&r, "factor", (double)NAN, &p->factor))) return rc;
    if (!(p->factor >= 1.0))
        return strata_fail(STRATA_E_FORMAT, "%s: factor %g must be >= 1", where, p->factor);
    bool need_omax = p->type == STRATA_SCALING_LLAMA3;
    if ((rc = cfg_int(&r, "original_max_position_embeddings", need_omax ? -1 : max_pos, 1,
                      (int64_t)1 << 40, &omax)))
        return rc;
    p->original_max = omax;
    p->low_freq_factor = 1.0;
    p->high_freq_factor = 4.0;
    p->beta_fast = 32.0;
    p->beta_slow = 1.0;
    if (p->type == STRATA_SCALING_LLAMA3) {
        if ((rc = cfg_num(&r, "low_freq_factor", (double)NAN, &p->low_freq_factor))) return rc;
        if ((rc = cfg_num(&r, "high_freq_factor", (double)NAN, &p->high_freq_factor))) return rc;
    }
    if (p->type == STRATA_SCALING_YARN) {
        /* DeepSeek's variant changes the attention factor; refuse rather than guess. */
        if (cJSON_GetObjectItemCaseSensitive(rs, "mscale") ||
            cJSON_GetObjectItemCaseSensitive(rs, "mscale_all_dim"))
            return strata_fail(STRATA_E_FORMAT, "%s: yarn with mscale/mscale_all_dim is not supported",
                               where);
        if ((rc = cfg_num(&r, "beta_fast", 32.0, &p->beta_fast))) return rc;
        if ((rc = cfg_num(&r, "beta_slow", 1.0, &p->beta_slow))) return rc;
        if ((rc = cfg_num(&r, "attention_factor", 0.0, &p->attention_factor))) return rc;
    }
    return 0;
}

/* Head width: head_dim, else hidden_size / num_attention_heads. */
static int cfg_head_dim(const struct cfg_reader *r, int64_t D, int64_t H, int64_t *d)
{
    if (!cJSON_GetObjectItemCaseSensitive(r->root, "head_dim") && D % H)
        return strata_fail(STRATA_E_FORMAT,
                           "%s: hidden_size %lld is not divisible by num_attention_heads %lld "
                           "and there is no \"head_dim\"",
                           r->path, (long long)D, (long long)H);
    return cfg_int(r, "head_dim", D / H > 0 ? D / H : 1, 1, 65536, d);
}

/* Trained window: max_position_embeddings, else Baichuan's model_max_length;
 * 0 when neither is there and it is not required. */
static int cfg_window(const struct cfg_reader *r, bool required, int64_t *C)
{
    const char *cmax = cJSON_GetObjectItemCaseSensitive(r->root, "max_position_embeddings")
                           ? "max_position_embeddings"
                           : "model_max_length";
    if (!cJSON_GetObjectItemCaseSensitive(r->root, cmax)) {
        *C = 0;
        if (!required) return 0;
        return strata_fail(STRATA_E_FORMAT,
                           "%s: needs \"max_position_embeddings\" (or Baichuan's "
                           "\"model_max_length\") for the trained context window",
                           r->path);
    }
    return cfg_int(r, cmax, -1, 1, (int64_t)1 << 40, C);
}

/* qsort: strings. */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A key given twice in obj or in an object inside it: which value would be
 * meant? (cJSON keeps both and answers with the first.) NULL if none. */
static const char *dup_key(const cJSON *obj)
{
    int n = cJSON_GetArraySize(obj);
    if (n < 2) return NULL;
    const char **keys = xmalloc((size_t)n * sizeof *keys);
    int k = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, obj) keys[k++] = x->string ? x->string : "";
    qsort(keys, (size_t)k, sizeof *keys, cmp_str);
    const char *dup = NULL;
    for (int i = 1; i < k && !dup; i++)
        if (!strcmp(keys[i - 1], keys[i])) dup = keys[i];
    free(keys);
    cJSON_ArrayForEach(x, obj) if (!dup && cJSON_IsObject(x)) dup = dup_key(x);
    return dup;
}

static int parse_config(struct strata_model *m, const cJSON *root, const char *path,
                        enum arch *arch)
{
    struct cfg_reader r = {root, path};
    struct strata_config *c = &m->cfg;
    if (!cJSON_IsObject(root))
        return strata_fail(STRATA_E_FORMAT, "%s: not a JSON object", path);
    const char *dup = dup_key(root);
    if (dup)
        return strata_fail(STRATA_E_FORMAT, "%s: field \"%s\" is given twice; keep one", path, dup);
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const cJSON *a0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    if (!cJSON_IsString(a0))
        return strata_fail(STRATA_E_FORMAT,
                           "%s: field \"architectures\" must be a list naming the model class "
                           "(e.g. [\"LlamaForCausalLM\"])",
                           path);
    const char *name = a0->valuestring;
    if (!strcmp(name, "LlamaForCausalLM")) *arch = ARCH_LLAMA;
    else if (!strcmp(name, "MistralForCausalLM")) *arch = ARCH_MISTRAL;
    else if (!strcmp(name, "BaichuanForCausalLM") || !strcmp(name, "BaiChuanForCausalLM"))
        *arch = ARCH_BAICHUAN;
    else
        return strata_fail(STRATA_E_FORMAT,
                           "%s: architecture \"%s\" is not supported (LlamaForCausalLM, "
                           "MistralForCausalLM, BaichuanForCausalLM)",
                           path, name);
    m->arch = strata_xstrdup(name);

    int64_t D, F, L, H, G, d, V, C, W;
    int rc;
    const int64_t BIG = (int64_t)1 << 20;
    if ((rc = cfg_int(&r, "hidden_size", -1, 1, BIG, &D))) return rc;
    if ((rc = cfg_int(&r, "intermediate_size", -1, 1, 8 * BIG, &F))) return rc;
    if ((rc = cfg_int(&r, "num_hidden_layers", -1, 1, 4096, &L))) return rc;
    if ((rc = cfg_int(&r, "num_attention_heads", -1, 1, 65536, &H))) return rc;
    if ((rc = cfg_int(&r, "num_key_value_heads", H, 1, H, &G))) return rc;
    if (H % G)
        return strata_fail(STRATA_E_FORMAT,
                           "%s: num_attention_heads %lld is not a multiple of "
                           "num_key_value_heads %lld",
                           path, (long long)H, (long long)G);
    if ((rc = cfg_head_dim(&r, D, H, &d))) return rc;
    if ((rc = cfg_int(&r, "vocab_size", -1, 1, 1 << 24, &V))) return rc;
    if ((rc = cfg_window(&r, true, &C))) return rc;
    if ((rc = cfg_int(&r, "sliding_window", 0, 0, (int64_t)1 << 40, &W))) return rc;
    double eps, theta;
    if ((rc = cfg_num(&r, "rms_norm_eps", 1e-6, &eps))) return rc;
    if ((rc = cfg_num(&r, "rope_theta", 10000.0, &theta))) return rc;
    bool tie, attn_bias, mlp_bias;
    if ((rc = cfg_bool(&r, "tie_word_embeddings", false, &tie))) return rc;
    if ((rc = cfg_bool(&r, "attention_bias", false, &attn_bias))) return rc;
    if ((rc = cfg_bool(&r, "mlp_bias", false, &mlp_bias))) return rc;
    if (attn_bias || mlp_bias)
        return strata_fail(STRATA_E_FORMAT, "%s: field \"%s\" is true; biases are not supported",
                           path, attn_bias ? "attention_bias" : "mlp_bias");
    const char *act, *pe;
    if ((rc = cfg_str(&r, "hidden_act", &act))) return rc;
    if (act && strcmp(act, "silu"))
        return strata_fail(STRATA_E_FORMAT,
                           "%s: field \"hidden_act\" is \"%s\"; only \"silu\" (SwiGLU) is supported",
                           path, act);
    if ((rc = cfg_str(&r, "position_embedding", &pe))) return rc;

    c->dim = (int32_t)D;
    c->hidden_dim = (int32_t)F;
    c->n_layer = (int32_t)L;
    c->n_head = (int32_t)H;
    c->n_kv_head = (int32_t)G;
    c->head_dim = (int32_t)d;
    c->vocab_size = (int32_t)V;
    c->seq_len = C > INT32_MAX ? INT32_MAX : (int32_t)C;
    c->shared_classifier = tie;
    c->norm_eps = (float)eps;
    c->rope_base = theta;
    c->sliding_window = W;
    c->pos = STRATA_POS_ROPE_HALF;
    if (*arch == ARCH_BAICHUAN) {
        c->norm_head = true;
        if (G != H)
            return strata_fail(STRATA_E_FORMAT,
                               "%s: Baichuan has no grouped-query attention but "
                               "num_key_value_heads %lld != num_attention_heads %lld",
                               path, (long long)G, (long long)H);
        /* The official 13B (ALiBi) and 7B (RoPE) share config keys. */
        if (D == 5120 && L == 40) c->pos = STRATA_POS_ALIBI;
    }
    if (pe) {
        if (!strcmp(pe, "rope")) c->pos = STRATA_POS_ROPE_HALF;
        else if (!strcmp(pe, "alibi")) c->pos = STRATA_POS_ALIBI;
        else if (!strcmp(pe, "none")) c->pos = STRATA_POS_NONE;
        else
            return strata_fail(STRATA_E_FORMAT,
                               "%s: field \"position_embedding\" is \"%s\" (rope, alibi, none)",
                               path, pe);
    }
    return parse_rope_scaling(&r, cJSON_GetObjectItemCaseSensitive(root, "rope_scaling"), C,
                              &c->scaling);
}

/* ------------------------------------------------------------ weights */

/* Add every shard listed in the index, checking each exists and holds the
 * tensors the index places in it. */
static int load_index(struct strata_model *m, const char *index_path)
{
    char *text = NULL;
    size_t len = 0;
    int rc = strata_read_file(&text, &len, index_path);
    if (rc) return rc;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *wm = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(wm)) {
        rc = strata_fail(STRATA_E_FORMAT, "%s: %s", index_path,
                         root ? "no \"weight_map\" object" : "not valid JSON");
        goto done;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, wm)
    {
        if (!cJSON_IsString(e) || strchr(e->valuestring, '/')) {
            rc = strata_fail(STRATA_E_FORMAT,
                             "%s: weight_map entry \"%s\" must name a shard file in the same "
                             "directory",
                             index_path, e->string);
            goto done;
        }
        /* Add each file once: its first appearance in the map. */
        const cJSON *f;
        bool seen = false;
        cJSON_ArrayForEach(f, wm)
        {
            if (f == e) break;
            if (cJSON_IsString(f) && !strcmp(f->valuestring, e->valuestring)) {
                seen = true;
                break;
            }
        }
        if (seen) continue;
        char *shard = strata_path_join(m->dir, e->valuestring);
        if (!file_exists(shard)) {
            rc = strata_fail(STRATA_E_IO,
                             "%s: shard %s (holding \"%s\" per %s) is missing; download it or "
                             "fix the index",
                             shard, e->valuestring, e->string, index_path);
            free(shard);
            goto done;
        }
        rc = strata_tensors_add_file(m->ts, shard);
        free(shard);
        if (rc) goto done;
    }
    cJSON_ArrayForEach(e, wm)
    {
        const struct strata_tensor *t = strata_tensors_find(m->ts, e->string);
        const char *file = t ? strrchr(t->file, '/') : NULL;
        if (!t || strcmp(file ? file + 1 : t->file, e->valuestring)) {
            rc = strata_fail(STRATA_E_FORMAT, "%s: tensor \"%s\" is not in shard %s as the index says",
                             index_path, e->string, e->valuestring);
            goto done;
        }
    }
done:
    cJSON_Delete(root);
    return rc;
}

static int load_files(struct strata_model *m, const char *path, bool path_is_dir)
{
    int rc = strata_tensors_create(&m->ts);
    if (rc) return rc;
    if (!path_is_dir)
        return strata_has_suffix(path, ".json") ? load_index(m, path)
                                                : strata_tensors_add_file(m->ts, path);
    static const char *names[] = {"model.safetensors", "model.safetensors.index.json",
                                  "pytorch_model.bin", "pytorch_model.bin.index.json"};
    for (int i = 0; i < 4; i++) {
        char *p = strata_path_join(path, names[i]);
        if (file_exists(p)) {
            rc = strata_has_suffix(p, ".json") ? load_index(m, p) : strata_tensors_add_file(m->ts, p);
            free(p);
            return rc;
        }
        free(p);
    }
    return strata_fail(STRATA_E_IO,
                       "%s: no weights (model.safetensors, model.safetensors.index.json, "
                       "pytorch_model.bin or pytorch_model.bin.index.json)",
                       path);
}

static void shape_str(char *buf, size_t n, const struct strata_tensor *t)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int32_t i = 0; i < t->n_dim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

/* The tensor `name` of shape (rows, cols), or (rows) when cols == 0. */
static int get_w(const struct strata_model *m, struct strata_w *out, const char *name, int64_t rows,
                 int64_t cols)
{
    const struct strata_tensor *t = strata_tensors_find(m->ts, name);
    if (!t)
        return strata_fail(STRATA_E_FORMAT, "%s: tensor \"%s\" is missing from the checkpoint",
                           m->path, name);
    bool ok = cols ? t->n_dim == 2 && t->shape[0] == rows && t->shape[1] == cols
                   : t->n_dim == 1 && t->shape[0] == rows;
    if (!ok) {
        char have[256];
        shape_str(have, sizeof have, t);
        char want[64];
        if (cols) snprintf(want, sizeof want, "[%lld, %lld]", (long long)rows, (long long)cols);
        else snprintf(want, sizeof want, "[%lld]", (long long)rows);
        return strata_fail(STRATA_E_SHAPE,
                           "%s: tensor \"%s\" has shape %s but config.json implies %s; the "
                           "weights do not belong to this config",
                           t->file, name, have, want);
    }
    out->data = t->data;
    out->dtype = t->dtype;
    out->n = t->n_elem;
    out->t = t;
    return 0;
}

/* Rows [r0, r0 + n_rows) of a (rows, cols) weight, without copying. */
static struct strata_w row_slice(const struct strata_w *w, int64_t r0, int64_t n_rows, int64_t cols)
{
    struct strata_w s = *w;
    s.data = (const char *)w->data + (size_t)(r0 * cols) * strata_dtype_size(w->dtype);
    s.n = n_rows * cols;
    return s;
}

static int load_weights(struct strata_model *m, enum arch arch)
{
    const struct strata_config *c = &m->cfg;
    const int64_t D = c->dim, F = c->hidden_dim, V = c->vocab_size, d = c->head_dim;
    const int64_t Hd = (int64_t)c->n_head * d, kvd = (int64_t)c->n_kv_head * d;
    int rc;
    char name[256];
    if ((rc = get_w(m, &m->tok_emb, "model.embed_tokens.weight", V, D))) return rc;
    if ((rc = get_w(m, &m->rms_final, "model.norm.weight", D, 0))) return rc;
    if (c->shared_classifier) m->wcls = m->tok_emb;
    else if ((rc = get_w(m, &m->wcls, "lm_head.weight", V, D))) return rc;
    m->blocks = xcalloc((size_t)c->n_layer, sizeof *m->blocks);
    for (int32_t l = 0; l < c->n_layer; l++) {
        struct strata_block_w *b = &m->blocks[l];
#define W(field, suffix, rows, cols)                                                       \
    do {                                                                                   \
        snprintf(name, sizeof name, "model.layers.%d.%s", (int)l, suffix);                 \
        if ((rc = get_w(m, &b->field, name, rows, cols))) return rc;                        \
    } while (0)
        W(rms_att, "input_layernorm.weight", D, 0);
        W(rms_ffn, "post_attention_layernorm.weight", D, 0);
        if (arch == ARCH_BAICHUAN) {
            struct strata_w pack;
            snprintf(name, sizeof name, "model.layers.%d.self_attn.W_pack.weight", (int)l);
            if ((rc = get_w(m, &pack, name, 3 * Hd, D))) return rc;
            b->wq = row_slice(&pack, 0, Hd, D);
            b->wk = row_slice(&pack, Hd, Hd, D);
            b->wv = row_slice(&pack, 2 * Hd, Hd, D);
        } else {
            W(wq, "self_attn.q_proj.weight", Hd, D);
            W(wk, "self_attn.k_proj.weight", kvd, D);
            W(wv, "self_attn.v_proj.weight", kvd, D);
        }
        W(wo, "self_attn.o_proj.weight", D, Hd);
        W(w1, "mlp.gate_proj.weight", F, D);
        W(w2, "mlp.down_proj.weight", D, F);
        W(w3, "mlp.up_proj.weight", F, D);
#undef W
    }
    return 0;
}

/* NormHead: logits_v = x . w_v / max(|w_v|, 1e-12) (torch F.normalize);
 * the scale is applied to the logits so the weights stay untouched. */
static void norm_head_scale(struct strata_model *m)
{
    const int64_t V = m->cfg.vocab_size, D = m->cfg.dim;
    const size_t es = strata_dtype_size(m->wcls.dtype);
    float *row = xmalloc((size_t)D * sizeof *row); /* (D) */
    m->cls_scale = xmalloc((size_t)V * sizeof *m->cls_scale);
    for (int64_t v = 0; v < V; v++) {
        strata_widen(row, (const char *)m->wcls.data + (size_t)(v * D) * es, m->wcls.dtype, D);
        double ss = 0.0;
        for (int64_t i = 0; i < D; i++) ss += (double)row[i] * (double)row[i];
        double nrm = sqrt(ss);
        m->cls_scale[v] = (float)(1.0 / (nrm > 1e-12 ? nrm : 1e-12));
    }
    free(row);
}

int strata_hf_load(struct strata_model *m, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return strata_fail(STRATA_E_IO, "%s: no such file or directory", path);
    const bool path_is_dir = S_ISDIR(st.st_mode);
    if (path_is_dir) {
        m->dir = strata_xstrdup(path);
    } else {
        const char *slash = strrchr(path, '/');
        m->dir = slash ? strata_xstrndup(path, (size_t)(slash - path)) : strata_xstrdup(".");
    }
    char *cfg_path = strata_path_join(m->dir, "config.json");
    char *text = NULL;
    size_t len = 0;
    cJSON *root = NULL;
    enum arch arch = ARCH_LLAMA;
    int rc = strata_read_file(&text, &len, cfg_path);
    if (rc) {
        rc = strata_fail(STRATA_E_IO, "%s: cannot read config.json beside the weights (%s)",
                         cfg_path, strata_last_error());
        goto done;
    }
    root = cJSON_ParseWithLength(text, len);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        rc = strata_fail(STRATA_E_FORMAT, "%s: malformed JSON near byte %lld", cfg_path,
                         at ? (long long)(at - text) : -1LL);
        goto done;
    }
    if ((rc = parse_config(m, root, cfg_path, &arch))) goto done;
    if ((rc = load_files(m, path, path_is_dir))) goto done;
    if (strata_tensors_count(m->ts) == 0) { /* an empty file, state dict or weight_map */
        rc = strata_fail(STRATA_E_FORMAT, "%s: the checkpoint holds no tensors (an empty "
                         "safetensors header, state dict or weight_map)", path);
        goto done;
    }
    const struct strata_tensor *t0 = strata_tensors_at(m->ts, 0);
    m->format = t0 && strata_has_suffix(t0->file, ".safetensors") ? "hf-safetensors" : "hf-pytorch";
    if ((rc = load_weights(m, arch))) goto done;
    if (m->cfg.norm_head) norm_head_scale(m);
done:
    cJSON_Delete(root);
    free(text);
    free(cfg_path);
    return rc;
}

int strata_config_read_positions(struct strata_config *out, const char *path)
{
    memset(out, 0, sizeof *out);
    struct stat st;
    char *cfg_path = stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? strata_path_join(path, "config.json")
                                                                 : strata_xstrdup(path);
    char *text = NULL;
    size_t len = 0;
    cJSON *root = NULL;
    int rc = strata_read_file(&text, &len, cfg_path);
    if (rc) goto done;
    root = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsObject(root)) {
        rc = strata_fail(STRATA_E_FORMAT, "%s: not valid JSON (one object expected)", cfg_path);
        goto done;
    }
    struct cfg_reader r = {root, cfg_path};
    int64_t D, H, d, C;
    const char *pe;
    if ((rc = cfg_int(&r, "hidden_size", -1, 1, (int64_t)1 << 20, &D))) goto done;
    if ((rc = cfg_int(&r, "num_attention_heads", -1, 1, 65536, &H))) goto done;
    if ((rc = cfg_head_dim(&r, D, H, &d))) goto done;
    if ((rc = cfg_window(&r, false, &C))) goto done;
    if ((rc = cfg_num(&r, "rope_theta", 10000.0, &out->rope_base))) goto done;
    if ((rc = cfg_str(&r, "position_embedding", &pe))) goto done;
    out->dim = (int32_t)D;
    out->n_head = (int32_t)H;
    out->head_dim = (int32_t)d;
    out->seq_len = C > INT32_MAX ? INT32_MAX : (int32_t)C;
    out->pos = !pe || !strcmp(pe, "rope") ? STRATA_POS_ROPE_HALF
               : !strcmp(pe, "alibi")     ? STRATA_POS_ALIBI
                                          : STRATA_POS_NONE;
    rc = parse_rope_scaling(&r, cJSON_GetObjectItemCaseSensitive(root, "rope_scaling"), C,
                            &out->scaling);
    if (!rc && out->scaling.type != STRATA_SCALING_NONE && out->scaling.original_max <= 0)
        rc = strata_fail(STRATA_E_FORMAT,
                         "%s: rope_scaling needs original_max_position_embeddings or "
                         "max_position_embeddings",
                         cfg_path);
done:
    cJSON_Delete(root);
    free(text);
    free(cfg_path);
    return rc;
}
