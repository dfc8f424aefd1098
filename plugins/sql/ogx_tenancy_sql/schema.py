"""Tables, indexes and schema versions of one collection, and their in-place upgrades.

Every collection ``C`` gets two tables (``P`` = the backend's ``table_prefix``):

* ``P<C>`` — the rows: primary key ``(tenant_id, id)`` (tenant ``""`` = global rows),
  ``owner_principal`` (NULL = unowned; ``''`` is refused by a CHECK, so NULL is the only spelling),
  ``access_attributes`` (JSON), ``revision`` (bumped by every update), then one real column per
  declared field;
* ``P<C>__grants`` — one row ``(tenant_id, row_id, category, value)`` per attribute value of an
  *owned* row's owner, so ``user in owners <category>`` is an index lookup instead of a JSON scan.
  Its foreign key cascades deletes, so no grant outlives its row.

``P`` + ``schema`` records, per collection, the layout version and the declared fields. Opening a
collection creates what is missing, upgrades an older layout of ours in place (no row lost), adds
columns for newly declared fields and creates or drops indexes to match the declaration; a field
whose type changed stops start-up with a message saying so.

Layout history:

1. rows table only (TEXT columns in the database's default collation, JSON attributes, ``''`` and
   NULL both meaning unowned, no revision, no grants);
2. this one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
import structlog
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ogx_tenancy.store import CollectionSpec, FieldSpec

log = structlog.get_logger("ogx_tenancy.sql", plugin="sql")  # lazy: follows the host's logging setup

LAYOUT_VERSION = 2
MAX_IDENTIFIER = 63  # PostgreSQL truncates longer names silently; we refuse them instead
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_FIELD_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
# One lock for all schema work in a PostgreSQL database, so replicas starting together take turns.
_PG_SCHEMA_LOCK = 0x6F67785F73716C  # "ogx_sql"


class SchemaError(RuntimeError):
    """The database holds something this version cannot use; the message says what to do."""


@dataclass(frozen=True)
class CollectionTables:
    """The SQLAlchemy tables of one collection, built for one dialect."""

    spec: CollectionSpec
    rows: sa.Table
    grants: sa.Table
    dialect: str


def _short(name: str) -> str:
    """``name`` if it fits PostgreSQL's identifier limit, else a stable hashed abbreviation."""
    if len(name) <= MAX_IDENTIFIER:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return f"{name[: MAX_IDENTIFIER - 11]}_{digest}"


def check_names(spec: CollectionSpec, prefix: str) -> None:
    """Refuse names that are not plain SQL identifiers or would be truncated by PostgreSQL."""
    if not _NAME.match(spec.name):
        raise SchemaError(f"collection name {spec.name!r}: expected lower-case letters, digits and '_'")
    if len(f"{prefix}{spec.name}__grants") > MAX_IDENTIFIER:
        raise SchemaError(f"collection name {spec.name!r} is too long for table prefix {prefix!r}")
    for f in spec.fields:
        if not _FIELD_NAME.match(f.name) or len(f.name) > MAX_IDENTIFIER:
            raise SchemaError(f"collection {spec.name!r}: field name {f.name!r} is not a plain SQL identifier")


def _text(dialect: str) -> sa.types.TypeEngine:
    # Byte-order comparison on both dialects: ids sort and compare the same everywhere, prefix ranges
    # are exact, and a btree serves them (SQLite's default BINARY collation already is byte order).
    return sa.Text(collation="C") if dialect == "postgresql" else sa.Text()


def _json(dialect: str) -> sa.types.TypeEngine:
    return postgresql.JSONB(none_as_null=True) if dialect == "postgresql" else sa.JSON(none_as_null=True)


def column_type(field_type: str, dialect: str) -> sa.types.TypeEngine:
    match field_type:
        case "str":
            return _text(dialect)
        case "int":
            return sa.BigInteger()
        case "float":
            return sa.Double()
        case "bool":
            return sa.Boolean(create_constraint=False)
        case "json":
            return _json(dialect)
    raise SchemaError(f"unknown field type {field_type!r}")


def _order_column(table: sa.Table, name: str, dialect: str) -> sa.ColumnElement:
    # NULL sorts first (as the smallest value) on both dialects; PostgreSQL's indexes must say so.
    column = table.c[name]
    return column.nulls_first() if dialect == "postgresql" else column


def index_specs(spec: CollectionSpec, table_name: str) -> dict[str, tuple[tuple[str, ...], bool]]:
    """Every secondary index of the rows table: name -> (columns, unique)."""
    specs: dict[str, tuple[tuple[str, ...], bool]] = {
        _short(f"{table_name}__owner"): (("tenant_id", "owner_principal", "id"), False),
    }
    for f in spec.fields:
        if f.indexed and f.type != "json":
            specs[_short(f"{table_name}__f_{f.name}")] = (("tenant_id", f.name, "id"), False)
            specs[_short(f"{table_name}__of_{f.name}")] = (("tenant_id", "owner_principal", f.name, "id"), False)
    for group in spec.unique:
        specs[_short(f"{table_name}__uq_{'_'.join(group)}")] = (("tenant_id", *group), True)
    return specs


def build_tables(spec: CollectionSpec, prefix: str, dialect: str, *, table_name: str | None = None) -> CollectionTables:
    """The current layout's tables for ``spec`` on ``dialect`` (``sqlite`` or ``postgresql``)."""
    name = table_name or f"{prefix}{spec.name}"
    metadata = sa.MetaData()
    text = _text(dialect)
    rows = sa.Table(
        name,
        metadata,
        sa.Column("tenant_id", text, nullable=False),
        sa.Column("id", text, nullable=False),
        sa.Column("owner_principal", text, nullable=True),
        sa.Column("access_attributes", _json(dialect), nullable=True),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        *(sa.Column(f.name, column_type(f.type, dialect), nullable=True) for f in spec.fields),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=_short(f"{name}__pk")),
        sa.CheckConstraint("owner_principal <> ''", name=_short(f"{name}__owner_not_empty")),
    )
    for index_name, (columns, unique) in index_specs(spec, name).items():
        elements = [
            _order_column(rows, c, dialect)
            if c not in ("tenant_id", "owner_principal", "id") and not unique
            else rows.c[c]
            for c in columns
        ]
        sa.Index(index_name, *elements, unique=unique)
    grants_name = f"{name}__grants"
    grants = sa.Table(
        grants_name,
        metadata,
        sa.Column("tenant_id", text, nullable=False),
        sa.Column("row_id", text, nullable=False),
        sa.Column("category", text, nullable=False),
        sa.Column("value", text, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "row_id", "category", "value", name=_short(f"{grants_name}_pk")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "row_id"],
            [rows.c.tenant_id, rows.c.id],
            ondelete="CASCADE",
            name=_short(f"{grants_name}_row_fk"),
        ),
    )
    sa.Index(_short(f"{grants_name}_value"), grants.c.tenant_id, grants.c.category, grants.c.value, grants.c.row_id)
    return CollectionTables(spec, rows, grants, dialect)


def versions_table(prefix: str) -> sa.Table:
    """``<prefix>schema``: one row per collection with its layout version and declared fields."""
    return sa.Table(
        f"{prefix}schema",
        sa.MetaData(),
        sa.Column("collection", sa.Text(), primary_key=True),
        sa.Column("layout_version", sa.Integer(), nullable=False),
        sa.Column("declaration", sa.Text(), nullable=False),
    )


def declaration(spec: CollectionSpec) -> str:
    """What is recorded about a collection's declaration, to compare at the next start."""
    return json.dumps(
        {
            "fields": [{"name": f.name, "type": f.type, "indexed": f.indexed} for f in spec.fields],
            "unique": [list(g) for g in spec.unique],
        },
        sort_keys=True,
    )


def _spec_from_declaration(name: str, text: str) -> CollectionSpec:
    data = json.loads(text)
    return CollectionSpec(
        name,
        tuple(FieldSpec(f["name"], f["type"], f["indexed"]) for f in data["fields"]),
        tuple(tuple(g) for g in data["unique"]),
    )


def _grants_select(dialect: str, source: str) -> str:
    """SQL selecting the grants ``(tenant_id, row_id, category, value)`` of the rows of ``source``
    (a FROM item aliased ``n`` with the rows' tenant_id, id, owner_principal and access_attributes).

    One grant per string value of each category of an *owned* row's attributes; anything else in
    the JSON (a non-list category, non-string values) grants nothing.
    """
    if dialect == "postgresql":
        return (
            "SELECT DISTINCT n.tenant_id, n.id, c.key, e.element #>> '{}' "
            f"FROM {source} "
            "CROSS JOIN LATERAL jsonb_each(CASE WHEN n.owner_principal IS NOT NULL "
            "AND jsonb_typeof(n.access_attributes) = 'object' THEN n.access_attributes ELSE '{}'::jsonb END) AS c "
            "CROSS JOIN LATERAL jsonb_array_elements("
            "CASE WHEN jsonb_typeof(c.value) = 'array' THEN c.value ELSE '[]'::jsonb END) AS e(element) "
            "WHERE jsonb_typeof(e.element) = 'string'"
        )
    return (
        "SELECT n.tenant_id, n.id, c.key, v.value "
        f"FROM {source}, "
        "json_each(CASE WHEN n.owner_principal IS NOT NULL AND json_type(n.access_attributes) = 'object' "
        "THEN n.access_attributes ELSE '{}' END) AS c, "
        "json_each(CASE WHEN c.type = 'array' THEN c.value ELSE '[]' END) AS v "
        "WHERE v.type = 'text'"
    )


def grant_triggers(tables: CollectionTables, quote: Callable[[str], str]) -> list[str]:
    """DDL of the triggers that keep the grants table in step with the rows' owner and attributes.

    An INSERT adds the new rows' grants (one set-based statement-level trigger per INSERT on
    PostgreSQL, a row trigger on SQLite); an UPDATE of ``owner_principal`` or
    ``access_attributes`` (the store never makes one, a migration might) replaces them; deletes
    cascade through the foreign key. No code path can forget a grant.
    """
    rows, grants = quote(tables.rows.name), quote(tables.grants.name)
    columns = "(tenant_id, row_id, category, value)"
    on_insert = quote(_short(f"{tables.rows.name}__grants_on_insert"))
    on_update = quote(_short(f"{tables.rows.name}__grants_on_update"))
    if tables.dialect == "postgresql":
        insert_fn = quote(_short(f"{tables.rows.name}__grants_insert"))
        update_fn = quote(_short(f"{tables.rows.name}__grants_update"))
        return [
            f"CREATE OR REPLACE FUNCTION {insert_fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"INSERT INTO {grants} {columns} {_grants_select('postgresql', 'new_rows AS n')}; "
            "RETURN NULL; END $$",
            f"CREATE OR REPLACE FUNCTION {update_fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"DELETE FROM {grants} WHERE tenant_id = OLD.tenant_id AND row_id = OLD.id; "
            f"INSERT INTO {grants} {columns} {_grants_select('postgresql', '(SELECT NEW.*) AS n')}; "
            "RETURN NULL; END $$",
            f"DROP TRIGGER IF EXISTS {on_insert} ON {rows}",
            f"CREATE TRIGGER {on_insert} AFTER INSERT ON {rows} REFERENCING NEW TABLE AS new_rows "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {insert_fn}()",
            f"DROP TRIGGER IF EXISTS {on_update} ON {rows}",
            f"CREATE TRIGGER {on_update} AFTER UPDATE OF owner_principal, access_attributes ON {rows} "
            f"FOR EACH ROW EXECUTE FUNCTION {update_fn}()",
        ]
    new_row = (
        "(SELECT NEW.tenant_id AS tenant_id, NEW.id AS id, NEW.owner_principal AS owner_principal, "
        "NEW.access_attributes AS access_attributes) AS n"
    )
    return [
        f"CREATE TRIGGER IF NOT EXISTS {on_insert} AFTER INSERT ON {rows} BEGIN "
        f"INSERT OR IGNORE INTO {grants} {columns} {_grants_select('sqlite', new_row)}; END",
        f"CREATE TRIGGER IF NOT EXISTS {on_update} AFTER UPDATE OF owner_principal, access_attributes ON {rows} "
        f"BEGIN DELETE FROM {grants} WHERE tenant_id = OLD.tenant_id AND row_id = OLD.id; "
        f"INSERT OR IGNORE INTO {grants} {columns} {_grants_select('sqlite', new_row)}; END",
    ]


async def lock_schema(conn: AsyncConnection) -> None:
    """Serialise schema work across processes (SQLite: the write transaction already does)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_SCHEMA_LOCK})


async def ensure_collection(conn: AsyncConnection, spec: CollectionSpec, prefix: str) -> CollectionTables:
    """Create, upgrade or reconcile ``spec``'s tables inside the caller's write transaction."""
    dialect = conn.dialect.name
    check_names(spec, prefix)
    await lock_schema(conn)
    versions = versions_table(prefix)
    await conn.run_sync(lambda c: versions.create(c, checkfirst=True))
    tables = build_tables(spec, prefix, dialect)
    query = sa.select(versions.c.layout_version, versions.c.declaration).where(versions.c.collection == spec.name)
    recorded = (await conn.execute(query)).first()
    if recorded is None:
        if await conn.run_sync(lambda c: sa.inspect(c).has_table(tables.rows.name)):
            raise SchemaError(
                f"table {tables.rows.name!r} exists but is not recorded in {versions.name!r}: it was not created by "
                "ogx-tenancy-sql; choose another table_prefix or move the table away"
            )
        await conn.run_sync(lambda c: tables.rows.metadata.create_all(c))
        await _install_triggers(conn, tables)
        record = {"collection": spec.name, "layout_version": LAYOUT_VERSION, "declaration": declaration(spec)}
        await conn.execute(sa.insert(versions).values(**record))
        log.info("collection created", collection=spec.name, table=tables.rows.name, layout_version=LAYOUT_VERSION)
        return tables
    version, recorded_declaration = recorded
    if version > LAYOUT_VERSION:
        raise SchemaError(
            f"collection {spec.name!r} has layout version {version}, newer than this ogx-tenancy-sql understands "
            f"({LAYOUT_VERSION}); upgrade the ogx-tenancy-sql package"
        )
    old_spec = _spec_from_declaration(spec.name, recorded_declaration)
    if version < 2:
        await _upgrade_1_to_2(conn, old_spec, prefix)
        log.info("collection upgraded", collection=spec.name, from_version=version, to_version=LAYOUT_VERSION)
    await _reconcile_fields(conn, old_spec, spec, tables)
    await _install_triggers(conn, tables)
    await conn.execute(
        sa.update(versions)
        .where(versions.c.collection == spec.name)
        .values(layout_version=LAYOUT_VERSION, declaration=declaration(spec))
    )
    return tables


async def _install_triggers(conn: AsyncConnection, tables: CollectionTables) -> None:
    for ddl in grant_triggers(tables, lambda name: _q(conn, name)):
        await conn.exec_driver_sql(ddl)


async def _reconcile_fields(
    conn: AsyncConnection, old: CollectionSpec, new: CollectionSpec, tables: CollectionTables
) -> None:
    """Add columns for new fields and make the indexes match the declaration."""
    old_fields = {f.name: f for f in old.fields}
    for f in new.fields:
        before = old_fields.get(f.name)
        if before is not None and before.type != f.type:
            raise SchemaError(
                f"collection {new.name!r}: field {f.name!r} was declared {before.type!r} and is now {f.type!r}; "
                "changing a field's type needs a data migration (declare a new field instead)"
            )
    rows = tables.rows
    # Columns of fields no longer declared stay (with their data); they are simply not read.
    existing = {c["name"] for c in await conn.run_sync(lambda c: sa.inspect(c).get_columns(rows.name))}
    for f in new.fields:
        if f.name not in existing:
            ddl_type = column_type(f.type, tables.dialect).compile(dialect=conn.dialect)
            await conn.exec_driver_sql(f"ALTER TABLE {_q(conn, rows.name)} ADD COLUMN {_q(conn, f.name)} {ddl_type}")
            log.info("column added", collection=new.name, field=f.name)
    wanted = {ix.name for ix in rows.indexes}
    for name in set(index_specs(old, rows.name)) - wanted:
        await conn.exec_driver_sql(f"DROP INDEX IF EXISTS {_q(conn, name)}")
        log.info("index dropped", collection=new.name, index=name)
    for ix in rows.indexes:
        try:
            await conn.run_sync(lambda c, ix=ix: ix.create(c, checkfirst=True))
        except IntegrityError:
            columns = ", ".join(c.name for c in ix.columns if c.name != "tenant_id")
            raise SchemaError(
                f"collection {new.name!r}: cannot make ({columns}) unique: rows of one tenant already repeat "
                "values of it; remove the duplicates (or drop the unique group) and start again"
            ) from None
    await conn.run_sync(lambda c: tables.grants.create(c, checkfirst=True))
    for ix in tables.grants.indexes:
        await conn.run_sync(lambda c, ix=ix: ix.create(c, checkfirst=True))


def _q(conn: AsyncConnection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


async def _upgrade_1_to_2(conn: AsyncConnection, old: CollectionSpec, prefix: str) -> None:
    """Layout 1 -> 2: byte-order text, jsonb, NULL as the one unowned spelling, revisions, grants."""
    dialect = conn.dialect.name
    name = f"{prefix}{old.name}"

    def q(identifier: str) -> str:
        return _q(conn, identifier)

    if dialect == "postgresql":
        text_columns = ["tenant_id", "id", "owner_principal", *(f.name for f in old.fields if f.type == "str")]
        json_columns = ["access_attributes", *(f.name for f in old.fields if f.type == "json")]
        alters = [f'ALTER COLUMN {q(c)} TYPE text COLLATE "C"' for c in text_columns]
        alters += [f"ALTER COLUMN {q(c)} TYPE jsonb USING {q(c)}::jsonb" for c in json_columns]
        alters.append("ADD COLUMN revision bigint NOT NULL DEFAULT 1")
        await conn.exec_driver_sql(f"ALTER TABLE {q(name)} {', '.join(alters)}")
        await conn.exec_driver_sql(f"ALTER TABLE {q(name)} ALTER COLUMN revision DROP DEFAULT")
        await conn.exec_driver_sql(f"UPDATE {q(name)} SET owner_principal = NULL WHERE owner_principal = ''")
        check = q(_short(f"{name}__owner_not_empty"))
        await conn.exec_driver_sql(f"ALTER TABLE {q(name)} ADD CONSTRAINT {check} CHECK (owner_principal <> '')")
    else:
        # SQLite cannot add a CHECK constraint to a table: rebuild it (its documented procedure).
        staging = f"{name}__upgrade"
        new_tables = build_tables(old, prefix, dialect, table_name=staging)
        await conn.run_sync(lambda c: new_tables.rows.create(c))
        columns = ["tenant_id", "id", "owner_principal", "access_attributes", *(f.name for f in old.fields)]
        listed = ", ".join(q(c) for c in columns)
        selected = ", ".join("NULLIF(owner_principal, '')" if c == "owner_principal" else q(c) for c in columns)
        await conn.exec_driver_sql(f"INSERT INTO {q(staging)} ({listed}, revision) SELECT {selected}, 1 FROM {q(name)}")
        await conn.exec_driver_sql(f"DROP TABLE {q(name)}")
        await conn.exec_driver_sql(f"ALTER TABLE {q(staging)} RENAME TO {q(name)}")
        for ix in new_tables.rows.indexes:  # they were created under the staging name
            await conn.exec_driver_sql(f"DROP INDEX IF EXISTS {q(ix.name)}")
    tables = build_tables(old, prefix, dialect)
    await conn.run_sync(lambda c: tables.grants.create(c, checkfirst=True))
    insert = "INSERT INTO" if dialect == "postgresql" else "INSERT OR IGNORE INTO"
    source = _grants_select(dialect, f"{q(name)} AS n")
    await conn.exec_driver_sql(f"{insert} {q(tables.grants.name)} (tenant_id, row_id, category, value) {source}")
