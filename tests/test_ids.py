#!/usr/bin/python3
"""test_ids.py — issue 14: a token-id corpus (.ids) needs no tokenizer, and
a tokenizer whose vocabulary size differs from the model's is named.

Why: researchers often pre-tokenize (with the reference tokenizer, once)
and then probe many checkpoints; strata used to refuse to run without a
tokenizer beside the weights even though it never encodes an .ids corpus.

Checks, on a generated Llama (vocabulary 512) with no tokenizer beside it:
- strata-probe-ppl on an .ids corpus runs without a tokenizer and gives
  bit-identical /nll and /tokens to the same run given tok512.bin (whose BOS
  is 1, the default --bos), so the sampling rule did not change;
- --bos -1 takes documents as given: the windows then start at the first id
  of a document, not at an inserted 1 (the /tokens show it);
- an id beyond the model's vocabulary is refused, naming the file and 512;
- a text corpus without a tokenizer is refused with "--tokenizer" in the hint;
- a model of vocabulary 1024 given tok512.bin warns with both sizes.
Prints "test_ids: N passed, N failed".
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mkhf  # noqa: E402
from pycheck import BINDIR, CORPUS, TOK, check, main, run  # noqa: E402

import h5py  # noqa: E402

PPL = os.path.join(BINDIR, "strata-probe-ppl")


def ppl(model, corpus, out, *extra):
    rc, _, err = run([PPL, "--model", model, "--corpus", corpus, "--samples", "3", "--seq-len", "24",
                      "--seed", "2", "-o", out] + list(extra))
    if rc != 0:
        return rc, err, None, None
    with h5py.File(out, "r") as f:
        return rc, err, f["nll"][...], f["tokens"][...]


def body(tmp):
    m = os.path.join(tmp, "llama")
    mkhf.generate(m, "llama", layers=2, kv_heads=2, max_pos=64, seed=4)
    rng = np.random.default_rng(9)
    ids = os.path.join(tmp, "c.ids")
    docs = [rng.integers(3, 512, size=int(rng.integers(20, 60))) for _ in range(12)]
    with open(ids, "w") as f:
        for d in docs:
            f.write(" ".join(map(str, d)) + "\n")

    rc, err, nll0, tok0 = ppl(m, ids, os.path.join(tmp, "a.h5"))
    if check(rc == 0, f"probe-ppl on .ids without a tokenizer: exit {rc}: {err.strip()[-300:]}"):
        check("BOS id 1" in err, f"the run says it reads the ids as given with BOS 1: {err.strip()[-200:]}")
        rc, err, nll1, tok1 = ppl(m, ids, os.path.join(tmp, "b.h5"), "--tokenizer", TOK)
        if check(rc == 0, f"the same with --tokenizer tok512.bin: {err.strip()[-300:]}"):
            check(np.array_equal(tok0, tok1) and np.array_equal(nll0, nll1),
                  "without and with tok512.bin: bit-identical /tokens and /nll")
        check(bool((tok0[:, 0] == 1).all()), "every window starts with BOS 1")
        rc, err, _, tok2 = ppl(m, ids, os.path.join(tmp, "c.h5"), "--bos", "-1")
        if check(rc == 0, f"--bos -1: {err.strip()[-300:]}"):
            starts = {int(d[0]) for d in docs}
            check(not (tok2 == 1).any() and all(int(t) in starts for t in tok2[:, 0]),
                  "--bos -1: no 1 inserted, windows start at a document's first id")

    bad = os.path.join(tmp, "bad.ids")
    with open(bad, "w") as f:
        f.write("1 5 7\n1 9 600 3\n" * 20)
    rc, err, _, _ = ppl(m, bad, os.path.join(tmp, "d.h5"))
    check(rc != 0 and "600" in err and "512" in err and "bad.ids" in err,
          f"an id beyond the model's vocabulary is refused naming the file, id and size: {err.strip()[-300:]}")
    check(not os.path.exists(os.path.join(tmp, "d.h5")), "no output for the refused run")

    rc, err, _, _ = ppl(m, CORPUS, os.path.join(tmp, "e.h5"))
    check(rc != 0 and "--tokenizer" in err, f"a text corpus without a tokenizer asks for --tokenizer: {err.strip()[-300:]}")

    big = os.path.join(tmp, "v1024")
    mkhf.generate(big, "llama", layers=1, kv_heads=2, max_pos=64, seed=4, vocab=1024)
    rc, err, _, _ = ppl(big, CORPUS, os.path.join(tmp, "f.h5"), "--tokenizer", TOK)
    check(rc == 0 and "512" in err and "1024" in err and "tok512.bin" in err,
          f"vocabulary 1024 with tok512.bin: a warning naming both sizes: {err.strip()[-300:]}")


if __name__ == "__main__":
    main("test_ids", body)
