"""`batchyard doctor`: check the store, the engines and the config, and say in plain words
what is wrong. Exit status 1 when anything failed."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from batchyard.config import Settings
from batchyard.store import is_postgres, open_store


@dataclass
class Check:
    ok: bool
    what: str
    detail: str = ""


async def _store(settings: Settings) -> list[Check]:
    where = "PostgreSQL" if is_postgres(settings.database) else f"SQLite file {settings.database}"
    store = open_store(settings.database)
    try:
        await asyncio.wait_for(store.open(), 30)
    except Exception as exc:
        return [Check(False, f"store: cannot open {where}", str(exc))]
    try:
        batches, queued = await store.open_counts()
        keys = await store.tenancy.count_keys()
    finally:
        await store.close()
    checks = [
        Check(True, f"store: {where} opens, migrations are current"),
        Check(True, f"store: {batches} open batches, {queued} requests waiting"),
    ]
    if keys == 0 and not settings.admin_key:
        checks.append(
            Check(
                False,
                "keys: none yet",
                "`serve` on a network address will refuse to start; create one with"
                " `batchyard keys create --admin` (on loopback the first start makes one)",
            )
        )
    else:
        checks.append(
            Check(True, f"keys: {keys} stored" + (" + --admin-key" if settings.admin_key else ""))
        )
    return checks


async def _engines(settings: Settings) -> list[Check]:
    checks = []
    async with httpx.AsyncClient(timeout=5) as client:
        for engine in settings.engines:
            name = engine.name or engine.kind
            models = ", ".join(m.id for m in engine.models) or "(none)"
            if engine.kind in ("openai", "anthropic") and engine.base_url:
                url = engine.base_url.rstrip("/") + (
                    "/models" if engine.kind == "openai" else "/v1/models"
                )
                try:
                    r = await client.get(url)
                    reachable = r.status_code < 500
                    detail = f"{url} answered {r.status_code}"
                except httpx.HTTPError as exc:
                    reachable, detail = False, f"{url}: {exc!r}"
                checks.append(
                    Check(reachable, f"engine {name}: {engine.kind} upstream for {models}", detail)
                )
            else:
                checks.append(Check(True, f"engine {name}: {engine.kind} for {models}"))
    return checks


async def _server(base_url: str) -> list[Check]:
    async with httpx.AsyncClient(timeout=5) as client:
        try:
            r = await client.get(base_url.rstrip("/") + "/readyz")
        except httpx.HTTPError as exc:
            return [Check(False, f"server: {base_url} does not answer", repr(exc))]
    if r.status_code == 200:
        return [Check(True, f"server: {base_url} is up and its store answers")]
    return [Check(False, f"server: {base_url}/readyz answered {r.status_code}", r.text[:200])]


async def diagnose(settings: Settings, base_url: str | None) -> list[Check]:
    checks = await _store(settings) + await _engines(settings)
    if base_url:
        checks += await _server(base_url)
    return checks


def report(checks: list[Check]) -> int:
    for c in checks:
        print(
            f"{'ok  ' if c.ok else 'FAIL'}  {c.what}"
            + (f"\n        {c.detail}" if c.detail else "")
        )
    failed = [c for c in checks if not c.ok]
    print(f"\n{len(checks) - len(failed)} ok, {len(failed)} to fix")
    return 1 if failed else 0
