"""ablate-crop: ROCA's Tables 1-2 as decode variants of the bundled ROCA v2 crop network, each row
paired with the shipped decode."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cad_perception_ros.cli import main
from cad_perception_ros.pipeline import CadAligner
from cad_perception_ros.tools.ablate_crop import ROWS, row_aligner

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "roca"


def test_each_row_decodes_the_same_detections_its_own_way(make_image, make_K):
    base = CadAligner.from_model_dir(MODEL, score_threshold=0.0)
    image, K = make_image(2, 480, 640), make_K(480, 640)
    direct = row_aligner(base, MODEL, *ROWS["direct"][:2])(image, K)
    uniform = row_aligner(base, MODEL, *ROWS["P"][:2])
    assert uniform.crop_stage.config.rotation == "procrustes" and not uniform.crop_stage.config.learned_weights
    assert base.crop_stage.config.learned_weights  # the base is not changed
    solved, weighted = uniform(image, K), row_aligner(base, MODEL, *ROWS["P+W"][:2])(image, K)
    assert len(direct) == len(solved) == len(weighted) > 0
    assert all(np.array_equal(a.box_xyxy, b.box_xyxy) for a, b in zip(direct, solved))  # same detections
    assert not all(np.allclose(a.alignment.rotation, b.alignment.rotation) for a, b in zip(direct, solved))
    assert not all(np.allclose(a.alignment.rotation, b.alignment.rotation) for a, b in zip(solved, weighted))
    assert all(np.array_equal(a.alignment.translation, b.alignment.translation) for a, b in zip(direct, solved))  # SITE


def test_ablate_crop_writes_paired_rows_and_names_bad_input(tmp_path, capsys, tiny_model_and_views):
    _, _, dataset = tiny_model_and_views(tmp_path, views=2)
    out = tmp_path / "abl.json"
    assert main(["ablate-crop", "--data", str(tmp_path / "data"), "--only", "direct,P,floor", "--json", str(out),
                 "--md", str(tmp_path / "abl.md")]) == 0
    rows = {r["row"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"direct", "P", "floor"}
    assert "minus_direct" not in rows["direct"] and len(rows["P"]["minus_direct"]) == 2
    assert "| floor |" in (tmp_path / "abl.md").read_text()
    assert main(["ablate-crop", "--data", str(tmp_path / "data"), "--only", "P", "--json", str(out)]) == 2
    assert "exists: pass --overwrite" in capsys.readouterr().err
    assert main(["ablate-crop", "--data", str(tmp_path / "data"), "--only", "nope"]) == 2
    assert "unknown rows ['nope']" in capsys.readouterr().err
    assert main(["ablate-crop", "--data", str(tmp_path / "data"), "--model-dir", str(ROOT / "models" / "roca_v1"),
                 "--only", "P"]) == 2
    assert "no crop network" in capsys.readouterr().err
