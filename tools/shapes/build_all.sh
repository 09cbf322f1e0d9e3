#!/bin/sh
# Builds the whole shapes-world model family: tokenizer, CLIP, VAE, teacher, student, oracle, the
# evaluation on test prompts, the export to models/shapes/ (float16) and the tandem-check fixtures.
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
    STUD="--steps 10 --log-every 5 --eval-n 16"; ORA="--steps 20 --log-every 5 --pairs 64 --test-pairs 32"
    EVAL="--n 32"; CN="--steps 20 --log-every 5 --eval-n 16"
    LORA="--steps 10 --log-every 5 --eval-n 16"
else
    : "${WORK:=$ROOT/build/shapes-work}"; : "${OUT:=$ROOT/models/shapes}"; : "${FX:=$ROOT/tests/fixtures}"
    N=""; CLIP=""; VAE=""; TEACH=""; STUD=""; ORA=""; EVAL="--n 500"; CN=""; LORA=""
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
stage() { # stage NAME MODULE ARGS...: runs (resuming) unless finished
    name=$1; mod=$2; shift 2
    m="$WORK/$name/out/metrics.json"
    if [ $RESTART = 0 ] && [ -f "$m" ] && grep -q '"finished": true' "$m"; then
        echo "== $name: finished earlier ($m), skipped"; return 0
    fi
    resume="--resume"; [ $RESTART = 1 ] && resume=""
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
stage teacher train_teacher $N $TEACH
stage controlnet train_controlnet $N $CN
stage student distill_student $N $STUD
stage lora distill_lora $N $LORA
echo "== evaluate"
$PY -m shapes.evaluate --work "$WORK" $EVAL
stage oracle train_oracle $N $ORA
echo "== export"
$PY -m shapes.export --work "$WORK" --out "$OUT" --fixtures "$FX"
$PY -m shapes.make_fixtures --out "$FX"
for f in "$FX"/shapes-*; do
    "$ROOT/build/tandem" check --fixture "$f" | tail -1 | sed "s|^|$(basename "$f"): |"
done
echo "== done in $(( ($(date +%s) - T0) / 60 )) min; models in $OUT"
