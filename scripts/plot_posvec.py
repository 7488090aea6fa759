#!/usr/bin/python3
"""plot_posvec.py — figures of strata-posvec's CSV outputs (P1, docs/POSVEC.md).
Reads CSV only.

    plot_posvec.py pca DIR [--layers 1,4] -o pca.png         formation DIR
    plot_posvec.py cos DIR [--layers 0,1,4] -o cos.png        formation DIR
    plot_posvec.py norms DIR -o norms.png                     formation DIR
    plot_posvec.py beyond DIR -o beyond.png                   beyond-window DIR
    plot_posvec.py extension DIR [--layer 3] -o ext.png       extension DIR
    plot_posvec.py methods DIR -o methods.png                 methods DIR
"""
import argparse
import csv
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def rows(d, name):
    with open(os.path.join(d, name)) as f:
        return list(csv.DictReader(f))


def col(rs, key, cast=float):
    return np.array([cast(r[key]) for r in rs])


def by_layer(rs):
    out = {}
    for r in rs:
        out.setdefault(int(r["layer"]), []).append(r)
    return out


def plot_pca(a, fig):
    L = by_layer(rows(a.dir, "pca_scores.csv"))
    var = by_layer(rows(a.dir, "pca_var.csv"))
    layers = [int(x) for x in a.layers.split(",")] if a.layers else sorted(L)[1::max(1, len(L) // 2)][:2]
    axs = fig.subplots(1, len(layers), squeeze=False)[0]
    for ax, l in zip(axs, layers):
        rs = L[l]
        t = col(rs, "t")
        sc = ax.scatter(col(rs, "pc1"), col(rs, "pc2"), c=t, s=6, cmap="viridis")
        ex = col(var[l], "explained")
        ax.set_title(f"boundary {l}: PC1 {100 * ex[0]:.0f}%, PC2 {100 * ex[1]:.0f}%")
        ax.set_xlabel("PC1")
        ax.set_ylabel("PC2")
        for k in range(min(4, len(t))):
            ax.annotate(str(int(t[k])), (col(rs, "pc1")[k], col(rs, "pc2")[k]), fontsize=7, color="red")
        fig.colorbar(sc, ax=ax, label="position t")


def plot_cos(a, fig):
    L = by_layer(rows(a.dir, "cos.csv"))
    layers = [int(x) for x in a.layers.split(",")] if a.layers else sorted(L)[:: max(1, len(L) // 3)][:3]
    axs = fig.subplots(1, len(layers), squeeze=False)[0]
    for ax, l in zip(axs, layers):
        rs = L[l]
        ts = sorted(set(col(rs, "t1", int)))
        idx = {t: i for i, t in enumerate(ts)}
        m = np.full((len(ts), len(ts)), np.nan)
        for r in rs:
            m[idx[int(r["t1"])], idx[int(r["t2"])]] = float(r["cos"])
        im = ax.imshow(m, origin="lower", cmap="magma", vmin=np.nanmin(m), vmax=1,
                       extent=[ts[0], ts[-1], ts[0], ts[-1]])
        ax.set_title(f"cos p[{l},t1], p[{l},t2]")
        ax.set_xlabel("t2")
        ax.set_ylabel("t1")
        fig.colorbar(im, ax=ax)


def plot_norms(a, fig):
    L = by_layer(rows(a.dir, "norms.csv"))
    ax1, ax2 = fig.subplots(1, 2)
    for l, rs in sorted(L.items()):
        t = col(rs, "t")
        ax1.plot(t + 1, col(rs, "p_norm"), label=f"b={l}")
        ax2.plot(t + 1, col(rs, "m_norm"), label=f"b={l}")
    for ax, what in ((ax1, "|p[b,t]|"), (ax2, "|m[b,t]| = |p - u|")):
        ax.set_xscale("log")
        ax.set_xlabel("position t + 1")
        ax.set_ylabel(what)
        ax.legend(fontsize=7)


def plot_beyond(a, fig):
    m = by_layer(rows(a.dir, "beyond_match.csv"))
    ppl = rows(a.dir, "beyond_ppl.csv")
    ax1, ax2, ax3 = fig.subplots(1, 3)
    for l, rs in sorted(m.items()):
        ax1.plot(col(rs, "t"), col(rs, "max_cos"), label=f"b={l}", lw=0.8)
        ax2.plot(col(rs, "t"), col(rs, "best_t"), ".", ms=2, label=f"b={l}")
    ax1.set_xlabel("position t (beyond the window)")
    ax1.set_ylabel("max cos to in-window p")
    ax2.set_xlabel("position t")
    ax2.set_ylabel("best-matching in-window position")
    ax1.legend(fontsize=7)
    ax3.plot((col(ppl, "start") + col(ppl, "end")) / 2, col(ppl, "ppl"), "o-")
    ax3.set_xlabel("position")
    ax3.set_ylabel("perplexity (bucket)")


def plot_extension(a, fig):
    m = rows(a.dir, "extension_match.csv")
    h = rows(a.dir, "extension_heatmap.csv")
    layer = a.layer if a.layer is not None else max(int(r["layer"]) for r in m) // 2
    ax1, ax2 = fig.subplots(1, 2)
    for name in dict.fromkeys(r["run"] for r in m):
        rs = [r for r in m if r["run"] == name and int(r["layer"]) == layer]
        ax1.plot(col(rs, "t"), col(rs, "best_t"), ".", ms=2, label=name)
    ax1.set_xlabel("extended position t")
    ax1.set_ylabel(f"best-matching original position (b={layer})")
    ax1.legend(fontsize=7, markerscale=4)
    name = a.method or [r["run"] for r in h if r["run"] != "direct"][0]
    rs = [r for r in h if r["run"] == name and int(r["layer"]) == layer]
    te, to = sorted(set(col(rs, "t_ext", int))), sorted(set(col(rs, "t_orig", int)))
    M = np.full((len(te), len(to)), np.nan)
    ie, io = {t: i for i, t in enumerate(te)}, {t: i for i, t in enumerate(to)}
    for r in rs:
        M[ie[int(r["t_ext"])], io[int(r["t_orig"])]] = float(r["cos"])
    im = ax2.imshow(M, origin="lower", aspect="auto", cmap="magma",
                    extent=[to[0], to[-1], te[0], te[-1]])
    ax2.set_xlabel("original position")
    ax2.set_ylabel(f"extended position ({name})")
    fig.colorbar(im, ax=ax2, label="cos")


def plot_methods(a, fig):
    rs = rows(a.dir, "methods.csv")
    ax = fig.subplots(1, 1)
    for name in dict.fromkeys(r["method"] for r in rs):
        s = [r for r in rs if r["method"] == name]
        ax.plot(col(s, "length"), col(s, "ppl"), "o-", label=name)
    ax.set_xlabel("input length (tokens)")
    ax.set_ylabel("perplexity")
    ax.set_yscale("log")
    ax.legend(fontsize=7)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["pca", "cos", "norms", "beyond", "extension", "methods"])
    ap.add_argument("dir", help="the -o DIR of the strata-posvec subcommand")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--layers", help="boundaries to show (pca, cos)")
    ap.add_argument("--layer", type=int, help="boundary (extension)")
    ap.add_argument("--method", help="method of the extension heatmap")
    ap.add_argument("--title", default="")
    a = ap.parse_args()
    wide = {"pca": 10, "cos": 13, "norms": 10, "beyond": 14, "extension": 11, "methods": 6}[a.kind]
    fig = plt.figure(figsize=(wide, 4))
    globals()["plot_" + a.kind](a, fig)
    if a.title:
        fig.suptitle(a.title)
    fig.tight_layout()
    fig.savefig(a.output, dpi=80)


if __name__ == "__main__":
    main()
