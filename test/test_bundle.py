"""`bundle`: a verified copy of a model directory that finds its CAD database from its new place."""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from cad_perception_ros.cli import main
from cad_perception_ros.model.checkpoint import ModelDirError
from cad_perception_ros.pipeline import CadAligner
from cad_perception_ros.runtime.random_model import save_random_model_dir
from cad_perception_ros.tools.bundle import bundle

MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.fixture(scope="module")
def source(tmp_path_factory, procedural_db_dir):
    return save_random_model_dir(tmp_path_factory.mktemp("run") / "model", cad_db=procedural_db_dir())


def test_bundled_copy_predicts_like_the_source_from_another_folder(source, tmp_path, procedural_db_dir):
    db = tmp_path / "elsewhere" / "cad_db"
    db.parent.mkdir()

    shutil.copytree(procedural_db_dir(), db)
    out = bundle(source, tmp_path / "models" / "roca", db)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["cad_db"] == "../../elsewhere/cad_db" and meta["bundle"]["source"] == str(source.resolve())
    image = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    K = np.array([[70.0, 0, 40], [0, 70.0, 30], [0, 0, 1]])
    a = CadAligner.from_model_dir(source, score_threshold=0.0)(image, K)
    b = CadAligner.from_model_dir(out, score_threshold=0.0)(image, K)
    assert len(a) == len(b) > 0
    assert [p.cad_id for p in a] == [p.cad_id for p in b]
    assert np.allclose([p.alignment.translation for p in a], [p.alignment.translation for p in b])


def test_bundle_refuses_to_overwrite_and_refuses_a_tampered_source(source, tmp_path, capsys, procedural_db_dir):
    out = tmp_path / "out"
    args = ["bundle", "--model-dir", str(source), "--out", str(out), "--cad-db", str(procedural_db_dir())]
    assert main(args) == 0
    assert main(args) == 2 and "--overwrite" in capsys.readouterr().err
    tampered = tmp_path / "tampered"

    shutil.copytree(source, tampered)
    with open(tampered / "model.safetensors", "r+b") as f:
        f.seek(200)
        f.write(b"\x00" * 16)
    with pytest.raises(ModelDirError):
        bundle(tampered, tmp_path / "out2", procedural_db_dir())


@pytest.mark.parametrize("name, database, crop", [("roca", "cad_db_v2", True), ("roca_v1", "cad_db", False)])
def test_both_shipped_roca_bundles_verify_and_bundle_again_with_their_database(name, database, crop, tmp_path, tampered_copy):
    """models/roca (the default, ROCA v2: crop network, models/cad_db_v2) and models/roca_v1 (the
    previous bundle: no crop network, models/cad_db) each name their database and bundle again, every
    hashed file byte for byte; a tampered crop network is refused."""
    shipped = MODELS / name
    meta = json.loads((shipped / "meta.json").read_text())
    assert (shipped / meta["cad_db"]).resolve() == (MODELS / database).resolve()
    assert bool(meta.get("crop_network")) == crop == ("crop_model.safetensors" in meta["sha256"])
    out = bundle(shipped, tmp_path / "models" / name, MODELS / database)
    copied = json.loads((out / "meta.json").read_text())
    assert copied["sha256"] == meta["sha256"] and copied.get("crop_network") == meta.get("crop_network")
    assert copied["cad_db"] == os.path.relpath((MODELS / database).resolve(), out.resolve())
    assert all((out / f).read_bytes() == (shipped / f).read_bytes() for f in meta["sha256"])
    if crop:
        tampered = tampered_copy(shipped, tmp_path / "tampered", "crop_model.safetensors")
        with pytest.raises(ModelDirError, match="crop_model.safetensors"):
            bundle(tampered, tmp_path / "out_tampered", MODELS / database)
