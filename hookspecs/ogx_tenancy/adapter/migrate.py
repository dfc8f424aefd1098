"""``ogx-tenancy migrate``: copy an OGX deployment's prompts, connectors and batches into our stores.

Sources, found from the ``storage:`` section of the source run config (the deployment's own; by
default the destination config itself):

* OGX 1.5's SQL tables (``sql_sqlite`` / ``sql_postgres`` backends): ``storage.stores.prompts`` and
  ``storage.stores.connectors`` (default ``prompts`` / ``connectors`` on ``sql_default``) and the
  batches table of an ``inline::reference`` batches provider (default ``batches`` on
  ``sql_default``), with their ``owner_principal``, ``access_attributes`` and ``tenant_id`` columns;
* pre-1.5 KVStore entries in every ``kv_sqlite`` / ``kv_postgres`` backend, under any namespace:
  ``prompts:v1:<id>:<version>`` and ``prompts:v1:<id>:default``, ``connectors:v1:<id>``,
  ``batch:<id>``. They never had owners: they become unowned rows.

Everything is written with the services' ``restore`` (the same data layout the API uses), inside
``system_context("migration")``, with owners and tenants set explicitly. Rows stored without a tenant
go to ``--assign-tenant`` or become global rows. An item already in our store is left alone (so a
second run, or a run resumed after an interruption, changes nothing it already did); if it differs
from the source it is reported, never overwritten. At the end every item is read back and compared:
counts, and a SHA-256 over the canonical JSON of the source items and of what is stored.

Normalisations are reported as notes (ids only, never attribute values): versions another user
appended (OGX 1.5 allowed it) take the prompt's owner; a prompt with no default or several defaults
gets its highest version (among the defaults, if any) as default; batches in progress are copied
with their status and are not resumed. Items that cannot be represented (a malformed id, an
unparseable value, a version without its prompt, undeclared template variables) are listed as
unmapped.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import structlog
import yaml
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from ogx_tenancy.context import system_context
from ogx_tenancy.host import Tenancy
from ogx_tenancy.services import ServiceError
from ogx_tenancy.services.batches import BatchService, StoredBatch
from ogx_tenancy.services.connectors import ConnectorRecord, ConnectorService
from ogx_tenancy.services.prompts import PromptRecord, PromptService, StoredVersion, validate_prompt
from ogx_tenancy.settings import ConfigError
from ogx_tenancy.store import InvalidRowData, Owner

from . import ogx_bridge

log = structlog.get_logger("ogx_tenancy.adapter.migrate")

KINDS = ("prompts", "connectors", "batches")
_KV_KEY = re.compile(r"^(?:(?P<ns>.*?):)?(?P<marker>prompts:v1:|connectors:v1:|batch:)(?P<rest>.+)$")
_PROMPT_ID = re.compile(r"pmpt_[0-9a-f]{48}")
_RUNNING_BATCH = frozenset({"validating", "in_progress", "finalizing", "cancelling"})


# -- what was found -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One row or KV entry of the source: where it came from, its values, and its owner columns."""

    origin: str  # "<backend>.<table>" or "<backend> kv <key>"
    values: Mapping[str, Any]
    owner_principal: str | None = None
    access_attributes: Mapping[str, Sequence[str]] | None = None
    tenant_id: str | None = None
    from_kv: bool = False  # a pre-1.5 KV entry: values are {"key": <after the marker>, "value": <text>}


@dataclass
class Found:
    """Everything read from the source, per kind, before mapping."""

    sql: dict[str, list[SourceRow]] = field(default_factory=lambda: {k: [] for k in KINDS})
    kv: dict[str, list[SourceRow]] = field(default_factory=lambda: {k: [] for k in KINDS})
    sources: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class KindReport:
    """The outcome for one kind of resource."""

    source: int = 0  # items (prompts, connectors, batches) mapped from the source
    created: int = 0
    already_present: int = 0
    differing: list[str] = field(default_factory=list)  # ids in our store with other content (kept)
    missing: list[str] = field(default_factory=list)  # ids that should be stored and are not
    source_checksum: str = ""
    stored_checksum: str = ""

    @property
    def verified(self) -> bool:
        return not self.differing and not self.missing and self.source_checksum == self.stored_checksum


@dataclass
class Report:
    """The whole migration: per kind, what could not be mapped, and the normalisations applied."""

    dry_run: bool
    kinds: dict[str, KindReport] = field(default_factory=lambda: {k: KindReport() for k in KINDS})
    unmapped: list[dict[str, str]] = field(default_factory=list)
    notes: list[dict[str, str]] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)

    def unmappable(self, kind: str, origin: str, reason: str) -> None:
        self.unmapped.append({"kind": kind, "source": origin, "reason": reason})

    def note(self, kind: str, item: str, note: str) -> None:
        self.notes.append({"kind": kind, "id": item, "note": note})

    @property
    def ok(self) -> bool:
        return not self.unmapped and (self.dry_run or all(k.verified for k in self.kinds.values()))

    def as_json(self) -> dict[str, Any]:
        kinds = {}
        for name, kind in self.kinds.items():
            kinds[name] = asdict(kind) | ({} if self.dry_run else {"verified": kind.verified})
        return {
            "dry_run": self.dry_run,
            "ok": self.ok,
            "sources": self.sources,
            **kinds,
            "unmapped": self.unmapped,
            "notes": self.notes,
        }

    def as_text(self) -> str:
        lines = [f"{'dry run: nothing written' if self.dry_run else 'migration'}; sources:"]
        lines += [f"  {s['backend']}: {s['what']} ({s['rows']} rows)" for s in self.sources] or ["  none found"]
        for name, kind in self.kinds.items():
            if self.dry_run:
                lines.append(
                    f"{name}: {kind.source} in source, {kind.created} to create, {kind.already_present} already "
                    f"present, {len(kind.differing)} differing"
                )
            else:
                verdict = "verified" if kind.verified else "NOT VERIFIED"
                lines.append(
                    f"{name}: {kind.source} in source, {kind.created} created, {kind.already_present} already "
                    f"present, {len(kind.differing)} differing, {len(kind.missing)} missing; checksum "
                    f"{kind.source_checksum[:12]} / {kind.stored_checksum[:12]} {verdict}"
                )
            lines += [f"  differs (kept ours): {i}" for i in kind.differing]
            lines += [f"  missing: {i}" for i in kind.missing]
        if self.unmapped:
            lines.append(f"could not map {len(self.unmapped)} item(s):")
            lines += [f"  {u['kind']} {u['source']}: {u['reason']}" for u in self.unmapped]
        if self.notes:
            lines.append(f"{len(self.notes)} note(s):")
            lines += [f"  {n['kind']} {n['id']}: {n['note']}" for n in self.notes]
        return "\n".join(lines)


# -- reading the source ---------------------------------------------------------------------------


def _storage_of(source_config: Path) -> tuple[Any, dict[str, Any]]:
    """OGX's parsed ``storage`` section of the source run config, and the raw config."""
    from ogx.core.storage.datatypes import StorageConfig

    try:
        raw = yaml.safe_load(source_config.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read source run config {source_config}: {e}") from None
    if not isinstance(raw, dict) or "storage" not in raw:
        raise ConfigError(f"source run config {source_config}: no storage: section to read OGX's data from")
    try:
        storage = StorageConfig.model_validate(ogx_bridge.replace_env_vars(raw["storage"]))
    except Exception as e:  # noqa: BLE001 - OGX raises ValidationError, EnvVarError, ValueError
        raise ConfigError(f"source run config {source_config}: storage: {e}") from None
    return storage, raw


def _url(backend: Any) -> URL:
    """A SQLAlchemy async URL for one of OGX's storage backends (SQL or KV)."""
    db_path = getattr(backend, "db_path", None)
    if db_path is not None:  # read-only: the source is never changed
        return make_url(f"sqlite+aiosqlite:///file:{Path(db_path).expanduser().as_posix()}?mode=ro&uri=true")
    if getattr(backend, "connection_string", None) is not None:
        url = make_url(backend.connection_string.get_secret_value()).set(drivername="postgresql+asyncpg")
    else:
        url = URL.create(
            "postgresql+asyncpg",
            username=backend.user,
            password=backend.password.get_secret_value() if backend.password else None,
            host=backend.host,
            port=int(backend.port),
            database=backend.db,
        )
    ssl_mode = getattr(backend, "ssl_mode", None)
    return url.update_query_dict({"ssl": ssl_mode}) if ssl_mode else url


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _sql_tables(storage: Any, raw: Mapping[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """backend name -> [(kind, table)] of OGX's SQL tables to read."""
    wanted: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for kind in ("prompts", "connectors"):
        ref = getattr(storage.stores, kind, None)
        if ref is not None and getattr(ref, "table_name", None):
            wanted[ref.backend].append((kind, ref.table_name))
    batch_refs = [
        (p.get("config") or {}).get("sqlstore")
        for p in ((raw.get("providers") or {}).get("batches") or [])
        if isinstance(p, Mapping) and p.get("provider_type") == "inline::reference"
    ]
    batch_refs = [ogx_bridge.replace_env_vars(r) for r in batch_refs if isinstance(r, Mapping)]
    for ref in batch_refs or [{"backend": "sql_default", "table_name": "batches"}]:
        wanted[ref.get("backend", "sql_default")].append(("batches", ref.get("table_name", "batches")))
    return wanted


async def _read_sql(conn: AsyncConnection, backend: str, kind: str, table_name: str) -> list[SourceRow] | None:
    def reflect(sync_conn: Any) -> sa.Table | None:
        if not sa.inspect(sync_conn).has_table(table_name):
            return None
        return sa.Table(table_name, sa.MetaData(), autoload_with=sync_conn)

    table = await conn.run_sync(reflect)
    if table is None:
        return None
    rows = []
    for record in (await conn.execute(sa.select(table))).mappings():
        values = dict(record)
        rows.append(
            SourceRow(
                origin=f"{backend}.{table_name}",
                values=values,
                owner_principal=values.pop("owner_principal", None) or None,
                access_attributes=_json(values.pop("access_attributes", None)) or None,
                tenant_id=values.pop("tenant_id", None) or None,
            )
        )
    return rows


async def _read_kv(conn: AsyncConnection, backend: str, table_name: str, found: Found) -> int:
    def exists(sync_conn: Any) -> bool:
        return sa.inspect(sync_conn).has_table(table_name)

    if not await conn.run_sync(exists):
        return 0
    kv = sa.table(table_name, sa.column("key"), sa.column("value"), sa.column("expiration"))
    count = 0
    now = time.time()
    for key, value, expiration in await conn.execute(sa.select(kv.c.key, kv.c.value, kv.c.expiration)):
        match = _KV_KEY.match(key or "")
        if match is None:
            continue
        if expiration is not None and _timestamp(expiration) < now:
            continue
        marker, rest = match["marker"], match["rest"]
        kind = {"prompts:v1:": "prompts", "connectors:v1:": "connectors", "batch:": "batches"}[marker]
        if kind == "batches" and not rest.startswith("batch_"):
            continue
        found.kv[kind].append(
            SourceRow(origin=f"{backend} kv {key}", values={"key": rest, "value": value}, from_kv=True)
        )
        count += 1
    return count


def _timestamp(value: Any) -> float:
    if hasattr(value, "timestamp"):
        return value.timestamp()
    try:
        from datetime import datetime

        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return float("inf")


async def read_sources(source_config: Path) -> Found:
    """Read every OGX table and KV entry the source run config points at."""
    storage, raw = _storage_of(source_config)
    found = Found()
    tables = _sql_tables(storage, raw)
    for name, backend in storage.backends.items():
        backend_type = backend.type.value
        if backend_type not in ("sql_sqlite", "sql_postgres", "kv_sqlite", "kv_postgres"):
            continue
        if getattr(backend, "db_path", None) is not None and not Path(backend.db_path).expanduser().is_file():
            found.sources.append({"backend": name, "what": f"no file at {backend.db_path}", "rows": 0})
            continue
        engine = create_async_engine(_url(backend))
        try:
            async with engine.connect() as conn:
                if backend_type.startswith("sql_"):
                    for kind, table in tables.get(name, []):
                        rows = await _read_sql(conn, name, kind, table)
                        if rows is not None:
                            found.sql[kind].extend(rows)
                            found.sources.append({"backend": name, "what": f"table {table}", "rows": len(rows)})
                else:
                    table = getattr(backend, "table_name", None) or "kvstore"
                    entries = await _read_kv(conn, name, table, found)
                    found.sources.append({"backend": name, "what": f"KV entries in {table}", "rows": entries})
        except (OSError, sa.exc.SQLAlchemyError) as e:
            # the class name only: driver messages may quote the connection string
            cause = getattr(e, "orig", None) or e
            raise ConfigError(f"source backend {name}: cannot read it ({type(cause).__name__})") from None
        finally:
            await engine.dispose()
    return found


# -- mapping to our records -------------------------------------------------------------------------


def _owner(row: SourceRow, assign_tenant: str | None) -> Owner:
    principal = row.owner_principal or None
    attributes = {k: list(v) for k, v in (row.access_attributes or {}).items()} if principal else None
    return Owner(principal, attributes or None, row.tenant_id or assign_tenant or "")


def map_prompts(found: Found, assign_tenant: str | None, report: Report) -> list[PromptRecord]:
    # (tenant, prompt_id) -> version -> (row, is_default, content)
    groups: dict[tuple[str, str], dict[int, tuple[SourceRow, bool, str | None, list[str], int]]] = defaultdict(dict)
    for row in found.sql["prompts"]:
        v = row.values
        try:
            data = _json(v.get("prompt_data")) or {}
            entry = (
                row,
                bool(v.get("is_default")),
                data.get("prompt"),
                list(data.get("variables") or []),
                int(v.get("created_at") or 0),
            )
            key = (row.tenant_id or assign_tenant or "", str(v["prompt_id"]))
            groups[key][int(v["version"])] = entry
        except (KeyError, TypeError, ValueError, AttributeError):
            report.unmappable("prompts", row.origin, f"row {v.get('id')!r} is not an OGX prompt row")
    kv_defaults: dict[tuple[str, str], int] = {}
    for row in found.kv["prompts"]:
        prompt_id, _, suffix = str(row.values["key"]).rpartition(":")
        key = (assign_tenant or "", prompt_id)
        try:
            if suffix == "default":
                kv_defaults[key] = int(row.values["value"])
                continue
            data = json.loads(row.values["value"])
            entry = (row, bool(data.get("is_default")), data.get("prompt"), list(data.get("variables") or []), 0)
            groups[key][int(suffix)] = entry
        except (TypeError, ValueError, AttributeError):
            report.unmappable("prompts", row.origin, "not a pre-1.5 prompt entry")
    records = []
    for (tenant, prompt_id), versions in sorted(groups.items()):
        origin = next(iter(versions.values()))[0].origin
        if not _PROMPT_ID.fullmatch(prompt_id):
            report.unmappable("prompts", origin, f"prompt id {prompt_id!r} is not an OGX prompt id")
            continue
        try:
            for _, _, text, variables, _ in versions.values():
                validate_prompt(text, variables)
        except ServiceError as e:
            report.unmappable("prompts", origin, f"prompt {prompt_id}: {e.message}")
            continue
        first = versions[min(versions)][0]
        owner = _owner(first, assign_tenant)
        if any(_owner(row, assign_tenant) != owner for row, *_ in versions.values()):
            report.note("prompts", prompt_id, "versions appended by other users now belong to the prompt's owner")
        if first.tenant_id is None and owner.principal and not assign_tenant:
            report.note("prompts", prompt_id, "stored without a tenant: now a global prompt")
        if first.from_kv:
            report.note("prompts", prompt_id, "pre-1.5 entry without an owner: now unowned")
        defaults = sorted(n for n, (_, is_default, *_) in versions.items() if is_default)
        default = kv_defaults.get((tenant, prompt_id))
        if default not in versions:
            default = defaults[-1] if defaults else max(versions)
            if len(defaults) != 1:
                report.note(
                    "prompts", prompt_id, f"had {len(defaults)} default versions: version {default} is the default"
                )
        records.append(
            PromptRecord(
                prompt_id=prompt_id,
                owner=owner,
                default_version=default,
                versions=tuple(
                    StoredVersion(n, text, variables, created)
                    for n, (_, _, text, variables, created) in sorted(versions.items())
                ),
                created_at=versions[min(versions)][4],
            )
        )
    return records


def map_connectors(found: Found, assign_tenant: str | None, report: Report) -> list[tuple[ConnectorRecord, str]]:
    items: dict[tuple[str, str], ConnectorRecord] = {}
    for row in [*found.sql["connectors"], *found.kv["connectors"]]:
        try:
            if row.from_kv:
                data = json.loads(row.values["value"])
            else:
                data = _json(row.values.get("connector_data")) or {}
                data = {
                    "connector_id": row.values["id"],
                    "connector_type": row.values.get("connector_type"),
                    "url": row.values.get("url"),
                    "server_label": row.values.get("server_label"),
                    "server_name": row.values.get("server_name"),
                    "server_description": row.values.get("server_description"),
                } | {k: v for k, v in data.items() if v is not None}
            record = ConnectorRecord(
                connector_id=str(data["connector_id"]),
                url=str(data["url"]),
                connector_type=str(data.get("connector_type") or "mcp"),
                server_label=data.get("server_label"),
                server_name=data.get("server_name"),
                server_description=data.get("server_description"),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            report.unmappable("connectors", row.origin, "not an OGX connector")
            continue
        if row.owner_principal:
            report.note("connectors", record.connector_id, "had an owner: connectors are unowned configuration")
        items[(row.tenant_id or assign_tenant or "", record.connector_id)] = record
    return [(record, tenant) for (tenant, _), record in sorted(items.items())]


def map_batches(found: Found, assign_tenant: str | None, report: Report) -> list[StoredBatch]:
    items: dict[tuple[str, str], StoredBatch] = {}
    for row in [*found.sql["batches"], *found.kv["batches"]]:
        try:
            raw = row.values["value"] if row.from_kv else row.values.get("batch_data")
            batch = _json(raw)
            if not isinstance(batch, dict) or not str(batch.get("id", "")).startswith("batch_"):
                raise ValueError
        except (KeyError, TypeError, ValueError):
            report.unmappable("batches", row.origin, "not an OGX batch object")
            continue
        owner = _owner(row, assign_tenant)
        if batch.get("status") in _RUNNING_BATCH:
            report.note("batches", batch["id"], f"copied while {batch['status']}: it will not be resumed")
        if row.tenant_id is None and owner.principal and not assign_tenant:
            report.note("batches", batch["id"], "stored without a tenant: now a global batch")
        items[(owner.tenant_id or "", batch["id"])] = StoredBatch(batch, owner)
    return [items[key] for key in sorted(items)]


# -- writing and checking ---------------------------------------------------------------------------


def _canonical(item: Any) -> str:
    def plain(value: Any) -> Any:
        if hasattr(value, "__dataclass_fields__"):
            return {k: plain(v) for k, v in asdict(value).items()}
        if isinstance(value, Mapping):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return json.dumps(plain(item), sort_keys=True, separators=(",", ":"))


def _checksum(items: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for item in sorted(items):
        digest.update(item.encode("utf-8") + b"\n")
    return digest.hexdigest()


async def _copy(
    kind: str,
    items: Sequence[Any],
    ident: Callable[[Any], tuple[str, str]],
    export: Callable[[Any], Any],
    restore: Callable[[Any], Any],
    normalise: Callable[[Any], Any],
    report: Report,
    advance: Callable[[], None],
) -> None:
    kind_report = report.kinds[kind]
    kind_report.source = len(items)
    failed: set[tuple[str, str]] = set()  # reported as unmapped, left out of the verification
    for item in items:
        stored = await export(item)
        if stored is None:
            if not report.dry_run:
                try:
                    await restore(item)
                except (ServiceError, InvalidRowData) as e:
                    report.unmappable(kind, "/".join(filter(None, ident(item))), str(e))
                    failed.add(ident(item))
                    advance()
                    continue
            kind_report.created += 1
        elif _canonical(stored) == _canonical(normalise(item)):
            kind_report.already_present += 1
        else:
            kind_report.differing.append("/".join(filter(None, ident(item))))
        advance()
    if report.dry_run:
        return
    expected, actual = [], []
    for item in items:
        if ident(item) in failed:
            continue
        stored = await export(item)
        expected.append(_canonical(normalise(item)))
        if stored is None:
            kind_report.missing.append("/".join(filter(None, ident(item))))
        else:
            actual.append(_canonical(stored))
    kind_report.source_checksum = _checksum(expected)
    kind_report.stored_checksum = _checksum(actual)


async def migrate(
    tenancy: Tenancy,
    source_config: Path,
    *,
    dry_run: bool = False,
    assign_tenant: str | None = None,
    progress: Callable[[str, int], Callable[[], None]] | None = None,
) -> Report:
    """Copy (or, with ``dry_run``, count) the source's prompts, connectors and batches into the
    stores of ``tenancy``. ``progress(kind, total)`` returns a function called once per item."""
    report = Report(dry_run=dry_run)
    found = await read_sources(source_config)
    report.sources = found.sources
    prompts = map_prompts(found, assign_tenant, report)
    connectors = map_connectors(found, assign_tenant, report)
    batches = map_batches(found, assign_tenant, report)
    tick = progress or (lambda kind, total: lambda: None)
    with system_context("migration"):
        prompt_service = await PromptService.open(tenancy.open_store)
        connector_service = await ConnectorService.open(tenancy.open_store)
        batch_service = await BatchService.open(tenancy.open_store)
        await _copy(
            "prompts",
            prompts,
            lambda p: (p.owner.tenant_id, p.prompt_id),
            lambda p: prompt_service.export(p.prompt_id, p.owner.tenant_id or ""),
            prompt_service.restore,
            lambda p: p,
            report,
            tick("prompts", len(prompts)),
        )
        await _copy(
            "connectors",
            connectors,
            lambda c: (c[1], c[0].connector_id),
            lambda c: connector_service.export(c[0].connector_id, c[1]),
            lambda c: connector_service.restore(c[0], c[1]),
            lambda c: c[0],
            report,
            tick("connectors", len(connectors)),
        )
        await _copy(
            "batches",
            batches,
            lambda b: (b.owner.tenant_id, b.batch["id"]),
            lambda b: batch_service.export(b.batch["id"], b.owner.tenant_id or ""),
            batch_service.restore,
            lambda b: b,
            report,
            tick("batches", len(batches)),
        )
    log.info("migration finished", dry_run=dry_run, ok=report.ok)
    return report
