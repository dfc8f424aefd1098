"""Helpers for the core tests: in-memory plugin modules and entry points (so tests control exactly
what loads), and the smallest OGX run config."""

from __future__ import annotations

import sys
import types
from importlib.metadata import EntryPoint
from types import SimpleNamespace


def make_module(name: str, **functions) -> types.ModuleType:
    module = types.ModuleType(name)
    for attr, function in functions.items():
        function.__module__ = name
        setattr(module, attr, function)
    sys.modules[name] = module
    return module


def make_entry_point(name: str, module: str, dist: str = "dist-x", version: str = "1.0") -> EntryPoint:
    return EntryPoint(name, module, "ogx_tenancy")._for(SimpleNamespace(name=dist, version=version))


def minimal_ogx_config(state_dir) -> dict:
    """The smallest run config OGX 1.5 accepts (SQLite storage in ``state_dir``)."""
    return {
        "version": 2,
        "distro_name": "core-test",
        "apis": [],
        "providers": {},
        "storage": {
            "backends": {
                "kv_default": {"type": "kv_sqlite", "db_path": str(state_dir / "kv.db")},
                "sql_default": {"type": "sql_sqlite", "db_path": str(state_dir / "sql.db")},
            },
            "stores": {
                "metadata": {"backend": "kv_default", "namespace": "registry"},
                "inference": {"backend": "sql_default", "table_name": "inference_store"},
                "conversations": {"backend": "sql_default", "table_name": "conversations"},
                "prompts": {"backend": "sql_default", "table_name": "prompts"},
                "connectors": {"backend": "sql_default", "table_name": "connectors"},
            },
        },
    }
