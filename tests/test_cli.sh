#!/usr/bin/env bash
# test_cli.sh — the programs as a user runs them: llama2.c's published
# greedy output reproduced byte for byte (golden file from karpathy/llama2.c
# test_all.py), --help everywhere, bad options, and an interrupted probe run
# that leaves only an incomplete .partial file.
set -u
BINDIR=${BINDIR:-bin}
SHARED=${SHARED:-../shared}
T=${STRATA_TMP:-$(mktemp -d)}/cli
mkdir -p "$T"
M=$SHARED/models/stories260K/stories260K.bin
K=$SHARED/models/stories260K/tok512.bin
C=$SHARED/corpora/tinystories-val-1000.txt
pass=0 fail=0
ok() { # description, command status (0 = pass)
    if [ "$2" -eq 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1" >&2; fi
}

"$BINDIR/strata-generate" --model "$M" --tokenizer "$K" --temperature 0 --steps 200 >"$T/gen.txt" 2>"$T/gen.err"
cmp -s "$T/gen.txt" tests/golden/stories260K_greedy200.txt
ok "greedy 200 steps equals llama2.c's published output" $?
grep -q "tokens/s" "$T/gen.err"; ok "generate reports tokens/s" $?

# A prompt is forced, then continued: the text starts with the prompt.
"$BINDIR/strata-generate" --model "$M" --tokenizer "$K" --steps 40 --prompt "Once upon a time" >"$T/p.txt" 2>/dev/null
grep -q "^Once upon a time, there was a little girl" "$T/p.txt"; ok "prompted generation" $?

for p in generate probe-hidden probe-attn probe-ppl convert blockinf; do
    "$BINDIR/strata-$p" --help >"$T/h.txt" 2>&1; ok "strata-$p --help exits 0" $?
    grep -q "^usage: strata-$p" "$T/h.txt"; ok "strata-$p --help prints usage" $?
    "$BINDIR/strata-$p" --bogus >/dev/null 2>"$T/e.txt"; [ $? -ne 0 ]; ok "strata-$p rejects an unknown option" $?
    grep -q "^strata-$p: unknown option '--bogus'" "$T/e.txt"; ok "strata-$p names the unknown option" $?
done
# The shared flags (lib/cli/): --version, --threads, -q; exit 2 for a bad
# command line (unknown option, missing value, bad number, missing required
# option), 1 for a run-time error (a model that is not there).
V=$(sed -n 's/^#define STRATA_VERSION "\(.*\)"/\1/p' lib/strata.h)
for p in generate probe-hidden probe-attn probe-ppl convert; do
    out=$("$BINDIR/strata-$p" --version 2>&1); rc=$?
    [ $rc -eq 0 ] && [ "$out" = "strata-$p $V" ]; ok "strata-$p --version prints 'strata-$p $V' (got '$out')" $?
    "$BINDIR/strata-$p" --bogus >/dev/null 2>&1; [ $? -eq 2 ]; ok "strata-$p: unknown option exits 2" $?
    "$BINDIR/strata-$p" --model >/dev/null 2>"$T/e.txt"; [ $? -eq 2 ]; ok "strata-$p: missing value exits 2" $?
    grep -q "^strata-$p: option '--model' needs a value" "$T/e.txt"; ok "strata-$p names the option without a value" $?
    "$BINDIR/strata-$p" --model "$M" --threads x -o "$T/x" >/dev/null 2>&1; [ $? -eq 2 ]; ok "strata-$p: bad --threads exits 2" $?
    "$BINDIR/strata-$p" --threads 1 >/dev/null 2>"$T/e.txt"; [ $? -eq 2 ]; ok "strata-$p: missing --model exits 2" $?
    grep -q "^strata-$p: .*--model.* required" "$T/e.txt"; ok "strata-$p says --model is required" $?
    case $p in generate) more=() ;; convert) more=(-o "$T/x.out") ;; *) more=(--corpus "$C" -o "$T/x.out") ;; esac
    "$BINDIR/strata-$p" --model "$T/no-such-model.bin" "${more[@]}" >/dev/null 2>"$T/e.txt"
    [ $? -eq 1 ]; ok "strata-$p: a missing model file exits 1" $?
    grep -q "^strata-$p: .*no-such-model.bin" "$T/e.txt" && grep -q "^  hint: " "$T/e.txt"; ok "strata-$p: message names the file, with a hint" $?
done
for p in blockinf decay posvec; do
    out=$("$BINDIR/strata-$p" --version 2>&1); rc=$?
    [ $rc -eq 0 ] && [ "$out" = "strata-$p $V" ]; ok "strata-$p --version prints 'strata-$p $V' (got '$out')" $?
    "$BINDIR/strata-$p" --bogus >/dev/null 2>&1; [ $? -eq 2 ]; ok "strata-$p --bogus exits 2" $?
done
"$BINDIR/strata-probe-hidden" --model "$M" --tokenizer "$K" --corpus "$C" --samples 2 --seq-len 64 \
    --positions all --position-embedding rope -o "$T/all.h5" >/dev/null 2>"$T/e.txt"
ok "probe-hidden --positions all (a list) with --position-embedding rope (a scheme)" $?
"$BINDIR/strata-probe-hidden" --model "$M" --tokenizer "$K" --corpus "$C" --samples 2 --seq-len 64 \
    --positions rope -o "$T/x.h5" >/dev/null 2>"$T/e.txt"
[ $? -eq 2 ] && grep -q "position-embedding" "$T/e.txt"; ok "--positions rope is refused with a hint to --position-embedding" $?
"$BINDIR/strata-probe-ppl" --model "$M" --tokenizer "$K" --corpus "$C" --samples 2 --seq-len 64 \
    --threads 2 -q -o "$T/q.h5" >/dev/null 2>"$T/q.err"
[ $? -eq 0 ] && [ ! -s "$T/q.err" ] && [ -e "$T/q.h5" ]; ok "probe-ppl --threads 2 -q runs and prints nothing" $?
"$BINDIR/strata-probe-ppl" --model "$M" --tokenizer "$K" --corpus "$C" --samples 2 --seq-len 64 \
    --threads 1 -o "$T/t1.h5" >/dev/null 2>"$T/t1.err"
[ $? -eq 0 ] && grep -q "wrote" "$T/t1.err"; ok "probe-ppl --threads 1 runs and says what it wrote" $?
"$BINDIR/strata-probe-ppl" --model "$M" --tokenizer "$K" --corpus "$C" --samples 2 --seq-len 64 \
    --rope-scaling dynamic-ntk:2 -o "$T/d1.h5" >/dev/null 2>&1 &&
"$BINDIR/strata-probe-ppl" --model "$M" --tokenizer "$K" --corpus "$C" --samples 2 --seq-len 64 \
    --rope-scaling dynamic:2 -o "$T/d2.h5" >/dev/null 2>&1 && cmp -s "$T/d1.csv" "$T/d2.csv"
ok "--rope-scaling dynamic-ntk:2 and dynamic:2 both run, alike" $?
"$BINDIR/strata-convert" --model "$M" --tokenizer "$K" --rope-base 20000 --rope-scaling linear:2 -q \
    -o "$T/conv" >/dev/null 2>&1 && grep -q '"rope_theta":[[:space:]]*20000' "$T/conv/config.json" &&
    grep -q '"rope_type":[[:space:]]*"linear"' "$T/conv/config.json"
ok "convert --rope-base/--rope-scaling write the copy's config.json with them" $?
"$BINDIR/strata-generate" --model "$M" --tokenizer "$K" --steps 20 -q >"$T/g.txt" 2>"$T/g.err"
[ $? -eq 0 ] && [ -s "$T/g.txt" ] && [ ! -s "$T/g.err" ]; ok "generate -q prints the text only" $?

"$BINDIR/strata-generate" --model "$M" --tokenizer "$K" --temperature 0.8 >/dev/null 2>&1
[ $? -ne 0 ]; ok "non-zero temperature is refused, not silently ignored" $?
"$BINDIR/strata-probe-hidden" --model "$M" --tokenizer "$K" --corpus "$C" --samples 0 -o "$T/x.h5" >/dev/null 2>&1
[ $? -ne 0 ] && [ ! -e "$T/x.h5" ]; ok "--samples 0 is refused" $?

# Interrupt: SIGINT mid-run stops after the current sample; the output is
# only OUT.h5.partial, marked incomplete, and blockinf refuses it by default.
# The test waits for an event, never for a time: STRATA_TEST_PAUSE_AFTER=1
# makes the probe say "paused" once one sample is complete and wait for the
# signal, so the run is mid-way whatever the machine's speed.
mkfifo "$T/int.fifo"
STRATA_TEST_PAUSE_AFTER=1 "$BINDIR/strata-probe-hidden" --model "$M" --tokenizer "$K" \
    --corpus "$C" --samples 500 --seq-len 512 -o "$T/int.h5" 2>"$T/int.fifo" &
pid=$!
paused=1
while IFS= read -r line; do
    printf '%s\n' "$line" >>"$T/int.err"
    case $line in *"paused after 1 samples"*) paused=0; kill -INT $pid ;; esac
done <"$T/int.fifo"
wait $pid; rc=$?
ok "probe pauses after its first sample (the event the test waits for)" $paused
[ $rc -eq 130 ]; ok "interrupted probe exits 130 (got $rc)" $?
[ ! -e "$T/int.h5" ] && [ -e "$T/int.h5.partial" ]; ok "interrupted probe leaves only .partial" $?
grep -q "interrupted after" "$T/int.err"; ok "interrupted probe says how far it got" $?
"$BINDIR/strata-blockinf" "$T/int.h5.partial" -o "$T/int.csv" >/dev/null 2>"$T/bi.err"
[ $? -ne 0 ] && [ ! -e "$T/int.csv" ] && grep -q "incomplete" "$T/bi.err"; ok "blockinf refuses an incomplete dump" $?
"$BINDIR/strata-blockinf" "$T/int.h5.partial" --allow-partial -o "$T/int.csv" >/dev/null 2>&1
ok "blockinf --allow-partial reads the completed samples" $?
[ "$(grep -vc "^#" "$T/int.csv")" -eq 6 ] && head -n 1 "$T/int.csv" | grep -q "^# program=strata-blockinf .*n_samples=1 "
ok "partial BI CSV: a provenance line (N = the completed samples), a header and 5 blocks" $?

# A NaN in the weights is refused when the model loads (one rule for every
# format), not printed as <unk> tokens with exit 0. stories260K: a 28-byte
# header, the (512, 64) embedding, 5 x 64 attention-norm weights, then wq;
# element 5 of block 0's wq becomes a quiet NaN.
cp "$M" "$T/nan.bin"
printf '\x00\x00\xc0\x7f' | dd of="$T/nan.bin" bs=1 seek=$((28 + 4 * (512 * 64 + 5 * 64 + 5))) conv=notrunc 2>/dev/null
"$BINDIR/strata-generate" --model "$T/nan.bin" --tokenizer "$K" --steps 8 >"$T/nan.out" 2>"$T/nan.err"
rc=$?
[ $rc -eq 1 ] && [ ! -s "$T/nan.out" ] && grep -q "block 0 wq element 5 is not finite" "$T/nan.err"
ok "NaN weight refused at load, naming block, tensor and element (exit $rc)" $?

# Two runs, one -o: the second is refused while the first (paused after its
# first sample: an event, not a time) holds OUT.h5.partial, which stays
# intact; and -o naming a directory is refused before any work.
mkfifo "$T/two.fifo"
TWO="--model $M --tokenizer $K --corpus $C --samples 20 --seq-len 64 -o $T/two.h5"
STRATA_TEST_PAUSE_AFTER=1 "$BINDIR/strata-probe-hidden" $TWO 2>"$T/two.fifo" &
pid=$!
second=-1
while IFS= read -r line; do
    case $line in *"paused after 1 samples"*)
        "$BINDIR/strata-probe-hidden" $TWO >/dev/null 2>"$T/two.err"; second=$?
        kill -INT $pid ;;
    esac
done <"$T/two.fifo"
wait $pid; first=$?
[ $second -eq 1 ] && grep -q "another run is writing it" "$T/two.err"
ok "a second run on the same -o is refused, naming the file (exit $second)" $?
[ $first -eq 130 ] && "$BINDIR/strata-blockinf" "$T/two.h5.partial" --allow-partial -o "$T/two.csv" >/dev/null 2>&1
ok "the first run's .partial survives the second and reads back (exit $first)" $?
mkdir -p "$T/adir.h5"
"$BINDIR/strata-probe-hidden" --model "$M" --tokenizer "$K" --corpus "$C" --samples 2 --seq-len 32 \
    -o "$T/adir.h5" >/dev/null 2>"$T/adir.err"
rc=$?
[ $rc -eq 2 ] && [ ! -e "$T/adir.h5.partial" ] && grep -q "is a directory" "$T/adir.err"
ok "-o naming a directory is refused before the run (exit $rc)" $?

# A corpus that never ends is refused, not read until memory runs out (the
# timeout only keeps a regression from hanging the suite).
timeout 120 "$BINDIR/strata-probe-ppl" --model "$M" --tokenizer "$K" --corpus /dev/zero --samples 2 \
    --seq-len 32 -o "$T/zero.h5" >/dev/null 2>"$T/zero.err"
rc=$?
[ $rc -eq 1 ] && grep -q "/dev/zero: not a regular file" "$T/zero.err"
ok "--corpus /dev/zero is refused as not a regular file (exit $rc)" $?

echo "test_cli: $pass passed, $fail failed"
[ $fail -eq 0 ]
