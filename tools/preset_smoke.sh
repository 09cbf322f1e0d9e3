#!/bin/sh
# Preset smoke test (issue 5 acceptance: "each preset runs end to end on models built from the manifests and
# reports its UNet evaluations"; docs/PRESETS.md). Builds random-weight model folders with the exact tensor
# names and shapes of the full-size manifests (tools/manifest_model.c; about 21 GB of float16 files under
# build/preset-smoke/models, kept between runs) and runs every preset once through
# `tandem generate --adaptive --preset NAME`, with the deterministic test oracle `brightness` and tau 2 so that
# the teacher always runs (every stage is exercised). Prints per preset: image sizes, UNet evaluations
# (student + teacher), wall and CPU seconds, peak RSS (/usr/bin/time -v), the refinement hand-off.
#
# usage: tools/preset_smoke.sh [--size N] [--threads N] [--only LIST] [--out DIR] [--fixtures DIR]
#   --size N     image side for every preset (sdxl-turbo: student N/2, teacher N); default: the presets' own
#                sizes (lcm-sdxl 1024, sdxl-turbo 512 -> 1024, sd15-* 512) = the full run
#   --threads N  tandem --threads (default 0: all CPUs)
#   --only LIST  comma-separated presets (default: lcm-sdxl,sdxl-turbo,sd15-cd,sd15-lcm-lora)
# Run from the project root after `make`. Random weights: the images are noise; this proves loading, shapes,
# the stages and memory, not quality.
set -eu

SIZE=""
THREADS=0
ONLY="lcm-sdxl,sdxl-turbo,sd15-cd,sd15-lcm-lora"
OUT=build/preset-smoke
FIX=${TDM_FIXTURES:-../shared/fixtures}
while [ $# -gt 0 ]; do
    case "$1" in
    --size) SIZE=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --fixtures) FIX=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "preset_smoke.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[ -x build/tandem ] || { echo "preset_smoke.sh: build/tandem missing (run make)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "preset_smoke.sh: /usr/bin/time (GNU time) is needed for the peak RSS" >&2; exit 1; }
M=$OUT/models
mkdir -p "$OUT" build/tools

# the model builder (C, against the library)
if [ ! -x build/tools/manifest_model ] || [ tools/manifest_model.c -nt build/tools/manifest_model ]; then
    ${CC:-cc} -std=c11 -D_DEFAULT_SOURCE -D_FILE_OFFSET_BITS=64 -O2 -Iinclude -Isrc tools/manifest_model.c \
        build/libtandem.a -lcjson -lm -o build/tools/manifest_model
fi
need=""
case ",$ONLY," in *,sd15-*) need="sd15" ;; esac
case ",$ONLY," in *,lcm-sdxl,*|*,sdxl-turbo,*) need="$need,sdxl" ;; esac
echo "building model folders under $M ($need; existing files of the right size are kept)"
df -h "$OUT" | tail -1
build/tools/manifest_model "$FIX" "$M" --only "$need"

# preset -> model options (docs/PRESETS.md "Model paths")
model_args() {
    case "$1" in
    lcm-sdxl) echo "--model $M/sdxl-base --student-unet unet_lcm" ;;
    sdxl-turbo) echo "--student $M/sdxl-turbo --teacher $M/sdxl-refiner" ;;
    sd15-cd) echo "--model $M/sd15 --student-unet unet_cd" ;;
    sd15-lcm-lora) echo "--model $M/sd15 --student-lora $M/lcm-lora-sdv1-5.safetensors" ;;
    esac
}
size_args() {
    [ -n "$SIZE" ] || return 0
    if [ "$1" = sdxl-turbo ]; then
        h=$((SIZE / 2))
        echo "--width $h --height $h --teacher-width $SIZE --teacher-height $SIZE"
    else
        echo "--width $SIZE --height $SIZE"
    fi
}

printf '\n%-14s %-11s %-14s %8s %8s %9s  %s\n' preset size "UNet evals" "wall s" "CPU s" "RSS GB" "hand-off"
for p in $(echo "$ONLY" | tr ',' ' '); do
    log=$OUT/$p.log
    # shellcheck disable=SC2046
    /usr/bin/time -v -o "$OUT/$p.time" build/tandem generate --adaptive --preset "$p" $(model_args "$p") \
        $(size_args "$p") --oracle brightness --tau 2 --prompt "a red circle on the left of a blue square" \
        --seed 1 --threads "$THREADS" -o "$OUT/$p.png" --sidecar "$OUT/$p.json" >"$log" 2>&1 || {
        echo "$p: FAILED (see $log)"; tail -3 "$log"; continue; }
    evals=$(sed -n 's/.*UNet evals \([0-9]*\) + \([0-9]*\),.*/\1 + \2/p' "$log")
    sizes=$(sed -n 's/.*"width":[[:space:]]*\([0-9]*\),.*/\1/p' "$OUT/$p.json" | head -1)
    tsize=$(tr -d '\n\t ' <"$OUT/$p.json" | sed -n 's/.*"teacher_size":{"width":\([0-9]*\).*/\1/p')
    [ -n "$tsize" ] && sizes="$sizes->$tsize"
    wall=$(sed -n 's/.*, \([0-9.]*\) s (student.*/\1/p' "$log")
    cpu=$(awk -F': ' '/User time/{u=$2} /System time/{s=$2} END{printf "%.1f", u+s}' "$OUT/$p.time")
    rss=$(awk -F': ' '/Maximum resident/{printf "%.2f", $2/1048576}' "$OUT/$p.time")
    hand=$(sed -n 's/^refined through the \([a-z]*\).*/\1/p' "$log")
    printf '%-14s %-11s %-14s %8s %8s %9s  %s\n' "$p" "$sizes" "$evals" "$wall" "$cpu" "$rss" "$hand"
    grep 'warning' "$log" || true
done
