"""`batchyard keys …` and `batchyard workspaces …`: manage tenants in the database directly,
and the start-up rule that a server is never open to the network without keys."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from batchyard.auth.tenancy import Tenancy
from batchyard.clock import to_datetime
from batchyard.config import Settings
from batchyard.store.records import DEFAULT_WORKSPACE

T = TypeVar("T")
log = logging.getLogger("batchyard")


async def _with_tenancy(database: str, fn: Callable[[Tenancy], Awaitable[T]]) -> T:
    from batchyard.composition import open_tenancy  # not at import: the CLI starts quicker

    async with open_tenancy(database) as tenancy:
        return await fn(tenancy)


def add_commands(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    add_database: Callable[[argparse.ArgumentParser], None],
) -> None:
    keys = sub.add_parser("keys", help="create, list and revoke API keys")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    create = keys_sub.add_parser("create", help="create a key and print it (shown only once)")
    who = create.add_mutually_exclusive_group(required=True)
    who.add_argument(
        "--workspace",
        help="workspace id or name; a name that does not exist yet is created",
    )
    who.add_argument("--admin", action="store_true", help="an Admin API key (any workspace)")
    create.add_argument("--name", default=None, help="a label shown in listings")
    add_database(create)
    listing = keys_sub.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--workspace", default=None, help="only this workspace's keys")
    add_database(listing)
    for action, status in (("revoke", "inactive"), ("activate", "active")):
        p = keys_sub.add_parser(action, help=f"set a key {status} (takes effect at once)")
        p.add_argument("key_id")
        p.set_defaults(status=status)
        add_database(p)

    spaces = sub.add_parser("workspaces", help="create, list and archive workspaces")
    spaces_sub = spaces.add_subparsers(dest="action", required=True)
    screate = spaces_sub.add_parser("create", help="create a workspace")
    screate.add_argument("name")
    add_database(screate)
    slist = spaces_sub.add_parser("list", help="list workspaces")
    slist.add_argument("--all", action="store_true", help="include archived ones")
    add_database(slist)
    sarchive = spaces_sub.add_parser("archive", help="archive a workspace and revoke its keys")
    sarchive.add_argument("workspace")
    add_database(sarchive)


async def run(args: argparse.Namespace) -> None:
    if args.command == "keys":
        await _with_tenancy(args.database, lambda t: _keys(t, args))
    else:
        await _with_tenancy(args.database, lambda t: _workspaces(t, args))


async def _keys(t: Tenancy, args: argparse.Namespace) -> None:
    if args.action == "create":
        workspace_id = None
        if not args.admin:
            workspace = await t.find_workspace(args.workspace)
            if workspace is None:
                workspace = await t.create_workspace(args.workspace)
                print(f"created workspace {workspace.id} ({workspace.name})", file=sys.stderr)
            workspace_id = workspace.id
        name = args.name or ("admin" if args.admin else f"{args.workspace} key")
        record, secret = await t.create_key(name, workspace_id=workspace_id, admin=args.admin)
        print(f"created {record.kind} key {record.id} ({record.name})", file=sys.stderr)
        print(secret)
    elif args.action == "list":
        workspace_id = None
        if args.workspace:
            workspace = await t.find_workspace(args.workspace)
            if workspace is None:
                raise SystemExit(f"batchyard: no workspace {args.workspace!r}")
            workspace_id = workspace.id
        after = None
        while True:
            page, more = await t.list_keys(1000, after, None, workspace_id=workspace_id)
            for k in page:
                scope = k.workspace_id or "admin"
                created = to_datetime(k.created_at).strftime("%Y-%m-%d %H:%M")
                print(f"{k.id}  {t.status_of(k):8}  {scope:32}  {k.hint:24}  {created}  {k.name}")
            if not more or not page:
                return
            after = page[-1].id
    else:
        record = await t.update_key(args.key_id, None, args.status)
        print(f"{record.id} is now {t.status_of(record)}")


async def _workspaces(t: Tenancy, args: argparse.Namespace) -> None:
    if args.action == "create":
        record = await t.create_workspace(args.name)
        print(record.id)
    elif args.action == "list":
        after = None
        while True:
            page, more = await t.list_workspaces(1000, after, None, include_archived=args.all)
            for w in page:
                archived = " (archived)" if w.archived_at is not None else ""
                print(f"{w.id}  {w.name}{archived}")
            if not more or not page:
                return
            after = page[-1].id
    else:
        workspace = await t.find_workspace(args.workspace)
        if workspace is None:
            raise SystemExit(f"batchyard: no workspace {args.workspace!r}")
        record = await t.archive_workspace(workspace.id)
        print(f"archived {record.id}; its keys no longer work")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def prepare_auth(settings: Settings) -> None:
    """Refuse to serve the network without keys; on a first run on loopback, make keys.

    - `--no-auth` is for loopback only.
    - Bound to another address, the store must hold a key or `--admin-key` be set.
    - On loopback with no key at all (a first run), an admin key and a key for the
      default workspace are created and printed once.
    """
    loopback = is_loopback(settings.host)
    if not settings.auth:
        if not loopback:
            raise SystemExit(
                f"batchyard: --no-auth serves only loopback addresses, not {settings.host}"
            )
        log.warning("--no-auth: every caller on this machine acts as an admin")
        return
    if settings.admin_key is not None and len(settings.admin_key) < 20:
        raise SystemExit("batchyard: --admin-key must be at least 20 characters")

    async def first_run(t: Tenancy) -> None:
        if settings.admin_key or await t.store.count_keys():
            return
        if not loopback:
            raise SystemExit(
                f"batchyard: refusing to serve {settings.host} without API keys. Create one"
                " with `batchyard keys create --admin` (or --workspace NAME), or set"
                " --admin-key / BATCHYARD_ADMIN_KEY"
            )
        _, admin = await t.create_key("first-run admin", admin=True)
        _, user = await t.create_key("first-run", workspace_id=DEFAULT_WORKSPACE)
        log.warning(
            "first run: created API keys; they are shown only now.\n"
            "  admin key (Admin API, any workspace): %s\n"
            "  key for the default workspace:       %s",
            admin,
            user,
        )

    await _with_tenancy(settings.database, first_run)
