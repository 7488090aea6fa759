#!/usr/bin/env bash
# Positional vectors (P1, docs/POSVEC.md) on stories260K: trained window
# C = 512, tested at 1024 and 2048. About two minutes on 2 cores.
#   dump 512 and 2048 -> decompose -> formation, attention, beyond-window,
#   extension, methods -> CSV + PNG in $OUT.
# Environment: BINDIR (bin), PYTHON (/usr/bin/python3), MODEL, TOKENIZER,
# CORPUS (stories260K and TinyStories under ../shared by default), OUT
# (out/demo/posvec), N512 / N2048 (dump samples, 160 / 40), NRUN (samples per
# model run, 8).
set -euo pipefail
cd "$(dirname "$0")/.."
BINDIR=${BINDIR:-bin}
PYTHON=${PYTHON:-/usr/bin/python3}
SHARED=${SHARED:-../shared}
MODEL=${MODEL:-$SHARED/models/stories260K/stories260K.bin}
TOKENIZER=${TOKENIZER:-$SHARED/models/stories260K/tok512.bin}
CORPUS=${CORPUS:-$SHARED/corpora/tinystories-val-1000.txt}
OUT=${OUT:-out/demo/posvec}
N512=${N512:-160}
N2048=${N2048:-40}
NRUN=${NRUN:-8}
PV="$BINDIR/strata-posvec"
PLOT="$PYTHON scripts/plot_posvec.py"
M=(--model "$MODEL" --tokenizer "$TOKENIZER" --corpus "$CORPUS")
mkdir -p "$OUT"
SECONDS=0

echo "== hidden states: $N512 x 512 and $N2048 x 2048 tokens (seed 7)"
"$BINDIR/strata-probe-hidden" "${M[@]}" --samples "$N512" --seq-len 512 --seed 7 -o "$OUT/h512.h5"
"$BINDIR/strata-probe-hidden" "${M[@]}" --samples "$N2048" --seq-len 2048 --seed 7 -o "$OUT/h2048.h5"

echo "== decompose"
"$PV" decompose "$OUT/h512.h5" -o "$OUT/pv512.h5"
"$PV" decompose "$OUT/h2048.h5" -o "$OUT/pv2048.h5"
cat "$OUT/pv512.csv"

echo "== formation (inside the window)"
"$PV" formation "$OUT/pv512.h5" -o "$OUT/formation"
cat "$OUT/formation/distinct.csv" "$OUT/formation/layers.csv"
$PLOT pca "$OUT/formation" --boundaries 1,4 -o "$OUT/posvec_pca.png"
$PLOT cos "$OUT/formation" --boundaries 0,1,4 -o "$OUT/posvec_cos.png"
$PLOT norms "$OUT/formation" -o "$OUT/posvec_norms.png"

echo "== attention: remove p, m or c at boundary 1"
"$PV" attention --pv "$OUT/pv512.h5" "${M[@]}" --samples "$NRUN" --seed 1 -o "$OUT/attention"
$PLOT attention "$OUT/attention" --block 3 -o "$OUT/posvec_attention.png"

echo "== beyond the window (2048 = 4C)"
"$PV" beyond-window --pv "$OUT/pv2048.h5" "${M[@]}" --samples "$NRUN" --seed 1 -o "$OUT/beyond"
cat "$OUT/beyond/beyond_summary.csv"
$PLOT beyond "$OUT/beyond" -o "$OUT/posvec_beyond.png"

echo "== extension at 1024: RoPE scaling and temperature"
"$PV" extension --pv "$OUT/pv2048.h5" "${M[@]}" --samples "$NRUN" --seed 1 --seq-len 1024 \
    --methods direct,linear:2,ntk:2,dynamic-ntk:2,temp:1.2 -o "$OUT/extension"
cat "$OUT/extension/extension_summary.csv"
$PLOT extension "$OUT/extension" --boundary 3 --method linear:2 -o "$OUT/posvec_extension.png"

echo "== methods at 512, 1024, 2048"
"$PV" methods --pv "$OUT/pv2048.h5" "${M[@]}" --samples "$NRUN" --seed 1 --lengths 512,1024,2048 \
    --methods direct,linear:2,linear:4,ntk:4,dynamic-ntk:4,window:C,wext:2:1.1 \
    --replace 2:2:1,2:4:1,2:5:1.3 --grid-layers 1,2,4 --grid-r 2,4 --grid-alpha 1,1.3 \
    --grid-length 1024 -o "$OUT/methods"
cat "$OUT/methods/methods.csv"
$PLOT methods "$OUT/methods" -o "$OUT/posvec_methods.png"
# the dumps are large; the PV files keep the sums (the CSVs name the dumps' model and corpus,
# read from them while they existed)
rm -f "$OUT/h512.h5" "$OUT/h2048.h5"

echo
echo "posvec demo done in ${SECONDS} s; CSV and PNG in $OUT (docs/POSVEC.md explains them)"
