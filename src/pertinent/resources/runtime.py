"""The runtime service: GetRecommendations (and later ranking) against campaigns.

This is the hot path. A campaign's serving state (which model, which config) is read
from the catalog at most once a second per campaign and cached; the model itself
stays in memory. A request then costs a dict lookup, the recipe's array work and
JSON encoding.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from pertinent.errors import InvalidInputException, ResourceNotFoundException
from pertinent.resources._common import Context
from pertinent.serving.models import LoadedModel, ModelCache
from pertinent.store import artifacts
from pertinent.store.catalog import Catalog
from pertinent.store.status import ACTIVE

DEFAULT_RESULTS = 25
MAX_RESULTS = 500
MAX_RESULTS_WITH_METADATA = 50
CAMPAIGN_TTL = 1.0  # seconds a cached campaign state is trusted


@dataclass(frozen=True)
class Serving:
    campaign_arn: str
    version_arn: str
    config: dict[str, Any]
    loaded: LoadedModel
    fetched_at: float


class Runtime:
    """Per-process serving state: campaigns to models, with a short-lived cache."""

    def __init__(self) -> None:
        self.models = ModelCache()
        self._campaigns: dict[str, Serving] = {}
        self._lock = threading.Lock()

    def serving(self, ctx: Context, campaign_arn: str) -> Serving:
        now = time.monotonic()
        cached = self._campaigns.get(campaign_arn)
        if cached is not None and now - cached.fetched_at < CAMPAIGN_TTL:
            return cached
        with ctx.catalog.read() as conn:
            res = Catalog.get(conn, campaign_arn)
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
        state = Serving(
            campaign_arn=campaign_arn,
            version_arn=version_arn,
            config=res.doc.get("campaignConfig") or {},
            loaded=loaded,
            fetched_at=now,
        )
        with self._lock:
            self._campaigns[campaign_arn] = state
        return state


def _num_results(req: dict[str, Any]) -> int:
    n = req.get("numResults")
    if n is None:
        return DEFAULT_RESULTS
    limit = MAX_RESULTS_WITH_METADATA if req.get("metadataColumns") else MAX_RESULTS
    if n > limit:
        raise InvalidInputException(f"numResults must be at most {limit}, got {n}.")
    return int(n)


def get_recommendations(ctx: Context, runtime: Runtime, req: dict[str, Any]) -> dict[str, Any]:
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
    n = _num_results(req)
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
    if kind in ("USER_PERSONALIZATION",) and not user_id:
        raise InvalidInputException(
            f"userId is required: the campaign {campaign_arn} uses {loaded.recipe_name}."
        )
    if kind == "PERSONALIZED_RANKING":
        raise InvalidInputException(
            f"The campaign {campaign_arn} uses {loaded.recipe_name}: call GetPersonalizedRanking."
        )
    if req.get("metadataColumns") and not serving.config.get("enableMetadataWithRecommendations"):
        raise InvalidInputException(
            "metadataColumns needs a campaign with campaignConfig.enableMetadataWithRecommendations"
            " set to true."
        )
    query = loaded.query(user_id, item_id if kind == "RELATED_ITEMS" else None)
    ranked = loaded.model.recommend(query, n)
    ids = loaded.item_ids
    if ranked.scores is None:
        items = [{"itemId": ids[i]} for i in ranked.items.tolist()]
    else:
        items = [
            {"itemId": ids[i], "score": round(s, 7)}
            for i, s in zip(ranked.items.tolist(), ranked.scores.tolist(), strict=True)
        ]
    return {"itemList": items, "recommendationId": f"RID-{os.urandom(16).hex()}"}
