#!/usr/bin/python3
"""test_progress.py — issue 14: progress lines at a steady interval,
whether or not stderr is a terminal, with counts that mean samples.

Why: a 7B run over 4096-token windows spends minutes in one sample; a
progress line only between samples (and only every 5 s off a terminal)
left batch logs silent, and strata-posvec decompose counted its two
passes as 2N samples.

Checks (stderr is a pipe here, so this is the non-terminal path; no check
depends on the machine's speed: --progress 0 prints after every sample by
definition, and 1e-9 s is shorter than any block of a forward pass):
- --progress 0: one line per sample, k/N for k = 1..N, no repeated final line;
- the heartbeat: --progress 1e-9 prints "(sample 1 running)" lines from
  inside the first sample, before "1/N samples";
- posvec decompose: "pass 1 of 2 (sums): k/N" and "pass 2 of 2 (|c|): k/N",
  never a count beyond N;
- -q prints no progress line; --progress -1 and --progress x are usage
  errors (exit 2) naming the option.
Prints "test_progress: N passed, N failed".
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from pycheck import BINDIR, CORPUS, STORIES, TOK, check, main, run  # noqa: E402

PPL = os.path.join(BINDIR, "strata-probe-ppl")
HIDDEN = os.path.join(BINDIR, "strata-probe-hidden")
POSVEC = os.path.join(BINDIR, "strata-posvec")
COMMON = ["--model", STORIES, "--tokenizer", TOK, "--corpus", CORPUS, "--seq-len", "64"]


def lines(err, prog):
    return [ln for ln in err.splitlines()
            if ln.startswith(prog + ": ") and re.search(r"\d+/\d+ samples", ln)]


def body(tmp):
    rc, _, err = run([PPL] + COMMON + ["--samples", "3", "--progress", "0", "-o", os.path.join(tmp, "a.h5")])
    got = lines(err, "strata-probe-ppl")
    counts = [re.search(r"(\d+)/(\d+) samples", ln).groups() for ln in got]
    check(rc == 0 and counts == [("1", "3"), ("2", "3"), ("3", "3")],
          f"--progress 0: one line per sample, 1/3 .. 3/3 ({counts})")

    rc, _, err = run([PPL] + COMMON + ["--samples", "2", "--progress", "1e-9", "-o", os.path.join(tmp, "b.h5")])
    got = lines(err, "strata-probe-ppl")
    first_done = next((i for i, ln in enumerate(got) if re.search(r": 1/2 samples,", ln)), None)
    beats = [i for i, ln in enumerate(got) if "0/2 samples (sample 1 running)" in ln]
    check(rc == 0 and beats and first_done is not None and beats[0] < first_done,
          f"heartbeat lines from inside sample 1 before 1/2 ({len(beats)} beats, first done at {first_done})")

    d = os.path.join(tmp, "d.h5")
    rc, _, err = run([HIDDEN] + COMMON + ["--samples", "3", "-q", "-o", d])
    if check(rc == 0, f"dump: {err.strip()[-200:]}"):
        rc, _, err = run([POSVEC, "decompose", d, "--progress", "0", "-o", os.path.join(tmp, "pv.h5")])
        got = lines(err, "strata-posvec")
        p1 = [re.search(r"(\d+)/(\d+) samples", ln).groups() for ln in got if "pass 1 of 2" in ln]
        p2 = [re.search(r"(\d+)/(\d+) samples", ln).groups() for ln in got if "pass 2 of 2" in ln]
        want = [("1", "3"), ("2", "3"), ("3", "3")]
        check(rc == 0 and p1 == want and p2 == want and len(got) == 6,
              f"decompose: two passes of 1/3 .. 3/3 each ({got})")

    rc, _, err = run([PPL] + COMMON + ["--samples", "2", "-q", "--progress", "0", "-o", os.path.join(tmp, "c.h5")])
    check(rc == 0 and not lines(err, "strata-probe-ppl"), f"-q: no progress line ({err.strip()[-200:]})")
    for bad in ("-1", "x"):
        rc, _, err = run([PPL] + COMMON + ["--progress", bad, "-o", os.path.join(tmp, "e.h5")])
        check(rc == 2 and "--progress" in err, f"--progress {bad}: usage error naming it (exit {rc}: {err.strip()[-200:]})")


if __name__ == "__main__":
    main("test_progress", body)
