#!/bin/sh
# The shapes-world acceptance measurements of issues 4, 5 and 6 on the shipped model family
# (models/shapes), with the C engine only. Every step is resumable (rerun the script after an
# interruption: calibrate / eval / edit-eval / control-eval continue their logs) and writes its table
# under OUT; the tables go into docs/ADAPTIVE.md, docs/LORA.md, docs/EDITING.md and docs/CONTROLNET.md.
#
# usage: tools/shapes/acceptance.sh [--out DIR] [--only adaptive|lora|edit|control]...
#   environment: TANDEM (default build/tandem), MODELS (default models/shapes), N_EVAL (500),
#   N_EDIT (300), N_CONTROL (300), N_CAL (500), REFINE_STEPS (10), REFINE_STRENGTH (0.7),
#   CONTROL_SCALE (1.25: chosen on 60 validation scenes, docs/CONTROLNET.md)
#
# Settings (docs/ADAPTIVE.md): student = unet_student, consistency sampler, 4 steps, guidance 5;
# teacher-only baseline = DDIM 50 steps, guidance 5 (100 UNet evaluations an image); refinement =
# DDIM with REFINE_STEPS teacher steps at strength REFINE_STRENGTH (0.7); oracle = the shipped shapes oracle (ImageReward
# architecture); tau_k from a calibration on validation-split captions (world seed 1), evaluation on
# test-split captions (world seed 1001), seed 0.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TANDEM=${TANDEM:-$ROOT/build/tandem}
MODELS=${MODELS:-$ROOT/models/shapes}
OUT=$ROOT/build/acceptance
ONLY=""
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT=$2; shift 2 ;;
        --only) ONLY="$ONLY $2"; shift 2 ;;
        *) echo "acceptance.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
: "${ONLY:= adaptive lora edit control}"
N_EVAL=${N_EVAL:-500}; N_EDIT=${N_EDIT:-300}; N_CONTROL=${N_CONTROL:-300}; N_CAL=${N_CAL:-500}
REFINE_STEPS=${REFINE_STEPS:-10}; REFINE_STRENGTH=${REFINE_STRENGTH:-0.7}; CONTROL_SCALE=${CONTROL_SCALE:-1.25}
[ -x "$TANDEM" ] || { echo "acceptance.sh: $TANDEM missing: run make" >&2; exit 1; }
[ -f "$MODELS/model_index.json" ] || { echo "acceptance.sh: no model family at $MODELS" >&2; exit 1; }
[ -f "$MODELS/oracle/config.json" ] || { echo "acceptance.sh: no oracle at $MODELS/oracle" >&2; exit 1; }
mkdir -p "$OUT"
wants() { case " $ONLY " in *" $1 "*) return 0 ;; esac; return 1; }

ORACLE="--oracle imagereward --oracle-model $MODELS/oracle"
STUDENT="--student-unet unet_student --sampler consistency --steps 4 --guidance 5"
TEACHER="--teacher-unet unet --teacher-sampler ddim --teacher-steps 50 --teacher-guidance 5"
REFINE="--refine-strength $REFINE_STRENGTH --refine-steps $REFINE_STEPS"
K="--k 10,20,30,40,50,60,70,80,90"

"$TANDEM" world captions --split val --n "$N_CAL" --seed 1 > "$OUT/calibration_prompts.txt"
"$TANDEM" world captions --split test --n "$N_EVAL" --seed 1001 > "$OUT/test_prompts.txt"

if wants adaptive; then
    echo "== issue 4: calibration ($N_CAL student samples) and evaluation ($N_EVAL test prompts)"
    # shellcheck disable=SC2086
    "$TANDEM" calibrate --model "$MODELS" $STUDENT $ORACLE --prompts "$OUT/calibration_prompts.txt" \
        --n "$N_CAL" --seed 0 --out "$OUT/calibration.json" -q
    # shellcheck disable=SC2086
    "$TANDEM" eval --model "$MODELS" $STUDENT $TEACHER $REFINE $ORACLE $K --prompts "$OUT/test_prompts.txt" --seed-per-prompt \
        --seeds 0 --calibration "$OUT/calibration.json" --out "$OUT/adaptive"
fi

if wants lora && [ -f "$MODELS/lcm_lora/pytorch_lora_weights.safetensors" ]; then
    echo "== issues 4 and 5: the LCM-LoRA student (teacher + LoRA, weights shared), $N_EVAL test prompts"
    LORA="--student-lora $MODELS/lcm_lora/pytorch_lora_weights.safetensors --student-unet unet"
    # shellcheck disable=SC2086
    "$TANDEM" calibrate --model "$MODELS" $LORA --sampler lcm --steps 4 --guidance 1 $ORACLE \
        --prompts "$OUT/calibration_prompts.txt" --n "$N_CAL" --seed 0 --out "$OUT/calibration_lora.json" -q
    # shellcheck disable=SC2086
    "$TANDEM" eval --model "$MODELS" $LORA --sampler lcm --steps 4 --guidance 1 $TEACHER $REFINE $ORACLE $K \
        --prompts "$OUT/test_prompts.txt" --seeds 0 --seed-per-prompt --calibration "$OUT/calibration_lora.json" --out "$OUT/lora"
fi

if wants edit; then
    echo "== issue 6: editing, $N_EDIT pairs"
    # shellcheck disable=SC2086
    "$TANDEM" edit-eval --model "$MODELS" $STUDENT $TEACHER $REFINE $ORACLE $K --n "$N_EDIT" \
        --similarity-model "$MODELS/clip" --out "$OUT/edit"
    if [ -d "$MODELS/controlnet" ]; then
        echo "== issue 6: layout-guided editing (given region + paste-back + ControlNet on the target layout), $N_EDIT pairs"
        # shellcheck disable=SC2086
        "$TANDEM" edit-eval --model "$MODELS" $STUDENT $TEACHER $REFINE $ORACLE $K --n "$N_EDIT" --mask-given --mask-paste \
            --controlnet "$MODELS/controlnet" --control-scale "$CONTROL_SCALE" --similarity-model "$MODELS/clip" \
            --out "$OUT/edit_control_paste"
        echo "== issue 6: the same with region fill and drag-moves for the position edits, $N_EDIT pairs"
        # shellcheck disable=SC2086
        "$TANDEM" edit-eval --model "$MODELS" $STUDENT $TEACHER $REFINE $ORACLE $K --n "$N_EDIT" --mask-given --mask-paste \
            --mask-fill --drag --controlnet "$MODELS/controlnet" --control-scale "$CONTROL_SCALE" \
            --similarity-model "$MODELS/clip" --out "$OUT/edit_control_drag"
        if [ -f "$MODELS/lcm_lora/pytorch_lora_weights.safetensors" ]; then
            echo "== issue 6: the same with the LCM-LoRA student (the -best rows: --keep-better), $N_EDIT pairs"
            # shellcheck disable=SC2086
            "$TANDEM" edit-eval --model "$MODELS" --student-lora "$MODELS/lcm_lora/pytorch_lora_weights.safetensors" \
                --student-unet unet --sampler lcm --steps 4 --guidance 1 $TEACHER $REFINE $ORACLE $K --n "$N_EDIT" \
                --mask-given --mask-paste --mask-fill --drag --controlnet "$MODELS/controlnet" \
                --control-scale "$CONTROL_SCALE" --similarity-model "$MODELS/clip" --out "$OUT/edit_control_drag_lora"
        fi
    fi
fi

if wants control && [ -d "$MODELS/controlnet" ]; then
    echo "== issue 6: ControlNet, $N_CONTROL scenes"
    # shellcheck disable=SC2086
    "$TANDEM" control-eval --model "$MODELS" $STUDENT $TEACHER $REFINE $ORACLE $K --n "$N_CONTROL" \
        --controlnet "$MODELS/controlnet" --control-scale "$CONTROL_SCALE" --out "$OUT/control"
    if [ -f "$MODELS/lcm_lora/pytorch_lora_weights.safetensors" ]; then
        echo "== issue 6: ControlNet with the LCM-LoRA student, $N_CONTROL scenes (the -best rows: --keep-better)"
        # shellcheck disable=SC2086
        "$TANDEM" control-eval --model "$MODELS" --student-lora "$MODELS/lcm_lora/pytorch_lora_weights.safetensors" \
            --student-unet unet --sampler lcm --steps 4 --guidance 1 $TEACHER $REFINE $ORACLE $K --n "$N_CONTROL" \
            --controlnet "$MODELS/controlnet" --control-scale "$CONTROL_SCALE" --out "$OUT/control_lora"
    fi
fi
echo "== tables: $OUT/*/table.md"
