"""plotkit.py — what strata's plot scripts share (plot_blockinf.py,
plot_posvec.py, plot_decay.py): reading the analyzers' CSVs with their
provenance line, the figure title, the output file, binned medians.

CSV conventions (docs/FORMAT.md "CSV files"): an optional first comment
line `# key=value key=value ...` (values %XX-escaped) says where the numbers
come from: model, corpus, n_samples (N), seq_len (T, or a ';'-list),
trained_window (C), ...; then a header line; an empty field is no value
(NaN); lists inside a field are ';'-separated.

Output: the format follows the file name's extension: .png (raster, at
--dpi, default 200, recorded in the pHYs chunk; --palette stores 256
colour indices instead of RGBA, about a third of the bytes, for
docs/figures/), .pdf and .svg (vector; text kept as text, fonts embedded as
TrueType in PDFs; no time stamps, so the same data give the same bytes).
Any other extension is an error before anything is drawn.

Title: a headline saying what the figure shows and a second line naming
model, corpus, N and T, from the CSV's comment line; --model, --corpus,
--samples, --seq-len and --window fill in or override it (for CSVs without
the line), --title replaces the headline.
"""
import csv
import os
import sys
import urllib.parse

FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
DEFAULT_DPI = 200


class InputError(Exception):
    """A problem with the input or the command line: one message, exit 1."""


def output_format(path):
    """The matplotlib format of an output path, from its extension."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        shown = f"'{ext}'" if ext else "no extension"
        raise InputError(f"{path}: unknown output format ({shown}); name the file .png, .pdf "
                         "or .svg")
    return FORMATS[ext]


def parse_meta_line(line):
    """{key: value} of a '# key=value ...' line (values unescaped)."""
    meta = {}
    for tok in line.lstrip("#").split():
        if "=" in tok:
            k, v = tok.split("=", 1)
            meta[k] = urllib.parse.unquote(v)
    return meta


def read_csv(path, required=(), what="a CSV"):
    """(rows, meta): the rows as dicts of stripped strings (comment lines
    skipped) and the provenance of the first comment line. InputError names
    the file and what is missing."""
    meta = {}
    try:
        with open(path, newline="", encoding="utf-8") as f:
            lines = f.readlines()
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not a readable CSV: {e}")
    if lines and lines[0].startswith("#"):
        meta = parse_meta_line(lines[0])
    try:
        rows = list(csv.DictReader(ln for ln in lines if not ln.startswith("#")))
    except csv.Error as e:
        raise InputError(f"{path}: not a readable CSV: {e}")
    rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in rows]
    cols = list(rows[0].keys()) if rows else []
    missing = [c for c in required if c not in cols]
    if not rows or missing:
        raise InputError(f"{path}: expected {what} with columns {', '.join(required)}; "
                         + (f"missing {', '.join(missing)}" if rows else "no data rows"))
    return rows, meta


def num(path, line, row, col, kind=float, empty_ok=False):
    """row[col] as a number; None for an empty field when empty_ok."""
    v = row.get(col, "")
    if v == "" and empty_ok:
        return None
    try:
        return kind(v)
    except ValueError:
        raise InputError(f"{path}: line {line}: {col} must be a number: {v!r}")


def add_args(ap, output_help="figure to write: .png, .pdf or .svg"):
    """The options every plot script takes."""
    ap.add_argument("-o", "--output", help=output_help)
    ap.add_argument("--title", help="headline of the figure (default: what it shows)")
    ap.add_argument("--model", help="model named in the title (default: the CSV's model=)")
    ap.add_argument("--corpus", help="corpus named in the title (default: the CSV's corpus=)")
    ap.add_argument("--samples", help="N, samples (default: the CSV's n_samples=)")
    ap.add_argument("--seq-len", help="T, tokens per sample (default: the CSV's seq_len=)")
    ap.add_argument("--window", type=int,
                    help="trained context window C to mark (default: the CSV's trained_window=)")
    ap.add_argument("--dpi", type=int, default=DEFAULT_DPI,
                    help=f"resolution of a .png (default {DEFAULT_DPI})")
    ap.add_argument("--palette", action="store_true",
                    help="a .png with a 256-colour palette: about a third of the bytes, for "
                         "documents (docs/figures/)")


def meta_from_args(meta, a):
    """meta with what the command line gives filled in or replaced."""
    m = dict(meta)
    for key, val in (("model", a.model), ("corpus", a.corpus), ("n_samples", a.samples),
                     ("seq_len", a.seq_len), ("trained_window", a.window)):
        if val is not None:
            m[key] = str(val)
    return m


def _name(path):
    return os.path.basename(path.rstrip("/")) or path


def provenance(meta):
    """'model M · corpus C · N = 200 samples × T = 256 tokens' from what is known."""
    parts = []
    if meta.get("model"):
        parts.append(f"model {_name(meta['model'])}")
    if meta.get("corpus"):
        parts.append(f"corpus {_name(meta['corpus'])}")
    nt = []
    if meta.get("n_samples"):
        nt.append(f"N = {meta['n_samples']} samples")
    if meta.get("seq_len"):
        ts = meta["seq_len"].split(";")
        nt.append(f"T = {', '.join(ts)} tokens")
    if nt:
        parts.append(" × ".join(nt))
    return " · ".join(parts)


def window(meta):
    """The trained context window C, or None."""
    try:
        c = int(meta.get("trained_window", ""))
        return c if c > 0 else None
    except ValueError:
        return None


def pyplot():
    """matplotlib.pyplot for files only, with text kept as text in SVG and
    TrueType fonts in PDF."""
    import matplotlib
    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"
    matplotlib.rcParams["svg.hashsalt"] = "strata"
    matplotlib.rcParams["pdf.fonttype"] = 42
    import matplotlib.pyplot as plt
    return plt


def title(fig, headline, meta, override=None):
    """The figure's title: the headline (or override) and the provenance line."""
    import textwrap
    head = override or headline
    prov = provenance(meta)
    width = max(40, int(fig.get_figwidth() * 14))  # characters of 10-point text a line holds
    text = "\n".join(textwrap.wrap(head, width) + textwrap.wrap(prov, width))
    fig.suptitle(text, fontsize=10)
    return text


def save(fig, path, dpi=DEFAULT_DPI, palette=False):
    """Write fig in the format of path's extension (checked before drawing
    by output_format); a PNG at dpi (recorded in its pHYs chunk), with
    palette as 8-bit colour indices; InputError if it cannot be written."""
    fmt = output_format(path)
    if fmt == "png" and palette:
        import io
        from PIL import Image
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        buf.seek(0)
        img = Image.open(buf).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
        try:
            img.save(path, format="PNG", optimize=True, dpi=(dpi, dpi))
        except OSError as e:
            raise InputError(f"{path}: cannot write: {e.strerror or e}")
        return
    kw = {"format": fmt}
    if fmt == "png":
        kw["dpi"] = dpi
    elif fmt == "pdf":
        kw["metadata"] = {"CreationDate": None, "ModDate": None}
    else:
        kw["metadata"] = {"Date": None}
    try:
        fig.savefig(path, **kw)
    except OSError as e:
        raise InputError(f"{path}: cannot write: {e.strerror or e}")


def check_dpi(dpi):
    if dpi < 50 or dpi > 1200:
        raise InputError(f"--dpi {dpi}: expected 50 .. 1200 (default {DEFAULT_DPI})")


def binned(x, y, n_bins=32):
    """Median and interquartile range of y in n_bins equal-width bins of x:
    (centres, median, q25, q75) of the bins holding at least one point."""
    import numpy as np
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size == 0:
        return (np.array([]),) * 4
    lo, hi = float(x.min()), float(x.max())
    if hi == lo:
        return (np.array([lo]), np.array([np.median(y)]), np.array([np.percentile(y, 25)]),
                np.array([np.percentile(y, 75)]))
    edges = np.linspace(lo, hi, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, n_bins - 1)
    c, med, q1, q3 = [], [], [], []
    for b in range(n_bins):
        v = y[idx == b]
        if v.size:
            c.append((edges[b] + edges[b + 1]) / 2)
            med.append(np.median(v))
            q1.append(np.percentile(v, 25))
            q3.append(np.percentile(v, 75))
    return np.array(c), np.array(med), np.array(q1), np.array(q3)


def band(ax, x, y, n_bins=32, label=None, color=None, alpha=0.2):
    """Binned median of y against x as a line, its interquartile range as a
    band; returns the line."""
    c, med, q1, q3 = binned(x, y, n_bins)
    line, = ax.plot(c, med, lw=1.2, label=label, color=color)
    ax.fill_between(c, q1, q3, alpha=alpha, color=line.get_color(), lw=0)
    return line


def mark_window(ax, c, label=True):
    """A vertical line at the trained context window C."""
    if c is None:
        return
    ax.axvline(c, color="0.3", ls="--", lw=0.9, label=f"trained window C = {c}" if label else None)


def run(prog, body):
    """Run body() -> status; an InputError prints 'prog: message' and gives 1."""
    try:
        return body()
    except InputError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1

