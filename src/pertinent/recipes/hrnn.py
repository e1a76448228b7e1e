"""The legacy HRNN recipes: a hierarchical recurrent network over the user's sessions.

* ``aws-hrnn``: interactions only.
* ``aws-hrnn-metadata``: plus item, user and interaction-context metadata
  (``_features``), which also lets items without interactions be scored.
* ``aws-hrnn-coldstart``: hrnn-metadata that explores cold items at request time.

The network and its training are in ``_recurrent`` (torch, loaded inside ``fit``);
``RecurrentModel`` serves the trained weights with numpy alone. Sessions: a user's
history is split wherever consecutive events lie more than ``SESSION_GAP`` seconds
apart; a request continues the newest session of its history (its times come with
``Query.history_times``; without them the history is one session).

Hyperparameters (spec §8.2): ``hidden_dimension`` is the GRU width; ``bptt`` the
number of steps the network is unrolled over, in training windows and at serving (the
newest ``bptt`` events of a request are read); ``recency_mask`` weights recent events
more (``user_personalization.recency_weights``); users whose history length falls
outside the ``min/max_user_history_length_percentile`` percentiles are not trained on.

Cold start (``aws-hrnn-coldstart``). An item is cold when it has at most
``cold_start_max_interactions`` training interactions and was created (its
CREATION_TIMESTAMP, else its first interaction; neither: brand new) at most
``cold_start_max_duration`` days before the reference point: the newest item's
creation (``cold_start_relative_from=latestItem``, the newest interaction when items
carry no creation time) or the request's wall-clock time (``currentTime``). Cold items
get the exploration bonus of ``_inference`` (``w / (1 - w) · 3 σ_q · coldness``) when
the campaign's ``explorationWeight`` is above 0; at 0 items nobody interacted with are
left out, as User-Personalization does. The campaign's ``explorationItemAgeCutOff`` is
not read: the recipe's own cold-start definition says which items are cold.

As in User-Personalization, the item-kNN blend of ``_knn`` is tuned on the internal
validation split after training (weight 0 when it does not help).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field

from pertinent.recipes._features import EncodedRows, FeatureEncoder
from pertinent.recipes._inference import (
    _EXPLORATION_SIGMAS,
    _MAX_EXPLORATION_FACTOR,
    _stack,
)
from pertinent.recipes._knn import ItemKNN, neighbour_models
from pertinent.recipes._scoring import _EXP_FLOOR, numpy_product
from pertinent.recipes.base import (
    BoolArray,
    FloatArray,
    IntArray,
    Model,
    Params,
    Query,
    Ranked,
    Recipe,
    RecipeType,
    TrainingData,
    top_n,
)
from pertinent.recipes.user_personalization import (
    TARGET_EVENTS_BUDGET,
    UserPersonalizationParams,
    _validation_rows,
    default_negatives,
    recency_weights,
    within_percentiles,
)

__all__ = [
    "Hrnn",
    "HrnnColdstart",
    "HrnnColdstartParams",
    "HrnnMetadata",
    "HrnnOptions",
    "HrnnParams",
    "RecurrentModel",
]

SESSION_GAP = 30 * 60  # seconds between events that end a session
_FORMAT, _VERSION = "pertinent.hrnn", 1
_DAY = 86_400.0
F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


class HrnnParams(UserPersonalizationParams):
    """aws-hrnn / aws-hrnn-metadata hyperparameters (spec §8.2)."""

    hidden_dimension: int = Field(default=43, ge=32, le=256)


class HrnnColdstartParams(UserPersonalizationParams):
    """aws-hrnn-coldstart hyperparameters (spec §8.2)."""

    cold_start_max_interactions: int = Field(default=15, ge=1)
    cold_start_max_duration: float = Field(default=5.0, gt=0.0, allow_inf_nan=False)
    cold_start_relative_from: Literal["latestItem", "currentTime"] = "latestItem"


@dataclass(frozen=True)
class HrnnOptions:
    """Knobs Personalize doesn't expose: tests shrink them. None: chosen from the data."""

    max_epochs: int | None = None
    patience: int = 8
    dropout: float = 0.25
    batch_size: int = 64
    lr: float = 3e-3
    negatives: int | None = None
    horizon: int = 8
    future_weight: float = 0.5
    knn_blend: bool = True
    transitions: bool = True  # the blend's candidates add what follows the newest items
    validation_users: int = 2_000
    device: str | None = None
    threads: int | None = None
    bf16: bool | None = None  # None: where the device multiplies bfloat16 natively
    log: bool = False


# --- sessions -----------------------------------------------------------------------------


def _steps(items: I64, times: npt.NDArray[Any] | None, max_len: int) -> tuple[I64, BoolArray]:
    """The newest ``max_len`` items and, per item, whether the next one opens a session."""
    items, cut = items[-max_len:], max(items.shape[0] - max_len, 0)
    boundary = np.zeros(items.shape[0], dtype=bool)
    if times is not None and items.shape[0] > 1:
        t = np.asarray(times, dtype=np.int64)[cut:]
        boundary[:-1] = np.diff(t) > SESSION_GAP
    return items, boundary


# --- serving ------------------------------------------------------------------------------


def _sigmoid(x: F32) -> F32:
    out: F32 = 0.5 * (np.tanh(0.5 * x) + 1.0)  # overflow-free form
    return out


def _gru(gi: F32, h: F32, w_hh: F32, b_hh: F32) -> F32:
    """numpy twin of ``_recurrent.gru_step`` (torch's GRUCell formula)."""
    gh = h @ w_hh.T + b_hh
    d = h.shape[-1]
    r = _sigmoid(gi[:, :d] + gh[:, :d])
    z = _sigmoid(gi[:, d : 2 * d] + gh[:, d : 2 * d])
    n = np.tanh(gi[:, 2 * d :] + r * gh[:, 2 * d :])
    out: F32 = (1.0 - z) * n + z * h
    return out


class RecurrentModel(Model):
    """A trained HRNN, answering from numpy arrays. One class serves the three recipes."""

    # Concurrent requests share one read of the item table (``q @ V.T``) on a scoring
    # thread, where one at a time each read it alone on the server's event loop.
    batches = True

    def __init__(
        self,
        weights: Mapping[str, npt.NDArray[Any]],
        *,
        item_rows: EncodedRows,
        user_rows: EncodedRows,
        encoders: Mapping[str, FeatureEncoder],
        cold: Mapping[str, npt.NDArray[Any]] | None,
        meta: Mapping[str, Any],
        knn: ItemKNN | None = None,
    ) -> None:
        self.weights = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
        self.meta = dict(meta)
        self.item_rows, self.user_rows = item_rows, user_rows
        self.encoders = dict(encoders)
        self.cold = None if cold is None else dict(cold)
        self.knn = knn
        self.knn_weight = float(self.meta.get("knn_weight", 0.0)) if knn is not None else 0.0
        w = self.weights
        self.max_len = int(self.meta["max_len"])
        self.V, self.bias = w["V"], w["bias"]
        self.n_items = int(self.V.shape[0])
        # The session GRU's input gates of every item, so a step is one gather.
        self.G = self._input_gates(self.V)
        self.uses_user_attributes = not self.encoders["user"].empty
        # One request steps the GRUs one row at a time, where numpy's per-call overhead
        # is most of the cost: contiguous transposed weights, the start state cached.
        self._t = {
            k: np.ascontiguousarray(w[k].T)
            for k in ("session.weight_hh", "user.weight_ih", "user.weight_hh", "init.weight")
        }
        self._u0 = w["user_start"]
        self._s0 = np.tanh(self._u0 @ self._t["init.weight"] + w["init.bias"])

    def _input_gates(self, vectors: F32) -> F32:
        w = self.weights
        out: F32 = np.ascontiguousarray(vectors @ w["session.weight_ih"].T + w["session.bias_ih"])
        return out

    def _bag(self, prefix: str, rows: EncodedRows) -> F32:
        """numpy twin of ``BagEmbedder`` (sum of weighted code vectors + numeric map)."""
        table = self.weights[f"{prefix}.bag.weight"]
        n = rows.n_rows
        out = np.zeros((n, table.shape[1]), dtype=np.float32)
        owner = np.repeat(np.arange(n), np.diff(rows.offsets))
        np.add.at(out, owner, table[rows.codes] * rows.weights[:, None])
        if rows.numeric.shape[1]:
            out += rows.numeric @ self.weights[f"{prefix}.linear.weight"].T
        return out

    # --- encoding -----------------------------------------------------------------------

    def _steps(self, query: Query) -> tuple[I64, BoolArray]:
        h = np.asarray(query.history, dtype=np.int64)
        times = query.history_times
        if times is not None and np.shape(times) != h.shape:
            times = None  # no aligned times: the history is one session
        known = (h >= 0) & (h < self.n_items)
        return _steps(h[known], None if times is None else times[known], self.max_len)

    def query_vectors(self, queries: Sequence[Query]) -> F32:
        """The query vector of each request, (B, d): the newest session's state, mapped."""
        w = self.weights
        b = len(queries)
        steps = [self._steps(q) for q in queries]
        if b == 1:
            s = self._state_one(*steps[0])[None]
        else:
            s = self._states(steps)
        q: F32 = (s @ w["out.weight"].T + w["out.bias"]).astype(np.float32)
        if self.uses_user_attributes:
            q += self._bag("user_meta", _stack([self._user_row(x) for x in queries], self._nu))
        if not self.encoders["context"].empty and any(x.context for x in queries):
            enc = self.encoders["context"]
            rows = [enc.encode_raw(x.context) for x in queries]
            q += self._bag("context_meta", _stack(rows, enc.n_numeric))
        return q

    def _state_one(self, tokens: I64, boundary: BoolArray) -> F32:
        """The final session state of one history: ``_states`` unrolled on 1-D rows."""
        w, t, d = self.weights, self._t, self._s0.shape[0]
        whh, bhh = t["session.weight_hh"], w["session.bias_hh"]
        s, u = self._s0, self._u0
        ends = boundary.tolist()
        for k, item in enumerate(tokens.tolist()):
            gi = self.G[item]
            gh = s @ whh + bhh
            rz = np.tanh(0.5 * (gi[: 2 * d] + gh[: 2 * d])) * 0.5 + 0.5
            n = np.tanh(gi[2 * d :] + rz[:d] * gh[2 * d :])
            s = n + rz[d:] * (s - n)
            if ends[k]:
                gu = s @ t["user.weight_ih"] + w["user.bias_ih"]
                hu = u @ t["user.weight_hh"] + w["user.bias_hh"]
                rz = np.tanh(0.5 * (gu[: 2 * d] + hu[: 2 * d])) * 0.5 + 0.5
                n = np.tanh(gu[2 * d :] + rz[:d] * hu[2 * d :])
                u = n + rz[d:] * (u - n)
                s = np.tanh(u @ t["init.weight"] + w["init.bias"])
        out: F32 = s
        return out

    def _states(self, steps: Sequence[tuple[I64, BoolArray]]) -> F32:
        """Final session states (B, d) of a batch of histories, left-padded to one length."""
        w = self.weights
        b = len(steps)
        t = max((s[0].shape[0] for s in steps), default=0)
        tokens = np.full((b, t), -1, dtype=np.int64)
        boundary = np.zeros((b, t), dtype=bool)
        for row, (tok, bnd) in enumerate(steps):
            tokens[row, t - tok.shape[0] :] = tok  # left-padded: all end at the last step
            boundary[row, t - bnd.shape[0] :] = bnd
        u = np.repeat(w["user_start"][None], b, axis=0)
        s = np.tanh(u @ w["init.weight"].T + w["init.bias"])
        for step in range(t):
            tok = tokens[:, step]
            real = tok >= 0
            stepped = _gru(
                self.G[np.maximum(tok, 0)], s, w["session.weight_hh"], w["session.bias_hh"]
            )
            s = stepped if real.all() else np.where(real[:, None], stepped, s)
            m = boundary[:, step]
            if m.any():
                gi = s @ w["user.weight_ih"].T + w["user.bias_ih"]
                u_new = _gru(gi, u, w["user.weight_hh"], w["user.bias_hh"])
                s_new = np.tanh(u_new @ w["init.weight"].T + w["init.bias"])
                u = np.where(m[:, None], u_new, u)
                s = np.where(m[:, None], s_new, s)
        out: F32 = s
        return out

    @property
    def _nu(self) -> int:
        return self.encoders["user"].n_numeric

    def _user_row(self, query: Query) -> EncodedRows:
        # Metadata sent after training (PutUsers) is the newer truth about the user.
        if not query.user_attributes and query.user is not None:
            if 0 <= query.user < self.user_rows.n_rows:
                return self.user_rows.take(np.asarray([query.user], dtype=np.int64))
        return self.encoders["user"].encode_raw(query.user_attributes)

    def _logits(self, queries: Sequence[Query]) -> F32:
        q = self.query_vectors(queries)
        logits = numpy_product(self.V, q)
        logits += self.bias
        if self.knn is not None:
            knn = self.knn.scores([x.history for x in queries])
            logits[:, : knn.shape[1]] += np.float32(self.knn_weight) * knn
        if self.cold is not None and bool(self.meta.get("explore")):
            for row, query in enumerate(queries):
                self._explore(logits[row], query)
        return logits

    def cold_items(self, now: float | None = None) -> BoolArray:
        """Which items count as cold under the recipe's cold-start hyperparameters."""
        assert self.cold is not None
        spec = self.meta["cold_start"]
        if spec.get("relative_from") == "currentTime":
            reference = time.time() if now is None else now
        else:
            reference = float(self.cold["latest"][0])
        age_days = (reference - self.cold["created"]) / _DAY
        young = ~(age_days > float(spec.get("max_duration_days", 5.0)))  # NaN: brand new
        few = self.cold["interactions"] <= int(spec.get("max_interactions", 15))
        out: BoolArray = young & few
        return out

    def _explore(self, logits: F32, query: Query) -> None:
        exp = query.exploration
        assert self.cold is not None
        if exp is None:
            return
        if exp.weight <= 0.0:
            unseen = self.cold["interactions"] == 0
            if unseen.any():
                logits[unseen] = np.float32(logits.min() - 1.0)
            return
        w = float(exp.weight)
        factor = _MAX_EXPLORATION_FACTOR if w >= 1.0 else min(w / (1.0 - w), 1e4)
        spread = float(logits.std()) or 1.0
        evidence = self.cold["interactions"] + self.cold["impressions"]
        bonus = np.where(self.cold_items(), 1.0 / np.sqrt(1.0 + evidence), 0.0)
        logits += (np.float32(factor * _EXPLORATION_SIGMAS * spread) * bonus).astype(np.float32)

    def with_new_items(self, attributes: Sequence[Mapping[str, str]]) -> RecurrentModel:
        """A copy that also knows items added after training (PutItems), as indices
        ``n_items, ...``: metadata-only vectors, the cold bias, brand new for exploration."""
        if not attributes:
            return self
        n_new = len(attributes)
        encoder = self.encoders["item"]
        vec = np.zeros((n_new, self.V.shape[1]), dtype=np.float32)
        if not encoder.empty:
            rows = [encoder.encode_raw(a) for a in attributes]
            vec = self._bag("item_meta", _stack(rows, encoder.n_numeric))
        new = copy.copy(self)
        new.V = np.ascontiguousarray(np.vstack([self.V, vec]))
        cold_bias = np.full(n_new, self.weights["cold_bias"], dtype=np.float32)
        new.bias = np.concatenate([self.bias, cold_bias])
        new.G = np.ascontiguousarray(np.vstack([self.G, self._input_gates(vec)]))
        new.n_items = self.n_items + n_new
        if self.cold is not None:
            c = self.cold
            zeros = np.zeros(n_new, dtype=np.float32)
            new.cold = {
                **c,
                "created": np.concatenate([c["created"], np.full(n_new, np.nan)]),
                "interactions": np.concatenate([c["interactions"], zeros]),
                "impressions": np.concatenate([c["impressions"], zeros]),
            }
        return new

    # --- the Model interface ----------------------------------------------------------

    def recommend(self, query: Query, n: int, allowed: BoolArray | None = None) -> Ranked:
        return self.recommend_many([query], [n], [allowed])[0]

    def recommend_many(
        self, queries: Sequence[Query], n: Sequence[int], allowed: Sequence[BoolArray | None]
    ) -> list[Ranked]:
        if not queries:
            return []
        logits = self._logits(queries)
        return [
            self._ranked(logits[row], k, mask)
            for row, (k, mask) in enumerate(zip(n, allowed, strict=True))
        ]

    def _ranked(self, logits: F32, n: int, allowed: BoolArray | None) -> Ranked:
        if n <= 0:
            return Ranked(items=np.empty(0, dtype=np.int32), scores=np.empty(0, dtype=np.float32))
        items = top_n(logits, n, allowed)
        top = float(logits.max())
        # Clamped as _scoring's slow log-sum-exp is: exp is slow where it underflows.
        shifted = np.maximum(logits - np.float32(top), np.float32(_EXP_FLOOR))
        log_z = top + float(np.log(np.exp(shifted).sum(dtype=np.float64)))
        scores = np.exp(logits[items].astype(np.float64) - log_z).astype(np.float32)
        return Ranked(items=items, scores=scores)

    def score_items(self, queries: Sequence[Query]) -> FloatArray:
        if not queries:
            return np.empty((0, self.n_items), dtype=np.float32)
        return self._logits(queries)

    def rank(self, query: Query, candidates: IntArray) -> FloatArray:
        cand = np.asarray(candidates, dtype=np.int64)
        known = (cand >= 0) & (cand < self.n_items)
        out = np.zeros(cand.shape[0], dtype=np.float32)
        if known.any():
            logits = self._logits([query])[0][cand[known]].astype(np.float64)
            e = np.exp(logits - logits.max())
            out[known] = (e / e.sum()).astype(np.float32)
        return out

    # --- persistence -----------------------------------------------------------------

    def save(self, path: Path) -> None:
        arrays: dict[str, npt.NDArray[Any]] = {f"w.{k}": v for k, v in self.weights.items()}
        arrays.update(self.item_rows.arrays("item"))
        arrays.update(self.user_rows.arrays("user"))
        if self.cold is not None:
            arrays.update({f"cold.{k}": v for k, v in self.cold.items()})
        if self.knn is not None:
            arrays.update(self.knn.arrays())
        np.savez(path / "arrays.npz", allow_pickle=False, **arrays)
        doc = {
            "format": _FORMAT,
            "version": _VERSION,
            "encoders": {k: e.to_json() for k, e in self.encoders.items()},
            "meta": self.meta,
        }
        (path / "model.json").write_text(json.dumps(doc) + "\n")

    @classmethod
    def load(cls, path: Path) -> RecurrentModel:
        doc = json.loads((path / "model.json").read_text())
        if doc.get("format") != _FORMAT or doc.get("version") != _VERSION:
            raise ValueError(f"{path} does not hold a {_FORMAT} v{_VERSION} model")
        meta = doc["meta"]
        with np.load(path / "arrays.npz", allow_pickle=False) as arrays:
            files = arrays.files
            weights = {k[2:]: arrays[k] for k in files if k.startswith("w.")}
            cold = {k[5:]: arrays[k] for k in files if k.startswith("cold.")} or None
            knn = None
            if "knn_indptr" in files:
                knn = ItemKNN.from_arrays(arrays, int(meta["n_items"]))
            return cls(
                weights,
                item_rows=EncodedRows.from_arrays(arrays, "item"),
                user_rows=EncodedRows.from_arrays(arrays, "user"),
                encoders={k: FeatureEncoder.from_json(v) for k, v in doc["encoders"].items()},
                cold=cold,
                meta=meta,
                knn=knn,
            )


# --- the recipes --------------------------------------------------------------------------


class _HrnnRecipe(Recipe):
    recipe_type: ClassVar[RecipeType] = "USER_PERSONALIZATION"
    ModelClass: ClassVar[type[Model]] = RecurrentModel
    metadata: ClassVar[bool] = False
    explore: ClassVar[bool] = False

    def __init__(self, params: Params | None = None, options: HrnnOptions | None = None):
        super().__init__(params)
        self.options = options or HrnnOptions()

    def fit(self, data: TrainingData) -> RecurrentModel:
        stop = self.stopper()
        # torch loads here, not at import: the control plane lists recipes without it.
        import torch

        from pertinent.recipes import _recurrent as rec
        from pertinent.recipes._torch import choose_device, fast_bfloat16, reproducible
        from pertinent.recipes.sequential import TorchRows, build_windows

        p = self.params
        assert isinstance(p, UserPersonalizationParams)
        opts = self.options
        inter = data.interactions
        n_items, n_users = inter.n_items, inter.n_users
        user = inter.user.astype(np.int64)
        item = inter.item.astype(np.int64)
        ts = inter.timestamp.astype(np.int64)
        rng = np.random.default_rng(data.seed)
        lo, hi = p.min_user_history_length_percentile, p.max_user_history_length_percentile
        lengths = np.bincount(user, minlength=n_users)
        kept_user = within_percentiles(lengths, lo, hi)
        val_rows = _validation_rows(user, item, kept_user, lengths, opts.validation_users, rng)
        keep = kept_user[user]
        keep[val_rows] = False

        weight = np.ones(len(inter), dtype=np.float32)
        if inter.weight is not None:
            weight *= inter.weight.astype(np.float32)
        if p.recency_mask:
            weight *= recency_weights(ts)
        popularity = np.bincount(item[keep], minlength=n_items).astype(np.float32)

        meta = self.metadata
        encoders = {
            "item": FeatureEncoder.fit(data.item_features if meta else None),
            "user": FeatureEncoder.fit(data.user_features if meta else None),
            "context": FeatureEncoder.fit(inter.context if meta else None),
        }
        item_rows = encoders["item"].encode(data.item_features, n_items)
        user_rows = encoders["user"].encode(data.user_features, n_users)
        context_rows = encoders["context"].encode(inter.context, len(inter))

        max_len = p.bptt
        windows = build_windows(user, item, keep, n_items, max_len)
        opens = rec.opens_session(user, ts, keep)
        real = windows.tokens < n_items
        boundary = real & (windows.rows >= 0) & opens[np.maximum(windows.rows, 0)]
        val_tokens, val_boundary, val_seen = rec.validation_inputs(
            user, item, ts, val_rows, n_items, max_len
        )
        tset = rec.HrnnTrainingSet(
            windows=windows,
            boundary=boundary,
            item=item,
            weight=weight,
            context=None if encoders["context"].empty else context_rows,
            users=None if encoders["user"].empty else user_rows,
            items=None if encoders["item"].empty else item_rows,
            popularity=popularity,
            val_tokens=val_tokens,
            val_boundary=val_boundary,
            val_users=user[val_rows],
            val_rows=val_rows,
            val_target=item[val_rows],
            val_seen=val_seen,
        )
        n_targets = int(keep.sum())
        cfg = rec.HrnnConfig(
            n_items=n_items,
            dim=p.hidden_dimension,
            max_len=max_len,
            dropout=opts.dropout,
            item_codes=encoders["item"].n_codes,
            item_numeric=encoders["item"].n_numeric,
            user_codes=encoders["user"].n_codes,
            user_numeric=encoders["user"].n_numeric,
            context_codes=encoders["context"].n_codes,
            context_numeric=encoders["context"].n_numeric,
        )
        negatives = default_negatives(n_items) if opts.negatives is None else opts.negatives
        max_epochs = opts.max_epochs
        if max_epochs is None:
            max_epochs = int(np.clip(TARGET_EVENTS_BUDGET // max(n_targets, 1), 5, 200))
        if self.max_epochs is not None:
            max_epochs = max(1, min(max_epochs, self.max_epochs))
        device = choose_device(opts.device)
        train_cfg = rec.HrnnTrainConfig(
            max_epochs=max_epochs,
            patience=opts.patience,
            batch_size=opts.batch_size,
            lr=opts.lr,
            negatives=negatives,
            horizon=opts.horizon,
            future_weight=opts.future_weight,
            seed=data.seed,
            bf16=fast_bfloat16(device) if opts.bf16 is None else opts.bf16,
        )
        knn, beta = None, 0.0
        with reproducible(data.seed, device, opts.threads):
            net = rec.HrnnNet(cfg)
            net.has_id.copy_(torch.from_numpy((popularity > 0).astype(np.float32)))
            if n_targets:
                log = print if opts.log else None
                rec.train(net, tset, train_cfg, device, stop, log)
            if opts.knn_blend and n_targets and val_rows.shape[0] and not self.stop_requested():
                models = neighbour_models(
                    user, item, n_users, n_items, data.seed, opts.transitions, ts
                )
                starts = np.searchsorted(user, user[val_rows], side="left")
                hist = [item[a:b] for a, b in zip(starts.tolist(), val_rows.tolist(), strict=True)]
                rows = (keep, kept_user[user])
                knn, beta = rec.blend(net, tset, device, models, rows, hist, opts.log)
        net = net.cpu()
        net.item_rows = TorchRows.of(item_rows, torch.device("cpu"))
        weights = rec.numpy_state(net)
        cold = rec.cold_stats(data, item) if self.explore else None
        cold_params: dict[str, Any] = {}
        if isinstance(p, HrnnColdstartParams):
            cold_params = {
                "max_interactions": p.cold_start_max_interactions,
                "max_duration_days": p.cold_start_max_duration,
                "relative_from": p.cold_start_relative_from,
            }
        return RecurrentModel(
            weights,
            item_rows=item_rows,
            user_rows=user_rows,
            encoders=encoders,
            cold=cold,
            knn=knn if beta > 0 else None,
            meta={
                "recipe": self.name,
                "n_items": n_items,
                "dim": cfg.dim,
                "max_len": max_len,
                "explore": self.explore,
                "cold_start": cold_params,
                "knn_weight": beta,
            },
        )


class Hrnn(_HrnnRecipe):
    """``aws-hrnn``: the hierarchical GRU over the user's sessions, interactions only.

    Example::

        model = Hrnn(Hrnn.parse_params({"bptt": "16"})).fit(data)
        model.recommend(Query(history=items, history_times=times), 25)
    """

    name: ClassVar[str] = "aws-hrnn"
    Params: ClassVar[type[Params]] = HrnnParams


class HrnnMetadata(_HrnnRecipe):
    """``aws-hrnn-metadata``: HRNN with item, user and interaction-context metadata."""

    name: ClassVar[str] = "aws-hrnn-metadata"
    Params: ClassVar[type[Params]] = HrnnParams
    metadata: ClassVar[bool] = True


class HrnnColdstart(_HrnnRecipe):
    """``aws-hrnn-coldstart``: HRNN-metadata exploring cold items (``Query.exploration``)."""

    name: ClassVar[str] = "aws-hrnn-coldstart"
    Params: ClassVar[type[Params]] = HrnnColdstartParams
    metadata: ClassVar[bool] = True
    explore: ClassVar[bool] = True
