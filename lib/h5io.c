/* h5io.c — hidden-state dumps in HDF5; the one file of strata that calls
 * HDF5 (docs/FORMAT.md is the schema, versioned as "strata-dump/1").
 *
 * A probe writes the residual stream of every sample, boundary by boundary
 * (0 = token embeddings, l = after block l), and analyzers read it back one
 * sample or one boundary at a time. So the layout is C order with the sample
 * and layer axes first (one read = one contiguous slab), chunks of ~1 MiB,
 * object timestamps off (identical runs give identical bytes), and a
 * .partial file that is flushed after every sample, so a run killed halfway
 * leaves a readable prefix instead of nothing.
 *
 * Half floats are converted here with strata_f32_to_f16 / strata_f16_to_f32
 * and moved raw (memory type = file type): HDF5's soft float conversion is
 * slow and its rounding is not the one the rest of strata uses.
 *
 * Legend: N samples, L1 = L+1 residual-stream boundaries, T positions,
 * D width.
 */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>
#include <hdf5_hl.h>

#define DUMP_FORMAT "strata-dump/1"
#define CHUNK_TARGET ((int64_t)1 << 20) /* bytes a chunk aims at */
#define LAYER_SPLIT ((int64_t)4 << 20)  /* a layer larger than this is split along T */
#define READ_CACHE ((size_t)16 << 20)   /* chunk cache of readers: several chunks */

struct strata_dump {
    char *path;       /* as given to create/open */
    char *file_path;  /* the file actually open: path.partial while writing */
    bool writer;      /* made by strata_dump_create (file opened read-write) */
    hid_t file;       /* H5I_INVALID_HID once finish has closed it */
    hid_t hidden;     /* /hidden (N, L1, T, D) */
    hid_t tokens;     /* /tokens (N, T) */
    hid_t half;       /* f16 dumps: the file type of /hidden, used as memory type */
    struct strata_dump_info info;
    uint16_t *h16;    /* (L1, T, D) writer's half conversion buffer (f16 only) */
};

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

/* Write scalar root attribute `name`. An existing attribute of the same
 * file type is overwritten in place when in_place is set (n_complete is
 * rewritten after every sample, and must not grow the file); otherwise it is
 * deleted and created anew. */
static int attr_write(const struct strata_dump *d, const char *name, hid_t ftype,
                      hid_t mtype, const void *buf, bool in_place)
{
    char why[200];
    int rc = 0;
    hid_t attr = H5I_INVALID_HID, space = H5I_INVALID_HID, t = H5I_INVALID_HID;
    htri_t exists = H5Aexists(d->file, name);
    if (exists < 0) goto h5fail;
    if (exists > 0 && in_place) {
        if ((attr = H5Aopen(d->file, name, H5P_DEFAULT)) < 0) goto h5fail;
        if ((t = H5Aget_type(attr)) < 0 || (space = H5Aget_space(attr)) < 0) goto h5fail;
        bool same = H5Tequal(t, ftype) > 0 && H5Sget_simple_extent_type(space) == H5S_SCALAR;
        close_id(&t, H5Tclose);
        close_id(&space, H5Sclose);
        if (!same) close_id(&attr, H5Aclose);
    }
    if (attr < 0) {
        if (exists > 0 && H5Adelete(d->file, name) < 0) goto h5fail;
        if ((space = H5Screate(H5S_SCALAR)) < 0) goto h5fail;
        if ((attr = H5Acreate2(d->file, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT)) < 0)
            goto h5fail;
    }
    if (H5Awrite(attr, mtype, buf) < 0) goto h5fail;
    goto done;
h5fail:
    rc = strata_fail(STRATA_E_HDF5, "%s: cannot write root attribute `%s` (%s); check free disk space",
                     d->file_path, name, h5_why(why));
done:
    close_id(&t, H5Tclose);
    close_id(&space, H5Sclose);
    close_id(&attr, H5Aclose);
    return rc;
}

static int attr_write_str(const struct strata_dump *d, const char *name, const char *value)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0 || H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        char why[200];
        if (t >= 0) H5Tclose(t);
        return strata_fail(STRATA_E_HDF5, "%s: cannot make the string type for attribute `%s` (%s)",
                           d->file_path, name, h5_why(why));
    }
    int rc = attr_write(d, name, t, t, &value, false);
    H5Tclose(t);
    return rc;
}

static int attr_write_i64(const struct strata_dump *d, const char *name, int64_t value)
{
    return attr_write(d, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value, true);
}

/* Open root attribute `name` of a single element; STRATA_E_FORMAT when it is
 * missing or not a scalar. *cls receives its type class. */
static int attr_open(const struct strata_dump *d, const char *name, hid_t *attr,
                     hid_t *type, H5T_class_t *cls)
{
    char why[200];
    *attr = *type = H5I_INVALID_HID;
    htri_t exists = H5Aexists(d->file, name);
    if (exists < 0)
        return strata_fail(STRATA_E_HDF5, "%s: cannot look up root attribute `%s` (%s)",
                           d->file_path, name, h5_why(why));
    if (exists == 0)
        return strata_fail(STRATA_E_FORMAT, "%s: root attribute `%s` is missing", d->file_path,
                           name);
    hid_t space = H5I_INVALID_HID;
    if ((*attr = H5Aopen(d->file, name, H5P_DEFAULT)) < 0 || (*type = H5Aget_type(*attr)) < 0 ||
        (space = H5Aget_space(*attr)) < 0) {
        close_id(&space, H5Sclose);
        close_id(type, H5Tclose);
        close_id(attr, H5Aclose);
        return strata_fail(STRATA_E_HDF5, "%s: cannot open root attribute `%s` (%s)",
                           d->file_path, name, h5_why(why));
    }
    hssize_t npoints = H5Sget_simple_extent_npoints(space);
    H5Sclose(space);
    if (npoints != 1) {
        close_id(type, H5Tclose);
        close_id(attr, H5Aclose);
        return strata_fail(STRATA_E_FORMAT, "%s: root attribute `%s` holds %lld values, expected one",
                           d->file_path, name, (long long)npoints);
    }
    *cls = H5Tget_class(*type);
    return 0;
}

static int attr_read_str(const struct strata_dump *d, const char *name, char **value)
{
    char why[200];
    hid_t attr, ftype, mtype = H5I_INVALID_HID;
    H5T_class_t cls;
    *value = NULL;
    int rc = attr_open(d, name, &attr, &ftype, &cls);
    if (rc) return rc;
    if (cls != H5T_STRING) {
        rc = strata_fail(STRATA_E_FORMAT, "%s: root attribute `%s` is not a string",
                         d->file_path, name);
        goto fail;
    }
    htri_t var = H5Tis_variable_str(ftype);
    if (var < 0 || (mtype = H5Tcopy(H5T_C_S1)) < 0) goto h5fail;
    if (var) {
        char *s = NULL;
        if (H5Tset_size(mtype, H5T_VARIABLE) < 0 ||
            H5Tset_cset(mtype, H5Tget_cset(ftype)) < 0 || H5Aread(attr, mtype, &s) < 0)
            goto h5fail;
        *value = strata_xstrdup(s ? s : "");
        H5free_memory(s);
    } else { /* fixed-length strings, as other writers may make them */
        size_t n = H5Tget_size(ftype);
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
    rc = strata_fail(STRATA_E_HDF5, "%s: cannot read root attribute `%s` (%s)", d->file_path,
                     name, h5_why(why));
fail:
    close_id(&mtype, H5Tclose);
    close_id(&ftype, H5Tclose);
    close_id(&attr, H5Aclose);
    return rc;
}

static int attr_read_i64(const struct strata_dump *d, const char *name, int64_t *value)
{
    char why[200];
    hid_t attr, ftype;
    H5T_class_t cls;
    int rc = attr_open(d, name, &attr, &ftype, &cls);
    if (rc) return rc;
    if (cls != H5T_INTEGER)
        rc = strata_fail(STRATA_E_FORMAT, "%s: root attribute `%s` is not an integer",
                         d->file_path, name);
    else if (H5Aread(attr, H5T_NATIVE_INT64, value) < 0)
        rc = strata_fail(STRATA_E_HDF5, "%s: cannot read root attribute `%s` (%s)",
                         d->file_path, name, h5_why(why));
    H5Tclose(ftype);
    H5Aclose(attr);
    return rc;
}

/* The attributes strata maintains itself; callers may not set them. */
static bool reserved_attr(const char *name)
{
    return !strcmp(name, "format") || !strcmp(name, "n_complete") || !strcmp(name, "complete");
}

/* Checks shared by the set_attr_* functions. */
static int check_set_attr(const struct strata_dump *d, const char *name)
{
    if (!d || !name || !name[0])
        return strata_fail(STRATA_E_ARG, "strata_dump_set_attr: NULL dump or empty attribute name");
    if (!d->writer || d->file < 0)
        return strata_fail(STRATA_E_ARG, "%s: cannot set attribute `%s`: the dump is %s", d->path,
                           name, d->writer ? "finished and closed" : "open for reading only");
    if (reserved_attr(name))
        return strata_fail(STRATA_E_ARG, "%s: attribute `%s` is maintained by strata itself; "
                           "choose another name", d->path, name);
    return 0;
}

static int check_open(const struct strata_dump *d, const char *what)
{
    if (!d) return strata_fail(STRATA_E_ARG, "%s: NULL dump", what);
    if (d->file < 0)
        return strata_fail(STRATA_E_ARG, "%s: %s: the dump was finished and closed; open it "
                           "again with strata_dump_open", d->path, what);
    return 0;
}

/* Select sample s, boundaries l0 .. l0+nl-1 in the file space of /hidden. */
static int select_hidden(const struct strata_dump *d, int64_t s, int64_t l0, int64_t nl,
                         hid_t *fspace, hid_t *mspace)
{
    char why[200];
    const struct strata_dump_info *in = &d->info;
    hsize_t start[4] = {(hsize_t)s, (hsize_t)l0, 0, 0};
    hsize_t count[4] = {1, (hsize_t)nl, (hsize_t)in->seq_len, (hsize_t)in->dim};
    *mspace = H5I_INVALID_HID;
    if ((*fspace = H5Dget_space(d->hidden)) < 0 ||
        H5Sselect_hyperslab(*fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
        (*mspace = H5Screate_simple(4, count, NULL)) < 0) {
        close_id(fspace, H5Sclose);
        close_id(mspace, H5Sclose);
        return strata_fail(STRATA_E_HDF5, "%s: cannot select sample %lld of /hidden (%s)",
                           d->file_path, (long long)s, h5_why(why));
    }
    return 0;
}

static int select_tokens(const struct strata_dump *d, int64_t s, hid_t *fspace, hid_t *mspace)
{
    char why[200];
    hsize_t start[2] = {(hsize_t)s, 0};
    hsize_t count[2] = {1, (hsize_t)d->info.seq_len};
    *mspace = H5I_INVALID_HID;
    if ((*fspace = H5Dget_space(d->tokens)) < 0 ||
        H5Sselect_hyperslab(*fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
        (*mspace = H5Screate_simple(2, count, NULL)) < 0) {
        close_id(fspace, H5Sclose);
        close_id(mspace, H5Sclose);
        return strata_fail(STRATA_E_HDF5, "%s: cannot select sample %lld of /tokens (%s)",
                           d->file_path, (long long)s, h5_why(why));
    }
    return 0;
}

/* Chunk of /hidden per docs/FORMAT.md: (1, k, Tc, D). A boundary (T, D) is
 * kept whole unless it exceeds 4 MiB; then T is cut into equal pieces of
 * about 1 MiB. Whole boundaries are grouped k at a time to about 1 MiB. */
static void hidden_chunk(hsize_t chunk[4], int64_t n_layers, int64_t seq_len, int64_t dim,
                         int64_t esize)
{
    int64_t row = dim * esize;
    int64_t layer = seq_len * row;
    int64_t k = 1, tc = seq_len;
    if (layer > LAYER_SPLIT) {
        int64_t pieces = (layer + CHUNK_TARGET - 1) / CHUNK_TARGET;
        tc = (seq_len + pieces - 1) / pieces;
    } else {
        k = CHUNK_TARGET / layer;
        if (k < 1) k = 1;
        if (k > n_layers) k = n_layers;
    }
    chunk[0] = 1;
    chunk[1] = (hsize_t)k;
    chunk[2] = (hsize_t)tc;
    chunk[3] = (hsize_t)dim;
}

static struct strata_dump *dump_new(const char *path)
{
    struct strata_dump *d = xcalloc(1, sizeof *d);
    d->path = strata_xstrdup(path);
    d->file = d->hidden = d->tokens = d->half = H5I_INVALID_HID;
    return d;
}

/* ------------------------------------------------------------- writing */

int strata_dump_create(struct strata_dump **out, const char *path,
                       const struct strata_dump_params *params)
{
    char why[200];
    int rc = 0;
    struct strata_dump *d = NULL;
    hid_t fcpl = H5I_INVALID_HID, fapl = H5I_INVALID_HID, dcpl = H5I_INVALID_HID;
    hid_t space = H5I_INVALID_HID;
    const char *what = "";
    bool created = false;

    if (!out) return strata_fail(STRATA_E_ARG, "strata_dump_create: out is NULL");
    *out = NULL;
    if (!path || !path[0] || !params)
        return strata_fail(STRATA_E_ARG, "strata_dump_create: empty path or NULL params");
    const struct strata_dump_params *p = params;
    if (p->n_samples < 1 || p->n_layers < 1 || p->seq_len < 1 || p->dim < 1)
        return strata_fail(STRATA_E_ARG, "%s: dump shape (N, L+1, T, D) = (%lld, %lld, %lld, %lld) "
                           "needs every size >= 1", path, (long long)p->n_samples,
                           (long long)p->n_layers, (long long)p->seq_len, (long long)p->dim);
    if (p->dtype != STRATA_F32 && p->dtype != STRATA_F16)
        return strata_fail(STRATA_E_ARG, "%s: dtype %d is neither STRATA_F32 nor STRATA_F16", path,
                           (int)p->dtype);
    if (p->gzip < 0 || p->gzip > 9)
        return strata_fail(STRATA_E_ARG, "%s: gzip level %d is outside 0 (off) .. 9", path, p->gzip);
    /* One sample (L1, T, D) must fit in memory as floats, the whole dataset
     * in HDF5's 64-bit sizes, and one row of D in a chunk (< 4 GiB). */
    int64_t esize = p->dtype == STRATA_F16 ? 2 : 4;
    int64_t lim = (int64_t)(SIZE_MAX / 8 < INT64_MAX / 8 ? SIZE_MAX / 8 : INT64_MAX / 8);
    if (p->n_layers > lim / p->seq_len || p->n_layers * p->seq_len > lim / p->dim ||
        p->n_layers * p->seq_len * p->dim > lim / p->n_samples || p->dim * esize >= ((int64_t)1 << 32))
        return strata_fail(STRATA_E_SHAPE, "%s: dump shape (N, L+1, T, D) = (%lld, %lld, %lld, %lld) "
                           "is too large", path, (long long)p->n_samples, (long long)p->n_layers,
                           (long long)p->seq_len, (long long)p->dim);

    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    d = dump_new(path);
    d->writer = true;
    size_t plen = strlen(path);
    d->file_path = xmalloc(plen + sizeof ".partial");
    memcpy(d->file_path, path, plen);
    memcpy(d->file_path + plen, ".partial", sizeof ".partial");
    d->info = (struct strata_dump_info){p->n_samples, p->n_layers, p->seq_len, p->dim, p->dtype,
                                        0, false};

    /* Our own open() first: it says why (no such directory, permission)
     * where HDF5 only says "unable to open file". It never truncates: an
     * existing .partial that another writer still holds must survive; HDF5
     * truncates it below only once it holds the file's lock. */
    int fd = open(d->file_path, O_WRONLY | O_CREAT | O_EXCL, 0666);
    if (fd >= 0) created = true;
    else if (errno == EEXIST) fd = open(d->file_path, O_WRONLY);
    if (fd < 0) {
        rc = strata_fail(STRATA_E_IO, "%s: cannot create: %s; check that the directory exists "
                         "and is writable", d->file_path, strerror(errno));
        goto fail;
    }
    close(fd);

    what = "file";
    if ((fcpl = H5Pcreate(H5P_FILE_CREATE)) < 0 || H5Pset_obj_track_times(fcpl, 0) < 0) goto h5fail;
    /* Default (earliest) file format: no superblock "open for writing" flag,
     * so a .partial left by a killed run opens without h5clear. */
    if ((fapl = H5Pcreate(H5P_FILE_ACCESS)) < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0)
        goto h5fail;
    if ((d->file = H5Fcreate(d->file_path, H5F_ACC_TRUNC, fcpl, fapl)) < 0) goto h5fail;

    /* /hidden (N, L1, T, D) */
    what = "dataset /hidden";
    hid_t ftype = H5T_IEEE_F32LE;
    if (p->dtype == STRATA_F16) {
        if ((d->half = make_half_type()) < 0) goto h5fail;
        ftype = d->half;
        d->h16 = xmalloc((size_t)(p->n_layers * p->seq_len * p->dim) * sizeof *d->h16);
    }
    hsize_t hdims[4] = {(hsize_t)p->n_samples, (hsize_t)p->n_layers, (hsize_t)p->seq_len,
                        (hsize_t)p->dim};
    hsize_t chunk[4];
    hidden_chunk(chunk, p->n_layers, p->seq_len, p->dim, esize);
    /* Explicit zero fill written at allocation: the parts of edge chunks
     * outside the extent are then zeros, not whatever the buffer held, and
     * the file is the same byte for byte on every run. */
    float zero32 = 0.0f;
    uint16_t zero16 = 0;
    if ((space = H5Screate_simple(4, hdims, NULL)) < 0 || (dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0 ||
        H5Pset_chunk(dcpl, 4, chunk) < 0 || H5Pset_obj_track_times(dcpl, 0) < 0 ||
        H5Pset_fill_time(dcpl, H5D_FILL_TIME_ALLOC) < 0 ||
        H5Pset_fill_value(dcpl, p->dtype == STRATA_F16 ? d->half : H5T_NATIVE_FLOAT,
                          p->dtype == STRATA_F16 ? (const void *)&zero16 : (const void *)&zero32) < 0)
        goto h5fail;
    if (p->gzip > 0 && (H5Pset_shuffle(dcpl) < 0 || H5Pset_deflate(dcpl, (unsigned)p->gzip) < 0))
        goto h5fail;
    if ((d->hidden = H5Dcreate2(d->file, "hidden", ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT)) < 0)
        goto h5fail;
    if (H5DSset_label(d->hidden, 0, "sample") < 0 || H5DSset_label(d->hidden, 1, "layer") < 0 ||
        H5DSset_label(d->hidden, 2, "position") < 0 || H5DSset_label(d->hidden, 3, "dim") < 0)
        goto h5fail;
    close_id(&space, H5Sclose);
    close_id(&dcpl, H5Pclose);

    /* /tokens (N, T): small, so contiguous and allocated (zeroed) up front;
     * each sample's row is then one plain write. */
    what = "dataset /tokens";
    hsize_t tdims[2] = {(hsize_t)p->n_samples, (hsize_t)p->seq_len};
    int32_t zero_tok = 0;
    if ((space = H5Screate_simple(2, tdims, NULL)) < 0 || (dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0 ||
        H5Pset_layout(dcpl, H5D_CONTIGUOUS) < 0 || H5Pset_obj_track_times(dcpl, 0) < 0 ||
        H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) < 0 ||
        H5Pset_fill_time(dcpl, H5D_FILL_TIME_ALLOC) < 0 ||
        H5Pset_fill_value(dcpl, H5T_NATIVE_INT32, &zero_tok) < 0)
        goto h5fail;
    if ((d->tokens = H5Dcreate2(d->file, "tokens", H5T_STD_I32LE, space, H5P_DEFAULT, dcpl,
                                H5P_DEFAULT)) < 0)
        goto h5fail;
    if (H5DSset_label(d->tokens, 0, "sample") < 0 || H5DSset_label(d->tokens, 1, "position") < 0)
        goto h5fail;

    if ((rc = attr_write_str(d, "format", DUMP_FORMAT)) || (rc = attr_write_i64(d, "n_complete", 0)) ||
        (rc = attr_write_i64(d, "complete", 0)))
        goto fail;
    what = "file";
    if (H5Fflush(d->file, H5F_SCOPE_LOCAL) < 0) goto h5fail;
    strata_log(STRATA_LOG_DEBUG, "%s: /hidden chunk (1, %llu, %llu, %llu)", d->file_path,
               (unsigned long long)chunk[1], (unsigned long long)chunk[2],
               (unsigned long long)chunk[3]);
    goto done;
h5fail:
    rc = strata_fail(STRATA_E_HDF5, "%s: cannot create %s (%s); check that no other run is "
                     "writing it and that the disk has free space", d->file_path, what, h5_why(why));
fail:
    if (created) unlink(d->file_path); /* ours and half made: not worth keeping */
    strata_dump_free(d);
    d = NULL;
done:
    close_id(&space, H5Sclose);
    close_id(&dcpl, H5Pclose);
    close_id(&fapl, H5Pclose);
    close_id(&fcpl, H5Pclose);
    *out = d;
    return rc;
}

int strata_dump_set_attr_str(struct strata_dump *dump, const char *name, const char *value)
{
    int rc = check_set_attr(dump, name);
    if (rc) return rc;
    if (!value)
        return strata_fail(STRATA_E_ARG, "%s: attribute `%s`: value is NULL", dump->path, name);
    return attr_write_str(dump, name, value);
}

int strata_dump_set_attr_i64(struct strata_dump *dump, const char *name, int64_t value)
{
    int rc = check_set_attr(dump, name);
    if (rc) return rc;
    return attr_write_i64(dump, name, value);
}

int strata_dump_write_sample(struct strata_dump *dump, int64_t s, const float *hidden,
                             const int32_t *tokens)
{
    char why[200];
    int rc = check_open(dump, "strata_dump_write_sample");
    if (rc) return rc;
    struct strata_dump *d = dump;
    if (!d->writer)
        return strata_fail(STRATA_E_ARG, "%s: opened for reading; only a dump made by "
                           "strata_dump_create can be written", d->path);
    if (!hidden || !tokens)
        return strata_fail(STRATA_E_ARG, "%s: write_sample needs both hidden and tokens", d->path);
    if (s != d->info.n_complete)
        return strata_fail(STRATA_E_ARG, "%s: samples are written in order: expected sample %lld "
                           "of %lld, got %lld", d->path, (long long)d->info.n_complete,
                           (long long)d->info.n_samples, (long long)s);
    if (s >= d->info.n_samples)
        return strata_fail(STRATA_E_ARG, "%s: all %lld samples are already written", d->path,
                           (long long)d->info.n_samples);

    hid_t fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
    const char *what = "/hidden";
    if ((rc = select_hidden(d, s, 0, d->info.n_layers, &fspace, &mspace))) return rc;
    herr_t st;
    if (d->info.dtype == STRATA_F16) {
        size_t n = (size_t)(d->info.n_layers * d->info.seq_len * d->info.dim);
        for (size_t i = 0; i < n; i++) {
            d->h16[i] = strata_f32_to_f16(hidden[i]);
            /* A finite activation beyond half's range would be stored as Inf:
             * a silently wrong number, so refuse instead. */
            if ((d->h16[i] & 0x7fffu) == 0x7c00u && isfinite(hidden[i])) {
                close_id(&fspace, H5Sclose);
                close_id(&mspace, H5Sclose);
                const int64_t T = d->info.seq_len, D = d->info.dim;
                return strata_fail(STRATA_E_NAN,
                                   "%s: /hidden value %g at sample %lld, layer %lld, position %lld "
                                   "exceeds float16's range (65504); use --dtype f32",
                                   d->path, (double)hidden[i], (long long)s,
                                   (long long)(i / (size_t)(T * D)),
                                   (long long)(i / (size_t)D % (size_t)T));
            }
        }
        st = H5Dwrite(d->hidden, d->half, mspace, fspace, H5P_DEFAULT, d->h16);
    } else {
        st = H5Dwrite(d->hidden, H5T_NATIVE_FLOAT, mspace, fspace, H5P_DEFAULT, hidden);
    }
    close_id(&fspace, H5Sclose);
    close_id(&mspace, H5Sclose);
    if (st < 0) goto h5fail;

    what = "/tokens";
    if ((rc = select_tokens(d, s, &fspace, &mspace))) return rc;
    st = H5Dwrite(d->tokens, H5T_NATIVE_INT32, mspace, fspace, H5P_DEFAULT, tokens);
    close_id(&fspace, H5Sclose);
    close_id(&mspace, H5Sclose);
    if (st < 0) goto h5fail;

    /* Count the sample only once its data is in, then flush, so a killed
     * run leaves a file whose n_complete samples are all there. */
    if ((rc = attr_write_i64(d, "n_complete", s + 1))) return rc;
    what = "the file (flush)";
    if (H5Fflush(d->file, H5F_SCOPE_LOCAL) < 0) goto h5fail;
    d->info.n_complete = s + 1;
    return 0;
h5fail:
    return strata_fail(STRATA_E_HDF5, "%s: cannot write sample %lld to %s (%s); check free disk "
                       "space", d->file_path, (long long)s, what, h5_why(why));
}

int strata_dump_finish(struct strata_dump *dump)
{
    char why[200];
    int rc = check_open(dump, "strata_dump_finish");
    if (rc) return rc;
    struct strata_dump *d = dump;
    if (!d->writer)
        return strata_fail(STRATA_E_ARG, "%s: opened for reading; only a dump made by "
                           "strata_dump_create can be finished", d->path);
    if (d->info.n_complete != d->info.n_samples)
        return strata_fail(STRATA_E_ARG, "%s: only %lld of %lld samples written; a dump is "
                           "finished when full (free it to keep the .partial file)", d->path,
                           (long long)d->info.n_complete, (long long)d->info.n_samples);
    if ((rc = attr_write_i64(d, "complete", 1))) return rc;
    close_id(&d->hidden, H5Dclose);
    close_id(&d->tokens, H5Dclose);
    close_id(&d->half, H5Tclose);
    herr_t st = H5Fclose(d->file);
    d->file = H5I_INVALID_HID;
    if (st < 0)
        return strata_fail(STRATA_E_HDF5, "%s: cannot close (%s); check free disk space",
                           d->file_path, h5_why(why));
    d->info.complete = true;

    /* The data must be on disk before the name says "finished". */
    int fd = open(d->file_path, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) {
        rc = strata_fail(STRATA_E_IO, "%s: cannot fsync: %s", d->file_path, strerror(errno));
        if (fd >= 0) close(fd);
        return rc;
    }
    close(fd);
    if (rename(d->file_path, d->path) != 0)
        return strata_fail(STRATA_E_IO, "%s: cannot rename to %s: %s", d->file_path, d->path,
                           strerror(errno));
    /* Make the rename itself durable; some file systems refuse fsync on a
     * directory, which costs durability only, so it is not an error. */
    char *dir = strata_xstrdup(d->path);
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

void strata_dump_free(struct strata_dump *dump)
{
    if (!dump) return;
    /* An unfinished writer is closed properly: what stays behind is a valid
     * path.partial with complete = 0 and the n_complete written so far. */
    close_id(&dump->hidden, H5Dclose);
    close_id(&dump->tokens, H5Dclose);
    close_id(&dump->half, H5Tclose);
    close_id(&dump->file, H5Fclose);
    free(dump->h16);
    free(dump->file_path);
    free(dump->path);
    free(dump);
}

/* ------------------------------------------------------------- reading */

/* Open dataset `name` of rank `rank` into *ds; its dims into dims. */
static int open_dataset(const struct strata_dump *d, const char *name, int rank, hid_t dapl,
                        hid_t *ds, hsize_t *dims, const char *axes)
{
    char why[200];
    *ds = H5I_INVALID_HID;
    htri_t exists = H5Lexists(d->file, name, H5P_DEFAULT);
    if (exists < 0)
        return strata_fail(STRATA_E_HDF5, "%s: cannot look up dataset /%s (%s)", d->file_path,
                           name, h5_why(why));
    if (exists == 0)
        return strata_fail(STRATA_E_FORMAT, "%s: dataset /%s is missing; not a complete strata "
                           "dump (docs/FORMAT.md)", d->file_path, name);
    if ((*ds = H5Dopen2(d->file, name, dapl)) < 0)
        return strata_fail(STRATA_E_FORMAT, "%s: /%s is not a readable dataset (%s)", d->file_path,
                           name, h5_why(why));
    hid_t space = H5Dget_space(*ds);
    int r = space < 0 ? -1 : H5Sget_simple_extent_ndims(space);
    if (r == rank) H5Sget_simple_extent_dims(space, dims, NULL);
    if (space >= 0) H5Sclose(space);
    if (r != rank)
        return strata_fail(STRATA_E_SHAPE, "%s: dataset /%s has rank %d, expected %d %s",
                           d->file_path, name, r, rank, axes);
    for (int i = 0; i < rank; i++)
        if (dims[i] < 1 || dims[i] > (hsize_t)INT64_MAX / 8)
            return strata_fail(STRATA_E_SHAPE, "%s: dataset /%s has axis %d of size %llu",
                               d->file_path, name, i, (unsigned long long)dims[i]);
    return 0;
}

int strata_dump_open(struct strata_dump **out, const char *path)
{
    char why[200], tbuf[64];
    int rc = 0;
    struct strata_dump *d = NULL;
    hid_t fapl = H5I_INVALID_HID, dapl = H5I_INVALID_HID, t = H5I_INVALID_HID;
    char *format = NULL;

    if (!out) return strata_fail(STRATA_E_ARG, "strata_dump_open: out is NULL");
    *out = NULL;
    if (!path || !path[0]) return strata_fail(STRATA_E_ARG, "strata_dump_open: empty path");
    struct stat st;
    if (stat(path, &st) != 0)
        return strata_fail(STRATA_E_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return strata_fail(STRATA_E_IO, "%s: not a regular file", path);

    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0)
        return strata_fail(STRATA_E_FORMAT, "%s: not an HDF5 file (no HDF5 signature); dumps are "
                           "written by strata-probe-hidden", path);
    d = dump_new(path);
    d->file_path = strata_xstrdup(path);
    if ((fapl = H5Pcreate(H5P_FILE_ACCESS)) < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0 ||
        (dapl = H5Pcreate(H5P_DATASET_ACCESS)) < 0 ||
        H5Pset_chunk_cache(dapl, 2003, READ_CACHE, 0.75) < 0) {
        rc = strata_fail(STRATA_E_HDF5, "%s: cannot set up HDF5 (%s)", path, h5_why(why));
        goto fail;
    }
    /* Read-only: a dump opened for reading never writes. */
    if ((d->file = H5Fopen(path, H5F_ACC_RDONLY, fapl)) < 0) {
        rc = strata_fail(STRATA_E_FORMAT, "%s: HDF5 cannot open it (%s): the file is truncated or "
                         "damaged (an unfinished copy?), or a running writer holds its lock",
                         path, h5_why(why));
        goto fail;
    }

    if ((rc = attr_read_str(d, "format", &format))) {
        if (rc == STRATA_E_FORMAT)
            rc = strata_fail(STRATA_E_FORMAT, "%s: root attribute `format` is missing or not a "
                             "string: not a strata dump (expected \"%s\")", path, DUMP_FORMAT);
        goto fail;
    }
    if (strcmp(format, DUMP_FORMAT) != 0) {
        rc = strata_fail(STRATA_E_FORMAT, "%s: root attribute `format` is \"%s\"; this strata "
                         "reads \"%s\" only: use the strata version that wrote it", path, format,
                         DUMP_FORMAT);
        goto fail;
    }

    hsize_t hd[4], td[2];
    if ((rc = open_dataset(d, "hidden", 4, dapl, &d->hidden, hd, "(sample, layer, position, dim)")))
        goto fail;
    if ((t = H5Dget_type(d->hidden)) < 0) {
        rc = strata_fail(STRATA_E_HDF5, "%s: cannot get the type of /hidden (%s)", path, h5_why(why));
        goto fail;
    }
    if (H5Tget_class(t) == H5T_FLOAT && H5Tget_size(t) == 4) {
        d->info.dtype = STRATA_F32; /* read as native float; HDF5 swaps bytes if big endian */
    } else if (is_half_type(t)) {
        d->info.dtype = STRATA_F16;
        d->half = t;
        t = H5I_INVALID_HID;
    } else {
        rc = strata_fail(STRATA_E_FORMAT, "%s: dataset /hidden holds %s; strata reads IEEE float32 "
                         "or float16 only", path, type_desc(t, tbuf, sizeof tbuf));
        goto fail;
    }
    close_id(&t, H5Tclose);

    if ((rc = open_dataset(d, "tokens", 2, H5P_DEFAULT, &d->tokens, td, "(sample, position)")))
        goto fail;
    if (td[0] != hd[0] || td[1] != hd[2]) {
        rc = strata_fail(STRATA_E_SHAPE, "%s: dataset /tokens has shape (%llu, %llu) but /hidden "
                         "holds N = %llu samples of T = %llu positions", path,
                         (unsigned long long)td[0], (unsigned long long)td[1],
                         (unsigned long long)hd[0], (unsigned long long)hd[2]);
        goto fail;
    }
    if ((t = H5Dget_type(d->tokens)) < 0 || H5Tget_class(t) != H5T_INTEGER) {
        rc = strata_fail(STRATA_E_FORMAT, "%s: dataset /tokens holds %s, expected int32 token ids",
                         path, t < 0 ? "an unknown type" : type_desc(t, tbuf, sizeof tbuf));
        goto fail;
    }
    close_id(&t, H5Tclose);

    d->info.n_samples = (int64_t)hd[0];
    d->info.n_layers = (int64_t)hd[1];
    d->info.seq_len = (int64_t)hd[2];
    d->info.dim = (int64_t)hd[3];
    if ((int64_t)hd[1] * (int64_t)hd[2] > INT64_MAX / 8 / (int64_t)hd[3]) {
        rc = strata_fail(STRATA_E_SHAPE, "%s: one sample of /hidden is too large", path);
        goto fail;
    }
    int64_t complete;
    if ((rc = attr_read_i64(d, "n_complete", &d->info.n_complete)) ||
        (rc = attr_read_i64(d, "complete", &complete)))
        goto fail;
    if (d->info.n_complete < 0 || d->info.n_complete > d->info.n_samples) {
        rc = strata_fail(STRATA_E_FORMAT, "%s: root attribute `n_complete` = %lld is outside "
                         "0 .. N = %lld", path, (long long)d->info.n_complete,
                         (long long)d->info.n_samples);
        goto fail;
    }
    if ((complete != 0 && complete != 1) || (complete == 1 && d->info.n_complete != d->info.n_samples)) {
        rc = strata_fail(STRATA_E_FORMAT, "%s: root attribute `complete` = %lld disagrees with "
                         "n_complete = %lld of N = %lld", path, (long long)complete,
                         (long long)d->info.n_complete, (long long)d->info.n_samples);
        goto fail;
    }
    d->info.complete = complete == 1;
    goto done;
fail:
    strata_dump_free(d);
    d = NULL;
done:
    free(format);
    close_id(&t, H5Tclose);
    close_id(&dapl, H5Pclose);
    close_id(&fapl, H5Pclose);
    *out = d;
    return rc;
}

const char *strata_dump_path(const struct strata_dump *dump) { return dump ? dump->path : NULL; }

int strata_dump_info(const struct strata_dump *dump, struct strata_dump_info *info)
{
    if (!dump || !info) return strata_fail(STRATA_E_ARG, "strata_dump_info: NULL argument");
    *info = dump->info;
    return 0;
}

int strata_dump_get_attr_str(const struct strata_dump *dump, const char *name, char **value)
{
    int rc = check_open(dump, "strata_dump_get_attr_str");
    if (rc) return rc;
    if (!name || !value)
        return strata_fail(STRATA_E_ARG, "%s: get_attr_str: NULL name or value", dump->path);
    return attr_read_str(dump, name, value);
}

int strata_dump_get_attr_i64(const struct strata_dump *dump, const char *name, int64_t *value)
{
    int rc = check_open(dump, "strata_dump_get_attr_i64");
    if (rc) return rc;
    if (!name || !value)
        return strata_fail(STRATA_E_ARG, "%s: get_attr_i64: NULL name or value", dump->path);
    return attr_read_i64(dump, name, value);
}

/* Read boundaries l0 .. l0+nl-1 of sample s into out (nl, T, D) float32. */
static int read_hidden(const struct strata_dump *d, int64_t s, int64_t l0, int64_t nl, float *out)
{
    char why[200];
    hid_t fspace, mspace;
    int rc = select_hidden(d, s, l0, nl, &fspace, &mspace);
    if (rc) return rc;
    herr_t st;
    if (d->info.dtype == STRATA_F16) {
        /* The halves land in the first half of out's bytes and widen in
         * place from the back: element i is written at byte 4i only after
         * halves i .. 2i+1, which it covers, have been read. */
        st = H5Dread(d->hidden, d->half, mspace, fspace, H5P_DEFAULT, out);
        if (st >= 0) {
            size_t n = (size_t)(nl * d->info.seq_len * d->info.dim);
            unsigned char *bytes = (unsigned char *)out;
            for (size_t i = n; i-- > 0;) {
                uint16_t h;
                memcpy(&h, bytes + 2 * i, 2);
                float x = strata_f16_to_f32(h);
                memcpy(bytes + 4 * i, &x, 4);
            }
        }
    } else {
        st = H5Dread(d->hidden, H5T_NATIVE_FLOAT, mspace, fspace, H5P_DEFAULT, out);
    }
    H5Sclose(fspace);
    H5Sclose(mspace);
    if (st < 0)
        return strata_fail(STRATA_E_HDF5, "%s: cannot read sample %lld of /hidden (%s); the file "
                           "may be damaged", d->file_path, (long long)s, h5_why(why));
    return 0;
}

static int check_sample(const struct strata_dump *d, int64_t s, const char *what)
{
    int rc = check_open(d, what);
    if (rc) return rc;
    if (s < 0 || s >= d->info.n_complete)
        return strata_fail(STRATA_E_ARG, "%s: sample %lld is out of range: %lld of %lld samples "
                           "are written%s", d->path, (long long)s, (long long)d->info.n_complete,
                           (long long)d->info.n_samples,
                           d->info.complete ? "" : " (the dump is incomplete)");
    return 0;
}

int strata_dump_read_sample(const struct strata_dump *dump, int64_t s, float *hidden,
                            int32_t *tokens)
{
    char why[200];
    int rc = check_sample(dump, s, "strata_dump_read_sample");
    if (rc) return rc;
    if (hidden && (rc = read_hidden(dump, s, 0, dump->info.n_layers, hidden))) return rc;
    if (tokens) {
        hid_t fspace, mspace;
        if ((rc = select_tokens(dump, s, &fspace, &mspace))) return rc;
        herr_t st = H5Dread(dump->tokens, H5T_NATIVE_INT32, mspace, fspace, H5P_DEFAULT, tokens);
        H5Sclose(fspace);
        H5Sclose(mspace);
        if (st < 0)
            return strata_fail(STRATA_E_HDF5, "%s: cannot read sample %lld of /tokens (%s)",
                               dump->file_path, (long long)s, h5_why(why));
    }
    return 0;
}

int strata_dump_read_layer(const struct strata_dump *dump, int64_t s, int64_t l, float *out)
{
    int rc = check_sample(dump, s, "strata_dump_read_layer");
    if (rc) return rc;
    if (l < 0 || l >= dump->info.n_layers)
        return strata_fail(STRATA_E_ARG, "%s: layer %lld is out of range 0 .. %lld", dump->path,
                           (long long)l, (long long)dump->info.n_layers - 1);
    if (!out) return strata_fail(STRATA_E_ARG, "%s: read_layer: out is NULL", dump->path);
    return read_hidden(dump, s, l, 1, out);
}
