#!/bin/sh
# `make demo`: the main job on the embedded shapes-world model family (models/shapes, docs/WORLD.md).
#
#  1. calibration: the student draws CAL validation-split captions, the oracle scores them (tandem
#     calibrate; resumable, reused when it exists): tau_k = the k-th percentile of those scores;
#  2. evaluation on N test-split captions (tandem eval): student alone (the LCM-LoRA student on the
#     teacher, 4 LCM steps; the consistency-distilled unet_student when lcm_lora/ is not shipped), teacher
#     alone (DDIM 50), and adaptive refinement at k = 30, 40 and 50 from the same noise, every image
#     scored by the oracle and by the ground-truth checker; the table shows checker score vs UNet evaluations;
#  3. a few adaptive generations saved as PNG (tandem generate --adaptive) with their metadata.
#
# usage: tools/demo.sh [TANDEM] ; environment: MODELS (default models/shapes), OUT (default build/demo),
#        N (test prompts, default 24), CAL (calibration samples, default 64), IMAGES (default 4)
set -eu
TANDEM=${1:-build/tandem}
MODELS=${MODELS:-models/shapes}
OUT=${OUT:-build/demo}
N=${N:-24}
CAL=${CAL:-64}
IMAGES=${IMAGES:-4}
[ -x "$TANDEM" ] || { echo "demo: $TANDEM is missing: run make first" >&2; exit 1; }
[ -f "$MODELS/model_index.json" ] || { echo "demo: no model family at $MODELS (model_index.json)" >&2; exit 1; }
mkdir -p "$OUT"

# The shipped oracle (ImageReward architecture trained on the checker's scores) when present, else the
# checker itself as an ideal oracle.
if [ -f "$MODELS/oracle/config.json" ]; then
    ORACLE="--oracle imagereward --oracle-model $MODELS/oracle"
    ORACLE_NAME="the shapes ImageReward oracle"
else
    ORACLE="--oracle checker"
    ORACLE_NAME="the checker (no oracle shipped)"
fi
# Student and teacher settings of the model card (shapes_family.json): the LCM-LoRA student (the teacher's
# UNet + lcm_lora/, weights shared; the student that meets every bar of docs/ADAPTIVE.md), else the
# consistency-distilled UNet.
if [ -f "$MODELS/lcm_lora/pytorch_lora_weights.safetensors" ]; then
    STUDENT="--student-lora $MODELS/lcm_lora/pytorch_lora_weights.safetensors --student-unet unet --sampler lcm --steps 4 --guidance 1"
else
    STUDENT="--student-unet unet_student --sampler consistency --steps 4 --guidance 5"
fi
TEACHER="--teacher-unet unet --teacher-sampler ddim --teacher-steps 50 --teacher-guidance 5"
# Refinement: the teacher re-draws the student's image from strength 0.7 in 10 DDIM steps (20 UNet
# evaluations; docs/ADAPTIVE.md, "What was measured").
REFINE="--refine-strength 0.7 --refine-steps 10"

"$TANDEM" world captions --split val --n "$CAL" --seed 1 > "$OUT/calibration_prompts.txt"
"$TANDEM" world captions --split test --n "$N" --seed 1001 > "$OUT/prompts.txt"

echo "== 1. calibration: $CAL student samples scored by $ORACLE_NAME"
# shellcheck disable=SC2086
"$TANDEM" calibrate --model "$MODELS" $STUDENT $ORACLE --prompts "$OUT/calibration_prompts.txt" \
    --n "$CAL" --seed 0 --out "$OUT/calibration.json" -q

echo "== 2. evaluation on $N test captions: student, teacher, adaptive (tables: checker score per method)"
# shellcheck disable=SC2086
"$TANDEM" eval --model "$MODELS" $STUDENT $TEACHER $REFINE $ORACLE --prompts "$OUT/prompts.txt" --seeds 0 --seed-per-prompt \
    --k 30,40,50 --calibration "$OUT/calibration.json" --out "$OUT/eval" -q
cat "$OUT/eval/table.md"

echo "== 3. adaptive generation (k = 40), images in $OUT/"
head -n "$IMAGES" "$OUT/prompts.txt" > "$OUT/image_prompts.txt"
i=0
while IFS= read -r prompt; do
    png=$(printf '%s/adaptive_%02d.png' "$OUT" "$i")
    # shellcheck disable=SC2086
    "$TANDEM" generate --adaptive --model "$MODELS" $STUDENT $TEACHER $REFINE $ORACLE --k 40 \
        --calibration "$OUT/calibration.json" --prompt "$prompt" --seed "$i" -o "$png" --sidecar "$png.json" \
        --student-output "$(printf '%s/student_%02d.png' "$OUT" "$i")" 2>&1 | grep '^wrote' || true
    echo "  \"$prompt\": checker $("$TANDEM" score --checker --prompt "$prompt" --image "$png" | head -n 1)"
    i=$((i + 1))
done < "$OUT/image_prompts.txt"
echo "demo: done (eval table: $OUT/eval/table.md; each PNG carries its decision, scores and settings)"
