"""Renderers (pybullet and numpy backends): pixel convention against K, and ground-truth
consistency (depth, NOCs, poses)."""

import numpy as np
import pytest
import trimesh

from cad_perception_ros.cad.database import CadDatabase
from cad_perception_ros.data.render import backproject
from cad_perception_ros.data.renderers import make_renderer
from cad_perception_ros.data.scenes import (
    PlacedObject,
    Scene,
    SceneConfig,
    footprint_corners,
    generate_scene,
    look_at,
    rectangles_overlap,
    sample_camera,
    sample_intrinsics,
)

BACKENDS = ["pybullet", "numpy"]


def _renderer(name, **kwargs):
    if name == "pybullet":
        pytest.importorskip("pybullet")
    return make_renderer(name, **kwargs)


class _Sphere:
    models = []

    def mesh(self, cad_id):
        return trimesh.creation.icosphere(subdivisions=3, radius=0.5)


def _single_object_scene(point, radius=0.06):
    obj = PlacedObject("s", 0, "none", np.eye(3), np.asarray(point, float), np.full(3, 2 * radius), (1, 0, 0))
    return Scene("probe", (4.0, 4.0, 3.0), (obj,), (0.5, 0.5, 0.5), ((0.6, 0.6, 0.6),) * 4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_known_point_projects_where_K_predicts(backend):
    """A small sphere's mask centroid lands at K's projection of its centre (< 0.15 px),
    for an off-centre principal point and fx != fy."""
    K = np.array([[400.0, 0.0, 252.3], [0.0, 380.0, 168.7], [0.0, 0.0, 1.0]])
    camera_to_world = look_at(np.array([2.0, 0.3, 1.5]), np.array([2.0, 2.5, 1.0]))
    errors = []
    with _renderer(backend, min_visible_pixels=10) as renderer:
        for point in [(2.0, 2.5, 1.0), (2.5, 2.8, 1.3), (1.4, 2.2, 0.8)]:
            renderer.load(_single_object_scene(point), _Sphere())
            sample = renderer.render(camera_to_world, K, (360, 480), np.random.default_rng(0))
            rows, cols = np.nonzero(sample.instance_map == 0)
            p_cam = np.linalg.inv(camera_to_world) @ np.array([*point, 1.0])
            uv = (K @ p_cam[:3])[:2] / p_cam[2]
            errors.append([cols.mean() + 0.5 - uv[0], rows.mean() + 0.5 - uv[1]])
    assert np.abs(errors).max() < 0.15, errors


@pytest.fixture(scope="module", params=BACKENDS)
def views(request, procedural_db_dir):
    database = CadDatabase.load(procedural_db_dir())
    config = SceneConfig(image_size=(180, 240), min_visible_pixels=50)
    out = []
    with _renderer(request.param, min_visible_pixels=50) as renderer:
        for seed in range(3):
            rng = np.random.default_rng(seed)
            scene = generate_scene(database, rng, config, scene_id=f"s{seed}")
            renderer.load(scene, database)
            K = sample_intrinsics(rng, config)
            for _ in range(2):
                out.append((renderer.render(sample_camera(scene, rng, config), K, config.image_size, rng),
                            database))
    return out


def test_ground_truth_is_consistent(views):
    """Back-projected depth == R diag(s) noc + t (< 5 mm); NOCs in the unit cube; NOC points lie
    on the CAD mesh surface (< 5 mm in metres), which checks depth, masks and poses together."""
    seen = 0
    for sample, database in views:
        points = backproject(sample.depth.astype(np.float64), sample.K)
        for index, obj in enumerate(sample.objects):
            mask = sample.instance_map == index
            noc = sample.noc[mask].astype(np.float64)  # (P, 3)
            mapped = obj.alignment.transform_points(noc)
            assert np.abs(mapped - points[mask]).max() < 0.005
            assert np.abs(noc).max() <= 0.5 + 0.01
            canonical = database.mesh(obj.cad_id)  # may be shared: never modify in place
            mesh = trimesh.Trimesh(np.asarray(canonical.vertices) * obj.alignment.scale, canonical.faces,
                                   process=False)  # metric, canonical axes
            pick = noc[:: max(1, len(noc) // 300)] * obj.alignment.scale
            _, distance, _ = trimesh.proximity.closest_point(mesh, pick)
            assert distance.max() < 0.005, (obj.cad_id, distance.max())
            box = obj.box_xyxy
            rows, cols = np.nonzero(mask)
            assert box[0] == cols.min() and box[3] == rows.max() + 1
            seen += 1
    assert seen >= 4


def test_views_see_objects_and_images_vary(views):
    counts = [len(s.objects) for s, _ in views]
    assert sum(c >= 1 for c in counts) >= len(counts) - 1
    assert all(s.depth.max() < 12 and s.depth[s.instance_map >= 0].min() > 0.05 for s, _ in views)
    assert views[0][0].image.std() > 5


def test_placement_never_overlaps(procedural_db_dir):
    database = CadDatabase.load(procedural_db_dir())
    config = SceneConfig()
    for seed in range(20):
        scene = generate_scene(database, np.random.default_rng(seed), config)
        assert 1 <= len(scene.objects) <= config.objects_per_scene[1]
        rects = [footprint_corners(o.translation[:2], np.asarray(o.half_footprint), o.yaw) for o in scene.objects]
        for i in range(len(rects)):
            assert rects[i][:, 0].min() > 0 and rects[i][:, 0].max() < scene.room[0]
            for j in range(i):
                assert not rectangles_overlap(rects[i], rects[j])
            # object stands on the floor: lowest canonical point at z = 0
            o = scene.objects[i]
            corners = np.array([[x, y, z] for x in (-.5, .5) for y in (-.5, .5) for z in (-.5, .5)])
            extent = np.asarray(database[o.cad_id].extent)
            world = (corners * extent * o.scale) @ o.rotation.T + o.translation
            assert abs(world[:, 2].min()) < 1e-9


def test_intrinsics_ranges():
    config = SceneConfig()
    Ks = np.array([sample_intrinsics(np.random.default_rng(s), config) for s in range(50)])
    assert 0.8 * 480 <= Ks[:, 0, 0].min() and Ks[:, 0, 0].max() <= 1.3 * 480
    assert np.abs(Ks[:, 0, 2] - 240).max() <= 0.05 * 480 and np.abs(Ks[:, 0, 2] - 240).max() > 5
