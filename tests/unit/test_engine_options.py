"""Engine options checked where they are read: `batch_priority` above 0 (in TOML, on
the command line, in BATCHYARD_BATCH_PRIORITY, and in the engine itself)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from batchyard.cli.options import add_store_and_engine
from batchyard.engines import config as engine_config
from batchyard.engines.config import EngineConfig, ModelConfig
from batchyard.engines.remote.openai_compat import OpenAICompatEngine


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="batchyard")
    add_store_and_engine(p)
    return p


@pytest.mark.parametrize("value", [0, -5])
def test_a_batch_priority_not_above_0_is_refused_in_toml(tmp_path: Path, value: int) -> None:
    path = tmp_path / "engines.toml"
    path.write_text(
        "[[engines]]\nkind = 'openai'\nbase_url = 'http://gpu/v1'\npriority = true\n"
        f"batch_priority = {value}\nmodels = [{{ id = 'm' }}]\n"
    )
    with pytest.raises(ValueError, match="batch_priority must be above 0") as caught:
        engine_config.load(path)
    assert str(path) in str(caught.value)
    path.write_text(path.read_text().replace(f"batch_priority = {value}", "batch_priority = 1"))
    assert engine_config.load(path)[0].batch_priority == 1


def test_a_batch_priority_not_above_0_is_refused_in_code() -> None:
    with pytest.raises(ValueError, match="batch_priority must be above 0"):
        EngineConfig(kind="openai", models=[ModelConfig(id="m")], batch_priority=0)
    with pytest.raises(ValueError, match="batch_priority must be above 0"):
        OpenAICompatEngine("http://gpu/v1", batch_priority=0)
    assert EngineConfig(kind="openai", models=[]).batch_priority == 10


def test_a_batch_priority_not_above_0_is_refused_on_the_command_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert parser().parse_args(["--batch-priority", "3"]).batch_priority == 3
    assert parser().parse_args([]).batch_priority == 10
    for value in ("0", "-1"):
        with pytest.raises(SystemExit):
            parser().parse_args(["--batch-priority", value])
        assert "batch_priority must be above 0" in capsys.readouterr().err


def test_a_batch_priority_not_above_0_is_refused_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BATCHYARD_BATCH_PRIORITY", "0")
    with pytest.raises(SystemExit, match="BATCHYARD_BATCH_PRIORITY='0': batch_priority must"):
        parser()
    monkeypatch.setenv("BATCHYARD_BATCH_PRIORITY", "5")
    assert parser().parse_args([]).batch_priority == 5
