"""User-Personalization (v1, v2) and Personalized-Ranking (v1, v2): one sequence model.

All four train the transformer of ``sequential`` on the users' histories and serve it
through ``_inference.SequentialModel``; they differ in what Personalize exposes:

* ``aws-user-personalization`` / ``aws-personalized-ranking`` (spec §8.2):
  ``hidden_dimension`` is the model width, ``bptt`` the attention span and training
  window (how many past events a prediction looks at), ``recency_mask`` turns on
  recency weighting (below), and users whose history length falls outside the
  ``min/max_user_history_length_percentile`` percentiles are not trained on (they are
  still answered: the model has no per-user parameters). UP explores cold items at
  request time (``Query.exploration``; the formula is in ``_inference``); PR ranks
  the given candidates (``Model.rank``) and never explores.
* ``aws-user-personalization-v2`` / ``aws-personalized-ranking-v2``: the
  large-catalogue successors. Fixed width 64 with two heads, a longer span (64 events),
  no exploration, sampled softmax with log-Q correction once the catalogue is large,
  and one knob, ``apply_recency_bias`` (the same recency weighting).

Recency weighting (``recency_mask``, ``apply_recency_bias``). Personalize describes
both as giving "more weight to the most recent interactions in the dataset", i.e. to
the latest trends. Each training event's loss is weighted by
``0.25 + 0.75 · 2^(-age / half_life)``, ``age`` counted back from the newest event and
``half_life`` a quarter of the data's time span (robust span: 1st-99th percentile of
event times): old behaviour still teaches, recent behaviour dominates.

Event weights (``Interactions.weight``, from ``eventsConfig``) multiply the loss too.
Impressions are hard negatives in training and lower an item's exploration bonus.
Item creation times (CREATION_TIMESTAMP, or the first interaction when earlier) keep an
item out of the softmax of targets before it existed, and out of the answer to an
offline query (``Query.time``) standing before it.

Second opinions (``_opinions``), each with a weight chosen on validation: the current
visit's item categories (``_affinity``), then a decayed item-kNN (``_knn``).

Validation. ``fit`` holds out the newest event of up to ``VALIDATION_USERS`` random
users (with ≥ 3 events), trains on the rest, and keeps the epoch with the best NDCG@10
on them (full catalogue ranked, their other items removed, as ``evaluation.loo``):
that is early stopping (its patience counts only once the network beats ranking by
popularity there: ``_stopping``), and the held-out events are ≤ 2 % of a typical data set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import numpy.typing as npt
from pydantic import Field, ValidationInfo, field_validator

from pertinent.recipes._affinity import SessionAffinity
from pertinent.recipes._features import EncodedRows, FeatureEncoder
from pertinent.recipes._inference import (
    GAP_BUCKETS,
    SESSION_BUCKET,
    ExplorationStats,
    SequentialModel,
    gap_buckets,
)
from pertinent.recipes._knn import ItemKNN, neighbour_models
from pertinent.recipes._objective import Objective, item_boost
from pertinent.recipes._opinions import Validation, choose_affinity, choose_knn
from pertinent.recipes.base import Model, Params, Recipe, RecipeType, TrainingData, WarmStart

if TYPE_CHECKING:
    import torch

    from pertinent.recipes.sequential import SequentialNet, TrainingSet

__all__ = [
    "PersonalizedRanking",
    "PersonalizedRankingV2",
    "SequentialModel",
    "TrainingOptions",
    "UserPersonalization",
    "UserPersonalizationParams",
    "UserPersonalizationV2",
    "UserPersonalizationV2Params",
    "default_negatives",
    "planned_epochs",
]

VALIDATION_USERS = 2_000
# Catalogues up to this size train with the full softmax; larger ones sample negatives.
# MovieLens-latest-small (9.7k items, 100k events) lost a tenth of its leave-last-out
# NDCG@10 to 2,048 sampled negatives (3 seeds); at 16k items a batch's logits still fit
# in a few hundred MB, and ``planned_epochs`` counts the wider softmax's work.
FULL_SOFTMAX_MAX_ITEMS = 16_384
SAMPLED_NEGATIVES = 2_048
# Epoch budget: about this many target events seen in total (early stopping ends sooner).
TARGET_EVENTS_BUDGET = 30_000_000
# ...and at most this much work (``planned_epochs``): 10 epochs of the default model on
# 847k targets over 5.8k items, about 1.7 minutes each on 2 cores (bench/train.py: 14
# epochs took 25 minutes once validation stopped leaking repeats and early stopping no
# longer cut them short).
TRAINING_WORK_BUDGET = 1.2e13
V2_DIM, V2_MAX_LEN = 64, 64
# An update (trainingMode UPDATE) fine-tunes the previous model for at most this many
# epochs, stopping at the first that does not improve validation.
UPDATE_EPOCHS = 3
# ...at this fraction of the learning rate: a fresh optimiser at full rate would shake
# the trained weights before the new items' rows have learnt anything.
UPDATE_LR_SCALE = 0.2


# Below this many training targets a data set counts as small: one transformer block and
# strong dropout (the 100k-event public sets are small; bench/train.py's 1M is not).
SMALL_DATA_TARGETS = 300_000


def default_negatives(n_items: int) -> int:
    """Sampled negatives per target for a catalogue of ``n_items`` (0: full softmax)."""
    return 0 if n_items <= FULL_SOFTMAX_MAX_ITEMS else SAMPLED_NEGATIVES


def planned_epochs(n_targets: int, dim: int, layers: int, softmax_width: int) -> int:
    """Epochs to train for: ``TARGET_EVENTS_BUDGET`` target events on small data, at most
    ``TRAINING_WORK_BUDGET`` multiply-adds on large data; early stopping ends sooner.

    A target costs about ``dim · (softmax_width + 12 · layers · dim)`` multiply-adds
    forward (the softmax, then each block's projections and feed-forward). Counting work
    rather than wall-clock time keeps a fit reproducible: the same data and seed train
    the same epochs on any machine.
    """
    per_target = dim * (softmax_width + 12 * layers * dim)
    by_events = TARGET_EVENTS_BUDGET // max(n_targets, 1)
    by_work = int(TRAINING_WORK_BUDGET // max(per_target * n_targets, 1))
    return int(np.clip(min(by_events, by_work), 5, 200))


class UserPersonalizationParams(Params):
    """User-Personalization / Personalized-Ranking hyperparameters (spec §8.2)."""

    hidden_dimension: int = Field(default=149, ge=32, le=256)
    bptt: int = Field(default=32, ge=2, le=32)
    recency_mask: bool = True
    min_user_history_length_percentile: float = Field(
        default=0.0, ge=0.0, le=1.0, allow_inf_nan=False
    )
    max_user_history_length_percentile: float = Field(
        default=0.99, ge=0.0, le=1.0, allow_inf_nan=False
    )

    @field_validator("max_user_history_length_percentile")
    @classmethod
    def _max_not_below_min(cls, value: float, info: ValidationInfo) -> float:
        low = info.data.get("min_user_history_length_percentile")
        if low is not None and value < low:
            raise ValueError(f"must be at least min_user_history_length_percentile ({low})")
        return value


class UserPersonalizationV2Params(Params):
    """User-Personalization-v2 / Personalized-Ranking-v2 hyperparameters (spec §8.2)."""

    apply_recency_bias: bool = True


@dataclass(frozen=True)
class TrainingOptions:
    """Knobs Personalize doesn't expose: tests shrink them, benchmarks may tune them.

    ``None`` means "chosen from the data" (see ``_SequenceRecipe._plan``).
    """

    max_epochs: int | None = None
    patience: int = 8
    dim: int | None = None  # v2 only (v1 takes hidden_dimension)
    max_len: int | None = None  # v2 only (v1 takes bptt)
    dropout: float | None = None
    layers: int | None = None
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    negatives: int | None = None
    horizon: int = 8
    future_weight: float = 0.5
    gaps: bool = True  # tokens carry the time since the previous event
    sessions: bool = True  # attention learns a same-session bias (needs gaps)
    knn_blend: bool = True
    knn_weight: float | None = None  # a fixed blend weight instead of the tuned one
    transitions: bool = True  # the blend's candidates add what follows the newest items
    affinity: bool = True  # the visit's item categories as a second opinion (_affinity)
    affinity_weight: float | None = None  # a fixed γ for it instead of the tuned one
    live: bool = True  # items created after a target's time are not in its softmax
    validation_users: int = VALIDATION_USERS
    device: str | None = None
    threads: int | None = None
    bf16: bool | None = None  # None: where the device multiplies bfloat16 natively
    log: bool = False


class _SequenceRecipe(Recipe):
    ModelClass: ClassVar[type[Model]] = SequentialModel
    explore: ClassVar[bool] = False
    v2: ClassVar[bool] = False

    def __init__(self, params: Params | None = None, options: TrainingOptions | None = None):
        super().__init__(params)
        self.options = options or TrainingOptions()

    # Hyperparameters as the network sees them.
    def _shape(self) -> tuple[int, int, bool, float, float]:
        p = self.params
        if isinstance(p, UserPersonalizationParams):
            return (
                p.hidden_dimension,
                p.bptt,
                p.recency_mask,
                p.min_user_history_length_percentile,
                p.max_user_history_length_percentile,
            )
        assert isinstance(p, UserPersonalizationV2Params)
        dim = self.options.dim or V2_DIM
        return dim, self.options.max_len or V2_MAX_LEN, p.apply_recency_bias, 0.0, 1.0

    def fit(self, data: TrainingData) -> SequentialModel:
        # torch loads here, not at import: the control plane lists and validates recipes
        # without it.
        import torch

        from pertinent.recipes._torch import choose_device, fast_bfloat16, reproducible
        from pertinent.recipes.sequential import (
            NetConfig,
            SequentialNet,
            TrainConfig,
            TrainingSet,
            build_windows,
            train,
        )

        stop = self.stopper()
        dim, max_len, recency, low, high = self._shape()
        opts = self.options
        inter = data.interactions
        n_items, n_users = inter.n_items, inter.n_users
        user = inter.user.astype(np.int64)
        item = inter.item.astype(np.int64)
        rng = np.random.default_rng(data.seed)

        lengths = np.bincount(user, minlength=n_users)
        kept_user = within_percentiles(lengths, low, high)
        val_rows = _validation_rows(user, item, kept_user, lengths, opts.validation_users, rng)
        keep = kept_user[user]
        keep[val_rows] = False

        weight = np.ones(len(inter), dtype=np.float32)
        if inter.weight is not None:
            weight *= inter.weight.astype(np.float32)
        if recency:
            weight *= recency_weights(inter.timestamp)
        popularity = np.bincount(item[keep], minlength=n_items).astype(np.float32)

        warm = self.warm_start
        previous: NetConfig | None = None
        if isinstance(warm, WarmStart) and isinstance(warm.model, SequentialModel):
            # An update keeps the previous vocabularies and network shape, so every weight
            # but the item tables carries over unchanged (new metadata values are ignored
            # until FULL).
            encoders = dict(warm.model.encoders)
            previous = warm.model.cfg
        else:
            warm = None
            encoders = {
                "item": FeatureEncoder.fit(data.item_features),
                "user": FeatureEncoder.fit(data.user_features),
                "context": FeatureEncoder.fit(inter.context),
            }
        item_rows = encoders["item"].encode(data.item_features, n_items)
        user_rows = encoders["user"].encode(data.user_features, n_users)
        context_rows = encoders["context"].encode(inter.context, len(inter))
        impressions = None
        if inter.impressions is not None:
            offsets, imp_items = inter.impressions
            impressions = (offsets.astype(np.int64), imp_items.astype(np.int64))

        row_gap = user_gaps(user, inter.timestamp)
        windows = build_windows(user, item, keep, n_items, max_len, row_gap)
        val_tokens, val_gaps, val_length, val_seen = _validation_inputs(
            user, item, val_rows, n_items, max_len, row_gap
        )
        live = _live_times(data, user, item, val_rows) if opts.live else {}
        tset = TrainingSet(
            windows=windows,
            item=item,
            weight=weight,
            impressions=impressions,
            context=None if encoders["context"].empty else context_rows,
            users=None if encoders["user"].empty else user_rows,
            items=None if encoders["item"].empty else item_rows,
            popularity=popularity,
            val_tokens=val_tokens,
            val_gaps=val_gaps,
            val_length=val_length,
            val_users=user[val_rows],
            val_rows=val_rows,
            val_target=item[val_rows],
            val_seen=val_seen,
            **live,
        )
        n_targets = int(keep.sum())
        net_cfg = NetConfig(
            n_items=n_items,
            dim=dim,
            max_len=max_len,
            layers=previous.layers if previous else opts.layers or _layers(n_targets),
            heads=_heads(dim),
            dropout=opts.dropout if opts.dropout is not None else _dropout(n_targets),
            item_codes=encoders["item"].n_codes,
            item_numeric=encoders["item"].n_numeric,
            user_codes=encoders["user"].n_codes,
            user_numeric=encoders["user"].n_numeric,
            context_codes=encoders["context"].n_codes,
            context_numeric=encoders["context"].n_numeric,
            gap_buckets=(previous.gap_buckets if previous else GAP_BUCKETS if opts.gaps else 0),
            session_bucket=(
                previous.session_bucket
                if previous
                else SESSION_BUCKET
                if opts.gaps and opts.sessions
                else 0
            ),
        )
        device = choose_device(opts.device)
        negatives = default_negatives(n_items) if opts.negatives is None else opts.negatives
        max_epochs = opts.max_epochs
        if max_epochs is None:
            width = n_items if negatives == 0 else min(n_items, negatives)
            max_epochs = planned_epochs(n_targets, net_cfg.dim, net_cfg.layers, width)
        if warm is not None:
            max_epochs = min(max_epochs, UPDATE_EPOCHS)
        if self.max_epochs is not None:
            max_epochs = max(1, min(max_epochs, self.max_epochs))
        train_cfg = TrainConfig(
            max_epochs=max_epochs,
            patience=opts.patience if warm is None else 1,
            batch_size=opts.batch_size,
            lr=opts.lr if warm is None else opts.lr * UPDATE_LR_SCALE,
            weight_decay=opts.weight_decay,
            negatives=negatives,
            horizon=opts.horizon,
            future_weight=opts.future_weight,
            seed=data.seed,
            bf16=fast_bfloat16(device) if opts.bf16 is None else opts.bf16,
        )
        with reproducible(data.seed, device, opts.threads):
            net = SequentialNet(net_cfg)
            has_id = popularity > 0
            if warm is not None:
                _load_warm(net, warm)
                # A new item whose only events are held out for validation still gets
                # its folded-in row: an update must not leave it out of the model.
                has_id |= _fold_in(net, warm, user, item, tset.items)
            net.has_id.copy_(torch.from_numpy(has_id.astype(np.float32)))
            if n_targets:
                train(net, tset, train_cfg, device, stop, print if opts.log else None)
            knn, beta, affinity, gamma = None, 0.0, None, 0.0
            if n_targets and not self.stop_requested():
                knn, beta, affinity, gamma = self._second_opinions(
                    net, tset, data, encoders["item"], item_rows, keep, kept_user, device
                )
        net.set_item_rows(None)
        exploration = None
        if self.explore:
            exploration = _exploration_stats(data, item)
        model = SequentialModel(
            net.cpu(),
            item_rows=item_rows,
            user_rows=user_rows,
            encoders=encoders,
            exploration=exploration,
            knn=knn if beta > 0 else None,
            meta={
                "recipe": self.name,
                "explore": self.explore,
                "knn_weight": beta,
                "affinity_weight": gamma,
            },
            created=live.get("created"),
            affinity=affinity,
        )
        objective = data.extra.get("objective")
        if isinstance(objective, Objective):
            model.apply_objective(item_boost(objective, data, model.score_items, seed=data.seed))
        return model

    def _second_opinions(
        self,
        net: SequentialNet,
        tset: TrainingSet,
        data: TrainingData,
        encoder: FeatureEncoder,
        item_rows: EncodedRows,
        keep: npt.NDArray[np.bool_],
        kept_user: npt.NDArray[np.bool_],
        device: torch.device,
    ) -> tuple[ItemKNN | None, float, SessionAffinity | None, float]:
        """The neighbour model and β, the visit-category term and γ: the options' fixed
        weights, else chosen on the validation split (None and 0 where off)."""
        opts = self.options
        inter = data.interactions
        user, item = inter.user.astype(np.int64), inter.item.astype(np.int64)
        val = None
        if tset.val_rows.shape[0]:
            val = Validation.of(net, tset, user, item, inter.timestamp, device)
        n_codes = encoder.n_categorical_codes
        affinity = SessionAffinity.fit(item_rows, n_codes, item[keep]) if opts.affinity else None
        gamma, fixed = 0.0, None
        if affinity is not None and val is not None:
            gamma, fixed = choose_affinity(val, affinity, opts.log, opts.affinity_weight)
        elif affinity is not None and opts.affinity_weight is not None:
            gamma = opts.affinity_weight
        knn, beta = None, 0.0
        if opts.knn_blend and opts.knn_weight is not None:
            knn, beta = ItemKNN.fit(user, item, keep, inter.n_users, inter.n_items), opts.knn_weight
        elif opts.knn_blend and val is not None:
            models = neighbour_models(
                user, item, inter.n_users, inter.n_items, data.seed, opts.transitions,
                inter.timestamp,
            )  # fmt: skip
            knn, beta = choose_knn(val, models, (keep, kept_user[user]), opts.log, fixed)
        if affinity is None or gamma <= 0:
            return knn, beta, None, 0.0
        # The final term counts the traffic of all interactions, validation rows included.
        return knn, beta, SessionAffinity.fit(item_rows, n_codes, item), gamma


class UserPersonalization(_SequenceRecipe):
    """``aws-user-personalization``: next-item transformer with metadata and exploration.

    Example::

        recipe = UserPersonalization(UserPersonalization.parse_params({"bptt": "16"}))
        model = recipe.fit(data)
        model.recommend(Query(user=3, history=items, exploration=Exploration(0.3)), 25)
    """

    name: ClassVar[str] = "aws-user-personalization"
    recipe_type: ClassVar[RecipeType] = "USER_PERSONALIZATION"
    Params: ClassVar[type[Params]] = UserPersonalizationParams
    explore: ClassVar[bool] = True


class PersonalizedRanking(_SequenceRecipe):
    """``aws-personalized-ranking``: the UP model, asked to rank candidate lists."""

    name: ClassVar[str] = "aws-personalized-ranking"
    recipe_type: ClassVar[RecipeType] = "PERSONALIZED_RANKING"
    Params: ClassVar[type[Params]] = UserPersonalizationParams


class UserPersonalizationV2(_SequenceRecipe):
    """``aws-user-personalization-v2``: the large-catalogue transformer, no exploration."""

    name: ClassVar[str] = "aws-user-personalization-v2"
    recipe_type: ClassVar[RecipeType] = "USER_PERSONALIZATION"
    Params: ClassVar[type[Params]] = UserPersonalizationV2Params
    v2: ClassVar[bool] = True


class PersonalizedRankingV2(_SequenceRecipe):
    """``aws-personalized-ranking-v2``: the v2 model, asked to rank candidate lists."""

    name: ClassVar[str] = "aws-personalized-ranking-v2"
    recipe_type: ClassVar[RecipeType] = "PERSONALIZED_RANKING"
    Params: ClassVar[type[Params]] = UserPersonalizationV2Params
    v2: ClassVar[bool] = True


# --- helpers ------------------------------------------------------------------------------


def _live_times(
    data: TrainingData,
    user: npt.NDArray[np.int64],
    item: npt.NDArray[np.int64],
    val_rows: npt.NDArray[np.int64],
) -> dict[str, npt.NDArray[np.int64]]:
    """``TrainingSet``'s creation and row times, when items carry creation times.

    An item's creation is its CREATION_TIMESTAMP, or its first interaction if earlier
    (the data then contradicts the metadata, and an event always counts). A validation
    query's time is its newest input event's, as at evaluation.
    """
    if data.item_creation_time is None:
        return {}
    ts = data.interactions.timestamp.astype(np.int64)
    created = data.item_creation_time.astype(np.int64).copy()
    np.minimum.at(created, item, ts)
    prior = np.maximum(val_rows - 1, 0)
    same = (val_rows > 0) & (user[prior] == user[val_rows])
    val_time = np.where(same, ts[prior], ts[val_rows])
    return {"created": created, "row_time": ts, "val_time": val_time}


def _fold_in(
    net: SequentialNet,
    warm: WarmStart,
    user: npt.NDArray[np.int64],
    item: npt.NDArray[np.int64],
    item_rows: EncodedRows | None,
) -> npt.NDArray[np.bool_]:
    """Start each new item where the model would already put it: its vector (ID row plus
    its own metadata) at the mean vector of the known items that came just before it in
    users' histories, its bias at their mean bias. A few update epochs then refine a good
    guess instead of a random vector. Returns which items got a row."""
    import torch

    from pertinent.recipes.sequential import TorchRows

    is_new = warm.item_map < 0
    rows = np.flatnonzero(is_new[item])
    rows = rows[rows > 0]
    before = rows - 1
    keep = (user[before] == user[rows]) & ~is_new[item[before]]
    targets = torch.from_numpy(item[rows[keep]])
    sources = torch.from_numpy(item[before[keep]])
    if targets.numel() == 0:
        return np.zeros(is_new.shape[0], dtype=np.bool_)
    with torch.no_grad():
        weight, bias = net.item_id.weight, net.item_bias
        meta = torch.zeros_like(weight)
        if net.item_meta.active and item_rows is not None:
            meta = net.item_meta(TorchRows.of(item_rows, weight.device))
        full = weight * net.has_id[:, None] + meta
        total = torch.zeros_like(weight).index_add_(0, targets, full[sources])
        bias_total = torch.zeros_like(bias).index_add_(0, targets, bias[sources])
        count = torch.zeros_like(bias).index_add_(0, targets, torch.ones_like(bias[sources]))
        seen = count > 0
        weight[seen] = total[seen] / count[seen, None] - meta[seen]
        bias[seen] = bias_total[seen] / count[seen]
    folded: npt.NDArray[np.bool_] = seen.numpy()
    return folded


def _load_warm(net: SequentialNet, warm: WarmStart) -> None:
    """Start from the previous model: its item rows for the items it knew (by
    ``warm.item_map``), fresh rows for new items, every other weight as it was."""
    import torch

    assert isinstance(warm.model, SequentialModel)
    old = warm.model.net.state_dict()
    new = net.state_dict()
    mapped = torch.from_numpy(np.flatnonzero(warm.item_map >= 0))
    source = torch.from_numpy(warm.item_map[warm.item_map >= 0].astype(np.int64))
    for name, value in new.items():
        if name in ("item_id.weight", "item_bias", "has_id"):
            value[mapped] = old[name][source].to(value.dtype)
        elif name in old and old[name].shape == value.shape:
            value.copy_(old[name])
        else:
            raise ValueError(
                f"The previous model's {name} has shape {tuple(old[name].shape)}, this one "
                f"{tuple(value.shape)}: train a FULL version instead of an update."
            )
    net.load_state_dict(new)


def _heads(dim: int) -> int:
    """Attention heads: as many as keep ≥ 32 dimensions each (one for odd widths)."""
    for heads in (4, 2):
        if dim % heads == 0 and dim // heads >= 32:
            return heads
    return 1


def _layers(n_targets: int) -> int:
    """Transformer blocks: a second one overfits small data sets (LOO NDCG@10, seeds
    0/1/2, two blocks → one: MovieLens-100K 0.1152/0.1136/0.1170 → 0.1232/0.1178/0.1204,
    generated 0.2504/0.2511/0.2509 → 0.2529/0.2486/0.2534, MovieLens-latest-small seed 0
    0.0494 → 0.0608)."""
    return 1 if n_targets < SMALL_DATA_TARGETS else 2


def _dropout(n_targets: int) -> float:
    """Small data sets need strong regularisation; large ones little."""
    if n_targets < SMALL_DATA_TARGETS:
        return 0.3
    if n_targets < 3_000_000:
        return 0.2
    return 0.1


def within_percentiles(
    counts: npt.NDArray[np.int64], low: float, high: float
) -> npt.NDArray[np.bool_]:
    """Users whose history length lies within the ``[low, high]`` percentiles (of users
    with any interaction); values equal to a bound are kept, as in SIMS."""
    present = counts > 0
    if not present.any() or (low <= 0.0 and high >= 1.0):
        return present
    lo, hi = np.quantile(counts[present].astype(np.float64), [low, high])
    keep: npt.NDArray[np.bool_] = present & (counts >= lo) & (counts <= hi)
    return keep


def recency_weights(timestamp: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
    """``0.25 + 0.75 · 2^(-age / half_life)``, half-life a quarter of the time span."""
    if timestamp.shape[0] == 0:
        return np.ones(0, dtype=np.float32)
    t = timestamp.astype(np.float64)
    lo, hi = np.quantile(t, [0.01, 0.99])
    half_life = max((hi - lo) / 4.0, 1.0)
    age = np.maximum(t.max() - t, 0.0)
    out: npt.NDArray[np.float32] = (0.25 + 0.75 * np.exp2(-age / half_life)).astype(np.float32)
    return out


def _validation_rows(
    user: npt.NDArray[np.int64],
    item: npt.NDArray[np.int64],
    kept_user: npt.NDArray[np.bool_],
    lengths: npt.NDArray[np.int64],
    wanted: int,
    rng: np.random.Generator,
) -> npt.NDArray[np.int64]:
    """The newest row of up to ``wanted`` random kept users with ≥ 3 rows, by user, among
    those whose newest item is new to them: with their seen items removed a repeat can't
    be hit, as in ``evaluation.loo``."""
    offsets = np.zeros(lengths.shape[0] + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    newest = np.maximum(offsets[1:] - 1, 0)
    repeat = (item == item[newest[user]]) & (np.arange(user.shape[0]) != newest[user])
    repeated = np.bincount(user[repeat], minlength=lengths.shape[0]) > 0
    eligible = np.flatnonzero(kept_user & (lengths >= 3) & ~repeated)
    if eligible.shape[0] > wanted:
        eligible = np.sort(rng.choice(eligible, size=wanted, replace=False))
    rows: npt.NDArray[np.int64] = offsets[eligible + 1] - 1
    return rows


def user_gaps(
    user: npt.NDArray[np.int64], timestamp: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Per row (sorted by user, time), the gap bucket to the user's previous row."""
    out = gap_buckets(timestamp)
    if user.shape[0]:
        first = np.ones(user.shape[0], dtype=bool)
        first[1:] = user[1:] != user[:-1]
        out[first] = 0
    return out


def _validation_inputs(
    user: npt.NDArray[np.int64],
    item: npt.NDArray[np.int64],
    val_rows: npt.NDArray[np.int64],
    n_items: int,
    max_len: int,
    row_gap: npt.NDArray[np.int64],
) -> tuple[
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]],
]:
    """Right-padded ``[BOS, history]`` windows (newest ``max_len``) of the validation rows,
    their gap buckets, their lengths, and their seen items (CSR; the target is never
    among them)."""
    n = val_rows.shape[0]
    tokens = np.full((n, max_len), n_items + 1, dtype=np.int64)
    if n == 0:
        empty = (np.zeros(1, dtype=np.int64), np.empty(0, dtype=np.int64))
        return tokens, np.zeros_like(tokens), np.zeros(0, dtype=np.int64), empty
    starts = np.searchsorted(user, user[val_rows], side="left")
    hist_len = val_rows - starts
    length = np.minimum(hist_len + 1, max_len)  # + BOS
    # Column c holds history row (val_row - length + c); the row before the start is BOS.
    col = np.arange(max_len)[None, :]
    pos = (val_rows - length)[:, None] + col
    real = col < length[:, None]
    tokens = np.where(real, item[np.clip(pos, 0, item.shape[0] - 1)], tokens)
    is_bos = real & (pos == (starts - 1)[:, None])
    tokens = np.where(is_bos, n_items, tokens)
    gaps = np.where(real & ~is_bos, row_gap[np.clip(pos, 0, item.shape[0] - 1)], 0)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(hist_len, out=offsets[1:])
    flat = np.repeat(starts - offsets[:-1], hist_len) + np.arange(int(offsets[-1]))
    return tokens, gaps, length.astype(np.int64), (offsets, item[flat])


def _exploration_stats(data: TrainingData, item: npt.NDArray[np.int64]) -> ExplorationStats:
    inter = data.interactions
    n_items = inter.n_items
    newest = int(inter.timestamp.max()) if len(inter) else 0
    if data.item_creation_time is not None:
        created = data.item_creation_time.astype(np.float64)
    else:
        # First interaction; never-seen items are new (created at the newest event).
        created = np.full(n_items, float(newest))
        if len(inter):
            first = np.full(n_items, np.inf)
            np.minimum.at(first, item, inter.timestamp.astype(np.float64))
            created = np.where(np.isfinite(first), first, created)
    age_days = ((newest - created) / 86_400.0).astype(np.float32)
    counts = np.bincount(item, minlength=n_items).astype(np.float32)
    shown = np.zeros(n_items, dtype=np.float32)
    if inter.impressions is not None:
        shown = np.bincount(inter.impressions[1], minlength=n_items).astype(np.float32)
    return ExplorationStats(age_days, counts, shown)
