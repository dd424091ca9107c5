"""ROCA's evaluation rules (issue 29) and the reverse direction: our data as ROCA's code reads it.

The ROCA-side reading below is written from the format (ROCA's register_scan2cad / Mapper /
CADManager / Vid2CADEvaluator read these files this way), not through the project's reader.
"""
from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation

from cad_perception_ros.cad.sampling import surface_voxels
from cad_perception_ros.cli import main
from cad_perception_ros.evaluation.metrics import (
    ClassMetrics,
    EvaluationConfig,
    EvaluationResults,
    is_right_cad,
    rotation_error_deg,
)
from cad_perception_ros.evaluation.run import grid_iou_lookup
from cad_perception_ros.types import SCAN2CAD_CLASSES


def roca_inf_error(r_pred: np.ndarray, r_gt: np.ndarray) -> float:
    """ROCA's __SYM_ROTATE_UP_INF: min over 36 q_gt * q_y(2 pi i / 36) of 2 acos |<q, q'>| in degrees."""
    q = Rotation.from_matrix(r_pred).as_quat()
    errors = []
    for i in range(36):
        cand = (Rotation.from_matrix(r_gt) * Rotation.from_rotvec([0, i * 2 * np.pi / 36, 0])).as_quat()
        errors.append(np.degrees(2 * np.arccos(min(1.0, abs(float(q @ cand))))))
    return min(errors)


def test_up_symmetric_rotation_error_samples_36_rotations_as_roca():
    turn = Rotation.from_euler("y", 5, degrees=True).as_matrix()
    assert rotation_error_deg(turn, np.eye(3), "inf") == pytest.approx(5.0, abs=1e-6)  # exact minimum: 0
    assert rotation_error_deg(turn, np.eye(3), "inf", inf_steps=None) == pytest.approx(0.0, abs=1e-6)
    for seed in range(10):
        a, b = Rotation.random(2, random_state=seed).as_matrix()
        assert rotation_error_deg(a, b, "inf") == pytest.approx(roca_inf_error(a, b), abs=1e-4)
    assert EvaluationConfig().inf_symmetry_steps == 36


def test_benchmark_average_leaves_out_beds():
    def cls(name, n, ok):
        return ClassMetrics(name=name, num_gt=n, aligned=ok, retrieval_aligned=ok, ap50=float("nan"))
    classes = tuple(cls(n, 10, 0 if n == "bed" else (10 if n == "chair" else 5)) if n in ("bed", "chair", "sofa")
                    else cls(n, 0, 0) for n in SCAN2CAD_CLASSES)
    res = EvaluationResults(protocol="scene", classes=classes, ap50_instance=float("nan"), num_units=1)
    assert res.class_average("alignment_accuracy") == pytest.approx(50.0)  # (0 + 100 + 50) / 3
    assert res.benchmark_average("alignment_accuracy") == pytest.approx(75.0)  # (100 + 50) / 2
    assert res.instance_benchmark_average("alignment_accuracy") == pytest.approx(75.0)
    assert res.to_dict()["benchmark_average_8_classes"]["alignment_accuracy"] == pytest.approx(75.0)


def test_retrieval_is_exact_by_default_and_surface_iou_by_name():
    iou = lambda a, b: 0.9  # noqa: E731
    assert not is_right_cad("a", "b", iou, EvaluationConfig())
    assert is_right_cad("a", "b", iou, EvaluationConfig(retrieval_match="surface-iou"))
    assert not is_right_cad("a", "b", lambda a, b: 0.4, EvaluationConfig(retrieval_match="surface-iou"))
    with pytest.raises(ValueError, match="retrieval_match"):
        is_right_cad("a", "b", iou, EvaluationConfig(retrieval_match="solid"))


def test_surface_voxels_and_their_iou():
    solid = np.zeros((32, 32, 32), bool)
    solid[4:12, 4:12, 4:12] = True
    surface = surface_voxels(solid)
    assert surface.sum() == 8 ** 3 - 6 ** 3 and not surface[5:11, 5:11, 5:11].any()
    bigger = np.zeros_like(solid)
    bigger[4:13, 4:12, 4:12] = True  # one more layer in x

    class Db:
        grids = np.stack([solid, bigger])
        def __contains__(self, c): return c in ("a", "b")
        def index_of(self, c): return ("a", "b").index(c)

    solid_iou = (solid & bigger).sum() / (solid | bigger).sum()  # 0.89: the solid grids nearly agree
    surface_iou = (surface & surface_voxels(bigger)).sum() / (surface | surface_voxels(bigger)).sum()
    assert grid_iou_lookup(Db())("a", "b") == pytest.approx(surface_iou) and surface_iou < solid_iou - 0.1


def make_m(t, q, s) -> np.ndarray:
    """Scan2CAD make_M_from_tqs: T(t) R(q) S(s), q = (w, x, y, z)."""
    m = np.eye(4)
    m[:3, :3] = Rotation.from_quat([q[1], q[2], q[3], q[0]]).as_matrix() @ np.diag(s)
    m[:3, 3] = t
    return m


@pytest.mark.slow
def test_generated_data_reads_as_rocas_loader_and_evaluation_read_it(procedural_db_dir, tmp_path):
    root = tmp_path / "synth"
    assert main(["data", "generate", "--scenes", "2", "--seed", "4", "--views-per-scene", "2", "--size", "160x120",
                 "--split", "val", "--db", str(procedural_db_dir()), "--renderer", "numpy", "--out", str(root),
                 "--roca-pickles"]) == 0
    image_root, rendering_root = root / "images", root / "rendering"  # ROCA's image_root and rendering_root
    data = json.loads((root / "scan2cad_instances_val.json").read_text())
    classes = json.loads((root / "scan2cad_alignment_classes.json").read_text())
    assert classes == sorted(classes) and len(classes) == 9
    with open(root / "scan2cad_val_cads.pkl", "rb") as f:  # CADManager: keyed (catid_cad, id_cad) per category
        cads = {(m["catid_cad"], m["id_cad"]): m for m in pickle.load(f)}
    with open(root / "val_grids_32.pkl", "rb") as f:
        grids = pickle.load(f)
    full = json.loads((root / "full_annotations_val.json").read_text())
    scans = {scan["id_scan"]: scan for scan in full}
    by_image = {}
    for anno in data["annotations"]:
        by_image.setdefault(anno["image_id"], []).append(anno)
    assert data["images"] and len(by_image) == len(data["images"])
    for image in data["images"]:
        file_name = os.path.join(str(image_root), image["file_name"])  # load_coco_json joins image_root
        parts = ([os.sep] if file_name.startswith(os.sep) else []) + file_name.split(os.sep)  # _split_filename
        scene, frame = parts[-3], parts[-1].replace(".jpg", "")  # Mapper._get_names
        rgb = Image.open(file_name)
        assert (rgb.height, rgb.width) == (image["height"], image["width"]) and scene == image["scene_id"]
        k4 = np.loadtxt(os.path.join(*parts[:-2], "intrinsics_color.txt"))  # Mapper._load_intrinsics (val)
        pose = np.loadtxt(file_name.replace("color", "pose").replace(".jpg", ".txt"))  # Vid2CADEvaluator.process
        instance = np.asarray(Image.open(rendering_root / scene / "instance" / f"{frame}.png").convert("L"))
        depth = np.asarray(Image.open(rendering_root / scene / "depth" / f"{frame}.png"), np.float64) / 1000
        scan = scans[scene]
        to_scene = np.linalg.inv(make_m(scan["trs"]["translation"], scan["trs"]["rotation"], scan["trs"]["scale"]))
        world = [(m["catid_cad"], m["id_cad"], to_scene @ make_m(m["trs"]["translation"], m["trs"]["rotation"],
                                                                   m["trs"]["scale"])) for m in scan["aligned_models"]]
        for anno in by_image[image["id"]]:
            mask = instance == anno["alignment_id"]
            assert mask.sum() == anno["area"] and depth[mask].min() > 0
            np.testing.assert_allclose(np.asarray(anno["intrinsics"])[:3, :3], k4[:3, :3], atol=1e-6)
            key = (anno["model"]["catid_cad"], anno["model"]["id_cad"])
            assert key in cads and key in grids and classes[cads[key]["category_id"]] == classes[anno["category_id"]]
            assert int(key[0]) in (2747177, 2808440, 2818832, 2871439, 2933112, 3001627, 3211117, 4256520, 4379243)
            g = np.asarray(grids[key])
            assert g.ndim == 2 and g.shape[1] == 3 and g.min() >= 0 and g.max() < 32
            in_world = pose @ make_m(anno["t"], anno["q"], anno["s"])  # camera -> scan frame, as ROCA does
            match = [m for c, i, m in world if (c, i) == key and np.allclose(m[:3, 3], in_world[:3, 3], atol=1e-4)]
            assert len(match) == 1 and np.allclose(match[0], in_world, atol=1e-4)
