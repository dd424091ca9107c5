"""`evaluate`: the pipeline -> Scan2CAD metric wiring, on a tiny generated split."""
import dataclasses

import numpy as np
import pytest

pytest.importorskip("pybullet")


from cad_perception_ros.cad.database import CadDatabase  # noqa: E402
from cad_perception_ros.data.dataset import SyntheticDataset  # noqa: E402
from cad_perception_ros.data.generate import GenerateConfig, generate_split  # noqa: E402
from cad_perception_ros.evaluation.metrics import EvaluationConfig  # noqa: E402
from cad_perception_ros.evaluation.run import evaluate_aligner, grid_iou_lookup  # noqa: E402
from cad_perception_ros.types import SCAN2CAD_CLASSES, Alignment9D, CadPrediction  # noqa: E402


class OracleAligner:
    """Returns each view's ground truth (optionally moved by `shift` metres along x)."""

    class_names = SCAN2CAD_CLASSES
    model_name = "oracle"

    def __init__(self, dataset, database, shift=0.0):
        self.dataset, self.cad_database, self.shift = dataset, database, shift

    def __call__(self, image, K):
        sample = next(s for s in self._samples() if np.array_equal(s.image, image))
        out = []
        for obj in sample.objects:
            a = obj.alignment
            moved = Alignment9D(a.rotation, a.translation + [self.shift, 0, 0], a.scale)
            out.append(CadPrediction(class_id=obj.class_id, class_name=SCAN2CAD_CLASSES[obj.class_id], score=0.9,
                                     box_xyxy=obj.box_xyxy, alignment=moved, cad_id=obj.cad_id))
        return out

    def _samples(self):
        return (self.dataset[i] for i in range(len(self.dataset)))


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory, procedural_db_dir):
    root = tmp_path_factory.mktemp("eval_data")
    config = GenerateConfig(split="val", scenes=2, views_per_scene=2, seed=3, image_size=(120, 160))
    generate_split(root, config, db_dir=procedural_db_dir(), workers=1, progress=False)
    return SyntheticDataset(root, "val"), CadDatabase.load(procedural_db_dir())


def test_oracle_scores_100_and_a_shift_beyond_20cm_scores_0(tiny_split):
    dataset, database = tiny_split
    assert sum(len(dataset[i].objects) for i in range(len(dataset))) > 0
    perfect = evaluate_aligner(OracleAligner(dataset, database), dataset, progress=False)
    assert perfect["image"].instance_average("alignment_accuracy") == pytest.approx(100.0)
    assert perfect["image"].instance_average("retrieval_accuracy") == pytest.approx(100.0)
    assert perfect["scene"].instance_average("alignment_accuracy") == pytest.approx(100.0)
    shifted = evaluate_aligner(OracleAligner(dataset, database, shift=0.25), dataset, progress=False,
                               protocols=("image", "breakdown"))
    assert shifted["image"].instance_average("alignment_accuracy") == pytest.approx(0.0)
    b = shifted["breakdown"]  # every object found; only the translation criterion fails
    assert b.num_detected == b.num_gt > 0 and b.median_translation_m == pytest.approx(0.25)
    assert (b.translation_ok, b.rotation_ok, b.scale_ok, b.all_ok) == (0.0, 100.0, 100.0, 0.0)
    assert b.retrieval_ok == 100.0  # the oracle returns the ground truth's CAD model
    # moved sideways: no depth error, and at the true depth still 25 cm off (a direction error)
    assert b.median_depth_error == pytest.approx(0.0, abs=1e-9) and b.translation_ok_at_true_depth == 0.0


def test_breakdown_counts_a_wrong_cad_model(tiny_split):
    from cad_perception_ros.evaluation.breakdown import error_breakdown, format_breakdown

    dataset, _ = tiny_split
    frames = [(OracleAligner(dataset, None)(s.image, s.K), s.objects) for s in (dataset[i] for i in range(len(dataset)))]
    wrong = [([dataclasses.replace(p, cad_id="other") for p in preds], objs) for preds, objs in frames]
    assert error_breakdown(frames, cad_iou=lambda a, b: 0.0).retrieval_ok == 100.0
    b = error_breakdown(wrong, cad_iou=lambda a, b: 0.0)
    assert b.retrieval_ok == 0.0 and b.all_ok == 100.0  # alignment still right, CAD wrong
    assert error_breakdown(wrong, cad_iou=lambda a, b: 0.7).retrieval_ok == 0.0  # ROCA's default: exact CAD only
    iou = EvaluationConfig(retrieval_match="surface-iou")
    assert error_breakdown(wrong, config=iou, cad_iou=lambda a, b: 0.7).retrieval_ok == 100.0  # IoU >= 0.5 counts
    assert "| 0.0 % |" in format_breakdown(b)


def test_breakdown_forgives_a_half_turn_only_in_its_flip_column(tiny_split, tmp_path):
    from cad_perception_ros.evaluation.breakdown import error_breakdown, match_errors, plot_rotation_errors

    dataset, _ = tiny_split
    frames = [(OracleAligner(dataset, None)(s.image, s.K), s.objects) for s in (dataset[i] for i in range(len(dataset)))]
    half_turn = np.diag([-1.0, 1.0, -1.0])  # about the canonical up axis +y
    turned = [([dataclasses.replace(p, alignment=dataclasses.replace(p.alignment, rotation=p.alignment.rotation @ half_turn))
                for p in preds], objs) for preds, objs in frames]
    b = error_breakdown(turned)
    asymmetric = [o for _, objs in frames for o in objs if o.symmetry == "none"]
    assert asymmetric and b.num_detected == b.num_gt
    assert b.rotation_ok == pytest.approx(100.0 * (1 - len(asymmetric) / b.num_gt))
    assert b.rotation_ok_up_to_flip == 100.0 and error_breakdown(frames).rotation_ok_up_to_flip == 100.0
    matched = match_errors(turned)
    none = np.asarray([s == "none" for s in matched.symmetry])
    assert np.allclose(matched.errors[none, 1], 180.0, atol=1e-3) and np.allclose(matched.rotation_up_to_flip, 0, atol=1e-3)
    assert b.median_tilt_deg == pytest.approx(0.0, abs=1e-3)  # a turn about the up axis leaves it upright
    png = plot_rotation_errors(matched, tmp_path / "plots" / "rot.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_breakdown_tilt_is_the_angle_between_up_axes(tiny_split):
    """Every prediction tipped 30 deg about its canonical x axis: tilt 30 deg, no rotation passes."""
    from cad_perception_ros.evaluation.breakdown import error_breakdown, format_breakdown, up_axis_angle_deg

    dataset, _ = tiny_split
    frames = [(OracleAligner(dataset, None)(s.image, s.K), s.objects) for s in (dataset[i] for i in range(len(dataset)))]
    cos30, sin30 = np.cos(np.radians(30)), np.sin(np.radians(30))
    tip = np.array([[1.0, 0, 0], [0, cos30, -sin30], [0, sin30, cos30]])
    tipped = [([dataclasses.replace(p, alignment=dataclasses.replace(p.alignment, rotation=p.alignment.rotation @ tip))
                for p in preds], objs) for preds, objs in frames]
    b = error_breakdown(tipped)
    assert b.num_detected == b.num_gt > 0 and b.rotation_ok == 0.0
    assert b.median_tilt_deg == pytest.approx(30.0, abs=1e-3) and "| 30.0 deg |" in format_breakdown(b)
    assert error_breakdown(frames).median_tilt_deg == pytest.approx(0.0, abs=1e-3)
    assert up_axis_angle_deg(np.eye(3), np.diag([1.0, -1.0, -1.0])) == pytest.approx(180.0)


def test_breakdown_separates_depth_from_direction_errors(tiny_split):
    """Centres pushed 10 % deeper along their rays: depth error 10 %, and back at the true depth
    they are right (sideways moves: test_oracle_scores_100_and_a_shift_beyond_20cm_scores_0)."""
    from cad_perception_ros.evaluation.breakdown import error_breakdown, format_breakdown

    dataset, _ = tiny_split
    frames = [(OracleAligner(dataset, None)(s.image, s.K), s.objects) for s in (dataset[i] for i in range(len(dataset)))]

    def moved(change):
        return [([dataclasses.replace(p, alignment=dataclasses.replace(
            p.alignment, translation=change(np.asarray(p.alignment.translation)))) for p in preds], objs)
            for preds, objs in frames]

    deeper = error_breakdown(moved(lambda t: 1.1 * t))
    assert deeper.median_depth_error == pytest.approx(0.1) and deeper.translation_ok_at_true_depth == 100.0
    assert "| 10.0 % | 100.0 % |" in format_breakdown(deeper)


def test_grid_iou_is_one_on_itself_and_below_one_across_classes(procedural_db_dir):
    database = CadDatabase.load(procedural_db_dir())
    iou = grid_iou_lookup(database)
    a, b = database.models[0].cad_id, database.models[-1].cad_id
    assert iou(a, a) == 1.0
    assert 0.0 <= iou(a, b) < 1.0 and iou(a, b) == iou(b, a)
    assert iou(a, "no-such-model") == 0.0


def test_ground_truth_is_reindexed_to_the_model_classes_by_name(tiny_split):
    from cad_perception_ros.evaluation.run import objects_in_model_classes

    dataset, _ = tiny_split
    objects = [o for i in range(len(dataset)) for o in dataset[i].objects]
    names = [SCAN2CAD_CLASSES[objects[0].class_id], "not-a-class"]
    kept = objects_in_model_classes(objects, names)
    assert kept and all(o.class_id == 0 for o in kept)
    assert len(kept) == sum(o.class_id == objects[0].class_id for o in objects)


def test_comparison_gives_the_paired_difference_per_protocol(tiny_split):
    from cad_perception_ros.evaluation.run import format_comparison

    dataset, database = tiny_split
    perfect = evaluate_aligner(OracleAligner(dataset, database), dataset, progress=False)
    shifted = evaluate_aligner(OracleAligner(dataset, database, shift=0.25), dataset, progress=False)
    table = format_comparison(perfect, shifted)
    rows = [line for line in table.splitlines() if line.startswith(("| image", "| scene"))]
    assert len(rows) == 4  # two protocols x class / instance average
    assert all(row.endswith("| 100.0 % | 0.0 % | +100.0 (+100.0 to +100.0) |") for row in rows)
    assert "| image (4 units) |" in table and "| scene (2 units) |" in table


def test_evaluate_cli_compares_two_model_dirs_and_refuses_a_missing_one(tiny_split, tmp_path, capsys, procedural_db_dir):
    from cad_perception_ros.cli import main
    from cad_perception_ros.runtime.random_model import save_random_model_dir

    dataset, _ = tiny_split
    a = save_random_model_dir(tmp_path / "a", cad_db=procedural_db_dir(), seed=0)
    b = save_random_model_dir(tmp_path / "b", cad_db=procedural_db_dir(), seed=1)
    args = ["evaluate", "--model-dir", str(a), "--data", str(dataset.root), "--protocol", "image"]
    assert main([*args, "--compare-with", str(tmp_path / "none")]) == 2
    assert str(tmp_path / "none") in capsys.readouterr().err
    assert main([*args, "--compare-with", str(b)]) == 0
    out = capsys.readouterr().out
    assert "minus roca_tiny_random: alignment accuracy, paired bootstrap" in out
    assert out.count("| image (4 units) |") == 2  # class and instance average
