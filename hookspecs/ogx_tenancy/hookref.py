"""The hook reference, generated from the hook specifications themselves.

``ogx-tenancy hooks`` prints it; ``docs/hooks.md`` is its committed output, and a test fails when
the two differ, when a hook has no docstring, or when a hook has no ``test_hook_<name>`` test.
"""

from __future__ import annotations

import inspect
import textwrap

from . import hookspecs
from .manager import HOOK_NAMES

HEADER = """\
# Hook reference

Generated from `ogx_tenancy/hookspecs.py` by `ogx-tenancy hooks`; do not edit by hand.

Implement a hook with the `hookimpl` marker in a module registered in the `ogx_tenancy`
entry-point group:

```toml
[project.entry-points.ogx_tenancy]
my_plugin = "my_package.plugin"
```

```python
from ogx_tenancy import hookimpl

@hookimpl
def ogx_tenancy_identity(request, settings):
    ...
```

An implementation may accept any subset of a hook's arguments, never extra ones, and none with a
default value (pluggy would never pass it).
"""


def hook_signature(name: str) -> str:
    function = getattr(hookspecs, name)
    signature = inspect.signature(function)
    return f"{name}{signature}".replace("'", "")


def render() -> str:
    parts = [HEADER]
    for name in HOOK_NAMES:
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        parts.append(f"## `{name}`\n\n```python\n{hook_signature(name)}\n```\n\n{textwrap.dedent(doc)}\n")
    return "\n".join(parts)
