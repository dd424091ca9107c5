"""The README stays a user's page: its parameter table equals the one generated from the node's
parameter descriptors (scripts/param_table.py), it stays short, and the docs it links exist."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _param_table_module():
    spec = importlib.util.spec_from_file_location("param_table", ROOT / "scripts" / "param_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_parameter_table_is_the_generated_one():
    table = _param_table_module()
    generated = table.markdown_table()
    assert "| `score_threshold` | float | `0.5` | [0.0, 1.0] |" in generated
    assert table.readme_table(README.read_text(encoding="utf-8")) == generated, \
        "README's parameter table is stale: run scripts/param_table.py --write README.md"


def test_every_parameter_has_a_row():
    from cad_perception_ros.ros.params import NodeParams

    generated = _param_table_module().markdown_table()
    names = re.findall(r"^\| `(\w+)` \|", generated, flags=re.M)
    assert names == [f for f in NodeParams.__dataclass_fields__]


def test_param_table_check_flags_a_stale_table(tmp_path):
    stale = tmp_path / "README.md"
    stale.write_text("x\n<!-- params:begin -->\n| old |\n<!-- params:end -->\n", encoding="utf-8")
    script = ROOT / "scripts" / "param_table.py"
    assert subprocess.run([sys.executable, str(script), "--check", str(stale)], capture_output=True).returncode == 1
    assert subprocess.run([sys.executable, str(script), "--write", str(stale)], capture_output=True).returncode == 0
    assert subprocess.run([sys.executable, str(script), "--check", str(stale)], capture_output=True).returncode == 0


def test_readme_is_short_and_its_links_resolve():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 300
    links = re.findall(r"\]\(((?:docs|msg|config|launch|scripts)/[^)#]+)", text)
    assert "docs/results.md" in links and "docs/method.md" in links and "docs/training.md" in links
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, missing
