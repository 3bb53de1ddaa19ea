from __future__ import annotations

import pytest

from workflow_contracts.workspace import (
    EnvFileError,
    literal_env_name,
    parse_env_file,
    parse_progress_line,
)


def test_env_file_lines_comments_quotes_and_export() -> None:
    text = "# settings\nA=1\n\nexport B = two words \nC='quoted value'\nD=\"x=y\"\n"
    assert parse_env_file(text) == {"A": "1", "B": "two words", "C": "quoted value", "D": "x=y"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no equals sign", "line 1: expected NAME=value"),
        ("ok=1\n1BAD=2", "line 2"),
        ("A-B=1", "line 1"),
    ],
)
def test_env_file_refuses_bad_lines(text: str, message: str) -> None:
    """Syntax only; which names may reach a worker is tests/contracts/test_environment.py."""
    with pytest.raises(EnvFileError, match=message):
        parse_env_file(text)


@pytest.mark.parametrize(
    ("line", "expected"),
    [("42 halfway", (42, "halfway")), ("150", (100, "")), ("-3 x", (0, "x")), ("x 1", None)],
)
def test_progress_lines(line: str, expected: tuple[int, str] | None) -> None:
    assert parse_progress_line(line) == expected


def test_literal_env_names() -> None:
    assert literal_env_name("max-items") == "INPUT_MAX_ITEMS"
