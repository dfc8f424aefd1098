"""Prompts with versions and exactly one default per prompt, on the store contract.

The semantics are OGX's Prompts API (create, get the default or one version, list defaults, list
versions, update with the latest-version check, set the default version, delete), with three
deliberate differences:

* adding a version needs ``update`` permission on the prompt (OGX lets anyone who can read a prompt
  append versions), and every version keeps the prompt's owner, whoever added it;
* ``update(..., set_as_default=True)`` returns the new version with ``is_default`` true (OGX returns
  false);
* a prompt has exactly one default at every instant, whatever dies when.

Data layout: one collection, ``prompts`` (so OGX policies naming ``sql_record::prompts`` keep
applying), holding two kinds of row:

* the **head** of a prompt — id ``pmpt_…``, ``kind="prompt"`` — records ``version`` (the default
  version), ``latest_version`` and a copy of the default version's text and variables;
* one row per **version** — id ``pmpt_…:<n>`` (OGX's own row ids), ``kind="version"`` — immutable.

The default is a field of one row, so switching it is a single-row update: there is never zero or
two defaults, even if the process is killed half-way, on any backend. Creating, updating and
deleting touch several rows and run in ``store.transaction()``; on a backend without transactions a
crash there can leave a version number without its row, never a wrong default.

Access is decided on the head: reading a prompt needs ``read`` on its head, adding a version or
changing the default ``update``, deleting ``delete``. Version rows are written (and deleted with their
prompt) in a system context bounded to the prompt's tenant, with the prompt's owner, after that
decision; they are read as the caller.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from ..context import system_context
from ..store import AccessControlledStore, CollectionSpec, FieldSpec, Owner, Row, RowConflict
from . import InvalidRequest, NotFound, require_system_context

log = structlog.get_logger("ogx_tenancy.services.prompts")

PROMPTS = CollectionSpec(
    name="prompts",
    fields=(
        FieldSpec("kind", "str", indexed=True),
        FieldSpec("prompt_id", "str", indexed=True),
        FieldSpec("version", "int", indexed=True),
        FieldSpec("latest_version", "int"),
        FieldSpec("prompt", "json"),
        FieldSpec("variables", "json"),
        FieldSpec("created_at", "int"),
    ),
)

HEAD = "prompt"
VERSION = "version"
_PROMPT_ID = re.compile(r"pmpt_[0-9a-f]{48}")
_VARIABLE = re.compile(r"{{\s*(\w+)\s*}}")
_PAGE = 100


class PromptNotFound(NotFound):
    def __init__(self, prompt_id: str):
        super().__init__(f"Prompt '{prompt_id}' not found")
        self.prompt_id = prompt_id


class PromptVersionNotFound(NotFound):
    def __init__(self, prompt_id: str, version: int):
        super().__init__(f"Version {version} of prompt '{prompt_id}' not found")
        self.prompt_id = prompt_id
        self.version = version


class NotLatestVersion(InvalidRequest):
    """``update`` was given a version that is not (or, by the time it wrote, no longer) the latest."""

    def __init__(self, given: int, latest: int):
        super().__init__(f"version {given} is not the latest version of the prompt ({latest})", param="version")
        self.given = given
        self.latest = latest


@dataclass(frozen=True, slots=True)
class PromptVersion:
    """One version of a prompt as the API shows it.

    :param prompt_id: ``pmpt_`` followed by 48 lowercase hex digits.
    :param version: 1, 2, …
    :param prompt: the template text (``{{ name }}`` placeholders), or None.
    :param variables: the declared variable names.
    :param is_default: this version is the prompt's default.
    """

    prompt_id: str
    version: int
    prompt: str | None
    variables: list[str] = field(default_factory=list)
    is_default: bool = False


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """One version of a ``PromptRecord``."""

    version: int
    prompt: str | None
    variables: list[str]
    created_at: int


@dataclass(frozen=True, slots=True)
class PromptRecord:
    """A whole prompt as stored, for migrations: ``restore`` writes one, ``export`` reads one back.

    :param owner: the prompt's owner; ``owner.tenant_id`` is its tenant (``""`` = global).
    :param versions: every version, by number.
    """

    prompt_id: str
    owner: Owner
    default_version: int
    versions: tuple[StoredVersion, ...]
    created_at: int


def _plain(attributes: Mapping[str, Sequence[str]] | None) -> dict[str, list[str]] | None:
    return {k: list(v) for k, v in attributes.items()} if attributes else None


def new_prompt_id() -> str:
    return f"pmpt_{secrets.token_bytes(24).hex()}"


def version_row_id(prompt_id: str, version: int) -> str:
    return f"{prompt_id}:{version}"


def validate_prompt(prompt: str | None, variables: Sequence[str] | None) -> list[str]:
    """The declared variables as a list; every ``{{ name }}`` in the text must be declared."""
    declared = list(variables or [])
    if any(not isinstance(v, str) or not v for v in declared):
        raise InvalidRequest("variables must be non-empty strings", param="variables")
    undeclared = sorted(set(_VARIABLE.findall(prompt or "")) - set(declared))
    if undeclared:
        raise InvalidRequest(f"Prompt contains undeclared variables: {undeclared}", param="variables")
    return declared


class PromptService:
    """OGX's Prompts API on one ``AccessControlledStore`` of the ``PROMPTS`` collection."""

    collections = (PROMPTS,)

    def __init__(self, store: AccessControlledStore):
        if store.collection.name != PROMPTS.name:
            raise ValueError(f"PromptService needs a store of collection {PROMPTS.name!r}")
        self.store = store

    @classmethod
    async def open(cls, open_store: Callable[[CollectionSpec], Awaitable[AccessControlledStore]]) -> PromptService:
        """Open the service's store with ``open_store`` (e.g. ``ogx_tenancy.host.open_store``)."""
        return cls(await open_store(PROMPTS))

    # -- reading ------------------------------------------------------------------------------

    async def list(self) -> list[PromptVersion]:
        """The default version of every prompt the caller may read, by prompt id descending."""
        return [self._from_head(head) async for head in self._pages({"kind": HEAD}, order_by=None, descending=True)]

    async def get(self, prompt_id: str, version: int | None = None) -> PromptVersion:
        """The default version (``version=None``) or one version of a prompt."""
        head = await self._head(prompt_id)
        if version is None:
            return self._from_head(head)
        row = await self.store.get(version_row_id(prompt_id, version))
        if row is None or row["kind"] != VERSION:
            raise PromptVersionNotFound(prompt_id, version)
        return self._from_version(row, head)

    async def list_versions(self, prompt_id: str) -> list[PromptVersion]:
        """Every version of a prompt the caller may read, oldest first."""
        head = await self._head(prompt_id)
        where = {"kind": VERSION, "prompt_id": prompt_id}
        return [self._from_version(row, head) async for row in self._pages(where, order_by="version")]

    # -- writing ------------------------------------------------------------------------------

    async def create(self, prompt: str, variables: Sequence[str] | None = None) -> PromptVersion:
        """A new prompt whose version 1 is its default, owned by the caller."""
        declared = validate_prompt(prompt, variables)
        prompt_id = new_prompt_id()
        now = int(time.time())
        content = {"prompt": prompt, "variables": declared}
        async with self.store.transaction():
            head = await self.store.create(
                prompt_id,
                {"kind": HEAD, "prompt_id": prompt_id, "version": 1, "latest_version": 1, "created_at": now, **content},
            )
            await self._add_version_row(head, 1, content, now)
        log.info("prompt created", prompt_id=prompt_id)
        return PromptVersion(prompt_id, 1, prompt, declared, is_default=True)

    async def update(
        self,
        prompt_id: str,
        prompt: str,
        version: int,
        variables: Sequence[str] | None = None,
        *,
        set_as_default: bool = True,
    ) -> PromptVersion:
        """Add version ``version + 1``; ``version`` must be the latest. Needs ``update`` on the prompt.

        Returns the new version, with ``is_default`` telling whether it is now the default.
        """
        if not isinstance(version, int) or version < 1:
            raise InvalidRequest("version must be an integer >= 1", param="version")
        declared = validate_prompt(prompt, variables)
        content = {"prompt": prompt, "variables": declared}
        now = int(time.time())
        async with self.store.transaction():
            head = await self._head(prompt_id)
            latest = int(head["latest_version"])
            if version != latest:
                raise NotLatestVersion(version, latest)
            new_version = latest + 1
            changes: dict[str, Any] = {"latest_version": new_version}
            if set_as_default:
                changes |= {"version": new_version, **content}
            try:
                # the permission check and the latest-version check in one conditional write
                head = await self.store.update(prompt_id, changes, expected_revision=head.revision)
            except RowConflict:
                current = await self._head(prompt_id)
                raise NotLatestVersion(version, int(current["latest_version"])) from None
            await self._add_version_row(head, new_version, content, now)
        log.info("prompt version added", prompt_id=prompt_id, version=new_version, default=set_as_default)
        return PromptVersion(prompt_id, new_version, prompt, declared, is_default=set_as_default)

    async def set_default(self, prompt_id: str, version: int) -> PromptVersion:
        """Make ``version`` the default: one update of the prompt's head. Needs ``update``."""
        head = await self._head(prompt_id)
        row = await self.store.get(version_row_id(prompt_id, version))
        if row is None or row["kind"] != VERSION:
            raise PromptVersionNotFound(prompt_id, version)
        await self.store.update(
            prompt_id, {"version": version, "prompt": row["prompt"], "variables": list(row["variables"] or [])}
        )
        log.info("prompt default set", prompt_id=prompt_id, version=version)
        return self._from_version(row, head, is_default=True)

    async def delete(self, prompt_id: str) -> None:
        """Delete a prompt and all its versions. Needs ``delete`` on the prompt."""
        async with self.store.transaction():
            head = await self._head(prompt_id)
            if not await self.store.delete(prompt_id):
                raise PromptNotFound(prompt_id)
            with system_context("delete the versions of a deleted prompt", tenant_id=head.tenant_id):
                for row in await self._version_rows_of(head):
                    await self.store.delete(row.id)
        log.info("prompt deleted", prompt_id=prompt_id)

    # -- migration ----------------------------------------------------------------------------

    async def restore(self, record: PromptRecord) -> bool:
        """Write a whole prompt exactly as given: ids, versions, default, owner and tenant.

        Only inside a system context (migrations). Returns False, changing nothing, when a prompt
        with this id already exists in the record's tenant (or globally).
        """
        require_system_context("restore a prompt")
        if not _PROMPT_ID.fullmatch(record.prompt_id):
            raise InvalidRequest(f"not an OGX prompt id: {record.prompt_id!r}", param="prompt_id")
        by_number = {v.version: v for v in record.versions}
        if len(by_number) != len(record.versions) or not by_number:
            raise InvalidRequest("a prompt needs versions with distinct numbers", param="version")
        if record.default_version not in by_number:
            raise InvalidRequest(f"default version {record.default_version} is not among the versions", param="version")
        default = by_number[record.default_version]
        tenant = record.owner.tenant_id or ""
        with system_context("migration: restore a prompt", tenant_id=tenant):
            if await self.store.get(record.prompt_id) is not None:
                return False
            async with self.store.transaction():
                head = await self.store.create(
                    record.prompt_id,
                    {
                        "kind": HEAD,
                        "prompt_id": record.prompt_id,
                        "version": record.default_version,
                        "latest_version": max(by_number),
                        "created_at": record.created_at,
                        "prompt": default.prompt,
                        "variables": list(default.variables),
                    },
                    owner=Owner(record.owner.principal, record.owner.attributes, tenant),
                )
                for v in sorted(by_number.values(), key=lambda v: v.version):
                    content = {"prompt": v.prompt, "variables": list(v.variables)}
                    await self._add_version_row(head, v.version, content, v.created_at)
        return True

    async def export(self, prompt_id: str, tenant_id: str) -> PromptRecord | None:
        """The whole prompt ``prompt_id`` of tenant ``tenant_id`` (``""`` = global) as stored, or None.

        Only inside a system context (migrations check what they wrote with it).
        """
        require_system_context("export a prompt")
        with system_context("migration: read back a prompt", tenant_id=tenant_id):
            head = await self.store.get(prompt_id)
            if head is None or head["kind"] != HEAD or head.tenant_id != tenant_id:
                return None
            versions = tuple(
                StoredVersion(int(row["version"]), row["prompt"], list(row["variables"] or []), int(row["created_at"]))
                for row in await self._version_rows_of(head)
            )
        return PromptRecord(
            prompt_id=prompt_id,
            owner=Owner(head.owner_principal, _plain(head.access_attributes), head.tenant_id),
            default_version=int(head["version"]),
            versions=versions,
            created_at=int(head["created_at"]),
        )

    # -- internals ----------------------------------------------------------------------------

    async def _head(self, prompt_id: str) -> Row:
        head = await self.store.get(prompt_id)
        if head is None or head["kind"] != HEAD:
            raise PromptNotFound(prompt_id)
        return head

    async def _add_version_row(self, head: Row, version: int, content: Mapping[str, Any], created_at: int) -> None:
        # The caller's permission on the prompt was decided on the head; the version is part of the
        # prompt, so it is written with the prompt's owner and tenant, whoever the caller is.
        owner = Owner(head.owner_principal, head.access_attributes, head.tenant_id)
        with system_context("add a version to a prompt the caller may update", tenant_id=head.tenant_id):
            await self.store.create(
                version_row_id(head.id, version),
                {
                    "kind": VERSION,
                    "prompt_id": head.id,
                    "version": version,
                    "latest_version": version,
                    "created_at": created_at,
                    **content,
                },
                owner=owner,
            )

    async def _version_rows_of(self, head: Row) -> list[Row]:
        where = {"kind": VERSION, "prompt_id": head.id}
        return [row async for row in self._pages(where, order_by="version") if row.tenant_id == head.tenant_id]

    async def _pages(
        self, where: Mapping[str, Any], *, order_by: str | None, descending: bool = False
    ) -> AsyncIterator[Row]:
        cursor = None
        while True:
            page = await self.store.list(
                where=where, order_by=order_by, descending=descending, limit=_PAGE, cursor=cursor
            )
            for row in page.data:
                yield row
            if not page.has_more:
                return
            cursor = page.next_cursor

    @staticmethod
    def _from_head(head: Row) -> PromptVersion:
        return PromptVersion(head.id, int(head["version"]), head["prompt"], list(head["variables"] or []), True)

    @staticmethod
    def _from_version(row: Row, head: Row, *, is_default: bool | None = None) -> PromptVersion:
        version = int(row["version"])
        default = is_default if is_default is not None else version == int(head["version"])
        return PromptVersion(row["prompt_id"], version, row["prompt"], list(row["variables"] or []), default)
