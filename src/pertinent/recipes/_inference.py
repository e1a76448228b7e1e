"""Serving a trained ``SequentialNet``: batched inference, exploration, save and load.

Requests are latency-critical and small (one history of ≤ ``max_len`` items). So
``load`` runs the network once to cache the item table (``V``, contiguous float32,
metadata included) and keeps the encoder's weights as plain tensors; a batch of
requests is then a few dozen functional torch ops on a ``(B, T, d)`` block (no module
dispatch, no autograd: 0.49 ms for eight histories against 0.69 with the numpy twin
this replaced), one sgemm against the item table's column copy and ``top_k``. Offline
evaluation (``score_items``) takes the same path without the top-k.
``tests/recipes/test_user_personalization.py`` checks that this encoder matches the
training module's.

Exploration (User-Personalization only; spec §8.2, §7.7). An item is *explorable*
when its age — from CREATION_TIMESTAMP, else its first interaction, counted back from
the newest training interaction — is at most ``item_age_cutoff_days`` (an item with
neither is new). Its *coldness* is ``1 / sqrt(1 + interactions + impressions)``: an
upper-confidence bonus that shrinks with evidence, and an item shown often but not
chosen has plenty of (bad) evidence. The final logit is

    logit_i + min(w / (1 - w), 10⁴) · 3 σ_q · coldness_i · explorable_i

with ``w`` the exploration weight and ``σ_q`` the spread of this query's logits, so
the bonus is in the query's own units: ``w = 0`` is pure relevance (items with no
interaction at all are left out: they have no relevance evidence), ``w = 0.3`` lifts a
brand-new item by 1.3 σ (it shows up when it is also relevant), ``w = 1`` puts every
new explorable item first (best-matching by metadata first).
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from pertinent.recipes._affinity import SessionAffinity
from pertinent.recipes._features import EncodedRows, FeatureEncoder
from pertinent.recipes._knn import ItemKNN
from pertinent.recipes._scoring import log_sum_exp, table_product, top_k
from pertinent.recipes.base import (
    BoolArray,
    Exploration,
    FloatArray,
    IntArray,
    Model,
    Query,
    Ranked,
    top_n,
)

if TYPE_CHECKING:  # torch loads only with a model: the control plane never needs it
    import torch

    from pertinent.recipes.sequential import NetConfig, SequentialNet

__all__ = [
    "GAP_BUCKETS",
    "SESSION_BUCKET",
    "ExplorationStats",
    "SequentialModel",
    "gap_buckets",
]

LN_EPS = 1e-5
# Time gaps between consecutive events, in buckets: 0 where unknown (BOS, a user's first
# event, padding, a request without times), else 1 + floor(log2(1 + seconds)), capped.
GAP_BUCKETS = 34
# Gaps from bucket 12 (2,047 s, 34 min) on open a new session for the attention's
# same-session bias: HRNN's 30-minute rule (``hrnn.SESSION_GAP``), rounded up to a
# bucket edge.
SESSION_BUCKET = 12
_FORMAT = "pertinent.sequential"
_VERSION = 1
_DAY = 86_400.0
_MAX_EXPLORATION_FACTOR = 1e4
_EXPLORATION_SIGMAS = 3.0
_SPREAD_SAMPLE = 8192

F32 = npt.NDArray[np.float32]


def gap_buckets(times: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Bucket of each event's gap to the event before it (0 for the first)."""
    out = np.zeros(times.shape[0], dtype=np.int64)
    if times.shape[0] > 1:
        gap = np.maximum(np.diff(times.astype(np.float64)), 0.0)
        out[1:] = np.minimum(1 + np.floor(np.log2(1.0 + gap)).astype(np.int64), GAP_BUCKETS - 1)
    return out


class ExplorationStats:
    """Per-item evidence for exploration: age in days (NaN: unknown), counts."""

    def __init__(self, age_days: F32, interactions: F32, impressions: F32) -> None:
        self.age_days = np.ascontiguousarray(age_days, dtype=np.float32)
        self.coldness = (1.0 / np.sqrt(1.0 + interactions + impressions)).astype(np.float32)
        self.interactions = np.asarray(interactions, dtype=np.float32)
        self.impressions = np.asarray(impressions, dtype=np.float32)

    def bonus(self, cutoff_days: float) -> F32:
        explorable = ~(self.age_days > cutoff_days)  # NaN (age unknown) counts as new
        out: F32 = np.where(explorable, self.coldness, np.float32(0.0))
        return out


class _Bag:
    """numpy twin of ``BagEmbedder``."""

    def __init__(self, state: Mapping[str, torch.Tensor], prefix: str, encoder: FeatureEncoder):
        self.encoder = encoder
        self.table = state[f"{prefix}.bag.weight"].numpy().astype(np.float32)
        self.linear = state[f"{prefix}.linear.weight"].numpy().astype(np.float32)
        self.active = not encoder.empty

    def embed(self, rows: EncodedRows) -> F32:
        n = rows.n_rows
        owner = np.repeat(np.arange(n), np.diff(rows.offsets))
        out = np.zeros((n, self.table.shape[1]), dtype=np.float32)
        np.add.at(out, owner, self.table[rows.codes] * rows.weights[:, None])
        if self.encoder.n_numeric:
            out += rows.numeric @ self.linear.T
        return out


class SequentialModel(Model):
    """A trained sequence model, answering from numpy arrays cached at construction.

    One class serves the four recipes; ``meta["explore"]`` turns exploration on
    (User-Personalization only).
    """

    batches = True  # a batch shares one read of the item table (``_table_logits``)

    def __init__(
        self,
        net: SequentialNet,
        *,
        item_rows: EncodedRows,
        user_rows: EncodedRows,
        encoders: Mapping[str, FeatureEncoder],
        exploration: ExplorationStats | None,
        meta: Mapping[str, Any],
        knn: ItemKNN | None = None,
        created: npt.NDArray[np.int64] | None = None,
        affinity: SessionAffinity | None = None,
    ) -> None:
        import torch

        from pertinent.recipes.sequential import TorchRows

        self.net = net.cpu().eval()
        self.cfg: NetConfig = net.cfg
        self.n_items = self.cfg.n_items
        self.item_rows, self.user_rows = item_rows, user_rows
        self.encoders = dict(encoders)
        self.exploration = exploration
        self.meta = dict(meta)
        self.knn = knn
        # Per item, when it came to exist (``Query.time`` leaves out later ones).
        self.created = created
        self.affinity = affinity
        self.affinity_weight = float(self.meta.get("affinity_weight", 0.0)) if affinity else 0.0
        self.knn_weight = float(self.meta.get("knn_weight", 0.0)) if knn is not None else 0.0
        net.set_item_rows(TorchRows.of(item_rows, torch.device("cpu")))
        with torch.inference_mode():
            vec, bias = net.item_vectors()
        self._set_table(vec.numpy(), bias.numpy())
        state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
        # The encoder's inputs are built in numpy (``_encode``).
        self.bos: F32 = state["bos"].numpy()
        self.position: F32 = state["position.weight"].numpy()
        gap = state.get("gap.weight")
        self.gap: F32 | None = None if gap is None else gap.numpy()
        self.blocks = [
            {
                name: state[f"blocks.{i}.{name}"]
                for name in (
                    "ln1.weight",
                    "ln1.bias",
                    "qkv.weight",
                    "qkv.bias",
                    "out.weight",
                    "out.bias",
                    "ln2.weight",
                    "ln2.bias",
                    "ff1.weight",
                    "ff1.bias",
                    "ff2.weight",
                    "ff2.bias",
                )
            }  # fmt: skip
            for i in range(self.cfg.layers)
        ]
        for i, block in enumerate(self.blocks):
            if f"blocks.{i}.session_bias" in state:
                block["session_bias"] = state[f"blocks.{i}.session_bias"]
        self.ln_final = (state["ln_final.weight"], state["ln_final.bias"])
        self.user_bag = _Bag(state, "user_meta", self.encoders["user"])
        self.context_bag = _Bag(state, "context_meta", self.encoders["context"])
        self.uses_user_attributes = self.user_bag.active
        self.item_bag = _Bag(state, "item_meta", self.encoders["item"])
        self.cold_bias = float(state["cold_bias"])
        self._bonus: dict[float, tuple[torch.Tensor, torch.Tensor]] = {}
        self._unseen: torch.Tensor | None = None
        self.objective: F32 | None = None

    def _set_table(self, vectors: F32, bias: F32) -> None:
        """The item table, twice: rows ``[V, bias]`` for numpy's gathers (histories,
        ranking candidates) and OpenBLAS's batches, and a (d + 1, n) column block for
        MKL and for one or two queries elsewhere: a batch's logits are then one sgemm
        ``[q, 1] @ columns``, a single pass over the memory that bounds serving (on Intel,
        1.3 ms for eight 100k x 64 queries against 1.9 ms with the row block;
        ``table_product`` picks)."""
        import torch

        d = vectors.shape[1]
        table = np.zeros((vectors.shape[0], d + 1), dtype=np.float32)
        table[:, :d] = vectors
        table[:, d] = bias
        self._columns = torch.from_numpy(np.ascontiguousarray(table.T))
        self._table = table
        table.setflags(write=False)
        self.V = table[:, :d]
        self.bias = table[:, d]
        # Exploration scales its bonus by the spread of a query's logits; a fixed sample
        # of items estimates it at a fraction of a full pass.
        n = table.shape[0]
        self._spread_sample = (
            None
            if n <= _SPREAD_SAMPLE
            else torch.from_numpy(np.random.default_rng(0).choice(n, _SPREAD_SAMPLE))
        )

    # --- encoding -----------------------------------------------------------------------

    def _tokens(self, query: Query) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """``[BOS, known history items]`` and their gap buckets, the newest ``max_len``."""
        h = np.asarray(query.history, dtype=np.int64)
        times = query.history_times
        # Items added after training (``with_new_items``) have no token of their own.
        known = (h >= 0) & (h < self.cfg.n_items)
        h = h[known]
        tokens = np.concatenate(([self.cfg.bos], h))
        gaps = np.zeros(tokens.shape[0], dtype=np.int64)
        if times is not None and np.shape(times) == known.shape:
            gaps[1:] = gap_buckets(np.asarray(times, dtype=np.int64)[known])
        return tokens[-self.cfg.max_len :], gaps[-self.cfg.max_len :]

    def _encode(
        self,
        tokens: npt.NDArray[np.int64],
        length: npt.NDArray[np.int64],
        gaps: npt.NDArray[np.int64] | None = None,
    ) -> F32:
        """Final hidden state at the last real position of each right-padded row (B, T).

        The inputs and masks are built in numpy and the blocks run in torch: a request
        is a few dozen tokens, where a torch call's fixed cost (a boolean assignment, a
        ``where``, an ``arange``) outweighs its work. Built in torch, the whole encoding
        took 1.25 / 1.22 / 1.16 / 1.12x as long for 1 / 2 / 4 / 8 queries (the 100k-item
        bench model, interleaved in one process)."""
        import torch
        import torch.nn.functional as F

        cfg = self.cfg
        b, t = tokens.shape
        d, h = cfg.dim, cfg.heads
        last_np = length - 1
        is_pad = tokens == cfg.pad
        is_bos = tokens == cfg.bos
        x_np = self.V[np.where(is_pad | is_bos, 0, tokens)]  # (B, T, d), a fresh array
        x_np[is_bos] = self.bos
        x_np[is_pad] = 0.0
        if self.gap is not None and gaps is not None:
            x_np += self.gap[gaps]
        x_np += self.position[:t]
        same_np: npt.NDArray[np.float32] | None = None
        if cfg.session_bucket and gaps is not None:
            opened = np.cumsum(gaps >= cfg.session_bucket, axis=1)
            same_np = (opened[:, :, None] == opened[:, None, :]).astype(np.float32)
        seen_np = np.where(np.arange(t)[None, :] <= last_np[:, None], 0.0, -np.inf).astype(
            np.float32
        )
        rows_np = np.arange(b)
        with torch.inference_mode():
            x = torch.from_numpy(x_np)
            last = torch.from_numpy(last_np)
            rows = torch.from_numpy(rows_np)
            same = None if same_np is None else torch.from_numpy(same_np)[:, None]
            causal = None
            if same is not None and len(self.blocks) > 1:  # the last block needs none
                causal = _causal(t)
            for i, w in enumerate(self.blocks):
                y = F.layer_norm(x, (d,), w["ln1.weight"], w["ln1.bias"], LN_EPS)
                qkv = F.linear(y, w["qkv.weight"], w["qkv.bias"]).view(b, -1, 3, h, d // h)
                q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
                bias = w.get("session_bias")
                if i < len(self.blocks) - 1:
                    if same is None or causal is None or bias is None:
                        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                    else:
                        mask = same * bias[:, None, None] + causal
                        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
                else:
                    # Only the last real position's output is used: one query row each,
                    # attending to the positions up to it.
                    q = q[rows, :, last][:, :, None]
                    mask = torch.from_numpy(seen_np[:, None, None])  # (B, 1, 1, T)
                    if same_np is not None and bias is not None:
                        lane = torch.from_numpy(same_np[rows_np, last_np][:, None, None])
                        mask = mask + lane * bias[:, None, None]
                    o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
                    x = x[rows, last][:, None]
                o = o.transpose(1, 2).reshape(b, -1, d)
                x = x + F.linear(o, w["out.weight"], w["out.bias"])
                y = F.layer_norm(x, (d,), w["ln2.weight"], w["ln2.bias"], LN_EPS)
                y = F.gelu(F.linear(y, w["ff1.weight"], w["ff1.bias"]), approximate="tanh")
                x = x + F.linear(y, w["ff2.weight"], w["ff2.bias"])
            out: F32 = F.layer_norm(x[:, -1], (d,), *self.ln_final, LN_EPS).numpy()
        return out

    def _side(self, queries: Sequence[Query]) -> F32 | None:
        """User metadata + request context vectors, (B, d), or None when neither exists."""
        out: F32 | None = None
        if self.user_bag.active:
            rows = [self._user_row(q) for q in queries]
            vec = self.user_bag.embed(_stack(rows, self.encoders["user"].n_numeric))
            out = vec
        if self.context_bag.active and any(q.context for q in queries):
            enc = self.encoders["context"]
            rows = [enc.encode_raw(q.context) for q in queries]
            vec = self.context_bag.embed(_stack(rows, enc.n_numeric))
            out = vec if out is None else out + vec
        return out

    def _user_row(self, query: Query) -> EncodedRows:
        # Metadata sent after training (PutUsers) is the newer truth about the user.
        if query.user_attributes:
            return self.encoders["user"].encode_raw(query.user_attributes)
        if query.user is not None and 0 <= query.user < self.user_rows.n_rows:
            return self.user_rows.take(np.asarray([query.user], dtype=np.int64))
        return self.encoders["user"].encode_raw(query.user_attributes)

    def query_vectors(self, queries: Sequence[Query]) -> F32:
        """The query vector of each request, (B, d)."""
        seqs = [self._tokens(q) for q in queries]
        length = np.asarray([s.shape[0] for s, _ in seqs], dtype=np.int64)
        tokens = np.full((len(seqs), int(length.max())), self.cfg.pad, dtype=np.int64)
        gaps = np.zeros(tokens.shape, dtype=np.int64)
        for row, (s, g) in enumerate(seqs):
            tokens[row, : s.shape[0]] = s
            gaps[row, : g.shape[0]] = g
        out = self._encode(tokens, length, gaps)
        side = self._side(queries)
        return out if side is None else out + side

    def _logits(self, queries: Sequence[Query]) -> F32:
        import torch

        q = self.query_vectors(queries)
        d = q.shape[1]
        q1 = np.empty((q.shape[0], d + 1), dtype=np.float32)
        q1[:, :d] = q
        q1[:, d] = 1.0
        logits = self._table_logits(q1)
        # The blend and the bonus touch few items per row: torch's index_add_ does that
        # in place without the GIL, where numpy's fancy indexing held it (the scoring
        # threads and the event loop share it).
        view = torch.from_numpy(logits)
        if self.knn is not None and self.knn_weight != 0.0:
            histories = [query.history for query in queries]
            flat, values = self.knn.contributions(histories, self.knn_weight, logits.shape[1])
            view.view(-1).index_add_(0, torch.from_numpy(flat), torch.from_numpy(values))
        if self.affinity is not None and self.affinity_weight != 0.0:
            histories = [query.history for query in queries]
            times = [query.history_times for query in queries]
            flat, values = self.affinity.contributions(
                histories, times, self.affinity_weight, logits.shape[1]
            )
            view.view(-1).index_add_(0, torch.from_numpy(flat), torch.from_numpy(values))
        if self.exploration is not None and bool(self.meta.get("explore")):
            self._explore(view, queries)
        for row, query in enumerate(queries):
            existing = self._existing(query)
            if existing is not None:
                view[row].masked_fill_(torch.from_numpy(~existing), -np.inf)
        return logits

    def _existing(self, query: Query) -> BoolArray | None:
        """The items created by the query's time; None when every item is (no time, as
        serving asks, or no creation times)."""
        if self.created is None or query.time is None:
            return None
        out: BoolArray = self.created <= query.time
        return out

    def _table_logits(self, q1: F32) -> F32:
        """``q1 @ [V, bias].T``: one read of the item table for all rows. Reading the
        table bounds this where the BLAS is good at the shape (``table_product``):
        eight queries then cost little more than one."""
        return table_product(self._table, self._columns, q1)

    def _explore(self, logits: torch.Tensor, queries: Sequence[Query]) -> None:
        """Adds each query's exploration bonus to its row of ``logits`` (B, n), in place:
        one pass for all the rows that share a campaign's configuration."""
        groups: dict[Exploration, list[int]] = {}
        for row, query in enumerate(queries):
            if query.exploration is not None:
                groups.setdefault(query.exploration, []).append(row)
        for exp, rows in groups.items():
            if len(rows) == len(queries):
                self._explore_block(logits, exp)
            else:
                for row in rows:
                    self._explore_block(logits[row : row + 1], exp)

    def _explore_block(self, block: torch.Tensor, exp: Exploration) -> None:
        import torch

        assert self.exploration is not None
        if exp.weight <= 0.0:
            # "No exploration: recommendations from current data" (spec §4.12): an item
            # nobody interacted with only ever reaches a list by being explored.
            if self._unseen is None:
                self._unseen = torch.from_numpy(self.exploration.interactions == 0)
            if bool(self._unseen.any()):
                floor = block.min(dim=1, keepdim=True).values - 1.0
                block.copy_(torch.where(self._unseen, floor, block))
            return
        w = float(exp.weight)
        factor = _MAX_EXPLORATION_FACTOR if w >= 1.0 else min(w / (1.0 - w), 1e4)
        sample = (
            block if self._spread_sample is None else block.index_select(1, self._spread_sample)
        )
        # Two plain passes: torch's std (Welford) took 0.6 ms for 8 x 8192.
        centred = sample - sample.mean(dim=1, keepdim=True)
        spread = (centred * centred).mean(dim=1).sqrt()
        spread = torch.where(spread > 0, spread, 1.0)
        cutoff = float(exp.item_age_cutoff_days)
        bonus = self._bonus.get(cutoff)
        if bonus is None:
            full = self.exploration.bonus(cutoff)
            young = np.flatnonzero(full)
            bonus = self._bonus[cutoff] = (torch.from_numpy(young), torch.from_numpy(full[young]))
        # Only explorable (young, little-seen) items get a bonus: touch just those.
        explorable, amount = bonus
        scale = (spread * (factor * _EXPLORATION_SIGMAS)).tolist()
        # Row by row: a contiguous index_add_ each took 0.20 ms for eight rows, where one
        # along the columns of the block took 0.34.
        for row, s in enumerate(scale):
            block[row].index_add_(0, explorable, amount, alpha=s)

    def apply_objective(self, boost: F32) -> None:
        """Add a business objective to each item's bias (optimizationObjective)."""
        self.objective = np.asarray(boost, dtype=np.float32)
        self._set_table(np.array(self.V), np.array(self.bias) + self.objective)

    def with_new_items(self, attributes: Sequence[Mapping[str, str]]) -> SequentialModel:
        """A copy that also knows items added after training (PutItems), appended as
        indices ``n_items, n_items + 1, ...``: scored by their metadata alone with the cold
        bias, as never-interacted catalogue items are, and brand-new for exploration."""
        if not attributes:
            return self
        n_new = len(attributes)
        encoder = self.encoders["item"]
        vec = np.zeros((n_new, self.V.shape[1]), dtype=np.float32)
        if self.item_bag.active:
            rows = [encoder.encode_raw(a) for a in attributes]
            vec = self.item_bag.embed(_stack(rows, encoder.n_numeric))
        new = copy.copy(self)
        new._set_table(
            np.vstack([self.V, vec]),
            np.concatenate([self.bias, np.full(n_new, self.cold_bias, dtype=np.float32)]),
        )
        new._bonus, new._unseen = {}, None
        new.n_items = self.n_items + n_new
        if self.created is not None:
            # Serving asks as of now (no ``Query.time``): a new item is simply current.
            always = np.full(n_new, np.iinfo(np.int64).min, dtype=np.int64)
            new.created = np.concatenate([self.created, always])
        if self.exploration is not None:
            zeros = np.zeros(n_new, dtype=np.float32)
            ex = self.exploration
            new.exploration = ExplorationStats(
                np.concatenate([ex.age_days, zeros]),
                np.concatenate([ex.interactions, zeros]),
                np.concatenate([ex.impressions, zeros]),
            )
        return new

    # --- the Model interface ----------------------------------------------------------

    def recommend(self, query: Query, n: int, allowed: BoolArray | None = None) -> Ranked:
        return self.recommend_many([query], [n], [allowed])[0]

    def recommend_many(
        self, queries: Sequence[Query], n: Sequence[int], allowed: Sequence[BoolArray | None]
    ) -> list[Ranked]:
        # Several queries share one pass over the item table (a matmul instead of a
        # matvec per query): serving is bound by reading the table, not by arithmetic.
        import torch

        logits = torch.from_numpy(self._logits(queries))
        # Items not created by a query's time are not offered.
        existing = [self._existing(q) for q in queries]
        allowed = [
            a if e is None else e if a is None else e & a
            for e, a in zip(existing, allowed, strict=True)
        ]
        # Softmax over the whole catalogue, as Personalize's UP scores (spec §5.1).
        log_z = log_sum_exp(logits)
        for row, mask in enumerate(allowed):
            if mask is not None:
                logits[row].masked_fill_(torch.from_numpy(~mask), float("-inf"))
        want = [min(k, self.n_items if a is None else int(np.count_nonzero(a))) for k, a in
                zip(n, allowed, strict=True)]  # fmt: skip
        # One more than asked: a tie across the cut means the top set is not unique,
        # and ``top_n`` settles it (lower index first) so the answer never depends on
        # torch's order among equals.
        depth = min(max(want, default=0) + 1, self.n_items)
        out: list[Ranked] = []
        if depth == 0:
            return [_empty() for _ in want]
        values, index = top_k(logits, depth)
        # The top logits minus log Z are the scores: one pass for the batch.
        scores = torch.exp(values - log_z[:, None]).numpy()
        top_values, top_index = values.numpy(), index.numpy()
        for row, k in enumerate(want):
            if k <= 0:
                out.append(_empty())
                continue
            v = top_values[row]
            if k < depth and v[k - 1] == v[k]:
                items = top_n(logits[row].numpy(), k)
                row_scores = torch.exp(logits[row, torch.from_numpy(items)] - log_z[row]).numpy()
                out.append(Ranked(items=items, scores=row_scores))
                continue
            items = top_index[row, :k].astype(np.int32)
            row_scores = scores[row, :k]
            if np.any(v[1:k] == v[: k - 1]):  # equal logits inside the list: lower index first
                order = np.lexsort((items, -v[:k]))
                items, row_scores = items[order], row_scores[order]
            out.append(Ranked(items=items, scores=np.ascontiguousarray(row_scores)))
        return out

    def rank(self, query: Query, candidates: IntArray) -> FloatArray:
        cand = np.asarray(candidates, dtype=np.int64)
        known = (cand >= 0) & (cand < self.n_items)
        existing = self._existing(query)
        if existing is not None:  # not created by the query's time: out, like an unknown
            known[known] &= existing[cand[known]]
        out = np.zeros(cand.shape[0], dtype=np.float32)
        if not known.any():
            return out
        q = self.query_vectors([query])[0]
        idx = cand[known]
        logits = self.V[idx] @ q + self.bias[idx]
        if self.knn is not None:
            knn = self.knn.scores([query.history])[0]
            trained = idx < knn.shape[0]
            logits[trained] += np.float32(self.knn_weight) * knn[idx[trained]]
        if self.affinity is not None and self.affinity_weight != 0.0:
            lift = self.affinity.lift([query.history], [query.history_times])
            trained = idx < lift.shape[1]
            row = np.asarray(lift[0, idx[trained]].todense()).ravel()
            logits[trained] += np.float32(self.affinity_weight) * row
        # Softmax over the known candidates only (spec §5.2); unknown ones score 0.
        e = np.exp(logits.astype(np.float64) - logits.max())
        out[known] = (e / e.sum()).astype(np.float32)
        return out

    def score_items(self, queries: Sequence[Query]) -> FloatArray:
        if not queries:
            return np.empty((0, self.n_items), dtype=np.float32)
        return self._logits(queries)

    # --- persistence -----------------------------------------------------------------

    def save(self, path: Path) -> None:
        import torch

        torch.save(self.net.state_dict(), path / "weights.pt")
        arrays: dict[str, npt.NDArray[Any]] = {
            **self.item_rows.arrays("item"),
            **self.user_rows.arrays("user"),
        }
        if self.exploration is not None:
            arrays["age_days"] = self.exploration.age_days
            arrays["interactions"] = self.exploration.interactions
            arrays["impressions"] = self.exploration.impressions
        if self.knn is not None:
            arrays.update(self.knn.arrays())
        if self.objective is not None:
            arrays["objective"] = self.objective
        if self.created is not None:
            arrays["created"] = self.created
        if self.affinity is not None:
            arrays.update(self.affinity.arrays())
        np.savez(path / "arrays.npz", allow_pickle=False, **arrays)
        doc = {
            "format": _FORMAT,
            "version": _VERSION,
            "n_items": self.n_items,
            "net": self.cfg.__dict__,
            "encoders": {k: e.to_json() for k, e in self.encoders.items()},
            "meta": self.meta,
        }
        (path / "model.json").write_text(json.dumps(doc) + "\n")

    @classmethod
    def load(cls, path: Path) -> SequentialModel:
        import torch

        from pertinent.recipes.sequential import NetConfig, SequentialNet

        doc = json.loads((path / "model.json").read_text())
        if doc.get("format") != _FORMAT or doc.get("version") != _VERSION:
            raise ValueError(f"{path} does not hold a {_FORMAT} v{_VERSION} model")
        net = SequentialNet(NetConfig(**doc["net"]))
        state = torch.load(path / "weights.pt", weights_only=True, map_location="cpu")
        net.load_state_dict(state)
        with np.load(path / "arrays.npz", allow_pickle=False) as arrays:
            knn = None
            if "knn_indptr" in arrays.files:
                knn = ItemKNN.from_arrays(arrays, int(doc["n_items"]))
            exploration = None
            if "age_days" in arrays.files:
                exploration = ExplorationStats(
                    arrays["age_days"], arrays["interactions"], arrays["impressions"]
                )
            model = cls(
                net,
                item_rows=EncodedRows.from_arrays(arrays, "item"),
                user_rows=EncodedRows.from_arrays(arrays, "user"),
                encoders={k: FeatureEncoder.from_json(v) for k, v in doc["encoders"].items()},
                exploration=exploration,
                meta=doc["meta"],
                knn=knn,
                created=arrays["created"] if "created" in arrays.files else None,
                affinity=SessionAffinity.from_arrays(arrays),
            )
            if "objective" in arrays.files:
                model.apply_objective(arrays["objective"])
            return model


@functools.lru_cache(maxsize=64)
def _causal(t: int) -> torch.Tensor:
    """``sequential.causal_mask`` on the CPU, built once per length (only ever read)."""
    import torch

    from pertinent.recipes.sequential import causal_mask

    return causal_mask(t, torch.device("cpu"))


def _empty() -> Ranked:
    return Ranked(np.empty(0, dtype=np.int32), np.empty(0, dtype=np.float32))


def _stack(rows: Sequence[EncodedRows], n_numeric: int) -> EncodedRows:
    lengths = np.asarray([r.codes.shape[0] for r in rows], dtype=np.int64)
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return EncodedRows(
        offsets=offsets,
        codes=np.concatenate([r.codes for r in rows]),
        weights=np.concatenate([r.weights for r in rows]),
        numeric=np.concatenate([r.numeric for r in rows]).reshape(len(rows), n_numeric),
    )
