"""Prompt adherence and framing of a text-to-video model, measured in ToyWorld, where the truth is known.

    cases = prompt_set(200, "heldout")                  # [(prompt, scene)]: captions of scenes training never drew
    rows = evaluate(pipeline, cases, steps=20, cfg=5)   # accuracy per split and attribute, n, 95% Wilson interval
    rows = framing(pipeline, cases[:20])                # objects in view: native 16:9 / 9:16 vs a cropped square
    steer = steering(pipeline, 24)                      # does reversing the direction word reverse the motion?
    place = placement(pipeline, 4)                      # is an object drawn in the third of the frame named?
    rows = paired_difference(scored_a, scored_b)        # model a minus model b on the same cases, 95% interval

A generated clip is read back from its pixels alone by world.perception and compared with the scene its prompt
describes (`score`):

    reference   the scene is rendered at the clip's size, frame rate and length. Its ground truth says what a
                faithful clip shows: an object is *in view* when it is fully visible (>= 99%) in at least 3
                frames (all frames for shorter clips), *partly seen* when it is visible in some frame but not in
                view, and unseen otherwise (it slid out, or hides behind another).
    matching    a perceived track is the object of its colour (perception gives one track per palette colour,
                and a scene's objects have distinct colours). In-view objects left without a track then take the
                left-over track whose centre, at the object's first in-view frame, is nearest the object's
                true centre there; nearest pairs first, with no distance limit: medium prompts do not say where
                an object is, so position only decides which wrong-coloured track stands for which object.
    attributes  per in-view object:
                  color      a track of its colour was found
                  shape      its track's voted shape is the object's shape
                  motion     motion_of's word for its track is the object's motion; static camera only (a pan
                             reads as a slide, a zoom as grow or shrink). An extra beyond the brief's five: on
                             ground truth it is right ~97% (bounce and fall are the hard pair)
                  direction  only for motions with a direction (slide, bounce, orbit, spin) and a static camera
                             (a pan moves everything on screen), read from its track *given* the true motion,
                             so a wrong motion word does not also count as a wrong direction:
                               slide   8-way heading of the least-squares velocity (>= MIN_SPEED)
                               bounce  sign of the horizontal velocity (>= MIN_SPEED)
                               orbit   sign of the area the track sweeps around its mean point
                               spin    sign of the rotation rate of the shape's outline (>= 0.2 rev/s); not
                                       scored where the frame rate aliases it (fps <= 2 x symmetry x rate)
                             Slide and bounce velocities are fitted over the first second, up to the object's
                             first collision or wall bounce (which change it); fewer than 3 frames there: not
                             scored.
                per clip:
                  count      in-view objects <= perceived tracks <= in-view + partly seen objects
                  background identify_background(clip) is the scene's background

Scenes come from seeds far above any training stream (data.ToyWorldDataset draws seed << 40 + k, k counting
samples), so "train" cases are new scenes of the training distribution and "heldout" cases put one of the
world's HELD_OUT (colour, shape, motion) triples in the first object. Both splits use the same seeds, so they
share backgrounds and scenarios and differ in the held-out object: a paired comparison.
"""

import copy
import math
import random
from typing import NamedTuple

import torch

from ..request import parse_aspect
from ..world import captions, render, sample_scene, simulate, vocab
from ..world.prompt import POSITIONS, position_name
from ..world.perception import (
    SYMMETRY,
    _spin_rate,  # private, but the one reading of a shape's rotation rate: both must agree
    identify_background,
    motion_of,
    perceive,
)
from ..world.scene import Scene, WorldObject, is_held_out

SEED_BASE = 1 << 39          # scene seeds of evaluation cases; training streams start at seed << 40
ATTRIBUTES = ("color", "shape", "motion", "direction", "count", "background")
DIRECTED = ("slide", "bounce", "orbit", "spin")
MIN_SPEED = 0.05             # short sides per second: under half the slowest slide (0.12), a track did not move
MIN_SPIN = 0.2               # revolutions per second (motion_of's threshold between still and spin)
MIN_TRAVEL = 0.03            # short sides an orbiting track must move (perception's STILL_RADIUS)
FIT_SECONDS = 1.0            # slide and bounce velocities are fitted over the first second at most


class Case(NamedTuple):
    prompt: str
    scene: Scene


# --- 1. prompts -------------------------------------------------------------------------------------------

def case_scene(scene_seed: int, split: str, aspect: float, seconds: float, camera: str | None,
               scenario: str | None = None) -> Scene:
    """The scene of an evaluation case: sample_scene, then the camera replaced when `camera` is given (the
    camera is drawn before the objects and moves nothing in the world, so the objects stay as drawn)."""
    scene = sample_scene(scene_seed, aspect=aspect, duration=seconds, split=split, scenario=scenario)
    if camera is not None:
        scene.camera = camera
    return scene


def prompt_set(n: int, split: str = "train", *, seed: int = 0, level: str = "medium", aspect="16:9",
               seconds: float = 2.0, camera: str | None = "static", scenario: str | None = None) -> list[Case]:
    """Deterministic evaluation prompts with the scenes they describe.

    Args:
        n: number of cases.
        split: "train" (in-distribution scenes, never a HELD_OUT triple) or "heldout" (a HELD_OUT triple in
            the first object).
        seed: which set; sets of different seeds share no scene.
        level: caption level of the prompt: "short", "medium" or "long". "medium" names every object's colour,
            shape, motion and direction and the background; "short" names one object.
        aspect: the aspect ratio scenes are framed for ("16:9", "9:16", "1:1" or width / height).
        seconds: scene duration; generate clips of the same length.
        camera: "static" (default) gives every scene a static camera, so on-screen motion is world motion and
            every direction can be scored; None keeps the drawn camera (40% of scenes pan or zoom, and those
            get no direction score); any vocab.CAMERAS value forces that move.
        scenario: None draws each scene's scenario as sample_scene does; one of world.scene.SCENARIOS
            ("single": one object) draws only that kind.
    Returns:
        [Case(prompt, scene)]; the same arguments give the same cases.
    """
    if split not in ("train", "heldout"):
        raise ValueError(f"split={split!r}: expected 'train' or 'heldout'")
    if camera is not None and camera not in vocab.CAMERAS:
        raise ValueError(f"camera={camera!r}: expected None or one of {', '.join(vocab.CAMERAS)}")
    aspect = parse_aspect(aspect)
    cases = []
    for i in range(n):
        scene = case_scene(SEED_BASE + (seed << 24) + i, split, aspect, seconds, camera, scenario)
        cases.append(Case(captions(scene)[level], scene))
    return cases


def split_of(scene: Scene) -> str:
    """"heldout" if the first object is a HELD_OUT triple (train scenes never contain one), else "train"."""
    return "heldout" if scene.objects and is_held_out(scene.objects[0]) else "train"


# --- 2. scoring one clip ----------------------------------------------------------------------------------

def _slope(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Least-squares slope of y (N, ...) over t (N,)."""
    t = t - t.mean()
    return (t.reshape(-1, *[1] * (y.ndim - 1)) * (y - y.mean(0))).sum(0) / (t * t).sum().clamp(min=1e-12)


def _fit_window(scene: Scene, i: int, times: torch.Tensor, events: list[dict]) -> torch.Tensor:
    """(T,) bool: frames before object i's first collision or wall bounce, within the first FIT_SECONDS."""
    hits = [e["t"] for e in events if (e["type"] == "collision" and i in e["objects"])
            or (e["type"] == "bounce" and e["object"] == i and e["on"] == "wall")]
    end = min([FIT_SECONDS + float(times[0])] + hits)
    return times < end


def _direction(track, o, fps: float, short_side: int, window: torch.Tensor) -> str | None:
    """The direction word of `track`, read as the object's true motion `o.motion` (None: it did not move)."""
    seen = track.present & window
    if seen.sum() < 3:
        return None
    t = torch.nonzero(seen)[:, 0].double() / fps
    xy = track.center[seen].double() / short_side * torch.tensor([1.0, -1.0])     # short sides, y up
    if o.motion in ("slide", "bounce"):
        velocity = _slope(t, xy)
        if o.motion == "bounce":
            vx = float(velocity[0])
            return None if abs(vx) < MIN_SPEED else ("right" if vx > 0 else "left")
        return None if float(velocity.norm()) < MIN_SPEED else heading(velocity)
    if o.motion == "orbit":
        if float((xy - xy[0]).norm(dim=1).max()) < MIN_TRAVEL:
            return None
        # twice the signed area of the fan from the mean point: an arc turns around its inner side, so every
        # triangle has the arc's orientation (> 0 counter-clockwise, y up)
        rel = xy - xy.mean(0)
        area = float((rel[:-1, 0] * rel[1:, 1] - rel[1:, 0] * rel[:-1, 1]).sum())
        return "counterclockwise" if area > 0 else "clockwise"
    rate = _spin_rate(track, fps)          # revolutions per second, counter-clockwise positive
    return None if abs(rate) < MIN_SPIN else ("counterclockwise" if rate > 0 else "clockwise")


def track_velocity(track, fps: float, short_side: int) -> torch.Tensor | None:
    """A track's velocity over every frame it is seen in (short sides per second, y up; least squares). None when it
    is seen in fewer than 3 frames or moves slower than half the slowest slide."""
    if int(track.present.sum()) < 3:
        return None
    t = torch.nonzero(track.present)[:, 0].double() / fps
    velocity = _slope(t, track.center[track.present].double() / short_side * torch.tensor([1.0, -1.0]))
    return velocity if float(velocity.norm()) >= MIN_SPEED / 2 else None


def heading(velocity) -> str:
    """The 8-way direction word (vocab.DIRECTIONS) nearest a velocity (x right, y up)."""
    angle = math.atan2(float(velocity[1]), float(velocity[0]))
    return min(vocab.DIRECTIONS, key=lambda d: abs(math.remainder(
        angle - math.atan2(vocab.DIRECTIONS[d][1], vocab.DIRECTIONS[d][0]), 2 * math.pi)))


def _direction_measurable(o, fps: float) -> bool:
    if o.motion == "spin":     # sampling a rotation with k-fold symmetry aliases unless fps > 2 k rate
        return fps > 2 * SYMMETRY[o.shape] * vocab.SPIN_RATE[o.speed]
    return o.motion in DIRECTED


def _match(tracks: list, scene: Scene, clip, in_view: list[int]) -> dict[int, int]:
    """Object index -> track index: by colour, then nearest start position (see the module docstring)."""
    by_color = {t.color: k for k, t in enumerate(tracks)}
    match = {i: by_color[o.color] for i, o in enumerate(scene.objects) if o.color in by_color}
    free = [k for k in range(len(tracks)) if k not in match.values()]
    pairs = []
    for i in (i for i in in_view if i not in match):
        first = int(torch.nonzero(clip.visible[i] >= 0.99)[0, 0])
        for k in free:
            seen = torch.nonzero(tracks[k].present)[:, 0]
            nearest = int(seen[(seen - first).abs().argmin()])
            pairs.append((float((tracks[k].center[nearest] - clip.center[i, first]).norm()), i, k))
    for _, i, k in sorted(pairs):
        if i not in match and k not in match.values():
            match[i] = k
    return match


def score(frames, fps: float, scene: Scene) -> dict:
    """How well a clip shows a scene, from its pixels alone.

    Args:
        frames: uint8 (T, H, W, 3) tensor or array: a generated clip (or any video).
        fps: its frame rate (motion is read in seconds).
        scene: the scene its prompt describes (from prompt_set).
    Returns:
        {"objects": [{"object": i, "color": bool, "shape": bool, "motion": bool, "direction": bool or None}]
         for each in-view object (direction None where it is not scored), "count": bool, "background": bool,
         "tracks": number of perceived tracks, "expected": (in-view, in-view + partly seen) objects}.
    """
    frames = torch.as_tensor(frames)
    T, H, W, _ = frames.shape
    short_side = min(H, W)
    clip = render(scene, W, H, fps=fps, num_frames=T)
    full = (clip.visible >= 0.99).sum(dim=1)                                   # (N,) frames fully in view
    in_view = [i for i in range(len(scene.objects)) if int(full[i]) >= min(3, T)]
    partly = [i for i in range(len(scene.objects)) if i not in in_view and float(clip.visible[i].max()) > 0]
    tracks = perceive(frames)
    match = _match(tracks, scene, clip, in_view)
    events = simulate(scene, until=float(clip.times[-1])).events if scene.camera == "static" else []
    objects = []
    for i in in_view:
        o, k = scene.objects[i], match.get(i)
        track = tracks[k] if k is not None else None
        direction = None
        if scene.camera == "static" and _direction_measurable(o, fps):
            window = _fit_window(scene, i, clip.times, events) if o.motion in ("slide", "bounce") \
                else torch.ones(T, dtype=torch.bool)
            reference_frames = int((window & (clip.visible[i] > 0)).sum())
            if reference_frames >= 3:        # the truth itself shows enough of the motion to read it
                direction = track is not None and _direction(track, o, fps, short_side, window) == o.direction
        objects.append({"object": i, "color": track is not None and track.color == o.color,
                        "shape": track is not None and track.shape == o.shape,
                        "motion": None if scene.camera != "static" else
                        track is not None and motion_of(track, fps, short_side)["motion"] == o.motion,
                        "direction": direction})
    return {"objects": objects, "count": len(in_view) <= len(tracks) <= len(in_view) + len(partly),
            "background": identify_background(frames) == scene.background, "tracks": len(tracks),
            "expected": (len(in_view), len(in_view) + len(partly))}


# --- 3. accuracy tables -----------------------------------------------------------------------------------

def wilson(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% for z = 1.96); (0, 1) when n = 0. Unlike the
    normal approximation it stays inside [0, 1] and is sound near 0% and 100% and for small n."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def case_tallies(split: str, s: dict) -> dict[tuple[str, str], tuple[int, int]]:
    """One clip's score (score(...)) of a case of `split` -> {(split, attribute): (correct, n)}: the attributes
    it was scored on, per object for colour, shape, motion and direction (a held-out scene's first object also
    under "heldout: novel object"), per clip for count and background. What n is depends on the scene alone."""
    tallies: dict[tuple[str, str], tuple[int, int]] = {}

    def add(split, attribute, value):
        if value is not None:
            correct, n = tallies.get((split, attribute), (0, 0))
            tallies[split, attribute] = (correct + bool(value), n + 1)

    for o in s["objects"]:
        for attribute in ("color", "shape", "motion", "direction"):
            add(split, attribute, o[attribute])
            if split == "heldout" and o["object"] == 0:
                add("heldout: novel object", attribute, o[attribute])
    add(split, "count", s["count"])
    add(split, "background", s["background"])
    return tallies


def _row_keys(keys) -> list[tuple[str, str]]:
    splits = dict.fromkeys(split for split, _ in keys)
    return [(split, attribute) for split in splits for attribute in ATTRIBUTES
            if not (split.endswith("novel object") and attribute in ("count", "background"))]


def accuracy_table(scored: list[tuple[str, dict]]) -> list[dict]:
    """[(split, score(...))] -> rows {"split", "attribute", "correct", "n", "accuracy", "low", "high"} for every
    split present and ATTRIBUTES, plus a "heldout: novel object" split scoring only the first object of
    held-out scenes (the one carrying the held-out triple) on its per-object attributes."""
    tallies: dict[tuple[str, str], list[int]] = {}
    for split, s in scored:
        for key, (correct, n) in case_tallies(split, s).items():
            tally = tallies.setdefault(key, [0, 0])
            tally[0] += correct
            tally[1] += n
    rows = []
    for split, attribute in _row_keys(tallies):
        correct, n = tallies.get((split, attribute), (0, 0))
        low, high = wilson(correct, n)
        rows.append({"split": split, "attribute": attribute, "correct": correct, "n": n,
                     "accuracy": correct / n if n else float("nan"), "low": low, "high": high})
    return rows


def paired_difference(a: list[tuple[str, dict]], b: list[tuple[str, dict]], *, resamples: int = 4000,
                      seed: int = 0) -> list[dict]:
    """Model a's accuracy minus model b's on the same cases, with a 95% interval from resampling the cases.

    Two models generating the same prompts from the same seeds share each prompt's difficulty, and a student
    distilled from its teacher some of the teacher's noise; an interval for the difference of two independent
    runs ignores that and is too wide (for the count on 400 prompts, +-6 points where this gives +-4 for the
    shipped student against its teacher and +-2.8 for two students of one run). Here the cases are drawn with
    replacement (a clip's objects stay together, both models keep the same draw) and the 2.5th and 97.5th
    percentiles of the difference of the two pooled accuracies give the interval.

    Args:
        a, b: [(split, score(...))] for the same cases in the same order (as evaluate's keep sees them).
        resamples: bootstrap draws. seed: of the draws, so a report is repeatable.
    Returns:
        rows {"split", "attribute", "n", "a", "b", "difference", "low", "high"} (accuracies and difference as
        fractions), in accuracy_table's order.
    """
    if len(a) != len(b):
        raise ValueError(f"the two runs scored {len(a)} and {len(b)} cases; compare runs of the same prompts")
    ta, tb = [case_tallies(*case) for case in a], [case_tallies(*case) for case in b]
    for k, (x, y) in enumerate(zip(ta, tb)):
        if {key: n for key, (_, n) in x.items()} != {key: n for key, (_, n) in y.items()}:
            raise ValueError(f"case {k} was scored on different objects in the two runs: not the same prompts")
    generator = torch.Generator().manual_seed(seed)
    draws = torch.randint(len(a), (resamples, len(a)), generator=generator) if a else None
    rows = []
    for key in _row_keys(key for tallies in ta for key in tallies):
        # per case: correct under a, correct under b, objects scored
        table = torch.tensor([[x.get(key, (0, 0))[0], y.get(key, (0, 0))[0], x.get(key, (0, 0))[1]]
                              for x, y in zip(ta, tb)], dtype=torch.float64)
        if table[:, 2].sum() == 0:
            continue
        sums = table[draws].sum(dim=1)                                      # (resamples, 3)
        ok = sums[:, 2] > 0
        boot = ((sums[ok, 0] - sums[ok, 1]) / sums[ok, 2]).sort().values
        total = table.sum(dim=0)
        last = len(boot) - 1
        rows.append({"split": key[0], "attribute": key[1], "n": int(total[2]), "a": float(total[0] / total[2]),
                     "b": float(total[1] / total[2]), "difference": float((total[0] - total[1]) / total[2]),
                     "low": float(boot[round(0.025 * last)]), "high": float(boot[round(0.975 * last)])})
    return rows


def _validate(pipeline, prompt: str, fields: dict):
    # imported here: scoring and prompt sets need no model code
    from ..pipeline import validate_request
    return validate_request(prompt, info=pipeline.info, **fields)


def evaluate(pipeline, cases: list[Case], *, batch: int = 8, seed: int = 0, progress=None, keep=None,
             **request_fields) -> list[dict]:
    """Generate every case's prompt and score the clip against its scene.

    Args:
        pipeline: a pipeline.Pipeline (anything with `.info` and `.generate(list[Request]) -> list[Result]`).
        cases: from prompt_set; splits may be mixed (each case's split is read from its scene, split_of).
        batch: requests per generate call (requests of one shape run as one batch).
        seed: case k is generated with seed + k, so a run can be repeated exactly.
        progress: called as progress(done, total) after each batch.
        keep: called as keep(case, result, score) for every clip (eval.report keeps clips and scores).
        request_fields: validate_request fields (steps, cfg, fps, resolution, sampler, negative, ...). aspect
            and seconds default to the scene's, which the prompt was written for.
    Returns:
        accuracy_table rows: per split and attribute, correct, n, accuracy and its 95% Wilson interval.
    """
    scored = []
    for start in range(0, len(cases), batch):
        chunk = cases[start:start + batch]
        requests = [_validate(pipeline, prompt, {"aspect": scene.aspect, "seconds": scene.duration,
                                                  "seed": seed + start + j, **request_fields})
                    for j, (prompt, scene) in enumerate(chunk)]
        for case, result in zip(chunk, pipeline.generate(requests)):
            scene = case[1]
            scored.append((split_of(scene), score(result.frames, result.fps, scene)))
            if keep:
                keep(case, result, scored[-1][1])
        if progress:
            progress(len(scored), len(cases))
    return accuracy_table(scored)


# --- 4. steering: does the direction word move the object? -----------------------------------------------

def steering_cases(n: int, split: str = "train", *, seed: int = 0, aspect="16:9", seconds: float = 1.0) -> list:
    """[(k, scene, the scene with its direction reversed)] for steering: n one-object sliding scenes (static
    camera); k numbers the scene among those drawn, and seeds its clips."""
    cases = []
    for k in range(64 * n):                         # about 6% of scenes have one sliding object
        scene = case_scene(SEED_BASE + (1 << 30) + (seed << 24) + k, split, parse_aspect(aspect), seconds, "static")
        if len(scene.objects) == 1 and scene.objects[0].motion == "slide":
            reverse = copy.deepcopy(scene)
            reverse.objects[0].direction = vocab.OPPOSITE[scene.objects[0].direction]
            cases.append((k, scene, reverse))
            if len(cases) == n:
                break
    return cases


def steering(pipeline, n: int, *, split: str = "train", seed: int = 0, aspect="16:9", seconds: float = 1.0,
             batch: int = 8, progress=None, **request_fields) -> dict:
    """The direction word's effect alone: each of n one-object sliding scenes is generated twice with the same
    seed, from its caption and from the caption with the direction reversed ("left" <-> "right", "up-right" <->
    "down-left", ...). A model that follows the word moves the object opposite ways; one that ignores it moves it
    the same way twice, because the seed decides. A paired measure, so it needs far fewer clips than the
    direction row of the adherence table to see whether the word is used at all.

    Each clip's velocity is the least-squares slope of its track (the object's colour) over the clip.
    Returns {"pairs": scenes whose both clips have a moving track, "both": pairs where each clip's 8-way
    heading is its own word, "same": pairs with the same heading in both clips, "cosine": mean cosine between
    the two clips' velocities (-1: the word reverses the motion; +1: the word does nothing), "cosines": each
    pair's, "n": n}."""
    cases = steering_cases(n, split, seed=seed, aspect=aspect, seconds=seconds)
    jobs = [(k, s, _validate(pipeline, captions(s)["medium"], {"aspect": s.aspect, "seconds": seconds,
                                                                 "seed": seed + k, **request_fields}))
            for k, scene, reverse in cases for s in (scene, reverse)]
    velocity = {}
    for start in range(0, len(jobs), batch):
        chunk = jobs[start:start + batch]
        for (k, scene, _), result in zip(chunk, pipeline.generate([j[2] for j in chunk])):
            frames = torch.as_tensor(result.frames)
            track = next((t for t in perceive(frames) if t.color == scene.objects[0].color), None)
            v = None if track is None else track_velocity(track, result.fps, min(frames.shape[1:3]))
            velocity.setdefault(k, []).append((scene.objects[0].direction, v))
        if progress:
            progress(min(start + batch, len(jobs)), len(jobs))

    pairs = [arms for arms in velocity.values() if all(v is not None for _, v in arms)]
    cosines = [float(a[1] @ b[1] / (a[1].norm() * b[1].norm())) for a, b in pairs]
    return {"n": len(cases), "pairs": len(pairs),
            "both": sum(all(heading(v) == word for word, v in arms) for arms in pairs),
            "same": sum(heading(arms[0][1]) == heading(arms[1][1]) for arms in pairs),
            "cosine": sum(cosines) / len(cosines) if cosines else float("nan"), "cosines": cosines}


# --- 5. placement: does the position word place the object? ---------------------------------------------------

def placement_cases(n: int, *, aspect="16:9", seconds: float = 1.0) -> list[tuple[int, Scene, str]]:
    """[(k, scene, the third its caption names)]: n rounds of the nine thirds of the view (lower left … upper
    right), each a scene of one still object placed at random inside that third; k numbers the case and seeds it."""
    cases, aspect = [], parse_aspect(aspect)
    for k in range(9 * n):
        rng = random.Random(SEED_BASE + (1 << 31) + k)
        row, col = k % 9 // 3, k % 3
        u, v = (col + rng.uniform(0.25, 0.75)) / 3, (row + rng.uniform(0.25, 0.75)) / 3
        size = "medium"
        x = min(max(u * max(aspect, 1.0), vocab.SIZES[size]), max(aspect, 1.0) - vocab.SIZES[size])
        y = min(max(v * max(1 / aspect, 1.0), vocab.SIZES[size]), max(1 / aspect, 1.0) - vocab.SIZES[size])
        obj = WorldObject(rng.choice(["ball", "square"]), rng.choice(["red", "orange", "yellow", "green", "cyan",
                                                                      "blue", "pink", "white"]), size, "still", x, y)
        scene = Scene([obj], background=rng.choice(["night", "slate", "dusk"]), aspect=aspect, duration=seconds,
                      seed=SEED_BASE + (1 << 31) + k, scenario="single")
        cases.append((k, scene, position_name(x / scene.width, y / scene.height)))
    return cases


def placement(pipeline, n: int, *, aspect="16:9", seconds: float = 1.0, batch: int = 8, progress=None,
              **request_fields) -> dict:
    """The position word's effect: n rounds of the nine thirds of the view, each a still object whose long caption
    says where it is ("... rests in the upper left."), generated with the case's seed. The object's third is read
    from its track's mean centre. A model that cannot place what it draws scores chance, 1 in 9, however well it
    draws. Returns {"n": cases, "found": clips where the object's colour was seen, "placed": clips where it was in
    the named third, "by_third": {third: [placed, cases]}}."""
    cases = placement_cases(n, aspect=aspect, seconds=seconds)
    jobs = [_validate(pipeline, captions(scene)["long"], {"aspect": scene.aspect, "seconds": seconds, "seed": k,
                                                          **request_fields}) for k, scene, _ in cases]
    found = 0
    by_third = {third: [0, 0] for row in POSITIONS for third in row}
    for start in range(0, len(jobs), batch):
        chunk = cases[start:start + batch]
        for (k, scene, third), result in zip(chunk, pipeline.generate(jobs[start:start + batch])):
            frames = torch.as_tensor(result.frames)
            track = next((t for t in perceive(frames) if t.color == scene.objects[0].color), None)
            got = None
            if track is not None and bool(track.present.any()):
                x, y = track.center[track.present].mean(0).tolist()
                got = position_name(x / frames.shape[2], 1 - y / frames.shape[1])
                found += 1
            by_third[third][0] += got == third
            by_third[third][1] += 1
        if progress:
            progress(min(start + batch, len(jobs)), len(jobs))
    return {"n": len(cases), "found": found, "placed": sum(hit for hit, _ in by_third.values()), "by_third": by_third}


# --- 6. framing -------------------------------------------------------------------------------------------

def centre_crop(frames: torch.Tensor, aspect: float) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> the largest centred crop with width / height = aspect (rounded to pixels)."""
    H, W = frames.shape[1:3]
    w, h = (W, round(W / aspect)) if W / H < aspect else (round(H * aspect), H)
    y0, x0 = (H - h) // 2, (W - w) // 2
    return frames[:, y0:y0 + h, x0:x0 + w]


def in_view_frames(frames) -> tuple[int, int, int]:
    """(frames where every perceived object is present and its box clear of the frame edge, frames,
    perceived objects). A clip with no perceived object has no frames to judge: (0, 0, 0)."""
    frames = torch.as_tensor(frames)
    H, W = frames.shape[1:3]
    tracks = perceive(frames)
    if not tracks:
        return 0, 0, 0
    good = torch.ones(len(frames), dtype=torch.bool)
    for t in tracks:
        x0, y0, x1, y1 = t.bbox.unbind(-1)          # NaN where not seen: comparisons are False
        good &= t.present & (x0 > 0) & (y0 > 0) & (x1 < W) & (y1 < H)
    return int(good.sum()), len(frames), len(tracks)


def framing(pipeline, cases, *, aspects=("16:9", "9:16"), batch: int = 8, seed: int = 0,
            square_side: int | None = None, reference: bool = True, progress=None, **request_fields) -> list[dict]:
    """Framing of native-aspect generation vs a centre crop of a square generation, for the same prompts.

    For every prompt and aspect, the clip generated at that aspect (aspect + resolution as requested) is
    compared with a square clip of side `square_side` (default: the native clip's long side, so the crop has
    exactly the native clip's size and short side) cropped about its centre to the aspect, both with the same
    seed. A frame is well framed when every object perceived in the clip is present in it with its box clear
    of the frame edge (an object that slid out or hides behind another counts against it, in both arms alike).

    Args:
        pipeline: as for evaluate.
        cases: from prompt_set, or plain prompt strings (no reference rows then).
        aspects: the aspect ratios to compare.
        square_side: side of the square generation in pixels (a multiple of 16).
        reference: also score ToyWorld's own renders of each case's scene, framed for the aspect (native)
            and for 1:1 (square crop): what a model that learned the world exactly would give.
        request_fields: validate_request fields (resolution, seconds, fps, steps, cfg, ...); seconds default
            to the scene's.
    Returns:
        rows {"aspect", "source": "model" or "reference", "method": "native" or "square crop", "size",
        "in_view", "frames", "fraction", "clips", "empty_clips", "objects"}.
    """
    tallies: dict[tuple, list] = {}

    def add(aspect, source, method, frames):
        size = f"{frames.shape[2]}x{frames.shape[1]}"
        tally = tallies.setdefault((aspect, source, method), [size, 0, 0, 0, 0, 0])
        good, total, objects = in_view_frames(frames)
        tally[1:] = [tally[1] + good, tally[2] + total, tally[3] + 1, tally[4] + (objects == 0), tally[5] + objects]

    cases = [(c, None) if isinstance(c, str) else c for c in cases]
    jobs = []           # (case index, aspect name, aspect, method, request fields)
    for k, (prompt, scene) in enumerate(cases):
        for name in aspects:
            aspect = parse_aspect(name)
            fields = {"seconds": scene.duration} if scene is not None else {}
            fields.update(request_fields, seed=seed + k)
            native = _validate(pipeline, prompt, {**fields, "aspect": aspect})
            side = square_side or max(native.width, native.height)
            square = {key: v for key, v in fields.items() if key not in ("aspect", "resolution", "size")}
            pixel_aspect = native.width / native.height     # the crop matches the native clip's rounded sides
            jobs.append((k, name, pixel_aspect, "native", native))
            jobs.append((k, name, pixel_aspect, "square crop",
                         _validate(pipeline, prompt, {**square, "size": (side, side)})))
    for start in range(0, len(jobs), batch):
        chunk = jobs[start:start + batch]
        for (k, name, aspect, method, _), result in zip(chunk, pipeline.generate([j[4] for j in chunk])):
            frames = result.frames if method == "native" else centre_crop(result.frames, aspect)
            add(name, "model", method, frames)
            scene = cases[k][1]
            if reference and scene is not None and scene.seed is not None:
                world_aspect = aspect if method == "native" else 1.0
                framed = case_scene(scene.seed, split_of(scene), world_aspect, scene.duration, scene.camera)
                T, H, W, _ = result.frames.shape
                clip = render(framed, W, H, fps=result.fps, num_frames=T).frames
                add(name, "reference", method, clip if method == "native" else centre_crop(clip, aspect))
        if progress:
            progress(min(start + batch, len(jobs)), len(jobs))
    return [{"aspect": aspect, "source": source, "method": method, "size": size, "in_view": good, "frames": total,
             "fraction": good / total if total else float("nan"), "clips": clips, "empty_clips": empty,
             "objects": objects}
            for (aspect, source, method), (size, good, total, clips, empty, objects) in sorted(tallies.items())]
