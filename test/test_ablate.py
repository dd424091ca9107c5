"""`ablate`: variants resolved strictly, trained, evaluated, tabulated (tiny model, 3 steps)."""
import json

import numpy as np
import pytest
import torch
import yaml

pytest.importorskip("pybullet")


from cad_perception_ros.cli import main  # noqa: E402
from cad_perception_ros.config import ConfigError  # noqa: E402
from cad_perception_ros.data.generate import GenerateConfig, generate_split  # noqa: E402
from cad_perception_ros.paths import asset_root  # noqa: E402
from cad_perception_ros.tools.ablate import variant_experiment  # noqa: E402

TINY = asset_root() / "config" / "roca_tiny.yaml"
VARIANTS = {"direct": {"model": {"ablation": {"rotation_mode": "direct", "end_to_end": False, "learned_weights": False,
                                              "retrieval_mode": "chamfer", "completion": False}}},
            "final": {}}


def test_variant_overrides_are_strict_and_rescale_the_schedule():
    mapping = variant_experiment(TINY, "direct", VARIANTS["direct"], steps=10)
    assert mapping["model"]["ablation"]["rotation_mode"] == "direct" and mapping["model"]["name"].endswith("-direct")
    assert mapping["train"]["max_steps"] == 10 and all(s <= 10 for s in mapping["train"]["lr_decay_steps"])
    with pytest.raises(ConfigError, match="not_a_switch"):
        variant_experiment(TINY, "bad", {"model": {"not_a_switch": True}}, steps=10)
    with pytest.raises(ConfigError, match="rotation_mode"):  # the switches live in model.ablation only
        variant_experiment(TINY, "flat", {"model": {"rotation_mode": "direct"}}, steps=10)
    one = variant_experiment(TINY, "chordal", {"model": {"ablation": {"rotation_loss": "chordal"}}}, steps=10)
    assert one["model"]["ablation"] == {**mapping["model"]["ablation"], "rotation_mode": "procrustes",
                                        "end_to_end": True, "learned_weights": True, "retrieval_mode": "learned",
                                        "completion": True, "rotation_loss": "chordal"}  # the rest: the base's


def test_bundled_ablation_files_resolve_every_variant():
    from cad_perception_ros.config import load_config
    from cad_perception_ros.tools.ablate import AblationConfig
    files = ("ablations.yaml", "ablations_bundle.yaml", "ablations_p2o.yaml")
    for name in files:
        config = load_config(AblationConfig, asset_root() / "config" / name)
        for variant, overrides in config.variants.items():
            mapping = variant_experiment(asset_root() / config.base, variant, overrides or {}, 30,
                                         {**config.train, **config.fine_tune, "init_from": "/somewhere"})
            assert mapping["train"]["freeze"] and mapping["train"]["init_from"] == "/somewhere"
    p2o = load_config(AblationConfig, asset_root() / "config" / "ablations_p2o.yaml")
    hard = variant_experiment(asset_root() / p2o.base, "hard", p2o.variants["hard+collision"], 300)
    assert hard["model"]["ablation"] == {"shape_labels": "hard"}
    assert "roi_size" not in hard["model"] and "gt_depth_points" not in hard["train"]  # P2O fields only
    assert hard["points2objects"]["collision_warmup_steps"] < 300  # rescaled with the run


@pytest.mark.slow
def test_ablate_trains_evaluates_and_writes_one_row_per_variant(tmp_path, capsys, procedural_db_dir):
    data, bench = tmp_path / "data", tmp_path / "bench"  # training views; the benchmark beside them
    for root, split in ((data, "train"), (bench, "val")):
        generate_split(root, GenerateConfig(split=split, scenes=1, views_per_scene=2, seed=4, image_size=(72, 96)),
                       db_dir=procedural_db_dir(), workers=1, progress=False)
    config = tmp_path / "ablations.yaml"
    config.write_text(yaml.safe_dump({"base": str(TINY), "steps": 3, "variants": VARIANTS,
                                      "fine_tune": {"freeze": ["backbone", "detector"]},
                                      "retrieval_comparison": "final", "baseline": "direct"}))
    out = tmp_path / "runs"
    assert main(["ablate", "--config", str(config), "--data", str(data), "--out", str(bench / "x")]) == 2
    assert not (bench / "x").exists() and "no val split" in capsys.readouterr().err  # refused before training
    assert main(["ablate", "--config", str(config), "--data", str(data), "--eval-data", str(bench),
                 "--out", str(out)]) == 0
    rows = json.loads((out / "ablations.json").read_text())
    assert list(rows) == ["direct", "final", "final, Chamfer retrieval"]
    for row in rows.values():
        assert 0.0 <= row["instance_avg"]["alignment_accuracy"] <= 100.0
        low, high = row["instance_alignment_interval"]  # 95 % bootstrap over the images
        assert low <= row["instance_avg"]["alignment_accuracy"] <= high
    assert (out / "direct" / "model" / "model.safetensors").is_file()
    assert rows["final"]["collisions"]["colliding_pairs_per_image"] >= 0.0
    table = (out / "ablations.md").read_text()
    assert table.count("\n| ") == 4  # header + 3 rows
    assert f"{rows['direct']['instance_alignment_interval'][1]:.1f})" in table
    assert "| inst. avg minus direct (paired 95 %) |" in table  # every row against the baseline
    direct_row, final_row = (line for line in table.splitlines() if line.startswith(("| direct", "| final |")))
    assert direct_row.endswith("| - |") and " to " in final_row.rsplit("|", 2)[1]
    assert len(rows["final"]["unit_counts"]) == 2  # (images, 2, classes), kept for the comparison
    assert f"evaluated on {bench}" in table
    # An --only run adds to the table of the same setup; another setup starts a new one.
    assert main(["ablate", "--config", str(config), "--data", str(data), "--eval-data", str(bench),
                 "--out", str(out), "--only", "direct", "--eval-only"]) == 0
    assert list(json.loads((out / "ablations.json").read_text())) == ["direct", "final", "final, Chamfer retrieval"]
    assert (out / "ablations.md").read_text().count("\n| ") == 4
    assert main(["ablate", "--config", str(config), "--data", str(data), "--eval-data", str(bench),
                 "--out", str(out), "--only", "final", "--eval-only", "--steps", "5"]) == 0
    assert list(json.loads((out / "ablations.json").read_text())) == ["final", "final, Chamfer retrieval"]

    # Fine-tuning ablation: every variant starts from the trained trunk and keeps it frozen.
    tuned = tmp_path / "tuned"
    assert main(["ablate", "--config", str(config), "--data", str(data), "--eval-data", str(bench), "--out",
                 str(tuned), "--only", "direct", "--init-from", str(out / "final" / "model")]) == 0
    from safetensors.torch import load_file
    trunk = load_file(str(out / "final" / "model" / "model.safetensors"))
    after = load_file(str(tuned / "direct" / "model" / "model.safetensors"))
    backbone = [k for k in trunk if k.startswith("backbone.")]
    assert backbone and [k for k in backbone if not torch.equal(trunk[k], after[k])] == []
    assert "init_from" in (tuned / "direct" / "experiment.yaml").read_text()


def test_ablate_rejects_a_variant_that_is_not_sections(tmp_path, capsys):
    config = tmp_path / "ablations.yaml"
    config.write_text(yaml.safe_dump({"base": str(TINY), "steps": 3, "variants": {"x": {"rotation_mode": "direct"}}}))
    assert main(["ablate", "--config", str(config), "--data", str(tmp_path)]) == 2
    assert "sections" in capsys.readouterr().err


def test_format_table_compares_rows_with_the_baseline_by_a_paired_bootstrap():
    from cad_perception_ros.tools.ablate import format_table

    def row(aligned):  # 100 one-object images of class 0, the first `aligned` right
        counts = np.zeros((100, 2, 1), dtype=int)
        counts[:, 0, 0] = 1
        counts[:aligned, 1, 0] = 1
        acc = {"alignment_accuracy": float(aligned), "retrieval_accuracy": 0.0, "ap50": 50.0}
        return {"class_avg": acc, "instance_avg": acc, "unit_counts": counts.tolist()}

    rows = {"base": row(10), "better": row(30), "same": row(10), "old": {**row(12), "unit_counts": None},
            "elsewhere": {**row(10), "unit_counts": row(10)["unit_counts"][:50]}}
    lines = format_table(rows, "base").splitlines()
    last = [line.rsplit("|", 2)[1].strip() for line in lines[2:]]
    assert last[0] == "-" and last[2] == "+0.0 (+0.0 to +0.0)" and last[3] == "-" and last[4] == "-"
    diff, band = last[1].split(" ", 1)
    low, high = (float(x) for x in band.strip("()").split(" to "))
    assert diff == "+20.0" and 10.0 < low < 20.0 < high < 30.0  # 20 of 100 images more
    assert "minus" not in format_table(rows)  # no baseline, no column
    assert "minus" not in format_table(rows, "not-a-row")


def test_ablate_rejects_an_unknown_baseline(tmp_path, capsys):
    config = tmp_path / "ablations.yaml"
    config.write_text(yaml.safe_dump({"base": str(TINY), "steps": 3, "variants": VARIANTS, "baseline": "nope"}))
    assert main(["ablate", "--config", str(config), "--data", str(tmp_path)]) == 2
    assert "baseline 'nope' is not a variant" in capsys.readouterr().err


def test_ablate_rejects_an_unknown_variant(tmp_path, capsys):
    config = tmp_path / "ablations.yaml"
    config.write_text(yaml.safe_dump({"base": str(TINY), "steps": 3, "variants": VARIANTS}))
    assert main(["ablate", "--config", str(config), "--data", str(tmp_path), "--only", "nope"]) == 2
    assert "unknown variant" in capsys.readouterr().err
