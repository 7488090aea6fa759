/* test_vecmath.c — the vectorized exp, softmax and SwiGLU against double
 * precision: exp within 2 ulp on its normal range (Cephes' bound), the
 * documented edges (0 below FLT_MIN, Inf above 88.376, NaN kept), softmax and
 * SwiGLU within 32 and 8 float epsilons of the double computation (softmax sums n rounded terms). */
#include "check.h"
#include "internal.h"

#include <float.h>
#include <string.h>

/* Distance in units in the last place of `want` (as float). */
static double ulps(float got, double want)
{
    float w = (float)want;
    double ulp = (double)nextafterf(fabsf(w), INFINITY) - (double)fabsf(w);
    return fabs((double)got - want) / ulp;
}

int main(void)
{
    enum { N = 200003 }; /* odd: exercises the scalar tail */
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    double worst = 0;
    for (int i = 0; i < N; i++) x[i] = -87.3f + (88.3f + 87.3f) * (float)i / (float)(N - 1);
    memcpy(y, x, N * sizeof *x);
    strata_vexp(y, N);
    for (int i = 0; i < N; i++) {
        double u = ulps(y[i], exp((double)x[i]));
        if (!(u <= worst)) worst = u;
    }
    printf("exp: max error %.2f ulp over [-87.3, 88.3]\n", worst);
    CHECK(worst <= 2.0);

    float edge[9] = {NAN, -INFINITY, INFINITY, -100.0f, 89.0f, 0.0f, -0.0f, 1.0f, -1.0f};
    strata_vexp(edge, 9);
    CHECK(isnan(edge[0]));
    CHECK(edge[1] == 0.0f && edge[3] == 0.0f);
    CHECK(isinf(edge[2]) && isinf(edge[4]));
    CHECK(edge[5] == 1.0f && edge[6] == 1.0f);
    CHECK(ulps(edge[7], exp(1.0)) <= 2 && ulps(edge[8], exp(-1.0)) <= 2);
    float ten[10] = {NAN, 0, 0, 0, 0, 0, 0, 0, 0, NAN}; /* NaN in both lanes and tail */
    strata_vexp(ten, 10);
    CHECK(isnan(ten[0]) && isnan(ten[9]) && ten[1] == 1.0f);

    /* softmax over rows of many lengths vs double */
    uint64_t st = 3;
    double worst_sm = 0;
    for (int n = 1; n <= 300; n += 7) {
        float r[300];
        double d[300], mx = -(double)INFINITY, sum = 0;
        for (int i = 0; i < n; i++) {
            r[i] = (float)((double)(strata_rng_next(&st) % 20000) / 1000.0 - 10.0);
            d[i] = (double)r[i];
            if (d[i] > mx) mx = d[i];
        }
        for (int i = 0; i < n; i++) sum += (d[i] = exp(d[i] - mx));
        strata_softmax(r, n);
        for (int i = 0; i < n; i++) {
            double e = fabs((double)r[i] - d[i] / sum) / (d[i] / sum);
            if (e > worst_sm) worst_sm = e;
        }
    }
    printf("softmax: max relative error %.3g\n", worst_sm);
    CHECK(worst_sm < 32.0 * (double)FLT_EPSILON);
    CHECK(strata_vmax(x, N) == x[N - 1]);
    CHECK(isinf(strata_vmax(x, 0)));

    /* SwiGLU vs double */
    double worst_sw = 0;
    for (int i = 0; i < 1003; i++) {
        x[i] = -30.0f + 60.0f * (float)i / 1002.0f;
        y[i] = 0.5f + (float)(i % 5);
    }
    float *g = malloc(1003 * sizeof *g);
    memcpy(g, x, 1003 * sizeof *g);
    strata_swiglu(g, y, 1003);
    for (int i = 0; i < 1003; i++) {
        double want = (double)x[i] / (1.0 + exp(-(double)x[i])) * (double)y[i];
        double e = fabs((double)g[i] - want) / (fabs(want) + 1e-30);
        if (e > worst_sw) worst_sw = e;
    }
    printf("swiglu: max relative error %.3g\n", worst_sw);
    CHECK(worst_sw < 8.0 * (double)FLT_EPSILON);
    free(g);
    free(x);
    free(y);
    return CHECK_DONE("test_vecmath");
}
