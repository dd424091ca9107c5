"""No file the project loads is unpickled: the package never calls pickle / marshal / dill /
joblib / shelve loaders, torch.load without weights_only=True, yaml.load without a safe loader
or np.load(allow_pickle=True), except in the explicitly flagged ROCA pickle reader (which
refuses unless its caller passes allow_pickle=True for a file the user named)."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cad_perception_ros"
ALLOWED = {("data/scan2cad_format.py", "read_roca_cads")}  # the flagged ROCA pickle reader
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "dill", "joblib", "shelve", "cloudpickle"}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def _keyword(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def unsafe_call(call: ast.Call) -> str | None:
    """Why `call` may unpickle, or None."""
    name = _dotted(call.func)
    module, _, func = name.rpartition(".")
    if module.split(".")[0] in UNSAFE_MODULES and (func.startswith("load") or func in ("open", "Unpickler")):
        return f"{name}()"
    if name == "torch.load":
        value = _keyword(call, "weights_only")
        if not (isinstance(value, ast.Constant) and value.value is True):
            return "torch.load without weights_only=True"
    if name in ("yaml.load", "yaml.load_all"):
        loader = _keyword(call, "Loader") or (call.args[1] if len(call.args) > 1 else None)
        if loader is None or _dotted(loader).rpartition(".")[2] not in SAFE_YAML_LOADERS:
            return f"{name} without SafeLoader"
    if name in ("yaml.unsafe_load", "yaml.full_load", "yaml.unsafe_load_all", "yaml.full_load_all"):
        return f"{name}()"
    if name.rpartition(".")[2] == "load" and module in ("np", "numpy"):
        value = _keyword(call, "allow_pickle")
        if value is not None and not (isinstance(value, ast.Constant) and value.value is False):
            return "np.load with allow_pickle other than False"
    return None


def findings(source: str, relative: str) -> list[str]:
    tree = ast.parse(source)
    out = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            if isinstance(child, ast.Call) and (reason := unsafe_call(child)) and (relative, function) not in ALLOWED:
                out.append(f"{relative}:{child.lineno} in {function or '<module>'}: {reason}")
            visit(child, name)

    visit(tree, "")
    return out


def test_checker_catches_each_pattern():
    bad = """
import pickle, torch, yaml, numpy as np
def f(p):
    pickle.load(open(p, 'rb')); pickle.loads(b''); torch.load(p); torch.load(p, weights_only=False)
    yaml.load(p); yaml.load(p, Loader=yaml.FullLoader); yaml.unsafe_load(p); np.load(p, allow_pickle=True)
def ok(p):
    torch.load(p, weights_only=True); yaml.load(p, Loader=yaml.SafeLoader); yaml.safe_load(p); np.load(p)
    np.load(p, allow_pickle=False)
"""
    found = findings(bad, "x.py")
    assert len(found) == 8 and all(" in f: " in f for f in found), found


def test_package_never_unpickles():
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        problems += findings(path.read_text(encoding="utf-8"), relative)
    assert problems == [], "unsafe deserialisation:\n" + "\n".join(problems)


def test_the_flagged_pickle_reader_refuses_by_default(tmp_path):
    import pytest

    from cad_perception_ros.data.scan2cad_format import read_roca_cads
    path = tmp_path / "scan2cad_val_cads.pkl"
    path.write_bytes(b"\x80\x04K\x01.")  # pickle of the int 1
    with pytest.raises(ValueError, match="reading it executes code"):
        read_roca_cads(path)
