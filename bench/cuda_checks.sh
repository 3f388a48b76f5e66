#!/usr/bin/env bash
# The CUDA checks of issue 17 in one go, for a session lent a GPU (about 8 minutes at most
# on an H200; each step has its own time limit, so one stuck step cannot eat the rest):
#   1. the device and torch it sees;
#   2. tests/test_host_syncs.py, whose CUDA test runs the engine's steps under
#      torch.cuda.set_sync_debug_mode("error");
#   3. bench/overhead.py --device cuda, eager: batch 64 and 256, float32 and bf16
#      (autocast + channels_last) -> bench/results/overhead-resnet-cuda.md;
#   4. the same at batch 256, eager and compiled -> overhead-resnet-cuda-compiled.md.
# Everything (logs, result files) is written under $OUT.
#
# The GPU machine has torch but not the project's small pure-Python dependencies, and
# nothing can be fetched there. So, first, here (with pip and a network):
#     bash bench/cuda_checks.sh prepare       # wheels into .whl/ (git-ignored locally)
# then on the device, from the repository root, carrying .whl:
#     run(command="bash bench/cuda_checks.sh", carry=[".whl"], timeout_s=560)
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS="sqlite-utils==4.2.1 click-default-group==1.2.4 sqlite-fts4==1.0.3 platformdirs==4.14.9
        tomli_w==1.2.0"

if [ "${1:-}" = "prepare" ]; then
    exclude="$(git rev-parse --git-common-dir)/info/exclude"
    grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >> "$exclude"
    # shellcheck disable=SC2086
    "$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
        -d .whl $WHEELS
    exit $?
fi

OUT=${OUT:-/tmp/cuda-checks}
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $OUT/NAME.txt
    local name=$1 limit=$2
    shift 2
    local started=$SECONDS
    timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
    local rc=$?
    echo "$name: rc $rc ($((SECONDS - started)) s, limit $limit s)" | tee -a "$SUMMARY"
    return $rc
}

SITE=$(mktemp -d)
if ls .whl/*.whl > /dev/null 2>&1; then
    step wheels 30 "$PY" -m pip install --no-index --no-deps --target "$SITE" .whl/*.whl
fi
export PYTHONPATH="$PWD:$SITE"

step device 30 "$PY" -c "
import torch
print('torch', torch.__version__, 'cuda', torch.version.cuda)
print('available', torch.cuda.is_available())
print(torch.cuda.get_device_name(0), 'bf16', torch.cuda.is_bf16_supported())
import kdstudio.core.engine  # the project imports with the carried wheels
" || { echo "no usable CUDA torch or project imports: see $OUT/device.txt" | tee -a "$SUMMARY"; exit 1; }

step sync-debug 60 "$PY" -m pytest -q -p no:cacheprovider -rs tests/test_host_syncs.py
grep -E "passed|failed|skipped|error" "$OUT/sync-debug.txt" | tail -3 >> "$SUMMARY"

step overhead-eager 170 "$PY" bench/overhead.py --device cuda --batch 64 256 \
    --precision float32 bf16 --epochs 3 --pairs 3 --train-size 10240
step overhead-compiled 170 "$PY" bench/overhead.py --device cuda --batch 256 \
    --precision float32 bf16 --compile --epochs 3 --pairs 1 --train-size 10240

cp bench/results/overhead-resnet-cuda*.md "$OUT/" 2>/dev/null
cat "$SUMMARY"
