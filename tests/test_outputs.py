#!/usr/bin/python3
"""test_outputs.py — outputs that are not regular files.

Why: text outputs are written as OUT.partial and renamed onto OUT, so an
interrupted run never leaves a file that looks complete. Renamed onto a
device or a pipe, that replaced it: `-o /dev/null` as root turned
/dev/null into a regular file. A FIFO stands in for /dev/null here, so a
regression cannot damage the machine running the test.

Checks: a CSV program (strata-decay curve) given a FIFO writes the CSV
into it (a reader thread receives every row) and the FIFO is still a FIFO
with no .partial beside it; an HDF5 program (strata-probe-ppl) given a
FIFO refuses before the run (exit 1, the message names the path and says
to give a file name), leaving the FIFO a FIFO; an output in a missing
directory is refused before any work, naming the directory;
strata-convert's output directory is made if missing and reused if there
(a rerun of the demo), and a file in its place is a usage error; a probe
on the copy records the tokenizer file it read (tokenizer.json), not the
directory, as tokenizer_path; `-o /dev/null` works for an unprivileged
user (a device is written in place, its directory need not be writable),
and /dev/null stays a device.
Prints "test_outputs: N passed, N failed".
"""
import os
import shutil
import stat
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from pycheck import BINDIR, CORPUS, STORIES, TOK, check, main, run  # noqa: E402

DECAY = os.path.join(BINDIR, "strata-decay")
PPL = os.path.join(BINDIR, "strata-probe-ppl")
HIDDEN = os.path.join(BINDIR, "strata-probe-hidden")
BLOCKINF = os.path.join(BINDIR, "strata-blockinf")


def body(tmp):
    fifo = os.path.join(tmp, "out.fifo")
    os.mkfifo(fifo)
    got = []

    def reader():
        with open(fifo, "rb") as f:  # blocks until the writer opens it
            got.append(f.read())

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    rc, _, err = run([DECAY, "curve", "--base", "10000", "--dim", "8", "--max-dist", "99", "-q", "-o", fifo])
    t.join(timeout=60)
    text = got[0].decode() if got else ""
    rows = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    check(rc == 0 and len(rows) == 101, f"curve into a FIFO: header + 100 rows arrive ({len(rows)} lines, exit {rc}: {err.strip()})")
    check(stat.S_ISFIFO(os.stat(fifo).st_mode), "the FIFO is still a FIFO")
    check(not os.path.exists(fifo + ".partial"), "no .partial beside it")

    rc, _, err = run([PPL, "--model", STORIES, "--tokenizer", TOK, "--corpus", CORPUS, "--samples", "1",
                      "--seq-len", "16", "-o", fifo])
    check(rc == 1 and fifo in err and "file name" in err, f"probe-ppl -o FIFO refused: exit {rc}: {err.strip()}")
    check(stat.S_ISFIFO(os.stat(fifo).st_mode) and not os.path.exists(fifo + ".partial"),
          "still a FIFO, no .partial")

    # strata-convert's -o is a directory: made if missing, reused if there
    conv = os.path.join(BINDIR, "strata-convert")
    d = os.path.join(tmp, "hf")
    for what in ("made", "reused"):
        rc, _, err = run([conv, "--model", STORIES, "--tokenizer", TOK, "-q", "-o", d])
        check(rc == 0 and os.path.exists(os.path.join(d, "model.safetensors")),
              f"convert into a directory {what}: exit {rc}: {err.strip()}")
    # provenance names the tokenizer file chosen beside the weights, not the directory
    pp = os.path.join(tmp, "hf_ppl.h5")
    rc, _, err = run([PPL, "--model", d, "--corpus", CORPUS, "--samples", "1", "--seq-len", "16", "-q", "-o", pp])
    if check(rc == 0, f"probe-ppl on the converted copy: {err.strip()}"):
        import h5py
        with h5py.File(pp, "r") as f:
            tp = f.attrs["tokenizer_path"]
        tp = tp.decode() if isinstance(tp, bytes) else str(tp)
        check(tp == os.path.join(d, "tokenizer.json"), f"tokenizer_path is the file read: {tp}")
    afile = os.path.join(tmp, "afile")
    open(afile, "w").close()
    rc, _, err = run([conv, "--model", STORIES, "--tokenizer", TOK, "-q", "-o", afile])
    check(rc == 2 and "not a directory" in err, f"convert -o an existing file: usage error ({rc}: {err.strip()})")

    # a device needs no writable directory: as an unprivileged user (who
    # cannot write /dev, and so cannot replace /dev/null either) -o /dev/null works
    as_user = os.geteuid() != 0 or (shutil.which("su") and run(["su", "nobody", "-s", "/bin/sh", "-c", "true"])[0] == 0)
    if not as_user:
        print("test_outputs: no unprivileged user to run as; -o /dev/null check skipped")
    if as_user:
        import tempfile
        pub = tempfile.mkdtemp(prefix="strata-outputs.")
        try:
            os.chmod(pub, 0o755)
            dump = os.path.join(pub, "d.h5")
            rc, _, err = run([HIDDEN, "--model", STORIES, "--tokenizer", TOK, "--corpus", CORPUS,
                              "--samples", "2", "--seq-len", "16", "-q", "-o", dump])
            if check(rc == 0, f"a small dump: {err.strip()}"):
                os.chmod(dump, 0o644)
                cmd = [BLOCKINF, dump, "-q", "-o", "/dev/null"]
                if os.geteuid() == 0:
                    cmd = ["su", "nobody", "-s", "/bin/sh", "-c", " ".join(cmd)]
                rc, _, err = run(cmd)
                check(rc == 0, f"blockinf -o /dev/null as an unprivileged user: exit {rc}: {err.strip()}")
        finally:
            shutil.rmtree(pub, ignore_errors=True)
    check(stat.S_ISCHR(os.stat("/dev/null").st_mode), "/dev/null is still a device")

    missing = os.path.join(tmp, "no-such-dir", "x.csv")
    rc, _, err = run([DECAY, "curve", "--base", "10000", "--dim", "8", "--max-dist", "9", "-o", missing])
    check(rc != 0 and os.path.dirname(missing) in err, f"curve into a missing directory: exit {rc}: {err.strip()}")


if __name__ == "__main__":
    main("test_outputs", body)
