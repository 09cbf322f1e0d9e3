#!/bin/sh
# Builds the whole shapes-world model family: tokenizer, CLIP, VAE, teacher, student, oracle, the
# evaluation on test prompts, the export to models/shapes/ (float16), the tandem-check fixtures and the
# engine's evaluation of both students against the teacher (2000 test prompts, ~40 min + ~5 min) for the model card.
# Every stage checkpoints and is resumed by re-running this script (each stage is skipped when its
# output exists and it finished; pass --restart to train everything again).
#
# usage: tools/shapes/build_all.sh [--work DIR] [--out DIR] [--fixtures DIR] [--minutes M] [--smoke] [--restart]
#   --work DIR      stage checkpoints and outputs (default build/shapes-work; smoke: build/shapes-smoke)
#   --out DIR       exported models (default models/shapes; smoke: WORK/models)
#   --fixtures DIR  tandem-check fixtures (default tests/fixtures; smoke: WORK/fixtures)
#   --minutes M     wall-clock budget of EACH training stage (default 90)
#   --smoke         a few steps per stage on 2000 scenes (proves the chain end to end, ~10 minutes)
# Needs build/tandem (make) for the world data and the checker. docs/TRAINING.md has the details.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=""
OUT=""
FX=""
MIN=90
SMOKE=0
RESTART=0
while [ $# -gt 0 ]; do
    case "$1" in
        --work) WORK=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --fixtures) FX=$2; shift 2 ;;
        --minutes) MIN=$2; shift 2 ;;
        --smoke) SMOKE=1; shift ;;
        --restart) RESTART=1; shift ;;
        *) echo "build_all.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
PY=/usr/bin/python3
export OMP_WAIT_POLICY=PASSIVE PYTHONDONTWRITEBYTECODE=1
cd "$ROOT/tools"
[ -x "$ROOT/build/tandem" ] || { echo "build_all.sh: build/tandem is missing: run make first" >&2; exit 1; }

if [ $SMOKE = 1 ]; then
    : "${WORK:=$ROOT/build/shapes-smoke}"; : "${OUT:=$WORK/models}"; : "${FX:=$WORK/fixtures}"
    N="--n-train 2000"
    CLIP="--steps 20 --log-every 5"; VAE="--steps 20 --log-every 5"; TEACH="--steps 20 --log-every 5 --eval-n 16"
    STUD="--steps 10 --log-every 5 --eval-n 16"; ORA="--steps 20 --log-every 5 --pairs 64 --test-pairs 32 --student-extra 32 --test-student-extra 16 --control-extra 16 --test-control-extra 8"
    EVAL="--n 32"; CN="--steps 20 --log-every 5 --eval-n 16"; NE=32
    LORA="--steps 10 --log-every 5 --eval-n 16"
else
    : "${WORK:=$ROOT/build/shapes-work}"; : "${OUT:=$ROOT/models/shapes}"; : "${FX:=$ROOT/tests/fixtures}"
    N=""; CLIP=""; VAE=""; TEACH=""; STUD=""; ORA=""; EVAL="--n 500"; CN=""; LORA=""; NE=2000
fi
T0=$(date +%s)
# Training spans sessions: tools/shapes/save_stages.sh keeps each stage's outputs (and, for a stage
# stopped by its budget, its checkpoint) under models/shapes-stages/; a fresh work folder starts from
# them, so a stage finished in an earlier session is skipped and an unfinished one resumes.
STAGES="$ROOT/models/shapes-stages"
seed_stage() {
    if [ $SMOKE = 0 ] && [ $RESTART = 0 ] && [ -d "$STAGES/$1" ] && [ ! -e "$WORK/$1" ]; then
        mkdir -p "$WORK"
        cp -r "$STAGES/$1" "$WORK/$1"
        echo "== $1: taken from models/shapes-stages/$1"
    fi
}
for s in tokenizer clip vae teacher controlnet student lora oracle; do seed_stage $s; done
stage() { # stage [--until N [--continues]] NAME MODULE ARGS...: runs (resuming) unless finished at step >= N
    until=0; cont=0
    [ "$1" = --until ] && { until=$2; shift 2; }
    [ "$1" = --continues ] && { cont=1; shift; }  # a later part of a stage: resumes even on --restart
    name=$1; mod=$2; shift 2
    m="$WORK/$name/out/metrics.json"
    if [ $RESTART = 0 ] && [ -f "$m" ] && grep -q '"finished": true' "$m" &&
        [ "$(sed -n 's/^ *"step": \([0-9]*\).*/\1/p' "$m")" -ge "$until" ]; then
        echo "== $name: finished earlier ($m), skipped"; return 0
    fi
    resume="--resume"; [ $RESTART = 1 ] && resume=""
    [ $cont = 1 ] && resume="--resume"
    echo "== $name"
    $PY -m "shapes.$mod" --work "$WORK" --minutes "$MIN" $resume "$@"
}

if [ -d "$ROOT/../shared/fixtures" ]; then
    echo "== modules vs reference fixtures"
    $PY -m shapes.verify_reference --fixtures "$ROOT/../shared/fixtures" | tail -1
fi
mkdir -p "$FX"
if [ $RESTART = 0 ] && [ -f "$WORK/tokenizer/out/vocab.json" ]; then
    echo "== tokenizer: trained earlier, kept (the later stages depend on its ids)"
else
    echo "== tokenizer"
    $PY -m shapes.train_tokenizer --work "$WORK" --fixture "$FX/shapes-tokenizer"
fi
stage clip train_clip $N $CLIP
stage vae train_vae $N $VAE
if [ $SMOKE = 0 ]; then
    # The teacher's 7000 steps (~112 min) run as two sittings of 3500 steps (~56 min each) so that each
    # fits the 90-minute stage budget; the checkpoint resumes exactly (model, optimiser, EMA, data RNG),
    # so the result is that of one uninterrupted run.
    stage --until 3500 teacher train_teacher $N --steps 3500
    stage --until 7000 --continues teacher train_teacher $N --steps 7000
else
    stage teacher train_teacher $N $TEACH
fi
stage controlnet train_controlnet $N $CN
stage student distill_student $N $STUD
stage lora distill_lora $N $LORA
echo "== evaluate"
$PY -m shapes.evaluate --work "$WORK" $EVAL
stage oracle train_oracle $N $ORA
echo "== export"
$PY -m shapes.export --work "$WORK" --out "$OUT" --fixtures "$FX"
$PY -m shapes.make_fixtures --out "$FX"
# The engine's own measurement of the student against the teacher (shipped float16 weights, C code, the
# run's settings) on more prompts than shapes.evaluate: the card's "In the engine" table. Resumable.
echo "== engine evaluation ($NE test prompts)"
mkdir -p "$WORK/engine_eval"
"$ROOT/build/tandem" world captions --split test --n "$NE" --seed 1001 > "$WORK/engine_eval/test_prompts.txt"
EV_RESTART=""; [ $RESTART = 1 ] && EV_RESTART="--restart"
"$ROOT/build/tandem" eval --model "$OUT" --student-unet unet_student --sampler consistency --steps 4 --guidance 5 \
    --teacher-unet unet --teacher-sampler ddim --teacher-steps 50 --teacher-guidance 5 --refine-steps 1 \
    --prompts "$WORK/engine_eval/test_prompts.txt" --seed-per-prompt --seeds 0 --out "$WORK/engine_eval" $EV_RESTART -q
if [ -f "$OUT/lcm_lora/pytorch_lora_weights.safetensors" ]; then
    # The LCM-LoRA student on the same prompts and noise; the card pairs it with the teacher samples above
    # (its own teacher run is a 1-step placeholder, not used).
    "$ROOT/build/tandem" eval --model "$OUT" --student-lora "$OUT/lcm_lora/pytorch_lora_weights.safetensors" \
        --student-unet unet --sampler lcm --steps 4 --guidance 1 --teacher-unet unet --teacher-steps 1 --refine-steps 1 \
        --prompts "$WORK/engine_eval/test_prompts.txt" --seed-per-prompt --seeds 0 --out "$WORK/engine_eval_lora" \
        $EV_RESTART -q
fi
$PY -m shapes.export --work "$WORK" --out "$OUT" --card-only
for f in "$FX"/shapes-*; do
    "$ROOT/build/tandem" check --fixture "$f" | tail -1 | sed "s|^|$(basename "$f"): |"
done
echo "== done in $(( ($(date +%s) - T0) / 60 )) min; models in $OUT"
