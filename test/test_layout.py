"""The package's layout rules, read from its source with `ast` (nothing is imported):

- the import graph of cad_perception_ros (module-level imports) has no cycle;
- an import inside a function is for an optional heavy dependency only (OPTIONAL below);
- rclpy and ROS message packages are imported only in ros/ (the node and its pure helpers) and
  in the ROS tools of tools/ (demo and its report, soak, soak client, camera player, recorder): the library, the
  commands of cli/ and the other tools run without ROS;
- tools/ and model/roca/ open with the one-line docstrings other code relies on.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cad_perception_ros"

# Imports allowed inside functions: optional (extras) or heavy dependencies that only one backend,
# renderer, plot or ROS path needs, so that the library imports without them.
OPTIONAL = {
    "onnxruntime", "onnx", "tensorrt", "polygraphy",  # backends and export checks (extras: onnx)
    "pybullet",  # the renderer (extras: render)
    "matplotlib",  # plots only (heavy to import; the library runs without drawing)
    "psutil",  # the soak's memory readings
    "ament_index_python",  # the installed share directory, only on a ROS 2 install
    "rosbags", "mcap", "mcap_ros2",  # recording (extras: record)
    "rclpy", "rcl_interfaces", "builtin_interfaces", "std_msgs", "sensor_msgs", "geometry_msgs",
    "diagnostic_msgs", "visualization_msgs", "vision_msgs", "tf2_msgs",  # ROS, in the CLI's path
    "std_srvs",  # the object map's clear service, where the interface package is built
}
ROS_MODULES = {"rclpy", "rcl_interfaces", "builtin_interfaces", "std_msgs", "sensor_msgs", "geometry_msgs",
               "diagnostic_msgs", "visualization_msgs", "vision_msgs", "tf2_msgs", "std_srvs", "cad_perception_ros.msg"}
ROS_TOOLS = {"tools/demo.py", "tools/demo_report.py", "tools/soak.py", "tools/soak_client.py", "tools/camera_player.py", "tools/recording.py",
             "tools/stream_benchmark.py", "tools/bag_mcap.py"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str):
    """(node, absolute module name, names, inside a function) for every import statement of the
    package module `name` (relative imports resolved)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield child, alias.name, (), in_function
            elif isinstance(child, ast.ImportFrom):
                base = package.split(".")[:len(package.split(".")) - child.level + 1] if child.level else []
                module = ".".join(base + ([child.module] if child.module else []))
                yield child, module, tuple(a.name for a in child.names), in_function
            yield from visit(child, inner)
    yield from visit(ast.parse(path.read_text(encoding="utf-8")), False)


def _targets(module: str, names: tuple[str, ...]) -> set[str]:
    """Package modules an import statement loads: the module, its packages, and submodules named."""
    out = set()
    parts = module.split(".")
    for i in range(1, len(parts) + 1):
        if ".".join(parts[:i]) in MODULES:
            out.add(".".join(parts[:i]))
    out |= {f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES}
    return out


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        edges = set()
        for _, module, names, in_function in _imports(name):
            if not in_function and module.startswith("cad_perception_ros"):
                edges |= _targets(module, names)
        edges.discard(name)
        # a package's own __init__ is imported before its submodules: not an edge back
        graph[name] = {e for e in edges if not name.startswith(e + ".")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := dfs(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := dfs(node)):
            return found
    return None


def test_find_cycle_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert "cad_perception_ros.pipeline" in graph and graph["cad_perception_ros.pipeline"], "graph not read"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_function_level_imports_are_for_optional_dependencies_only():
    offenders = []
    for name, path in MODULES.items():
        for node, module, _, in_function in _imports(name):
            top = module.split(".")[0]
            if in_function and top not in OPTIONAL and module != "cad_perception_ros.msg":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {module}")
    assert not offenders, "imports inside functions (hoist them, or add an optional dependency to OPTIONAL):\n" + \
        "\n".join(offenders)


def test_ros_is_imported_only_in_ros_and_the_ros_tools():
    offenders = []
    for name, path in MODULES.items():
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("ros/") or rel in ROS_TOOLS:
            continue
        for node, module, _, _ in _imports(name):
            if module.split(".")[0] in ROS_MODULES or module.startswith("cad_perception_ros.msg") \
                    or module.startswith("cad_perception_ros.ros"):
                offenders.append(f"{rel}:{node.lineno}: {module}")
    assert not offenders, "ROS imported outside ros/ and the ROS tools:\n" + "\n".join(offenders)


@pytest.mark.parametrize("path, docstring", [
    ("tools/__init__.py",
     "Research and operations tools: ablations, model soups, diagnostics, demo, soak, benchmarks."),
    ("model/roca/__init__.py", "ROCA: network, heads, decode and the zoom-in crop network."),
])
def test_package_docstrings(path, docstring):
    text = (PACKAGE / path).read_text(encoding="utf-8")
    assert text == f'"""{docstring}"""\n'


def test_the_library_does_not_import_commands_or_tools():
    """cli/ and tools/ sit on top of the library: no library module imports either."""
    graph = import_graph()
    offenders = [f"{a} -> {b}" for a, edges in graph.items() for b in edges
                 if not a.startswith(("cad_perception_ros.cli", "cad_perception_ros.tools"))
                 and b.startswith(("cad_perception_ros.cli", "cad_perception_ros.tools"))]
    assert not offenders, "\n".join(offenders)
