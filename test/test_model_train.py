"""Training: the loss falls on a few tiny scenes; checkpoint resume reproduces the next step."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cad_perception_ros.model.config import load_experiment
from cad_perception_ros.model.roca.network import RocaNet
from cad_perception_ros.model.training import batch_indices, learning_rate, train_loop

pytestmark = pytest.mark.slow  # runs the training loop

TINY = Path(__file__).resolve().parents[1] / "config" / "roca_tiny.yaml"


@pytest.fixture(scope="module")
def exp():
    return load_experiment(TINY)


@pytest.fixture(scope="module")
def scenes(exp, make_scene):
    rng = np.random.default_rng(0)
    return [make_scene(rng, size=exp.model.input_size) for _ in range(3)]


def test_learning_rate_schedule(exp):
    tc = dataclasses.replace(exp.train, base_lr=1.0, warmup_steps=10, warmup_factor=0.1, lr_decay_steps=(20,))
    assert learning_rate(0, tc) == pytest.approx(0.1)
    assert learning_rate(5, tc) == pytest.approx(0.55)
    assert learning_rate(15, tc) == pytest.approx(1.0)
    assert learning_rate(25, tc) == pytest.approx(0.1)


def test_batch_indices_split_ranks_and_cover_epoch():
    both = batch_indices(0, 8, 2, seed=0, rank=0, world=2) + batch_indices(0, 8, 2, seed=0, rank=1, world=2)
    assert len(set(both)) == 4  # ranks see disjoint samples
    epoch = sum((batch_indices(s, 8, 2, seed=0) for s in range(4)), [])
    assert sorted(epoch) == list(range(8))


def test_training_loss_falls(exp, scenes, tmp_path, make_cads):
    torch.manual_seed(0)
    model = RocaNet.from_config(exp.model)
    rows = train_loop(model, scenes, make_cads(), exp, tmp_path, max_steps=30, progress=False)
    total = [r["total"] for r in rows]
    assert not any(r["skipped"] for r in rows)
    first, last = np.mean(total[:5]), np.mean(total[-5:])
    assert last < 0.7 * first, (first, last)
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(logged) == 30 and (tmp_path / "loss_curves.png").stat().st_size > 1000


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_resume_gives_identical_next_step(exp, scenes, tmp_path, optimizer, make_cads):
    exp = dataclasses.replace(exp, train=dataclasses.replace(exp.train, checkpoint_every=3, optimizer=optimizer))
    torch.manual_seed(0)
    straight = train_loop(RocaNet.from_config(exp.model), scenes, make_cads(), exp, tmp_path / "a",
                          max_steps=4, progress=False)
    torch.manual_seed(0)
    train_loop(RocaNet.from_config(exp.model), scenes, make_cads(), exp, tmp_path / "b", max_steps=3, progress=False)
    torch.manual_seed(123)  # a different initialisation: everything must come from the checkpoint
    resumed = train_loop(RocaNet.from_config(exp.model), scenes, make_cads(), exp, tmp_path / "b",
                         resume=True, max_steps=4, progress=False)
    assert len(resumed) == 1 and resumed[0]["step"] == 4
    assert resumed[0]["total"] == pytest.approx(straight[3]["total"], rel=1e-5, abs=1e-6)


def test_teacher_forcing_feeds_ground_truth_depth_points(exp, scenes, make_cads):
    """gt_depth_points=1: the alignment losses no longer depend on the predicted depth."""
    from cad_perception_ros.model.roca.targets import collate
    batch = collate(scenes[:2], num_classes=exp.model.num_classes, input_size=exp.model.input_size, cads=make_cads())
    torch.manual_seed(0)
    model = RocaNet.from_config(exp.model).train()
    model.alignment.code[-1].p = 0.0  # no dropout: two forwards must agree

    def translation_init(gt_points):
        return float(model.forward_train(batch, gt_depth_points=gt_points)["translation_init"])

    forced = translation_init(1.0)
    with torch.no_grad():
        model.depth.to_depth.bias += 2.0  # a different predicted depth everywhere
    assert translation_init(1.0) == pytest.approx(forced, rel=1e-5)
    assert translation_init(0.0) != pytest.approx(forced, rel=1e-3)
    with pytest.raises(ValueError, match="gt_depth_points"):
        dataclasses.replace(exp.train, gt_depth_points=1.5)


def test_resized_cache_decodes_once_and_resizes(exp, scenes):
    from cad_perception_ros.data.dataset import ResizedCache

    class Counting(list):
        reads = 0

        def __getitem__(self, i):
            Counting.reads += 1
            return list.__getitem__(self, i)

    cache = ResizedCache(Counting(scenes), (32, 40))
    first = cache[1]
    assert first.size == (32, 40) and first.image.shape == (32, 40, 3)
    assert cache[1] is first and cache[-2] is first and Counting.reads == 1
    assert len(cache) == 3 and [o.class_id for o in cache.objects_of(0)] == [o.class_id for o in scenes[0].objects]
    with pytest.raises(IndexError):
        cache[3]


def test_init_from_copies_named_modules_and_freeze_keeps_them(exp, scenes, tmp_path, make_cads):
    from cad_perception_ros.model.checkpoint import ModelDirError, init_from_weights
    torch.manual_seed(0)
    trained = RocaNet.from_config(exp.model)
    train_loop(trained, scenes, make_cads(), exp, tmp_path / "a", max_steps=2, progress=False)
    source = tmp_path / "a" / "checkpoint"
    torch.manual_seed(1)
    fresh = RocaNet.from_config(exp.model)
    names = init_from_weights(fresh, source, ["backbone"])
    assert names and all(n.startswith("backbone.") for n in names)
    assert torch.equal(fresh.state_dict()[names[0]], trained.state_dict()[names[0]])
    assert not torch.equal(fresh.alignment.noc[0].weight, trained.alignment.noc[0].weight)
    with pytest.raises(ModelDirError, match="no_such_module"):
        init_from_weights(fresh, source, ["no_such_module"])
    before = {k: v.clone() for k, v in fresh.backbone.state_dict().items()}
    tc = dataclasses.replace(exp.train, freeze=("backbone",))
    train_loop(fresh, scenes, make_cads(), dataclasses.replace(exp, train=tc), tmp_path / "b", max_steps=2, progress=False)
    assert all(torch.equal(before[k], v) for k, v in fresh.backbone.state_dict().items())
    bad = dataclasses.replace(exp, train=dataclasses.replace(exp.train, freeze=("no_such_module",)))
    with pytest.raises(ValueError, match="no_such_module"):
        train_loop(fresh, scenes, make_cads(), bad, tmp_path / "c", max_steps=1, progress=False)


def test_init_from_a_model_without_some_tensors_keeps_their_initialisation(exp, scenes, tmp_path, capsys, make_cads):
    """A model with layers the init_from source lacks inside a module it has (here the learned
    Procrustes weights, which a P+E ablation run has not) gets every other tensor copied, predicts
    the same NOCs, learns the new layer and says which tensors it kept."""
    from cad_perception_ros.model.checkpoint import init_from_weights
    from cad_perception_ros.model.roca.targets import collate
    uniform = dataclasses.replace(exp.model, ablation=dataclasses.replace(exp.model.ablation, learned_weights=False))
    torch.manual_seed(0)
    plain = RocaNet.from_config(uniform)
    train_loop(plain, scenes, make_cads(), dataclasses.replace(exp, model=uniform), tmp_path / "a", max_steps=1,
               progress=False)
    wider = RocaNet.from_config(exp.model)
    modules = [name for name, _ in plain.named_children()]
    names = init_from_weights(wider, tmp_path / "a" / "checkpoint", modules)
    assert "alignment.weight.0.weight" not in names and "alignment.noc.0.weight" in names
    plain.eval()
    wider.eval()
    h, w = exp.model.input_size
    image, K = torch.rand(1, 3, h, w), torch.tensor([[[w, 0, w / 2], [0, w, h / 2], [0, 0, 1.0]]])
    with torch.no_grad():
        assert torch.allclose(plain(image, K)["nocs"], wider(image, K)["nocs"])
    wider.train()
    batch = collate(scenes[:1], num_classes=exp.model.num_classes, input_size=exp.model.input_size, cads=make_cads())
    wider(batch)["total"].backward()
    assert wider.alignment.weight[0].weight.grad.abs().sum() > 0
    tc = dataclasses.replace(exp.train, init_from=str(tmp_path / "a" / "checkpoint"), init_modules=tuple(modules))
    again = RocaNet.from_config(exp.model)
    train_loop(again, scenes, make_cads(), dataclasses.replace(exp, train=tc), tmp_path / "b",
               max_steps=1, progress=False)
    assert "kept at their initialisation: ['alignment.weight." in capsys.readouterr().out


def test_collate_names_a_class_outside_the_model(exp, scenes, make_cads):
    from cad_perception_ros.model.roca.targets import collate
    with pytest.raises(ValueError, match="outside the model's 1 classes"):
        collate(scenes, num_classes=1, input_size=exp.model.input_size, cads=make_cads())


def test_moving_average_trailing_and_nan_safe():
    from cad_perception_ros.model.training import moving_average
    out = moving_average(np.array([1.0, 3.0, np.nan, 5.0, 7.0]), 2)
    np.testing.assert_allclose(out, [1.0, 2.0, 3.0, 5.0, 6.0])


def test_worker_processes_build_the_same_batches(exp, scenes, tmp_path, make_cads):
    """train.num_workers 2: batches built ahead by a DataLoader's workers give the same losses."""
    losses = {}
    for workers in (0, 2):
        run = dataclasses.replace(exp, train=dataclasses.replace(exp.train, num_workers=workers))
        torch.manual_seed(0)
        rows = train_loop(RocaNet.from_config(exp.model), scenes, make_cads(), run, tmp_path / str(workers),
                          max_steps=3, progress=False)
        losses[workers] = [r["total"] for r in rows]
        assert all(0 <= r["data_seconds"] <= r["seconds"] for r in rows)
    assert losses[2] == pytest.approx(losses[0], rel=1e-5)


def test_checkpoint_before_the_first_logged_step(exp, scenes, tmp_path, make_cads):
    """A checkpoint written before metrics.jsonl exists (checkpoint_every < log_every) must not fail."""
    run = dataclasses.replace(exp, train=dataclasses.replace(exp.train, checkpoint_every=1, log_every=5))
    train_loop(RocaNet.from_config(exp.model), scenes, make_cads(), run, tmp_path, max_steps=2, progress=False)
    assert (tmp_path / "checkpoint" / "state.json").is_file()
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 1  # the last step is always logged


def test_num_workers_must_not_be_negative(exp):
    with pytest.raises(ValueError, match="num_workers"):
        dataclasses.replace(exp.train, num_workers=-1)


def test_time_limit_stops_with_a_checkpoint_and_resumes(exp, scenes, tmp_path, make_cads):
    """max_seconds: the run stops after the first step past the limit, logs and checkpoints that
    step (off the checkpoint_every grid), and --resume goes on from it."""
    run = dataclasses.replace(exp, train=dataclasses.replace(exp.train, checkpoint_every=100, log_every=100))
    model = RocaNet.from_config(exp.model)
    rows = train_loop(model, scenes, make_cads(), run, tmp_path, max_steps=50, progress=False, max_seconds=1e-6)
    assert len(rows) == 1
    state = json.loads((tmp_path / "checkpoint" / "state.json").read_text())
    assert state["step"] == 1
    assert [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1]
    more = train_loop(RocaNet.from_config(exp.model), scenes, make_cads(), run, tmp_path, resume=True, max_steps=3,
                      progress=False)
    assert [r["step"] for r in more] == [2, 3]
