"""The personalised feed: what to show a user next, by expected enjoyment per unit of compute.

    feed = Feed(store=FeedStore("feed.sqlite"), embedder=Embedder(), cost=CostModel.from_model("default"))
    feed.add_video("v1", "a red ball bouncing on a wooden floor")      # every finished video the feed may reuse
    show = feed.next("alice")               # Show: the video to play now (reused, or generated earlier for her)
    orders = feed.plan("alice")             # Orders: videos to generate now so they are ready when needed
    feed.record("alice", "view_start", show.video_id)
    feed.record("alice", "watch", show.video_id, fraction=0.8)  # also "like" and "skip"
    feed.fulfil(orders[0].ticket, video_id="job_123")          # its job finished: it joins the library

The parts, top to bottom:

    concepts    the model's concept space: ToyWorld's vocabulary through a small grammar -> prompts; random
                concepts, one- or two-word mutations of what a user liked, and an optional LLM hook
    embedding   prompt -> MiniLM sentence embedding (cached); features = bias + PCA of the embedding + one-hot
                attributes of the concept (the "scene embedding"; partial when a prompt names only some)
    taste       Bayesian linear regression of enjoyment on features, one per user, whose prior mean is the
                population's model (cold start from what is popular); Thompson sampling explores
    cost        device-seconds of a request shape from DiT.flops_per_token, as the service's cost model counts
    feed        every slot, the best unseen existing video vs the best new concept under one posterior sample,
                less a penalty for resembling what was just shown (so exploration does not collapse onto one
                topic); a new one is generated only when its expected gain pays for its device-seconds at the
                configured rate, within the user's daily budget, and `horizon` views ahead
    store       SQLite (stdlib): videos, users (their model and queue as JSON), events, shared state
    simulation  simulated users with hidden tastes over attributes, for offline evaluation (benchmarks/bench_feed.py)

Enjoyment of one view is `watch fraction + like_weight · liked` (a skip is a low watch fraction). Axes: N
candidates, D embedding width, F feature width.
"""

import base64
import functools
import hashlib
import itertools
import json
import math
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from .errors import InvalidRequest
from .world import vocab
from .world.prompt import parse_prompt
from .world.scene import Scene, contrasting_colors

# --- concepts ----------------------------------------------------------------------------------------------

ATTRIBUTES = ("color", "shape", "motion", "background", "camera")   # what a concept fixes; tastes are over these
VALUES = {"color": tuple(vocab.COLORS), "shape": vocab.SHAPES, "motion": vocab.MOTIONS,
          "background": tuple(vocab.BACKGROUNDS), "camera": vocab.CAMERAS}

_MOTION_ING = {"still": "resting", "slide": "sliding", "bounce": "bouncing", "fall": "falling",
               "orbit": "orbiting", "spin": "spinning", "grow": "growing", "shrink": "shrinking"}
_BACKGROUND_PHRASE = {"night": "at night", "slate": "on a slate background", "sand": "on sand",
                      "sunset sky": "over a sunset sky", "ocean": "over the ocean", "dusk": "at dusk",
                      "grassy field": "in a grassy field", "wooden floor": "on a wooden floor",
                      "desert": "in the desert", "checkerboard": "on a checkerboard",
                      "striped wall": "in front of a striped wall", "polka dots": "on a polka-dot background"}
_CAMERA_CLAUSE = {"static": ", with a still camera",
                  "pan left": ", while the camera pans left", "pan right": ", while the camera pans right",
                  "pan up": ", while the camera pans up", "pan down": ", while the camera pans down",
                  "zoom in": ", while the camera zooms in", "zoom out": ", while the camera zooms out"}


@dataclass(frozen=True)
class Concept:
    """What a video is about: its main object, background and camera. None where a prompt leaves it open."""
    color: str | None = None
    shape: str | None = None
    motion: str | None = None
    background: str | None = None
    camera: str | None = None

    @property
    def prompt(self) -> str:
        """One fixed wording per concept, which world.prompt.parse_prompt reads back (tested), so one concept
        has one embedding: "a red ball bouncing on a wooden floor, while the camera zooms in"."""
        words = [w for w in (self.color, self.shape or "shape") if w]
        text = ("an " if words[0][0] in "aeiou" else "a ") + " ".join(words)
        if self.motion:
            text += " " + _MOTION_ING[self.motion]
        if self.background:
            text += " " + _BACKGROUND_PHRASE[self.background]
        return text + (_CAMERA_CLAUSE[self.camera] if self.camera else "")

    @property
    def complete(self) -> bool:
        return None not in astuple_concept(self)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "Concept":
        d = d or {}
        return cls(**{a: d.get(a) for a in ATTRIBUTES})


def astuple_concept(c: Concept) -> tuple:
    return tuple(getattr(c, a) for a in ATTRIBUTES)


def overlap(a: Concept, b: Concept) -> float:
    """Fraction of the attributes two concepts share (attributes either leaves open count as not shared)."""
    return sum(x is not None and x == y for x, y in zip(astuple_concept(a), astuple_concept(b))) / len(ATTRIBUTES)


def is_valid(c: Concept) -> bool:
    """A concept the model can make as asked: a colour that stands out from its background, a visible spin, and
    not a held-out (colour, shape, motion) triple (the shipped model never saw those)."""
    if c.color and c.background and c.color not in _contrasting(c.background):
        return False
    if c.motion == "spin" and c.shape and c.shape not in vocab.SPINNABLE:
        return False
    return (c.color, c.shape, c.motion) not in vocab.HELD_OUT


@functools.cache
def _contrasting(background: str) -> frozenset:
    return frozenset(contrasting_colors(background))


def random_concept(rng: random.Random) -> Concept:
    """A uniformly drawn valid concept (every attribute fixed)."""
    while True:
        c = Concept(*(rng.choice(VALUES[a]) for a in ATTRIBUTES))
        if is_valid(c):
            return c


def mutate(c: Concept, rng: random.Random, changes: int = 1) -> Concept:
    """`c` with `changes` attributes redrawn (to other values), valid; attributes c leaves open are filled."""
    for _ in range(100):
        d = {a: getattr(c, a) or rng.choice(VALUES[a]) for a in ATTRIBUTES}
        for a in rng.sample(ATTRIBUTES, changes):
            d[a] = rng.choice([v for v in VALUES[a] if v != d[a]])
        m = Concept(**d)
        if is_valid(m):
            return m
    return random_concept(rng)


def concept_from_scene(scene: Scene) -> Concept:
    """The concept of a ToyWorld scene: the object a short caption is about, its background and camera."""
    moving = [o for o in scene.objects if o.motion != "still"]
    o = (moving or scene.objects)[0]     # as captions.main_object chooses
    return Concept(o.color, o.shape, o.motion, scene.background, scene.camera)


def concept_from_prompt(text: str) -> Concept:
    """What a free prompt (a user's, an LLM's, a stored video's) says about its first object, background and
    camera; the rest stays None. Text that names nothing gives an empty concept, never an error."""
    try:
        parsed = parse_prompt(text)
    except InvalidRequest:
        return Concept()
    o = parsed["objects"][0] if parsed["objects"] else {}
    return Concept(o.get("color"), o.get("shape"), o.get("motion"), parsed["background"], parsed["camera"])


LLMHook = Callable[[list[str], int], list[str]]
"""`llm(liked_prompts, n)` -> up to n new prompts in the same spirit (any source: an LLM, an editor's list)."""


def candidates(rng: random.Random, liked: list[Concept], n_random: int = 48, n_mutations: int = 48,
               llm: LLMHook | None = None, liked_prompts: list[str] = (), n_llm: int = 8) -> list[Concept | str]:
    """New things to make: random concepts, mutations (one or two attributes) of what the user liked, and
    prompts from `llm` when given (returned as strings; their concepts are parsed from them)."""
    out: list[Concept | str] = [random_concept(rng) for _ in range(n_random)]
    for i in range(n_mutations if liked else 0):
        out.append(mutate(liked[i % len(liked)], rng, changes=1 + (rng.random() < 0.3)))
    if llm is not None and liked_prompts:
        try:
            out += [p for p in llm(list(liked_prompts), n_llm)[:n_llm] if isinstance(p, str) and p.strip()]
        except Exception:  # noqa: BLE001 S110 - an LLM is a suggestion box: the feed carries on without it
            pass
    return out


# --- embedding and features --------------------------------------------------------------------------------

class Embedder:
    """Prompts -> unit sentence embeddings (N, D) float32, cached in memory and, with `cache_path`, in an .npz
    file (save() writes it).

    Args:
        encode: prompts -> (N, D) array; None uses the frozen MiniLM text encoder's pooled embedding (the
            sentence embedding the DiT is conditioned on), loaded on first use.
        cache_path: an .npz file of earlier embeddings (read if it exists).
    """

    def __init__(self, encode: Callable[[list[str]], np.ndarray] | None = None, cache_path=None, batch: int = 128):
        self._encode, self.batch = encode, batch
        self.cache_path = Path(cache_path) if cache_path else None
        self.cache: dict[str, np.ndarray] = {}
        if self.cache_path and self.cache_path.is_file():
            with np.load(self.cache_path) as data:
                self.cache = dict(zip(data["prompts"].tolist(), data["embeddings"].astype(np.float32)))

    def _minilm(self, prompts: list[str]) -> np.ndarray:
        from .text import load_text_encoder
        return load_text_encoder()(prompts).pooled.cpu().numpy()

    def __call__(self, prompts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(p for p in prompts if p not in self.cache))
        encode = self._encode or self._minilm
        for i in range(0, len(missing), self.batch):
            chunk = missing[i:i + self.batch]
            self.cache.update(zip(chunk, np.asarray(encode(chunk), dtype=np.float32)))
        if not prompts:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self.cache[p] for p in prompts])

    @property
    def dim(self) -> int:
        return len(next(iter(self.cache.values()))) if self.cache else len(self(["a ball"])[0])

    def save(self) -> None:
        if self.cache_path:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            prompts = list(self.cache)
            np.savez(self.cache_path, prompts=np.array(prompts),
                     embeddings=np.stack([self.cache[p] for p in prompts]).astype(np.float16))


def hashing_embedder(dim: int = 256) -> Callable[[list[str]], np.ndarray]:
    """A cheap stand-in for MiniLM (tests, machines without the encoder): words and word pairs hashed into
    `dim` signed buckets, normalised. Similar prompts share words, so they land close, as with MiniLM."""
    def encode(prompts: list[str]) -> np.ndarray:
        out = np.zeros((len(prompts), dim), np.float32)
        for i, p in enumerate(prompts):
            words = p.lower().replace(",", " ").split()
            for token in words + [a + " " + b for a, b in itertools.pairwise(words)]:
                h = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")
                out[i, h % dim] += 1.0 if (h >> 32) & 1 else -1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-8)
    return encode


def _one_hot(concepts: list[Concept]) -> np.ndarray:
    """(N, 45): one column per attribute value; an attribute left open is all zeros."""
    offsets, width = {}, 0
    for a in ATTRIBUTES:
        offsets[a], width = width, width + len(VALUES[a])
    out = np.zeros((len(concepts), width), np.float32)
    for i, c in enumerate(concepts):
        for a in ATTRIBUTES:
            v = getattr(c, a)
            if v is not None:
                out[i, offsets[a] + VALUES[a].index(v)] = 1.0
    return out


@dataclass
class FeatureMap:
    """Embedding + concept -> the taste model's features: [1, PCA of the embedding, one-hot attributes].

    The PCA part is whitened and scaled so that its squared norm is about `text_weight`² · 5, the squared norm of
    a complete concept's one-hot part times `scene_weight`²: neither part drowns the other. Fit once on reference
    prompts and keep it (the store does): a user's model is only meaningful in the basis it was learnt in.
    """
    mean: np.ndarray            # (D,)
    components: np.ndarray      # (k, D), rows scaled so projections have unit variance
    text_weight: float = 1.0
    scene_weight: float = 1.0

    @classmethod
    def fit(cls, embeddings: np.ndarray, k: int = 32, text_weight: float = 1.0,
            scene_weight: float = 1.0) -> "FeatureMap":
        mean = embeddings.mean(0)
        _, s, vt = np.linalg.svd(embeddings - mean, full_matrices=False)    # (N, D) -> rows of vt: directions
        k = min(k, len(s))
        std = np.maximum(s[:k] / math.sqrt(max(len(embeddings) - 1, 1)), 1e-6)
        return cls(mean.astype(np.float32), (vt[:k] / std[:, None]).astype(np.float32), text_weight, scene_weight)

    @property
    def dim(self) -> int:
        return 1 + len(self.components) + sum(len(v) for v in VALUES.values())

    def __call__(self, embeddings: np.ndarray, concepts: list[Concept]) -> np.ndarray:
        """(N, D) embeddings and N concepts -> (N, F) features."""
        k = len(self.components)
        text = (embeddings - self.mean) @ self.components.T * (self.text_weight * math.sqrt(len(ATTRIBUTES) / k))
        scene = _one_hot(concepts) * self.scene_weight
        return np.concatenate([np.ones((len(concepts), 1), np.float32), text, scene], axis=1)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "components": self.components.tolist(),
                "text_weight": self.text_weight, "scene_weight": self.scene_weight}

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureMap":
        return cls(np.asarray(d["mean"], np.float32), np.asarray(d["components"], np.float32),
                   d["text_weight"], d["scene_weight"])


def reference_concepts(n: int = 2048, seed: int = 0) -> list[Concept]:
    """The fixed prompts a FeatureMap is fitted on."""
    rng = random.Random(seed)
    return [random_concept(rng) for _ in range(n)]


# --- taste: Bayesian linear regression with Thompson sampling ----------------------------------------------

class TasteModel:
    """Enjoyment ≈ wᵀx with w ~ N(prior_mean, noise²/prior · I) a priori and Gaussian noise of std `noise`.

    Keeps XᵀX and Xᵀy, so an observation can be taken back exactly (a like that arrives after its view was
    closed replaces that view's enjoyment). The posterior is N(μ, noise² A⁻¹) with A = prior·I + XᵀX and
    μ = A⁻¹(prior · prior_mean + Xᵀy). The prior mean is passed in at every use: a user's is the population's
    current model, so a new user starts from what is popular and moves away as their own views come in.
    """

    def __init__(self, dim: int, prior: float = 1.0, noise: float = 0.4):
        self.dim, self.prior, self.noise = dim, prior, noise
        self.xtx = np.zeros((dim, dim))
        self.xty = np.zeros(dim)
        self.n = 0
        self._chol = None

    def update(self, x: np.ndarray, y: float, weight: float = 1.0) -> None:
        """Add (weight = 1) or take back (weight = -1) one observation."""
        x = np.asarray(x, np.float64)
        self.xtx += weight * np.outer(x, x)
        self.xty += weight * y * x
        self.n += int(weight)
        self._chol = None

    def _factor(self) -> np.ndarray:
        if self._chol is None:
            self._chol = np.linalg.cholesky(self.prior * np.eye(self.dim) + self.xtx)   # A = L Lᵀ
        return self._chol

    def _solve(self, v: np.ndarray) -> np.ndarray:
        L = self._factor()
        return np.linalg.solve(L.T, np.linalg.solve(L, v))

    def mean(self, prior_mean: np.ndarray | None = None) -> np.ndarray:
        pm = np.zeros(self.dim) if prior_mean is None else prior_mean
        return self._solve(self.prior * pm + self.xty)

    def sample(self, rng: np.random.Generator, prior_mean: np.ndarray | None = None, scale: float = 1.0) -> np.ndarray:
        """One draw of w from the posterior (its spread times `scale`): Thompson sampling's weights."""
        z = rng.standard_normal(self.dim)
        return self.mean(prior_mean) + scale * self.noise * np.linalg.solve(self._factor().T, z)

    def predict(self, X: np.ndarray, prior_mean: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(N, F) -> mean and standard deviation of the expected enjoyment, (N,) each."""
        half = np.linalg.solve(self._factor(), X.T)                              # L⁻¹Xᵀ: (F, N)
        return X @ self.mean(prior_mean), self.noise * np.sqrt((half ** 2).sum(0))

    def to_dict(self) -> dict:
        return {"dim": self.dim, "prior": self.prior, "noise": self.noise, "n": self.n,
                "xtx": _b64(self.xtx), "xty": _b64(self.xty)}

    @classmethod
    def from_dict(cls, d: dict) -> "TasteModel":
        m = cls(d["dim"], d["prior"], d["noise"])
        m.xtx, m.xty, m.n = _unb64(d["xtx"]).reshape(m.dim, m.dim), _unb64(d["xty"]), d["n"]
        return m


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, "<f8").tobytes()).decode()


def _unb64(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), "<f8").copy()


def enjoyment(fraction: float, liked: bool, like_weight: float = 1.0) -> float:
    return float(fraction) + like_weight * bool(liked)


# --- cost --------------------------------------------------------------------------------------------------

@dataclass
class CostModel:
    """Device-seconds of a generation request, known before it runs:

        FLOPs = Σ over sampler passes of steps · (2 for Heun) · (2 with guidance) · tokens · DiT.flops_per_token
        device_s = FLOPs / flops_per_second + overhead_s

    as the service's cost model counts them (text encoder and VAE are in `overhead_s`). `observe()` moves
    `flops_per_second` toward what finished jobs measured, so estimates follow the real device.

    Args:
        dit: a DiTConfig's fields (dit.PRESETS["default"] by default, or a model folder's dit.json).
        flops_per_second: the sustained rate this model reaches on the device (a 2-core CPU ~3e10 fp32; see
            DESIGN.md for what an H100 reaches on small models).
        overhead_s: per video: text encoding, decoding, writing.
    """
    dit: dict = field(default_factory=dict)
    flops_per_second: float = 3e10
    overhead_s: float = 1.0

    @classmethod
    def from_model(cls, model="default", **kw) -> "CostModel":
        """The DiT config of a model folder ("default": the shipped model, else dit.PRESETS['default'])."""
        from .dit import PRESETS
        from .model import resolve
        path = resolve(model) / "dit" / "dit.json"
        dit = json.loads(path.read_text()) if path.is_file() else asdict(PRESETS["default"])
        return cls(dit=dit, **kw)

    def _flops_per_token(self, tokens: int) -> float:
        if not hasattr(self, "_per_token"):
            import torch

            from .dit import PRESETS, DiT, DiTConfig
            cfg = DiTConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in self.dit.items()}) \
                if self.dit else PRESETS["default"]
            with torch.device("meta"):      # the config alone: no memory, no weights
                self._per_token = DiT(cfg).flops_per_token
        return self._per_token(tokens)

    def flops(self, request) -> float:
        """Forward FLOPs of a validated pipeline.Request's sampling."""
        from .pipeline import dit_forwards
        return sum(forwards * tokens * self._flops_per_token(tokens) for tokens, forwards in dit_forwards(request))

    def device_seconds(self, request) -> float:
        return self.flops(request) / self.flops_per_second + self.overhead_s

    def observe(self, request, measured_s: float, rate: float = 0.2) -> None:
        """A finished job's measured device-seconds: move the FLOP rate a step toward what it implies."""
        compute_s = measured_s - self.overhead_s
        if compute_s > 0:
            implied = self.flops(request) / compute_s
            self.flops_per_second = math.exp((1 - rate) * math.log(self.flops_per_second) + rate * math.log(implied))

    def to_dict(self) -> dict:
        return {"dit": self.dit, "flops_per_second": self.flops_per_second, "overhead_s": self.overhead_s}


# --- the feed ----------------------------------------------------------------------------------------------

EVENTS = ("view_start", "watch", "like", "skip")


@dataclass
class FeedConfig:
    """How a feed trades enjoyment for compute. Every field can be set per deployment (JSON)."""
    request: dict = field(default_factory=lambda: {"aspect": "9:16", "seconds": 2})   # fixed fields of a
    #                                                              generated video (validate_request's names)
    daily_budget_s: float | None = 600.0   # device-seconds a user's feed may spend per day (UTC); None: no limit
    views_per_day: int = 100        # pacing: spend at most budget · (views today + horizon) / views_per_day so far
    gain_per_device_s: float = 0.02 # enjoyment a generation must add, per device-second it costs, over the best reuse
    reuse_distance: float = 0.03    # an existing video this close (1 - cosine of embeddings) to a new idea *is* it
    horizon: int = 3                # generations are decided this many views ahead, so they are ready in time
    reuse: bool = True              # False: every view is generated fresh (for comparison)
    like_weight: float = 1.0        # enjoyment = watch fraction + like_weight · liked
    diversity: float = 0.6          # penalty per unit of mean attribute overlap with the recent views
    recent: int = 8                 # views (and queued videos) the diversity penalty looks back on
    explore: float = 0.5            # Thompson sampling's spread (0 = greedy on the posterior mean)
    prior: float = 8.0              # strength of the population prior, in observations
    residual: float = 1.0           # weight of a library video's own views beyond what its features predict
    smoothing: float = 5.0          # pseudo-views that shrink a video's own mean toward the prediction
    noise: float = 0.4              # std of one view's enjoyment around the model's expectation
    text_dims: int = 32             # PCA components of the prompt embedding among the features
    text_weight: float = 1.0
    scene_weight: float = 1.0
    n_random: int = 48              # new concepts drawn per decision
    n_mutations: int = 48           # mutations of liked concepts per decision
    n_llm: int = 8                  # prompts asked of the LLM hook per decision (when one is given)
    seed: int = 0

    @classmethod
    def from_dict(cls, d: dict) -> "FeedConfig":
        known = {f.name for f in fields(cls)}
        for k, value in d.items():
            if k not in known:
                raise InvalidRequest(f"feed.{k}", value, "one of " + ", ".join(sorted(known)))
        return cls(**d)


@dataclass
class Video:
    id: str
    prompt: str
    concept: Concept
    source: str = "library"         # "library" (existing) or "generated" (made by the feed)
    cost_s: float = 0.0             # device-seconds it took (generated ones)


@dataclass
class Show:
    """The video to play next."""
    video_id: str
    prompt: str
    reason: str                     # "generated for you", "reused", "popular"
    expected: float                 # expected enjoyment under the model


@dataclass
class Order:
    """A video to generate for a user: submit `fields` to validate_request / the job queue, then call
    Feed.fulfil(ticket, video_id) when it is done (or Feed.cancel(ticket) when it failed)."""
    ticket: str
    user: str
    prompt: str
    concept: Concept
    fields: dict
    device_s: float                 # the estimate charged to the user's budget
    expected: float
    gain: float                     # expected enjoyment over the best reuse
    video_id: str | None = None     # set by fulfil()

    def to_dict(self) -> dict:
        return {**asdict(self), "concept": self.concept.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "Order":
        return cls(**{**d, "concept": Concept.from_dict(d["concept"])})


@dataclass
class UserState:
    model: TasteModel
    seen: set = field(default_factory=set)
    recent: list = field(default_factory=list)     # concepts of the latest views, newest last
    liked: list = field(default_factory=list)      # video ids of the latest liked (or fully watched) views
    queue: list = field(default_factory=list)      # Orders, oldest first
    open_view: dict | None = None                  # {"video", "fraction", "liked"}
    last_closed: dict | None = None                # the same, with "y", for a like that arrives late
    day: str = ""
    spent_s: float = 0.0                           # device-seconds spent today
    views_today: int = 0
    views: int = 0
    likes: int = 0

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("open_view", "last_closed", "day", "spent_s", "views_today", "views",
                                           "likes", "liked")}
        return {**d, "model": self.model.to_dict(), "seen": sorted(self.seen),
                "recent": [c.to_dict() for c in self.recent], "queue": [o.to_dict() for o in self.queue]}

    @classmethod
    def from_dict(cls, d: dict) -> "UserState":
        return cls(TasteModel.from_dict(d["model"]), set(d["seen"]), [Concept.from_dict(c) for c in d["recent"]],
                   d["liked"], [Order.from_dict(o) for o in d["queue"]], d["open_view"], d["last_closed"],
                   d["day"], d["spent_s"], d["views_today"], d["views"], d["likes"])


class _Rows:
    """A growing (N, W) float32 array (amortised appends: the library grows one video at a time)."""

    def __init__(self, width: int):
        self._data, self.n = np.zeros((64, width), np.float32), 0

    def append(self, row) -> None:
        if self.n == len(self._data):
            self._data = np.concatenate([self._data, np.zeros_like(self._data)])
        self._data[self.n] = row
        self.n += 1

    @property
    def array(self) -> np.ndarray:
        return self._data[:self.n]


class Feed:
    """Per-user feeds over one shared library of videos. Thread-safe; persists to `store` when given.

    Args:
        store: a FeedStore (SQLite) to load from and write to; None keeps everything in memory.
        embedder: prompts -> embeddings (default: MiniLM, cached).
        cost: the CostModel that prices a generated video (default: the shipped model on a CPU).
        config: FeedConfig.
        llm: an LLMHook proposing new prompts from what a user liked.
        pool: concepts to draw new ideas from (random ones and mutations) instead of the whole concept space,
            e.g. the ones whose embeddings are cached; None draws from the whole space.
        feature_map: the feature basis; default: the store's, else fitted on reference_concepts().
        today: () -> the day budgets are counted in (default: the UTC date); simulations pass a fixed one.
        info: the model's ModelInfo, so generated requests are priced with its defaults (as the service runs them).
    """

    def __init__(self, store: "FeedStore | None" = None, embedder: Embedder | None = None,
                 cost: CostModel | None = None, config: FeedConfig | None = None, llm: LLMHook | None = None,
                 pool: list[Concept] | None = None, feature_map: FeatureMap | None = None,
                 today: Callable[[], str] = lambda: time.strftime("%Y-%m-%d", time.gmtime()), info=None):
        from .pipeline import validate_request
        self.config = c = config or FeedConfig()
        self.store, self.llm, self._today = store, llm, today
        self.embedder = embedder or Embedder()
        self.cost = cost or CostModel.from_model()
        self._lock = threading.RLock()
        self._rng, self._np = random.Random(c.seed), np.random.default_rng(c.seed)
        request = validate_request("a ball", seed=0, info=info, **c.request)   # names a bad field of c.request
        self.request_cost_s = self.cost.device_seconds(request)
        saved = store.get_meta("feature_map") if store else None
        if feature_map is None and saved:
            feature_map = FeatureMap.from_dict(saved)
        if feature_map is None:
            feature_map = FeatureMap.fit(self.embedder([x.prompt for x in reference_concepts()]), c.text_dims,
                                         c.text_weight, c.scene_weight)
        if store and not saved:
            store.put_meta("feature_map", feature_map.to_dict())
        self.features = feature_map
        population = store.get_meta("population") if store else None
        self.population = TasteModel.from_dict(population) if population else \
            TasteModel(feature_map.dim, prior=1.0, noise=c.noise)
        self.pool = list(pool) if pool else None
        if self.pool:
            self._pool_index: dict[tuple, list[int]] = {}
            for i, x in enumerate(self.pool):     # concepts by every 4-attribute key: mutations are lookups
                for j in range(len(ATTRIBUTES)):
                    key = tuple(v if k != j else None for k, v in enumerate(astuple_concept(x)))
                    self._pool_index.setdefault(key, []).append(i)
        self.videos: dict[str, Video] = {}
        self._row: dict[str, int] = {}
        self._ids: list[str] = []
        self._emb = _Rows(self.features.mean.shape[0])
        self._X = _Rows(feature_map.dim)
        self._onehot = _Rows(self.features.dim - 1 - len(feature_map.components))
        self._stats = _Rows(3)      # views, enjoyment sum, likes
        self.users: dict[str, UserState] = {}
        self._orders: dict[str, str] = {}    # ticket -> user
        if store:
            for video, embedding, stats in store.videos():
                self._add(video, embedding, stats)
            for user, state in store.users():
                self.users[user] = st = UserState.from_dict(state)
                self._orders.update({o.ticket: user for o in st.queue if not o.video_id})

    # -- the library --

    def add_video(self, video_id: str, prompt: str, concept: Concept | None = None, source: str = "library",
                  cost_s: float = 0.0) -> Video:
        """Make a finished video available to every feed. Its concept is parsed from the prompt when not given."""
        with self._lock:
            if video_id in self._row:
                return self.videos[video_id]
            video = Video(str(video_id), prompt, concept or concept_from_prompt(prompt), source, cost_s)
            embedding = self.embedder([prompt])[0]
            self._add(video, embedding, (0.0, 0.0, 0.0))
            if self.store:
                self.store.put_video(video, embedding, (0.0, 0.0, 0.0))
            return video

    def _add(self, video: Video, embedding: np.ndarray, stats) -> None:
        self.videos[video.id] = video
        self._row[video.id] = len(self._ids)
        self._ids.append(video.id)
        self._emb.append(embedding)
        x = self.features(embedding[None], [video.concept])[0]
        self._X.append(x)
        self._onehot.append(_one_hot([video.concept])[0])
        self._stats.append(stats)

    def popularity(self, smoothing: float = 5.0) -> np.ndarray:
        """(N,) mean enjoyment per library video, shrunk toward the overall mean by `smoothing` pseudo-views."""
        s = self._stats.array
        overall = s[:, 1].sum() / max(s[:, 0].sum(), 1.0)
        return (s[:, 1] + smoothing * overall) / (s[:, 0] + smoothing)

    def stats(self, video_id: str) -> dict:
        if video_id not in self._row:
            raise InvalidRequest("video_id", video_id, "a video in the feed's library")
        views, total, likes = self._stats.array[self._row[video_id]]
        return {"views": int(views), "mean_enjoyment": float(total / views) if views else None, "likes": int(likes)}

    # -- users --

    def _user(self, user: str) -> UserState:
        st = self.users.get(user)
        if st is None:
            st = self.users[user] = UserState(TasteModel(self.features.dim, self.config.prior, self.config.noise))
        if st.day != self._today():
            st.day, st.spent_s, st.views_today = self._today(), 0.0, 0
        return st

    def budget(self, user: str) -> dict:
        with self._lock:
            st = self._user(user)
            return {"day": st.day, "spent_s": st.spent_s, "daily_budget_s": self.config.daily_budget_s,
                    "views_today": st.views_today, "queued": len(st.queue)}

    def _affordable(self, st: UserState, cost_s: float) -> bool:
        c = self.config
        if c.daily_budget_s is None:        # unlimited
            return True
        if st.spent_s + cost_s > c.daily_budget_s:
            return False
        if not c.reuse:
            return True
        # pacing: a day's budget is spread over a day's views, so the first few views cannot spend it all
        paced = c.daily_budget_s * min(1.0, (st.views_today + c.horizon) / max(c.views_per_day, 1))
        return st.spent_s + cost_s <= paced

    # -- choosing --

    def _weights(self, st: UserState, population: np.ndarray) -> np.ndarray:
        return st.model.sample(self._np, population, self.config.explore)

    def _penalty(self, onehot: np.ndarray, st: UserState) -> np.ndarray:
        """diversity · mean attribute overlap with the recent views and the queued videos, (N,)."""
        recent = st.recent[-self.config.recent:] + [o.concept for o in st.queue]
        if not recent or not self.config.diversity:
            return np.zeros(len(onehot), np.float32)
        return self.config.diversity * (onehot @ _one_hot(recent).T).mean(1) / len(ATTRIBUTES)

    def _residual(self, population: np.ndarray) -> np.ndarray:
        """(N,) what each library video's own views say beyond its features: mean enjoyment minus the population
        model's prediction, shrunk toward 0 by `smoothing` pseudo-views (a caption may leave out what made a
        video popular)."""
        views, total, _ = self._stats.array.T
        predicted = self._X.array @ population
        return (total - views * predicted) / (views + self.config.smoothing)

    def _best_reuse(self, st: UserState, w: np.ndarray, population: np.ndarray) -> tuple[int | None, float]:
        if not self._ids:
            return None, -math.inf
        scores = self._X.array @ w - self._penalty(self._onehot.array, st)
        if self.config.residual:
            scores += self.config.residual * self._residual(population)
        blocked = [self._row[v] for v in st.seen if v in self._row] + \
                  [self._row[o.video_id] for o in st.queue if o.video_id in self._row]
        scores[blocked] = -np.inf
        i = int(np.argmax(scores))
        return (None, -math.inf) if scores[i] == -np.inf else (i, float(scores[i]))

    def _ideas(self, st: UserState) -> list[Concept | str]:
        c = self.config
        liked = [self.videos[v].concept for v in st.liked if v in self.videos]
        if self.pool is None:
            return candidates(self._rng, liked, c.n_random, c.n_mutations, self.llm,
                              [self.videos[v].prompt for v in st.liked if v in self.videos], c.n_llm)
        ideas = [self.pool[i] for i in self._rng.sample(range(len(self.pool)), min(c.n_random, len(self.pool)))]
        for k in range(c.n_mutations if liked else 0):
            base = astuple_concept(liked[k % len(liked)])
            j = self._rng.randrange(len(ATTRIBUTES))
            near = self._pool_index.get(tuple(v if i != j else None for i, v in enumerate(base)), [])
            if near:
                ideas.append(self.pool[self._rng.choice(near)])
        return ideas

    def _best_idea(self, st: UserState, w: np.ndarray):
        ideas = self._ideas(st)
        prompts = [x if isinstance(x, str) else x.prompt for x in ideas]
        concepts = [concept_from_prompt(x) if isinstance(x, str) else x for x in ideas]
        emb = self.embedder(prompts)
        scores = self.features(emb, concepts) @ w - self._penalty(_one_hot(concepts), st)
        i = int(np.argmax(scores))
        return prompts[i], concepts[i], emb[i], float(scores[i])

    def _decide(self, st: UserState) -> Order | None:
        """One slot `horizon` views ahead: an Order when a new video pays for itself, else None (reuse)."""
        c, population = self.config, self.population.mean()
        w = self._weights(st, population)
        reuse_row, reuse_score = self._best_reuse(st, w, population) if c.reuse else (None, -math.inf)
        prompt, concept, emb, score = self._best_idea(st, w)
        if reuse_row is not None:
            unseen = np.ones(len(self._ids), bool)
            unseen[[self._row[v] for v in st.seen if v in self._row]] = False
            distance = 1.0 - self._emb.array @ emb
            distance[~unseen] = np.inf
            if distance.min() <= c.reuse_distance:
                return None      # an unseen video already shows this idea: show that one instead
        gain = score - reuse_score
        cost_s = self.request_cost_s
        if (c.reuse and gain < c.gain_per_device_s * cost_s) or not self._affordable(st, cost_s):
            return None
        fields_ = {"prompt": prompt, **c.request, "seed": self._rng.randrange(2**31)}
        return Order(uuid.uuid4().hex, "", prompt, concept, fields_, cost_s, score, gain)

    def plan(self, user: str) -> list[Order]:
        """Decide the generations for the next `horizon` views; returns the new Orders to submit now."""
        with self._lock:
            st, new = self._user(user), []
            while len(st.queue) < self.config.horizon:
                order = self._decide(st)
                if order is None:
                    break
                order.user = user
                st.queue.append(order)
                st.spent_s += order.device_s
                self._orders[order.ticket] = user
                new.append(order)
            self._save_user(user, st)
            return new

    def next(self, user: str) -> Show | None:
        """The video to play next: one generated for this user when it is ready, else the best unseen existing
        one. None when there is nothing to show yet (an empty library, or only videos still generating)."""
        with self._lock:
            st = self._user(user)
            ready = [o for o in st.queue if o.video_id]
            if ready:
                order = ready[0]
                st.queue.remove(order)
                show = Show(order.video_id, order.prompt, "generated for you", order.expected)
            elif self.config.reuse:
                population = self.population.mean()
                row, score = self._best_reuse(st, self._weights(st, population), population)
                if row is None:
                    return None
                vid = self._ids[row]
                show = Show(vid, self.videos[vid].prompt, "reused" if st.model.n else "popular", score)
            else:
                return None
            st.seen.add(show.video_id)
            st.recent = (st.recent + [self.videos[show.video_id].concept])[-self.config.recent:]
            self._save_user(user, st)
            return show

    def fulfil(self, ticket: str, video_id: str, device_s: float | None = None) -> None:
        """An Order's video is done: it joins the library (for everyone) and its user's queue shows it."""
        with self._lock:
            user = self._orders.pop(ticket, None)
            if user is None:
                raise InvalidRequest("ticket", ticket, "an open order from Feed.plan()")
            st = self._user(user)
            order = next(o for o in st.queue if o.ticket == ticket)
            order.video_id = str(video_id)
            self.add_video(order.video_id, order.prompt, order.concept, "generated", device_s or order.device_s)
            if device_s is not None:
                st.spent_s += device_s - order.device_s
            self._save_user(user, st)

    def cancel(self, ticket: str) -> None:
        """An Order that will not be made (its job failed or was cancelled): refund its estimate."""
        with self._lock:
            user = self._orders.pop(ticket, None)
            if user is None:
                return
            st = self._user(user)
            for o in [o for o in st.queue if o.ticket == ticket]:
                st.queue.remove(o)
                st.spent_s -= o.device_s
            self._save_user(user, st)

    # -- events --

    def record(self, user: str, event: str, video_id: str, fraction: float | None = None) -> None:
        """One event from the player: "view_start", "watch" (fraction of the video watched, 0-1), "like" or
        "skip" (fraction optional). A view ends at a skip or the next view_start; then the user's model learns
        its enjoyment. A like after its view ended still counts."""
        with self._lock:
            if event not in EVENTS:
                raise InvalidRequest("event", event, " | ".join(EVENTS))
            if video_id not in self._row:
                raise InvalidRequest("video_id", video_id, "a video in the feed's library")
            if fraction is not None and (not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1):
                raise InvalidRequest("fraction", fraction, "a number from 0 to 1 (the part of the video watched)")
            st = self._user(user)
            view = st.open_view
            if event == "like" and (view is None or view["video"] != video_id) and st.last_closed \
                    and st.last_closed["video"] == video_id and not st.last_closed["liked"]:
                self._relike(st)
            else:
                if view is not None and (event == "view_start" or view["video"] != video_id):
                    self._close(st)
                if st.open_view is None:
                    st.open_view = {"video": video_id, "fraction": 0.0, "liked": False}
                    st.seen.add(video_id)
                view = st.open_view
                if fraction is not None:
                    view["fraction"] = max(view["fraction"], float(fraction))
                if event == "like":
                    view["liked"] = True
                if event == "skip":
                    self._close(st)
            if self.store:
                self.store.log(user, video_id, event, fraction)
            self._save_user(user, st)

    def end_view(self, user: str) -> None:
        """Close the open view now (e.g. the session ended) so the model learns from it."""
        with self._lock:
            st = self._user(user)
            if st.open_view:
                self._close(st)
                self._save_user(user, st)

    def _close(self, st: UserState) -> None:
        view, st.open_view = st.open_view, None
        y = enjoyment(view["fraction"], view["liked"], self.config.like_weight)
        row = self._row[view["video"]]
        x = self._X.array[row]
        st.model.update(x, y)
        self.population.update(x, y)
        self._stats.array[row] += (1.0, y, float(view["liked"]))
        st.views, st.views_today, st.likes = st.views + 1, st.views_today + 1, st.likes + view["liked"]
        if view["liked"] or view["fraction"] >= 0.9:
            st.liked = (st.liked + [view["video"]])[-20:]
        st.last_closed = {**view, "y": y}
        self._save_video(row)

    def _relike(self, st: UserState) -> None:
        last = st.last_closed
        row = self._row[last["video"]]
        x, y = self._X.array[row], enjoyment(last["fraction"], True, self.config.like_weight)
        for model in (st.model, self.population):
            model.update(x, last["y"], weight=-1)
            model.update(x, y)
        self._stats.array[row] += (0.0, y - last["y"], 1.0)
        st.likes += 1
        st.liked = (st.liked + [last["video"]])[-20:]
        last.update(liked=True, y=y)
        self._save_video(row)

    # -- persistence --

    def _save_user(self, user: str, st: UserState) -> None:
        if self.store:
            self.store.put_user(user, st.to_dict())
            self._save_shared()

    def _save_video(self, row: int) -> None:
        if self.store:
            self.store.put_stats(self._ids[row], tuple(map(float, self._stats.array[row])))

    def _save_shared(self) -> None:
        self.store.put_meta("population", self.population.to_dict())


# --- the store ---------------------------------------------------------------------------------------------

class FeedStore:
    """One SQLite file (stdlib) for a Feed: the library with its embeddings and view counts, every user's
    state (taste model, queue, budget) as JSON, the event log, and the shared state (feature basis, population
    model). Safe to share between threads; WAL lets readers go on while one writes."""

    def __init__(self, path):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript("""
                CREATE TABLE IF NOT EXISTS videos (id TEXT PRIMARY KEY, prompt TEXT, concept TEXT, source TEXT,
                    cost_s REAL, embedding BLOB, views REAL, enjoyment REAL, likes REAL, created REAL);
                CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, state TEXT, updated REAL);
                CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, ts REAL, user TEXT, video TEXT,
                    type TEXT, fraction REAL);
                CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);""")

    def _run(self, sql: str, args=()) -> list:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def put_video(self, video: Video, embedding: np.ndarray, stats) -> None:
        self._run("INSERT OR REPLACE INTO videos VALUES (?,?,?,?,?,?,?,?,?,?)",
                  (video.id, video.prompt, json.dumps(video.concept.to_dict()), video.source, video.cost_s,
                   np.asarray(embedding, "<f4").tobytes(), *stats, time.time()))

    def put_stats(self, video_id: str, stats) -> None:
        self._run("UPDATE videos SET views=?, enjoyment=?, likes=? WHERE id=?", (*stats, video_id))

    def videos(self):
        for row in self._run("SELECT id, prompt, concept, source, cost_s, embedding, views, enjoyment, likes "
                             "FROM videos ORDER BY created, rowid"):
            video = Video(row[0], row[1], Concept.from_dict(json.loads(row[2])), row[3], row[4])
            yield video, np.frombuffer(row[5], "<f4"), row[6:9]

    def put_user(self, user: str, state: dict) -> None:
        self._run("INSERT OR REPLACE INTO users VALUES (?,?,?)", (user, json.dumps(state), time.time()))

    def users(self):
        for user, state in self._run("SELECT id, state FROM users"):
            yield user, json.loads(state)

    def log(self, user: str, video: str, event: str, fraction: float | None) -> None:
        self._run("INSERT INTO events (ts, user, video, type, fraction) VALUES (?,?,?,?,?)",
                  (time.time(), user, video, event, fraction))

    def events(self, user: str | None = None) -> list[tuple]:
        if user is None:
            return self._run("SELECT ts, user, video, type, fraction FROM events ORDER BY id")
        return self._run("SELECT ts, user, video, type, fraction FROM events WHERE user=? ORDER BY id", (user,))

    def put_meta(self, key: str, value: dict) -> None:
        self._run("INSERT OR REPLACE INTO meta VALUES (?,?)", (key, json.dumps(value)))

    def get_meta(self, key: str) -> dict | None:
        rows = self._run("SELECT value FROM meta WHERE key=?", (key,))
        return json.loads(rows[0][0]) if rows else None

    def close(self) -> None:
        with self._lock:
            self._db.close()


# --- simulated users (offline evaluation) ------------------------------------------------------------------

def population_taste(seed: int = 0) -> dict[str, dict[str, float]]:
    """What the population likes on average: a standard normal utility per attribute value."""
    rng = random.Random(f"population:{seed}")
    return {a: {v: rng.gauss(0, 1) for v in VALUES[a]} for a in ATTRIBUTES}


@dataclass
class SimulatedUser:
    """A viewer with a hidden taste: utility(concept) = Σ over attributes of taste[attribute][value].

    A view's watch fraction is sigmoid(slope · (utility − satiation · overlap with the last views + noise)), and
    it is liked with probability sigmoid(3 · (that same sum − like_threshold)); below `skip_below` the viewer
    swipes away. Satiation makes the same thing over and over worth less, as it is for people.
    """
    taste: dict
    noise: float = 0.5
    slope: float = 1.6
    satiation: float = 1.0
    like_threshold: float = 1.2
    skip_below: float = 0.3

    @classmethod
    def draw(cls, rng: random.Random, population: dict | None = None, share: float = 0.6, **kw) -> "SimulatedUser":
        """A user whose taste is `share` the population's and the rest their own; they care most about two
        attributes. Utility has unit variance over uniformly drawn concepts."""
        focus = rng.sample(ATTRIBUTES, 2)
        weight = {a: (1.0 if a in focus else 0.35) for a in ATTRIBUTES}
        norm = math.sqrt(sum(w * w for w in weight.values()))
        own = math.sqrt(1 - share ** 2)
        taste = {a: {v: weight[a] / norm * (share * (population[a][v] if population else 0.0)
                                            + (own if population else 1.0) * rng.gauss(0, 1))
                     for v in VALUES[a]} for a in ATTRIBUTES}
        return cls(taste, **kw)

    def utility(self, concept: Concept) -> float:
        return sum(self.taste[a][v] for a in ATTRIBUTES if (v := getattr(concept, a)) is not None)

    def watch(self, concept: Concept, recent: list[Concept], rng: random.Random) -> tuple[float, bool]:
        """(watch fraction, liked) of one view, given the concepts of the last views (newest last)."""
        tired = sum(overlap(concept, r) for r in recent[-5:]) / 5
        u = self.utility(concept) - self.satiation * tired + rng.gauss(0, self.noise)
        fraction = 1 / (1 + math.exp(-self.slope * u))
        liked = rng.random() < 1 / (1 + math.exp(-3 * (u - self.like_threshold)))
        return (fraction, liked) if fraction >= self.skip_below else (fraction, False)


# --- the feed page -----------------------------------------------------------------------------------------

_FEED_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>__TITLE__</title><style>
html,body{margin:0;height:100%;background:#000;color:#fff;font-family:system-ui,sans-serif}
#feed{height:100%;max-width:calc(100vh*9/16);margin:auto;overflow-y:scroll;scroll-snap-type:y mandatory}
.item{height:100%;scroll-snap-align:start;position:relative;display:flex;align-items:center}
video{width:100%;height:100%;object-fit:cover;background:#111}
.side{position:absolute;right:.8rem;bottom:5rem;display:flex;flex-direction:column;gap:1rem}
.side button{font-size:1.6rem;background:#0006;color:#fff;border:0;border-radius:50%;width:3.2rem;height:3.2rem}
.liked{color:#f36!important}.caption{position:absolute;left:.8rem;bottom:1.2rem;right:4.5rem;font-size:.9rem}
#empty{text-align:center;padding-top:45vh;color:#aaa}
#keybox{position:fixed;top:1rem;left:0;right:0;text-align:center}</style></head>
<body><div id="feed"><div id="empty">Making your first videos…</div></div>
<div id="keybox" hidden><input id="key" placeholder="Sign in: your API key (sk-sl-…)" size="34"></div><script>
const API=__API__,VIDEOS=__VIDEOS__,feed=document.getElementById('feed');
const headers={'Content-Type':'application/json'};const key=localStorage.getItem('straightline-key');
if(key)headers['Authorization']='Bearer '+key;
const send=(event,id,fraction)=>fetch(API+'/events',{method:'POST',headers,
  body:JSON.stringify({event,video_id:id,fraction})});
let loading=false;
async function more(){if(loading)return;loading=true;
 try{const r=await fetch(API+'/next',{headers});
  if(r.status===200){const s=await r.json();add(s);document.getElementById('empty')?.remove();}
  else{if(r.status===401)document.getElementById('keybox').hidden=false;setTimeout(more,2000);}}
 finally{loading=false;}}
document.getElementById('key').onchange=e=>{localStorage.setItem('straightline-key',e.target.value.trim());
 location.reload();};
function add(s){const d=document.createElement('div');d.className='item';d.dataset.id=s.video_id;
 d.innerHTML='<video playsinline muted loop preload="auto"></video><div class="side"><button class="like">&#9829;'+
  '</button><button class="skip">&#8595;</button></div><div class="caption"></div>';
 d.querySelector('video').src=VIDEOS+'/'+s.video_id+'/content';d.querySelector('.caption').textContent=s.prompt;
 d.seen=0;d.querySelector('video').addEventListener('timeupdate',e=>{const v=e.target;
  if(v.duration)d.seen=Math.max(d.seen,Math.min(1,v.currentTime/v.duration+(d.loops||0)));});
 d.querySelector('video').addEventListener('seeked',()=>{d.loops=1;});
 d.querySelector('.like').onclick=e=>{e.target.classList.add('liked');send('like',s.video_id);};
 d.querySelector('.skip').onclick=()=>{send('skip',s.video_id,d.seen);d.skipped=1;
  d.nextElementSibling?.scrollIntoView({behavior:'smooth'});};
 d.ondblclick=()=>d.querySelector('.like').click();feed.appendChild(d);watcher.observe(d);}
const watcher=new IntersectionObserver(entries=>{for(const e of entries){const d=e.target,v=d.querySelector('video');
 if(e.isIntersecting){v.play();send('view_start',d.dataset.id);
  if(!d.nextElementSibling?.nextElementSibling)more();}
 else if(!v.paused){v.pause();if(!d.skipped)send(d.seen<0.3?'skip':'watch',d.dataset.id,d.seen);}}},{threshold:.6});
more().then(more);
</script></body></html>
"""


def feed_html(title: str = "straightline", api_url: str = "/v1/feed", videos_url: str = "/v1/feed/videos") -> str:
    """The vertical feed page (9:16, one video per screen, swipe up for the next; no build step).

    It calls `GET {api_url}/next` (200 with Show's fields, or any other status for "nothing yet, ask again"),
    `POST {api_url}/events` with {"event", "video_id", "fraction"} (view_start when a video comes into view;
    watch with the fraction seen, or skip below 0.3, when it leaves; like on the heart or a double tap), and
    plays `{videos_url}/ID/content`. An API key in localStorage['straightline-key'] is sent as a bearer token.
    """
    return (_FEED_PAGE.replace("__TITLE__", title.replace("<", "&lt;"))
            .replace("__API__", json.dumps(api_url)).replace("__VIDEOS__", json.dumps(videos_url)))
