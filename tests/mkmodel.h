/* mkmodel.h — write a random llama2.c checkpoint (legacy format, as
 * karpathy/llama2.c export.py writes it) of any shape, for tests and
 * benchmarks that need models other than the one shipped in ../shared.
 *
 * Why random but "well-conditioned": tests compare strata's float32 forward
 * against a float64 reference, and that comparison only means something if
 * hidden states stay O(1) through the blocks: neither vanishing (every
 * difference would pass) nor exploding (every difference would fail). So
 * weight entries have variance 1/fan_in, embeddings variance 1, norm gains
 * sit near 1, and a separate classifier has variance 1/D.
 *
 * The stream is strata_rng_next (splitmix64), one sub-stream per array
 * derived from the seed, so a seed names the same model on every machine
 * and the model does not change when strata's other random users do.
 *
 * Header-only so a test can write its model in-process; tests/mkmodel.c is
 * the command line around it.
 *
 * Legend: L blocks, D width, F MLP width, H query heads, G key/value heads,
 * d = D/H head width, V vocabulary, C trained context (seq_len).
 */
#ifndef STRATA_MKMODEL_H
#define STRATA_MKMODEL_H

#include "strata.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

struct mkmodel_shape {
    int32_t dim;              /* D */
    int32_t hidden_dim;       /* F */
    int32_t n_layers;         /* L */
    int32_t n_heads;          /* H */
    int32_t n_kv_heads;       /* G; H % G == 0 */
    int32_t vocab_size;       /* V (positive; the sign in the file says classifier) */
    int32_t seq_len;          /* C: rows of the freq_cis tables */
    bool separate_classifier; /* write wcls (V, D) and a negative vocab_size */
};

/* Floats buffered per fwrite: large files (make bench writes ~0.5 GB) go
 * out in 256 KiB pieces rather than one float at a time. */
#define MKMODEL_BUF 65536

struct mkmodel_writer_ {
    FILE *f;
    float buf[MKMODEL_BUF];
    size_t n;
    int err; /* errno of the first failed write, sticky */
};

static inline void mkmodel_put_(struct mkmodel_writer_ *w, float v)
{
    w->buf[w->n++] = v;
    if (w->n == MKMODEL_BUF) {
        if (!w->err && fwrite(w->buf, sizeof(float), w->n, w->f) != w->n)
            w->err = errno ? errno : EIO;
        w->n = 0;
    }
}

/* n floats drawn as center + scale * u, u uniform with unit variance
 * (uniform on [-sqrt 3, sqrt 3)); stream k of the seed. */
static inline void mkmodel_fill_(struct mkmodel_writer_ *w, int64_t n, double center,
                                 double scale, uint64_t seed, uint64_t k)
{
    uint64_t state = seed ^ (0xd1b54a32d192ed03ull * (k + 1));
    strata_rng_next(&state); /* decorrelate neighbouring k */
    const double a = sqrt(3.0) * scale;
    for (int64_t i = 0; i < n; i++) {
        /* top 53 bits: a double uniform on [0, 1) */
        double u = (double)(strata_rng_next(&state) >> 11) * 0x1.0p-53;
        mkmodel_put_(w, (float)(center + a * (2.0 * u - 1.0)));
    }
}

/* Write a random checkpoint of shape *s to path. Returns 0, or -1 with
 * errno set (EINVAL for an impossible shape; a partly written file is
 * removed). */
static inline int mkmodel_write(const char *path, const struct mkmodel_shape *s, uint64_t seed)
{
    const int64_t D = s->dim, F = s->hidden_dim, L = s->n_layers, H = s->n_heads,
                  G = s->n_kv_heads, V = s->vocab_size, C = s->seq_len;
    if (D <= 0 || F <= 0 || L <= 0 || H <= 0 || G <= 0 || V <= 0 || C <= 0 || D % H != 0 ||
        H % G != 0 || (D / H) % 2 != 0) {
        errno = EINVAL;
        return -1;
    }
    const int64_t hs = D / H, KV = D * G / H;

    static struct mkmodel_writer_ w; /* 256 KiB: too big for small test stacks */
    w.n = 0;
    w.err = 0;
    w.f = fopen(path, "wb");
    if (!w.f) return -1;

    int32_t header[7] = {s->dim, s->hidden_dim, s->n_layers, s->n_heads, s->n_kv_heads,
                         s->separate_classifier ? -s->vocab_size : s->vocab_size, s->seq_len};
    if (fwrite(header, sizeof header, 1, w.f) != 1) w.err = errno ? errno : EIO;

    const double sD = 1.0 / sqrt((double)D), sF = 1.0 / sqrt((double)F);
    mkmodel_fill_(&w, V * D, 0.0, 1.0, seed, 0);     /* token_embedding (V, D) */
    mkmodel_fill_(&w, L * D, 1.0, 0.1, seed, 1);     /* rms_att (L, D) */
    mkmodel_fill_(&w, L * D * D, 0.0, sD, seed, 2);  /* wq (L, D, D) */
    mkmodel_fill_(&w, L * KV * D, 0.0, sD, seed, 3); /* wk (L, KV, D) */
    mkmodel_fill_(&w, L * KV * D, 0.0, sD, seed, 4); /* wv (L, KV, D) */
    mkmodel_fill_(&w, L * D * D, 0.0, sD, seed, 5);  /* wo (L, D, D) */
    mkmodel_fill_(&w, L * D, 1.0, 0.1, seed, 6);     /* rms_ffn (L, D) */
    mkmodel_fill_(&w, L * F * D, 0.0, sD, seed, 7);  /* w1 (L, F, D) */
    mkmodel_fill_(&w, L * D * F, 0.0, sF, seed, 8);  /* w2 (L, D, F) */
    mkmodel_fill_(&w, L * F * D, 0.0, sD, seed, 9);  /* w3 (L, F, D) */
    mkmodel_fill_(&w, D, 1.0, 0.1, seed, 10);        /* rms_final (D) */
    /* freq_cis_real then freq_cis_imag (C, d/2), the tables export.py
     * writes: angle t * base^(-2j/d); run.c recomputes them, but a reader
     * that trusts the file should find the true values. */
    for (int part = 0; part < 2; part++)
        for (int64_t t = 0; t < C; t++)
            for (int64_t j = 0; j < hs / 2; j++) {
                double ang = (double)t * pow(10000.0, -(double)(2 * j) / (double)hs);
                mkmodel_put_(&w, (float)(part == 0 ? cos(ang) : sin(ang)));
            }
    if (s->separate_classifier) mkmodel_fill_(&w, V * D, 0.0, sD, seed, 11); /* wcls (V, D) */

    if (w.n && !w.err && fwrite(w.buf, sizeof(float), w.n, w.f) != w.n)
        w.err = errno ? errno : EIO;
    if (fclose(w.f) != 0 && !w.err) w.err = errno ? errno : EIO;
    w.f = NULL;
    if (w.err) {
        unlink(path);
        errno = w.err;
        return -1;
    }
    return 0;
}

#endif
