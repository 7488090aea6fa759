/* model.c — loading llama2.c checkpoints (karpathy/llama2.c, "legacy"
 * export format) by mmap, with every size checked against the file length,
 * so a truncated or mislabelled file is an error and never a read past the
 * end of the mapping.
 *
 * File layout: 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 * vocab_size, seq_len; vocab_size < 0 means a separate classifier), then
 * float32 arrays token_embedding (V, D), rms_att (L, D), wq (L, H*d, D),
 * wk (L, G*d, D), wv (L, G*d, D), wo (L, D, H*d), rms_ffn (L, D),
 * w1 (L, F, D), w2 (L, D, F), w3 (L, F, D), rms_final (D),
 * freq_cis_real and freq_cis_imag (seq_len, d/2) each (unused: RoPE is
 * recomputed), then wcls (V, D) if separate. RoPE rotates interleaved pairs.
 */
#include "model.h"
#include "gguf.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stddef.h>
#include <sys/stat.h>
#include <string.h>

/* Limits that keep every product below in int64 and reject garbage headers
 * before any arithmetic is trusted. */
#define MAX_DIM (1 << 17)
#define MAX_LAYERS 1024
#define MAX_VOCAB (1 << 22)
#define MAX_SEQ (1 << 24)

static int check_header(const char *path, const int32_t h[7])
{
    static const char *names[7] = {"dim", "hidden_dim", "n_layers", "n_heads",
                                   "n_kv_heads", "vocab_size", "seq_len"};
    static const int32_t limits[7] = {MAX_DIM, 4 * MAX_DIM, MAX_LAYERS, MAX_DIM,
                                      MAX_DIM, MAX_VOCAB, MAX_SEQ};
    for (int i = 0; i < 7; i++) {
        int32_t v = i == 5 && h[i] < 0 && h[i] != INT32_MIN ? -h[i] : h[i];
        if (v <= 0 || v > limits[i])
            return strata_fail(STRATA_E_FORMAT,
                               "%s: header field %s = %d is out of range (1..%d); "
                               "is this a llama2.c checkpoint?",
                               path, names[i], (int)h[i], (int)limits[i]);
    }
    if (h[0] % h[3] != 0)
        return strata_fail(STRATA_E_FORMAT, "%s: dim %d is not divisible by n_heads %d", path,
                           (int)h[0], (int)h[3]);
    if (h[3] % h[4] != 0)
        return strata_fail(STRATA_E_FORMAT,
                           "%s: n_heads %d is not a multiple of n_kv_heads %d", path,
                           (int)h[3], (int)h[4]);
    if ((h[0] / h[3]) % 2 != 0)
        return strata_fail(STRATA_E_FORMAT, "%s: head width %d is odd; RoPE needs pairs", path,
                           (int)(h[0] / h[3]));
    return 0;
}

_Static_assert(sizeof(struct strata_block_w) == STRATA_BLOCK_N_W * sizeof(struct strata_w),
               "strata_block_ws() indexes the block's weights as an array");

static struct strata_w f32_w(const float *p, int64_t n)
{
    struct strata_w w = {.data = p, .dtype = STRATA_DT_F32, .n = n, .t = NULL};
    return w;
}

static int llama2c_load(struct strata_model *m, const char *path)
{
    int rc = strata_map_file(&m->map, path);
    if (rc) return rc;
    if (m->map.size < 7 * sizeof(int32_t))
        return strata_fail(STRATA_E_FORMAT, "%s: %zu bytes is too short for a llama2.c header",
                           path, m->map.size);
    int32_t h[7];
    memcpy(h, m->map.data, sizeof h);
    if ((rc = check_header(path, h))) return rc;

    struct strata_config *c = &m->cfg;
    c->dim = h[0];
    c->hidden_dim = h[1];
    c->n_layer = h[2];
    c->n_head = h[3];
    c->n_kv_head = h[4];
    c->shared_classifier = h[5] > 0;
    c->vocab_size = h[5] > 0 ? h[5] : -h[5];
    c->seq_len = h[6];
    c->head_dim = c->dim / c->n_head;
    c->norm_eps = 1e-5f;
    c->pos = STRATA_POS_ROPE_INTERLEAVED;
    c->rope_base = 10000.0;
    m->format = "llama2.c";
    m->arch = strata_xstrdup("llama2.c");

    const int64_t D = c->dim, F = c->hidden_dim, L = c->n_layer, V = c->vocab_size;
    const int64_t kvd = (int64_t)c->n_kv_head * c->head_dim;
    /* The per-block arrays in file order, each stored for all L layers in a
     * row; this one table gives both the file size and the pointers. */
    const struct {
        size_t field; /* offsetof in struct strata_block_w */
        int64_t n;    /* floats per layer */
    } arrays[] = {
        {offsetof(struct strata_block_w, rms_att), D}, {offsetof(struct strata_block_w, wq), D * D},
        {offsetof(struct strata_block_w, wk), kvd * D}, {offsetof(struct strata_block_w, wv), kvd * D},
        {offsetof(struct strata_block_w, wo), D * D},   {offsetof(struct strata_block_w, rms_ffn), D},
        {offsetof(struct strata_block_w, w1), F * D},   {offsetof(struct strata_block_w, w2), D * F},
        {offsetof(struct strata_block_w, w3), F * D},
    };
    const size_t n_arrays = sizeof arrays / sizeof arrays[0];
    int64_t per_block = 0;
    for (size_t a = 0; a < n_arrays; a++) per_block += arrays[a].n;
    const int64_t n_float = V * D + L * per_block + D + (int64_t)c->seq_len * c->head_dim +
                            (c->shared_classifier ? 0 : V * D);
    const int64_t want = 7 * 4 + 4 * n_float;
    const int64_t have = (int64_t)m->map.size;
    if (have != want) {
        return strata_fail(STRATA_E_SHAPE,
                         "%s: %s: the header (dim %d, hidden_dim %d, n_layers %d, n_heads %d, "
                         "n_kv_heads %d, vocab_size %d, seq_len %d) needs %lld bytes but the "
                         "file has %lld%s",
                         path, have < want ? "truncated" : "wrongly sized", (int)h[0], (int)h[1],
                         (int)h[2], (int)h[3], (int)h[4], (int)h[5], (int)h[6], (long long)want,
                         (long long)have,
                         have < want ? "; the download or copy is incomplete"
                                     : "; trailing bytes mean a different format or shape");
    }

    const float *p = (const float *)((const char *)m->map.data + 7 * 4);
    m->tok_emb = f32_w(p, V * D);
    p += V * D;
    m->blocks = xcalloc((size_t)L, sizeof *m->blocks);
    for (size_t a = 0; a < n_arrays; a++) {
        for (int64_t l = 0; l < L; l++)
            *(struct strata_w *)((char *)&m->blocks[l] + arrays[a].field) =
                f32_w(p + l * arrays[a].n, arrays[a].n);
        p += L * arrays[a].n;
    }
    m->rms_final = f32_w(p, D);
    p += D;
    p += (int64_t)c->seq_len * c->head_dim; /* freq_cis_real, freq_cis_imag */
    m->wcls = c->shared_classifier ? m->tok_emb : f32_w(p, V * D);
    return 0;
}

/* Index of the first non-finite element of w, or -1. Exponent bits only,
 * so the scan is integer work the compiler vectorises: a 7B bf16 model is
 * read once at memory speed. */
static int64_t first_nonfinite(const struct strata_w *w)
{
    if (!w->data) return -1;
    if (w->dtype == STRATA_DT_F32) {
        const uint32_t *u = w->data;
        for (int64_t i = 0; i < w->n; i += 4096) { /* blocks: exit early without a branch a lane */
            const int64_t e = i + 4096 < w->n ? i + 4096 : w->n;
            uint32_t any = 0;
            for (int64_t j = i; j < e; j++) any |= (uint32_t)((u[j] & 0x7f800000u) == 0x7f800000u);
            if (any) {
                for (int64_t j = i; j < e; j++)
                    if ((u[j] & 0x7f800000u) == 0x7f800000u) return j;
            }
        }
        return -1;
    }
    const uint16_t *h = w->data; /* F16: exponent 0x7c00; BF16: 0x7f80 */
    const uint16_t mask = w->dtype == STRATA_DT_F16 ? 0x7c00u : 0x7f80u;
    for (int64_t i = 0; i < w->n; i += 4096) {
        const int64_t e = i + 4096 < w->n ? i + 4096 : w->n;
        uint32_t any = 0;
        for (int64_t j = i; j < e; j++) any |= (uint32_t)((h[j] & mask) == mask);
        if (any) {
            for (int64_t j = i; j < e; j++)
                if ((h[j] & mask) == mask) return j;
        }
    }
    return -1;
}

/* One rule for every loader: weights must be finite and the norm epsilon
 * positive, else runs would print <unk> or NaN hidden states with exit 0. */
static int check_values(const struct strata_model *m)
{
    const struct strata_config *c = &m->cfg;
    if (!(c->norm_eps > 0.0f) || !isfinite(c->norm_eps))
        return strata_fail(STRATA_E_FORMAT, "%s: rms_norm_eps %g must be finite and > 0", m->path,
                           (double)c->norm_eps);
    static const char *names[STRATA_BLOCK_N_W] = {"attention_norm", "wq", "wk", "wv", "wo",
                                                  "ffn_norm", "w1 (gate)", "w2 (down)", "w3 (up)"};
    int64_t i;
    if ((i = first_nonfinite(&m->tok_emb)) >= 0)
        return strata_fail(STRATA_E_NAN, "%s: token embedding element %lld is not finite", m->path,
                           (long long)i);
    for (int32_t l = 0; l < c->n_layer; l++) {
        const struct strata_w *ws = strata_block_ws(&m->blocks[l]);
        for (int k = 0; k < STRATA_BLOCK_N_W; k++)
            if ((i = first_nonfinite(&ws[k])) >= 0)
                return strata_fail(STRATA_E_NAN, "%s: block %d %s element %lld is not finite",
                                   m->path, (int)l, names[k], (long long)i);
    }
    if ((i = first_nonfinite(&m->rms_final)) >= 0)
        return strata_fail(STRATA_E_NAN, "%s: final norm element %lld is not finite", m->path,
                           (long long)i);
    if (m->wcls.data != m->tok_emb.data && (i = first_nonfinite(&m->wcls)) >= 0)
        return strata_fail(STRATA_E_NAN, "%s: classifier element %lld is not finite", m->path,
                           (long long)i);
    return 0;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int strata_model_load(struct strata_model **out, const char *path)
{
    *out = NULL;
    if (!path) return strata_fail(STRATA_E_ARG, "strata_model_load: no path");
    struct strata_model *m = xcalloc(1, sizeof *m);
    m->path = strata_xstrdup(path);
    int rc;
    if (strata_gguf_is_model_path(path)) {
        rc = strata_gguf_load(m, path);
    } else if (is_dir(path) || strata_hf_is_weight_file(path) || strata_has_suffix(path, ".json")) {
        rc = strata_hf_load(m, path);
    } else {
        char *slash = strrchr(m->path, '/');
        m->dir = slash ? strata_xstrndup(m->path, (size_t)(slash - m->path)) : strata_xstrdup(".");
        rc = llama2c_load(m, path);
    }
    if (!rc) rc = strata_config_check_positions(&m->cfg);
    if (!rc) rc = check_values(m);
    m->cfg.format = m->format;
    m->cfg.architecture = m->arch;
    if (rc) {
        strata_model_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

void strata_model_free(struct strata_model *model)
{
    if (!model) return;
    strata_unmap_file(&model->map);
    strata_tensors_free(model->ts);
    strata_gguf_free(model->gguf);
    free(model->blocks);
    free(model->cls_scale);
    free((char *)model->arch);
    free(model->path);
    free(model->dir);
    free(model);
}

const struct strata_config *strata_model_config(const struct strata_model *model)
{
    return &model->cfg;
}

int strata_config_resolve(struct strata_config *out, const struct strata_model *model,
                          const struct strata_ctx_params *params)
{
    struct strata_config c = model->cfg;
    const struct strata_ctx_params dflt = strata_ctx_default_params(), *p = params ? params : &dflt;
    if (p->pos != STRATA_POS_MODEL) c.pos = p->pos;
    if (p->rope_base != 0.0) c.rope_base = p->rope_base;
    if (p->rope_scaling.type != STRATA_SCALING_MODEL) {
        c.scaling = p->rope_scaling;
        if (c.scaling.original_max == 0) c.scaling.original_max = c.seq_len;
    }
    if (p->sliding_window != -1) c.sliding_window = p->sliding_window;
    int rc = strata_config_check_positions(&c);
    if (rc) return rc;
    *out = c;
    return 0;
}

const char *strata_model_path(const struct strata_model *model) { return model->path; }
const char *strata_model_dir(const struct strata_model *model) { return model->dir; }

char *strata_config_json(const struct strata_config *c)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "format", c->format ? c->format : "");
    cJSON_AddStringToObject(j, "architecture", c->architecture ? c->architecture : "");
    cJSON_AddNumberToObject(j, "dim", c->dim);
    cJSON_AddNumberToObject(j, "hidden_dim", c->hidden_dim);
    cJSON_AddNumberToObject(j, "n_layers", c->n_layer);
    cJSON_AddNumberToObject(j, "n_heads", c->n_head);
    cJSON_AddNumberToObject(j, "n_kv_heads", c->n_kv_head);
    cJSON_AddNumberToObject(j, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(j, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(j, "seq_len", c->seq_len);
    cJSON_AddBoolToObject(j, "shared_classifier", c->shared_classifier);
    cJSON_AddBoolToObject(j, "norm_head", c->norm_head);
    cJSON_AddNumberToObject(j, "norm_eps", (double)c->norm_eps);
    cJSON_AddStringToObject(j, "positions", strata_pos_name(c->pos));
    cJSON_AddNumberToObject(j, "rope_base", c->rope_base);
    cJSON *r = cJSON_AddObjectToObject(j, "rope_scaling");
    cJSON_AddStringToObject(r, "type", strata_rope_scaling_name(c->scaling.type));
    if (c->scaling.type != STRATA_SCALING_NONE) {
        cJSON_AddNumberToObject(r, "factor", c->scaling.factor);
        cJSON_AddNumberToObject(r, "original_max_position_embeddings",
                                (double)c->scaling.original_max);
        cJSON_AddNumberToObject(r, "low_freq_factor", c->scaling.low_freq_factor);
        cJSON_AddNumberToObject(r, "high_freq_factor", c->scaling.high_freq_factor);
        cJSON_AddNumberToObject(r, "beta_fast", c->scaling.beta_fast);
        cJSON_AddNumberToObject(r, "beta_slow", c->scaling.beta_slow);
        cJSON_AddNumberToObject(r, "attention_factor", c->scaling.attention_factor);
    }
    cJSON_AddNumberToObject(j, "sliding_window", (double)c->sliding_window);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    STRATA_ASSERT(s);
    char *copy = strata_xstrdup(s); /* callers free() with libc free, not cJSON's */
    cJSON_free(s);
    return copy;
}
