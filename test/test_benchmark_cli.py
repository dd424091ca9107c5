"""`cad-perception benchmark` keeps an earlier run's tables unless told to replace them."""
from cad_perception_ros.cli import main

RETRIEVAL = ["benchmark", "--retrieval", "--cads", "50", "--runs", "1"]


def test_benchmark_refuses_to_overwrite_an_earlier_run(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main([*RETRIEVAL, "--out", str(out)]) == 0
    first = (out / "retrieval.md").read_text()
    assert "| 50 |" in first and (out / "retrieval.png").is_file()
    (out / "retrieval.md").write_text("kept")
    capsys.readouterr()
    assert main([*RETRIEVAL, "--out", str(out)]) == 2
    assert "retrieval.md exists: pass --overwrite" in capsys.readouterr().err
    assert (out / "retrieval.md").read_text() == "kept"
    assert main([*RETRIEVAL, "--out", str(out), "--overwrite"]) == 0
    assert "| 50 |" in (out / "retrieval.md").read_text()


def test_benchmark_checks_before_measuring(tmp_path, capsys):
    """The latency run refuses at once (no model is loaded, nothing is timed) when its tables exist."""
    (tmp_path / "benchmark.png").write_bytes(b"earlier")
    assert main(["benchmark", "--model-dir", str(tmp_path / "no_such_model"), "--out", str(tmp_path)]) == 2
    assert "benchmark.png exists" in capsys.readouterr().err
    assert (tmp_path / "benchmark.png").read_bytes() == b"earlier"
