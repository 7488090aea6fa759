#!/usr/bin/python3
"""test_plot.py — scripts/plot_blockinf.py draws a PNG from a Block
Influence CSV and fails cleanly on bad input.

Why: the plot is the one result a person looks at, and a script that
silently writes a blank or broken image, or a traceback on a typo'd path,
is worse than none. The CSV here is written by the test (values chosen so
the lowest-BI blocks are known), so this runs without strata's programs.

Checks: PNG signature and IHDR size plausible, the image holds both bar
colours (highlighted and plain, so bars were drawn), the default output lands
next to the CSV, --help works, and a missing file, a CSV without the required
columns, non-numeric values and an unwritable output each exit non-zero
with one message naming the file. The scores CSV of `strata-blockinf score
--metric all --bootstrap` (variants, empty cells) with --ppl-layer and
--ppl-k gives a grid of panels (perplexity bars and curve in their colours,
every score panel highlighted); bi_lo/bi_hi add whiskers (more dark pixels
than the same plot without them); a variant-only CSV plots; a ppl CSV
without its columns, or missing, fails with one line naming it. Prints "test_plot: N passed, N failed".
"""
import os
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(os.path.dirname(HERE), "scripts", "plot_blockinf.py")

RED, BLUE = (214, 39, 40), (31, 119, 180)  # matplotlib tab:red, tab:blue
GREEN, PURPLE = (44, 160, 44), (148, 103, 189)  # tab:green, tab:purple
from pycheck import check, done  # noqa: E402


def run(*args):
    p = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, timeout=120)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def png_size(path):
    """(width, height) from the IHDR chunk, or None if not a PNG."""
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def colour_pixels(path, rgb):
    """How many pixels of the image are within 2% of colour rgb."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    import numpy as np
    img = mpimg.imread(path)[..., :3]
    return int(np.all(np.abs(img - np.array(rgb) / 255.0) < 0.02, axis=-1).sum())


def dark_pixels(path):
    """Pixels darker than 15% in every channel (black lines, text)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    import numpy as np
    img = mpimg.imread(path)[..., :3]
    return int(np.all(img < 0.15, axis=-1).sum())


def main(tmp):
    # 12 blocks; lowest BI at blocks 9, 8, 10 (ranks 1, 2, 3), like ShortGPT's
    # finding that late blocks, but not the last, matter least.
    bi = [0.62, 0.21, 0.15, 0.12, 0.10, 0.09, 0.08, 0.07, 0.031, 0.02, 0.04, 0.30]
    order = sorted(range(len(bi)), key=lambda l: bi[l])
    rank = {l: r + 1 for r, l in enumerate(order)}
    good = os.path.join(tmp, "bi.csv")
    with open(good, "w") as f:
        f.write("layer,bi,mean_cos,rank,n_tokens\n")
        for l, b in enumerate(bi):
            f.write(f"{l},{b:.9g},{1 - b:.9g},{rank[l]},4096\n")

    rc, _, err = run("--help")
    check(rc == 0, f"--help exits 0 (got {rc}: {err})")

    out = os.path.join(tmp, "custom.png")
    rc, _, err = run(good, "-o", out, "--title", "test-model", "--lowest", "3")
    check(rc == 0, f"plot exits 0 (got {rc}: {err})")
    if check(os.path.isfile(out), "PNG written at -o"):
        size = png_size(out)
        check(size is not None, "output is a PNG (signature and IHDR)")
        if size:
            w, h = size
            check(300 <= w <= 5000 and 200 <= h <= 5000, f"PNG size plausible: {w}x{h}")
        nbytes = os.path.getsize(out)
        check(5_000 <= nbytes <= 5_000_000, f"PNG byte size plausible: {nbytes}")
        # the legend swatch is red too: compare with a run highlighting nothing
        none = os.path.join(tmp, "none.png")
        rc0, _, err0 = run(good, "-o", none, "--lowest", "0")
        check(rc0 == 0, f"--lowest 0 plots (exit {rc0}: {err0})")
        red, red0 = colour_pixels(out, RED), colour_pixels(none, RED) if rc0 == 0 else 0
        check(red > red0 + 300, f"lowest-BI bars drawn in the highlight colour: {red} red "
              f"pixels vs {red0} with nothing highlighted")
        blue = colour_pixels(out, BLUE)
        check(blue > 5000, f"other bars drawn in the plain colour: {blue} pixels")

    rc, _, err = run(good)
    default = os.path.join(tmp, "bi.png")
    check(rc == 0 and png_size(default) is not None,
          f"default output next to the CSV: {default} (exit {rc}: {err})")

    # a CSV without the header's extra columns and in shuffled row order still plots
    minimal = os.path.join(tmp, "minimal.csv")
    with open(minimal, "w") as f:
        f.write("rank,bi,layer\n2,0.1,1\n1,0.05,0\n3,0.2,2\n")
    rc, _, err = run(minimal, "-o", os.path.join(tmp, "minimal.png"))
    check(rc == 0 and png_size(os.path.join(tmp, "minimal.png")) is not None,
          f"minimal CSV (layer, bi, rank only, any order) plots (exit {rc}: {err})")

    def fails(label, path, *extra, names=None):
        rc, _, err = run(path, *extra)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        check(rc != 0, f"{label}: exit non-zero (got {rc})")
        check("Traceback" not in err, f"{label}: a message, not a traceback: {err!r}")
        check(len(lines) == 1 and (names or path) in lines[0],
              f"{label}: one line naming {names or path}: {err!r}")

    fails("missing file", os.path.join(tmp, "no-such.csv"))
    wrong = os.path.join(tmp, "wrong.csv")
    with open(wrong, "w") as f:
        f.write("block,influence\n0,0.5\n1,0.2\n")
    fails("CSV without layer/bi/rank", wrong)
    empty = os.path.join(tmp, "empty.csv")
    open(empty, "w").close()
    fails("empty CSV", empty)
    nonnum = os.path.join(tmp, "nonnum.csv")
    with open(nonnum, "w") as f:
        f.write("layer,bi,rank\n0,abc,1\n")
    fails("non-numeric bi", nonnum)
    bad_out = os.path.join(tmp, "no-such-dir", "x.png")
    fails("output in a missing directory", good, "-o", bad_out, names=bad_out)

    # --- strata-blockinf score --metric all --bootstrap: CIs, variants, ppl panels
    full = os.path.join(tmp, "full.csv")
    var = {"angular": [b * 0.9 + 0.01 for b in bi], "relmag": [min(0.95, 2 * b + 0.2) for b in bi],
           "bi_attn": [b / 2 for b in bi], "bi_mlp": [b / 3 + 0.01 for b in bi]}
    with open(full, "w") as f:
        f.write("layer,bi,mean_cos,rank,n_tokens,bi_lo,bi_hi,bi_stab")
        for m in var:
            f.write(f",{m},{m}_rank,{m}_lo,{m}_hi,{m}_stab")
        f.write("\n")
        for l, b in enumerate(bi):
            f.write(f"{l},{b},{1 - b},{rank[l]},4096,{b * 0.8},{b * 1.2},1")
            for m, v in var.items():
                r = sorted(range(len(v)), key=lambda j: v[j]).index(l) + 1
                # angular with --n 2 has no score for the last block: an empty cell
                cellv = "" if m == "angular" and l == len(bi) - 1 else f"{v[l]}"
                f.write(f",{cellv},{r if cellv else ''},{v[l] * 0.9},{v[l] * 1.1},0.9")
            f.write("\n")
    nocis = os.path.join(tmp, "nocis.csv")
    with open(full) as f, open(nocis, "w") as g:
        g.write(f.read().replace("bi_lo,bi_hi", "bx_lo,bx_hi"))
    ppl_layer = os.path.join(tmp, "ppl_layer.csv")
    with open(ppl_layer, "w") as f:
        f.write("layer,rank,score,mean_nll,ppl,ppl_base,n_tokens\n")
        for l, b in enumerate(bi):
            f.write(f"{l},{rank[l]},{b},0,{4 + 100 * b},4.0,1000\n")
    ppl_k = os.path.join(tmp, "ppl_k.csv")
    with open(ppl_k, "w") as f:
        f.write("k,removed,mean_nll,ppl,n_tokens\n0,,1.4,4.0,1000\n1,9,2,6.0,1000\n"
                "2,9 8,3,20.0,1000\n")
    out_full = os.path.join(tmp, "full.png")
    rc, _, err = run(full, "-o", out_full, "--ppl-layer", ppl_layer, "--ppl-k", ppl_k)
    if check(rc == 0 and png_size(out_full) is not None,
             f"scores with CIs, 4 variants, ppl panels: PNG (exit {rc}: {err})"):
        w, h = png_size(out_full)
        check(w >= 2 * png_size(out)[0] and h >= 2 * png_size(out)[1],
              f"7 panels in a grid: {w}x{h} vs one panel {png_size(out)}")
        green, purple = colour_pixels(out_full, GREEN), colour_pixels(out_full, PURPLE)
        check(green > 3000, f"ppl-per-removed-block bars drawn: {green} green pixels")
        check(purple > 100, f"ppl-against-K curve drawn: {purple} purple pixels")
        check(colour_pixels(out_full, RED) > 5 * red,
              f"lowest blocks highlighted in every score panel: {colour_pixels(out_full, RED)} "
              f"red pixels vs {red} in one panel")
    # confidence bands: the same data with and without bi_lo/bi_hi (one panel)
    one_ci, one_no = os.path.join(tmp, "one_ci.csv"), os.path.join(tmp, "one_no.csv")
    with open(one_ci, "w") as f, open(one_no, "w") as g:
        f.write("layer,bi,rank,bi_lo,bi_hi\n")
        g.write("layer,bi,rank\n")
        for l, b in enumerate(bi):
            f.write(f"{l},{b},{rank[l]},{b * 0.7},{b * 1.3}\n")
            g.write(f"{l},{b},{rank[l]}\n")
    pa, pb = os.path.join(tmp, "one_ci.png"), os.path.join(tmp, "one_no.png")
    rca, _, ea = run(one_ci, "-o", pa)
    rcb, _, eb = run(one_no, "-o", pb)
    if check(rca == 0 and rcb == 0, f"one-panel plots with and without CI ({ea} {eb})"):
        da, db = dark_pixels(pa), dark_pixels(pb)
        # the title's " with bootstrap CI" adds ~180 dark pixels; 12 whiskers ~400 more
        check(da > db + 400, f"CI whiskers drawn: {da} dark pixels vs {db} without bi_lo/bi_hi")
    # a CSV of one variant only (no bi column) plots
    ang = os.path.join(tmp, "angular.csv")
    with open(ang, "w") as f:
        f.write("layer,n_tokens,angular,angular_rank\n0,10,0.3,3\n1,10,0.1,1\n2,10,0.2,2\n")
    rc, _, err = run(ang, "-o", os.path.join(tmp, "angular.png"))
    check(rc == 0, f"angular-only CSV plots (exit {rc}: {err})")
    bad_pl = os.path.join(tmp, "bad_ppl_layer.csv")
    with open(bad_pl, "w") as f:
        f.write("layer,nll\n0,1.0\n")
    fails("ppl-layer CSV without ppl", good, "--ppl-layer", bad_pl, "-o",
          os.path.join(tmp, "x.png"), names=bad_pl)
    fails("missing ppl-k CSV", good, "--ppl-k", os.path.join(tmp, "no-k.csv"), "-o",
          os.path.join(tmp, "x.png"), names=os.path.join(tmp, "no-k.csv"))


if __name__ == "__main__":
    tmp = os.environ.get("STRATA_TMP")
    owned = None
    if tmp:
        tmp = os.path.join(tmp, "plot")
        os.makedirs(tmp, exist_ok=True)
    else:
        tmp = owned = tempfile.mkdtemp(prefix="strata-plot.")
    try:
        main(tmp)
    except Exception as e:  # still print the result line
        import traceback
        traceback.print_exc()
        check(False, f"unexpected exception: {e!r}")
    finally:
        if owned:
            shutil.rmtree(owned, ignore_errors=True)
    done("test_plot")
