"""Request fields shared by the command line and the service: sizes, aspect ratios and frame counts.

Each parser raises InvalidRequest naming the field, the value and what is allowed, so the CLI and the
HTTP API give the same error for the same mistake.
"""

import re

from .errors import InvalidRequest

MAX_SIDE = 4096


def parse_aspect(text: str | float) -> float:
    """"16:9", "9:16", "1:1", "2.39" or a number -> width / height."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*[:/x]\s*(\d+(?:\.\d+)?)\s*", str(text))
        try:
            value = float(m.group(1)) / float(m.group(2)) if m else float(text)
        except (ValueError, ZeroDivisionError):
            value = float("nan")
    if not 0.25 <= value <= 4.0:
        raise InvalidRequest("aspect", text, 'a ratio like "16:9", "9:16" or "1:1" between 1:4 and 4:1')
    return value


INTERVAL = 'two diffusion times "lo,hi" with 0 <= lo <= hi <= 1 (0 = noise, 1 = data), e.g. "0.1,0.75"'


def parse_interval(value, name: str = "cfg_interval") -> tuple[float, float]:
    """"0.1,0.75" or two numbers -> (lo, hi) with 0 <= lo <= hi <= 1: the diffusion times that are guided."""
    parts = value.split(",") if isinstance(value, str) else value
    try:
        if any(isinstance(v, bool) for v in parts):
            raise TypeError
        lo, hi = (float(v) for v in parts)
    except (TypeError, ValueError):
        raise InvalidRequest(name, value, INTERVAL) from None
    if not 0 <= lo <= hi <= 1:          # NaN fails too
        raise InvalidRequest(name, value, INTERVAL)
    return lo, hi


def parse_size(text: str) -> tuple[int, int]:
    """"320x180" -> (width, height)."""
    m = re.fullmatch(r"\s*(\d+)\s*[x×*,]\s*(\d+)\s*", str(text))
    if not m:
        raise InvalidRequest("size", text, 'WIDTHxHEIGHT in pixels, e.g. "320x180"')
    width, height = int(m.group(1)), int(m.group(2))
    for name, v in (("width", width), ("height", height)):
        if not 8 <= v <= MAX_SIDE:
            raise InvalidRequest("size", text, f"{name} between 8 and {MAX_SIDE} pixels")
    return width, height


def size_for(aspect: float, resolution: int, multiple: int = 16) -> tuple[int, int]:
    """Width and height with the short side `resolution`, the given aspect, both rounded to `multiple`."""
    if not multiple <= resolution <= MAX_SIDE:
        raise InvalidRequest("resolution", resolution, f"a short side between {multiple} and {MAX_SIDE} pixels")
    short, long = resolution, resolution * max(aspect, 1 / aspect)
    short = max(multiple, round(short / multiple) * multiple)
    long = max(multiple, round(long / multiple) * multiple)
    return (long, short) if aspect >= 1 else (short, long)


def nearest_valid_frames(n: int) -> int:
    """The causal VAE encodes 1 + 4k frames; map any count to the nearest such (ties go up)."""
    if n < 1:
        raise InvalidRequest("frames", n, "at least 1 frame")
    return 1 + 4 * int((n - 1) / 4 + 0.5)


def frames_for(seconds: float, fps: float) -> int:
    """Frames that span `seconds` at `fps` (both ends included), as a valid 1 + 4k count."""
    if not 0 <= seconds <= 600:
        raise InvalidRequest("seconds", seconds, "between 0 and 600")
    if not 1 <= fps <= 120:
        raise InvalidRequest("fps", fps, "between 1 and 120 frames per second")
    return nearest_valid_frames(round(seconds * fps) + 1)
