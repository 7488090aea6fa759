/* test_tensors.c — weight files: safetensors and torch.save readers against
 * the independent Python reader (tests/hfio.py), the safetensors writer,
 * widening and bfloat16 rounding against scalar references, releasing
 * pages, and every refusal path (each must name the file, and the tensor
 * where there is one).
 *
 * Fixtures come from tests/mk_tensor_fixtures.py ($PYTHON, default
 * /usr/bin/python3), written into the scratch directory; each good file has
 * a .expect listing what hfio.read_tensors sees: name, dtype, shape, stored
 * bytes and float32 bytes, compared here bit for bit.
 */
#include "tensors.h"

#include "check.h"

#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

static char dir[600];

static const char *fx(const char *name)
{
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static uint8_t *unhex(const char *s, size_t *n)
{
    if (strcmp(s, "-") == 0) {
        *n = 0;
        return malloc(1);
    }
    size_t len = strlen(s) / 2;
    uint8_t *b = malloc(len ? len : 1);
    for (size_t i = 0; i < len; i++) {
        unsigned v;
        sscanf(s + 2 * i, "%2x", &v);
        b[i] = (uint8_t)v;
    }
    *n = len;
    return b;
}

/* The set holds exactly what `expect` lists, in that order, bit for bit. */
static void check_against(const struct strata_tensors *ts, const char *expect)
{
    char *text = check_slurp(expect, NULL);
    CHECK(text != NULL);
    if (!text) return;
    int64_t i = 0;
    int bad = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"), i++) {
        char *f[5];
        char *p = line;
        for (int k = 0; k < 5; k++) {
            f[k] = p;
            p = strchr(p, '\t');
            if (p) *p++ = '\0';
            else p = "";
        }
        if (i >= strata_tensors_count(ts)) {
            bad++;
            continue;
        }
        const struct strata_tensor *t = strata_tensors_at(ts, i);
        int ok = strcmp(t->name, f[0]) == 0 && strcmp(strata_dtype_name(t->dtype), f[1]) == 0 &&
                 strata_tensors_find(ts, f[0]) == t;
        int64_t n_elem = 1, n_dim = 0;
        if (strcmp(f[2], "-") != 0) {
            for (char *s = f[2]; *s; n_dim++) {
                int64_t d = strtoll(s, &s, 10);
                ok &= n_dim < t->n_dim && t->shape[n_dim] == d;
                n_elem *= d;
                if (*s == ',') s++;
            }
        }
        ok &= t->n_dim == n_dim && t->n_elem == n_elem;
        size_t nraw, nwide;
        uint8_t *raw = unhex(f[3], &nraw), *wide = unhex(f[4], &nwide);
        ok &= nraw == (size_t)n_elem * strata_dtype_size(t->dtype) && nwide == (size_t)n_elem * 4;
        if (ok) {
            float *w = malloc(nwide + 4);
            strata_widen(w, t->data, t->dtype, t->n_elem);
            ok &= memcmp(t->data, raw, nraw) == 0 && memcmp(w, wide, nwide) == 0;
            free(w);
        }
        if (!ok) {
            fprintf(stderr, "%s: tensor %s differs from the Python reader\n", expect, f[0]);
            bad++;
        }
        free(raw);
        free(wide);
    }
    CHECK(bad == 0);
    CHECK(i == strata_tensors_count(ts));
    free(text);
}

static void check_file(const char *name)
{
    struct strata_tensors *ts;
    char expect[1100];
    snprintf(expect, sizeof expect, "%s.expect", fx(name));
    CHECK_OK(strata_tensors_create(&ts));
    CHECK_OK(strata_tensors_add_file(ts, fx(name)));
    check_against(ts, expect);
    CHECK(strata_tensors_find(ts, "no.such.tensor") == NULL);
    strata_tensors_free(ts);
}

/* Tied tensors and views point into one storage, not at copies. */
static void check_sharing(const char *name)
{
    struct strata_tensors *ts;
    CHECK_OK(strata_tensors_create(&ts));
    CHECK_OK(strata_tensors_add_file(ts, fx(name)));
    const struct strata_tensor *emb = strata_tensors_find(ts, "model.embed_tokens.weight");
    const struct strata_tensor *head = strata_tensors_find(ts, "lm_head.weight");
    const struct strata_tensor *up = strata_tensors_find(ts, "model.layers.0.mlp.up_proj.weight");
    CHECK(emb && head && up);
    if (emb && head && up) {
        CHECK(head->data == emb->data);
        CHECK((const char *)up->data == (const char *)emb->data + 12 * 4);
        CHECK(strcmp(head->file, fx(name)) == 0);
    }
    strata_tensors_free(ts);
}

static void check_sharded(const char *sub, const char *const *files, int n)
{
    struct strata_tensors *ts;
    char path[1100], expect[1100];
    CHECK_OK(strata_tensors_create(&ts));
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s/%s", dir, sub, files[i]);
        CHECK_OK(strata_tensors_add_file(ts, path));
    }
    snprintf(expect, sizeof expect, "%s/%s.expect", dir, sub);
    check_against(ts, expect);
    strata_tensors_free(ts);
}

/* Adding `name` fails with `status` (0: any), the message names the file
 * and contains each of want[] (NULL-terminated), and the set is unchanged. */
static void check_refused(struct strata_tensors *ts, const char *path, int status,
                          const char *const *want)
{
    int64_t before = strata_tensors_count(ts);
    int rc = strata_tensors_add_file(ts, path);
    const char *msg = strata_last_error();
    CHECK(rc != 0);
    if (status) CHECK(rc == status);
    CHECK(strstr(msg, path) != NULL);
    for (; want && *want; want++) {
        int found = strstr(msg, *want) != NULL;
        if (!found) fprintf(stderr, "%s: message lacks '%s': %s\n", path, *want, msg);
        CHECK(found);
    }
    CHECK(strata_tensors_count(ts) == before);
}

static void refuse(const char *name, int status, const char *w0, const char *w1)
{
    struct strata_tensors *ts;
    const char *want[] = {w0, w1, NULL};
    CHECK_OK(strata_tensors_create(&ts));
    check_refused(ts, fx(name), status, want);
    strata_tensors_free(ts);
}

static void test_refusals(void)
{
    refuse("bad_trunc.safetensors", STRATA_E_FORMAT, "truncated", "'big'");
    refuse("bad_past.safetensors", STRATA_E_FORMAT, "truncated", "'big'");
    refuse("bad_hlen.safetensors", STRATA_E_FORMAT, "header length", NULL);
    refuse("bad_json.safetensors", STRATA_E_FORMAT, "JSON", NULL);
    refuse("bad_dtype.safetensors", STRATA_E_FORMAT, "'model.norm.weight'", "I64");
    refuse("bad_size.safetensors", STRATA_E_SHAPE, "'model.embed_tokens.weight'", "[3, 5]");
    refuse("bad_shape.safetensors", STRATA_E_FORMAT, "'scalar'", "shape");
    refuse("bad_deflate.bin", STRATA_E_FORMAT, "compressed", "archive/data/");
    refuse("bad_global.bin", STRATA_E_FORMAT, "os.system", NULL);
    refuse("bad_stride.bin", STRATA_E_FORMAT, "'model.embed_tokens.weight'", "contiguous");
    refuse("bad_order.bin", STRATA_E_FORMAT, "byteorder", "big");
    refuse("bad_trunc.bin", STRATA_E_FORMAT, "truncated", NULL);
    refuse("bad_range.bin", STRATA_E_FORMAT, "'model.layers.0.mlp.up_proj.weight'", "outside");
    refuse("no_such_file.safetensors", STRATA_E_IO, NULL, NULL);

    /* The same name in two files: the message names both. */
    struct strata_tensors *ts;
    CHECK_OK(strata_tensors_create(&ts));
    CHECK_OK(strata_tensors_add_file(ts, fx("dup_a.safetensors")));
    const char *want[] = {"'model.norm.weight'", fx("dup_a.safetensors"), NULL};
    check_refused(ts, fx("dup_b.bin"), STRATA_E_FORMAT, want);
    CHECK(strata_tensors_count(ts) == 1);
    CHECK(strata_tensors_find(ts, "model.norm.weight") != NULL);
    strata_tensors_free(ts);
}

/* Every prefix of a good file is refused with a message naming it, and a
 * byte flipped anywhere is either read or refused with a message (this is
 * what catches out-of-bounds reads under the sanitizers). */
static void test_damage(const char *name)
{
    size_t size;
    char *whole = check_slurp(fx(name), &size);
    CHECK(whole != NULL);
    if (!whole) return;
    const char *cut = fx("damaged.tmp");
    int refused = 0, tries = 0, unnamed = 0;
    uint64_t rng = 12345;
    for (int k = 0; k < 200; k++) {
        size_t n = size;
        char *buf = malloc(size);
        memcpy(buf, whole, size);
        if (k < 100) {
            n = (size_t)((double)size * k / 100.0);
        } else { /* flip one byte, biased towards the headers and the pickle */
            size_t at = (size_t)(strata_rng_next(&rng) % (k % 2 ? size : (size < 4096 ? size : 4096)));
            buf[at] ^= (char)(1u << (strata_rng_next(&rng) % 8));
            if (k % 5 == 0) at = size - 1 - (size_t)(strata_rng_next(&rng) % 200 % size);
            buf[at] ^= (char)0x5a;
        }
        FILE *f = fopen(cut, "wb");
        if (!f) break;
        fwrite(buf, 1, n, f);
        fclose(f);
        free(buf);
        struct strata_tensors *ts;
        strata_tensors_create(&ts);
        int rc = strata_tensors_add_file(ts, cut);
        tries++;
        if (rc) {
            if (!strstr(strata_last_error(), cut)) {
                unnamed++;
                fprintf(stderr, "%s damage %d: message without the path: %s\n", name, k,
                        strata_last_error());
            }
        }
        if (k < 100 && rc) refused++;
        strata_tensors_free(ts);
    }
    CHECK(tries == 200);
    CHECK(refused == 100);
    CHECK(unnamed == 0);
    remove(cut);
    free(whole);
}

/* ------------------------------------------------------ widen and bf16 */

static uint32_t bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static void test_widen(void)
{
    /* Every F16 and BF16 bit pattern, from an odd address, against the
     * scalar conversions. */
    uint8_t *src = malloc(2 * 65536 + 8);
    float *dst = malloc(4 * 65536 + 64);
    for (uint32_t i = 0; i < 65536; i++) {
        uint16_t h = (uint16_t)i;
        memcpy(src + 1 + 2 * i, &h, 2);
    }
    int bad16 = 0, badbf = 0;
    strata_widen(dst, src + 1, STRATA_DT_F16, 65536);
    for (uint32_t i = 0; i < 65536; i++) {
        float want = strata_f16_to_f32((uint16_t)i);
        if (isnan(want) ? !isnan(dst[i]) : bits(dst[i]) != bits(want)) bad16++;
    }
    strata_widen(dst, src + 1, STRATA_DT_BF16, 65536);
    for (uint32_t i = 0; i < 65536; i++)
        if (bits(dst[i]) != i << 16) badbf++;
    CHECK(bad16 == 0);
    CHECK(badbf == 0);
    /* F16 exactness against the definition: (-1)^s 2^(e-15) (1 + m/1024). */
    int badv = 0;
    for (uint32_t i = 0; i < 0x7c00; i += 7) {
        double m = i & 0x3ff, e = (double)(i >> 10);
        double want = e ? ldexp(1.0 + m / 1024.0, (int)e - 15) : ldexp(m / 1024.0, -14);
        if ((double)strata_f16_to_f32((uint16_t)i) != want) badv++;
    }
    CHECK(badv == 0);

    /* Odd lengths and offsets: only dst[0, n) is written. */
    int badtail = 0;
    const enum strata_dtype wts[3] = {STRATA_DT_F32, STRATA_DT_F16, STRATA_DT_BF16};
    for (int t = 0; t < 3; t++) {
        enum strata_dtype wt = wts[t];
        size_t es = strata_dtype_size(wt);
        for (int64_t n = 0; n < 40; n++) {
            for (int off = 0; off < 4; off++) {
                for (int64_t i = 0; i < n; i++) {
                    uint32_t v = 0x3c00u + (uint32_t)(i * 37 + off);
                    float fv = (float)i * 0.5f - 3.0f;
                    if (wt == STRATA_DT_F32) memcpy(src + off + 4 * i, &fv, 4);
                    else memcpy(src + off + 2 * i, &v, 2);
                }
                for (int i = 0; i < 48; i++) dst[i] = -12345.0f;
                strata_widen(dst, src + off, wt, n);
                for (int64_t i = 0; i < 48; i++) {
                    float want = -12345.0f;
                    if (i < n) {
                        uint16_t h;
                        memcpy(&h, src + off + es * (size_t)i, 2);
                        if (wt == STRATA_DT_F32) memcpy(&want, src + off + 4 * i, 4);
                        else if (wt == STRATA_DT_F16) want = strata_f16_to_f32(h);
                        else { uint32_t u = (uint32_t)h << 16; memcpy(&want, &u, 4); }
                    }
                    if (bits(dst[i]) != bits(want)) badtail++;
                }
            }
        }
    }
    CHECK(badtail == 0);
    free(src);
    free(dst);
}

/* Independent reference: the nearer of the two bfloat16 neighbours of x by
 * exact double arithmetic, the even one on a tie. Past the largest finite
 * bfloat16 the next neighbour is 2^128 (where Inf sits), as IEEE rounding
 * defines overflow. */
static double bf16_value(uint32_t hb)
{
    if ((hb & 0x7f800000u) == 0x7f800000u)
        return hb & 0x80000000u ? -ldexp(1.0, 128) : ldexp(1.0, 128);
    float f;
    memcpy(&f, &hb, 4);
    return (double)f;
}

static uint16_t bf16_ref(float x)
{
    uint32_t u = bits(x);
    if (isinf(x)) return (uint16_t)(u >> 16);
    uint32_t lo = u & 0xffff0000u, hi = lo + 0x10000u;
    double dlo = fabs((double)x - bf16_value(lo)), dhi = fabs(bf16_value(hi) - (double)x);
    if (dlo < dhi) return (uint16_t)(lo >> 16);
    if (dhi < dlo) return (uint16_t)(hi >> 16);
    return (uint16_t)((lo >> 16) & 1 ? hi >> 16 : lo >> 16);
}

static float fbits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_bf16(void)
{
    CHECK(strata_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(strata_f32_to_bf16(fbits(0x3f808000u)) == 0x3f80); /* tie, down to even */
    CHECK(strata_f32_to_bf16(fbits(0x3f818000u)) == 0x3f82); /* tie, up to even */
    CHECK(strata_f32_to_bf16(fbits(0x3f808001u)) == 0x3f81);
    CHECK(strata_f32_to_bf16(fbits(0xbf818000u)) == 0xbf82);
    CHECK(strata_f32_to_bf16(INFINITY) == 0x7f80);
    CHECK(strata_f32_to_bf16(-INFINITY) == 0xff80);
    CHECK(strata_f32_to_bf16(fbits(0x7f7fffffu)) == 0x7f80); /* FLT_MAX rounds to Inf */
    CHECK(strata_f32_to_bf16(fbits(0x7f7f7fffu)) == 0x7f7f);
    CHECK(strata_f32_to_bf16(-0.0f) == 0x8000);
    CHECK(strata_f32_to_bf16(fbits(0x00000001u)) == 0x0000); /* denormals */
    CHECK(strata_f32_to_bf16(fbits(0x00008000u)) == 0x0000);
    CHECK(strata_f32_to_bf16(fbits(0x00018000u)) == 0x0002);
    CHECK(strata_f32_to_bf16(fbits(0x00017fffu)) == 0x0001);
    CHECK(strata_f32_to_bf16(fbits(0x807fffffu)) == 0x8080);
    uint32_t nans[] = {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0x7fbfffffu, 0xff800001u, 0x7fffffffu};
    for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++) {
        uint16_t h = strata_f32_to_bf16(fbits(nans[i]));
        CHECK((h & 0x7f80) == 0x7f80 && (h & 0x7f) != 0);   /* still NaN */
        CHECK((h & 0x8000) == (nans[i] >> 16 & 0x8000));    /* sign kept */
    }
    int bad = 0;
    uint64_t rng = 7;
    for (int i = 0; i < 2000000; i++) {
        uint32_t u = (uint32_t)strata_rng_next(&rng);
        if (i & 1) u = (u & 0xffff0000u) | (i & 2 ? 0x8000u : (u & 0xffffu)); /* many ties */
        float x = fbits(u);
        if (isnan(x)) continue;
        if (strata_f32_to_bf16(x) != bf16_ref(x)) {
            if (bad++ < 5)
                fprintf(stderr, "bf16(%08x) = %04x, reference %04x\n", u, strata_f32_to_bf16(x),
                        bf16_ref(x));
        }
    }
    CHECK(bad == 0);
    /* The one dtype enum: safetensors' names, element sizes. */
    static const struct {
        enum strata_dtype t;
        const char *name;
        size_t size;
    } dts[] = {{STRATA_DT_F32, "F32", 4}, {STRATA_DT_F16, "F16", 2}, {STRATA_DT_BF16, "BF16", 2},
               {STRATA_DT_F64, "F64", 8}, {STRATA_DT_I32, "I32", 4}, {STRATA_DT_I64, "I64", 8}};
    for (size_t i = 0; i < sizeof dts / sizeof dts[0]; i++) {
        CHECK(strcmp(strata_dtype_name(dts[i].t), dts[i].name) == 0);
        CHECK(strata_dtype_size(dts[i].t) == dts[i].size);
    }
}

/* tests/hfio.py's to_bf16 (used to write test models) rounds as lib does. */
static void test_bf16_python(void)
{
    struct strata_tensors *ts;
    CHECK_OK(strata_tensors_create(&ts));
    CHECK_OK(strata_tensors_add_file(ts, fx("bf16.safetensors")));
    const struct strata_tensor *src = strata_tensors_find(ts, "src");
    const struct strata_tensor *bf = strata_tensors_find(ts, "bf16");
    CHECK(src && bf && src->n_elem == bf->n_elem && src->n_elem > 4000);
    int bad = 0;
    for (int64_t i = 0; src && bf && i < src->n_elem; i++) {
        float x;
        uint16_t want;
        memcpy(&x, (const char *)src->data + 4 * i, 4);
        memcpy(&want, (const char *)bf->data + 2 * i, 2);
        uint16_t got = strata_f32_to_bf16(x);
        /* NaNs: both NaN with the same sign (the payload is free). */
        if (isnan(x) ? !((got & 0x7f80) == 0x7f80 && (got & 0x7f) && (want & 0x7f80) == 0x7f80 &&
                         (want & 0x7f) && (got & 0x8000) == (want & 0x8000))
                     : got != want) {
            if (bad++ < 5) fprintf(stderr, "to_bf16(%08x): python %04x, lib %04x\n", bits(x), want, got);
        }
    }
    CHECK(bad == 0);
    strata_tensors_free(ts);
}

/* ------------------------------------------------------------- writer */

static void test_writer(void)
{
    struct strata_tensor specs[5];
    memset(specs, 0, sizeof specs);
    float a[6] = {1, -2, 3.5f, NAN, INFINITY, -0.0f};
    uint16_t b[7] = {0x3c00, 0x0001, 0x7bff, 0xfc00, 0x7e00, 0x8000, 0x1234};
    uint16_t c[3] = {0x3f80, 0x7fc1, 0x0001};
    float s = 42.0f;
    specs[0] = (struct strata_tensor){.name = "a \"quoted\" \\ name", .dtype = STRATA_DT_F32,
                                      .n_dim = 2, .shape = {2, 3}};
    specs[1] = (struct strata_tensor){.name = "b", .dtype = STRATA_DT_F16, .n_dim = 1, .shape = {7}};
    specs[2] = (struct strata_tensor){.name = "c", .dtype = STRATA_DT_BF16, .n_dim = 3,
                                      .shape = {1, 3, 1}};
    specs[3] = (struct strata_tensor){.name = "s", .dtype = STRATA_DT_F32, .n_dim = 0};
    specs[4] = (struct strata_tensor){.name = "e", .dtype = STRATA_DT_F16, .n_dim = 2,
                                      .shape = {0, 5}};
    const char *path = fx("written.safetensors");
    char partial[1100];
    snprintf(partial, sizeof partial, "%s.partial", path);
    struct strata_st_writer *w;
    CHECK_OK(strata_st_writer_create(&w, path, specs, 5, "{\"format\":\"pt\",\"x\":\"a\\\"b\"}"));
    struct stat st;
    CHECK(stat(partial, &st) == 0);
    /* Bytes arrive in pieces that do not respect tensor boundaries. */
    uint8_t all[64];
    size_t n = 0;
    memcpy(all + n, a, sizeof a), n += sizeof a;
    memcpy(all + n, b, sizeof b), n += sizeof b;
    memcpy(all + n, c, sizeof c), n += sizeof c;
    memcpy(all + n, &s, 4), n += 4;
    CHECK_OK(strata_st_writer_write(w, all, 5));
    CHECK_OK(strata_st_writer_write(w, all + 5, 0));
    CHECK_OK(strata_st_writer_write(w, all + 5, n - 5));
    CHECK(strata_st_writer_write(w, all, 1) == STRATA_E_ARG); /* one byte too many */
    CHECK_OK(strata_st_writer_finish(w));
    strata_st_writer_free(w);
    CHECK(stat(partial, &st) != 0);
    size_t size;
    char *file = check_slurp(path, &size);
    CHECK(file && size >= 8);
    if (file) {
        uint64_t hlen = 0;
        for (int i = 7; i >= 0; i--) hlen = hlen << 8 | (uint8_t)file[i];
        CHECK(hlen % 8 == 0 && 8 + hlen + n == size);
        CHECK(strstr(file + 8, "\"__metadata__\":{\"format\":\"pt\",\"x\":\"a\\\"b\"}") != NULL);
        free(file);
    }
    struct strata_tensors *ts;
    CHECK_OK(strata_tensors_create(&ts));
    CHECK_OK(strata_tensors_add_file(ts, path));
    CHECK(strata_tensors_count(ts) == 5);
    const void *want[5] = {a, b, c, &s, NULL};
    for (int i = 0; i < 5 && strata_tensors_count(ts) == 5; i++) {
        const struct strata_tensor *t = strata_tensors_at(ts, i);
        CHECK(strcmp(t->name, specs[i].name) == 0 && t->dtype == specs[i].dtype &&
              t->n_dim == specs[i].n_dim);
        CHECK(memcmp(t->shape, specs[i].shape, sizeof t->shape[0] * (size_t)t->n_dim) == 0);
        if (want[i]) CHECK(memcmp(t->data, want[i], (size_t)t->n_elem * strata_dtype_size(t->dtype)) == 0);
        else CHECK(t->n_elem == 0);
    }
    strata_tensors_free(ts);

    /* The independent Python reader sees the same file. */
    char cmd[4096], expect[1100];
    const char *py = getenv("PYTHON");
    snprintf(expect, sizeof expect, "%s.expect", path);
    snprintf(cmd, sizeof cmd, "'%s' tests/mk_tensor_fixtures.py --dump '%s' '%s'",
             py && *py ? py : "/usr/bin/python3", path, expect);
    CHECK(system(cmd) == 0);
    CHECK_OK(strata_tensors_create(&ts));
    CHECK_OK(strata_tensors_add_file(ts, path));
    check_against(ts, expect);
    strata_tensors_free(ts);
    remove(expect);
    remove(path);

    /* The data region starts 8-byte aligned whatever the header length. */
    int misaligned = 0;
    for (int k = 1; k <= 8; k++) {
        char name[16] = "xxxxxxxx";
        name[k] = '\0';
        struct strata_tensor one = {.name = name, .dtype = STRATA_DT_F16, .n_dim = 1, .shape = {1}};
        uint16_t h = 0x3c00;
        CHECK_OK(strata_st_writer_create(&w, path, &one, 1, NULL));
        CHECK_OK(strata_st_writer_write(w, &h, 2));
        CHECK_OK(strata_st_writer_finish(w));
        strata_st_writer_free(w);
        char *f = check_slurp(path, &size);
        if (!f || size < 8 || ((uint8_t)f[0] % 8) != 0 || size != 8 + (uint8_t)f[0] + 2u) misaligned++;
        free(f);
    }
    CHECK(misaligned == 0);
    remove(path);

    /* Refusals: short data, bad metadata, duplicate names; no file left. */
    CHECK_OK(strata_st_writer_create(&w, path, specs, 2, NULL));
    CHECK_OK(strata_st_writer_write(w, a, sizeof a));
    CHECK(strata_st_writer_finish(w) == STRATA_E_ARG);
    strata_st_writer_free(w);
    CHECK(stat(partial, &st) != 0 && stat(path, &st) != 0);
    CHECK(strata_st_writer_create(&w, path, specs, 2, "{\"n\":1}") == STRATA_E_ARG && !w);
    CHECK(strata_st_writer_create(&w, path, specs, 2, "[\"x\"]") == STRATA_E_ARG && !w);
    struct strata_tensor twice[2] = {specs[1], specs[1]};
    CHECK(strata_st_writer_create(&w, path, twice, 2, NULL) == STRATA_E_ARG && !w);
    CHECK(stat(partial, &st) != 0);
    strata_st_writer_free(NULL);
}

/* ------------------------------------------------------------- release */

static long resident_pages(void)
{
    long size = 0, res = -1;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &res) != 2) res = -1;
        fclose(f);
    }
    return res;
}

static void test_release(void)
{
    const int64_t n = 16 << 20; /* 64 MiB of F32 */
    const char *path = fx("big.safetensors");
    struct strata_tensor spec = {.name = "w", .dtype = STRATA_DT_F32, .n_dim = 1, .shape = {n}};
    struct strata_st_writer *w;
    CHECK_OK(strata_st_writer_create(&w, path, &spec, 1, NULL));
    float *chunk = malloc(1 << 20);
    for (int64_t i = 0; i < n; i += (1 << 18)) {
        for (int j = 0; j < (1 << 18); j++) chunk[j] = (float)((i + j) % 1000);
        CHECK_OK(strata_st_writer_write(w, chunk, 1 << 20));
    }
    free(chunk);
    CHECK_OK(strata_st_writer_finish(w));
    strata_st_writer_free(w);
    struct strata_tensors *ts;
    CHECK_OK(strata_tensors_create(&ts));
    CHECK_OK(strata_tensors_add_file(ts, path));
    const struct strata_tensor *t = strata_tensors_find(ts, "w");
    CHECK(t != NULL);
    if (t) {
        long page = sysconf(_SC_PAGESIZE);
        volatile float sum = 0;
        const uint8_t *p = t->data;
        for (int64_t i = 0; i < n * 4; i += page) {
            float v;
            memcpy(&v, p + i, 4);
            sum += v;
        }
        long before = resident_pages();
        strata_tensor_release(t);
        long after = resident_pages();
        long drop = before - after, want = (long)(n * 4 / page) * 3 / 4;
        if (drop < want)
            fprintf(stderr, "release dropped %ld pages of %ld (before %ld)\n", drop,
                    (long)(n * 4 / page), before);
        CHECK(before > 0 && drop >= want);
        /* Released pages fault back in with the file's contents. */
        float v;
        memcpy(&v, p + 4 * (int64_t)123457, 4);
        CHECK(v == (float)(123457 % 1000));
        /* A tensor inside one page is left alone (no whole page). */
        struct strata_tensor small = *t;
        small.data = p + 8;
        small.n_elem = 4;
        strata_tensor_release(&small);
        (void)sum;
    }
    strata_tensors_free(ts);
    remove(path);
}

int main(void)
{
    bool owned;
    char tmp[512];
    if (!check_tmpdir(tmp, sizeof tmp, "tensors", &owned)) return 1;
    snprintf(dir, sizeof dir, "%s/tensors", tmp);
    mkdir(dir, 0755);
    const char *py = getenv("PYTHON");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' tests/mk_tensor_fixtures.py '%s'",
             py && *py ? py : "/usr/bin/python3", dir);
    int gen = system(cmd);
    CHECK(gen == 0);
    if (gen == 0) {
        check_file("st.safetensors");
        check_file("pt.bin");
        check_file("pt_stem.bin");
        check_file("pt64.bin");
        check_sharing("pt.bin");
        check_sharing("pt64.bin");
        const char *st_files[] = {"model-00001-of-00003.safetensors",
                                  "model-00002-of-00003.safetensors",
                                  "model-00003-of-00003.safetensors"};
        check_sharded("sh_safetensors", st_files, 3);
        const char *bin_files[] = {"pytorch_model-00001-of-00002.bin",
                                   "pytorch_model-00002-of-00002.bin"};
        check_sharded("sh_bin", bin_files, 2);
        test_refusals();
        test_damage("st.safetensors");
        test_damage("pt.bin");
        test_damage("pt64.bin");
        test_bf16_python();
    }
    test_widen();
    test_bf16();
    test_writer();
    test_release();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    if (owned) rmdir(tmp);
    return CHECK_DONE("test_tensors");
}
