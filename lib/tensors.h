/* tensors.h — named weight tensors from safetensors and PyTorch .bin files
 * (inside lib/ only; docs/CHECKPOINTS.md describes the formats).
 *
 * A tensor set maps every file it is given read-only and indexes the
 * tensors by name; data is never copied, so a tensor keeps its stored dtype
 * until the forward pass widens one layer at a time (strata_widen). Every
 * offset and shape in a file is checked against the file length before any
 * pointer into the mapping is formed.
 */
#ifndef STRATA_TENSORS_H
#define STRATA_TENSORS_H

#include "internal.h"

#define STRATA_MAX_DIMS 8

struct strata_tensor {
    const char *name;        /* owned by the set */
    enum strata_dtype dtype; /* F32, F16 or BF16 */
    int32_t n_dim;           /* 0 .. STRATA_MAX_DIMS */
    int64_t shape[STRATA_MAX_DIMS];
    int64_t n_elem;          /* product of shape (1 for n_dim == 0) */
    const void *data;        /* n_elem elements, C order, inside a mapping;
                                may be unaligned (read with memcpy or strata_widen) */
    const char *file;        /* path of the file it came from (owned by the set) */
};

struct strata_tensors;

int strata_tensors_create(struct strata_tensors **out);
void strata_tensors_free(struct strata_tensors *ts);
/* Map `path` and add its tensors. The format is told by content: a zip
 * archive (PK\3\4) is a torch.save file, otherwise safetensors. A name
 * already in the set is an error naming both files. */
int strata_tensors_add_file(struct strata_tensors *ts, const char *path);
int64_t strata_tensors_count(const struct strata_tensors *ts);
/* Borrowed; valid until strata_tensors_free. i in [0, count). */
const struct strata_tensor *strata_tensors_at(const struct strata_tensors *ts, int64_t i);
/* NULL if absent (no error recorded). */
const struct strata_tensor *strata_tensors_find(const struct strata_tensors *ts, const char *name);
/* Tell the kernel the pages of t are not needed for now (they stay in the
 * page cache; a later read faults them back in). Keeps the resident set of a
 * model in bf16 near one layer. No-op if the range covers no whole page. */
void strata_tensor_release(const struct strata_tensor *t);

/* dst (n) float32 = src (n) of type t (F32, F16 or BF16); src may be
 * unaligned. AVX2/F16C when built for them; exact (every F16/BF16 value is a
 * float32). */
void strata_widen(float *dst, const void *src, enum strata_dtype t, int64_t n);
/* float32 -> bfloat16, round to nearest even; NaN stays NaN. */
uint16_t strata_f32_to_bf16(float x);

/* Streaming safetensors writer: the header (names, dtypes, shapes, in the
 * order given, data contiguous in that order) is written first, then the
 * caller appends exactly the bytes of every tensor in order. Written to
 * path.partial; finish checks the byte count, fsyncs and renames to path.
 * `metadata` is a JSON object of string values for "__metadata__" or NULL. */
struct strata_st_writer;
int strata_st_writer_create(struct strata_st_writer **out, const char *path,
                            const struct strata_tensor *specs, int64_t n, const char *metadata);
int strata_st_writer_write(struct strata_st_writer *w, const void *bytes, size_t n);
int strata_st_writer_finish(struct strata_st_writer *w);
/* Frees; an unfinished writer removes its .partial file. Accepts NULL. */
void strata_st_writer_free(struct strata_st_writer *w);

#endif
