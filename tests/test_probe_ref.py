#!/usr/bin/python3
"""test_probe_ref.py — end-to-end check of strata-probe-hidden and
strata-blockinf against an independent float64 numpy reference
(tests/ref_llama2c.py) and a direct numpy Block Influence (ShortGPT, P3 in
../shared/docs/PAPERS.md).

Why end to end: the dump is what every analyzer reads, so the question that
matters is whether the numbers in the HDF5 file are the model's hidden
states. Here the file is read with h5py (not strata's reader), the hidden
states are recomputed from its /tokens by a different code path (whole
sequence, causal mask, float64), and compared at every layer boundary.

Tolerance (float32 runtime vs float64 reference), per layer l over all
samples and positions:
    |strata - ref| <= 1e-4 * max|ref at layer l| + 1e-5
The printed "rel" figure is max|strata - ref| / max|ref at layer l|.
Block Influence from strata-blockinf must equal the numpy value computed
from the same dump within 1e-6 absolute. A --dtype f16 dump must equal the
f32 dump rounded with numpy astype(float16), bit for bit.

Models: stories260K (../shared) and random ones from build/tests/mkmodel:
no GQA with head width 16, 4:1 GQA with head width 32 and a separate
classifier, 4:1 GQA with head width 16, 4 layers and a separate classifier;
all with vocabulary 512 so tok512.bin tokenizes for them. Runs of 4 x 64
tokens, and 300 tokens to cross more than one 64-row attention tile.

Also: the reference itself reproduces the published stories260K greedy
output (karpathy/llama2.c test_all.py, 200 steps at temperature 0), and the
programs fail cleanly on bad input (one "strata-..." line naming the
offending path, non-zero exit, no output file left behind).

Environment: BUILD (default build), BINDIR (default bin), SHARED (default
../shared beside the repository), STRATA_TMP (scratch directory, else a
temporary one), PYTHON unused (this runs under the interpreter that runs it).
Prints "test_probe_ref: N passed, N failed" last; exits non-zero on failure.
"""
import csv
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ref_llama2c as ref  # noqa: E402
from pycheck import BINDIR, BUILD, CORPUS, STORIES, TOK, check, main, run  # noqa: E402

try:
    import h5py
except ImportError:  # reported as a failure below, not a crash
    h5py = None


PROBE = os.path.join(BINDIR, "strata-probe-hidden")
BLOCKINF = os.path.join(BINDIR, "strata-blockinf")
MKMODEL = os.path.join(BUILD, "tests", "mkmodel")

# run.c at -t 0.0 -n 200 on stories260K (karpathy/llama2.c test_all.py).
EXPECTED_STORY = (
    b"Once upon a time, there was a little girl named Lily. She loved to play outside in the "
    b"park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.\n"
    b"Lily's mom said, \"Lily, let's go to the park.\" Lily was sad and didn't know what to do. "
    b"She said, \"I want to play with your ball, but I can't find it.\"\n"
    b"Lily was sad and didn't know what to do. She said, \"I'm sorry, Lily. I didn't know what "
    b"to do.\"\nLily didn't want to help her mom, so she")

REL_TOL, ABS_TOL, BI_TOL = 1e-4, 1e-5, 1e-6
PROVENANCE = ("strata_version", "command_line", "model_path", "model_config",
              "tokenizer_path", "corpus_path", "seed", "dtype")



def attr_str(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    if isinstance(v, np.ndarray) and v.shape == ():
        v = v[()]
    return v.decode() if isinstance(v, bytes) else str(v)


# ----------------------------------------------------------------- reference

def check_reference_alone():
    """The reference must reproduce the published run.c output before its
    verdict on strata means anything."""
    try:
        m = ref.load(STORIES)
        pieces, _ = ref.load_tokenizer(TOK, m.vocab_size)
    except (OSError, ValueError) as e:
        check(False, f"reference: cannot load stories260K: {e}")
        return
    text = ref.decode(pieces, ref.greedy(m, 200))
    first = b"Once upon a time, there was a little girl named Lily."
    check(text.startswith(first), f"reference greedy output starts {first!r}: got {text[:80]!r}")
    check(text == EXPECTED_STORY, "reference greedy output (200 steps) equals llama2.c "
          f"test_all.py's expected text: got {text!r}")
    print(f"reference: stories260K greedy 200 steps from BOS: "
          f"{'matches' if text == EXPECTED_STORY else 'DIFFERS from'} the published text")


# ----------------------------------------------------------------- models

# name, mkmodel arguments
GENERATED = [
    ("mha_hs16", ["--dim", "64", "--hidden", "176", "--layers", "3", "--heads", "4",
                  "--kv-heads", "4", "--seed", "11"]),
    ("gqa4_hs32_sep", ["--dim", "128", "--layers", "2", "--heads", "4", "--kv-heads", "1",
                       "--separate-classifier", "--seed", "12"]),
    ("gqa4_hs16_sep_l4", ["--dim", "128", "--hidden", "256", "--layers", "4", "--heads", "8",
                          "--kv-heads", "2", "--separate-classifier", "--seed", "13"]),
]


def make_models(tmp):
    models = [("stories260K", STORIES)]
    if not check(os.access(MKMODEL, os.X_OK), f"{MKMODEL} exists (make all builds it)"):
        return models
    for name, args in GENERATED:
        path = os.path.join(tmp, name + ".bin")
        rc, _, err = run([MKMODEL] + args + ["--vocab", "512", "--seq-len", "512", "-o", path])
        if check(rc == 0, f"mkmodel {name}: exit {rc}: {err.strip()}"):
            try:
                ref.load(path)  # the size check is the format check
                check(True, "")
                models.append((name, path))
            except ValueError as e:
                check(False, f"mkmodel {name} wrote a file the reference rejects: {e}")
    return models


# ----------------------------------------------------------------- probe

def probe(model, out, n, t, seed, dtype="f32"):
    return run([PROBE, "--model", model, "--tokenizer", TOK, "--corpus", CORPUS,
                "--samples", str(n), "--seq-len", str(t), "--seed", str(seed),
                "--dtype", dtype, "-o", out])


def read_dump(path):
    with h5py.File(path, "r") as f:
        hidden = f["hidden"][()]
        tokens = f["tokens"][()]
        attrs = {k: attr_str(v) for k, v in f.attrs.items()}
    return hidden, tokens, attrs


CORPUS_BYTES = None


def check_tokens_from_corpus(name, tokens, pieces):
    """Every BOS-delimited run of /tokens decodes to text that occurs in the
    corpus: the samples are windows of the corpus, not garbage that happens
    to start with BOS."""
    global CORPUS_BYTES
    if CORPUS_BYTES is None:
        with open(CORPUS, "rb") as f:
            CORPUS_BYTES = f.read()
    bad = []
    for s, row in enumerate(tokens):
        seg = []
        for tok in list(row[1:]) + [ref.BOS]:
            if tok == ref.BOS:
                if seg and ref.decode(pieces, seg) not in CORPUS_BYTES:
                    bad.append((s, ref.decode(pieces, seg)[:60]))
                seg = []
            else:
                seg.append(int(tok))
    check(not bad, f"{name}: sample text found in the corpus; not found: {bad[:2]}")


def compare_hidden(label, m, hidden, tokens):
    """Recompute every sample with the reference; returns (max abs, max rel)."""
    L1 = m.n_layers + 1
    ref_h = np.stack([ref.forward(m, row)[0] for row in tokens])  # (N, L+1, T, D)
    h = hidden.astype(np.float64)
    worst_abs = worst_rel = 0.0
    ok = True
    for l in range(L1):
        scale = np.abs(ref_h[:, l]).max()
        diff = np.abs(h[:, l] - ref_h[:, l]).max()
        worst_abs = max(worst_abs, diff)
        worst_rel = max(worst_rel, diff / scale)
        if diff > REL_TOL * scale + ABS_TOL:
            ok = False
            print(f"  {label}: layer {l}: max |diff| {diff:.3g} > tol "
                  f"{REL_TOL * scale + ABS_TOL:.3g} (max|ref| {scale:.3g})", file=sys.stderr)
    check(ok, f"{label}: hidden states within 1e-4 * max|ref| + 1e-5 at every layer")
    print(f"{label}: max abs diff {worst_abs:.3g}, max rel diff {worst_rel:.3g} "
          f"(over {L1} layers)")
    return worst_abs, worst_rel


def check_dump(label, path, m, n, t, seed, dtype, model_path):
    """Shapes, BOS, provenance; returns (hidden, tokens) or None."""
    if not check(os.path.isfile(path), f"{label}: {path} written"):
        return None
    check(not os.path.exists(path + ".partial"), f"{label}: no .partial left after success")
    try:
        hidden, tokens, attrs = read_dump(path)
    except (OSError, KeyError) as e:
        check(False, f"{label}: h5py reads /hidden and /tokens: {e}")
        return None
    want = (n, m.n_layers + 1, t, m.dim)
    ok = check(hidden.shape == want, f"{label}: /hidden shape {hidden.shape} == {want}")
    ok &= check(tokens.shape == (n, t), f"{label}: /tokens shape {tokens.shape} == {(n, t)}")
    check(hidden.dtype == (np.float16 if dtype == "f16" else np.float32),
          f"{label}: /hidden dtype {hidden.dtype} for --dtype {dtype}")
    check(tokens.dtype == np.int32, f"{label}: /tokens dtype {tokens.dtype} is int32")
    if not ok:
        return None
    check(np.all(tokens[:, 0] == ref.BOS), f"{label}: /tokens[:,0] == BOS: {tokens[:, 0]}")
    check(tokens.min() >= 0 and tokens.max() < m.vocab_size, f"{label}: token ids in range")
    check(np.all(np.isfinite(hidden)), f"{label}: hidden states finite")
    missing = [a for a in PROVENANCE if a not in attrs]
    check(not missing, f"{label}: provenance attributes present; missing {missing}")
    if not missing:
        check(attrs["dtype"] == dtype, f"{label}: dtype attribute {attrs['dtype']!r} == {dtype!r}")
        check(attrs["seed"].strip() == str(seed), f"{label}: seed attribute {attrs['seed']!r}")
        same = lambda a, b: os.path.realpath(a) == os.path.realpath(b)  # noqa: E731
        check(same(attrs["model_path"], model_path),
              f"{label}: model_path {attrs['model_path']!r} names {model_path}")
        check(same(attrs["tokenizer_path"], TOK) and same(attrs["corpus_path"], CORPUS),
              f"{label}: tokenizer_path / corpus_path name the inputs: "
              f"{attrs['tokenizer_path']!r}, {attrs['corpus_path']!r}")
        check(PROBE.split("/")[-1] in attrs["command_line"] and path in attrs["command_line"],
              f"{label}: command_line holds the program and -o: {attrs['command_line']!r}")
        try:
            cfg = json.loads(attrs["model_config"])
            check(cfg.get("dim") == m.dim and cfg.get("n_layers") == m.n_layers and
                  cfg.get("vocab_size") == m.vocab_size,
                  f"{label}: model_config JSON matches the checkpoint: {cfg}")
        except ValueError as e:
            check(False, f"{label}: model_config is JSON: {e}")
        check(attrs["strata_version"] != "", f"{label}: strata_version set")
    return hidden, tokens


# ----------------------------------------------------------------- blockinf

def block_influence(hidden):
    """BI_l = 1 - mean_{s,t} cos(X_l, X_{l+1}), X_l = hidden[:, l]."""
    h = hidden.astype(np.float64)
    L = h.shape[1] - 1
    bi = np.empty(L)
    for l in range(L):
        a, b = h[:, l], h[:, l + 1]
        cos = (a * b).sum(-1) / np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
        bi[l] = 1.0 - cos.mean()
    return bi


def check_blockinf(label, dump, hidden, tmp):
    out = os.path.join(tmp, label + ".bi.csv")
    rc, _, err = run([BLOCKINF, dump, "-o", out])
    if not check(rc == 0 and os.path.isfile(out), f"{label}: strata-blockinf exit {rc}: "
                 f"{err.strip()[-300:]}"):
        return
    with open(out, newline="") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    cols = set(rows[0].keys()) if rows else set()
    if not check({"block", "metric", "value", "rank"} <= cols, f"{label}: CSV columns "
                 f"{sorted(cols)} include block, metric, value, rank (long form)"):
        return
    want = block_influence(hidden)
    L = len(want)
    blocks = [int(r["block"]) for r in rows]
    if not check(blocks == list(range(L)) and all(r["metric"] == "bi" for r in rows),
                 f"{label}: one CSV row (metric bi) per block 0..{L - 1}: {blocks}"):
        return
    got = np.array([float(r["value"]) for r in rows])
    diff = np.abs(got - want).max()
    check(diff <= BI_TOL, f"{label}: BI within {BI_TOL}: max diff {diff:.3g}; "
          f"csv {got}, numpy {want}")
    ranks = [int(r["rank"]) for r in rows]
    check(sorted(ranks) == list(range(1, L + 1)), f"{label}: ranks are 1..{L}: {ranks}")
    by_rank = want[np.argsort(ranks)]
    check(np.all(np.diff(by_rank) >= -2 * BI_TOL),
          f"{label}: rank 1 = lowest BI, increasing: ranks {ranks}, BI {want}")
    print(f"{label}: BI {np.array2string(want, precision=4)}, max diff to numpy {diff:.3g}")


# ----------------------------------------------------------------- bad input

def check_fails(label, cmd, offending, outputs):
    """Exit non-zero; exactly one stderr line starting "strata-", naming
    `offending`; no output file (nor .partial: nothing was interrupted)."""
    rc, _, err = run(cmd)
    check(rc != 0, f"{label}: exit status non-zero (got {rc})")
    lines = [ln for ln in err.splitlines() if ln.startswith("strata-")]
    check(len(lines) == 1, f"{label}: one stderr line starting 'strata-': {err!r}")
    check(any(offending in ln for ln in lines), f"{label}: the message names {offending}: {err!r}")
    check("HDF5-DIAG" not in err, f"{label}: no raw HDF5 error stack on stderr: {err[:200]!r}")
    for o in outputs:
        check(not os.path.exists(o), f"{label}: no {os.path.basename(o)} left behind")
        check(not os.path.exists(o + ".partial"),
              f"{label}: no {os.path.basename(o)}.partial after a startup error")


def check_bad_inputs(tmp, good_dump):
    bad = os.path.join(tmp, "bad")
    os.makedirs(bad, exist_ok=True)
    out = os.path.join(bad, "out.h5")
    with open(STORIES, "rb") as f:
        model = f.read()
    trunc = os.path.join(bad, "truncated.bin")
    with open(trunc, "wb") as f:
        f.write(model[:-100])
    longer = os.path.join(bad, "plus4.bin")
    with open(longer, "wb") as f:
        f.write(model + b"\0\0\0\0")
    empty = os.path.join(bad, "empty.txt")
    open(empty, "wb").close()
    missing = os.path.join(bad, "no-such-model.bin")

    def p(model_path=STORIES, corpus=CORPUS, n=2, o=out):
        return [PROBE, "--model", model_path, "--tokenizer", TOK, "--corpus", corpus,
                "--samples", str(n), "--seq-len", "64", "--seed", "1", "--dtype", "f32", "-o", o]

    check_fails("missing model", p(model_path=missing), missing, [out])
    check_fails("model truncated by 100 bytes", p(model_path=trunc), trunc, [out])
    check_fails("model with 4 extra bytes", p(model_path=longer), longer, [out])
    check_fails("empty corpus", p(corpus=empty), empty, [out])
    check_fails("corpus too short for 100000 x 64", p(n=100000), CORPUS, [out])
    nodir = os.path.join(bad, "no-such-dir", "out.h5")
    check_fails("output in a missing directory", p(o=nodir), os.path.dirname(nodir), [nodir])

    csv_out = os.path.join(bad, "bi.csv")
    check_fails("blockinf on a missing dump", [BLOCKINF, os.path.join(bad, "no-such.h5"),
                "-o", csv_out], os.path.join(bad, "no-such.h5"), [csv_out])
    check_fails("blockinf on a non-HDF5 file", [BLOCKINF, CORPUS, "-o", csv_out], CORPUS,
                [csv_out])
    if good_dump:
        nd = os.path.join(bad, "sub", "bi.csv")
        check_fails("blockinf output in a missing directory", [BLOCKINF, good_dump, "-o", nd],
                    os.path.dirname(nd), [nd])


# ----------------------------------------------------------------- main

def body(tmp):
    check_reference_alone()
    if not check(h5py is not None, "h5py importable (python3-h5py)"):
        return
    have = [check(os.access(x, os.X_OK), f"{x} exists (make all builds it)")
            for x in (PROBE, BLOCKINF)]
    models = make_models(tmp)
    pieces, _ = ref.load_tokenizer(TOK, 512)
    first_dump = None
    if have[0]:
        for name, path in models:
            m = ref.load(path)
            runs = [(4, 64, 3), (2, 300, 5)] if name in ("stories260K", "gqa4_hs16_sep_l4") \
                else [(4, 64, 3)]
            for n, t, seed in runs:
                label = f"{name} {n}x{t}"
                out = os.path.join(tmp, f"{name}_{n}x{t}.h5")
                rc, _, err = probe(path, out, n, t, seed)
                if not check(rc == 0, f"{label}: strata-probe-hidden exit {rc}: "
                             f"{err.strip()[-400:]}"):
                    continue
                got = check_dump(label, out, m, n, t, seed, "f32", path)
                if got is None:
                    continue
                hidden, tokens = got
                first_dump = first_dump or out
                check_tokens_from_corpus(label, tokens, pieces)
                compare_hidden(label, m, hidden, tokens)
                if have[1]:
                    check_blockinf(label.replace(" ", "_"), out, hidden, tmp)
                if name == "stories260K" and t == 64:
                    out16 = os.path.join(tmp, f"{name}_{n}x{t}_f16.h5")
                    rc, _, err = probe(path, out16, n, t, seed, "f16")
                    if check(rc == 0, f"{label} f16: exit {rc}: {err.strip()[-400:]}"):
                        got16 = check_dump(label + " f16", out16, m, n, t, seed, "f16", path)
                        if got16 is not None:
                            check(np.array_equal(got16[1], tokens),
                                  f"{label} f16: same tokens as the f32 run")
                            same = np.array_equal(got16[0], hidden.astype(np.float16))
                            check(same, f"{label} f16: /hidden == f32 dump.astype(float16)")
                            print(f"{label} f16: equals the f32 dump rounded to float16: "
                                  f"{'yes' if same else 'NO'}")
    if have[0] and have[1]:
        check_bad_inputs(tmp, first_dump)


if __name__ == "__main__":
    main("test_probe_ref", body)
