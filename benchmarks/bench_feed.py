"""Offline evaluation of the feed with simulated users: does it learn a taste, and at what compute?

    python benchmarks/bench_feed.py --users 100 --views 100 --out docs/feed.png

A world of one library and many users. The library starts with --library existing videos (ToyWorld scenes
framed 9:16, registered with their short or medium caption as a service would: the concept parsed from the
caption). --background users (tastes drawn like everyone's) watch --background-views random videos each, so
the library has view counts and the population model has something to start from. Then --users simulated
users (feed.SimulatedUser: a hidden taste over colour, shape, motion, background and camera, noisy watching,
satiation when the same thing comes again) each watch --views videos, taking turns, under each policy:

    random       a random unseen library video                     (no new compute)
    popularity   the unseen library video with the best mean enjoyment so far (shrunk toward the mean)
    feed         feed.Feed: taste model, reuse or generate by expected gain per device-second, within budget
    feed-reuse   the same with a zero budget: the taste model choosing among existing videos only
    feed-fresh   the same taste model, but every view a freshly generated video ("generate everything fresh")

A generated video shows what it was asked for attribute by attribute with probability --adherence (else a
random value): the model is not perfect, and the feed only knows what it asked for. Every policy starts from
the same library and background views and sees the same users (same seeds). Cost is the feed's own estimate
(feed.CostModel, consistent with dit.flops_per_token) of the generations each policy ordered.

Prints a Markdown table (95% intervals over users: normal for means, bootstrap for device-seconds per like) and
writes a PNG of watch fraction and like rate over views. Embeddings are MiniLM's (cached in
~/.cache/straightline/feed_minilm.npz; new concepts are drawn from the cached ones), or --embedder hashing.
"""

import argparse
import datetime
import math
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from straightline.feed import (
    ATTRIBUTES,
    VALUES,
    Concept,
    CostModel,
    Embedder,
    FeatureMap,
    Feed,
    FeedConfig,
    SimulatedUser,
    concept_from_prompt,
    concept_from_scene,
    hashing_embedder,
    is_valid,
    overlap,
    population_taste,
    reference_concepts,
)
from straightline.world.captions import captions
from straightline.world.scene import sample_scene

POLICIES = ("random", "popularity", "feed", "feed-reuse", "feed-fresh")
CHECKPOINTS = (20, 50, 100)
CACHE = Path.home() / ".cache" / "straightline" / "feed_minilm.npz"


def realise(concept: Concept, rng: random.Random, adherence: float) -> Concept:
    """What a generated video really shows: each attribute as asked with probability `adherence`."""
    for _ in range(100):
        c = Concept(*(v if rng.random() < adherence else rng.choice(VALUES[a])
                      for a, v in zip(ATTRIBUTES, (getattr(concept, a) for a in ATTRIBUTES))))
        if is_valid(c):
            return c
    return concept


class World:
    """The shared starting point: embedder, feature basis, library, the population's taste, the users."""

    def __init__(self, args):
        if args.embedder == "minilm":
            self.embedder = Embedder(cache_path=CACHE)
            cached = set(self.embedder.cache)
            self.pool = None
        else:
            self.embedder, cached, self.pool = Embedder(hashing_embedder()), None, None
        self.library = []          # (id, caption, true concept)
        for seed in range(args.library):
            scene = sample_scene(10_000 + seed, aspect=9 / 16)
            words = captions(scene, events=[])["short" if seed % 2 else "medium"]
            self.library.append((f"lib{seed}", words, concept_from_scene(scene)))
        self.embedder([text for _, text, _ in self.library])       # encoded once, then cached
        reference = reference_concepts()
        self.feature_map = FeatureMap.fit(self.embedder([c.prompt for c in reference]), args.text_dims,
                                          scene_weight=args.scene_weight)
        if cached is not None:
            self.embedder.save()
            # new ideas come from the concepts whose embeddings are cached (bench_feed --embed makes them)
            self.pool = [c for c in _all_concepts() if c.prompt in cached]
            if len(self.pool) < 1000:
                sys.exit(f"only {len(self.pool)} concepts are embedded in {CACHE}: run with --embed first")
        self.population = population_taste(args.seed)
        rng = random.Random(f"users:{args.seed}")
        self.users = [SimulatedUser.draw(rng, self.population) for _ in range(args.users)]
        self.background = [SimulatedUser.draw(rng, self.population) for _ in range(args.background)]
        self.cost = CostModel.from_model()


def _all_concepts() -> list[Concept]:
    import itertools
    return [c for c in (Concept(*v) for v in itertools.product(*(VALUES[a] for a in ATTRIBUTES))) if is_valid(c)]


def make_feed(policy: str, world: World, args) -> tuple[Feed, dict]:
    policy, _, gain = policy.partition("@")          # "feed@0.005": the feed at another price of compute
    config = FeedConfig(seed=args.seed, daily_budget_s=args.budget, gain_per_device_s=float(gain or args.gain),
                        text_dims=args.text_dims, diversity=args.diversity, prior=args.prior,
                        explore=args.explore, residual=args.residual)
    if policy == "feed-reuse":
        config.daily_budget_s = 0.0
    if policy == "feed-fresh":
        config.reuse, config.daily_budget_s = False, math.inf
    feed = Feed(embedder=world.embedder, cost=world.cost, config=config, pool=world.pool,
                feature_map=world.feature_map, today=lambda: "day 1")   # one simulated day, whatever the clock
    truth = {}
    for vid, text, true in world.library:
        feed.add_video(vid, text, concept_from_prompt(text))
        truth[vid] = true
    rng = random.Random(f"background:{args.seed}")
    ids = [vid for vid, _, _ in world.library]
    for b, user in enumerate(world.background):
        recent = []
        for vid in rng.sample(ids, args.background_views):
            fraction, liked = user.watch(truth[vid], recent, rng)
            recent.append(truth[vid])
            _view(feed, f"bg{b}", vid, fraction, liked)
        feed.end_view(f"bg{b}")
    return feed, truth


def _view(feed: Feed, user: str, vid: str, fraction: float, liked: bool) -> None:
    feed.record(user, "view_start", vid)
    feed.record(user, "watch", vid, fraction=fraction)
    if liked:
        feed.record(user, "like", vid)
    if fraction < 0.3:
        feed.record(user, "skip", vid)


def run(policy: str, world: World, args) -> dict:
    """Every user watches args.views videos under `policy`, taking turns. Per user and view: watch fraction,
    liked, device-seconds ordered, and the concept shown."""
    feed, truth = make_feed(policy, world, args)
    n, V = len(world.users), args.views
    out = {"fraction": np.zeros((n, V)), "liked": np.zeros((n, V)), "device_s": np.zeros((n, V)),
           "orders": np.zeros((n, V)), "generated_shown": np.zeros((n, V)), "stall_s": np.zeros((n, V)),
           "shown": [[] for _ in range(n)]}
    clock = [0.0] * n              # each user's time: a view lasts 2 s x fraction watched, plus 0.5 s to swipe
    pending = [[] for _ in range(n)]   # (ready at, ticket, video id) of orders being generated
    rngs = [random.Random(f"{args.seed}:{policy}:{u}") for u in range(n)]   # the users' noise: same per policy
    watch_rngs = [random.Random(f"watch:{args.seed}:{u}") for u in range(n)]
    gen_rng = random.Random(f"adherence:{args.seed}")
    for t in range(V):
        for u, user in enumerate(world.users):
            uid = f"user{u}"
            if policy in ("random", "popularity"):
                seen = feed.users[uid].seen if uid in feed.users else set()
                rows = [i for i, vid in enumerate(feed._ids) if vid not in seen]
                if policy == "random":
                    vid = feed._ids[rngs[u].choice(rows)]
                else:
                    pop = feed.popularity()
                    vid = feed._ids[max(rows, key=lambda i: pop[i])]
            else:
                for order in feed.plan(uid):
                    vid = f"gen-{order.ticket[:12]}"
                    truth[vid] = realise(order.concept, gen_rng, args.adherence)
                    latency = order.device_s if args.latency == "device" else 0.0
                    pending[u].append((clock[u] + latency, order.ticket, vid))
                    out["device_s"][u, t] += order.device_s
                    out["orders"][u, t] += 1
                show = None
                while show is None:
                    for ready in [p for p in pending[u] if p[0] <= clock[u]]:
                        pending[u].remove(ready)
                        feed.fulfil(ready[1], ready[2])
                    show = feed.next(uid)
                    if show is None:       # only generated videos to show, none ready: the user waits
                        wait = min(p[0] for p in pending[u]) - clock[u]
                        out["stall_s"][u, t] += wait
                        clock[u] += wait
                vid = show.video_id
                out["generated_shown"][u, t] = show.reason == "generated for you"
            shown = out["shown"][u]
            fraction, liked = user.watch(truth[vid], shown, watch_rngs[u])
            shown.append(truth[vid])
            out["fraction"][u, t], out["liked"][u, t] = fraction, liked
            clock[u] += 2.0 * fraction + 0.5
            _view(feed, uid, vid, fraction, liked)
        if args.verbose and (t + 1) % 10 == 0:
            print(f"  {policy}: {t + 1} views, like rate so far {out['liked'][:, :t + 1].mean():.3f}",
                  file=sys.stderr)
    out["library_end"] = len(feed._ids)
    return out


def _mean_ci(values) -> tuple[float, float]:
    values = list(values)
    m = statistics.fmean(values)
    half = 1.96 * statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return m, half


def _per_like_ci(device_s: np.ndarray, liked: np.ndarray, rng: np.random.Generator) -> tuple[float, float, float]:
    """Device-seconds per like: ratio of sums over users, with a 95% bootstrap interval over users."""
    d, k = device_s.sum(1), liked.sum(1)
    point = d.sum() / max(k.sum(), 1)
    boot = []
    for _ in range(2000):
        i = rng.integers(0, len(d), len(d))
        boot.append(d[i].sum() / max(k[i].sum(), 1))
    return point, *np.percentile(boot, [2.5, 97.5])


def diversity(shown: list[list[Concept]], last: int = 20) -> float:
    """Mean attribute overlap between pairs of the last `last` videos a user saw (uniform random ≈ 0.1)."""
    values = []
    for concepts in shown:
        tail = concepts[-last:]
        pairs = [(a, b) for i, a in enumerate(tail) for b in tail[i + 1:]]
        values.append(statistics.fmean(overlap(a, b) for a, b in pairs))
    return statistics.fmean(values)


def paired(results: dict, checkpoints, against=("random", "popularity")) -> str:
    """Per-user differences (same users, same library) of each feed policy against the baselines."""
    lines = ["| policy | vs | views | Δ watch fraction | Δ like rate |", "|---|---|---|---|---|"]
    for policy, r in results.items():
        for base in (b for b in against if b in results and not policy.startswith(("random", "popularity"))):
            for n in checkpoints:
                cells = []
                for key in ("fraction", "liked"):
                    m, h = _mean_ci(r[key][:, :n].mean(1) - results[base][key][:, :n].mean(1))
                    cells.append(f"{m:+.3f} ± {h:.3f}")
                lines.append(f"| {policy} | {base} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table(results: dict, checkpoints, n_users: int) -> str:
    rng = np.random.default_rng(0)
    header = ("| policy | views | watch fraction | like rate | new videos / view | device-s / view | device-s / like "
              "| wait s / view | overlap of last 20 |")
    lines = [header,
             "|---|---|---|---|---|---|---|---|---|"]
    for policy, r in results.items():
        for n in checkpoints:
            if n > r["fraction"].shape[1]:
                continue
            f, fh = _mean_ci(r["fraction"][:, :n].mean(1))
            lk, lh = _mean_ci(r["liked"][:, :n].mean(1))
            d = r["device_s"][:, :n]
            gen = r["orders"][:, :n].mean()
            per_view = d.sum() / d.size
            point, lo, hi = _per_like_ci(d, r["liked"][:, :n], rng)
            per_like = f"{point:.2f} [{lo:.2f}, {hi:.2f}]" if d.any() else "0 (library only)"
            div = f"{diversity([s[:n] for s in r['shown']]):.2f}" if n == checkpoints[-1] else ""
            wait = r["stall_s"][:, :n].mean()
            lines.append(f"| {policy} | {n} | {f:.3f} ± {fh:.3f} | {lk:.3f} ± {lh:.3f} | {gen:.2f} | "
                         f"{per_view:.2f} | {per_like} | {wait:.1f} | {div} |")
    return "\n".join(lines) + f"\n\nn = {n_users} simulated users per policy; ± is a 95% interval over users."


def plot(results: dict, path: Path, window: int = 10) -> None:
    """Two panels (watch fraction, like rate) of the mean over users, as a running mean over `window` views."""
    from PIL import Image, ImageDraw
    colours = {"random": (150, 150, 150), "popularity": (230, 150, 30), "feed": (30, 110, 220),
               "feed-reuse": (120, 190, 240), "feed-fresh": (200, 50, 50), "feed@0.005": (60, 170, 90)}
    W, H, pad = 1200, 460, 60
    img = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(img)
    panels = [("watch fraction", "fraction", 0.3, 1.0), ("like rate", "liked", 0.0, 0.8)]
    pw = (W - 3 * pad) // 2
    for p, (title, key, lo, hi) in enumerate(panels):
        x0, y0, x1, y1 = pad + p * (pw + pad), 40, pad + p * (pw + pad) + pw, H - pad
        draw.rectangle([x0, y0, x1, y1], outline="black")
        draw.text((x0, 15), f"{title} (running mean over {window} views, mean over users)", fill="black")
        for k in range(6):
            v = lo + (hi - lo) * k / 5
            y = y1 - (y1 - y0) * k / 5
            draw.line([x0 - 4, y, x0, y], fill="black")
            draw.text((x0 - 40, y - 6), f"{v:.2f}", fill="black")
        views = next(iter(results.values()))[key].shape[1]
        for k in range(0, views + 1, 20):
            x = x0 + (x1 - x0) * k / views
            draw.line([x, y1, x, y1 + 4], fill="black")
            draw.text((x - 8, y1 + 8), str(k), fill="black")
        draw.text(((x0 + x1) // 2 - 20, y1 + 24), "views", fill="black")
        for i, (policy, r) in enumerate(results.items()):
            curve = r[key].mean(0)
            smooth = [curve[max(0, t - window + 1):t + 1].mean() for t in range(len(curve))]
            pts = [(x0 + (x1 - x0) * (t + 1) / views, y1 - (y1 - y0) * (min(max(v, lo), hi) - lo) / (hi - lo))
                   for t, v in enumerate(smooth)]
            draw.line(pts, fill=colours.get(policy, (0, 0, 0)), width=3)
            if p == 0:      # the legend, low in the left panel, where the curves are not
                draw.text((x0 + 10, y1 - 12 - 16 * (len(results) - i)), policy, fill=colours.get(policy, (0, 0, 0)))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def embed_all(batch: int = 1024) -> None:
    """Embed every concept's prompt with MiniLM into the cache, in a shuffled order (a partial cache is a uniform
    sample); resumable."""
    embedder = Embedder(cache_path=CACHE)
    concepts = _all_concepts()
    random.Random(0).shuffle(concepts)
    todo = [c.prompt for c in concepts if c.prompt not in embedder.cache]
    print(f"{len(concepts)} concepts, {len(todo)} to embed", file=sys.stderr)
    for i in range(0, len(todo), batch):
        embedder(todo[i:i + batch])
        embedder.save()
        print(f"  {min(i + batch, len(todo))}/{len(todo)}", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--views", type=int, default=100)
    ap.add_argument("--library", type=int, default=400, help="existing videos at the start")
    ap.add_argument("--background", type=int, default=200, help="background users who made the view counts")
    ap.add_argument("--background-views", type=int, default=10)
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--budget", type=float, default=600.0, help="device-seconds per user and day")
    ap.add_argument("--gain", type=float, default=FeedConfig.gain_per_device_s,
                    help="enjoyment a generation must add per device-second")
    ap.add_argument("--diversity", type=float, default=FeedConfig.diversity)
    ap.add_argument("--text-dims", type=int, default=FeedConfig.text_dims)
    ap.add_argument("--scene-weight", type=float, default=FeedConfig.scene_weight,
                    help="weight of the one-hot attributes among the features (0: the prompt embedding alone)")
    ap.add_argument("--prior", type=float, default=FeedConfig.prior)
    ap.add_argument("--explore", type=float, default=FeedConfig.explore)
    ap.add_argument("--residual", type=float, default=FeedConfig.residual)
    ap.add_argument("--adherence", type=float, default=0.9, help="chance a generated video shows each attribute asked")
    ap.add_argument("--latency", choices=["none", "device"], default="none",
                    help="none: a generated video is ready at once; device: after its device-seconds (a free device)")
    ap.add_argument("--embedder", choices=["minilm", "hashing"], default="minilm")
    ap.add_argument("--embed", action="store_true", help="embed every concept into the cache first")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="docs/feed.png")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    if args.embed:
        embed_all()
    start = time.time()
    world = World(args)
    results = {}
    for policy in args.policies.split(","):
        t = time.time()
        results[policy] = run(policy, world, args)
        print(f"{policy}: {time.time() - t:.0f} s", file=sys.stderr)
    print(f"# bench_feed  {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, "
          f"{platform.processor() or platform.machine()}, "
          f"{args.users} users x {args.views} views, library {args.library} (+ generated), "
          f"{len(world.pool or [])} concepts to draw ideas from, embedder {args.embedder}, "
          f"a generated video costs {world.cost.device_seconds(_request()):.1f} device-s (CPU cost model), "
          f"budget {args.budget:g} device-s/day, gain {args.gain:g}/device-s, adherence {args.adherence:g}, "
          f"latency {args.latency}, scene weight {args.scene_weight:g}, "
          f"{time.time() - start:.0f} s\n")
    checkpoints = [c for c in CHECKPOINTS if c <= args.views] or [args.views]
    print(table(results, checkpoints, args.users))
    print("\nPaired differences (the same users under both policies), 95% intervals:\n")
    print(paired(results, checkpoints))
    plot(results, Path(args.out))
    print(f"\nplot: {args.out}")


def _request():
    from straightline.pipeline import validate_request
    return validate_request("a ball", seed=0, **FeedConfig().request)


if __name__ == "__main__":
    main()
