"""The Scan2CAD image format that ROCA (cangumeli/ROCA) trains on: writer and reader.

Directory layout (one data root; ROCA's ``data_dir``, ``image_root`` and ``rendering_root``)::

    scan2cad_instances_{split}.json     COCO instances (below)
    scan2cad_alignment_classes.json     ["bathtub", "bed", "bin", "bookcase", ..., "table"]
    scan2cad_val_scenes.json            {scene_id: [{t, q, s, catid_cad, id_cad, sym}]} (scene frame)
    scan2cad_cad_pool.json              ours: CAD database path + models (safe, replaces the .pkl)
    scan2cad_{split}_cads.pkl, {split}_grids_32.pkl   optional, ROCA's pickles (write_roca_pickles)
    full_annotations_{split}.json       optional, Scan2CAD full annotations (data/scan2cad_full.py)
    images/tasks/scannet_frames_25k/{scene}/color/{frame}.jpg       RGB, JPEG quality 95
    images/tasks/scannet_frames_25k/{scene}/intrinsics_color.txt    4x4 K (ROCA's val loader)
    images/tasks/scannet_frames_25k/{scene}/pose/{frame}.txt        4x4 camera_to_world (ScanNet)
    rendering/{scene}/depth/{frame}.png      uint16 grey, depth [m] * DEPTH_SCALE (1000), 0 = unknown
    rendering/{scene}/instance/{frame}.png   uint8 grey, alignment_id (1..N), 0 = background
    rendering/{scene}/noc/{frame}.png        optional (ROCA's renderer writes none by default),
                                             uint16 RGB, round((noc + NOC_OFFSET) * NOC_SCALE),
                                             channels stored B, G, R = x, y, z as OpenCV writes them

COCO entries: images {id, file_name (relative to images/), height, width, scene_id, duplicate};
annotations {id, image_id, bbox [x, y, w, h], area, segmentation (COCO RLE), iscrowd, category_id
(index in the alignment classes = our class_id), scene_id, is_cad, intrinsics (3x3), alignment_id,
t, q, s, sym, model {scene_id, catid_cad, id_cad, idx}, duplicate}. ROCA reads the extra keys
t, q, s, intrinsics, alignment_id, model, id. Read as ROCA writes them: non-CAD annotations
(is_cad false, no t / q / s; ScanNet labels) are no alignment ground truth and are skipped;
duplicate records are ROCA's re-samples of images with rare classes (data/dataset.py).

Pose convention. ROCA's t, q, s decompose the 4x4 model->camera matrix M = T(t) R(q) S(s)
(Scan2CAD's make_M_from_tqs/decompose_mat4; q = (w, x, y, z), camera = ScanNet/OpenCV optical
frame), i.e. x_cam = R(q) diag(s) x_model + t: exactly our ``Alignment9D`` when x_model is our
canonical frame. Our CAD pool (scan2cad_cad_pool.json, or the meshes written into the .pkl) holds
our canonical meshes, so the mapping is the identity: ``roca_pose_from_alignment`` writes
t = translation, q = quaternion(rotation), s = scale, and ``alignment_from_roca_pose`` inverts it.
Real Scan2CAD data refers to ShapeNet ``model_normalized`` meshes as they are (another frame and
unit than our canonical one): read with ``keys`` (a CadKeyIndex of a database built with
``cad build --from-shapenet``) each (catid_cad, id_cad) resolves to its database model and each
pose is converted with the transform that normalised that mesh (cad/identity.py); without keys
poses are read unchanged. NOC targets are canonical coordinates of the database's frame: read
from the NOC image, else derived from depth and the (converted) pose.
"""
from __future__ import annotations

import io
import json
import os
import pickle
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.spatial.transform import Rotation

from cad_perception_ros.cad.identity import (
    ROCA_SYMMETRY,
    SHAPENET_SYNSETS,
    SYMMETRY_FROM_ROCA,
    CadKeyIndex,
    model_key,
)
from cad_perception_ros.cad.sampling import surface_voxels
from cad_perception_ros.data.coco_rle import decode_mask, encode_mask, polygons_to_mask
from cad_perception_ros.data.pngio import read_png16, write_png16
from cad_perception_ros.data.noc_targets import nocs_from_depth, nocs_to_canonical
from cad_perception_ros.data.sample import ObjectAnnotation, SceneSample
from cad_perception_ros.jsonio import read_json_object
from cad_perception_ros.types import SCAN2CAD_CLASSES, SYMMETRIES, Alignment9D

DEPTH_SCALE = 1000
NOC_SCALE = 10000
NOC_OFFSET = 1.0
FRAMES_DIR = "tasks/scannet_frames_25k"
IMAGE_ROOT = "images"
RENDERING_ROOT = "rendering"
# ROCA's names (ShapeNet 'bookcase' is our 'bookshelf'), in our class-id order == sorted order.
ROCA_CLASS_NAMES = ("bathtub", "bed", "bin", "bookcase", "cabinet", "chair", "display", "sofa", "table")


def roca_pose_from_alignment(alignment: Alignment9D) -> dict:
    """{'t': [3], 'q': [w, x, y, z], 's': [3]} of an Alignment9D (the ONE frame conversion)."""
    x, y, z, w = Rotation.from_matrix(alignment.rotation).as_quat()
    return {"t": alignment.translation.tolist(), "q": [float(w), float(x), float(y), float(z)],
            "s": alignment.scale.tolist()}


def alignment_from_roca_pose(t, q, s) -> Alignment9D:
    """Inverse of roca_pose_from_alignment. q = (w, x, y, z), need not be normalised."""
    q = np.asarray(q, dtype=np.float64)
    if q.shape != (4,) or not np.isfinite(q).all() or np.linalg.norm(q) < 1e-9:
        raise ValueError(f"bad quaternion q={q.tolist()}")
    rotation = Rotation.from_quat([q[1], q[2], q[3], q[0]]).as_matrix()
    return Alignment9D(rotation=rotation, translation=np.asarray(t, float), scale=np.asarray(s, float))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file and os.replace, so a killed run leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, json.dumps(obj).encode("utf-8"))


def _png_bytes(array: np.ndarray) -> bytes:

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _jpeg_bytes(image: np.ndarray, quality: int = 95) -> bytes:

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality, subsampling=0)
    return buffer.getvalue()


def encode_noc(noc: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint16 file channels (x, y, z reversed as OpenCV writes BGR) of NOCs (H, W, 3)."""
    values = np.where(mask[..., None], noc, 0.0)
    values = np.round((values + NOC_OFFSET) * NOC_SCALE).clip(0, 65535).astype(np.uint16)
    return values[..., ::-1].copy()


def decode_noc(stored: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 NOCs (x, y, z) of a stored NOC image (file channel order)."""
    if stored.ndim != 3 or stored.shape[2] < 3:
        raise ValueError(f"NOC image must have 3 channels, got shape {stored.shape}")
    return (stored[..., 2::-1].astype(np.float32) / NOC_SCALE - NOC_OFFSET).astype(np.float32)


def write_view(root: str | Path, sample: SceneSample, frame: str) -> tuple[dict, list[dict]]:
    """Write one view's image files; return its COCO image record and annotations (ids unset).

    root: the data root. sample.scene_id names the scene folder. frame: file stem ("000012").
    """
    root = Path(root)
    if len(sample.objects) > 255:
        raise ValueError("at most 255 objects per view fit in the uint8 instance image")
    scene = sample.scene_id
    image_dir = root / IMAGE_ROOT / FRAMES_DIR / scene
    render_dir = root / RENDERING_ROOT / scene
    atomic_write_bytes(image_dir / "color" / f"{frame}.jpg", _jpeg_bytes(sample.image))
    pose_text = "\n".join(" ".join(f"{v:.9g}" for v in row) for row in sample.camera_to_world)
    atomic_write_bytes(image_dir / "pose" / f"{frame}.txt", pose_text.encode())
    k4 = np.eye(4)
    k4[:3, :3] = sample.K
    atomic_write_bytes(image_dir / "intrinsics_color.txt",
                       "\n".join(" ".join(f"{v:.9g}" for v in row) for row in k4).encode())
    depth = np.round(sample.depth.astype(np.float64) * DEPTH_SCALE).clip(0, 65535).astype(np.uint16)
    atomic_write_bytes(render_dir / "depth" / f"{frame}.png", _png_bytes(depth))
    instance = (sample.instance_map + 1).astype(np.uint8)  # 0 background, alignment_id = index + 1
    atomic_write_bytes(render_dir / "instance" / f"{frame}.png", _png_bytes(instance))
    noc_path = render_dir / "noc" / f"{frame}.png"
    noc_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = noc_path.with_name(f".{noc_path.name}.tmp{os.getpid()}")
    write_png16(tmp, encode_noc(sample.noc, sample.instance_map >= 0), level=1)
    os.replace(tmp, noc_path)
    height, width = sample.size
    image = {"height": height, "width": width, "scene_id": scene, "duplicate": False,
             "file_name": f"{FRAMES_DIR}/{scene}/color/{frame}.jpg"}
    annotations = [_annotation(sample, index, obj) for index, obj in enumerate(sample.objects)]
    return image, annotations


def _annotation(sample: SceneSample, index: int, obj: ObjectAnnotation) -> dict:
    mask = sample.instance_map == index
    rows, cols = np.nonzero(mask)
    bbox = [float(cols.min()), float(rows.min()), float(cols.max() + 1 - cols.min()),
            float(rows.max() + 1 - rows.min())] if rows.size else [0.0, 0.0, 0.0, 0.0]
    return {"bbox": bbox, "area": float(mask.sum()), "segmentation": encode_mask(mask), "iscrowd": 0,
            "category_id": int(obj.class_id), "scene_id": sample.scene_id, "is_cad": True,
            "intrinsics": sample.K.tolist(), "alignment_id": index + 1, **roca_pose_from_alignment(obj.alignment),
            "sym": ROCA_SYMMETRY.get(obj.symmetry, "__SYM_NONE"), "duplicate": False,
            "model": {"scene_id": sample.scene_id, "catid_cad": SHAPENET_SYNSETS[obj.class_id],
                      "id_cad": obj.cad_id, "idx": index + 1}}


def merge_instances(records: list[tuple[dict, list[dict]]]) -> dict:
    """COCO instances json of (image, annotations) pairs in order: sequential ids from 0."""
    images, annotations = [], []
    for image, annos in records:
        image_id = len(images)
        images.append({**image, "id": image_id})
        for anno in annos:
            annotations.append({**anno, "id": len(annotations), "image_id": image_id})
    categories = [{"name": name, "id": i} for i, name in enumerate(ROCA_CLASS_NAMES)]
    return {"categories": categories, "images": images, "annotations": annotations}


def write_metadata(root: str | Path, scene_alignments: dict, database_dir: str | Path | None,
                   models: list) -> None:
    """Write the class list, the val scene -> CAD alignments file and our safe CAD pool json."""
    root = Path(root)
    atomic_write_json(root / "scan2cad_alignment_classes.json", list(ROCA_CLASS_NAMES))
    atomic_write_json(root / "scan2cad_val_scenes.json", scene_alignments)
    db_path = None
    if database_dir is not None:
        db_path = os.path.relpath(Path(database_dir).resolve(), root.resolve())
    pool = {"format": "cad_perception_ros.cad_pool/1", "cad_database": db_path,
            "models": [{"catid_cad": model_key(m)[0], "id_cad": model_key(m)[1],
                        "category_id": int(m.class_id), "sym": ROCA_SYMMETRY.get(m.symmetry, "__SYM_NONE")}
                       for m in models]}
    atomic_write_json(root / "scan2cad_cad_pool.json", pool)


def write_roca_pickles(root: str | Path, split: str, database) -> list[Path]:
    """ROCA's CAD pool pickles, for running ROCA's own code on our data (never read by us).

    scan2cad_{split}_cads.pkl: [{verts, faces, catid_cad, id_cad, sym, category_id}];
    {split}_grids_32.pkl: {(catid_cad, id_cad): (K, 3) int64 indices of the SURFACE voxels} (ROCA's
    renderer/voxelize_cads.py voxelises the surface, fill=False). Keys as cad/identity.model_key.
    """
    root = Path(root)
    cads, grids = [], {}
    grid_array = getattr(database, "grids", None)
    for index, model in enumerate(database.models):
        mesh = database.mesh(model.cad_id)
        key = model_key(model)
        cads.append({"verts": np.asarray(mesh.vertices, np.float32), "faces": np.asarray(mesh.faces, np.int64),
                     "catid_cad": key[0], "id_cad": key[1], "sym": ROCA_SYMMETRY.get(model.symmetry, "__SYM_NONE"),
                     "category_id": int(model.class_id)})
        if grid_array is not None:
            grids[key] = np.argwhere(surface_voxels(np.asarray(grid_array[index]))).astype(np.int64)
    paths = [root / f"scan2cad_{split}_cads.pkl"]
    atomic_write_bytes(paths[0], pickle.dumps(cads))
    if grids:
        paths.append(root / f"{split}_grids_32.pkl")
        atomic_write_bytes(paths[1], pickle.dumps(grids))
    return paths


def read_roca_cads(path: str | Path, *, allow_pickle: bool = False) -> list[dict]:
    """Read ROCA's scan2cad_{split}_cads.pkl. Unpickling runs code from the file: the caller must
    pass allow_pickle=True, and only for a file it trusts."""
    if not allow_pickle:
        raise ValueError(f"{path}: a Python pickle; reading it executes code. Pass allow_pickle=True "
                         "only for a file you trust.")
    with open(path, "rb") as handle:
        return pickle.load(handle)


def instances_path(root: str | Path, split: str) -> Path:
    """root/scan2cad_instances_{split}.json: the file that makes a split (what the reader reads)."""
    return Path(root) / f"scan2cad_instances_{split}.json"


def load_instances(root: str | Path, split: str) -> dict:
    """The COCO instances json of a split, checked for the keys the reader needs."""
    path = instances_path(root, split)
    data = read_json_object(path, what="Scan2CAD instances file")
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{path}: missing list '{key}'")
    return data


def is_cad_annotation(anno: dict) -> bool:
    """True for a Scan2CAD CAD alignment; False for ROCA's non-CAD (ScanNet label) annotations,
    which have is_cad false and no t / q / s, and are no alignment ground truth."""
    return isinstance(anno, dict) and anno.get("is_cad", True) is not False and all(k in anno for k in "tqs")


def annotation_key(anno: dict) -> tuple[str, str]:
    """(catid_cad, id_cad) of a CAD annotation's model (catid defaults to its class's synset)."""
    model = anno.get("model") if isinstance(anno.get("model"), dict) else {}
    category = anno.get("category_id", -1)
    category = category if isinstance(category, int) and not isinstance(category, bool) else -1
    default = SHAPENET_SYNSETS[category] if 0 <= category < len(SHAPENET_SYNSETS) else ""
    return str(model.get("catid_cad", default)), str(model.get("id_cad", ""))


def _object_from_annotation(anno: dict, where: str, keys: CadKeyIndex | None, strict: bool) -> ObjectAnnotation:
    if not isinstance(anno, dict):
        raise ValueError(f"{where}: annotation must be an object, got {type(anno).__name__}")
    try:
        alignment = alignment_from_roca_pose(anno["t"], anno["q"], anno["s"])
        x, y, w, h = (float(v) for v in anno["bbox"])
        class_id = int(anno["category_id"])
        model = anno.get("model", {})
        model = model if isinstance(model, dict) else {}
        cad_id = str(model.get("id_cad", ""))
        visible = int(anno.get("area", 0))
        symmetry = SYMMETRY_FROM_ROCA.get(anno.get("sym", "__SYM_NONE"), "none")
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"{where}: bad annotation {anno.get('id')!r}: {exc!r}") from None
    if not 0 <= class_id < len(SCAN2CAD_CLASSES):
        raise ValueError(f"{where}: annotation {anno.get('id')!r}: category_id {class_id} out of range")
    if keys is not None:
        catid = annotation_key(anno)[0]
        resolved = keys.resolve(catid, cad_id, alignment)
        if resolved is None and strict:
            raise ValueError(f"{where}: annotation {anno.get('id')!r}: CAD ({catid}, {cad_id}) is not in the "
                             "CAD database (build it from the same ShapeNet models: cad build --from-shapenet)")
        cad_id, alignment = resolved or (cad_id, alignment)
    return ObjectAnnotation(class_id=class_id, cad_id=cad_id,
                            alignment=alignment, box_xyxy=np.array([x, y, x + w, y + h]),
                            symmetry=symmetry if symmetry in SYMMETRIES else "none",
                            visible_pixels=visible)


def view_objects(image: dict, annotations: list[dict], keys: CadKeyIndex | None = None,
                 strict: bool = True) -> list[ObjectAnnotation]:
    """The ObjectAnnotations of one COCO image record's CAD annotations (no file I/O).

    keys: resolve each (catid_cad, id_cad) to the CAD database's model and convert its pose into
    that model's canonical frame (cad/identity.py); without it cad_id = id_cad, poses unchanged.
    A key not in the database is a ValueError when strict, else read as without keys."""
    where = str(image.get("file_name", ""))
    return [_object_from_annotation(a, where, keys, strict) for a in annotations if is_cad_annotation(a)]


def _inside(base: Path, relative: str | Path, what: str) -> Path:
    """base / relative, refusing absolute paths and paths that resolve outside base (ValueError)."""
    relative = Path(relative)
    path = (base / relative).resolve()
    if relative.is_absolute() or not path.is_relative_to(base.resolve()):
        raise ValueError(f"{what} {str(relative)!r} points outside {base}")
    return path


def _existing_frame_name(image_root: Path, file_name: Path) -> Path:
    """file_name, or its unpadded twin ("000100.jpg" -> "100.jpg") when only that exists: ROCA's
    mapper falls back so for ScanNet's full-video ("400k") val frames; the renderings keep the
    padded name, the pose file takes the image's."""
    if not (image_root / file_name).is_file() and file_name.stem.isdigit():
        twin = file_name.with_name(f"{int(file_name.stem)}{file_name.suffix}")
        if (image_root / twin).is_file():
            return twin
    return file_name


def rendering_paths(rendering_root: Path, image: dict) -> dict[str, Path]:
    """{'depth', 'instance', 'noc'}: the rendering files of a COCO image record (ROCA's mapper:
    scene = the file name's third part from the end, frame = its stem)."""
    file_name = Path(image["file_name"])
    scene, frame = str(image.get("scene_id") or file_name.parts[-3]), file_name.stem
    render_dir = _inside(rendering_root, scene, "scene_id")
    return {kind: render_dir / kind / f"{frame}.png" for kind in ("depth", "instance", "noc")}


def read_view(root: str | Path, image: dict, annotations: list[dict], image_root: str | Path | None = None,
              rendering_root: str | Path | None = None, *, keys: CadKeyIndex | None = None,
              strict: bool = True, require_noc: bool = False) -> SceneSample:
    """SceneSample of one COCO image record and its annotations (non-CAD ones are left out).

    NOC targets: the NOC image when there is one (mapped like the poses into the database's frame
    when keys are given); else derived from the rendered depth and each
    object's pose (data/noc_targets.py, as ROCA does; its renderer writes no NOC images by
    default); else zeros, or a ValueError naming the missing files when require_noc (training).
    Instance masks come from the instance image if present, else from the segmentation.
    keys, strict: see view_objects."""
    root = Path(root)
    image_root = Path(image_root) if image_root is not None else root / IMAGE_ROOT
    rendering_root = Path(rendering_root) if rendering_root is not None else root / RENDERING_ROOT
    file_name = Path(image["file_name"])
    scene, frame = str(image.get("scene_id") or file_name.parts[-3]), file_name.stem
    file_name = _existing_frame_name(image_root, file_name)
    rgb = np.asarray(Image.open(_inside(image_root, file_name, "image file_name")).convert("RGB"))
    height, width = rgb.shape[:2]
    annotations = [a for a in annotations if is_cad_annotation(a)]
    objects = view_objects(image, annotations, keys, strict)
    paths = rendering_paths(rendering_root, image)
    depth = (np.asarray(Image.open(paths["depth"]), dtype=np.float32) / DEPTH_SCALE if paths["depth"].is_file()
             else np.zeros((height, width), np.float32))
    instance_map = np.full((height, width), -1, dtype=np.int32)
    stored_ids = np.asarray(Image.open(paths["instance"])) if paths["instance"].is_file() else None
    for index, anno in enumerate(annotations):
        if stored_ids is not None:
            mask = stored_ids == int(anno.get("alignment_id", index + 1))
        elif isinstance(anno.get("segmentation"), dict):
            mask = decode_mask(anno["segmentation"])
        else:
            mask = polygons_to_mask(anno.get("segmentation") or [], height, width)
        instance_map[mask] = index
    if annotations and "intrinsics" in annotations[0]:
        K = np.asarray(annotations[0]["intrinsics"], dtype=np.float64)[:3, :3]
    else:
        K = np.loadtxt(image_root / file_name.parent.parent / "intrinsics_color.txt")[:3, :3]
    if paths["noc"].is_file():  # in the frame of the annotations' poses: the source meshes'
        noc = decode_noc(read_png16(paths["noc"]))
        if keys is not None:
            noc = nocs_to_canonical(noc, instance_map, [keys.source_transform(*annotation_key(a)) for a in annotations])
    elif paths["depth"].is_file():
        noc = nocs_from_depth(depth, K, instance_map, [o.alignment for o in objects])
    elif require_noc and objects:
        raise ValueError(f"{file_name}: no NOC targets: neither {paths['noc']} nor {paths['depth']} exists "
                         "(render depth with ROCA's renderer, or NOC images)")
    else:
        noc = np.zeros((height, width, 3), np.float32)
    noc[instance_map < 0] = 0.0
    pose_path = image_root / file_name.parent.parent / "pose" / f"{file_name.stem}.txt"
    camera_to_world = np.loadtxt(pose_path) if pose_path.is_file() else np.eye(4)
    return SceneSample(image=rgb, depth=depth, K=K, instance_map=instance_map, noc=noc, objects=objects,
                       image_id=f"{scene}/{frame}", scene_id=scene, camera_to_world=camera_to_world)
