"""Temporal consistency of a clip, read from its pixels alone (world.perception's tracks), for static-camera clips.

    c = clip_consistency(frames, fps, scene)     # per clip
    rows = summarize([c, ...])                   # rates with Wilson intervals, means with bootstrap intervals

Per clip:
    flicker           mean absolute change between consecutive frames (0-255, averaged over RGB) of the pixels
                      outside every perceived object's box (dilated by 3 px): the background of a static camera
                      should not change at all
    stutter           the share of the whole-frame change that falls on the largest step of each latent frame's 4
                      steps (frames 4j-3..4j, as the causal VAE codes them): 0.25 when change is even, 1 when each
                      latent frame holds still and then jumps; ToyWorld's renders score about 0.3
    teleports         a track moving faster than MAX_SPEED short sides per second between two sightings (the
                      fastest thing in ToyWorld, a ball dropped from the top of a 9:16 view, reaches ~3), so
                      at 12 fps a jump under ~0.27 short sides per frame cannot be told from motion
    from nowhere      a track that appears (after frame 0, or after a gap) away from the frame edge and from
                      every other object (which it could have been behind)
    vanished          a track that disappears likewise: not through the edge, not behind another object
    identity switches one track disappearing where another appears within 2 frames and 0.1 short sides: an
                      object changed colour
    shape stability   share of a track's sightings whose shape agrees with its voted shape (perception's shape
                      confidence)
    size jitter       std of the residual of log(area) about a straight line in time over whole views (growth and
                      shrinking are exponential, so they are straight lines too)
    permanence        (needs the scene) for every occlusion in the scene that ends before the clip does: the
                      hidden object's track is seen again afterwards
"""

import math

import torch

from ..world import simulate
from ..world.perception import perceive
from . import stats

MAX_SPEED = 3.2          # short sides per second
EDGE_PX, NEAR_PX = 2.0, 3.0
SWITCH_FRAMES, SWITCH_DISTANCE = 2, 0.1


def _near(box, other, margin) -> bool:
    """Boxes (4,) x0, y0, x1, y1 within `margin` px of each other (False for NaN)."""
    if torch.isnan(box).any() or torch.isnan(other).any():
        return False
    return bool(box[0] - margin <= other[2] and other[0] - margin <= box[2]
                and box[1] - margin <= other[3] and other[1] - margin <= box[3])


def _at_edge(box, W, H) -> bool:
    return bool(box[0] <= EDGE_PX or box[1] <= EDGE_PX or box[2] >= W - EDGE_PX or box[3] >= H - EDGE_PX)


def _transitions(track):
    """(appearances, disappearances): frames where it comes into sight, and last frames before it leaves."""
    p = track.present
    on = [t for t in range(1, len(p)) if p[t] and not p[t - 1]]
    off = [t for t in range(len(p) - 1) if p[t] and not p[t + 1]]
    return on, off


def _explained(tracks, k, t, neighbours, W, H) -> bool:
    """Track k's sighting at frame t is at the frame edge or next to another track at frames `neighbours`."""
    box = tracks[k].bbox[t]
    if _at_edge(box, W, H):
        return True
    return any(_near(box, tracks[j].bbox[s], NEAR_PX) for j in range(len(tracks)) if j != k
               for s in neighbours if 0 <= s < len(tracks[j].present))


def _flicker(frames, tracks) -> float:
    T, H, W, _ = frames.shape
    background = torch.ones(T, H, W, dtype=torch.bool)
    for track in tracks:
        for t in torch.nonzero(track.present)[:, 0].tolist():
            x0, y0, x1, y1 = track.bbox[t].tolist()
            m = int(NEAR_PX)
            background[t, max(0, int(y0) - m):math.ceil(y1) + m, max(0, int(x0) - m):math.ceil(x1) + m] = False
    still = background[1:] & background[:-1]
    if T < 2 or not still.any():
        return float("nan")
    change = (frames[1:].float() - frames[:-1].float()).abs().mean(-1)
    return float(change[still].mean())


def _size_jitter(track, fps) -> float:
    whole = track.whole & (track.area > 0)
    if whole.sum() < 4:
        return float("nan")
    t = torch.nonzero(whole)[:, 0].double() / fps
    log_area = track.area[whole].double().log()
    basis = torch.stack([torch.ones_like(t), t], 1)
    residual = log_area - basis @ torch.linalg.lstsq(basis, log_area[:, None]).solution[:, 0]
    return float(residual.std())


def _permanence(tracks, scene, T, fps) -> list[bool]:
    end = (T - 1) / fps
    by_color = {t.color: t for t in tracks}
    out = []
    for e in simulate(scene, until=end).events:
        if e["type"] != "occlusion" or e["until"] is None or e["until"] > end - 2 / fps:
            continue
        track = by_color.get(scene.objects[e["behind"]].color)
        after = math.ceil(e["until"] * fps) + 1
        out.append(track is not None and bool(track.present[after:].any()))
    return out


def stutter(frames) -> float:
    """Share of the change between consecutive frames that falls on the largest of each latent frame's 4
    steps (module docstring); nan for a clip under 5 frames or one that does not change."""
    frames = torch.as_tensor(frames)
    steps = (frames[1:].float() - frames[:-1].float()).abs().mean(dim=(1, 2, 3))
    groups = steps[:len(steps) // 4 * 4].view(-1, 4)
    total = float(groups.sum())
    return float(groups.max(dim=1).values.sum()) / total if len(groups) and total > 1e-3 else float("nan")


def clip_consistency(frames, fps: float, scene=None) -> dict:
    """Consistency measurements of one clip (module docstring); `scene` adds permanence."""
    frames = torch.as_tensor(frames)
    T, H, W, _ = frames.shape
    short = min(H, W)
    tracks = perceive(frames)
    teleports = spawns = vanishes = switches = 0
    ons, offs = [], []
    for k, track in enumerate(tracks):
        seen = torch.nonzero(track.present)[:, 0]
        if len(seen) > 1:
            step = (track.center[seen[1:]] - track.center[seen[:-1]]).norm(dim=1) / short
            speed = step * fps / torch.diff(seen).float()
            teleports += int((speed > MAX_SPEED).sum())
        on, off = _transitions(track)
        for t in on:
            ons.append((k, t))
            spawns += not _explained(tracks, k, t, (t - 1, t), W, H)
        for t in off:
            offs.append((k, t))
            vanishes += not _explained(tracks, k, t, (t, t + 1), W, H)
    for k, t_off in offs:
        for j, t_on in ons:
            if j != k and 0 < t_on - t_off <= SWITCH_FRAMES and float(
                    (tracks[k].center[t_off] - tracks[j].center[t_on]).norm()) / short < SWITCH_DISTANCE:
                switches += 1
    return {"tracks": len(tracks), "flicker": _flicker(frames, tracks), "stutter": stutter(frames),
            "teleports": teleports, "from nowhere": spawns, "vanished": vanishes, "identity switches": switches,
            "shape stability": [float(t.confidence["shape"]) for t in tracks],
            "size jitter": [_size_jitter(t, fps) for t in tracks],
            "permanence": _permanence(tracks, scene, T, fps) if scene is not None else []}


def occlusion_cases(n: int, *, seed: int = 0, aspect="16:9", seconds: float = 2.0, level: str = "long"):
    """n deterministic (prompt, scene) cases of the occlusion scenario (static camera) in which an object goes
    behind another and comes out again before the end: the cases for permanence."""
    from ..request import parse_aspect
    from ..world import captions
    from .adherence import SEED_BASE, case_scene
    aspect, cases, k = parse_aspect(aspect), [], 0
    while len(cases) < n:
        scene = case_scene(SEED_BASE + (3 << 30) + (seed << 24) + k, "train", aspect, seconds, "static")
        k += 1
        if scene.scenario == "occlusion" and any(
                e["type"] == "occlusion" and e["until"] is not None and e["until"] < seconds - 0.3
                for e in simulate(scene).events):
            cases.append((captions(scene)[level], scene))
    return cases


def summarize(records: list[dict]) -> list[dict]:
    """Rows {"metric", "value", "low", "high", "n", "better"} over clips (or tracks, or occlusions)."""
    rows = []

    def add(metric, summary, better):
        rows.append({"metric": metric, "better": better, **summary})
    n = len(records)
    add("flicker", stats.mean([r["flicker"] for r in records]), "lower")
    add("stutter", stats.mean([r["stutter"] for r in records]), "lower")
    for metric, name in (("teleports", "teleports"), ("from nowhere", "objects from nowhere"),
                         ("vanished", "vanishing objects"), ("identity switches", "identity switches")):
        add(f"clips without {name}", stats.rate(sum(r[metric] == 0 for r in records), n), "higher")
    add("shape stability", stats.mean([v for r in records for v in r["shape stability"]]), "higher")
    add("size jitter", stats.mean([v for r in records for v in r["size jitter"]]), "lower")
    events = [ok for r in records for ok in r["permanence"]]
    add("permanence", stats.rate(sum(events), len(events)), "higher")
    return rows
