/* torchzip.h — the torch.save reader's entry point, shared by tensors.c and
 * torchzip.c only (tensors.h is the interface the rest of lib/ uses). */
#ifndef STRATA_TORCHZIP_H
#define STRATA_TORCHZIP_H

#include "tensors.h"

/* Parse a mapped torch.save zip archive (`data`, `size` bytes, read from
 * `path`, which only names it in messages). On success *out holds *n_out
 * tensors in the state dict's order, each name xmalloc'ed (caller frees
 * every name and the array), data pointing into `data`, file NULL. */
int strata_torchzip_read(const char *path, const uint8_t *data, size_t size,
                         struct strata_tensor **out, int64_t *n_out);

#endif
