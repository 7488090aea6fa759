"""pycheck.py — the Python twin of tests/check.h: check() counts, done()
prints "<name>: N passed, N failed" (the line tests/run.sh reads) and exits
non-zero on any failure; plus what every Python test shares: the paths
tests/run.sh passes (BUILD, BINDIR, SHARED), run() for programs under test,
and main() that gives the test a scratch directory and turns a crash into a
counted failure."""
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import traceback

passed = 0
failed = 0

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def from_root(p):
    return p if os.path.isabs(p) else os.path.join(ROOT, p)


BUILD = from_root(os.environ.get("BUILD", "build"))
BINDIR = from_root(os.environ.get("BINDIR", "bin"))
SHARED = from_root(os.environ.get("SHARED", os.path.join("..", "shared")))
SAN = os.environ.get("STRATA_SAN") == "1"

# The small real data every end-to-end test uses (read-only, never copied).
STORIES = os.path.join(SHARED, "models", "stories260K", "stories260K.bin")
TOK = os.path.join(SHARED, "models", "stories260K", "tok512.bin")
CORPUS = os.path.join(SHARED, "corpora", "tinystories-val-1000.txt")


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL: {what}", file=sys.stderr)
    return bool(cond)


def done(name):
    print(f"{name}: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


def run(cmd, timeout=600):
    """(returncode, stdout, stderr) of cmd; never raises for the command's
    own failure, so one broken program does not stop the other checks."""
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=timeout)
        return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    except OSError as e:
        return 127, "", f"{cmd[0]}: {e}"
    except subprocess.TimeoutExpired:
        return 124, "", f"{cmd[0]}: timed out after {timeout}s"


def run_interrupted(cmd, after, sig, cwd=None, timeout=600):
    """Run cmd with STRATA_TEST_PAUSE_AFTER=after, send sig once the program
    says it paused (after that many complete samples), and return
    (returncode, stderr, paused). Synchronised on that event, never on time:
    the run is mid-way whatever the machine's speed."""
    env = dict(os.environ, STRATA_TEST_PAUSE_AFTER=str(after))
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd)
    err, paused = b"", False
    for line in p.stderr:
        err += line
        if f"paused after {after} samples".encode() in line:
            paused = True
            p.send_signal(sig)
            break
    try:
        _, rest = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        _, rest = p.communicate()
        rest += f"\n(killed after {timeout}s)".encode()
    return p.returncode, (err + rest).decode(errors="replace"), paused


def main(name, body):
    """Run body(tmp) with tmp = $STRATA_TMP/<name> (or a temporary directory
    removed afterwards), count an exception as a failure, then done(name)."""
    owned = None
    tmp = os.environ.get("STRATA_TMP")
    if tmp:
        tmp = os.path.join(tmp, name)
        os.makedirs(tmp, exist_ok=True)
    else:
        tmp = owned = tempfile.mkdtemp(prefix=f"strata-{name}.")
    try:
        body(tmp)
    except Exception as e:  # a crash is a failure with a result line, not a traceback only
        traceback.print_exc()
        check(False, f"unexpected exception: {e!r}")
    finally:
        if owned:
            shutil.rmtree(owned, ignore_errors=True)
    done(name)


def read_csv(path):
    """Rows of a strata CSV as dicts; comment lines (the provenance line,
    docs/FORMAT.md "CSV files") skipped."""
    with open(path, newline="") as f:
        return list(csv.DictReader(ln for ln in f if not ln.startswith("#")))


def read_meta(path):
    """{key: value} of a CSV's '# key=value ...' first line (%XX-escaped
    values decoded); {} without one."""
    import urllib.parse
    with open(path) as f:
        first = f.readline()
    if not first.startswith("#"):
        return {}
    return {k: urllib.parse.unquote(v) for k, v in (t.split("=", 1) for t in first[1:].split() if "=" in t)}
