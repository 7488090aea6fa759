/* convert.c — write a loaded model as a Hugging Face checkpoint
 * (config.json + model.safetensors): llama2.c models for the HF path and
 * other tools, dtype changes, and pruned models (ShortGPT, P3: blocks left
 * out and the rest renumbered).
 *
 * Why the permutation: llama2.c checkpoints rotate interleaved pairs
 * (2i, 2i+1) of each head, Hugging Face rotates (i, i + d/2). Reordering the
 * rows of wq and wk so that HF row j of a head is llama2.c row 2j (j < d/2)
 * or 2(j - d/2) + 1 makes the rotate-half model compute the same q.k, hence
 * the same hidden states (tests/test_convert.py checks it).
 */
#include "model.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

struct strata_save_params strata_save_default_params(void)
{
    struct strata_save_params p = {.dtype = STRATA_DT_F32, .drop_layers = NULL, .n_drop = 0,
                                   .config = NULL};
    return p;
}

/* One output tensor: `rows` rows of `cols` taken from src, row r from
 * source row perm(r) when the rows are RoPE heads to re-pair. */
struct out_tensor {
    char name[96];
    int64_t rows, cols; /* cols == 0: a vector of rows elements */
    struct strata_w src;
    int32_t rope_heads; /* > 0: permute interleaved -> rotate-half, this many heads */
};

static int64_t src_row(const struct out_tensor *o, int64_t r, int64_t d)
{
    if (o->rope_heads <= 0) return r;
    int64_t h = r / d, j = r % d, half = d / 2;
    return h * d + (j < half ? 2 * j : 2 * (j - half) + 1);
}

/* Convert n floats to the output type into dst; f16 refuses finite values
 * it cannot hold instead of writing Inf. */
static int narrow(void *dst, const float *x, int64_t n, enum strata_dtype t, const char *name)
{
    if (t == STRATA_DT_F32) {
        memcpy(dst, x, (size_t)n * sizeof(float));
        return 0;
    }
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++) {
        if (t == STRATA_DT_BF16) {
            h[i] = strata_f32_to_bf16(x[i]);
        } else {
            if (isfinite(x[i]) && fabsf(x[i]) > 65504.0f)
                return strata_fail(STRATA_E_NAN,
                                   "tensor \"%s\": value %g does not fit float16; save as bf16 "
                                   "or f32",
                                   name, (double)x[i]);
            h[i] = strata_f32_to_f16(x[i]);
        }
    }
    return 0;
}

/* The shortest decimal that reads back as the same float (1e-05, not
 * 9.99999974737875e-06). */
static cJSON *float_json(float v)
{
    char buf[64];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)v);
        if ((float)strtod(buf, NULL) == v) break;
    }
    return cJSON_CreateRaw(buf);
}

static char *config_json(const struct strata_model *m, const struct strata_config *c,
                         int32_t n_layer, enum strata_dtype t)
{
    const bool baichuan = strstr(m->arch, "aichuan") != NULL;
    const bool mistral = !strcmp(m->arch, "MistralForCausalLM");
    const char *arch = baichuan ? "BaichuanForCausalLM" : mistral ? "MistralForCausalLM"
                                                                  : "LlamaForCausalLM";
    cJSON *j = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(j, "architectures");
    cJSON_AddItemToArray(a, cJSON_CreateString(arch));
    cJSON_AddStringToObject(j, "model_type", baichuan ? "baichuan" : mistral ? "mistral" : "llama");
    cJSON_AddNumberToObject(j, "hidden_size", c->dim);
    cJSON_AddNumberToObject(j, "intermediate_size", c->hidden_dim);
    cJSON_AddNumberToObject(j, "num_hidden_layers", n_layer);
    cJSON_AddNumberToObject(j, "num_attention_heads", c->n_head);
    cJSON_AddNumberToObject(j, "num_key_value_heads", c->n_kv_head);
    if ((int64_t)c->head_dim * c->n_head != c->dim) cJSON_AddNumberToObject(j, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(j, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(j, "max_position_embeddings", c->seq_len);
    if (baichuan) cJSON_AddNumberToObject(j, "model_max_length", c->seq_len);
    cJSON_AddItemToObject(j, "rms_norm_eps", float_json(c->norm_eps));
    cJSON_AddStringToObject(j, "hidden_act", "silu");
    cJSON_AddBoolToObject(j, "tie_word_embeddings", c->shared_classifier);
    cJSON_AddStringToObject(j, "torch_dtype", t == STRATA_DT_F32   ? "float32"
                                              : t == STRATA_DT_F16 ? "float16"
                                                                   : "bfloat16");
    const bool rope = c->pos == STRATA_POS_ROPE_HALF || c->pos == STRATA_POS_ROPE_INTERLEAVED;
    /* Static NTK is a change of base, which every loader understands. */
    const bool ntk = c->scaling.type == STRATA_SCALING_NTK;
    const double d = c->head_dim;
    if (rope)
        cJSON_AddNumberToObject(j, "rope_theta",
                                ntk ? c->rope_base * pow(c->scaling.factor, d / (d - 2.0))
                                    : c->rope_base);
    /* Baichuan's scheme is decided by shape unless stated; others are RoPE
     * unless stated. State it whenever the default could differ. */
    if (baichuan || !rope)
        cJSON_AddStringToObject(j, "position_embedding", rope ? "rope"
                                                         : c->pos == STRATA_POS_ALIBI ? "alibi"
                                                                                      : "none");
    if (c->sliding_window > 0) cJSON_AddNumberToObject(j, "sliding_window", (double)c->sliding_window);
    const struct strata_rope_scaling_params *r = &c->scaling;
    if (rope && r->type != STRATA_SCALING_NONE && !ntk) {
        static const char *names[] = {"default", "linear", "dynamic", "yarn", "llama3", "ntk"};
        cJSON *s = cJSON_AddObjectToObject(j, "rope_scaling");
        cJSON_AddStringToObject(s, "rope_type", names[r->type]);
        cJSON_AddNumberToObject(s, "factor", r->factor);
        if (r->type != STRATA_SCALING_LINEAR)
            cJSON_AddNumberToObject(s, "original_max_position_embeddings", (double)r->original_max);
        if (r->type == STRATA_SCALING_LLAMA3) {
            cJSON_AddNumberToObject(s, "low_freq_factor", r->low_freq_factor);
            cJSON_AddNumberToObject(s, "high_freq_factor", r->high_freq_factor);
        }
        if (r->type == STRATA_SCALING_YARN) {
            cJSON_AddNumberToObject(s, "beta_fast", r->beta_fast);
            cJSON_AddNumberToObject(s, "beta_slow", r->beta_slow);
            if (r->attention_factor > 0)
                cJSON_AddNumberToObject(s, "attention_factor", r->attention_factor);
        }
    }
    return strata_json_text(j);
}

static void add(struct out_tensor *o, int64_t *n, const char *name, int64_t rows, int64_t cols,
                struct strata_w src, int32_t rope_heads)
{
    struct out_tensor *t = &o[(*n)++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rows = rows;
    t->cols = cols;
    t->src = src;
    t->rope_heads = rope_heads;
}

/* The tensors of the output checkpoint in file order; *n_out set. A name
 * starting with '+' continues the previous tensor (W_pack's k and v rows). */
static struct out_tensor *plan(const struct strata_model *m, const struct strata_config *c,
                               const bool *drop, int64_t *n_out)
{
    const int64_t D = c->dim, F = c->hidden_dim, V = c->vocab_size, d = c->head_dim;
    const int64_t Hd = (int64_t)c->n_head * d, kvd = (int64_t)c->n_kv_head * d;
    const bool baichuan = strstr(m->arch, "aichuan") != NULL;
    const int32_t perm = c->pos == STRATA_POS_ROPE_INTERLEAVED;
    struct out_tensor *o = xcalloc((size_t)(4 + 9 * c->n_layer), sizeof *o);
    int64_t n = 0;
    char nm[96];
    add(o, &n, "model.embed_tokens.weight", V, D, m->tok_emb, 0);
    int32_t lo = 0; /* output layer index */
    for (int32_t l = 0; l < c->n_layer; l++) {
        if (drop[l]) continue;
        const struct strata_block_w *b = &m->blocks[l];
#define NAME(suffix) (snprintf(nm, sizeof nm, "model.layers.%d.%s", (int)lo, suffix), nm)
        add(o, &n, NAME("input_layernorm.weight"), D, 0, b->rms_att, 0);
        if (baichuan) {
            add(o, &n, NAME("self_attn.W_pack.weight"), Hd, D, b->wq, 0);
            add(o, &n, "+k", kvd, D, b->wk, 0);
            add(o, &n, "+v", kvd, D, b->wv, 0);
        } else {
            add(o, &n, NAME("self_attn.q_proj.weight"), Hd, D, b->wq, perm * c->n_head);
            add(o, &n, NAME("self_attn.k_proj.weight"), kvd, D, b->wk, perm * c->n_kv_head);
            add(o, &n, NAME("self_attn.v_proj.weight"), kvd, D, b->wv, 0);
        }
        add(o, &n, NAME("self_attn.o_proj.weight"), D, Hd, b->wo, 0);
        add(o, &n, NAME("post_attention_layernorm.weight"), D, 0, b->rms_ffn, 0);
        add(o, &n, NAME("mlp.gate_proj.weight"), F, D, b->w1, 0);
        add(o, &n, NAME("mlp.up_proj.weight"), F, D, b->w3, 0);
        add(o, &n, NAME("mlp.down_proj.weight"), D, F, b->w2, 0);
#undef NAME
        lo++;
    }
    add(o, &n, "model.norm.weight", D, 0, m->rms_final, 0);
    if (!c->shared_classifier) add(o, &n, "lm_head.weight", V, D, m->wcls, 0);
    *n_out = n;
    return o;
}

int strata_model_save_hf(const struct strata_model *m, const char *dir,
                         const struct strata_save_params *params)
{
    struct strata_save_params p = params ? *params : strata_save_default_params();
    const struct strata_config *c = p.config ? p.config : &m->cfg;
    const struct strata_config *mc = &m->cfg;
    if (c->dim != mc->dim || c->hidden_dim != mc->hidden_dim || c->n_layer != mc->n_layer ||
        c->n_head != mc->n_head || c->n_kv_head != mc->n_kv_head || c->head_dim != mc->head_dim ||
        c->vocab_size != mc->vocab_size)
        return strata_fail(STRATA_E_ARG, "save: the config's shape is not the model's; pass "
                                         "strata_ctx_config() or strata_config_resolve()'s");
    const enum strata_dtype wt = p.dtype;
    if (wt != STRATA_DT_F32 && wt != STRATA_DT_F16 && wt != STRATA_DT_BF16)
        return strata_fail(STRATA_E_ARG, "save: dtype %s; a checkpoint is saved as F32, F16 or "
                                         "BF16", strata_dtype_name(wt));
    const int64_t d = c->head_dim;
    if (p.n_drop < 0 || p.n_drop >= c->n_layer || (p.n_drop && !p.drop_layers))
        return strata_fail(STRATA_E_ARG, "drop %d of %d layers: at least one must stay",
                           (int)p.n_drop, (int)c->n_layer);
    bool *drop = xcalloc((size_t)c->n_layer, sizeof *drop);
    for (int32_t i = 0; i < p.n_drop; i++) {
        int32_t l = p.drop_layers[i];
        if (l < 0 || l >= c->n_layer || drop[l]) {
            free(drop);
            return strata_fail(STRATA_E_ARG, "layer %d to drop is %s (blocks are 0..%d)", (int)l,
                               l < 0 || l >= c->n_layer ? "out of range" : "listed twice",
                               (int)c->n_layer - 1);
        }
        drop[l] = true;
    }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        free(drop);
        return strata_fail(STRATA_E_IO, "%s: cannot create directory: %s", dir, strerror(errno));
    }

    int64_t n = 0;
    struct out_tensor *o = plan(m, c, drop, &n);
    /* Header entries: W_pack's three row ranges ("+" entries) are one tensor. */
    struct strata_tensor *specs = xcalloc((size_t)n, sizeof *specs);
    int64_t n_specs = 0;
    for (int64_t i = 0; i < n; i++) {
        if (o[i].name[0] == '+') {
            specs[n_specs - 1].shape[0] += o[i].rows;
            specs[n_specs - 1].n_elem += o[i].rows * o[i].cols;
            continue;
        }
        struct strata_tensor *s = &specs[n_specs++];
        s->name = o[i].name;
        s->dtype = wt;
        s->n_dim = o[i].cols ? 2 : 1;
        s->shape[0] = o[i].rows;
        s->shape[1] = o[i].cols;
        s->n_elem = o[i].rows * (o[i].cols ? o[i].cols : 1);
    }

    char *st_path = strata_path_join(dir, "model.safetensors");
    char *cfg_path = strata_path_join(dir, "config.json");
    struct strata_st_writer *w = NULL;
    const int64_t chunk = (int64_t)1 << 20; /* elements converted per write */
    float *buf = xmalloc((size_t)chunk * sizeof *buf);      /* (chunk) */
    void *obuf = xmalloc((size_t)chunk * sizeof(float));      /* (chunk) in the output type */
    FILE *f = NULL;
    char *cfg = NULL;
    int rc = strata_st_writer_create(&w, st_path, specs, n_specs, "{\"format\":\"pt\"}");
    for (int64_t i = 0; !rc && i < n; i++) {
        const struct out_tensor *t = &o[i];
        const int64_t cols = t->cols ? t->cols : t->rows, rows = t->cols ? t->rows : 1;
        const size_t es = strata_dtype_size(t->src.dtype);
        /* Whole rows per chunk (a row longer than a chunk is one chunk). */
        const int64_t rows_per = cols >= chunk ? 1 : chunk / cols;
        float *rb = cols > chunk ? xmalloc((size_t)cols * sizeof *rb) : buf;
        void *ob = cols > chunk ? xmalloc((size_t)cols * sizeof(float)) : obuf;
        for (int64_t r0 = 0; !rc && r0 < rows; r0 += rows_per) {
            const int64_t nr = rows - r0 < rows_per ? rows - r0 : rows_per;
            for (int64_t r = 0; r < nr; r++)
                strata_widen(rb + r * cols,
                             (const char *)t->src.data + (size_t)(src_row(t, r0 + r, d) * cols) * es,
                             t->src.dtype, cols);
            rc = narrow(ob, rb, nr * cols, wt, t->name);
            if (!rc) rc = strata_st_writer_write(w, ob, (size_t)(nr * cols) * strata_dtype_size(wt));
        }
        if (rb != buf) free(rb);
        if (ob != obuf) free(ob);
    }
    if (!rc) rc = strata_st_writer_finish(w);
    if (!rc) {
        cfg = config_json(m, c, c->n_layer - p.n_drop, wt);
        char *tmp = strata_path_join(dir, "config.json.partial");
        f = fopen(tmp, "wb");
        bool ok = f && fputs(cfg, f) != EOF && fputc('\n', f) != EOF;
        if (f && fclose(f) != 0) ok = false;
        if (!ok)
            rc = strata_fail(STRATA_E_IO, "%s: cannot write: %s", tmp, strerror(errno));
        else if (rename(tmp, cfg_path) != 0)
            rc = strata_fail(STRATA_E_IO, "%s: cannot rename to %s: %s", tmp, cfg_path,
                             strerror(errno));
        if (rc) remove(tmp);
        free(tmp);
    }
    strata_st_writer_free(w);
    free(cfg);
    free(buf);
    free(obuf);
    free(specs);
    free(o);
    free(drop);
    free(st_path);
    free(cfg_path);
    return rc;
}
