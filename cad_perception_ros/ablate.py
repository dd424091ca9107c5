"""Ablations like ROCA's Tables 1 and 2: train each variant, evaluate it, write one table.

Variants are overrides of the base experiment's ``model:`` section (config/ablations.yaml).
Each variant trains in RUN/<variant>/ through `cad-perception train` (resumable: rerunning the
command continues where it stopped), is evaluated on the validation split with the Scan2CAD
criteria, and becomes one row. The retrieval comparison (Table 2) evaluates one trained variant
twice: learned retrieval and Chamfer retrieval from its predicted NOCs.

Example:
  cad-perception ablate --data /work/datasets/synth --out runs/ablations --steps 3000
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from cad_perception_ros.config import ConfigError, from_mapping, load_config, to_mapping
from cad_perception_ros.paths import asset_root


@dataclass(frozen=True)
class AblationConfig:
    """base: experiment YAML (relative to the asset root or absolute); steps: training steps per
    variant; variants: name -> ModelConfig overrides; retrieval_comparison: variant evaluated with
    both retrieval modes ("" to skip)."""

    base: str = "config/roca_synthetic.yaml"
    steps: int = 3000
    variants: dict = field(default_factory=dict)
    retrieval_comparison: str = "final"

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.retrieval_comparison and self.retrieval_comparison not in self.variants:
            raise ValueError(f"retrieval_comparison {self.retrieval_comparison!r} is not a variant")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=asset_root() / "config" / "ablations.yaml",
                        help="ablation table definition (default: config/ablations.yaml)")
    parser.add_argument("--data", type=Path, required=True, help="data root with train and val splits")
    parser.add_argument("--out", type=Path, default=Path("runs/ablations"), help="run folder (default: runs/ablations)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per variant (default: the config's)")
    parser.add_argument("--only", default=None, help="comma-separated variants to run (default: all)")
    parser.add_argument("--eval-limit", type=int, default=None, help="evaluate only the first N validation views")
    parser.add_argument("--eval-only", action="store_true", help="skip training; evaluate existing variant models")


def variant_experiment(base_path: Path, name: str, overrides: dict, steps: int) -> dict:
    """The resolved experiment mapping of one variant (validated strictly)."""
    from cad_perception_ros.model.config import ExperimentConfig, load_experiment

    base = load_experiment(base_path)
    model = {**to_mapping(base.model), **overrides, "name": f"{base.model.name}-{name}"}
    # Keep the schedule's shape: decay steps at the same fractions of the (shorter) run.
    ratio = steps / base.train.max_steps
    train = {**to_mapping(base.train), "max_steps": steps,
             "lr_decay_steps": [max(1, int(s * ratio)) for s in base.train.lr_decay_steps],
             "warmup_steps": max(1, min(base.train.warmup_steps, steps // 10))}
    train["checkpoint_every"] = min(train["checkpoint_every"], steps)
    if not Path(train["cad_db"]).is_absolute():
        train["cad_db"] = str(asset_root() / train["cad_db"])
    mapping = {"model": model, "train": train}
    from_mapping(ExperimentConfig, mapping, where=f"variant {name}")  # raises ConfigError if invalid
    return mapping


def train_variant(name: str, mapping: dict, run: Path, data: Path, steps: int) -> None:
    """Write RUN/experiment.yaml and train (resuming when a checkpoint exists)."""
    run.mkdir(parents=True, exist_ok=True)
    config = run / "experiment.yaml"
    config.write_text(yaml.safe_dump(mapping, sort_keys=False), encoding="utf-8")
    command = [sys.executable, "-m", "cad_perception_ros.cli", "train", "--config", str(config),
               "--data", str(data), "--out", str(run), "--max-steps", str(steps), "--no-progress"]
    if (run / "checkpoint").exists():
        command.append("--resume")
    print(f"[ablate] {name}: {' '.join(command[2:])}", flush=True)
    subprocess.run(command, check=True)


def evaluate_variant(run: Path, data: Path, limit: int | None, retrieval: str | None = None) -> dict:
    """Image-protocol metrics of RUN/model on the val split: class and instance averages."""
    from cad_perception_ros.data.dataset import SyntheticDataset
    from cad_perception_ros.evaluate import evaluate_aligner
    from cad_perception_ros.pipeline import CadAligner

    aligner = CadAligner.from_model_dir(run / "model", retrieval=retrieval, score_threshold=0.05)
    result = evaluate_aligner(aligner, SyntheticDataset(data, "val"), limit=limit, protocols=("image",))["image"]
    metrics = ("alignment_accuracy", "retrieval_accuracy", "ap50")
    return {"class_avg": {m: result.class_average(m) for m in metrics},
            "instance_avg": {m: result.instance_average(m) for m in metrics}}


def format_table(rows: dict[str, dict]) -> str:
    """Markdown: one row per variant; alignment / retrieval-aware accuracy, class and instance avg."""
    lines = ["| variant | align. acc. class avg | align. acc. inst. avg | retrieval-aware class avg "
             "| retrieval-aware inst. avg | AP50 |", "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        c, i = r["class_avg"], r["instance_avg"]
        lines.append(f"| {name} | {c['alignment_accuracy']:.1f} | {i['alignment_accuracy']:.1f} | "
                     f"{c['retrieval_accuracy']:.1f} | {i['retrieval_accuracy']:.1f} | {i['ap50']:.1f} |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(AblationConfig, args.config)
        base = Path(config.base) if Path(config.base).is_absolute() else asset_root() / config.base
        steps = args.steps or config.steps
        names = list(config.variants) if not args.only else [n.strip() for n in args.only.split(",")]
        unknown = [n for n in names if n not in config.variants]
        if unknown:
            raise ConfigError(f"unknown variant(s) {unknown}; defined: {list(config.variants)}")
        mappings = {n: variant_experiment(base, n, config.variants[n] or {}, steps) for n in names}
    except (ConfigError, ValueError, OSError) as exc:
        print(f"ablate: {exc}", file=sys.stderr)
        return 2
    rows: dict[str, dict] = {}
    for name in names:
        run_dir = args.out / name.replace("+", "_")
        if not args.eval_only:
            train_variant(name, mappings[name], run_dir, args.data, steps)
        rows[name] = evaluate_variant(run_dir, args.data, args.eval_limit)
        if name == config.retrieval_comparison:
            rows[f"{name}, Chamfer retrieval"] = evaluate_variant(run_dir, args.data, args.eval_limit, "chamfer")
        print(format_table({name: rows[name]}), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ablations.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    table = format_table(rows)
    (args.out / "ablations.md").write_text(f"{steps} training steps per variant, data {args.data}\n\n" + table)
    print(table)
    return 0


