"""Is a tenant's ``source.postgres.query`` exactly one read-only statement? Pure.

The query text comes from a tenant, and both the builder and the operator's drift probe
run it with a database role the platform team granted. Wrapping it as a subquery is not
enough: ``select 1) AS src; COMMIT; DELETE FROM victim; SELECT * FROM (select 1`` closes the
wrapper and appends statements of its own. So before any byte reaches the server, the text
is lexed the way PostgreSQL lexes it (``--`` and nested ``/* */`` comments, ``'...'`` and
``E'...'`` strings, ``"..."`` identifiers, ``$tag$...$tag$`` dollar quotes) and accepted only
when it is a single ``SELECT`` / ``WITH`` / ``VALUES`` / ``TABLE`` statement with balanced
parentheses and none of the keywords that write, lock, or end a transaction.

This is one of three layers (see docs/security.md): the session is also read-only on the
server (``default_transaction_read_only``) and every statement is sent with the extended
protocol, which refuses more than one command.
"""

from __future__ import annotations

import re

READ_KEYWORDS = frozenset({"SELECT", "WITH", "VALUES", "TABLE"})
# Outside strings, comments and quoted identifiers none of these may appear as a word. With
# one statement that starts with a read keyword, only these can write (a data-modifying CTE,
# SELECT INTO) or end the transaction; the rest are refused for a clear message. Words that
# cannot start anything inside a SELECT (SET, START, ...) stay usable as column names.
FORBIDDEN_KEYWORDS = frozenset({
    "INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE", "COPY", "INTO", "CREATE", "DROP", "ALTER", "GRANT",
    "REVOKE", "COMMIT", "ROLLBACK", "ABORT", "SAVEPOINT",
})
_WORD = re.compile(r"[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$")


class UnsafeQuery(ValueError):
    """The query is not exactly one read-only statement; ``str()`` says where and why."""


def single_read_statement(text: str) -> str:
    """The statement without trailing ``;``, comments and blanks; ``UnsafeQuery`` otherwise.

    Messages name a character position and a keyword, never echo the query back (it may be
    long; it is the tenant's own text, but messages stay short and on one line).
    """
    words: list[tuple[str, int]] = []
    depth = 0
    end = 0  # one past the last significant character
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif (after := _after_comment(text, i)) is not None:
            i = after
        elif ch == "'" or (ch in "eEbBxXnNuU" and text[i + 1 : i + 2] == "'" and not _word_continues(text, i)):
            start = i
            quote = i + 1 if ch != "'" else i
            i = _skip_quoted(text, quote, "'", backslash=ch in "eE", what="string")
            end = i
            words.append(("", start))  # a literal: not a keyword
        elif ch == '"':
            start = i
            i = _skip_quoted(text, i, '"', backslash=False, what="quoted identifier")
            end = i
            words.append(("", start))
        elif ch == "$" and (tag := _DOLLAR_TAG.match(text, i)) is not None:
            close = text.find(tag.group(0), tag.end())
            if close < 0:
                raise UnsafeQuery(f"unterminated dollar-quoted string starting at character {i + 1}")
            words.append(("", i))
            i = end = close + len(tag.group(0))
        elif ch == ";":
            if _significant_after(text, i + 1):
                raise UnsafeQuery(f"more than one statement: ';' at character {i + 1} is followed by more SQL; "
                                  "exactly one SELECT/WITH/VALUES/TABLE statement may run")
            break
        elif ch == "(":
            depth += 1
            i = end = i + 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise UnsafeQuery(f"unbalanced ')' at character {i + 1}: the query must be one self-contained statement")
            i = end = i + 1
        elif (word := _WORD.match(text, i)) is not None:
            words.append((word.group(0).upper(), i))
            i = end = word.end()
        else:
            i = end = i + 1
    if depth != 0:
        raise UnsafeQuery(f"{depth} unclosed '(': the query must be one self-contained statement")
    keywords = [w for w in words if w[0]]
    if not keywords:
        raise UnsafeQuery("no SQL statement (only comments or blanks)")
    first, _ = keywords[0]
    if first not in READ_KEYWORDS:
        raise UnsafeQuery(f"must be a SELECT, WITH, VALUES or TABLE statement, not {first[:32]}")
    for word, at in keywords:
        if word in FORBIDDEN_KEYWORDS:
            raise UnsafeQuery(f"may only read: {word} at character {at + 1} is not allowed "
                              "(write, lock, transaction control or a second statement); quote a column of that name")
    return text[:end].strip()


def _word_continues(text: str, i: int) -> bool:
    """``xe'..'`` is the word ``xe`` followed by a string only if nothing precedes ``e`` in the word."""
    return i > 0 and (text[i - 1].isalnum() or text[i - 1] in "_$")


def _after_comment(text: str, i: int) -> int | None:
    """The position after a comment starting at ``i`` (``--`` to the line's end, or ``/* */``); None if none starts there."""
    if text.startswith("--", i):
        newline = text.find("\n", i)
        return len(text) if newline < 0 else newline + 1
    if text.startswith("/*", i):
        return _skip_block_comment(text, i)
    return None


def _skip_block_comment(text: str, i: int) -> int:
    """PostgreSQL block comments nest."""
    start, depth = i, 0
    while i < len(text):
        if text.startswith("/*", i):
            depth += 1
            i += 2
        elif text.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    raise UnsafeQuery(f"unterminated /* comment starting at character {start + 1}")


def _skip_quoted(text: str, i: int, quote: str, *, backslash: bool, what: str) -> int:
    """From the opening quote at ``i`` to one past the closing one; a doubled quote is an escape."""
    start = i
    i += 1
    while i < len(text):
        ch = text[i]
        if backslash and ch == "\\":
            i += 2
        elif ch == quote:
            if text[i + 1 : i + 2] == quote:
                i += 2
            else:
                return i + 1
        else:
            i += 1
    raise UnsafeQuery(f"unterminated {what} starting at character {start + 1}")


def _significant_after(text: str, i: int) -> bool:
    """Anything but blanks, comments and further ``;`` after position ``i``."""
    n = len(text)
    while i < n:
        if text[i].isspace() or text[i] == ";":
            i += 1
        elif (after := _after_comment(text, i)) is not None:
            i = after
        else:
            return True
    return False
