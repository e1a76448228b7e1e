"""A seeded, realistic e-commerce dataset in Amazon Personalize's bulk CSV format.

The demo and the tests import it into the server, so it has to be small by default,
deterministic for a seed, fast at scale, and shaped so that recommenders have real
structure to find:

* **Taste.** Each user prefers 1-3 main categories (Dirichlet weights) and spends most
  events in them; their age group skews which categories they like, so user metadata
  carries signal.
* **Popularity.** Inside a category, item popularity follows a Zipf-like law.
* **Sequences.** Events come in sessions; a session stays in one category and often in
  one subcategory, so next-item models have something to learn.
* **Funnel.** ``View`` → ``AddToCart`` → ``Purchase``: a cart event is for the item just
  viewed and a purchase for the item just put in the cart; ``EVENT_VALUE`` is the price.
* **Time.** Timestamps increase per user inside ``[start, start + days)``; some items are
  created late in the period (cold items) and nothing is touched before it exists.

Everything is vectorised with numpy (2M interactions take a few seconds) and written
with polars. Stability: Internal.

Example::

    data = generate(Path("/tmp/demo"), users=2000, items=500, seed=7)
    data.interactions_csv  # /tmp/demo/interactions.csv, with data.interactions_schema
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import polars as pl

__all__ = [
    "INTERACTIONS_SCHEMA",
    "ITEMS_SCHEMA",
    "USERS_SCHEMA",
    "DemoData",
    "Latent",
    "generate",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_NAMESPACE = "com.amazonaws.personalize.schema"
DAY = 86_400


def _schema(name: str, fields: list[dict[str, object]]) -> str:
    # Personalize wants the Avro record as a JSON string, record name = dataset type (spec §7.2).
    record = {
        "type": "record",
        "name": name,
        "namespace": _NAMESPACE,
        "fields": fields,
        "version": "1.0",
    }
    return json.dumps(record)


INTERACTIONS_SCHEMA = _schema(
    "Interactions",
    [
        {"name": "USER_ID", "type": "string"},
        {"name": "ITEM_ID", "type": "string"},
        {"name": "TIMESTAMP", "type": "long"},
        {"name": "EVENT_TYPE", "type": "string"},
        {"name": "EVENT_VALUE", "type": ["null", "float"]},
    ],
)
ITEMS_SCHEMA = _schema(
    "Items",
    [
        {"name": "ITEM_ID", "type": "string"},
        {"name": "CATEGORY_L1", "type": "string", "categorical": True},
        {"name": "CATEGORY_L2", "type": "string", "categorical": True},
        {"name": "PRICE", "type": "float"},
        {"name": "CREATION_TIMESTAMP", "type": "long"},
        {"name": "PRODUCT_NAME", "type": "string", "textual": True},
    ],
)
USERS_SCHEMA = _schema(
    "Users",
    [
        {"name": "USER_ID", "type": "string"},
        {"name": "AGE_GROUP", "type": "string", "categorical": True},
        {"name": "MEMBERSHIP", "type": "string", "categorical": True},
    ],
)


class _Category(NamedTuple):
    name: str
    median_price: float
    price_sigma: float  # log-normal spread: electronics vary far more than groceries
    share: float  # relative catalogue size and relative popularity among users
    subcategories: tuple[tuple[str, str], ...]  # (CATEGORY_L2 value, noun for product names)
    adjectives: tuple[str, ...]
    variants: tuple[str, ...]


# Subcategory names are unique across categories so CATEGORY_L2 alone identifies one.
_CATALOG: tuple[_Category, ...] = (
    _Category(
        "electronics", 120.0, 0.9, 1.3,
        (("headphones", "headphones"), ("laptops", "laptop"), ("smartphones", "smartphone"),
         ("cameras", "camera"), ("chargers", "charger")),
        ("Wireless", "Compact", "Smart", "Portable", "Noise-cancelling"),
        ("black", "silver", "2-pack", "refurbished", "with case"),
    ),
    _Category(
        "books", 14.0, 0.45, 1.5,
        (("fiction", "novel"), ("science", "science book"), ("cookbooks", "cookbook"),
         ("history", "history book"), ("children", "picture book")),
        ("Bestselling", "Illustrated", "Classic", "Award-winning", "Pocket"),
        ("paperback", "hardcover", "2nd edition", "signed copy", "box set"),
    ),
    _Category(
        "garden", 35.0, 0.8, 0.7,
        (("garden-tools", "pruning shears"), ("plants", "potted plant"),
         ("outdoor-furniture", "garden bench"), ("watering", "garden hose")),
        ("Heavy-duty", "Weatherproof", "Ergonomic", "Organic", "Foldable"),
        ("green", "10 m", "set of 3", "large", "small"),
    ),
    _Category(
        "toys", 25.0, 0.7, 0.9,
        (("puzzles", "jigsaw puzzle"), ("board-games", "board game"), ("dolls", "doll"),
         ("building-sets", "building set")),
        ("Educational", "Colorful", "Wooden", "Magnetic", "Deluxe"),
        ("ages 3+", "ages 8+", "500 pieces", "family edition", "travel size"),
    ),
    _Category(
        "beauty", 18.0, 0.6, 0.8,
        (("skincare", "face cream"), ("makeup", "lipstick"), ("fragrance", "eau de parfum"),
         ("haircare", "shampoo")),
        ("Hydrating", "Vegan", "Matte", "Fresh", "Gentle"),
        ("50 ml", "100 ml", "rose", "unscented", "travel size"),
    ),
    _Category(
        "sports", 40.0, 0.85, 0.8,
        (("running", "running shoes"), ("cycling", "bike helmet"), ("fitness", "yoga mat"),
         ("camping", "tent"), ("swimming", "swim goggles")),
        ("Lightweight", "Breathable", "Durable", "Adjustable", "Pro"),
        ("size M", "size L", "blue", "red", "2-person"),
    ),
    _Category(
        "kitchen", 30.0, 0.8, 0.9,
        (("cookware", "frying pan"), ("appliances", "blender"), ("tableware", "dinner plate set"),
         ("food-storage", "container set")),
        ("Premium", "Stainless", "Stackable", "Dishwasher-safe", "Compact"),
        ("24 cm", "1.5 l", "set of 4", "white", "graphite"),
    ),
    _Category(
        "fashion", 45.0, 0.7, 1.2,
        (("shoes", "sneakers"), ("dresses", "dress"), ("outerwear", "jacket"),
         ("bags", "backpack"), ("jewelry", "necklace")),
        ("Slim-fit", "Vintage", "Casual", "Elegant", "Waterproof"),
        ("size S", "size M", "navy", "beige", "leather"),
    ),
    _Category(
        "grocery", 6.0, 0.5, 1.1,
        (("coffee", "ground coffee"), ("snacks", "trail mix"), ("pantry", "olive oil"),
         ("beverages", "sparkling water")),
        ("Organic", "Fair-trade", "Roasted", "Gluten-free", "Family-size"),
        ("250 g", "1 kg", "6-pack", "unsweetened", "decaf"),
    ),
    _Category(
        "music", 20.0, 0.6, 0.6,
        (("vinyl", "vinyl record"), ("cds", "CD album"), ("instruments", "ukulele"),
         ("sheet-music", "songbook")),
        ("Remastered", "Live", "Limited", "Beginner", "Deluxe"),
        ("jazz", "rock", "classical", "180 g", "anniversary edition"),
    ),
)  # fmt: skip

_BRANDS = ("Acme", "Northwind", "Contoso", "Fabrikam", "Globex", "Initech", "Tailspin", "Lumen")
_AGE_GROUPS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
_AGE_P = (0.14, 0.26, 0.22, 0.17, 0.12, 0.09)
_MEMBERSHIPS = ("free", "plus", "premium")
_MEMBERSHIP_P = (0.6, 0.3, 0.1)
_MEMBERSHIP_ACTIVITY = (0.85, 1.15, 1.5)  # paying members browse more
_EVENT_TYPES = ("View", "AddToCart", "Purchase")

# Behaviour knobs. In-taste share ≈ SESSION_IN_TASTE * STAY_IN_SESSION_CATEGORY ≈ 0.86.
_ZIPF_EXPONENT = 1.1
_MULTI_L2_SHARE = 0.15  # items listed under two subcategories ("a|b")
_SESSION_IN_TASTE = 0.92  # else the session explores a random category
_STAY_IN_SESSION_CATEGORY = 0.93  # else the event drifts to a random category
_FOCUSED_SESSION = 0.5  # sessions that hunt inside one subcategory ...
_FOCUS_STRENGTH = 0.75  # ... and pick from it this often
_MEAN_SESSION_EVENTS = 6.0
_CART_RATE = 0.12
_PURCHASE_RATE = 0.5  # of carts, scaled down for expensive items
_MIN_EVENTS = 3
_MAX_TRIES = 8  # redraws of an item that did not exist yet before falling back


@dataclass(frozen=True)
class Latent:
    """The hidden state the events were drawn from, for oracles and structure tests.

    Per-event arrays are in ``interactions.csv`` row order; per-item arrays are indexed by
    item number (``P0001`` is 0). Categories index `DemoData.categories`, subcategories
    ``subcategories`` (each item's primary CATEGORY_L2, the one the sampler draws by).
    """

    session_category: IntArray  # the session's category (taste or exploration)
    focus_subcategory: IntArray  # the session's focus subcategory (drawn for every session)
    focused: BoolArray  # whether the session hunts in its focus subcategory
    drift: BoolArray  # the event left the session for a uniformly random nonempty category
    item_category: IntArray
    item_subcategory: IntArray
    item_weight: FloatArray  # Zipf weight, the sampling weight in the category and subcategory
    item_created: IntArray  # CREATION_TIMESTAMP
    nonempty_categories: IntArray  # the categories a drifting or exploring event can land in
    subcategories: list[str]


@dataclass(frozen=True)
class DemoData:
    """Where the generated files are, their schemas, and the ground truth behind them."""

    directory: Path
    interactions_csv: Path
    items_csv: Path
    users_csv: Path
    interactions_schema: str
    items_schema: str
    users_schema: str
    categories: list[str]
    item_category: dict[str, str]  # ITEM_ID -> CATEGORY_L1
    user_taste: dict[str, list[str]]  # USER_ID -> preferred categories, strongest first
    n_interactions: int
    latent: Latent


class _Sampler:
    """Draws items from per-group Zipf-like distributions with one ``searchsorted``.

    Items are sorted by group; a draw for group g maps a uniform number into g's slice of
    the global cumulative weights, so millions of draws over thousands of groups cost one
    vectorised call.
    """

    def __init__(self, group: IntArray, weight: FloatArray, n_groups: int) -> None:
        self.order = np.argsort(group, kind="stable")
        self.cum = np.cumsum(weight[self.order])
        counts = np.bincount(group, minlength=n_groups)
        self.end = np.cumsum(counts)
        self.start = self.end - counts
        self.base = np.where(self.start > 0, self.cum[np.maximum(self.start - 1, 0)], 0.0)
        self.total = self.cum[np.maximum(self.end - 1, 0)] - self.base
        # The most popular item per group is forced to exist before the period starts, so
        # it is a safe fallback when redraws keep landing on items not yet created.
        sorted_w = weight[self.order]
        self.top = np.full(n_groups, -1, dtype=np.int64)
        for g in np.flatnonzero(counts):
            s, e = self.start[g], self.end[g]
            self.top[g] = self.order[s + int(np.argmax(sorted_w[s:e]))]

    def draw(self, rng: np.random.Generator, group: IntArray) -> IntArray:
        target = self.base[group] + rng.random(group.size) * self.total[group]
        pos = np.searchsorted(self.cum, target, side="right")
        pos = np.clip(pos, self.start[group], self.end[group] - 1)
        return self.order[pos]


def _within_rank(group: IntArray, key: FloatArray) -> IntArray:
    """0-based rank of each element by ``key`` inside its group."""
    order = np.lexsort((key, group))
    sorted_group = group[order]
    first = np.r_[0, np.flatnonzero(np.diff(sorted_group)) + 1]
    starts = np.repeat(first, np.diff(np.r_[first, group.size]))
    rank = np.empty(group.size, dtype=np.int64)
    rank[order] = np.arange(group.size) - starts
    return rank


def _ids(prefix: str, n: int, min_width: int) -> list[str]:
    width = max(min_width, len(str(n)))
    return [f"{prefix}{i:0{width}d}" for i in range(1, n + 1)]


def generate(
    directory: Path,
    *,
    users: int = 2000,
    items: int = 500,
    seed: int = 7,
    mean_events_per_user: float = 25.0,
    start: int = 1_700_000_000,
    days: int = 90,
) -> DemoData:
    """Write ``interactions.csv``, ``items.csv`` and ``users.csv`` into ``directory``.

    Args:
        directory: Created if missing; existing files of those names are replaced.
        users: Number of users; every one gets at least 3 interactions.
        items: Catalogue size, spread over 10 main categories.
        seed: Same seed and arguments give byte-identical files.
        mean_events_per_user: Mean of the (log-normal, heavy-tailed) events per user.
        start: Epoch seconds at which the interaction period begins.
        days: Length of the interaction period.

    Returns:
        The file paths, their Avro schemas, and the ground truth (categories, item
        categories, user tastes, and the hidden state of every event in ``latent``) that
        tests and bench/oracle.py use to check the structure is real and bound what a
        model can reach.

    Raises:
        ValueError: On non-positive sizes or period.
    """
    if users < 1 or items < 1 or days < 1 or mean_events_per_user <= 0:
        raise ValueError("users, items, days and mean_events_per_user must be positive")
    rng = np.random.default_rng(seed)
    period = days * DAY
    end = start + period  # exclusive
    n_cat = len(_CATALOG)

    # ---- Items -----------------------------------------------------------------------
    share = np.array([c.share for c in _CATALOG])
    item_cat = rng.choice(n_cat, size=items, p=share / share.sum())
    if items >= n_cat:  # every category gets at least one item when the catalogue allows
        item_cat[rng.permutation(items)[:n_cat]] = np.arange(n_cat)
    n_sub = np.array([len(c.subcategories) for c in _CATALOG])
    sub_offset = np.r_[0, np.cumsum(n_sub)[:-1]]
    sub_local = (rng.random(items) * n_sub[item_cat]).astype(np.int64)
    item_sub = sub_offset[item_cat] + sub_local  # global subcategory id
    has_second = rng.random(items) < _MULTI_L2_SHARE
    second_local = (sub_local + 1 + (rng.random(items) * (n_sub[item_cat] - 1))).astype(
        np.int64
    ) % n_sub[item_cat]

    mu = np.log([c.median_price for c in _CATALOG])[item_cat]
    sigma = np.array([c.price_sigma for c in _CATALOG])[item_cat]
    price = np.maximum(np.round(rng.lognormal(mu, sigma), 2), 0.99)

    # Popularity: a random Zipf rank inside the category.
    rank = _within_rank(item_cat, rng.random(items))
    weight = np.power(rank + 1.0, -_ZIPF_EXPONENT, dtype=np.float64)

    # Creation: most of the catalogue predates the period, some arrives during it, and a
    # tenth lands in its last 15 % (cold items with little or no history).
    u = rng.random(items)
    when = rng.random(items)
    created = np.where(
        u < 0.65,
        start - (when * 365 * DAY),
        np.where(u < 0.9, start + when * 0.85 * period, start + (0.85 + 0.15 * when) * period),
    ).astype(np.int64)
    created = np.minimum(created, end - 1)

    by_cat = _Sampler(item_cat, weight, n_cat)
    by_sub = _Sampler(item_sub, weight, int(n_sub.sum()))
    for top in (by_cat.top, by_sub.top):
        valid = top[top >= 0]
        created[valid] = np.minimum(created[valid], start - DAY)

    # ---- Users -----------------------------------------------------------------------
    age = rng.choice(len(_AGE_GROUPS), size=users, p=_AGE_P)
    member = rng.choice(len(_MEMBERSHIPS), size=users, p=_MEMBERSHIP_P)
    affinity = np.exp(rng.normal(0.0, 0.6, size=(len(_AGE_GROUPS), n_cat)))
    cat_count = np.bincount(item_cat, minlength=n_cat)
    log_pref = np.log(share)[None, :] + np.log(affinity[age])
    log_pref[:, cat_count == 0] = -np.inf  # nobody can prefer an empty category
    # Gumbel-top-k: a weighted draw of 3 distinct categories per user in one argsort.
    keys = log_pref + rng.gumbel(size=(users, n_cat))
    taste = np.argsort(-keys, axis=1)[:, :3]
    n_taste = rng.choice(3, size=users, p=(0.3, 0.45, 0.25)) + 1
    n_taste = np.minimum(n_taste, int((cat_count > 0).sum()))
    taste_w = rng.gamma(1.5, size=(users, 3))
    taste_w[np.arange(3)[None, :] >= n_taste[:, None]] = 0.0
    # Strongest first, so user_taste lists preferences in order.
    order = np.argsort(-taste_w, axis=1)
    taste = np.take_along_axis(taste, order, axis=1)
    taste_w = np.take_along_axis(taste_w, order, axis=1)
    taste_cdf = np.cumsum(taste_w / taste_w.sum(axis=1, keepdims=True), axis=1)

    # ---- Events per user -----------------------------------------------------------------
    extra_mean = mean_events_per_user - _MIN_EVENTS
    if extra_mean > 0:
        ln_sigma = 0.9
        activity = np.array(_MEMBERSHIP_ACTIVITY)[member] / np.dot(
            _MEMBERSHIP_P, _MEMBERSHIP_ACTIVITY
        )
        ln_mu = np.log(extra_mean * activity) - ln_sigma**2 / 2
        extra = np.rint(rng.lognormal(ln_mu, ln_sigma))
        extra = np.minimum(extra, 50 * mean_events_per_user).astype(np.int64)
    else:
        extra = np.zeros(users, dtype=np.int64)
    per_user = _MIN_EVENTS + extra
    n = int(per_user.sum())
    user = np.repeat(np.arange(users, dtype=np.int64), per_user)
    user_first = np.r_[0, np.cumsum(per_user)[:-1]]
    is_first = np.zeros(n, dtype=np.bool_)
    is_first[user_first] = True

    # ---- Sessions and timestamps ----------------------------------------------------------
    new_session = is_first | (rng.random(n) < 1.0 / _MEAN_SESSION_EVENTS)
    session = np.cumsum(new_session) - 1
    session_head = np.flatnonzero(new_session)
    n_sessions = session_head.size

    # Gaps: seconds inside a session, days between sessions. A user's timeline starts at
    # a random arrival time and is squeezed (session gaps first) to end inside the period.
    gap = np.where(new_session, rng.exponential(3.0 * DAY, n), 5.0 + rng.exponential(75.0, n))
    gap[is_first] = 0.0
    inter = np.bincount(user, weights=np.where(new_session, gap, 0.0), minlength=users)
    intra = np.bincount(user, weights=np.where(new_session, 0.0, gap), minlength=users)
    arrival = start + np.floor(rng.random(users) * 0.75 * period)
    room = (end - 1) - arrival
    inter_scale = np.where(
        intra + inter <= room, 1.0, np.clip(room - intra, 0.0, None) / np.maximum(inter, 1e-9)
    )
    intra_scale = np.where(intra <= room, 1.0, room / np.maximum(intra, 1e-9))
    gap *= np.where(new_session, inter_scale[user], intra_scale[user])
    pos = np.cumsum(gap)
    pos -= np.repeat(pos[user_first], per_user)  # cumulative within the user
    ts = np.minimum(arrival[user] + np.floor(pos), end - 1).astype(np.int64)

    # ---- What each event looks at ---------------------------------------------------------
    s_user = user[session_head]
    slot = (rng.random(n_sessions)[:, None] > taste_cdf[s_user]).sum(axis=1)
    slot = np.minimum(slot, n_taste[s_user] - 1)
    s_cat = taste[s_user, slot]
    nonempty = np.flatnonzero(cat_count)
    explore = rng.random(n_sessions) >= _SESSION_IN_TASTE
    s_cat[explore] = rng.choice(nonempty, size=int(explore.sum()))
    # A focused session hunts within the subcategory of an "anchor" popular item.
    s_focus = item_sub[by_cat.draw(rng, s_cat)]
    s_focused = rng.random(n_sessions) < _FOCUSED_SESSION

    ev_cat = s_cat[session]
    drift = rng.random(n) >= _STAY_IN_SESSION_CATEGORY
    ev_cat[drift] = rng.choice(nonempty, size=int(drift.sum()))
    use_sub = s_focused[session] & ~drift & (rng.random(n) < _FOCUS_STRENGTH)
    ev_sub = s_focus[session]

    item = np.empty(n, dtype=np.int64)
    item[use_sub] = by_sub.draw(rng, ev_sub[use_sub])
    item[~use_sub] = by_cat.draw(rng, ev_cat[~use_sub])
    # One redraw for a view of the item just viewed: a few repeats are realistic, long
    # runs of them (small subcategories, steep Zipf) would only teach "repeat the input".
    dup = np.flatnonzero(~new_session & (item == np.r_[-1, item[:-1]]))
    item[dup] = np.where(use_sub[dup], by_sub.draw(rng, ev_sub[dup]), by_cat.draw(rng, ev_cat[dup]))
    # Nothing is touched before it exists: redraw from the same group, then fall back to
    # the group's top item (created before the period by construction).
    bad = np.flatnonzero(created[item] > ts)
    for _ in range(_MAX_TRIES):
        if bad.size == 0:
            break
        sub_bad = bad[use_sub[bad]]
        cat_bad = bad[~use_sub[bad]]
        item[sub_bad] = by_sub.draw(rng, ev_sub[sub_bad])
        item[cat_bad] = by_cat.draw(rng, ev_cat[cat_bad])
        bad = bad[created[item[bad]] > ts[bad]]
    item[bad] = np.where(use_sub[bad], by_sub.top[ev_sub[bad]], by_cat.top[ev_cat[bad]])

    # ---- Funnel ---------------------------------------------------------------------------
    # Cart = the item just viewed; purchase = the item just carted (cheaper ones more often).
    cart = ~new_session & (rng.random(n) < _CART_RATE)
    cart &= ~np.r_[False, cart[:-1]]
    prev_cart = np.r_[False, cart[:-1]]
    next_cart = np.r_[cart[1:], False]
    cart_at = np.flatnonzero(cart)
    item[cart_at] = item[cart_at - 1]
    buy_p = _PURCHASE_RATE / (1.0 + np.r_[0.0, price[item[:-1]]] / 200.0)
    purchase = prev_cart & ~new_session & ~cart & ~next_cart & (rng.random(n) < buy_p)
    buy_at = np.flatnonzero(purchase)
    item[buy_at] = item[buy_at - 1]
    event = np.where(purchase, 2, np.where(cart, 1, 0)).astype(np.int64)

    # ---- Write ----------------------------------------------------------------------------
    directory.mkdir(parents=True, exist_ok=True)
    user_ids = _ids("U", users, 5)
    item_ids = _ids("P", items, 4)
    categories = [c.name for c in _CATALOG]
    l2_names = [name for c in _CATALOG for name, _ in c.subcategories]
    l2 = [
        f"{l2_names[item_sub[i]]}|{l2_names[sub_offset[item_cat[i]] + second_local[i]]}"
        if has_second[i] and n_sub[item_cat[i]] > 1
        else l2_names[item_sub[i]]
        for i in range(items)
    ]
    nouns = [noun for c in _CATALOG for _, noun in c.subcategories]
    pick = rng.integers(0, 1 << 30, size=(items, 3))
    names = [
        f"{_BRANDS[pick[i, 0] % len(_BRANDS)]} "
        f"{_CATALOG[item_cat[i]].adjectives[pick[i, 1] % 5].lower()} {nouns[item_sub[i]]}, "
        f"{_CATALOG[item_cat[i]].variants[pick[i, 2] % 5]}"
        for i in range(items)
    ]

    items_csv = directory / "items.csv"
    pl.DataFrame(
        {
            "ITEM_ID": item_ids,
            "CATEGORY_L1": [categories[c] for c in item_cat],
            "CATEGORY_L2": l2,
            "PRICE": price,
            "CREATION_TIMESTAMP": created,
            "PRODUCT_NAME": names,
        }
    ).write_csv(items_csv, float_precision=2)

    users_csv = directory / "users.csv"
    pl.DataFrame(
        {
            "USER_ID": user_ids,
            "AGE_GROUP": [_AGE_GROUPS[a] for a in age],
            "MEMBERSHIP": [_MEMBERSHIPS[m] for m in member],
        }
    ).write_csv(users_csv)

    interactions_csv = directory / "interactions.csv"
    value = np.where(purchase, price[item], np.nan)
    pl.DataFrame(
        {
            "USER_ID": pl.Series(user_ids).gather(user),
            "ITEM_ID": pl.Series(item_ids).gather(item),
            "TIMESTAMP": ts,
            "EVENT_TYPE": pl.Series(_EVENT_TYPES).gather(event),
            "EVENT_VALUE": pl.Series(value).fill_nan(None),
        }
    ).write_csv(interactions_csv, float_precision=2)

    return DemoData(
        directory=directory,
        interactions_csv=interactions_csv,
        items_csv=items_csv,
        users_csv=users_csv,
        interactions_schema=INTERACTIONS_SCHEMA,
        items_schema=ITEMS_SCHEMA,
        users_schema=USERS_SCHEMA,
        categories=categories,
        item_category={item_ids[i]: categories[c] for i, c in enumerate(item_cat)},
        user_taste={
            user_ids[u]: [categories[c] for c in taste[u, : n_taste[u]]] for u in range(users)
        },
        n_interactions=n,
        latent=Latent(
            session_category=s_cat[session],
            focus_subcategory=s_focus[session],
            focused=s_focused[session],
            drift=drift,
            item_category=item_cat,
            item_subcategory=item_sub,
            item_weight=weight,
            item_created=created,
            nonempty_categories=nonempty,
            subcategories=l2_names,
        ),
    )
