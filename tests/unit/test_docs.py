"""The docs say what the code is: the code map of docs/architecture.md is the current one,
and every relative link of the README and docs/ names a file that exists."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_code_map_is_current() -> None:
    spec = importlib.util.spec_from_file_location("code_map", REPO / "scripts" / "code_map.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    page = (REPO / "docs" / "architecture.md").read_text()
    shown = page.split("## Code map", 1)[1].split("```\n", 1)[1].split("```", 1)[0]
    assert shown.rstrip("\n").split("\n") == module.code_map(), (
        "docs/architecture.md's code map is stale: python scripts/code_map.py"
    )


def test_relative_links_name_files_that_exist() -> None:
    pages = [REPO / "README.md", REPO / "CONTRIBUTING.md", *(REPO / "docs").glob("*.md")]
    for page in pages:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name}: {target}"
