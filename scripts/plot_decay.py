#!/usr/bin/python3
"""plot_decay.py — the figures of P2 ("Base of RoPE bounds context length",
Men et al. 2024; ../shared/docs/PAPERS.md) from the CSVs strata-decay writes.

  curve CSV      B(m)/(d/2) against m, one line per base, with each base's
                 first negative m marked (the paper's decay figure);
                 upper_norm is drawn dashed when the CSV has it
  bound CSV      lower bound of the base against context length, log-log,
                 with the power-law fit base = a * L^k
  empirical CSV  mean attention logit (and probability) against relative
                 distance, one line per layer (head -1 = mean over heads)
  gap CSV        similar-vs-random logit gap against distance, per layer

Why these pictures: the theory says B(m) must stay >= 0 over the context,
so the curve's first zero crossing and the bound's growth with L are the
results; the empirical ones show whether a model's attention behaves so.
Reads CSV only (lines starting with '#' are skipped); matplotlib Agg.
"""
import argparse
import csv
import math
import os
import sys

PROG = "plot_decay"
NEED = {
    "curve": ("base", "m", "b_norm"),
    "bound": ("length", "base", "fit_a", "fit_k"),
    "empirical": ("layer", "head", "distance", "logit_mean", "prob_mean"),
    "gap": ("layer", "head", "distance", "gap"),
}


class InputError(Exception):
    pass


def read_csv(path, need):
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(ln for ln in f if not ln.startswith("#")))
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}")
    except (csv.Error, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not a readable CSV: {e}")
    cols = set(rows[0].keys()) if rows else set()
    missing = [c for c in need if c not in cols]
    if not rows or missing:
        raise InputError(f"{path}: expected columns {', '.join(need)}; "
                         + (f"missing {', '.join(missing)}" if rows else "no data rows"))
    out = []
    for i, r in enumerate(rows, start=2):
        try:
            out.append({k: float(v) for k, v in r.items() if k is not None and v not in (None, "")})
        except ValueError:
            raise InputError(f"{path}: line {i}: non-numeric value in {r}")
    return out


def by(rows, key):
    groups = {}
    for r in rows:
        groups.setdefault(r[key], []).append(r)
    return groups


def plot_curve(rows, ax):
    ax_u = ax.twinx() if "upper_norm" in rows[0] else None
    if ax_u:
        ax_u.set_ylabel("upper bound / (d/2) (dashed)")
    for base, rs in sorted(by(rows, "base").items()):
        rs.sort(key=lambda r: r["m"])
        m = [r["m"] for r in rs]
        line, = ax.plot(m, [r["b_norm"] for r in rs], lw=1, label=f"base {base:g}")
        if ax_u and "upper_norm" in rs[0]:
            ax_u.plot(m, [r["upper_norm"] for r in rs], lw=0.8, ls="--", color=line.get_color())
        neg = next((r["m"] for r in rs if r["b_norm"] < 0), None)
        if neg is not None:
            ax.axvline(neg, color=line.get_color(), lw=0.6, ls=":")
            ax.annotate(f"{neg:.0f}", (neg, 0), fontsize=7, color=line.get_color(),
                        xytext=(2, 4), textcoords="offset points")
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xlabel("relative distance m")
    ax.set_ylabel("B(m) / (d/2)")
    ax.set_title("RoPE long-term decay B(m)/(d/2) (dotted: first m with B < 0)")
    ax.legend(fontsize=8)


def plot_bound(rows, ax):
    good = [r for r in rows if r["base"] > 0]
    if not good:
        raise InputError("no length has a bound on the grid")
    L = [r["length"] for r in good]
    ax.loglog(L, [r["base"] for r in good], "^", color="tab:blue", label="lower bound (grid)")
    a, k = good[0]["fit_a"], good[0]["fit_k"]
    if math.isfinite(a) and math.isfinite(k):
        xs = [min(L) * (max(L) / min(L)) ** (i / 50) for i in range(51)]
        ax.loglog(xs, [a * x ** k for x in xs], "-", color="tab:red",
                  label=f"fit base = {a:.4g} L^{k:.4g}")
    for r in rows:
        if r.get("differs") == 1:
            ax.loglog([r["length"]], [r["base_f64"]], "o", mfc="none", color="tab:green",
                      label="double-precision answer where float32 differs")
    ax.set_xlabel("context length L")
    ax.set_ylabel("lower bound of RoPE's base")
    ax.set_title("Base of RoPE bounds context length")
    ax.grid(True, which="both", ls=":", lw=0.5)
    ax.legend(fontsize=8)


def plot_layers(rows, ax, col, ylabel, title):
    mean = [r for r in rows if r["head"] == -1] or rows
    for layer, rs in sorted(by(mean, "layer").items()):
        rs.sort(key=lambda r: r["distance"])
        ax.plot([r["distance"] for r in rs], [r[col] for r in rs], lw=1, label=f"layer {layer:.0f}")
    ax.set_xlabel("relative distance m = i - j")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)


def main(argv=None):
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    ap.add_argument("kind", choices=sorted(NEED), help="which CSV of strata-decay")
    ap.add_argument("csv")
    ap.add_argument("-o", "--output", help="PNG (default: the CSV's path with .png)")
    ap.add_argument("--title", help="appended to the title")
    a = ap.parse_args(argv)
    out = a.output or os.path.splitext(a.csv)[0] + ".png"
    try:
        rows = read_csv(a.csv, NEED[a.kind])
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        if a.kind == "empirical":
            fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=100)
            plot_layers(rows, ax, "logit_mean", "mean attention logit", "Attention logit vs distance")
            plot_layers(rows, ax2, "prob_mean", "mean attention probability",
                        "Attention probability vs distance")
            ax2.set_yscale("log")
        else:
            fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=100)
            if a.kind == "curve":
                plot_curve(rows, ax)
            elif a.kind == "bound":
                plot_bound(rows, ax)
            else:
                plot_layers(rows, ax, "gap", "logit(similar) - logit(random)",
                            "Similar-vs-random attention gap vs distance")
                ax.axhline(0, color="black", lw=0.6)
        if a.title:
            fig.suptitle(a.title, fontsize=9)
        fig.tight_layout()
        try:
            fig.savefig(out, format="png")
        except OSError as e:
            raise InputError(f"{out}: cannot write: {e.strerror or e}")
        finally:
            plt.close(fig)
    except InputError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    print(f"{PROG}: wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
