"""The hook reference is generated from the specs; every hook is documented and tested."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ogx_tenancy import hookspecs
from ogx_tenancy.hookref import render
from ogx_tenancy.manager import HOOK_NAMES

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("**When:**", "**Receives:**", "**Returns:**", "**Merging:**")


def test_hook_reference_is_up_to_date():
    committed = (ROOT / "docs" / "hooks.md").read_text()
    assert committed == render(), "docs/hooks.md is stale: regenerate it with `ogx-tenancy hooks > docs/hooks.md`"


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_hook_is_documented(hook):
    doc = getattr(hookspecs, hook).__doc__ or ""
    missing = [section for section in SECTIONS if section not in doc]
    assert doc.strip(), f"{hook} has no docstring"
    assert not missing, f"{hook} docstring lacks {missing}"
    assert f"## `{hook}`" in render()


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_hook_has_a_test(hook):
    sources = "\n".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    assert re.search(rf"def test_hook_{hook}\b", sources), f"no test_hook_{hook} in hookspecs/tests"
