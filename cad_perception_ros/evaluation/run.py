"""A CadAligner over a data split: per-view predictions -> the Scan2CAD metrics of evaluation/metrics.py
(image and scene protocols, collisions, the per-criterion breakdown) and the paired comparison table.

depth: None (RGB alone), "true" (the rendered ground-truth depth as a perfect registered sensor)
or "sensor" (``data.sensor_depth.simulate_sensor_depth`` of it, seeded by the view's index, so
every run of a split sees the same sensor depth). floor: None or "camera-pose" (the floor z = 0 of
the view's world frame, seen from its camera_to_world: what a robot's TF gives; geometry/floor.py)."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np
from tqdm import tqdm

from cad_perception_ros.cad.sampling import surface_voxels
from cad_perception_ros.data.sample import objects_in_model_classes  # noqa: F401  (re-exported for the tools)
from cad_perception_ros.data.sensor_depth import simulate_sensor_depth
from cad_perception_ros.evaluation.bootstrap import bootstrap_difference, format_difference
from cad_perception_ros.evaluation.breakdown import match_errors, summarise
from cad_perception_ros.evaluation.collisions import evaluate_collisions
from cad_perception_ros.evaluation.metrics import EvaluationConfig, evaluate_images
from cad_perception_ros.evaluation.scene import SceneFrame, evaluate_scenes
from cad_perception_ros.geometry.floor import FloorPlane, floor_from_camera_pose
from cad_perception_ros.types import passes_score


def grid_iou_lookup(database) -> Callable[[str, str], float]:
    """cad_iou(a, b): IoU of two CAD models' SURFACE voxels in their 32^3 grids (cached per pair;
    ROCA's optional retrieval test voxelises the surfaces, renderer/voxelize_cads.py)."""
    grids = database.grids  # (N, G, G, G) bool, solid
    cache: dict[tuple[str, str], float] = {}
    surfaces: dict[int, np.ndarray] = {}

    def surface(cad_id: str) -> np.ndarray:
        index = database.index_of(cad_id)
        if index not in surfaces:
            surfaces[index] = surface_voxels(grids[index])
        return surfaces[index]

    def cad_iou(a: str, b: str) -> float:
        if a == b:
            return 1.0
        if a not in database or b not in database:
            return 0.0
        key = (a, b) if a < b else (b, a)
        if key not in cache:
            ga, gb = surface(a), surface(b)
            union = np.logical_or(ga, gb).sum()
            cache[key] = float(np.logical_and(ga, gb).sum() / union) if union else 0.0
        return cache[key]

    return cad_iou


DEPTH_MODES = ("true", "sensor")
SENSOR_SEED = 2026  # simulated sensor depth of view i: rng seeded by (SENSOR_SEED, i)


def view_depth(sample, index: int, mode: str | None) -> np.ndarray | None:
    """The depth map (H, W) metres the aligner gets for view `index` of a split (see the module docstring)."""
    if mode is None:
        return None
    if mode not in DEPTH_MODES:
        raise ValueError(f"depth mode must be one of {DEPTH_MODES} or None, got {mode!r}")
    if mode == "true":
        return np.asarray(sample.depth, dtype=np.float32)
    return simulate_sensor_depth(sample.depth, sample.image, np.random.default_rng((SENSOR_SEED, index)))


FLOOR_MODES = ("camera-pose",)


def view_floor(sample, mode: str | None) -> FloorPlane | None:
    """The floor plane the aligner gets for a view (see the module docstring); ValueError for a view
    whose pose puts its camera at or below the floor (e.g. data without camera poses)."""
    if mode is None:
        return None
    if mode not in FLOOR_MODES:
        raise ValueError(f"floor mode must be one of {FLOOR_MODES} or None, got {mode!r}")
    try:
        return floor_from_camera_pose(sample.camera_to_world)
    except ValueError as exc:
        raise ValueError(f"view {sample.image_id}: no floor from its camera pose ({exc}); "
                         "--floor camera-pose needs views posed in a +z-up world with the floor at z = 0") from exc


def evaluate_aligner(aligner, dataset, *, limit: int | None = None, protocols=("image", "scene"),
                     progress: bool = True, depth: str | None = None, config: EvaluationConfig | None = None,
                     scene_objects: dict | None = None, ground_truth: str | None = None,
                     floor: str | None = None) -> dict:
    """Run `aligner` over `dataset` (Sequence[SceneSample]); EvaluationResults per protocol,
    CollisionMetrics under "collisions" when protocols names it and the aligner has a CAD database,
    and the per-criterion ErrorBreakdown under "breakdown" (with the per-object MatchedErrors
    under "matched_errors") when protocols names it. depth: None | "true" | "sensor", floor: None |
"camera-pose" (module docstring).

    config: thresholds and the retrieval criterion (default: exact CAD match). scene_objects:
    world-frame ground truth per scene for the scene protocol (e.g. Scan2CAD's full annotations,
    data/scan2cad_full.py), every scene in it counted; default: the objects of the evaluated
    frames. ground_truth: what the reports say the scene protocol's ground truth was."""

    config = config or EvaluationConfig()
    database = aligner.cad_database
    symmetry_of = {m.cad_id: m.symmetry for m in database} if database is not None else None
    # is_right_cad reads the IoU only under "surface-iou"; given either way, so the breakdown reports right_cad
    cad_iou = grid_iou_lookup(database) if database is not None else None
    count = len(dataset) if limit is None else min(limit, len(dataset))
    frames = []
    for i in tqdm(range(count), desc="evaluate", unit="view", disable=not progress):
        sample = dataset[i]
        sensor = view_depth(sample, i, depth)
        plane = view_floor(sample, floor)
        extra = {k: v for k, v in (("depth", sensor), ("floor", plane)) if v is not None}
        predictions = aligner(sample.image, sample.K, **extra)
        frames.append(SceneFrame(scene_id=sample.scene_id, camera_to_world=sample.camera_to_world,
                                 predictions=predictions,
                                 objects=objects_in_model_classes(sample.objects, aligner.class_names)))
    kwargs = dict(config=config, class_names=aligner.class_names, symmetry_of=symmetry_of, cad_iou=cad_iou)
    results = {}
    if "collisions" in protocols and database is not None:
        # Collisions between the objects the model reports: the alignment metrics' score cut.
        cut = config.score_threshold
        results["collisions"] = evaluate_collisions([[p for p in f.predictions if passes_score(p.score, cut)] for f in frames],
                                                    database)
    if "breakdown" in protocols:
        matched = match_errors(((f.predictions, f.objects) for f in frames), config=config, symmetry_of=symmetry_of,
                               cad_iou=cad_iou)
        results["breakdown"], results["matched_errors"] = summarise(matched, config), matched
    if "image" in protocols:
        results["image"] = evaluate_images(((f.predictions, f.objects) for f in frames), **kwargs)
    if "scene" in protocols:
        gt = None if scene_objects is None else {
            scene: objects_in_model_classes(objects, aligner.class_names) for scene, objects in scene_objects.items()}
        results["scene"] = replace(evaluate_scenes(frames, gt, **kwargs),
                                   ground_truth=ground_truth or ("given scene objects" if gt is not None else
                                                                 "objects seen in the evaluated frames"))
    return results


def format_comparison(results: dict, other_results: dict) -> str:
    """Markdown: per protocol and average, model A's alignment accuracy, model B's, and A - B with
    the 95 % interval of a paired bootstrap over the shared units (evaluation/bootstrap.py)."""
    lines = ["| protocol | average | this model | other model | difference (paired 95 % interval) |",
             "|---|---|---:|---:|---|"]
    for protocol, a in results.items():
        b = other_results[protocol]
        try:
            band = bootstrap_difference(a.unit_counts, b.unit_counts)
        except ValueError as exc:  # e.g. no units with ground truth
            lines.append(f"| {protocol} | - | - | - | not comparable: {exc} |")
            continue
        for average, fn_a, fn_b in (("class", a.class_average, b.class_average),
                                    ("instance", a.instance_average, b.instance_average)):
            va, vb = fn_a("alignment_accuracy"), fn_b("alignment_accuracy")
            lines.append(f"| {protocol} ({a.num_units} units) | {average} | {va:.1f} % | {vb:.1f} % | "
                         f"{format_difference(va - vb, band[f'{average}_average'])} |")
    return "\n".join(lines) + "\n"
