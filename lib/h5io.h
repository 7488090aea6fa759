/* h5io.h — internal: what lib/h5io.c offers lib/ beyond the public strata_h5_*
 * calls (strata.h, which also holds the dataset options and netCDF-4
 * dimensions the programs use), so lib/dump.c and lib/stats.c lay out their
 * files without calling HDF5 themselves (all HDF5 calls stay in h5io.c). No
 * HDF5 type appears here. */
#ifndef STRATA_H5IO_H
#define STRATA_H5IO_H

#include "strata.h"

/* Open path.partial (which must exist) read-write, to continue filling it;
 * strata_h5_finish then renames it to path. */
int strata_h5_open_rw(struct strata_h5 **out, const char *path);
/* Write the HDF5 metadata to disk now (after each completed sample). */
int strata_h5_flush(struct strata_h5 *f);
/* Grow axis 0 of an extendible dataset to n rows. */
int strata_h5_extend(struct strata_h5 *f, const char *name, int64_t n);
/* 1 if the dataset exists, 0 if not, negative on an HDF5 error. */
int strata_h5_has(const struct strata_h5 *f, const char *name);
/* The element type of a dataset (F16 for IEEE binary16); STRATA_E_FORMAT
 * naming the dataset for any other type. */
int strata_h5_type_of(const struct strata_h5 *f, const char *name, enum strata_dtype *type);
/* Hyperslabs: start/count (n_dim of the dataset each). Writes take memory in
 * the dataset's own type (raw halves for F16 datasets); reads convert to
 * `type` (F16 datasets widen exactly to F32, or come as raw halves with
 * type F16). */
int strata_h5_write_block(struct strata_h5 *f, const char *name, const int64_t *start,
                          const int64_t *count, const void *data);
int strata_h5_read_block(const struct strata_h5 *f, const char *name, enum strata_dtype type,
                         const int64_t *start, const int64_t *count, void *data);
/* Path of the file actually open (path.partial while writing). Borrowed. */
const char *strata_h5_file_path(const struct strata_h5 *f);

#endif
