"""`cad-perception`: the project's single command-line entry point.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; the dispatcher imports only the module of the subcommand it runs, so ``--help`` is instant.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help). Add a line here to add a subcommand.
COMMANDS: dict[str, tuple[str, str]] = {
    "doctor": ("cad_perception_ros.cli.doctor", "check the environment: torch, ROS 2 wheels, interfaces"),
    "cad": ("cad_perception_ros.cli.cad", "build and inspect CAD databases"),
    "data": ("cad_perception_ros.cli.data", "generate, inspect and convert data sets"),
    "launch": ("cad_perception_ros.cli.launch", "start the node like launch/cad_perception.launch.py"),
    "demo": ("cad_perception_ros.tools.demo", "the node on a synthetic camera stream: record, score, overlays"),
    "export": ("cad_perception_ros.cli.export", "export the network to ONNX (static shapes) and check TensorRT ops"),
    "predict": ("cad_perception_ros.cli.predict", "run the aligner on images: PNG overlay + JSON per image"),
    "benchmark": ("cad_perception_ros.tools.latency_benchmark", "latency per backend and size, or CAD retrieval scaling"),
    "train": ("cad_perception_ros.cli.train", "train a model"),
    "train-crop": ("cad_perception_ros.cli.train_crop", "train ROCA v2's zoom-in crop network on jittered object crops"),
    "train-classifier": ("cad_perception_ros.cli.train_classifier", "train ROCA v2's crop classifier that rescores the detector's candidates"),
    "stream-benchmark": ("cad_perception_ros.tools.stream_benchmark", "stream full-size camera frames through the node: sent, received, dropped, lost, latency"),
    "soak": ("cad_perception_ros.tools.soak", "the node under a long 30 Hz camera stream: memory, latency, drops over time"),
    "evaluate": ("cad_perception_ros.cli.evaluate", "Scan2CAD alignment accuracy of a model on a data split"),
    "observability": ("cad_perception_ros.tools.observability", "does the data show each object's heading? (render 8 headings, pick the best)"),
    "calibrate-scores": ("cad_perception_ros.tools.calibrate_scores", "fit the detection-score calibration on views the detector never saw"),
    "diagnose": ("cad_perception_ros.tools.diagnose", "where ROCA's errors come from: its NOCs or its depth (oracle solves)"),
    "crop-diagnose": ("cad_perception_ros.tools.crop_diagnose", "ROCA v2 crop network: oracle solves on ground-truth boxes (its NOCs or its depth)"),
    "ablate": ("cad_perception_ros.tools.ablate", "train and evaluate the ablation variants (paper Tables 1-2)"),
    "ablate-crop": ("cad_perception_ros.tools.ablate_crop", "ROCA v2: Tables 1-2 as decode variants of one crop network, paired"),
    "average": ("cad_perception_ros.tools.average", "average the weights of ROCA model directories of one architecture (model soup)"),
    "bundle": ("cad_perception_ros.tools.bundle", "verify a trained model directory and copy it for shipping (models/)"),
    "map-eval": ("cad_perception_ros.tools.map_eval", "the object map on multi-view scenes: fused map vs per-image and per-scene accuracy, identity switches"),
    "p2o-exemplars": ("cad_perception_ros.cli.p2o_exemplars", "build the Points2Objects shape-exemplar set from a CAD database"),
}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the subcommand named in `argv` (all of them when argv is None) is imported,
    so `cad-perception --help` and one command's `--help` import no other command's dependencies."""
    parser = argparse.ArgumentParser(
        prog="cad-perception",
        description="CAD model retrieval and 9-DoF alignment from one RGB camera (ROCA, Points2Objects).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = _named(argv)
    for name, (module_name, help_text) in COMMANDS.items():
        if name not in wanted:
            sub.add_parser(name, help=help_text, description=help_text)
            continue
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip(),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def _named(argv: list[str] | None) -> set[str]:
    """The subcommand argv names (its first word that is a command), all of them for argv None."""
    if argv is None:
        return set(COMMANDS)
    return next(({a} for a in argv if a in COMMANDS), set())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
