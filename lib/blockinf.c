/* blockinf.c — the arithmetic of Block Influence and its variants (P3:
 * ShortGPT, Men et al. 2024, ../shared/docs/PAPERS.md; docs/BLOCKINF.md):
 * per-token scores of a block from the residual stream around it, the
 * seeded bootstrap over samples, rankings, quantiles and Kendall's tau.
 * strata-blockinf (analyzers/blockinf.c) streams dumps through these.
 *
 * Legend: L blocks, N samples, D width, B bootstrap replicates.
 *
 * Why double: cos(X_l, X_{l+1}) of a late block is 0.99..0.9999, so BI is
 * a small difference of numbers near 1; float32 dot products over D = 4096
 * would leave BI with two correct digits. */
#include "internal.h"

#include <math.h>
#include <string.h>

static const char *const metric_names[STRATA_BI_COUNT] = {"bi", "angular", "relmag", "bi-attn",
                                                           "bi-mlp"};

const char *strata_bi_metric_name(enum strata_bi_metric m)
{
    return (unsigned)m < STRATA_BI_COUNT ? metric_names[m] : "?";
}

int strata_bi_metric_parse(const char *s, enum strata_bi_metric *out)
{
    for (int i = 0; i < STRATA_BI_COUNT; i++)
        if (!strcmp(s, metric_names[i])) {
            *out = (enum strata_bi_metric)i;
            return 0;
        }
    return strata_fail(STRATA_E_ARG,
                       "unknown metric '%s' (expected bi, angular, relmag, bi-attn or bi-mlp)", s);
}

/* cos(u, v) with u = u1 + u2 + u3 and v = v1 + v2 + v3 (terms may be NULL),
 * each sum formed in double. Returns NaN when a norm is 0 or a value is not
 * finite. */
static double cos_sum(const float *u1, const float *u2, const float *u3, const float *v1,
                      const float *v2, const float *v3, int64_t D)
{
    double uv = 0, uu = 0, vv = 0;
    for (int64_t i = 0; i < D; i++) {
        double u = (double)u1[i] + (u2 ? (double)u2[i] : 0.0) + (u3 ? (double)u3[i] : 0.0);
        double v = (double)v1[i] + (v2 ? (double)v2[i] : 0.0) + (v3 ? (double)v3[i] : 0.0);
        uv += u * v;
        uu += u * u;
        vv += v * v;
    }
    if (!isfinite(uv) || !isfinite(uu) || !isfinite(vv) || uu == 0 || vv == 0) return (double)NAN;
    double c = uv / sqrt(uu * vv);
    return c > 1 ? 1 : c < -1 ? -1 : c; /* rounding may step outside [-1, 1]; acos needs it inside */
}

int strata_bi_token(double *out, enum strata_bi_metric m, const float *x, const float *y,
                    const float *attn, const float *mlp, int64_t D)
{
    double v = (double)NAN;
    switch (m) {
    case STRATA_BI_BI:
        STRATA_ASSERT(x && y);
        v = 1.0 - cos_sum(x, NULL, NULL, y, NULL, NULL, D);
        break;
    case STRATA_BI_ANGULAR:
        STRATA_ASSERT(x && y);
        v = acos(cos_sum(x, NULL, NULL, y, NULL, NULL, D)) / 3.14159265358979323846;
        break;
    case STRATA_BI_ATTN:
        STRATA_ASSERT(x && attn);
        v = 1.0 - cos_sum(x, NULL, NULL, x, attn, NULL, D);
        break;
    case STRATA_BI_MLP:
        STRATA_ASSERT(x && attn && mlp);
        v = 1.0 - cos_sum(x, attn, NULL, x, attn, mlp, D);
        break;
    case STRATA_BI_RELMAG: {
        STRATA_ASSERT(x && attn && mlp);
        double ff = 0, yy = 0;
        for (int64_t i = 0; i < D; i++) {
            double f = (double)attn[i] + (double)mlp[i];
            double s = (double)x[i] + f;
            ff += f * f;
            yy += s * s;
        }
        v = isfinite(ff) && isfinite(yy) && yy > 0 ? sqrt(ff / yy) : (double)NAN;
        break;
    }
    default:
        return strata_fail(STRATA_E_ARG, "metric %d out of range", (int)m);
    }
    *out = v;
    if (!isfinite(v))
        return strata_fail(STRATA_E_NAN, "%s undefined: a zero or non-finite hidden state",
                           strata_bi_metric_name(m));
    return 0;
}

int strata_bi_bootstrap(double *reps, const double *values, int64_t N, int64_t L, int64_t B,
                        uint64_t seed)
{
    if (N < 1 || L < 1 || B < 0)
        return strata_fail(STRATA_E_ARG, "bootstrap of %lld samples x %lld blocks, %lld replicates",
                           (long long)N, (long long)L, (long long)B);
    uint64_t state = seed;
    for (int64_t b = 0; b < B; b++) {
        double *r = reps + b * L; /* (L) */
        for (int64_t l = 0; l < L; l++) r[l] = 0;
        for (int64_t i = 0; i < N; i++) {
            const double *v = values + (int64_t)(strata_rng_next(&state) % (uint64_t)N) * L;
            for (int64_t l = 0; l < L; l++) r[l] += v[l];
        }
        for (int64_t l = 0; l < L; l++) r[l] /= (double)N;
    }
    return 0;
}

int64_t strata_bi_order(int64_t *order, int64_t *rank, const double *score, int64_t L)
{
    int64_t n = 0;
    for (int64_t l = 0; l < L; l++) {
        if (rank) rank[l] = 0;
        if (isfinite(score[l])) order[n++] = l;
    }
    for (int64_t i = 1; i < n; i++) /* insertion sort: stable (ties keep the lower block first), L is small */
        for (int64_t j = i; j > 0 && score[order[j]] < score[order[j - 1]]; j--) {
            int64_t t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    if (rank)
        for (int64_t r = 0; r < n; r++) rank[order[r]] = r + 1;
    return n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double strata_bi_quantile(double *x, int64_t n, double q)
{
    if (n < 1) return (double)NAN;
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    double h = q * (double)(n - 1);
    int64_t i = (int64_t)floor(h);
    if (i < 0) return x[0];
    if (i >= n - 1) return x[n - 1];
    return x[i] + (h - (double)i) * (x[i + 1] - x[i]);
}

double strata_bi_kendall(const int64_t *ra, const int64_t *rb, int64_t L)
{
    int64_t conc = 0, disc = 0;
    for (int64_t i = 0; i < L; i++) {
        if (!ra[i] || !rb[i]) continue;
        for (int64_t j = i + 1; j < L; j++) {
            if (!ra[j] || !rb[j]) continue;
            int64_t s = (ra[i] - ra[j]) * (rb[i] - rb[j]);
            conc += s > 0;
            disc += s < 0;
        }
    }
    return conc + disc ? (double)(conc - disc) / (double)(conc + disc) : (double)NAN;
}
