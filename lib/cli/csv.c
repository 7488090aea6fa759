/* csv.c — the conventions every CSV of the analyzers follows
 * (docs/FORMAT.md "CSV files"): a first comment line of provenance,
 *     # program=strata-blockinf command=score model=M corpus=C n_samples=N seq_len=T ...
 * so a plot can name model, corpus, N and T without the HDF5 file; then one
 * header line of column names; numbers in C's %g; NaN (no value) as an
 * empty field, never "nan", "-nan" or "NaN"; infinities as inf / -inf;
 * lists inside one field separated by ';' (never quoted). */
#include "cli.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* v with its bytes <= ' ', '%', ',' and DEL as %XX (Python's
 * urllib.parse.unquote reverses it; no comma, so even a reader that does
 * not skip the line sees one field), appended to *s (of *n bytes). */
static void put_value(char **s, size_t *n, const char *v)
{
    static const char hex[] = "0123456789ABCDEF";
    const size_t len = strlen(v);
    *s = cli_realloc(*s, *n + 3 * len + 1, "a CSV comment");
    char *q = *s + *n;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p <= ' ' || *p == '%' || *p == ',' || *p == 0x7f) {
            *q++ = '%';
            *q++ = hex[*p >> 4];
            *q++ = hex[*p & 15];
        } else {
            *q++ = (char)*p;
        }
    }
    *q = '\0';
    *n = (size_t)(q - *s);
}

char *cli_csv_meta(const char *key, ...)
{
    char *s = cli_strdup("#");
    size_t n = 1;
    va_list ap;
    va_start(ap, key);
    for (const char *k = key; k; k = va_arg(ap, const char *)) {
        const char *v = va_arg(ap, const char *);
        if (!v || !*v) continue;
        char *kv = cli_sprintf(" %s=", k);
        const size_t kn = strlen(kv);
        s = cli_realloc(s, n + kn + 1, "a CSV comment");
        memcpy(s + n, kv, kn + 1);
        n += kn;
        free(kv);
        put_value(&s, &n, v);
    }
    va_end(ap);
    return s;
}

void cli_csv_head(FILE *f, const char *meta, const char *header)
{
    if (meta) fprintf(f, "%s\n", meta);
    fprintf(f, "%s\n", header);
}

void cli_csv_num(FILE *f, double v, int digits)
{
    if (isnan(v)) fputc(',', f);
    else if (isinf(v)) fputs(v > 0 ? ",inf" : ",-inf", f);
    else fprintf(f, ",%.*g", digits, v);
}
