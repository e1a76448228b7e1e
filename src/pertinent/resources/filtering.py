"""Filters and promotions at request time: a request's filterArn and filterValues become
the mask of items a model may return (spec §10.3, §11)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from pertinent.errors import InvalidInputException, ResourceNotFoundException
from pertinent.filters.evaluate import Request, allowed_items, shape
from pertinent.filters.grammar import FilterExpression, parse
from pertinent.filters.values import decode_all
from pertinent.resources._common import Context
from pertinent.serving.filtering import LiveEvent
from pertinent.store.catalog import Catalog
from pertinent.store.eventlog import record, user_events
from pertinent.store.status import ACTIVE

if TYPE_CHECKING:
    from pertinent.resources.runtime import Serving

Mask = npt.NDArray[np.bool_]
FILTER_TTL = 1.0  # seconds a cached filter is trusted (a deleted one stops within it)
MAX_PROMOTIONS = 1


@dataclass(frozen=True)
class _Cached:
    tree: FilterExpression
    text: str
    group_arn: str
    fetched_at: float


class Filters:
    """Parsed filters by ARN, re-read from the catalog at most once a second."""

    def __init__(self) -> None:
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()

    def get(self, ctx: Context, arn: str) -> _Cached:
        now = time.monotonic()
        found = self._cache.get(arn)
        if found is not None and now - found.fetched_at < FILTER_TTL:
            return found
        with ctx.catalog.read() as conn:
            res = Catalog.get(conn, arn)
        if res is None or res.kind != "filter" or res.account_id != ctx.account_id:
            self._cache.pop(arn, None)
            raise ResourceNotFoundException(f"Could not find the filter {arn}.")
        if res.status != ACTIVE:
            raise InvalidInputException(
                f"The filter {arn} is {res.status}, not ACTIVE; wait until DescribeFilter "
                "shows ACTIVE."
            )
        text = res.doc["filterExpression"]
        # The same tree object while the filter is unchanged: masks are cached by it.
        tree = found.tree if found is not None and found.text == text else parse(text)
        found = _Cached(tree, text, str(res.group_arn), now)
        with self._lock:
            self._cache[arn] = found
        return found


def live_events(ctx: Context, serving: Serving, user_id: str) -> list[LiveEvent]:
    """The user's events since the model was trained, read from the durable log.

    This is what makes an event count at once: PutEvents commits before it answers, and
    the next request reads it here. An anonymous visitor's ``sessionId`` passed as
    ``userId`` finds the session's events.
    """
    cutoff = serving.loaded.event_cutoff
    catalog = ctx.catalog
    rows = user_events(catalog, serving.group_arn, user_id, after_id=cutoff)
    if not rows and user_id not in serving.loaded.user_index:
        rows = user_events(catalog, serving.group_arn, user_id, after_id=cutoff, by_session=True)
    return [LiveEvent(item, float(ts), kind, value, props) for item, ts, kind, value, props in rows]


class UserEvents:
    """One request's read of its user's live events, made at most once: the model, the
    filter and the promotion's filter all read the same rows."""

    def __init__(self, ctx: Context, serving: Serving, user_id: str | None) -> None:
        self._ctx = ctx
        self._serving = serving
        self.user_id = user_id
        self._rows: list[LiveEvent] | None = None

    def get(self) -> list[LiveEvent]:
        if self._rows is None:
            user = self.user_id
            self._rows = live_events(self._ctx, self._serving, user) if user else []
        return self._rows


def mask_for(
    ctx: Context,
    filters: Filters,
    serving: Serving,
    filter_arn: str | None,
    filter_values: Mapping[str, str] | None,
    *,
    user_id: str | None,
    item_id: str | None,
    events: UserEvents,
) -> Mask | None:
    """The items ``filter_arn`` lets through for this request (read-only); None: no
    filtering. ``events``: the request's live events, read once for all who need them."""
    if not filter_arn:
        if filter_values:
            raise InvalidInputException("filterValues was given without a filterArn.")
        return None
    cached = filters.get(ctx, filter_arn)
    if cached.group_arn != serving.group_arn:
        raise InvalidInputException(
            f"The filter {filter_arn} belongs to another dataset group than the campaign "
            f"{serving.campaign_arn}."
        )
    tree = cached.tree
    target = tree.expressions[0].target
    if target != "ItemID":
        raise InvalidInputException(
            f"The filter {filter_arn} filters {target}; item recommendations need an ItemID filter."
        )
    facts = shape(tree)
    if facts.needs_user and not user_id:
        raise InvalidInputException(
            f"The filter {filter_arn} reads the user's interactions or attributes: send userId."
        )
    if facts.uses_current_item and serving.loaded.recipe_type != "RELATED_ITEMS":
        raise InvalidInputException(
            f"The filter {filter_arn} uses CurrentItem, which only related-items recipes "
            f"have; the campaign uses {serving.loaded.recipe_name}."
        )
    data = serving.loaded.filter_data()
    rows = None
    if "Interactions" in facts.reads and user_id:
        rows = data.rows(user_id, events.get())
    user: dict[str, str] = {}
    if "CurrentUser" in facts.reads and user_id:
        users = serving.datasets.get("USERS")
        streamed = None
        if users is not None:
            streamed = record(ctx.catalog, users, user_id)
        user = data.user(user_id, streamed)
    request = Request(
        values=decode_all(filter_values),
        rows=rows,
        user=user,
        current_item=serving.loaded.item_index.get(item_id) if item_id else None,
    )
    return allowed_items(tree, data.table, request)


def includes(filters: Filters, ctx: Context, filter_arn: str | None) -> bool:
    """Whether a filter has INCLUDE expressions (items it knows nothing of then fail it)."""
    if not filter_arn:
        return False
    return shape(filters.get(ctx, filter_arn).tree).includes


@dataclass(frozen=True)
class Promotion:
    name: str
    slots: int
    mask: Mask | None


def promotion_of(
    ctx: Context,
    filters: Filters,
    serving: Serving,
    req: Mapping[str, Any],
    n: int,
    events: UserEvents,
) -> Promotion | None:
    """The request's promotion (spec §11), with the items its own filter allows."""
    promotions = req.get("promotions") or []
    if not promotions:
        return None
    if len(promotions) > MAX_PROMOTIONS:
        raise InvalidInputException(
            f"promotions takes at most {MAX_PROMOTIONS} promotion, got {len(promotions)}."
        )
    promo = promotions[0]
    name = promo.get("name")
    percent = promo.get("percentPromotedItems")
    if not name or percent is None:
        raise InvalidInputException("A promotion needs a name and percentPromotedItems.")
    if not 1 <= int(percent) <= 100:
        raise InvalidInputException(
            f"percentPromotedItems must be between 1 and 100, got {percent}."
        )
    if not promo.get("filterArn"):
        raise InvalidInputException(
            f"Promotion {name!r} needs a filterArn: it says which items may be promoted."
        )
    mask = mask_for(
        ctx,
        filters,
        serving,
        promo["filterArn"],
        promo.get("filterValues"),
        user_id=req.get("userId"),
        item_id=req.get("itemId"),
        events=events,
    )
    return Promotion(str(name), math.ceil(n * int(percent) / 100), mask)


def place_promoted(
    organic: list[dict[str, Any]], promoted: list[dict[str, Any]], n: int, seed: bytes
) -> list[dict[str, Any]]:
    """Promoted items at random positions among the organic ones, in their own order."""
    total = min(n, len(organic) + len(promoted))
    rng = np.random.default_rng(int.from_bytes(seed[:8], "little"))
    slots = sorted(rng.choice(total, size=min(len(promoted), total), replace=False).tolist())
    out: list[dict[str, Any]] = []
    organic_iter = iter(organic)
    promoted_iter = iter(promoted)
    chosen = set(slots)
    for position in range(total):
        source = promoted_iter if position in chosen else organic_iter
        out.append(next(source))
    return out
