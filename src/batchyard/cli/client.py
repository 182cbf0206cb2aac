"""`batchyard submit | batches | models`: a client of any batchyard server, over HTTP with the
official SDKs (so it works against the hosted APIs' shapes too).

    batchyard submit requests.jsonl --wait -o results.jsonl
    batchyard batches list | show ID | cancel ID | delete ID | results ID [-o FILE]
    batchyard models
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

# The SDKs and rich load only for these commands, not for `serve` and `worker`.
if TYPE_CHECKING:
    import anthropic
    import openai
    from rich.console import Console
    from rich.progress import Progress


def _console() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--base-url",
            default=os.environ.get("BATCHYARD_URL", "http://127.0.0.1:8000"),
            help="the server (env BATCHYARD_URL; default %(default)s)",
        )
        p.add_argument(
            "--api-key",
            default=os.environ.get("BATCHYARD_API_KEY") or os.environ.get("ANTHROPIC_API_KEY"),
            help="env BATCHYARD_API_KEY or ANTHROPIC_API_KEY",
        )

    submit = sub.add_parser(
        "submit",
        help="submit a JSONL file: Anthropic batch lines ({custom_id, params}) or an OpenAI"
        " batch input file ({custom_id, method, url, body})",
    )
    submit.add_argument("file", type=Path)
    submit.add_argument("--wait", action="store_true", help="show progress until it ends")
    submit.add_argument(
        "-o",
        "--output",
        type=Path,
        help="with --wait: write the results here (default FILE.results.jsonl)",
    )
    common(submit)

    batches = sub.add_parser("batches", help="list, show, cancel, delete batches; fetch results")
    actions = batches.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="newest first")
    listing.add_argument("--limit", type=int, default=20)
    common(listing)
    for name, text in (
        ("show", "one batch"),
        ("cancel", "cancel it"),
        ("delete", "delete an ended batch"),
    ):
        p = actions.add_parser(name, help=text)
        p.add_argument("batch_id")
        common(p)
    results = actions.add_parser("results", help="download the results JSONL")
    results.add_argument("batch_id")
    results.add_argument("-o", "--output", type=Path, help="default: stdout")
    common(results)

    models = sub.add_parser("models", help="the models the server routes")
    common(models)


def _anthropic(args: argparse.Namespace) -> anthropic.Anthropic:
    import anthropic

    if not args.api_key:
        raise SystemExit("batchyard: give --api-key or set BATCHYARD_API_KEY")
    return anthropic.Anthropic(base_url=args.base_url, api_key=args.api_key)


def _openai(args: argparse.Namespace) -> openai.OpenAI:
    import openai

    if not args.api_key:
        raise SystemExit("batchyard: give --api-key or set BATCHYARD_API_KEY")
    return openai.OpenAI(base_url=args.base_url.rstrip("/") + "/v1", api_key=args.api_key)


def run(args: argparse.Namespace) -> None:
    import logging

    import anthropic
    import openai

    for name in ("httpx", "httpx2", "anthropic", "openai"):  # no per-request log lines
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        if args.command == "submit":
            _submit(args)
        elif args.command == "models":
            _models(args)
        else:
            _batches(args)
    except (anthropic.APIError, openai.APIError) as exc:
        raise SystemExit(f"batchyard: {exc}") from None


def _read_lines(path: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as exc:
        raise SystemExit(f"batchyard: cannot read {path}: {exc}") from None


def _submit(args: argparse.Namespace) -> None:
    lines = _read_lines(args.file)
    if not lines:
        raise SystemExit(f"batchyard: {args.file} holds no requests")
    output = args.output or args.file.with_suffix(".results.jsonl")
    if "url" in lines[0] and "body" in lines[0]:
        _submit_openai(args, output)
    else:
        _submit_anthropic(args, lines, output)


def _progress(total: int) -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>8} req/s"),
        TextColumn("{task.fields[eta]}"),
        console=_console(),
    )


def _in(seconds: float) -> str:
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class _Eta:
    """The server's ETA of a batch (batchyard's `batchyard_eta` field, which the SDKs
    keep as an unknown field; other servers send none) on the progress bar, and a
    warning, once, when it says the batch may not finish before it expires."""

    def __init__(self, bar: Progress, task: Any) -> None:
        self.bar, self.task = bar, task
        self.warned = False

    def show(self, batch: Any, done: int, started: float, expires_at: datetime | None) -> None:
        found = getattr(batch, "batchyard_eta", None)
        eta: dict[str, Any] = found if isinstance(found, dict) else {}
        rate = eta.get("requests_per_second")
        if rate is None:  # an older or other server: the rate this client saw
            rate = done / max(time.monotonic() - started, 1e-6)
        ends = _when(eta.get("ends_at"))
        text = "ETA unknown" if eta else ""
        if ends is not None:
            text = f"ETA {ends.astimezone():%H:%M:%S} (in {_in((ends - _now()).total_seconds())})"
        if eta.get("at_risk"):
            text += " [bold red]at risk[/]"
            if not self.warned:
                self.warned = True
                warning = f"[bold red]warning:[/] {batch.id} may not finish before it expires"
                if expires_at is not None:
                    warning += f" at {expires_at.astimezone():%Y-%m-%d %H:%M:%S}"
                if ends is not None:
                    warning += f" (estimated end {ends.astimezone():%H:%M:%S}, {rate:,.1f} req/s)"
                self.bar.console.print(warning)
        self.bar.update(self.task, completed=done, rate=f"{rate:,.1f}", eta=text)


def _now() -> datetime:
    return datetime.now(UTC)


def _when(value: object) -> datetime | None:
    """An RFC 3339 string (Message Batches) or Unix seconds (OpenAI batches)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _submit_anthropic(args: argparse.Namespace, lines: list[dict[str, Any]], output: Path) -> None:
    client = _anthropic(args)
    batch = client.messages.batches.create(requests=lines)  # type: ignore[arg-type]
    print(batch.id)
    if not args.wait:
        return
    started = time.monotonic()
    with _progress(len(lines)) as bar:
        eta = _Eta(bar, bar.add_task(batch.id, total=len(lines), rate="-", eta=""))
        while True:
            batch = client.messages.batches.retrieve(batch.id)
            c = batch.request_counts
            done = c.succeeded + c.errored + c.canceled + c.expired
            eta.show(batch, done, started, batch.expires_at)
            if batch.processing_status == "ended":
                break
            time.sleep(0.5)
    with output.open("w") as out:
        for result in client.messages.batches.results(batch.id):
            out.write(result.to_json(indent=None) + "\n")
    c = batch.request_counts
    _console().print(
        f"{batch.id}: {c.succeeded} succeeded, {c.errored} errored, {c.canceled} canceled,"
        f" {c.expired} expired; results in {output}"
    )


def _submit_openai(args: argparse.Namespace, output: Path) -> None:
    client = _openai(args)
    uploaded = client.files.create(file=args.file.open("rb"), purpose="batch")
    first = json.loads(args.file.open().readline())
    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint=first["url"],
        completion_window="24h",
    )
    print(batch.id)
    if batch.status == "failed" and batch.errors:
        for e in batch.errors.data or []:
            _console().print(f"line {e.line}: {e.code}: {e.message}")
        raise SystemExit(1)
    if not args.wait:
        return
    started = time.monotonic()
    total = batch.request_counts.total if batch.request_counts else 0
    with _progress(total) as bar:
        eta = _Eta(bar, bar.add_task(batch.id, total=total, rate="-", eta=""))
        while batch.status not in ("completed", "failed", "cancelled", "expired"):
            time.sleep(0.5)
            batch = client.batches.retrieve(batch.id)
            counts = batch.request_counts
            done = counts.completed + counts.failed if counts else 0
            eta.show(batch, done, started, _when(batch.expires_at))
    with output.open("wb") as out:
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                out.write(client.files.content(file_id).content)
    _console().print(f"{batch.id}: {batch.status}; results in {output}")


def _batches(args: argparse.Namespace) -> None:
    client = _anthropic(args)
    if args.action == "list":
        from rich.console import Console
        from rich.table import Table

        rows = [
            (
                b.id, b.processing_status, str(b.request_counts.processing),
                str(b.request_counts.succeeded), str(b.request_counts.errored),
                b.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            )
            for b in client.messages.batches.list(limit=args.limit).data
        ]  # fmt: skip
        if not sys.stdout.isatty():  # a pipe or a file: one tab-separated line a batch
            for row in rows:
                print("\t".join(row))
            return
        table = Table("id", "status", "processing", "succeeded", "errored", "created")
        for row in rows:
            table.add_row(*row)
        Console().print(table)
    elif args.action == "show":
        print(client.messages.batches.retrieve(args.batch_id).to_json())
    elif args.action == "cancel":
        print(client.messages.batches.cancel(args.batch_id).to_json())
    elif args.action == "delete":
        print(client.messages.batches.delete(args.batch_id).to_json())
    else:
        out = args.output.open("w") if args.output else sys.stdout
        try:
            for result in client.messages.batches.results(args.batch_id):
                out.write(result.to_json(indent=None) + "\n")
        finally:
            if args.output:
                out.close()


def _models(args: argparse.Namespace) -> None:
    for model in _anthropic(args).models.list():
        print(model.id)
