/* bench_batch — short windows one at a time against batched.
 *
 * A probe over windows of T tokens runs one forward pass a window; when T is
 * short, every GEMM has only T rows and runs below the sgemm rate.
 * strata_forward_batch takes S windows at once (S*T rows per GEMM). This
 * times both on the same windows in the same run, so the ratio says where
 * batching pays (docs/SCALING.md).
 *
 * usage: bench_batch MODEL T S [REPS]
 */
#include "cli/cli.h"
#include "bench.h"

#include <stdlib.h>

int main(int argc, char **argv)
{
    cli_init("bench_batch");
    if (argc < 4) cli_usage_die(NULL, "usage: bench_batch MODEL T S [REPS]");
    struct cli_error e;
    int64_t T = 0, S = 0, reps = 3;
    if (cli_parse_int(&T, "T", argv[2], 1, 1 << 16, &e) || cli_parse_int(&S, "S", argv[3], 1, 1 << 12, &e) ||
        (argc > 4 && cli_parse_int(&reps, "REPS", argv[4], 1, 100, &e)))
        cli_usage_die(NULL, "%s", e.msg);
    struct strata_model *m = NULL;
    cli_check(strata_model_load(&m, argv[1]), NULL);
    const struct strata_config *c = strata_model_config(m);
    int32_t *tok = cli_alloc((size_t)(S * T) * sizeof *tok, "tokens"); /* (S, T) */
    uint64_t st = 11;
    for (int64_t i = 0; i < S * T; i++) tok[i] = (int32_t)(strata_rng_next(&st) % (uint64_t)c->vocab_size);
    struct strata_ctx_params p = strata_ctx_default_params();
    p.n_ctx = T;
    p.n_seq_max = S;
    struct strata_ctx *ctx = NULL;
    cli_check(strata_ctx_create(&ctx, m, &p), NULL);
    cli_check(bench_observe_last_block(ctx, c), NULL);
    double one = 1e30, batch = 1e30;
    for (int64_t r = 0; r <= reps; r++) { /* repetition 0 warms up, both kept at their best */
        double t0 = cli_now();
        for (int64_t s = 0; s < S; s++)
            cli_check(strata_forward(ctx, NULL, tok + s * T, T, STRATA_LOGITS_NONE), NULL);
        double t1 = cli_now();
        cli_check(strata_forward_batch(ctx, NULL, tok, S, T, STRATA_LOGITS_NONE), NULL);
        double t2 = cli_now();
        if (r > 0) {
            one = t1 - t0 < one ? t1 - t0 : one;
            batch = t2 - t1 < batch ? t2 - t1 : batch;
        }
    }
    printf("model %s: D=%d L=%d, %lld windows of %lld tokens, best of %lld, %d threads\n", argv[1],
           c->dim, c->n_layer, (long long)S, (long long)T, (long long)reps, strata_ctx_n_threads(ctx));
    printf("  one at a time %8.3f s  batched %8.3f s  speed-up %.2f\n", one, batch, one / batch);
    free(tok);
    strata_ctx_free(ctx);
    strata_model_free(m);
    return 0;
}
