"""Text that every program, database and environment can carry: no NUL, no lone surrogates.

JSON may spell both (`\\u0000`, `\\ud800`); neither survives an environment variable, a C string,
UTF-8 or most databases. `CleanText` refuses them while a request is validated (a 400), so they
never reach code that would fail on them (a 500).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def text_problem(text: str) -> str | None:
    """Why `text` cannot be an environment value, a file name or a key (NUL, lone surrogates)."""
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode text (a lone surrogate)"
    return None


def _clean(text: str) -> str:
    problem = text_problem(text)
    if problem is not None:
        raise ValueError(f"the text {problem}")
    return text


CleanText = Annotated[str, AfterValidator(_clean)]
