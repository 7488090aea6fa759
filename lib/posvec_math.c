/* posvec_math.c — the arithmetic of P1's mean-based decomposition of hidden
 * states into positional and semantic parts (Dong et al., "Exploring
 * Context Window of Large Language Models via Decomposed Positional
 * Vectors", NeurIPS 2024; ../shared/docs/PAPERS.md, docs/POSVEC.md).
 *
 * Why sums and not means: p[b,t] is a mean over samples, and a mean of
 * shards is only the mean of the whole when the shards are weighted by their
 * counts. Keeping sum_s h and sum_s |h|^2 in double makes partial results
 * exactly mergeable (up to double rounding, far below float32's) and every
 * statistic here -- p, u, m, the variance explained by position, the RMS
 * norm of the semantic part -- a function of the sums.
 *
 * Dimension legend: Lk boundaries accumulated, T positions, D width,
 * N samples.
 */
#include "internal.h"

#include <lapacke.h>
#include <math.h>
#include <string.h>

int strata_pvsum_init(struct strata_pvsum *acc, int64_t n_layers, int64_t seq_len, int64_t dim)
{
    memset(acc, 0, sizeof *acc);
    if (n_layers <= 0 || seq_len <= 0 || dim <= 0)
        return strata_fail(STRATA_E_ARG, "positional-vector sums: shape (%lld, %lld, %lld) is empty",
                           (long long)n_layers, (long long)seq_len, (long long)dim);
    if (n_layers * seq_len > ((int64_t)1 << 40) / dim)
        return strata_fail(STRATA_E_NOMEM, "positional-vector sums: shape too large");
    acc->n_layers = n_layers;
    acc->seq_len = seq_len;
    acc->dim = dim;
    acc->sum = xcalloc((size_t)(n_layers * seq_len * dim), sizeof(double)); /* (Lk, T, D) */
    acc->sumsq = xcalloc((size_t)(n_layers * seq_len), sizeof(double));     /* (Lk, T) */
    return 0;
}

void strata_pvsum_free(struct strata_pvsum *acc)
{
    if (!acc) return;
    free(acc->sum);
    free(acc->sumsq);
    memset(acc, 0, sizeof *acc);
}

void strata_pvsum_add_layer(struct strata_pvsum *acc, int64_t b, const float *h)
{
    STRATA_ASSERT(b >= 0 && b < acc->n_layers);
    const int64_t T = acc->seq_len, D = acc->dim;
    double *s = acc->sum + b * T * D, *q = acc->sumsq + b * T;
    for (int64_t t = 0; t < T; t++) {
        const float *x = h + t * D;
        double *st = s + t * D, qq = 0;
        for (int64_t i = 0; i < D; i++) {
            st[i] += (double)x[i];
            qq += (double)x[i] * (double)x[i];
        }
        q[t] += qq;
    }
}

void strata_pvsum_count(struct strata_pvsum *acc, int64_t n_samples) { acc->n += n_samples; }

int strata_pvsum_merge(struct strata_pvsum *dst, const struct strata_pvsum *src)
{
    if (dst->n_layers != src->n_layers || dst->seq_len != src->seq_len || dst->dim != src->dim)
        return strata_fail(STRATA_E_SHAPE,
                           "positional-vector sums of shape (%lld, %lld, %lld) and (%lld, %lld, "
                           "%lld) cannot be merged",
                           (long long)dst->n_layers, (long long)dst->seq_len, (long long)dst->dim,
                           (long long)src->n_layers, (long long)src->seq_len, (long long)src->dim);
    const int64_t n = dst->n_layers * dst->seq_len;
    for (int64_t i = 0; i < n * dst->dim; i++) dst->sum[i] += src->sum[i];
    for (int64_t i = 0; i < n; i++) dst->sumsq[i] += src->sumsq[i];
    dst->n += src->n;
    return 0;
}

int strata_pvsum_mean(const struct strata_pvsum *acc, float *p)
{
    if (acc->n <= 0) return strata_fail(STRATA_E_DATA, "positional vectors: no samples summed");
    const int64_t n = acc->n_layers * acc->seq_len * acc->dim;
    const double inv = 1.0 / (double)acc->n;
    for (int64_t i = 0; i < n; i++) p[i] = (float)(acc->sum[i] * inv);
    return 0;
}

int strata_pvsum_stats(const struct strata_pvsum *acc, struct strata_pv_stats *out)
{
    if (acc->n <= 0) return strata_fail(STRATA_E_DATA, "positional vectors: no samples summed");
    const int64_t T = acc->seq_len, D = acc->dim;
    const double inv_n = 1.0 / (double)acc->n;
    double *u = xmalloc((size_t)D * sizeof *u); /* (D) */
    for (int64_t b = 0; b < acc->n_layers; b++) {
        const double *s = acc->sum + b * T * D;
        memset(u, 0, (size_t)D * sizeof *u);
        double msq = 0, pn = 0; /* mean_{s,t} |h|^2, sum_t |p[t]| */
        for (int64_t t = 0; t < T; t++) {
            double pp = 0;
            for (int64_t i = 0; i < D; i++) {
                const double p = s[t * D + i] * inv_n;
                u[i] += p;
                pp += p * p;
            }
            pn += sqrt(pp);
            msq += acc->sumsq[b * T + t] * inv_n;
        }
        msq /= (double)T;
        double uu = 0;
        for (int64_t i = 0; i < D; i++) {
            u[i] /= (double)T;
            uu += u[i] * u[i];
        }
        double vp = 0; /* mean_t |p[t] - u|^2 */
        for (int64_t t = 0; t < T; t++)
            for (int64_t i = 0; i < D; i++) {
                const double d = s[t * D + i] * inv_n - u[i];
                vp += d * d;
            }
        vp /= (double)T;
        struct strata_pv_stats *o = &out[b];
        o->var_total = msq - uu;
        o->var_pos = vp;
        o->frac_pos = o->var_total > 0 ? vp / o->var_total : 0.0;
        o->u_norm = sqrt(uu);
        o->p_norm = pn / (double)T;
        const double c2 = o->var_total - vp;
        o->c_rms = c2 > 0 ? sqrt(c2) : 0.0;
        /* E|p_hat[t] - u|^2 = |p[t] - u|^2 + tr(Cov_t) / N, and c_rms^2 estimates
         * tr(Cov_t) (N-1)/N: subtract the noise the finite sample adds. */
        o->frac_pos_corr = acc->n > 1 && o->var_total > 0
                               ? (vp - c2 / (double)(acc->n - 1)) / o->var_total
                               : (double)NAN;
    }
    free(u);
    return 0;
}

int strata_pv_pca(double *eigval, double *comp, const float *x, int64_t T, int64_t D)
{
    if (T < 1 || D < 1) return strata_fail(STRATA_E_ARG, "PCA of an empty set");
    double *mu = xcalloc((size_t)D, sizeof *mu);                 /* (D) */
    double *cov = xcalloc((size_t)(D * D), sizeof *cov);         /* (D, D) */
    double *xc = xmalloc((size_t)D * sizeof *xc);                /* (D) */
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < D; i++) mu[i] += (double)x[t * D + i];
    for (int64_t i = 0; i < D; i++) mu[i] /= (double)T;
    for (int64_t t = 0; t < T; t++) {
        for (int64_t i = 0; i < D; i++) xc[i] = (double)x[t * D + i] - mu[i];
        for (int64_t i = 0; i < D; i++)
            for (int64_t j = i; j < D; j++) cov[i * D + j] += xc[i] * xc[j];
    }
    for (int64_t i = 0; i < D; i++)
        for (int64_t j = i; j < D; j++) cov[j * D + i] = cov[i * D + j] /= (double)T;
    double *w = xmalloc((size_t)D * sizeof *w); /* (D) ascending */
    /* Row-major upper triangle: eigenvectors come back as the columns. */
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)D, cov,
                                     (lapack_int)D, w);
    int rc = 0;
    if (info != 0) {
        rc = strata_fail(STRATA_E_DATA, "PCA: LAPACKE_dsyevd failed (info %d)", (int)info);
        goto done;
    }
    for (int64_t k = 0; k < D; k++) {
        const int64_t c = D - 1 - k; /* decreasing order */
        eigval[k] = w[c];
        int64_t big = 0;
        for (int64_t i = 0; i < D; i++)
            if (fabs(cov[i * D + c]) > fabs(cov[big * D + c])) big = i;
        const double sgn = cov[big * D + c] < 0 ? -1.0 : 1.0;
        for (int64_t i = 0; i < D; i++) comp[k * D + i] = sgn * cov[i * D + c];
    }
done:
    free(mu);
    free(cov);
    free(xc);
    free(w);
    return rc;
}

double strata_pv_cos(const float *a, const float *b, int64_t n)
{
    double ab = 0, aa = 0, bb = 0;
    for (int64_t i = 0; i < n; i++) {
        ab += (double)a[i] * (double)b[i];
        aa += (double)a[i] * (double)a[i];
        bb += (double)b[i] * (double)b[i];
    }
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0.0;
}

int64_t strata_pv_clusters(int32_t *leader, const float *x, int64_t T, int64_t D,
                           double threshold)
{
    int32_t *leaders = xmalloc((size_t)T * sizeof *leaders); /* (T) at most */
    int64_t n = 0;
    for (int64_t t = 0; t < T; t++) {
        int64_t k = 0;
        while (k < n && strata_pv_cos(x + t * D, x + (int64_t)leaders[k] * D, D) < threshold) k++;
        if (k == n) leaders[n++] = (int32_t)t;
        leader[t] = leaders[k];
    }
    free(leaders);
    return n;
}
