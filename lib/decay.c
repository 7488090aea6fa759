/* decay.c — RoPE's long-term decay (P2, "Base of RoPE bounds context
 * length", Men et al. 2024; ../shared/docs/PAPERS.md):
 *   B(m) = sum_{i<n} cos(m theta_i),  theta_i = base^(-2i/d),  n = d/2,
 * the upper bound U(m) = sum_{k=1}^{n} |sum_{l<k} e^{i m theta_l}|, and the
 * paper's lower bound on the base for a context length L (first grid base
 * with B(m) >= 0 for all m < L), and the power-law fit of its Figure 1.
 *
 * Why not cos() per term: the paper's table (d = 128, L up to 10^6, 630 grid
 * bases) needs ~10^8 values of B, each a sum of 64 cosines. Here m is taken
 * in blocks of K = 256: at the block start m0 the anchors
 * (cos, sin)(m0 theta_i) are evaluated directly, and inside the block
 *   e^{i (m0+j) theta_i} = e^{i m0 theta_i} * e^{i j theta_i},
 * with the second factor from a table made once per frequency set (also by
 * direct evaluation). Every term is thus two correctly rounded factors and
 * one complex product: no error accumulates along m (unlike a rotation
 * recurrence), and the loop over j vectorizes.
 *
 * Accuracy (double mode), against exact arithmetic on the double theta_i:
 * angles m*theta_i are formed exactly (product plus its fma remainder e,
 * cos(p + e) = cos p - e sin p; e^2 < 1e-20), each factor is within 1 ulp,
 * so each term is within ~4 * 2^-53 and the sum of n terms within
 * (n^2/2 + 4n) 2^-53 (2.4e-13 for n = 64); tests/test_decay.c measures it
 * against long double direct summation. A sign decision B(m) < 0 is
 * therefore certain when |B(m)| exceeds that; strata_decay_bound reports
 * the margins (min_b, prev_b) so a reader can see that they do.
 *
 * Float32 modes emulate a PyTorch float32 evaluation: STRATA_DECAY_F32
 * takes theta_f = 1 / powf(base, 2i/d) (the inv_freq of Hugging Face
 * models), STRATA_DECAY_F32_PAPER theta_f = powf(base, fl32(-2i/d)) (the
 * paper's own code, its Appendix E: base ** (-2 * d / dim) on a float32
 * arange); then a = fl32(float(m) * theta_f), cos(a) rounded to float32,
 * summed in float32 in order i (PyTorch reduces the 64 terms in another
 * order; the two sums differ by a few float32 ulps, which can move a sign
 * decision only where |B(m)| < ~1e-5). Here cos(a) =
 * cos(m theta_i + delta) with delta = a - m theta_i computed exactly, by a
 * rotation of the accurate (cos, sin)(m theta_i) through delta (Taylor to
 * delta^5; |delta| < 0.1 for m < 2^24 gives error < 3e-11), then rounded:
 * equal to a correctly rounded cosf(a) except within ~1e-10 of a rounding
 * boundary.
 *
 * Legend: n = d/2 frequencies, K block length, m relative distance.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

#define K 256 /* distances per block */

void strata_decay_grid(double *bases)
{
    int k = 0;
    double scale = 100.0; /* 10^(x-1): (i + j/10) 10^x = (10 i + j) 10^(x-1), exact */
    for (int x = 3; x <= 9; x++, scale *= 10.0)
        for (int i = 1; i <= 9; i++)
            for (int j = 0; j <= 9; j++) bases[k++] = (double)(10 * i + j) * scale;
    STRATA_ASSERT(k == STRATA_DECAY_GRID_N);
}

/* ------------------------------------------------------------ kernel */

/* A frequency set ready for blocks: tables (n, K) of cos/sin(j theta_i),
 * and for float32 mode theta_f (n). */
struct decay_set {
    int32_t n;
    const double *theta; /* (n), borrowed */
    double *wc, *ws;     /* (n, K) */
    float *theta_f;      /* (n) or NULL: double mode */
    double sum_theta;    /* sum of theta (float32 mode's error bound) */
    double *c, *s;       /* (n, K) scratch: per-term cos/sin of a block */
};

/* (cos, sin) of the exact product m * t. */
static void sincos_exact(double *c, double *s, double m, double t)
{
    double p = m * t, e = fma(m, t, -p);
    double cp = cos(p), sp = sin(p);
    *c = cp - e * sp;
    *s = sp + e * cp;
}

static void set_init(struct decay_set *ds, const double *theta, int32_t n, const float *theta_f)
{
    STRATA_ASSERT(n >= 1);
    ds->n = n;
    ds->theta = theta;
    ds->wc = xmalloc((size_t)n * K * sizeof(double));
    ds->ws = xmalloc((size_t)n * K * sizeof(double));
    ds->c = xmalloc((size_t)n * K * sizeof(double));
    ds->s = xmalloc((size_t)n * K * sizeof(double));
    ds->theta_f = NULL;
    ds->sum_theta = 0.0;
    for (int32_t i = 0; i < n; i++) ds->sum_theta += theta[i];
    if (theta_f) {
        ds->theta_f = xmalloc((size_t)n * sizeof(float));
        memcpy(ds->theta_f, theta_f, (size_t)n * sizeof(float));
    }
    for (int32_t i = 0; i < n; i++)
        for (int j = 0; j < K; j++)
            sincos_exact(&ds->wc[(size_t)i * K + j], &ds->ws[(size_t)i * K + j], (double)j,
                         theta[i]);
}

static void set_free(struct decay_set *ds)
{
    free(ds->wc);
    free(ds->ws);
    free(ds->c);
    free(ds->s);
    free(ds->theta_f);
}

/* Per-term cos/sin((m0 + j) theta_i) into ds->c, ds->s (n, K) for j < K. */
static void block_terms(struct decay_set *ds, int64_t m0)
{
    for (int32_t i = 0; i < ds->n; i++) {
        double ca, sa;
        sincos_exact(&ca, &sa, (double)m0, ds->theta[i]);
        const double *restrict wc = ds->wc + (size_t)i * K, *restrict ws = ds->ws + (size_t)i * K;
        double *restrict c = ds->c + (size_t)i * K, *restrict s = ds->s + (size_t)i * K;
        for (int j = 0; j < K; j++) {
            c[j] = ca * wc[j] - sa * ws[j];
            s[j] = sa * wc[j] + ca * ws[j];
        }
    }
}

/* B(m0 + j), j < K, into out (K), in double. */
static void block_eval_f64(const struct decay_set *ds, int64_t m0, double *out)
{
    const int32_t n = ds->n;
    {
        double acc[K];
        for (int j = 0; j < K; j++) acc[j] = 0.0;
        for (int32_t i = 0; i < n; i++) {
            double ca, sa;
            sincos_exact(&ca, &sa, (double)m0, ds->theta[i]);
            const double *wc = ds->wc + (size_t)i * K, *ws = ds->ws + (size_t)i * K;
            for (int j = 0; j < K; j++) acc[j] += ca * wc[j] - sa * ws[j];
        }
        memcpy(out, acc, sizeof acc);
    }
}

/* The same in float32 mode (exact emulation, see the banner). */
static void block_eval_f32(struct decay_set *ds, int64_t m0, double *out)
{
    const int32_t n = ds->n;
    block_terms(ds, m0);
    float acc[K];
    for (int j = 0; j < K; j++) acc[j] = 0.0f;
    for (int32_t i = 0; i < n; i++) {
        const double *restrict c = ds->c + (size_t)i * K, *restrict s = ds->s + (size_t)i * K;
        const double t = ds->theta[i];
        const float tf = ds->theta_f[i];
        for (int j = 0; j < K; j++) {
            const double m = (double)(m0 + j);
            const float a = (float)(m0 + j) * tf; /* fl32: the paper's angle */
            const double p = m * t, pe = fma(m, t, -p);
            const double dl = ((double)a - p) - pe; /* a - m theta_i, exact to ~1e-26 */
            const double d2 = dl * dl;
            const double cd = 1.0 - d2 * (0.5 - d2 * (1.0 / 24.0 - d2 / 720.0));
            const double sd = dl * (1.0 - d2 * (1.0 / 6.0 - d2 / 120.0));
            acc[j] += (float)(c[j] * cd - s[j] * sd);
        }
    }
    for (int j = 0; j < K; j++) out[j] = (double)acc[j];
}

/* B(m0 + j), j < K, into out (K), in the set's precision. Float32 mode
 * first evaluates in double with the same (float) frequencies and keeps
 * that block when its signs are certain: per term |cos a - cos(m theta)| <=
 * |a - m theta| <= 2^-24 m theta (the float product's rounding), cos(a)'s
 * rounding <= 2^-25, and the float sum's n additions <= 2^-25 (k+1) each;
 * if every |B(m)| in the block exceeds that total and none is negative,
 * the float32 values are positive too (the values kept are then the double
 * ones, which differ from float32 by less than the bound). */
static void block_eval(struct decay_set *ds, int64_t m0, double *out)
{
    block_eval_f64(ds, m0, out);
    if (!ds->theta_f) return;
    const double n = (double)ds->n, u = 5.9604644775390625e-08; /* 2^-24 */
    const double delta = u * (double)(m0 + K) * ds->sum_theta + 0.5 * u * n +
                         0.5 * u * n * (n + 1.0) / 2.0 + 1e-9;
    for (int j = 0; j < K; j++)
        if (!(out[j] > delta)) {
            block_eval_f32(ds, m0, out);
            return;
        }
}

static bool is_f32(enum strata_decay_prec prec)
{
    return prec == STRATA_DECAY_F32 || prec == STRATA_DECAY_F32_PAPER;
}

/* Frequencies of a pure base in the given precision: theta (n) in double
 * and, for the float32 modes, theta_f (n) = the float32 frequencies, with
 * theta = their exact double values (so the "m theta_i" of the kernel is
 * the float frequency's). */
static void base_freqs(double *theta, float *theta_f, double base, int32_t d,
                       enum strata_decay_prec prec)
{
    const int32_t n = d / 2;
    for (int32_t i = 0; i < n; i++) {
        if (prec == STRATA_DECAY_F32) {
            float e = (float)(2 * i) / (float)d;
            float p = powf((float)base, e);
            theta_f[i] = 1.0f / p;
            theta[i] = (double)theta_f[i];
        } else if (prec == STRATA_DECAY_F32_PAPER) {
            /* torch: d = arange(0, dim/2) in float32, base ** (-2 * d / dim):
             * each step rounded to float32, the Python float base too */
            float e = (-2.0f * (float)i) / (float)d;
            theta_f[i] = powf((float)base, e);
            theta[i] = (double)theta_f[i];
        } else {
            theta[i] = pow(base, -2.0 * (double)i / (double)d);
        }
    }
}

static void eval_set(struct decay_set *ds, double *out, int64_t m0, int64_t cnt)
{
    double buf[K];
    int64_t done = 0;
    while (done < cnt) {
        int64_t take = cnt - done < K ? cnt - done : K;
        if (ds->theta_f) block_eval_f32(ds, m0 + done, buf); /* exact float32 values */
        else block_eval_f64(ds, m0 + done, buf);
        memcpy(out + done, buf, (size_t)take * sizeof(double));
        done += take;
    }
}

static int64_t first_neg_set(struct decay_set *ds, int64_t limit, double *value)
{
    double buf[K];
    for (int64_t m0 = 0; m0 < limit; m0 += K) {
        block_eval(ds, m0, buf);
        int64_t take = limit - m0 < K ? limit - m0 : K;
        for (int64_t j = 0; j < take; j++)
            if (buf[j] < 0.0) {
                if (value) *value = buf[j];
                return m0 + j;
            }
    }
    if (value) *value = 0.0;
    return limit;
}

/* ------------------------------------------------------------ public */

void strata_decay_eval(double *out, const double *theta, int32_t n_freq, int64_t m0, int64_t n)
{
    STRATA_ASSERT(m0 >= 0 && n >= 0 && m0 + n <= ((int64_t)1 << 40));
    struct decay_set ds;
    set_init(&ds, theta, n_freq, NULL);
    eval_set(&ds, out, m0, n);
    set_free(&ds);
}

void strata_decay_eval_base(double *out, double base, int32_t d, enum strata_decay_prec prec,
                            int64_t m0, int64_t n)
{
    STRATA_ASSERT(d >= 2 && d % 2 == 0 && base > 1.0);
    STRATA_ASSERT(!is_f32(prec) || m0 + n <= ((int64_t)1 << 24));
    double *theta = xmalloc((size_t)(d / 2) * sizeof(double));
    float *theta_f = xmalloc((size_t)(d / 2) * sizeof(float));
    base_freqs(theta, theta_f, base, d, prec);
    struct decay_set ds;
    set_init(&ds, theta, d / 2, is_f32(prec) ? theta_f : NULL);
    eval_set(&ds, out, m0, n);
    set_free(&ds);
    free(theta);
    free(theta_f);
}

void strata_decay_upper(double *out, const double *theta, int32_t n_freq, int64_t m0, int64_t n)
{
    STRATA_ASSERT(m0 >= 0 && n >= 0 && m0 + n <= ((int64_t)1 << 40));
    struct decay_set ds;
    set_init(&ds, theta, n_freq, NULL);
    double re[K], im[K], acc[K];
    for (int64_t done = 0; done < n; done += K) {
        block_terms(&ds, m0 + done);
        for (int j = 0; j < K; j++) re[j] = im[j] = acc[j] = 0.0;
        for (int32_t i = 0; i < n_freq; i++) {
            const double *c = ds.c + (size_t)i * K, *s = ds.s + (size_t)i * K;
            for (int j = 0; j < K; j++) {
                re[j] += c[j];
                im[j] += s[j];
                acc[j] += sqrt(re[j] * re[j] + im[j] * im[j]);
            }
        }
        int64_t take = n - done < K ? n - done : K;
        memcpy(out + done, acc, (size_t)take * sizeof(double));
    }
    set_free(&ds);
}

int64_t strata_decay_first_neg(const double *theta, int32_t n_freq, int64_t limit, double *value)
{
    STRATA_ASSERT(limit >= 0 && limit <= ((int64_t)1 << 40));
    struct decay_set ds;
    set_init(&ds, theta, n_freq, NULL);
    int64_t m = first_neg_set(&ds, limit, value);
    set_free(&ds);
    return m;
}

int64_t strata_decay_first_neg_base(double base, int32_t d, enum strata_decay_prec prec,
                                    int64_t limit, double *value)
{
    STRATA_ASSERT(d >= 2 && d % 2 == 0 && base > 1.0 && limit >= 0);
    STRATA_ASSERT(!is_f32(prec) || limit <= ((int64_t)1 << 24));
    double *theta = xmalloc((size_t)(d / 2) * sizeof(double));
    float *theta_f = xmalloc((size_t)(d / 2) * sizeof(float));
    base_freqs(theta, theta_f, base, d, prec);
    struct decay_set ds;
    set_init(&ds, theta, d / 2, is_f32(prec) ? theta_f : NULL);
    int64_t m = first_neg_set(&ds, limit, value);
    set_free(&ds);
    free(theta);
    free(theta_f);
    return m;
}

/* min B(m) over m < L for a base. */
static double min_b_base(double base, int32_t d, enum strata_decay_prec prec, int64_t L)
{
    const int64_t chunk = (int64_t)1 << 16;
    double *b = xmalloc((size_t)chunk * sizeof(double)); /* (chunk) */
    double mn = (double)INFINITY;
    for (int64_t m0 = 0; m0 < L; m0 += chunk) {
        int64_t n = L - m0 < chunk ? L - m0 : chunk;
        strata_decay_eval_base(b, base, d, prec, m0, n);
        for (int64_t m = 0; m < n; m++) mn = b[m] < mn ? b[m] : mn;
    }
    free(b);
    return mn;
}

int strata_decay_bound(struct strata_decay_bound *out, int32_t d, const int64_t *lengths,
                       int32_t n_len, enum strata_decay_prec prec)
{
    if (d < 2 || d % 2 || d > 4096)
        return strata_fail(STRATA_E_ARG, "head width %d must be even, from 2 to 4096", (int)d);
    if (n_len < 1) return strata_fail(STRATA_E_ARG, "no context lengths given");
    for (int32_t k = 0; k < n_len; k++) {
        const int64_t lim = is_f32(prec) ? (int64_t)1 << 24 : (int64_t)1 << 40;
        if (lengths[k] < 1 || lengths[k] > lim)
            return strata_fail(STRATA_E_ARG, "context length %lld must be from 1 to %lld%s",
                               (long long)lengths[k], (long long)lim,
                               is_f32(prec) ? " in float32 mode" : "");
    }
    double grid[STRATA_DECAY_GRID_N];
    int64_t fneg[STRATA_DECAY_GRID_N];
    double fval[STRATA_DECAY_GRID_N];
    strata_decay_grid(grid);
    for (int32_t k = 0; k < n_len; k++) {
        out[k] = (struct strata_decay_bound){.length = lengths[k]};
    }
    int32_t left = n_len;
    for (int g = 0; g < STRATA_DECAY_GRID_N && left > 0; g++) {
        /* Lengths met by an earlier base are settled; this base only needs
         * to be scanned as far as the longest open length. */
        int64_t lim = 0;
        for (int32_t k = 0; k < n_len; k++)
            if (out[k].base == 0.0 && lengths[k] > lim) lim = lengths[k];
        fneg[g] = strata_decay_first_neg_base(grid[g], d, prec, lim, &fval[g]);
        for (int32_t k = 0; k < n_len; k++) {
            if (out[k].base != 0.0 || fneg[g] < lengths[k]) continue;
            out[k].base = grid[g];
            if (g > 0) {
                out[k].prev_base = grid[g - 1];
                out[k].prev_first_neg = fneg[g - 1];
                out[k].prev_b = fval[g - 1];
            }
            left--;
        }
    }
    for (int32_t k = 0; k < n_len; k++)
        if (out[k].base > 0.0) out[k].min_b = min_b_base(out[k].base, d, prec, lengths[k]);
    return 0;
}

int64_t strata_decay_paper_length(int64_t length)
{
    if (length > 0 && length % 1000000 == 0) return length / 1000000 * ((int64_t)1 << 20);
    if (length > 0 && length % 1000 == 0) return length / 1000 * 1024;
    return length;
}

int strata_decay_power_fit(double *a, double *k, double *max_resid, const double *x,
                           const double *y, int32_t n)
{
    *a = *k = *max_resid = (double)NAN;
    /* centred sums: ln L spans ~7 around ~11, so the plain normal equations
     * would lose digits to cancellation */
    double mx = 0, my = 0;
    int32_t cnt = 0;
    for (int32_t i = 0; i < n; i++)
        if (x[i] > 0 && y[i] > 0) mx += log(x[i]), my += log(y[i]), cnt++;
    if (cnt < 2)
        return strata_fail(STRATA_E_ARG, "a power-law fit needs two points with x, y > 0 (%d given)",
                           (int)cnt);
    mx /= cnt, my /= cnt;
    double sxx = 0, sxy = 0;
    for (int32_t i = 0; i < n; i++)
        if (x[i] > 0 && y[i] > 0) {
            const double u = log(x[i]) - mx;
            sxx += u * u, sxy += u * (log(y[i]) - my);
        }
    if (!(sxx > 0)) return strata_fail(STRATA_E_ARG, "a power-law fit needs two distinct x");
    *k = sxy / sxx;
    *a = exp(my - *k * mx);
    double r = 0;
    for (int32_t i = 0; i < n; i++)
        if (x[i] > 0 && y[i] > 0) {
            const double e = fabs(log(y[i]) - log(*a) - *k * log(x[i]));
            r = e > r ? e : r;
        }
    *max_resid = r;
    return 0;
}
