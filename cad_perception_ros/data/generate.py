"""Generate a synthetic data set in the Scan2CAD image format: multi-process, resumable, deterministic.

Scene i of split S is a pure function of (seed, S, i) and the CAD database: its generator is
``numpy.random.default_rng(SeedSequence([seed, SPLIT_CODES[S], i]))``, so the files are identical
whatever the number of workers. Each finished scene leaves ``parts/{split}/{scene}.json``
(written last, atomically); a rerun skips those scenes. ``finalize_split`` merges the parts
into ``scan2cad_instances_{split}.json`` in scene order.
"""
from __future__ import annotations

import json
import multiprocessing
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cad_perception_ros.cad.database import CadDatabase
from cad_perception_ros.cad.procedural_v2 import V2_RECIPE
from cad_perception_ros.data import scan2cad_format as fmt
from cad_perception_ros.data import generate_v2
from cad_perception_ros.data.generate_v2 import render_scene_v2
from cad_perception_ros.data.render import resolve_renderer
from cad_perception_ros.data.renderers import make_renderer
from cad_perception_ros.data.scene_part import render_part
from cad_perception_ros.data.scenes import SceneConfig, generate_scene, sample_camera, sample_intrinsics

SPLIT_CODES = {"train": 0, "val": 1}
INFO_FILE = "dataset_info_{split}.json"


@dataclass(frozen=True)
class GenerateConfig:
    """What to generate for one split. image_size is (height, width)."""

    split: str = "train"
    scenes: int = 10
    seed: int = 0
    views_per_scene: int = 4
    image_size: tuple[int, int] = (360, 480)
    max_view_tries: int = 5
    scene: SceneConfig = SceneConfig()
    shading: str = "pybullet"  # render.SHADINGS; "flat" changes the images, so it is in info()
    data_version: int = 1  # 2: generate_v2 (parts, materials, light, robot cameras); in info() when 2
    styles: str = "seen"  # v2 only: CAD styles of the scenes (scenes_v2.STYLE_SETS)

    def __post_init__(self) -> None:
        if self.split not in SPLIT_CODES:
            raise ValueError(f"GenerateConfig.split must be one of {sorted(SPLIT_CODES)}, got {self.split!r}")
        if self.scenes < 1 or self.views_per_scene < 1:
            raise ValueError("GenerateConfig: scenes and views_per_scene must be >= 1")
        if self.data_version not in (1, 2):
            raise ValueError(f"GenerateConfig.data_version must be 1 or 2, got {self.data_version}")

    def info(self) -> dict:
        info = {"split": self.split, "scenes": self.scenes, "seed": self.seed,
                "views_per_scene": self.views_per_scene, "image_size": list(self.image_size),
                "classes": list(self.scene.classes)}
        if self.scene.focal_factor != SceneConfig().focal_factor:  # data sets made before the option keep their info
            info["focal_factor"] = list(self.scene.focal_factor)
        if self.shading != "pybullet":  # likewise
            info["shading"] = self.shading
        if self.data_version == 2:

            info.update(data_version=2, styles=self.styles, recipe=f"{V2_RECIPE}/{generate_v2.SCENE_RECIPE}")
        return info


def scene_name(split: str, index: int) -> str:
    return f"{split}_{index:05d}"


def _part_path(root: Path, split: str, index: int) -> Path:
    return root / "parts" / split / f"{scene_name(split, index)}.json"


def render_scene(root: Path, config: GenerateConfig, index: int, database, renderer) -> dict:
    """Generate, render and write scene `index`; return its part (written by the caller)."""
    if config.data_version == 2:

        return render_scene_v2(root, config, index, database, renderer, SPLIT_CODES[config.split],
                               scene_name(config.split, index))
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, SPLIT_CODES[config.split], index]))
    scene_config = replace(config.scene, image_size=config.image_size)
    scene = generate_scene(database, rng, scene_config, scene_id=scene_name(config.split, index))
    renderer.load(scene, database)
    renderer.min_visible_pixels = scene_config.min_visible_pixels
    K = sample_intrinsics(rng, scene_config)  # one camera per scene, as in ScanNet
    return render_part(root, scene, K, renderer, config, rng, lambda: sample_camera(scene, rng, scene_config))


_WORKER: dict = {}


def _init_worker(db_dir: str, near: float, renderer: str, shading: str) -> None:
    _WORKER["database"] = CadDatabase.load(db_dir)
    _WORKER["renderer"] = make_renderer(renderer, shading=shading, near=near)


def _work(job: tuple[str, dict, int]) -> int:
    root, config_dict, index = job
    config = _config_from_job(config_dict)
    _run_one(Path(root), config, index, _WORKER["database"], _WORKER["renderer"])
    return index


def _config_from_job(config_dict: dict) -> GenerateConfig:
    return GenerateConfig(split=config_dict["split"], scenes=config_dict["scenes"], seed=config_dict["seed"],
                          views_per_scene=config_dict["views_per_scene"],
                          image_size=tuple(config_dict["image_size"]),
                          scene=replace(SceneConfig(), classes=tuple(config_dict["classes"]), focal_factor=tuple(
                              config_dict.get("focal_factor", SceneConfig().focal_factor))),
                          shading=config_dict.get("shading", "pybullet"),
                          data_version=config_dict.get("data_version", 1), styles=config_dict.get("styles", "seen"))


def _run_one(root: Path, config: GenerateConfig, index: int, database, renderer) -> None:
    part = render_scene(root, config, index, database, renderer)
    fmt.atomic_write_json(_part_path(root, config.split, index), part)


def check_info(root: Path, config: GenerateConfig, overwrite: bool) -> None:
    """Refuse to mix data sets: an existing split must have the same parameters (or --overwrite).
    The number of scenes may change: scene i does not depend on it, so a split grows (or is
    merged from its first N scenes) without rendering again what is there."""
    path = root / INFO_FILE.format(split=config.split)
    if path.is_file() and not overwrite:
        old = json.loads(path.read_text())
        if _without_count(old) != _without_count(config.info()):
            raise ValueError(f"{path}: {root} holds a different {config.split} split {old}; "
                             f"use another --out or --overwrite")
    elif not path.is_file() and not overwrite and (root / "parts" / config.split).is_dir():
        raise ValueError(f"{root}: has parts/{config.split} but no {path.name}; use --overwrite")
    fmt.atomic_write_json(path, config.info())


def _without_count(info: dict) -> dict:
    return {key: value for key, value in info.items() if key != "scenes"}


def _check_canonical_sources(database) -> None:
    """ValueError for a database with source-frame models (cad build --from-shapenet): the files we
    write state poses and NOCs of the source meshes (as Scan2CAD does), and the renderer poses the
    canonical ones, so such data would come out in the wrong frame."""
    imported = [m.cad_id for m in database.models if m.source_to_canonical is not None]
    if imported:
        raise ValueError(f"the CAD database holds {len(imported)} models with a source frame (e.g. "
                         f"{imported[0]!r}, imported with cad build --from-shapenet); data generate renders "
                         "procedural or mesh-folder databases only")


def generate_split(root: str | Path, config: GenerateConfig, *, db_dir: str | Path | None = None,
                   database=None, workers: int = 1, overwrite: bool = False, progress: bool = True,
                   renderer: str = "auto") -> int:
    """Generate (or finish) one split under root. Returns the number of scenes rendered now.

    Either db_dir (loaded in every worker) or an in-memory database (workers must be 1).
    renderer: "pybullet", "numpy" or "auto" (render.make_renderer). Both backends give the same
    scenes, cameras and labels and images within a grey level or two, so it is not part of the
    split's identity and a split may be finished with the other one.
    """
    # ValueError before any file is written; v2 has its own renderer (render_materials.py)
    renderer = "materials" if config.data_version == 2 else resolve_renderer(renderer, config.shading)
    if database is None:
        database = CadDatabase.load(db_dir)
    _check_canonical_sources(database)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    check_info(root, config, overwrite)
    todo = [i for i in range(config.scenes) if overwrite or not _part_path(root, config.split, i).is_file()]
    bar = tqdm(total=config.scenes, initial=config.scenes - len(todo), unit="scene", disable=not progress,
               desc=f"{config.split} ({config.views_per_scene} views/scene)")
    if workers <= 1 or not todo:
        with make_renderer(renderer, shading=config.shading) as backend:
            for index in todo:
                _run_one(root, config, index, database, backend)
                bar.update(1)
    else:
        if db_dir is None:
            raise ValueError("generate_split: workers > 1 needs db_dir (each worker loads the database)")
        jobs = [(str(root), {**config.info()}, i) for i in todo]
        context = multiprocessing.get_context("spawn")
        init = (str(db_dir), 0.05, renderer, config.shading)
        with context.Pool(workers, initializer=_init_worker, initargs=init) as pool:
            for _ in pool.imap_unordered(_work, jobs):
                bar.update(1)
    bar.close()
    finalize_split(root, config, database=database, db_dir=db_dir)
    return len(todo)


def finalize_split(root: Path, config: GenerateConfig, *, database=None, db_dir=None) -> dict:
    """Merge the scene parts (in scene order) into scan2cad_instances_{split}.json + metadata."""
    records, scenes = [], {}
    for index in range(config.scenes):
        path = _part_path(root, config.split, index)
        if not path.is_file():
            raise ValueError(f"{path}: missing; rerun generate to finish the split")
        part = json.loads(path.read_text())
        records.extend((image, annos) for image, annos in part["records"])
        scenes[part["scene_id"]] = part["scene_alignments"]
    instances = fmt.merge_instances(records)
    fmt.atomic_write_json(fmt.instances_path(root, config.split), instances)
    if config.split == "val":
        fmt.atomic_write_json(root / "scan2cad_val_scenes.json", scenes)
    if database is None and db_dir is not None:
        database = CadDatabase.load(db_dir)
    if database is not None:
        fmt.write_metadata(root, _load_scenes(root), db_dir, list(database.models))
    return instances


def split_scene_alignments(root: Path, config: GenerateConfig) -> dict[str, list[dict]]:
    """{scene_id: [{t, q, s, catid_cad, id_cad, sym}]} (scene frame) of a finished split's parts."""
    scenes = {}
    for index in range(config.scenes):
        part = json.loads(_part_path(Path(root), config.split, index).read_text())
        scenes[part["scene_id"]] = part["scene_alignments"]
    return scenes


def _load_scenes(root: Path) -> dict:
    path = root / "scan2cad_val_scenes.json"
    return json.loads(path.read_text()) if path.is_file() else {}
