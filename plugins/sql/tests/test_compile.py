"""``OwnerShares`` has two SQL forms on PostgreSQL — EXISTS over the grants table, and the row's own
jsonb (``in_row``, used by the head probe). They must agree on every row, also on JSON that the
store itself never writes (legacy or migrated rows): non-object attributes, a category that is not
an array, non-string elements, unowned rows.
"""

from __future__ import annotations

import itertools
import json

import pytest
import sqlalchemy as sa

from ogx_tenancy import CollectionSpec, FieldSpec, Policy
from ogx_tenancy.policy import OwnerShares
from ogx_tenancy_sql.compile import Compiler, bind_values, shape

pytestmark = pytest.mark.postgres

SPEC = CollectionSpec("shares", (FieldSpec("body", "str"),))
ATTRIBUTES = [
    None,
    {},
    {"teams": ["a"]},
    {"teams": ["a", "b"]},
    {"teams": ["b"]},
    {"teams": "a"},  # a string, not a list: grants nothing
    {"teams": {"a": 1}},  # an object: its keys are not values
    {"teams": [1, "1", None, ["a"]]},  # only string elements count
    {"teams": []},
    {"roles": ["a"]},
    {"teams": ["A"]},  # case matters
    ["teams", "a"],  # not an object
    "a",
    7,
]
QUERIES = [("teams", ("a",)), ("teams", ("a", "b")), ("teams", ("1",)), ("roles", ("a",)), ("teams", ("zz",))]


@pytest.mark.parametrize("dialect", ["postgres"])
async def test_in_row_shares_equal_the_grants(backend):
    store = await backend.open_store(SPEC, Policy.default())
    rows = store.rows_table
    owners = [None, "owner"]
    fixture = [
        {"i": f"r{n}", "o": owner, "a": json.dumps(attributes)}
        for n, (owner, attributes) in enumerate(itertools.product(owners, ATTRIBUTES))
    ]
    async with backend.engine.begin() as conn:
        await conn.execute(
            sa.text(
                f'INSERT INTO "{rows.name}" (tenant_id, id, owner_principal, access_attributes, revision, body) '
                "VALUES ('t', :i, :o, CAST(:a AS jsonb), 1, 'x')"
            ),
            fixture,
        )
    compiler = Compiler(store._tables)
    matched = set()
    for category, values in QUERIES:
        for negated in (False, True):
            expr = OwnerShares(category, values)
            key = ("not", shape(expr)) if negated else shape(expr)
            params = bind_values(expr, "f_0" if negated else "f", {})
            answers = {}
            for in_row in (False, True):
                condition = compiler.condition(key, "f", in_row=in_row)
                query = sa.select(rows.c.id).where(condition).params(params).order_by(rows.c.id)
                async with backend.engine.connect() as conn:
                    answers[in_row] = [r.id for r in await conn.execute(query)]
            assert answers[True] == answers[False], (category, values, negated)
            if not negated:
                matched.update(answers[True])
    # owned rows with a list holding "a", "b" or "1"; never an unowned row or a malformed category
    assert matched == {f"r{len(ATTRIBUTES) + n}" for n in (2, 3, 4, 7, 9)}
