#!/bin/sh
# Keeps the state of the shapes-world training in the repository so that it continues in a later
# session: for every stage in the work folder, its outputs (out/: weights, configs, metrics.json; not the
# encoded datasets latents_*.pt, which the next stage regenerates) and,
# when the stage is not finished, its checkpoint (ckpt.pt) go to models/shapes/stages/<stage>/.
# build_all.sh starts a fresh work folder from there. Datasets are not kept (regenerated from seeds).
#
# usage: tools/shapes/save_stages.sh [--work DIR]
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK="$ROOT/build/shapes-work"
[ "${1:-}" = "--work" ] && WORK=$2
DEST="$ROOT/models/shapes/stages"
for d in "$WORK"/*/; do
    name=$(basename "$d")
    [ "$name" = data ] && continue
    [ -d "$d/out" ] || [ -f "$d/ckpt.pt" ] || continue
    rm -rf "$DEST/$name"
    mkdir -p "$DEST/$name"
    if [ -d "$d/out" ]; then  # encoded datasets (latents_*.pt) are regenerated, not kept
        mkdir -p "$DEST/$name/out"
        (cd "$d/out" && find . -type f ! -name 'latents_*.pt' | while read -r f; do
            mkdir -p "$DEST/$name/out/$(dirname "$f")"; cp "$f" "$DEST/$name/out/$f"; done)
    fi
    if [ -f "$d/ckpt.pt" ] && ! grep -qs '"finished": true' "$d/out/metrics.json"; then
        cp "$d/ckpt.pt" "$DEST/$name/ckpt.pt"
        echo "$name: unfinished: outputs and checkpoint kept"
    else
        echo "$name: outputs kept"
    fi
done
du -sh "$DEST"
