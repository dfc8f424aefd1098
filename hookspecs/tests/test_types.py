from __future__ import annotations

import json

import pytest

from ogx_tenancy.types import Identity, IdentityRejected, RequestHeaders


def test_identity_normalises_attributes_to_deduplicated_tuples():
    identity = Identity("alice", {"teams": ["a", "b", "a"], "roles": [], "projects": ("p",)}, "t1")
    assert identity.attributes == {"teams": ("a", "b"), "projects": ("p",)}
    assert identity.attributes_as_lists() == {"teams": ["a", "b"], "projects": ["p"]}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"principal": ""},
        {"principal": 3},
        {"principal": "a", "tenant_id": ""},
        {"principal": "a", "attributes": {"teams": "ab"}},
        {"principal": "a", "attributes": {"teams": [1]}},
        {"principal": "a", "attributes": {"": ["x"]}},
    ],
)
def test_identity_refuses_malformed_values(kwargs):
    with pytest.raises(TypeError):
        Identity(**kwargs)


def test_identity_is_immutable():
    identity = Identity("alice", {"teams": ["a"]})
    with pytest.raises(AttributeError):
        identity.principal = "bob"  # type: ignore[misc]
    assert isinstance(identity.attributes["teams"], tuple)


def test_request_headers_show_every_value_case_insensitively():
    headers = RequestHeaders([(b"x-user", b"alice"), (b"X-User", b"mallory"), (b"x-team", b"\xc3\xa9")])
    assert headers.get_all("X-USER") == ["alice", "mallory"]
    assert headers.get_all_raw("x-team") == [b"\xc3\xa9"]
    assert headers.get_all("x-team") == ["\xc3\xa9"]  # Latin-1: lossless, not UTF-8
    assert "x-team" in headers and "x-none" not in headers
    assert headers.get_single("x-none") is None
    assert headers.get_single("x-team") == "\xc3\xa9"
    assert headers.names() == ["x-user", "x-team"]


@pytest.mark.parametrize(
    "raw",
    [
        [(b"x-a", b"1"), (b"x-b", b"2")],  # what ASGI servers send: the dict() fast path
        [(b"x-a", b"1"), (b"x-b", b"2"), (b"x-a", b"3")],
        [(b"X-A", b"1"), (b"x-b", b"2")],
        [(b"x-a", b"1"), (b"X-a", b"3"), (b"123", b"4")],
        [],
    ],
)
def test_request_headers_lookup_matches_a_plain_scan(raw):
    headers = RequestHeaders(raw)
    for name in ("x-a", "X-A", "x-b", "123", "x-none", "x-\u0100"):
        expected = [value for key, value in raw if key.decode("latin-1").lower() == name.lower()]
        assert headers.get_all_raw(name) == expected
        assert (name in headers) == bool(expected)
    assert headers.names() == list(dict.fromkeys(key.decode("latin-1").lower() for key, _ in raw))


def test_duplicated_header_is_refused_by_get_single():
    headers = RequestHeaders.from_pairs([("X-User", "alice"), ("x-user", "alice")])
    with pytest.raises(IdentityRejected) as info:
        headers.get_single("x-user")
    assert info.value.status == 400 and info.value.header == "x-user"


def test_request_headers_repr_shows_no_values():
    assert "secret" not in repr(RequestHeaders.from_pairs([("x-token", "secret")]))


def test_rejection_renders_openai_error_shape():
    body = json.loads(IdentityRejected(403, "peer is not a trusted proxy", header="x-maas-username").to_json_bytes())
    assert body == {
        "error": {
            "message": "peer is not a trusted proxy",
            "type": "permission_denied",
            "param": "x-maas-username",
            "code": "403",
        }
    }


@pytest.mark.parametrize("status", [200, 404, 500])
def test_rejection_status_must_be_a_client_error_of_identity(status):
    with pytest.raises(ValueError):
        IdentityRejected(status, "nope")
