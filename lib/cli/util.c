/* util.c — part of the command-line layer (cli.h): messages and the die
 * helpers (exit 1 at run time, 2 for the command line), allocate-or-die,
 * progress lines, the one stop flag of the program and the test hooks. */
#include "cli_internal.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *cli_prog = "strata";
bool cli_quiet = false;
volatile sig_atomic_t cli_stop_requested = 0;
static bool prog_named = false;

static void log_to_stderr(enum strata_log_level level, const char *msg, void *user)
{
    (void)user;
    if (level >= STRATA_LOG_WARN) fprintf(stderr, "%s: warning: %s\n", cli_prog, msg);
}

void cli_init(const char *prog)
{
    cli_prog = prog;
    prog_named = true;
    strata_log_set(log_to_stderr, NULL);
}

/* cli_parse's call: a name set before (a subcommand's program) stays. */
void cli_init_default_(const char *prog)
{
    if (!prog_named) cli_init(prog);
}

static CLI_NORETURN void vdie(int code, const char *hint, const char *fmt, va_list ap)
{
    fflush(stdout);
    /* Across ranks: a command-line error is the same on every rank (rank 0
     * says it, all exit); a run-time one may be one rank's own, so it names
     * the rank and stops the whole job (a rank that just exits would leave
     * the others waiting in a collective). */
    const int R = cli_nranks();
    if (R < 2 || code != CLI_EXIT_USAGE || cli_rank() == 0) {
        fprintf(stderr, "%s: ", cli_prog);
        if (R > 1 && code != CLI_EXIT_USAGE) fprintf(stderr, "rank %d of %d: ", cli_rank(), R);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        if (hint) fprintf(stderr, "  hint: %s\n", hint);
    }
    if (code != CLI_EXIT_USAGE) cli_mpi_abort(code);
    exit(code);
}

void cli_die(const char *hint, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vdie(CLI_EXIT_FAIL, hint, fmt, ap);
}

void cli_usage_die(const char *hint, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vdie(CLI_EXIT_USAGE, hint, fmt, ap);
}

void cli_check(int rc, const char *hint)
{
    if (rc == 0) return;
    const char *msg = strata_last_error();
    cli_die(hint, "%s", msg[0] ? msg : strata_strerror(rc));
}

void cli_usage_check(int rc, const char *hint)
{
    if (rc == 0) return;
    const char *msg = strata_last_error();
    cli_usage_die(hint, "%s", msg[0] ? msg : strata_strerror(rc));
}

static void vsay(const char *kind, const char *fmt, va_list ap)
{
    fprintf(stderr, "%s: %s", cli_prog, kind);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void cli_note(const char *fmt, ...)
{
    if (cli_quiet || cli_rank() != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsay("note: ", fmt, ap);
    va_end(ap);
}

void cli_info(const char *fmt, ...)
{
    if (cli_quiet || cli_rank() != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsay("", fmt, ap);
    va_end(ap);
}

void cli_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay("warning: ", fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------- memory */

static CLI_NORETURN void oom(size_t n, const char *what)
{
    cli_die(NULL, "out of memory for %s (%.1f MiB)", what ? what : "a buffer",
            (double)n / 1048576.0);
}

void *cli_alloc(size_t n, const char *what)
{
    void *p = calloc(n ? n : 1, 1);
    if (!p) oom(n, what);
    return p;
}

void *cli_calloc(size_t n, size_t size, const char *what)
{
    if (size && n > SIZE_MAX / size) oom(SIZE_MAX, what);
    return cli_alloc(n * size, what);
}

void *cli_realloc(void *p, size_t n, const char *what)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n, what);
    return q;
}

char *cli_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = cli_alloc(n, "a string");
    memcpy(d, s, n);
    return d;
}

char *cli_sprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) cli_die(NULL, "cannot format a message");
    char *s = cli_alloc((size_t)n + 1, "a string");
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

char *cli_command_line(int argc, char **argv)
{
    size_t n = 1;
    for (int i = 0; i < argc; i++) n += strlen(argv[i]) + 1;
    char *s = cli_alloc(n, "the command line");
    char *q = s;
    for (int i = 0; i < argc; i++) {
        size_t k = strlen(argv[i]);
        if (i) *q++ = ' ';
        memcpy(q, argv[i], k);
        q += k;
    }
    *q = '\0';
    return s;
}

/* ----------------------------------------------------------- progress */

double cli_progress_interval = 5.0;

/* The loop's progress the heartbeat reports, and the lock that keeps its
 * line whole: the main thread advances it, any worker may print it. */
static _Atomic(struct cli_progress *) progress_now; /* read unlocked by the heartbeat */
static pthread_mutex_t progress_lock = PTHREAD_MUTEX_INITIALIZER;

void cli_progress_start(struct cli_progress *p, const char *what, int64_t total)
{
    pthread_mutex_lock(&progress_lock);
    p->t0 = p->last = cli_now();
    p->tty = isatty(2);
    p->what = what;
    p->done = p->tokens = 0;
    p->total = total;
    p->printed = -1;
    atomic_store(&progress_now, p);
    pthread_mutex_unlock(&progress_lock);
}

/* One line (caller holds the lock); on a terminal rewritten in place. */
static void progress_line(struct cli_progress *p, double now, bool final, bool running)
{
    p->last = now;
    if (!running) p->printed = p->done;
    const double el = now - p->t0, rate = el > 0 ? (double)p->tokens / el : 0.0;
    const double eta = p->done > 0 ? el * (double)(p->total - p->done) / (double)p->done : 0.0;
    char eta_s[48] = "";
    if (p->done > 0 && !final) snprintf(eta_s, sizeof eta_s, ", ETA %.1f s", eta);
    char run_s[48] = "";
    if (running) snprintf(run_s, sizeof run_s, " (sample %lld running)", (long long)p->done + 1);
    fprintf(stderr, "%s%s: %s%s%lld/%lld samples%s, %.0f tokens/s, %.1f s elapsed%s%s",
            p->tty ? "\r" : "", cli_prog, p->what ? p->what : "", p->what ? ": " : "",
            (long long)p->done, (long long)p->total, run_s, rate, el, eta_s,
            p->tty && !final ? "\033[K" : "\n");
    fflush(stderr);
}

void cli_progress(struct cli_progress *p, int64_t done, int64_t total, int64_t tokens, int final)
{
    if (cli_quiet || cli_rank() != 0) return; /* one progress line for all ranks */
    pthread_mutex_lock(&progress_lock);
    p->done = done, p->total = total, p->tokens = tokens;
    const double now = cli_now();
    /* A final line repeats nothing off a terminal: skip it if this count was
     * just printed (a terminal needs it to end the line). */
    if (final ? p->tty || p->printed != done : now - p->last >= cli_progress_interval)
        progress_line(p, now, final, false);
    if (final && atomic_load(&progress_now) == p) atomic_store(&progress_now, NULL);
    pthread_mutex_unlock(&progress_lock);
}

void cli_progress_heartbeat(void)
{
    /* --progress 0 asks for a line after every sample, not for one at
     * every block. */
    if (cli_quiet || !atomic_load_explicit(&progress_now, memory_order_relaxed) ||
        cli_progress_interval <= 0 || cli_rank() != 0)
        return;
    if (pthread_mutex_trylock(&progress_lock) != 0) return; /* someone is printing it */
    struct cli_progress *p = atomic_load(&progress_now);
    const double now = cli_now();
    if (p && p->total > 0 && now - p->last >= cli_progress_interval) progress_line(p, now, false, true);
    pthread_mutex_unlock(&progress_lock);
}

/* -------------------------------------------------------- stop signal */

static void on_stop_signal(int sig)
{
    (void)sig;
    cli_stop_requested = 1;
}

void cli_catch_stop(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART; /* only a flag is set: interrupted I/O just goes on */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Tests synchronise on an event instead of on timing (see cli.h). */
void cli_test_pause_point(int64_t done)
{
    cli_test_pause_point_(done, true);
}

bool cli_test_pause_point_(int64_t done, bool say)
{
    const char *e = getenv("STRATA_TEST_PAUSE_AFTER");
    if (!e || strtoll(e, NULL, 10) != done) return false;
    sigset_t stop, old;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop, &old);
    if (say) {
        fprintf(stderr, "%s: paused after %lld samples\n", cli_prog, (long long)done);
        fflush(stderr);
    }
    /* The handler may run on any thread that does not block the signal (a
     * context's workers, OpenBLAS'), not on this one, so waking this thread
     * with sigsuspend is not enough: the flag is polled. A signal that came
     * after the line is pending and is delivered once unblocked. */
    sigprocmask(SIG_SETMASK, &old, NULL);
    while (!cli_stop_requested) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return true;
}

bool cli_inputs_are_stats(const char *const *paths, int n)
{
    int n_stats = 0;
    for (int i = 0; i < n; i++) {
        struct strata_h5 *h = NULL;
        if (strata_h5_open(&h, paths[i]) == 0) n_stats += strata_stats_is(h);
        strata_h5_free(h);
    }
    if (n_stats && n_stats < n)
        cli_usage_die("give either dumps (strata-probe-hidden) or statistics files "
                      "(strata-probe-stats), not both", "%d of the %d inputs are statistics files",
                      n_stats, n);
    return n_stats > 0;
}
