"""PNG figures for the evaluation report, drawn with Pillow (no plotting dependency).

    interval_chart(rows, "Prompt adherence", "accuracy", path, limits=(0, 1))
    line_chart({"model": [(t, y), ...], "truth": [...]}, "height of the ball", "s", "short sides", path)

Every interval chart shows each value as a dot with its 95% interval as a whisker and its n at the right, so a
figure never loses its sample count.
"""

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]
GRID, INK, MUTED = (225, 225, 225), (30, 30, 30), (120, 120, 120)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:                      # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def _finite(*values) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    span = hi - lo
    step = 10 ** math.floor(math.log10(span / count)) if span > 0 else 1.0
    for m in (1, 2, 5, 10):
        if span / (step * m) <= count:
            step *= m
            break
    first = math.ceil(lo / step) * step
    return [first + k * step for k in range(int((hi - first) / step + 1e-9) + 1)]


def interval_chart(rows, title: str, xlabel: str, path, *, limits=None, reference: float | None = None) -> Path:
    """Dot-and-whisker chart.

    Args:
        rows: [(label, [(series, value, low, high, n), ...])]: one line per label, one dot per series.
        limits: (lo, hi) of the x axis; default from the data.
        reference: an x value marked with a dashed line (e.g. what the world itself gives).
    """
    series = list(dict.fromkeys(s[0] for _, points in rows for s in points))
    values = [v for _, points in rows for _, *vals, _ in points for v in vals if _finite(v)]
    if limits is None:
        lo, hi = (min(values + [reference or 0.0]), max(values + [reference or 0.0])) if values else (0.0, 1.0)
        pad = 0.05 * (hi - lo or 1.0)
        limits = (lo - pad, hi + pad)
    lo, hi = limits
    font, small = _font(13), _font(12)
    row_h, label_w, plot_w, n_w = 22, 340, 420, 70
    height = 60 + row_h * sum(len(points) for _, points in rows) + 8 * len(rows) + 50
    image = Image.new("RGB", (label_w + plot_w + n_w + 30, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((10, 10), title, fill=INK, font=_font(16))
    x_of = lambda v: label_w + (min(max(v, lo), hi) - lo) / (hi - lo or 1.0) * plot_w
    top, bottom = 40, height - 45
    for tick in _ticks(lo, hi):
        draw.line([(x_of(tick), top), (x_of(tick), bottom)], fill=GRID)
        draw.text((x_of(tick) - 12, bottom + 4), f"{tick:g}", fill=MUTED, font=small)
    draw.text((label_w + plot_w / 2 - 40, bottom + 22), xlabel, fill=INK, font=small)
    if reference is not None and lo <= reference <= hi:
        for y in range(top, bottom, 8):
            draw.line([(x_of(reference), y), (x_of(reference), y + 4)], fill=MUTED)
    y = top + 8
    for label, points in rows:
        draw.text((10, y), label if len(label) <= 50 else label[:49] + "…", fill=INK, font=font)
        for name, value, low, high, n in points:
            color = COLORS[series.index(name) % len(COLORS)]
            mid = y + row_h / 2 - 2
            if _finite(low, high):
                draw.line([(x_of(low), mid), (x_of(high), mid)], fill=color, width=2)
                for end in (low, high):
                    draw.line([(x_of(end), mid - 4), (x_of(end), mid + 4)], fill=color, width=2)
            if _finite(value):
                draw.ellipse([x_of(value) - 4, mid - 4, x_of(value) + 4, mid + 4], fill=color)
            draw.text((label_w + plot_w + 10, y), f"n={n}", fill=MUTED, font=small)
            y += row_h
        y += 8
    if len(series) > 1:
        x = label_w
        for k, name in enumerate(series):
            draw.rectangle([x, 16, x + 10, 26], fill=COLORS[k % len(COLORS)])
            draw.text((x + 14, 13), name, fill=INK, font=small)
            x += 24 + 8 * len(name)
    path = Path(path)
    image.save(path)
    return path


def line_chart(series: dict, title: str, xlabel: str, ylabel: str, path) -> Path:
    """Lines through (x, y) points per series (NaN breaks a line); the first series solid, others too."""
    points = [(x, y) for pts in series.values() for x, y in pts if _finite(x, y)]
    xs, ys = [p[0] for p in points] or [0, 1], [p[1] for p in points] or [0, 1]
    (x_lo, x_hi), (y_lo, y_hi) = (min(xs), max(xs) or 1), (min(ys), max(ys))
    y_pad = 0.05 * (y_hi - y_lo or 1)
    y_lo, y_hi = y_lo - y_pad, y_hi + y_pad
    W, H, left, right, top, bottom = 560, 340, 60, 20, 40, 50
    image = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(image)
    font, small = _font(16), _font(12)
    draw.text((10, 10), title, fill=INK, font=font)
    px = lambda x: left + (x - x_lo) / (x_hi - x_lo or 1) * (W - left - right)
    py = lambda y: H - bottom - (y - y_lo) / (y_hi - y_lo or 1) * (H - top - bottom)
    for t in _ticks(x_lo, x_hi):
        draw.line([(px(t), top), (px(t), H - bottom)], fill=GRID)
        draw.text((px(t) - 8, H - bottom + 4), f"{t:g}", fill=MUTED, font=small)
    for t in _ticks(y_lo, y_hi):
        draw.line([(left, py(t)), (W - right, py(t))], fill=GRID)
        draw.text((6, py(t) - 7), f"{t:.3g}", fill=MUTED, font=small)
    draw.text((W / 2 - 20, H - 22), xlabel, fill=INK, font=small)
    draw.text((left, top - 14), ylabel, fill=INK, font=small)
    for k, (name, pts) in enumerate(series.items()):
        color = COLORS[k % len(COLORS)]
        run = []
        for x, y in list(pts) + [(float("nan"), float("nan"))]:
            if _finite(x, y):
                run.append((px(x), py(y)))
                continue
            if len(run) > 1:
                draw.line(run, fill=color, width=2)
            elif run:
                draw.ellipse([run[0][0] - 2, run[0][1] - 2, run[0][0] + 2, run[0][1] + 2], fill=color)
            run = []
        draw.rectangle([W - 150, 14 + 16 * k, W - 140, 24 + 16 * k], fill=color)
        draw.text((W - 135, 11 + 16 * k), name[:18], fill=INK, font=small)
    path = Path(path)
    image.save(path)
    return path
