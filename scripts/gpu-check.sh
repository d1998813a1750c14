#!/usr/bin/env bash
# gpu-check: on a machine with a CUDA GPU, run every system's bfloat16 CUDA path for a few steps
# (the tests named *bf16*, which take their device from $LONGLORE_TEST_DEVICE) and the RAM / CoMeT
# speed benchmarks at small sizes, then write ONE JSON summary.
#
#   scripts/gpu-check.sh [OUT_DIR]          # default runs/gpu-check; summary: OUT_DIR/gpu_check.json
#
# Without a CUDA GPU it says so and exits 2. GPU_CHECK_DEVICE=cpu runs the same steps on the CPU
# (a dry run of this script itself; the summary then says device "cpu").
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
OUT="${1:-runs/gpu-check}"
DEVICE="${GPU_CHECK_DEVICE:-cuda}"
mkdir -p "$OUT"

if [ "$DEVICE" = "cuda" ] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu-check: no CUDA GPU is visible here (torch.cuda.is_available() is False)." >&2
  echo "gpu-check: run it on a machine with an NVIDIA GPU and a CUDA build of torch (make demo TORCH=torch)," >&2
  echo "gpu-check: or GPU_CHECK_DEVICE=cpu $0 for a dry run of the script on the CPU." >&2
  exit 2
fi

export LONGLORE_TEST_DEVICE="$DEVICE" OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}"
start=$(date +%s)

# 1. every system's bf16 path: forward + a training step on tiny models, on $DEVICE
set +e
"$PY" -m pytest tests -q -p no:cacheprovider -m "not slow" -k bf16 --junitxml="$OUT/bf16_tests.xml" > "$OUT/bf16_tests.log" 2>&1
tests_rc=$?

# 2. speed benchmarks (small sizes), each passing --device when the script offers it
bench() {  # name, script, args...
  local name=$1 script=$2; shift 2
  local extra=()
  if "$PY" "$script" --help 2>/dev/null | grep -q -- "--device"; then extra=(--device "$DEVICE"); fi
  timeout 1800 "$PY" "$script" "$@" "${extra[@]}" > "$OUT/$name.log" 2>&1
  echo $? > "$OUT/$name.rc"
}
if [ "$DEVICE" = "cuda" ]; then
  bench ram_speed benchmarks/ram_speed.py --lengths 4096,8192 --out "$OUT/ram_speed.json"
  bench comet_cost benchmarks/comet_cost.py --model scratch-4x128 --lengths 4096,16384,65536 --full-max 16384 --out "$OUT/comet_cost.json"
else  # the CPU dry run only checks that the steps run
  bench ram_speed benchmarks/ram_speed.py --lengths 1024 --out "$OUT/ram_speed.json"
  bench comet_cost benchmarks/comet_cost.py --smoke --out "$OUT/comet_cost.json"
fi
set -e

# 3. one JSON summary
"$PY" - "$OUT" "$DEVICE" "$tests_rc" "$start" <<'PYEOF'
import json, sys, time, xml.etree.ElementTree as ET
from pathlib import Path

import torch

out, device, tests_rc, start = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
tests = []
if (out / "bf16_tests.xml").exists():
    for case in ET.parse(out / "bf16_tests.xml").getroot().iter("testcase"):
        failed = case.find("failure") is not None or case.find("error") is not None
        skipped = case.find("skipped") is not None
        tests.append({"test": f"{case.get('classname')}::{case.get('name')}", "seconds": float(case.get("time", 0)),
                      "outcome": "failed" if failed else "skipped" if skipped else "passed"})
benchmarks = {}
for name in ("ram_speed", "comet_cost"):
    rc = (out / f"{name}.rc").read_text().strip() if (out / f"{name}.rc").exists() else "not run"
    result = json.loads((out / f"{name}.json").read_text()) if (out / f"{name}.json").exists() else None
    benchmarks[name] = {"exit_code": rc, "result": result, "log": str(out / f"{name}.log")}
summary = {
    "device": device,
    "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
    "torch": torch.__version__,
    "cuda": torch.version.cuda,
    "bf16_tests": {"exit_code": tests_rc, "passed": sum(t["outcome"] == "passed" for t in tests),
                   "failed": sum(t["outcome"] == "failed" for t in tests), "cases": tests},
    "benchmarks": benchmarks,
    "wall_seconds": round(time.time() - start, 1),
}
(out / "gpu_check.json").write_text(json.dumps(summary, indent=2) + "\n")
print(f"gpu-check: {summary['bf16_tests']['passed']} bf16 tests passed, {summary['bf16_tests']['failed']} failed; "
      f"benchmarks: " + ", ".join(f"{k} rc={v['exit_code']}" for k, v in benchmarks.items()) + f"; wrote {out / 'gpu_check.json'}")
PYEOF
