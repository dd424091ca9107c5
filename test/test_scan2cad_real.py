"""The real Scan2CAD / ScanNet data path (issue 29), on a fixture written by hand from the format.

The fixture below never calls the project's writer: it writes the files ROCA's renderer and
rendering_to_coco.py produce (COCO instances with t, q (w, x, y, z), s, intrinsics, alignment_id,
model {catid_cad, id_cad}; uint16 depth in mm and uint8 instance PNGs; no NOC images, as
ROCA's --render_nocs 0), ScanNet's color / pose / intrinsics_color.txt, Scan2CAD's
full_annotations.json (scan trs, aligned_models with trs) and ShapeNet's
synset/id/models/model_normalized.obj, in separate data / image / rendering / ShapeNet folders.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation

from cad_perception_ros.cad.database import CadDatabase
from cad_perception_ros.cad.identity import CadKeyIndex, model_key, pose_to_canonical
from cad_perception_ros.cli import main
from cad_perception_ros.data.dataset import SyntheticDataset
from cad_perception_ros.data.scan2cad_full import read_full_annotations, scene_objects
from cad_perception_ros.evaluation.scene import alignment_to_world
from cad_perception_ros.types import Alignment9D

H, W = 64, 96
K = np.array([[70.0, 0.0, 48.0], [0.0, 70.0, 32.0], [0.0, 0.0, 1.0]])
SCENE, EMPTY_SCENE = "scene0000_00", "scene0001_00"
TUB, BED, BIN = ("02808440", "1c1d8b7e2a9f4e2d8c3b5a6f7e8d9c0b"), ("02818832", "2b3c4d5e6f708192a3b4c5d6e7f80912"), \
    ("02747177", "3c4d5e6f708192a3b4c5d6e7f8091223")
# ShapeNet-frame boxes (not centred, longest side not 1: the database must normalise them)
BOXES = {TUB: ((-0.40, -0.12, -0.20), (0.44, 0.16, 0.22)), BED: ((-0.45, -0.20, -0.50), (0.45, 0.25, 0.50)),
         BIN: ((-0.10, -0.15, -0.10), (0.12, 0.15, 0.10))}
CLASSES = ["bathtub", "bed", "bin", "bookcase", "cabinet", "chair", "display", "sofa", "table"]


def ry(deg: float) -> np.ndarray:
    return Rotation.from_euler("y", deg, degrees=True).as_matrix()


def trs_matrix(t, r, s) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = np.asarray(r) @ np.diag(s)
    m[:3, 3] = t
    return m


def tqs(m: np.ndarray) -> tuple[list, list, list]:
    """t, q (w, x, y, z), s of a T R S matrix."""
    s = np.linalg.norm(m[:3, :3], axis=0)
    x, y, z, w = Rotation.from_matrix(m[:3, :3] / s).as_quat()
    return m[:3, 3].tolist(), [w, x, y, z], s.tolist()


# world (scan frame) poses of the objects; the bin stands behind both cameras (never seen)
WORLD = {TUB: trs_matrix((-0.35, 0.10, 2.2), ry(20), (1.2, 1.0, 1.1)),
         BED: trs_matrix((0.45, 0.0, 2.9), ry(-30), (1.0, 1.0, 1.0)),
         BIN: trs_matrix((0.0, 0.0, -3.0), ry(0), (1.0, 1.0, 1.0))}
CAMERAS = {"000000": np.eye(4), "000100": trs_matrix((0.1, 0.0, 0.05), ry(5), (1, 1, 1))}  # camera_to_world
SCAN_TRS = trs_matrix((1.0, 2.0, 0.5), Rotation.from_euler("z", 30, degrees=True).as_matrix(), (1, 1, 1))


def box_obj_text(lo, hi) -> str:
    corners = [(x, y, z) for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
    faces = [(1, 2, 4), (1, 4, 3), (5, 7, 8), (5, 8, 6), (1, 5, 6), (1, 6, 2), (3, 4, 8), (3, 8, 7),
             (1, 3, 7), (1, 7, 5), (2, 6, 8), (2, 8, 4)]
    return "".join(f"v {x} {y} {z}\n" for x, y, z in corners) + "".join(f"f {a} {b} {c}\n" for a, b, c in faces)


def ray_box_depth(pose: np.ndarray, lo, hi) -> np.ndarray:
    """(H, W) depth of the first hit of each pixel-centre ray with box [lo, hi] placed by pose (4, 4); inf if none."""
    v, u = np.mgrid[0:H, 0:W] + 0.5
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)  # z = 1
    inv = np.linalg.inv(pose)
    origin, direction = inv[:3, 3], rays @ inv[:3, :3].T  # model frame: origin + lam * direction
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (np.asarray(lo) - origin) / direction, (np.asarray(hi) - origin) / direction
    near, far = np.minimum(t1, t2).max(-1), np.maximum(t1, t2).min(-1)
    return np.where((far >= near) & (near > 0), near, np.inf)  # lam = depth, since ray z = 1


def write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def matrix_text(m: np.ndarray) -> str:
    return "\n".join(" ".join(f"{v:.9f}" for v in row) for row in m) + "\n"


def write_frame(images: Path, renderings: Path, frame: str, extra_label: bool) -> tuple[dict, list[dict]]:
    """One ScanNet frame + ROCA rendering; returns its COCO image record and annotations (no ids)."""
    pose = CAMERAS[frame]
    depth, instance = np.full((H, W), np.inf), np.zeros((H, W), np.uint8)
    cam = {key: np.linalg.inv(pose) @ WORLD[key] for key in (TUB, BED)}
    for alignment_id, key in enumerate((TUB, BED), start=1):
        hit = ray_box_depth(cam[key], *BOXES[key])
        closer = hit < depth
        depth[closer], instance[closer] = hit[closer], alignment_id
    if extra_label:
        instance[:6, :10] = 3  # a ScanNet (non-CAD) label
    rng = np.random.default_rng(int(frame))
    rgb = (np.array([[90, 90, 90], [200, 60, 40], [40, 160, 200], [120, 200, 90]])[instance]
           + rng.integers(-10, 10, (H, W, 3))).clip(0, 255).astype(np.uint8)
    scene_dir = images / "tasks" / "scannet_frames_25k" / SCENE
    (scene_dir / "color").mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(scene_dir / "color" / f"{frame}.jpg", quality=95)
    write_text(scene_dir / "pose" / f"{frame}.txt", matrix_text(pose))
    k4 = np.eye(4)
    k4[:3, :3] = K
    write_text(scene_dir / "intrinsics_color.txt", matrix_text(k4))
    depth_mm = np.where(np.isfinite(depth), np.round(depth * 1000), 0).astype(np.uint16)  # DEPTH_SCALE 1000
    write_png(renderings / SCENE / "depth" / f"{frame}.png", depth_mm)
    write_png(renderings / SCENE / "instance" / f"{frame}.png", instance)
    annotations = []
    for alignment_id, key in enumerate((TUB, BED), start=1):
        rows, cols = np.nonzero(instance == alignment_id)
        t, q, s = tqs(cam[key])
        annotations.append({
            "bbox": [float(cols.min()), float(rows.min()), float(cols.max() - cols.min() + 1),
                     float(rows.max() - rows.min() + 1)], "area": float(rows.size), "iscrowd": 0,
            "category_id": CLASSES.index("bathtub" if key == TUB else "bed"), "scene_id": SCENE, "is_cad": True,
            "intrinsics": K.tolist(), "duplicate": False, "alignment_id": alignment_id, "t": t, "q": q, "s": s,
            "sym": "__SYM_NONE",
            "model": {"scene_id": SCENE, "catid_cad": key[0], "id_cad": key[1], "idx": alignment_id}})
    if extra_label:
        annotations.append({"bbox": [0.0, 0.0, 10.0, 6.0], "area": 60.0, "iscrowd": 0, "category_id": 9,
                            "scene_id": SCENE, "is_cad": False, "intrinsics": K.tolist(), "duplicate": False,
                            "alignment_id": 3})
    image = {"height": H, "width": W, "scene_id": SCENE, "duplicate": False,
             "file_name": f"tasks/scannet_frames_25k/{SCENE}/color/{frame}.jpg"}
    return image, annotations


def coco(records, duplicate_first: bool) -> dict:
    images, annotations = [], []
    for image, annos in records + ([records[0]] if duplicate_first else []):
        dup = len(images) >= len(records)  # ROCA's class re-sampling copies (rendering_to_coco --cat_repeat)
        images.append({**image, "id": len(images), "duplicate": dup})
        annotations += [{**a, "id": len(annotations) + i, "image_id": images[-1]["id"], "duplicate": dup}
                        for i, a in enumerate(annos)]
    return {"categories": [{"name": n, "id": i} for i, n in enumerate(CLASSES)], "images": images,
            "annotations": annotations}


def full_annotations() -> list[dict]:
    def trs(m):
        t, q, s = tqs(m)
        return {"translation": t, "rotation": q, "scale": s}
    models = [{"catid_cad": key[0], "id_cad": key[1], "sym": "__SYM_NONE", "trs": trs(SCAN_TRS @ WORLD[key])}
              for key in (TUB, BED, BIN)]
    models.append({"catid_cad": "03337140", "id_cad": "ffff", "sym": "__SYM_NONE",  # a file cabinet: not one of 9
                   "trs": trs(SCAN_TRS @ WORLD[BIN])})
    empty = {"catid_cad": BED[0], "id_cad": BED[1], "sym": "__SYM_NONE", "trs": trs(WORLD[BED])}
    return [{"id_scan": SCENE, "trs": trs(SCAN_TRS), "aligned_models": models},
            {"id_scan": EMPTY_SCENE, "trs": trs(np.eye(4)), "aligned_models": [empty]}]


@pytest.fixture(scope="module")
def roca(tmp_path_factory):
    """Paths of the hand-written data: data dir, image root, rendering root, ShapeNet, database."""
    base = tmp_path_factory.mktemp("roca")
    data, images, renderings, shapenet = base / "Dataset", base / "Images", base / "Rendering", base / "ShapeNet"
    for key, (lo, hi) in BOXES.items():
        write_text(shapenet / key[0] / key[1] / "models" / "model_normalized.obj", box_obj_text(lo, hi))
    records = [write_frame(images, renderings, "000000", False), write_frame(images, renderings, "000100", True)]
    write_text(data / "scan2cad_instances_train.json", json.dumps(coco(records, True)))
    write_text(data / "scan2cad_instances_val.json", json.dumps(coco(records, False)))
    write_text(data / "scan2cad_alignment_classes.json", json.dumps(CLASSES))
    write_text(base / "full_annotations.json", json.dumps(full_annotations()))
    write_text(base / "scenes.txt", f"{SCENE}\n{EMPTY_SCENE}\n")
    assert main(["cad", "build", "--out", str(base / "db"), "--from-shapenet", str(shapenet),
                 "--annotations", str(base / "full_annotations.json")]) == 0
    return {"base": base, "data": data, "images": images, "renderings": renderings, "shapenet": shapenet,
            "db": CadDatabase.load(base / "db")}


def dataset(roca, split="train", **kwargs) -> SyntheticDataset:
    return SyntheticDataset(roca["data"], split, image_root=roca["images"], rendering_root=roca["renderings"], **kwargs)


def raw_annotations(roca, split="train") -> list[dict]:
    return json.loads((roca["data"] / f"scan2cad_instances_{split}.json").read_text())["annotations"]


def backprojected(depth: np.ndarray) -> np.ndarray:
    """(H, W, 3) camera points z K^-1 [u + 0.5, v + 0.5, 1] (pixel centres)."""
    v, u = np.mgrid[0:H, 0:W] + 0.5
    return np.stack([(u - K[0, 2]) / K[0, 0] * depth, (v - K[1, 2]) / K[1, 1] * depth, depth], -1)


def test_nocs_are_derived_from_depth_and_pose_without_noc_images(roca):
    depth = np.asarray(Image.open(roca["renderings"] / SCENE / "depth" / "000000.png"), np.float64) / 1000
    instance = np.asarray(Image.open(roca["renderings"] / SCENE / "instance" / "000000.png"))
    points = backprojected(depth)
    plain = dataset(roca, require_noc=True)[0]  # no database: the ShapeNet frame of the annotation
    canonical = dataset(roca, cad_database=roca["db"], require_noc=True)[0]
    for anno in raw_annotations(roca)[:2]:
        mask = (instance == anno["alignment_id"]) & (depth > 0)
        w, x, y, z = anno["q"]
        r = Rotation.from_quat([x, y, z, w]).as_matrix()
        expected = (points[mask] - anno["t"]) @ r / np.asarray(anno["s"])  # inverse transform, ShapeNet frame
        assert mask.sum() > 50 and np.abs(expected).max() > 0.1
        np.testing.assert_allclose(plain.noc[mask], expected, atol=1e-5)
        model = roca["db"][anno["model"]["id_cad"]]
        to_canon = np.asarray(model.source_to_canonical).reshape(4, 4)
        np.testing.assert_allclose(canonical.noc[mask], expected @ to_canon[:3, :3].T + to_canon[:3, 3], atol=1e-5)
        assert np.abs(canonical.noc[mask]).max() <= 0.5 + 2e-3  # the visible surface lies on the unit box
    assert np.all(canonical.noc[canonical.instance_map < 0] == 0)


def test_noc_images_in_the_source_frame_are_mapped_like_the_poses(roca, tmp_path):
    import shutil

    renderings = tmp_path / "Rendering"
    shutil.copytree(roca["renderings"], renderings)
    source = dataset(roca)[0]  # NOCs derived in the ShapeNet frame
    stored = np.round((np.where(source.instance_map[..., None] >= 0, source.noc, 0) + 1) * 10000).astype(np.uint16)
    noc_path = renderings / SCENE / "noc" / "000000.png"  # uint16 RGB PNG, channels B, G, R = x, y, z
    noc_path.parent.mkdir(parents=True)
    write_png16_rgb(noc_path, stored[..., ::-1])
    (renderings / SCENE / "depth" / "000000.png").unlink()  # the NOC image alone must give the targets
    read = SyntheticDataset(roca["data"], "train", image_root=roca["images"], rendering_root=renderings,
                            cad_database=roca["db"], require_noc=True)[0]
    derived = dataset(roca, cad_database=roca["db"])[0]
    mask = derived.instance_map >= 0
    np.testing.assert_allclose(read.noc[mask], derived.noc[mask], atol=2e-4)  # NOC_SCALE 10000 quantisation


def write_png16_rgb(path: Path, rgb16: np.ndarray) -> None:
    """A 16-bit RGB PNG written by hand (zlib + chunks): PIL cannot write 16-bit colour."""
    import struct
    import zlib

    height, width, _ = rgb16.shape
    raw = b"".join(b"\x00" + rgb16[row].astype(">u2").tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))


def test_data_generate_refuses_a_database_with_source_frames(roca, tmp_path):
    from cad_perception_ros.data.generate import GenerateConfig, generate_split

    with pytest.raises(ValueError, match="source frame"):
        generate_split(tmp_path / "out", GenerateConfig(split="val", scenes=1, views_per_scene=1), database=roca["db"],
                       progress=False, renderer="numpy")
    assert not (tmp_path / "out").exists()


def test_a_split_with_neither_noc_images_nor_depth_is_refused(roca, tmp_path):
    with pytest.raises(ValueError, match="neither NOC images nor depth"):
        SyntheticDataset(roca["data"], "train", image_root=roca["images"], rendering_root=tmp_path, require_noc=True)
    assert len(SyntheticDataset(roca["data"], "val", image_root=roca["images"], rendering_root=tmp_path)) == 2


def test_a_converted_pose_puts_the_canonical_mesh_where_the_original_pose_put_the_original(roca):
    sample = dataset(roca, cad_database=roca["db"])[0]
    for anno, obj in zip(raw_annotations(roca)[:2], sample.objects):
        lines = (roca["shapenet"] / anno["model"]["catid_cad"] / anno["model"]["id_cad"] / "models" /
                 "model_normalized.obj").read_text().splitlines()
        original = np.array([[float(v) for v in ln.split()[1:]] for ln in lines if ln.startswith("v ")])
        w, x, y, z = anno["q"]
        placed = original @ (Rotation.from_quat([x, y, z, w]).as_matrix() * anno["s"]).T + anno["t"]
        canonical = np.asarray(roca["db"].mesh(obj.cad_id).vertices, np.float64)  # as stored in the database
        a = obj.alignment
        moved = canonical @ (a.rotation * a.scale).T + a.translation
        np.testing.assert_allclose(np.unique(moved.round(5), axis=0), np.unique(placed.round(5), axis=0), atol=2e-5)
        assert abs(np.ptp(canonical, axis=0).max() - 1) < 1e-5  # the database's frame really is another one


def test_pose_conversion_with_an_up_axis_turn_and_anisotropic_scale():
    rng = np.random.default_rng(0)
    up = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])  # z-up -> y-up turn: a signed permutation
    matrix = np.eye(4)
    matrix[:3, :3], matrix[:3, 3] = up / 0.7, [0.1, -0.2, 0.05]
    pose = Alignment9D(Rotation.random(random_state=1).as_matrix(), rng.normal(size=3), np.array([1.3, 0.6, 2.0]))
    src = rng.normal(size=(20, 3))
    canon = src @ matrix[:3, :3].T + matrix[:3, 3]
    new = pose_to_canonical(pose, matrix)
    np.testing.assert_allclose(canon @ (new.rotation * new.scale).T + new.translation,
                               src @ (pose.rotation * pose.scale).T + pose.translation, atol=1e-9)
    assert np.linalg.det(new.rotation) == pytest.approx(1.0) and np.all(new.scale > 0)


def test_shapenet_folder_ids_are_scan2cad_keys(roca):
    db = roca["db"]
    assert sorted(model_key(m) for m in db) == sorted([TUB, BED, BIN])
    assert {m.cad_id for m in db} == {TUB[1], BED[1], BIN[1]}
    assert db[TUB[1]].class_name == "bathtub" and db[BIN[1]].class_name == "bin"
    keys = CadKeyIndex(db)
    assert keys.get(int(TUB[0]), TUB[1]).cad_id == TUB[1]  # ROCA compares int(catid_cad): no leading zero
    assert keys.get(BED[0], TUB[1]) is None  # the key is the pair, not id_cad alone
    objects = dataset(roca, cad_database=db).objects_of(0)
    assert [o.cad_id for o in objects] == [TUB[1], BED[1]]


def test_non_cad_annotations_are_skipped_and_duplicates_are_re_samples(roca):
    train = dataset(roca, include_duplicates=True)
    assert len(train) == 3 and len(dataset(roca)) == 2
    np.testing.assert_array_equal(train[2].image, train[0].image)  # the re-sample is the same view
    view = train[1]  # has the non-CAD label (is_cad false, no t / q / s, category_id 9)
    assert len(view.objects) == 2 and set(np.unique(view.instance_map)) == {-1, 0, 1}


def test_full_annotations_give_every_object_of_a_scene_in_the_scan_frame(roca):
    db = roca["db"]
    gt = scene_objects(read_full_annotations(roca["base"] / "full_annotations.json"), keys=CadKeyIndex(db),
                       scenes=[SCENE, EMPTY_SCENE, "scene0002_00"])
    assert [len(gt[s]) for s in (SCENE, EMPTY_SCENE, "scene0002_00")] == [3, 1, 0]  # file cabinet left out
    frame = dataset(roca, "val", cad_database=db)[1]
    for obj in frame.objects:
        world = alignment_to_world(obj.alignment, frame.camera_to_world)
        match = next(o for o in gt[SCENE] if o.cad_id == obj.cad_id)
        np.testing.assert_allclose(match.alignment.translation, world.translation, atol=1e-5)
        np.testing.assert_allclose(match.alignment.rotation, world.rotation, atol=1e-5)
        np.testing.assert_allclose(match.alignment.scale, world.scale, atol=1e-5)


def test_trains_with_derived_nocs_and_evaluates_per_image_and_per_scene(roca, tmp_path, capsys):
    from cad_perception_ros.model.roca.targets import CadTable, collate

    config = Path(__file__).resolve().parents[1] / "config" / "roca_tiny.yaml"
    roots = ["--data", str(roca["data"]), "--image-root", str(roca["images"]),
             "--rendering-root", str(roca["renderings"])]
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), *roots, "--cad-db", str(roca["db"].root), "--out", str(run),
                 "--max-steps", "2", "--no-progress"]) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(np.isfinite(r["total"]) for r in rows)
    train = dataset(roca, include_duplicates=True, cad_database=roca["db"], require_noc=True)
    batch = collate([train[0], train[1]], num_classes=3, input_size=(H, W), cads=CadTable.from_database(roca["db"]))
    noc = batch["noc"].permute(0, 2, 3, 1).numpy()  # (B, H, W, 3)
    assert np.abs(noc[0][train[0].instance_map >= 0]).max() > 0.1
    np.testing.assert_allclose(noc[0], train[0].noc, atol=1e-6)

    report = tmp_path / "eval.json"
    assert main(["evaluate", "--model-dir", str(run / "model"), *roots, "--split", "val",
                 "--full-annotations", str(roca["base"] / "full_annotations.json"),
                 "--scene-list", str(roca["base"] / "scenes.txt"), "--json", str(report)]) == 0
    out = json.loads(report.read_text())["protocols"]
    image, scene = out["image"], out["scene"]
    assert image["num_units"] == 2 and scene["num_units"] == 2  # the scene without frames counts
    assert "full annotations" in scene["ground_truth"] and "2 scenes" in scene["ground_truth"]
    assert {c["name"]: c["num_gt"] for c in scene["classes"]} == {"bathtub": 1, "bed": 2, "bin": 1}
    assert {c["name"]: c["num_gt"] for c in image["classes"]} == {"bathtub": 2, "bed": 2, "bin": 0}
    assert scene["config"]["retrieval_match"] == "exact" and "benchmark_average_8_classes" in scene
    assert "ground truth: Scan2CAD full annotations" in capsys.readouterr().out


def test_annotations_naming_cads_outside_the_database_are_refused_for_training(roca, procedural_db_dir):
    other = CadDatabase.load(procedural_db_dir())
    with pytest.raises(ValueError, match="2 CAD models of the annotations are not in the CAD database"):
        dataset(roca, cad_database=other)
    lenient = dataset(roca, "val", cad_database=other, strict_cads=False)  # evaluation: read unconverted
    assert lenient.unresolved_keys() == sorted([TUB, BED]) and lenient.objects_of(0)[0].cad_id == TUB[1]


def test_unpadded_frame_names_are_found_as_rocas_mapper_finds_them(roca, tmp_path):
    import shutil

    images = tmp_path / "Images"
    shutil.copytree(roca["images"], images)
    scene_dir = images / "tasks" / "scannet_frames_25k" / SCENE
    (scene_dir / "color" / "000100.jpg").rename(scene_dir / "color" / "100.jpg")  # ScanNet's full-video names
    (scene_dir / "pose" / "000100.txt").rename(scene_dir / "pose" / "100.txt")
    view = SyntheticDataset(roca["data"], "val", image_root=images, rendering_root=roca["renderings"])[1]
    np.testing.assert_allclose(view.camera_to_world, CAMERAS["000100"], atol=1e-8)
    assert view.image_id == f"{SCENE}/000100" and (view.instance_map >= 0).sum() > 50  # padded renderings
