#!/usr/bin/python3
"""test_decay.py — bin/strata-decay end to end (P2, RoPE decay).

Checks: `bound --dim 128` prints a CSV with columns length, base, one row per
default length (the time is printed, not asserted); the power-law fit
reproduces the rows it was fit on within its own max residual; `curve` agrees
with numpy's direct sum (tolerance 1e-9) and reports the first negative m;
`check` on written config.json files gives the verdict the bound predicts (a
base below the bound fails, above passes; linear rope_scaling lowers the
frequencies so a failing base passes), and reads a llama2.c checkpoint;
`empirical` on a small probe-attn-shaped file; the plot script makes PNGs
from the CSVs; bad input (no --dim, negative base, malformed JSON, missing
file) exits non-zero with a message, not a crash.
"""
import csv
import io
import json
import math
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pycheck import BINDIR, ROOT, SHARED, check, main, run  # noqa: E402

PROG = os.path.join(BINDIR, "strata-decay")
PLOT = os.path.join(ROOT, "scripts", "plot_decay.py")
PAPER_L = [1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 512000, 1000000]


def rows_of(text):
    return list(csv.DictReader(io.StringIO(text)))


def is_png(path):
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError:
        return False
    return head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", head[16:24])[0] > 100


def fails(label, cmd):
    rc, _, err = run(cmd)
    check(rc != 0, f"{label}: non-zero exit (got {rc})")
    check("strata-decay" in err and "Sanitizer" not in err and len(err) < 2000,
          f"{label}: one clear message: {err!r}")


def write_config(path, **kw):
    cfg = {"architectures": ["LlamaForCausalLM"], "hidden_size": 4096,
           "num_attention_heads": 32, "max_position_embeddings": 4096}
    cfg.update(kw)
    with open(path, "w") as f:
        json.dump(cfg, f)


def body(tmp):
    # --- bound at paper scale
    t0 = time.time()
    rc, out, err = run([PROG, "bound", "--dim", "128"])
    dt = time.time() - t0
    print(f"bound --dim 128: {dt:.2f} s wall; {err.strip()}")
    check(rc == 0, f"bound exits 0 ({err})")
    rows = rows_of(out)
    check(rows and "length" in rows[0] and "base" in rows[0], "columns length, base")
    check([int(r["length"]) for r in rows] == PAPER_L, "one row per default length")
    bases = [float(r["base"]) for r in rows]
    check(all(b > 0 for b in bases), f"every default length has a bound on the grid: {bases}")
    check(all(b2 >= b1 for b1, b2 in zip(bases, bases[1:])), "bound non-decreasing in L")
    for r in rows:
        print(f"  L={r['length']:>8} base={float(r['base']):.3g}  margin min B={float(r['min_b']):.3g}"
              f"  base below fails at m={r['prev_first_neg']} (B={float(r['prev_b']):.3g})")
    a, k = float(rows[0]["fit_a"]), float(rows[0]["fit_k"])
    resid = max(abs(math.log(float(r["base"]) / (a * float(r["length"]) ** k))) for r in rows)
    check(all(abs(float(r["log_resid"]) - abs(math.log(float(r["base"]) /
              (a * float(r["length"]) ** k)))) < 1e-4 for r in rows), "log_resid matches the fit")
    check(resid < 0.6, f"fit reproduces its rows within its residual (max |ln| {resid:.3f})")
    # least squares independently
    xs = [math.log(float(r["length"])) for r in rows]
    ys = [math.log(float(r["base"])) for r in rows]
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    kk = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    check(abs(kk - k) < 1e-6 and abs(math.exp(my - kk * mx) - a) / a < 1e-6,
          f"fit equals numpy-free least squares: k {k} vs {kk}")
    print(f"  fit: base = {a:.4g} * L^{k:.4g}")
    with open(os.path.join(tmp, "bound.csv"), "w") as f:
        f.write(out)
    by_len = {int(r["length"]): float(r["base"]) for r in rows}

    # --- float32 comparison on a few lengths (the whole table in the demo)
    rc, out32, err = run([PROG, "bound", "--dim", "128", "--lengths", "1000,8000,64000", "--float32"])
    check(rc == 0 and "differs" in out32, f"bound --float32 ({err})")
    for r in rows_of(out32):
        check(float(r["base_f64"]) == by_len[int(r["length"])], "base_f64 equals the double run")
        print(f"  float32 L={r['length']}: {float(r['base']):.3g} (double {float(r['base_f64']):.3g})")

    # --- curve against numpy
    import numpy as np
    cpath = os.path.join(tmp, "curve.csv")
    spath = os.path.join(tmp, "summary.csv")
    rc, _, err = run([PROG, "curve", "--base", "10000,500000", "--dim", "64", "--max-dist", "3000",
                      "--upper", "-o", cpath, "--summary", spath])
    check(rc == 0, f"curve exits 0 ({err})")
    crow = rows_of(open(cpath).read())
    check(len(crow) == 2 * 3001, f"curve rows: {len(crow)}")
    worst = 0.0
    for r in crow[::37]:
        b, m = float(r["base"]), int(r["m"])
        th = b ** (-np.arange(32) * 2.0 / 64)
        worst = max(worst, abs(float(r["b"]) - np.cos(m * th).sum()))
        z = np.cumsum(np.exp(1j * m * th))
        worst = max(worst, abs(float(r["upper"]) - np.abs(z).sum()) / 100)
    check(worst < 1e-9, f"curve vs numpy: max |diff| {worst:.3g}")
    summ = rows_of(open(spath).read())
    for s in summ:
        th = float(s["base"]) ** (-np.arange(32) * 2.0 / 64)
        ms = np.arange(3001)
        bb = np.cos(np.outer(ms, th)).sum(1)
        neg = np.nonzero(bb < 0)[0]
        want = int(neg[0]) if len(neg) else -1
        check(int(s["first_neg"]) == want, f"first negative m for base {s['base']}: {s['first_neg']} vs {want}")

    # --- check verdicts
    b16k = by_len[16000]
    lo = os.path.join(tmp, "lo.json")
    write_config(lo, rope_theta=b16k / 2, max_position_embeddings=16000)
    rc, out, err = run([PROG, "check", "--config", lo])
    r = rows_of(out)[0] if rc == 0 else {}
    check(r.get("verdict") == "fail" and float(r.get("ratio", 9)) < 1, f"base below the bound fails: {out} {err}")
    hi = os.path.join(tmp, "hi.json")
    write_config(hi, rope_theta=b16k * 1.5, max_position_embeddings=16000)
    rc, out, err = run([PROG, "check", "--config", hi])
    r = rows_of(out)[0] if rc == 0 else {}
    check(r.get("verdict") == "pass" and float(r.get("ratio", 0)) > 1, f"base above the bound passes: {out} {err}")
    check(r.get("head_dim") == "128" and float(r.get("bound", 0)) == b16k, "head_dim and bound reported")
    # --context overrides; Llama-2 (base 1e4, 4096) fails its own context per the theory
    d = os.path.join(tmp, "llama2")
    os.makedirs(d, exist_ok=True)
    write_config(os.path.join(d, "config.json"), rope_theta=10000.0)
    rc, out, err = run([PROG, "check", "--config", d, "--context", "1000"])
    check(rc == 0 and rows_of(out)[0]["verdict"] == "pass", f"base 1e4 passes context 1000: {out}{err}")
    rc, out, err = run([PROG, "check", "--config", d])
    check(rc == 0 and rows_of(out)[0]["verdict"] == "fail", f"base 1e4 fails context 4096: {out}{err}")
    # linear scaling by 8 slows every frequency: first negative moves out by 8x
    lin = os.path.join(tmp, "lin.json")
    write_config(lin, rope_theta=10000.0, max_position_embeddings=16384,
                 rope_scaling={"type": "linear", "factor": 8.0})
    rc, out, err = run([PROG, "check", "--config", lin])
    r = rows_of(out)[0] if rc == 0 else {}
    check(r.get("scaling") == "linear:8" and r.get("verdict") == "fail"
          and 8 * 1706 < int(r.get("first_neg", 0)) <= 8 * 1707,
          f"linear x8: first negative m within 8 x (1706, 1707] (base 1e4: 1707): {out}{err}")
    l3 = os.path.join(tmp, "llama3.json")
    write_config(l3, rope_theta=500000.0, max_position_embeddings=131072,
                 rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                               "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})
    rc, out, err = run([PROG, "check", "--config", l3])
    check(rc == 0 and rows_of(out)[0]["scaling"] == "llama3:8", f"llama3 scaling evaluated: {out}{err}")
    print(f"  llama3-style config: {out.strip().splitlines()[-1] if out else err}")
    ck = os.path.join(SHARED, "models", "stories260K", "stories260K.bin")
    if os.path.isfile(ck):
        rc, out, err = run([PROG, "check", "--config", ck])
        check(rc == 0 and rows_of(out)[0]["head_dim"] == "8", f"llama2.c checkpoint: {out}{err}")

    # --- empirical from a probe-attn-shaped file
    try:
        import h5py
        ap = os.path.join(tmp, "attn.h5")
        with h5py.File(ap, "w") as f:
            f["layers"] = np.array([0, 2], dtype=np.int32)
            f["heads"] = np.array([0, 1], dtype=np.int32)
            T = 6
            lg = np.arange(2 * 2 * T, dtype=np.float64).reshape(2, 2, T)
            f["dist/logit_mean"] = lg
            f["dist/prob_mean"] = lg / 100
            cnt = np.tile(np.arange(T, 0, -1, dtype=np.float64), (2, 2, 1))
            cnt[:, :, 5] = 0
            f["dist/count"] = cnt
        epath = os.path.join(tmp, "emp.csv")
        rc, _, err = run([PROG, "empirical", ap, "-o", epath])
        er = rows_of(open(epath).read()) if rc == 0 else []
        check(len(er) == 2 * 5 * 3, f"empirical rows (2 layers x 5 distances x (2 heads + mean)): {len(er)} {err}")
        m = [r for r in er if r["layer"] == "2" and r["head"] == "-1" and r["distance"] == "3"]
        check(m and abs(float(m[0]["logit_mean"]) - (lg[1, 0, 3] + lg[1, 1, 3]) / 2) < 1e-9,
              "empirical head mean")
        rc, _, err = run([sys.executable, PLOT, "empirical", epath])
        check(rc == 0 and is_png(os.path.join(tmp, "emp.png")), f"empirical plot ({err})")
    except ImportError:
        print("  h5py missing: empirical not tested")

    # --- plots
    for kind, src in (("curve", cpath), ("bound", os.path.join(tmp, "bound.csv"))):
        png = os.path.join(tmp, kind + ".png")
        rc, _, err = run([sys.executable, PLOT, kind, src, "-o", png])
        check(rc == 0 and is_png(png), f"plot {kind} makes a PNG ({err})")
    rc, _, err = run([sys.executable, PLOT, "bound", cpath])
    check(rc != 0 and "Traceback" not in err and cpath in err, f"plot of the wrong CSV: {err!r}")

    # --- bad input
    fails("no --dim", [PROG, "bound"])
    fails("odd --dim", [PROG, "bound", "--dim", "7"])
    fails("negative base", [PROG, "curve", "--base", "-5", "--dim", "64", "--max-dist", "10"])
    bad = os.path.join(tmp, "bad.json")
    with open(bad, "w") as f:
        f.write('{"hidden_size": 4096, "num_attention_heads": ')
    fails("malformed config JSON", [PROG, "check", "--config", bad])
    fails("missing file", [PROG, "check", "--config", os.path.join(tmp, "nope.json")])
    fails("missing attn file", [PROG, "empirical", os.path.join(tmp, "nope.h5")])
    fails("unknown command", [PROG, "frobnicate"])
    rc, out, _ = run([PROG, "bound", "--help"])
    check(rc == 0 and "grid" in out, "bound --help")


if __name__ == "__main__":
    main("test_decay_py", body)
