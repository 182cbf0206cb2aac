"""The TOML routing table: parsing, errors, and name resolution (exact, alias, glob)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from batchyard.engines import config
from batchyard.engines.build import build_router
from batchyard.engines.router import UnknownModel

TABLE = """
[[engines]]
kind = "fake"
name = "cheap"
capacity = 8
models = [
  { id = "fast-model", aliases = ["fast"], display_name = "Fast", max_tokens = 100 },
  { id = "claude-*" },
]

[[engines]]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "NO_SUCH_KEY_VARIABLE"
models = [{ id = "llama", upstream = "meta-llama/Llama-3.1-8B-Instruct" }]
"""


@pytest.mark.anyio
async def test_table_routes_names_aliases_and_globs(tmp_path: Path) -> None:
    path = tmp_path / "batchyard.toml"
    path.write_text(TABLE)
    router = build_router(config.load(path), tmp_path)
    try:
        fast = router.resolve("fast")
        assert (fast.model, fast.upstream, fast.engine.name) == (
            "fast-model",
            "fast-model",
            "cheap",
        )
        assert fast.engine.capacity == 8
        glob = router.resolve("claude-anything")
        assert (glob.model, glob.upstream) == ("claude-anything", "claude-anything")
        llama = router.resolve("llama")
        assert (
            llama.upstream == "meta-llama/Llama-3.1-8B-Instruct" and llama.engine.name == "openai"
        )
        with pytest.raises(UnknownModel):
            router.resolve("gpt-4o")
        assert [m.id for m in router.models()] == ["fast-model", "llama"]
        assert router.model("fast").display_name == "Fast"
        assert router.model("fast").max_tokens == 100
    finally:
        await router.aclose()


def test_bad_tables_say_what_is_wrong(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[[engines]]\nkind = "gpu"\nmodels = []\n')
    with pytest.raises(ValueError, match="kind"):
        config.load(path)
    path.write_text('[[engines]]\nkind = "fake"\nmodels = [{ id = "x", colour = "red" }]\n')
    with pytest.raises(ValueError, match="colour"):
        config.load(path)


def test_the_documented_example_parses(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[2] / "docs" / "engines.md").read_text()
    example = re.search(r"```toml\n(.*?)```", readme, re.S)
    assert example is not None
    path = tmp_path / "readme.toml"
    path.write_text(example.group(1))
    kinds = [e.kind for e in config.load(path)]
    assert kinds == ["local", "openai", "anthropic"]


def test_sampling_defaults_are_checked_and_fill_only_what_is_missing(tmp_path: Path) -> None:
    from batchyard.engines.build import _with_sampling
    from batchyard.engines.config import SHIPPED_SAMPLING, EngineConfig, ModelConfig
    from batchyard.engines.dispatch import with_sampling
    from batchyard.wire.messages import MessageCreateParams, MessageParam

    path = tmp_path / "sampling.toml"
    for bad, where in (("temperature = 1.5", "temperature"), ("top_p = 0", "top_p"),
                       ("top_k = 0", "top_k"), ("seed = 3", "seed")):  # fmt: skip
        path.write_text(
            f'[[engines]]\nkind = "fake"\nmodels = [{{ id = "x", sampling = {{ {bad} }} }}]\n'
        )
        with pytest.raises(ValueError, match=where):
            config.load(path)
    defaults = config.SamplingDefaults(temperature=0.2, top_p=0.9)
    params = MessageCreateParams(
        model="m", max_tokens=5, messages=[MessageParam(role="user", content="x")], top_p=0.5
    )
    filled = with_sampling(params, defaults)
    assert (filled.temperature, filled.top_p, filled.top_k) == (0.2, 0.5, None)
    assert with_sampling(filled, defaults) is filled  # nothing missing: the same request
    # the embedded engine's shipped model gets its model card's; a model of its own does not
    local = EngineConfig(kind="local", models=[ModelConfig(id="smollm2")])
    assert _with_sampling(local, local.models[0]).sampling == SHIPPED_SAMPLING
    own = EngineConfig(kind="local", model_path="/m.gguf", models=[ModelConfig(id="mine")])
    assert _with_sampling(own, own.models[0]).sampling is None
