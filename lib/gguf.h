/* gguf.h — GGUF files (llama.cpp's format) inside lib/ only: gguf.c parses
 * the header, metadata and tensor directory, gguf_model.c loads
 * Llama/Baichuan models, quant.c dequantizes ggml's block types,
 * tok_gguf.c builds the tokenizer from the metadata. docs/CHECKPOINTS.md
 * describes what is read.
 *
 * Everything read from the file is checked against the file size before it
 * is used: a parsed struct strata_gguf holds only pointers into the mapping
 * that are known to be in bounds.
 */
#ifndef STRATA_GGUF_H
#define STRATA_GGUF_H

#include "tensors.h"

/* Metadata value types (GGUF spec numbering). */
enum gguf_vtype {
    GGUF_U8, GGUF_I8, GGUF_U16, GGUF_I16, GGUF_U32, GGUF_I32, GGUF_F32, GGUF_BOOL,
    GGUF_STR, GGUF_ARR, GGUF_U64, GGUF_I64, GGUF_F64, GGUF_N_VTYPE
};

/* ggml tensor types strata dequantizes or reads (ggml numbering). */
enum {
    GGML_F32 = 0, GGML_F16 = 1, GGML_Q4_0 = 2, GGML_Q8_0 = 8, GGML_Q4_K = 12,
    GGML_Q6_K = 14, GGML_BF16 = 30
};

struct gguf_kv {
    const char *key;    /* in the mapping, not NUL-terminated */
    size_t key_len;
    uint32_t type;      /* enum gguf_vtype */
    uint32_t arr_type;  /* arrays: element type (never GGUF_ARR) */
    uint64_t n;         /* arrays: element count */
    const uint8_t *val; /* the value; arrays: the first element */
    const uint8_t *end; /* one past the value */
};

struct gguf_tensor {
    char *name;         /* NUL-terminated copy */
    uint32_t n_dim;     /* 1..4 */
    int64_t ne[4];      /* ggml order: ne[0] varies fastest (a (rows, cols) weight is ne = [cols, rows]) */
    uint32_t type;      /* ggml type */
    int64_t n_elem;
    uint64_t offset;    /* in the data section */
    uint64_t size;      /* bytes */
    const uint8_t *data;
};

struct strata_gguf {
    char *path;
    struct strata_map map;
    uint32_t version;       /* 2 or 3 */
    uint64_t alignment;     /* general.alignment, default 32 */
    struct gguf_kv *kv;     /* (n_kv) in file order */
    int64_t n_kv;
    struct gguf_tensor *t;  /* (n_t) in file order; empty when opened without tensors */
    int64_t n_t;
    int64_t n_t_file;       /* tensor count of the header */
    int64_t *by_name;       /* (n_t) indices sorted by name */
    size_t kv_begin, kv_end;  /* byte range of the metadata in the file */
    struct strata_tensor *view; /* (n_t) views of F32/F16/BF16 tensors, for release */
    float **deq;            /* (n_t) dequantized copies (owned) or NULL */
};

/* Map and parse path. with_tensors: also the tensor directory (every
 * tensor's type known, its bytes inside the data section, no overlaps,
 * no duplicate names); without, the metadata only (the tokenizer needs no
 * more). *out owned by the caller: strata_gguf_free. */
int strata_gguf_open(struct strata_gguf **out, const char *path, bool with_tensors);
void strata_gguf_free(struct strata_gguf *g);
/* Does the file at path start with the GGUF magic? */
bool strata_gguf_sniff(const char *path);
/* The one *.gguf regular file in dir: 0 and *out malloc'ed; 1 if there is
 * none (*out NULL); a status naming the files if there are several. */
int strata_gguf_dir_file(char **out, const char *dir);

/* Metadata by key (NULL if absent). */
const struct gguf_kv *strata_gguf_kv(const struct strata_gguf *g, const char *key);
/* Integer of any integer type in [lo, hi]; absent: dflt, or an error naming
 * the key when dflt < lo (required). */
int strata_gguf_int(const struct strata_gguf *g, const char *key, int64_t dflt, int64_t lo,
                    int64_t hi, int64_t *out);
/* Finite number of any numeric type; absent: dflt, or an error if dflt is NaN. */
int strata_gguf_num(const struct strata_gguf *g, const char *key, double dflt, double *out);
int strata_gguf_bool(const struct strata_gguf *g, const char *key, bool dflt, bool *out);
/* String (not NUL-terminated) or *s = NULL when absent. */
int strata_gguf_str(const struct strata_gguf *g, const char *key, const char **s, size_t *n);
/* Array of strings: *s, *n (count) malloc'ed, pointing into the mapping;
 * *s = NULL, *count = 0 when absent. */
int strata_gguf_strs(const struct strata_gguf *g, const char *key, const char ***s, int32_t **n,
                     int64_t *count);
/* Array of numbers converted to double (count) malloc'ed; NULL when absent. */
int strata_gguf_nums(const struct strata_gguf *g, const char *key, double **v, int64_t *count);

/* ggml type name ("Q4_K"; "?" if unknown). */
const char *strata_ggml_type_name(uint32_t type);

/* gguf_model.c: load a GGUF model into m (model.c dispatches here): path is a
 * .gguf file or a directory without config.json holding one. */
struct strata_model;
int strata_gguf_load(struct strata_model *m, const char *path);
/* Is path a GGUF file, or a directory without config.json holding .gguf files? */
bool strata_gguf_is_model_path(const char *path);

/* quant.c: dst (n) float32 = the n elements of type at src (Q8_0, Q4_0,
 * Q4_K, Q6_K); n a multiple of the type's block size. */
bool strata_quant_supported(uint32_t type);
void strata_dequantize(float *dst, const void *src, uint32_t type, int64_t n);

#endif
