#!/usr/bin/env bash
# Run the whole suite: every compiled tests/test_*.c binary, every
# tests/test_*.sh and tests/test_*.py. Each prints "<name>: N passed, N failed";
# this script sums them and exits non-zero if anything failed.
# Environment: BUILD (objects, default build), BINDIR (programs, default bin),
# SHARED (read-only data, default ../shared), STRATA_SAN=1 under sanitizers.
set -u
cd "$(dirname "$0")/.."
export BUILD=${BUILD:-build} BINDIR=${BINDIR:-bin}
export SHARED=${SHARED:-$(cd .. && pwd)/shared}
export PYTHON=${PYTHON:-/usr/bin/python3}
export STRATA_TMP=$(mktemp -d "${TMPDIR:-/tmp}/strata-test.XXXXXX")
trap 'rm -rf "$STRATA_TMP"' EXIT
passed=0 failed=0 broken=()
run_one() { # name, command...
    local name=$1; shift
    local out rc t0=$SECONDS
    out=$("$@" 2>"$STRATA_TMP/stderr"); rc=$?
    local line
    line=$(printf '%s\n' "$out" | grep -E ': [0-9]+ passed, [0-9]+ failed' | tail -n 1)
    if [ -z "$line" ]; then
        echo "$name: no result line (exit $rc)"; cat "$STRATA_TMP/stderr" >&2
        failed=$((failed + 1)); broken+=("$name"); return
    fi
    local p f
    p=$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed.*/\1/' <<<"$line")
    f=$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed.*/\2/' <<<"$line")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$f" -ne 0 ]; then broken+=("$name"); cat "$STRATA_TMP/stderr" >&2; fi
    printf '%-28s %s (%ds)\n' "$name" "${line#*: }" $((SECONDS - t0))
}
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] && run_one "$(basename "$t")" "$t"
done
for t in tests/test_*.sh; do
    [ -f "$t" ] && run_one "$(basename "$t")" bash "$t"
done
for t in tests/test_*.py; do
    [ -f "$t" ] && run_one "$(basename "$t")" "$PYTHON" "$t"
done
[ ${#broken[@]} -gt 0 ] && echo "failing: ${broken[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
