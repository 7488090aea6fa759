#!/usr/bin/env bash
# The figures of docs/FIGURES.md from the CSVs of `make demo`: every plot the
# demo draws, again, as commit-ready PNGs (150 dpi, 256-colour palette,
# each well under 200 KB) in docs/figures/. Run `make demo` first.
# Environment: OUT (the demo's output, default out/demo), FIG (default
# docs/figures), PYTHON (/usr/bin/python3), EXT (png; pdf or svg give vector
# files instead).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/demo}
FIG=${FIG:-docs/figures}
PYTHON=${PYTHON:-/usr/bin/python3}
EXT=${EXT:-png}
PV="$OUT/posvec"
if [ ! -f "$OUT/blockinf.csv" ] || [ ! -f "$PV/methods/methods.csv" ]; then
    echo "figures: no demo output in $OUT; run make demo (or scripts/demo.sh) first" >&2
    exit 1
fi
mkdir -p "$FIG"
O=(--dpi 150)
[ "$EXT" = png ] && O+=(--palette)
P() { "$PYTHON" "$@" "${O[@]}"; }

# P3: ShortGPT's Block Influence, removal curves
P scripts/plot_blockinf.py "$OUT/blockinf.csv" -k 2 --ppl-layer "$OUT/blockinf_eval/ppl_layer.csv" \
    --ppl-k "$OUT/blockinf_eval/ppl_k.csv" -o "$FIG/blockinf.$EXT"
# P2: RoPE decay, the base bound and its fit, attention against distance
P scripts/plot_decay.py curve "$OUT/decay_curve.csv" --summary "$OUT/decay_first_neg.csv" \
    -o "$FIG/decay_curve.$EXT"
P scripts/plot_decay.py bound "$OUT/decay_bound.csv" --paper-fit 0.0424,1.628 \
    --title "Lower bound of RoPE's base against context length L (d = 128)" -o "$FIG/decay_bound.$EXT"
if [ -f "$OUT/decay_empirical.csv" ]; then
    P scripts/plot_decay.py empirical "$OUT/decay_empirical.csv" --model stories260K.bin \
        --corpus tinystories-val-1000.txt --samples 50 --seq-len 256 -o "$FIG/decay_empirical.$EXT"
fi
P scripts/plot_decay.py gap "$OUT/decay_gap.csv" --model stories260K.bin --seq-len 256 \
    -o "$FIG/decay_gap.$EXT"
# P1: positional vectors
P scripts/plot_posvec.py pca "$PV/formation" --boundaries 1,4 -o "$FIG/posvec_pca.$EXT"
P scripts/plot_posvec.py cos "$PV/formation" --boundaries 0,1,4 -o "$FIG/posvec_cos.$EXT"
P scripts/plot_posvec.py norms "$PV/formation" -o "$FIG/posvec_norms.$EXT"
P scripts/plot_posvec.py attention "$PV/attention" --block 3 -o "$FIG/posvec_attention.$EXT"
P scripts/plot_posvec.py beyond "$PV/beyond" -o "$FIG/posvec_beyond.$EXT"
P scripts/plot_posvec.py extension "$PV/extension" --boundary 3 --method linear:2 \
    -o "$FIG/posvec_extension.$EXT"
P scripts/plot_posvec.py methods "$PV/methods" -o "$FIG/posvec_methods.$EXT"
ls -l "$FIG"/*."$EXT"
