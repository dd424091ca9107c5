#!/usr/bin/env bash
# A time-boxed ROCA training stage on a GPU machine that holds no data. It renders the training
# split and the benchmark there with the numpy renderer (no pybullet; nothing travels but the
# repository), trains a stage from the config's init_from (models/roca), evaluates it on the
# benchmark and leaves the model in DIR. Uses the python3 on PATH (torch with CUDA, numpy, PIL,
# yaml, safetensors, tqdm, matplotlib, scipy, trimesh); ROS is not needed.
#
#   bash scripts/gpu_train.sh --out DIR [--config CFG] [--shading pybullet|flat] [--minutes M]
#                             [--steps N] [--batch B] [--workers W] [--scenes S] [--budget S]
#                             [--init-from MODEL_DIR]
#
# CFG (default config/roca_synthetic_depth7.yaml) gives the recipe; MODEL_DIR (default: the
# config's train.init_from, models/roca) the weights it starts from, e.g. the model/ an earlier
# gpu_train run returned, carried back to the machine, so that stages chain across sessions.
# This run sets its batch size (B, default 16), steps (N, default 4000; the learning rate decays
# at 88 % of them) and data loader workers (W, default 4). The data: S training scenes of 8 views
# at 320x240 (default 1200, seed 11: the scenes of datasets/synth_big) and the benchmark
# synthetic-val-v1, both shaded with SHADING (default pybullet, the benchmark's look; flat:
# data/render_numpy.py). Training stops
# after N steps or M minutes (default 6), whichever comes first, with its checkpoint and model
# written. BUDGET (default 570 s, inside a lent machine's 600 s a call) bounds the whole run; each
# phase gets what is left of it. The lent H200 lacks trimesh: carry its wheel (.whl, ignored) and
# start the command with `python3 -m pip install -q --no-index --no-deps --target /tmp/site
# .whl/*.whl && export PYTHONPATH=/tmp/site;`.
# DIR gets phases.txt, summary.md (evaluation, throughput, the difference to models/roca on the
# same views with a paired bootstrap interval), model/ (the runtime model folder:
# safetensors weights, resolved config, CAD embeddings; `cad-perception bundle` makes it a
# bundle) and run.tgz (logs, metrics.jsonl, loss curves, evaluation tables and pictures).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/gpu_phase.sh  # usage; phase NAME LIMIT_S COMMAND...
OUT= CONFIG=config/roca_synthetic_depth7.yaml SHADING=pybullet MINUTES=6 STEPS=4000 BATCH=16 WORKERS=4
SCENES=1200 BUDGET=570 PHASES= PY=${PYTHON:-python3} DEVICE=cuda INIT_FROM=
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    --config) CONFIG=$2; shift 2 ;;
    --shading) SHADING=$2; shift 2 ;;
    --minutes) MINUTES=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --scenes) SCENES=$2; shift 2 ;;
    --budget) BUDGET=$2; shift 2 ;;
    --device) DEVICE=$2; shift 2 ;;
    --init-from) INIT_FROM=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_train: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$OUT" ] || { echo "gpu_train: --out DIR is required (see --help)" >&2; exit 2; }
[ -f "$CONFIG" ] || { echo "gpu_train: no config $CONFIG" >&2; exit 2; }
case "$SHADING" in pybullet|flat) ;; *) echo "gpu_train: --shading must be pybullet or flat" >&2; exit 2 ;; esac
if [ -n "$INIT_FROM" ]; then
  [ -f "$INIT_FROM/model.safetensors" ] || { echo "gpu_train: --init-from $INIT_FROM has no model.safetensors" >&2; exit 2; }
  INIT_FROM=$(cd "$INIT_FROM" && pwd)
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
WORK=$(mktemp -d /tmp/gpu_train.XXXXXX)
LOGS=$WORK/logs DATA=$WORK/data RUN=$WORK/run
mkdir -p "$OUT" "$LOGS"
CLI="$PY -m cad_perception_ros.cli"
SECONDS=0

$PY - "$CONFIG" "$WORK/stage.yaml" "$BATCH" "$STEPS" "$WORKERS" "$INIT_FROM" <<'PYEOF'
import sys, yaml
base, out, batch, steps, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
cfg = yaml.safe_load(open(base))
cfg["model"].update(pretrained=False)  # every weight comes from train.init_from
if sys.argv[6]:
    cfg["train"]["init_from"] = sys.argv[6]
cfg["train"].update(batch_size=batch, max_steps=steps, lr_decay_steps=[int(0.88 * steps)], num_workers=workers,
                    checkpoint_every=max(steps // 8, 1), log_every=10)
yaml.safe_dump(cfg, open(out, "w"))
PYEOF
CPUS=$(nproc)
phase render_train 240 $CLI data generate --out "$DATA" --scenes "$SCENES" --seed 11 --views-per-scene 8 \
  --size 320x240 --split train --renderer numpy --shading "$SHADING" --workers "$CPUS"
phase render_val 60 $CLI data generate --out "$DATA" --benchmark synthetic-val-v1 --renderer numpy \
  --shading "$SHADING" --workers "$CPUS"
phase train $((MINUTES * 60 + 90)) $CLI train --config "$WORK/stage.yaml" --data "$DATA" --cad-db models/cad_db \
  --out "$RUN" --max-minutes "$MINUTES" --no-progress
phase evaluate 150 $CLI evaluate --model-dir "$RUN/model" --data "$DATA" --split val --device "$DEVICE" \
  --protocol both --out "$WORK/eval" --compare-with models/roca

$PY - "$WORK" "$OUT/summary.md" "$BATCH" <<'PYEOF'
import json, statistics, sys
from pathlib import Path
work, out, batch = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
lines = ["# gpu_train summary", "", "```", (work / "logs/phases.txt").read_text().strip(), "```", ""]
metrics = work / "run/metrics.jsonl"
if metrics.is_file():
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    later = rows[len(rows) // 4:] or rows
    sec = statistics.median(r["seconds"] for r in later)
    lines += [f"trained {rows[-1]['step']} steps of {batch}; median {batch / sec:.1f} images/s past warm-up; "
              f"total loss {rows[0]['total']:.3f} -> {rows[-1]['total']:.3f}", ""]
for report in sorted((work / "eval").glob("*.md")):
    lines += [f"## {report.name}", "", report.read_text().strip(), ""]
log = work / "logs/evaluate.log"  # evaluate --compare-with prints the paired difference last
text = log.read_text(errors="replace") if log.is_file() else ""
if "paired bootstrap" in text:
    section = text[text.rindex("\n## ", 0, text.index("paired bootstrap")) + 1:]
    lines += [line for line in section.splitlines() if line.startswith(("## ", "|"))] + [""]
out.write_text("\n".join(lines) + "\n")
print(out.read_text())
PYEOF
if [ -f "$RUN/model/model.safetensors" ]; then
  rm -rf "$OUT/model" && cp -r "$RUN/model" "$OUT/model"
fi
tar czf "$OUT/run.tgz" -C "$WORK" --exclude='*.safetensors' --exclude=data logs run eval stage.yaml 2>/dev/null
echo "gpu_train: done in $SECONDS s; $OUT/summary.md, $OUT/model, $OUT/run.tgz"
