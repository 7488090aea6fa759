/* mkbig — write a large random Llama checkpoint in Hugging Face format
 * (config.json + one bf16 model.safetensors) for `make bench`, streaming so
 * a 13.5 GB Llama-7B-shaped model needs a few MB of memory to generate.
 * The values are uniform in +-0.03 (norm weights 1): the timing of a forward
 * pass does not depend on them, only its finiteness does.
 *
 * usage: mkbig OUTDIR D F L H G V C
 */
#include "cli/cli.h"
#include "tensors.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int main(int argc, char **argv)
{
    cli_init("mkbig");
    if (argc != 9) cli_die(NULL, "usage: mkbig OUTDIR D F L H G V C");
    const char *dir = argv[1];
    int64_t a[7];
    for (int i = 0; i < 7; i++) a[i] = cli_int("dimension", argv[2 + i], 1, 1 << 20);
    const int64_t D = a[0], F = a[1], L = a[2], H = a[3], G = a[4], V = a[5], C = a[6];
    const int64_t d = D / H;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) cli_die(NULL, "%s: %s", dir, strerror(errno));

    /* Tensor list in HF order. */
    const int64_t n = 3 + 9 * L;
    struct strata_tensor *t = calloc((size_t)n, sizeof *t);
    char (*names)[96] = calloc((size_t)n, sizeof *names);
    int64_t k = 0;
#define T2(nm, r, c)                                                                 \
    (snprintf(names[k], 96, "%s", nm), t[k].name = names[k], t[k].dtype = STRATA_DT_BF16, \
     t[k].n_dim = 2, t[k].shape[0] = r, t[k].shape[1] = c, t[k].n_elem = (r) * (c), k++)
#define T1(nm, r)                                                                    \
    (snprintf(names[k], 96, "%s", nm), t[k].name = names[k], t[k].dtype = STRATA_DT_BF16, \
     t[k].n_dim = 1, t[k].shape[0] = r, t[k].n_elem = r, k++)
    char nm[96];
    T2("model.embed_tokens.weight", V, D);
    for (int64_t l = 0; l < L; l++) {
#define N(s) (snprintf(nm, sizeof nm, "model.layers.%lld.%s", (long long)l, s), nm)
        T1(N("input_layernorm.weight"), D);
        T2(N("self_attn.q_proj.weight"), H * d, D);
        T2(N("self_attn.k_proj.weight"), G * d, D);
        T2(N("self_attn.v_proj.weight"), G * d, D);
        T2(N("self_attn.o_proj.weight"), D, H * d);
        T1(N("post_attention_layernorm.weight"), D);
        T2(N("mlp.gate_proj.weight"), F, D);
        T2(N("mlp.up_proj.weight"), F, D);
        T2(N("mlp.down_proj.weight"), D, F);
    }
    T1("model.norm.weight", D);
    T2("lm_head.weight", V, D);
    STRATA_ASSERT(k == n);

    char path[8192];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    struct strata_st_writer *w = NULL;
    cli_check(strata_st_writer_create(&w, path, t, n, "{\"format\":\"pt\"}"), NULL);
    enum { CHUNK = 1 << 20 };
    uint16_t *buf = malloc(CHUNK * sizeof *buf); /* (CHUNK) */
    uint64_t rng = 42;
    const uint16_t one = strata_f32_to_bf16(1.0f);
    for (int64_t i = 0; i < n; i++) {
        const bool norm = t[i].n_dim == 1;
        for (int64_t off = 0; off < t[i].n_elem; off += CHUNK) {
            const int64_t m = t[i].n_elem - off < CHUNK ? t[i].n_elem - off : CHUNK;
            for (int64_t j = 0; j < m; j++) {
                /* top 24 bits -> uniform in [-0.03, 0.03) */
                float u = (float)(strata_rng_next(&rng) >> 40) * (1.0f / 16777216.0f);
                buf[j] = norm ? one : strata_f32_to_bf16(0.06f * u - 0.03f);
            }
            cli_check(strata_st_writer_write(w, buf, (size_t)m * sizeof *buf), NULL);
        }
        if ((i + 1) % 32 == 0 || i + 1 == n)
            fprintf(stderr, "mkbig: %lld/%lld tensors\n", (long long)(i + 1), (long long)n);
    }
    cli_check(strata_st_writer_finish(w), NULL);
    strata_st_writer_free(w);

    snprintf(path, sizeof path, "%s/config.json", dir);
    struct cli_out o;
    FILE *f = cli_out_open(&o, path);
    fprintf(f,
            "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\",\n"
            " \"hidden_size\": %lld, \"intermediate_size\": %lld, \"num_hidden_layers\": %lld,\n"
            " \"num_attention_heads\": %lld, \"num_key_value_heads\": %lld, \"vocab_size\": %lld,\n"
            " \"max_position_embeddings\": %lld, \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0,\n"
            " \"hidden_act\": \"silu\", \"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\"}\n",
            (long long)D, (long long)F, (long long)L, (long long)H, (long long)G, (long long)V,
            (long long)C);
    cli_out_commit(&o);
    free(buf);
    free(t);
    free(names);
    return 0;
}
