#!/usr/bin/python3
"""plot_blockinf.py — bar chart of Block Influence per block (ShortGPT,
Men et al. 2024; P3 in ../shared/docs/PAPERS.md) from the CSV that
strata-blockinf writes.

Why a chart: ShortGPT removes the k blocks with the lowest BI, so the
picture to look at is where those blocks sit in depth (the paper finds them
late, but not the very last). The lowest-k bars are coloured and labelled
with their rank so the pruning order reads off the figure.

Reads the CSV only (columns layer, bi, rank; others are ignored), never the
HDF5 dump, so plotting needs neither strata nor h5py.
"""
import argparse
import csv
import os
import sys

PROG = "plot_blockinf"
REQUIRED = ("layer", "bi", "rank")


class InputError(Exception):
    pass


def read_csv(path):
    """(layers, bi, ranks) sorted by layer; InputError naming path otherwise."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(ln for ln in f if not ln.startswith("#")))
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}")
    except (csv.Error, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not a readable CSV: {e}")
    cols = [c.strip() for c in (rows[0].keys() if rows else [])]
    missing = [c for c in REQUIRED if c not in cols]
    if not rows or missing:
        raise InputError(f"{path}: expected a strata-blockinf CSV with columns "
                         f"{', '.join(REQUIRED)}; "
                         + (f"missing {', '.join(missing)}" if rows else "no data rows"))
    data = []
    for i, r in enumerate(rows, start=2):
        r = {k.strip(): (v or "").strip() for k, v in r.items() if k is not None}
        try:
            data.append((int(r["layer"]), float(r["bi"]), int(r["rank"])))
        except ValueError:
            raise InputError(f"{path}: line {i}: layer, bi, rank must be numbers: "
                             f"{r['layer']!r}, {r['bi']!r}, {r['rank']!r}")
    data.sort()
    return [d[0] for d in data], [d[1] for d in data], [d[2] for d in data]


def plot(layers, bi, ranks, out, title, lowest):
    import matplotlib
    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    n = len(layers)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * n + 2.0), 4.0), dpi=100)
    hot = [r <= lowest for r in ranks]
    colors = ["tab:red" if h else "tab:blue" for h in hot]
    bars = ax.bar(layers, bi, color=colors, edgecolor="black", linewidth=0.4)
    for b, r, h in zip(bars, ranks, hot):
        if h:
            y = b.get_height()
            ax.annotate(f"#{r}", (b.get_x() + b.get_width() / 2, y),
                        xytext=(0, 3 if y >= 0 else -12), textcoords="offset points",
                        ha="center", fontsize=8, color="tab:red")
    ax.set_xlabel("block l (0 = first)")
    ax.set_ylabel(r"Block Influence  BI$_l$ = 1 − mean cos($X_l$, $X_{l+1}$)")
    ax.set_title("Block Influence per block" + (f" — {title}" if title else ""))
    if n <= 40:
        ax.set_xticks(layers)
    ax.margins(y=0.12)
    from matplotlib.patches import Patch
    handles = [Patch(color="tab:blue", label="other blocks")]
    if lowest > 0:
        handles.insert(0, Patch(color="tab:red", label=f"lowest {min(lowest, n)} BI "
                                "(#rank: removal order)"))
    ax.legend(handles=handles, fontsize=8, loc="best")
    fig.tight_layout()
    try:
        fig.savefig(out, format="png")
    finally:
        plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog=PROG,
        description="Plot Block Influence per block from a strata-blockinf CSV "
                    "(columns layer, bi, rank) as a PNG bar chart; the k lowest-BI "
                    "blocks are highlighted with their rank.")
    ap.add_argument("csv", help="CSV written by strata-blockinf")
    ap.add_argument("-o", "--output", help="PNG to write (default: the CSV's path with .png)")
    ap.add_argument("--title", help="model name for the title")
    ap.add_argument("-k", "--lowest", type=int, default=3,
                    help="how many lowest-BI blocks to highlight (default 3)")
    a = ap.parse_args(argv)
    out = a.output or os.path.splitext(a.csv)[0] + ".png"
    try:
        if a.lowest < 0:
            raise InputError(f"--lowest {a.lowest}: must be 0 or more")
        layers, bi, ranks = read_csv(a.csv)
        try:
            plot(layers, bi, ranks, out, a.title, a.lowest)
        except OSError as e:
            raise InputError(f"{out}: cannot write: {e.strerror or e}")
    except InputError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    print(f"{PROG}: wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
