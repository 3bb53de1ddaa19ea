"""`limit`/`offset` paging with self/next/prev links, shared by the list routes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from fastapi import Query, Request

from workflow_api.ogc import link

# Bounded so that no number a client sends overflows the database's 64-bit integers.
MAX_OFFSET = 1_000_000_000
Limit = Annotated[int, Query(ge=1, le=10_000, description="page size")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="items to skip")]
Item = TypeVar("Item")


def page_of(
    items: Sequence[Item], request: Request, base_url: str, *, limit: int, offset: int
) -> tuple[Sequence[Item], list[dict[str, Any]]]:
    """The page of `items` (all of them, in order) at `offset`, and its links."""
    has_more = offset + limit < len(items)
    links = page_links(request, base_url, limit=limit, offset=offset, has_more=has_more)
    return items[offset : offset + limit], links


def page_links(
    request: Request, base_url: str, *, limit: int, offset: int, has_more: bool
) -> list[dict[str, Any]]:
    def at(new_offset: int) -> str:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "offset"]
        params.append(("offset", str(new_offset)))
        return f"{base_url}{request.url.path}?{urlencode(params)}"

    links = [link(at(offset), "self"), link(at(offset), "alternate")]
    links[1]["title"] = "this page"
    if has_more:
        links.append(link(at(offset + limit), "next", title="next page"))
    if offset > 0:
        links.append(link(at(max(offset - limit, 0)), "prev", title="previous page"))
    return links
