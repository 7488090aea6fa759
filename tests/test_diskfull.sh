#!/usr/bin/env bash
# test_diskfull.sh — a full disk mid-run (issue 13): the probe fails with a
# message and exit 1, its .partial counts only samples whose data reached
# the disk (every counted sample equals a run with room), and --resume with
# room finishes a dump equal to an uninterrupted run. The full disk is a
# 1.5 MB tmpfs (needs root and mount; elsewhere the test says it is skipped
# and counts nothing).
set -u
BINDIR=${BINDIR:-bin}
SHARED=${SHARED:-../shared}
PYTHON=${PYTHON:-/usr/bin/python3}
T=${STRATA_TMP:-$(mktemp -d)}/diskfull
mkdir -p "$T/small" "$T/room"
M=$SHARED/models/stories260K/stories260K.bin
K=$SHARED/models/stories260K/tok512.bin
C=$SHARED/corpora/tinystories-val-1000.txt
pass=0 fail=0
ok() {
    if [ "$2" -eq 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1" >&2; fi
}
if ! mount -t tmpfs -o size=1536k tmpfs "$T/small" 2>/dev/null; then
    echo "test_diskfull: skipped: cannot mount a small tmpfs here (needs root)"
    echo "test_diskfull: 0 passed, 0 failed, 1 skipped"
    exit 0
fi
trap 'umount "$T/small" 2>/dev/null' EXIT
ARGS=(--model "$M" --tokenizer "$K" --corpus "$C" --samples 40 --seq-len 64 --seed 2 -q)
# ~98 KB a sample: 40 samples need ~3.9 MB, the disk holds about a third
"$BINDIR/strata-probe-hidden" "${ARGS[@]}" -o "$T/room/ref.h5" 2>"$T/ref.err"
ok "reference run with room" $?
"$BINDIR/strata-probe-hidden" "${ARGS[@]}" -o "$T/small/out.h5" >/dev/null 2>"$T/full.err"
rc=$?
[ $rc -eq 1 ] && grep -qi "space\|write\|flush" "$T/full.err"
ok "a full disk fails the run with exit 1 and says why (exit $rc: $(tail -c 200 "$T/full.err"))" $?
[ ! -e "$T/small/out.h5" ] && [ -e "$T/small/out.h5.partial" ]
ok "the full disk leaves only out.h5.partial" $?
cp "$T/small/out.h5.partial" "$T/room/out.h5.partial"
"$PYTHON" - "$T/room/out.h5.partial" "$T/room/ref.h5" <<'EOF'
import sys
import h5py
import numpy as np
with h5py.File(sys.argv[1], "r") as f, h5py.File(sys.argv[2], "r") as r:
    k = int(f.attrs["n_complete"])
    good = 0 < k < 40 and int(f.attrs["complete"]) == 0
    good &= bool(np.array_equal(f["hidden"][:k], r["hidden"][:k]))
    good &= bool(np.array_equal(f["tokens"][:k], r["tokens"][:k]))
    print(f"disk full after {k} of 40 samples; every counted sample equals the reference: {good}")
sys.exit(0 if good else 1)
EOF
ok "every sample the .partial counts is on disk and equals the run with room" $?
"$BINDIR/strata-probe-hidden" "${ARGS[@]}" --resume -o "$T/room/out.h5" 2>"$T/resume.err"
ok "--resume with room finishes" $?
"$PYTHON" - "$T/room/out.h5" "$T/room/ref.h5" <<'EOF'
import sys
import h5py
import numpy as np
with h5py.File(sys.argv[1], "r") as f, h5py.File(sys.argv[2], "r") as r:
    sys.exit(0 if int(f.attrs["complete"]) == 1 and np.array_equal(f["hidden"][:], r["hidden"][:])
             and np.array_equal(f["tokens"][:], r["tokens"][:]) else 1)
EOF
ok "the resumed dump equals an uninterrupted run" $?
echo "test_diskfull: $pass passed, $fail failed"
[ $fail -eq 0 ]
