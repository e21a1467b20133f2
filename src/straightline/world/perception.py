"""Perception: read a video back into ToyWorld objects and their tracks, from pixels alone.

This is the measuring instrument for prompt adherence, so it uses the world's vocabulary (palette, shapes,
sizes, backgrounds) but never a scene or its ground truth. The world is designed for it: every object in a
scene has its own palette colour, and backgrounds stay muted and far from the object colours.

    1. colour   each pixel in Lab goes to the nearest of the 12 palette colours or of the colours of the
                vocabulary background that best explains the clip (gradients and shading included); colours
                the world never puts on that background (scene.contrasting_colors) are not looked for.
    2. regions  per frame and colour, the connected component with the most seeds is the object (colours are
                unique per object). A seed is near its palette colour, inside a solid 3 x 3 patch of it and not
                on a colour ramp, so anti-aliased or blurred fringes (white over night passes gray) and noise
                speckle never make an object.
    3. tracks   a colour is an object if it is seen in enough frames.
    4. words    shape from the radial profile r(θ) of the region around its centroid (hole → ring; dominant
                angular harmonic 3 / 4 / 5 → triangle / square or cross / star; flat → ball), voted over
                frames where it is clear of the frame edge and other objects; size from its area at frame 0,
                traced back from its first whole views.

Accuracy on clean and degraded renders is in docs/benchmarks/perception.md.
"""

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from . import vocab
from .render import background, unit_area
from .scene import Scene, contrasting_colors

COLOR_NAMES = tuple(vocab.COLORS)
SHAPES = vocab.SHAPES
MAX_COLOR_DISTANCE = 40.0   # Lab; farther from every palette colour than this is not an object pixel
MIN_PRESENT_FRAC = 0.1      # fraction of frames (at least 1) an object's core must be seen in
RAYS, RAY_STEPS = 64, 48    # radial profile: angles, and samples along each ray
RAMP_CONTRAST = 48.0        # sRGB units between the two ends of a blend (noise of sigma 8 stays below)
RAMP_STRAIGHTNESS = 0.2     # a blend sits this close (relative) to the midpoint of its ends
SEED_DISTANCE = 12.0        # Lab; a seed is this close to its palette colour (which are >= 27 apart), not on a ramp
MIN_SEEDS = 3               # seeds a region needs to count as an object
# Shape rules on the relative harmonic amplitudes of r(θ), calibrated on ~2,000 whole views per condition of
# sampled scenes at 90 px (clean, blur, noise, H.264). Clean: ball < 0.045, square 0.08-0.17, cross 0.23-0.45
# (all at k = 4), triangle 0.22-0.30 (k = 3), star 0.20-0.35 (k = 5); ring hole 0.34-0.47, others 0. Blur and
# compression pull every amplitude down, so the cut-offs sit low in their gaps.
BALL_MAX_HARMONIC = 0.05
CROSS_MIN_HARMONIC = 0.2
RING_MIN_HOLE = 0.2
MAX_ASYMMETRY = 0.08        # 1st/2nd harmonics of whole shapes stay below ~0.06 (clean), a cut outline rises above


@dataclass
class Track:
    """One perceived object over T frames."""
    color: str
    shape: str
    size: str
    center: torch.Tensor      # (T, 2) pixel x, y of the region's centroid; NaN where not seen
    bbox: torch.Tensor        # (T, 4) x0, y0, x1, y1 pixels; NaN where not seen
    area: torch.Tensor        # (T,) pixels of the region (0 where not seen)
    present: torch.Tensor     # (T,) bool
    whole: torch.Tensor       # (T,) bool: the whole shape is in view (see _track)
    angle: torch.Tensor       # (T,) orientation of the shape's dominant harmonic, radians; NaN where not whole
    confidence: dict = field(default_factory=dict)   # colour: seed closeness; shape: vote share; size: margin


# --- colour -------------------------------------------------------------------------------------------------

def _to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB uint8 (..., 3) -> CIE Lab float32 (..., 3), the same formula as scene.color_distance."""
    c = rgb.float() / 255.0
    c = torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = torch.tensor([[0.4124 / 0.95047, 0.3576 / 0.95047, 0.1805 / 0.95047],
                      [0.2126, 0.7152, 0.0722],
                      [0.0193 / 1.08883, 0.1192 / 1.08883, 0.9505 / 1.08883]])
    xyz = c @ m.T
    f = torch.where(xyz > 0.008856, xyz.clamp(min=1e-12) ** (1 / 3), 7.787 * xyz + 16 / 116)
    return torch.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


@lru_cache(maxsize=None)
def _palette_lab() -> torch.Tensor:
    return _to_lab(torch.tensor(list(vocab.COLORS.values()), dtype=torch.uint8))   # (12, 3)


@lru_cache(maxsize=None)
def _background_lab(name: str) -> torch.Tensor:
    """Every colour a vocabulary background shows (gradients, shading, anti-aliased cell edges) -> (K, 3) Lab,
    sampled from the renderer's own background over a window wider than any pan reaches."""
    grid = torch.linspace(-2.0, 3.0, 150)
    Y, X = torch.meshgrid(grid, grid, indexing="ij")
    # a pixel as wide as the grid step, so the anti-aliased blends between cells and stripes are sampled too
    image = background(name, Scene(objects=[], aspect=1.0), X, Y, torch.tensor(0.04))
    rgb = (image.reshape(-1, 3) * 255 + 0.5).clamp(0, 255).to(torch.uint8).unique(dim=0)
    return _to_lab(rgb)


def identify_background(frames: torch.Tensor) -> str:
    """The vocabulary background whose colours best explain a clip (uint8 (T, H, W, 3)): least mean Lab
    distance (capped, so objects weigh alike) from 3 x 3 patch means to its colours. Averaging removes noise,
    which a many-coloured background would otherwise fit best."""
    some = frames[:: max(1, len(frames) // 4)].permute(0, 3, 1, 2).float()
    patches = F.avg_pool2d(some, 3).permute(0, 2, 3, 1).reshape(-1, 3)
    sample = _to_lab(patches.round().to(torch.uint8))
    misfit = {name: torch.cdist(sample, _background_lab(name)).min(dim=1).values.clamp(max=10).mean().item()
              for name in vocab.BACKGROUNDS}
    return min(misfit, key=misfit.get)


def _classify(lab: torch.Tensor, background_lab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Lab (T, H, W, 3) -> palette index (T, H, W) int64 (-1: background or blend) and its distance."""
    flat = lab.reshape(-1, 3)
    d_obj, idx = torch.cdist(flat, _palette_lab()).min(dim=1)
    d_bg = torch.cat([torch.cdist(part, background_lab).min(dim=1).values for part in flat.split(1 << 16)])
    idx = torch.where((d_obj < MAX_COLOR_DISTANCE) & (d_obj < d_bg), idx, -1)
    return idx.reshape(lab.shape[:-1]), d_obj.reshape(lab.shape[:-1])


# --- regions ------------------------------------------------------------------------------------------------

def _max3x3(x: torch.Tensor) -> torch.Tensor:
    """Maximum over each pixel's 3 x 3 neighbourhood of (P, H, W), zero outside. Shifted maxima: on the CPU
    this is ~50x faster than max_pool2d on one-channel planes."""
    p = F.pad(x, (1, 1, 1, 1))
    rows = torch.maximum(torch.maximum(p[:, :-2], p[:, 1:-1]), p[:, 2:])
    return torch.maximum(torch.maximum(rows[..., :-2], rows[..., 1:-1]), rows[..., 2:])


def _label(mask: torch.Tensor) -> torch.Tensor:
    """8-connected components of masks (P, H, W) -> labels (P, H, W) int32, 0 off the mask.

    Max-label propagation: each pixel takes the largest label among its neighbours, then jumps to the label
    of the pixel its label names (pointer jumping), which shortens long chains from O(length) steps to a few.
    A label is 1 + the flat index of a pixel of the same component."""
    P, H, W = mask.shape
    index = torch.arange(1, H * W + 1, dtype=torch.int32).reshape(1, H, W)
    labels = torch.where(mask, index, 0)
    while True:
        grown = _max3x3(labels) * mask
        flat = grown.flatten(1)
        jumped = torch.gather(flat, 1, (flat - 1).clamp(min=0).long()).reshape(P, H, W) * mask
        grown = torch.maximum(grown, jumped)
        if torch.equal(grown, labels):
            return labels
        labels = grown


def _ramp(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> (T, H, W) bool: pixels on a straight colour ramp between the pixels 2 px either
    side. Anti-aliasing and blur mix colours linearly in sRGB, so a blend fringe between two regions (which
    may happen to land on a third palette colour: white over night passes gray) is a ramp, while the inside
    of an object, however thin, is not."""
    img = rgb.permute(0, 3, 1, 2).float()
    H, W = img.shape[-2:]
    pad = F.pad(img, (2, 2, 2, 2), mode="replicate")
    at = lambda dy, dx: pad[:, :, 2 + dy:2 + dy + H, 2 + dx:2 + dx + W]
    ramp = torch.zeros(img.shape[0], H, W, dtype=torch.bool)
    for dy, dx in ((0, 2), (2, 0), (2, 2), (2, -2)):
        a, b = at(dy, dx), at(-dy, -dx)
        ends = (a - b).norm(dim=1)
        ramp |= (ends > RAMP_CONTRAST) & ((img - (a + b) / 2).norm(dim=1) < RAMP_STRAIGHTNESS * ends)
    return ramp


def _largest_component(mask: torch.Tensor, seeds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks and seed pixels (P, H, W) -> the component with the most seeds (P, H, W) and its seed count (P,)."""
    P, H, W = mask.shape
    labels = _label(mask).long()
    counts = torch.zeros(P, H * W + 1).scatter_add_(1, labels.flatten(1), (seeds & mask).flatten(1).float())
    counts[:, 0] = 0
    best_count, best = counts.max(dim=1)
    return (labels == best[:, None, None]) & mask, best_count


# --- shape --------------------------------------------------------------------------------------------------

def _radial_profile(mask: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor):
    """Masks (P, H, W) seen from centroids (P,) along RAYS rays -> inner and outer radius (P, RAYS) px: the
    first and last sample along each ray inside the mask (bilinear, so sub-pixel)."""
    P, H, W = mask.shape
    dx, dy = torch.arange(W) + 0.5 - cx[:, None, None], torch.arange(H)[:, None] + 0.5 - cy[:, None, None]
    reach = ((dx * dx + dy * dy) * mask).amax(dim=(1, 2)).sqrt() + 1.5                        # (P,) px
    theta = torch.arange(RAYS) * (2 * math.pi / RAYS)
    radii = (torch.arange(RAY_STEPS) + 0.5) / RAY_STEPS * reach[:, None]                       # (P, S)
    x = cx[:, None, None] + radii[:, None, :] * torch.cos(theta)[None, :, None]               # (P, A, S)
    y = cy[:, None, None] - radii[:, None, :] * torch.sin(theta)[None, :, None]
    grid = torch.stack([x / W * 2 - 1, y / H * 2 - 1], dim=-1)                  # continuous px, align_corners=False
    inside = F.grid_sample(mask.float()[:, None], grid, align_corners=False)[:, 0] >= 0.5     # (P, A, S)
    step = torch.arange(1, RAY_STEPS + 1)
    last = (inside * step).amax(dim=-1)                                  # 0 if the ray misses the mask
    first = torch.where(inside, step, RAY_STEPS + 1).amin(dim=-1)
    scale = reach[:, None] / RAY_STEPS
    return (first - 1).clamp(max=RAY_STEPS) * scale, last * scale


def _shape_features(r_in: torch.Tensor, r_out: torch.Tensor) -> dict:
    """Radial profiles (P, RAYS) -> rotation-invariant features (P,) and the harmonic angles."""
    mean = r_out.mean(dim=1).clamp(min=1e-6)
    theta = torch.arange(RAYS) * (2 * math.pi / RAYS)
    basis = torch.exp(-1j * torch.outer(theta, torch.arange(7.0)))                            # (RAYS, 7)
    spectrum = r_out.to(basis.dtype) @ basis / (RAYS / 2) / mean[:, None]                     # (P, 7)
    amp = spectrum.abs()
    return {"hole": r_in.median(dim=1).values / mean, "harmonics": amp[:, 3:6],             # k = 3, 4, 5
            "asymmetry": amp[:, 1:3].amax(dim=1), "phase": spectrum.angle()}


def _shape_index(f: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (P,) -> index into vocab.SHAPES (P,) and the orientation of the dominant harmonic (P,),
    radians modulo the shape's symmetry (NaN for round shapes)."""
    strength, k = f["harmonics"].max(dim=1)
    pointed = torch.tensor([SHAPES.index(s) for s in ("triangle", "square", "star")])[k]
    shape = torch.where(strength < BALL_MAX_HARMONIC, SHAPES.index("ball"), pointed)
    shape = torch.where((k == 1) & (strength > CROSS_MIN_HARMONIC), SHAPES.index("cross"), shape)
    shape = torch.where(f["hole"] > RING_MIN_HOLE, SHAPES.index("ring"), shape)
    order = k + 3
    # r(θ) = a cos(order (θ - θ0)) has coefficient a/2 exp(-i order θ0): a corner at θ0 (counter-clockwise)
    angle = -f["phase"].gather(1, order[:, None])[:, 0] / order
    round_ = (shape == SHAPES.index("ball")) | (shape == SHAPES.index("ring"))
    return shape, torch.where(round_, float("nan"), angle)


# --- per-frame measurements ---------------------------------------------------------------------------------

def _regions(rgb: torch.Tensor, background: str):
    """uint8 (T, H, W, 3) on a vocabulary background -> palette indices seen (A,), each one's object region
    (T, A, H, W) (empty with fewer than MIN_SEEDS seeds), its seed count (T, A) and mean seed distance (T, A)."""
    T, H, W, _ = rgb.shape
    index, distance = _classify(_to_lab(rgb), _background_lab(background))
    # The world never puts a colour on a background within 30 Lab of it, so such colours get no seeds.
    shown = contrasting_colors(background)
    allowed = torch.tensor([c in shown for c in COLOR_NAMES] + [False])       # index -1 (no colour) -> False
    seeds = allowed[index] & (distance < SEED_DISTANCE) & ~_ramp(rgb)
    active = index[seeds].unique()
    masks = (index[:, None] == active[None, :, None, None]).flatten(0, 1)              # (T * A, H, W)
    # Seeds also need a solid 3 x 3 neighbourhood of their colour: noise speckle and 1-2 px fringes have none.
    solid = seeds.repeat_interleave(len(active), dim=0) & ~_max3x3(~masks)
    region, count = torch.zeros_like(masks), torch.zeros(len(masks))
    seeded = solid.flatten(1).any(dim=1)                                                # label only these planes
    region[seeded], count[seeded] = _largest_component(masks[seeded], solid[seeded])
    region &= (count >= MIN_SEEDS)[:, None, None]
    seed_distance = (distance.repeat_interleave(len(active), dim=0) * (region & solid)).sum(dim=(1, 2))
    seed_distance = (seed_distance / count.clamp(min=1)).reshape(T, -1)
    return active, region.reshape(T, -1, H, W), count.reshape(T, -1), seed_distance


def _geometry(region: torch.Tensor) -> dict:
    """Regions (T, A, H, W) -> area, center (x, y), bbox (x0, y0, x1, y1) in continuous pixel coordinates
    (pixel i spans [i, i + 1)), on the frame edge, touching another region within 2 px."""
    H, W = region.shape[-2:]
    ys, xs = torch.arange(H) + 0.5, torch.arange(W) + 0.5
    area = region.sum(dim=(2, 3)).float()
    cx = (region.sum(dim=2) * xs).sum(dim=-1) / area
    cy = (region.sum(dim=3) * ys).sum(dim=-1) / area
    cols, rows = region.any(dim=2), region.any(dim=3)                                  # (T, A, W), (T, A, H)
    x0, x1 = xs.where(cols, 1e9).amin(-1) - 0.5, xs.where(cols, -1e9).amax(-1) + 0.5
    y0, y1 = ys.where(rows, 1e9).amin(-1) - 0.5, ys.where(rows, -1e9).amax(-1) + 0.5
    near = _max3x3(_max3x3(region.flatten(0, 1))).reshape(region.shape)
    others = region.any(dim=1, keepdim=True) & ~region
    return {"area": area, "center": torch.stack([cx, cy], -1), "bbox": torch.stack([x0, y0, x1, y1], -1),
            "edge": (x0 <= 0) | (y0 <= 0) | (x1 >= W) | (y1 >= H), "touching": (near & others).any(dim=(2, 3))}


def _measure(rgb: torch.Tensor, background: str) -> dict:
    """uint8 (T, H, W, 3) -> per frame and palette colour (T, 12, ...): seeds, area, center, bbox, edge,
    touching, shape index (-1 if none), angle, asymmetry and mean Lab distance of the seeds."""
    nan, T, K = float("nan"), len(rgb), len(COLOR_NAMES)
    out = {key: torch.full((T, K, *tail), fill) for key, tail, fill in (
        ("seeds", (), 0.0), ("area", (), 0.0), ("distance", (), 0.0), ("center", (2,), nan), ("bbox", (4,), nan),
        ("edge", (), False), ("touching", (), False), ("shape", (), -1), ("angle", (), nan),
        ("asymmetry", (), math.inf))}
    active, region, count, distance = _regions(rgb, background)
    real = count >= MIN_SEEDS
    if not real.any():
        return out
    g = _geometry(region)
    features = _shape_features(*_radial_profile(region[real], *g["center"][real].unbind(-1)))
    shape, angle = _shape_index(features)
    for key, value in (*g.items(), ("seeds", count), ("distance", distance)):
        out[key][:, active] = value.where(real.reshape(*real.shape, *[1] * (value.ndim - 2)), out[key][:, active])
    for key, value in (("shape", shape), ("angle", angle), ("asymmetry", features["asymmetry"])):
        out[key][:, active] = out[key][:, active].masked_scatter(real, value)
    return out


# --- tracks ---------------------------------------------------------------------------------------------

def _slope(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Least-squares slope of y (N, ...) over t (N,)."""
    t = t - t.mean()
    return (t.reshape(-1, *[1] * (y.ndim - 1)) * (y - y.mean(0))).sum(0) / (t * t).sum().clamp(min=1e-12)


def _size_word(radius: float) -> tuple[str, float]:
    """Radius in short sides -> nearest size word in log scale, and confidence d2 / (d1 + d2) in [0.5, 1]."""
    gaps = sorted((abs(math.log(radius / r)), word) for word, r in vocab.SIZES.items())
    return gaps[0][1], gaps[1][0] / (gaps[0][0] + gaps[1][0])


def _vote_shape(shapes: torch.Tensor, area: torch.Tensor, clear, inside, symmetric, present):
    """Per-frame shape indices and views (T,) -> voted shape index, its vote share and the voting frames.
    Every vocabulary shape has 3-fold or higher symmetry, so a cut or occluded outline shows a 1st or 2nd
    harmonic: an object never seen clear of the edge and other objects is voted over symmetric views first."""
    voters = next(v for v in (clear, inside & symmetric, inside, present) if v.any())
    voters = voters & (area >= 0.5 * area[voters].max())      # small views (shrunk, zoomed out) are least sure
    votes = torch.bincount(shapes[voters].clamp(min=0), minlength=len(SHAPES)).float()
    return int(votes.argmax()), float(votes.max() / votes.sum()), voters


def _start_area(area: torch.Tensor, whole: torch.Tensor, voters: torch.Tensor) -> float:
    """Area (px) at frame 0. Growth, shrinking and zoom are exponential in time, so an object first seen whole
    later is traced back along the log-linear trend of its first whole views; one never seen whole gets its
    largest voting view (occlusion only takes area away)."""
    views = torch.nonzero(whole)[:3, 0]
    if len(views) == 0:
        return float(area[voters].max())
    log_area = area[views].double().log()
    trend = float(_slope(views.double(), log_area)) if len(views) > 1 else 0.0
    return math.exp(float(log_area[0]) - trend * int(views[0]))


def _track(k: int, m: dict, present: torch.Tensor, short_side: int) -> Track:
    area, edge = m["area"][:, k], m["edge"][:, k]
    clear = present & ~edge & ~m["touching"][:, k]
    symmetric = m["asymmetry"][:, k] < MAX_ASYMMETRY
    shape, share, voters = _vote_shape(m["shape"][:, k], area, clear, present & ~edge, symmetric, present)
    # A symmetric outline of the voted shape is whole even when it touches another object (it is the one in
    # front) or the frame edge (objects start tangent to it) -- there only if it is as large as in the nearest
    # clear frame, since a triangle cut parallel to a side is still a (smaller) triangle.
    full_size = torch.ones_like(present)
    if clear.any():
        clear_at = torch.nonzero(clear)[:, 0]
        full_size = area >= 0.85 * area[clear_at[(torch.arange(len(area))[:, None] - clear_at).abs().argmin(dim=1)]]
    whole = present & (m["shape"][:, k] == shape) & (clear | symmetric & (~edge | full_size))
    radius = math.sqrt(_start_area(area, whole, voters) / unit_area(SHAPES[shape])) / short_side
    size, size_margin = _size_word(radius)
    seen = present.float()
    color_confidence = max(0.0, 1 - float((m["distance"][:, k] * seen).sum() / seen.sum()) / SEED_DISTANCE)
    partial = 1.0 if whole.any() else 0.5
    return Track(color=COLOR_NAMES[k], shape=SHAPES[shape], size=size,
                 center=m["center"][:, k].where(present[:, None], float("nan")),
                 bbox=m["bbox"][:, k].where(present[:, None], float("nan")),
                 area=area * present, present=present, whole=whole, angle=m["angle"][:, k].where(whole, float("nan")),
                 confidence={"color": color_confidence, "shape": share * partial, "size": size_margin * partial})


def perceive(frames, *, min_area_frac: float = 6e-4, chunk: int = 8) -> list[Track]:
    """Find the ToyWorld objects in a video and track them, from its pixels alone.

    Args:
        frames: uint8 (T, H, W, 3) tensor or numpy array: a render, a decoded file or a generated video.
        min_area_frac: smallest region, as a fraction of the frame, that counts as a sighting.
        chunk: frames processed at once (memory is roughly chunk * H * W * 150 bytes).

    Returns:
        One Track per object colour seen in at least MIN_PRESENT_FRAC of the frames, in palette order.
        Shape is voted over frames where the object is clear of the frame edge and other objects. Size is
        relative to the frame's short side at frame 0 (before growth, shrinking or a zoom change it): read
        from the first whole views, traced back along their log-linear area trend when they come later.
        Confidence is halved when the object is never seen whole.
    """
    frames = torch.as_tensor(np.asarray(frames) if not torch.is_tensor(frames) else frames)
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames: expected uint8 (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
    T, H, W, _ = frames.shape
    background = identify_background(frames)
    parts = [_measure(frames[s:s + chunk], background) for s in range(0, T, chunk)]
    m = {key: torch.cat([p[key] for p in parts]) for key in parts[0]}
    present = (m["seeds"] >= MIN_SEEDS) & (m["area"] >= min_area_frac * H * W)
    enough = max(1, math.ceil(MIN_PRESENT_FRAC * T))
    return [_track(k, m, present[:, k], min(H, W)) for k in range(len(COLOR_NAMES)) if present[:, k].sum() >= enough]


# --- motion ---------------------------------------------------------------------------------------------------

SYMMETRY = {"triangle": 3, "square": 4, "cross": 4, "star": 5}   # rotations that map the shape onto itself
STILL_RADIUS = 0.03        # short sides: a track that stays this close to its start did not move


def _nearest_word(value: float, words: dict) -> str:
    """The word whose value is nearest in log scale (speeds, rates and periods are spaced geometrically)."""
    return min(words, key=lambda w: abs(math.log(max(value, 1e-6) / words[w])))


def _spin_rate(track: Track, fps: float) -> float:
    """Revolutions per second, counter-clockwise positive, from the orientation of the dominant harmonic.
    Aliases unless fps > 2 * symmetry * rate (20 fps for a fast star)."""
    seen = torch.nonzero(~track.angle.isnan())[:, 0]
    if track.shape not in SYMMETRY or len(seen) < 3:
        return 0.0
    period = 2 * math.pi / SYMMETRY[track.shape]
    steps = torch.diff(track.angle[seen].double())
    steps = (steps + period / 2) % period - period / 2            # the smallest turn between views
    return float((steps / torch.diff(seen).double()).median()) * fps / (2 * math.pi)


def _words(motion, direction=None, speed=None) -> dict:
    return {"motion": motion, "direction": direction, "speed": speed}


def _orbit(t: torch.Tensor, xy: torch.Tensor) -> dict | None:
    """Times (N,) and positions (N, 2) in short sides -> orbit words if they follow a circle of an orbit's
    radius, much better than a line (an algebraic circle fit bends through collinear points), through
    >= 60 degrees."""
    A = torch.cat([xy, torch.ones(len(xy), 1, dtype=xy.dtype)], dim=1)      # x^2 + y^2 + d x + e y + f = 0
    d, e, f = torch.linalg.lstsq(A, -(xy * xy).sum(1, keepdim=True)).solution[:, 0]
    centre = -torch.stack([d, e]) / 2
    radius = math.sqrt(max(float((centre * centre).sum() - f), 0.0))
    rms = float(((xy - centre).norm(dim=1) - radius).pow(2).mean().sqrt())
    turn = torch.diff(torch.atan2(*(xy - centre).flip(1).T))
    swept = float(((turn + math.pi) % (2 * math.pi) - math.pi).sum())              # radians, counter-clockwise
    line_rms = float(torch.linalg.svdvals(xy - xy.mean(0))[-1]) / math.sqrt(len(xy))
    if not (0.08 < radius < 0.4 and rms < min(0.1 * radius, 0.5 * line_rms) and abs(swept) > math.pi / 3):
        return None
    period = 2 * math.pi * float(t[-1] - t[0]) / abs(swept)
    return _words("orbit", "counterclockwise" if swept > 0 else "clockwise", _nearest_word(period, vocab.ORBIT_PERIOD))


def _falling(t: torch.Tensor, xy: torch.Tensor, vx: float) -> dict | None:
    """Fall or bounce words if the track descends to its first floor contact (where it starts to rise) with
    about gravity's acceleration; a bounce also moves sideways (vx, short sides per second)."""
    rising = torch.nonzero(torch.diff(xy[:, 1]) > 0.005)[:, 0]
    low = int(rising[0]) if len(rising) else int(xy[:, 1].argmin())
    if low < 2 or float(xy[0, 1] - xy[low, 1]) < 0.1:
        return None
    tt = t[: low + 1]
    basis = torch.stack([torch.ones_like(tt), tt, tt * tt], 1)
    curvature = float(torch.linalg.lstsq(basis, xy[: low + 1, 1:]).solution[2, 0])
    if curvature > -0.3 * vocab.GRAVITY:          # free fall descends as y0 - GRAVITY / 2 * t^2
        return None
    if abs(vx) < 0.05:
        return _words("fall")
    return _words("bounce", "right" if vx > 0 else "left", _nearest_word(abs(vx), vocab.SPEEDS))


def motion_of(track: Track, fps: float, frame_short_side: int) -> dict:
    """Coarse motion words for a track, from its trajectory, area and orientation alone.

    Checks, in order: grow / shrink (log area changes), still or spin (stays in place), orbit, fall / bounce,
    slide (8-way direction and speed over its first second, before collisions and walls). Assumes a static
    camera: a pan reads as the opposite slide and a zoom as grow / shrink. Accuracy in
    docs/benchmarks/perception.md.

    Returns:
        {"motion", "direction", "speed"}: vocabulary words, None where they do not apply (all three None when
        fewer than 3 frames were seen).
    """
    t_all = torch.arange(len(track.present), dtype=torch.float64) / fps
    t = t_all[track.present]
    xy = track.center[track.present].double() / frame_short_side * torch.tensor([1.0, -1.0])   # y up
    if len(t) < 3:
        return _words(None)
    whole = track.whole & (track.area > 0)
    if whole.sum() >= 3:
        growth = float(_slope(t_all[whole], 0.5 * track.area[whole].double().log()))   # log-scale per second
        if abs(growth) > 0.06:
            return _words("grow" if growth > 0 else "shrink", None, _nearest_word(abs(growth), vocab.GROW_RATE))
    if (xy - xy[0]).norm(dim=1).max() < STILL_RADIUS:
        rate = _spin_rate(track, fps)
        if abs(rate) < 0.2:
            return _words("still")
        return _words("spin", "counterclockwise" if rate > 0 else "clockwise",
                      _nearest_word(abs(rate), vocab.SPIN_RATE))
    first = t <= t[0] + 1.0
    velocity = _slope(t[first], xy[first]) if first.sum() >= 2 else (xy[-1] - xy[0]) / (t[-1] - t[0])
    heading = math.atan2(float(velocity[1]), float(velocity[0]))
    direction = min(vocab.DIRECTIONS, key=lambda d: abs(math.remainder(
        heading - math.atan2(vocab.DIRECTIONS[d][1], vocab.DIRECTIONS[d][0]), 2 * math.pi)))
    return (_orbit(t, xy) or _falling(t, xy, float(velocity[0]))
            or _words("slide", direction, _nearest_word(float(velocity.norm()), vocab.SPEEDS)))
