/* attnfile.c — reading the distance reductions of a strata-probe-attn file
 * (docs/FORMAT.md: /dist/logit_mean, /dist/prob_mean, /dist/count, /layers,
 * /heads and the completion attributes), for strata-decay empirical and
 * anything else that wants P2's attention-against-distance curve.
 *
 * Every dataset's rank and shape is checked against /dist/logit_mean (which
 * fixes Ls, Hs and T), and the completion attributes against each other,
 * before a byte is read into a buffer: a corrupt or hand-edited file is an
 * error naming the file and the field, never an overflow.
 *
 * Legend: Ls selected blocks, Hs selected heads, T distances (= seq_len). */
#include "h5io.h"
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Elements an attention file may hold per reduction (8 bytes each): more
 * than any real run (80 blocks x 64 heads x 2^20 distances is 2^32.3) and
 * far below what would exhaust memory before the check. */
#define MAX_ATTN_ELEMS ((int64_t)1 << 34)

/* An optional int64 root attribute: 1 and *v if present, 0 if absent,
 * negative if present but not one integer. */
static int attr_opt(const struct strata_h5 *h, const char *name, int64_t *v)
{
    int rc = strata_h5_has_attr(h, "/", name);
    if (rc <= 0) return rc;
    return (rc = strata_h5_get_attr_i64(h, "/", name, v)) ? rc : 1;
}

void strata_attn_dist_free(struct strata_attn_dist *a)
{
    if (!a) return;
    free(a->logit_mean), free(a->prob_mean), free(a->count), free(a->layers), free(a->heads);
    memset(a, 0, sizeof *a);
}

int strata_attn_dist_read(struct strata_attn_dist *a, const struct strata_h5 *h)
{
    if (!a || !h) return strata_fail(STRATA_E_ARG, "strata_attn_dist_read: NULL argument");
    memset(a, 0, sizeof *a);
    const char *path = strata_h5_file_path(h);
    int64_t complete = 1, seq_len = -1;
    a->n_complete = a->n_samples = -1;
    int has_c, has_n, has_ns, has_t;
    if ((has_c = attr_opt(h, "complete", &complete)) < 0) return has_c;
    if ((has_n = attr_opt(h, "n_complete", &a->n_complete)) < 0) return has_n;
    if ((has_ns = attr_opt(h, "n_samples", &a->n_samples)) < 0) return has_ns;
    if ((has_t = attr_opt(h, "seq_len", &seq_len)) < 0) return has_t;
    if (!has_n) a->n_complete = -1;
    if (!has_ns) a->n_samples = -1;
    if (complete != 0 && complete != 1)
        return strata_fail(STRATA_E_FORMAT, "%s: attribute complete is %lld; expected 0 or 1",
                           path, (long long)complete);
    if (has_ns && a->n_samples < 0)
        return strata_fail(STRATA_E_FORMAT, "%s: attribute n_samples is %lld; expected >= 0",
                           path, (long long)a->n_samples);
    if (has_n && (a->n_complete < 0 || (has_ns && a->n_complete > a->n_samples)))
        return strata_fail(STRATA_E_FORMAT,
                           "%s: attribute n_complete %lld is outside 0 .. n_samples (%lld)", path,
                           (long long)a->n_complete, (long long)a->n_samples);
    if (complete == 1 && has_n && has_ns && a->n_complete != a->n_samples)
        return strata_fail(STRATA_E_FORMAT, "%s: marked complete but n_complete %lld < n_samples %lld",
                           path, (long long)a->n_complete, (long long)a->n_samples);
    a->complete = complete == 1;

    int nd, rc;
    int64_t sh[STRATA_H5_MAX_DIMS];
    if ((rc = strata_h5_shape(h, "dist/logit_mean", &nd, sh))) return rc;
    if (nd != 3 || sh[0] < 1 || sh[1] < 1 || sh[2] < 1) {
        char t[160];
        return strata_fail(STRATA_E_FORMAT,
                           "%s: dataset /dist/logit_mean has shape %s; expected (Ls, Hs, T), none empty",
                           path, strata_shape_text(t, sizeof t, nd, sh));
    }
    if (sh[0] > MAX_ATTN_ELEMS / sh[1] / sh[2])
        return strata_fail(STRATA_E_NOMEM, "%s: dataset /dist/logit_mean (%lld, %lld, %lld) is too large",
                           path, (long long)sh[0], (long long)sh[1], (long long)sh[2]);
    if (has_t && seq_len != sh[2])
        return strata_fail(STRATA_E_FORMAT,
                           "%s: dataset /dist/logit_mean has %lld distances; expected seq_len = %lld",
                           path, (long long)sh[2], (long long)seq_len);
    const int64_t n_l = sh[0], n_h = sh[1];
    if ((rc = strata_h5_want_shape(h, "dist/prob_mean", 3, sh, "(Ls, Hs, T) of /dist/logit_mean")) ||
        (rc = strata_h5_want_shape(h, "dist/count", 3, sh, "(Ls, Hs, T) of /dist/logit_mean")) ||
        (rc = strata_h5_want_shape(h, "layers", 1, &n_l, "(Ls) of /dist/logit_mean")) ||
        (rc = strata_h5_want_shape(h, "heads", 1, &n_h, "(Hs) of /dist/logit_mean")))
        return rc;
    a->n_layers = sh[0], a->n_heads = sh[1], a->seq_len = sh[2];
    const size_t tot = (size_t)(sh[0] * sh[1] * sh[2]);
    a->logit_mean = xcalloc(tot, sizeof *a->logit_mean);   /* (Ls, Hs, T) */
    a->prob_mean = xcalloc(tot, sizeof *a->prob_mean);     /* (Ls, Hs, T) */
    a->count = xcalloc(tot, sizeof *a->count);             /* (Ls, Hs, T) */
    a->layers = xcalloc((size_t)n_l, sizeof *a->layers);   /* (Ls) */
    a->heads = xcalloc((size_t)n_h, sizeof *a->heads);     /* (Hs) */
    if ((rc = strata_h5_read(h, "dist/logit_mean", STRATA_DT_F64, a->logit_mean)) ||
        (rc = strata_h5_read(h, "dist/prob_mean", STRATA_DT_F64, a->prob_mean)) ||
        (rc = strata_h5_read(h, "dist/count", STRATA_DT_F64, a->count)) ||
        (rc = strata_h5_read(h, "layers", STRATA_DT_I32, a->layers)) ||
        (rc = strata_h5_read(h, "heads", STRATA_DT_I32, a->heads)))
        goto fail;
    for (size_t k = 0; k < tot; k++)
        if (!(a->count[k] >= 0) || isinf(a->count[k])) {
            rc = strata_fail(STRATA_E_FORMAT,
                             "%s: dataset /dist/count holds %g (element %zu); counts are finite and >= 0",
                             path, a->count[k], k);
            goto fail;
        }
    return 0;
fail:
    strata_attn_dist_free(a);
    return rc;
}
