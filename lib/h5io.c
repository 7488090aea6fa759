/* h5io.c — the one file of strata that calls HDF5: result files
 * (strata_h5_*, docs/FORMAT.md "Result files") and the internal extras
 * lib/dump.c lays the hidden-state dump on (lib/h5io.h).
 *
 * Every file is written under path.partial and renamed when finished;
 * object timestamps are off (identical runs give identical bytes); datasets
 * filled by rows are chunked at ~1 MiB with a row contiguous; every axis is
 * a netCDF-4 dimension (dimension scales, as netCDF-C lays them out), so
 * xarray and netCDF readers open the files; string attributes are
 * fixed-length; HDF5's own error printing is off and every failure names
 * the file and the dataset.
 *
 * Half floats are moved raw (memory type = file type) and converted by the
 * caller or here with strata_f16_to_f32: HDF5's soft float conversion is
 * slow and its rounding is not the one the rest of strata uses.
 */
#include "internal.h"
#include "h5io.h"

#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>
#include <hdf5_hl.h>

#define CHUNK_TARGET ((int64_t)1 << 20) /* bytes a chunk aims at */
#define LAYER_SPLIT ((int64_t)4 << 20)  /* a row larger than this is cut into pieces */
#define READ_CACHE ((size_t)16 << 20)   /* chunk cache of readers: several chunks */

/* ------------------------------------------------------------- helpers */

static herr_t walk_first(unsigned n, const H5E_error2_t *err, void *data)
{
    if (n == 0 && err->desc) snprintf((char *)data, 200, "%s", err->desc);
    return 0;
}

/* The most specific message on HDF5's error stack (its printing is off), so
 * our message can say why HDF5 refused. buf holds at least 200 bytes. */
static const char *h5_why(char *buf)
{
    snprintf(buf, 200, "no detail from HDF5");
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_first, buf);
    return buf;
}

static void close_id(hid_t *id, herr_t (*closer)(hid_t))
{
    if (*id >= 0) closer(*id);
    *id = H5I_INVALID_HID;
}

/* IEEE binary16 little endian, laid out the way h5py recognizes as numpy
 * float16 (h5py builds its own float16 the same way). */
static hid_t make_half_type(void)
{
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    if (t < 0) return t;
    if (H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_size(t, 2) < 0 ||
        H5Tset_precision(t, 16) < 0 || H5Tset_offset(t, 0) < 0 || H5Tset_ebias(t, 15) < 0 ||
        H5Tset_norm(t, H5T_NORM_IMPLIED) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

/* Does file type t hold exactly IEEE binary16 little endian? Only then can
 * the raw bits go through strata_f16_to_f32. */
static bool is_half_type(hid_t t)
{
    size_t spos, epos, esize, mpos, msize;
    if (H5Tget_class(t) != H5T_FLOAT || H5Tget_size(t) != 2) return false;
    if (H5Tget_fields(t, &spos, &epos, &esize, &mpos, &msize) < 0) return false;
    return spos == 15 && epos == 10 && esize == 5 && mpos == 0 && msize == 10 &&
           H5Tget_ebias(t) == 15 && H5Tget_order(t) == H5T_ORDER_LE &&
           H5Tget_precision(t) == 16 && H5Tget_offset(t) == 0 &&
           H5Tget_norm(t) == H5T_NORM_IMPLIED;
}

/* "float of 8 bytes", for messages about unsupported types. */
static const char *type_desc(hid_t t, char *buf, size_t n)
{
    const char *cls;
    switch (H5Tget_class(t)) {
    case H5T_INTEGER: cls = "integer"; break;
    case H5T_FLOAT: cls = "float"; break;
    case H5T_STRING: cls = "string"; break;
    case H5T_COMPOUND: cls = "compound"; break;
    default: cls = "non-numeric type"; break;
    }
    snprintf(buf, n, "%s of %zu bytes", cls, H5Tget_size(t));
    return buf;
}


/* =========================================================== result files
 *
 * strata_h5_*: named datasets in one HDF5 file, for every result strata
 * writes (docs/FORMAT.md). The same rules as for dumps: written under
 * path.partial and renamed by strata_h5_finish; object timestamps off;
 * datasets filled row by row are chunked at ~1 MiB so one row (axis-0 slice)
 * is one contiguous read; errors name the file and the dataset.
 *
 * Storage is allocated when a dataset is created (H5D_ALLOC_TIME_EARLY) and
 * never filled (the file is new, so unwritten bytes read as zeros): later
 * writes then only overwrite bytes in place and allocate nothing, which is
 * what makes a run resumed from a .partial byte-identical to one that was
 * never interrupted. Compressed datasets cannot be allocated early; they are
 * filled with zeros chunk by chunk as written.
 */

#define H5_MAX_OPEN 32 /* datasets a handle keeps open (their chunk caches) */

struct strata_h5 {
    char *path;      /* as given */
    char *file_path; /* the file actually open: path.partial while writing */
    bool writer;     /* opened read-write */
    hid_t file;      /* H5I_INVALID_HID once closed */
    hid_t half;      /* IEEE binary16 type, made when first needed */
    int32_t next_dimid; /* _Netcdf4Dimid of the next dimension defined */
    int n_open;
    char *open_name[H5_MAX_OPEN]; /* names of the datasets kept open */
    hid_t open_id[H5_MAX_OPEN];
};

/* "/nll" and "nll" name the same dataset; messages print the first. */
static const char *bare(const char *name)
{
    if (!name) return "";
    while (*name == '/') name++;
    return name;
}

static int h5_check(const struct strata_h5 *f, const char *what, bool write)
{
    if (!f) return strata_fail(STRATA_E_ARG, "%s: NULL file handle", what);
    if (f->file < 0)
        return strata_fail(STRATA_E_ARG, "%s: %s: the file was finished and closed", f->path, what);
    if (write && !f->writer)
        return strata_fail(STRATA_E_ARG, "%s: %s: the file is open for reading only", f->path,
                           what);
    return 0;
}

static hid_t h5_half(struct strata_h5 *f)
{
    if (f->half < 0) f->half = make_half_type();
    return f->half;
}

/* The dtypes an HDF5 file holds here: the result files' four and the dump's
 * F16 (BF16 has no HDF5 type). */
static bool h5_type_ok(enum strata_dtype t)
{
    return t == STRATA_DT_F32 || t == STRATA_DT_F64 || t == STRATA_DT_I32 ||
           t == STRATA_DT_I64 || t == STRATA_DT_F16;
}

/* The public calls take the result files' four; F16 in memory (raw halves)
 * is the dump's, through lib/h5io.h. f is a checked handle. */
static int h5_check_public(const struct strata_h5 *f, const char *name, enum strata_dtype t)
{
    if (t == STRATA_DT_F32 || t == STRATA_DT_F64 || t == STRATA_DT_I32 || t == STRATA_DT_I64)
        return 0;
    return strata_fail(STRATA_E_ARG, "%s: dataset /%s: dtype %s; result files hold F32, F64, "
                       "I32 or I64", f->path, bare(name), strata_dtype_name(t));
}

/* Memory type of `t` (the half type is the file's own, moved raw). */
static hid_t h5_mem_type(struct strata_h5 *f, enum strata_dtype t)
{
    switch (t) {
    case STRATA_DT_F32: return H5T_NATIVE_FLOAT;
    case STRATA_DT_F64: return H5T_NATIVE_DOUBLE;
    case STRATA_DT_I32: return H5T_NATIVE_INT32;
    case STRATA_DT_I64: return H5T_NATIVE_INT64;
    case STRATA_DT_F16: return h5_half(f);
    default: return H5I_INVALID_HID;
    }
}

static hid_t h5_file_type(struct strata_h5 *f, enum strata_dtype t)
{
    switch (t) {
    case STRATA_DT_F32: return H5T_IEEE_F32LE;
    case STRATA_DT_F64: return H5T_IEEE_F64LE;
    case STRATA_DT_I32: return H5T_STD_I32LE;
    case STRATA_DT_I64: return H5T_STD_I64LE;
    case STRATA_DT_F16: return h5_half(f);
    default: return H5I_INVALID_HID;
    }
}

/* *out = the dtype a file type holds; false if none. */
static bool h5_classify(hid_t t, enum strata_dtype *out)
{
    H5T_class_t c = H5Tget_class(t);
    size_t n = H5Tget_size(t);
    if (c == H5T_FLOAT && n == 4) *out = STRATA_DT_F32;
    else if (c == H5T_FLOAT && n == 8) *out = STRATA_DT_F64;
    else if (c == H5T_FLOAT && is_half_type(t)) *out = STRATA_DT_F16;
    else if (c == H5T_INTEGER && n <= 4) *out = STRATA_DT_I32;
    else if (c == H5T_INTEGER && n == 8) *out = STRATA_DT_I64;
    else return false;
    return true;
}

static struct strata_h5 *h5_new(const char *path)
{
    struct strata_h5 *f = xcalloc(1, sizeof *f);
    f->path = strata_xstrdup(path);
    f->file = f->half = H5I_INVALID_HID;
    return f;
}

static char *partial_name(const char *path)
{
    size_t n = strlen(path);
    char *p = xmalloc(n + sizeof ".partial");
    memcpy(p, path, n);
    memcpy(p + n, ".partial", sizeof ".partial");
    return p;
}

static void h5_close_all(struct strata_h5 *f)
{
    for (int i = 0; i < f->n_open; i++) {
        close_id(&f->open_id[i], H5Dclose);
        free(f->open_name[i]);
    }
    f->n_open = 0;
    close_id(&f->half, H5Tclose);
}

void strata_h5_free(struct strata_h5 *f)
{
    if (!f) return;
    /* An unfinished writer is closed properly: path.partial stays valid. */
    h5_close_all(f);
    close_id(&f->file, H5Fclose);
    free(f->file_path);
    free(f->path);
    free(f);
}

const char *strata_h5_file_path(const struct strata_h5 *f) { return f ? f->file_path : NULL; }

int strata_h5_create(struct strata_h5 **out, const char *path)
{
    char why[200];
    hid_t fcpl = H5I_INVALID_HID, fapl = H5I_INVALID_HID;
    if (!out) return strata_fail(STRATA_E_ARG, "strata_h5_create: out is NULL");
    *out = NULL;
    if (!path || !path[0]) return strata_fail(STRATA_E_ARG, "strata_h5_create: empty path");
    /* The result is renamed onto path at the end: a device or FIFO there
     * (-o /dev/null) would be replaced by a regular file. */
    struct stat pst;
    if (stat(path, &pst) == 0 && !S_ISREG(pst.st_mode))
        return strata_fail(STRATA_E_IO, "%s: not a regular file (a directory, device or pipe); "
                           "an HDF5 output is written as NAME.partial and renamed, so give a "
                           "file name", path);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    struct strata_h5 *f = h5_new(path);
    f->writer = true;
    f->file_path = partial_name(path);
    /* Our own open() first: it says why (no such directory, permission)
     * where HDF5 only says "unable to open file". */
    int fd = open(f->file_path, O_WRONLY | O_CREAT, 0666);
    if (fd < 0) {
        int rc = strata_fail(STRATA_E_IO, "%s: cannot create: %s; check that the directory "
                             "exists and is writable", f->file_path, strerror(errno));
        strata_h5_free(f);
        return rc;
    }
    /* A run owns its .partial: another writer holds HDF5's lock on it, and
     * H5Fcreate would truncate it to nothing before failing on that lock
     * (the first run would then "finish" a file that no longer opens). */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int rc = strata_fail(STRATA_E_IO, "%s: another run is writing it (%s); wait for it, or "
                             "give another -o", f->file_path, strerror(errno));
        close(fd);
        strata_h5_free(f);
        return rc;
    }
    flock(fd, LOCK_UN);
    close(fd);
    /* Earliest file format (the default): no superblock "open for writing"
     * flag, so a .partial left by a killed run opens without h5clear. */
    if ((fcpl = H5Pcreate(H5P_FILE_CREATE)) < 0 || H5Pset_obj_track_times(fcpl, 0) < 0 ||
        (fapl = H5Pcreate(H5P_FILE_ACCESS)) < 0 ||
        H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0 ||
        (f->file = H5Fcreate(f->file_path, H5F_ACC_TRUNC, fcpl, fapl)) < 0) {
        int rc = strata_fail(STRATA_E_HDF5, "%s: cannot create the HDF5 file (%s); check that no "
                             "other run is writing it", f->file_path, h5_why(why));
        close_id(&fcpl, H5Pclose);
        close_id(&fapl, H5Pclose);
        strata_h5_free(f);
        return rc;
    }
    close_id(&fcpl, H5Pclose);
    close_id(&fapl, H5Pclose);
    *out = f;
    return 0;
}

static int h5_open_file(struct strata_h5 **out, const char *path, const char *file_path,
                        bool rw)
{
    char why[200];
    struct stat st;
    *out = NULL;
    if (stat(file_path, &st) != 0)
        return strata_fail(STRATA_E_IO, "%s: cannot open: %s", file_path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return strata_fail(STRATA_E_IO, "%s: not a regular file", file_path);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (H5Fis_hdf5(file_path) <= 0)
        return strata_fail(STRATA_E_FORMAT, "%s: not an HDF5 file (no HDF5 signature)", file_path);
    struct strata_h5 *f = h5_new(path);
    f->writer = rw;
    f->file_path = strata_xstrdup(file_path);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0 ||
        (f->file = H5Fopen(file_path, rw ? H5F_ACC_RDWR : H5F_ACC_RDONLY, fapl)) < 0) {
        int rc = strata_fail(STRATA_E_FORMAT, "%s: HDF5 cannot open it%s (%s): the file is "
                             "truncated or damaged, or a running writer holds its lock",
                             file_path, rw ? " for writing" : "", h5_why(why));
        close_id(&fapl, H5Pclose);
        strata_h5_free(f);
        return rc;
    }
    close_id(&fapl, H5Pclose);
    *out = f;
    return 0;
}

int strata_h5_open(struct strata_h5 **out, const char *path)
{
    if (!out) return strata_fail(STRATA_E_ARG, "strata_h5_open: out is NULL");
    *out = NULL;
    if (!path || !path[0]) return strata_fail(STRATA_E_ARG, "strata_h5_open: empty path");
    return h5_open_file(out, path, path, false);
}

int strata_h5_open_rw(struct strata_h5 **out, const char *path)
{
    if (!out) return strata_fail(STRATA_E_ARG, "strata_h5_open_rw: out is NULL");
    *out = NULL;
    if (!path || !path[0]) return strata_fail(STRATA_E_ARG, "strata_h5_open_rw: empty path");
    char *fp = partial_name(path);
    int rc = h5_open_file(out, path, fp, true);
    free(fp);
    return rc;
}

int strata_h5_flush(struct strata_h5 *f)
{
    char why[200];
    int rc = h5_check(f, "strata_h5_flush", true);
    if (rc) return rc;
    if (H5Fflush(f->file, H5F_SCOPE_LOCAL) < 0)
        return strata_fail(STRATA_E_HDF5, "%s: cannot flush (%s); check free disk space",
                           f->file_path, h5_why(why));
    return 0;
}

int strata_h5_finish(struct strata_h5 *f)
{
    char why[200];
    int rc = h5_check(f, "strata_h5_finish", true);
    if (rc) return rc;
    /* A directory in the way would make the rename fail after the file says
     * complete: unsay it first, so no .partial ever looks finished. */
    struct stat dst;
    if (stat(f->path, &dst) == 0 && S_ISDIR(dst.st_mode)) {
        strata_h5_set_attr_i64(f, "/", "complete", 0);
        return strata_fail(STRATA_E_IO, "%s is a directory: cannot finish %s there; give -o a "
                           "file name", f->path, f->file_path);
    }
    h5_close_all(f);
    herr_t st = H5Fclose(f->file);
    f->file = H5I_INVALID_HID;
    if (st < 0)
        return strata_fail(STRATA_E_HDF5, "%s: cannot close (%s); check free disk space",
                           f->file_path, h5_why(why));
    /* The data must be on disk before the name says "finished". */
    int fd = open(f->file_path, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) {
        rc = strata_fail(STRATA_E_IO, "%s: cannot fsync: %s", f->file_path, strerror(errno));
        if (fd >= 0) close(fd);
        return rc;
    }
    close(fd);
    if (rename(f->file_path, f->path) != 0)
        return strata_fail(STRATA_E_IO, "%s: cannot rename to %s: %s", f->file_path, f->path,
                           strerror(errno));
    /* Make the rename itself durable; some file systems refuse fsync on a
     * directory, which costs durability only, so it is not an error. */
    char *dir = strata_xstrdup(f->path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        slash[slash == dir ? 1 : 0] = '\0';
    } else {
        dir[0] = '.';
        dir[1] = '\0';
    }
    fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
    return 0;
}

/* Create the groups above dataset `name` ("a/b/c" makes a and a/b), with
 * timestamps off (HDF5's own intermediate groups would carry them). */
static int h5_make_parents(struct strata_h5 *f, const char *name)
{
    char why[200];
    char *p = strata_xstrdup(name);
    int rc = 0;
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    if (gcpl < 0 || H5Pset_obj_track_times(gcpl, 0) < 0) goto h5fail;
    for (char *s = strchr(p, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        htri_t ex = H5Lexists(f->file, p, H5P_DEFAULT);
        if (ex < 0) goto h5fail;
        if (!ex) {
            hid_t g = H5Gcreate2(f->file, p, H5P_DEFAULT, gcpl, H5P_DEFAULT);
            if (g < 0) goto h5fail;
            H5Gclose(g);
        }
        *s = '/';
    }
    goto done;
h5fail:
    rc = strata_fail(STRATA_E_HDF5, "%s: cannot create the group /%s (%s)", f->file_path, p,
                     h5_why(why));
done:
    close_id(&gcpl, H5Pclose);
    free(p);
    return rc;
}

/* Dataset `name` from the open-handle cache (opened on first use). A
 * missing dataset is STRATA_E_FORMAT naming the file and the dataset. */
static int h5_dset(const struct strata_h5 *fc, const char *name, hid_t *ds)
{
    char why[200];
    struct strata_h5 *f = (struct strata_h5 *)fc; /* the cache is not the file's content */
    name = bare(name);
    for (int i = 0; i < f->n_open; i++)
        if (!strcmp(f->open_name[i], name)) {
            *ds = f->open_id[i];
            return 0;
        }
    htri_t ex = name[0] ? H5Lexists(f->file, name, H5P_DEFAULT) : 0;
    /* "a/b" with no group "a" fails the lookup instead of saying 0. */
    if (ex <= 0)
        return strata_fail(STRATA_E_FORMAT, "%s: dataset /%s is missing (docs/FORMAT.md lists "
                           "what each strata file holds)", f->file_path, name);
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    if (dapl >= 0) H5Pset_chunk_cache(dapl, 2003, READ_CACHE, 0.75);
    hid_t id = H5Dopen2(f->file, name, dapl >= 0 ? dapl : H5P_DEFAULT);
    close_id(&dapl, H5Pclose);
    if (id < 0)
        return strata_fail(STRATA_E_FORMAT, "%s: /%s is not a readable dataset (%s)",
                           f->file_path, name, h5_why(why));
    if (f->n_open == H5_MAX_OPEN) { /* drop the oldest */
        H5Dclose(f->open_id[0]);
        free(f->open_name[0]);
        memmove(f->open_name, f->open_name + 1, (H5_MAX_OPEN - 1) * sizeof f->open_name[0]);
        memmove(f->open_id, f->open_id + 1, (H5_MAX_OPEN - 1) * sizeof f->open_id[0]);
        f->n_open--;
    }
    f->open_name[f->n_open] = strata_xstrdup(name);
    f->open_id[f->n_open++] = id;
    *ds = id;
    return 0;
}

int strata_h5_has(const struct strata_h5 *f, const char *name)
{
    char why[200];
    int rc = h5_check(f, "strata_h5_has", false);
    if (rc) return rc;
    name = bare(name);
    if (!name[0]) return 0;
    /* Check each parent so a missing group reads as "absent", not an error. */
    char *p = strata_xstrdup(name);
    htri_t ex = 1;
    for (char *s = strchr(p, '/'); ex > 0; s = strchr(s + 1, '/')) {
        if (s) *s = '\0';
        ex = H5Lexists(f->file, p, H5P_DEFAULT);
        if (!s) break;
        *s = '/';
    }
    free(p);
    if (ex < 0)
        return strata_fail(STRATA_E_HDF5, "%s: cannot look up /%s (%s)", f->file_path, name,
                           h5_why(why));
    if (ex == 0) return 0;
    H5O_info_t oi;
    if (H5Oget_info_by_name(f->file, name, &oi, H5P_DEFAULT) < 0) return 0;
    return oi.type == H5O_TYPE_DATASET;
}

/* Chunk of a dataset filled by rows (docs/FORMAT.md, "Chunks"): if a row
 * (axis-0 slice) is at most 4 MiB, whole rows, k of them for ~1 MiB; else
 * one row cut along the first axes whose remainder fits, ~1 MiB a piece. */
static void default_chunk(int n_dim, const int64_t *shape, int64_t esize, hsize_t *chunk)
{
    int64_t row = esize;
    for (int i = 1; i < n_dim; i++) row *= shape[i];
    for (int i = 0; i < n_dim; i++) chunk[i] = (hsize_t)shape[i];
    if (row <= LAYER_SPLIT) {
        int64_t k = CHUNK_TARGET / row;
        chunk[0] = (hsize_t)(k < 1 ? 1 : k > shape[0] ? shape[0] : k);
        return;
    }
    chunk[0] = 1;
    for (int i = 1; i < n_dim; i++) {
        int64_t tail = esize; /* bytes of one index of axis i */
        for (int j = i + 1; j < n_dim; j++) tail *= shape[j];
        if (tail * shape[i] <= LAYER_SPLIT) return; /* the rest is whole */
        if (tail <= CHUNK_TARGET) {
            int64_t pieces = (tail * shape[i] + CHUNK_TARGET - 1) / CHUNK_TARGET;
            chunk[i] = (hsize_t)((shape[i] + pieces - 1) / pieces);
            return;
        }
        chunk[i] = 1;
    }
}

static int h5_check_shape(const struct strata_h5 *f, const char *name, enum strata_dtype type,
                          int n_dim, const int64_t *shape, int min_dim, int64_t min_size)
{
    if (!h5_type_ok(type))
        return strata_fail(STRATA_E_ARG, "%s: dataset /%s: dtype %s has no HDF5 type here",
                           f->file_path, name, strata_dtype_name(type));
    if (n_dim < min_dim || n_dim > STRATA_H5_MAX_DIMS || (n_dim > 0 && !shape))
        return strata_fail(STRATA_E_ARG, "%s: dataset /%s: rank %d is outside %d .. %d",
                           f->file_path, name, n_dim, min_dim, STRATA_H5_MAX_DIMS);
    int64_t n = (int64_t)strata_dtype_size(type);
    for (int i = 0; i < n_dim; i++) {
        if (shape[i] < min_size)
            return strata_fail(STRATA_E_ARG, "%s: dataset /%s: axis %d has size %lld (at least "
                               "%lld)", f->file_path, name, i, (long long)shape[i],
                               (long long)min_size);
        if (shape[i] > 0 && n > INT64_MAX / 4 / shape[i])
            return strata_fail(STRATA_E_SHAPE, "%s: dataset /%s is too large", f->file_path, name);
        n *= shape[i] > 0 ? shape[i] : 1;
    }
    return 0;
}

/* ------------------------------------------------- netCDF-4 dimensions
 *
 * netCDF-4 keeps a dimension as an HDF5 dimension scale named after it
 * (netCDF-C libhdf5/nc4hdf.c, hdf5open.c; h5netcdf reads them the same way):
 * a coordinate variable is the 1-D dataset of the dimension's name made a
 * scale; a dimension without one is an empty float dataset of that name
 * whose scale NAME starts "This is a netCDF dimension but not a netCDF
 * variable." followed by its length in ten columns. The hidden attribute
 * _Netcdf4Dimid numbers the dimensions of the file. Every other dataset has
 * a scale attached to each axis (H5DSattach_scale); a reader finds it in the
 * dataset's group or a parent group, which is where netCDF makes a
 * dimension visible. Axes without a scale would get netCDF's phony_dim_N
 * names, one per length, merging axes of equal length. */

#define NC_DIM_WITHOUT_VAR "This is a netCDF dimension but not a netCDF variable."

static int h5_dims(const struct strata_h5 *f, const char *name, hid_t *ds, int *n_dim,
                   hsize_t *dims);

/* The dimension scale `dim` visible from dataset `name` (in its group or a
 * parent group), opened into *scale with its path in path (n bytes); 0 if
 * none. */
static int h5_find_scale(const struct strata_h5 *f, const char *name, const char *dim,
                         hid_t *scale, char *path, size_t n)
{
    *scale = H5I_INVALID_HID;
    size_t glen = strlen(name);
    for (;;) { /* name[0 .. glen) is the group prefix tried, "" last */
        while (glen > 0 && name[glen - 1] != '/') glen--;
        int w = snprintf(path, n, "%.*s%s", (int)glen, name, dim);
        if (w > 0 && (size_t)w < n && strata_h5_has(f, path) > 0) {
            hid_t id = H5Dopen2(f->file, path, H5P_DEFAULT);
            if (id >= 0 && H5DSis_scale(id) > 0) {
                *scale = id;
                return 1;
            }
            close_id(&id, H5Dclose);
        }
        if (glen == 0) return 0;
        glen--; /* drop the slash: the parent group's prefix is tried next */
    }
}

/* Attach dimension dimnames[i] to axis i of dataset ds (`name`, dims) and
 * label the axis with the dimension's name. A coordinate variable is its own
 * dimension: nothing is attached to it. */
static int h5_attach(struct strata_h5 *f, const char *name, hid_t ds, int n_dim,
                     const hsize_t *dims, const char *const *dimnames)
{
    char why[200], path[512];
    for (int i = 0; i < n_dim; i++) {
        const char *dim = dimnames[i];
        if (!dim || !dim[0] || strchr(dim, '/'))
            return strata_fail(STRATA_E_ARG, "%s: dataset /%s: axis %d needs a dimension name "
                               "(no slash)", f->file_path, name, i);
        hid_t scale;
        if (!h5_find_scale(f, name, dim, &scale, path, sizeof path))
            return strata_fail(STRATA_E_ARG, "%s: dataset /%s: dimension `%s` (axis %d) is not "
                               "defined in its group or a parent group (strata_h5_def_dim)",
                               f->file_path, name, dim, i);
        if (!strcmp(path, name)) { /* the coordinate variable itself */
            close_id(&scale, H5Dclose);
            continue;
        }
        hsize_t len = 0;
        hid_t sp = H5Dget_space(scale);
        int r = sp < 0 ? -1 : H5Sget_simple_extent_ndims(sp);
        if (r == 1) H5Sget_simple_extent_dims(sp, &len, NULL);
        close_id(&sp, H5Sclose);
        int rc = 0;
        if (r != 1 || len != dims[i])
            rc = strata_fail(STRATA_E_ARG, "%s: dataset /%s: axis %d has length %llu, dimension "
                             "/%s has %llu", f->file_path, name, i, (unsigned long long)dims[i],
                             path, (unsigned long long)len);
        else if (H5DSattach_scale(ds, scale, (unsigned)i) < 0 ||
                 H5DSset_label(ds, (unsigned)i, dim) < 0)
            rc = strata_fail(STRATA_E_HDF5, "%s: cannot attach dimension /%s to axis %d of /%s "
                             "(%s)", f->file_path, path, i, name, h5_why(why));
        close_id(&scale, H5Dclose);
        if (rc) return rc;
    }
    return 0;
}

/* netCDF's number of the dimension scale ds, in the order defined. */
static int h5_dimid(struct strata_h5 *f, hid_t ds, const char *name)
{
    char why[200];
    int32_t id = f->next_dimid++;
    hid_t space = H5Screate(H5S_SCALAR), a = H5I_INVALID_HID;
    herr_t st = -1;
    if (space >= 0 &&
        (a = H5Acreate2(ds, "_Netcdf4Dimid", H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT)) >= 0)
        st = H5Awrite(a, H5T_NATIVE_INT32, &id);
    close_id(&a, H5Aclose);
    close_id(&space, H5Sclose);
    if (st < 0)
        return strata_fail(STRATA_E_HDF5, "%s: cannot number dimension /%s (%s)", f->file_path,
                           name, h5_why(why));
    return 0;
}

int strata_h5_def_dim(struct strata_h5 *f, const char *name, int64_t n, bool unlimited)
{
    char why[200], nc_name[sizeof NC_DIM_WITHOUT_VAR + 24];
    int rc = h5_check(f, "strata_h5_def_dim", true);
    if (rc) return rc;
    name = bare(name);
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    if (!base[0] || n < 0)
        return strata_fail(STRATA_E_ARG, "%s: dimension `%s` of length %lld: needs a name and a "
                           "length >= 0", f->file_path, name, (long long)n);
    int has = strata_h5_has(f, name);
    if (has < 0) return has;
    hid_t ds = H5I_INVALID_HID, space = H5I_INVALID_HID, dcpl = H5I_INVALID_HID;
    if (has) { /* a coordinate variable */
        hsize_t len = 0, maxlen = 0;
        if ((ds = H5Dopen2(f->file, name, H5P_DEFAULT)) < 0 || (space = H5Dget_space(ds)) < 0)
            goto h5fail;
        int r = H5Sget_simple_extent_ndims(space);
        if (r == 1) H5Sget_simple_extent_dims(space, &len, &maxlen);
        if (r != 1 || len != (hsize_t)n || (maxlen == H5S_UNLIMITED) != unlimited) {
            rc = strata_fail(STRATA_E_ARG, "%s: dataset /%s cannot be the coordinate of dimension "
                             "`%s` (length %lld%s): it must be 1-D of that length%s", f->file_path,
                             name, base, (long long)n, unlimited ? ", unlimited" : "",
                             unlimited ? " and extendible" : ", not extendible");
            goto done;
        }
        if (H5DSis_scale(ds) > 0) {
            rc = strata_fail(STRATA_E_ARG, "%s: dimension /%s is already defined", f->file_path,
                             name);
            goto done;
        }
        if (H5DSset_scale(ds, base) < 0) goto h5fail;
    } else { /* a dimension without a variable */
        if (strchr(name, '/') && (rc = h5_make_parents(f, name))) goto done;
        hsize_t len = (hsize_t)n, maxlen = unlimited ? H5S_UNLIMITED : len, one = 1;
        if ((space = H5Screate_simple(1, &len, &maxlen)) < 0 ||
            (dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0 || H5Pset_obj_track_times(dcpl, 0) < 0 ||
            (unlimited && H5Pset_chunk(dcpl, 1, &one) < 0) ||
            (ds = H5Dcreate2(f->file, name, H5T_IEEE_F32BE, space, H5P_DEFAULT, dcpl,
                             H5P_DEFAULT)) < 0)
            goto h5fail;
        snprintf(nc_name, sizeof nc_name, "%s%10lld", NC_DIM_WITHOUT_VAR, (long long)n);
        if (H5DSset_scale(ds, nc_name) < 0) goto h5fail;
    }
    rc = h5_dimid(f, ds, name);
    goto done;
h5fail:
    rc = strata_fail(STRATA_E_HDF5, "%s: cannot define dimension /%s (%s); check free disk space",
                     f->file_path, name, h5_why(why));
done:
    close_id(&dcpl, H5Pclose);
    close_id(&space, H5Sclose);
    close_id(&ds, H5Dclose);
    return rc;
}

int strata_h5_set_dims(struct strata_h5 *f, const char *name, const char *const *dims)
{
    hid_t ds;
    int n_dim, rc = h5_check(f, "strata_h5_set_dims", true);
    hsize_t shape[STRATA_H5_MAX_DIMS];
    if (rc || (rc = h5_dims(f, name, &ds, &n_dim, shape))) return rc;
    if (!dims) return strata_fail(STRATA_E_ARG, "%s: dataset /%s: no dimension names",
                                  f->file_path, bare(name));
    return h5_attach(f, bare(name), ds, n_dim, shape, dims);
}

int strata_h5_write_coord(struct strata_h5 *f, const char *name, enum strata_dtype type,
                          int64_t n, const void *data, const char *long_name, const char *units)
{
    const int64_t shape[1] = {n};
    int rc = strata_h5_write(f, name, type, 1, shape, data);
    if (!rc) rc = strata_h5_def_dim(f, name, n, false);
    if (!rc && long_name) rc = strata_h5_set_attr_str(f, name, "long_name", long_name);
    if (!rc && units) rc = strata_h5_set_attr_str(f, name, "units", units);
    return rc;
}

/* Create dataset `name`; chunked (rows) or contiguous (whole writes). */
static int h5_create(struct strata_h5 *f, const char *name, enum strata_dtype type, int n_dim,
                     const int64_t *shape, bool chunked, const struct strata_h5_dset_opts *o,
                     hid_t *out)
{
    char why[200];
    int rc = 0;
    hid_t space = H5I_INVALID_HID, dcpl = H5I_INVALID_HID, ds = H5I_INVALID_HID;
    *out = H5I_INVALID_HID;
    int ex = strata_h5_has(f, name);
    if (ex < 0) return ex;
    if (ex > 0)
        return strata_fail(STRATA_E_ARG, "%s: dataset /%s already exists; give each dataset "
                           "one name", f->file_path, name);
    if (strchr(name, '/') && (rc = h5_make_parents(f, name))) return rc;
    hsize_t dims[STRATA_H5_MAX_DIMS], maxd[STRATA_H5_MAX_DIMS], chunk[STRATA_H5_MAX_DIMS];
    for (int i = 0; i < n_dim; i++) dims[i] = maxd[i] = (hsize_t)shape[i];
    int gzip = o ? o->gzip : 0;
    if (o && o->extendible) maxd[0] = H5S_UNLIMITED;
    if (gzip < 0 || gzip > 9)
        return strata_fail(STRATA_E_ARG, "%s: dataset /%s: gzip level %d is outside 0 .. 9",
                           f->file_path, name, gzip);
    hid_t ftype = h5_file_type(f, type);
    if (ftype < 0) goto h5fail;
    if ((space = n_dim ? H5Screate_simple(n_dim, dims, maxd) : H5Screate(H5S_SCALAR)) < 0 ||
        (dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0 || H5Pset_obj_track_times(dcpl, 0) < 0)
        goto h5fail;
    /* Zero is the fill value either way; see the banner of this section
     * for when it is written. */
    static const char zero[8] = {0};
    if (H5Pset_fill_value(dcpl, ftype, zero) < 0) goto h5fail;
    if (chunked) {
        if (o && o->chunk) {
            for (int i = 0; i < n_dim; i++) {
                if (o->chunk[i] < 1 || (o->chunk[i] > shape[i] && !(i == 0 && o->extendible))) {
                    rc = strata_fail(STRATA_E_ARG, "%s: dataset /%s: chunk axis %d of %lld does "
                                     "not fit the shape", f->file_path, name, i,
                                     (long long)o->chunk[i]);
                    goto fail;
                }
                chunk[i] = (hsize_t)o->chunk[i];
            }
        } else {
            default_chunk(n_dim, shape, (int64_t)strata_dtype_size(type), chunk);
        }
        if (H5Pset_chunk(dcpl, n_dim, chunk) < 0) goto h5fail;
    } else if (H5Pset_layout(dcpl, H5D_CONTIGUOUS) < 0) {
        goto h5fail;
    }
    if (gzip > 0) {
        if (H5Pset_shuffle(dcpl) < 0 || H5Pset_deflate(dcpl, (unsigned)gzip) < 0 ||
            H5Pset_fill_time(dcpl, H5D_FILL_TIME_ALLOC) < 0)
            goto h5fail;
    } else if (H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) < 0 ||
               H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0) {
        goto h5fail;
    }
    if ((ds = H5Dcreate2(f->file, name, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT)) < 0)
        goto h5fail;
    if (o && o->dims && (rc = h5_attach(f, name, ds, n_dim, dims, o->dims))) goto fail;
    *out = ds;
    ds = H5I_INVALID_HID;
    goto done;
h5fail:
    rc = strata_fail(STRATA_E_HDF5, "%s: cannot create dataset /%s (%s); check free disk space",
                     f->file_path, name, h5_why(why));
fail:
    close_id(&ds, H5Dclose);
done:
    close_id(&space, H5Sclose);
    close_id(&dcpl, H5Pclose);
    return rc;
}

int strata_h5_write(struct strata_h5 *f, const char *name, enum strata_dtype type, int n_dim,
                    const int64_t *shape, const void *data)
{
    char why[200];
    int rc = h5_check(f, "strata_h5_write", true);
    if (rc || (rc = h5_check_public(f, name, type))) return rc;
    name = bare(name);
    if (!name[0]) return strata_fail(STRATA_E_ARG, "%s: empty dataset name", f->path);
    if ((rc = h5_check_shape(f, name, type, n_dim, shape, 0, 0))) return rc;
    int64_t n = 1;
    for (int i = 0; i < n_dim; i++) n *= shape[i];
    if (n > 0 && !data)
        return strata_fail(STRATA_E_ARG, "%s: dataset /%s: data is NULL", f->file_path, name);
    hid_t ds;
    if ((rc = h5_create(f, name, type, n_dim, shape, false, NULL, &ds))) return rc;
    herr_t st = n > 0 ? H5Dwrite(ds, h5_mem_type(f, type), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : 0;
    H5Dclose(ds);
    if (st < 0)
        return strata_fail(STRATA_E_HDF5, "%s: cannot write dataset /%s (%s); check free disk "
                           "space", f->file_path, name, h5_why(why));
    return 0;
}

int strata_h5_create_dataset_opts(struct strata_h5 *f, const char *name, enum strata_dtype type,
                                  int n_dim, const int64_t *shape,
                                  const struct strata_h5_dset_opts *opts)
{
    int rc = h5_check(f, "strata_h5_create_dataset", true);
    if (rc) return rc;
    name = bare(name);
    if (!name[0]) return strata_fail(STRATA_E_ARG, "%s: empty dataset name", f->path);
    if ((rc = h5_check_shape(f, name, type, n_dim, shape, 1, 1))) return rc;
    hid_t ds;
    if ((rc = h5_create(f, name, type, n_dim, shape, true, opts, &ds))) return rc;
    H5Dclose(ds);
    return 0;
}

int strata_h5_create_dataset(struct strata_h5 *f, const char *name, enum strata_dtype type,
                             int n_dim, const int64_t *shape)
{
    int rc = h5_check(f, "strata_h5_create_dataset", true);
    if (rc || (rc = h5_check_public(f, name, type))) return rc;
    return strata_h5_create_dataset_opts(f, name, type, n_dim, shape, NULL);
}

/* Dataset, its rank and dims, for a hyperslab access. */
static int h5_dims(const struct strata_h5 *f, const char *name, hid_t *ds, int *n_dim,
                   hsize_t *dims)
{
    char why[200];
    int rc = h5_dset(f, name, ds);
    if (rc) return rc;
    hid_t space = H5Dget_space(*ds);
    int r = space < 0 ? -1 : H5Sget_simple_extent_ndims(space);
    if (r >= 0 && r <= STRATA_H5_MAX_DIMS) H5Sget_simple_extent_dims(space, dims, NULL);
    close_id(&space, H5Sclose);
    if (r < 0)
        return strata_fail(STRATA_E_HDF5, "%s: cannot get the shape of /%s (%s)", f->file_path,
                           bare(name), h5_why(why));
    if (r > STRATA_H5_MAX_DIMS)
        return strata_fail(STRATA_E_FORMAT, "%s: dataset /%s has rank %d (strata reads up to %d)",
                           f->file_path, bare(name), r, STRATA_H5_MAX_DIMS);
    *n_dim = r;
    return 0;
}

int strata_h5_shape(const struct strata_h5 *f, const char *name, int *n_dim, int64_t *shape)
{
    int rc = h5_check(f, "strata_h5_shape", false);
    if (rc) return rc;
    if (!name || !n_dim || !shape)
        return strata_fail(STRATA_E_ARG, "%s: strata_h5_shape: NULL argument", f->path);
    hid_t ds;
    hsize_t dims[STRATA_H5_MAX_DIMS];
    if ((rc = h5_dims(f, name, &ds, n_dim, dims))) return rc;
    for (int i = 0; i < *n_dim; i++) shape[i] = (int64_t)dims[i];
    return 0;
}

int strata_h5_type_of(const struct strata_h5 *f, const char *name, enum strata_dtype *type)
{
    char tbuf[64], why[200];
    hid_t ds;
    int rc = h5_check(f, "strata_h5_type_of", false);
    if (rc || (rc = h5_dset(f, name, &ds))) return rc;
    hid_t t = H5Dget_type(ds);
    if (t < 0)
        return strata_fail(STRATA_E_HDF5, "%s: cannot get the type of /%s (%s)", f->file_path,
                           bare(name), h5_why(why));
    if (!h5_classify(t, type))
        rc = strata_fail(STRATA_E_FORMAT, "%s: dataset /%s holds %s; strata reads float16/32/64 "
                         "and integers only", f->file_path, bare(name),
                         type_desc(t, tbuf, sizeof tbuf));
    H5Tclose(t);
    return rc;
}

/* Select start/count of dataset ds (rank n_dim, dims) after checking the
 * bounds; *fspace and *mspace are then the caller's to close. */
static int h5_select(const struct strata_h5 *f, const char *name, hid_t ds, int n_dim,
                     const hsize_t *dims, const int64_t *start, const int64_t *count,
                     hid_t *fspace, hid_t *mspace, int64_t *n_elem)
{
    char why[200];
    hsize_t st[STRATA_H5_MAX_DIMS], ct[STRATA_H5_MAX_DIMS];
    *fspace = *mspace = H5I_INVALID_HID;
    *n_elem = 1;
    for (int i = 0; i < n_dim; i++) {
        if (start[i] < 0 || count[i] < 0 || (uint64_t)start[i] + (uint64_t)count[i] > dims[i])
            return strata_fail(STRATA_E_ARG, "%s: dataset /%s: axis %d: indices %lld .. %lld "
                               "are outside 0 .. %llu", f->file_path, bare(name), i,
                               (long long)start[i], (long long)(start[i] + count[i] - 1),
                               (unsigned long long)dims[i] - 1);
        st[i] = (hsize_t)start[i];
        ct[i] = (hsize_t)count[i];
        *n_elem *= count[i];
    }
    if (*n_elem == 0) return 0;
    if ((*fspace = H5Dget_space(ds)) < 0 ||
        (n_dim > 0 && H5Sselect_hyperslab(*fspace, H5S_SELECT_SET, st, NULL, ct, NULL) < 0) ||
        (*mspace = n_dim ? H5Screate_simple(n_dim, ct, NULL) : H5Screate(H5S_SCALAR)) < 0) {
        close_id(fspace, H5Sclose);
        close_id(mspace, H5Sclose);
        return strata_fail(STRATA_E_HDF5, "%s: cannot select a part of /%s (%s)", f->file_path,
                           bare(name), h5_why(why));
    }
    return 0;
}

int strata_h5_write_block(struct strata_h5 *f, const char *name, const int64_t *start,
                          const int64_t *count, const void *data)
{
    char why[200];
    int rc = h5_check(f, "strata_h5_write", true);
    if (rc) return rc;
    hid_t ds, fspace, mspace;
    int n_dim;
    hsize_t dims[STRATA_H5_MAX_DIMS];
    int64_t n;
    enum strata_dtype type;
    if ((rc = h5_dims(f, name, &ds, &n_dim, dims)) || (rc = strata_h5_type_of(f, name, &type)) ||
        (rc = h5_select(f, name, ds, n_dim, dims, start, count, &fspace, &mspace, &n)))
        return rc;
    if (n == 0) return 0;
    if (!data) {
        close_id(&fspace, H5Sclose);
        close_id(&mspace, H5Sclose);
        return strata_fail(STRATA_E_ARG, "%s: dataset /%s: data is NULL", f->file_path,
                           bare(name));
    }
    /* Memory in the dataset's own type; an int32 write to a narrower
     * integer dataset would convert, but strata writes only its own. */
    herr_t st = H5Dwrite(ds, h5_mem_type(f, type), mspace, fspace, H5P_DEFAULT, data);
    close_id(&fspace, H5Sclose);
    close_id(&mspace, H5Sclose);
    if (st < 0)
        return strata_fail(STRATA_E_HDF5, "%s: cannot write to dataset /%s (%s); check free "
                           "disk space", f->file_path, bare(name), h5_why(why));
    return 0;
}

int strata_h5_write_rows(struct strata_h5 *f, const char *name, int64_t row0, int64_t n_rows,
                         const void *data)
{
    int64_t start[STRATA_H5_MAX_DIMS] = {0}, count[STRATA_H5_MAX_DIMS];
    int n_dim, rc = h5_check(f, "strata_h5_write_rows", true);
    if (rc || (rc = strata_h5_shape(f, name, &n_dim, count))) return rc;
    if (n_dim < 1)
        return strata_fail(STRATA_E_ARG, "%s: dataset /%s is a scalar: it has no rows",
                           f->file_path, bare(name));
    start[0] = row0;
    count[0] = n_rows;
    return strata_h5_write_block(f, name, start, count, data);
}

int strata_h5_read_block(const struct strata_h5 *fc, const char *name, enum strata_dtype type,
                         const int64_t *start, const int64_t *count, void *data)
{
    char why[200];
    struct strata_h5 *f = (struct strata_h5 *)fc; /* only the handle caches change */
    int rc = h5_check(f, "strata_h5_read", false);
    if (rc) return rc;
    if (!h5_type_ok(type))
        return strata_fail(STRATA_E_ARG, "%s: dataset /%s: dtype %s has no HDF5 type here",
                           f->path, bare(name), strata_dtype_name(type));
    hid_t ds, fspace, mspace;
    int n_dim;
    hsize_t dims[STRATA_H5_MAX_DIMS];
    int64_t n;
    enum strata_dtype ft;
    if ((rc = h5_dims(f, name, &ds, &n_dim, dims)) || (rc = strata_h5_type_of(f, name, &ft)) ||
        (rc = h5_select(f, name, ds, n_dim, dims, start, count, &fspace, &mspace, &n)))
        return rc;
    if (n == 0) return 0;
    herr_t st = -1;
    const char *why_not = NULL;
    if (!data) {
        why_not = "data is NULL";
    } else if (ft == STRATA_DT_F16 && (type == STRATA_DT_F32 || type == STRATA_DT_F16)) {
        /* Halves are moved raw and widened here, exactly; HDF5's soft
         * conversion is slow. The halves land in the first half of the
         * bytes and widen in place from the back: element i is written at
         * byte 4i only after halves i .. 2i+1, which it covers, were read. */
        st = H5Dread(ds, h5_half(f), mspace, fspace, H5P_DEFAULT, data);
        if (st >= 0 && type == STRATA_DT_F32) {
            unsigned char *bytes = data;
            for (size_t i = (size_t)n; i-- > 0;) {
                uint16_t h;
                memcpy(&h, bytes + 2 * i, 2);
                float x = strata_f16_to_f32(h);
                memcpy(bytes + 4 * i, &x, 4);
            }
        }
    } else if (type == STRATA_DT_F16) {
        why_not = "it is not float16, so it cannot be read as raw halves";
    } else {
        st = H5Dread(ds, h5_mem_type(f, type), mspace, fspace, H5P_DEFAULT, data);
    }
    close_id(&fspace, H5Sclose);
    close_id(&mspace, H5Sclose);
    if (why_not)
        return strata_fail(STRATA_E_ARG, "%s: dataset /%s: %s", f->file_path, bare(name), why_not);
    if (st < 0)
        return strata_fail(STRATA_E_HDF5, "%s: cannot read dataset /%s (%s); the file may be "
                           "damaged", f->file_path, bare(name), h5_why(why));
    return 0;
}

int strata_h5_read(const struct strata_h5 *f, const char *name, enum strata_dtype type,
                   void *data)
{
    int64_t start[STRATA_H5_MAX_DIMS] = {0}, count[STRATA_H5_MAX_DIMS];
    int n_dim, rc = h5_check(f, "strata_h5_read", false);
    if (rc || (rc = h5_check_public(f, name, type)) ||
        (rc = strata_h5_shape(f, name, &n_dim, count)))
        return rc;
    return strata_h5_read_block(f, name, type, start, count, data);
}

int strata_h5_read_rows(const struct strata_h5 *f, const char *name, enum strata_dtype type,
                        int64_t row0, int64_t n_rows, void *data)
{
    int64_t start[STRATA_H5_MAX_DIMS] = {0}, count[STRATA_H5_MAX_DIMS];
    int n_dim, rc = h5_check(f, "strata_h5_read_rows", false);
    if (rc || (rc = h5_check_public(f, name, type)) ||
        (rc = strata_h5_shape(f, name, &n_dim, count)))
        return rc;
    if (n_dim < 1)
        return strata_fail(STRATA_E_ARG, "%s: dataset /%s is a scalar: it has no rows",
                           f->file_path, bare(name));
    start[0] = row0;
    count[0] = n_rows;
    return strata_h5_read_block(f, name, type, start, count, data);
}

int strata_h5_extend(struct strata_h5 *f, const char *name, int64_t n)
{
    char why[200];
    hid_t ds;
    int n_dim, rc = h5_check(f, "strata_h5_extend", true);
    hsize_t dims[STRATA_H5_MAX_DIMS];
    if (rc || (rc = h5_dims(f, name, &ds, &n_dim, dims))) return rc;
    if (n_dim < 1 || n < (int64_t)dims[0])
        return strata_fail(STRATA_E_ARG, "%s: dataset /%s: cannot shrink or extend a scalar",
                           f->file_path, bare(name));
    dims[0] = (hsize_t)n;
    if (H5Dset_extent(ds, dims) < 0)
        return strata_fail(STRATA_E_HDF5, "%s: cannot extend dataset /%s to %lld rows (%s)",
                           f->file_path, bare(name), (long long)n, h5_why(why));
    return 0;
}

/* ------------------------------------------------- result-file attributes */

/* Open object `obj` ("/" or a dataset) of f. */
static int h5_obj(const struct strata_h5 *f, const char *obj, hid_t *id)
{
    char why[200];
    const char *b = bare(obj);
    *id = H5I_INVALID_HID;
    if (!obj) return strata_fail(STRATA_E_ARG, "%s: NULL object name", f->path);
    if (b[0] && strata_h5_has(f, b) <= 0) {
        /* a group is fine too */
        htri_t ex = H5Lexists(f->file, b, H5P_DEFAULT);
        if (ex <= 0)
            return strata_fail(STRATA_E_FORMAT, "%s: object /%s is missing", f->file_path, b);
    }
    if ((*id = H5Oopen(f->file, b[0] ? b : "/", H5P_DEFAULT)) < 0)
        return strata_fail(STRATA_E_HDF5, "%s: cannot open /%s (%s)", f->file_path, b,
                           h5_why(why));
    return 0;
}

int strata_h5_has_attr(const struct strata_h5 *f, const char *obj, const char *name)
{
    char why[200];
    int rc = h5_check(f, "strata_h5_has_attr", false);
    if (rc) return rc;
    if (!name) return strata_fail(STRATA_E_ARG, "%s: NULL attribute name", f->path);
    hid_t o;
    if ((rc = h5_obj(f, obj, &o))) return rc;
    const htri_t ex = H5Aexists(o, name);
    H5Oclose(o);
    if (ex < 0)
        return strata_fail(STRATA_E_HDF5, "%s: cannot look up attribute `%s` of /%s (%s)",
                           f->file_path, name, bare(obj), h5_why(why));
    return ex > 0;
}

/* Write scalar attribute `name` of object `obj`; an existing one of the same
 * file type is overwritten in place when in_place (counters rewritten after
 * every sample must not grow the file), else deleted and made anew. */
static int h5_attr_write(struct strata_h5 *f, const char *obj, const char *name, hid_t ftype,
                         hid_t mtype, const void *buf, bool in_place)
{
    char why[200];
    int rc = h5_check(f, "strata_h5_set_attr", true);
    if (rc) return rc;
    if (!name || !name[0])
        return strata_fail(STRATA_E_ARG, "%s: empty attribute name", f->path);
    hid_t o, attr = H5I_INVALID_HID, space = H5I_INVALID_HID, t = H5I_INVALID_HID;
    if ((rc = h5_obj(f, obj, &o))) return rc;
    htri_t exists = H5Aexists(o, name);
    if (exists < 0) goto h5fail;
    if (exists > 0 && in_place) {
        if ((attr = H5Aopen(o, name, H5P_DEFAULT)) < 0) goto h5fail;
        if ((t = H5Aget_type(attr)) < 0 || (space = H5Aget_space(attr)) < 0) goto h5fail;
        bool same = H5Tequal(t, ftype) > 0 && H5Sget_simple_extent_type(space) == H5S_SCALAR;
        close_id(&t, H5Tclose);
        close_id(&space, H5Sclose);
        if (!same) close_id(&attr, H5Aclose);
    }
    if (attr < 0) {
        if (exists > 0 && H5Adelete(o, name) < 0) goto h5fail;
        if ((space = H5Screate(H5S_SCALAR)) < 0) goto h5fail;
        if ((attr = H5Acreate2(o, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT)) < 0)
            goto h5fail;
    }
    if (H5Awrite(attr, mtype, buf) < 0) goto h5fail;
    goto done;
h5fail:
    rc = strata_fail(STRATA_E_HDF5, "%s: cannot write attribute `%s` of /%s (%s); check free "
                     "disk space", f->file_path, name, bare(obj), h5_why(why));
done:
    close_id(&t, H5Tclose);
    close_id(&space, H5Sclose);
    close_id(&attr, H5Aclose);
    close_id(&o, H5Oclose);
    return rc;
}

/* Bytes (with the NUL) of the longest string kept fixed-length: the
 * earliest file format holds an attribute in one object-header message of
 * at most 64 KiB. */
#define STR_FIXED_MAX ((size_t)63 << 10)

/* Strings are fixed-length, NUL-terminated UTF-8 of their own size: HDF5
 * 1.10.8 can loop forever reading a variable-length string whose global
 * heap is damaged (docs/RELIABILITY.md), and netCDF reads fixed-length
 * strings as text (NC_CHAR) attributes. A string too long for one header
 * message (STR_FIXED_MAX) stays variable-length. */
int strata_h5_set_attr_str(struct strata_h5 *f, const char *obj, const char *name,
                           const char *value)
{
    char why[200];
    if (!value)
        return strata_fail(STRATA_E_ARG, "%s: attribute `%s`: value is NULL",
                           f ? f->path : "strata_h5_set_attr_str", name ? name : "");
    size_t n = strlen(value) + 1;
    bool fixed = n <= STR_FIXED_MAX;
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0 || H5Tset_size(t, fixed ? n : H5T_VARIABLE) < 0 ||
        H5Tset_strpad(t, H5T_STR_NULLTERM) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        if (t >= 0) H5Tclose(t);
        return strata_fail(STRATA_E_HDF5, "cannot make the string type for attribute `%s` (%s)",
                           name ? name : "", h5_why(why));
    }
    int rc = h5_attr_write(f, obj, name, t, t, fixed ? (const void *)value : (const void *)&value,
                           false);
    H5Tclose(t);
    return rc;
}

int strata_h5_set_attr_i64(struct strata_h5 *f, const char *obj, const char *name, int64_t value)
{
    return h5_attr_write(f, obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value, true);
}

int strata_h5_set_attr_f64(struct strata_h5 *f, const char *obj, const char *name, double value)
{
    return h5_attr_write(f, obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value, true);
}

/* Open scalar attribute `name` of `obj`: STRATA_E_FORMAT naming the file,
 * object and attribute when missing or not one value. */
static int h5_attr_open(const struct strata_h5 *f, const char *obj, const char *name, hid_t *o,
                        hid_t *attr, hid_t *type, H5T_class_t *cls)
{
    char why[200];
    *o = *attr = *type = H5I_INVALID_HID;
    int rc = h5_check(f, "strata_h5_get_attr", false);
    if (rc) return rc;
    if (!name) return strata_fail(STRATA_E_ARG, "%s: NULL attribute name", f->path);
    if ((rc = h5_obj(f, obj, o))) return rc;
    htri_t exists = H5Aexists(*o, name);
    if (exists <= 0) {
        close_id(o, H5Oclose);
        return exists < 0 ? strata_fail(STRATA_E_HDF5, "%s: cannot look up attribute `%s` of /%s "
                                        "(%s)", f->file_path, name, bare(obj), h5_why(why))
                          : strata_fail(STRATA_E_FORMAT, "%s: attribute `%s` of /%s is missing",
                                        f->file_path, name, bare(obj));
    }
    hid_t space = H5I_INVALID_HID;
    if ((*attr = H5Aopen(*o, name, H5P_DEFAULT)) < 0 || (*type = H5Aget_type(*attr)) < 0 ||
        (space = H5Aget_space(*attr)) < 0) {
        close_id(&space, H5Sclose);
        close_id(type, H5Tclose);
        close_id(attr, H5Aclose);
        close_id(o, H5Oclose);
        return strata_fail(STRATA_E_HDF5, "%s: cannot open attribute `%s` of /%s (%s)",
                           f->file_path, name, bare(obj), h5_why(why));
    }
    hssize_t npoints = H5Sget_simple_extent_npoints(space);
    H5Sclose(space);
    if (npoints != 1) {
        close_id(type, H5Tclose);
        close_id(attr, H5Aclose);
        close_id(o, H5Oclose);
        return strata_fail(STRATA_E_FORMAT, "%s: attribute `%s` of /%s holds %lld values, "
                           "expected one", f->file_path, name, bare(obj), (long long)npoints);
    }
    *cls = H5Tget_class(*type);
    return 0;
}

int strata_h5_get_attr_str(const struct strata_h5 *f, const char *obj, const char *name,
                           char **value)
{
    char why[200];
    hid_t o, attr, ftype, mtype = H5I_INVALID_HID;
    H5T_class_t cls;
    if (!value) return strata_fail(STRATA_E_ARG, "strata_h5_get_attr_str: value is NULL");
    *value = NULL;
    int rc = h5_attr_open(f, obj, name, &o, &attr, &ftype, &cls);
    if (rc) return rc;
    if (cls != H5T_STRING) {
        rc = strata_fail(STRATA_E_FORMAT, "%s: attribute `%s` of /%s is not a string",
                         f->file_path, name, bare(obj));
        goto fail;
    }
    htri_t var = H5Tis_variable_str(ftype);
    if (var < 0 || (mtype = H5Tcopy(H5T_C_S1)) < 0) goto h5fail;
    if (var) {
        /* Older files (and strings beyond STR_FIXED_MAX): the string lives
         * in the global heap, which HDF5 reads without bounds of its own;
         * only a descriptor of the usual size is read at all. */
        char *s = NULL;
        hsize_t stored = H5Aget_storage_size(attr);
        if (stored > 64) {
            rc = strata_fail(STRATA_E_FORMAT, "%s: attribute `%s` of /%s: a variable-length "
                             "string stored in %llu bytes: the file is corrupt", f->file_path,
                             name, bare(obj), (unsigned long long)stored);
            goto fail;
        }
        if (H5Tset_size(mtype, H5T_VARIABLE) < 0 ||
            H5Tset_cset(mtype, H5Tget_cset(ftype)) < 0 || H5Aread(attr, mtype, &s) < 0)
            goto h5fail;
        *value = strata_xstrdup(s ? s : "");
        H5free_memory(s);
    } else { /* fixed-length: what strata writes */
        size_t n = H5Tget_size(ftype);
        hsize_t stored = H5Aget_storage_size(attr);
        /* a corrupt header must not size the buffer */
        if (n == 0 || n > ((size_t)1 << 26) || stored != (hsize_t)n) {
            rc = strata_fail(STRATA_E_FORMAT, "%s: attribute `%s` of /%s claims a %zu-byte "
                             "string stored in %llu bytes (at most 64 MiB, and equal): the file "
                             "is corrupt", f->file_path, name, bare(obj), n,
                             (unsigned long long)stored);
            goto fail;
        }
        char *s = xmalloc(n + 1);
        if (H5Tset_size(mtype, n) < 0 || H5Tset_cset(mtype, H5Tget_cset(ftype)) < 0 ||
            H5Tset_strpad(mtype, H5Tget_strpad(ftype)) < 0 || H5Aread(attr, mtype, s) < 0) {
            free(s);
            goto h5fail;
        }
        s[n] = '\0';
        *value = s;
    }
    goto fail;
h5fail:
    rc = strata_fail(STRATA_E_HDF5, "%s: cannot read attribute `%s` of /%s (%s)", f->file_path,
                     name, bare(obj), h5_why(why));
fail:
    close_id(&mtype, H5Tclose);
    close_id(&ftype, H5Tclose);
    close_id(&attr, H5Aclose);
    close_id(&o, H5Oclose);
    return rc;
}

static int h5_attr_read_num(const struct strata_h5 *f, const char *obj, const char *name,
                            hid_t mtype, void *value, bool int_only)
{
    char why[200];
    hid_t o, attr, ftype;
    H5T_class_t cls;
    if (!value) return strata_fail(STRATA_E_ARG, "strata_h5_get_attr: value is NULL");
    int rc = h5_attr_open(f, obj, name, &o, &attr, &ftype, &cls);
    if (rc) return rc;
    if ((cls != H5T_INTEGER && (int_only || cls != H5T_FLOAT)) || H5Tget_size(ftype) > 8)
        rc = strata_fail(STRATA_E_FORMAT, "%s: attribute `%s` of /%s is not %s", f->file_path,
                         name, bare(obj), int_only ? "an integer" : "a number");
    else if (H5Aread(attr, mtype, value) < 0)
        rc = strata_fail(STRATA_E_HDF5, "%s: cannot read attribute `%s` of /%s (%s)",
                         f->file_path, name, bare(obj), h5_why(why));
    H5Tclose(ftype);
    H5Aclose(attr);
    H5Oclose(o);
    return rc;
}

int strata_h5_get_attr_i64(const struct strata_h5 *f, const char *obj, const char *name,
                           int64_t *value)
{
    return h5_attr_read_num(f, obj, name, H5T_NATIVE_INT64, value, true);
}

int strata_h5_get_attr_f64(const struct strata_h5 *f, const char *obj, const char *name,
                           double *value)
{
    return h5_attr_read_num(f, obj, name, H5T_NATIVE_DOUBLE, value, false);
}
