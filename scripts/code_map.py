"""The code map of docs/architecture.md: every module under src/batchyard with the first
paragraph of its docstring. `python scripts/code_map.py` prints it, `--write` puts it
into the page; tests/unit/test_docs.py checks that the page holds the current one."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "src" / "batchyard"
WIDTH = 88


def _doc(path: Path) -> str:
    first = (ast.get_docstring(ast.parse(path.read_text())) or "").strip().split("\n\n")[0]
    first = first.replace("\n", " ")
    return first[:WIDTH] + "…" if len(first) > WIDTH + 1 else first


def code_map(directory: Path = ROOT, depth: int = 0) -> list[str]:
    lines = []
    indent = "  " * depth
    for path in sorted(directory.iterdir(), key=lambda p: (p.is_file(), p.name)):
        if path.name == "__pycache__" or (path.name == "__init__.py" and depth):
            continue
        if path.is_dir():
            if not any(path.rglob("*.py")):
                continue  # a package's data, or a folder git does not keep
            if path.name == "migrations":
                lines.append(f"{indent}migrations/  numbered SQL migrations of both databases")
                continue
            init = path / "__init__.py"
            lines.append(f"{indent}{path.name}/  {_doc(init) if init.exists() else ''}".rstrip())
            lines += code_map(path, depth + 1)
        elif path.suffix == ".py" and path.name != "__init__.py":
            lines.append(f"{indent}{path.name:<24}{_doc(path)}".rstrip())
    return lines


def write(page: Path = ROOT.parent.parent / "docs" / "architecture.md") -> None:
    head, rest = page.read_text().split("## Code map", 1)
    intro, _, tail = rest.split("```", 2)
    page.write_text(f"{head}## Code map{intro}```\n" + "\n".join(code_map()) + f"\n```{tail}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write()
    else:
        print("\n".join(code_map()))
