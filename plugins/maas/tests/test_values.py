"""Every header value format, and every way a value is refused (ogx_tenancy_maas.values)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ogx_tenancy import IdentityRejected
from ogx_tenancy_maas.values import ValueParser

HEADER = "X-MaaS-Group"
SECRET = "s3cr3t-team"  # must never appear in a rejection


def parse(value: str | bytes, *, max_value_length: int = 256, max_values: int = 64) -> list[str]:
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return ValueParser(max_value_length, max_values).many(raw, HEADER)


def refusal(value: str | bytes, **limits: int) -> IdentityRejected:
    with pytest.raises(IdentityRejected) as caught:
        parse(value, **limits)
    rejection = caught.value
    assert rejection.status == 400
    assert rejection.header == HEADER
    assert HEADER in rejection.reason
    assert SECRET not in rejection.reason and SECRET not in json.dumps(rejection.to_openai_error())
    return rejection


# -- formats --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # JSON array of strings: what MaaS sends
        ('["system:authenticated","g1"]', ["system:authenticated", "g1"]),
        ('[ "g1" , "g2" ]', ["g1", "g2"]),
        ('["g1","g2","g1"]', ["g1", "g2"]),
        ('[" g1 ", "g2  "]', ["g1", "g2"]),
        ('["", "  ", "g1"]', ["g1"]),
        ("[]", []),
        ('["a,b", "[c d]"]', ["a,b", "[c d]"]),
        ('["\\u00e9quipe", "チーム"]', ["équipe", "チーム"]),
        # JSON string: quoting keeps commas and brackets literal
        ('"g1"', ["g1"]),
        ('"g1, g2"', ["g1, g2"]),
        ('"[g1 g2]"', ["[g1 g2]"]),
        ('" g1 "', ["g1"]),
        # Authorino @tostr form
        ("[g1 g2]", ["g1", "g2"]),
        ("[g1  g2 g1]", ["g1", "g2"]),
        ("[ g1 ]", ["g1"]),
        ("[g1,g2]", ["g1", "g2"]),
        ("[system:authenticated team-a]", ["system:authenticated", "team-a"]),
        # comma-separated
        ("g1, g2", ["g1", "g2"]),
        ("g1,,g2,", ["g1", "g2"]),
        ("g1,g1 , g2", ["g1", "g2"]),
        # one plain value
        ("g1", ["g1"]),
        ("   g1   ", ["g1"]),
        ("my team", ["my team"]),
        ("équipe", ["équipe"]),
        # nothing
        ("", []),
        ("   ", []),
    ],
)
def test_formats(value, expected):
    assert parse(value) == expected


def test_single_value_is_plain_and_trimmed():
    parser = ValueParser(256, 64)
    assert parser.single(b"  alice  ", "X-MaaS-Username") == "alice"
    # a principal is never split or JSON-decoded: LDAP-style names keep their commas
    assert parser.single(b"cn=alice,ou=people", "X-MaaS-Username") == "cn=alice,ou=people"
    assert parser.single(b'["alice"]', "X-MaaS-Username") == '["alice"]'


@pytest.mark.parametrize("value", [b"", b"   ", b"\t"])
def test_single_value_must_not_be_empty(value):
    with pytest.raises(IdentityRejected) as caught:
        ValueParser(256, 64).single(value, "X-MaaS-Username")
    assert (caught.value.status, caught.value.header) == (400, "X-MaaS-Username")
    assert "empty" in caught.value.reason


# -- rejections -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        f'["{SECRET}", "g2"',  # unterminated
        f'["{SECRET}",]',
        f'["{SECRET}" "g2"]',
        f'[{SECRET}, "g2"]',
        f'["{SECRET}"] ["x"]',
        f'"{SECRET}',
        f'"{SECRET}" "x"',
        f'"{SECRET}"x',
    ],
)
def test_malformed_json_is_refused(value):
    assert "malformed" in refusal(value).reason


@pytest.mark.parametrize(
    "value",
    ['[1, "g"]', '["g", ["h"]]', '["g", null]', '["g", true]', '[{"a": "b"}]', f'{{"teams": ["{SECRET}"]}}'],
)
def test_json_that_is_not_strings_is_refused(value):
    assert "malformed" in refusal(value).reason


def test_brackets_without_quotes_are_the_tostr_form():
    # Authorino renders a list with Go's fmt: no quotes, so [null] and [1 2] are names, not JSON
    assert parse("[null]") == ["null"]
    assert parse("[1 2]") == ["1", "2"]


def test_braces_are_refused_only_around_a_whole_value():
    assert parse("{admins") == ["{admins"]
    assert "JSON object" in refusal("{admins}").reason


def test_deeply_nested_json_is_refused_cleanly():
    refusal("[" * 5000 + '"x"' + "]" * 5000)


@pytest.mark.parametrize(
    "value",
    [
        f"{SECRET}\x00".encode(),
        f"{SECRET}\r\nX-Injected: 1".encode(),
        f"{SECRET}\n".encode() + b"x",
        f"a\tb{SECRET}".encode(),
        f"{SECRET}\x7f".encode(),
        f"{SECRET}\x1b[31m".encode(),
        f"{SECRET}\u0085".encode(),  # C1 control (NEL)
        f"{SECRET}\u202e".encode(),  # right-to-left override
        f"{SECRET}\u200b".encode(),  # zero-width space
        f"{SECRET}\u2028".encode(),  # line separator
        f'["{SECRET}\\u0000"]'.encode(),  # escapes decode to what the raw check cannot see
        f'["{SECRET}\\u202e"]'.encode(),
        f'["{SECRET}\\ud800"]'.encode(),  # lone surrogate
        f'"{SECRET}\\n"'.encode(),
    ],
)
def test_control_and_invisible_characters_are_refused(value):
    assert "control character" in refusal(value).reason


@pytest.mark.parametrize(
    "value",
    [
        b"\xff",
        SECRET.encode() + b"caf\xe9",  # Latin-1, not UTF-8
        b"\xc0\xaf",  # overlong encoding of '/'
        b"\xed\xa0\x80",  # an encoded surrogate
        b'["' + SECRET.encode() + b'\xe2\x82"]',  # truncated sequence
    ],
)
def test_invalid_utf8_is_refused(value):
    assert "UTF-8" in refusal(value).reason


def test_value_length_limit_counts_characters():
    assert parse("a" * 256) == ["a" * 256]
    assert parse("é" * 256) == ["é" * 256]  # 512 bytes, 256 characters
    assert "longer than 256" in refusal(SECRET + "a" * 256).reason
    assert "longer than 256" in refusal(json.dumps([SECRET, "b" * 257])).reason
    assert parse("a" * 10, max_value_length=10) == ["a" * 10]
    assert "longer than 10" in refusal(SECRET, max_value_length=10).reason


def test_value_count_limit():
    values = [f"g{i}" for i in range(64)]
    assert parse(json.dumps(values)) == values
    assert parse(json.dumps(values + values)) == values  # duplicates are not extra values
    assert "more than 64 values" in refusal(json.dumps([SECRET, *values])).reason
    assert "more than 64 values" in refusal(",".join([SECRET, *values])).reason
    assert "more than 64 values" in refusal("[" + " ".join([SECRET, *values]) + "]").reason
    assert "more than 3 values" in refusal("a,b,c,d", max_values=3).reason


def test_oversized_raw_value_is_refused_before_parsing():
    parser = ValueParser(8, 2)
    assert parser.max_raw_length == 2 * (6 * 8 + 3) + 2
    with pytest.raises(IdentityRejected) as caught:
        parser.many(b"[" + b" " * parser.max_raw_length + b"]", HEADER)
    assert "too long" in caught.value.reason


# -- properties -----------------------------------------------------------------------------------

# values a gateway may legitimately send in every format: no separators, quotes or brackets
plain_value = st.text(
    st.characters(
        blacklist_categories=("Cc", "Cf", "Cs", "Zl", "Zp", "Zs"), blacklist_characters='[]{},"\\'
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=500, deadline=None)
@given(st.lists(plain_value, max_size=64))
def test_every_format_gives_the_same_values(values):
    expected = list(dict.fromkeys(values))
    assert parse(json.dumps(values)) == expected
    assert parse(json.dumps(values, ensure_ascii=False)) == expected
    assert parse("[" + " ".join(values) + "]") == expected
    assert parse(", ".join(values)) == expected
    if len(values) == 1:
        assert parse(values[0]) == expected
        assert parse(json.dumps(values[0])) == expected
