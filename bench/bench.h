/* bench.h — what the benchmarks share. */
#ifndef STRATA_BENCH_H
#define STRATA_BENCH_H

#include "strata.h"

/* A pass without logits stops after the last block an observer wants, so a
 * benchmark asks for the last block's output (and does nothing with it):
 * every block runs. Add to ctx, whose model's config c must outlive it. */
static bool bench_last_wants(void *user, int32_t layer, enum strata_site site)
{
    const struct strata_config *c = user;
    return layer == c->n_layer - 1 && site == STRATA_SITE_RESID_POST;
}

static int bench_last_observe(void *user, const struct strata_view *v)
{
    (void)user, (void)v;
    return 0;
}

static inline int bench_observe_last_block(struct strata_ctx *ctx, const struct strata_config *c)
{
    struct strata_observer last = {bench_last_wants, bench_last_observe, (void *)c};
    return strata_ctx_add_observer(ctx, &last);
}

#endif
