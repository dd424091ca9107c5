"""Reading the project's JSON files (manifests, metadata, sidecars) with errors that name the file; writing reports."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def refuses_overwrite(path: str | Path, overwrite: bool, prog: str) -> bool:
    """True, with the reason on stderr, when the output `path` exists and `overwrite` is off: a
    command checks this before its work, so nothing a user made is replaced without asking."""
    if Path(path).exists() and not overwrite:
        print(f"{prog}: {path} exists: pass --overwrite to replace it", file=sys.stderr)
        return True
    return False


def read_json_object(path: str | Path, *, what: str = "JSON file", error: type[Exception] = ValueError
                     ) -> dict[str, Any]:
    """The JSON object stored at `path`.

    Raises `error` (ValueError or a subclass) with the path and `what` in the message when the
    file is missing or unreadable, is not valid UTF-8 JSON, or its top level is not an object.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: {what} is not UTF-8 text: {exc}") from None
    except OSError as exc:
        raise error(f"{path}: {what} cannot be read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path}: {what} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: {what} must be a JSON object, got {type(data).__name__}")
    return data


def write_json_report(path: str | Path, data: Any) -> Path:
    """Write `data` as indented JSON to path (parent folders made); print and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    print(f"wrote {path}")
    return path
