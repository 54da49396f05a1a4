#!/usr/bin/env bash
# needle on a GPU, in one run of a few minutes: the cuda tests, then the benchmark
# (benchmarks/gpu_bench.py: MLP-ResNet training examples/s at batch 1024 and a
# 4096x4096 matmul forward+backward in TFLOP/s, each beside PyTorch), then a summary.
#
# For a machine with an NVIDIA H100/H200, no network, and a python3 that already has
# CuPy, PyTorch, pytest and hypothesis. needle itself comes from wheels built
# beforehand, on a machine with this repo and a package registry:
#
#   python3 -m pip wheel --no-deps -w .wheels packages/needle-core \
#       packages/needle-backend-cpu packages/needle-backend-cuda packages/needle-nn
#   echo /.wheels/ >> .git/info/exclude        # carried with the repo, never committed
#
# Then copy the repo with .wheels/ to the GPU machine and, in the repo root there:
#
#   bash benchmarks/gpu_check.sh [WHEEL_DIR]      # default: .wheels
#
# The wheels go in with `pip install --no-deps --no-index --target` into a private
# folder put on PYTHONPATH, so nothing installed on the machine changes. Results
# (pytest log, bench JSON, summary) land in $OUT if set, else ./gpu-check-results.
# Environment: PYTHON (default python3), TEST_TIMEOUT (seconds, default 420),
# DRY_RUN=1 (no GPU needed: go on without cuda and benchmark tiny sizes on the cpu,
# to check this script itself).
# Exit status: 0 when cuda is usable, every selected test passed and the benchmark ran.

set -u
cd "$(dirname "$0")/.." || exit 2
WHEELS=${1:-.wheels}
PY=${PYTHON:-python3}
RESULTS=${OUT:-gpu-check-results}
TEST_TIMEOUT=${TEST_TIMEOUT:-420}
DRY_RUN=${DRY_RUN:-0}
mkdir -p "$RESULTS"
SITE=$(mktemp -d)/site
status=0

step() { printf '\n== %s ==\n' "$*"; }

step "environment"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || true
"$PY" - <<'EOF'
import importlib, platform
print("python", platform.python_version())
for name in ("numpy", "cupy", "torch", "pytest", "hypothesis"):
    try:
        print(f"{name:<10} {importlib.import_module(name).__version__}")
    except Exception as exc:
        print(f"{name:<10} MISSING ({type(exc).__name__}: {exc})")
EOF

step "install needle from $WHEELS"
shopt -s nullglob
wheels=("$WHEELS"/needle_*.whl)
if [ ${#wheels[@]} -lt 4 ]; then
    echo "expected the 4 needle wheels in $WHEELS, found ${#wheels[@]}: build them first (see the top of this file)"
    exit 2
fi
"$PY" -m pip install -q --no-deps --no-index --no-compile --target "$SITE" "${wheels[@]}" || exit 2
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import needle, needle_backend_cuda, sys; print('needle', needle.__version__, 'from', needle.__path__[0])"

step "backends"
DRY_RUN=$DRY_RUN "$PY" - <<'EOF' || exit 3
import os
import needle as ndl
for info in ndl.backends():
    print(info)
if not ndl.cuda().enabled() and os.environ["DRY_RUN"] != "1":
    raise SystemExit("cuda is not usable: nothing more to check")
EOF

step "cuda tests (pytest -k cuda, timeout ${TEST_TIMEOUT}s)"
# -k cuda: the test_cuda_* files plus every test the `device` fixture runs on cuda.
start=$(date +%s)
timeout "$TEST_TIMEOUT" "$PY" -m pytest tests -k cuda -q -rfE -p no:cacheprovider \
    2>&1 | tee "$RESULTS/pytest.log"
test_rc=${PIPESTATUS[0]}
test_s=$(( $(date +%s) - start ))
[ "$test_rc" -eq 0 ] || status=1
[ "$test_rc" -eq 124 ] && echo "pytest stopped after ${TEST_TIMEOUT}s"

step "benchmark"
bench_args=(--json "$RESULTS/bench.json")
[ "$DRY_RUN" = 1 ] && bench_args+=(--dry-run)
"$PY" benchmarks/gpu_bench.py "${bench_args[@]}" 2>&1 | tee "$RESULTS/bench.txt"
bench_rc=${PIPESTATUS[0]}
[ "$bench_rc" -eq 0 ] || status=1

step "summary"
{
    echo "tests: $(grep -E '(passed|failed|error)' "$RESULTS/pytest.log" | tail -1) (exit $test_rc, ${test_s}s)"
    grep -A 20 '^needle GPU benchmark' "$RESULTS/bench.txt" || echo "benchmark failed (exit $bench_rc)"
    echo "overall: $([ $status -eq 0 ] && echo OK || echo FAILED)"
} | tee "$RESULTS/summary.txt"
exit $status
