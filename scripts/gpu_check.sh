#!/usr/bin/env bash
# The GPU checks, in one run of under 8 minutes on one GPU (an H100 or H200): the CUDA tests (half
# precision against float32 on the demo model and a Pythia-1.4b shape, state kept on the host, a model
# split between the GPU and the CPU), then bench_session on the Pythia-1.4b and Llama-3.1-8B shapes at
# 1,024 and 8,192 tokens (first full view, append, middle edit with the visible columns first, peak
# GPU memory). Needs python3 with torch (CUDA), transformers, accelerate, numpy, tokenizers, pytest.
# Results: $OUT (or gpu_check_out/): tests.log and one bench-<shape>-<tokens>.json per run.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD:$PWD/tests${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
out="${OUT:-gpu_check_out}"
mkdir -p "$out"
status=0

python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, \
'|', torch.cuda.get_device_name(), f'{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB')" \
  | tee "$out/device.txt" || exit 1

timeout 240 python3 -m pytest -q -p no:cacheprovider -o addopts="" tests/test_cuda.py tests/test_capacity.py \
  2>&1 | tee "$out/tests.log" | tail -15 || status=1

bench() {  # shape tokens [extra flags]
  local shape=$1 tokens=$2
  shift 2
  timeout 150 python3 tests/benchmarks/bench_session.py --device cuda --shape "$shape" --tokens "$tokens" \
    --repeats 5 --out "$out/bench-$shape-$tokens.json" "$@" >"$out/bench-$shape-$tokens.log" 2>&1 || status=1
  tail -4 "$out/bench-$shape-$tokens.log"
}
bench pythia-1.4b 1024 --naive-repeats 2
bench pythia-1.4b 8192 --skip-naive --skip-ab
bench llama-3.1-8b 1024 --skip-naive --skip-ab
bench llama-3.1-8b 8192 --skip-naive --skip-ab

python3 - "$out" <<'PY'
import json, sys
from pathlib import Path
rows = [json.loads(p.read_text()) for p in sorted(Path(sys.argv[1]).glob("bench-*.json"))]
print(f"{'shape':<14}{'tokens':>7}{'full ms':>9}{'append ms':>11}{'middle (visible) ms':>21}{'peak GiB':>10}  dtype")
for r in rows:
    visible = r["middle_edit_first_visible_s"] * 1000
    print(f"{r['shape']:<14}{r['tokens']:>7}{r['full_s'] * 1000:>9.1f}{r['append_s'] * 1000:>11.1f}"
          f"{visible:>21.1f}{(r['peak_gpu_mb'] or 0) / 1024:>10.1f}  {r['dtype']} on {r['gpu']}")
PY
exit $status
