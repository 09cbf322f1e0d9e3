#!/bin/sh
# Keeps the state of the shapes-world training in the repository so that it continues in a later
# session: for every stage in the work folder, its outputs (out/: weights, configs, metrics.json; not the
# encoded datasets latents_*.pt, which the next stage regenerates) and,
# when the stage is not finished, its checkpoint (ckpt.pt; above 4 MB a weights-only float16 ckpt_light.pt,
# resumed with a fresh optimiser) go to models/shapes-stages/<stage>/. Output weights are kept in float16
# (as shipped; the next stages widen them when they load), also those a budget-stopped stage exported,
# so that shapes.export works from a fresh work folder.
# build_all.sh starts a fresh work folder from there. Datasets are not kept (regenerated from seeds).
#
# usage: tools/shapes/save_stages.sh [--work DIR]
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK="$ROOT/build/shapes-work"
[ "${1:-}" = "--work" ] && WORK=$(cd "$2" && pwd)  # absolute: the Python steps run from tools/
DEST="$ROOT/models/shapes-stages"
for d in "$WORK"/*/; do
    name=$(basename "$d")
    [ "$name" = data ] && continue
    [ -d "$d/out" ] || [ -f "$d/ckpt.pt" ] || [ -f "$d/ckpt_light.pt" ] || continue
    rm -rf "$DEST/$name"
    mkdir -p "$DEST/$name"
    unfinished=0
    [ -f "$d/ckpt.pt" ] && ! grep -qs '"finished": true' "$d/out/metrics.json" && unfinished=1
    if [ -d "$d/out" ]; then  # encoded datasets (latents_*.pt) are regenerated, not kept
        mkdir -p "$DEST/$name/out"
        (cd "$d/out" && find . -type f ! -name 'latents_*.pt' | while read -r f; do
            mkdir -p "$DEST/$name/out/$(dirname "$f")"; cp "$f" "$DEST/$name/out/$f"; done)
        find "$DEST/$name/out" -name '*.safetensors' -exec sh -c \
            'cd "$0/tools" && /usr/bin/python3 -m shapes.common --half "$@"' "$ROOT" {} +
    fi
    if [ $unfinished = 1 ]; then
        if [ "$(stat -c %s "$d/ckpt.pt")" -le 4000000 ]; then
            cp "$d/ckpt.pt" "$DEST/$name/ckpt.pt"
            echo "$name: unfinished: outputs and checkpoint kept"
        else  # large: weights only, in float16 (the optimiser restarts; common.lighten_ckpt)
            (cd "$ROOT/tools" && /usr/bin/python3 -m shapes.common --lighten "$d/ckpt.pt" "$DEST/$name/ckpt_light.pt")
            echo "$name: unfinished: outputs and a weights-only checkpoint kept"
        fi
    elif [ -f "$d/ckpt_light.pt" ] && ! grep -qs '"finished": true' "$d/out/metrics.json"; then
        cp "$d/ckpt_light.pt" "$DEST/$name/ckpt_light.pt"  # taken from here earlier and not resumed since
        echo "$name: unfinished: outputs and the weights-only checkpoint kept"
    else
        echo "$name: outputs kept"
    fi
done
du -sh "$DEST"
