"""ROCA v2's detection rescoring: the crop classifier, the fusion of peak and crop probability, the
suppression of overlaps, the pipeline with and without a classifier, mining and training."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cad_perception_ros.model.checkpoint import ModelDirError
from cad_perception_ros.model.roca.classifier_training import (
    ClassifierExperiment,
    ClassifierTrainConfig,
    load_classifier,
    mine_candidates,
    save_classifier,
    train_classifier,
)
from cad_perception_ros.model.roca.crop_classifier import (
    ClassifierConfig,
    CropClassifier,
    export_classifier_onnx,
    fit_fusion,
    fused_scores,
    suppress_overlaps,
)
from cad_perception_ros.pipeline import CadAligner, preprocess
from cad_perception_ros.runtime.rescoring import Rescorer, attach_crop_classifier, load_rescorer
from cad_perception_ros.types import Alignment9D, CadPrediction

ROOT = Path(__file__).resolve().parents[1]
V1 = ROOT / "models" / "roca_v1"


def _classifier(**config) -> CropClassifier:
    torch.manual_seed(0)
    return CropClassifier(config=ClassifierConfig(max_crops=4, **config)).eval()


def _prediction(box, score, class_id=0) -> CadPrediction:
    return CadPrediction(class_id=class_id, class_name="chair", score=score, box_xyxy=np.asarray(box, np.float64),
                         alignment=Alignment9D(np.eye(3), np.array([0.0, 0.0, 2.0]), np.ones(3)), cad_id="x")


def test_the_classifier_gives_one_logit_per_class_and_background_and_its_graph_matches(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = _classifier()
    crops, log_side = torch.rand(4, 3, 64, 64), torch.tensor([0.0, 0.5, -0.5, 1.0])
    logits = model(crops, log_side)
    assert logits.shape == (4, len(model.config.class_names) + 1)
    path = export_classifier_onnx(model, tmp_path / "c.onnx")
    got = ort.InferenceSession(str(path)).run(["logits"], {"crops": crops.numpy(), "log_side": log_side.numpy()})[0]
    np.testing.assert_allclose(got, logits.detach().numpy(), rtol=1e-4, atol=1e-4)


def test_the_fused_score_grows_with_the_peak_and_the_class_probability_and_the_fit_finds_it():
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.1, 0.7]])  # 2 classes + background
    a = fused_scores(np.array([0.3, 0.3]), np.array([0, 0]), probs, (1.0, 1.0, 0.0, 0.0))
    assert a[0] > a[1]  # the same peak, a crop that looks like its class
    b = fused_scores(np.array([0.2, 0.6]), np.array([0, 0]), probs[[0, 0]], (1.0, 1.0, 0.0, 0.0))
    assert b[1] > b[0]
    rng = np.random.default_rng(0)
    n = 2000
    right = rng.random(n) < 0.4
    p_class = np.where(right, rng.uniform(0.5, 1.0, n), rng.uniform(0.0, 0.5, n))
    probs = np.stack([p_class, np.zeros(n), 1 - p_class], 1)
    peaks = rng.uniform(0.05, 0.9, n)  # uninformative here
    a, b, c, d = fit_fusion(peaks, np.zeros(n, int), probs, right.astype(float))
    assert b > 1.0 and abs(a) < 0.5  # the crop carries the evidence, the peak none


def test_overlaps_of_any_class_are_suppressed_best_first():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], float)
    kept = suppress_overlaps(boxes, np.array([0.4, 0.9, 0.5]), 0.7)
    assert kept.tolist() == [1, 2]
    assert sorted(suppress_overlaps(boxes, np.array([0.4, 0.9, 0.5]), 1.0).tolist()) == [0, 1, 2]  # off


def test_the_rescorer_replaces_scores_drops_those_below_the_threshold_and_caps_the_candidates():
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    preds = [_prediction([10 + 60 * i, 10, 60 + 60 * i, 60], 0.1 + 0.01 * i) for i in range(8)]
    high = Rescorer(model=_classifier(fusion=(0.0, 0.0, 0.0, 3.0), max_candidates=5))
    got = high(image, preds, 0.5)
    assert len(got) == 5 and all(abs(p.score - 1 / (1 + np.exp(-3.0))) < 1e-9 for p in got)
    assert {p.box_xyxy[0] for p in got} == {p.box_xyxy[0] for p in preds[3:]}  # the 5 highest peaks
    low = Rescorer(model=_classifier(fusion=(0.0, 0.0, 0.0, -3.0)))
    assert low(image, preds, 0.5) == [] and low(image, [], 0.5) == []
    assert len(low(image, preds, 0.0)) == 8


@pytest.fixture(scope="module")
def rescored_dir(tmp_path_factory):
    """A copy of models/roca_v1 with a random crop classifier attached that keeps every candidate."""
    folder = tmp_path_factory.mktemp("rescored") / "roca"
    shutil.copytree(V1, folder)
    save_classifier(folder.parent / "classifier", _classifier(fusion=(0.0, 0.0, 0.0, 3.0)))
    attach_crop_classifier(folder, folder.parent / "classifier")
    return folder


def test_a_model_dir_with_a_classifier_rescores_down_to_its_candidate_score(rescored_dir):
    assert json.loads((rescored_dir / "meta.json").read_text())["crop_classifier"]
    image = np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    K = np.array([[576.0, 0, 320], [0, 576.0, 240], [0, 0, 1]])
    plain = CadAligner.from_model_dir(V1, cad_db=ROOT / "models" / "cad_db", score_threshold=0.5)
    assert plain.rescorer is None
    aligner = CadAligner.from_model_dir(rescored_dir, cad_db=ROOT / "models" / "cad_db", score_threshold=0.5)
    assert aligner.rescorer is not None
    got = aligner(image, K)
    assert aligner.last_timings["rescore"] > 0
    assert all(abs(p.score - 1 / (1 + np.exp(-3.0))) < 1e-9 for p in got)
    # every candidate the decode keeps at the candidate score, less the overlaps
    raw = plain.decode(plain.backend.run(preprocess(image, K, plain.input_size).inputs), image_size=image.shape[:2], score_threshold=aligner.rescorer.config.candidate_score)
    assert 0 < len(got) <= min(len(raw), aligner.rescorer.config.max_candidates)
    onnx = CadAligner.from_model_dir(rescored_dir, backend="onnxruntime", cad_db=ROOT / "models" / "cad_db",
                                     score_threshold=0.5)
    assert [p.class_id for p in onnx(image, K)] == [p.class_id for p in got]


def test_a_changed_classifier_file_is_refused(rescored_dir, tmp_path):
    copy = tmp_path / "roca"
    shutil.copytree(rescored_dir, copy)
    config = copy / "crop_classifier.yaml"
    config.write_text(config.read_text().replace("nms_iou: 0.7", "nms_iou: 0.5"))
    with pytest.raises(ModelDirError, match="crop_classifier.yaml"):
        load_rescorer(copy)


def test_mining_labels_candidates_and_training_writes_a_classifier_with_its_fusion(tmp_path, tiny_model_and_views):
    model_dir, db_dir, dataset = tiny_model_and_views(tmp_path, views=4)
    aligner = CadAligner.from_model_dir(model_dir, cad_db=db_dir, score_threshold=0.05)
    candidates = mine_candidates(aligner, dataset, progress=False)
    n_classes = len(aligner.class_names)
    gt_rows = candidates.claimed < 0
    assert int(gt_rows.sum()) == sum(o.visible_pixels >= 64 for i in range(len(dataset)) for o in dataset[i].objects)
    assert (candidates.label[gt_rows] >= 0).all() and (candidates.label[gt_rows] < n_classes).all()
    assert set(candidates.label.tolist()) <= set(range(-1, n_classes + 1))
    assert candidates.patch.dtype == torch.uint8 and candidates.patch.shape[1:] == (3, 96, 96)
    exp = ClassifierExperiment(classifier=ClassifierConfig(), classifier_train=dataclasses.replace(
        ClassifierTrainConfig(), max_steps=3, batch_size=4, checkpoint_every=3, threads=1, fusion_fraction=0.25))
    rows = train_classifier(exp, tmp_path / "run", candidates, progress=False)
    assert rows[-1]["step"] == 3 and "val_accuracy" in rows[-1]
    trained = load_classifier(tmp_path / "run" / "classifier")
    assert trained.config.fusion != ClassifierConfig().fusion  # fitted on the held-out view


def test_the_bundled_default_rescores_its_candidates():
    from cad_perception_ros.runtime.network import default_model_dir

    bundled = default_model_dir()
    assert json.loads((bundled / "meta.json").read_text())["crop_classifier"]
    aligner = CadAligner.from_model_dir(bundled)
    assert aligner.rescorer is not None and aligner.crop_stage is not None
    assert aligner.rescorer.config.fusion != ClassifierConfig().fusion  # a fitted fusion
