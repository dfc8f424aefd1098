"""The plugin as the host loads it: entry point, registered backends, config validation, a store
opened through the host from a run config's ``tenancy.storage`` section."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from ogx_tenancy import CollectionSpec, FieldSpec, Identity, Tenancy, acting_as
from ogx_tenancy.manager import PluginManager
from ogx_tenancy.settings import ConfigError
from ogx_tenancy_sql import PostgresStorageConfig, SqliteStorageConfig, SqlStore

PASSWORD = "hunter2-secret"


def sql_plugin_manager() -> PluginManager:
    manager = PluginManager()
    manager.load_entry_points([ep for ep in entry_points(group="ogx_tenancy") if ep.name == "sql"])
    return manager


def test_entry_point_registers_both_backends():
    backends = sql_plugin_manager().storage_backends()
    assert {name: (r.config_model, r.plugin) for name, r in backends.items()} == {
        "sqlite": (SqliteStorageConfig, "sql"),
        "postgres": (PostgresStorageConfig, "sql"),
    }


async def test_host_opens_a_store_from_the_run_config(tmp_path):
    section = {"storage": {"backend": "sqlite", "config": {"path": str(tmp_path / "sub" / "tenancy.db")}}}
    policy = [{"permit": {"actions": ["create", "read", "update", "delete"]}, "when": "user is owner"}]
    tenancy = Tenancy.from_config(section, access_policy=policy, manager=sql_plugin_manager())
    try:
        store = await tenancy.open_store(CollectionSpec("notes", (FieldSpec("text", "str"),)))
        assert isinstance(store, SqlStore)
        with acting_as(Identity("alice", {}, "t1")):
            await store.create("n1", {"text": "hello"})
        with acting_as(Identity("bob", {}, "t1")):  # the host's policy is the store's: owner only
            assert await store.get("n1") is None
        assert (tmp_path / "sub" / "tenancy.db").exists()
    finally:
        await tenancy.close()


@pytest.mark.parametrize(
    ("storage", "expected"),
    [
        ({"backend": "sqlite", "config": {}}, "path"),
        ({"backend": "sqlite", "config": {"path": "x.db", "nope": 1}}, "nope"),
        ({"backend": "sqlite", "config": {"path": "x.db", "table_prefix": "Bad-Prefix"}}, "table_prefix"),
        ({"backend": "postgres", "config": {}}, "give either 'dsn' or 'database'"),
        ({"backend": "postgres", "config": {"dsn": f"mysql://u:{PASSWORD}@h/db"}}, "postgresql:// URL"),
        ({"backend": "postgres", "config": {"dsn": f"postgresql://u:{PASSWORD}@h:port/db"}}, "dsn: expected"),
        ({"backend": "postgres", "config": {"dsn": f"postgresql://u:{PASSWORD}@h/"}}, "names no database"),
        ({"backend": "postgres", "config": {"database": "d", "pool_size": 0}}, "pool_size"),
    ],
)
def test_bad_storage_config_stops_start_up_naming_the_key_never_the_password(storage, expected):
    with pytest.raises(ConfigError) as caught:
        Tenancy.from_config({"storage": storage}, manager=sql_plugin_manager())
    message = str(caught.value)
    assert "'sql'" in message and expected in message and PASSWORD not in message, message


def test_postgres_config_builds_the_asyncpg_url():
    by_parts = PostgresStorageConfig(host="db", port=5433, database="ogx", user="ogx", password="pw")
    assert by_parts.url().render_as_string(hide_password=False) == "postgresql+asyncpg://ogx:pw@db:5433/ogx"
    by_dsn = PostgresStorageConfig(dsn="postgres://ogx:pw@db/ogx")
    assert by_dsn.url().render_as_string(hide_password=False) == "postgresql+asyncpg://ogx:pw@db/ogx"
    assert "pw" not in repr(by_dsn) and "pw" not in repr(by_parts)
