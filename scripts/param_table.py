#!/usr/bin/env python3
"""Print the node's parameter table (Markdown) from its parameter descriptors, or write it into
README.md between the `<!-- params:begin -->` and `<!-- params:end -->` lines.

Usage: scripts/param_table.py [--write README.md] [--check README.md]
The table is generated from cad_perception_ros/ros/params.py (NodeParams defaults, DESCRIPTIONS,
RANGES, READ_ONLY, CONFIGURE_TIME): after adding a parameter there, run with --write.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from cad_perception_ros.ros import params

BEGIN, END = "<!-- params:begin -->", "<!-- params:end -->"


def _default(value) -> str:
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f'`"{value}"`' if isinstance(value, str) else f"`{value}`"


def markdown_table() -> str:
    """The parameter table: name, type, default, range, when it can change, description."""
    rows = ["| parameter | type | default | range | changes | description |", "|---|---|---|---|---|---|"]
    for f in dataclasses.fields(params.NodeParams):
        low_high = params.RANGES.get(f.name)
        when = ("read-only" if f.name in params.READ_ONLY
                else "while unconfigured" if f.name in params.CONFIGURE_TIME else "at run time")
        rows.append(f"| `{f.name}` | {f.type} | {_default(f.default)} | "
                    f"{f'[{low_high[0]}, {low_high[1]}]' if low_high else ''} | {when} | "
                    f"{params.DESCRIPTIONS[f.name].replace('|', '/')} |")
    return "\n".join(rows) + "\n"


def readme_table(text: str) -> str:
    """The table between the markers of a README text; ValueError without the markers."""
    if BEGIN not in text or END not in text:
        raise ValueError(f"README has no {BEGIN} ... {END} section")
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n") + "\n"


def replace_table(text: str) -> str:
    head, rest = text.split(BEGIN, 1)
    return head + BEGIN + "\n" + markdown_table() + END + rest.split(END, 1)[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", type=Path, metavar="README", help="replace the table in this file")
    parser.add_argument("--check", type=Path, metavar="README", help="exit 1 if this file's table is stale")
    args = parser.parse_args(argv)
    if args.write:
        args.write.write_text(replace_table(args.write.read_text(encoding="utf-8")), encoding="utf-8")
        print(f"wrote the parameter table into {args.write}")
    elif args.check:
        if readme_table(args.check.read_text(encoding="utf-8")) != markdown_table():
            print(f"{args.check}: the parameter table is stale; run scripts/param_table.py --write {args.check}",
                  file=sys.stderr)
            return 1
    else:
        sys.stdout.write(markdown_table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
