"""Server-side sorting and paging of table rows, shared by every list."""

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

#: Rows per page unless the request asks for another number.
DEFAULT_PER_PAGE: Final = 50

#: The most rows one page may hold.
MAX_PER_PAGE: Final = 1000


class PagingError(ValueError):
    """A page, size or sort key that the list does not have."""


@dataclasses.dataclass(frozen=True, slots=True)
class PageRequest:
    """Which page of a list, in which order."""

    page: int = 1
    per_page: int = DEFAULT_PER_PAGE
    sort: str | None = None
    descending: bool = False
    #: Only rows whose text key contains this, case-insensitively.
    search: str = ""

    @classmethod
    def parse(cls, arguments: Mapping[str, str]) -> "PageRequest":
        """Read ``page``, ``per_page``, ``sort``, ``order`` and ``q``."""
        page = _positive(arguments.get("page"), "page", 1)
        per_page = _positive(arguments.get("per_page"), "per_page", DEFAULT_PER_PAGE)
        if per_page > MAX_PER_PAGE:
            raise PagingError(f"per_page must be at most {MAX_PER_PAGE}")
        order = arguments.get("order", "")
        if order not in ("", "asc", "desc"):
            raise PagingError(f"order must be 'asc' or 'desc', got {order!r}")
        return cls(
            page=page,
            per_page=per_page,
            sort=arguments.get("sort") or None,
            descending=order == "desc",
            search=arguments.get("q", "").strip(),
        )


def paginate(
    rows: Sequence[dict[str, Any]],
    request: PageRequest,
    keys: Mapping[str, Callable[[dict[str, Any]], Any]],
    *,
    default_sort: str,
    default_descending: bool = False,
    search_field: str | None = None,
) -> dict[str, Any]:
    """One page of ``rows``, sorted by one of ``keys``, as the API returns it.

    A missing value (None) counts as larger than any other, so rows that
    have not ended yet come first when sorted newest first. The answer
    carries the items, the total after filtering, and the paging and sort
    actually used.
    """
    sort = request.sort or default_sort
    if sort not in keys:
        raise PagingError(f"cannot sort by {sort!r}; sort by one of {', '.join(keys)}")
    descending = request.descending if request.sort else default_descending

    selected = list(rows)
    if request.search and search_field is not None:
        wanted = request.search.lower()
        selected = [r for r in selected if wanted in str(r[search_field]).lower()]

    key = keys[sort]
    present = [r for r in selected if key(r) is not None]
    missing = [r for r in selected if key(r) is None]
    present.sort(key=key, reverse=descending)
    ordered = missing + present if descending else present + missing

    total = len(ordered)
    pages = max(1, -(-total // request.per_page))
    start = (request.page - 1) * request.per_page
    return {
        "items": ordered[start : start + request.per_page],
        "total": total,
        "page": request.page,
        "pages": pages,
        "per_page": request.per_page,
        "sort": sort,
        "order": "desc" if descending else "asc",
    }


def _positive(text: str | None, name: str, default: int) -> int:
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise PagingError(f"{name} must be a whole number, got {text!r}") from None
    if value < 1:
        raise PagingError(f"{name} must be at least 1, got {value}")
    return value
