"""pycheck.py — the Python twin of tests/check.h: check() counts, done()
prints "<name>: N passed, N failed" (the line tests/run.sh reads) and exits
non-zero on any failure."""
import sys

passed = 0
failed = 0


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
