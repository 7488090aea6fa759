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
#include "internal.h"

#include <cjson/cJSON.h>
#include <stddef.h>
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

int strata_model_load(struct strata_model **out, const char *path)
{
    *out = NULL;
    struct strata_model *m = xcalloc(1, sizeof *m);
    int rc = strata_map_file(&m->map, path);
    if (rc) goto fail;
    if (m->map.size < 7 * sizeof(int32_t)) {
        rc = strata_fail(STRATA_E_FORMAT, "%s: %zu bytes is too short for a llama2.c header", path,
                         m->map.size);
        goto fail;
    }
    int32_t h[7];
    memcpy(h, m->map.data, sizeof h);
    if ((rc = check_header(path, h))) goto fail;

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
    c->rope = STRATA_ROPE_INTERLEAVED;
    c->rope_base = 10000.0;

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
        rc = strata_fail(STRATA_E_SHAPE,
                         "%s: %s: the header (dim %d, hidden_dim %d, n_layers %d, n_heads %d, "
                         "n_kv_heads %d, vocab_size %d, seq_len %d) needs %lld bytes but the "
                         "file has %lld%s",
                         path, have < want ? "truncated" : "wrongly sized", (int)h[0], (int)h[1],
                         (int)h[2], (int)h[3], (int)h[4], (int)h[5], (int)h[6], (long long)want,
                         (long long)have,
                         have < want ? "; the download or copy is incomplete"
                                     : "; trailing bytes mean a different format or shape");
        goto fail;
    }

    const float *p = (const float *)((const char *)m->map.data + 7 * 4);
    m->tok_emb = p;
    p += V * D;
    m->blocks = xcalloc((size_t)L, sizeof *m->blocks);
    for (size_t a = 0; a < n_arrays; a++) {
        for (int64_t l = 0; l < L; l++)
            *(const float **)((char *)&m->blocks[l] + arrays[a].field) = p + l * arrays[a].n;
        p += L * arrays[a].n;
    }
    m->rms_final = p;
    p += D;
    p += (int64_t)c->seq_len * c->head_dim; /* freq_cis_real, freq_cis_imag */
    m->wcls = c->shared_classifier ? m->tok_emb : p;
    m->path = strata_xstrdup(path);
    *out = m;
    return 0;
fail:
    strata_model_free(m);
    return rc;
}

void strata_model_free(struct strata_model *model)
{
    if (!model) return;
    strata_unmap_file(&model->map);
    free(model->blocks);
    free(model->path);
    free(model);
}

const struct strata_config *strata_model_config(const struct strata_model *model)
{
    return &model->cfg;
}

char *strata_model_config_json(const struct strata_model *model)
{
    const struct strata_config *c = &model->cfg;
    static const char *rope_names[] = {"none", "interleaved", "half"};
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "format", "llama2.c");
    cJSON_AddNumberToObject(j, "dim", c->dim);
    cJSON_AddNumberToObject(j, "hidden_dim", c->hidden_dim);
    cJSON_AddNumberToObject(j, "n_layers", c->n_layer);
    cJSON_AddNumberToObject(j, "n_heads", c->n_head);
    cJSON_AddNumberToObject(j, "n_kv_heads", c->n_kv_head);
    cJSON_AddNumberToObject(j, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(j, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(j, "seq_len", c->seq_len);
    cJSON_AddBoolToObject(j, "shared_classifier", c->shared_classifier);
    cJSON_AddNumberToObject(j, "norm_eps", (double)c->norm_eps);
    cJSON_AddStringToObject(j, "rope", rope_names[c->rope]);
    cJSON_AddNumberToObject(j, "rope_base", c->rope_base);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    STRATA_ASSERT(s);
    char *copy = strata_xstrdup(s); /* callers free() with libc free, not cJSON's */
    cJSON_free(s);
    return copy;
}
