"""Schema migrations, one numbered SQL file each, per database dialect."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load(dialect: str) -> list[Migration]:
    """The dialect's migrations in order (files named `NNNN_name.sql`)."""
    folder = resources.files(__package__).joinpath(dialect)
    migrations = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            migrations.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text()))
    migrations.sort(key=lambda m: m.version)
    return migrations
