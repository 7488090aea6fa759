/* torchzip.c — tensors of a PyTorch .bin (torch.save zip archive) without
 * Python: a zip central-directory reader (zip64 included, since real 7B
 * shards are ~10 GB) and a small pickle VM that understands exactly what a
 * state_dict pickle holds.
 *
 * torch.save (PyTorch >= 1.6) writes a zip of STORED entries:
 *   <prefix>/data.pkl      pickle of OrderedDict name -> tensor
 *   <prefix>/data/<key>    raw bytes of one storage (shared by tied tensors)
 *   <prefix>/byteorder     "little" (PyTorch >= 1.12; absent means little)
 * where <prefix> is "archive" or the stem of the file name it was saved to.
 * A tensor pickles as torch._utils._rebuild_tensor_v2(storage, offset,
 * size, stride, requires_grad, hooks[, metadata]) with the storage as a
 * persistent id ('storage', torch.<T>Storage, key, location, numel).
 *
 * The VM never executes anything: every GLOBAL is looked up in a fixed table
 * (OrderedDict, the two rebuild functions, the storage types) and anything
 * else is an error naming it. Pickled objects live in one list freed at the
 * end, so shared references (BINGET of a memoized object) need no counting.
 */
#include "torchzip.h"

#include <inttypes.h>
#include <stdbool.h>
#include <string.h>

/* ------------------------------------------------------------------ bytes */

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32); }

/* ------------------------------------------------------------------- zip */

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOC64 0x07064b50u

struct zentry {
    char *name;
    uint64_t size;       /* stored bytes (== uncompressed when STORED) */
    uint64_t local;      /* offset of the local header */
    uint64_t data;       /* offset of the data; 0 until resolved */
    uint16_t method;
    uint16_t flags;
};

struct zip {
    const char *path;
    const uint8_t *base;
    size_t size;
    struct zentry *e;
    int64_t n;
};

static void zip_free(struct zip *z)
{
    for (int64_t i = 0; i < z->n; i++) free(z->e[i].name);
    free(z->e);
    z->e = NULL;
    z->n = 0;
}

static int zip_truncated(const struct zip *z, const char *what)
{
    return strata_fail(STRATA_E_FORMAT,
                       "%s: truncated zip archive: %s runs past the end of the file "
                       "(%zu bytes); re-download or re-save the checkpoint",
                       z->path, what, z->size);
}

/* qsort: members by name. */
static int cmp_name(const void *a, const void *b)
{
    return strcmp((*(const struct zentry *const *)a)->name, (*(const struct zentry *const *)b)->name);
}

/* Central directory -> z->e. The end-of-central-directory record is the
 * last 22 bytes unless the archive has a comment, so scan back over at
 * most a maximal comment. */
static int zip_open(struct zip *z)
{
    const uint8_t *b = z->base;
    size_t size = z->size, eocd = SIZE_MAX;
    if (size >= 22) {
        size_t lo = size - 22 > 65535 ? size - 22 - 65535 : 0;
        for (size_t p = size - 22 + 1; p-- > lo;) {
            if (rd32(b + p) == SIG_EOCD && p + 22 + rd16(b + p + 20) == size) {
                eocd = p;
                break;
            }
        }
    }
    if (eocd == SIZE_MAX)
        return strata_fail(STRATA_E_FORMAT,
                           "%s: zip archive has no end-of-central-directory record: the file "
                           "is truncated or damaged; re-download or re-save the checkpoint",
                           z->path);
    uint64_t n = rd16(b + eocd + 10), cd_size = rd32(b + eocd + 12), cd_off = rd32(b + eocd + 16);
    if (rd16(b + eocd + 4) != 0 || rd16(b + eocd + 6) != 0)
        return strata_fail(STRATA_E_FORMAT, "%s: multi-volume zip archives are not supported",
                           z->path);
    if (eocd >= 20 && rd32(b + eocd - 20) == SIG_LOC64) {
        uint64_t off = rd64(b + eocd - 20 + 8);
        if (off > eocd - 20 || eocd - 20 - off < 56 || rd32(b + off) != SIG_EOCD64)
            return strata_fail(STRATA_E_FORMAT,
                               "%s: zip64 end-of-central-directory locator points to "
                               "offset %" PRIu64 ", where there is no zip64 record",
                               z->path, off);
        n = rd64(b + off + 32);
        cd_size = rd64(b + off + 40);
        cd_off = rd64(b + off + 48);
    } else if (n == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu) {
        return strata_fail(STRATA_E_FORMAT,
                           "%s: zip archive needs zip64 records but has none (damaged file)",
                           z->path);
    }
    if (cd_off > size || cd_size > size - cd_off)
        return zip_truncated(z, "the central directory");
    if (n > cd_size / 46)
        return strata_fail(STRATA_E_FORMAT,
                           "%s: zip central directory of %" PRIu64 " bytes cannot hold %" PRIu64
                           " entries", z->path, cd_size, n);
    z->e = xcalloc(n ? n : 1, sizeof *z->e);
    const uint8_t *p = b + cd_off, *end = b + cd_off + cd_size;
    for (uint64_t i = 0; i < n; i++) {
        if (end - p < 46 || rd32(p) != SIG_CENTRAL)
            return strata_fail(STRATA_E_FORMAT, "%s: zip central directory entry %" PRIu64
                               " is damaged", z->path, i);
        uint16_t nlen = rd16(p + 28), xlen = rd16(p + 30), clen = rd16(p + 32);
        if ((size_t)(end - p) < 46u + nlen + xlen + clen)
            return strata_fail(STRATA_E_FORMAT, "%s: zip central directory entry %" PRIu64
                               " runs past the directory", z->path, i);
        struct zentry *e = &z->e[z->n++];
        e->name = xmalloc((size_t)nlen + 1);
        memcpy(e->name, p + 46, nlen);
        e->name[nlen] = '\0';
        e->flags = rd16(p + 8);
        e->method = rd16(p + 10);
        uint64_t csize = rd32(p + 20), usize = rd32(p + 24), local = rd32(p + 42);
        /* zip64 extra field: 8-byte values for exactly the fields whose
         * 32-bit slot is saturated, in this order. */
        const uint8_t *x = p + 46 + nlen, *xend = x + xlen;
        while (xend - x >= 4) {
            uint16_t id = rd16(x), len = rd16(x + 2);
            const uint8_t *v = x + 4, *vend = v + len;
            if (vend > xend) break;
            if (id == 1) {
                uint64_t *fields[3] = {&usize, &csize, &local};
                uint64_t sat[3] = {0xffffffffu, 0xffffffffu, 0xffffffffu};
                uint64_t orig[3] = {usize, csize, local};
                for (int k = 0; k < 3; k++) {
                    if (orig[k] != sat[k]) continue;
                    if (vend - v < 8)
                        return strata_fail(STRATA_E_FORMAT, "%s: zip entry '%s': zip64 extra "
                                           "field too short", z->path, e->name);
                    *fields[k] = rd64(v);
                    v += 8;
                }
            }
            x = vend;
        }
        e->size = csize;
        e->local = local;
        if (e->method == 0 && csize != usize)
            return strata_fail(STRATA_E_FORMAT, "%s: zip entry '%s' is stored with %" PRIu64
                               " bytes but says it unpacks to %" PRIu64, z->path, e->name,
                               csize, usize);
        p += 46u + nlen + xlen + clen;
    }
    /* Two members of one name: which one is the tensor? Refused. */
    const struct zentry **by = xmalloc((size_t)(z->n ? z->n : 1) * sizeof *by);
    for (int64_t i = 0; i < z->n; i++) by[i] = &z->e[i];
    qsort(by, (size_t)z->n, sizeof *by, cmp_name);
    int rc = 0;
    for (int64_t i = 1; i < z->n && !rc; i++)
        if (strcmp(by[i - 1]->name, by[i]->name) == 0)
            rc = strata_fail(STRATA_E_FORMAT, "%s: zip member '%s' appears twice", z->path,
                             by[i]->name);
    free(by);
    return rc;
}

static const struct zentry *zip_find(const struct zip *z, const char *name)
{
    for (int64_t i = 0; i < z->n; i++)
        if (strcmp(z->e[i].name, name) == 0) return &z->e[i];
    return NULL;
}

/* Pointer to the bytes of a STORED entry, bounds-checked. */
static int zip_data(const struct zip *z, const struct zentry *e, const uint8_t **out)
{
    if (e->flags & 1u)
        return strata_fail(STRATA_E_FORMAT, "%s: zip entry '%s' is encrypted", z->path, e->name);
    if (e->method != 0)
        return strata_fail(STRATA_E_FORMAT,
                           "%s: zip entry '%s' is compressed (method %u); torch.save stores "
                           "entries uncompressed, so this archive was repacked: re-save it "
                           "with torch.save or convert it to safetensors",
                           z->path, e->name, (unsigned)e->method);
    if (e->local > z->size || z->size - e->local < 30 || rd32(z->base + e->local) != SIG_LOCAL) {
        char what[600];
        snprintf(what, sizeof what, "the local header of entry '%s'", e->name);
        if (e->local > z->size || z->size - e->local < 30) return zip_truncated(z, what);
        return strata_fail(STRATA_E_FORMAT, "%s: zip entry '%s': no local header at offset %"
                           PRIu64, z->path, e->name, e->local);
    }
    uint64_t start = e->local + 30u + rd16(z->base + e->local + 26) + rd16(z->base + e->local + 28);
    if (start > z->size || e->size > z->size - start)
        return strata_fail(STRATA_E_FORMAT,
                           "%s: truncated: zip entry '%s' needs bytes up to %" PRIu64
                           " but the file has %zu", z->path, e->name, start + e->size, z->size);
    *out = z->base + start;
    return 0;
}

/* ---------------------------------------------------------------- pickle */

enum pk_kind { PK_NONE, PK_BOOL, PK_INT, PK_FLOAT, PK_STR, PK_TUPLE, PK_LIST, PK_DICT,
               PK_GLOBAL, PK_STORAGE, PK_TENSOR };
enum pk_fn { FN_ORDERED_DICT, FN_REBUILD_TENSOR, FN_REBUILD_PARAMETER, FN_STORAGE_TYPE };

struct pk_obj {
    enum pk_kind kind;
    int64_t i;                /* INT, BOOL */
    char *s;                  /* STR (NUL-terminated copy); GLOBAL "module.name" */
    struct pk_obj **items;    /* TUPLE, LIST; DICT as key, value pairs */
    int64_t n, cap;
    enum pk_fn fn;            /* GLOBAL */
    int dtype;                /* GLOBAL storage type, STORAGE: enum strata_dtype or -1 */
    char *key;                /* STORAGE: zip key (borrowed from the pid's string) */
    int64_t numel;            /* STORAGE */
    const char *type_name;    /* STORAGE: "torch.FloatStorage" (borrowed) */
    struct pk_obj *storage;   /* TENSOR */
    int64_t offset;           /* TENSOR: storage_offset */
    struct pk_obj *size, *stride; /* TENSOR: tuples of ints */
};

struct pk_vm {
    const char *path;
    const uint8_t *p, *end, *start;
    struct pk_obj **all;      /* every object, freed together */
    int64_t n_all, cap_all;
    struct pk_obj **stack;
    int64_t n_stack, cap_stack;
    int64_t *marks;
    int64_t n_marks, cap_marks;
    struct pk_obj **memo;
    int64_t cap_memo, n_memo_set;
};

static struct pk_obj *pk_new(struct pk_vm *vm, enum pk_kind kind)
{
    if (vm->n_all == vm->cap_all) {
        vm->cap_all = vm->cap_all ? 2 * vm->cap_all : 256;
        vm->all = xrealloc(vm->all, (size_t)vm->cap_all * sizeof *vm->all);
    }
    struct pk_obj *o = xcalloc(1, sizeof *o);
    o->kind = kind;
    o->dtype = -1;
    vm->all[vm->n_all++] = o;
    return o;
}

static void pk_append(struct pk_obj *c, struct pk_obj *item)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 4;
        c->items = xrealloc(c->items, (size_t)c->cap * sizeof *c->items);
    }
    c->items[c->n++] = item;
}

static void pk_free(struct pk_vm *vm)
{
    for (int64_t i = 0; i < vm->n_all; i++) {
        free(vm->all[i]->s);
        free(vm->all[i]->items);
        free(vm->all[i]);
    }
    free(vm->all);
    free(vm->stack);
    free(vm->marks);
    free(vm->memo);
}

static int pk_err(const struct pk_vm *vm, const char *what)
{
    return strata_fail(STRATA_E_FORMAT, "%s: data.pkl byte %td: %s", vm->path,
                       vm->p - vm->start, what);
}

static void pk_push(struct pk_vm *vm, struct pk_obj *o)
{
    if (vm->n_stack == vm->cap_stack) {
        vm->cap_stack = vm->cap_stack ? 2 * vm->cap_stack : 64;
        vm->stack = xrealloc(vm->stack, (size_t)vm->cap_stack * sizeof *vm->stack);
    }
    vm->stack[vm->n_stack++] = o;
}

static int pk_pop(struct pk_vm *vm, struct pk_obj **o)
{
    int64_t floor = vm->n_marks ? vm->marks[vm->n_marks - 1] : 0;
    if (vm->n_stack <= floor) return pk_err(vm, "pickle stack underflow (damaged pickle)");
    *o = vm->stack[--vm->n_stack];
    return 0;
}

/* Objects above the last MARK into a new container of `kind`; pops the mark. */
static int pk_pop_mark(struct pk_vm *vm, enum pk_kind kind, struct pk_obj **out)
{
    if (!vm->n_marks) return pk_err(vm, "pickle has no MARK to pop to (damaged pickle)");
    int64_t m = vm->marks[--vm->n_marks];
    struct pk_obj *c = pk_new(vm, kind);
    for (int64_t i = m; i < vm->n_stack; i++) pk_append(c, vm->stack[i]);
    vm->n_stack = m;
    *out = c;
    return 0;
}

static int pk_need(struct pk_vm *vm, size_t n, const uint8_t **arg)
{
    if ((size_t)(vm->end - vm->p) < n) return pk_err(vm, "pickle ends inside an opcode (truncated)");
    *arg = vm->p;
    vm->p += n;
    return 0;
}

static const struct {
    const char *module, *name;
    enum pk_fn fn;
    int dtype;
} pk_globals[] = {
    {"collections", "OrderedDict", FN_ORDERED_DICT, -1},
    {"torch._utils", "_rebuild_tensor_v2", FN_REBUILD_TENSOR, -1},
    {"torch._utils", "_rebuild_parameter", FN_REBUILD_PARAMETER, -1},
    {"torch", "FloatStorage", FN_STORAGE_TYPE, STRATA_DT_F32},
    {"torch", "HalfStorage", FN_STORAGE_TYPE, STRATA_DT_F16},
    {"torch", "BFloat16Storage", FN_STORAGE_TYPE, STRATA_DT_BF16},
    /* Known storages of dtypes strata does not read: the error then names
     * the tensor instead of a bare global. */
    {"torch", "DoubleStorage", FN_STORAGE_TYPE, -1},
    {"torch", "LongStorage", FN_STORAGE_TYPE, -1},
    {"torch", "IntStorage", FN_STORAGE_TYPE, -1},
    {"torch", "ShortStorage", FN_STORAGE_TYPE, -1},
    {"torch", "CharStorage", FN_STORAGE_TYPE, -1},
    {"torch", "ByteStorage", FN_STORAGE_TYPE, -1},
    {"torch", "BoolStorage", FN_STORAGE_TYPE, -1},
    {"torch", "UntypedStorage", FN_STORAGE_TYPE, -1},
};

static int pk_global(struct pk_vm *vm, const char *module, size_t mlen, const char *name, size_t nlen)
{
    for (size_t i = 0; i < sizeof pk_globals / sizeof pk_globals[0]; i++) {
        if (strlen(pk_globals[i].module) == mlen && memcmp(pk_globals[i].module, module, mlen) == 0 &&
            strlen(pk_globals[i].name) == nlen && memcmp(pk_globals[i].name, name, nlen) == 0) {
            struct pk_obj *g = pk_new(vm, PK_GLOBAL);
            g->fn = pk_globals[i].fn;
            g->dtype = pk_globals[i].dtype;
            g->s = xmalloc(mlen + nlen + 2);
            snprintf(g->s, mlen + nlen + 2, "%.*s.%.*s", (int)mlen, module, (int)nlen, name);
            pk_push(vm, g);
            return 0;
        }
    }
    return strata_fail(STRATA_E_FORMAT,
                       "%s: data.pkl byte %td: pickle refers to global %.*s.%.*s, which is not "
                       "part of a state dict of tensors; strata does not run pickled code "
                       "(convert the checkpoint to safetensors)",
                       vm->path, vm->p - vm->start, (int)(mlen > 200 ? 200 : mlen), module,
                       (int)(nlen > 200 ? 200 : nlen), name);
}

static bool pk_is_int_tuple(const struct pk_obj *t)
{
    if (t->kind != PK_TUPLE) return false;
    for (int64_t i = 0; i < t->n; i++)
        if (t->items[i]->kind != PK_INT) return false;
    return true;
}

/* BINPERSID: ('storage', torch.<T>Storage, key, location, numel). */
static int pk_persid(struct pk_vm *vm, struct pk_obj *pid, struct pk_obj **out)
{
    if (pid->kind != PK_TUPLE || pid->n != 5 || pid->items[0]->kind != PK_STR ||
        strcmp(pid->items[0]->s, "storage") != 0 || pid->items[1]->kind != PK_GLOBAL ||
        pid->items[1]->fn != FN_STORAGE_TYPE || pid->items[2]->kind != PK_STR ||
        pid->items[4]->kind != PK_INT || pid->items[4]->i < 0)
        return pk_err(vm, "persistent id is not ('storage', torch.<T>Storage, key, location, "
                          "numel) as torch.save writes it");
    struct pk_obj *st = pk_new(vm, PK_STORAGE);
    st->dtype = pid->items[1]->dtype;
    st->type_name = pid->items[1]->s;
    st->key = pid->items[2]->s;
    st->numel = pid->items[4]->i;
    *out = st;
    return 0;
}

static int pk_reduce(struct pk_vm *vm, struct pk_obj *fn, struct pk_obj *args, struct pk_obj **out)
{
    if (fn->kind != PK_GLOBAL || args->kind != PK_TUPLE)
        return pk_err(vm, "REDUCE of something other than a known function and a tuple");
    struct pk_obj **a = args->items;
    switch (fn->fn) {
    case FN_ORDERED_DICT:
        if (args->n != 0) return pk_err(vm, "OrderedDict called with arguments");
        *out = pk_new(vm, PK_DICT);
        return 0;
    case FN_REBUILD_TENSOR: {
        if ((args->n != 6 && args->n != 7) || a[0]->kind != PK_STORAGE || a[1]->kind != PK_INT ||
            !pk_is_int_tuple(a[2]) || !pk_is_int_tuple(a[3]))
            return pk_err(vm, "_rebuild_tensor_v2 arguments are not (storage, offset, size, "
                              "stride, requires_grad, hooks[, metadata])");
        struct pk_obj *t = pk_new(vm, PK_TENSOR);
        t->storage = a[0];
        t->offset = a[1]->i;
        t->size = a[2];
        t->stride = a[3];
        *out = t;
        return 0;
    }
    case FN_REBUILD_PARAMETER:
        if (args->n != 3 || a[0]->kind != PK_TENSOR)
            return pk_err(vm, "_rebuild_parameter arguments are not (tensor, requires_grad, hooks)");
        *out = a[0];
        return 0;
    case FN_STORAGE_TYPE:
        break;
    }
    return strata_fail(STRATA_E_FORMAT, "%s: data.pkl byte %td: pickle calls %s, which a "
                       "state dict never does", vm->path, vm->p - vm->start, fn->s);
}

static int pk_memo_put(struct pk_vm *vm, uint64_t idx)
{
    if (!vm->n_stack) return pk_err(vm, "memo store from an empty stack");
    /* Indices are handed out in order, so one beyond the opcodes read is bogus. */
    if (idx > (uint64_t)(vm->end - vm->start)) return pk_err(vm, "memo index out of range");
    if ((int64_t)idx >= vm->cap_memo) {
        int64_t cap = vm->cap_memo ? vm->cap_memo : 64;
        while (cap <= (int64_t)idx) cap *= 2;
        vm->memo = xrealloc(vm->memo, (size_t)cap * sizeof *vm->memo);
        memset(vm->memo + vm->cap_memo, 0, (size_t)(cap - vm->cap_memo) * sizeof *vm->memo);
        vm->cap_memo = cap;
    }
    if (!vm->memo[idx]) vm->n_memo_set++;
    vm->memo[idx] = vm->stack[vm->n_stack - 1];
    return 0;
}

static int pk_memo_get(struct pk_vm *vm, uint64_t idx)
{
    if (idx >= (uint64_t)vm->cap_memo || !vm->memo[idx])
        return pk_err(vm, "memo lookup of an index never stored (damaged pickle)");
    pk_push(vm, vm->memo[idx]);
    return 0;
}

static int pk_string(struct pk_vm *vm, uint64_t len)
{
    const uint8_t *s;
    if (len > (uint64_t)(vm->end - vm->p)) return pk_err(vm, "string runs past the pickle (truncated)");
    int rc = pk_need(vm, (size_t)len, &s);
    if (rc) return rc;
    struct pk_obj *o = pk_new(vm, PK_STR);
    o->s = xmalloc((size_t)len + 1);
    memcpy(o->s, s, (size_t)len);
    o->s[len] = '\0';
    o->n = (int64_t)len;
    pk_push(vm, o);
    return 0;
}

static int pk_int(struct pk_vm *vm, int64_t v)
{
    struct pk_obj *o = pk_new(vm, PK_INT);
    o->i = v;
    pk_push(vm, o);
    return 0;
}

/* Run the pickle; *result is the object STOP returns. */
static int pk_run(struct pk_vm *vm, struct pk_obj **result)
{
    int rc = 0;
    struct pk_obj *a = NULL, *b = NULL, *c = NULL;
    const uint8_t *arg = NULL;
    while (vm->p < vm->end) {
        uint8_t op = *vm->p++;
        switch (op) {
        case 0x80: /* PROTO */
            if ((rc = pk_need(vm, 1, &arg))) return rc;
            if (arg[0] < 2 || arg[0] > 5) return pk_err(vm, "pickle protocol is not 2..5");
            break;
        case 0x95: /* FRAME: a length hint only */
            if ((rc = pk_need(vm, 8, &arg))) return rc;
            break;
        case 'c': { /* GLOBAL module\nname\n */
            const uint8_t *m = vm->p, *nl1 = memchr(m, '\n', (size_t)(vm->end - m));
            if (!nl1) return pk_err(vm, "GLOBAL without a newline (truncated)");
            const uint8_t *n = nl1 + 1, *nl2 = memchr(n, '\n', (size_t)(vm->end - n));
            if (!nl2) return pk_err(vm, "GLOBAL without a newline (truncated)");
            vm->p = nl2 + 1;
            if ((rc = pk_global(vm, (const char *)m, (size_t)(nl1 - m), (const char *)n,
                                (size_t)(nl2 - n))))
                return rc;
            break;
        }
        case 0x93: /* STACK_GLOBAL */
            if ((rc = pk_pop(vm, &b)) || (rc = pk_pop(vm, &a))) return rc;
            if (a->kind != PK_STR || b->kind != PK_STR)
                return pk_err(vm, "STACK_GLOBAL of non-strings");
            if ((rc = pk_global(vm, a->s, (size_t)a->n, b->s, (size_t)b->n))) return rc;
            break;
        case 'Q': /* BINPERSID */
            if ((rc = pk_pop(vm, &a)) || (rc = pk_persid(vm, a, &b))) return rc;
            pk_push(vm, b);
            break;
        case '(': /* MARK */
            if (vm->n_marks == vm->cap_marks) {
                vm->cap_marks = vm->cap_marks ? 2 * vm->cap_marks : 16;
                vm->marks = xrealloc(vm->marks, (size_t)vm->cap_marks * sizeof *vm->marks);
            }
            vm->marks[vm->n_marks++] = vm->n_stack;
            break;
        case '}': pk_push(vm, pk_new(vm, PK_DICT)); break;
        case ']': pk_push(vm, pk_new(vm, PK_LIST)); break;
        case ')': pk_push(vm, pk_new(vm, PK_TUPLE)); break;
        case 't':
            if ((rc = pk_pop_mark(vm, PK_TUPLE, &a))) return rc;
            pk_push(vm, a);
            break;
        case 0x85: case 0x86: case 0x87: { /* TUPLE1..3 */
            int k = op - 0x84;
            struct pk_obj *items[3];
            for (int i = k - 1; i >= 0; i--)
                if ((rc = pk_pop(vm, &items[i]))) return rc;
            a = pk_new(vm, PK_TUPLE);
            for (int i = 0; i < k; i++) pk_append(a, items[i]);
            pk_push(vm, a);
            break;
        }
        case 'X':
            if ((rc = pk_need(vm, 4, &arg)) || (rc = pk_string(vm, rd32(arg)))) return rc;
            break;
        case 0x8c:
            if ((rc = pk_need(vm, 1, &arg)) || (rc = pk_string(vm, arg[0]))) return rc;
            break;
        case 0x8d:
            if ((rc = pk_need(vm, 8, &arg)) || (rc = pk_string(vm, rd64(arg)))) return rc;
            break;
        case 'J':
            if ((rc = pk_need(vm, 4, &arg))) return rc;
            pk_int(vm, (int32_t)rd32(arg));
            break;
        case 'K':
            if ((rc = pk_need(vm, 1, &arg))) return rc;
            pk_int(vm, arg[0]);
            break;
        case 'M':
            if ((rc = pk_need(vm, 2, &arg))) return rc;
            pk_int(vm, rd16(arg));
            break;
        case 0x8a: { /* LONG1: little-endian two's complement */
            if ((rc = pk_need(vm, 1, &arg))) return rc;
            int len = arg[0];
            if (len > 8) return pk_err(vm, "integer wider than 64 bits");
            if ((rc = pk_need(vm, (size_t)len, &arg))) return rc;
            uint64_t u = 0;
            for (int i = 0; i < len; i++) u |= (uint64_t)arg[i] << (8 * i);
            if (len > 0 && len < 8 && (arg[len - 1] & 0x80)) u |= ~0ull << (8 * len);
            pk_int(vm, (int64_t)u);
            break;
        }
        case 'G': /* BINFLOAT, big-endian; only ever metadata */
            if ((rc = pk_need(vm, 8, &arg))) return rc;
            pk_push(vm, pk_new(vm, PK_FLOAT));
            break;
        case 0x88: case 0x89:
            a = pk_new(vm, PK_BOOL);
            a->i = op == 0x88;
            pk_push(vm, a);
            break;
        case 'N': pk_push(vm, pk_new(vm, PK_NONE)); break;
        case 'R':
            if ((rc = pk_pop(vm, &b)) || (rc = pk_pop(vm, &a)) || (rc = pk_reduce(vm, a, b, &c)))
                return rc;
            pk_push(vm, c);
            break;
        case 'b': /* BUILD: only OrderedDict's _metadata attribute */
            if ((rc = pk_pop(vm, &b))) return rc;
            if (!vm->n_stack || vm->stack[vm->n_stack - 1]->kind != PK_DICT)
                return pk_err(vm, "BUILD on something other than a dict");
            break;
        case 's':
            if ((rc = pk_pop(vm, &b)) || (rc = pk_pop(vm, &a))) return rc;
            if (!vm->n_stack || vm->stack[vm->n_stack - 1]->kind != PK_DICT)
                return pk_err(vm, "SETITEM on something other than a dict");
            pk_append(vm->stack[vm->n_stack - 1], a);
            pk_append(vm->stack[vm->n_stack - 1], b);
            break;
        case 'u': case 'e': { /* SETITEMS, APPENDS */
            if ((rc = pk_pop_mark(vm, PK_TUPLE, &a))) return rc;
            enum pk_kind want = op == 'u' ? PK_DICT : PK_LIST;
            if (!vm->n_stack || vm->stack[vm->n_stack - 1]->kind != want)
                return pk_err(vm, op == 'u' ? "SETITEMS on something other than a dict"
                                            : "APPENDS on something other than a list");
            if (op == 'u' && a->n % 2) return pk_err(vm, "SETITEMS with an odd item count");
            for (int64_t i = 0; i < a->n; i++) pk_append(vm->stack[vm->n_stack - 1], a->items[i]);
            break;
        }
        case 'a':
            if ((rc = pk_pop(vm, &b))) return rc;
            if (!vm->n_stack || vm->stack[vm->n_stack - 1]->kind != PK_LIST)
                return pk_err(vm, "APPEND on something other than a list");
            pk_append(vm->stack[vm->n_stack - 1], b);
            break;
        case 'q':
            if ((rc = pk_need(vm, 1, &arg)) || (rc = pk_memo_put(vm, arg[0]))) return rc;
            break;
        case 'r':
            if ((rc = pk_need(vm, 4, &arg)) || (rc = pk_memo_put(vm, rd32(arg)))) return rc;
            break;
        case 0x94:
            if ((rc = pk_memo_put(vm, (uint64_t)vm->n_memo_set))) return rc;
            break;
        case 'h':
            if ((rc = pk_need(vm, 1, &arg)) || (rc = pk_memo_get(vm, arg[0]))) return rc;
            break;
        case 'j':
            if ((rc = pk_need(vm, 4, &arg)) || (rc = pk_memo_get(vm, rd32(arg)))) return rc;
            break;
        case '.':
            return pk_pop(vm, result);
        default: {
            char what[96];
            vm->p--;
            snprintf(what, sizeof what, "pickle opcode 0x%02x is not one torch.save uses for a "
                     "state dict", op);
            return pk_err(vm, what);
        }
        }
    }
    return pk_err(vm, "pickle ends without STOP (truncated)");
}

/* ------------------------------------------------------------ state dict */

/* One (name, tensor) of the state dict -> *t, with every check. */
static int make_tensor(const struct zip *z, const char *prefix, const char *name,
                       const struct pk_obj *o, struct strata_tensor *t)
{
    const char *path = z->path;
    const struct pk_obj *st = o->storage;
    if (st->dtype < 0)
        return strata_fail(STRATA_E_FORMAT, "%s: tensor '%s' is stored as %s; strata reads only "
                           "float32, float16 and bfloat16 tensors", path, name, st->type_name);
    const enum strata_dtype dt = (enum strata_dtype)st->dtype;
    if (o->size->n > STRATA_MAX_DIMS || o->stride->n != o->size->n)
        return strata_fail(STRATA_E_FORMAT, "%s: tensor '%s': %" PRId64 " dimensions with %"
                           PRId64 " strides (at most %d dimensions)", path, name, o->size->n,
                           o->stride->n, STRATA_MAX_DIMS);
    size_t es = strata_dtype_size(dt);
    int64_t n_elem = 1;
    t->n_dim = (int32_t)o->size->n;
    for (int32_t d = 0; d < t->n_dim; d++) {
        int64_t s = o->size->items[d]->i;
        if (s < 0)
            return strata_fail(STRATA_E_FORMAT, "%s: tensor '%s': negative size %" PRId64,
                               path, name, s);
        if (s && n_elem > INT64_MAX / (int64_t)es / s)
            return strata_fail(STRATA_E_FORMAT, "%s: tensor '%s': size overflows", path, name);
        n_elem *= s;
        t->shape[d] = s;
    }
    /* C order; a dimension of size 1 may carry any stride (torch does that). */
    int64_t want = 1;
    for (int32_t d = t->n_dim - 1; d >= 0 && n_elem > 0; d--) {
        if (t->shape[d] != 1 && o->stride->items[d]->i != want)
            return strata_fail(STRATA_E_FORMAT,
                               "%s: tensor '%s' is not contiguous (stride %" PRId64 " in dimension"
                               " %d where C order needs %" PRId64 "); save .contiguous() "
                               "tensors or convert to safetensors", path, name,
                               o->stride->items[d]->i, d, want);
        want *= t->shape[d];
    }
    if (o->offset < 0 || o->offset > st->numel || n_elem > st->numel - o->offset)
        return strata_fail(STRATA_E_FORMAT, "%s: tensor '%s': elements [%" PRId64 ", %" PRId64
                           " + %" PRId64 ") lie outside its storage of %" PRId64 " elements",
                           path, name, o->offset, o->offset, n_elem, st->numel);
    char entry[1024];
    if ((size_t)snprintf(entry, sizeof entry, "%sdata/%s", prefix, st->key) >= sizeof entry)
        return strata_fail(STRATA_E_FORMAT, "%s: tensor '%s': storage key too long", path, name);
    const struct zentry *e = zip_find(z, entry);
    if (!e)
        return strata_fail(STRATA_E_FORMAT, "%s: tensor '%s': storage '%s' is missing from the "
                           "archive", path, name, entry);
    if (st->numel > INT64_MAX / (int64_t)es || e->size < (uint64_t)st->numel * es)
        return strata_fail(STRATA_E_FORMAT, "%s: tensor '%s': storage '%s' holds %" PRIu64
                           " bytes, less than its %" PRId64 " %s elements", path, name, entry,
                           e->size, st->numel, strata_dtype_name(dt));
    const uint8_t *data;
    int rc = zip_data(z, e, &data);
    if (rc) return rc;
    t->dtype = dt;
    t->n_elem = n_elem;
    t->data = data + (size_t)o->offset * es;
    t->name = strata_xstrdup(name);
    t->file = NULL;
    return 0;
}

int strata_torchzip_read(const char *path, const uint8_t *data, size_t size,
                         struct strata_tensor **out, int64_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    struct zip z = {path, data, size, NULL, 0};
    struct pk_vm vm;
    memset(&vm, 0, sizeof vm);
    vm.path = path;
    struct strata_tensor *ts = NULL;
    int64_t n = 0;
    char prefix[512];
    const struct zentry *pkl = NULL;
    int rc = zip_open(&z);
    if (rc) goto fail;
    /* The one "<prefix>/data.pkl" at the top level of the archive. */
    for (int64_t i = 0; i < z.n; i++) {
        const char *nm = z.e[i].name, *slash = strchr(nm, '/');
        if (slash && slash != nm && strcmp(slash, "/data.pkl") == 0) {
            if (pkl) {
                rc = strata_fail(STRATA_E_FORMAT, "%s: archive holds both '%s' and '%s'; not "
                                 "one torch.save file", path, pkl->name, nm);
                goto fail;
            }
            pkl = &z.e[i];
        }
    }
    if (!pkl) {
        rc = strata_fail(STRATA_E_FORMAT, "%s: zip archive without <prefix>/data.pkl: not a "
                         "torch.save checkpoint", path);
        goto fail;
    }
    size_t plen = strlen(pkl->name) - strlen("data.pkl");
    if (plen >= sizeof prefix) {
        rc = strata_fail(STRATA_E_FORMAT, "%s: archive prefix too long", path);
        goto fail;
    }
    memcpy(prefix, pkl->name, plen);
    prefix[plen] = '\0';
    char bo_name[600];
    snprintf(bo_name, sizeof bo_name, "%sbyteorder", prefix);
    const struct zentry *bo = zip_find(&z, bo_name);
    if (bo) {
        const uint8_t *bytes;
        if ((rc = zip_data(&z, bo, &bytes))) goto fail;
        if (bo->size != 6 || memcmp(bytes, "little", 6) != 0) {
            rc = strata_fail(STRATA_E_FORMAT, "%s: byteorder record is '%.*s'; strata reads "
                             "only little-endian checkpoints", path,
                             (int)(bo->size > 16 ? 16 : bo->size), (const char *)bytes);
            goto fail;
        }
    }
    const uint8_t *pk;
    if ((rc = zip_data(&z, pkl, &pk))) goto fail;
    vm.start = vm.p = pk;
    vm.end = pk + pkl->size;
    struct pk_obj *root;
    if ((rc = pk_run(&vm, &root))) goto fail;
    if (root->kind != PK_DICT) {
        rc = strata_fail(STRATA_E_FORMAT, "%s: data.pkl holds no dict: not a state dict", path);
        goto fail;
    }
    ts = xcalloc((size_t)(root->n / 2 + 1), sizeof *ts);
    for (int64_t i = 0; i + 1 < root->n; i += 2) {
        const struct pk_obj *k = root->items[i], *v = root->items[i + 1];
        if (k->kind != PK_STR) {
            rc = strata_fail(STRATA_E_FORMAT, "%s: state dict key %" PRId64 " is not a string",
                             path, i / 2);
            goto fail;
        }
        if (strlen(k->s) != (size_t)k->n) {
            rc = strata_fail(STRATA_E_FORMAT, "%s: state dict key %" PRId64 " holds a NUL byte",
                             path, i / 2);
            goto fail;
        }
        if (v->kind != PK_TENSOR) {
            rc = strata_fail(STRATA_E_FORMAT, "%s: state dict entry '%s' is not a tensor", path,
                             k->s);
            goto fail;
        }
        if ((rc = make_tensor(&z, prefix, k->s, v, &ts[n]))) goto fail;
        n++;
    }
    pk_free(&vm);
    zip_free(&z);
    *out = ts;
    *n_out = n;
    return 0;
fail:
    for (int64_t i = 0; i < n; i++) free((char *)ts[i].name);
    free(ts);
    pk_free(&vm);
    zip_free(&z);
    return rc;
}
