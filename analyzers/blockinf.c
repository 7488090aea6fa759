/* strata-blockinf — Block Influence (ShortGPT, Men et al. 2024; P3 in
 * ../shared/docs/PAPERS.md) from a hidden-state dump:
 *   BI_l = 1 - mean over all tokens of all samples of cos(X_l, X_{l+1}),
 * X_l the residual stream entering block l, X_{l+1} the stream leaving it,
 * before the final norm. Averaged, not summed, so scores are comparable
 * across corpora of different sizes. Reads two layers of one sample at a
 * time: memory is independent of N and L. */
#include "cli.h"

#include <math.h>

static void usage(void)
{
    printf("usage: strata-blockinf DUMP.h5 [DUMP2.h5 ...] [-o BI.csv] [--allow-partial]\n"
           "\n"
           "Block Influence per block l (0-based) from a strata-probe-hidden dump, or\n"
           "several dumps (shards of one run) read as one. Blocks whose two\n"
           "boundaries l and l+1 the dump keeps are scored; positions are the kept ones.\n"
           "Writes CSV columns: layer, bi, mean_cos, rank (1 = lowest BI, the first\n"
           "to remove), n_tokens. Default output: stdout.\n"
           "\n"
           "  -o FILE          CSV output (written as FILE.partial, then renamed)\n"
           "  --allow-partial  accept an unfinished dump (.partial), using its\n"
           "                   completed samples\n"
           "  -h, --help       this help\n");
}

int main(int argc, char **argv)
{
    cli_init("strata-blockinf");
    const char *in_path = NULL, *out_path = "-";
    bool allow_partial = false;
    const char **paths = malloc((size_t)argc * sizeof *paths);
    int n_paths = 0;
    if (!paths) cli_die(NULL, "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            free(paths);
            return 0;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            out_path = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--allow-partial")) {
            allow_partial = true;
        } else if (a[0] == '-' && a[1]) {
            cli_die("see strata-blockinf --help", "unknown option '%s'", a);
        } else {
            if (!in_path) in_path = a;
            paths[n_paths++] = a;
        }
    }
    if (!in_path) cli_die("see strata-blockinf --help", "no input dump given");

    struct strata_dump *dump = NULL;
    cli_check(strata_dump_open_many(&dump, paths, n_paths),
              "give dumps written by strata-probe-hidden (shards of one run)");
    struct strata_dump_info info;
    cli_check(strata_dump_info(dump, &info), NULL);
    if (!info.complete && !allow_partial)
        cli_die("finish or resume the probe run, or pass --allow-partial",
                "%s: the dump is incomplete (%lld of %lld samples)", in_path,
                (long long)info.n_complete, (long long)info.n_samples);
    /* Block l is scored from kept boundaries l and l+1 (adjacent in the
     * dump's layer list); its CSV row keeps the block number. */
    const int32_t *kept = strata_dump_layers(dump);
    const int64_t N = info.n_complete, T = info.n_pos, D = info.dim;
    const int64_t L = info.n_layers > 0 ? kept[info.n_layers - 1] : 0; /* rows 0 .. L-1 */
    int64_t *idx = malloc((size_t)(L + 2) * sizeof *idx); /* boundary -> index in the dump, or -1 */
    if (!idx) cli_die(NULL, "out of memory");
    for (int64_t b = 0; b <= L; b++) idx[b] = -1;
    for (int64_t i = 0; i < info.n_layers; i++) idx[kept[i]] = i;
    int64_t n_scored = 0;
    for (int64_t l = 0; l < L; l++) n_scored += idx[l] >= 0 && idx[l + 1] >= 0;
    if (N < 1 || n_scored < 1)
        cli_die("dump consecutive boundaries (strata-probe-hidden --layers)",
                "%s: needs at least one sample and one block with both boundaries kept (has %lld "
                "samples, %lld layers)", in_path, (long long)N, (long long)info.n_layers);

    float *a = malloc((size_t)(T * D) * sizeof(float)); /* (T, D) X_l */
    float *b = malloc((size_t)(T * D) * sizeof(float)); /* (T, D) X_{l+1} */
    double *sum_cos = calloc((size_t)L, sizeof(double)); /* (L) */
    if (!a || !b || !sum_cos) cli_die(NULL, "out of memory");
    struct cli_progress prog;
    cli_progress_start(&prog);
    for (int64_t s = 0; s < N; s++) {
        for (int64_t l = 0; l < L; l++) {
            if (idx[l] < 0 || idx[l + 1] < 0) continue;
            cli_check(strata_dump_read_layer(dump, s, idx[l], a), NULL);
            cli_check(strata_dump_read_layer(dump, s, idx[l + 1], b), NULL);
            for (int64_t t = 0; t < T; t++) {
                const float *x = a + t * D, *y = b + t * D;
                double xy = 0, xx = 0, yy = 0;
                for (int64_t i = 0; i < D; i++) {
                    xy += (double)x[i] * (double)y[i];
                    xx += (double)x[i] * (double)x[i];
                    yy += (double)y[i] * (double)y[i];
                }
                if (!isfinite(xy) || !isfinite(xx) || !isfinite(yy) || xx == 0 || yy == 0)
                    cli_die("the dump holds NaN, Inf or zero hidden states; rerun the probe",
                            "%s: cosine undefined at sample %lld, layers %lld/%lld, position %lld",
                            in_path, (long long)s, (long long)l, (long long)(l + 1), (long long)t);
                sum_cos[l] += xy / sqrt(xx * yy);
            }
        }
        cli_progress(&prog, s + 1, N, (s + 1) * T, 0);
    }

    const double n_tok = (double)(N * T);
    int64_t *order = malloc((size_t)L * sizeof *order); /* (L) blocks, lowest BI first */
    if (!order) cli_die(NULL, "out of memory");
    int64_t n_ord = 0;
    for (int64_t l = 0; l < L; l++)
        if (idx[l] >= 0 && idx[l + 1] >= 0) order[n_ord++] = l;
    for (int64_t i = 1; i < n_ord; i++) /* insertion sort: stable, L is small */
        for (int64_t j = i; j > 0 && sum_cos[order[j]] > sum_cos[order[j - 1]]; j--) {
            int64_t t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    int64_t *rank = malloc((size_t)L * sizeof *rank);
    if (!rank) cli_die(NULL, "out of memory");
    for (int64_t r = 0; r < n_ord; r++) rank[order[r]] = r + 1;

    struct cli_out out;
    FILE *f = cli_out_open(&out, out_path);
    fprintf(f, "layer,bi,mean_cos,rank,n_tokens\n");
    for (int64_t l = 0; l < L; l++) {
        if (idx[l] < 0 || idx[l + 1] < 0) continue;
        double mc = sum_cos[l] / n_tok;
        fprintf(f, "%lld,%.9g,%.9g,%lld,%lld\n", (long long)l, 1.0 - mc, mc, (long long)rank[l],
                (long long)(N * T));
    }
    cli_out_commit(&out);
    fprintf(stderr, "%s: %lld samples x %lld tokens; lowest BI first:", cli_prog, (long long)N,
            (long long)T);
    for (int64_t r = 0; r < n_ord; r++) fprintf(stderr, " %lld", (long long)order[r]);
    fprintf(stderr, "\n");
    free(order);
    free(rank);
    free(idx);
    free(paths);
    free(a);
    free(b);
    free(sum_cos);
    strata_dump_free(dump);
    return 0;
}
