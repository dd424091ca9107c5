"""The numpy render backend: the rasteriser against analytic scenes, and its views against
pybullet's TinyRenderer (same labels and depth, images within a grey level or two)."""

import json

import numpy as np
import pytest

from cad_perception_ros.cad.database import CadDatabase
from cad_perception_ros.cli import main
from cad_perception_ros.data import render
from cad_perception_ros.data.dataset import SyntheticDataset
from cad_perception_ros.data.raster import barycentric, box_triangles, clip_near, face_normals, rasterize
from cad_perception_ros.data.render_numpy import NumpySceneRenderer
from cad_perception_ros.data.renderers import make_renderer
from cad_perception_ros.data.scenes import SceneConfig, generate_scene, sample_camera, sample_intrinsics

K = np.array([[100.0, 0.0, 40.0], [0.0, 90.0, 30.0], [0.0, 0.0, 1.0]])


def _pixel_rays(size):
    """(H, W, 3) rays (a, b, 1) through the pixel centres of K."""
    height, width = size
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    return np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)


def test_camera_inside_a_box_sees_its_walls_at_the_right_depth():
    """Inside a cube of half size 1 around the camera, the ray (a, b, 1) meets a wall at
    z = 1 / max(|a|, |b|, 1). The side walls cross the image plane, so near clipping is exercised."""
    inward = box_triangles((1.0, 1.0, 1.0), (0.0, 0.0, 0.0))[:, ::-1]  # faces turned to the inside
    depth, index = rasterize(inward, K, (60, 80), near=0.05, cull_back_faces=True)
    rays = _pixel_rays((60, 80))
    expected = 1.0 / np.abs(rays).max(-1)
    assert (index >= 0).all()
    np.testing.assert_allclose(depth, expected, rtol=1e-9)
    outward = box_triangles((1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    _, culled = rasterize(outward, K, (60, 80), cull_back_faces=True)
    assert (culled == -1).all()  # every face turns its back to the camera


def test_nearer_triangle_wins_and_back_faces_are_culled_only_on_request():
    near_tri = np.array([[[-5, -5, 2.0], [0, 5, 2.0], [5, -5, 2.0]]])  # faces the camera (-z)
    far_quad = box_triangles((5.0, 5.0, 0.01), (0.0, 0.0, 4.0))
    soup = np.concatenate([far_quad, near_tri])
    depth, index = rasterize(soup, K, (60, 80))
    hit_near = index == len(far_quad)
    assert hit_near.mean() > 0.3 and np.allclose(depth[hit_near], 2.0)
    assert np.allclose(depth[~hit_near], 4.0 - 0.01)
    assert (rasterize(near_tri[:, ::-1], K, (60, 80), cull_back_faces=True)[1] == -1).all()
    assert (rasterize(near_tri[:, ::-1], K, (60, 80))[1] == 0).any()


def test_clip_near_keeps_the_front_part():
    tri = np.array([[[0.0, 0.0, -1.0], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]])
    pieces, source = clip_near(tri, near=0.0)
    assert (pieces[..., 2] >= -1e-12).all() and (source == 0).all()
    area = 0.5 * np.linalg.norm(np.cross(pieces[:, 1] - pieces[:, 0], pieces[:, 2] - pieces[:, 0]), axis=1).sum()
    full = 0.5 * np.linalg.norm(np.cross(tri[0, 1] - tri[0, 0], tri[0, 2] - tri[0, 0]))
    assert len(pieces) == 2 and 0.6 * full < area < full  # the part with z >= 0: 3/4 of the area
    assert np.isclose(area, 0.75 * full)


def test_barycentric_weights_rebuild_the_point():
    rng = np.random.default_rng(0)
    tris = rng.normal(size=(50, 3, 3))
    weights = rng.dirichlet(np.ones(3), size=50)
    points = np.einsum("nk,nkj->nj", weights, tris)
    np.testing.assert_allclose(barycentric(points, tris), weights, atol=1e-9)
    assert np.allclose(np.linalg.norm(face_normals(tris), axis=1), 1.0)


def test_make_renderer_picks_a_backend_and_names_bad_ones(monkeypatch):
    monkeypatch.setattr(render, "pybullet_available", lambda: False)
    with make_renderer("auto") as renderer:
        assert isinstance(renderer, NumpySceneRenderer) and renderer.name == "numpy"
    with pytest.raises(ValueError, match="pybullet.*numpy"):
        make_renderer("blender")


def test_numpy_views_match_pybullet(procedural_db_dir):
    """Same scenes, cameras and RNG: the instance maps agree (>= 99.9 % of pixels), depth within
    1 mm, NOCs within 1e-3 where they agree, the same objects, images within 2 grey levels on 99 %
    of the pixels (TinyRenderer's float32 shading and its edge rule differ slightly)."""
    pytest.importorskip("pybullet")
    database = CadDatabase.load(procedural_db_dir())
    config = SceneConfig(image_size=(120, 160), min_visible_pixels=50)
    close = []
    with render.SceneRenderer(min_visible_pixels=50) as pyb, NumpySceneRenderer(min_visible_pixels=50) as ours:
        for seed in range(4):
            rng = np.random.default_rng(seed)
            scene = generate_scene(database, rng, config, scene_id=f"s{seed}")
            pyb.load(scene, database)
            ours.load(scene, database)
            K_scene = sample_intrinsics(rng, config)
            camera = sample_camera(scene, rng, config)
            a = pyb.render(camera, K_scene, config.image_size, np.random.default_rng(seed))
            b = ours.render(camera, K_scene, config.image_size, np.random.default_rng(seed))
            same = a.instance_map == b.instance_map
            assert same.mean() >= 0.999
            assert np.abs(a.depth - b.depth)[same].max() < 1e-3
            assert np.abs(a.noc - b.noc)[same].max() < 1e-3
            assert [(o.cad_id, tuple(o.box_xyxy)) for o in a.objects] == [(o.cad_id, tuple(o.box_xyxy))
                                                                          for o in b.objects]
            close.append(np.abs(a.image.astype(int) - b.image.astype(int)).max(-1) <= 2)
    assert np.mean(close) >= 0.99


def test_cli_generates_with_the_numpy_backend(tmp_path, capsys, procedural_db_dir):
    out = tmp_path / "data"
    code = main(["data", "generate", "--out", str(out), "--scenes", "1", "--views-per-scene", "2",
                 "--size", "80x60", "--split", "train", "--db", str(procedural_db_dir()), "--renderer", "numpy"])
    assert code == 0
    assert "(numpy)" in capsys.readouterr().out
    assert len(list((out / "images").rglob("*.*"))) >= 2


def _box_scene():
    """One 1 m cube (a box CAD model) turned 30 degrees about the vertical, in a 4 m room."""
    from cad_perception_ros.data.scenes import PlacedObject, Scene

    yaw = np.radians(30.0)
    # canonical +y up -> world +z up, turned about the vertical
    to_world = np.array([[np.cos(yaw), 0.0, np.sin(yaw)], [np.sin(yaw), 0.0, -np.cos(yaw)], [0.0, 1.0, 0.0]])
    cube = PlacedObject("cube", 0, "4fold", to_world, np.array([2.0, 2.0, 0.5]), np.ones(3), (0.8, 0.5, 0.3))
    return Scene("box", (4.0, 4.0, 3.0), (cube,), (0.5, 0.5, 0.5), ((0.6, 0.6, 0.6),) * 4)


class _Cube:
    models = []

    def mesh(self, cad_id):
        import trimesh

        return trimesh.creation.box(extents=(1.0, 1.0, 1.0))


@pytest.mark.parametrize("shading", ["flat", "pybullet"])
def test_flat_shading_gives_each_face_one_brightness(shading):
    """Flat: the two faces of a cube seen from the side each have a single shade (within 1 grey
    level) and the two differ. pybullet's shading: a gradient across each face instead."""
    from cad_perception_ros.data.scenes import look_at

    camera = look_at(np.array([0.3, 0.2, 1.6]), np.array([2.0, 2.0, 0.5]))
    Kc = np.array([[300.0, 0.0, 160.0], [0.0, 300.0, 120.0], [0.0, 0.0, 1.0]])
    with NumpySceneRenderer(shading=shading) as renderer:
        renderer.load(_box_scene(), _Cube())
        rgb, depth, seg = renderer._raw(camera, Kc, 320, 240, np.random.default_rng(3))
        _, index = rasterize((renderer._triangles - camera[:3, 3]) @ camera[:3, :3], Kc, (240, 320),
                             cull_back_faces=True)
    on_cube = seg == 6
    normals = np.round(face_normals(renderer._triangles)[index[on_cube]], 3)
    faces, label = np.unique(normals, axis=0, return_inverse=True)
    assert len(faces) >= 2  # at least two cube faces in view
    shades = rgb[on_cube][:, 0].astype(int)
    spreads = [np.ptp(shades[label.ravel() == k]) for k in range(len(faces))]
    means = [shades[label.ravel() == k].mean() for k in range(len(faces))]
    if shading == "flat":
        assert max(spreads) <= 1 and np.ptp(means) > 5
    else:
        assert max(spreads) > 5


def test_flat_shading_needs_the_numpy_backend(tmp_path, capsys):
    with pytest.raises(ValueError, match="numpy"):
        make_renderer("pybullet", shading="flat")
    with pytest.raises(ValueError, match="shading"):
        NumpySceneRenderer(shading="gouraud")
    code = main(["data", "generate", "--out", str(tmp_path / "d"), "--benchmark", "synthetic-smoke-v1",
                 "--renderer", "pybullet", "--shading", "flat"])
    assert code == 2 and "needs the numpy renderer" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()  # refused before writing anything


def test_a_flat_split_records_its_shading_and_is_not_mixed(tmp_path, capsys, procedural_db_dir):
    out = tmp_path / "data"
    args = ["data", "generate", "--out", str(out), "--scenes", "1", "--views-per-scene", "1", "--size", "80x60",
            "--split", "train", "--db", str(procedural_db_dir())]
    assert main(args + ["--shading", "flat"]) == 0
    info = (out / "dataset_info_train.json").read_text()
    assert '"shading": "flat"' in info
    assert main(args + ["--renderer", "numpy"]) == 2  # the same split shaded the other way
    assert "different train split" in capsys.readouterr().err


def test_a_split_grows_without_rendering_its_scenes_again(tmp_path, procedural_db_dir):
    out = tmp_path / "data"
    args = ["data", "generate", "--out", str(out), "--views-per-scene", "1", "--size", "80x60", "--split", "train",
            "--renderer", "numpy", "--db", str(procedural_db_dir())]
    assert main(args + ["--scenes", "1"]) == 0
    first = out / "parts" / "train" / "train_00000.json"
    stamp = first.stat().st_mtime_ns
    assert main(args + ["--scenes", "2"]) == 0
    assert first.stat().st_mtime_ns == stamp  # scene 0 was kept, not rendered again
    assert (out / "parts" / "train" / "train_00001.json").is_file()
    assert json.loads((out / "dataset_info_train.json").read_text())["scenes"] == 2
    assert len(SyntheticDataset(out, "train")) == 2
