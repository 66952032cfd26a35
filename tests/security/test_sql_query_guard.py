"""A tenant's ``source.postgres.query`` is exactly one read-only statement, judged before any I/O.

Pure: ``indexops_api.sqltext`` lexes like PostgreSQL (comments, strings, quoted identifiers,
dollar quotes), so a ``;`` inside a string is harmless and a ``;`` hidden behind a comment
or a closing parenthesis is not.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from indexops_api.spec import PostgresSource
from indexops_api.sqltext import UnsafeQuery, single_read_statement

pytestmark = pytest.mark.security

ESCAPES = {
    "a second statement": "select id, embedding from items; COMMIT; DELETE FROM victim",
    "closing the wrapper": "select id, embedding from items) AS src; COMMIT; DELETE FROM victim; SELECT * FROM (select 1",
    "a data-modifying CTE": "with gone as (delete from victim returning id) select id, embedding from items",
    "SELECT INTO a new table": "select id, embedding into stolen from items",
    "a ; after a block comment": "select id, embedding from items /* ; */; delete from victim",
    "a ; after a dollar quote": "select $$;$$ as x, id, embedding from items; delete from victim",
    "a ; after a string with a doubled quote": "select 'it''s' as x, id, embedding from items; delete from victim",
    "a ; after an E-string with an escaped quote": r"select E'\'' as x, id, embedding from items; delete from victim",
    "a ; after a quoted identifier": 'select id as "a;b", embedding from items; delete from victim',
    "a nested block comment hiding nothing": "select id, embedding from items /* /* */ ; */ ; delete from victim",
    "an unterminated string": "select id, embedding from items where name = 'x",
    "an unterminated dollar quote": "select $q$ id, embedding from items",
    "an unterminated comment": "select id, embedding from items /* ",
    "not a read statement": "DELETE FROM victim",
    "a transaction statement first": "COMMIT",
    "only a comment": "-- nothing here",
    "an unbalanced parenthesis": "select id, embedding from (select id, embedding from items",
    "FOR UPDATE locks": "select id, embedding from items for update",
}

READS = {
    "a plain select": "select id, embedding from items",
    "a trailing semicolon and comment": "select id, embedding from items; -- the newest\n",
    "a trailing line comment": "select id, embedding from items -- no newline at the end",
    "a ; inside a string": "select id, embedding from items where note <> ';delete from victim'",
    "a ; inside a dollar quote": "select id, embedding from items where note <> $x$; delete from victim$x$",
    "a ; inside a comment": "select id, embedding from items /* ; delete from victim */",
    "DELETE inside a quoted identifier": 'select id, embedding, "delete" from items',
    "a CTE that reads": "with recent as (select * from items) select id, embedding from recent",
    "VALUES": "values (1, array[1.0, 2.0]::real[])",
    "TABLE": "table items",
    "a parenthesised select": "(select id, embedding from items)",
    "column names that are harmless keywords": "select id, embedding, start, comment, set_config('a', 'b', true) from items",
}


@pytest.mark.parametrize("text", list(ESCAPES.values()), ids=list(ESCAPES))
def test_a_query_that_could_escape_or_write_is_refused_before_any_io(text: str) -> None:
    with pytest.raises(UnsafeQuery):
        single_read_statement(text)


@pytest.mark.parametrize("text", list(READS.values()), ids=list(READS))
def test_a_single_read_statement_is_accepted(text: str) -> None:
    assert single_read_statement(text)


def test_the_accepted_statement_drops_the_trailing_semicolon_and_comments() -> None:
    assert single_read_statement("select 1 ; /* done */ -- really\n  ") == "select 1"


def test_the_spec_refuses_a_second_statement_with_a_readable_message() -> None:
    with pytest.raises(ValidationError) as caught:
        PostgresSource.model_validate({"dsnSecret": {"name": "pg"}, "query": ESCAPES["a second statement"]})
    assert "more than one statement" in str(caught.value)
    assert "character" in str(caught.value)
