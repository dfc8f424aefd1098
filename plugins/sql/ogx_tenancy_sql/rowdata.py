"""Checking what callers hand a store: row data, filters, ids, cursors and owners.

Every refusal is an ``InvalidRowData`` (HTTP 400) naming the field and what was expected — never
the value, which may be another tenant's data or the caller's attributes.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from ogx_tenancy.store import RESERVED_FIELDS, CollectionSpec, FieldSpec, InvalidRowData

from .compile import storable

MAX_ID_LENGTH = 1024
_INT_RANGE = (-(2**63), 2**63 - 1)


def _name(text: object) -> str:
    """A field name for an error message: shortened, so a huge key cannot flood a response."""
    shown = repr(text)
    return shown if len(shown) <= 66 else shown[:60] + "...'"


def check_id(id: object) -> str:
    if not isinstance(id, str) or not id:
        raise InvalidRowData("a row id must be a non-empty string")
    if len(id) > MAX_ID_LENGTH:
        raise InvalidRowData(f"a row id may have at most {MAX_ID_LENGTH} characters")
    if not storable(id):
        raise InvalidRowData("a row id may not contain NUL characters or unpaired surrogates")
    return id


def check_value(collection: str, field: FieldSpec, value: Any) -> Any:
    """``value`` as stored for ``field`` (None is allowed for every field)."""
    if value is None:
        return None
    where = f"{collection}.{field.name}"
    match field.type:
        case "str":
            if not isinstance(value, str):
                raise InvalidRowData(f"field {where} expects a string")
            if not storable(value):
                raise InvalidRowData(f"field {where} may not contain NUL characters or unpaired surrogates")
            return value
        case "int":
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidRowData(f"field {where} expects an integer")
            if not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
                raise InvalidRowData(f"field {where} expects a 64-bit integer")
            return value
        case "float":
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise InvalidRowData(f"field {where} expects a number")
            if not math.isfinite(value):
                raise InvalidRowData(f"field {where} expects a finite number")
            return float(value)
        case "bool":
            if not isinstance(value, bool):
                raise InvalidRowData(f"field {where} expects true or false")
            return value
        case "json":
            try:
                text = json.dumps(value, allow_nan=False, ensure_ascii=False)
                text.encode("utf-8")
            except (TypeError, ValueError):  # UnicodeEncodeError is a ValueError
                raise InvalidRowData(f"field {where} expects a JSON value (finite numbers, string keys)") from None
            if "\\u0000" in text:
                raise InvalidRowData(f"field {where} may not contain NUL characters")
            return json.loads(text)  # what a later read returns (tuples become lists, and so on)
    raise InvalidRowData(f"field {where} has an unknown type")


def check_data(collection: CollectionSpec, data: object, *, partial: bool) -> dict[str, Any]:
    """Validated column values of ``data``; missing fields are None unless ``partial``.

    Reserved names (``id``, ``owner_principal``, ``access_attributes``, ``tenant_id``,
    ``revision``) are ignored, as the store contract says: the store stamps those itself.
    """
    if type(data) is not dict and not isinstance(data, Mapping):  # (the fast check first)
        raise InvalidRowData("row data must be a mapping of field names to values")
    fields = {f.name: f for f in collection.fields}
    out: dict[str, Any] = {} if partial else dict.fromkeys(fields)
    for key, value in data.items():
        if key in RESERVED_FIELDS:
            continue
        field = fields.get(key) if isinstance(key, str) else None
        if field is None:
            raise InvalidRowData(f"collection {collection.name!r} has no field {_name(key)}")
        out[key] = check_value(collection.name, field, value)
    return out


def check_filter(collection: CollectionSpec, where: object) -> dict[str, Any]:
    """A ``where`` mapping of declared, non-JSON fields to values (None = the field is NULL)."""
    if where is None:
        return {}
    if not isinstance(where, Mapping):
        raise InvalidRowData("'where' must be a mapping of field names to values")
    fields = {f.name: f for f in collection.fields}
    out = {}
    for key, value in where.items():
        field = fields.get(key) if isinstance(key, str) else None
        if field is None:
            what = "is reserved" if key in RESERVED_FIELDS else "is not a field of"
            raise InvalidRowData(f"cannot filter on {_name(key)}: it {what} collection {collection.name!r}")
        if field.type == "json":
            raise InvalidRowData(f"cannot filter on JSON field {field.name!r}")
        out[key] = check_value(collection.name, field, value)
    return out


def check_order(collection: CollectionSpec, order_by: object) -> str:
    if order_by is None or order_by == "id":
        return "id"
    fields = {f.name: f for f in collection.fields}
    field = fields.get(order_by) if isinstance(order_by, str) else None
    if field is None:
        raise InvalidRowData(f"cannot order by {_name(order_by)}: not a field of collection {collection.name!r}")
    if field.type == "json":
        raise InvalidRowData(f"cannot order by JSON field {field.name!r}")
    return field.name


def check_attributes(attributes: object) -> dict[str, list[str]] | None:
    """An owner's attributes as stored: category -> distinct values; empty categories dropped.

    Values that no database can store (NUL, unpaired surrogates) are dropped: they could never
    match a caller's value anyway, so dropping them only narrows sharing.
    """
    if attributes is None:
        return None
    if type(attributes) is not dict and not isinstance(attributes, Mapping):
        raise InvalidRowData("owner attributes must map categories to lists of strings")
    out: dict[str, list[str]] = {}
    for category, values in attributes.items():
        is_list = type(values) in (list, tuple) or (isinstance(values, Sequence) and not isinstance(values, str))
        if not (isinstance(category, str) and is_list):
            raise InvalidRowData("owner attributes must map categories to lists of strings")
        kept: list[str] = []
        for value in values:
            if not isinstance(value, str):
                raise InvalidRowData("owner attributes must map categories to lists of strings")
            if storable(value) and value not in kept:
                kept.append(value)
        if kept and storable(category):
            out[category] = kept
    return out or None


# -- cursors ---------------------------------------------------------------------------------------


def encode_cursor(order: str, descending: bool, action: str, key: tuple[Any, str, str]) -> str:
    """An opaque cursor: the listing's order and action, and the key of the last row returned."""
    payload = {
        "o": order,
        "d": descending,
        "a": action,
        "k": key[0] if order != "id" else None,
        "i": key[1],
        "t": key[2],
    }
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(
    collection: CollectionSpec, cursor: object, order: str, descending: bool, action: str
) -> tuple[Any, str, str] | None:
    """The key a cursor resumes after; ``InvalidRowData`` if it is malformed or from another listing."""
    if cursor is None:
        return None
    invalid = InvalidRowData("invalid cursor: pass the next_cursor of the previous page unchanged")
    if not isinstance(cursor, str) or len(cursor) > 8192:
        raise invalid
    try:
        payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise invalid from None
    if not isinstance(payload, dict) or set(payload) != {"o", "d", "a", "k", "i", "t"}:
        raise invalid
    if (payload["o"], payload["d"], payload["a"]) != (order, descending, action):
        raise InvalidRowData("this cursor belongs to a listing with another order_by, descending or action")
    row_id, tenant = payload["i"], payload["t"]
    if not isinstance(row_id, str) or not isinstance(tenant, str) or not storable(row_id) or not storable(tenant):
        raise invalid
    if order == "id":
        return (row_id, row_id, tenant)
    field = collection.field(order)
    try:
        value = check_value(collection.name, field, payload["k"])
    except InvalidRowData:
        raise invalid from None
    return (value, row_id, tenant)
