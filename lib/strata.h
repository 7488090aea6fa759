/* strata.h — the one public header of strata, a toolkit for looking inside
 * transformer language models (positional vectors, RoPE decay, Block
 * Influence; see ../shared/docs/PAPERS.md and docs/).
 *
 * Conventions
 *   - Every function that can fail returns int: 0 on success, a negative
 *     STRATA_E_* code otherwise. strata_strerror(code) names the code and
 *     strata_last_error() holds the detailed message (which file, which field).
 *   - Resource owners are opaque handles with one create and one free; every
 *     free accepts NULL.
 *   - lib/ never prints and never exits; diagnostics go through the logger set
 *     with strata_log_set (default: silent).
 *   - Shapes are written as (rows, cols) in C order. Legend: L blocks,
 *     T tokens, D width, F MLP width, H query heads, G key/value heads,
 *     d head width, V vocabulary, N samples.
 */
#ifndef STRATA_H
#define STRATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define STRATA_VERSION "0.1.0"

/* ------------------------------------------------------------------ errors */

enum strata_status {
    STRATA_OK = 0,
    STRATA_E_IO = -1,          /* open/read/write/mmap/rename failed */
    STRATA_E_FORMAT = -2,      /* file content is not what it claims to be */
    STRATA_E_SHAPE = -3,       /* sizes disagree (file length, dims, T > n_ctx) */
    STRATA_E_ARG = -4,         /* invalid argument from the caller */
    STRATA_E_NOMEM = -5,       /* allocation too large to attempt */
    STRATA_E_HDF5 = -6,        /* the HDF5 library reported an error */
    STRATA_E_NAN = -7,         /* NaN or Inf where finite numbers are required */
    STRATA_E_DATA = -8,        /* input data insufficient (empty corpus, ...) */
    STRATA_E_OBSERVER = -9,    /* an observer asked to stop the forward pass */
    STRATA_E_INTERRUPTED = -10 /* a signal asked the run to stop */
};

/* Static string naming the status code; never NULL. */
const char *strata_strerror(int status);
/* Detailed message of the last error on this thread ("" if none).
 * Borrowed; valid until the next failing strata_ call on this thread. */
const char *strata_last_error(void);

enum strata_log_level { STRATA_LOG_DEBUG, STRATA_LOG_INFO, STRATA_LOG_WARN };
typedef void (*strata_log_fn)(enum strata_log_level level, const char *msg, void *user);
/* Route lib/ diagnostics to fn (NULL: silent). Not thread-safe; call early. */
void strata_log_set(strata_log_fn fn, void *user);

/* ------------------------------------------------------------------ model */

/* How positions enter attention. RoPE rotates pairs of dimensions of q and
 * k within each head: INTERLEAVED pairs (2i, 2i+1) as llama2.c/Meta
 * checkpoints store them, HALF pairs (i, i+d/2) as Hugging Face stores them
 * (rotate_half). ALIBI adds slope_h * (j - i) to the logits (Baichuan 13B). */
enum strata_pos {
    STRATA_POS_NONE,
    STRATA_POS_ROPE_INTERLEAVED,
    STRATA_POS_ROPE_HALF,
    STRATA_POS_ALIBI
};

/* RoPE frequency scaling, as Hugging Face rope_scaling defines it
 * (docs/CHECKPOINTS.md gives the formulas). */
enum strata_rope_scaling {
    STRATA_SCALING_NONE,
    STRATA_SCALING_LINEAR,  /* theta_i / factor */
    STRATA_SCALING_DYNAMIC, /* NTK base growth once positions exceed original_max */
    STRATA_SCALING_YARN,    /* ramped interpolation + attention factor */
    STRATA_SCALING_LLAMA3,  /* wavelength-banded interpolation */
    STRATA_SCALING_NTK      /* static NTK-aware: base * factor^(d/(d-2)) */
};

struct strata_rope_scaling_params {
    enum strata_rope_scaling type;
    double factor;           /* s >= 1 */
    int64_t original_max;    /* C0: window the frequencies were trained for */
    double low_freq_factor;  /* llama3 (default 1) */
    double high_freq_factor; /* llama3 (default 4) */
    double beta_fast;        /* yarn (default 32) */
    double beta_slow;        /* yarn (default 1) */
    double attention_factor; /* yarn; 0: 0.1 ln(factor) + 1 */
};

/* Architecture of a loaded model. */
struct strata_config {
    int32_t dim;          /* D: residual width */
    int32_t hidden_dim;   /* F: SwiGLU inner width */
    int32_t n_layer;      /* L: transformer blocks */
    int32_t n_head;       /* H: query heads */
    int32_t n_kv_head;    /* G: key/value heads (H % G == 0) */
    int32_t head_dim;     /* d (D / H unless the checkpoint says otherwise) */
    int32_t vocab_size;   /* V */
    int32_t seq_len;      /* trained context window C */
    bool shared_classifier; /* output projection is the token embedding */
    bool norm_head;       /* output rows L2-normalized (Baichuan 2 NormHead) */
    float norm_eps;       /* RMSNorm epsilon */
    enum strata_pos pos;  /* position scheme */
    double rope_base;     /* RoPE theta */
    struct strata_rope_scaling_params scaling;
    int64_t sliding_window; /* W > 0: query i sees keys i-W < j <= i; 0: all */
};

/* "none", "rope-interleaved", "rope-half", "alibi"; static. */
const char *strata_pos_name(enum strata_pos pos);
/* Parse "rope", "rope-half", "rope-interleaved", "alibi", "none"; "rope"
 * means the RoPE layout the checkpoint stores (`current`, if it is RoPE;
 * else rotate-half). */
int strata_pos_parse(const char *s, enum strata_pos current, enum strata_pos *out);

/* Parse "none", "linear:F", "dynamic:F", "yarn:F" or "llama3:F" (F >= 1)
 * with the defaults of docs/CHECKPOINTS.md; original_max is the window the
 * frequencies were trained for (usually the model's seq_len). */
int strata_rope_scaling_parse(const char *s, int64_t original_max,
                              struct strata_rope_scaling_params *out);

struct strata_model;

/* Load a model by mmap (docs/CHECKPOINTS.md): a llama2.c checkpoint file, or
 * a Hugging Face checkpoint (directory, or a weight file inside it) in
 * safetensors or PyTorch .bin, F32/F16/BF16, single file or sharded. Weights
 * stay in their stored dtype. Every size is checked against the files.
 * *out is owned by the caller: strata_model_free. */
int strata_model_load(struct strata_model **out, const char *path);
void strata_model_free(struct strata_model *model);
/* Borrowed; valid until strata_model_free. */
const struct strata_config *strata_model_config(const struct strata_model *model);
/* Replace the position and attention-span fields of the config (pos,
 * rope_base, scaling, sliding_window), e.g. to run a Baichuan checkpoint with
 * another scheme or a Llama with another RoPE base. Every other field of *cfg
 * must equal the model's. Applies to contexts created afterwards. */
int strata_model_set_config(struct strata_model *model, const struct strata_config *cfg);
/* The config as a JSON object string (for provenance). Caller free()s. */
char *strata_model_config_json(const struct strata_model *model);
/* Path given to strata_model_load. Borrowed. */
const char *strata_model_path(const struct strata_model *model);
/* Directory that holds the checkpoint (where a tokenizer would be found).
 * Borrowed. */
const char *strata_model_dir(const struct strata_model *model);

/* Writing a model as a Hugging Face checkpoint (config.json +
 * model.safetensors), e.g. a llama2.c model for other tools, a bf16 copy, or
 * a pruned model. */
enum strata_save_dtype { STRATA_SAVE_F32, STRATA_SAVE_F16, STRATA_SAVE_BF16 };
struct strata_save_params {
    enum strata_save_dtype dtype; /* of every tensor */
    const int32_t *drop_layers;   /* blocks to leave out (others renumbered), or NULL */
    int32_t n_drop;
};
struct strata_save_params strata_save_default_params(void);
/* Write `dir` (created if missing; existing config.json / model.safetensors
 * are replaced only once the new ones are complete). RoPE models are written
 * in the rotate-half layout (llama2.c's interleaved q/k rows are permuted),
 * Baichuan models with W_pack; the position scheme is recorded so the copy
 * loads with the same hidden states. */
int strata_model_save_hf(const struct strata_model *model, const char *dir,
                         const struct strata_save_params *params);

/* ------------------------------------------------------------ observers */

/* Named sites inside block l, in the order the forward pass reaches them.
 * resid_pre of block 0 is the token embedding; resid_post of block l is the
 * residual stream after the block (= resid_pre of block l+1). */
enum strata_site {
    STRATA_SITE_RESID_PRE,
    STRATA_SITE_ATTN_LOGITS,
    STRATA_SITE_ATTN_PROBS,
    STRATA_SITE_ATTN_OUT,
    STRATA_SITE_MLP_OUT,
    STRATA_SITE_RESID_POST,
    STRATA_SITE_COUNT
};

/* "resid_pre", ...; static string. */
const char *strata_site_name(enum strata_site site);
/* Parse "blk.<l>.<site>" into its parts. */
int strata_site_parse(const char *name, int32_t *layer, enum strata_site *site);

/* A borrowed view handed to an observer; valid only during the callback.
 * Residual sites (resid_pre, attn_out, mlp_out, resid_post): data is
 *   (n_rows = T, n_cols = D) with leading dimension ld, row0 = first position.
 * attn_logits: the same tiles before the softmax: scale * q.k / sqrt(d)
 *   plus the ALiBi bias, -Inf where the mask hides a key (right of the
 *   diagonal, left of a sliding window).
 * attn_probs: one tile of one head's causal attention probabilities:
 *   rows are queries row0 .. row0+n_rows-1, columns are keys col0 ..
 *   col0+n_cols-1, entries right of the diagonal (and left of a sliding
 *   window) are 0; tiles arrive in increasing row0 for
 *   each head, so the full (T, T) map is never held at once. */
struct strata_view {
    int32_t layer;          /* block index l, 0 .. L-1 */
    enum strata_site site;
    int32_t head;           /* attn_probs: query head; otherwise -1 */
    int64_t row0;           /* absolute position of row 0 */
    int64_t n_rows, n_cols; /* shape of data */
    int64_t col0;           /* attn_probs: key position of column 0 (> 0 only
                               with a sliding window); otherwise 0 */
    int64_t ld;             /* distance between rows, in floats */
    const float *data;      /* (n_rows, ld) */
    float *edit;            /* editors at residual sites: the same rows, writable;
                               NULL for observers and at attention sites */
};

/* An observer says which sites it wants (asked once per forward call for
 * every (layer, site)) and then receives views of those sites only; a run
 * that observes nothing pays nothing. observe returns 0 to continue; any
 * other value stops the forward pass with STRATA_E_OBSERVER. */
struct strata_observer {
    bool (*wants)(void *user, int32_t layer, enum strata_site site);
    int (*observe)(void *user, const struct strata_view *view);
    void *user;
};

/* A ready-made observer: copies the residual stream at every boundary
 * (0 = token embeddings, l = after block l) into hidden (L+1, T, D): the
 * rows of positions row0.. of each call land at rows row0.. . cap must
 * outlive the context's use of the observer. */
struct strata_hidden_capture {
    float *hidden; /* (L+1, T, D), caller-owned */
    int64_t T;     /* rows per boundary */
    int64_t D;
};
struct strata_observer strata_observer_hidden(struct strata_hidden_capture *cap);

/* --------------------------------------------------------------- runtime */

/* Options of a context: its size, and the interventions of the runtime
 * (hidden-state edits are editors, see strata_ctx_add_editor). */
struct strata_ctx_params {
    int64_t n_ctx;   /* most positions one context handles (default: model seq_len) */
    bool kv_cache;   /* keep K/V of every layer so calls continue the sequence
                        (generation); otherwise every call starts at position 0
                        and attention memory is one layer's K/V */
    int64_t attn_block; /* query rows per attention tile (default 64) */
    const int32_t *skip_layers; /* blocks to skip (the residual passes through
                                   unchanged; their sites are not visited); copied */
    int32_t n_skip;
    double attn_scale;  /* lambda: attention logits are lambda * q.k / sqrt(d)
                           (+ ALiBi bias); default 1 (P1's temperature) */
};
struct strata_ctx_params strata_ctx_default_params(void);

struct strata_ctx;

/* Scratch buffers and state for running `model`, which must outlive it. */
int strata_ctx_create(struct strata_ctx **out, const struct strata_model *model,
                      const struct strata_ctx_params *params);
void strata_ctx_free(struct strata_ctx *ctx);
/* Copies *obs; at most 16 observers and editors together. */
int strata_ctx_add_observer(struct strata_ctx *ctx, const struct strata_observer *obs);
/* An editor is an observer that may change the residual stream: at
 * resid_pre and resid_post its view has `edit` set (the rows, writable), and
 * what it writes is what the rest of the forward pass (and every observer)
 * sees. Editors run before observers at each site, in the order added.
 * resid_post of block l is the same boundary as resid_pre of block l+1 and is
 * visited once, as resid_post (boundary 0 is resid_pre of block 0). */
int strata_ctx_add_editor(struct strata_ctx *ctx, const struct strata_observer *ed);
/* Bytes of scratch the context holds (for checking that memory grows
 * linearly with n_ctx). */
int64_t strata_ctx_bytes(const struct strata_ctx *ctx);
void strata_ctx_clear_observers(struct strata_ctx *ctx);
/* Forget the cached sequence (kv_cache contexts). */
void strata_ctx_reset(struct strata_ctx *ctx);
/* Positions already in the cache (0 for contexts without kv_cache). */
int64_t strata_ctx_n_past(const struct strata_ctx *ctx);

enum strata_logits { STRATA_LOGITS_NONE, STRATA_LOGITS_LAST, STRATA_LOGITS_ALL };

/* Run tokens (T) at positions n_past .. n_past+T-1. logits receives
 * (1, V) for STRATA_LOGITS_LAST, (T, V) for STRATA_LOGITS_ALL, nothing (may
 * be NULL) for STRATA_LOGITS_NONE. */
int strata_forward(struct strata_ctx *ctx, float *logits, const int32_t *tokens,
                   int64_t n_tok, enum strata_logits mode);

/* Greedy decoding as llama2.c's run.c does it: positions 0 .. steps-1, the
 * prompt forced for its length, argmax afterwards, stop when the model emits
 * `stop` (BOS for llama2.c). out (steps) receives the tokens after the first
 * prompt token; *n_out their count. ctx needs kv_cache and n_ctx >= steps. */
/* Run tokens (T) from position 0 and write the negative log-likelihood
 * (natural log) of each next token: nll (T-1), nll[t] = -log p(tokens[t+1] |
 * tokens[0..t]), from float32 logits reduced in double. The logits are made
 * in row chunks, so memory does not grow with T * V. Not for kv_cache
 * contexts. */
int strata_forward_nll(struct strata_ctx *ctx, double *nll, const int32_t *tokens,
                       int64_t n_tok);

int strata_generate_greedy(struct strata_ctx *ctx, int32_t *out, int64_t *n_out,
                           const int32_t *prompt, int64_t n_prompt, int64_t steps,
                           int32_t stop);

/* ------------------------------------------------------------- tokenizer */

struct strata_tokenizer;

/* Load a llama2.c tokenizer file (tok512.bin, tokenizer.bin) with
 * vocab_size entries. Caller owns *out: strata_tokenizer_free. */
int strata_tokenizer_load(struct strata_tokenizer **out, const char *path,
                          int32_t vocab_size);
/* Open any tokenizer strata reads (docs/CHECKPOINTS.md): `path` is a file
 * (Hugging Face tokenizer.json, SentencePiece tokenizer.model, or a llama2.c
 * tokenizer whose vocabulary size is the number of entries in the file) or a
 * checkpoint directory, searched for tokenizer.json, tokenizer.model,
 * tokenizer.bin, in that order. Caller owns *out: strata_tokenizer_free. */
int strata_tokenizer_open(struct strata_tokenizer **out, const char *path);
void strata_tokenizer_free(struct strata_tokenizer *tok);
int32_t strata_tokenizer_n_vocab(const struct strata_tokenizer *tok);
/* Ids of the begin/end-of-sequence tokens; -1 if the tokenizer has none. */
int32_t strata_tokenizer_bos(const struct strata_tokenizer *tok);
int32_t strata_tokenizer_eos(const struct strata_tokenizer *tok);
/* "llama2c", "sentencepiece", "hf-bpe" (SentencePiece-style BPE with byte
 * fallback) or "hf-bytelevel" (GPT-2/Llama 3 byte-level BPE); static. */
const char *strata_tokenizer_kind(const struct strata_tokenizer *tok);
/* The llama2.c tokenizer's fixed ids (other kinds: strata_tokenizer_bos/eos). */
#define STRATA_TOKEN_BOS 1
#define STRATA_TOKEN_EOS 2

/* Encode text (len bytes, need not be NUL-terminated) exactly as llama2.c's
 * encode(): dummy-prefix space, UTF-8 code points looked up, byte fallback,
 * then merges of the best-scoring adjacent pair (leftmost on ties).
 * *tokens (n) is malloc'ed; caller free()s. */
int strata_tokenizer_encode(const struct strata_tokenizer *tok, int32_t **tokens,
                            int64_t *n, const char *text, size_t len, bool bos,
                            bool eos);
/* The bytes token `tok_id` stands for after `prev`, as llama2.c's decode():
 * a leading space is dropped after BOS, <0xXX> becomes one byte. Borrowed;
 * valid until strata_tokenizer_free. NULL for an id out of range. */
const char *strata_tokenizer_piece(const struct strata_tokenizer *tok, int32_t prev,
                                   int32_t tok_id, size_t *len);
/* Concatenated pieces of tokens (n). tokens[0]'s prev is BOS when after_bos
 * (its leading space is dropped), none otherwise; so text encoded with BOS
 * comes back exactly from decode(ids + 1, n - 1, after_bos = true).
 * *text is NUL-terminated, malloc'ed; caller free()s. */
int strata_tokenizer_decode(const struct strata_tokenizer *tok, char **text,
                            size_t *len, const int32_t *tokens, int64_t n,
                            bool after_bos);

/* ---------------------------------------------------------------- corpus */

struct strata_corpus;

/* Read a text file of documents separated by `sep`. Each document is
 * trimmed of surrounding white space; empty ones are dropped. */
int strata_corpus_load(struct strata_corpus **out, const char *path, const char *sep);
void strata_corpus_free(struct strata_corpus *corpus);
int64_t strata_corpus_n_docs(const struct strata_corpus *corpus);
/* Borrowed; valid until strata_corpus_free. */
const char *strata_corpus_doc(const struct strata_corpus *corpus, int64_t i, size_t *len);

/* Fixed-length samples drawn from a corpus.
 * Rule: documents are tokenized with BOS first and concatenated; the stream
 * is cut into non-overlapping windows of seq_len tokens, each starting at a
 * document start (so position 0 is BOS); n of the windows are chosen by a
 * seeded shuffle and kept in increasing stream order. */
struct strata_samples {
    int64_t n;          /* N */
    int64_t seq_len;    /* T */
    int64_t n_windows;  /* windows available before choosing */
    int32_t *tokens;    /* (N, T) */
    int64_t *doc;       /* (N) index of the document each sample starts at */
};
int strata_samples_build(struct strata_samples *out, const struct strata_corpus *corpus,
                         const struct strata_tokenizer *tok, int64_t n,
                         int64_t seq_len, uint64_t seed);
/* Frees the arrays; the struct itself is the caller's. */
void strata_samples_free(struct strata_samples *samples);

/* ------------------------------------------------------------- HDF5 dumps */

enum strata_dtype { STRATA_F32, STRATA_F16 };

/* Shape and options of a hidden-state dump (docs/FORMAT.md). */
struct strata_dump_params {
    int64_t n_samples;     /* N */
    int64_t n_layers;      /* L+1 residual-stream boundaries */
    int64_t seq_len;       /* T */
    int64_t dim;           /* D */
    enum strata_dtype dtype; /* file type of /hidden */
    int gzip;              /* 0 (default): raw; 1..9: deflate level */
};

/* Facts of an opened dump. */
struct strata_dump_info {
    int64_t n_samples, n_layers, seq_len, dim;
    enum strata_dtype dtype;
    int64_t n_complete;    /* samples fully written */
    bool complete;         /* the run finished */
};

struct strata_dump;

/* Create `path`.partial for writing; strata_dump_finish renames it to path.
 * A dump freed before finishing stays as path.partial, marked incomplete. */
int strata_dump_create(struct strata_dump **out, const char *path,
                       const struct strata_dump_params *params);
/* Open a finished dump for reading (a .partial file too, by its own name). */
int strata_dump_open(struct strata_dump **out, const char *path);
void strata_dump_free(struct strata_dump *dump);
/* Path given to create/open. Borrowed. */
const char *strata_dump_path(const struct strata_dump *dump);

int strata_dump_info(const struct strata_dump *dump, struct strata_dump_info *info);
/* Root attributes (provenance). Strings are stored as UTF-8 variable-length. */
int strata_dump_set_attr_str(struct strata_dump *dump, const char *name, const char *value);
int strata_dump_set_attr_i64(struct strata_dump *dump, const char *name, int64_t value);
/* *value is malloc'ed; caller free()s. */
int strata_dump_get_attr_str(const struct strata_dump *dump, const char *name, char **value);
int strata_dump_get_attr_i64(const struct strata_dump *dump, const char *name, int64_t *value);

/* Write sample s: hidden (L+1, T, D) in float32 (converted to the file
 * dtype), tokens (T). Samples go in order (s == n_complete); n_complete
 * follows. For f16, a finite value beyond +-65504 is STRATA_E_NAN. */
int strata_dump_write_sample(struct strata_dump *dump, int64_t s, const float *hidden,
                             const int32_t *tokens);
/* Mark complete, flush, fsync, close and rename path.partial to path;
 * refused unless all N samples were written. */
int strata_dump_finish(struct strata_dump *dump);

/* Read sample s into hidden (L+1, T, D) float32 and tokens (T); either may be NULL. */
int strata_dump_read_sample(const struct strata_dump *dump, int64_t s, float *hidden,
                            int32_t *tokens);
/* Read one boundary l of sample s into out (T, D). */
int strata_dump_read_layer(const struct strata_dump *dump, int64_t s, int64_t l, float *out);

/* -------------------------------------------------------- result files */

/* Generic HDF5 result files (attention maps and reductions, per-position
 * NLL, positional vectors, ...): named datasets of float32, float64 or int32
 * in C order, groups made by "/" in names, string/int/double attributes on
 * the root or on a dataset. Written under path.partial; strata_h5_finish
 * renames it to path. Object timestamps are off, so identical inputs give
 * identical files. docs/FORMAT.md lists every file strata writes. */
enum strata_h5_type { STRATA_H5_F32, STRATA_H5_F64, STRATA_H5_I32 };
#define STRATA_H5_MAX_DIMS 8

struct strata_h5;

/* Create path.partial for writing. */
int strata_h5_create(struct strata_h5 **out, const char *path);
/* Open an existing file (finished or .partial, by its own name) read-only. */
int strata_h5_open(struct strata_h5 **out, const char *path);
/* Close; a writer not finished leaves path.partial. Accepts NULL. */
void strata_h5_free(struct strata_h5 *f);
/* Flush, fsync, close and rename path.partial to path. */
int strata_h5_finish(struct strata_h5 *f);

/* Write a whole dataset at once (data in C order, `type` in memory and in
 * the file). */
int strata_h5_write(struct strata_h5 *f, const char *name, enum strata_h5_type type, int n_dim,
                    const int64_t *shape, const void *data);
/* Create a dataset of the given full shape to be filled by rows along
 * axis 0 (chunked so one row is one contiguous read), then write rows
 * row0 .. row0+n_rows-1 in any order. */
int strata_h5_create_dataset(struct strata_h5 *f, const char *name, enum strata_h5_type type,
                             int n_dim, const int64_t *shape);
int strata_h5_write_rows(struct strata_h5 *f, const char *name, int64_t row0, int64_t n_rows,
                         const void *data);
/* Attributes: obj is "/" or a dataset name. */
int strata_h5_set_attr_str(struct strata_h5 *f, const char *obj, const char *name,
                           const char *value);
int strata_h5_set_attr_i64(struct strata_h5 *f, const char *obj, const char *name, int64_t value);
int strata_h5_set_attr_f64(struct strata_h5 *f, const char *obj, const char *name, double value);

/* Reading. *n_dim and shape (STRATA_H5_MAX_DIMS) of dataset name;
 * STRATA_E_FORMAT naming the file and dataset if it is absent. */
int strata_h5_shape(const struct strata_h5 *f, const char *name, int *n_dim, int64_t *shape);
/* Whole dataset, converted to `type`. */
int strata_h5_read(const struct strata_h5 *f, const char *name, enum strata_h5_type type,
                   void *data);
/* Rows row0 .. row0+n_rows-1 along axis 0, converted to `type`. */
int strata_h5_read_rows(const struct strata_h5 *f, const char *name, enum strata_h5_type type,
                        int64_t row0, int64_t n_rows, void *data);
/* *value malloc'ed; caller free()s. */
int strata_h5_get_attr_str(const struct strata_h5 *f, const char *obj, const char *name,
                           char **value);
int strata_h5_get_attr_i64(const struct strata_h5 *f, const char *obj, const char *name,
                           int64_t *value);
int strata_h5_get_attr_f64(const struct strata_h5 *f, const char *obj, const char *name,
                           double *value);

/* ------------------------------------------------------------ numerics */

/* IEEE half <-> single, round to nearest even; exact on the way up. */
uint16_t strata_f32_to_f16(float x);
float strata_f16_to_f32(uint16_t h);

/* splitmix64: the one PRNG of strata, so seeds mean the same everywhere. */
uint64_t strata_rng_next(uint64_t *state);

#ifdef __cplusplus
}
#endif
#endif /* STRATA_H */
