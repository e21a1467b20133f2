"""Physics: does a generated clip move the way ToyWorld's simulator would? (the "world simulator" test, after the
2D-physics protocol of Kang et al., "How Far is Video Generation from World Model: A Physical Law Perspective",
2024).

    cases = physics_cases(8, "parabolic", "heldout")       # PhysicsCase(prompt, scene, kind, split, ...)
    records = run_physics(pipeline, cases, resolution=128, fps=12)
    rows = summarize(records)                              # per kind and split: metrics with 95% intervals

Three kinds of scene, each with a static camera:
    uniform     one object sliding (constant velocity)
    parabolic   one object bouncing or falling (gravity, floor and walls, restitution)
    collision   two objects sliding into each other on one layer (elastic)

From text (today): the prompt is the scene's long caption, which names every object's size, speed, direction and
starting third, so the motion is determined up to placement. Trajectories are read from the pixels by
world.perception (the object's track is the one of its colour) and measured against the physics, never against
exact positions (a text prompt does not fix them):
    speed error       |fitted velocity - true velocity| / |true velocity| (uniform: the object; parabolic:
                      the horizontal velocity of a bounce), fitted over the frames before any collision
    acceleration      |a| of a quadratic fit to a uniform motion, short sides / s^2 (0 for the truth)
    extrapolation     a constant-velocity continuation of the first half of a uniform track vs its second
                      half: RMS position error in short sides (0 for the truth)
    gravity           fitted to the first descent (y = a + b t - g t^2 / 2), as a ratio to the world's g;
                      mean and spread (std) across clips
    energy            apex height after the first floor bounce / drop height before it, over the world's value
                      restitution^2 (0.64 bounce, 0.12 fall), so 1 is right; a raw ratio above 1.05 is energy
                      from nowhere ("energy gained")
    collision error   post-collision velocities vs an elastic collision (masses from the scene) of the
                      *measured* pre-collision velocities, relative to the approach speed
Splits: "in-distribution" (scenes of the training distribution) vs "held-out" (the moving object is one of the
world's held-out colour x shape x motion triples).

With frame conditioning (`condition=True`): the model is given the first CONDITION_FRAMES frames of the
ground-truth clip and continues it (pipeline's extend mode, `continue_clip`); then positions are comparable, and
"position error" (RMS, short sides, after the given frames) against the simulator's continuation is added. The
splits become in-distribution vs out-of-distribution speeds (OOD_TIME_SCALE: the world played faster, so speeds
and gravity leave the trained range) and sizes (OOD_ZOOM: a closer view, objects larger than "large"), which no
caption can ask for. Motion metrics are then measured over the whole clip, given frames included (a descent may
be over before they end), so they are diluted towards the truth; position error counts only the new frames.
"""

import inspect
import math
from typing import NamedTuple

import torch

from ..request import parse_aspect
from ..world import captions, render, simulate, vocab
from ..world.perception import perceive
from ..world.physics import COLLISION_RADIUS, initial_velocity
from ..world.scene import Scene
from . import stats
from .adherence import SEED_BASE, case_scene

KINDS = ("uniform", "parabolic", "collision")
MOTIONS = {"uniform": ("slide",), "parabolic": ("bounce", "fall"), "collision": ("slide",)}
SCENARIOS = {"uniform": "single", "parabolic": "single", "collision": "collision"}
CONDITION_FRAMES = 5          # one latent frame plus one group of four (DESIGN.md: 1 + 4k frames)
OOD_TIME_SCALE = 1.6          # "ood speed": the world played 1.6x faster (speeds x1.6, gravity x2.56)
OOD_ZOOM = 1.5                # "ood size": a 1.5x closer view (a large object is 0.24 short sides)
ENERGY_GAIN = 1.05            # energy ratio above this: a bounce gained energy
SPLIT_SEED = {"train": 1 << 30, "heldout": 2 << 30}


class PhysicsCase(NamedTuple):
    prompt: str
    scene: Scene
    kind: str
    split: str                # "in-distribution", "held-out", "ood speed", "ood size"
    time_scale: float = 1.0   # ground truth is the scene played this much faster
    zoom: float = 1.0         # ... seen this much closer


def _accept(scene: Scene, kind: str) -> bool:
    o = scene.objects[0]
    if not (scene.scenario == SCENARIOS[kind] and o.motion in MOTIONS[kind]):
        return False
    if kind != "collision":
        return True
    # the collision must leave a few frames either side of it inside the clip to be measured
    hits = [e["t"] for e in simulate(scene).events if e["type"] == "collision"]
    return bool(hits) and 0.4 <= hits[0] <= scene.duration - 0.5


def physics_cases(n: int, kind: str, split: str = "train", *, seed: int = 0, aspect="16:9",
                  seconds: float = 2.0) -> list[PhysicsCase]:
    """n deterministic cases of one kind: scenes drawn by sample_scene (static camera), kept when their
    scenario and first object's motion fit the kind. split "train" or "heldout" as in adherence.prompt_set."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}: expected one of {', '.join(KINDS)}")
    aspect = parse_aspect(aspect)
    cases, k = [], 0
    while len(cases) < n:
        scene = case_scene(SEED_BASE + SPLIT_SEED[split] + (seed << 24) + k, split, aspect, seconds, "static")
        k += 1
        if _accept(scene, kind):
            cases.append(PhysicsCase(captions(scene)["long"], scene, kind,
                                     "in-distribution" if split == "train" else "held-out"))
    return cases


def ood_cases(cases: list[PhysicsCase]) -> list[PhysicsCase]:
    """The same scenes out of distribution (for conditioning): played faster, and seen closer."""
    return ([c._replace(split="ood speed", time_scale=OOD_TIME_SCALE) for c in cases]
            + [c._replace(split="ood size", zoom=OOD_ZOOM) for c in cases])


def render_case(case: PhysicsCase, width: int, height: int, fps: float, num_frames: int):
    """Ground truth of a case: (frames uint8 (T, H, W, 3), centres (N, T, 2) px). Time scale k renders the scene
    at fps / k; zoom z renders z times larger and keeps the bottom-centre crop (the floor stays in view)."""
    W, H = round(width * case.zoom), round(height * case.zoom)
    clip = render(case.scene, W, H, fps=fps / case.time_scale, num_frames=num_frames)
    x0, y0 = (W - width) // 2, H - height          # anchored at the bottom: the floor stays in view
    frames = clip.frames[:, y0:y0 + height, x0:x0 + width].contiguous()
    return frames, clip.center - torch.tensor([x0, y0], dtype=clip.center.dtype)


# --- measuring one clip -------------------------------------------------------------------------------------

def _slope(t, y):
    t = t - t.mean()
    return (t[:, None] * (y - y.mean(0))).sum(0) / (t * t).sum().clamp(min=1e-12)


def _poly(t, y, degree):
    basis = torch.stack([t ** d for d in range(degree + 1)], 1)
    return torch.linalg.lstsq(basis, y).solution                      # (degree + 1, ...)


def _xy(track, short_side: int) -> torch.Tensor:
    return track.center.double() / short_side * torch.tensor([1.0, -1.0], dtype=torch.float64)   # y up


def _first_event(scene: Scene, i: int, until: float, scale: float) -> float:
    """Time (in the clip's seconds) of object i's first collision or wall bounce, inf if none."""
    hits = [e["t"] for e in simulate(scene, until=until * scale).events
            if (e["type"] == "collision" and i in e["objects"]) or
            (e["type"] == "bounce" and e["object"] == i and e["on"] == "wall")]
    return min(hits) / scale if hits else math.inf


def _seen(track, start, at_least):
    """Frames from `start` where the track is seen whole (a cut outline's centroid is off its centre), or
    merely present when fewer than `at_least` are whole."""
    after = torch.arange(len(track.present)) >= start
    whole = track.whole & after
    return whole if whole.sum() >= at_least else track.present & after


def _uniform(track, case, fps, short_side, start):
    o = case.scene.objects[0]
    T = len(track.present)
    t = torch.arange(T, dtype=torch.float64) / fps
    end = _first_event(case.scene, 0, T / fps, case.time_scale)
    keep = _seen(track, start, 4) & (t < end - 1.5 / fps)
    if keep.sum() < 4:
        return {"moved": False}
    t, xy = t[keep], _xy(track, short_side)[keep]
    truth = torch.tensor(initial_velocity(o), dtype=torch.float64) * case.time_scale * case.zoom
    velocity = _slope(t, xy)
    half = len(t) // 2
    first = _slope(t[:half], xy[:half]) if half >= 2 else velocity
    anchor = xy[:half].mean(0) - first * t[:half].mean()
    predicted = anchor + t[half:, None] * first
    return {"moved": float((xy[-1] - xy[0]).norm()) > 0.03,
            "speed error": float((velocity - truth).norm() / truth.norm()),
            "acceleration": float(2 * _poly(t - t[0], xy, 2)[2].norm()),
            "extrapolation": float((xy[half:] - predicted).norm(dim=1).pow(2).mean().sqrt())}


def _parabolic(track, case, fps, short_side, start):
    o = case.scene.objects[0]
    T = len(track.present)
    t_all = torch.arange(T, dtype=torch.float64) / fps
    keep = _seen(track, start, 5)
    if keep.sum() < 5:
        return {"descended": False}
    t, xy = t_all[keep], _xy(track, short_side)[keep]
    out = {"descended": False}
    rising = torch.nonzero(torch.diff(xy[:, 1]) > 0.005)[:, 0]
    low = int(rising[0]) if len(rising) else int(xy[:, 1].argmin())
    g_true = vocab.GRAVITY * case.zoom * case.time_scale ** 2
    # the descent is fitted without its lowest frame, which may already lie after the bounce
    if low >= 4 and float(xy[0, 1] - xy[low, 1]) > 0.05:
        out["descended"] = True
        out["gravity"] = float(-2 * _poly(t[:low] - t[0], xy[:low, 1], 2)[2]) / g_true
        if o.motion == "bounce":
            truth = abs(initial_velocity(o)[0]) * case.time_scale * case.zoom
            end = _first_event(case.scene, 0, T / fps, case.time_scale)
            window = t[:low + 1] < end - 1.5 / fps
            if window.sum() >= 3:
                vx = float(_slope(t[:low + 1][window], xy[:low + 1, :1][window])[0])
                out["speed error"] = abs(vx - math.copysign(truth, initial_velocity(o)[0])) / truth
        after = xy[low:, 1]
        apex = int(after.argmax())
        if 0 < apex < len(after) - 1:               # the apex is inside the clip, not its last frame
            ratio = float(after[apex] - after[0]) / float(xy[0, 1] - xy[low, 1])
            restitution = vocab.FALL_RESTITUTION if o.motion == "fall" else vocab.RESTITUTION
            out["energy"], out["energy ratio"] = ratio / restitution ** 2, ratio
    return out


def _collision(tracks, case, fps, short_side, start):
    a, b = tracks
    both = a.present & b.present & (torch.arange(len(a.present)) >= start)
    if both.sum() < 7:
        return {}
    t_all = torch.arange(len(both), dtype=torch.float64) / fps
    xa, xb = _xy(a, short_side), _xy(b, short_side)
    distance = (xa - xb).norm(dim=1).where(both, torch.tensor(math.inf, dtype=torch.float64))
    contact = int(distance.argmin())
    pre = both & (t_all < t_all[contact] - 0.1)
    post = both & (t_all > t_all[contact] + 0.1)
    if pre.sum() < 3 or post.sum() < 3:
        return {"collided": False}
    va, ua = _slope(t_all[pre], xa[pre]), _slope(t_all[post], xa[post])
    vb, ub = _slope(t_all[pre], xb[pre]), _slope(t_all[post], xb[post])
    ma, mb = ((o.radius * COLLISION_RADIUS[o.shape]) ** 2 for o in case.scene.objects[:2])
    normal = (xb[contact] - xa[contact]) / (xb[contact] - xa[contact]).norm().clamp(min=1e-9)
    approach = float((va - vb) @ normal)
    if approach <= 0 or (va - vb).norm() < 0.02:
        return {"collided": False}
    ea = va - 2 * mb / (ma + mb) * approach * normal
    eb = vb + 2 * ma / (ma + mb) * approach * normal
    return {"collided": True, "collision error": float(((ua - ea).norm() + (ub - eb).norm()) / (va - vb).norm())}


def measure(frames, fps: float, case: PhysicsCase, start: int = 0) -> dict:
    """Physics measurements of a clip of `case` from its pixels (module docstring), counting frames from
    `start` (after given frames). {"found": the object(s) of the case were perceived, metric: value, ...}."""
    frames = torch.as_tensor(frames)
    short_side = min(frames.shape[1:3])
    by_color = {t.color: t for t in perceive(frames)}
    objects = case.scene.objects[:2 if case.kind == "collision" else 1]
    tracks = [by_color.get(o.color) for o in objects]
    if any(t is None for t in tracks):
        return {"found": False}
    if case.kind == "uniform":
        return {"found": True, **_uniform(tracks[0], case, fps, short_side, start)}
    if case.kind == "parabolic":
        return {"found": True, **_parabolic(tracks[0], case, fps, short_side, start)}
    return {"found": True, **_collision(tracks, case, fps, short_side, start)}


def position_error(frames, centres: torch.Tensor, case: PhysicsCase, start: int) -> float | None:
    """RMS distance (short sides) from frame `start` on between the perceived track of the case's first object
    and its true centre (N, T, 2 px), over the frames where the truth shows the object whole inside the frame
    (a cut outline's centroid is off its centre); None if never seen there."""
    frames = torch.as_tensor(frames)
    T, H, W, _ = frames.shape
    short = min(H, W)
    track = next((t for t in perceive(frames) if t.color == case.scene.objects[0].color), None)
    if track is None:
        return None
    r = case.scene.objects[0].radius * case.zoom * short * 1.05
    x, y = centres[0, :T].unbind(-1)
    inside = (x - r >= 0) & (x + r <= W) & (y - r >= 0) & (y + r <= H)
    seen = track.present & inside
    seen[:start] = False
    if not seen.any():
        return None
    gap = (track.center[seen].double() - centres[0, :T][seen].double()).norm(dim=1) / short
    return float(gap.pow(2).mean().sqrt())


# --- generating and summarising -----------------------------------------------------------------------------

def can_condition(pipeline) -> bool:
    """True when the pipeline can continue given frames: its own continue_clip (eval.reference), or
    pipeline.validate_request's extend mode."""
    if hasattr(pipeline, "continue_clip"):
        return True
    from ..pipeline import validate_request
    return "mode" in inspect.signature(validate_request).parameters and hasattr(pipeline, "generate")


def continue_clip(pipeline, request, given: torch.Tensor):
    """Generate `request` as a continuation of the frames `given` (uint8 (K, H, W, 3)): pipeline.Pipeline's
    extend mode (forward), whose result starts with the given frames themselves; the reference pipeline's own
    continue_clip."""
    if hasattr(pipeline, "continue_clip"):
        return pipeline.continue_clip(request, given)
    from ..pipeline import validate_request
    extend = validate_request(request.prompt, mode="extend", video=given, frames=request.frames - len(given),
                              fps=request.fps, size=(request.width, request.height), steps=request.steps,
                              cfg=request.cfg, cfg_interval=request.cfg_interval, seed=request.seed,
                              sampler=request.sampler, negative=request.negative, info=pipeline.info)
    return pipeline.generate([extend])[0]


def _validate(pipeline, prompt, fields):
    if hasattr(pipeline, "validate") and "info" not in inspect.signature(pipeline.validate).parameters:
        return pipeline.validate(prompt, **fields)
    from ..pipeline import validate_request
    return validate_request(prompt, info=pipeline.info, **fields)


def run_physics(pipeline, cases: list[PhysicsCase], *, batch: int = 8, seed: int = 0, condition: bool | None = None,
                progress=None, keep=None, **request_fields) -> list[dict]:
    """Generate every case (from text, or continuing its ground truth's first CONDITION_FRAMES frames when
    `condition` — by default whenever the pipeline can) and measure clip and ground truth alike.

    Args:
        keep: called as keep(case, result, ground_truth_frames) for every clip (the report keeps them).
        request_fields: validate_request fields (resolution, fps, steps, cfg, ...); aspect and seconds are
            the scene's.
    Returns:
        one record per case: {"kind", "split", "prompt", "model": measure(...), "truth": measure(...) of the
        ground truth, "position error" when conditioned}.
    """
    condition = can_condition(pipeline) if condition is None else condition
    records = []
    for s in range(0, len(cases), batch):
        chunk = cases[s:s + batch]
        requests = [_validate(pipeline, c.prompt, {"aspect": c.scene.aspect, "seconds": c.scene.duration,
                                                   "seed": seed + s + j, **request_fields})
                    for j, c in enumerate(chunk)]
        truths = [render_case(c, r.width, r.height, r.fps, r.frames) for c, r in zip(chunk, requests)]
        if condition:
            results = []
            for (frames, _), r in zip(truths, requests):
                given = frames[:CONDITION_FRAMES].contiguous()
                if hasattr(pipeline, "know_continuation"):
                    pipeline.know_continuation(given, frames)
                results.append(continue_clip(pipeline, r, given))
        else:
            results = pipeline.generate(requests)
        for c, result, (frames, centres) in zip(chunk, results, truths):
            # motion is measured over the whole clip (a descent may be over before the given frames end);
            # positions only where the model chose them
            record = {"kind": c.kind, "split": f"{c.split}, given frames" if condition else c.split,
                      "prompt": c.prompt, "conditioned": condition,
                      "model": measure(result.frames, result.fps, c), "truth": measure(frames, result.fps, c)}
            if condition:
                record["position error"] = position_error(result.frames, centres, c, CONDITION_FRAMES)
            records.append(record)
            if keep:
                keep(c, result, frames)
        if progress:
            progress(len(records), len(cases))
    return records


METRICS = {  # metric: (kinds, what a perfect world gives, better)
    "speed error": (("uniform", "parabolic"), 0.0, "lower"),
    "acceleration": (("uniform",), 0.0, "lower"),
    "extrapolation": (("uniform",), 0.0, "lower"),
    "gravity": (("parabolic",), 1.0, "closer to 1"),
    "energy": (("parabolic",), 1.0, "closer to 1"),
    "collision error": (("collision",), 0.0, "lower"),
    "position error": (KINDS, 0.0, "lower"),
}


def summarize(records: list[dict], source: str = "model") -> list[dict]:
    """Rows {"kind", "split", "metric", "value", "low", "high", "n"} for `source` "model" or "truth": means with
    bootstrap intervals, the found (and collided) rate with a Wilson interval, the spread of gravity and the
    share of bounces that gained energy."""
    rows = []
    groups = {}
    for r in records:
        groups.setdefault((r["kind"], r["split"]), []).append(r)
    for (kind, split), group in groups.items():
        measured = [r[source] for r in group]

        def add(metric, summary, better, kind=kind, split=split):
            rows.append({"kind": kind, "split": split, "metric": metric, "better": better, **summary})
        add("found", stats.rate(sum(m["found"] for m in measured), len(measured)), "higher")
        for event in ("moved", "descended", "collided"):      # per kind: a motion was seen at all
            tried = [m for m in measured if event in m]
            if tried:
                add(event, stats.rate(sum(m[event] for m in tried), len(tried)), "higher")
        for metric, (kinds, _, better) in METRICS.items():
            if kind not in kinds:
                continue
            if metric == "position error":
                if source == "model" and any(r.get("conditioned") for r in group):
                    add(metric, stats.mean([r["position error"] for r in group]), better)
                continue
            values = [m[metric] for m in measured if metric in m]
            add(metric, stats.mean(values), better)
            if metric == "gravity":
                add("gravity spread", stats.spread(values), "lower")
            if metric == "energy":
                ratios = [m["energy ratio"] for m in measured if "energy ratio" in m]
                add("energy gained", stats.rate(sum(v > ENERGY_GAIN for v in ratios), len(ratios)), "lower")
    return rows
