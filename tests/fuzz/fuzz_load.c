/* fuzz_load.c — libFuzzer harnesses for every file strata reads (issue 13):
 * one binary per target, chosen at compile time by FUZZ_TARGET (see
 * tests/fuzz/run.sh and `make fuzz`). Each input is written to a file of
 * the name the loader expects (beside a fixed, valid config.json where a
 * checkpoint needs one), then loaded, used a little (encode a string, read a
 * sample) and freed. A finding is anything ASan/UBSan or libFuzzer reports:
 * a crash, an overflow, a leak, a hang or an allocation beyond -rss_limit_mb;
 * an error status is the correct answer to a bad file.
 */
#include "strata.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    T_LLAMA2C = 1,    /* llama2.c checkpoint */
    T_SAFETENSORS,    /* model.safetensors beside config.json */
    T_ST_INDEX,       /* model.safetensors.index.json beside config.json */
    T_CONFIG,         /* config.json (position fields) */
    T_TORCH,          /* pytorch_model.bin (zip + pickle) beside config.json */
    T_TOK_LLAMA2C,    /* tokenizer.bin */
    T_TOK_SPM,        /* tokenizer.model */
    T_TOK_JSON,       /* tokenizer.json */
    T_CORPUS,         /* corpus: text, JSONL and ids */
    T_DUMP,           /* strata-dump/2 */
    T_STATS,          /* strata-stats/1 */
    T_POSVEC,         /* positional-vector file */
    T_ATTN,           /* strata-probe-attn file (/dist) */
    T_GGUF            /* GGUF model and the tokenizer in it */
};

#ifndef FUZZ_TARGET
#error "compile with -DFUZZ_TARGET=<n> (tests/fuzz/run.sh)"
#endif

static char dir[256];

static void spit(const char *name, const uint8_t *data, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(data, 1, n, f) != n) abort();
    fclose(f);
}

static const char config[] =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 8, \"intermediate_size\": 16,"
    " \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"num_key_value_heads\": 1,"
    " \"vocab_size\": 16, \"max_position_embeddings\": 32, \"rms_norm_eps\": 1e-5,"
    " \"hidden_act\": \"silu\", \"rope_theta\": 10000.0, \"tie_word_embeddings\": false}";

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    snprintf(dir, sizeof dir, "%s/strata-fuzz.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) abort();
    return 0;
}

static void path_of(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", dir, name); }

static void use_tokenizer(struct strata_tokenizer *tok)
{
    int32_t *ids = NULL;
    int64_t n = 0;
    static const char text[] = "Once upon a time, \xc3\xa9t\xc3\xa9 <s> \xff 123";
    if (strata_tokenizer_encode(tok, &ids, &n, text, sizeof text - 1, true, false) == 0) {
        char *back = NULL;
        size_t len = 0;
        if (n > 0 && strata_tokenizer_decode(tok, &back, &len, ids, n, false) == 0) free(back);
    }
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char p[512];
    switch (FUZZ_TARGET) {
    case T_LLAMA2C: {
        spit("m.bin", data, size);
        path_of(p, sizeof p, "m.bin");
        struct strata_model *m = NULL;
        if (strata_model_load(&m, p) == 0) strata_model_free(m);
        break;
    }
    case T_SAFETENSORS:
    case T_ST_INDEX:
    case T_TORCH: {
        static const char *names[] = {"model.safetensors", "model.safetensors.index.json",
                                      "pytorch_model.bin"};
        const int k = FUZZ_TARGET == T_SAFETENSORS ? 0 : FUZZ_TARGET == T_ST_INDEX ? 1 : 2;
        spit("config.json", (const uint8_t *)config, sizeof config - 1);
        spit(names[k], data, size);
        struct strata_model *m = NULL;
        if (strata_model_load(&m, dir) == 0) strata_model_free(m);
        path_of(p, sizeof p, names[k]);
        remove(p);
        break;
    }
    case T_CONFIG: {
        spit("config.json", data, size);
        path_of(p, sizeof p, "config.json");
        struct strata_config c;
        strata_config_read_positions(&c, p);
        break;
    }
    case T_TOK_LLAMA2C:
    case T_TOK_SPM:
    case T_TOK_JSON: {
        const char *name = FUZZ_TARGET == T_TOK_LLAMA2C ? "tokenizer.bin"
                           : FUZZ_TARGET == T_TOK_SPM   ? "tokenizer.model"
                                                        : "tokenizer.json";
        spit(name, data, size);
        path_of(p, sizeof p, name);
        struct strata_tokenizer *tok = NULL;
        if (strata_tokenizer_open(&tok, p) == 0) {
            use_tokenizer(tok);
            strata_tokenizer_free(tok);
        }
        break;
    }
    case T_CORPUS: {
        static const char *names[] = {"c.txt", "c.jsonl", "c.ids"};
        for (int k = 0; k < 3; k++) {
            spit(names[k], data, size);
            path_of(p, sizeof p, names[k]);
            struct strata_corpus_params cp = strata_corpus_default_params();
            struct strata_corpus *c = NULL;
            if (strata_corpus_open(&c, p, &cp) == 0) {
                size_t len = 0;
                for (int64_t i = 0; i < strata_corpus_n_docs(c) && i < 8; i++)
                    strata_corpus_doc(c, i, &len);
                strata_corpus_free(c);
            }
        }
        break;
    }
    case T_DUMP: {
        spit("d.h5", data, size);
        path_of(p, sizeof p, "d.h5");
        struct strata_dump *d = NULL;
        if (strata_dump_open(&d, p) == 0) {
            struct strata_dump_info in;
            if (strata_dump_info(d, &in) == 0 && in.n_complete > 0 && in.n_pos * in.dim < (1 << 20)) {
                const int64_t per = in.n_layers + 2 * in.n_blocks; /* entries a sample */
                float *buf = calloc((size_t)(per * in.n_pos * in.dim) + 1, sizeof *buf);
                int32_t *tok = calloc((size_t)in.seq_len + 1, sizeof *tok);
                if (buf && tok) strata_dump_read_sample(d, 0, buf, tok);
                free(buf);
                free(tok);
            }
            strata_dump_free(d);
        }
        break;
    }
    case T_STATS: {
        spit("s.h5", data, size);
        path_of(p, sizeof p, "s.h5");
        struct strata_h5 *f = NULL;
        if (strata_h5_open(&f, p) == 0) {
            struct strata_stats st;
            memset(&st, 0, sizeof st);
            if (strata_stats_is(f) == 1 && strata_stats_load(&st, f) == 0) strata_stats_free(&st);
            strata_h5_free(f);
        }
        break;
    }
    case T_POSVEC: {
        spit("pv.h5", data, size);
        path_of(p, sizeof p, "pv.h5");
        struct strata_posvec *pv = NULL;
        if (strata_posvec_load(&pv, p) == 0) strata_posvec_free(pv);
        break;
    }
    case T_ATTN: {
        spit("a.h5", data, size);
        path_of(p, sizeof p, "a.h5");
        struct strata_h5 *f = NULL;
        if (strata_h5_open(&f, p) == 0) {
            struct strata_attn_dist a;
            if (strata_attn_dist_read(&a, f) == 0) strata_attn_dist_free(&a);
            strata_h5_free(f);
        }
        break;
    }
    case T_GGUF: {
        spit("m.gguf", data, size);
        path_of(p, sizeof p, "m.gguf");
        struct strata_model *m = NULL;
        if (strata_model_load(&m, p) == 0) strata_model_free(m);
        struct strata_tokenizer *tok = NULL;
        if (strata_tokenizer_open(&tok, p) == 0) {
            use_tokenizer(tok);
            strata_tokenizer_free(tok);
        }
        break;
    }
    }
    return 0;
}
