#!/usr/bin/env bash
# make demo: the first end-to-end slice on a small real model.
# stories260K (a trained 260K-parameter Llama) over TinyStories stories:
# greedy sample -> hidden-state dump -> Block Influence and variants ->
# pruning plan -> held-out perplexity with blocks removed -> pruned checkpoint -> PNG.
#
# Inputs (environment variables; the demo only picks defaults):
#   MODEL, TOKENIZER  llama2.c checkpoint and tokenizer
#                     (default ../shared/models/stories260K/, else downloaded
#                     once into data/cache/ and checked by sha256)
#   CORPUS            text with documents separated by <|endoftext|>
#                     (default ../shared/corpora/tinystories-val-1000.txt)
#   SAMPLES, SEQ_LEN  sampling (default 200 x 256)
#   EVAL_SAMPLES      held-out samples for the pruning evaluation (default 64:
#                     draws 0..63; the calibration dump takes the next SAMPLES)
#   REMOVE            blocks the pruning plan removes (default 2)
#   OUT               output folder (default out/demo)
set -euo pipefail
cd "$(dirname "$0")/.."
BINDIR=${BINDIR:-bin}
PYTHON=${PYTHON:-/usr/bin/python3}
SHARED=${SHARED:-../shared}
OUT=${OUT:-out/demo}
SAMPLES=${SAMPLES:-200}
SEQ_LEN=${SEQ_LEN:-256}
EVAL_SAMPLES=${EVAL_SAMPLES:-64}
REMOVE=${REMOVE:-2}
HF=https://huggingface.co/karpathy/tinyllamas/resolve/main/stories260K
declare -A SHA=(
    [stories260K.bin]=b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696
    [tok512.bin]=037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312
)

fetch() { # name -> path of a verified copy
    local name=$1 local_copy="$SHARED/models/stories260K/$1" cached="data/cache/stories260K/$1"
    if [ -f "$local_copy" ]; then echo "$local_copy"; return; fi
    if [ ! -f "$cached" ]; then
        mkdir -p "$(dirname "$cached")"
        echo "demo: downloading $name from $HF" >&2
        if ! curl -fsSL --retry 2 -o "$cached.partial" "$HF/$name"; then
            rm -f "$cached.partial"
            echo "demo: cannot download $name; put stories260K.bin and tok512.bin (karpathy/tinyllamas," >&2
            echo "      folder stories260K) in data/cache/stories260K/ or set MODEL and TOKENIZER" >&2
            exit 1
        fi
        mv "$cached.partial" "$cached"
    fi
    if ! echo "${SHA[$name]}  $cached" | sha256sum -c --quiet - >&2; then
        echo "demo: $cached does not have the published sha256 ${SHA[$name]}; delete it and retry" >&2
        exit 1
    fi
    echo "$cached"
}

MODEL=${MODEL:-$(fetch stories260K.bin)}
TOKENIZER=${TOKENIZER:-$(fetch tok512.bin)}
CORPUS=${CORPUS:-$SHARED/corpora/tinystories-val-1000.txt}
if [ ! -f "$CORPUS" ]; then
    echo "demo: no corpus at $CORPUS. Set CORPUS to a UTF-8 text file of stories separated" >&2
    echo "      by <|endoftext|> (e.g. TinyStories validation text), at least $SAMPLES stories" >&2
    exit 1
fi
mkdir -p "$OUT"
SECONDS=0

echo "== greedy sample from $MODEL"
"$BINDIR/strata-generate" --model "$MODEL" --tokenizer "$TOKENIZER" --temperature 0 --steps 80

echo "== hidden states of $SAMPLES samples x $SEQ_LEN tokens (draws $EVAL_SAMPLES.., residual stream and block outputs)"
"$BINDIR/strata-probe-hidden" --model "$MODEL" --tokenizer "$TOKENIZER" --corpus "$CORPUS" \
    --samples "$SAMPLES" --seq-len "$SEQ_LEN" --seed 0 --sample-offset "$EVAL_SAMPLES" \
    --sites resid,attn_out,mlp_out --dtype f32 -o "$OUT/hidden.h5"

echo "== Block Influence (P3) and its variants, 1000 bootstrap replicates"
"$BINDIR/strata-blockinf" score "$OUT/hidden.h5" --metric all --bootstrap 1000 --seed 0 \
    -o "$OUT/blockinf.csv"
grep -v '^#' "$OUT/blockinf.csv" | cut -d, -f1-8
"$BINDIR/strata-blockinf" plan "$OUT/hidden.h5" --remove "$REMOVE" -o "$OUT/blockinf_plan.json" \
    --csv "$OUT/blockinf_plan.csv"
echo "== held-out perplexity ($EVAL_SAMPLES samples, draws 0..$((EVAL_SAMPLES - 1))) with blocks removed"
"$PYTHON" scripts/blockinf_eval.py "$OUT/blockinf_plan.json" -o "$OUT/blockinf_eval" \
    --samples "$EVAL_SAMPLES" --model "$MODEL" --tokenizer "$TOKENIZER" --corpus "$CORPUS" \
    --bindir "$BINDIR"
cat "$OUT/blockinf_eval/ppl_layer.csv" "$OUT/blockinf_eval/ppl_k.csv"
DROP=$("$PYTHON" -c 'import json, sys; print(",".join(map(str, json.load(open(sys.argv[1]))["remove"])))' \
    "$OUT/blockinf_plan.json")
echo "== pruned checkpoint without blocks $DROP, and its held-out perplexity"
"$BINDIR/strata-convert" --model "$MODEL" --tokenizer "$TOKENIZER" --drop-layers "$DROP" \
    -o "$OUT/pruned"
"$BINDIR/strata-probe-ppl" --model "$OUT/pruned" --tokenizer "$TOKENIZER" --corpus "$CORPUS" \
    --samples "$EVAL_SAMPLES" --seq-len "$SEQ_LEN" --seed 0 -o "$OUT/pruned_ppl.h5"
"$PYTHON" scripts/plot_blockinf.py "$OUT/blockinf.csv" -o "$OUT/blockinf.png" -k "$REMOVE" \
    --ppl-layer "$OUT/blockinf_eval/ppl_layer.csv" --ppl-k "$OUT/blockinf_eval/ppl_k.csv"

echo "== RoPE decay (P2): B(m) curves, the paper's base bound table, the gap in stories260K"
"$BINDIR/strata-decay" curve --base 10000,100000,1000000,10000000 --dim 128 --max-dist 20000 \
    --every 4 --summary "$OUT/decay_first_neg.csv" -o "$OUT/decay_curve.csv"
T0=$(date +%s%N)
"$BINDIR/strata-decay" bound --dim 128 -o "$OUT/decay_bound.csv"
MS=$((($(date +%s%N) - T0) / 1000000))
echo "bound table (d = 128, the paper's lengths) took $((MS / 1000)).$(printf %03d $((MS % 1000))) s:"
grep -v '^#' "$OUT/decay_bound.csv" | cut -d, -f1-5
# check exits 1 when its verdict is FAIL (stories260K's base 10^4 at d = 8
# fails its window of 512: docs/DECAY.md); only an exit 1 that left the CSV
# with a fail verdict is that, anything else stops the demo
rm -f "$OUT/decay_check.csv"
rc=0
"$BINDIR/strata-decay" check --config "$MODEL" -o "$OUT/decay_check.csv" || rc=$?
if [ "$rc" -ne 0 ] && ! { [ "$rc" -eq 1 ] && grep -q ',fail$' "$OUT/decay_check.csv" 2>/dev/null; }; then
    exit "$rc"
fi
cat "$OUT/decay_check.csv"
"$BINDIR/strata-decay" gap --model "$MODEL" --tokenizer "$TOKENIZER" --seq-len 256 --trials 32 \
    -o "$OUT/decay_gap.csv"
# the curve is written every 4th m; the summary has the exact first m with B(m) < 0
"$PYTHON" scripts/plot_decay.py curve "$OUT/decay_curve.csv" --summary "$OUT/decay_first_neg.csv" \
    -o "$OUT/decay_curve.png"
"$PYTHON" scripts/plot_decay.py bound "$OUT/decay_bound.csv" --paper-fit 0.0424,1.628 \
    --title "Lower bound of RoPE's base against context length L (d = 128)" -o "$OUT/decay_bound.png"
"$PYTHON" scripts/plot_decay.py gap "$OUT/decay_gap.csv" -o "$OUT/decay_gap.png" \
    --model "$MODEL" --seq-len 256 --window 512
if [ -x "$BINDIR/strata-probe-attn" ]; then
    "$BINDIR/strata-probe-attn" --model "$MODEL" --tokenizer "$TOKENIZER" --corpus "$CORPUS" \
        --samples 50 --seq-len "$SEQ_LEN" --seed 0 -o "$OUT/attn.h5"
    "$BINDIR/strata-decay" empirical "$OUT/attn.h5" -o "$OUT/decay_empirical.csv"
    "$PYTHON" scripts/plot_decay.py empirical "$OUT/decay_empirical.csv" \
        -o "$OUT/decay_empirical.png" --model "$MODEL" --corpus "$CORPUS" --samples 50 \
        --seq-len "$SEQ_LEN" --window 512
fi

echo "== positional vectors (P1): decomposition, formation, edits, beyond the window, extension"
BINDIR="$BINDIR" PYTHON="$PYTHON" MODEL="$MODEL" TOKENIZER="$TOKENIZER" CORPUS="$CORPUS" \
    OUT="$OUT/posvec" scripts/demo_posvec.sh

echo
echo "demo done in ${SECONDS} s. Results:"
echo "  $OUT/hidden.h5      hidden states (docs/FORMAT.md)"
echo "  $OUT/blockinf.csv   Block Influence and variants per block, bootstrap CIs"
echo "  $OUT/blockinf_plan.json, .csv   the blocks to remove; $OUT/pruned/ the pruned checkpoint"
echo "  $OUT/blockinf_eval/ppl_layer.csv, ppl_k.csv   held-out perplexity with blocks removed"
echo "  $OUT/blockinf.png   the figure (docs/FIGURES.md: every figure and how to make it)"
echo "  $OUT/decay_*.csv    RoPE decay: curve, bound table (+ fit), gap, empirical; decay_*.png"
echo "  $OUT/posvec/        positional vectors: CSV and PNG (docs/POSVEC.md)"
