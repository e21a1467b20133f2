"""ToyWorld renderer: signed-distance shapes composited over a procedural background, vectorised in PyTorch
(CPU or CUDA), anti-aliased by converting each signed distance to pixel coverage.

View: the frame's short side spans 1 / zoom world units around the camera centre, whatever the pixel size,
so a scene renders the same at 128² and 1024² and a different pixel aspect shows more or less of the world
around the same centre. Every frame also yields ground truth: each object's centre, bounding box and the
fraction of it that is visible (after occlusion and the frame edge).
"""

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from . import vocab
from ..request import frames_for
from .physics import States, simulate
from .scene import Scene


# --- signed distances of unit shapes (radius 1; negative inside) ----------------------------------------

def _box(px, py, bx, by):
    qx, qy = px.abs() - bx, py.abs() - by
    outside = torch.sqrt(qx.clamp(min=0) ** 2 + qy.clamp(min=0) ** 2)
    return outside + torch.maximum(qx, qy).clamp(max=0)


def _triangle(px, py, r=0.95):
    # Inigo Quilez's exact equilateral triangle (half side r, pointing up), vectorised with torch.where
    k = math.sqrt(3.0)
    px = px.abs() - r
    py = py + r / k
    fold = px + k * py > 0
    px, py = torch.where(fold, (px - k * py) / 2, px), torch.where(fold, (-k * px - py) / 2, py)
    px = px - px.clamp(-2 * r, 0)
    return -torch.sqrt(px * px + py * py) * torch.sign(py)


def _star(px, py, r=1.1, rf=0.45):
    # Inigo Quilez's exact five-pointed star (outer radius r, inner radius r * rf)
    k1x, k1y = 0.809016994375, -0.587785252292
    k2x, k2y = -k1x, k1y
    px = px.abs()
    d = (k1x * px + k1y * py).clamp(min=0)
    px, py = px - 2 * d * k1x, py - 2 * d * k1y
    d = (k2x * px + k2y * py).clamp(min=0)
    px, py = px - 2 * d * k2x, py - 2 * d * k2y
    px = px.abs()
    py = py - r
    bax, bay = rf * -k1y, rf * k1x - 1
    h = ((px * bax + py * bay) / (bax * bax + bay * bay)).clamp(0, r)
    return torch.sqrt((px - bax * h) ** 2 + (py - bay * h) ** 2) * torch.sign(py * bax - px * bay)


def shape_sdf(shape: str, px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    if shape == "ball":
        return torch.sqrt(px * px + py * py) - 1.0
    if shape == "ring":
        return (torch.sqrt(px * px + py * py) - 0.7).abs() - 0.3
    if shape == "square":
        return _box(px, py, 0.8, 0.8)
    if shape == "triangle":
        return _triangle(px, py)
    if shape == "star":
        return _star(px, py)
    if shape == "cross":
        return torch.minimum(_box(px, py, 1.0, 0.34), _box(px, py, 0.34, 1.0))
    raise ValueError(f"unknown shape {shape!r}")


@lru_cache(maxsize=None)
def unit_area(shape: str) -> float:
    """Area of the unit shape, measured on a fine grid once (so visibility needs no per-shape formula)."""
    n = 1024
    g = (torch.arange(n, dtype=torch.float64) + 0.5) / n * 3 - 1.5
    py, px = torch.meshgrid(g, g, indexing="ij")
    return float((shape_sdf(shape, px, py) < 0).double().mean()) * 9.0


# --- background ------------------------------------------------------------------------------------------

def _rgb(c, ref):
    return torch.tensor(c, dtype=ref.dtype, device=ref.device) / 255.0


def _mix(a, b, w):
    """Blend colours a, b (3,) with weights w (...,) -> (..., 3)."""
    return a + (b - a) * w[..., None]


def _square_wave(u, cell, ps):
    """Anti-aliased 0/1 stripes of width `cell` along u (world units); ps is the pixel size."""
    tri = ((u / cell) % 2.0 - 1.0).abs()          # 1 at stripe centres of one colour, 0 at the other's
    return (0.5 + (tri - 0.5) * cell / ps).clamp(0, 1)


def background(name: str, scene: Scene, X: torch.Tensor, Y: torch.Tensor, ps: torch.Tensor) -> torch.Tensor:
    """Colour of the background at world positions X, Y (..., H, W) -> (..., H, W, 3) in [0, 1]."""
    spec = vocab.BACKGROUNDS[name]
    kind, cols = spec["kind"], [_rgb(c, X) for c in spec["colors"]]
    if kind == "solid":
        return cols[0].expand(*X.shape, 3).clone()
    if kind == "vertical":
        return _mix(cols[1], cols[0], (Y / scene.height).clamp(0, 1))
    if kind == "horizontal":
        return _mix(cols[0], cols[1], (X / scene.width).clamp(0, 1))
    if kind == "ground":
        horizon = spec["horizon"] * scene.height
        sky = _mix(cols[0] * 1.08, cols[0] * 0.85, ((Y - horizon) / scene.height).clamp(0, 1)).clamp(0, 1)
        ground = _mix(cols[1], cols[1] * 0.8, ((horizon - Y) / horizon).clamp(0, 1))
        is_ground = (0.5 + (horizon - Y) / ps).clamp(0, 1)
        return sky + (ground - sky) * is_ground[..., None]
    cell = spec["cell"]
    if kind == "stripes":
        return _mix(cols[0], cols[1], _square_wave(X, cell, ps))
    if kind == "checker":
        a, b = _square_wave(X, cell, ps), _square_wave(Y, cell, ps)
        return _mix(cols[0], cols[1], a * (1 - b) + b * (1 - a))
    if kind == "dots":
        dx = (X / cell + 0.5) % 1.0 - 0.5
        dy = (Y / cell + 0.5) % 1.0 - 0.5
        dist = torch.sqrt(dx * dx + dy * dy) * cell - 0.25 * cell
        return _mix(cols[0], cols[1], (0.5 - dist / ps).clamp(0, 1))
    raise ValueError(f"unknown background kind {kind!r}")


# --- frames ----------------------------------------------------------------------------------------------

@dataclass
class Clip:
    """A rendered clip and its ground truth. N objects (in scene order), T frames."""
    frames: torch.Tensor         # uint8 (T, H, W, 3)
    fps: float
    times: torch.Tensor          # (T,) seconds
    center: torch.Tensor         # (N, T, 2) pixel x, y of each object's centre (may lie outside the frame)
    bbox: torch.Tensor           # (N, T, 4) x0, y0, x1, y1 in pixels of the drawn part inside the frame; NaN if none
    visible: torch.Tensor        # (N, T) fraction of the object's area visible (occlusion and frame edges)
    scene: Scene

    def ground_truth(self) -> dict:
        """JSON-ready: the scene, the frame times and a per-frame track for every object."""
        tracks = []
        for i, o in enumerate(self.scene.objects):
            tracks.append({
                "object": i, "color": o.color, "shape": o.shape, "size": o.size, "motion": o.motion,
                "center": self.center[i].round(decimals=2).tolist(),
                "bbox": [None if math.isnan(b[0]) else [round(v, 1) for v in b] for b in self.bbox[i].tolist()],
                "visible": self.visible[i].round(decimals=3).tolist(),
            })
        h, w = self.frames.shape[1:3]
        return {"scene": self.scene.to_dict(), "width": w, "height": h, "fps": self.fps,
                "times": self.times.round(decimals=4).tolist(), "tracks": tracks}


def render(scene: Scene, width: int, height: int, fps: float = 24.0, num_frames: int | None = None,
           start: float = 0.0, device: str | torch.device = "cpu", chunk: int = 8) -> Clip:
    """Render a scene to frames and ground truth.

    Args:
        scene: the scene (see scene.py); its motion is simulated over the frames' times.
        width, height: pixels (any positive size; the model's sizes are multiples of 16).
        fps: frames per second; the motion is the same continuous motion at any fps.
        num_frames: default covers scene.duration with a 1 + 4k frame count.
        start: time of the first frame in seconds.
        device: where to render ("cuda" is much faster for big batches of frames).
        chunk: frames rendered at once (bounds memory: about chunk * H * W * 40 bytes).

    Returns:
        Clip with frames uint8 (T, H, W, 3) on the CPU and per-object ground-truth tracks.
    """
    if num_frames is None:
        num_frames = frames_for(scene.duration, fps)
    times = start + np.arange(num_frames) / fps
    states = simulate(scene, until=float(times[-1]) if num_frames else 0.0).at(times)
    device = torch.device(device)
    frames = torch.empty(num_frames, height, width, 3, dtype=torch.uint8)
    n = len(scene.objects)
    center = torch.zeros(n, num_frames, 2)
    bbox = torch.full((n, num_frames, 4), float("nan"))
    visible = torch.zeros(n, num_frames)
    for s in range(0, num_frames, chunk):
        sl = slice(s, min(s + chunk, num_frames))
        f, c, b, v = _render_chunk(scene, states, sl, width, height, device)
        frames[sl], center[:, sl], bbox[:, sl], visible[:, sl] = f.cpu(), c.cpu(), b.cpu(), v.cpu()
    return Clip(frames, fps, torch.from_numpy(times).float(), center, bbox, visible, scene)


def _render_chunk(scene: Scene, states: States, sl: slice, W: int, H: int, device):
    dtype = torch.float32
    tensor = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=device)
    cam = tensor(states.camera_center[sl])                     # (Tc, 2)
    ps = 1.0 / (tensor(states.camera_zoom[sl]) * min(W, H))    # (Tc,) world units per pixel
    cols = torch.arange(W, dtype=dtype, device=device) + 0.5 - W / 2
    rows = torch.arange(H, dtype=dtype, device=device) + 0.5 - H / 2
    X = cam[:, 0, None, None] + cols[None, None, :] * ps[:, None, None]   # (Tc, H, W)
    Y = cam[:, 1, None, None] - rows[None, :, None] * ps[:, None, None]
    psb = ps[:, None, None]
    image = background(scene.background, scene, X, Y, psb)               # (Tc, H, W, 3)

    objs = scene.objects
    order = sorted(range(len(objs)), key=lambda i: (-objs[i].depth, i))  # back to front
    coverage = {}
    for i in order:
        o = objs[i]
        pos, angle = tensor(states.position[i, sl]), tensor(states.angle[i, sl])
        radius = o.radius * tensor(states.scale[i, sl])                 # (Tc,) world units
        dx, dy = X - pos[:, 0, None, None], Y - pos[:, 1, None, None]
        cos, sin = torch.cos(-angle)[:, None, None], torch.sin(-angle)[:, None, None]
        r = radius[:, None, None]
        local_x, local_y = (cos * dx - sin * dy) / r, (sin * dx + cos * dy) / r
        distance = shape_sdf(o.shape, local_x, local_y) * r              # world units
        cov = (0.5 - distance / psb).clamp(0, 1)                          # pixel coverage: the anti-aliasing
        coverage[i] = cov
        image = image + (_rgb(vocab.COLORS[o.color], X) - image) * cov[..., None]
    frames = (image * 255 + 0.5).clamp(0, 255).to(torch.uint8)

    n, Tc = len(objs), X.shape[0]
    center = torch.zeros(n, Tc, 2, device=device)
    bbox = torch.full((n, Tc, 4), float("nan"), device=device)
    visible = torch.zeros(n, Tc, device=device)
    for rank, i in enumerate(order):
        o = objs[i]
        pos = tensor(states.position[i, sl])
        center[i, :, 0] = (pos[:, 0] - cam[:, 0]) / ps + W / 2
        center[i, :, 1] = H / 2 - (pos[:, 1] - cam[:, 1]) / ps
        seen = coverage[i]
        for j in order[rank + 1:]:                                        # everything drawn over it
            seen = seen * (1 - coverage[j])
        area_px = unit_area(o.shape) * (o.radius * tensor(states.scale[i, sl]) / ps) ** 2
        visible[i] = (seen.sum(dim=(1, 2)) / area_px).clamp(0, 1)
        inside = coverage[i] > 0.5
        any_col, any_row = inside.any(dim=1), inside.any(dim=2)         # (Tc, W), (Tc, H)
        for k in range(Tc):
            xs, ys = torch.nonzero(any_col[k]).flatten(), torch.nonzero(any_row[k]).flatten()
            if len(xs):
                bbox[i, k] = torch.stack([xs[0], ys[0], xs[-1] + 1, ys[-1] + 1]).to(bbox.dtype)
    return frames, center, bbox, visible
