"""The runtime service: GetRecommendations (and later ranking) against campaigns.

This is the hot path. A campaign's serving state (which model, which config) is read
from the catalog at most once a second per campaign and cached; the model itself
stays in memory. A request then costs a dict lookup, the recipe's array work and
JSON encoding.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from pertinent.config import Settings
from pertinent.errors import InvalidInputException, ResourceNotFoundException
from pertinent.ids import random_hex
from pertinent.recipes.base import CatalogExtendable, Exploration, LiveUpdatable, Model, Ranked
from pertinent.resources._common import Context
from pertinent.resources.filtering import (
    Filters,
    UserEvents,
    includes,
    mask_for,
    place_promoted,
    promotion_of,
)
from pertinent.resources.recipes import AUTO_METADATA, EXPLORING_RECIPES
from pertinent.serving.batching import recommend
from pertinent.serving.models import LoadedModel, ModelCache
from pertinent.store import artifacts
from pertinent.store.catalog import Catalog
from pertinent.store.eventlog import recent_events, record, records_since
from pertinent.store.status import ACTIVE

log = logging.getLogger("pertinent.runtime")

DEFAULT_RESULTS = 25
MAX_RESULTS = 500
MAX_RESULTS_WITH_METADATA = 50
CAMPAIGN_TTL = 1.0  # seconds a cached campaign state is trusted


@dataclass(frozen=True)
class Serving:
    campaign_arn: str
    group_arn: str
    version_arn: str
    config: dict[str, Any]
    loaded: LoadedModel
    fetched_at: float
    # The model requests use: ``loaded.model``, or a copy that has counted the events
    # streamed since training, for models that can (trending lists).
    model: Model
    # The group's dataset ARNs by type (INTERACTIONS, ITEMS, USERS), for Put records.
    datasets: dict[str, str]


class Runtime:
    """Per-process serving state: campaigns to models, with a short-lived cache."""

    def __init__(self) -> None:
        self.models = ModelCache()
        self.filters = Filters()
        self._campaigns: dict[str, Serving] = {}
        self._lock = threading.Lock()
        # Per solution version: (which Put records it reflects, the extended model).
        self._extended: dict[str, tuple[tuple[int, float], LoadedModel]] = {}

    def warm(self, settings: Settings, catalog: Catalog) -> int:
        """Loads the models of the newest ACTIVE campaigns, as many as the cache holds, so
        that a process's first request to a campaign does not wait for its model (1.3 s
        for a 100k-item user-personalization model, torch's import included). Returns
        how many it loaded; what fails is logged and left to the request path to report.
        """
        try:
            with catalog.read() as conn:
                campaigns = Catalog.children(conn, kind="campaign", statuses=(ACTIVE,))
        except Exception:
            log.warning("could not list the campaigns to preload", exc_info=True)
            return 0
        serving = (c.doc.get("_servingVersionArn") for c in campaigns)
        versions = list(dict.fromkeys(str(v) for v in serving if v))
        loaded = 0
        for version_arn in versions[: self.models.capacity]:
            try:
                self.models.get(version_arn, artifacts.version_dir(settings, version_arn))
            except Exception:  # a request for it raises the real error
                log.warning("could not preload the model of %s", version_arn, exc_info=True)
                continue
            loaded += 1
        return loaded

    def serving(self, ctx: Context, campaign_arn: str) -> Serving:
        now = time.monotonic()
        cached = self._campaigns.get(campaign_arn)
        if cached is not None and now - cached.fetched_at < CAMPAIGN_TTL:
            return cached
        with ctx.catalog.read() as conn:
            res = Catalog.get(conn, campaign_arn)
            datasets = {}
            if res is not None:
                for ds in Catalog.children(conn, kind="dataset", group_arn=res.group_arn):
                    datasets[str(ds.doc["datasetType"]).upper()] = ds.arn
        if res is None or res.kind != "campaign" or res.account_id != ctx.account_id:
            self._campaigns.pop(campaign_arn, None)
            raise ResourceNotFoundException(f"Could not find the campaign {campaign_arn}.")
        if res.status != ACTIVE:
            self._campaigns.pop(campaign_arn, None)
            raise ResourceNotFoundException(
                f"The campaign {campaign_arn} is {res.status}, not ACTIVE; it cannot serve yet."
            )
        version_arn = res.doc["_servingVersionArn"]
        loaded = self.models.get(version_arn, artifacts.version_dir(ctx.settings, version_arn))
        loaded = self._with_new_items(ctx, version_arn, loaded, datasets.get("ITEMS"))
        state = Serving(
            campaign_arn=campaign_arn,
            group_arn=str(res.group_arn),
            version_arn=version_arn,
            config=res.doc.get("campaignConfig") or {},
            loaded=loaded,
            fetched_at=now,
            model=self._with_live_events(ctx, loaded, str(res.group_arn)),
            datasets=datasets,
        )
        with self._lock:
            self._campaigns[campaign_arn] = state
        return state

    def _with_new_items(
        self, ctx: Context, version_arn: str, loaded: LoadedModel, items_arn: str | None
    ) -> LoadedModel:
        """``loaded`` with the PutItems records since training: filters see new and changed
        items at once, and models that can take new items recommend (and explore) them."""
        if items_arn is None:
            return loaded
        with ctx.catalog.read() as conn:
            rows = records_since(conn, items_arn, loaded.trained_from)
        if not rows:
            return loaded
        key = (len(rows), max(r[2] for r in rows))
        cached = self._extended.get(version_arn)
        if cached is not None and cached[0] == key:
            return cached[1]
        latest = {r[0]: r[1] for r in rows}
        extended = replace(loaded, put_items=tuple(latest.items()), _filters=None)
        new = [(i, props) for i, props in latest.items() if i not in loaded.item_index]
        if new and isinstance(loaded.model, CatalogExtendable):
            attributes = [
                {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in props.items()}
                for _, props in new
            ]
            extended = replace(
                extended,
                model=loaded.model.with_new_items(attributes),
                item_ids=loaded.item_ids + [i for i, _ in new],
                item_index={
                    **loaded.item_index,
                    **{i: len(loaded.item_ids) + k for k, (i, _) in enumerate(new)},
                },
            )
        with self._lock:
            self._extended[version_arn] = (key, extended)
        return extended

    @staticmethod
    def _with_live_events(ctx: Context, loaded: LoadedModel, group_arn: str) -> Model:
        model = loaded.model
        if not isinstance(model, LiveUpdatable):
            return model
        with ctx.catalog.read() as conn:
            recent = recent_events(
                conn, group_arn, after_id=loaded.event_cutoff, window=model.window_seconds
            )
        known = [(loaded.item_index[i], t) for i, t in recent if i in loaded.item_index]
        if not known:
            return model
        items = np.array([k for k, _ in known], dtype=np.int32)
        times = np.array([t for _, t in known], dtype=np.int64)
        return model.with_recent(items, times)


MAX_METADATA_COLUMNS = 10
# Recipes that answer from the user's history, which live events extend at once.
PERSONAL_TYPES = frozenset({"USER_PERSONALIZATION", "PERSONALIZED_RANKING"})


def _limit(req: dict[str, Any], what: str, value: int) -> None:
    limit = MAX_RESULTS_WITH_METADATA if req.get("metadataColumns") else MAX_RESULTS
    if value > limit:
        extra = " when metadataColumns are requested" if req.get("metadataColumns") else ""
        raise InvalidInputException(f"{what} must be at most {limit}{extra}, got {value}.")


def _metadata_columns(serving: Serving, req: dict[str, Any]) -> list[tuple[str, str]]:
    """(name as requested, column as stored) for each requested Items column."""
    wanted = req.get("metadataColumns")
    if not wanted:
        return []
    loaded = serving.loaded
    enabled = serving.config.get("enableMetadataWithRecommendations")
    if not enabled and loaded.recipe_name not in AUTO_METADATA:
        raise InvalidInputException(
            "metadataColumns needs a campaign with campaignConfig.enableMetadataWithRecommendations"
            " set to true."
        )
    unknown_types = [k for k in wanted if k.upper() != "ITEMS"]
    if unknown_types:
        raise InvalidInputException(
            f"metadataColumns supports the ITEMS dataset only, got {unknown_types[0]!r}."
        )
    names = [c for cols in wanted.values() for c in cols]
    if len(names) > MAX_METADATA_COLUMNS:
        raise InvalidInputException(
            f"At most {MAX_METADATA_COLUMNS} metadataColumns can be requested, got {len(names)}."
        )
    columns = loaded.metadata_columns()
    out = []
    for name in names:
        stored = columns.get(name.upper())
        if stored is None:
            known = (
                ", ".join(sorted(set(columns.values()))) or "none (no Items dataset was trained on)"
            )
            raise InvalidInputException(
                f"Unknown metadata column {name!r}; the Items dataset has: {known}."
            )
        out.append((name, stored))
    return out


def _exploration(serving: Serving) -> Exploration | None:
    if serving.loaded.recipe_name not in EXPLORING_RECIPES:
        return None
    config = serving.config.get("itemExplorationConfig") or {}
    return Exploration(
        weight=float(config.get("explorationWeight", 0.3)),
        item_age_cutoff_days=float(config.get("explorationItemAgeCutOff", 30.0)),
    )


def _items(
    loaded: LoadedModel,
    indices: list[int],
    scores: list[float] | None,
    columns: list[tuple[str, str]],
) -> list[dict[str, Any]]:
    ids = loaded.item_ids
    out: list[dict[str, Any]]
    if scores is None:
        out = [{"itemId": ids[i]} for i in indices]
    else:
        out = [
            {"itemId": ids[i], "score": round(s, 7)} for i, s in zip(indices, scores, strict=True)
        ]
    for name, stored in columns:
        values = loaded.metadata(stored)
        for entry, i in zip(out, indices, strict=True):
            value = values[i] if i < len(values) else None  # added by PutItems: none stored
            if value is not None:
                entry.setdefault("metadata", {})[name] = value
    return out


def _live_events(serving: Serving, events: UserEvents) -> list[tuple[str | None, float]]:
    """(item, time) of the user's live events, for models that answer from a history."""
    if serving.loaded.recipe_type not in PERSONAL_TYPES:
        return []
    return [(e.item_id, e.timestamp) for e in events.get()]


def _user_attributes(ctx: Context, serving: Serving, user_id: str | None) -> dict[str, str]:
    """The user's newest PutUsers metadata, for models that read user metadata."""
    users = serving.datasets.get("USERS")
    if not user_id or users is None or not serving.model.uses_user_attributes:
        return {}
    found = record(ctx.catalog, users, user_id)
    if not found:
        return {}
    return {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in found.items()}


def _new_item_neighbours(
    ctx: Context, serving: Serving, item_id: str, n: int, allowed: npt.NDArray[np.bool_] | None
) -> list[int] | None:
    """Related items of an item PutItems added after training, by shared metadata; None
    when the item is unknown there too (then the model's own fallback answers)."""
    items = serving.datasets.get("ITEMS")
    if items is None:
        return None
    found = record(ctx.catalog, items, item_id)
    if not found:
        return None
    return serving.loaded.metadata_neighbours(found, n, allowed) or None


def _recommendation_id() -> str:
    return f"RID-{random_hex()}"


# PredictedItem.reason: "If you use User-Personalization-v2, a list of reasons for why the
# item was included" (botocore). Of its three, "Promoted item" applies here: v2 has no
# exploration, and the model ranks every item a filter lets through, so no popular
# placeholders are ever needed to fill a list.
GIVES_REASONS = frozenset({"aws-user-personalization-v2"})


async def get_recommendations(
    ctx: Context, runtime: Runtime, req: dict[str, Any]
) -> dict[str, Any]:
    campaign_arn = req.get("campaignArn")
    if req.get("recommenderArn") and not campaign_arn:
        raise InvalidInputException(
            "Recommenders (recommenderArn) are not supported by this version of Pertinent; "
            "use a campaignArn."
        )
    if not campaign_arn:
        raise InvalidInputException(
            "Provide campaignArn (exactly one of campaignArn or recommenderArn)."
        )
    if req.get("recommenderArn"):
        raise InvalidInputException("Provide either campaignArn or recommenderArn, not both.")
    n = req.get("numResults")
    n = DEFAULT_RESULTS if n is None else int(n)
    _limit(req, "numResults", n)
    serving = runtime.serving(ctx, campaign_arn)
    loaded = serving.loaded
    user_id = req.get("userId")
    item_id = req.get("itemId")
    kind = loaded.recipe_type
    if kind == "RELATED_ITEMS" and not item_id:
        raise InvalidInputException(
            f"itemId is required: the campaign {campaign_arn} uses {loaded.recipe_name}, "
            "a related-items recipe."
        )
    if kind == "USER_PERSONALIZATION" and not user_id:
        raise InvalidInputException(
            f"userId is required: the campaign {campaign_arn} uses {loaded.recipe_name}."
        )
    if kind == "PERSONALIZED_RANKING":
        raise InvalidInputException(
            f"The campaign {campaign_arn} uses {loaded.recipe_name}: call GetPersonalizedRanking."
        )
    columns = _metadata_columns(serving, req)
    events = UserEvents(ctx, serving, user_id)
    allowed = mask_for(
        ctx,
        runtime.filters,
        serving,
        req.get("filterArn"),
        req.get("filterValues"),
        user_id=user_id,
        item_id=item_id,
        events=events,
    )
    promotion = promotion_of(ctx, runtime.filters, serving, req, n, events)
    if kind == "RELATED_ITEMS" and item_id not in loaded.item_index:
        fresh = _new_item_neighbours(ctx, serving, str(item_id), n, allowed)
        if fresh is not None:
            return {"itemList": _items(loaded, fresh, None, columns),
                    "recommendationId": _recommendation_id()}  # fmt: skip
    query = loaded.query(
        user_id,
        item_id if kind == "RELATED_ITEMS" else None,
        context=req.get("context"),
        exploration=_exploration(serving),
        live=_live_events(serving, events),
        user_attributes=_user_attributes(ctx, serving, user_id),
    )
    rid = _recommendation_id()
    wait = ctx.settings.batch_wait_ms / 1000.0
    promoted: list[dict[str, Any]] = []
    if promotion is not None:
        top = await recommend(serving.model, query, promotion.slots, promotion.mask, wait=wait)
        promoted = _ranked_items(loaded, top, columns)
        for entry in promoted:
            entry["promotionName"] = promotion.name
            if loaded.recipe_name in GIVES_REASONS:
                entry["reason"] = ["Promoted item"]
        if top.items.size:
            # Promoted items are not repeated among the organic ones.
            allowed = (
                np.ones(len(loaded.item_ids), dtype=np.bool_) if allowed is None else allowed.copy()
            )
            allowed[top.items] = False
    ranked = await recommend(serving.model, query, n - len(promoted), allowed, wait=wait)
    items = _ranked_items(loaded, ranked, columns)
    if promoted:
        items = place_promoted(items, promoted, n, rid.encode())
    return {"itemList": items, "recommendationId": rid}


def _ranked_items(
    loaded: LoadedModel, ranked: Ranked, columns: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    scores = None if ranked.scores is None else ranked.scores.tolist()
    return _items(loaded, ranked.items.tolist(), scores, columns)


def get_personalized_ranking(ctx: Context, runtime: Runtime, req: dict[str, Any]) -> dict[str, Any]:
    campaign_arn = req["campaignArn"]
    _limit(req, "inputList", len(req["inputList"]))
    serving = runtime.serving(ctx, campaign_arn)
    loaded = serving.loaded
    if loaded.recipe_type != "PERSONALIZED_RANKING":
        raise InvalidInputException(
            f"The campaign {campaign_arn} uses {loaded.recipe_name}, not a personalized-ranking "
            "recipe: call GetRecommendations."
        )
    columns = _metadata_columns(serving, req)
    # Repeated ids count once; ids the model never saw go last with score 0 (spec §5.2).
    requested = list(dict.fromkeys(req["inputList"]))
    events = UserEvents(ctx, serving, req["userId"])
    allowed = mask_for(
        ctx,
        runtime.filters,
        serving,
        req.get("filterArn"),
        req.get("filterValues"),
        user_id=req["userId"],
        item_id=None,
        events=events,
    )
    known = [loaded.item_index[i] for i in requested if i in loaded.item_index]
    unknown = [i for i in requested if i not in loaded.item_index]
    if allowed is not None:
        known = [i for i in known if allowed[i]]
        # Items the catalogue has no metadata for can satisfy no INCLUDE expression.
        if includes(runtime.filters, ctx, req.get("filterArn")):
            unknown = []
    query = loaded.query(
        req["userId"],
        context=req.get("context"),
        live=_live_events(serving, events),
        user_attributes=_user_attributes(ctx, serving, req["userId"]),
    )
    ranking: list[dict[str, Any]] = []
    if known:
        candidates = np.asarray(known, dtype=np.int32)
        scores = serving.model.rank(query, candidates)
        order = np.argsort(-scores, kind="stable")
        ranking = _items(
            loaded, candidates[order].tolist(), scores[order].astype(float).tolist(), columns
        )
    ranking += [{"itemId": i, "score": 0.0} for i in unknown]
    return {"personalizedRanking": ranking, "recommendationId": _recommendation_id()}
