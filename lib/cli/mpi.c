/* mpi.c — part of the command-line layer (cli.h): ranks across processes and
 * machines with MPI (Open MPI from Debian), for programs only; lib/ never
 * sees MPI (issue 12).
 *
 * One binary runs both ways: under `mpirun -n R` it is rank 0..R-1 of R; run
 * plainly it is an Open MPI singleton, rank 0 of 1. cli_parse calls
 * cli_mpi_init, which registers MPI_Finalize at exit. A singleton is started
 * isolated on the self transport (OMPI_MCA_ess_singleton_isolated, pml ob1,
 * btl self, unless the environment says otherwise): it talks to nobody, and
 * MPI_Init then takes ~20 ms instead of ~350 ms (no server daemon, no network
 * probing), which matters for a test suite of short runs; and with a session
 * directory base of its own (see cli_mpi_init), so plain runs may overlap.
 *
 * Built without MPI (no Open MPI found by the Makefile: -DSTRATA_NO_MPI) every
 * call is the single-process one: rank 0 of 1, reductions are no-ops.
 *
 * The sample loop over ranks (cli_rounds_*) goes in rounds: in each round
 * every rank does at most one sample, then all agree (one allreduce) on
 * whether every sample of the round completed, on the stop flag and on the
 * count done. So every rank stops after the same round, and the samples done
 * are a known set (a prefix for the cyclic split).
 */
#include "cli_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef STRATA_NO_MPI
#include <mpi.h>
#endif

/* Under AddressSanitizer (make check) Open MPI's own allocations in MPI_Init
 * and MPI_Finalize, which it never frees, are not leaks of ours: LeakSanitizer
 * ignores what is allocated between __lsan_disable and __lsan_enable (on this
 * thread). Stack-based suppressions cannot name them: Open MPI is built
 * without frame pointers and unloads its plugins, so the fast unwinder's
 * stacks stop inside nameless code; lib/cli/lsan-mpi.supp covers full
 * unwinding. Nothing else is exempted. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CLI_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define CLI_ASAN 1
#endif
#if defined(CLI_ASAN)
#include <sanitizer/lsan_interface.h>
#define LSAN_OFF() __lsan_disable()
#define LSAN_ON() __lsan_enable()
#else
#define LSAN_OFF() ((void)0)
#define LSAN_ON() ((void)0)
#endif

static int g_rank = 0, g_nranks = 1;
static bool g_init = false;

#ifndef STRATA_NO_MPI
static char g_session[4096]; /* a singleton's own session directory base, or "" */

static void finalize_at_exit(void)
{
    int fin = 0, ini = 0;
    MPI_Initialized(&ini);
    MPI_Finalized(&fin);
    if (!ini || fin) return;
    /* Every rank gets here only when done with its files: mpirun ends the
     * job as soon as one rank exits non-zero (130 after a stop), so none
     * may leave while another still writes. */
    if (g_nranks > 1) MPI_Barrier(MPI_COMM_WORLD);
    LSAN_OFF();
    MPI_Finalize();
    LSAN_ON();
    if (g_session[0]) rmdir(g_session); /* Open MPI emptied it */
}
#endif

void cli_mpi_init(void)
{
    if (g_init) return;
    g_init = true;
#ifndef STRATA_NO_MPI
    /* Escape hatch where Open MPI's runtime cannot start (no writable
     * $TMPDIR, odd containers): a plain process that never touches MPI. */
    const char *off = getenv("STRATA_NO_MPI");
    if (off && *off && strcmp(off, "0") != 0) return;
    /* Launched by mpirun (or another PMIx launcher)? Else a lone singleton. */
    const bool launched = getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") ||
                          getenv("PMI_RANK");
    if (!launched) {
        /* Isolated singletons all name their session directory
         * $TMPDIR/ompi.HOST.UID/jf.0, and the first to finish removes it
         * under the others' feet ("mkdir ... jf.0: No such file or
         * directory" in orte_init when two plain runs overlap): each gets a
         * base of its own, removed at exit. */
        if (!getenv("OMPI_MCA_orte_tmpdir_base")) {
            const char *tmp = getenv("TMPDIR");
            snprintf(g_session, sizeof g_session, "%s/strata-mpi.XXXXXX", tmp && *tmp ? tmp : "/tmp");
            if (mkdtemp(g_session)) setenv("OMPI_MCA_orte_tmpdir_base", g_session, 1);
            else g_session[0] = '\0';
        }
        setenv("OMPI_MCA_ess_singleton_isolated", "1", 0);
        setenv("OMPI_MCA_pml", "ob1", 0);
        setenv("OMPI_MCA_btl", "self", 0);
    }
    int ini = 0;
    MPI_Initialized(&ini);
    LSAN_OFF();
    const int rc = ini ? MPI_SUCCESS : MPI_Init(NULL, NULL);
    LSAN_ON();
    if (rc != MPI_SUCCESS) {
        fprintf(stderr, "%s: MPI_Init failed\n", cli_prog);
        exit(CLI_EXIT_FAIL);
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_nranks);
    atexit(finalize_at_exit);
#endif
}

int cli_rank(void)
{
    return g_rank;
}

int cli_nranks(void)
{
    return g_nranks;
}

void cli_mpi_abort(int code)
{
#ifndef STRATA_NO_MPI
    if (g_nranks > 1) {
        fflush(stdout);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, code);
    }
#endif
    (void)code;
}

void cli_share_of(int64_t n, int rank, int64_t *lo, int64_t *hi)
{
    const int64_t R = g_nranks, r = rank, q = n / R, m = n % R;
    *lo = r * q + (r < m ? r : m);
    *hi = *lo + q + (r < m ? 1 : 0);
}

void cli_share(int64_t n, int64_t *lo, int64_t *hi) { cli_share_of(n, g_rank, lo, hi); }

void cli_barrier(void)
{
#ifndef STRATA_NO_MPI
    if (g_nranks > 1) MPI_Barrier(MPI_COMM_WORLD);
#endif
}

/* MPI counts are int: long buffers go in pieces. */
enum { PIECE = 1 << 26 };

void cli_reduce_sum_f64(double *buf, int64_t n)
{
#ifndef STRATA_NO_MPI
    if (g_nranks < 2) return;
    for (int64_t i = 0; i < n; i += PIECE) {
        const int k = (int)(n - i < PIECE ? n - i : PIECE);
        if (g_rank == 0) MPI_Reduce(MPI_IN_PLACE, buf + i, k, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
        else MPI_Reduce(buf + i, NULL, k, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    }
#else
    (void)buf, (void)n;
#endif
}

void cli_reduce_sum_i64(int64_t *buf, int64_t n)
{
#ifndef STRATA_NO_MPI
    if (g_nranks < 2) return;
    for (int64_t i = 0; i < n; i += PIECE) {
        const int k = (int)(n - i < PIECE ? n - i : PIECE);
        if (g_rank == 0) MPI_Reduce(MPI_IN_PLACE, buf + i, k, MPI_INT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
        else MPI_Reduce(buf + i, NULL, k, MPI_INT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
    }
#else
    (void)buf, (void)n;
#endif
}

void cli_allreduce_sum_i64(int64_t *buf, int64_t n)
{
#ifndef STRATA_NO_MPI
    if (g_nranks < 2) return;
    for (int64_t i = 0; i < n; i += PIECE) {
        const int k = (int)(n - i < PIECE ? n - i : PIECE);
        MPI_Allreduce(MPI_IN_PLACE, buf + i, k, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
    }
#else
    (void)buf, (void)n;
#endif
}

void cli_allreduce_max_i64(int64_t *buf, int64_t n)
{
#ifndef STRATA_NO_MPI
    if (g_nranks < 2) return;
    for (int64_t i = 0; i < n; i += PIECE) {
        const int k = (int)(n - i < PIECE ? n - i : PIECE);
        MPI_Allreduce(MPI_IN_PLACE, buf + i, k, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
    }
#else
    (void)buf, (void)n;
#endif
}

void cli_bcast(void *buf, size_t bytes)
{
#ifndef STRATA_NO_MPI
    if (g_nranks < 2) return;
    for (size_t i = 0; i < bytes; i += PIECE) {
        const int k = (int)(bytes - i < PIECE ? bytes - i : PIECE);
        MPI_Bcast((char *)buf + i, k, MPI_BYTE, 0, MPI_COMM_WORLD);
    }
#else
    (void)buf, (void)bytes;
#endif
}

void cli_gather(void *recv, const void *send, size_t bytes)
{
    if (g_nranks < 2) {
        if (recv != send) memmove(recv, send, bytes);
        return;
    }
#ifndef STRATA_NO_MPI
    /* Piecewise: piece p of every rank goes to recv + rank * bytes + p. */
    char *tmp = g_rank == 0 ? cli_calloc((size_t)g_nranks, PIECE, "a gather buffer") : NULL;
    for (size_t i = 0; i < bytes; i += PIECE) {
        const int k = (int)(bytes - i < PIECE ? bytes - i : PIECE);
        MPI_Gather((const char *)send + i, k, MPI_BYTE, tmp, k, MPI_BYTE, 0, MPI_COMM_WORLD);
        if (g_rank == 0)
            for (int r = 0; r < g_nranks; r++)
                memcpy((char *)recv + (size_t)r * bytes + i, tmp + (size_t)r * (size_t)k, (size_t)k);
    }
    free(tmp);
#endif
}

void cli_send(int dest, int tag, const void *buf, size_t bytes)
{
#ifndef STRATA_NO_MPI
    for (size_t i = 0; i < bytes; i += PIECE) {
        const int k = (int)(bytes - i < PIECE ? bytes - i : PIECE);
        MPI_Send((const char *)buf + i, k, MPI_BYTE, dest, tag, MPI_COMM_WORLD);
    }
#else
    (void)dest, (void)tag, (void)buf, (void)bytes;
    cli_die(NULL, "cli_send: built without MPI");
#endif
}

void cli_recv(int src, int tag, void *buf, size_t bytes)
{
#ifndef STRATA_NO_MPI
    for (size_t i = 0; i < bytes; i += PIECE) {
        const int k = (int)(bytes - i < PIECE ? bytes - i : PIECE);
        MPI_Recv((char *)buf + i, k, MPI_BYTE, src, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    }
#else
    (void)src, (void)tag, (void)buf, (void)bytes;
    cli_die(NULL, "cli_recv: built without MPI");
#endif
}

char *cli_shard_path(const char *path, int rank, int nranks)
{
    if (nranks < 2) return cli_strdup(path);
    size_t n = strlen(path), stem = n;
    if (n > 3 && !strcmp(path + n - 3, ".h5")) stem = n - 3;
    return cli_sprintf("%.*s-%05d-of-%05d%s", (int)stem, path, rank, nranks, path + stem);
}

/* ------------------------------------------------ the loop over ranks */

void cli_rounds_begin(struct cli_loop *l, int split, int64_t n, int64_t T, int64_t done)
{
    memset(l, 0, sizeof *l);
    l->split = split;
    l->N = n;
    l->T = T;
    const char *e = getenv("STRATA_STOP_AFTER");
    l->stop_after = e ? strtoll(e, NULL, 10) : -1;
    int64_t lo = 0, hi = n;
    if (split == CLI_SPLIT_BLOCK) {
        cli_share(n, &lo, &hi);
        l->next = lo + done;
        l->hi = hi;
    } else {
        l->next = done + g_rank; /* samples done .. n-1, dealt out in turn */
        l->hi = n;
    }
    /* rounds = the most samples any rank still has; total = all of them */
    int64_t mine = l->next < l->hi ? l->hi - l->next : 0;
    if (split != CLI_SPLIT_BLOCK) mine = (mine + g_nranks - 1) / g_nranks;
    int64_t v[1] = {mine}, t[1] = {split == CLI_SPLIT_BLOCK ? mine : (g_rank == 0 ? n - done : 0)};
    cli_allreduce_max_i64(v, 1);
    cli_allreduce_sum_i64(t, 1);
    l->n_rounds = v[0];
    l->s0 = 0;
    l->n = t[0];
    cli_catch_stop();
    cli_progress_start(&l->prog, NULL, l->n);
}

bool cli_rounds_next(struct cli_loop *l, int64_t *s)
{
    if (l->stopped || l->round >= l->n_rounds) return false;
    *s = l->next < l->hi ? l->next : -1;
    return true;
}

bool cli_rounds_agree(struct cli_loop *l, bool completed)
{
    const bool had = l->next < l->hi;
    /* [incomplete samples, ranks asking to stop, samples completed] */
    int64_t v[3] = {completed ? 0 : 1, cli_stop_requested ? 1 : 0, had && completed ? 1 : 0};
    cli_allreduce_sum_i64(v, 3);
    const bool all = v[0] == 0;
    l->round++;
    if (all) {
        if (had) l->next += l->split == CLI_SPLIT_BLOCK ? 1 : g_nranks;
        l->done += v[2];
        cli_progress(&l->prog, l->done, l->n, l->done * l->T, 0);
    }
    if (!all || v[1]) l->stopped = true;
    if (l->stop_after >= 0 && l->done >= l->stop_after) {
        cli_stop_requested = 1;
        l->stopped = true;
    }
    /* The test pause ends with a signal (sent to mpirun, which forwards it
     * to every rank, all paused here): stop after this round everywhere. */
    if (all && !l->stopped && cli_test_pause_point_(l->done, g_rank == 0)) l->stopped = true;
    return all;
}

void cli_rounds_end(struct cli_loop *l)
{
    cli_progress(&l->prog, l->done, l->n, l->done * l->T, 1);
}
