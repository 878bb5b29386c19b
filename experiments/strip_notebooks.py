"""Strip outputs and execution counts from notebooks (what git should hold).

    python experiments/strip_notebooks.py notebooks/*.ipynb        # in place
    git config filter.strip-notebook-outputs.clean "python experiments/strip_notebooks.py --stdin"

The second line enables the .gitattributes filter, so outputs never reach a commit.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def strip(nb: dict) -> dict:
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        cell.get("metadata", {}).pop("execution", None)
    return nb


def dump(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    if argv == ["--stdin"]:
        sys.stdout.write(dump(strip(json.load(sys.stdin))))
        return 0
    for p in map(Path, argv):
        p.write_text(dump(strip(json.loads(p.read_text()))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
