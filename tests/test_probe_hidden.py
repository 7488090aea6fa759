"""test_probe_hidden.py — strata-probe-hidden for batch runs (issue 4).

Checks, against independent computations with h5py/numpy:
  - identical inputs give byte-identical files (cmp);
  - a run stopped after k samples (STRATA_STOP_AFTER, and a real SIGTERM) and
    continued with --resume is byte-identical to an uninterrupted run;
    --resume with another option is refused naming the attribute;
  - --layers/--positions/--sites keep exactly those rows of the full dump,
    and the sub-block outputs add up: resid[l+1] = resid[l] + attn_out[l] +
    mlp_out[l] (the residual stream's definition), to float32 rounding;
  - --append adds new draws (none repeats) equal to a run's next samples;
    shards (--sample-offset) read together give the BI of one run;
  - jsonl, a directory of .txt files and pre-tokenized ids give the same
    samples as the plain text corpus they were made from."""
import os
import signal
import subprocess

import h5py
import numpy as np

from pycheck import BINDIR, CORPUS, SHARED, TOK, check, main, run, run_interrupted

PROBE = os.path.abspath(os.path.join(BINDIR, "strata-probe-hidden"))
BLOCKINF = os.path.join(BINDIR, "strata-blockinf")
MODEL = os.path.join(SHARED, "models/stories260K/stories260K.bin")


def probe(out, *extra, corpus=CORPUS, samples=5, env=None):
    """Run in out's directory with -o its base name: the command line, which
    the file records, is then the same for runs in different directories."""
    cmd = [PROBE, "--model", MODEL, "--tokenizer", TOK, "--corpus", corpus, "--samples",
           str(samples), "--seq-len", "96", "--seed", "7", *extra, "-o", os.path.basename(out)]
    p = subprocess.run(cmd, capture_output=True, env={**os.environ, **(env or {})}, timeout=300,
                       cwd=os.path.dirname(out))
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def subprocess_run(cmd, cwd):
    p = subprocess.run(cmd, capture_output=True, timeout=300, cwd=cwd)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def same_bytes(a, b):
    with open(a, "rb") as x, open(b, "rb") as y:
        return x.read() == y.read()


def body(tmp):
    d = {k: os.path.join(tmp, k) for k in ("a", "b", "c", "e", "f")}
    for v in d.values():
        os.makedirs(v, exist_ok=True)
    sel = ["--layers", "0,2-4", "--positions", "0-15,16-95:8", "--sites", "resid,attn_out,mlp_out"]

    # identical runs, identical bytes (same output name, different directories)
    for k in ("a", "b"):
        rc, _, err = probe(os.path.join(d[k], "out.h5"), *sel)
        check(rc == 0, f"probe run {k}: {err}")
    check(same_bytes(os.path.join(d["a"], "out.h5"), os.path.join(d["b"], "out.h5")),
          "two identical runs give identical files")

    # batching (--batch 0: 21 of these 96-token windows a pass) and an odd
    # batch against one window a pass (the default): the same data bit for
    # bit for this model
    one = os.path.join(tmp, "batch1.h5")
    three = os.path.join(tmp, "batch3.h5")
    for path, b in ((one, "0"), (three, "3")):
        rc, _, err = probe(path, *sel, "--batch", b)
        check(rc == 0, f"--batch {b}: {err}")
    with h5py.File(os.path.join(d["a"], "out.h5"), "r") as A, h5py.File(one, "r") as B, \
            h5py.File(three, "r") as C:
        for name in ("hidden", "attn_out", "mlp_out", "tokens"):
            check(A[name][:].tobytes() == B[name][:].tobytes() == C[name][:].tobytes(),
                  f"/{name}: batched, --batch 1 and --batch 3 equal bit for bit")

    # stopped after 2 samples, resumed: the same bytes
    out_c = os.path.join(d["c"], "out.h5")
    rc, _, err = probe(out_c, *sel, env={"STRATA_STOP_AFTER": "2"})
    check(rc == 130 and os.path.exists(out_c + ".partial") and not os.path.exists(out_c),
          f"stopped run leaves only .partial (rc {rc}: {err})")
    with h5py.File(out_c + ".partial", "r") as f:
        check(int(f.attrs["n_complete"]) == 2 and int(f.attrs["complete"]) == 0,
              "the .partial says 2 samples are complete")
    rc, _, err = probe(out_c, *sel, "--seed", "8", "--resume")
    check(rc != 0 and "`seed`" in err, f"resume with another seed is refused naming it: {err}")
    rc, _, err = probe(out_c, *sel, "--resume", samples=9)
    check(rc == 2 and "--samples 9" in err and "5 samples" in err,
          f"resume with another --samples is refused, not silently run to the old count: {err}")
    rc, _, err = probe(out_c, *sel, "--resume")
    check(rc == 0, f"resume: {err}")
    check(same_bytes(os.path.join(d["a"], "out.h5"), out_c), "resumed run is byte-identical")

    # a real SIGTERM in the middle of a longer run, then resume
    long_args = ["--samples", "40"]
    out_e = os.path.join(d["e"], "out.h5")
    cmd = [PROBE, "--model", MODEL, "--tokenizer", TOK, "--corpus", CORPUS, "--seq-len", "96",
           "--seed", "7", *long_args, "-o", "out.h5"]
    # synchronised on the probe's own event: it pauses once 3 samples are
    # complete and waits for the signal
    rc, _, paused = run_interrupted(cmd, 3, signal.SIGTERM, cwd=d["e"])
    check(paused and rc == 130, f"SIGTERM after the pause stops the run (paused {paused}, rc {rc})")
    with h5py.File(out_e + ".partial", "r") as f:
        k = int(f.attrs["n_complete"])
    check(k == 3, f"SIGTERM left {k} of 40 samples (3 expected)")
    rc, _, err = subprocess_run(cmd + ["--resume"], d["e"])
    check(rc == 0, f"resume after SIGTERM: {err}")
    out_f = os.path.join(d["f"], "out.h5")
    rc, _, err = subprocess_run(cmd, d["f"])
    check(rc == 0 and same_bytes(out_e, out_f), "SIGTERM + resume equals an uninterrupted run")

    # selections equal the full dump's rows; sub-blocks add up
    full = os.path.join(tmp, "full.h5")
    rc, _, err = probe(full)
    check(rc == 0, f"full run: {err}")
    with h5py.File(full, "r") as F, h5py.File(os.path.join(d["a"], "out.h5"), "r") as S:
        lay, pos, blk = S["layers"][:], S["positions"][:], S["blocks"][:]
        check(list(lay) == [0, 2, 3, 4] and list(blk) == [0, 2, 3, 4], "kept layers and blocks")
        check(list(pos) == list(range(16)) + list(range(16, 96, 8)), "kept positions")
        h = F["hidden"][:]
        want = h[:, lay][:, :, pos]
        check(np.array_equal(S["hidden"][:], want), "selected resid rows equal the full dump's")
        check(np.array_equal(S["tokens"][:], F["tokens"][:]), "same tokens")
        a, m = S["attn_out"][:], S["mlp_out"][:]
        for i, l in enumerate(blk):
            step = h[:, l + 1][:, pos] - h[:, l][:, pos]
            err = np.abs(step - (a[:, i] + m[:, i])).max() / np.abs(step).max()
            check(err < 1e-5, f"block {l}: resid step = attn_out + mlp_out (rel err {err:.2e})")

    # append continues the draws; equals the samples 5..7 of an 8-sample run
    app = os.path.join(tmp, "app.h5")
    rc, _, _ = probe(app)
    rc2, _, err = probe(app, "--append", samples=3)
    check(rc == 0 and rc2 == 0, f"append: {err}")
    big = os.path.join(tmp, "big.h5")
    probe(big, samples=8)
    with h5py.File(app, "r") as A, h5py.File(big, "r") as G:
        draws = A["sample_draw"][:]
        check(A["hidden"].shape[0] == 8 and int(A.attrs["complete"]) == 1, "appended to 8 samples")
        check(sorted(draws) == list(range(8)), f"draws 0..7, none repeated: {draws}")
        gd = list(G["sample_draw"][:])
        rows = [gd.index(x) for x in draws[5:]]
        check(np.array_equal(A["hidden"][5:], G["hidden"][rows]), "appended samples = draws 5..7")

    # shards read together = one run (Block Influence CSV)
    s1, s2 = os.path.join(tmp, "s1.h5"), os.path.join(tmp, "s2.h5")
    probe(s1, samples=4)
    probe(s2, "--sample-offset", "4", samples=4)
    _, one, _ = run([BLOCKINF, big])
    _, two, _ = run([BLOCKINF, s1, s2])
    # the comment line names the inputs, which differ; the table must not
    body1 = [ln for ln in one.splitlines() if not ln.startswith("#")]
    body2 = [ln for ln in two.splitlines() if not ln.startswith("#")]
    check(body1 and body1[0].startswith("block,metric,") and len(body1) > 1 and body1 == body2,
          "BI of shards = BI of one run")
    rc, _, err = run([BLOCKINF, s1, s1])
    check(rc != 0 and "draw" in err, f"the same shard twice is refused: {err}")

    # corpus formats give the same samples as the text they came from
    docs = [x.strip() for x in open(CORPUS, encoding="utf-8").read().split("<|endoftext|>")]
    docs = [x for x in docs if x]
    import json
    jl = os.path.join(tmp, "c.jsonl")
    with open(jl, "w", encoding="utf-8") as f:
        for x in docs:
            f.write(json.dumps({"id": 1, "body": x}) + "\n")
    dd = os.path.join(tmp, "cdir")
    os.makedirs(dd, exist_ok=True)
    for i, x in enumerate(docs):
        with open(os.path.join(dd, f"doc{i:05d}.txt"), "w", encoding="utf-8") as f:
            f.write(x)
    with h5py.File(full, "r") as F:
        want_tok = F["tokens"][:]
    for name, extra, corpus in (("jsonl", ["--jsonl-field", "body"], jl), ("dir", [], dd)):
        o = os.path.join(tmp, f"{name}.h5")
        rc, _, err = probe(o, *extra, corpus=corpus)
        with h5py.File(o, "r") as f:
            check(rc == 0 and np.array_equal(f["tokens"][:], want_tok)
                  and f.attrs["corpus_format"].decode() == name, f"{name} corpus = text corpus: {err}")
    ids = os.path.join(tmp, "c.ids")
    with open(ids, "w") as f:
        for row in want_tok:
            f.write(" ".join(str(int(v)) for v in row) + "\n")
    o = os.path.join(tmp, "ids.h5")
    rc, _, err = probe(o, corpus=ids)
    with h5py.File(o, "r") as f:
        got = f["tokens"][:]
        check(rc == 0 and sorted(map(tuple, got)) == sorted(map(tuple, want_tok)),
              f"ids corpus: its documents are the samples: {err}")


main("test_probe_hidden", body)
