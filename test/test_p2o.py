"""Points2Objects parts: SDF grids, k-means++ exemplars, shape labels, L_Rt, collision loss and metrics."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cad_perception_ros.config import ConfigError, from_mapping
from cad_perception_ros.model.points2objects.box_losses import point_cloud_loss, rotation_from_9d, scale_loss
from cad_perception_ros.model.points2objects.collision import (
    collision_loss,
    collision_weight,
    intersection_volumes,
    sample_grid,
    summarize_collisions,
)
from cad_perception_ros.model.points2objects.config import P2OConfig
from cad_perception_ros.model.points2objects.exemplars import ExemplarSet
from cad_perception_ros.model.points2objects.kmeans import kmeans
from cad_perception_ros.model.points2objects.sdf import cell_centres, occupancy_to_sdf
from cad_perception_ros.model.points2objects.shape_selection import (
    hard_label_loss,
    hard_labels,
    select_exemplars,
    shape_targets,
    soft_label_loss,
)

torch.set_num_threads(1)
G = 16  # occupancy resolution in these tests


def box_grid(half: tuple[float, float, float], grid: int = G, centre=(0.0, 0.0, 0.0)) -> np.ndarray:
    """(grid^3) bool occupancy of an axis-aligned box in the canonical cube."""
    c = cell_centres(grid) - np.asarray(centre)
    return (np.abs(c) <= np.asarray(half)).all(-1)


def box_points(half, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 3) points on the surface of an axis-aligned box with half extents `half`."""
    half = np.asarray(half, dtype=np.float64)
    p = rng.uniform(-1, 1, size=(n, 3)) * half
    axis = rng.integers(0, 3, size=n)
    p[np.arange(n), axis] = np.sign(rng.uniform(-1, 1, size=n)) * half[axis]
    return p.astype(np.float32)


def synthetic_db(seed=0):
    """Two classes of boxes with distinct proportions on the 16^3 grid (class 0: 7 models, class 1:
    3 distinct shapes plus one exact duplicate): grids, points, class ids, cad ids."""
    rng = np.random.default_rng(seed)
    halves = [(0.5, y, z) for y, z in ((0.1, 0.1), (0.1, 0.4), (0.4, 0.1), (0.4, 0.4), (0.25, 0.25),
                                       (0.5, 0.5), (0.15, 0.3))]
    halves += [(0.1, 0.5, 0.3), (0.25, 0.5, 0.15), (0.4, 0.5, 0.4), (0.4, 0.5, 0.4)]
    grids = np.stack([box_grid(h) for h in halves])
    points = np.stack([box_points(h, 64, rng) for h in halves])
    classes = np.asarray([0] * 7 + [1] * 4)
    ids = [f"c{c}_m{k}" for k, c in enumerate(classes)]
    return grids, points, classes, ids


# ----------------------------------------------------------------------------- SDF
def test_sdf_sign_and_magnitude_on_a_box():
    grid = 32
    sdf = occupancy_to_sdf(box_grid((0.25, 0.25, 0.25), grid)[None])[0]
    h = 1.0 / grid
    centre, border_cell = grid // 2, 0
    assert sdf[centre, centre, centre] == pytest.approx(-(0.25 - h / 2), abs=1e-6)  # inside: negative
    assert sdf[border_cell, centre, centre] == pytest.approx(0.25 - h / 2, abs=1e-6)  # outside: positive
    corner = sdf[0, 0, 0]  # outside, distance to the box corner (0.25, 0.25, 0.25) ~ sqrt(3) * 0.2344
    assert corner == pytest.approx(math.sqrt(3) * (0.25 - h / 2) - h / 2, abs=h)
    inside = box_grid((0.25, 0.25, 0.25), grid)
    assert (sdf[inside] < 0).all() and (sdf[~inside] > 0).all()


def test_sdf_downsampling_and_bad_shapes():
    coarse = occupancy_to_sdf(box_grid((0.25, 0.25, 0.25), 32)[None], out_grid=16)[0]
    assert coarse.shape == (16, 16, 16)
    assert coarse[8, 8, 8] < -0.2 and coarse[0, 0, 0] > 0.3
    with pytest.raises(ValueError, match="divide"):
        occupancy_to_sdf(np.ones((1, 32, 32, 32), bool), out_grid=12)
    with pytest.raises(ValueError, match="empty"):
        occupancy_to_sdf(np.zeros((1, 8, 8, 8), bool))


# ----------------------------------------------------------------------------- k-means++ / exemplars
def test_kmeans_is_deterministic_and_clamps_k():
    x = np.random.default_rng(1).normal(size=(30, 5))
    a, b = kmeans(x, 4, seed=3), kmeans(x, 4, seed=3)
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.medoids, b.medoids)
    clamped = kmeans(x[:3], 10, seed=0)
    assert clamped.centres.shape[0] == 3 and sorted(clamped.medoids) == [0, 1, 2]
    assert len(set(a.medoids.tolist())) == 4  # distinct real points


def test_kmeans_finds_separated_clusters():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(loc, 0.01, size=(10, 2)) for loc in (0.0, 5.0, 10.0)])
    result = kmeans(x, 3, seed=0)
    assert sorted(np.bincount(result.labels).tolist()) == [10, 10, 10]


def test_exemplars_are_real_cad_models_of_their_class(tmp_path):
    grids, points, classes, ids = synthetic_db()
    ex = ExemplarSet.build(grids=grids, points=points, class_ids=classes, cad_ids=ids, k=5, sdf_grid=8)
    assert len(ex) == 5 + 3  # class 1 has 3 distinct shapes: k clamped to 3
    assert ex.sdf.shape == (8, 8, 8, 8) and np.bincount(ex.class_ids).tolist() == [5, 3]
    for cad_id, class_id, pts in zip(ex.cad_ids, ex.class_ids, ex.points):
        row = ids.index(cad_id)
        assert classes[row] == class_id and np.array_equal(points[row], pts)
    again = ExemplarSet.build(grids=grids, points=points, class_ids=classes, cad_ids=ids, k=5, sdf_grid=8)
    assert again.cad_ids == ex.cad_ids
    path = ex.save(tmp_path / "exemplars")
    with pytest.raises(FileExistsError):
        ex.save(tmp_path / "exemplars")
    loaded = ExemplarSet.load(path)
    assert loaded.cad_ids == ex.cad_ids and np.array_equal(loaded.sdf, ex.sdf)
    assert np.array_equal(loaded.model_distances, ex.model_distances)
    (tmp_path / "exemplars.json").write_text('{"format_version": 99}')
    with pytest.raises(ValueError, match="format_version"):
        ExemplarSet.load(path)


# ----------------------------------------------------------------------------- shape labels
def _exemplar_set():
    grids, points, classes, ids = synthetic_db()
    return ExemplarSet.build(grids=grids, points=points, class_ids=classes, cad_ids=ids, k=4, sdf_grid=8), ids


def test_soft_labels_peak_at_the_own_exemplar_and_hard_labels_are_one_hot():
    ex, ids = _exemplar_set()
    config = P2OConfig(soft_label_radius=0.2)
    targets = shape_targets(ex, list(ex.cad_ids), config)  # GT models that are exemplars themselves
    assert torch.equal(targets.hard, torch.arange(len(ex)))
    assert torch.allclose(targets.soft.diagonal(), torch.ones(len(ex)))
    assert (targets.soft >= 0).all() and (targets.soft <= 1).all()
    assert torch.equal(targets.soft.argmax(1), targets.hard)
    others = shape_targets(ex, ids, config)
    class_of = torch.from_numpy(ex.class_ids)
    assert (others.soft[:7, class_of == 1] == 0).all()  # other classes get no target
    onehot = hard_labels(others.hard, len(ex))
    assert torch.equal(onehot.sum(1), torch.ones(len(ids))) and torch.equal(onehot.argmax(1), others.hard)
    assert torch.equal(others.soft.argmax(1), others.hard)  # soft peak = nearest exemplar


def test_shape_losses_prefer_the_target():
    ex, ids = _exemplar_set()
    targets = shape_targets(ex, list(ex.cad_ids[:2]), P2OConfig(soft_label_radius=0.2))
    good = targets.soft * 20 - 10
    bad = -good
    assert soft_label_loss(good, targets.soft) < soft_label_loss(bad, targets.soft)
    assert hard_label_loss(good, targets.hard) < hard_label_loss(bad, targets.hard)
    chosen = select_exemplars(torch.randn(2, len(ex)), torch.from_numpy(ex.class_ids), torch.tensor([1, 1]))
    assert (torch.from_numpy(ex.class_ids)[chosen] == 1).all()


# ----------------------------------------------------------------------------- box losses
def _rot_x(angle):
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=torch.float64)


def test_svd_projection_has_det_plus_one():
    raw = torch.randn(16, 9, generator=torch.Generator().manual_seed(0))
    r = rotation_from_9d(raw)
    assert torch.allclose(torch.linalg.det(r.double()), torch.ones(16, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(r @ r.transpose(1, 2), torch.eye(3).expand(16, 3, 3), atol=1e-5)


def test_point_cloud_loss_zero_at_gt_and_grows_with_error():
    rng = np.random.default_rng(0)
    pts = torch.from_numpy(box_points((0.5, 0.3, 0.2), 128, rng)).double()[None]  # (1, P, 3)
    r_gt, t_gt, s_gt = _rot_x(0.3)[None], torch.tensor([[0.1, 0.2, 3.0]], dtype=torch.float64), \
        torch.tensor([[1.0, 0.8, 0.6]], dtype=torch.float64)
    assert point_cloud_loss(r_gt, t_gt, r_gt, t_gt, s_gt, pts) == pytest.approx(0.0, abs=1e-12)
    rot_losses = [float(point_cloud_loss(r_gt @ _rot_x(a)[None], t_gt, r_gt, t_gt, s_gt, pts))
                  for a in (0.05, 0.2, 0.6)]
    trans_losses = [float(point_cloud_loss(r_gt, t_gt + d, r_gt, t_gt, s_gt, pts)) for d in (0.01, 0.1, 0.5)]
    assert rot_losses == sorted(rot_losses) and rot_losses[0] > 0
    assert trans_losses == pytest.approx([3 * d * d for d in (0.01, 0.1, 0.5)])  # |(d, d, d)|^2
    raw = torch.randn(1, 9, dtype=torch.float64, requires_grad=True)
    t = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    loss = point_cloud_loss(rotation_from_9d(raw), t, r_gt, t_gt, s_gt, pts)
    loss.backward()
    assert torch.isfinite(raw.grad).all() and raw.grad.abs().sum() > 0 and torch.isfinite(t.grad).all()
    flipped = r_gt @ _rot_y(math.pi)[None]  # a 2-fold symmetric object rotated by 180 deg: no loss
    assert point_cloud_loss(flipped, t_gt, r_gt, t_gt, s_gt, pts, symmetries=["2fold"]) < 1e-12
    assert point_cloud_loss(flipped, t_gt, r_gt, t_gt, s_gt, pts) > 0.01


def _rot_y(angle):
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=torch.float64)


def test_scale_loss_is_l1():
    assert float(scale_loss(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[1.5, 2.0, 2.0]]))) == pytest.approx(1.5)
    with pytest.raises(ValueError):
        scale_loss(torch.zeros(2, 3), torch.zeros(3, 3))


# ----------------------------------------------------------------------------- collision
def _two_boxes(offset_x: float, requires_grad=False):
    """Two unit boxes (shape = the full canonical cube, scale 1 m), the second offset along x."""
    full = occupancy_to_sdf(np.ones((1, G, G, G), bool))[0]
    sdf = torch.from_numpy(np.stack([full, full])).double()
    pen = torch.clamp(-sdf, min=0.0)
    rng = np.random.default_rng(0)
    pts = torch.from_numpy(np.stack([box_points((0.5, 0.5, 0.5), 200, rng)] * 2)).double()
    rot = torch.eye(3, dtype=torch.float64).repeat(2, 1, 1)
    t = torch.tensor([[0.0, 0.0, 3.0], [offset_x, 0.0, 3.0]], dtype=torch.float64, requires_grad=requires_grad)
    return sdf, pen, pts, rot, t, torch.ones(2, 3, dtype=torch.float64)


def test_collision_loss_zero_apart_positive_when_penetrating_and_decreasing():
    ids = torch.zeros(2, dtype=torch.long)
    sdf, pen, pts, rot, t, s = _two_boxes(1.2)
    assert float(collision_loss(pts, rot, t, s, pen, ids)) == 0.0
    losses = []
    for offset in (0.3, 0.6, 0.9):
        sdf, pen, pts, rot, t, s = _two_boxes(offset)
        losses.append(float(collision_loss(pts, rot, t, s, pen, ids)))
    assert losses[0] > losses[1] > losses[2] > 0
    assert float(collision_loss(pts, rot, t, s, pen, torch.tensor([0, 1]))) == 0.0  # different images
    sdf, pen, pts, rot, t, s = _two_boxes(0.5, requires_grad=True)
    collision_loss(pts, rot, t, s, pen, ids).backward()
    assert torch.isfinite(t.grad).all()
    assert t.grad[1, 0] < 0 < t.grad[0, 0]  # descent pushes the boxes apart along x


def test_collision_warmup():
    config = P2OConfig(collision_warmup_steps=10, weight_collision=2.0)
    assert collision_weight(9, config) == 0.0 and collision_weight(10, config) == 2.0


def test_grid_sampling_axis_order():
    grid = torch.zeros(1, 4, 4, 4, dtype=torch.float64)
    grid[0, 3, 0, 1] = 1.0  # cell ix=3, iy=0, iz=1: centre (0.375, -0.375, -0.125)
    value = sample_grid(grid, torch.tensor([[[0.375, -0.375, -0.125]]], dtype=torch.float64))
    assert float(value) == pytest.approx(1.0)


def test_intersection_volume_of_two_unit_boxes():
    ids = torch.zeros(2, dtype=torch.long)
    sdf, _, _, rot, t, s = _two_boxes(0.5)
    result = intersection_volumes(sdf, rot, t, s, ids, samples_per_axis=20)
    assert result.pairs.tolist() == [[0, 1]]
    assert float(result.volumes[0]) == pytest.approx(0.5, rel=0.1)
    rot45 = torch.stack([torch.eye(3, dtype=torch.float64), _rot_y(math.pi / 4)])
    t_centre = torch.tensor([[0.0, 0.0, 3.0], [0.0, 0.0, 3.0]], dtype=torch.float64)
    # unit cube vs the same cube turned 45 deg about y: 2 (sqrt 2 - 1) of the square times height 1
    turned = intersection_volumes(sdf, rot45, t_centre, s, ids, samples_per_axis=24)
    assert float(turned.volumes[0]) == pytest.approx(2 * (math.sqrt(2) - 1), rel=0.1)
    apart = intersection_volumes(sdf, rot, t + torch.tensor([[0.0, 0, 0], [1.0, 0, 0]], dtype=torch.float64), s, ids)
    metrics = summarize_collisions([result, apart])
    assert metrics.num_colliding_pairs == 1 and metrics.num_pairs == 2
    assert metrics.mean_intersection_volume == pytest.approx(float(result.volumes[0]) / 2)


def test_config_is_strict():
    assert from_mapping(P2OConfig, {"exemplars_per_class": 8}).exemplars_per_class == 8
    with pytest.raises(ConfigError):
        from_mapping(P2OConfig, {"exemplar_per_class": 8})
    with pytest.raises(ConfigError):
        from_mapping(P2OConfig, {"soft_label_radius": 0.0})


def test_total_loss_switches_collision_on_after_warmup():
    from cad_perception_ros.model.points2objects.losses import LossTerms, total_loss
    one = torch.tensor(1.0)
    terms = LossTerms(keypoint=one, rt=one, scale=one, shape=one, collision=torch.tensor(5.0))
    config = P2OConfig(collision_warmup_steps=3)
    before, parts = total_loss(terms, 2, config)
    after, _ = total_loss(terms, 3, config)
    assert float(before) == pytest.approx(1 + 10 + 10 + 0.1) and parts["collision"] == 0.0
    assert float(after - before) == pytest.approx(5.0)


def test_empty_grid_of_a_thin_model_falls_back_to_its_surface_points():
    from cad_perception_ros.model.points2objects.exemplars import fill_empty_grids
    grids, points, classes, ids = synthetic_db()
    grids[0] = False  # a model thinner than a cell: no cell centre inside
    filled = fill_empty_grids(grids, points)
    assert filled[0].any() and np.array_equal(filled[1:], grids[1:])
    ex = ExemplarSet.build(grids=grids, points=points, class_ids=classes, cad_ids=ids, k=3, sdf_grid=8)
    assert np.isfinite(ex.sdf).all()


def test_exemplars_from_the_procedural_cad_database(tmp_path):
    import argparse

    from cad_perception_ros.cad.procedural import build_procedural_database
    from cad_perception_ros.cli.p2o_exemplars import add_arguments, run
    db = build_procedural_database(tmp_path / "db", per_class=3, seed=0)
    config = P2OConfig(exemplars_per_class=2, sdf_grid=16)
    ex = ExemplarSet.from_database(db, config)
    assert len(ex) == 2 * len({m.class_id for m in db.models})
    for cad_id, class_id in zip(ex.cad_ids, ex.class_ids):
        assert db[cad_id].class_id == class_id
    targets = shape_targets(ex, [m.cad_id for m in db.models], config)
    assert (torch.from_numpy(ex.class_ids)[targets.hard] == torch.tensor([m.class_id for m in db.models])).all()
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--db", str(tmp_path / "db"), "--out", str(tmp_path / "ex.npz"), "--k", "2",
                              "--grid", "8"])
    assert run(args) == 0 and ExemplarSet.load(tmp_path / "ex.npz").grid == 8
    assert run(args) == 1  # refuses to overwrite
