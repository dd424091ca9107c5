"""Ablations like ROCA's Tables 1-2 and Points2Objects' Table 3: train each variant, evaluate it,
write one table.

Each variant overrides sections of the base experiment (``model:``, ``train:``,
``points2objects:``; config/ablations.yaml, config/ablations_p2o.yaml). Each trains in
RUN/<variant>/ through `cad-perception train` (resumable: rerunning the command continues where
it stopped), is evaluated on the validation split with the Scan2CAD criteria and the collision
metrics, and becomes one row. The retrieval comparison (Table 2) evaluates one trained variant
twice: learned retrieval and Chamfer retrieval from its predicted NOCs. The table goes to
RUN/ablations.md and .json; a run with --only adds its rows to an earlier table of the same
steps and data in RUN (other setups start a new table).

With --init-from RUN_OR_MODEL_DIR every variant starts from the same trained trunk (the
``train.init_modules``: backbone, detector, mask and depth heads) and trains only its own heads
for --steps (``train.freeze`` in the ablation file): the rows then differ only in what the
variant changes, at a fraction of the cost of training each from scratch.

Example:
  cad-perception ablate --data /work/datasets/synth --out runs/ablations --steps 3000
  cad-perception ablate --data DIR --init-from runs/roca/model --steps 600 --out runs/ablations_ft
  cad-perception ablate --config config/ablations_bundle.yaml --data datasets/synth_big \
      --eval-data datasets/synth --init-from models/roca --out runs/ablations_bundle
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from cad_perception_ros.config import ConfigError, from_mapping, load_config, to_mapping
from cad_perception_ros.data.dataset import SyntheticDataset
from cad_perception_ros.data.scan2cad_format import instances_path
from cad_perception_ros.evaluation.bootstrap import (
    bootstrap_difference,
    format_difference,
)
from cad_perception_ros.evaluation.run import evaluate_aligner
from cad_perception_ros.model.config import experiment_from_mapping, load_experiment
from cad_perception_ros.paths import asset_root
from cad_perception_ros.pipeline import CadAligner

SECTIONS = ("model", "train", "points2objects")


@dataclass(frozen=True)
class AblationConfig:
    """base: experiment YAML (relative to the asset root or absolute); steps: training steps per
    variant; train: TrainConfig overrides shared by every variant; fine_tune: further TrainConfig
    overrides when --init-from is given (init_modules, freeze); variants: name -> section
    overrides ({model: {...}, train: {...}, points2objects: {...}}); retrieval_comparison: variant
    evaluated with both retrieval modes ("" to skip); baseline: variant every row is compared with
    by a paired bootstrap over the images ("" for none)."""

    base: str = "config/roca_synthetic.yaml"
    steps: int = 3000
    train: dict = field(default_factory=dict)
    fine_tune: dict = field(default_factory=dict)
    variants: dict = field(default_factory=dict)
    retrieval_comparison: str = "final"
    baseline: str = ""

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        for name, sections in self.variants.items():
            bad = sorted(set(sections or {}) - set(SECTIONS))
            if not isinstance(sections or {}, dict) or bad:
                raise ValueError(f"variant {name!r}: overrides must be a mapping of sections {list(SECTIONS)}, got {bad}")
        if self.retrieval_comparison and self.retrieval_comparison not in self.variants:
            raise ValueError(f"retrieval_comparison {self.retrieval_comparison!r} is not a variant")
        if self.baseline and self.baseline not in self.variants:
            raise ValueError(f"baseline {self.baseline!r} is not a variant")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=asset_root() / "config" / "ablations.yaml",
                        help="ablation table definition (default: config/ablations.yaml)")
    parser.add_argument("--data", type=Path, required=True, help="data root with train and val splits")
    parser.add_argument("--eval-data", type=Path, default=None,
                        help="data root whose val split is evaluated (default: --data), e.g. the benchmark "
                             "beside a larger training set")
    parser.add_argument("--out", type=Path, default=Path("runs/ablations"), help="run folder (default: runs/ablations)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per variant (default: the config's)")
    parser.add_argument("--only", default=None, help="comma-separated variants to run (default: all); their rows join an earlier "
                        "table of the same setup in --out")
    parser.add_argument("--eval-limit", type=int, default=None, help="evaluate only the first N validation views")
    parser.add_argument("--eval-only", action="store_true", help="skip training; evaluate existing variant models")
    parser.add_argument("--init-from", type=Path, default=None,
                        help="model dir or run checkpoint every variant starts from (train.init_modules)")


def variant_experiment(base_path: Path, name: str, overrides: dict, steps: int,
                       shared_train: dict | None = None) -> dict:
    """The resolved experiment mapping of one variant (validated strictly).

    overrides: {section: {field: value}} (model.ablation: {switch: value} on top of the base's
    switches); shared_train: train overrides of every variant."""
    base = load_experiment(base_path)
    model_overrides = dict(overrides.get("model", {}))
    model = to_mapping(base.model)
    if isinstance(model_overrides.get("ablation"), dict) and "ablation" in model:
        model_overrides["ablation"] = {**model["ablation"], **model_overrides["ablation"]}
    model = {**model, **model_overrides, "name": f"{base.model.name}-{name}"}
    # Keep the schedule's shape: decay steps at the same fractions of the (shorter) run.
    ratio = steps / base.train.max_steps
    train = {**to_mapping(base.train), "max_steps": steps,
             "lr_decay_steps": [max(1, int(s * ratio)) for s in base.train.lr_decay_steps],
             "warmup_steps": max(1, min(base.train.warmup_steps, steps // 10))}
    train.update(shared_train or {})
    train.update(overrides.get("train", {}))
    train["checkpoint_every"] = min(train["checkpoint_every"], steps)
    for key in ("cad_db", "init_from"):
        if train.get(key) and not Path(train[key]).is_absolute():
            train[key] = str(asset_root() / train[key])
    mapping = {"model": model, "train": train}
    if base.model.kind == "points2objects" or "points2objects" in overrides:
        p2o = to_mapping(base.points2objects)
        p2o["collision_warmup_steps"] = int(p2o["collision_warmup_steps"] * ratio)  # same fraction of the run
        mapping["points2objects"] = {**p2o, **overrides.get("points2objects", {})}
    experiment_from_mapping(mapping, where=f"variant {name}")  # raises ConfigError if invalid
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
    """Image-protocol metrics of RUN/model on the val split (class and instance averages) and
    the collision metrics of its predictions (Points2Objects Table 3)."""
    aligner = CadAligner.from_model_dir(run / "model", retrieval=retrieval, score_threshold=0.05)
    results = evaluate_aligner(aligner, SyntheticDataset(data, "val"), limit=limit,
                               protocols=("image", "collisions", "breakdown"))
    result, collisions = results["image"], results.get("collisions")
    metrics = ("alignment_accuracy", "retrieval_accuracy", "ap50")
    row = {"class_avg": {m: result.class_average(m) for m in metrics},
           "instance_avg": {m: result.instance_average(m) for m in metrics}}
    interval = result.alignment_interval
    if interval is not None:  # 95 % bootstrap over the images (evaluation/bootstrap.py)
        row["instance_alignment_interval"] = list(interval["instance_average"])
        row["unit_counts"] = result.unit_counts.tolist()  # (images, 2, classes): for paired comparisons
    row["breakdown"] = results["breakdown"]._asdict()
    if collisions is not None:
        row["collisions"] = {"colliding_pairs_per_image": collisions.num_colliding_pairs / max(collisions.num_images, 1),
                             "mean_intersection_volume": collisions.mean_intersection_volume}
    return row


def format_table(rows: dict[str, dict], baseline: str = "") -> str:
    """Markdown: one row per variant; alignment / retrieval-aware accuracy (class and instance
    avg; the instance alignment with its 95 % bootstrap interval over the images when the row
    has one), AP50, median translation / rotation / scale errors of detected objects
    (evaluation/breakdown.py), the share of detected objects given the right CAD model, colliding
    pairs per image and mean intersection volume per image (m^3). With a `baseline` row, a last
    column gives each row's instance alignment minus the baseline's with the 95 % interval of a
    paired bootstrap over the same images (points; "-" where the counts are missing)."""
    compare = baseline in rows
    lines = ["| variant | align. acc. class avg | align. acc. inst. avg | retrieval-aware class avg "
             "| retrieval-aware inst. avg | AP50 | median t / R / s error | right CAD | colliding pairs / image "
             "| intersection vol. (m^3) |" + (f" inst. avg minus {baseline} (paired 95 %) |" if compare else ""),
             "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if compare else "")]
    for name, r in rows.items():
        c, i = r["class_avg"], r["instance_avg"]
        col = r.get("collisions")
        pairs = f"{col['colliding_pairs_per_image']:.3f}" if col else "-"
        volume = f"{col['mean_intersection_volume']:.4f}" if col else "-"
        band = r.get("instance_alignment_interval")
        instance = f"{i['alignment_accuracy']:.1f}" + (f" ({band[0]:.1f}-{band[1]:.1f})" if band else "")
        lines.append(f"| {name} | {c['alignment_accuracy']:.1f} | {instance} | "
                     f"{c['retrieval_accuracy']:.1f} | {i['retrieval_accuracy']:.1f} | {i['ap50']:.1f} | "
                     f"{_medians(r.get('breakdown'))} | {_right_cad(r.get('breakdown'))} | {pairs} | {volume} |"
                     + (f" {_paired(r, rows[baseline])} |" if compare else ""))
    return "\n".join(lines) + "\n"


def _paired(row: dict, baseline: dict) -> str:
    """Instance alignment of `row` minus `baseline`'s, with the paired bootstrap interval."""
    if row is baseline:
        return "-"
    a, b = row.get("unit_counts"), baseline.get("unit_counts")
    if a is None or b is None:
        return "-"
    try:
        interval = bootstrap_difference(np.asarray(a), np.asarray(b))["instance_average"]
    except ValueError:  # evaluated on other images
        return "-"
    diff = row["instance_avg"]["alignment_accuracy"] - baseline["instance_avg"]["alignment_accuracy"]
    return format_difference(diff, interval)


def _right_cad(b: dict | None) -> str:
    value = (b or {}).get("retrieval_ok")
    return "-" if value is None or value != value else f"{value:.1f} %"  # value != value: NaN


def _medians(b: dict | None) -> str:
    if not b or not b["num_detected"]:
        return "-"
    return (f"{b['median_translation_m']:.2f} m / {b['median_rotation_deg']:.0f} deg / "
            f"{100 * b['median_scale_ratio']:.0f} % (n={b['num_detected']})")


def merge_earlier_rows(path: Path, rows: dict[str, dict], setup: dict, order: list[str]) -> dict[str, dict]:
    """`rows` plus the rows of an earlier ablations.json at `path` for the variants not evaluated
    now, when their "setup" (steps, training and evaluation data) is `setup`, so that an `--only`
    run adds to the table instead of replacing it. Sorted by `order` (config variants)."""
    try:
        earlier = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return rows
    kept = {n: r for n, r in earlier.items() if n not in rows and isinstance(r, dict) and r.get("setup") == setup} \
        if isinstance(earlier, dict) else {}
    if kept:
        print(f"ablate: kept the earlier rows {list(kept)} of {path}", flush=True)
    rank = {n: i for i, n in enumerate(order)}
    return dict(sorted({**kept, **rows}.items(), key=lambda item: rank.get(item[0].split(",")[0], len(rank))))


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(AblationConfig, args.config)
        base = Path(config.base) if Path(config.base).is_absolute() else asset_root() / config.base
        steps = args.steps or config.steps
        names = list(config.variants) if not args.only else [n.strip() for n in args.only.split(",")]
        unknown = [n for n in names if n not in config.variants]
        if unknown:
            raise ConfigError(f"unknown variant(s) {unknown}; defined: {list(config.variants)}")
        shared = dict(config.train)
        if args.init_from is not None:
            if not args.init_from.exists():
                raise ValueError(f"--init-from {args.init_from}: no such model dir or checkpoint")
            shared.update(config.fine_tune, init_from=str(args.init_from.resolve()))
        mappings = {n: variant_experiment(base, n, config.variants[n] or {}, steps, shared) for n in names}
    except (ConfigError, ValueError, OSError) as exc:
        print(f"ablate: {exc}", file=sys.stderr)
        return 2
    eval_data = args.eval_data or args.data
    needed = [("--eval-data" if args.eval_data else "--data", eval_data, "val")]
    if not args.eval_only:
        needed.append(("--data", args.data, "train"))
    for flag, root, split in needed:
        if not instances_path(root, split).is_file():
            print(f"ablate: {flag} {root}: no {split} split ({instances_path(root, split).name})", file=sys.stderr)
            return 2
    rows: dict[str, dict] = {}
    setup = {"steps": steps, "data": str(args.data), "eval_data": str(eval_data), "eval_limit": args.eval_limit}
    for name in names:
        run_dir = args.out / name.replace("+", "_")
        if not args.eval_only:
            train_variant(name, mappings[name], run_dir, args.data, steps)
        rows[name] = {**evaluate_variant(run_dir, eval_data, args.eval_limit), "setup": setup}
        if name == config.retrieval_comparison:
            rows[f"{name}, Chamfer retrieval"] = {
                **evaluate_variant(run_dir, eval_data, args.eval_limit, "chamfer"), "setup": setup}
        print(format_table({name: rows[name]}), flush=True)
    rows = merge_earlier_rows(args.out / "ablations.json", rows, setup, list(config.variants))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ablations.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    table = format_table(rows, config.baseline)
    header = f"{steps} training steps per variant, trained on {args.data}, evaluated on {eval_data}\n\n"
    (args.out / "ablations.md").write_text(header + table)
    print(table)
    return 0


