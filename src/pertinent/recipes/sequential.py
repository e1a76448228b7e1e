"""The neural core of the user-personalization and personalized-ranking recipes.

A SASRec-style causal transformer over the user's recent history ("SASRec+" in
spec/quality.md: softmax cross-entropy over the catalogue rather than one sampled
negative), extended with metadata:

* **Items.** An item's vector is its ID embedding plus the embedding of its metadata
  (``_features``: a bag of categorical codes and numeric bins, plus a linear map of the
  standardised numerics). The same vectors embed the history (input) and score the
  candidates (output, tied), so metadata learnt from warm items carries over to cold
  ones. Items with no training interaction have their ID part masked to zero: they are
  scored through their metadata alone, never through an untrained random vector.
* **Sequence.** Tokens ``[BOS, i_1, ..., i_L]`` (the newest ``max_len`` of them),
  right-padded, learned positions counted from the window's first token, pre-LayerNorm
  blocks, causal self-attention (padding sits after every real token, so the causal
  mask alone hides it). ``BOS`` lets an empty history be scored: the model learns
  "first event" preferences, i.e. popularity, shifted by user metadata and context.
  (Positions counted from the *end* of a left-padded window, as in SASRec, put BOS
  and short histories at positions training never shows them at.)
* **Time.** Each token also carries the embedding of its gap to the event before it
  (log2 buckets of seconds, ``_inference.gap_buckets``), so attention can tell the
  current session from earlier ones, as the HRNN recipes do with explicit sessions
  (LOO NDCG@10 at seed 0: generated data 0.2428 → 0.2504, Diginetica 0.0465 → 0.0486),
  and attention adds a learnt bias between tokens of one session (a gap of 34 min or
  more opens the next, ``_inference.SESSION_BUCKET``), so one block can pool the
  current session's events, which a token's own gap does not delimit.
* **Query vector.** ``LN(h_t) + user(u) + context(c_{t+1})``: user metadata and the
  *target* event's context (what the request carries at serving time) shift the
  prediction; logits are ``q · v_i + b_i``.

Training (``train``) covers every user's sequence with non-overlapping windows of
``max_len`` pairs counted back from the newest (so the newest targets see the longest
context, as at serving), predicts every position (each target once per epoch), and
minimises a weighted cross-entropy: over the whole catalogue for small catalogues,
else a sampled softmax with log-Q correction (in-batch items plus ``negatives`` drawn
from count^0.75). The loss adds, at ``future_weight``, the mean cross-entropy of the
next ``horizon`` targets after the next one (a multi-horizon objective): a pure
next-item model spends its whole distribution on one guess and ranks the rest of
what the user will want arbitrarily; Personalize's metrics, and most uses, reward
getting the next few right. (One later target instead of eight scores a little higher
on leave-last-out, which asks for the next event only, but a user who has seen all of
a block no longer gets that block back: ``test_known_answer`` fails.) Impressions
(shown, not chosen at that event) join each row's softmax as extra, up-weighted
negatives. Rows are weighted by the caller (event
weight × recency). Early stopping watches NDCG@10 on an internal leave-last-out split
and keeps the best epoch; items never seen in training get the bias prior of
``set_cold_bias``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from pertinent.recipes._features import EncodedRows
from pertinent.recipes._inference import LN_EPS
from pertinent.recipes._softmax import catalogue_loss
from pertinent.recipes._stopping import Patience

__all__ = ["NetConfig", "SequentialNet", "TrainConfig", "TrainingSet", "Windows", "train"]

Int64Array = npt.NDArray[np.int64]
Float32Array = npt.NDArray[np.float32]

# Batches between two looks at ``stop`` inside an epoch (it may read the catalog).
STOP_CHECK_BATCHES = 64
# Extra weight of an impressed-but-not-chosen item in its row's softmax denominator.
IMPRESSION_WEIGHT = 4.0
# At most this many impressions of one row join its softmax (a random subset if more).
MAX_IMPRESSIONS = 32
# The same-session attention bias a fit starts from (``Block``). LOO NDCG@10, without the
# bias → starting at 0 → at 2: generated seed 1 0.2477 → 0.2480 → 0.2563 (seeds 0 / 2 at
# 2: 0.2574 / 0.2581; at 3: 0.2567 / 0.2578); MovieLens-100K seed 0 0.1219 → 0.1243;
# Diginetica 0.0637 → 0.0635 (its item-kNN blend dominates).
SESSION_BIAS_INIT = 2.0


@dataclass(frozen=True)
class NetConfig:
    n_items: int
    dim: int
    max_len: int
    layers: int
    heads: int
    dropout: float
    item_codes: int = 0
    item_numeric: int = 0
    user_codes: int = 0
    user_numeric: int = 0
    context_codes: int = 0
    context_numeric: int = 0
    ffn_mult: int = 2
    # Time-gap buckets (``_inference.gap_buckets``); 0: a model trained before gaps.
    gap_buckets: int = 0
    # The gap bucket from which a token opens a new session, for the attention's
    # same-session bias (``session_mask``); 0: no bias (a model trained before it).
    session_bucket: int = 0

    @property
    def bos(self) -> int:
        return self.n_items

    @property
    def pad(self) -> int:
        return self.n_items + 1


class BagEmbedder(nn.Module):
    """Sum of code embeddings (weighted) plus a linear map of the numeric columns."""

    def __init__(self, n_codes: int, n_numeric: int, dim: int) -> None:
        super().__init__()
        self.n_codes, self.n_numeric = n_codes, n_numeric
        self.bag = nn.EmbeddingBag(max(n_codes, 1), dim, mode="sum")
        nn.init.normal_(self.bag.weight, std=0.02)
        self.linear = nn.Linear(max(n_numeric, 1), dim, bias=False)
        nn.init.normal_(self.linear.weight, std=0.02)

    @property
    def active(self) -> bool:
        return self.n_codes > 0 or self.n_numeric > 0

    def forward(self, rows: TorchRows) -> torch.Tensor:
        out = self.bag(rows.codes, rows.offsets[:-1], per_sample_weights=rows.weights)
        if self.n_numeric:
            out = out + self.linear(rows.numeric)
        result: torch.Tensor = out
        return result


@dataclass(frozen=True)
class TorchRows:
    """``EncodedRows`` on a device."""

    offsets: torch.Tensor
    codes: torch.Tensor
    weights: torch.Tensor
    numeric: torch.Tensor

    @classmethod
    def of(cls, rows: EncodedRows, device: torch.device) -> TorchRows:
        return cls(
            offsets=torch.from_numpy(rows.offsets).to(device),
            codes=torch.from_numpy(rows.codes).to(device),
            weights=torch.from_numpy(rows.weights).to(device),
            numeric=torch.from_numpy(rows.numeric).to(device),
        )

    def take(self, idx: torch.Tensor) -> TorchRows:
        """Rows ``idx`` (any order), as a CSR gather on the device."""
        starts = self.offsets[idx]
        lengths = self.offsets[idx + 1] - starts
        offsets = torch.zeros(idx.shape[0] + 1, dtype=torch.int64, device=idx.device)
        torch.cumsum(lengths, 0, out=offsets[1:])
        flat = torch.repeat_interleave(starts - offsets[:-1], lengths) + torch.arange(
            int(offsets[-1]), device=idx.device
        )
        return TorchRows(offsets, self.codes[flat], self.weights[flat], self.numeric[idx])


class Block(nn.Module):
    """Pre-LayerNorm transformer block with causal self-attention.

    With ``sessions``, each head learns a bias added to its attention logits between
    tokens of the same session (``session_mask``): one block cannot find where the
    current session began from each token's gap alone (that needs "no long gap between
    here and there"), and the session is what the next event most depends on.
    The bias starts at ``SESSION_BIAS_INIT``, not 0: from 0 a fit moved it to 0.15 and
    gained nothing.
    """

    session_bias: nn.Parameter | None

    def __init__(
        self, dim: int, heads: int, ffn_mult: int, dropout: float, sessions: bool = False
    ) -> None:
        super().__init__()
        self.heads = heads
        self.session_bias = (
            nn.Parameter(torch.full((heads,), SESSION_BIAS_INIT)) if sessions else None
        )
        self.ln1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.ff1 = nn.Linear(dim, ffn_mult * dim)
        self.ff2 = nn.Linear(ffn_mult * dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, same: torch.Tensor | None = None) -> torch.Tensor:
        b, t, d = x.shape
        h = self.heads
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, h, d // h).permute(2, 0, 3, 1, 4)
        p = self.dropout if self.training else 0.0
        # Padding is on the right, so the causal mask alone keeps real tokens off it.
        if same is None or self.session_bias is None:
            att = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        else:
            mask = same * self.session_bias[:, None, None] + causal_mask(t, x.device)
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.to(q.dtype), dropout_p=p)
        x = x + F.dropout(self.out(att.transpose(1, 2).reshape(b, t, d)), p, self.training)
        y = self.ff2(F.gelu(self.ff1(self.ln2(x)), approximate="tanh"))
        return x + F.dropout(y, p, self.training)


def session_mask(gaps: torch.Tensor, bucket: int) -> torch.Tensor:
    """(B, T, T) bool: whether tokens t (rows) and s (columns) of each right-padded
    window are in the same session, a session opening at every gap bucket ≥ ``bucket``.
    A window's sessions are numbered as they open, so "same number" is "same session"."""
    opened = torch.cumsum((gaps >= bucket).to(torch.int32), dim=1)
    return opened[:, :, None] == opened[:, None, :]


def causal_mask(t: int, device: torch.device) -> torch.Tensor:
    """(T, T) additive causal mask: 0 on and below the diagonal, -inf above."""
    return torch.full((t, t), float("-inf"), device=device).triu(1)


class SequentialNet(nn.Module):
    has_id: torch.Tensor
    cold_bias: torch.Tensor

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.item_id = nn.Embedding(cfg.n_items, d)
        nn.init.normal_(self.item_id.weight, std=0.02)
        self.item_bias = nn.Parameter(torch.zeros(cfg.n_items))
        self.item_meta = BagEmbedder(cfg.item_codes, cfg.item_numeric, d)
        self.user_meta = BagEmbedder(cfg.user_codes, cfg.user_numeric, d)
        self.context_meta = BagEmbedder(cfg.context_codes, cfg.context_numeric, d)
        self.bos = nn.Parameter(torch.zeros(d))
        self.position = nn.Embedding(cfg.max_len, d)
        nn.init.normal_(self.position.weight, std=0.02)
        self.gap: nn.Embedding | None = None
        if cfg.gap_buckets:
            self.gap = nn.Embedding(cfg.gap_buckets, d)
            nn.init.normal_(self.gap.weight, std=0.02)
        self.blocks = nn.ModuleList(
            Block(d, cfg.heads, cfg.ffn_mult, cfg.dropout, cfg.session_bucket > 0)
            for _ in range(cfg.layers)
        )
        self.ln_final = nn.LayerNorm(d, eps=LN_EPS)
        # 1 for items seen in training: the others keep no ID part (metadata only).
        self.register_buffer("has_id", torch.zeros(cfg.n_items))
        # The bias of items without interactions (set after training: see cold_bias).
        self.register_buffer("cold_bias", torch.zeros(()))
        self.item_rows: TorchRows | None = None

    def set_item_rows(self, rows: TorchRows | None) -> None:
        self.item_rows = rows

    def item_vectors(self, idx: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(vectors, biases) of items ``idx`` (all when None)."""
        has_id, cold = self.has_id, self.cold_bias
        if idx is None:
            vec = self.item_id.weight * has_id[:, None]
            bias = self.item_bias * has_id + cold * (1.0 - has_id)
            if self.item_meta.active and self.item_rows is not None:
                vec = vec + self.item_meta(self.item_rows)
            return vec, bias
        mask = has_id[idx]
        vec = self.item_id(idx) * mask[:, None]
        bias = self.item_bias[idx] * mask + cold * (1.0 - mask)
        if self.item_meta.active and self.item_rows is not None:
            vec = vec + self.item_meta(self.item_rows.take(idx))
        return vec, bias

    def encode(
        self,
        tokens: torch.Tensor,
        table: torch.Tensor,
        local: torch.Tensor | None = None,
        gaps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Hidden states (B, T, d) of right-padded token windows (B, T), T ≤ max_len.

        ``table`` holds item vectors; ``local`` (same shape as ``tokens``) indexes the
        tokens' items in it when it holds a subset (a sampled-softmax step), else the
        item ids index it directly. ``gaps`` (same shape) are the tokens' time-gap
        buckets.
        """
        cfg = self.cfg
        t = tokens.shape[1]
        is_pad = tokens == cfg.pad
        is_bos = tokens == cfg.bos
        index = tokens if local is None else local
        index = torch.where(is_pad | is_bos, torch.zeros_like(index), index)
        x = table[index]
        x = torch.where(is_bos[..., None], self.bos.expand_as(x), x)
        x = x.masked_fill(is_pad[..., None], 0.0)
        if self.gap is not None and gaps is not None:
            x = x + self.gap(gaps)
        pos = torch.arange(t, device=tokens.device)
        x = F.dropout(x + self.position(pos), self.cfg.dropout, self.training)
        same = None
        if cfg.session_bucket and gaps is not None:
            same = session_mask(gaps, cfg.session_bucket).to(x.dtype)[:, None]
        for block in self.blocks:
            x = block(x, same)
        out: torch.Tensor = self.ln_final(x)
        return out

    def side(self, rows: TorchRows | None, module: BagEmbedder) -> torch.Tensor | None:
        if rows is None or not module.active:
            return None
        out: torch.Tensor = module(rows)
        return out


# --- training data -----------------------------------------------------------------------


@dataclass(frozen=True)
class Windows:
    """Training windows: ``tokens`` (W, T) right-padded inputs, ``rows`` (W, T) the
    interaction row each position predicts (-1 at padding), ``user`` (W,), ``gaps``
    (W, T) each input token's time-gap bucket (0 at BOS and padding)."""

    tokens: Int64Array
    rows: Int64Array
    user: Int64Array
    length: Int64Array  # real positions per window
    gaps: Int64Array


def build_windows(
    user: Int64Array,
    item: Int64Array,
    keep: npt.NDArray[np.bool_],
    n_items: int,
    max_len: int,
    row_gap: Int64Array | None = None,
) -> Windows:
    """Windows over the rows ``keep`` (grouped by user, oldest first).

    User ``u`` with rows ``r_1..r_L`` gives pairs (input, target row): (BOS, r_1),
    (i_1, r_2), ..., (i_{L-1}, r_L). Pairs are cut into windows of ``max_len`` counted
    back from the newest, so the newest targets see the longest context, as at serving.
    ``row_gap`` (per interaction row, its gap bucket) gives each input token its gap.
    """
    rows = np.flatnonzero(keep).astype(np.int64)
    u = user[rows]
    first = np.ones(rows.shape[0], dtype=bool)
    first[1:] = u[1:] != u[:-1]
    prev_item = np.empty(rows.shape[0], dtype=np.int64)
    prev_item[0] = n_items
    prev_item[1:] = item[rows[:-1]]
    prev_item[first] = n_items  # BOS
    prev_gap = np.zeros(rows.shape[0], dtype=np.int64)
    if row_gap is not None:
        prev_gap[1:] = row_gap[rows[:-1]]
        prev_gap[first] = 0
    # Position of each pair counted back from its user's newest pair.
    group_start = np.flatnonzero(first)
    counts = np.diff(np.append(group_start, rows.shape[0]))
    index_in_user = np.arange(rows.shape[0]) - np.repeat(group_start, counts)
    back = np.repeat(counts, counts) - 1 - index_in_user
    window_in_user = back // max_len
    windows_per_user = (counts + max_len - 1) // max_len
    window_base = np.zeros(counts.shape[0], dtype=np.int64)
    np.cumsum(windows_per_user[:-1], out=window_base[1:])
    # Windows are numbered oldest first inside a user; each is right-padded, so its
    # first pair sits at position 0 whatever the window (BOS too: the oldest window).
    oldest_first = np.repeat(windows_per_user, counts) - 1 - window_in_user
    window = np.repeat(window_base, counts) + oldest_first
    length_of_user = np.repeat(counts, counts)
    window_start = np.maximum(length_of_user - (window_in_user + 1) * max_len, 0)
    slot = index_in_user - window_start
    n_windows = int(windows_per_user.sum())
    tokens = np.full((n_windows, max_len), n_items + 1, dtype=np.int64)
    target_rows = np.full((n_windows, max_len), -1, dtype=np.int64)
    tokens[window, slot] = prev_item
    target_rows[window, slot] = rows
    gaps = np.zeros((n_windows, max_len), dtype=np.int64)
    gaps[window, slot] = prev_gap
    owner = np.zeros(n_windows, dtype=np.int64)
    owner[window] = u
    length = np.bincount(window, minlength=n_windows).astype(np.int64)
    return Windows(tokens, target_rows, owner, length, gaps)


@dataclass(frozen=True)
class TrainingSet:
    """Everything ``train`` needs, as arrays indexed by interaction row."""

    windows: Windows
    item: Int64Array  # target item per row
    weight: Float32Array  # loss weight per row
    impressions: tuple[Int64Array, Int64Array] | None  # CSR per row
    context: EncodedRows | None  # per row
    users: EncodedRows | None  # per user
    items: EncodedRows | None  # per item
    popularity: Float32Array  # per item, training counts (sampling proposal)
    val_tokens: Int64Array  # (V, T) validation inputs, right-padded
    val_gaps: Int64Array  # (V, T) their gap buckets
    val_length: Int64Array  # real tokens per validation row
    val_users: Int64Array
    val_rows: Int64Array  # the held-out interaction rows (their context, their item)
    val_target: Int64Array
    val_seen: tuple[Int64Array, Int64Array]  # CSR of items to exclude per validation row
    # When items carry creation times: each item's (``created``), each row's time
    # (``row_time``) and each validation query's (``val_time``, its newest input's).
    # An item created after a row's time is not in that row's softmax.
    created: Int64Array | None = None
    row_time: Int64Array | None = None
    val_time: Int64Array | None = None


@dataclass(frozen=True)
class TrainConfig:
    max_epochs: int
    patience: int
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    negatives: int = 0  # 0: full softmax; else sampled softmax with this many negatives
    horizon: int = 0  # later targets that also count (multi-horizon objective)
    future_weight: float = 0.0
    seed: int = 0
    bf16: bool = False  # matrix products in bfloat16 (``_torch.fast_bfloat16``)


def _batches(w: Windows, batch_size: int, rng: np.random.Generator) -> list[Int64Array]:
    """Shuffled batches of windows of similar length (less padding to compute on)."""
    order = rng.permutation(w.tokens.shape[0])
    order = order[np.argsort(w.length[order] // 4, kind="stable")]
    batches = [order[i : i + batch_size] for i in range(0, order.shape[0], batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _rows_or_none(rows: EncodedRows | None, device: torch.device) -> TorchRows | None:
    return None if rows is None else TorchRows.of(rows, device)


def train(
    net: SequentialNet,
    data: TrainingSet,
    cfg: TrainConfig,
    device: torch.device,
    stop: Callable[[], bool],
    log: Callable[[str], None] | None = None,
) -> list[float]:
    """Fit ``net`` in place, keep its best epoch; returns each epoch's validation NDCG@10."""
    rng = np.random.default_rng(cfg.seed)
    net.to(device)
    net.set_item_rows(_rows_or_none(data.items, device))
    step = _Step(net, data, cfg, device)
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, p in net.named_parameters():
        (no_decay if p.ndim < 2 or "ln" in name else decay).append(p)
    groups: list[dict[str, Any]] = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay},
    ]
    optim = torch.optim.AdamW(
        groups,
        lr=cfg.lr,
        weight_decay=0.0,
        foreach=True,
    )
    has_val = data.val_tokens.shape[0] > 0
    best_state = _snapshot(net)
    patience = Patience.above_popularity(
        cfg.patience, data.popularity, data.val_target, data.val_seen, log
    )
    curve: list[float] = []
    for epoch in range(cfg.max_epochs):
        if stop():
            break
        net.train()
        total, count = 0.0, 0
        stopped = False
        for done, batch in enumerate(_batches(data.windows, cfg.batch_size, rng)):
            # A long epoch also stops part-way (time cap, StopSolutionVersionCreation);
            # the part done is evaluated and kept if it is the best so far.
            if done % STOP_CHECK_BATCHES == STOP_CHECK_BATCHES - 1 and stop():
                stopped = True
                break
            loss, n = step.loss(batch, rng)
            optim.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optim.step()
            total += float(loss.detach()) * n
            count += n
        # Without a validation split the newest epoch is the model (-epoch ranks them).
        score = evaluate(net, data, device, step.users, step.context)[0] if has_val else -epoch
        curve.append(score)
        if log is not None:
            log(f"epoch {epoch + 1}: loss {total / max(count, 1):.4f} val ndcg@10 {score:.4f}")
        improved, give_up = patience.update(score)
        if improved or not has_val:
            best_state = _snapshot(net)
        if give_up:
            break
        if stopped:
            break
    net.load_state_dict(best_state)
    set_cold_bias(net)
    return curve


def set_cold_bias(net: SequentialNet) -> None:
    """Items nobody interacted with get the bias of the least popular tenth of the others.

    Training never scores them (they are nobody's answer), so their level is not
    learnt; an empirical prior — "as likely as the least popular items" — keeps a
    metadata-less cold item from floating above relevant ones, while its metadata can
    still lift it when it matches the user.
    """
    warm = net.has_id > 0
    if bool(warm.any()):
        with torch.no_grad():
            net.cold_bias.fill_(float(torch.quantile(net.item_bias[warm].float(), 0.1)))


class _Step:
    """The loss of one batch of windows (device-side copies of the training arrays)."""

    def __init__(
        self, net: SequentialNet, data: TrainingSet, cfg: TrainConfig, device: torch.device
    ) -> None:
        self.net, self.data, self.cfg, self.device = net, data, cfg, device
        self.context = _rows_or_none(data.context, device)
        self.users = _rows_or_none(data.users, device)
        self.item = torch.from_numpy(data.item).to(device)
        self.weight = torch.from_numpy(data.weight).to(device)
        self.n_items = net.cfg.n_items
        self.sampled = 0 < cfg.negatives < self.n_items
        # Smoothed popularity (count^0.75, word2vec's choice) proposes negatives: hard
        # enough, and the tail still gets drawn; log Q removes the bias it brings.
        q = np.power(data.popularity.astype(np.float64), 0.75)
        q = q / max(q.sum(), 1e-12)
        self.proposal = torch.from_numpy(q.astype(np.float32)).to(device)
        # log(K q_j), the expected draws of j: sum_j exp(s_j) / (K q_j) over the sample
        # estimates the whole catalogue's partition function, so the corrected logits
        # and the (uncorrected) impression logits below share one scale.
        expected = np.maximum(q * max(cfg.negatives, 1), 1e-12)
        self.log_q = torch.from_numpy(np.log(expected).astype(np.float32)).to(device)
        self.cold = torch.from_numpy(data.popularity <= 0).to(device)
        self.created = None if data.created is None else torch.from_numpy(data.created).to(device)
        self.row_time = (
            None if data.row_time is None else torch.from_numpy(data.row_time).to(device)
        )
        self.gen = torch.Generator(device=device)
        self.gen.manual_seed(cfg.seed)

    def _low_precision(self) -> torch.autocast:
        """The transformer's products in bfloat16 when ``bf16`` (weights stay float32)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16)

    def loss(self, batch: Int64Array, rng: np.random.Generator) -> tuple[torch.Tensor, int]:
        net, data, device, n_items = self.net, self.data, self.device, self.n_items
        width = int(data.windows.length[batch].max())
        rows_np = data.windows.rows[batch, :width]
        valid_np = rows_np >= 0
        flat_rows = rows_np[valid_np]
        tokens = torch.from_numpy(data.windows.tokens[batch, :width]).to(device)
        gaps = torch.from_numpy(data.windows.gaps[batch, :width]).to(device)
        rows_t = torch.from_numpy(flat_rows).to(device)
        valid = torch.from_numpy(valid_np).to(device)
        target = self.item[rows_t]
        # Later targets of the same window, (N, horizon), -1 where none.
        future_rows = _future(rows_np, self.cfg.horizon)[valid_np]
        future_t = torch.from_numpy(future_rows).to(device)
        future = torch.where(future_t >= 0, self.item[future_t.clamp_min(0)], -1)

        if self.sampled:
            negs = torch.multinomial(self.proposal, self.cfg.negatives, True, generator=self.gen)
            real_tokens = tokens[tokens < n_items]
            cand = torch.unique(torch.cat([real_tokens, target, negs]))
            vec, bias = net.item_vectors(cand)
            lookup = torch.zeros(n_items + 2, dtype=torch.int64, device=device)
            lookup[cand] = torch.arange(cand.shape[0], device=device)
            with self._low_precision():
                hidden = net.encode(tokens, vec, lookup[tokens], gaps).float()
            bias = bias - self.log_q[cand]  # log-Q correction of the sampled softmax
            label, future = (
                lookup[target],
                torch.where(future >= 0, lookup[future.clamp_min(0)], -1),
            )
        else:
            vec, bias = net.item_vectors()
            with self._low_precision():
                hidden = net.encode(tokens, vec, gaps=gaps).float()
            # Items never seen in training are no one's answer: keep them out of the softmax.
            bias = bias.masked_fill(self.cold, float("-inf"))
            label = target
        q = hidden[valid]
        if self.users is not None:
            owner = torch.arange(tokens.shape[0], device=device)[:, None].expand_as(valid)[valid]
            picked = self.users.take(torch.from_numpy(data.windows.user[batch]).to(device))
            uvec = net.side(picked, net.user_meta)
            q = q if uvec is None else q + uvec[owner]
        if self.context is not None:
            cvec = net.side(self.context.take(rows_t), net.context_meta)
            q = q if cvec is None else q + cvec
        extra = None
        if data.impressions is not None:
            extra = _impression_logits(net, q, flat_rows, target, data.impressions, rng, device)
        # Multi-horizon objective: the next item, and (less) the ones after it, so the
        # ranking favours everything the user is about to want, not one guess.
        later = future if self.cfg.horizon else None
        absent = None
        if self.created is not None and self.row_time is not None:
            created = self.created if not self.sampled else self.created[cand]
            absent = created[None, :] > self.row_time[rows_t][:, None]
        per_row = catalogue_loss(
            q, vec, bias, label, later, self.cfg.future_weight, extra, self.cfg.bf16, absent
        )
        w = self.weight[rows_t]
        return (per_row * w).sum() / w.sum().clamp_min(1e-12), int(flat_rows.shape[0])


def _future(rows: Int64Array, horizon: int) -> Int64Array:
    """For each window position, the target rows of the next ``horizon`` positions."""
    b, t = rows.shape
    out = np.full((b, t, horizon), -1, dtype=np.int64)
    for j in range(1, min(horizon, t - 1) + 1):
        out[:, : t - j, j - 1] = rows[:, j:]
    return out


def _snapshot(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _impression_logits(
    net: SequentialNet,
    q: torch.Tensor,
    rows: Int64Array,
    target: torch.Tensor,
    impressions: tuple[Int64Array, Int64Array],
    rng: np.random.Generator,
    device: torch.device,
) -> torch.Tensor | None:
    """Logits of each row's impressed items, up-weighted, -inf where padded or chosen."""
    offsets, items = impressions
    starts, ends = offsets[rows], offsets[rows + 1]
    lengths = np.minimum(ends - starts, MAX_IMPRESSIONS)
    if lengths.max(initial=0) == 0:
        return None
    width = int(lengths.max())
    # A random window of each long list (start offset), so no impression is always cut.
    spare = (ends - starts) - lengths
    shift = (rng.random(rows.shape[0]) * (spare + 1)).astype(np.int64)
    col = np.arange(width)[None, :]
    present = col < lengths[:, None]
    idx = np.where(present, starts[:, None] + shift[:, None] + col, 0)
    imp = np.where(present, items[np.minimum(idx, max(items.shape[0] - 1, 0))], 0)
    imp_t = torch.from_numpy(imp.astype(np.int64)).to(device)
    present_t = torch.from_numpy(present).to(device)
    vec, bias = net.item_vectors(imp_t.reshape(-1))
    logits = (vec.view(*imp_t.shape, -1) * q[:, None, :]).sum(-1) + bias.view(imp_t.shape)
    logits = logits + math.log(IMPRESSION_WEIGHT)
    keep = present_t & (imp_t != target[:, None])
    return logits.masked_fill(~keep, float("-inf"))


@torch.no_grad()
def evaluate(
    net: SequentialNet,
    data: TrainingSet,
    device: torch.device,
    users: TorchRows | None,
    context: TorchRows | None,
    extra: Callable[[int, int], Float32Array] | None = None,
    betas: tuple[float, ...] = (0.0,),
    fixed: Callable[[int, int], Float32Array] | None = None,
) -> list[float]:
    """NDCG@10 of the validation targets, full ranking, the user's seen items removed.

    With ``extra(start, stop)`` (scores of validation rows ``start:stop``), one NDCG per
    ``β`` in ``betas`` of the blend ``logits + β · extra``; ``fixed(start, stop)`` is
    added to the logits in every blend.
    """
    net.eval()
    n = data.val_tokens.shape[0]
    if n == 0:
        return [0.0 for _ in betas]
    vec, bias = net.item_vectors()
    created = None if data.created is None else torch.from_numpy(data.created).to(device)
    gains: list[list[torch.Tensor]] = [[] for _ in betas]
    seen_off, seen_items = data.val_seen
    for start in range(0, n, 512):
        stop = min(start + 512, n)
        tokens = torch.from_numpy(data.val_tokens[start:stop]).to(device)
        last = torch.from_numpy(data.val_length[start:stop] - 1).to(device)
        gaps = torch.from_numpy(data.val_gaps[start:stop]).to(device)
        q = net.encode(tokens, vec, gaps=gaps)[torch.arange(stop - start, device=device), last]
        if users is not None:
            picked = users.take(torch.from_numpy(data.val_users[start:stop]).to(device))
            uvec = net.side(picked, net.user_meta)
            q = q if uvec is None else q + uvec
        if context is not None:
            rows = context.take(torch.from_numpy(data.val_rows[start:stop]).to(device))
            cvec = net.side(rows, net.context_meta)
            q = q if cvec is None else q + cvec
        base = q @ vec.T + bias[None, :]
        if fixed is not None:
            base += torch.from_numpy(fixed(start, stop)).to(device)
        lo, hi = seen_off[start], seen_off[stop]
        owner = np.repeat(np.arange(stop - start), np.diff(seen_off[start : stop + 1]))
        owner_t = torch.from_numpy(owner).to(device)
        base[owner_t, torch.from_numpy(seen_items[lo:hi]).to(device)] = float("-inf")
        if created is not None and data.val_time is not None:
            when = torch.from_numpy(data.val_time[start:stop]).to(device)
            base.masked_fill_(created[None, :] > when[:, None], float("-inf"))
        target = torch.from_numpy(data.val_target[start:stop]).to(device)
        more = None if extra is None else torch.from_numpy(extra(start, stop)).to(device)
        for k, beta in enumerate(betas):
            scores = base if more is None or beta == 0.0 else base + beta * more
            rank = (scores > scores.gather(1, target[:, None])).sum(1)
            gains[k].append(torch.where(rank < 10, 1.0 / torch.log2(rank.double() + 2.0), 0.0))
    return [float(torch.cat(g).mean()) for g in gains]
