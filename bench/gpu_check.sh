#!/usr/bin/env bash
# One prepared GPU check for a machine with an NVIDIA GPU and no network: the CUDA tests, then the CUDA variants
# of bench_update.py, bench_eval.py and bench_train.py, each part under `timeout`, the whole script at most
# GPU_CHECK_BUDGET_S seconds (default 560, under 10 minutes). A part that fails or times out is recorded and the
# script goes on. Every part writes its own log and JSON under $OUT_DIR/parts/; at the end one combined JSON,
# $OUT_DIR/gpu_check.json, holds each part's status (ok | failed | timeout | skipped | no_tests), exit code,
# seconds, log tail and figures. OUT_DIR is ${OUT:-bench-gpu}.
#
#   bash bench/gpu_check.sh                      # writes bench-gpu/gpu_check.json
#   OUT=/tmp/out bash bench/gpu_check.sh         # writes /tmp/out/gpu_check.json
#   PYTHON=/path/to/python GPU_CHECK_BUDGET_S=300 bash bench/gpu_check.sh
#
# Without nvidia-smi (or when torch sees no CUDA device) it says so and runs the CPU smoke versions (--quick)
# instead, so the combined JSON still comes out. Needs the repository's Python environment (torch with CUDA,
# dm_control, snakemake not needed); nothing is downloaded. A GPU image with PyTorch but without the simulators takes
# them from bench/gpu_site.sh's bundle (built where pip works; see its header for the two lines to run there).
#
# Parts and their time budgets (seconds; each is also cut to what is left of the total):
#   pytest_cuda   100   pytest -q -m cuda on the test files that use the `cuda` marker (tests/test_cuda.py; only
#                       those files are collected, so a GPU image without the test-only packages still runs them)
#   cuda_parity    70   bench/cuda_parity.py: what is bit-exact and what only close on CUDA, CUDA vs CPU
#   update        100   bench_update.py's CUDA variants (eager, foreach AdamW, bf16 autocast, CUDA-graph capture,
#                       then torch.compile reduce-overhead, max-autotune last), both sizes, rows written as they
#                       finish (compile with max-autotune may not fit: the rows before it are kept)
#   eval_rollouts  70   bench_eval.py --device cuda --parts rollouts, 7 w x 3 episodes x 300 steps
#   eval_sampler   30   bench_eval.py --device cuda --parts sampler (the full batch x flow-steps table)
#   train_inproc  100   bench_train.py --device cuda, paper size: agent loop (+compile at k=1), the vectorised
#                       group's update (stacked) and the vmap ensemble (+compile at k=8), k 1,4,8
#   train_procs    40   bench_train.py --device cuda, solo group (exact), separate processes and the vectorised
#                       group, paper size, fp32, k 1,4, 300 steps per seed (last: it gets what is left of the budget)

set -u
cd "$(dirname "$0")/.." || exit 1
REPO=$(pwd)
OUT_DIR="${OUT:-bench-gpu}"
PARTS="$OUT_DIR/parts"
mkdir -p "$PARTS"
PY="${PYTHON:-python}"
if [ -z "${PYTHON:-}" ] && [ -f "$REPO/.venv/bin/activate" ]; then
    # shellcheck disable=SC1091
    . "$REPO/.venv/bin/activate"
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
BUDGET_S="${GPU_CHECK_BUDGET_S:-560}"
START=$(date +%s)
STATUS="$PARTS/status.tsv"
: > "$STATUS"

# run_part NAME BUDGET_S COMMAND...: run under timeout (cut to what is left), log to parts/NAME.log, record
# "name<TAB>rc<TAB>seconds<TAB>budget<TAB>command" in status.tsv. Never exits the script.
run_part() {
    local name=$1 budget=$2
    shift 2
    local now left rc t0 t1
    now=$(date +%s)
    left=$(( BUDGET_S - (now - START) - 15 ))  # 15 s kept for the merge
    if [ "$left" -lt "$budget" ]; then budget=$left; fi
    if [ "$budget" -lt 10 ]; then
        echo "== $name: skipped (no time left)"
        printf '%s\t%s\t%s\t%s\t%s\n' "$name" "skipped" 0 "$budget" "$*" >> "$STATUS"
        return 0
    fi
    echo "== $name (at most ${budget} s): $*"
    t0=$(date +%s)
    timeout --kill-after=5 "$budget" "$@" > "$PARTS/$name.log" 2>&1
    rc=$?
    t1=$(date +%s)
    echo "   rc $rc after $(( t1 - t0 )) s; last lines:"
    tail -n 5 "$PARTS/$name.log" | sed 's/^/   | /'
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$rc" "$(( t1 - t0 ))" "$budget" "$*" >> "$STATUS"
    return 0
}

MODE=cuda
if ! command -v nvidia-smi > /dev/null 2>&1; then
    echo "nvidia-smi not found: no NVIDIA GPU on this machine. CPU fallback: running the CPU smoke versions" \
         "(--quick) of the benchmarks only; these are not GPU results."
    MODE=cpu
    echo "nvidia-smi not found" > "$PARTS/nvidia-smi.txt"
else
    nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,utilization.gpu,clocks.sm \
        --format=csv > "$PARTS/nvidia-smi.txt" 2>&1 || true
    nvidia-smi >> "$PARTS/nvidia-smi.txt" 2>&1 || true
    if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" > /dev/null 2>&1; then
        echo "nvidia-smi is there but torch sees no CUDA device (CPU-only torch build?). CPU fallback:" \
             "running the CPU smoke versions (--quick) only."
        MODE=cpu
    fi
fi
echo "mode: $MODE; output: $OUT_DIR; budget ${BUDGET_S} s; python: $(command -v "$PY")"

# --- 1. CUDA tests
grep -rlis cuda tests --include='*.py' > "$PARTS/tests_mentioning_cuda.txt" || true
# only the files that use the marker are collected: collecting every test module would import packages (snakemake,
# rliable, ...) that a GPU image may lack, and one collection error stops pytest before any test runs
mapfile -t CUDA_TEST_FILES < <(grep -rlE 'pytest\.mark\.cuda\b' tests --include='test_*.py' | sort)
if [ "$MODE" = cuda ] && [ "${#CUDA_TEST_FILES[@]}" -gt 0 ]; then
    run_part pytest_cuda 100 "$PY" -m pytest -q -m cuda -p no:cacheprovider "${CUDA_TEST_FILES[@]}"
    run_part cuda_parity 70 "$PY" bench/cuda_parity.py --json "$PARTS/cuda_parity.json"
elif [ "$MODE" = cuda ]; then
    printf '%s\t%s\t%s\t%s\t%s\n' pytest_cuda skipped 0 0 "no test file uses pytest.mark.cuda" >> "$STATUS"
else
    printf '%s\t%s\t%s\t%s\t%s\n' pytest_cuda skipped 0 0 "no CUDA device" >> "$STATUS"
fi

# --- 2. update throughput (bench_update.py's variants one by one; rows written as they finish, compile last)
cat > "$PARTS/update_runner.py" <<'EOF'
import json, os, sys, time
sys.path.insert(0, "bench")
import torch
import bench_update as bu

out_path, device_name, sizes = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
paper_steps, small_steps, repeats = map(int, sys.argv[4:7])
torch.set_num_threads(min(4, os.cpu_count() or 1))
device = torch.device(device_name)
order = {"eager": 0, "autocast": 0, "cudagraph": 1, "compile:reduce-overhead": 2}  # max-autotune (slowest) last
variants = sorted(bu.variants(device), key=lambda v: order.get(v[2], 3))
out = {"meta": {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(device),
                "cuda": torch.cuda.get_device_name(0) if device.type == "cuda" else None},
       "rows": []}
for variant in variants:
    for size in sizes:
        t0 = time.perf_counter()
        row = bu.run_one(size, device, variant, "dropout", 3, paper_steps if size == "paper" else small_steps,
                         repeats)
        row["wall_s_incl_warmup"] = time.perf_counter() - t0
        out["rows"].append(row)
        with open(out_path, "w") as f:
            json.dump(out, f, indent=2)
        rate = (f"{row['updates_per_s']:9.1f}/s ({row['ms_per_update']:.2f} ms)" if "error" not in row
                else row["error"])
        print(f"{row['device']:6s} {row['variant']:24s} {size:6s} {rate}", flush=True)
EOF
if [ "$MODE" = cuda ]; then
    run_part update 100 "$PY" "$PARTS/update_runner.py" "$PARTS/update.json" cuda small,paper 30 100 3
else
    run_part update 60 "$PY" "$PARTS/update_runner.py" "$PARTS/update.json" cpu small 2 5 1
fi

# --- 3. evaluation engine, and the sampler table
if [ "$MODE" = cuda ]; then
    run_part eval_rollouts 70 "$PY" bench/bench_eval.py --device cuda --threads 4 --parts rollouts \
        --episodes 3 --steps-limit 300 --json "$PARTS/eval_rollouts.json"
    run_part eval_sampler 30 "$PY" bench/bench_eval.py --device cuda --threads 4 --parts sampler \
        --sampler-repeats 20 --sampler-budget-s 1 --json "$PARTS/eval_sampler.json"
else
    run_part eval_rollouts 90 "$PY" bench/bench_eval.py --quick --json "$PARTS/eval_rollouts.json"
fi

# --- 4. training throughput of seed groups
if [ "$MODE" = cuda ]; then
    run_part train_inproc 100 "$PY" bench/bench_train.py --device cuda --modes agent_loop,stacked,vmap \
        --sizes paper --precisions fp32 --ks 1,4,8 --steps 300 --vmap-steps 300 --threads 4 \
        --json "$PARTS/train_inproc.json"
    run_part train_procs 40 "$PY" bench/bench_train.py --device cuda --modes group,separate,vectorised --sizes paper \
        --precisions fp32 --ks 1,4 --steps 300 --cores "$(nproc)" --timeout 35 \
        --json "$PARTS/train_procs.json"
else
    run_part train_procs 90 "$PY" bench/bench_train.py --quick --json "$PARTS/train_procs.json"
fi

# --- merge
cat > "$PARTS/merge.py" <<'EOF'
import json, os, platform, sys, time
from pathlib import Path

out_dir, mode, start, budget = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
parts = out_dir / "parts"
combined = {"meta": {"mode": mode, "host": platform.node(), "python": platform.python_version(),
                     "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(start)),
                     "seconds": round(time.time() - start, 1), "budget_s": budget,
                     "nvidia_smi": (parts / "nvidia-smi.txt").read_text(errors="replace")[:4000]
                     if (parts / "nvidia-smi.txt").exists() else None,
                     "tests_mentioning_cuda": (parts / "tests_mentioning_cuda.txt").read_text().split()
                     if (parts / "tests_mentioning_cuda.txt").exists() else []},
            "parts": {}}
try:
    import torch
    combined["meta"].update(torch=torch.__version__, cuda_available=torch.cuda.is_available(),
                            cuda_device=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
except Exception as err:  # the merge must not fail for want of torch
    combined["meta"]["torch_error"] = repr(err)
for line in (parts / "status.tsv").read_text().splitlines():
    name, rc, seconds, part_budget, command = (line.split("\t", 4) + [""] * 5)[:5]
    log = parts / f"{name}.log"
    tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
    if rc == "skipped":
        status = "skipped"
    elif rc in ("124", "137"):
        status = "timeout"
    elif name == "pytest_cuda" and rc == "5":
        status = "no_tests"  # pytest: nothing collected
    else:
        status = "ok" if rc == "0" else "failed"
    entry = {"status": status, "rc": None if rc == "skipped" else int(rc), "seconds": int(seconds),
             "budget_s": int(part_budget), "command": command, "log_tail": tail}
    result = parts / f"{name}.json"
    if result.exists():
        try:
            entry["result"] = json.loads(result.read_text())
            if status == "timeout":
                entry["note"] = "cut short by its time budget; result holds what finished"
        except ValueError as err:
            entry["result_error"] = f"unreadable JSON: {err}"
    combined["parts"][name] = entry
combined["ok"] = all(p["status"] in ("ok", "no_tests", "skipped") for p in combined["parts"].values())
(out_dir / "gpu_check.json").write_text(json.dumps(combined, indent=2) + "\n")
for name, p in combined["parts"].items():
    print(f"{name:14s} {p['status']:9s} rc {p['rc']!s:5s} {p['seconds']:4d} s")
print(f"wrote {out_dir / 'gpu_check.json'}")
EOF
"$PY" "$PARTS/merge.py" "$OUT_DIR" "$MODE" "$START" "$BUDGET_S" \
    || python3 "$PARTS/merge.py" "$OUT_DIR" "$MODE" "$START" "$BUDGET_S"
echo "total $(( $(date +%s) - START )) s"
