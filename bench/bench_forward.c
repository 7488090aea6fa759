/* bench_forward — forward-pass throughput against the machine's own sgemm.
 *
 * Nearly all of a transformer's arithmetic is its projections, so the honest
 * yardstick for a CPU forward pass is the time the same GEMMs take as bare
 * cblas_sgemm calls on the same weights, measured in the same run. The
 * ratio sgemm_time / forward_time is the fraction of the sgemm rate the
 * forward pass reaches (1.0 = no overhead at all). The bare calls run on
 * OpenBLAS' own threads, as many as the context's workers: the context
 * splits each GEMM over its workers with OpenBLAS single-threaded, so the
 * baseline is the library's best multi-threaded GEMM on the same cores.
 *
 * For weights stored as bf16/f16 the forward pass widens each block while it
 * runs; the bare-sgemm baseline gets block 0 widened once, ahead of time,
 * and reuses it for every block (all blocks have one shape), so the ratio
 * also shows what widening costs. Peak resident memory is printed because a
 * model in bf16 must run in about its stored size.
 *
 * usage: bench_forward MODEL T [REPS]
 */
#include "cli/cli.h"
#include "bench.h"
#include "model.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* The least of the repetitions: noise on a shared machine only adds time. */
static double least(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++) m = v[i] < m ? v[i] : m;
    return m;
}

int main(int argc, char **argv)
{
    cli_init("bench_forward");
    if (argc < 3) cli_die(NULL, "usage: bench_forward MODEL.bin T [REPS]");
    const int64_t T = cli_int("T", argv[2], 1, 1 << 20);
    const int reps = argc > 3 ? (int)cli_int("REPS", argv[3], 1, 100) : 3;
    struct strata_model *m = NULL;
    cli_check(strata_model_load(&m, argv[1]), NULL);
    const struct strata_config *c = strata_model_config(m);
    const int64_t D = c->dim, F = c->hidden_dim, L = c->n_layer, Hd = (int64_t)c->n_head * c->head_dim;
    const int64_t kvd = (int64_t)c->n_kv_head * c->head_dim;

    int32_t *tok = malloc((size_t)T * sizeof *tok); /* (T) */
    uint64_t st = 7;
    for (int64_t t = 0; t < T; t++) tok[t] = (int32_t)(strata_rng_next(&st) % (uint64_t)c->vocab_size);
    struct strata_ctx_params p = strata_ctx_default_params();
    p.n_ctx = T;
    struct strata_ctx *ctx = NULL;
    cli_check(strata_ctx_create(&ctx, m, &p), NULL);
    cli_check(bench_observe_last_block(ctx, c), NULL);

    /* The same projections, bare: per block q, k, v, o, gate, up, down. */
    float *x = calloc((size_t)(T * (F > D ? F : D)), sizeof(float)); /* (T, max(D,F)) input */
    float *y = calloc((size_t)(T * (F > D ? F : D)), sizeof(float)); /* (T, max(D,F)) output */
    for (int64_t i = 0; i < T * D; i++) x[i] = 0.01f * (float)(i % 97);
    double t_fwd[101] = {0}, t_gemm[101] = {0};
    /* Baseline weights: in place if every block is float32 in place, else
     * block 0 widened once. */
    bool all_direct = true;
    for (int64_t l = 0; l < L; l++) {
        const struct strata_w *ws = strata_block_ws(&m->blocks[l]);
        for (int k = 0; k < STRATA_BLOCK_N_W; k++) all_direct &= strata_w_direct(&ws[k]);
    }
    float *wide[7] = {0};
    {
        const struct strata_block_w *w0 = &m->blocks[0];
        const struct strata_w *src[7] = {&w0->wq, &w0->wk, &w0->wv, &w0->wo, &w0->w1, &w0->w3, &w0->w2};
        for (int k = 0; k < 7 && !all_direct; k++) {
            wide[k] = malloc((size_t)src[k]->n * sizeof(float));
            strata_widen(wide[k], src[k]->data, src[k]->dtype, src[k]->n);
        }
    }
    /* Repetition 0 warms pages and caches for both and is not counted. */
    const int nt = strata_ctx_n_threads(ctx);
    for (int r = 0; r <= reps; r++) {
        openblas_set_num_threads(1); /* as strata_ctx_create left it */
        double t0 = cli_now();
        cli_check(strata_forward(ctx, NULL, tok, T, STRATA_LOGITS_NONE), NULL);
        t_fwd[r] = cli_now() - t0;
        openblas_set_num_threads(nt);
        t0 = cli_now();
        for (int64_t l = 0; l < L; l++) {
            const struct strata_block_w *w = &m->blocks[all_direct ? l : 0];
            const float *ws[7] = {wide[0], wide[1], wide[2], wide[3], wide[4], wide[5], wide[6]};
            if (all_direct) {
                const struct strata_w *src[7] = {&w->wq, &w->wk, &w->wv, &w->wo, &w->w1, &w->w3, &w->w2};
                for (int k = 0; k < 7; k++) ws[k] = src[k]->data;
            }
            const int64_t no[7] = {Hd, kvd, kvd, D, F, F, D}, ni[7] = {D, D, D, Hd, D, D, F};
            for (int k = 0; k < 7; k++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)no[k], (int)ni[k],
                            1.0f, x, (int)ni[k], ws[k], (int)ni[k], 0.0f, y, (int)no[k]);
        }
        t_gemm[r] = cli_now() - t0;
    }
    const double tf = least(t_fwd + 1, reps), tg = least(t_gemm + 1, reps);
    const double flops = 2.0 * (double)T * (double)L * (double)(D * Hd * 2 + 2 * D * kvd + 3 * D * F);
    openblas_set_num_threads(1);
    printf("model %s: D=%lld F=%lld L=%lld H=%d G=%d, T=%lld, best of %d, %d threads\n", argv[1],
           (long long)D, (long long)F, (long long)L, c->n_head, c->n_kv_head, (long long)T, reps, nt);
    printf("  sgemm alone   %8.3f s  %7.1f GFLOP/s\n", tg, flops / tg * 1e-9);
    printf("  strata forward%8.3f s  %7.1f GFLOP/s (projections)  %9.0f tokens/s  %.3f s/layer\n", tf,
           flops / tf * 1e-9, (double)T / tf, tf / (double)L);
    printf("  fraction of sgemm rate reached: %.3f\n", tg / tf);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("  peak resident memory: %.2f GiB (weights stored as %s)\n",
           (double)ru.ru_maxrss / (1024.0 * 1024.0), strata_dtype_name(m->blocks[0].wq.dtype));
    for (int k = 0; k < 7; k++) free(wide[k]);
    free(x);
    free(y);
    free(tok);
    strata_ctx_free(ctx);
    strata_model_free(m);
    return 0;
}
