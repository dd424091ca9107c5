"""Scan2CAD image format: RLE, 16-bit PNG, pose conversion, write -> read round trip."""
import json

import numpy as np
import pytest
from PIL import Image

from cad_perception_ros.data import scan2cad_format as fmt  # noqa: E402
from cad_perception_ros.data.coco_rle import (  # noqa: E402
    counts_to_string,
    decode_mask,
    encode_mask,
    mask_to_counts,
    string_to_counts,
)
from cad_perception_ros.data.pngio import read_png16, write_png16  # noqa: E402
from cad_perception_ros.data.sample import ObjectAnnotation, SceneSample  # noqa: E402
from cad_perception_ros.types import Alignment9D  # noqa: E402


def test_rle_known_values_and_round_trip():
    mask = np.zeros((3, 4), dtype=bool)
    mask[1:, 1] = True  # column-major: 3 zeros (col 0), 1 zero, 2 ones, 6 zeros
    assert mask_to_counts(mask) == [4, 2, 6]
    # pycocotools' encoding of small counts: chr(48 + c)
    assert counts_to_string([4, 2, 6]) == "426"
    assert string_to_counts(counts_to_string([0, 5, 100, 3000, 7, 70000])) == [0, 5, 100, 3000, 7, 70000]
    rng = np.random.default_rng(0)
    for _ in range(20):
        m = rng.random((17, 23)) < rng.uniform(0.05, 0.95)
        rle = encode_mask(m)
        assert rle["size"] == [17, 23]
        assert np.array_equal(decode_mask(rle), m)
    with pytest.raises(ValueError):
        decode_mask({"size": [2, 2], "counts": [1, 1]})


def test_png16_round_trip_and_foreign_filters(tmp_path):
    rng = np.random.default_rng(1)
    for shape in [(5, 7), (6, 4, 3)]:
        array = rng.integers(0, 65536, size=shape, dtype=np.uint16)
        write_png16(tmp_path / "a.png", array)
        assert np.array_equal(read_png16(tmp_path / "a.png"), array)
    # 16-bit grey written by Pillow and an 8-bit RGB image with adaptive filters
    grey = rng.integers(0, 65536, size=(9, 11)).astype(np.uint16)
    Image.fromarray(grey).save(tmp_path / "g.png")
    assert np.array_equal(read_png16(tmp_path / "g.png"), grey)
    smooth = (np.add.outer(np.arange(20), np.arange(30))[..., None] * [1, 2, 3] % 256).astype(np.uint8)
    smooth[5:9, 3:20] = rng.integers(0, 256, size=(4, 17, 3))
    Image.fromarray(smooth).save(tmp_path / "rgb.png", optimize=True)
    assert np.array_equal(read_png16(tmp_path / "rgb.png"), smooth.astype(np.uint16))


def test_pose_conversion_round_trip():
    from scipy.spatial.transform import Rotation

    R = Rotation.from_euler("xyz", [0.3, -1.2, 2.0]).as_matrix()
    a = Alignment9D(R, np.array([0.1, -0.2, 3.0]), np.array([0.5, 0.9, 1.7]))
    pose = fmt.roca_pose_from_alignment(a)
    # ROCA: M = T(t) R(q) S(s), x_cam = M x
    w, x, y, z = pose["q"]
    M = np.eye(4)
    M[:3, :3] = Rotation.from_quat([x, y, z, w]).as_matrix() @ np.diag(pose["s"])
    M[:3, 3] = pose["t"]
    assert np.allclose(M, a.matrix())
    b = fmt.alignment_from_roca_pose(**pose)
    assert np.allclose(b.rotation, R) and np.allclose(b.scale, a.scale)
    with pytest.raises(ValueError):
        fmt.alignment_from_roca_pose([0, 0, 0], [0, 0, 0, 0], [1, 1, 1])


def _fixture_sample(height=40, width=56):
    rng = np.random.default_rng(3)
    instance = np.full((height, width), -1, np.int32)
    instance[5:20, 4:30] = 0
    instance[22:35, 30:50] = 1
    noc = np.where(instance[..., None] >= 0, rng.uniform(-0.5, 0.5, (height, width, 3)), 0).astype(np.float32)
    depth = rng.uniform(0.5, 6.0, (height, width)).astype(np.float32)
    objects = [ObjectAnnotation(class_id=c, cad_id=f"cad_{c}", box_xyxy=np.array(b, float), symmetry=sym,
                                alignment=Alignment9D(np.eye(3), np.array([0.1 * c, 0.2, 2.5]), np.array([1., .5, .8])),
                                visible_pixels=int((instance == i).sum()))
               for i, (c, b, sym) in enumerate([(5, (4, 5, 30, 20), "none"), (8, (30, 22, 50, 35), "4fold")])]
    K = np.array([[50.0, 0, 27.1], [0, 51.0, 19.6], [0, 0, 1]])
    image = np.stack(list(np.meshgrid(np.linspace(0, 255, width), np.linspace(0, 255, height))) + [np.full((height, width), 90.0)], axis=-1)
    image[instance == 0] = (200, 40, 40)
    return SceneSample(image=image.astype(np.uint8), depth=depth, K=K,
                       instance_map=instance, noc=noc, objects=objects, scene_id="val_00000",
                       camera_to_world=np.eye(4))


def test_write_read_round_trip(tmp_path):
    sample = _fixture_sample()
    record = fmt.write_view(tmp_path, sample, "000000")
    instances = fmt.merge_instances([record])
    fmt.atomic_write_json(tmp_path / "scan2cad_instances_val.json", instances)
    data = fmt.load_instances(tmp_path, "val")
    anno = data["annotations"][1]
    assert anno["bbox"] == [30.0, 22.0, 20.0, 13.0] and anno["alignment_id"] == 2 and anno["category_id"] == 8
    assert anno["model"]["catid_cad"] == "04379243" and anno["sym"] == "__SYM_ROTATE_UP_4"
    assert data["images"][0]["file_name"] == "tasks/scannet_frames_25k/val_00000/color/000000.jpg"
    back = fmt.read_view(tmp_path, data["images"][0], data["annotations"])
    assert np.array_equal(back.instance_map, sample.instance_map)
    assert np.abs(back.depth - sample.depth).max() <= 0.5 / fmt.DEPTH_SCALE + 1e-6
    assert np.abs(back.noc - sample.noc).max() <= 0.5 / fmt.NOC_SCALE + 1e-6
    assert np.allclose(back.K, sample.K)
    assert np.abs(back.image.astype(int) - sample.image).mean() < 3  # JPEG quality 95
    for a, b in zip(back.objects, sample.objects):
        assert (a.class_id, a.cad_id, a.symmetry) == (b.class_id, b.cad_id, b.symmetry)
        assert np.allclose(a.alignment.matrix(), b.alignment.matrix())
        assert np.allclose(a.box_xyxy, b.box_xyxy)
    # NOC file channel order is OpenCV's BGR: the file's first channel holds z
    stored = read_png16(tmp_path / "rendering/val_00000/noc/000000.png")
    assert np.allclose(stored[10, 10, 0] / fmt.NOC_SCALE - 1, sample.noc[10, 10, 2], atol=1e-4)
    # without the instance image, masks come from the RLE segmentation
    (tmp_path / "rendering/val_00000/instance/000000.png").unlink()
    assert np.array_equal(fmt.read_view(tmp_path, data["images"][0], data["annotations"]).instance_map,
                          sample.instance_map)


def test_reader_errors_and_pickle_guard(tmp_path):
    with pytest.raises(ValueError, match="scan2cad_instances_val.json"):
        fmt.load_instances(tmp_path, "val")
    (tmp_path / "scan2cad_instances_val.json").write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match="annotations"):
        fmt.load_instances(tmp_path, "val")
    import pickle

    (tmp_path / "x.pkl").write_bytes(pickle.dumps([{"id_cad": "a"}]))
    with pytest.raises(ValueError, match="allow_pickle"):
        fmt.read_roca_cads(tmp_path / "x.pkl")
    assert fmt.read_roca_cads(tmp_path / "x.pkl", allow_pickle=True) == [{"id_cad": "a"}]


@pytest.mark.parametrize("file_name", ["../../etc/passwd", "/etc/passwd", "tasks/../../../x/color/0.jpg"])
def test_read_view_refuses_image_paths_outside_the_image_root(tmp_path, file_name):
    from cad_perception_ros.data.scan2cad_format import read_view

    with pytest.raises(ValueError, match="points outside"):
        read_view(tmp_path, {"file_name": file_name, "scene_id": "scene0000_00", "id": 1}, [])


def test_read_view_refuses_a_scene_id_outside_the_rendering_root(tmp_path):
    from PIL import Image

    from cad_perception_ros.data.scan2cad_format import read_view

    frame = tmp_path / "images" / "s" / "color" / "0.jpg"
    frame.parent.mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(frame)
    with pytest.raises(ValueError, match="scene_id"):
        read_view(tmp_path, {"file_name": "s/color/0.jpg", "scene_id": "../../outside", "id": 1}, [],
                  image_root=tmp_path / "images")


def test_objects_of_matches_the_decoded_view_without_reading_images(tmp_path, procedural_db_dir):
    from cad_perception_ros.data.dataset import SyntheticDataset
    from cad_perception_ros.data.generate import GenerateConfig, generate_split

    generate_split(tmp_path, GenerateConfig(split="val", scenes=1, views_per_scene=2, seed=2, image_size=(60, 80)),
                   db_dir=procedural_db_dir(), workers=1, progress=False)
    dataset = SyntheticDataset(tmp_path, "val")
    for i in range(len(dataset)):
        quick, full = dataset.objects_of(i), dataset[i].objects
        assert [(o.class_id, o.cad_id) for o in quick] == [(o.class_id, o.cad_id) for o in full]
        assert all(np.allclose(a.alignment.translation, b.alignment.translation) for a, b in zip(quick, full))
