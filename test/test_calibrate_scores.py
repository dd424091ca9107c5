"""Detection-score calibration: the decode applies sigmoid(a logit(peak) + b), the fit recovers a
known calibration, detections are labelled by the AP50 rule, and --write keeps the model loadable."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from cad_perception_ros.model.decoding import calibrated_scores
from cad_perception_ros.evaluation.detection import DetectionAccumulator
from cad_perception_ros.tools.calibrate_scores import fit_logistic, logit, pooled_peaks
from cad_perception_ros.types import SCAN2CAD_CLASSES, Alignment9D, CadPrediction


def test_calibration_keeps_the_order_and_identity_is_exact():
    peaks = torch.tensor([0.05, 0.3, 0.5, 0.7, 0.99])
    assert torch.equal(calibrated_scores(peaks, (1.0, 0.0)), peaks)
    out = calibrated_scores(peaks, (1.5, -0.5))
    assert torch.all(out[1:] > out[:-1]) and out[2] < 0.5  # a peak of 0.5 scores below 0.5 with b < 0
    expected = 1 / (1 + np.exp(-(1.5 * np.log(0.7 / 0.3) - 0.5)))
    assert float(out[3]) == pytest.approx(expected, rel=1e-6)


def test_a_slope_that_reverses_the_order_is_refused():
    from cad_perception_ros.model.config import RocaConfig
    with pytest.raises(ValueError, match="score_calibration"):
        RocaConfig(score_calibration=(-1.0, 0.0))


def test_fit_recovers_a_known_calibration():
    rng = np.random.default_rng(0)
    x = rng.normal(-1.0, 1.5, 20000)
    y = (rng.random(x.size) < 1 / (1 + np.exp(-(1.7 * x - 0.6)))).astype(float)
    a, b = fit_logistic(x, y)
    assert a == pytest.approx(1.7, abs=0.1) and b == pytest.approx(-0.6, abs=0.1)
    with pytest.raises(ValueError, match="both right and wrong"):
        fit_logistic(x, np.ones_like(x))


def _pred(cls: str, score: float, box) -> CadPrediction:
    return CadPrediction(class_id=SCAN2CAD_CLASSES.index(cls), class_name=cls, score=score,
                         box_xyxy=np.array(box, float), alignment=Alignment9D(np.eye(3), np.zeros(3), np.ones(3)))


def test_labels_follow_the_ap50_rule(make_scene):
    from cad_perception_ros.data.sample import ObjectAnnotation
    obj = ObjectAnnotation(class_id=SCAN2CAD_CLASSES.index("chair"), cad_id="c",
                           alignment=Alignment9D(np.eye(3), np.zeros(3), np.ones(3)), box_xyxy=np.array([10, 10, 50, 50.0]))
    preds = [_pred("chair", 0.4, [12, 11, 50, 52]),   # right, but scored below the duplicate
             _pred("chair", 0.9, [10, 10, 49, 50]),   # right: the highest score takes the object
             _pred("table", 0.8, [10, 10, 50, 50]),   # wrong class
             _pred("chair", 0.7, [60, 60, 90, 90])]   # no object there
    detections = DetectionAccumulator(iou_threshold=0.5)
    detections.add_image([p.class_id for p in preds], [p.score for p in preds], np.stack([p.box_xyxy for p in preds]),
                         [obj.class_id], obj.box_xyxy[None])
    peaks, right = pooled_peaks(detections)
    assert sorted(zip(peaks.tolist(), right.tolist())) == [(0.4, 0.0), (0.7, 0.0), (0.8, 0.0), (0.9, 1.0)]
    empty = DetectionAccumulator(iou_threshold=0.5)
    empty.add_image([], [], np.zeros((0, 4)), [obj.class_id], obj.box_xyxy[None])
    assert pooled_peaks(empty)[0].size == 0


def test_command_writes_a_loadable_calibrated_model(tmp_path, capsys, tiny_model_and_views, monkeypatch):
    """The tiny model dir and views, with a stand-in aligner that finds every object and adds boxes
    where there is none: the fit runs, nothing is written without --write, and --write stores the
    fit where the loader reads it (the sha256 in meta.json follows)."""
    from cad_perception_ros.cli.main import main
    from cad_perception_ros.runtime.network import load_network
    from cad_perception_ros.tools import calibrate_scores
    model_dir, _, dataset = tiny_model_and_views(tmp_path, views=3)
    truth = {dataset[i].image.tobytes(): dataset[i].objects for i in range(len(dataset))}
    rng = np.random.default_rng(0)

    def stand_in(image, K):
        found = [_pred(SCAN2CAD_CLASSES[o.class_id], float(rng.uniform(0.2, 0.7)), o.box_xyxy) for o in truth[image.tobytes()]]
        return found + [_pred("chair", float(rng.uniform(0.1, 0.6)), [0, 0, 3, 3]) for _ in range(4)]

    monkeypatch.setattr(calibrate_scores.CadAligner, "from_model_dir", classmethod(lambda cls, *a, **k: stand_in))
    before = (model_dir / "config.yaml").read_bytes()
    argv = ["calibrate-scores", "--model-dir", str(model_dir), "--data", str(tmp_path / "data"), "--limit", "3"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "score_calibration:" in out and "share right" in out
    all_row = next(line for line in out.splitlines() if line.startswith("| all |"))
    assert all_row.split("|")[3].strip() == "100.0 %"  # the stand-in finds every object, at some score
    assert (model_dir / "config.yaml").read_bytes() == before  # nothing written without --write
    assert main([*argv, "--write"]) == 0
    stored = yaml.safe_load((model_dir / "config.yaml").read_text())["model"]["score_calibration"]
    assert len(stored) == 2 and stored[0] > 0
    assert load_network(model_dir).config.score_calibration == tuple(stored)  # sha256 in meta.json updated


def test_bad_input_is_a_clear_error(tmp_path, capsys):
    from cad_perception_ros.cli.main import main
    assert main(["calibrate-scores", "--model-dir", str(tmp_path / "none"), "--data", str(tmp_path)]) == 2
    assert "calibrate-scores:" in capsys.readouterr().err


def test_logit_is_finite_at_the_ends():
    assert np.isfinite(logit(np.array([0.0, 1.0]))).all()
