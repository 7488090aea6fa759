/* rope.c — how positions enter attention: the position schemes and their
 * names, RoPE frequencies with Hugging Face's rope_scaling variants
 * (docs/CHECKPOINTS.md), ALiBi slopes. The runtime (forward.c) builds its
 * tables from these; strata-decay (P2) evaluates the same frequencies.
 *
 * Legend: d head width, n = d/2 frequencies, H heads, P positions.
 */
#include "model.h"

#include <math.h>
#include <string.h>

static const char *pos_names[] = {"none", "rope-interleaved", "rope-half", "alibi"};
static const char *scaling_names[] = {"none", "linear", "dynamic", "yarn", "llama3", "ntk"};

const char *strata_pos_name(enum strata_pos pos)
{
    if (pos == STRATA_POS_MODEL) return "model";
    return (unsigned)pos <= STRATA_POS_ALIBI ? pos_names[pos] : "?";
}

const char *strata_rope_scaling_name(enum strata_rope_scaling type)
{
    if (type == STRATA_SCALING_MODEL) return "model";
    return (unsigned)type <= STRATA_SCALING_NTK ? scaling_names[type] : "?";
}

int strata_pos_parse(const char *s, enum strata_pos current, enum strata_pos *out)
{
    if (!strcmp(s, "rope")) {
        *out = current == STRATA_POS_ROPE_INTERLEAVED ? current : STRATA_POS_ROPE_HALF;
        return 0;
    }
    for (int p = 0; p <= STRATA_POS_ALIBI; p++) {
        if (!strcmp(s, pos_names[p])) {
            *out = (enum strata_pos)p;
            return 0;
        }
    }
    return strata_fail(STRATA_E_ARG,
                       "position scheme '%s' is unknown (rope, rope-half, rope-interleaved, "
                       "alibi, none)",
                       s);
}

int strata_rope_scaling_parse(const char *s, int64_t original_max,
                              struct strata_rope_scaling_params *out)
{
    struct strata_rope_scaling_params p = {.type = STRATA_SCALING_NONE, .factor = 1.0,
                                           .original_max = original_max, .low_freq_factor = 1.0,
                                           .high_freq_factor = 4.0, .beta_fast = 32.0,
                                           .beta_slow = 1.0, .attention_factor = 0.0};
    if (strcmp(s, "none") != 0) {
        const char *colon = strchr(s, ':');
        size_t n = colon ? (size_t)(colon - s) : strlen(s);
        int t = -1;
        if (n == 11 && !strncmp(s, "dynamic-ntk", n)) t = STRATA_SCALING_DYNAMIC; /* P1's name */
        for (int i = 1; i <= STRATA_SCALING_NTK; i++)
            if (strlen(scaling_names[i]) == n && !strncmp(s, scaling_names[i], n)) t = i;
        char *end = NULL;
        double f = colon ? strtod(colon + 1, &end) : (double)NAN;
        if (t < 0 || !colon || end == colon + 1 || *end || !(f >= 1.0) || !isfinite(f))
            return strata_fail(STRATA_E_ARG,
                               "rope scaling '%s': expected none or TYPE:FACTOR with TYPE linear, "
                               "ntk, dynamic (or dynamic-ntk), yarn or llama3 and FACTOR >= 1 "
                               "(e.g. linear:2)",
                               s);
        p.type = (enum strata_rope_scaling)t;
        p.factor = f;
    }
    *out = p;
    return 0;
}

int strata_config_check_positions(const struct strata_config *c)
{
    const struct strata_rope_scaling_params *r = &c->scaling;
    if ((unsigned)c->pos > STRATA_POS_ALIBI)
        return strata_fail(STRATA_E_ARG, "config: pos = %d is not a position scheme", (int)c->pos);
    bool rope = c->pos == STRATA_POS_ROPE_HALF || c->pos == STRATA_POS_ROPE_INTERLEAVED;
    if (rope && (c->head_dim % 2 != 0))
        return strata_fail(STRATA_E_ARG, "config: head_dim %d is odd; RoPE needs pairs",
                           (int)c->head_dim);
    if (rope && !(c->rope_base > 1.0 && isfinite(c->rope_base)))
        return strata_fail(STRATA_E_ARG, "config: rope_base %g must be finite and > 1",
                           c->rope_base);
    if (c->sliding_window < 0)
        return strata_fail(STRATA_E_ARG, "config: sliding_window %lld must be >= 0 (0: none)",
                           (long long)c->sliding_window);
    if ((unsigned)r->type > STRATA_SCALING_NTK)
        return strata_fail(STRATA_E_ARG, "config: rope_scaling type %d is unknown", (int)r->type);
    if (r->type == STRATA_SCALING_NONE) return 0;
    if (!rope)
        return strata_fail(STRATA_E_ARG, "config: rope_scaling '%s' given for a model without RoPE",
                           scaling_names[r->type]);
    if (!(r->factor > 0.0 && isfinite(r->factor)))
        return strata_fail(STRATA_E_ARG, "config: rope_scaling.factor %g must be finite and > 0",
                           r->factor);
    if (r->type != STRATA_SCALING_LINEAR && r->type != STRATA_SCALING_NTK && r->original_max <= 0)
        return strata_fail(STRATA_E_ARG,
                           "config: rope_scaling '%s' needs original_max_position_embeddings > 0",
                           scaling_names[r->type]);
    if (r->type == STRATA_SCALING_LLAMA3 && !(r->high_freq_factor > r->low_freq_factor))
        return strata_fail(STRATA_E_ARG,
                           "config: rope_scaling llama3 needs high_freq_factor (%g) > "
                           "low_freq_factor (%g)",
                           r->high_freq_factor, r->low_freq_factor);
    if (r->type == STRATA_SCALING_YARN &&
        !(r->beta_fast > 0.0 && r->beta_slow > 0.0 && r->attention_factor >= 0.0))
        return strata_fail(STRATA_E_ARG,
                           "config: rope_scaling yarn needs beta_fast, beta_slow > 0 and "
                           "attention_factor >= 0");
    return 0;
}

double strata_rope_freqs(double *theta, int32_t d, double base,
                         const struct strata_rope_scaling_params *sc, int64_t P)
{
    STRATA_ASSERT(d >= 2 && d % 2 == 0);
    const struct strata_rope_scaling_params none = {.type = STRATA_SCALING_NONE, .factor = 1.0};
    const struct strata_rope_scaling_params *r = sc ? sc : &none;
    const int64_t half = d / 2;
    const double s = r->factor, C0 = (double)r->original_max;
    double mscale = 1.0;
    if (r->type == STRATA_SCALING_DYNAMIC && (double)P > C0)
        base *= pow(s * (double)P / C0 - (s - 1.0), (double)d / (double)(d - 2));
    if (r->type == STRATA_SCALING_NTK) base *= pow(s, (double)d / (double)(d - 2));
    for (int64_t i = 0; i < half; i++) theta[i] = pow(base, -2.0 * (double)i / (double)d);
    const double two_pi = 6.283185307179586;
    switch (r->type) {
    case STRATA_SCALING_LINEAR:
        for (int64_t i = 0; i < half; i++) theta[i] /= s;
        break;
    case STRATA_SCALING_YARN: {
        double lo = floor((double)d * log(C0 / (two_pi * r->beta_fast)) / (2.0 * log(base)));
        double hi = ceil((double)d * log(C0 / (two_pi * r->beta_slow)) / (2.0 * log(base)));
        if (lo < 0.0) lo = 0.0;
        if (hi > (double)(d - 1)) hi = (double)(d - 1);
        if (lo == hi) hi += 0.001;
        for (int64_t i = 0; i < half; i++) {
            double ramp = ((double)i - lo) / (hi - lo);
            ramp = ramp < 0.0 ? 0.0 : ramp > 1.0 ? 1.0 : ramp;
            double e = 1.0 - ramp;
            theta[i] = theta[i] / s * (1.0 - e) + theta[i] * e;
        }
        mscale = r->attention_factor > 0.0 ? r->attention_factor
                 : s > 1.0                 ? 0.1 * log(s) + 1.0
                                           : 1.0;
        break;
    }
    case STRATA_SCALING_LLAMA3: {
        const double lo_wl = C0 / r->low_freq_factor, hi_wl = C0 / r->high_freq_factor;
        for (int64_t i = 0; i < half; i++) {
            double wl = two_pi / theta[i];
            if (wl > lo_wl) {
                theta[i] /= s;
            } else if (wl >= hi_wl) {
                double sm = (C0 / wl - r->low_freq_factor) /
                            (r->high_freq_factor - r->low_freq_factor);
                theta[i] = (1.0 - sm) * theta[i] / s + sm * theta[i];
            }
        }
        break;
    }
    default:
        break;
    }
    return mscale;
}


/* Baichuan's ALiBi slopes: for H a power of two, 2^(-8k/H), k = 1..H;
 * otherwise the n = 2^floor(log2 H) slopes of n, then every other slope of
 * the 2n set (the 1st, 3rd, ...) for the remaining heads. */
void strata_alibi_slopes(float *slope, int64_t H)
{
    int64_t n = 1;
    while (n * 2 <= H) n *= 2;
    for (int64_t k = 0; k < n; k++) slope[k] = (float)pow(2.0, -8.0 * (double)(k + 1) / (double)n);
    for (int64_t k = 0; k < H - n; k++)
        slope[n + k] = (float)pow(2.0, -8.0 * (double)(2 * k + 1) / (double)(2 * n));
}
