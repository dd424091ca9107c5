#!/usr/bin/env bash
# The CUDA paths of cad_perception_ros, checked and measured in one run on a machine with a GPU:
# inference latency of the bundled models (torch backend), training throughput, checkpoint
# resume, torchrun (DistributedDataParallel) and evaluation on the GPU. CPU machines and CI never
# need it. Uses the python3 on PATH (torch with CUDA, numpy, PIL, yaml, safetensors, tqdm,
# matplotlib, scipy, psutil, trimesh); the ROS packages are not needed.
#
#   bash scripts/gpu_check.sh --data DATA [--out DIR] [--steps N] [--device cuda] [--budget S]
#                             [--phases NAME,NAME...]
#
# DATA: a small data set in the Scan2CAD image format with train and val splits, e.g.
#   cad-perception data generate --out /tmp/gpu_data --scenes 20 --views-per-scene 8 --size 320x240
# Each phase runs under its own time limit, cut to what is left of the whole run's budget S
# (default 540 s, 30 s of it kept for the summary); one that fails is reported and the next runs.
# --phases: only these (names as in phases.txt, e.g. bench_roca,eval_roca); default all.
# DIR gets phases.txt (as it goes), summary.md (the tables) and gpu_check.tgz (logs, metrics,
# benchmark tables and pictures, loss curves).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/gpu_phase.sh  # usage; phase NAME LIMIT_S COMMAND...
OUT=gpu_check DATA= STEPS=300 DEVICE=cuda BUDGET=540 PHASES= PY=${PYTHON:-python3}
while [ $# -gt 0 ]; do
  case "$1" in
    --data) DATA=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --device) DEVICE=$2; shift 2 ;;
    --budget) BUDGET=$2; shift 2 ;;
    --phases) PHASES=,$2,; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$DATA" ] || { echo "gpu_check: --data DATA is required (see --help)" >&2; exit 2; }
[ -f "$DATA/dataset_info_train.json" ] || { echo "gpu_check: $DATA has no train split" >&2; exit 2; }
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
WORK=$(mktemp -d /tmp/gpu_check.XXXXXX)
LOGS=$WORK/logs
mkdir -p "$OUT" "$LOGS"
CLI="$PY -m cad_perception_ros.cli"
SECONDS=0


# train_config NAME BASE BATCH H W STEPS [WORKERS]: a copy of BASE for this check (no ImageNet
# wheel needed: the weights come from the bundled model), written to WORK/NAME.yaml.
train_config() {
  $PY - "$@" "$WORK" <<'EOF'
import sys, yaml
*args, work = sys.argv[1:]
name, base, batch, h, w, steps = args[:6]
workers = int(args[6]) if len(args) > 6 else 0
cfg = yaml.safe_load(open(base))
cfg["model"].update(name=name, input_size=[int(h), int(w)], pretrained=False)
cfg["train"].update(batch_size=int(batch), max_steps=int(steps), warmup_steps=10, lr_decay_steps=[10**6],
                    checkpoint_every=max(int(steps) // 2, 1), log_every=5, num_workers=workers)
yaml.safe_dump(cfg, open(f"{work}/{name}.yaml", "w"))
EOF
}

phase env 60 bash -c "nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nproc; \
  $PY -c 'import torch, sys; print(sys.version); print(\"torch\", torch.__version__, \"cuda\", torch.cuda.is_available(), torch.version.cuda)'"

# Most important first: a spent budget skips the last phases.
bench() {  # bench NAME MODEL RUNS [ARGS...]
  local name=$1 model=$2 runs=$3; shift 3
  phase "$name" 90 $CLI benchmark --model-dir "models/$model" --backends torch --device "$DEVICE" \
    --sizes 640x480 --runs "$runs" --out "$WORK/$name" "$@"
}
train() {  # train NAME LIMIT_S [ARGS...]: the config WORK/NAME.yaml, the run in WORK/NAME
  local name=$1 limit=$2; shift 2
  phase "$name" "$limit" $CLI train --config "$WORK/$name.yaml" --data "$DATA" --cad-db models/cad_db \
    --out "$WORK/$name" --no-progress "$@"
}
bench bench_roca roca 200
bench bench_points2objects points2objects 200
train_config train_roca_b16 config/roca_synthetic_depth7.yaml 16 120 160 "$STEPS"
train train_roca_b16 150
phase eval_roca 90 $CLI evaluate --model-dir models/roca --data "$DATA" --split val --device "$DEVICE" \
  --out "$WORK/eval_roca"
train_config torchrun_roca config/roca_synthetic_depth7.yaml 16 120 160 20
phase torchrun_roca 90 $PY -m torch.distributed.run --standalone --nproc_per_node 1 -m cad_perception_ros.cli \
  train --config "$WORK/torchrun_roca.yaml" --data "$DATA" --cad-db models/cad_db --out "$WORK/torchrun_roca" \
  --no-progress
# the same run folder: resume from its last checkpoint for 20 more steps
phase resume_roca_b16 60 $CLI train --config "$WORK/train_roca_b16.yaml" --data "$DATA" --cad-db models/cad_db \
  --out "$WORK/train_roca_b16" --resume --max-steps $((STEPS + 20)) --no-progress
train_config train_p2o_b16 config/p2o_synthetic.yaml 16 120 160 $((STEPS / 3))
train train_p2o_b16 120
train_config train_roca_b64_240 config/roca_synthetic_depth7.yaml 64 240 320 $((STEPS / 4))
train train_roca_b64_240 120
train_config train_roca_b64_240_w8 config/roca_synthetic_depth7.yaml 64 240 320 $((STEPS / 4)) 8
train train_roca_b64_240_w8 120
train_config train_roca_b16_w4 config/roca_synthetic_depth7.yaml 16 120 160 "$STEPS" 4
train train_roca_b16_w4 120
bench bench_roca_worst roca 100 --score-threshold 0
bench bench_points2objects_worst points2objects 100 --score-threshold 0
phase eval_roca_trained 90 $CLI evaluate --model-dir "$WORK/train_roca_b16/model" --data "$DATA" --split val \
  --device "$DEVICE" --out "$WORK/eval_roca_trained"

# summary.md: the benchmark rows and each training run's throughput.
$PY - "$WORK" "$OUT/summary.md" <<'EOF'
import json, statistics, sys
from pathlib import Path
import yaml
work, out = Path(sys.argv[1]), Path(sys.argv[2])
lines = ["# gpu_check summary", "", "## Phases", "", "```", (work / "logs/phases.txt").read_text().strip(), "```", ""]
for bench in sorted(work.glob("bench_*/benchmark.md")):
    lines += [f"## {bench.parent.name}", "", bench.read_text().strip(), ""]
lines += ["## Training", "", "| run | steps logged | median s/step | median data s/step | images/s | first total | last total |",
          "| --- | --- | --- | --- | --- | --- | --- |"]
for metrics in sorted(work.glob("*/metrics.jsonl")):
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    if not rows:
        continue
    cfg = work / f"{metrics.parent.name}.yaml"
    batch = yaml.safe_load(cfg.read_text())["train"]["batch_size"] if cfg.exists() else 0
    later = rows[len(rows) // 4:] or rows  # past warm-up (cudnn autotuning, caches)
    sec = statistics.median(r["seconds"] for r in later)
    data = statistics.median(r.get("data_seconds", float("nan")) for r in later)
    lines.append(f"| {metrics.parent.name} | {len(rows)} | {sec:.3f} | {data:.3f} | {batch / sec:.1f} | "
                 f"{rows[0]['total']:.3f} | {rows[-1]['total']:.3f} |")
for report in sorted(work.glob("eval_*/*.md")):
    lines += ["", f"## {report.parent.name}/{report.name}", "", report.read_text().strip()[:3000]]
out.write_text("\n".join(lines) + "\n")
print(out.read_text())
EOF
find "$WORK" -name "*.safetensors" -delete
tar czf "$OUT/gpu_check.tgz" -C "$WORK" .
echo "gpu_check: done in $SECONDS s; $OUT/summary.md, $OUT/gpu_check.tgz"
