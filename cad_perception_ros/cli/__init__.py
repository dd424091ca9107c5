"""Thin command modules, one per subcommand, behind the `cad-perception` dispatcher (cli/main.py)."""
from cad_perception_ros.cli.main import main

__all__ = ["main"]
