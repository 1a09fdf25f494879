#!/usr/bin/env bash
# The prepared GPU check: one command for one call of a GPU machine whose image has its own torch.
#
#   benchmarks/gpu_check.sh --stage [--resume RECORDS]   here: copy the MNIST and Fashion-MNIST .gz
#                                                        files into .gpu-data/ and print what to carry
#   benchmarks/gpu_check.sh                              there: run the check, everything under $OUT
#
# What the check runs, each step under `timeout`, all of it inside one time budget:
#   1. the environment: GPU, driver, python and library versions (flowmix runs from src/ through
#      PYTHONPATH, so the image's own torch is used and nothing is installed over it);
#   2. the CUDA tests (tests/test_cuda.py);
#   3. the training-step and predict benchmarks on cuda (benchmarks/image_step.py,
#      benchmarks/predict_throughput.py: float32 against float64 and on the staged MNIST images where
#      the script offers --dtype and --data-dir), and the default fit on 5000 raw MNIST digits
#      beside a GMM on 50 principal components (benchmarks/wide_data.py);
#   4. as many Table-1 rows on cuda (`flowmix reproduce table1 --device cuda --baselines-on-device`)
#      as the rest of the budget allows: the 100-dimensional PCA rows first, then the raw pixels;
#      first the flows, random labels and k-means of every row, then the (slow) EM/GMM. Records are
#      appended unit by unit, so a row cut off by the budget keeps what finished, and a later call
#      that carries those records back (--stage --resume) goes on where this one stopped;
#   5. summary.md / summary.json (every step's status and time, the figures, the Table-1 rows done).
#
# Without a GPU (or a torch that sees none) it says "no GPU", runs the CPU-safe part (the CUDA
# tests, which then skip) if the budget allows, writes the summary and exits 0.
#
# Under $OUT (default results/gpu-check) it leaves at most 6 files, as the device tool brings back
# at most 8: gpu_check.log, summary.md, summary.json, records.jsonl, report.md, gpu_check_work.tar.gz
# (every step's log, the JUnit XML of the tests, the whole Table-1 folder).
#
# Settings (environment):
#   GPU_CHECK_BUDGET_S   seconds for the whole check (default 480, for a 9-minute call with margin)
#   GPU_CHECK_PYTHON     the interpreter (default python3: the image's, with its torch)
#   GPU_CHECK_DATA       the staged data folder (default .gpu-data in the repository)
#   GPU_CHECK_ROWS       Table-1 rows in order (default: mnist5_pca mnist_pca fmnist_pca mnist5 mnist fmnist)
#   GPU_CHECK_DEVICE     torch device (default cuda)
#   GPU_CHECK_WORK       work folder (default a new folder under $TMPDIR or /tmp)
#   GPU_CHECK_TABLE1_ARGS  more options of `flowmix reproduce table1` (e.g. --quick for a dry run)
#   GPU_CHECK_PREDICT_POINTS  points of the predict benchmark (default 70000)
#   GPU_CHECK_FORCE=1    run the GPU steps even where torch sees no GPU (with GPU_CHECK_DEVICE=cpu: a
#                        dry run of the whole script here, e.g. GPU_CHECK_BUDGET_S=120)
#   FLOWMIX_SHARED_DATA  where --stage copies from (default $FLOWMIX_DATA, else ../shared/datasets)

set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA_DIR="${GPU_CHECK_DATA:-$ROOT/.gpu-data}"
PY="${GPU_CHECK_PYTHON:-python3}"
BUDGET="${GPU_CHECK_BUDGET_S:-480}"
DEVICE="${GPU_CHECK_DEVICE:-cuda}"
ROWS="${GPU_CHECK_ROWS:-mnist5_pca mnist_pca fmnist_pca mnist5 mnist fmnist}"
PREDICT_POINTS="${GPU_CHECK_PREDICT_POINTS:-70000}"
FORCE="${GPU_CHECK_FORCE:-0}"
read -r -a TABLE1_ARGS <<< "${GPU_CHECK_TABLE1_ARGS:-}"
# Seconds kept back at the end for the report, the summary and the archive.
RESERVE=20
STAGE_FILES="train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz"

# ------------------------------------------------------------------------------------------------
# --stage: here, before the call

stage() {
    local src="${FLOWMIX_SHARED_DATA:-${FLOWMIX_DATA:-$ROOT/../shared/datasets}}"
    local resume=""
    while [ $# -gt 0 ]; do
        case "$1" in
            --resume) resume="${2:?--resume needs a records.jsonl file}"; shift 2 ;;
            *) echo "gpu_check --stage: unknown argument $1 (use --resume RECORDS)" >&2; return 2 ;;
        esac
    done
    local set name copied=0
    for set in mnist fashion-mnist; do
        mkdir -p "$DATA_DIR/$set" || return 1
        for name in $STAGE_FILES; do
            if [ ! -f "$src/$set/$name" ]; then
                echo "gpu_check --stage: $src/$set/$name is missing; set FLOWMIX_SHARED_DATA to the folder" \
                    "that holds mnist/ and fashion-mnist/" >&2
                return 1
            fi
            # Copies, not links: a link travels as a link and its target stays behind.
            cmp -s "$src/$set/$name" "$DATA_DIR/$set/$name" || cp -f "$src/$set/$name" "$DATA_DIR/$set/$name" || return 1
            copied=$((copied + 1))
        done
    done
    if [ -n "$resume" ]; then
        mkdir -p "$DATA_DIR/resume" && cp -f "$resume" "$DATA_DIR/resume/records.jsonl" || return 1
        echo "resume: $(wc -l < "$DATA_DIR/resume/records.jsonl") record(s) from $resume"
    fi
    local rel="${DATA_DIR#"$ROOT"/}"
    if [ "$rel" = "$DATA_DIR" ]; then
        echo "warning: $DATA_DIR is outside the repository, so it cannot travel; stage into the repository" >&2
    elif git -C "$ROOT" rev-parse --git-dir > /dev/null 2>&1 && ! git -C "$ROOT" check-ignore -q "$DATA_DIR"; then
        echo "warning: $rel is not ignored by git; add it to .gitignore so it travels only as carried" >&2
    fi
    echo "staged $copied file(s), $(du -sm "$DATA_DIR" | cut -f1) MiB, in $DATA_DIR"
    echo "device run: command \"bash benchmarks/gpu_check.sh\", carry [\"$rel\"], timeout_s 560"
    echo "carry: $rel"
}

if [ "${1:-}" = "--stage" ]; then
    shift
    stage "$@"
    exit $?
elif [ $# -gt 0 ]; then
    echo "usage: benchmarks/gpu_check.sh [--stage [--resume RECORDS]]" >&2
    exit 2
fi

# ------------------------------------------------------------------------------------------------
# The check

case "$BUDGET" in
    '' | *[!0-9]*) echo "GPU_CHECK_BUDGET_S must be a whole number of seconds, got '$BUDGET'" >&2; exit 2 ;;
esac
OUT="${OUT:-$ROOT/results/gpu-check}"
mkdir -p "$OUT" || exit 1
WORK="${GPU_CHECK_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/flowmix-gpu-check.XXXXXX")}"
mkdir -p "$WORK/logs" || exit 1
LOG="$OUT/gpu_check.log"
STEPS="$WORK/steps.tsv"
TABLE1="$WORK/table1"
: > "$LOG"
: > "$STEPS"
START=$SECONDS

export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 FLOWMIX_NO_DOWNLOAD=1 FLOWMIX_DATA="$DATA_DIR"
# The image lacks a package flowmix needs: carry its wheels in .whl/ (see the device README).
if compgen -G "$ROOT/.whl/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$WORK/site" "$ROOT"/.whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:$WORK/site"
fi
cd "$ROOT" || exit 1

elapsed() { echo $((SECONDS - START)); }
say() { echo "[gpu_check $(elapsed)s] $*" | tee -a "$LOG"; }

# step NAME CAP_S COMMAND...: run COMMAND under a limit of CAP_S seconds or what the budget has left
# (less the reserve), log its output, and note its status, exit code and time in steps.tsv.
step() {
    local name="$1" cap="$2"
    shift 2
    local left=$((BUDGET - $(elapsed) - RESERVE))
    local limit=$((cap < left ? cap : left))
    if [ "$limit" -lt 5 ]; then
        say "== $name: skipped, out of time (${left}s left of the budget)"
        printf '%s\tskipped\t\t0\n' "$name" >> "$STEPS"
        return 0
    fi
    say "== $name (limit ${limit}s): $*"
    local began=$SECONDS rc status
    timeout -k 10 "$limit" "$@" 2>&1 | tee "$WORK/logs/$name.log" >> "$LOG"
    rc=${PIPESTATUS[0]}
    case "$rc" in
        0) status=ok ;;
        124 | 137) status=timeout ;;
        *) status=failed ;;
    esac
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$((SECONDS - began))" >> "$STEPS"
    say "== $name: $status (exit $rc) in $((SECONDS - began))s"
    tail -n 5 "$WORK/logs/$name.log"
    return "$rc"
}

finish() {
    local gpu="$1"
    if [ -f "$TABLE1/records.jsonl" ]; then
        timeout -k 5 30 "$PY" -m flowmix report "$TABLE1" >> "$LOG" 2>&1 || say "report: failed"
        cp -f "$TABLE1/records.jsonl" "$OUT/records.jsonl"
        [ -f "$TABLE1/report.md" ] && cp -f "$TABLE1/report.md" "$OUT/report.md"
    fi
    GPU_CHECK_GPU="$gpu" GPU_CHECK_ELAPSED="$(elapsed)" timeout -k 5 30 "$PY" - "$WORK" "$OUT" << 'PYEOF' 2>&1 | tee -a "$LOG"
import json, os, re, sys
from collections import defaultdict
from pathlib import Path

work, out = Path(sys.argv[1]), Path(sys.argv[2])
steps = []
for line in (work / "steps.tsv").read_text().splitlines():
    name, status, rc, seconds = line.split("\t")
    steps.append({"step": name, "status": status, "exit": int(rc) if rc else None, "seconds": int(seconds)})
env = {}
env_file = work / "env.json"
if env_file.is_file():
    env = json.loads(env_file.read_text())


def lines(name):
    path = work / "logs" / f"{name}.log"
    return path.read_text(errors="replace").splitlines() if path.is_file() else []


figures = {
    "matmul": [l for l in lines("image_step") if l.startswith("float32 matmul")],
    "image_step": [l for l in lines("image_step") if "s/step" in l],
    "predict": [l.strip() for l in lines("predict") if re.search(r"^predict|points/s|throughput|differ|score_samples", l.strip())],
    "tests": [l for l in lines("test_cuda") if re.search(r"\d+ (passed|failed|skipped|error)", l)],
    "wide_data": [l for l in lines("wide_data") if l.startswith("{")],
}
rows = defaultdict(list)
records_file = work / "table1" / "records.jsonl"
if records_file.is_file():
    for line in records_file.read_text().splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        rows[(r["dataset"], r["method"])].append(r)
table1 = []
for (dataset, method), group in rows.items():
    usable = [r for r in group if r.get("objective") is not None and not r.get("diverged")]
    best = min(usable, key=lambda r: (r["objective"], r["run"])) if usable else None
    if method == "random":
        best = min(group, key=lambda r: r["run"])
    metrics = (best or {}).get("metrics") or {}
    table1.append({
        "dataset": dataset, "method": method, "runs": len(group), "runs_planned": group[0].get("runs_planned"),
        "device_name": group[0].get("device_name"),
        "seconds": round(max(r.get("fit_seconds", 0) for r in group) if method == "flows"
                         else sum(r.get("seconds", 0) for r in group), 1),
        "best_run": None if best is None else best["run"],
        **{m: metrics.get(m) for m in ("purity", "ari", "nmi", "acc")},
    })
summary = {
    "gpu": os.environ["GPU_CHECK_GPU"] == "1", "elapsed_s": int(os.environ["GPU_CHECK_ELAPSED"]),
    "env": env, "steps": steps, "figures": figures, "table1": table1,
}
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
md = ["# flowmix GPU check", "", f"- device: {env.get('device_name', 'none')}",
      f"- torch {env.get('torch')}, CUDA {env.get('cuda')}, python {env.get('python')}",
      f"- wall time: {summary['elapsed_s']} s", "", "| step | status | exit | seconds |", "|---|---|---|---|"]
md += [f"| {s['step']} | {s['status']} | {s['exit']} | {s['seconds']} |" for s in steps]
md += [""] + [f"- {l}" for key in ("tests", "matmul", "image_step", "predict", "wide_data") for l in figures[key]]
if table1:
    md += ["", "| row | method | runs | seconds | purity | ARI | NMI | ACC |", "|---|---|---|---|---|---|---|---|"]
    fmt = lambda v: "" if v is None else f"{v:.4f}"
    md += [f"| {t['dataset']} | {t['method']} | {t['runs']}/{t['runs_planned']} | {t['seconds']} | "
           f"{fmt(t['purity'])} | {fmt(t['ari'])} | {fmt(t['nmi'])} | {fmt(t['acc'])} |" for t in table1]
(out / "summary.md").write_text("\n".join(md) + "\n")
print("\n".join(md))
PYEOF
    tar -czf "$OUT/gpu_check_work.tar.gz" -C "$WORK" . 2>> "$LOG" || say "archive: failed"
    say "done in $(elapsed)s; results in $OUT"
}

say "flowmix GPU check: budget ${BUDGET}s, python $PY, device $DEVICE, data $DATA_DIR, out $OUT"

# 1. The environment. Exit 3 from the probe: torch imports but sees no GPU.
step env 60 "$PY" - "$WORK/env.json" "$DEVICE" << 'PYEOF'
import json, platform, sys
from importlib import metadata

info = {"python": platform.python_version(), "executable": sys.executable}
for name in ("torch", "numpy", "scipy", "scikit-learn", "safetensors", "tqdm", "matplotlib", "click", "pytest"):
    try:
        info[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        info[name] = None
        print(f"missing package: {name} (carry its wheel in .whl/)")
import torch

import flowmix

info.update(flowmix=flowmix.__version__, cuda=torch.version.cuda, device=sys.argv[2])
gpu = sys.argv[2].startswith("cuda") and torch.cuda.is_available()
if gpu:
    props = torch.cuda.get_device_properties(torch.device(sys.argv[2]))
    info.update(device_name=props.name, device_memory_gib=round(props.total_memory / 2**30, 1),
                multiprocessors=props.multi_processor_count)
print(json.dumps(info, indent=1))
json.dump(info, open(sys.argv[1], "w"), indent=1)
sys.exit(0 if gpu else 3)
PYEOF
env_rc=$?
if [ "$env_rc" -eq 3 ]; then  # the probe ran: no GPU is a finding, not a failure
    sed -i '$ s/\tfailed\t3\t/\tno_gpu\t3\t/' "$STEPS"
fi
command -v nvidia-smi > /dev/null && nvidia-smi >> "$LOG" 2>&1

if [ "$env_rc" -eq 3 ] && [ "$FORCE" = 1 ]; then
    say "no GPU, but GPU_CHECK_FORCE=1: the GPU steps run on '$DEVICE' anyway (a dry run)"
elif [ "$env_rc" -ne 0 ]; then
    if [ "$env_rc" -eq 3 ]; then
        say "no GPU: torch sees no CUDA device for '$DEVICE'; the GPU steps are skipped"
    else
        say "no GPU: the environment probe failed (exit $env_rc; see $LOG); the GPU steps are skipped"
    fi
    # The CPU-safe part: the CUDA tests collect and skip; only when the budget has room for it.
    if [ $((BUDGET - $(elapsed) - RESERVE)) -ge 60 ]; then
        step test_cuda 60 "$PY" -m pytest -q -p no:cacheprovider -rs tests/test_cuda.py
    else
        say "the CUDA tests are skipped too: the budget leaves under 60 s"
    fi
    finish 0
    exit 0
fi

failed=0
# 2. The CUDA tests.
step test_cuda 150 "$PY" -m pytest -q -p no:cacheprovider -rs --junitxml="$WORK/test_cuda.xml" tests/test_cuda.py \
    || failed=1

# 3. Benchmarks on the GPU.
step image_step 90 "$PY" benchmarks/image_step.py --device "$DEVICE" || failed=1
# The predict benchmark compares float32 with float64 inference in one run where it can (--dtype
# both), on the staged MNIST images where it can read them (--data-dir).
predict_args=(--device "$DEVICE" --points "$PREDICT_POINTS")
grep -q -- '"--dtype"' benchmarks/predict_throughput.py && predict_args+=(--dtype both)
grep -q -- '"--data-dir"' benchmarks/predict_throughput.py && [ -d "$DATA_DIR/mnist" ] \
    && predict_args+=(--data-dir "$DATA_DIR")
step predict 150 "$PY" benchmarks/predict_throughput.py "${predict_args[@]}" || failed=1
# The default fit on wide data: 5000 raw MNIST digits (784 pixels), principal subspaces on the GPU.
if [ -f "$DATA_DIR/mnist/train-images-idx3-ubyte.gz" ]; then
    step wide_data 150 env FLOWMIX_DATA="$DATA_DIR" "$PY" benchmarks/wide_data.py --sets mnist --n 5000 \
        --methods flowmix,gmm-pca50 --device "$DEVICE" || failed=1
fi

# 4. Table-1 rows, as many as the budget allows.
mkdir -p "$TABLE1"
if [ -f "$DATA_DIR/resume/records.jsonl" ]; then
    cp -f "$DATA_DIR/resume/records.jsonl" "$TABLE1/records.jsonl"
    say "resuming from $(wc -l < "$TABLE1/records.jsonl") staged record(s)"
fi
rows=""
for row in $ROWS; do
    case "$row" in
        mnist*) need="$DATA_DIR/mnist/train-images-idx3-ubyte.gz" ;;
        fmnist*) need="$DATA_DIR/fashion-mnist/train-images-idx3-ubyte.gz" ;;
        cifar10*) need="$DATA_DIR/cifar-10/cifar10.npz" ;;
        *) need="" ;;
    esac
    if [ -n "$need" ] && [ ! -f "$need" ]; then
        say "table1: $row left out, $need is not staged"
    else
        rows="$rows${rows:+,}$row"
    fi
done
if [ -n "$rows" ]; then
    for methods in flows,random,kmeans gmm; do
        step "table1_${methods//,/_}" 100000 "$PY" -m flowmix reproduce table1 --device "$DEVICE" --baselines-on-device \
            --data-dir "$DATA_DIR" --no-download --out "$TABLE1" --datasets "$rows" --methods "$methods" \
            --no-progress --no-report "${TABLE1_ARGS[@]}"
    done
else
    say "table1: no row has its data staged (run benchmarks/gpu_check.sh --stage here first)"
fi

# 5. Report and summary.
finish 1
if [ "$failed" -ne 0 ]; then
    say "some tests or benchmarks failed (see summary.md)"
    exit 1
fi
exit 0
