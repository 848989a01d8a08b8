#!/usr/bin/env bash
# The GPU machine's whole check in one go, a few minutes: the wheels bench/prepare_gpu_wheels.sh put in .whl/
# (that machine has no network), then the GPU-only correctness checks and every benchmark, each against the plain
# diffusers way in the same run, as tables on stdout and JSON in $OUT (default bench/results).
#
#   bash bench/gpu_check.sh            # on the GPU machine (the device tool: carry .whl)
#   QUICK=1 bash bench/gpu_check.sh    # tiny shapes: the script itself, checked on a CPU
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-bench/results}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1  # the whole log comes back with the JSON
if ! "$PYTHON" -c "import diffusers" 2>/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONUNBUFFERED=1
"$PYTHON" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')"
failed=0
run() {  # a step that fails or overruns is reported and the others still run (the device allows 600 s a call)
  echo "== $*"
  timeout "${STEP_SECONDS:-150}" "$PYTHON" "$@" || { echo "!! failed or timed out: $*"; failed=1; }
}
if [ "${QUICK:-0}" = 1 ]; then
  run bench/gpu_correctness.py --quick --json "$OUT/correctness.json"
  run bench/train_speed.py --batch 4 --size 64 --steps 5 --warmup 1 --json "$OUT/train_tiny.json"
  run bench/gen_speed.py --batch 2 --size 64 --steps 4 --repeats 1 --json "$OUT/gen_tiny.json"
  run bench/reg_speed.py --batch 4 --steps 4 --every 4 --reg-steps 4 --json "$OUT/reg_tiny.json"
else
  run bench/gpu_correctness.py --json "$OUT/correctness.json"
  for precision in bf16 no; do
    run bench/train_speed.py --sd15 --size 512 --batch 8 --precision "$precision" --steps 15 --json "$OUT/train_b8_$precision.json"
  done
  run bench/train_speed.py --sd15 --size 512 --batch 32 --precision bf16 --steps 10 --json "$OUT/train_b32_bf16.json"
  run bench/gen_speed.py --sd15 --size 512 --batch 16 --steps 28 --dtype fp16 --repeats 2 --json "$OUT/gen_b16_fp16.json"
  run bench/reg_speed.py --sd15 --batch 8 --precision bf16 --every 4 --reg-steps 28 --steps 8 --json "$OUT/reg_b8_bf16.json"
fi
exit $failed
