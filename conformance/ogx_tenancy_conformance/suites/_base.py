"""What every plugin-level suite shares: the plugin under test and its registration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from ..discovery import DiscoveryError, load_target


@dataclass(frozen=True)
class PluginUnderTest:
    """The plugin object the suite registers with the core plugin manager, under ``name``.

    ``name`` is the plugin's entry-point name: its settings block is ``tenancy.plugins.<name>``.
    """

    name: str
    plugin: object


class PluginSuite:
    """Base of the plugin-level suites.

    Either set ``plugin_name`` (the plugin's ``ogx_tenancy`` entry-point name: the installed plugin
    is loaded) or override the ``conformance_plugin`` fixture to return a ``PluginUnderTest``.
    """

    plugin_name: ClassVar[str | None] = None
    #: the family's harness: a harness class or instance (or override the family's harness fixture)
    harness: ClassVar[Any] = None

    def harness_instance(self, config: pytest.Config | None = None) -> Any:
        """The harness the family's fixture returns by default: ``harness``, instantiated if a class."""
        return self.harness() if isinstance(self.harness, type) else self.harness

    @pytest.fixture
    def conformance_plugin(self) -> PluginUnderTest:
        if not self.plugin_name:
            pytest.fail(
                f"{type(self).__name__}: set plugin_name = '<entry-point name>' or override the "
                "conformance_plugin fixture to return PluginUnderTest(name, plugin_object)",
                pytrace=False,
            )
        try:
            target = load_target(self.plugin_name)
        except DiscoveryError as e:
            pytest.fail(str(e), pytrace=False)
        return PluginUnderTest(target.name, target.plugin)
