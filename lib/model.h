/* model.h — the in-memory model shared by the loaders (model.c for
 * llama2.c, hf.c for Hugging Face checkpoints) and the forward pass. */
#ifndef STRATA_MODEL_H
#define STRATA_MODEL_H

#include "tensors.h"

/* One weight array in its stored dtype, borrowed from a file mapping. */
struct strata_w {
    const void *data;              /* n elements of dtype; NULL if absent */
    enum strata_dtype dtype;
    int64_t n;                     /* element count */
    const struct strata_tensor *t; /* the tensor it lies in (for release); NULL for llama2.c */
};

/* Usable in place by cblas: float32 at a 4-byte-aligned address. */
static inline bool strata_w_direct(const struct strata_w *w)
{
    return w->dtype == STRATA_DT_F32 && ((uintptr_t)w->data & 3u) == 0;
}

/* Weights of one block, row-major (out, in) so y = x W^T is
 * cblas_sgemm(NoTrans, Trans). */
struct strata_block_w {
    struct strata_w rms_att; /* (D) */
    struct strata_w wq;      /* (H*d, D) */
    struct strata_w wk;      /* (G*d, D) */
    struct strata_w wv;      /* (G*d, D) */
    struct strata_w wo;      /* (D, H*d) */
    struct strata_w rms_ffn; /* (D) */
    struct strata_w w1;      /* (F, D) gate */
    struct strata_w w2;      /* (D, F) down */
    struct strata_w w3;      /* (F, D) up */
};
#define STRATA_BLOCK_N_W 9

struct strata_model {
    struct strata_config cfg;
    const char *format;            /* "llama2.c", "hf-safetensors", "hf-pytorch", "gguf" (static) */
    const char *arch;              /* architectures[0], "llama2.c", or GGUF's "llama"/"baichuan" (owned) */
    struct strata_map map;         /* llama2.c file */
    struct strata_tensors *ts;     /* HF files */
    struct strata_gguf *gguf;      /* GGUF file and dequantized weights (gguf.c) */
    char *path;
    char *dir;
    struct strata_w tok_emb;       /* (V, D) */
    struct strata_block_w *blocks; /* (L) */
    struct strata_w rms_final;     /* (D) */
    struct strata_w wcls;          /* (V, D); == tok_emb when shared */
    float *cls_scale;              /* (V) NormHead 1/|w_v|, else NULL */
};

/* The block's weights as an array, in struct order. */
static inline const struct strata_w *strata_block_ws(const struct strata_block_w *b)
{
    return &b->rms_att;
}

/* hf.c */
int strata_hf_load(struct strata_model *m, const char *path);
/* Is the file at path a safetensors or torch zip file (not llama2.c)? */
bool strata_hf_is_weight_file(const char *path);
/* Check the position fields of c, naming the offending one. */
int strata_config_check_positions(const struct strata_config *c);
/* rope.c: ALiBi slopes (H) of H heads. */
void strata_alibi_slopes(float *slope, int64_t H);

#endif
