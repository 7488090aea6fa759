/* test_h5io.c — hidden-state dumps (lib/h5io.c) and the half-float
 * conversions they rely on (lib/util.c).
 *
 * Half floats are checked against an independent double-precision reference
 * (nearest representable half, ties to even) on every half bit pattern, on
 * hand-derived cases and on millions of random floats. Dumps are checked for
 * exact round trips, the .partial/complete protocol (including a writer
 * killed by SIGKILL), attribute overwrite, byte-identical output of identical
 * runs, and the failure paths a user can cause, each of which must name the
 * file.
 *
 * Leaves $STRATA_TMP/schema_{f32,f16,split}.h5 and schema_partial.h5.partial
 * behind: tests/test_h5schema.py checks them against docs/FORMAT.md with
 * h5py. Values are the formula value_at(s, l, t, d), tokens token_at(s, t).
 */
#include "check.h"
#include "strata.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hdf5.h>

static char tmp_dir[4096];    /* this run's scratch files, removed at the end */
static char schema_dir[2048]; /* where the schema_* files stay */
static bool own_schema_dir;   /* schema_dir is ours to remove (no STRATA_TMP) */

static const char *tmp_path(const char *name)
{
    static char buf[8][4200];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", tmp_dir, name);
    return p;
}

static void remove_dir(const char *dir)
{
    DIR *dp = opendir(dir);
    if (!dp) return;
    struct dirent *e;
    char p[4400];
    while ((e = readdir(dp))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(dp);
    rmdir(dir);
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static bool same_bytes(const char *a, const char *b)
{
    size_t na = 0, nb = 0;
    unsigned char *x = (unsigned char *)check_slurp(a, &na), *y = (unsigned char *)check_slurp(b, &nb);
    bool same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

/* The failure must carry `status` and a message naming `path`. */
#define CHECK_FAILS(call, status, path)                                          \
    do {                                                                         \
        int rc2_ = (call);                                                       \
        CHECK(rc2_ == (status));                                                 \
        CHECK(strstr(strata_last_error(), (path)) != NULL);                      \
        if (rc2_ != (status) || !strstr(strata_last_error(), (path)))            \
            fprintf(stderr, "  %s -> %d (%s): %s\n", #call, rc2_,                \
                    strata_strerror(rc2_), strata_last_error());                 \
    } while (0)

/* ------------------------------------------------------ half floats */

static double half_value[0x7c01]; /* value of non-negative half h; 0x7c00 -> 2^16 */

/* Decoded independently of lib/: subnormals man * 2^-24, normals
 * (1024 + man) * 2^(exp - 25). 0x7c00 (Inf) gets the value 2^16 the next
 * exponent would have, which makes overflow a plain rounding step. */
static void init_half_values(void)
{
    for (int h = 0; h <= 0x7c00; h++) {
        int e = h >> 10, m = h & 0x3ff;
        half_value[h] = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    }
}

/* Nearest half to x, ties to the even pattern; NaN not handled. */
static uint16_t ref_f32_to_f16(float x)
{
    uint16_t sign = signbit(x) ? 0x8000 : 0;
    double a = fabs((double)x);
    if (isinf(x)) return sign | 0x7c00;
    int lo = 0, hi = 0x7c00; /* largest h with half_value[h] <= a */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (half_value[mid] <= a) lo = mid;
        else hi = mid - 1;
    }
    if (lo == 0x7c00) return sign | 0x7c00;
    double mid = (half_value[lo] + half_value[lo + 1]) / 2; /* exact: both dyadic */
    if (a > mid || (a == mid && (lo & 1))) lo++;
    return (uint16_t)(sign | lo);
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static bool half_is_nan(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff); }

static void test_half(void)
{
    init_half_values();

    /* Every half bit pattern: up exactly, back unchanged (NaN stays NaN of
     * the same sign). */
    int bad_round = 0, bad_value = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = strata_f16_to_f32((uint16_t)h);
        uint16_t back = strata_f32_to_f16(f);
        if (half_is_nan((uint16_t)h)) {
            if (!isnan(f) || !half_is_nan(back) || (back & 0x8000) != (h & 0x8000)) bad_round++;
            continue;
        }
        if (back != h && bad_round++ < 5)
            fprintf(stderr, "  half 0x%04x -> %.9g -> 0x%04x\n", h, (double)f, back);
        uint32_t mag = h & 0x7fff;
        double want = mag == 0x7c00 ? HUGE_VAL : half_value[mag];
        if (h & 0x8000) want = -want;
        if ((double)f != want || (signbit(f) != 0) != ((h & 0x8000) != 0)) bad_value++;
    }
    CHECK(bad_round == 0);
    CHECK(bad_value == 0);

    /* Hand-derived cases. */
    static const struct {
        float x;
        uint16_t h;
    } cases[] = {
        {1.0f, 0x3c00},
        {-2.0f, 0xc000},
        {0.5f, 0x3800},
        {0.0f, 0x0000},
        {-0.0f, 0x8000},
        {65504.0f, 0x7bff},          /* largest half */
        {65519.0f, 0x7bff},          /* below the midpoint to 2^16 */
        {65520.0f, 0x7c00},          /* midpoint, ties to even = Inf */
        {-65520.0f, 0xfc00},
        {0x1p-14f, 0x0400},          /* smallest normal */
        {0x1p-24f, 0x0001},          /* smallest subnormal */
        {0x1p-25f, 0x0000},          /* half of it: ties to even = 0 */
        {0x1.000002p-25f, 0x0001},   /* just above that tie */
        {0x3p-25f, 0x0002},          /* 1.5 * 2^-24: tie between 1 and 2 -> 2 */
        {0x5p-25f, 0x0002},          /* 2.5 * 2^-24: tie between 2 and 3 -> 2 */
        {0x1p-26f, 0x0000},
        {0x1.ffcp-15f, 0x0400},      /* 1023.5 * 2^-24 rounds up into the normals (tie, even) */
        {1.0f + 0x1p-11f, 0x3c00},   /* tie between 0x3c00 and 0x3c01 -> even */
        {1.0f + 0x3p-11f, 0x3c02},   /* tie between 0x3c01 and 0x3c02 -> even */
        {1.0f + 0x1p-11f + 0x1p-23f, 0x3c01}, /* just above the tie */
        {2049.0f, 0x6800},           /* tie between 2048 and 2050 -> 2048 */
        {2051.0f, 0x6802},           /* tie between 2050 and 2052 -> 2052 (0x6802) */
        {3.0e38f, 0x7c00},
        {INFINITY, 0x7c00},
        {-INFINITY, 0xfc00},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t got = strata_f32_to_f16(cases[i].x);
        CHECK(got == cases[i].h);
        CHECK(ref_f32_to_f16(cases[i].x) == cases[i].h); /* the reference agrees with the hand */
        if (got != cases[i].h)
            fprintf(stderr, "  f32_to_f16(%a) = 0x%04x, want 0x%04x\n", (double)cases[i].x, got,
                    cases[i].h);
    }
    CHECK(half_is_nan(strata_f32_to_f16(NAN)));
    CHECK(half_is_nan(strata_f32_to_f16(bits_f32(0x7f800001u)))); /* signalling, tiny payload */
    CHECK(half_is_nan(strata_f32_to_f16(bits_f32(0xffc00000u))));
    CHECK(strata_f32_to_f16(bits_f32(0xffc00000u)) & 0x8000);

    /* Random floats against the reference: all bit patterns, then the
     * range where halves live, where rounding decisions are made. */
    uint64_t rng = 12345;
    int bad = 0;
    long n_cmp = 0;
    for (int i = 0; i < 3000000; i++) {
        uint32_t u = (uint32_t)strata_rng_next(&rng);
        if (i & 1) /* exponent in [2^-27, 2^17): subnormal halves to overflow */
            u = (u & 0x807fffffu) | ((uint32_t)(100 + (u >> 23) % 44) << 23);
        if (i % 8 == 3) u = (u & ~0x1fffu) | 0x1000u; /* exact ties of normal halves */
        float x = bits_f32(u);
        if (isnan(x)) continue;
        uint16_t got = strata_f32_to_f16(x), want = ref_f32_to_f16(x);
        n_cmp++;
        if (got != want && bad++ < 5)
            fprintf(stderr, "  f32_to_f16(%a) = 0x%04x, reference 0x%04x\n", (double)x, got, want);
    }
    CHECK(bad == 0);
    CHECK(n_cmp > 2900000);
}

/* ------------------------------------------------------------ dumps */

static float value_at(int64_t s, int64_t l, int64_t t, int64_t d)
{
    return (float)((s * 131 + l * 31 + t * 7 + d * 3) % 1009 - 504) / 3.0f;
}

static int32_t token_at(int64_t s, int64_t t) { return (int32_t)((s * 37 + t * 11) % 512); }

/* Sample s of the formula: hidden (L1, T, D), tokens (T). */
static void fill_sample(const struct strata_dump_params *p, int64_t s, float *hidden,
                        int32_t *tokens)
{
    size_t i = 0;
    for (int64_t l = 0; l < p->n_layers; l++)
        for (int64_t t = 0; t < p->seq_len; t++)
            for (int64_t d = 0; d < p->dim; d++) hidden[i++] = value_at(s, l, t, d);
    for (int64_t t = 0; t < p->seq_len; t++) tokens[t] = token_at(s, t);
}

static size_t sample_elems(const struct strata_dump_params *p)
{
    return (size_t)(p->n_layers * p->seq_len * p->dim);
}

/* What reading back must give for x stored as dtype. */
static float stored(enum strata_dtype dt, float x)
{
    return dt == STRATA_DT_F16 ? strata_f16_to_f32(strata_f32_to_f16(x)) : x;
}

/* Write samples 0 .. n_write-1 of the formula plus provenance attributes;
 * finish when `finish`, else just free (leaving path.partial). */
static int write_dump(const char *path, const struct strata_dump_params *p, int64_t n_write,
                      bool finish)
{
    struct strata_dump *d = NULL;
    int rc = strata_dump_create(&d, path, p);
    if (rc) return rc;
    float *hidden = malloc(sample_elems(p) * sizeof *hidden);
    int32_t *tokens = malloc((size_t)p->seq_len * sizeof *tokens);
    if ((rc = strata_dump_set_attr_str(d, "strata_version", STRATA_VERSION)) ||
        (rc = strata_dump_set_attr_str(d, "command_line", "test_h5io --write")) ||
        (rc = strata_dump_set_attr_str(d, "model_config", "{\"dim\": 8, \"n_layers\": 4}")) ||
        (rc = strata_dump_set_attr_str(d, "dtype", p->dtype == STRATA_DT_F16 ? "f16" : "f32")) ||
        (rc = strata_dump_set_attr_i64(d, "seed", 42)))
        goto done;
    for (int64_t s = 0; s < n_write; s++) {
        fill_sample(p, s, hidden, tokens);
        if ((rc = strata_dump_write_sample(d, s, hidden, tokens))) goto done;
    }
    if (finish) rc = strata_dump_finish(d);
done:
    strata_dump_free(d);
    free(hidden);
    free(tokens);
    return rc;
}

/* Every written sample reads back as stored(formula), by sample and by layer. */
static void check_contents(const char *path, const struct strata_dump_params *p, int64_t n_complete,
                           bool complete)
{
    struct strata_dump *d = NULL;
    CHECK_OK(strata_dump_open(&d, path));
    if (!d) return;
    struct strata_dump_info in;
    CHECK_OK(strata_dump_info(d, &in));
    CHECK(in.n_samples == p->n_samples && in.n_layers == p->n_layers);
    CHECK(in.seq_len == p->seq_len && in.dim == p->dim && in.dtype == p->dtype);
    CHECK(in.n_complete == n_complete);
    CHECK(in.complete == complete);
    CHECK(!strcmp(strata_dump_path(d), path));
    size_t n = sample_elems(p), per_layer = (size_t)(p->seq_len * p->dim);
    float *want = malloc(n * sizeof *want), *got = malloc(n * sizeof *got);
    int32_t *wtok = malloc((size_t)p->seq_len * 4), *gtok = malloc((size_t)p->seq_len * 4);
    int bad = 0, bad_layer = 0, bad_tok = 0;
    for (int64_t s = 0; s < n_complete; s++) {
        fill_sample(p, s, want, wtok);
        for (size_t i = 0; i < n; i++) want[i] = stored(p->dtype, want[i]);
        CHECK_OK(strata_dump_read_sample(d, s, got, gtok));
        if (memcmp(got, want, n * sizeof *got)) bad++;
        if (memcmp(gtok, wtok, (size_t)p->seq_len * 4)) bad_tok++;
        for (int64_t l = 0; l < p->n_layers; l++) {
            memset(got, 0, per_layer * sizeof *got);
            CHECK_OK(strata_dump_read_layer(d, s, l, got));
            if (memcmp(got, want + (size_t)l * per_layer, per_layer * sizeof *got)) bad_layer++;
        }
        CHECK_OK(strata_dump_read_sample(d, s, NULL, gtok)); /* either output may be NULL */
        CHECK_OK(strata_dump_read_sample(d, s, got, NULL));
    }
    CHECK(bad == 0);
    CHECK(bad_layer == 0);
    CHECK(bad_tok == 0);
    char *v = NULL;
    CHECK_OK(strata_dump_get_attr_str(d, "format", &v));
    CHECK(v && !strcmp(v, "strata-dump/2"));
    free(v);
    int64_t x = -1;
    CHECK_OK(strata_dump_get_attr_i64(d, "n_complete", &x));
    CHECK(x == n_complete);
    CHECK_OK(strata_dump_get_attr_i64(d, "complete", &x));
    CHECK(x == (complete ? 1 : 0));
    CHECK_OK(strata_dump_get_attr_i64(d, "seed", &x));
    CHECK(x == 42);
    free(want);
    free(got);
    free(wtok);
    free(gtok);
    strata_dump_free(d);
}

static void test_round_trips(void)
{
    /* f32 exact; f16 = the half rounding of lib/util.c, special values too. */
    for (int dt = 0; dt < 2; dt++) {
        for (int gz = 0; gz < 2; gz++) {
            struct strata_dump_params p = {.n_samples = 3, .n_layers = 4, .seq_len = 5, .dim = 6, .dtype = dt ? STRATA_DT_F16 : STRATA_DT_F32, .gzip = gz ? 6 : 0};
            const char *path = tmp_path(dt ? (gz ? "rt16z.h5" : "rt16.h5") : (gz ? "rt32z.h5" : "rt32.h5"));
            CHECK_OK(write_dump(path, &p, p.n_samples, true));
            check_contents(path, &p, p.n_samples, true);
        }
    }

    /* Values that matter for halves: NaN, Inf, signed zero, subnormals,
     * overflow, ties. */
    static const float special[] = {NAN, INFINITY, -INFINITY, -0.0f, 0x1p-24f, 0x1p-25f, 0x3p-25f,
                                    65504.0f, 65519.0f, 1.0f + 0x1p-11f, -1e-30f};
    const int n_sp = (int)(sizeof special / sizeof special[0]);
    for (int dt = 0; dt < 2; dt++) {
        struct strata_dump_params p = {.n_samples = 1, .n_layers = 1, .seq_len = 1, .dim = n_sp, .dtype = dt ? STRATA_DT_F16 : STRATA_DT_F32, .gzip = 0};
        const char *path = tmp_path("special.h5");
        struct strata_dump *d = NULL;
        int32_t tok = 7;
        CHECK_OK(strata_dump_create(&d, path, &p));
        CHECK_OK(strata_dump_write_sample(d, 0, special, &tok));
        CHECK_OK(strata_dump_finish(d));
        strata_dump_free(d);
        d = NULL;
        float got[sizeof special / sizeof special[0]];
        int32_t gtok = 0;
        CHECK_OK(strata_dump_open(&d, path));
        CHECK_OK(strata_dump_read_sample(d, 0, got, &gtok));
        CHECK(gtok == 7);
        for (int i = 0; i < n_sp; i++) {
            float want = stored(p.dtype, special[i]);
            CHECK(memcmp(&got[i], &want, 4) == 0);
        }
        strata_dump_free(d);
    }

    /* A finite value beyond half's range is refused, not stored as Inf;
     * Inf itself is stored as Inf. */
    for (int k = 0; k < 2; k++) {
        const float big[2] = {1.0f, k ? 65520.0f : -1e9f};
        struct strata_dump_params p = {.n_samples = 1, .n_layers = 1, .seq_len = 1, .dim = 2, .dtype = STRATA_DT_F16, .gzip = 0};
        const char *path = tmp_path("overflow.h5");
        struct strata_dump *d = NULL;
        int32_t tok = 7;
        CHECK_OK(strata_dump_create(&d, path, &p));
        CHECK(strata_dump_write_sample(d, 0, big, &tok) == STRATA_E_NAN);
        CHECK(strstr(strata_last_error(), "float16") && strstr(strata_last_error(), path));
        strata_dump_free(d);
    }
}

static void test_partial(void)
{
    const char *path = tmp_path("part.h5");
    char partial[4300];
    snprintf(partial, sizeof partial, "%s.partial", path);
    struct strata_dump_params p = {.n_samples = 4, .n_layers = 3, .seq_len = 7, .dim = 5, .dtype = STRATA_DT_F16, .gzip = 0};

    /* free() before finish: a valid .partial, complete = 0, n_complete = 2 */
    CHECK_OK(write_dump(path, &p, 2, false));
    CHECK(!file_exists(path));
    CHECK(file_exists(partial));
    check_contents(partial, &p, 2, false);

    /* reading a sample not yet written is an error naming the file */
    struct strata_dump *d = NULL;
    float *buf = malloc(sample_elems(&p) * sizeof *buf);
    int32_t tok[7];
    CHECK_OK(strata_dump_open(&d, partial));
    CHECK_FAILS(strata_dump_read_sample(d, 2, buf, tok), STRATA_E_ARG, partial);
    CHECK_FAILS(strata_dump_read_sample(d, -1, buf, tok), STRATA_E_ARG, partial);
    CHECK_FAILS(strata_dump_read_layer(d, 1, 3, buf), STRATA_E_ARG, partial);
    CHECK_FAILS(strata_dump_read_layer(d, 5, 0, buf), STRATA_E_ARG, partial);
    strata_dump_free(d);
    d = NULL;

    /* finish renames, and only a full dump can be finished */
    CHECK_OK(strata_dump_create(&d, path, &p));
    fill_sample(&p, 0, buf, tok);
    CHECK_OK(strata_dump_write_sample(d, 0, buf, tok));
    CHECK_FAILS(strata_dump_write_sample(d, 2, buf, tok), STRATA_E_ARG, path); /* out of order */
    CHECK_FAILS(strata_dump_finish(d), STRATA_E_ARG, path);
    for (int64_t s = 1; s < p.n_samples; s++) {
        fill_sample(&p, s, buf, tok);
        CHECK_OK(strata_dump_write_sample(d, s, buf, tok));
    }
    CHECK_FAILS(strata_dump_write_sample(d, 4, buf, tok), STRATA_E_ARG, path); /* full */
    struct strata_dump_info in;
    CHECK_OK(strata_dump_info(d, &in));
    CHECK(in.n_complete == 4 && !in.complete);
    CHECK(file_exists(partial) && !file_exists(path));
    CHECK_OK(strata_dump_finish(d));
    CHECK(!file_exists(partial) && file_exists(path));
    CHECK_OK(strata_dump_info(d, &in));
    CHECK(in.complete);
    CHECK_FAILS(strata_dump_write_sample(d, 0, buf, tok), STRATA_E_ARG, path); /* after finish */
    CHECK_FAILS(strata_dump_finish(d), STRATA_E_ARG, path);
    CHECK_FAILS(strata_dump_set_attr_i64(d, "x", 1), STRATA_E_ARG, path);
    strata_dump_free(d);
    d = NULL;

    /* a directory where the result should go: finish fails, and the
     * .partial it leaves does not say complete */
    const char *dpath = tmp_path("isdir.h5");
    char dpartial[4300];
    snprintf(dpartial, sizeof dpartial, "%s.partial", dpath);
    CHECK_OK(strata_dump_create(&d, dpath, &p));
    for (int64_t s = 0; s < p.n_samples && d; s++) {
        fill_sample(&p, s, buf, tok);
        CHECK_OK(strata_dump_write_sample(d, s, buf, tok));
    }
    CHECK(mkdir(dpath, 0777) == 0);
    CHECK_FAILS(strata_dump_finish(d), STRATA_E_IO, dpath);
    strata_dump_free(d);
    d = NULL;
    CHECK_OK(strata_dump_open(&d, dpartial));
    if (d) {
        CHECK_OK(strata_dump_info(d, &in));
        CHECK(!in.complete && in.n_complete == p.n_samples);
    }
    strata_dump_free(d);
    d = NULL;
    rmdir(dpath);
    remove(dpartial);

    /* a second writer to the same path fails and leaves the first intact */
    const char *twice = tmp_path("twice.h5");
    struct strata_dump *w1 = NULL, *w2 = NULL;
    CHECK_OK(strata_dump_create(&w1, twice, &p));
    for (int64_t s = 0; s < 2 && w1; s++) {
        fill_sample(&p, s, buf, tok);
        CHECK_OK(strata_dump_write_sample(w1, s, buf, tok));
    }
    CHECK_FAILS(strata_dump_create(&w2, twice, &p), STRATA_E_IO, twice); /* its lock, before truncating */
    CHECK(w2 == NULL);
    for (int64_t s = 2; s < p.n_samples && w1; s++) {
        fill_sample(&p, s, buf, tok);
        CHECK_OK(strata_dump_write_sample(w1, s, buf, tok));
    }
    CHECK_OK(strata_dump_set_attr_i64(w1, "seed", 42));
    CHECK_OK(strata_dump_finish(w1));
    strata_dump_free(w1);
    check_contents(twice, &p, p.n_samples, true);

    /* a finished file has complete = 1 and stays so */
    CHECK_OK(strata_dump_open(&d, path));
    CHECK_OK(strata_dump_info(d, &in));
    CHECK(in.complete && in.n_complete == 4);
    strata_dump_free(d);
    d = NULL;

    /* A writer killed mid-run (no free, no atexit) leaves a .partial whose
     * n_complete samples read back: write_sample flushes. */
    const char *kpath = tmp_path("killed.h5");
    char kpartial[4300];
    snprintf(kpartial, sizeof kpartial, "%s.partial", kpath);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        struct strata_dump *w = NULL;
        if (strata_dump_create(&w, kpath, &p) == 0 && strata_dump_set_attr_i64(w, "seed", 42) == 0) {
            for (int64_t s = 0; s < 3; s++) {
                fill_sample(&p, s, buf, tok);
                if (strata_dump_write_sample(w, s, buf, tok)) break;
            }
        }
        kill(getpid(), SIGKILL);
        _exit(1);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    CHECK(file_exists(kpartial));
    check_contents(kpartial, &p, 3, false);
    free(buf);
}

static void test_attrs(void)
{
    const char *path = tmp_path("attrs.h5");
    struct strata_dump_params p = {.n_samples = 1, .n_layers = 2, .seq_len = 3, .dim = 4, .dtype = STRATA_DT_F32, .gzip = 0};
    struct strata_dump *d = NULL;
    CHECK_OK(strata_dump_create(&d, path, &p));
    if (!d) return;

    /* a long string, as a model config or a command line can be */
    size_t big_n = 100000;
    char *big = malloc(big_n + 1);
    for (size_t i = 0; i < big_n; i++) big[i] = (char)('a' + i % 26);
    big[big_n] = '\0';
    const char *utf8 = "s\xc3\xa9parateur \xe2\x9c\x93 \xf0\x9f\x98\x80";

    CHECK_OK(strata_dump_set_attr_str(d, "corpus_path", "/data/a.txt"));
    CHECK_OK(strata_dump_set_attr_str(d, "corpus_path", "/data/b.txt")); /* overwrite */
    CHECK_OK(strata_dump_set_attr_str(d, "separator", utf8));
    CHECK_OK(strata_dump_set_attr_str(d, "empty", ""));
    CHECK_OK(strata_dump_set_attr_str(d, "model_config", big));
    CHECK_OK(strata_dump_set_attr_i64(d, "seed", 1));
    CHECK_OK(strata_dump_set_attr_i64(d, "seed", INT64_MIN)); /* overwrite in place */
    CHECK_OK(strata_dump_set_attr_i64(d, "kind", 5));
    CHECK_OK(strata_dump_set_attr_str(d, "kind", "now a string")); /* type changes */
    CHECK_OK(strata_dump_set_attr_str(d, "count", "a string"));
    CHECK_OK(strata_dump_set_attr_i64(d, "count", INT64_MAX)); /* and back */
    CHECK_FAILS(strata_dump_set_attr_str(d, "format", "x"), STRATA_E_ARG, path);
    CHECK_FAILS(strata_dump_set_attr_i64(d, "n_complete", 9), STRATA_E_ARG, path);
    CHECK_FAILS(strata_dump_set_attr_i64(d, "complete", 1), STRATA_E_ARG, path);
    CHECK(strata_dump_set_attr_str(d, "", "x") == STRATA_E_ARG);

    /* the writer reads its own attributes too */
    char *v = NULL;
    int64_t x = 0;
    CHECK_OK(strata_dump_get_attr_str(d, "corpus_path", &v));
    CHECK(v && !strcmp(v, "/data/b.txt"));
    free(v);
    CHECK_OK(strata_dump_get_attr_i64(d, "seed", &x));
    CHECK(x == INT64_MIN);

    float hidden[2 * 3 * 4] = {0};
    int32_t tok[3] = {1, 2, 3};
    CHECK_OK(strata_dump_write_sample(d, 0, hidden, tok));
    CHECK_OK(strata_dump_finish(d));
    strata_dump_free(d);
    d = NULL;

    CHECK_OK(strata_dump_open(&d, path));
    if (!d) {
        free(big);
        return;
    }
    v = NULL;
    CHECK_OK(strata_dump_get_attr_str(d, "corpus_path", &v));
    CHECK(v && !strcmp(v, "/data/b.txt"));
    free(v);
    v = NULL;
    CHECK_OK(strata_dump_get_attr_str(d, "separator", &v));
    CHECK(v && !strcmp(v, utf8));
    free(v);
    v = NULL;
    CHECK_OK(strata_dump_get_attr_str(d, "empty", &v));
    CHECK(v && !strcmp(v, ""));
    free(v);
    v = NULL;
    CHECK_OK(strata_dump_get_attr_str(d, "model_config", &v));
    CHECK(v && !strcmp(v, big));
    free(v);
    v = NULL;
    CHECK_OK(strata_dump_get_attr_str(d, "kind", &v));
    CHECK(v && !strcmp(v, "now a string"));
    free(v);
    v = NULL;
    CHECK_OK(strata_dump_get_attr_i64(d, "seed", &x));
    CHECK(x == INT64_MIN);
    CHECK_OK(strata_dump_get_attr_i64(d, "count", &x));
    CHECK(x == INT64_MAX);
    CHECK_FAILS(strata_dump_get_attr_str(d, "nope", &v), STRATA_E_FORMAT, path);
    CHECK(strstr(strata_last_error(), "nope") != NULL);
    CHECK_FAILS(strata_dump_get_attr_str(d, "seed", &v), STRATA_E_FORMAT, path);
    CHECK_FAILS(strata_dump_get_attr_i64(d, "kind", &x), STRATA_E_FORMAT, path);
    CHECK(v == NULL);
    strata_dump_free(d);
    free(big);
}

/* A reader never writes: the file's bytes are the same after opening,
 * reading and refused write attempts. */
static void test_reader_read_only(void)
{
    const char *path = tmp_path("ro.h5");
    struct strata_dump_params p = {.n_samples = 2, .n_layers = 2, .seq_len = 3, .dim = 4, .dtype = STRATA_DT_F16, .gzip = 0};
    CHECK_OK(write_dump(path, &p, 2, true));
    size_t n0 = 0;
    unsigned char *before = (unsigned char *)check_slurp(path, &n0);
    struct strata_dump *d = NULL;
    CHECK_OK(strata_dump_open(&d, path));
    float hidden[2 * 3 * 4];
    int32_t tok[3];
    CHECK_OK(strata_dump_read_sample(d, 1, hidden, tok));
    CHECK_FAILS(strata_dump_set_attr_str(d, "a", "b"), STRATA_E_ARG, path);
    CHECK_FAILS(strata_dump_set_attr_i64(d, "a", 1), STRATA_E_ARG, path);
    CHECK_FAILS(strata_dump_write_sample(d, 2, hidden, tok), STRATA_E_ARG, path);
    CHECK_FAILS(strata_dump_finish(d), STRATA_E_ARG, path);
    strata_dump_free(d);
    size_t n1 = 0;
    unsigned char *after = (unsigned char *)check_slurp(path, &n1);
    CHECK(before && after && n0 == n1 && memcmp(before, after, n0) == 0);
    free(before);
    free(after);
}

static void test_identical_runs(void)
{
    /* L1 = 6 boundaries of 256 KiB: chunks of 4, so edge chunks are partial */
    struct strata_dump_params p = {.n_samples = 2, .n_layers = 6, .seq_len = 64, .dim = 1024, .dtype = STRATA_DT_F32, .gzip = 0};
    const char *a = tmp_path("same_a.h5"), *b = tmp_path("same_b.h5");
    CHECK_OK(write_dump(a, &p, 2, true));
    CHECK_OK(write_dump(b, &p, 2, true));
    CHECK(same_bytes(a, b));
    /* bytes can agree by luck when both runs fall in the same second: ask
     * HDF5 directly that no object carries a time stamp */
    hid_t file = H5Fopen(a, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(file >= 0);
    static const char *const objs[] = {".", "hidden", "tokens"};
    for (int i = 0; i < 3; i++) {
        H5O_info_t oi;
        memset(&oi, 0xff, sizeof oi);
        CHECK(H5Oget_info_by_name2(file, objs[i], &oi, H5O_INFO_TIME, H5P_DEFAULT) >= 0);
        CHECK(oi.atime == 0 && oi.mtime == 0 && oi.ctime == 0 && oi.btime == 0);
    }
    H5Fclose(file);
    struct strata_dump_params q = {.n_samples = 3, .n_layers = 5, .seq_len = 40, .dim = 24, .dtype = STRATA_DT_F16, .gzip = 5};
    CHECK_OK(write_dump(a, &q, 2, false)); /* partial ones too */
    char pa[4300], pb[4300];
    snprintf(pa, sizeof pa, "%s.partial", a);
    snprintf(pb, sizeof pb, "%s.partial", b);
    CHECK_OK(write_dump(b, &q, 2, false));
    CHECK(same_bytes(pa, pb));
}

/* A small HDF5 file shaped like a dump but broken in one way. */
struct fake {
    const char *format;     /* NULL: no `format` attribute */
    int hidden_rank;        /* 0: no /hidden */
    hid_t hidden_type;
    hsize_t tokens_dims[2]; /* {0, 0}: no /tokens */
    int64_t n_complete, complete;
};

static void make_fake(const char *path, const struct fake *f)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t scalar = H5Screate(H5S_SCALAR);
    if (f->format) {
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, H5T_VARIABLE);
        hid_t a = H5Acreate2(file, "format", t, scalar, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, t, &f->format);
        H5Aclose(a);
        H5Tclose(t);
    }
    hid_t a = H5Acreate2(file, "n_complete", H5T_STD_I64LE, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, &f->n_complete);
    H5Aclose(a);
    a = H5Acreate2(file, "complete", H5T_STD_I64LE, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, &f->complete);
    H5Aclose(a);
    H5Sclose(scalar);
    if (f->hidden_rank) {
        hsize_t dims[5] = {2, 3, 4, 5, 6};
        hid_t s = H5Screate_simple(f->hidden_rank, dims, NULL);
        hid_t ds = H5Dcreate2(file, "hidden", f->hidden_type, s, H5P_DEFAULT, H5P_DEFAULT,
                              H5P_DEFAULT);
        H5Dclose(ds);
        H5Sclose(s);
    }
    if (f->tokens_dims[0]) {
        hid_t s = H5Screate_simple(2, f->tokens_dims, NULL);
        hid_t ds = H5Dcreate2(file, "tokens", H5T_STD_I32LE, s, H5P_DEFAULT, H5P_DEFAULT,
                              H5P_DEFAULT);
        H5Dclose(ds);
        H5Sclose(s);
    }
    H5Fclose(file);
}

static void test_errors(void)
{
    struct strata_dump *d = NULL;
    const char *path;

    path = tmp_path("missing.h5");
    CHECK_FAILS(strata_dump_open(&d, path), STRATA_E_IO, path);
    CHECK(d == NULL);

    path = tmp_path("text.h5");
    FILE *f = fopen(path, "w");
    fputs("this is not an HDF5 file\n", f);
    fclose(f);
    CHECK_FAILS(strata_dump_open(&d, path), STRATA_E_FORMAT, path);
    CHECK(strstr(strata_last_error(), "not an HDF5 file") != NULL);

    /* the first half of a real dump */
    const char *whole = tmp_path("whole.h5");
    struct strata_dump_params p = {.n_samples = 4, .n_layers = 3, .seq_len = 32, .dim = 64, .dtype = STRATA_DT_F32, .gzip = 0};
    CHECK_OK(write_dump(whole, &p, 4, true));
    size_t n = 0;
    unsigned char *bytes = (unsigned char *)check_slurp(whole, &n);
    path = tmp_path("truncated.h5");
    f = fopen(path, "wb");
    fwrite(bytes, 1, n / 2, f);
    fclose(f);
    free(bytes);
    CHECK_FAILS(strata_dump_open(&d, path), STRATA_E_FORMAT, path);
    CHECK(strstr(strata_last_error(), "truncated") != NULL);

    /* valid HDF5, broken as a dump (strata-dump/1 layout: still read) */
    static const struct {
        const char *name;
        struct fake f;
        int status;
        const char *says; /* the field the message must name */
    } broken[] = {
        {"no_tokens.h5", {"strata-dump/1", 4, 0, {0, 0}, 0, 0}, STRATA_E_FORMAT, "/tokens"},
        {"no_hidden.h5", {"strata-dump/1", 0, 0, {2, 4}, 0, 0}, STRATA_E_FORMAT, "/hidden"},
        {"no_format.h5", {NULL, 4, 0, {2, 4}, 0, 0}, STRATA_E_FORMAT, "format"},
        {"bad_format.h5", {"strata-dump/9", 4, 0, {2, 4}, 0, 0}, STRATA_E_FORMAT, "strata-dump/9"},
        {"rank3.h5", {"strata-dump/1", 3, 0, {2, 4}, 0, 0}, STRATA_E_SHAPE, "rank 3"},
        {"tok_shape.h5", {"strata-dump/1", 4, 0, {2, 5}, 0, 0}, STRATA_E_SHAPE, "/tokens"},
        {"f64.h5", {"strata-dump/1", 4, 1, {2, 4}, 0, 0}, STRATA_E_FORMAT, "float of 8 bytes"},
        {"i32.h5", {"strata-dump/1", 4, 2, {2, 4}, 0, 0}, STRATA_E_FORMAT, "integer of 4 bytes"},
        {"n_complete.h5", {"strata-dump/1", 4, 0, {2, 4}, 3, 0}, STRATA_E_FORMAT, "n_complete"},
        {"complete.h5", {"strata-dump/1", 4, 0, {2, 4}, 1, 1}, STRATA_E_FORMAT, "complete"},
    };
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        struct fake fk = broken[i].f;
        /* the table holds a type index, for a static initializer */
        hid_t types[3] = {H5T_IEEE_F32LE, H5T_IEEE_F64LE, H5T_STD_I32LE};
        fk.hidden_type = types[broken[i].f.hidden_type];
        path = tmp_path(broken[i].name);
        make_fake(path, &fk);
        CHECK_FAILS(strata_dump_open(&d, path), broken[i].status, path);
        CHECK(strstr(strata_last_error(), broken[i].says) != NULL);
        if (!strstr(strata_last_error(), broken[i].says))
            fprintf(stderr, "  %s: message lacks \"%s\": %s\n", broken[i].name, broken[i].says,
                    strata_last_error());
        CHECK(d == NULL);
    }
    /* the same fake, unbroken, opens: the checks above are not vacuous */
    struct fake good = {"strata-dump/1", 4, H5T_IEEE_F32LE, {2, 4}, 2, 1};
    path = tmp_path("good_fake.h5");
    make_fake(path, &good);
    CHECK_OK(strata_dump_open(&d, path));
    strata_dump_free(d);
    d = NULL;

    /* create where it cannot */
    path = tmp_path("no_such_dir/out.h5");
    CHECK_FAILS(strata_dump_create(&d, path, &p), STRATA_E_IO, path);
    CHECK(strstr(strata_last_error(), "check that the directory exists and is writable") != NULL);
    CHECK(d == NULL);

    /* bad parameters */
    path = tmp_path("bad.h5");
    struct strata_dump_params bad = p;
    bad.dim = 0;
    CHECK_FAILS(strata_dump_create(&d, path, &bad), STRATA_E_ARG, path);
    bad = p;
    bad.gzip = 10;
    CHECK_FAILS(strata_dump_create(&d, path, &bad), STRATA_E_ARG, path);
    bad = p;
    bad.dtype = STRATA_DT_BF16; /* a dump holds F32 or F16 */
    CHECK_FAILS(strata_dump_create(&d, path, &bad), STRATA_E_ARG, "dtype BF16");
    bad = p;
    bad.n_samples = INT64_MAX / 2;
    CHECK_FAILS(strata_dump_create(&d, path, &bad), STRATA_E_SHAPE, path);
    CHECK(d == NULL);
    strata_dump_free(NULL);
}

/* The files tests/test_h5schema.py inspects with h5py. */
static void write_schema_files(void)
{
    char path[4300];
    /* f32: boundaries of 256 KiB, 4 to a chunk (the last chunk partial) */
    struct strata_dump_params p32 = {.n_samples = 2, .n_layers = 6, .seq_len = 64, .dim = 1024, .dtype = STRATA_DT_F32, .gzip = 0};
    snprintf(path, sizeof path, "%s/schema_f32.h5", schema_dir);
    CHECK_OK(write_dump(path, &p32, p32.n_samples, true));
    check_contents(path, &p32, p32.n_samples, true);
    /* f16, tiny: one chunk holds every boundary */
    struct strata_dump_params p16 = {.n_samples = 3, .n_layers = 5, .seq_len = 16, .dim = 8, .dtype = STRATA_DT_F16, .gzip = 0};
    snprintf(path, sizeof path, "%s/schema_f16.h5", schema_dir);
    CHECK_OK(write_dump(path, &p16, p16.n_samples, true));
    /* f16 + gzip, boundaries of 4.1 MiB: T is split into 5 chunks */
    struct strata_dump_params ps = {.n_samples = 2, .n_layers = 2, .seq_len = 2100, .dim = 1024, .dtype = STRATA_DT_F16, .gzip = 1};
    snprintf(path, sizeof path, "%s/schema_split.h5", schema_dir);
    CHECK_OK(write_dump(path, &ps, ps.n_samples, true));
    check_contents(path, &ps, ps.n_samples, true);
    /* unfinished: 1 of 3 samples */
    snprintf(path, sizeof path, "%s/schema_partial.h5", schema_dir);
    CHECK_OK(write_dump(path, &p16, 1, false));
}

static int make_dirs(void)
{
    const char *env = getenv("STRATA_TMP");
    if (env && env[0]) {
        snprintf(schema_dir, sizeof schema_dir, "%s", env);
        snprintf(tmp_dir, sizeof tmp_dir, "%s/h5io.XXXXXX", env);
    } else {
        const char *t = getenv("TMPDIR");
        snprintf(schema_dir, sizeof schema_dir, "%s/strata-h5io.XXXXXX", t && t[0] ? t : "/tmp");
        if (!mkdtemp(schema_dir)) return -1;
        own_schema_dir = true;
        snprintf(tmp_dir, sizeof tmp_dir, "%s/work.XXXXXX", schema_dir);
    }
    return mkdtemp(tmp_dir) ? 0 : -1;
}

/* ------------------------------------------------------ result files */

/* A result file written by strata_h5_*: whole datasets of each type, a
 * scalar, datasets filled by rows out of order (one with rows of 5 MiB, so
 * its rows are cut into chunks), groups from "/" in names, attributes on the
 * root and on a dataset. Values are formulas, so reads check exactly. */
static int write_result(const char *path, bool finish)
{
    struct strata_h5 *f = NULL;
    int rc = strata_h5_create(&f, path);
    if (rc) return rc;
    float a[3][4];
    double b[5];
    int32_t c[2][3][2];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) a[i][j] = (float)(i * 10 + j) + 0.25f;
    for (int i = 0; i < 5; i++) b[i] = 1.0 / (i + 1);
    for (int i = 0; i < 12; i++) (&c[0][0][0])[i] = -6 + i;
    const int64_t sa[2] = {3, 4}, sb[1] = {5}, sc[3] = {2, 3, 2};
    const double pi = 3.14159;
    const int64_t big[2] = {3, 5 << 18}; /* rows of 5 MiB f32 */
    const int64_t small[3] = {7, 3, 2};
    float *row = malloc((size_t)big[1] * sizeof *row);
    if ((rc = strata_h5_write(f, "a", STRATA_DT_F32, 2, sa, a)) ||
        (rc = strata_h5_write(f, "/grp/sub/b", STRATA_DT_F64, 1, sb, b)) ||
        (rc = strata_h5_write(f, "grp/c", STRATA_DT_I32, 3, sc, c)) ||
        (rc = strata_h5_write(f, "scalar", STRATA_DT_F64, 0, NULL, &pi)) ||
        (rc = strata_h5_create_dataset(f, "rows/big", STRATA_DT_F32, 2, big)) ||
        (rc = strata_h5_create_dataset(f, "rows/small", STRATA_DT_F64, 3, small)))
        goto done;
    for (int r = 2; r >= 0 && !rc; r--) { /* last row first */
        for (int64_t j = 0; j < big[1]; j++) row[j] = (float)(r * 1000003 + j);
        rc = strata_h5_write_rows(f, "rows/big", r, 1, row);
    }
    double sm[7][3][2];
    for (int i = 0; i < 42; i++) (&sm[0][0][0])[i] = i * 0.5;
    if (rc || (rc = strata_h5_write_rows(f, "rows/small", 4, 3, sm[4])) ||
        (rc = strata_h5_write_rows(f, "rows/small", 0, 4, sm[0])))
        goto done;
    if ((rc = strata_h5_set_attr_str(f, "/", "program", "test_h5io")) ||
        (rc = strata_h5_set_attr_i64(f, "/", "n", 42)) ||
        (rc = strata_h5_set_attr_i64(f, "/", "n", 43)) || /* replaced */
        (rc = strata_h5_set_attr_f64(f, "grp/c", "scale", 0.125)) ||
        (rc = strata_h5_set_attr_str(f, "rows/big", "unit", "nats")))
        goto done;
    if (finish) rc = strata_h5_finish(f);
done:
    free(row);
    strata_h5_free(f);
    return rc;
}

static void test_result_files(void)
{
    const char *path = tmp_path("result.h5");
    char partial[4300];
    snprintf(partial, sizeof partial, "%s.partial", path);
    CHECK_OK(write_result(path, true));
    CHECK(file_exists(path) && !file_exists(partial));

    struct strata_h5 *f = NULL;
    CHECK_OK(strata_h5_open(&f, path));
    if (!f) return;
    int nd = -1;
    int64_t sh[STRATA_H5_MAX_DIMS];
    CHECK_OK(strata_h5_shape(f, "a", &nd, sh));
    CHECK(nd == 2 && sh[0] == 3 && sh[1] == 4);
    CHECK_OK(strata_h5_shape(f, "/grp/c", &nd, sh));
    CHECK(nd == 3 && sh[0] == 2 && sh[1] == 3 && sh[2] == 2);
    CHECK_OK(strata_h5_shape(f, "scalar", &nd, sh));
    CHECK(nd == 0);
    float a[12];
    CHECK_OK(strata_h5_read(f, "a", STRATA_DT_F32, a));
    int bad = 0;
    for (int i = 0; i < 12; i++) bad += a[i] != (float)((i / 4) * 10 + i % 4) + 0.25f;
    double b[5], c[12], pi = 0;
    CHECK_OK(strata_h5_read(f, "grp/sub/b", STRATA_DT_F64, b));
    for (int i = 0; i < 5; i++) bad += b[i] != 1.0 / (i + 1);
    CHECK_OK(strata_h5_read(f, "grp/c", STRATA_DT_F64, c)); /* int32 converted to double */
    for (int i = 0; i < 12; i++) bad += c[i] != -6.0 + i;
    CHECK_OK(strata_h5_read(f, "scalar", STRATA_DT_F64, &pi));
    bad += pi != 3.14159;
    int32_t ci[2 * 3 * 2];
    CHECK_OK(strata_h5_read_rows(f, "grp/c", STRATA_DT_I32, 1, 1, ci));
    for (int i = 0; i < 6; i++) bad += ci[i] != i;
    const int64_t W = 5 << 18;
    float *row = malloc((size_t)W * sizeof *row);
    for (int r = 0; r < 3; r++) {
        CHECK_OK(strata_h5_read_rows(f, "rows/big", STRATA_DT_F32, r, 1, row));
        for (int64_t j = 0; j < W; j++) bad += row[j] != (float)(r * 1000003 + j);
    }
    free(row);
    double sm[7 * 6];
    CHECK_OK(strata_h5_read(f, "rows/small", STRATA_DT_F64, sm));
    for (int i = 0; i < 42; i++) bad += sm[i] != i * 0.5;
    CHECK(bad == 0);
    char *s = NULL;
    int64_t n = 0;
    double x = 0;
    CHECK_OK(strata_h5_get_attr_str(f, "/", "program", &s));
    CHECK(s && !strcmp(s, "test_h5io"));
    free(s);
    CHECK_OK(strata_h5_get_attr_i64(f, "/", "n", &n));
    CHECK(n == 43);
    CHECK_OK(strata_h5_get_attr_f64(f, "/", "n", &x)); /* integers read as double too */
    CHECK(x == 43.0);
    CHECK_OK(strata_h5_get_attr_f64(f, "/grp/c", "scale", &x));
    CHECK(x == 0.125);
    CHECK_OK(strata_h5_get_attr_str(f, "rows/big", "unit", &s));
    CHECK(s && !strcmp(s, "nats"));
    free(s);

    /* Failures a caller can cause name the file and the dataset. */
    CHECK_FAILS(strata_h5_shape(f, "nope", &nd, sh), STRATA_E_FORMAT, path);
    CHECK(strstr(strata_last_error(), "/nope") != NULL);
    CHECK_FAILS(strata_h5_read(f, "grp/nope", STRATA_DT_F32, a), STRATA_E_FORMAT, path);
    CHECK(strstr(strata_last_error(), "grp/nope") != NULL);
    CHECK_FAILS(strata_h5_read_rows(f, "rows/small", STRATA_DT_F64, 5, 3, sm), STRATA_E_ARG, path);
    CHECK(strstr(strata_last_error(), "rows/small") != NULL);
    CHECK_FAILS(strata_h5_get_attr_i64(f, "/", "missing", &n), STRATA_E_FORMAT, path);
    CHECK_FAILS(strata_h5_get_attr_i64(f, "/", "program", &n), STRATA_E_FORMAT, path);
    CHECK_FAILS(strata_h5_write_rows(f, "rows/small", 0, 1, sm), STRATA_E_ARG, path);
    CHECK_FAILS(strata_h5_set_attr_i64(f, "/", "n", 1), STRATA_E_ARG, path);
    strata_h5_free(f);

    /* Identical inputs, identical bytes. */
    const char *path2 = tmp_path("result2.h5");
    CHECK_OK(write_result(path2, true));
    CHECK(same_bytes(path, path2));

    /* A writer freed unfinished leaves a readable path.partial, no path. */
    const char *path3 = tmp_path("result3.h5");
    char partial3[4300];
    snprintf(partial3, sizeof partial3, "%s.partial", path3);
    CHECK_OK(write_result(path3, false));
    CHECK(!file_exists(path3) && file_exists(partial3));
    CHECK_OK(strata_h5_open(&f, partial3));
    CHECK_OK(strata_h5_shape(f, "rows/big", &nd, sh));
    CHECK(nd == 2 && sh[0] == 3);
    strata_h5_free(f);

    /* Writer-side mistakes. */
    CHECK_OK(strata_h5_create(&f, path3));
    const int64_t s2[2] = {2, 2}, s0[2] = {0, 2};
    float v[4] = {1, 2, 3, 4};
    CHECK_OK(strata_h5_write(f, "v", STRATA_DT_F32, 2, s2, v));
    CHECK_FAILS(strata_h5_write(f, "v", STRATA_DT_F32, 2, s2, v), STRATA_E_ARG, path3);
    CHECK(strstr(strata_last_error(), "/v") != NULL);
    CHECK_FAILS(strata_h5_create_dataset(f, "z", STRATA_DT_F32, 2, s0), STRATA_E_ARG, path3);
    CHECK_FAILS(strata_h5_write_rows(f, "v", 1, 2, v), STRATA_E_ARG, path3);
    CHECK_FAILS(strata_h5_set_attr_i64(f, "absent", "x", 1), STRATA_E_FORMAT, path3);
    CHECK_OK(strata_h5_finish(f));
    CHECK_FAILS(strata_h5_write(f, "w", STRATA_DT_F32, 2, s2, v), STRATA_E_ARG, path3);
    strata_h5_free(f);
    CHECK_FAILS(strata_h5_open(&f, tmp_path("absent.h5")), STRATA_E_IO, "absent.h5");
    CHECK(f == NULL);
    CHECK_FAILS(strata_h5_create(&f, "/nonexistent-dir/x.h5"), STRATA_E_IO, "/nonexistent-dir/x.h5");

    /* Result files hold F32, F64, I32 and I64 (int64 exactly, beyond
     * double's 2^53); F16 and BF16 are refused with the dtype named. */
    const char *path4 = tmp_path("result4.h5");
    const int64_t s3[1] = {3};
    int64_t i64[3] = {-1, ((int64_t)1 << 62) + 1, INT64_MAX}, back[3] = {0};
    uint16_t h3[3] = {0};
    CHECK_OK(strata_h5_create(&f, path4));
    CHECK_OK(strata_h5_write(f, "i64", STRATA_DT_I64, 1, s3, i64));
    CHECK_FAILS(strata_h5_write(f, "h", STRATA_DT_F16, 1, s3, h3), STRATA_E_ARG, "dtype F16");
    CHECK_FAILS(strata_h5_create_dataset(f, "b", STRATA_DT_BF16, 1, s3), STRATA_E_ARG,
                "dtype BF16");
    CHECK_OK(strata_h5_finish(f));
    strata_h5_free(f);
    CHECK_OK(strata_h5_open(&f, path4));
    CHECK_OK(strata_h5_read(f, "i64", STRATA_DT_I64, back));
    CHECK(back[0] == i64[0] && back[1] == i64[1] && back[2] == i64[2]);
    CHECK_FAILS(strata_h5_read(f, "i64", STRATA_DT_F16, h3), STRATA_E_ARG, "dtype F16");
    CHECK_FAILS(strata_h5_read_rows(f, "i64", STRATA_DT_BF16, 0, 1, h3), STRATA_E_ARG,
                "dtype BF16");
    strata_h5_free(f);
}

int main(void)
{
    if (make_dirs() != 0) {
        fprintf(stderr, "test_h5io: cannot make a temporary directory: %s\n", strerror(errno));
        return 1;
    }
    test_half();
    test_round_trips();
    test_partial();
    test_attrs();
    test_reader_read_only();
    test_identical_runs();
    test_errors();
    test_result_files();
    write_schema_files();
    remove_dir(tmp_dir);
    if (own_schema_dir) remove_dir(schema_dir);
    return CHECK_DONE("test_h5io");
}
