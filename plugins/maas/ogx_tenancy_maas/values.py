"""Decoding and parsing identity header values: the one place for the value formats and limits.

A header value is refused (``IdentityRejected``, 400, naming the header, never echoing the value)
when it is not valid UTF-8, contains a control or invisible format character, is malformed JSON, or
breaks a limit. Otherwise it becomes a trimmed, de-duplicated list of values:

=====================  ===================  =====================================================
format                 example              values
=====================  ===================  =====================================================
JSON array of strings  ``["g1", "g2"]``     ``g1``, ``g2``
JSON string            ``"g1, g2"``         ``g1, g2`` (quoting keeps commas and brackets literal)
Authorino ``@tostr``   ``[g1 g2]``          ``g1``, ``g2`` (split on spaces and commas)
comma-separated        ``g1, g2``           ``g1``, ``g2``
one plain value        ``g1``               ``g1``
=====================  ===================  =====================================================

A value that starts with ``[`` and contains a double quote is JSON and must parse as an array of
strings; one without quotes is the bracket form. A value in braces (a JSON object) is refused.
Empty items are dropped.
"""

from __future__ import annotations

import json
import json.scanner
import re
import unicodedata

from ogx_tenancy import IdentityRejected

# C0 controls and DEL, on the raw bytes: CR, LF and NUL never reach the signature's canonical form.
_RAW_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Beyond ASCII: C1 controls, invisible format characters (bidi overrides, zero-width), surrogates
# (reachable through JSON \ud800 escapes) and line/paragraph separators.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_BRACKET_SEPARATORS = re.compile(r"[\s,]+")
# json's own scanner without json.loads' wrappers (several times faster on short values); the
# caller checks that it consumed the whole text, as json.loads does.
_scan_json = json.scanner.make_scanner(json.JSONDecoder())


def has_raw_control(raw: bytes) -> bool:
    """Whether raw header bytes contain a C0 control character or DEL (surrounding spaces and tabs
    are HTTP's optional whitespace, not part of the value)."""
    return _RAW_CONTROL.search(raw.strip(b" \t")) is not None


def _has_forbidden_character(text: str) -> bool:
    if _CONTROL.search(text) is not None:
        return True
    if text.isascii():
        return False
    return any(unicodedata.category(char) in _FORBIDDEN_CATEGORIES for char in text if char > "\x7f")


class ValueParser:
    """Turns raw header bytes into values under the configured limits.

    :param max_value_length: longest value accepted, in characters (after trimming).
    :param max_values: most distinct values accepted in one header.
    """

    __slots__ = ("max_raw_length", "max_value_length", "max_values")

    def __init__(self, max_value_length: int, max_values: int):
        self.max_value_length = max_value_length
        self.max_values = max_values
        # Longest legitimate encoding of max_values values: JSON with every character \u-escaped,
        # quoted, comma-separated. Anything longer is refused before parsing.
        self.max_raw_length = max_values * (6 * max_value_length + 3) + 2

    def text(self, raw: bytes, header: str) -> str:
        """Raw header bytes as trimmed text: strict UTF-8, no control or invisible format characters."""
        raw = raw.strip(b" \t")  # HTTP's optional whitespace around a value; a tab inside is refused
        if len(raw) > self.max_raw_length:
            raise IdentityRejected(400, f"header {header} is too long", header=header)
        if _RAW_CONTROL.search(raw) is not None:
            raise IdentityRejected(400, f"header {header} contains a control character", header=header)
        if raw.isascii():
            return raw.decode("ascii").strip()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise IdentityRejected(400, f"header {header} is not valid UTF-8", header=header) from None
        if _has_forbidden_character(text):
            raise IdentityRejected(400, f"header {header} contains a control character", header=header)
        return text.strip()

    def single(self, raw: bytes, header: str) -> str:
        """One plain value (the principal, a tenant id): non-empty, within the length limit."""
        value = self.text(raw, header)
        if not value:
            raise IdentityRejected(400, f"header {header} is empty", header=header)
        if len(value) > self.max_value_length:
            raise IdentityRejected(
                400, f"header {header} is longer than {self.max_value_length} characters", header=header
            )
        return value

    def many(self, raw: bytes, header: str) -> list[str]:
        """Every value of a list-valued header, in any supported format: trimmed, de-duplicated in order."""
        text = self.text(raw, header)
        if not text:
            return []
        first = text[0]
        if first == "[":
            if not text.endswith("]"):
                raise IdentityRejected(400, f"header {header} is malformed: unterminated list", header=header)
            if '"' in text:
                items = self._json(text, header, list)
            else:
                items = _BRACKET_SEPARATORS.split(text[1:-1])
        elif first == '"':
            items = self._json(text, header, str)
        elif first == "{" and text.endswith("}"):
            raise IdentityRejected(
                400, f"header {header} is malformed: expected a list or a string, not a JSON object", header=header
            )
        else:
            items = text.split(",")
        values: dict[str, None] = {}
        for item in items:
            value = item.strip()
            if value:
                if len(value) > self.max_value_length:
                    raise IdentityRejected(
                        400, f"a value of header {header} is longer than {self.max_value_length} characters",
                        header=header,
                    )
                values[value] = None
        if len(values) > self.max_values:
            raise IdentityRejected(400, f"header {header} has more than {self.max_values} values", header=header)
        return list(values)

    @staticmethod
    def _json(text: str, header: str, expected: type) -> list[str]:
        try:
            parsed, end = _scan_json(text, 0)
        except (ValueError, StopIteration, RecursionError):
            end = -1
        if end != len(text):
            raise IdentityRejected(400, f"header {header} is malformed JSON", header=header)
        items = [parsed] if expected is str else parsed
        if not isinstance(parsed, expected) or not all(isinstance(item, str) for item in items):
            raise IdentityRejected(
                400, f"header {header} is malformed: a JSON value must be a string or an array of strings",
                header=header,
            )
        # escapes such as \u0000 or \u202e decode to characters the raw check could not see
        if "\\" in text and any(_has_forbidden_character(item) for item in items):
            raise IdentityRejected(400, f"header {header} contains a control character", header=header)
        return items
