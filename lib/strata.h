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

/* ----------------------------------------------------------------- dtypes */

/* Element types: one list for every API that stores numbers. Each API takes
 * the subset it can hold and returns STRATA_E_ARG naming any other:
 * checkpoint weights and saved checkpoints F32, F16, BF16; hidden-state
 * dumps F32, F16; result files F32, F64, I32, I64. F16 is IEEE 754
 * binary16, BF16 bfloat16 (the top half of a float32). */
enum strata_dtype {
    STRATA_DT_F32,
    STRATA_DT_F16,
    STRATA_DT_BF16,
    STRATA_DT_F64,
    STRATA_DT_I32,
    STRATA_DT_I64
};
/* "F32", "F16", "BF16", "F64", "I32", "I64" (safetensors' spelling); "?"
 * for a value outside the enum. Static. */
const char *strata_dtype_name(enum strata_dtype dtype);
/* Bytes per element; 0 for a value outside the enum. */
size_t strata_dtype_size(enum strata_dtype dtype);

/* ------------------------------------------------------------------ model */

/* How positions enter attention. RoPE rotates pairs of dimensions of q and
 * k within each head: INTERLEAVED pairs (2i, 2i+1) as llama2.c/Meta
 * checkpoints store them, HALF pairs (i, i+d/2) as Hugging Face stores them
 * (rotate_half). ALIBI adds slope_h * (j - i) to the logits (Baichuan 13B). */
enum strata_pos {
    STRATA_POS_MODEL = -1, /* context parameter only: the checkpoint's scheme */
    STRATA_POS_NONE,
    STRATA_POS_ROPE_INTERLEAVED,
    STRATA_POS_ROPE_HALF,
    STRATA_POS_ALIBI
};

/* RoPE frequency scaling, as Hugging Face rope_scaling defines it
 * (docs/CHECKPOINTS.md gives the formulas). */
enum strata_rope_scaling {
    STRATA_SCALING_MODEL = -1, /* context parameter only: the checkpoint's scaling */
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
    const char *format;       /* "llama2.c", "hf-safetensors", "hf-pytorch", "gguf";
                                 borrowed from the model, like architecture */
    const char *architecture; /* config.json's architectures[0], "llama2.c", or
                                 GGUF's general.architecture */
};

/* "none", "rope-interleaved", "rope-half", "alibi" ("model" for
 * STRATA_POS_MODEL); static. */
const char *strata_pos_name(enum strata_pos pos);
/* "none", "linear", "dynamic", "yarn", "llama3", "ntk" ("model" for
 * STRATA_SCALING_MODEL); static. */
const char *strata_rope_scaling_name(enum strata_rope_scaling type);
/* Parse "rope", "rope-half", "rope-interleaved", "alibi", "none"; "rope"
 * means the RoPE layout the checkpoint stores (`current`, if it is RoPE;
 * else rotate-half). */
int strata_pos_parse(const char *s, enum strata_pos current, enum strata_pos *out);

/* Parse "none", "linear:F", "ntk:F", "dynamic:F" (also "dynamic-ntk:F"),
 * "yarn:F" or "llama3:F" (F >= 1) with the defaults of docs/CHECKPOINTS.md;
 * original_max is the window the frequencies were trained for; 0 leaves it
 * to strata_config_resolve, which takes the model's seq_len. */
int strata_rope_scaling_parse(const char *s, int64_t original_max,
                              struct strata_rope_scaling_params *out);

/* RoPE frequencies theta (d/2) of a head of width d with base `base` and
 * scaling sc (NULL: none) for a sequence of P positions, per
 * docs/CHECKPOINTS.md, in double; returns the factor cos and sin are
 * multiplied by (YaRN's attention factor; 1 otherwise). d even, >= 2. */
double strata_rope_freqs(double *theta, int32_t d, double base,
                         const struct strata_rope_scaling_params *sc, int64_t P);

struct strata_model;

/* Load a model by mmap (docs/CHECKPOINTS.md): a llama2.c checkpoint file,
 * a Hugging Face checkpoint (directory, or a weight file inside it) in
 * safetensors or PyTorch .bin, F32/F16/BF16, single file or sharded, or a
 * GGUF file (llama.cpp; or a directory without config.json holding one).
 * Weights stay in their stored dtype, except GGUF's Q8_0/Q4_0/Q4_K/Q6_K,
 * dequantized to float32 at load. Every size is checked against the files.
 * *out is owned by the caller: strata_model_free. */
int strata_model_load(struct strata_model **out, const char *path);
void strata_model_free(struct strata_model *model);
/* Borrowed; valid until strata_model_free. */
const struct strata_config *strata_model_config(const struct strata_model *model);
/* Only the position fields of a Hugging Face config.json (or a directory
 * holding one), without weights, for tools that reason about RoPE
 * (strata-decay check): dim, n_head, head_dim, seq_len (0 when the file
 * gives no window), pos (RoPE unless "position_embedding" says otherwise),
 * rope_base and scaling, parsed exactly as strata_model_load parses them;
 * the other fields are 0. */
int strata_config_read_positions(struct strata_config *out, const char *path);
/* A config as a JSON object string (for provenance: pass
 * strata_ctx_config(ctx) to record the settings a run used). Caller free()s. */
char *strata_config_json(const struct strata_config *cfg);
/* Path given to strata_model_load. Borrowed. */
const char *strata_model_path(const struct strata_model *model);
/* Directory that holds the checkpoint (where a tokenizer would be found).
 * Borrowed. */
const char *strata_model_dir(const struct strata_model *model);

/* Writing a model as a Hugging Face checkpoint (config.json +
 * model.safetensors), e.g. a llama2.c model for other tools, a bf16 copy, or
 * a pruned model. */
struct strata_save_params {
    enum strata_dtype dtype;      /* of every tensor: F32, F16 or BF16 */
    const int32_t *drop_layers;   /* blocks to leave out (others renumbered), or NULL */
    int32_t n_drop;
    const struct strata_config *config; /* position settings to save the copy with
                                           (strata_config_resolve), NULL: the model's */
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
    int64_t seq;            /* which sequence of a strata_forward_batch call the
                               rows belong to (0 for strata_forward) */
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

/* Everything that changes how a run computes lives here, never on the
 * model: a loaded model is read-only, so one model serves any number of
 * contexts with different settings, at once, from several threads (one
 * context per thread; a context itself is not thread-safe). Hidden-state
 * edits are editors (strata_ctx_add_editor).
 *
 * Threads: a context runs its GEMMs, attention heads and weight widening on
 * its own n_threads workers, each calling OpenBLAS single-threaded.
 * strata_ctx_create therefore sets OpenBLAS to one thread, once per process,
 * after reading its count as the default n_threads (so OPENBLAS_NUM_THREADS
 * still sets the default); nothing changes it during a forward pass. A
 * program that later raises OpenBLAS' count gets the same results, slower.
 *
 * Out of memory: lib/ aborts with file:line when an allocation of a size it
 * has already checked fails (as llm.c does); sizes read from files are
 * checked against the file before they size anything (STRATA_E_SHAPE,
 * STRATA_E_NOMEM), so a bad file is an error, never an abort. */
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
    enum strata_pos pos; /* position scheme; default STRATA_POS_MODEL (the
                            checkpoint's), e.g. ALiBi Baichuan run with RoPE */
    double rope_base;    /* RoPE theta; 0 (default): the checkpoint's */
    struct strata_rope_scaling_params rope_scaling; /* type STRATA_SCALING_MODEL
                            (default): the checkpoint's; original_max 0: the
                            model's seq_len (strata_rope_scaling_parse) */
    int64_t sliding_window; /* -1 (default): the checkpoint's; 0: full
                               attention; W > 0: query i sees keys i-W < j <= i */
    int n_threads;       /* workers; 0 (default): OpenBLAS' count before strata
                            set it to one (see above), at most 1024 */
    bool release_weights; /* after widening a bf16/f16 block, drop its pages from
                             this process (they stay in the page cache): the
                             resident set stays near one block (2.1 GiB for a
                             7B bf16 model instead of 13.8) at the cost of
                             re-faulting them every pass (0.78 instead of 0.95
                             of the sgemm rate in make bench). Default off. */
    bool (*abort_callback)(void *data); /* asked between blocks, attention tiles
                             and row chunks of every GEMM, from any worker (so
                             it must be thread-safe, e.g. read a
                             sig_atomic_t flag); true ends the call with
                             STRATA_E_INTERRUPTED within a fraction of a
                             second at any size. NULL (default): never. */
    void *abort_callback_data;
    int64_t n_seq_max;   /* sequences one strata_forward_batch call may hold
                            (default 1); scratch grows with n_seq_max * n_ctx.
                            Not with kv_cache. */
};
struct strata_ctx_params strata_ctx_default_params(void);

/* *out = the config a context with `params` runs on `model`: the model's,
 * with pos, rope_base, scaling and sliding_window replaced where params set
 * them, checked (STRATA_E_ARG naming the field). For provenance before a
 * context exists, and for checking options early. */
int strata_config_resolve(struct strata_config *out, const struct strata_model *model,
                          const struct strata_ctx_params *params);

struct strata_ctx;

/* Scratch buffers and state for running `model`, which must outlive it. */
int strata_ctx_create(struct strata_ctx **out, const struct strata_model *model,
                      const struct strata_ctx_params *params);
void strata_ctx_free(struct strata_ctx *ctx);
/* Copies *obs; any number of observers and editors. */
int strata_ctx_add_observer(struct strata_ctx *ctx, const struct strata_observer *obs);
/* An editor is an observer that may change the residual stream: at
 * resid_pre and resid_post its view has `edit` set (the rows, writable), and
 * what it writes is what the rest of the forward pass (and every observer)
 * sees. Editors run before observers at each site, in the order added.
 * resid_post of block l and resid_pre of block l+1 are the same rows, visited
 * one after the other; an editor asks for one of them only (strata's own
 * editors use resid_pre of block 0 for boundary 0, resid_post of block l-1
 * for boundary l). */
int strata_ctx_add_editor(struct strata_ctx *ctx, const struct strata_observer *ed);
/* Bytes of scratch the context holds (for checking that memory grows
 * linearly with n_ctx). */
int64_t strata_ctx_bytes(const struct strata_ctx *ctx);
/* The config this context runs (strata_config_resolve of its params).
 * Borrowed; valid until strata_ctx_free. */
const struct strata_config *strata_ctx_config(const struct strata_ctx *ctx);
/* Worker threads of this context. */
int strata_ctx_n_threads(const struct strata_ctx *ctx);
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

/* n_seq sequences of n_tok tokens each, tokens (n_seq, n_tok), every one
 * from position 0, in one pass whose GEMMs take all n_seq * n_tok rows at
 * once (short windows fill the GEMMs better: docs/SCALING.md measures it).
 * The same computation as n_seq strata_forward calls (bit for bit in the
 * tests; OpenBLAS may choose other kernels for other row counts, so the
 * last float32 bit can differ): observers and editors get each
 * sequence's views in turn (view.seq), logits are (n_seq * n_tok, V) for
 * STRATA_LOGITS_ALL, (n_seq, V) for STRATA_LOGITS_LAST. n_seq <= the
 * context's n_seq_max; not for kv_cache contexts. */
int strata_forward_batch(struct strata_ctx *ctx, float *logits, const int32_t *tokens,
                         int64_t n_seq, int64_t n_tok, enum strata_logits mode);

/* strata_forward runs only the work asked for: with STRATA_LOGITS_NONE (and
 * no kv_cache) it stops after the last block whose sites an observer wants,
 * so a run that observes boundaries 0-4 of a 32-block model costs 4 blocks
 * (editors alone ask for nothing: an edit no observer sees changes
 * nothing). */

/* The same pass in parts, cut at block boundaries, for running a model
 * whose blocks are spread over processes (each holds and touches only its
 * blocks' weights) and passes the residual stream x (T, D) along. Contexts
 * without kv_cache; positions 0 .. T-1. embed: x = the token embeddings;
 * blocks: blocks l0 .. l1-1 applied to x in place, their sites visited by
 * the context's observers and editors as in strata_forward; logits: the
 * final norm and classifier applied to x (after the last block). Embed,
 * then blocks [0, a), [a, b), ..., [z, L), then logits gives strata_forward's
 * results bit for bit. */
int strata_forward_embed(struct strata_ctx *ctx, float *x, const int32_t *tokens, int64_t n_tok);
int strata_forward_blocks(struct strata_ctx *ctx, float *x, int64_t n_tok, int32_t l0, int32_t l1);
int strata_forward_logits(struct strata_ctx *ctx, float *logits, const float *x, int64_t n_tok,
                          enum strata_logits mode);

/* Run tokens (T) from position 0 and write the negative log-likelihood
 * (natural log) of each next token: nll (T-1), nll[t] = -log p(tokens[t+1] |
 * tokens[0..t]), from float32 logits reduced in double. The logits are made
 * in row chunks, so memory does not grow with T * V. Not for kv_cache
 * contexts. */
int strata_forward_nll(struct strata_ctx *ctx, double *nll, const int32_t *tokens,
                       int64_t n_tok);

/* Greedy decoding as llama2.c's run.c does it: positions 0 .. steps-1, the
 * prompt forced for its length, argmax afterwards, stop when the model emits
 * `stop` (BOS for llama2.c). out (steps) receives the tokens after the first
 * prompt token; *n_out their count. ctx needs kv_cache and n_ctx >= steps. */
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
 * (Hugging Face tokenizer.json, SentencePiece tokenizer.model, a GGUF file's
 * tokenizer.ggml.* metadata, or a llama2.c tokenizer whose vocabulary size
 * is the number of entries in the file) or a checkpoint directory, searched
 * for tokenizer.json, tokenizer.model, tokenizer.bin, in that order (a
 * llama2.c tokenizer.bin cannot hold a literal U+2581, so tokenizer.model
 * goes first), then its one .gguf file. Caller owns *out:
 * strata_tokenizer_free. */
int strata_tokenizer_open(struct strata_tokenizer **out, const char *path);
void strata_tokenizer_free(struct strata_tokenizer *tok);
int32_t strata_tokenizer_n_vocab(const struct strata_tokenizer *tok);
/* Ids of the begin/end-of-sequence tokens; -1 if the tokenizer has none. */
int32_t strata_tokenizer_bos(const struct strata_tokenizer *tok);
int32_t strata_tokenizer_eos(const struct strata_tokenizer *tok);
/* "llama2c", "sentencepiece", "hf-bpe" (SentencePiece-style BPE with byte
 * fallback) or "hf-bytelevel" (GPT-2/Llama 3 byte-level BPE); static. */
const char *strata_tokenizer_kind(const struct strata_tokenizer *tok);
/* The file the tokenizer was read from: for a directory given to
 * strata_tokenizer_open, the file it chose (provenance records this).
 * Borrowed; valid until strata_tokenizer_free. */
const char *strata_tokenizer_path(const struct strata_tokenizer *tok);
/* The llama2.c tokenizer's fixed ids (other kinds: strata_tokenizer_bos/eos). */
#define STRATA_TOKEN_BOS 1
#define STRATA_TOKEN_EOS 2

/* Encode text (len bytes, need not be NUL-terminated) exactly as the
 * tokenizer's own library does (llama2c: llama2.c's encode(): dummy-prefix
 * space, UTF-8 code points looked up, byte fallback, then merges of the
 * best-scoring adjacent pair, leftmost on ties). Bytes that are not valid
 * UTF-8: "sentencepiece" and "hf-bpe" replace each byte that starts no valid
 * character by U+FFFD, as SentencePiece does; "llama2c" and "hf-bytelevel"
 * keep them as byte tokens (docs/CHECKPOINTS.md, Tokenizers).
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
/* Write tok into the existing directory dir as Hugging Face files:
 * tokenizer.json (SentencePiece-style BPE with byte fallback, merges from
 * the scores, as transformers' LlamaConverter builds it) and
 * tokenizer_config.json (bos/eos/unk; model_max_length when > 0), each
 * written as NAME.partial and renamed when complete. Kinds "llama2c" and
 * "sentencepiece" (Llama's normalizer settings); a Hugging Face kind already
 * is a tokenizer.json, so it is refused (copy the file). strata reads the
 * result as "hf-bpe" with the same ids (docs/CHECKPOINTS.md, Tokenizers). */
int strata_tokenizer_save_hf(const struct strata_tokenizer *tok, const char *dir,
                             int64_t model_max_length);

/* ---------------------------------------------------------------- corpus */

struct strata_corpus;

/* How a corpus file is read (docs/FORMAT.md, "Corpus inputs"). */
enum strata_corpus_kind {
    STRATA_CORPUS_AUTO,  /* a directory: DIR; *.jsonl: JSONL; *.ids: IDS; else TEXT */
    STRATA_CORPUS_TEXT,  /* documents separated by `sep` */
    STRATA_CORPUS_JSONL, /* one JSON object a line; the document is its string `field` */
    STRATA_CORPUS_DIR,   /* every *.txt file of a directory, sorted by name, one document each */
    STRATA_CORPUS_IDS    /* pre-tokenized: one document a line of whitespace-separated ids */
};
struct strata_corpus_params {
    enum strata_corpus_kind kind;
    const char *sep;     /* TEXT; default "<|endoftext|>" */
    const char *field;   /* JSONL; default "text" */
    int32_t ids_bos;     /* IDS sampled without a tokenizer (tok NULL): the BOS id
                            prepended where a document does not start with it;
                            < 0: none, documents as given. Default 1 (Llama 1/2,
                            llama2.c); a tokenizer's own BOS wins when given */
    int32_t ids_n_vocab; /* IDS without a tokenizer: every id must be below it (the
                            model's V); 0: checked only by the forward pass */
};
struct strata_corpus_params strata_corpus_default_params(void);
/* "text", "jsonl", "dir", "ids" (AUTO resolved); static. */
const char *strata_corpus_kind_name(enum strata_corpus_kind kind);
int strata_corpus_kind_parse(const char *s, enum strata_corpus_kind *out);
/* The kind strata_corpus_open reads `path` as: `kind` itself unless AUTO,
 * which is DIR for a directory, JSONL for *.jsonl, IDS for *.ids, else TEXT. */
enum strata_corpus_kind strata_corpus_kind_resolve(const char *path, enum strata_corpus_kind kind);

/* Read a corpus. Text documents are trimmed of surrounding white space;
 * empty documents are dropped. Caller owns *out: strata_corpus_free. */
int strata_corpus_open(struct strata_corpus **out, const char *path,
                       const struct strata_corpus_params *params);
/* A text file of documents separated by `sep` (= kind TEXT). */
int strata_corpus_load(struct strata_corpus **out, const char *path, const char *sep);
void strata_corpus_free(struct strata_corpus *corpus);
int64_t strata_corpus_n_docs(const struct strata_corpus *corpus);
/* The kind actually read (never AUTO). */
enum strata_corpus_kind strata_corpus_kind(const struct strata_corpus *corpus);
/* Text of document i; NULL for an IDS corpus. Borrowed; valid until
 * strata_corpus_free. */
const char *strata_corpus_doc(const struct strata_corpus *corpus, int64_t i, size_t *len);

/* Fixed-length samples drawn from a corpus.
 * Rule: documents are tokenized with BOS first and concatenated (an IDS
 * document is taken as given, with BOS put first if it does not start with
 * it); the stream is cut into non-overlapping windows of seq_len tokens, each
 * starting at a document start (so position 0 is BOS); a seeded partial
 * Fisher-Yates shuffle orders the windows (draw 0, 1, ...); a run takes the
 * draws first .. first+n-1, kept in increasing stream order. The first n
 * draws do not depend on how many are taken, so draws n .. n+m-1 add m new
 * windows to a run of n (append, shards). */
struct strata_samples {
    int64_t n;          /* N */
    int64_t seq_len;    /* T */
    int64_t n_windows;  /* windows available before choosing */
    int32_t *tokens;    /* (N, T) */
    int64_t *doc;       /* (N) index of the document each sample starts at */
    int64_t *window;    /* (N) index of its window among the n_windows (stream order) */
    int64_t *draw;      /* (N) its draw in the seeded shuffle */
};
/* tok may be NULL for an IDS corpus (its params' ids_bos and ids_n_vocab
 * stand in for the tokenizer's BOS and size); a text corpus needs one. */
int strata_samples_build(struct strata_samples *out, const struct strata_corpus *corpus,
                         const struct strata_tokenizer *tok, int64_t n,
                         int64_t seq_len, uint64_t seed);
/* Draws first .. first+n-1 of the same shuffle. */
int strata_samples_build_range(struct strata_samples *out, const struct strata_corpus *corpus,
                               const struct strata_tokenizer *tok, int64_t first, int64_t n,
                               int64_t seq_len, uint64_t seed);
/* Exactly the given windows (n of them, e.g. read back from a dump to
 * resume it), in that order; draw (n) is copied into out->draw. */
int strata_samples_build_windows(struct strata_samples *out, const struct strata_corpus *corpus,
                                 const struct strata_tokenizer *tok, const int64_t *window,
                                 const int64_t *draw, int64_t n, int64_t seq_len);
/* Frees the arrays; the struct itself is the caller's. */
void strata_samples_free(struct strata_samples *samples);

/* ------------------------------------------------------------- HDF5 dumps */

/* What a dump keeps of each sample (bits of strata_dump_params.sites):
 * the residual stream at chosen boundaries (/hidden), and the outputs of the
 * attention and MLP sub-blocks of chosen blocks before they are added to the
 * stream (/attn_out, /mlp_out: observer sites STRATA_SITE_ATTN_OUT, MLP_OUT). */
enum strata_dump_site {
    STRATA_DUMP_RESID = 1,
    STRATA_DUMP_ATTN_OUT = 2,
    STRATA_DUMP_MLP_OUT = 4
};

/* Shape and options of a hidden-state dump (docs/FORMAT.md, strata-dump/2).
 * Fields after gzip may stay zero: every boundary, every position, /hidden
 * only. */
struct strata_dump_params {
    int64_t n_samples;     /* N */
    int64_t n_layers;      /* boundaries kept in /hidden (L+1 for all; 0 without resid) */
    int64_t seq_len;       /* T: tokens per sample (/tokens keeps all T) */
    int64_t dim;           /* D */
    enum strata_dtype dtype; /* file type of /hidden, /attn_out, /mlp_out: F32 or F16 */
    int gzip;              /* 0 (default): raw; 1..9: deflate level */
    const int32_t *layers; /* (n_layers) boundary ids, increasing; NULL: 0 .. n_layers-1 */
    const int32_t *positions; /* (n_pos) positions kept, increasing, < T; NULL: all T */
    int64_t n_pos;         /* P (ignored when positions is NULL) */
    unsigned sites;        /* STRATA_DUMP_* bits; 0 means STRATA_DUMP_RESID */
    const int32_t *blocks; /* (n_blocks) blocks kept for attn_out / mlp_out, increasing */
    int64_t n_blocks;
};

/* Facts of an opened dump. */
struct strata_dump_info {
    int64_t n_samples, n_layers, seq_len, dim;
    enum strata_dtype dtype;
    int64_t n_complete;    /* samples fully written */
    bool complete;         /* the run finished */
    int64_t n_pos;         /* P positions kept per sample */
    int64_t n_blocks;      /* blocks kept in /attn_out and /mlp_out */
    unsigned sites;        /* STRATA_DUMP_* bits */
    int format;            /* schema version read: 1 or 2 */
};

struct strata_dump;

/* Create `path`.partial for writing; strata_dump_finish renames it to path.
 * A dump freed before finishing stays as path.partial, marked incomplete.
 * All storage is allocated here, so later writes only fill it in place. */
int strata_dump_create(struct strata_dump **out, const char *path,
                       const struct strata_dump_params *params);
/* Continue an unfinished run: open path.partial read-write; writing goes on
 * at sample n_complete. Checking that it is the same run is the caller's. */
int strata_dump_resume(struct strata_dump **out, const char *path);
/* Add n_more samples to the finished dump `path`: it is renamed to
 * path.partial, grown to N + n_more samples and marked incomplete; writing
 * goes on at sample N and strata_dump_finish renames it back. */
int strata_dump_append(struct strata_dump **out, const char *path, int64_t n_more);
/* Open a dump for reading (a .partial file too, by its own name). Reads
 * strata-dump/2 and strata-dump/1. */
int strata_dump_open(struct strata_dump **out, const char *path);
/* Open n dumps (shards of one run) as one: its samples are the completed
 * samples of each shard in order. The shards must agree on the shape, the
 * kept layers, positions, blocks and sites, dtype, and the root attributes
 * model_config, corpus_path, seq_len and seed, and must not share a draw
 * (/sample_draw); complete is true when every shard is. */
int strata_dump_open_many(struct strata_dump **out, const char *const *paths, int n);
void strata_dump_free(struct strata_dump *dump);
/* Path given to create/open (the first shard's). Borrowed. */
const char *strata_dump_path(const struct strata_dump *dump);

int strata_dump_info(const struct strata_dump *dump, struct strata_dump_info *info);
/* Kept boundary ids (n_layers), positions (n_pos), blocks (n_blocks).
 * Borrowed; valid until strata_dump_free. */
const int32_t *strata_dump_layers(const struct strata_dump *dump);
const int32_t *strata_dump_positions(const struct strata_dump *dump);
const int32_t *strata_dump_blocks(const struct strata_dump *dump);
/* Root attributes (provenance). Strings are stored as fixed-length,
 * NUL-terminated UTF-8 (variable-length beyond 63 KiB; both are read).
 * Reading a multi-shard dump reads the first shard's. */
int strata_dump_set_attr_str(struct strata_dump *dump, const char *name, const char *value);
int strata_dump_set_attr_i64(struct strata_dump *dump, const char *name, int64_t value);
/* *value is malloc'ed; caller free()s. */
int strata_dump_get_attr_str(const struct strata_dump *dump, const char *name, char **value);
int strata_dump_get_attr_i64(const struct strata_dump *dump, const char *name, int64_t *value);

/* Where samples s0 .. s0+n-1 come from: the document each starts at, its
 * window among those available (stream order), its draw in the seeded
 * shuffle (struct strata_samples). Written by the probe; any may be read. */
int strata_dump_write_origin(struct strata_dump *dump, int64_t s0, int64_t n, const int64_t *doc,
                             const int64_t *window, const int64_t *draw);
int strata_dump_read_origin(const struct strata_dump *dump, int64_t s0, int64_t n, int64_t *doc,
                            int64_t *window, int64_t *draw);

/* Write sample s: hidden holds the kept sites in the order resid
 * (n_layers, P, D), attn_out (n_blocks, P, D), mlp_out (n_blocks, P, D), one
 * after the other, float32 (converted to the file dtype); tokens (T).
 * Samples go in order (s == n_complete); n_complete follows. For f16, a
 * finite value beyond +-65504 is STRATA_E_NAN. */
int strata_dump_write_sample(struct strata_dump *dump, int64_t s, const float *hidden,
                             const int32_t *tokens);
/* Mark complete, flush, fsync, close and rename path.partial to path;
 * refused unless all N samples were written. */
int strata_dump_finish(struct strata_dump *dump);

/* Read sample s into hidden (n_layers, P, D) float32 (the resid site) and
 * tokens (T); either may be NULL. */
int strata_dump_read_sample(const struct strata_dump *dump, int64_t s, float *hidden,
                            int32_t *tokens);
/* Read kept boundary l (index into strata_dump_layers) of sample s into
 * out (P, D). */
int strata_dump_read_layer(const struct strata_dump *dump, int64_t s, int64_t l, float *out);
/* Read entry i of `site` (STRATA_DUMP_RESID: index into the kept layers;
 * ATTN_OUT / MLP_OUT: into the kept blocks) of sample s into out (P, D). */
int strata_dump_read_site(const struct strata_dump *dump, enum strata_dump_site site, int64_t s,
                          int64_t i, float *out);

/* --------------------------------------------------- positional vectors */

/* P1's mean-based decomposition (../shared/docs/PAPERS.md; lib/posvec_math.c,
 * docs/POSVEC.md) from hidden states h[s,b,t] (Lk boundaries, T positions,
 * D width, N samples): p[b,t] = mean_s h[s,b,t], u[b] = mean_t p[b,t],
 * m[b,t] = p[b,t] - u[b], c[s,b,t] = h[s,b,t] - p[b,t]. Accumulated as
 * mergeable sums in double, so shards of a run summed in any grouping give
 * the same p up to double rounding. Plain data; strata_pvsum_free frees
 * the arrays, not the struct. */
struct strata_pvsum {
    int64_t n_layers; /* Lk: boundaries accumulated */
    int64_t seq_len;  /* T: positions */
    int64_t dim;      /* D */
    int64_t n;        /* N: samples added */
    double *sum;      /* (Lk, T, D) sum over samples of h */
    double *sumsq;    /* (Lk, T) sum over samples of |h|^2 */
};
/* Zeroed sums of the given shape (STRATA_E_ARG for a size <= 0). */
int strata_pvsum_init(struct strata_pvsum *acc, int64_t n_layers, int64_t seq_len, int64_t dim);
void strata_pvsum_free(struct strata_pvsum *acc);
/* Add boundary b (0 .. Lk-1) of one sample: h (T, D). Does not count the
 * sample: after all boundaries of a sample call strata_pvsum_count. */
void strata_pvsum_add_layer(struct strata_pvsum *acc, int64_t b, const float *h);
void strata_pvsum_count(struct strata_pvsum *acc, int64_t n_samples);
/* dst += src; STRATA_E_SHAPE if the shapes differ. */
int strata_pvsum_merge(struct strata_pvsum *dst, const struct strata_pvsum *src);
/* p (Lk, T, D) float32 = sum / n; STRATA_E_DATA if n == 0. */
int strata_pvsum_mean(const struct strata_pvsum *acc, float *p);

/* Per-boundary summary of the decomposition (population variances over all
 * N*T states of the boundary, from the sums). */
struct strata_pv_stats {
    double var_total; /* mean_{s,t} |h - u|^2 */
    double var_pos;   /* mean_t |m[t]|^2: the part explained by position */
    double frac_pos;  /* var_pos / var_total */
    double u_norm;    /* |u| */
    double p_norm;    /* mean_t |p[t]| */
    double c_rms;     /* sqrt(mean_{s,t} |c|^2) = sqrt(var_total - var_pos) */
    double frac_pos_corr; /* frac_pos without the sampling noise of the means:
                             (var_pos - c_rms^2 / (N-1)) / var_total; NaN for N = 1 */
};
/* out (Lk). STRATA_E_DATA if n == 0. */
int strata_pvsum_stats(const struct strata_pvsum *acc, struct strata_pv_stats *out);

/* PCA of the rows of x (T, D) centred on their mean: eigval (D) the
 * covariance eigenvalues (divided by T) in decreasing order, comp (D, D) row
 * k the unit eigenvector of eigval[k] (sign: its largest-magnitude entry is
 * positive). LAPACKE dsyevd in double. STRATA_E_DATA if LAPACK fails. */
int strata_pv_pca(double *eigval, double *comp, const float *x, int64_t T, int64_t D);
/* cos(a, b) (n) in double; 0 if either is zero. */
double strata_pv_cos(const float *a, const float *b, int64_t n);
/* Distinct vectors among the rows of x (T, D) by leader clustering in row
 * order: row t joins the first leader with cos >= threshold, else becomes a
 * leader. leader (T) receives each row's leader; returns the number of
 * leaders. */
int64_t strata_pv_clusters(int32_t *leader, const float *x, int64_t T, int64_t D,
                           double threshold);

/* --------------------------------------------------------- interventions */

/* Hidden-state edits of P1 (../shared/docs/PAPERS.md) as editors
 * (strata_ctx_add_editor), driven by a positional-vector file: HDF5 with
 * the dataset /positional (L+1, T, D) float32, p[b,t] = the mean over
 * samples of a dump's hidden states at boundary b (0 = token embeddings,
 * b = after block b) and position t (docs/FORMAT.md). Derived from it:
 * the shared mean u[b] = mean over the file's T positions of p[b,t], and
 * the positional basis m[b,t] = p[b,t] - u[b].
 *
 * Site: boundary 0 is edited at blk.0.resid_pre (the token embeddings),
 * boundary b = 1..L at blk.<b-1>.resid_post (after block b-1, the input of
 * block b) -- the rows strata_observer_hidden and the dumps record as layer
 * b, so captures of that boundary and everything after it see the edit.
 * Only positions t0 <= t < t1 are changed. */
struct strata_posvec;

/* Read /positional from `path` (via strata_h5_open): STRATA_E_FORMAT if it
 * is absent or not 3-D, STRATA_E_NAN if it holds NaN/Inf (the message names
 * boundary and position). Caller owns *out: strata_posvec_free. */
int strata_posvec_load(struct strata_posvec **out, const char *path);
void strata_posvec_free(struct strata_posvec *pv);
/* n_layers = L+1 boundaries, seq_len = T, dim = D of the file; any may be NULL. */
void strata_posvec_shape(const struct strata_posvec *pv, int64_t *n_layers, int64_t *seq_len,
                         int64_t *dim);
/* p (L+1, T, D). Borrowed; valid until strata_posvec_free. */
const float *strata_posvec_data(const struct strata_posvec *pv);
/* Path given to strata_posvec_load. Borrowed. */
const char *strata_posvec_path(const struct strata_posvec *pv);

enum strata_edit_kind {
    STRATA_EDIT_SUB_POSITIONAL, /* h -= p[b,t] */
    STRATA_EDIT_ADD_POSITIONAL, /* h += p[b,t] (undoes the above up to float rounding) */
    STRATA_EDIT_SUB_BASIS,      /* h -= m[b,t] = p[b,t] - u[b] */
    STRATA_EDIT_SUB_SEMANTIC,   /* h := p[b,t] (removes c = h - p) */
    STRATA_EDIT_REPLACE         /* h += alpha * p_interp(t / r) - p[b,t] (P1's
                                   positional vector replacement) */
};
/* "sub-positional", "add-positional", "sub-basis", "sub-semantic", "replace";
 * static. */
const char *strata_edit_kind_name(enum strata_edit_kind kind);
int strata_edit_kind_parse(const char *s, enum strata_edit_kind *out);

/* p_interp(x) for x = t / r: linear interpolation between p[b,floor(x)] and
 * p[b,floor(x)+1] over the in-window positions 0 .. C-1, C = min(the model's
 * seq_len, the file's T); x > C-1 takes p[b,C-1]. At integer x it is exactly
 * p[b,x], and the edit is applied as one added delta computed in double, so
 * r = 1, alpha = 1 inside the window leaves h bit-identical. */
struct strata_edit_params {
    enum strata_edit_kind kind;
    int32_t boundary; /* b: 0 .. L */
    int64_t t0, t1;   /* positions t0 <= t < t1 are edited; t1 <= the file's T */
    double ratio;     /* replace: r > 0 */
    double alpha;     /* replace: scale of the interpolated vector */
};
/* sub-positional at boundary 0 for no positions (t0 = t1 = 0), r = 1, alpha = 1. */
struct strata_edit_params strata_edit_default_params(void);

struct strata_editor;

/* An editor for contexts of `model`. Checked: the file has L+1 boundaries
 * and width D, 0 <= b <= L, 0 <= t0 < t1 <= the file's T, r and alpha
 * finite (r > 0). The editor copies what it needs of pv (boundary b's rows
 * and u[b]); pv may be freed afterwards. Caller owns *out:
 * strata_editor_free, after the last forward call of a context using it. */
int strata_editor_create(struct strata_editor **out, const struct strata_model *model,
                         const struct strata_posvec *pv, const struct strata_edit_params *params);
void strata_editor_free(struct strata_editor *ed);
/* The observer to pass to strata_ctx_add_editor (user = ed, borrowed). */
struct strata_observer strata_editor_observer(struct strata_editor *ed);

/* ------------------------------------------------- attention reductions */

/* Reductions of attention tiles for long inputs (lib/attnred.c; P1, P2 in
 * ../shared/docs/PAPERS.md): an observer of attn_logits and attn_probs that
 * never holds a (T, T) map and keeps, per selected (layer, head), sums in
 * double: by distance m = i - j over visible pairs, the sum of p[i, j], of
 * the logit and the count (queries i < split and i >= split apart); by query
 * position i, the mass on keys 0 .. k-1 for each sink width k, the entropy
 * of row i (H = s_max - log p_max - sum_j p_j s_j) and the number of rows.
 * A forward pass adds into the pending sample's sums; strata_attnred_commit
 * adds them to the run's sums, strata_attnred_discard drops them (a pass
 * stopped half-way). The getters read the run's sums. Not thread-safe: one
 * context's observer. */
struct strata_attnred;

struct strata_attnred_params {
    int64_t seq_len;        /* T: positions of every forward pass (>= 1) */
    int64_t attn_block;     /* most query rows per tile: the context's attn_block (0: 64) */
    int32_t n_layer;        /* L of the model: tiles of other layers are an error */
    int32_t n_head;         /* H of the model */
    const int32_t *layers;  /* (n_layers) distinct blocks to reduce, in output order;
                               NULL: all L; copied */
    int64_t n_layers;
    const int32_t *heads;   /* (n_heads) distinct query heads; NULL: all H; copied */
    int64_t n_heads;
    const int32_t *sink_k;  /* (n_sink) sink widths k, 1 .. T; copied */
    int64_t n_sink;
    int64_t split;          /* C > 0: distance sums of queries < C and >= C kept apart
                               (parts 0 and 1); 0: one part */
};
/* Zeroed: no selection (all layers and heads), no sink widths, no split. */
struct strata_attnred_params strata_attnred_default_params(void);
/* STRATA_E_ARG for a bad parameter, STRATA_E_NOMEM if the sums do not fit.
 * Caller owns *out: strata_attnred_free. */
int strata_attnred_create(struct strata_attnred **out, const struct strata_attnred_params *params);
void strata_attnred_free(struct strata_attnred *red);
/* The observer to add to a context (strata_ctx_add_observer); borrows red.
 * Its observe stops the pass (STRATA_E_OBSERVER) on a tile that does not fit
 * the parameters; strata_attnred_error then says why. */
struct strata_observer strata_attnred_observer(struct strata_attnred *red);
/* Why the observer stopped the last pass ("" if it did not). Borrowed. */
const char *strata_attnred_error(const struct strata_attnred *red);
/* Add the pending sample's sums to the run's and clear them. STRATA_E_DATA
 * (and the sample dropped) if a logits tile is still waiting for its
 * probabilities. */
int strata_attnred_commit(struct strata_attnred *red);
/* Drop the pending sample's sums. */
void strata_attnred_discard(struct strata_attnred *red);
/* Samples committed. */
int64_t strata_attnred_n_samples(const struct strata_attnred *red);
/* Ls, Hs, T, K (any may be NULL). */
void strata_attnred_shape(const struct strata_attnred *red, int64_t *n_layers, int64_t *n_heads,
                          int64_t *seq_len, int64_t *n_sink);
/* Run sums of selected pair (li, hi) (indices into layers and heads) by
 * distance m (T each): prob (sum of p), logit (sum of logits), count (visible
 * pairs); part 0: queries < split (all without a split), 1: queries >= split
 * (zeros without a split), -1: both. Any output may be NULL. */
int strata_attnred_dist(const struct strata_attnred *red, int64_t li, int64_t hi, int part,
                        double *prob, double *logit, double *count);
/* Run sums of pair (li, hi) by query position i: entropy (T), rows (T, the
 * rows summed; 0 for a skipped block), sink (K, T) mass on keys < k. Any
 * output may be NULL. */
int strata_attnred_query(const struct strata_attnred *red, int64_t li, int64_t hi,
                         double *entropy, double *rows, double *sink);

struct strata_h5;

/* The distance reductions of a strata-probe-attn file (lib/attnfile.c;
 * docs/FORMAT.md), for P2's attention against distance. The arrays are
 * malloc'ed; strata_attn_dist_free frees them (not the struct). */
struct strata_attn_dist {
    int64_t n_layers, n_heads, seq_len; /* Ls, Hs, T */
    double *logit_mean;   /* (Ls, Hs, T) mean logit by distance m (NaN: no pair) */
    double *prob_mean;    /* (Ls, Hs, T) mean probability by distance m */
    double *count;        /* (Ls, Hs, T) visible pairs summed, finite and >= 0 */
    int32_t *layers;      /* (Ls) block ids */
    int32_t *heads;       /* (Hs) query-head ids */
    bool complete;        /* the run finished (attribute complete = 1 or absent) */
    int64_t n_complete;   /* samples complete; -1 if the file does not say */
    int64_t n_samples;    /* samples asked for; -1 if the file does not say */
};
/* Read `f`'s /dist reductions, every shape and attribute checked before
 * anything is read (STRATA_E_FORMAT, STRATA_E_NOMEM naming the file and the
 * dataset). An interrupted run's file reads with complete = false: the
 * caller decides whether to use it. On error *out holds nothing to free. */
int strata_attn_dist_read(struct strata_attn_dist *out, const struct strata_h5 *f);
void strata_attn_dist_free(struct strata_attn_dist *a);

/* ------------------------------------------------------- block influence */

/* P3 (ShortGPT, Men et al. 2024; ../shared/docs/PAPERS.md, lib/blockinf.c,
 * docs/BLOCKINF.md): how much block l changes the residual stream, per
 * token, from x = X_l (the stream entering block l), y = X_{l+n} (leaving
 * block l+n-1; n = 1 for all but ANGULAR) and the block's sub-block outputs
 * attn = attn_out, mlp = mlp_out (so X_{l+1} = x + attn + mlp up to float
 * rounding), all rows of width D, computed in double. Every metric is small
 * for a block that changes little: lowest first is the removal order. */
enum strata_bi_metric {
    STRATA_BI_BI,      /* 1 - cos(x, y), y = X_{l+1} (the paper's BI) */
    STRATA_BI_ANGULAR, /* arccos(cos(x, y)) / pi, y = X_{l+n} */
    STRATA_BI_RELMAG,  /* |attn + mlp| / |x + attn + mlp| */
    STRATA_BI_ATTN,    /* 1 - cos(x, x + attn) */
    STRATA_BI_MLP,     /* 1 - cos(x + attn, x + attn + mlp) */
    STRATA_BI_COUNT
};
/* "bi", "angular", "relmag", "bi-attn", "bi-mlp"; static. */
const char *strata_bi_metric_name(enum strata_bi_metric m);
int strata_bi_metric_parse(const char *s, enum strata_bi_metric *out);
/* *out = the metric of one token; arguments the metric does not use may be
 * NULL. STRATA_E_NAN (and *out NaN) if a norm is zero or a value is not
 * finite. */
int strata_bi_token(double *out, enum strata_bi_metric m, const float *x, const float *y,
                    const float *attn, const float *mlp, int64_t D);
/* Bootstrap over samples. values (N, L): each sample's mean score per block
 * (NaN: not scored). One splitmix64 stream, state = seed: replicate
 * b = 0 .. B-1 draws sample indices j = strata_rng_next(&state) % N for
 * i = 0 .. N-1, and reps (B, L) row b = the mean of the drawn rows. */
int strata_bi_bootstrap(double *reps, const double *values, int64_t N, int64_t L, int64_t B,
                        uint64_t seed);
/* order (L) receives the blocks with a finite score, lowest first (ties: the
 * lower block first); rank (L, may be NULL) their 1-based place in it, 0 for
 * blocks without a score. Returns how many are ranked. */
int64_t strata_bi_order(int64_t *order, int64_t *rank, const double *score, int64_t L);
/* q-quantile of x (n) by linear interpolation between the order statistics
 * at q*(n-1) (numpy's default); sorts x in place; NaN if n == 0. */
double strata_bi_quantile(double *x, int64_t n, double q);
/* Kendall's tau between two rankings ra, rb (L; 0 = unranked, skipped): the
 * concordant minus the discordant pairs over all pairs; NaN with < 2 ranked. */
double strata_bi_kendall(const int64_t *ra, const int64_t *rb, int64_t L);

/* -------------------------------------------------------- result files */

/* Generic HDF5 result files (attention maps and reductions, per-position
 * NLL, positional vectors, ...): named datasets of F32, F64, I32 or I64 (the
 * `type` of every call below; other dtypes are STRATA_E_ARG) in C order,
 * groups made by "/" in names, string/int/double attributes on the root or
 * on a dataset. Written under path.partial; strata_h5_finish renames it to
 * path. Object timestamps are off, so identical inputs give identical files.
 * docs/FORMAT.md lists every file strata writes. */
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
int strata_h5_write(struct strata_h5 *f, const char *name, enum strata_dtype type, int n_dim,
                    const int64_t *shape, const void *data);
/* Create a dataset of the given full shape to be filled by rows along
 * axis 0 (chunked so one row is one contiguous read), then write rows
 * row0 .. row0+n_rows-1 in any order. */
int strata_h5_create_dataset(struct strata_h5 *f, const char *name, enum strata_dtype type,
                             int n_dim, const int64_t *shape);
int strata_h5_write_rows(struct strata_h5 *f, const char *name, int64_t row0, int64_t n_rows,
                         const void *data);
/* Options of strata_h5_create_dataset_opts; zero means the default. */
struct strata_h5_dset_opts {
    const int64_t *chunk;        /* (n_dim) chunk shape; NULL: the ~1 MiB rule of docs/FORMAT.md */
    bool extendible;             /* axis 0 may grow later (strata_h5_extend) */
    int gzip;                    /* 0: raw; 1..9: shuffle + deflate at that level */
    const char *const *dims;     /* (n_dim) dimension names (strata_h5_def_dim), or NULL */
};

/* strata_h5_create_dataset with options (opts may be NULL), and one more
 * type: F16, the dump's, written from raw uint16_t halves. */
int strata_h5_create_dataset_opts(struct strata_h5 *f, const char *name, enum strata_dtype type,
                                  int n_dim, const int64_t *shape,
                                  const struct strata_h5_dset_opts *opts);
/* netCDF-4 dimensions (docs/FORMAT.md, "Dimensions"), in HDF5's terms as
 * netCDF-C and h5netcdf read them: a dimension is a dimension-scale dataset
 * named after it, in the group whose datasets (and subgroups' datasets) use
 * it; every axis of every other dataset has one attached, so xarray and
 * netCDF readers name the axes and tell apart axes of equal length.
 *
 * Define dimension `name` (a path: "sample", "attn/block") of length n when
 * creating a file. If dataset `name` exists it must be 1-D of length n: it
 * becomes the dimension's coordinate variable (unlimited when the dataset
 * is extendible; `unlimited` must say the same). Otherwise an empty
 * placeholder dataset of that name marks a dimension without a variable
 * (netCDF's convention), growable when `unlimited`. */
int strata_h5_def_dim(struct strata_h5 *f, const char *name, int64_t n, bool unlimited);
/* strata_h5_write of a 1-D coordinate `name` (n values of `type`), made the
 * coordinate variable of dimension `name`, with attributes long_name and
 * units where given (each may be NULL). */
int strata_h5_write_coord(struct strata_h5 *f, const char *name, enum strata_dtype type,
                          int64_t n, const void *data, const char *long_name, const char *units);
/* Attach dimension dims[i] to axis i of dataset `name` (every axis; rank of
 * the dataset entries) and label the axis with it. A dimension is looked up
 * as netCDF scopes it: in the dataset's group, then in each parent group; its
 * length must equal the axis'. */
int strata_h5_set_dims(struct strata_h5 *f, const char *name, const char *const *dims);
/* Attributes: obj is "/" or a dataset name. */
/* 1 if obj has attribute `name`, 0 if not, negative on an HDF5 error (a
 * missing obj is STRATA_E_FORMAT). For optional attributes: absent is
 * allowed, present must then read. */
int strata_h5_has_attr(const struct strata_h5 *f, const char *obj, const char *name);
int strata_h5_set_attr_str(struct strata_h5 *f, const char *obj, const char *name,
                           const char *value);
int strata_h5_set_attr_i64(struct strata_h5 *f, const char *obj, const char *name, int64_t value);
int strata_h5_set_attr_f64(struct strata_h5 *f, const char *obj, const char *name, double value);

/* Reading. *n_dim and shape (STRATA_H5_MAX_DIMS) of dataset name;
 * STRATA_E_FORMAT naming the file and dataset if it is absent. */
int strata_h5_shape(const struct strata_h5 *f, const char *name, int *n_dim, int64_t *shape);
/* Whole dataset, converted to `type`. */
int strata_h5_read(const struct strata_h5 *f, const char *name, enum strata_dtype type,
                   void *data);
/* Rows row0 .. row0+n_rows-1 along axis 0, converted to `type`. */
int strata_h5_read_rows(const struct strata_h5 *f, const char *name, enum strata_dtype type,
                        int64_t row0, int64_t n_rows, void *data);
/* *value malloc'ed; caller free()s. */
int strata_h5_get_attr_str(const struct strata_h5 *f, const char *obj, const char *name,
                           char **value);
int strata_h5_get_attr_i64(const struct strata_h5 *f, const char *obj, const char *name,
                           int64_t *value);
int strata_h5_get_attr_f64(const struct strata_h5 *f, const char *obj, const char *name,
                           double *value);

/* ------------------------------------------------------ statistics files */

/* Streaming statistics (lib/stats.c, docs/FORMAT.md "strata-stats/1",
 * issue 12): what strata-probe-stats keeps instead of raw hidden states,
 * enough for P1's decomposition (strata_pvsum), P3's per-sample Block
 * Influence means and P2's attention reductions (strata_attnred sums), all
 * mergeable over disjoint samples. Plain data: every array is owned by the
 * struct (malloc'ed; strata_stats_free frees them, not the struct). Legend:
 * N rows (samples), T tokens, D width, L blocks, Lk kept boundaries, P kept
 * positions, K Block Influence rows, Ls/Hs/Ks attention blocks/heads/sink
 * widths. */
#define STRATA_STATS_FORMAT "strata-stats/1"

struct strata_stats {
    int64_t n_samples;    /* N: rows of the per-sample datasets */
    int64_t n_complete;   /* samples in the sums and rows (the first n_complete rows) */
    int64_t seq_len;      /* T */
    int64_t dim;          /* D */
    int64_t n_layer;      /* L: blocks of the model */
    int64_t n_layers;     /* Lk */
    int32_t *layers;      /* (Lk) kept boundaries, increasing */
    int64_t n_pos;        /* P */
    int32_t *positions;   /* (P) kept positions, increasing */
    int32_t *tokens;      /* (N, T) token ids of each row */
    int64_t *doc, *window, *draw; /* (N) origin of each row (struct strata_samples) */
    bool has_posvec;      /* P1 sums present */
    struct strata_pvsum pv; /* (Lk, P, D) and (Lk, P); pv.n = n_complete */
    int64_t n_bi;         /* K: Block Influence rows; 0: none */
    int32_t *bi_metric;   /* (K) enum strata_bi_metric of each row */
    int32_t *bi_span;     /* (K) n of an ANGULAR row (X_l vs X_{l+n}); 1 otherwise */
    double *bi_mean;      /* (N, K, L) per sample: mean over the kept positions, in
                             position order, summed in double; NaN: block not scored */
    double *bi_last;      /* (N, K, L) per sample: the value at the last kept position */
    int64_t n_attn_layers, n_heads, n_sink; /* Ls, Hs, Ks; Ls 0: no attention sums */
    int32_t *attn_layers, *heads, *sink_k;  /* (Ls), (Hs), (Ks) */
    double *prob, *logit, *count; /* (Ls, Hs, T) sums by distance m (strata_attnred_dist part -1) */
    double *entropy, *rows;       /* (Ls, Hs, T) sums by query position (strata_attnred_query) */
    double *sink;                 /* (Ls, Hs, Ks, T) */
};

/* Allocate the data arrays (zeroed; bi rows NaN) from the shape fields;
 * the selection arrays must be set (owned by st from now on). */
int strata_stats_alloc(struct strata_stats *st);
void strata_stats_free(struct strata_stats *st);
/* Create path.partial with every dataset (storage allocated), the
 * selections, origins and tokens, format, n_complete 0, complete 0. */
int strata_stats_create(struct strata_h5 **out, const char *path, const struct strata_stats *st);
/* Open path.partial read-write to continue it (then strata_stats_load). */
int strata_stats_resume(struct strata_h5 **out, const char *path);
/* Write the sums, rows row0 .. n_complete-1 and n_complete; flush. */
int strata_stats_save(struct strata_h5 *f, const struct strata_stats *st, int64_t row0);
/* 1 if f is a statistics file (root attribute format), else 0. */
int strata_stats_is(const struct strata_h5 *f);
/* Read every dataset of a statistics file into st (zeroed first).
 * STRATA_E_FORMAT naming the file and dataset on any inconsistency. */
int strata_stats_load(struct strata_stats *st, const struct strata_h5 *f);
/* Keep only the first n_complete rows (n_samples = n_complete). */
void strata_stats_trim(struct strata_stats *st);
/* dst := dst and src over their completed rows: sums added, rows merged in
 * stream order (by window), as one pass over both would give. STRATA_E_SHAPE
 * naming what differs (shape, boundaries, positions, metrics, attention
 * selection), STRATA_E_DATA naming a draw both hold. */
int strata_stats_merge(struct strata_stats *dst, const struct strata_stats *src);
/* Read n statistics files (disjoint samples of one setting) as one, merged
 * as strata_stats_merge does; their root attributes model_config,
 * corpus_path, corpus_format, separator, seed, seq_len and interventions
 * must agree (STRATA_E_SHAPE naming the attribute). *first: the first file,
 * open (for its attributes; caller strata_h5_free()s); *complete: every
 * file finished. Only completed rows are kept. */
int strata_stats_read_many(struct strata_stats *st, struct strata_h5 **first,
                           const char *const *paths, int n, bool *complete);

/* ------------------------------------------------------------ RoPE decay */

/* P2 (Men et al. 2024, ../shared/docs/PAPERS.md): the long-term-decay sum
 *   B(m) = sum_{i<n} cos(m * theta_i),  n = d/2 frequencies,
 * the upper bound U(m) = sum_{k=1}^{n} |sum_{l<k} e^{i m theta_l}|, and the
 * paper's lower bound on the base per context length. lib/decay.c states
 * the numerical accuracy of each. */

/* Evaluate in double (angles m*theta_i exact, sum in double), or as a
 * PyTorch float32 evaluation would: theta_i = 1 / powf(base, 2i/d) (F32,
 * Hugging Face's inv_freq) or powf(base, -2i/d) (F32_PAPER, the paper's
 * Appendix E code), then angle = float(m) * theta in float32, cosf, float32
 * sum in order i. */
enum strata_decay_prec { STRATA_DECAY_F64, STRATA_DECAY_F32, STRATA_DECAY_F32_PAPER };

/* The paper's base grid (i + j/10) * 10^x, x = 3..9, i = 1..9, j = 0..9, in
 * increasing order: STRATA_DECAY_GRID_N values written to bases. */
#define STRATA_DECAY_GRID_N 630
void strata_decay_grid(double *bases);


/* B(m) for m = m0 .. m0+n-1 into out (n), frequencies theta (n_freq) in
 * double. 0 <= m0, m0 + n <= 2^40. */
void strata_decay_eval(double *out, const double *theta, int32_t n_freq, int64_t m0, int64_t n);
/* B(m) of the pure base `base`, head width d, in precision prec (F32:
 * m0 + n <= 2^24, where float32 still counts integers exactly). */
void strata_decay_eval_base(double *out, double base, int32_t d, enum strata_decay_prec prec,
                            int64_t m0, int64_t n);
/* U(m) for m = m0 .. m0+n-1 into out (n). */
void strata_decay_upper(double *out, const double *theta, int32_t n_freq, int64_t m0, int64_t n);

/* The first m in [0, limit) with B(m) < 0, or limit if there is none;
 * *value (may be NULL) receives B there (0 if none). */
int64_t strata_decay_first_neg(const double *theta, int32_t n_freq, int64_t limit, double *value);
int64_t strata_decay_first_neg_base(double base, int32_t d, enum strata_decay_prec prec,
                                    int64_t limit, double *value);

/* One row of the lower-bound table. */
struct strata_decay_bound {
    int64_t length;         /* L: B(m) >= 0 is required for 0 <= m < L */
    double base;            /* the first grid base that meets it; 0: none on the grid */
    double min_b;           /* min B(m), m < L, at that base (its margin) */
    double prev_base;       /* the grid base just below (fails); 0 if none */
    int64_t prev_first_neg; /* its first m with B(m) < 0 */
    double prev_b;          /* B there (< 0) */
};
/* The paper's search: for each of lengths (n_len, any order, each >= 1; F32:
 * <= 2^24), the first base of strata_decay_grid with no negative B(m) for
 * m = 0 .. L-1, for head width d (even, 2 .. 4096). out (n_len) in the order
 * of lengths. The bases are scanned once upward; each stops at its first
 * negative m. Valid because a base that fails length L fails every longer
 * length too (its negative m lies inside the longer range), so the bound
 * never decreases with L. */
int strata_decay_bound(struct strata_decay_bound *out, int32_t d, const int64_t *lengths,
                       int32_t n_len, enum strata_decay_prec prec);

/* Least squares of ln y = ln a + k ln x over the points (n) with x > 0 and
 * y > 0 (a bound of 0, none on the grid, is left out); *max_resid = the
 * largest |ln y - ln(a x^k)| among them. Returns 0, or STRATA_E_ARG (a, k,
 * max_resid NaN) with fewer than two such points or no two distinct x. */
int strata_decay_power_fit(double *a, double *k, double *max_resid, const double *x,
                           const double *y, int32_t n);
/* Where the paper's Figure 1 puts a table row: its lengths 1k .. 1M read
 * with binary prefixes, n * 10^6 -> n * 2^20, else n * 1000 -> n * 1024;
 * any other length unchanged. (Its fit base = 0.0424 L^1.628 is the
 * log-space least squares of its table at these L; docs/DECAY.md.) */
int64_t strata_decay_paper_length(int64_t length);

/* ------------------------------------------------------------ numerics */

/* IEEE half <-> single, round to nearest even; exact on the way up. */
uint16_t strata_f32_to_f16(float x);
float strata_f16_to_f32(uint16_t h);

/* "(a, b, c)" (a 1-D shape as "(a,)") of shape (n_dim) into buf (n bytes),
 * for messages that name a dataset's shape; returns buf. */
const char *strata_shape_text(char *buf, size_t n, int n_dim, const int64_t *shape);
/* STRATA_E_FORMAT naming the file and dataset unless dataset `name` of f has
 * shape (n_dim) == want; `dims` names the axes and where they come from
 * (e.g. "(Ls, Hs, T) of /dist/logit_mean"). Nothing is read. */
int strata_h5_want_shape(const struct strata_h5 *f, const char *name, int n_dim,
                         const int64_t *want, const char *dims);

/* splitmix64: the one PRNG of strata, so seeds mean the same everywhere. */
uint64_t strata_rng_next(uint64_t *state);

#ifdef __cplusplus
}
#endif
#endif /* STRATA_H */
