"""`average`: weight averaging of ROCA model directories of one architecture."""
import json

import pytest
import torch

from cad_perception_ros.cli import main
from cad_perception_ros.model.checkpoint import load_model_dir
from cad_perception_ros.runtime.random_model import save_random_model_dir
from cad_perception_ros.tools.average import average_state_dicts


@pytest.fixture(scope="module")
def two_models(tmp_path_factory, procedural_db_dir):
    root = tmp_path_factory.mktemp("soup")
    return [save_random_model_dir(root / f"m{seed}", cad_db=procedural_db_dir(), seed=seed) for seed in (0, 1)]


def test_average_writes_the_mean_weights_and_fresh_cad_embeddings(two_models, tmp_path, capsys, procedural_db_dir):
    out = tmp_path / "avg"
    assert main(["average", "--model-dir", str(two_models[0]), "--model-dir", str(two_models[1]),
                 "--out", str(out), "--name", "soup"]) == 0
    a, b, avg = (load_model_dir(p) for p in (*two_models, out))
    key = "alignment.noc.0.weight"
    sa, sb = a.model.state_dict()[key], b.model.state_dict()[key]
    assert not torch.equal(sa, sb)
    assert torch.allclose(avg.model.state_dict()[key], (sa + sb) / 2, atol=1e-6)
    assert avg.config.name == "soup" and len(avg.cad_ids) == len(a.cad_ids) > 0
    from cad_perception_ros.cad.database import CadDatabase
    grids = torch.as_tensor(CadDatabase.load(procedural_db_dir()).grids)
    assert torch.allclose(torch.as_tensor(avg.cad_embeddings), avg.model.embed_cads(grids), atol=1e-5)
    assert not (avg.cad_embeddings == a.cad_embeddings).all()
    assert json.loads((out / "meta.json").read_text())["averaged_from"] == [str(p.resolve()) for p in two_models]
    # refuses to replace without --overwrite
    assert main(["average", "--model-dir", str(two_models[0]), "--model-dir", str(two_models[1]),
                 "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_average_refuses_other_architectures_and_a_single_model(two_models):
    state = {"w": torch.zeros(2, 3), "steps": torch.tensor(3)}
    with pytest.raises(ValueError, match="shape"):
        average_state_dicts([state, {"w": torch.zeros(3, 3), "steps": torch.tensor(3)}])
    with pytest.raises(ValueError, match="other tensors"):
        average_state_dicts([state, {"w": torch.zeros(2, 3)}])
    merged = average_state_dicts([state, {"w": torch.ones(2, 3), "steps": torch.tensor(5)}])
    assert torch.allclose(merged["w"], torch.full((2, 3), 0.5)) and int(merged["steps"]) == 3
    assert main(["average", "--model-dir", str(two_models[0]), "--out", "/tmp/unused_avg"]) == 2
