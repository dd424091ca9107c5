"""load_yaml: a key written twice in one mapping is an error naming the key and its line (plain
YAML keeps the last silently: a config edited by copying a section would lose the first)."""
from __future__ import annotations

import pytest

from cad_perception_ros.config import ConfigError, load_yaml
from cad_perception_ros.model.config import load_experiment


def _write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_top_level_key_written_twice(tmp_path):
    path = _write(tmp_path, "model: depth\n# a comment\nmodel:\n  name: x\n")
    with pytest.raises(ConfigError, match=r"key 'model' \(line 3\) is written twice"):
        load_yaml(path)


def test_a_nested_key_written_twice_fails_through_load_experiment(tmp_path):
    path = _write(tmp_path, "train:\n  batch_size: 4\n  max_steps: 10\n  batch_size: 16\n")
    with pytest.raises(ConfigError, match=r"c.yaml: key 'batch_size' \(line 4\)"):
        load_experiment(path)


def test_the_same_key_in_different_mappings_and_merge_keys_are_fine(tmp_path):
    path = _write(tmp_path, "a: &base\n  name: x\n  size: 1\nb:\n  <<: *base\n  name: y\nc:\n  - name: 1\n  - name: 2\n")
    assert load_yaml(path) == {"a": {"name": "x", "size": 1}, "b": {"name": "y", "size": 1},
                               "c": [{"name": 1}, {"name": 2}]}


def test_yaml_alias_bomb_is_refused_quickly(tmp_path):
    import time

    from cad_perception_ros.config import ConfigError, load_yaml
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i-1}"] * 9) + "]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="alias bomb"):
        load_yaml(path)
    assert time.perf_counter() - start < 2.0
    ok = tmp_path / "aliases.yaml"
    ok.write_text("base: &b {lr: 0.1}\nstage: {<<: *b, steps: 3}\n")
    assert load_yaml(ok)["stage"] == {"lr": 0.1, "steps": 3}


def test_train_names_a_broken_config_in_one_line(tmp_path, capsys):
    from cad_perception_ros.cli.main import main
    bad = tmp_path / "twice.yaml"
    bad.write_text("model:\n  name: a\nmodel:\n  name: b\n", encoding="utf-8")
    assert main(["train", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("train: ") and "written twice" in err and "Traceback" not in err
    assert main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in capsys.readouterr().err
