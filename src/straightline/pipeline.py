"""From a prompt (and images or videos) to pixels, in numbered steps.

    1. validate   validate_request(): every field checked, input media read and fitted, passes planned -> Request
    2. group      single-pass requests of one shape run as one batch; multi-pass ones (long videos, loops made
                  from text) run pass after pass, each pass given frames the ones before it made
    3. encode     prompts (and negative prompts, for guidance) -> text embeddings
    4. condition  given frames -> known latents + mask (the rule below); an edit's source -> its latents
    5. noise      one CPU generator per pass, seeded from the request: same seed, same video on a device
    6. sample     integrate the DiT's velocity from t = 0 (noise) to t = 1 (data) over a shifted schedule,
                  known latent frames held on their own noise-to-data path as in training; an edit starts at
                  t0 = 1 - strength from its noised source (SDEdit)
    7. decode     known latents pasted back, standardised latents -> video in [-1, 1] -> uint8 (T, H, W, 3)
    8. assemble   each pass's new frames joined to the input videos, the VAE's error at each seam faded
                  into the new frames -> the result

Writing the file is the caller's (the CLI writes mp4/png, the service stores its variants).

Modes (Request.mode; the CLI has a subcommand for each):
    generate  text -> video; `image` is its first frame, `end_image` its last; seconds=0 makes an image
    extend    `video` continued by `seconds`: direction "forward" gives video + new, "backward" new + video
    connect   `video`, a generated transition of `seconds`, then `end_video`
    loop      a clip whose last frame leads back into its first, from an `image`, a `video`'s first frame,
              or the prompt alone (an image is generated first)
    edit      `video` remade with the prompt: noised to t0 = 1 - strength and sampled from there (SDEdit)

Given frames, one rule for every mode: lay the given frames out on the clip's pixel timeline, fill every
other frame with the nearest given one, encode the whole clip with the VAE (training's latents come from
whole clips too), and mark as known the latent frames whose pixel frames are all given. Latent frame 0
codes pixel frame 0 alone and latent frame j >= 1 codes pixel frames 4j-3..4j, so an image at the start
marks latent frame 0 known, while an image at the end is held for the 4 frames of the last latent frame
(one frame alone would mark nothing). The DiT sees the known latents and the mask as extra channels; the
known latents are pasted into the sampled ones before decoding, so given frames come back as the VAE
reconstructs them. A video's frames in a result (extend, connect) are the input's own frames, so the
VAE's error at each seam (given frame shown minus its decoding) is faded into the new frames next to it.

Fitting inputs: an image or video of any size is scaled to cover the request's size and centre-cropped to
it. A request that gives no size or aspect takes its first input's aspect (within 1:4..4:1) at its
resolution (the model's default when none is given). Videos are read at the request's fps.

Long videos: one pass makes at most twice the model's trained clip length (ModelInfo.trained, else its
default duration). Longer results are chained: passes of the trained clip length, each given at its start
the last third of the latent frames made so far; frames past the end asked for are trimmed.

Axes: B requests in a batch, C latent channels, T latent frames, H, W latent height and width (the pixel
video has 1 + 4(T - 1) frames of 8H × 8W; tokens are 1 × 2 × 2 patches, so L = T · H/2 · W/2).
"""

import math
import re
import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from . import flow, sampling
from .data import from_model_output, to_model_input
from .dit import DiT
from .errors import InvalidRequest, MediaError
from .model import ModelInfo, load_model, resolve
from .request import nearest_valid_frames, parse_aspect, parse_interval, parse_size, size_for
from .text import TextEmbedding, load_text_encoder
from .video_io import Video, probe, read_video, resize_video

SAMPLERS = {"euler": sampling.euler, "heun": sampling.heun}
MODES = ("generate", "extend", "connect", "loop", "edit")
MODE_INPUTS = {"generate": ("image", "end_image"), "extend": ("video", "direction"),
               "connect": ("video", "end_video"), "loop": ("image", "video"), "edit": ("video", "strength")}
DIRECTIONS = ("forward", "backward")
DEFAULT_STRENGTH = 0.6
MAX_PROMPT_CHARS = 2000
SIDE_MULTIPLE = 16          # the VAE's 8× times the DiT's 2 × 2 patch
MIN_SIDE, MAX_SIDE = 16, 2048
MAX_SECONDS = 60
MAX_SEED = 2**32 - 1
FRAMES_PER_LATENT = 4       # after the first: the causal VAE codes pixel frames 4j-3..4j as latent frame j
MIN_VIDEO_FRAMES = 5        # a video to extend or connect: two latent frames, so that it shows motion


# --- 1. the request -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pass:
    """One run of the sampler: a clip of `frames` frames (1 + 4k) whose first `start` and last `end` are given."""
    frames: int
    start: int = 0
    end: int = 0


@dataclass(frozen=True)
class Request:
    """One validated generation request; build it with validate_request()."""
    prompt: str
    negative: str
    width: int
    height: int
    frames: int                 # of the result; 1 + 4k for generate, loop and edit; 1 is an image
    fps: float
    steps: int
    cfg: float                  # classifier-free guidance scale; 1 = no guidance (one pass per step)
    seed: int
    sampler: str                # "euler" | "heun"
    requested_frames: int | None = None   # the count asked for, when the result has another
    mode: str = "generate"      # MODES
    passes: tuple[Pass, ...] = ()         # the sampler passes, planned by validate_request
    # inputs, read and fitted to width × height, uint8; MODE_INPUTS says which a mode uses
    image: torch.Tensor | None = field(default=None, repr=False, compare=False)       # (H, W, 3)
    end_image: torch.Tensor | None = field(default=None, repr=False, compare=False)   # (H, W, 3)
    video: torch.Tensor | None = field(default=None, repr=False, compare=False)       # (T, H, W, 3)
    end_video: torch.Tensor | None = field(default=None, repr=False, compare=False)   # (T, H, W, 3)
    direction: str = "forward"
    strength: float = 1.0
    dit: str = "dit"            # the model folder's DiT that samples it (a preset may name a student)
    cfg_interval: tuple[float, float] = (0.0, 1.0)   # guided times t (sampling.classifier_free_guidance)

    @property
    def plan(self) -> tuple[Pass, ...]:
        return self.passes or (Pass(self.frames),)

    @property
    def seconds(self) -> float:
        return (self.frames - 1) / self.fps

    @property
    def latent_tokens(self) -> int:
        """Of the largest pass: what the token budget limits."""
        return max(_latent_tokens(p.frames, self.width, self.height) for p in self.plan)

    @property
    def adjusted(self) -> bool:
        return self.requested_frames is not None and self.requested_frames != self.frames


def _latent_tokens(frames: int, width: int, height: int) -> int:
    return (1 + (frames - 1) // 4) * (height // SIDE_MULTIPLE) * (width // SIDE_MULTIPLE)


def _number(name: str, value, lo: float, hi: float, allowed: str, integer: bool = False):
    """A number from an int, a float or a numeric string (HTTP forms send strings), within [lo, hi]."""
    if isinstance(value, bool):
        raise InvalidRequest(name, value, allowed)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidRequest(name, value, allowed) from None
    if not math.isfinite(number) or not lo <= number <= hi or (integer and number != int(number)):
        raise InvalidRequest(name, value, allowed)
    return int(number) if integer else number


def _text(name: str, value, allow_empty: bool) -> str:
    allowed = f"{'' if allow_empty else 'a non-empty '}text of at most {MAX_PROMPT_CHARS} characters"
    if not isinstance(value, str) or (not allow_empty and not value.strip()) or len(value) > MAX_PROMPT_CHARS:
        shown = value[:80] + "…" if isinstance(value, str) and len(value) > 80 else value
        raise InvalidRequest(name, shown, allowed)
    return value


def _nearest_side(v: int) -> int:
    return min(MAX_SIDE, max(MIN_SIDE, int(v / SIDE_MULTIPLE + 0.5) * SIDE_MULTIPLE))   # ties go up


def _size(size, aspect, resolution, info: ModelInfo) -> tuple[int, int]:
    size_rule = f"each a multiple of {SIDE_MULTIPLE} from {MIN_SIDE} to {MAX_SIDE} pixels"
    if size is not None:
        if aspect is not None or resolution is not None:
            raise InvalidRequest("size", size, "either size, or aspect with resolution, not both")
        if isinstance(size, (tuple, list)) and len(size) == 2:
            width, height = (_number("size", v, 0, math.inf, f"WIDTHxHEIGHT, {size_rule}", integer=True)
                             for v in size)
        else:
            try:
                width, height = parse_size(size)
            except InvalidRequest:
                raise InvalidRequest("size", size, f'WIDTHxHEIGHT, {size_rule}, e.g. "448x256"') from None
        name, value = "size", size
    else:
        aspect = info.default("aspect") if aspect is None else aspect
        resolution = info.default("resolution") if resolution is None else resolution
        if isinstance(resolution, str):
            resolution = resolution.strip().removesuffix("p")
        resolution = _number("resolution", resolution, MIN_SIDE, MAX_SIDE,
                             f"a short side {size_rule}", integer=True)
        if resolution % SIDE_MULTIPLE:
            raise InvalidRequest("resolution", resolution, f"a multiple of {SIDE_MULTIPLE} (the nearest is "
                                 f"{_nearest_side(resolution)})")
        width, height = size_for(parse_aspect(aspect), resolution, SIDE_MULTIPLE)
        name, value = "resolution", f"{resolution} at {aspect if isinstance(aspect, str) else round(aspect, 3)}"
    if width % SIDE_MULTIPLE or height % SIDE_MULTIPLE:
        raise InvalidRequest(name, value, f"width and height must be multiples of {SIDE_MULTIPLE} (8× for the "
                             f"autoencoder, 2× for the transformer's patches); the nearest valid size is "
                             f"{_nearest_side(width)}x{_nearest_side(height)}")
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise InvalidRequest(name, value, f"width and height {size_rule} (this gives {width}x{height})")
    return width, height


def _check_tokens(frames: int, width: int, height: int, fps: float, max_tokens: int) -> None:
    tokens = _latent_tokens(frames, width, height)
    if tokens > max_tokens:
        per_frame = (width // SIDE_MULTIPLE) * (height // SIDE_MULTIPLE)
        latent_frames = max_tokens // per_frame
        fits = (f"at {width}x{height} at most {1 + 4 * (latent_frames - 1)} frames "
                f"({4 * (latent_frames - 1) / fps:.1f} s at {fps:g} fps) fit" if latent_frames >= 1
                else f"even one frame at {width}x{height} needs {per_frame}")
        raise InvalidRequest("size", f"{width}x{height}, {frames} frames",
                             f"at most {max_tokens} latent tokens, and this needs {tokens} "
                             f"((1 + (frames - 1)/4) × (height/16) × (width/16)); reduce the size or the "
                             f"duration: {fits}")


# --- inputs: images and videos, read and fitted to the request's size

def _shown(value) -> str:
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return f"{value.dtype} array of shape {tuple(value.shape)}"
    return "<bytes>" if isinstance(value, (bytes, bytearray)) else str(value)


@contextmanager
def _named(name: str):
    """A problem with an input names the request field it came from."""
    try:
        yield
    except MediaError as err:
        named = MediaError(err.path, f"{err.reason} (given as {name})")
        named.field = name
        raise named from None
    except InvalidRequest as err:
        raise InvalidRequest(name, err.value, err.allowed) from None


def _as_source(value):
    """Tensors, arrays and Videos as uint8 frames (T, H, W, 3); a file object as its bytes (it is read twice)."""
    if isinstance(value, Video):
        value = value.frames
    if isinstance(value, (torch.Tensor, np.ndarray)):
        frames = torch.as_tensor(value)
        frames = frames[None] if frames.ndim == 3 else frames
        if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or 0 in frames.shape:
            raise InvalidRequest("frames", _shown(value), "uint8 RGB of shape (H, W, 3) or (T, H, W, 3)")
        return frames
    return value.read() if hasattr(value, "read") else value


def _media_size(name: str, value) -> tuple[int, int]:
    with _named(name):
        if isinstance(value, torch.Tensor):
            return value.shape[2], value.shape[1]
        info = probe(value)
        return info["width"], info["height"]


def _read(name: str, value, width: int, height: int, fps: float, first_only: bool = False) -> torch.Tensor:
    """uint8 (T, H, W, 3) at width × height: scaled to cover, centre-cropped; videos resampled to `fps`."""
    limit = int(MAX_SECONDS * fps) + 1
    with _named(name):
        if isinstance(value, torch.Tensor):
            frames = resize_video(value[:1] if first_only else value, width, height, "crop")
        else:
            frames = read_video(value, fps=fps, max_frames=1 if first_only else limit + 1, size=(width, height),
                                fit="crop").frames
    if len(frames) > limit:
        raise InvalidRequest(name, _shown(value), f"a video of at most {MAX_SECONDS} s")
    return frames


# --- planning the sampler passes

def _clip_frames(frames: int) -> int:
    """The shortest clip of 1 + 4k frames that holds `frames`."""
    return 1 + FRAMES_PER_LATENT * math.ceil((frames - 1) / FRAMES_PER_LATENT)


def _forward_passes(new: int, start: int, end: int, single: int, length: int, context: int) -> tuple[Pass, ...]:
    """Passes that make `new` frames after `start` given frames and before `end` given ones, left to right.

    One pass when its clip has at most `single` frames; else passes of at most `length` frames, each after
    the first given the last `context` frames made so far. With an end the new frames fill the gap exactly
    (callers make start + new + end a 1 + 4k count); without, the last pass may make a few too many."""
    if _clip_frames(start + new + end) <= single:
        return (Pass(_clip_frames(start + new + end), start, end),)
    passes, given = [], start
    while given + new + end > length:
        # with an end to meet, leave the last pass at least one latent frame to make
        made = length - given if not end else min(length - given, new - FRAMES_PER_LATENT)
        if made <= 0 or length < context + FRAMES_PER_LATENT + end:
            raise InvalidRequest("size", f"passes of {length} frames", "a size at which a pass of a long video "
                                 "holds more than its given frames; reduce the size")
        passes.append(Pass(given + made, given, 0))
        new, given = new - made, context
    return (*passes, Pass(_clip_frames(given + new + end), given, end))


def _backward_passes(new: int, end: int, single: int, length: int, context: int) -> tuple[Pass, ...]:
    """Passes that make `new` frames before `end` given ones, right to left: each after the first is given
    the first `context` frames made so far at its end; the last pass may make a few too many."""
    if _clip_frames(new + end) <= single:
        return (Pass(_clip_frames(new + end), 0, end),)
    passes, given = [], end
    while new + given > length:
        if length <= max(given, context):
            raise InvalidRequest("size", f"passes of {length} frames", "a size at which a pass of a long video "
                                 "holds more than its given frames; reduce the size")
        passes.append(Pass(length, 0, given))
        new, given = new - (length - given), context
    return (*passes, Pass(_clip_frames(new + given), 0, given))


def pass_lengths(info: ModelInfo, width: int, height: int) -> tuple[int, int, int, int]:
    """How a result is cut into sampler passes at this size: (single, length, start_context, end_context).

    One pass makes at most `single` frames: twice the model's trained clip (ModelInfo.trained, else its
    default duration). Longer results are chained from passes of `length` frames (the trained clip, or less
    when the token budget says so); each is given the last third of the latent frames made before it:
    `start_context` frames (1 + 4a) at its start, or `end_context` (4a) at its end when extending backward."""
    trained_seconds = max(info.trained.get("seconds") or [info.default("seconds")])
    trained_fps = info.trained.get("fps") or info.default("fps")
    trained = max(1 + 2 * FRAMES_PER_LATENT, nearest_valid_frames(round(trained_seconds * trained_fps) + 1))
    budget = int(info.default("max_tokens")) // ((width // SIDE_MULTIPLE) * (height // SIDE_MULTIPLE))
    length = min(trained, 1 + FRAMES_PER_LATENT * (budget - 1))
    given = max(1, round((1 + (length - 1) // FRAMES_PER_LATENT) / 3))     # latent frames
    return 2 * trained - 1, length, 1 + FRAMES_PER_LATENT * (given - 1), FRAMES_PER_LATENT * given


def _new_frames(seconds, frames, fps: float, default_seconds: float) -> int:
    """Frames to add to a video (extend) or between two (connect): round(seconds · fps), or `frames`."""
    if seconds is not None and frames is not None:
        raise InvalidRequest("frames", frames, "either seconds or frames, not both")
    if frames is not None:
        max_frames = int(MAX_SECONDS * fps)
        return _number("frames", frames, 1, max_frames, f"from 1 to {max_frames} frames to add", integer=True)
    seconds = _number("seconds", default_seconds if seconds is None else seconds, 1 / fps, MAX_SECONDS,
                      f"from {1 / fps:.3g} (one frame at {fps:g} fps) to {MAX_SECONDS} seconds to add")
    return max(1, round(seconds * fps))


def validate_request(prompt="", *, mode="generate", image=None, end_image=None, video=None, end_video=None,
                     direction=None, strength=None, negative="", seconds=None, frames=None, fps=None,
                     aspect=None, resolution=None, size=None, steps=None, cfg=None, cfg_interval=None, seed=None,
                     sampler=None, preset=None, info: ModelInfo | None = None) -> Request:
    """Check every field of a generation request once, for the CLI and the service alike; read its inputs.

    Fields left out (None) take the model's defaults (`info.default(...)`, else model.DEFAULTS). Numbers may
    be given as numeric strings, as HTTP forms send them.

    Args:
        prompt: what to generate; may be empty when frames are given (image, video), except for an edit.
        mode: "generate" | "extend" | "connect" | "loop" | "edit" (see the module docstring).
        image, end_image: the first / last frame (generate); loop: the image it starts and ends on.
        video: the video to extend, to connect from, to edit, or whose first frame a loop starts on.
        end_video: connect: the video the transition leads into.
            Images and videos are a path, bytes, a binary file object, a video_io.Video or uint8 frames
            (H, W, 3) / (T, H, W, 3); they are fitted to the size (module docstring) and read at `fps`.
        direction: extend: "forward" (the result is video + new) or "backward" (new + video).
        strength: edit: in (0, 1]; how far from the source the result may go (1 ignores it).
        seconds or frames (not both): generate, loop: the duration (0 s is one frame, an image). Frame counts
            that are not 1 + 4k are mapped to the nearest such count; Request.requested_frames keeps the one
            asked for. extend: the frames added; connect: the transition (a multiple of 4 frames); edit: how
            much of the source to use (default: all of it, as 1 + 4k frames).
        fps: frames per second of the result.
        size ("WxH") or aspect ("16:9") with resolution (the short side), not both. Sides are multiples of 16.
        steps, cfg, sampler: sampling effort, guidance scale (1 = none), "euler" or "heun".
        cfg_interval: (lo, hi) or "lo,hi" in [0, 1]: guidance only at diffusion times in it (0 = noise, 1 =
            data); outside it one conditional pass per step. The shipped model guides t <= 0.5 only.
        seed: None draws one from the OS; it is recorded in the Request so the video can be made again.
        preset: a named bundle of defaults ("fast"; model.PRESETS and the model's own), under the fields given.
    Returns:
        Request, with the sampler passes planned (Request.passes).
    Raises:
        InvalidRequest naming the field, the value and what is allowed; MediaError (with `.field`) for an
        input file that is missing or cannot be decoded.
    """
    info = info or ModelInfo()     # ModelInfo() falls back to model.DEFAULTS for every field
    if preset is not None:
        info = info.with_preset(preset)
    default = info.default
    if mode not in MODES:
        raise InvalidRequest("mode", mode, " | ".join(MODES))
    inputs = {"image": image, "end_image": end_image, "video": video, "end_video": end_video,
              "direction": direction, "strength": strength}
    for name, value in inputs.items():
        if value is not None and name not in MODE_INPUTS[mode]:
            users = " or ".join(m for m, names in MODE_INPUTS.items() if name in names)
            raise InvalidRequest(name, _shown(value), f"only with mode {users} (this request's mode is {mode})")
    for name in {"extend": ("video",), "connect": ("video", "end_video"), "edit": ("video",)}.get(mode, ()):
        if inputs[name] is None:
            raise InvalidRequest(name, None, f"an image or video for mode {mode}")
    if mode == "loop" and image is not None and video is not None:
        raise InvalidRequest("video", _shown(video), "a loop starts on an image or a video's first frame, not both")
    needs_prompt = mode == "edit" or (mode in ("generate", "loop") and image is end_image is video is None)
    prompt = _text("prompt", "" if prompt is None and not needs_prompt else prompt, allow_empty=not needs_prompt)
    negative = _text("negative", "" if negative is None else negative, allow_empty=True)
    direction = "forward" if direction is None else direction
    if direction not in DIRECTIONS:
        raise InvalidRequest("direction", direction, " or ".join(DIRECTIONS))
    if mode == "edit":
        strength = _number("strength", DEFAULT_STRENGTH if strength is None else strength, 0, 1,
                           "more than 0 (keep the source) and at most 1 (ignore it)")
        if strength == 0:
            raise InvalidRequest("strength", strength, "more than 0 (keep the source) and at most 1 (ignore it)")

    sampler = default("sampler") if sampler is None else sampler
    if not isinstance(sampler, str) or sampler not in SAMPLERS:
        raise InvalidRequest("sampler", sampler, " or ".join(SAMPLERS))
    steps = _number("steps", default("steps") if steps is None else steps, 1, 200,
                    "a whole number of sampling steps from 1 to 200", integer=True)
    cfg = _number("cfg", default("cfg") if cfg is None else cfg, 0, 20,
                  "a guidance scale from 0 to 20 (1 = no guidance)")
    cfg_interval = parse_interval(default("cfg_interval") if cfg_interval is None else cfg_interval)
    if seed is None:
        seed = secrets.randbelow(2**31)    # from the OS; recorded, so the result can be reproduced
    seed = _number("seed", seed, 0, MAX_SEED, f"a whole number from 0 to {MAX_SEED}", integer=True)
    fps = _number("fps", default("fps") if fps is None else fps, 1, 60, "from 1 to 60 frames per second")
    dit = default("dit")
    if not isinstance(dit, str) or not re.fullmatch(r"[\w.-]+", dit) or dit.startswith("."):
        raise InvalidRequest("preset", preset, f"a preset whose DiT is a folder name in the model folder, not {dit!r}")

    width, height, image, end_image, video, end_video = _read_inputs(
        mode, {n: inputs[n] for n in ("image", "video", "end_image", "end_video")}, size, aspect, resolution, fps,
        info)
    total, requested, passes = _plan(mode, image, end_image, video, end_video, direction, seconds, frames,
                                     fps, width, height, info)
    if mode == "edit":
        video = video[:total]
    return Request(prompt, negative, width, height, total, fps, steps, cfg, seed, sampler,
                   requested if requested not in (None, total) else None, mode,
                   () if passes == (Pass(total),) else passes, image, end_image, video, end_video, direction,
                   strength if mode == "edit" else 1.0, dit, cfg_interval)


def _read_inputs(mode: str, media: dict, size, aspect, resolution, fps: float, info: ModelInfo):
    """The size (as asked, else the first input's aspect at the resolution) and the inputs fitted to it:
    (width, height, image, end_image, video, end_video)."""
    media = {name: value for name, value in media.items() if value is not None}
    for name, value in media.items():
        with _named(name):
            media[name] = _as_source(value)
    if media and size is None and aspect is None:
        width, height = _media_size(*next(iter(media.items())))
        aspect = min(4.0, max(0.25, width / height))
    width, height = _size(size, aspect, resolution, info)
    read = {name: _read(name, value, width, height, fps, first_only="image" in name or mode == "loop")
            for name, value in media.items()}
    image, end_image = (read[name][0] if name in read else None for name in ("image", "end_image"))
    video, end_video = read.get("video"), read.get("end_video")
    if mode == "loop" and video is not None:
        image, video = video[0], None                     # a loop from a video starts on its first frame
    for name, clip in (("video", video), ("end_video", end_video)):
        if mode in ("extend", "connect") and clip is not None and len(clip) < MIN_VIDEO_FRAMES:
            raise InvalidRequest(name, f"{len(clip)} frames", f"a video of at least {MIN_VIDEO_FRAMES} frames "
                                 f"({(MIN_VIDEO_FRAMES - 1) / fps:.2f} s at {fps:g} fps)")
    return width, height, image, end_image, video, end_video


def _plan(mode, image, end_image, video, end_video, direction, seconds, frames, fps, width, height, info):
    """The result's length, the length asked for, and the sampler passes that make it."""
    single, length, start_context, end_context = pass_lengths(info, width, height)
    if seconds is not None and frames is not None:
        raise InvalidRequest("frames", frames, "either seconds or frames, not both")
    requested = None
    if mode in ("generate", "loop"):
        if frames is not None:
            max_frames = int(MAX_SECONDS * fps) + 1
            requested = _number("frames", frames, 1, max_frames, f"from 1 to {max_frames} frames "
                                f"({MAX_SECONDS} s at {fps:g} fps)", integer=True)
        else:
            seconds = _number("seconds", info.default("seconds") if seconds is None else seconds, 0, MAX_SECONDS,
                              f"from 0 (one frame, an image) to {MAX_SECONDS} seconds")
            requested = round(seconds * fps) + 1          # both ends included
        total = nearest_valid_frames(requested)
        first = int(image is not None)
        # an end image is held for the 4 frames of the last latent frame; a loop ends on its first image
        end = FRAMES_PER_LATENT if end_image is not None or mode == "loop" else 0
        if end and total < 1 + FRAMES_PER_LATENT:
            raise InvalidRequest("frames" if frames is not None else "seconds", seconds if frames is None else
                                 frames, f"at least {1 + FRAMES_PER_LATENT} frames for "
                                 + ("a loop" if mode == "loop" else "an end image"))
        if mode == "generate":
            passes = _forward_passes(total - first - end, first, end, single, length, start_context)
        else:   # the end (the start image again) is dropped from the result: its last frame leads into the first
            passes = _forward_passes(total - 1, 1, end, single, length, start_context)
            passes = passes if image is not None else (Pass(1), *passes)   # from text: make the image first
    elif mode == "extend":
        new = _new_frames(seconds, frames, fps, info.default("seconds"))
        total = len(video) + new
        if direction == "forward":
            given = min(start_context, 1 + (len(video) - 1) // FRAMES_PER_LATENT * FRAMES_PER_LATENT)
            passes = _forward_passes(new, given, 0, single, length, start_context)
        else:
            given = min(end_context, len(video) // FRAMES_PER_LATENT * FRAMES_PER_LATENT)
            passes = _backward_passes(new, given, single, length, end_context)
    elif mode == "connect":
        asked = _new_frames(seconds, frames, fps, info.default("seconds"))
        new = max(FRAMES_PER_LATENT, round(asked / FRAMES_PER_LATENT) * FRAMES_PER_LATENT)
        start = min(start_context, 1 + (len(video) - 1) // FRAMES_PER_LATENT * FRAMES_PER_LATENT)
        end = min(end_context, len(end_video) // FRAMES_PER_LATENT * FRAMES_PER_LATENT)
        passes = _forward_passes(new, start, end, single, length, start_context)
        total, requested = len(video) + new + len(end_video), len(video) + asked + len(end_video)
    else:   # edit: the source's first 1 + 4k frames, or fewer when seconds or frames say so
        requested = len(video)
        if frames is not None:
            requested = _number("frames", frames, 1, len(video), f"from 1 to the source's {len(video)} frames",
                                integer=True)
        elif seconds is not None:
            most = (len(video) - 1) / fps
            requested = round(_number("seconds", seconds, 0, most, f"from 0 to the source's {most:.2f} s")
                              * fps) + 1
        total = 1 + (requested - 1) // FRAMES_PER_LATENT * FRAMES_PER_LATENT
        passes = (Pass(total),)
    for p in passes:
        _check_tokens(p.frames, width, height, fps, int(info.default("max_tokens")))
    return total, requested, passes


# --- the result ----------------------------------------------------------------------------------------

_ROUNDING = {"connect": "transitions are whole multiples of 4 frames",
             "edit": "an edit keeps the first 1 + 4k frames of its source"}


@dataclass
class Result:
    frames: torch.Tensor        # uint8 (T, H, W, 3)
    fps: float
    request: Request
    requested_frames: int       # the count asked for; differs from len(frames) when mapped to 1 + 4k
    timings: dict = field(default_factory=dict)   # text_s, sampling_s, decode_s, total_s (a batch's shared
    #                                               text and sampling time is counted for each of its requests;
    #                                               sampling includes encoding given frames)
    note: str = ""              # how the result was made, beyond text to video (see describe())

    def summary(self) -> str:
        """One line: "448x256, 49 frames at 12 fps (4.0 s), seed 7, in 6.2 s (text 0.1 s, …)"."""
        r, t = self.request, self.timings
        T, H, W, _ = self.frames.shape
        if T == 1:
            what = f"{W}x{H} image"
        else:
            what = f"{W}x{H}, {T} frames at {self.fps:g} fps ({(T - 1) / self.fps:.1f} s"
            if self.requested_frames != T:
                what += f"; {self.requested_frames} frames asked, {_ROUNDING.get(r.mode, 'frame counts are 1 + 4k')}"
            what += ")"
        if self.note:
            what += f", {self.note}"
        return (f"{what}, seed {r.seed}, in {t['total_s']:.1f} s (text {t['text_s']:.1f} s, "
                f"sampling {t['sampling_s']:.1f} s, decoding {t['decode_s']:.1f} s)")


def describe(r: Request) -> str:
    """How a request's result is made, in a few words ("" for plain text to video in one pass)."""
    if r.mode == "generate":
        given = [name for name, v in (("a first image", r.image), ("a last image", r.end_image)) if v is not None]
        words = ["from " + " and ".join(given)] if given else []
    elif r.mode == "extend":
        words = [f"{len(r.video)} input frames + {r.frames - len(r.video)} new ({r.direction})"]
    elif r.mode == "connect":
        transition = r.frames - len(r.video) - len(r.end_video)
        words = [f"{len(r.video)} + {transition} transition + {len(r.end_video)} frames"]
    elif r.mode == "loop":
        words = ["a loop: its last frame leads into its first" + (", a generated image" if r.image is None else "")]
    else:
        words = [f"edited at strength {r.strength:g}"]
    chained = [p for p in r.plan if p.frames > 1]
    if len(chained) > 1:
        words.append(f"chained from {len(chained)} passes of up to {max(p.frames for p in chained)} frames")
    return "; ".join(words)


# --- the one rule for given frames (pure functions, used by step 4) ---------------------------------

def lay_out(frames: int, start: torch.Tensor | None, end: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Given frames on a clip's pixel timeline, every other frame filled with the nearest given one (the
    earlier on a tie).

    Args:
        frames: the clip's length; start, end: uint8 (s, H, W, 3) / (e, H, W, 3) given at its ends, or None.
    Returns:
        uint8 (frames, H, W, 3) to encode, and given: bool (frames,).
    """
    parts = [(torch.arange(len(start)), start)] if start is not None else []
    if end is not None:
        parts.append((torch.arange(frames - len(end), frames), end))
    positions = torch.cat([p for p, _ in parts])
    nearest = (torch.arange(frames)[:, None] - positions[None]).abs().argmin(dim=1)   # (frames,)
    given = torch.zeros(frames, dtype=torch.bool)
    given[positions] = True
    return torch.cat([f for _, f in parts])[nearest], given


def known_latent_frames(given: torch.Tensor) -> torch.Tensor:
    """bool (1 + 4k,) pixel frames given -> bool (1 + k,) latent frames known: latent frame 0 codes pixel
    frame 0 alone, latent frame j >= 1 pixel frames 4j-3..4j; a latent frame is known when all are given."""
    return torch.cat([given[:1], given[1:].view(-1, FRAMES_PER_LATENT).all(dim=1)])


# --- the modes: what each pass is given, and how its frames join the result ---------------------------

@dataclass
class _Clip:
    """What one sampler pass makes: a clip of `frames`, with given frames at its ends or an edit's source."""
    request: Request
    frames: int
    seed: int
    start: torch.Tensor | None = None    # uint8 (s, H, W, 3), given at the clip's start
    end: torch.Tensor | None = None      # uint8 (e, H, W, 3), given at its end
    source: torch.Tensor | None = None   # uint8 (frames, H, W, 3): the video an edit starts from


def _before_passes(r: Request) -> torch.Tensor:
    """The result before the first pass: the input video (extend, connect) or nothing."""
    if r.mode in ("extend", "connect"):
        return r.video
    return torch.empty(0, r.height, r.width, 3, dtype=torch.uint8)


def _backward(r: Request) -> bool:
    return r.mode == "extend" and r.direction == "backward"


def _clip_for(r: Request, i: int, made: torch.Tensor) -> _Clip:
    """Pass i of r, given frames from r's inputs or from `made`, the result so far."""
    p, last, seed = r.plan[i], i == len(r.plan) - 1, (r.seed + i) % (MAX_SEED + 1)
    if r.mode == "edit":
        return _Clip(r, p.frames, seed, source=r.video)
    if _backward(r):
        return _Clip(r, p.frames, seed, end=made[:p.end])
    start = end = None
    if p.start:     # the frames made so far end on the given ones; with none made yet, the given image
        start = made[len(made) - p.start:] if len(made) else r.image[None]
    if last and p.end:
        if r.mode == "connect":
            end = r.end_video[:p.end]
        else:       # an image held for the last latent frame: the end image, or a loop's first frame
            image = r.end_image if r.mode == "generate" else r.image if r.image is not None else made[0]
            end = image[None].expand(p.end, -1, -1, -1)
    return _Clip(r, p.frames, seed, start, end)


def fade_in_errors(new: torch.Tensor, before: torch.Tensor | None, after: torch.Tensor | None) -> torch.Tensor:
    """New frames with the VAE's error at their seams faded in: `before` (the error at the frame before them,
    the given frame the result shows minus its decoding) weighs n/(n+1) on the first new frame and fades
    linearly to 1/(n+1) on the last; `after` (the same for the frame after them) mirrors it.

    A pass's given frames come back as the VAE reconstructs them, but a result shows the input's own
    frames (or frames an earlier pass made) next to the new ones, so without this every seam would jump
    by the VAE's whole reconstruction error, several times a typical frame-to-frame change.

    Args:
        new: uint8 (n, H, W, 3); before, after: float (H, W, 3) or None.
    Returns:
        uint8 (n, H, W, 3).
    """
    if before is None and after is None:
        return new
    n = len(new)
    k = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1)
    out = new.float()
    if before is not None:
        out += (n - k) / (n + 1) * before
    if after is not None:
        out += (k + 1) / (n + 1) * after
    return out.round_().clamp_(0, 255).to(torch.uint8)


def _error(shown: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
    return shown.float() - decoded.float()


def _add_clip(r: Request, i: int, made: torch.Tensor, clip: torch.Tensor) -> torch.Tensor:
    """`made` with pass i's clip added: its frames after those given from `made` (before them, extending
    backward), with the VAE's error at each seam faded in (fade_in_errors). A given image is not in `made`
    yet, so its decoded frame is kept; a connection's end (the end video follows) and a loop's end (its
    first frame again) are dropped."""
    p, last = r.plan[i], i == len(r.plan) - 1
    if r.mode == "edit":
        return clip
    if _backward(r):
        new = clip[:p.frames - p.end]
        return torch.cat([fade_in_errors(new, None, _error(made[0], clip[len(new)])), made])
    image = clip[:p.start] if not len(made) else clip[:0]    # a given image, decoded
    drop = p.end if last and r.mode in ("connect", "loop") else 0
    before = _error(made[-1], clip[p.start - 1]) if len(made) and p.start else None
    after = None
    if drop:   # the frame after the new ones: the end video's first, or the loop's first frame
        follows = r.end_video[0] if r.mode == "connect" else made[0] if len(made) else clip[0]
        after = _error(follows, clip[p.frames - drop])
    return torch.cat([made, image, fade_in_errors(clip[p.start:p.frames - drop], before, after)])


def _finish(r: Request, made: torch.Tensor) -> torch.Tensor:
    """The result: the end video after a connection; frames made past what was asked trimmed."""
    if r.mode == "connect":
        made = torch.cat([made, r.end_video])
    return made[len(made) - r.frames:] if _backward(r) else made[:r.frames]


def keep_known_on_path(velocity, cond: torch.Tensor, noise: torch.Tensor):
    """`velocity(x, t)` that first puts the known latent frames where training has them: on their own
    straight path from the noise, x_t = (1 - t) * noise + t * known. Left to the sampler, they would move
    with the velocity the model predicts for them, which training never asks for (its loss skips them), and
    drift: the frames made next to them then continue the drifted frames, not the given ones.

    Args:
        velocity: (B, C, T, H, W), (B,) -> (B, C, T, H, W); cond: known latents + mask (B, C + 1, T, H, W);
        noise: (B, C, T, H, W), the pass's starting noise.
    """
    return lambda x, t: velocity(known_on_path(x, cond, noise, t), t)


def known_on_path(x: torch.Tensor, cond: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x with its known latent frames (cond's mask) at t on their path from the noise; t: (B,) or a scalar."""
    known, latents = cond[:, -1:], cond[:, :-1]
    return x * (1 - known) + flow.interpolate(latents, noise, t) * known


def _times(r: Request, frames: int, device=None) -> torch.Tensor:
    """The sampler's times for a pass of `frames`: more tokens -> more time near noise, the same shift as in
    training (flow.py); an edit starts at t0 = 1 - strength (SDEdit)."""
    times = flow.sampling_times(r.steps, flow.shift_for_tokens(_latent_tokens(frames, r.width, r.height)),
                                device=device)
    if r.mode == "edit" and r.strength < 1:
        t0 = 1 - r.strength
        times = torch.cat([times.new_tensor([t0]), times[times > t0]])
    return times


def batch_key(r: Request) -> tuple:
    """Requests with one key run as one batch: the shape of every pass, the sampling and the DiT."""
    return (tuple(p.frames for p in r.plan), r.height, r.width, r.steps, r.sampler, r.cfg, r.cfg_interval,
            r.strength if r.mode == "edit" else None, r.dit)


def dit_forwards(r: Request) -> list[tuple[int, int]]:
    """(latent tokens, sample-forwards) of each sampler pass of a request: what its sampling costs. A guided
    evaluation is two sample-forwards (conditional and unconditional), one outside the guidance interval;
    Heun evaluates twice a step but the last."""
    counts = []
    for p in r.plan:
        times = _times(r, p.frames).tolist()
        evaluated = times[:-1] + (times[1:-1] if r.sampler == "heun" else [])
        lo, hi = r.cfg_interval
        counts.append((_latent_tokens(p.frames, r.width, r.height),
                       sum(2 if r.cfg != 1 and lo <= t <= hi else 1 for t in evaluated)))
    return counts


# --- 2-8. the pipeline ---------------------------------------------------------------------------------

class Pipeline:
    """A loaded model ready to generate: DiT, VAE, text encoder and the model's defaults.

    Args:
        model: "default" (the shipped model) or a model folder (model.json, dit/, vae/).
        device: where to load it. When `dit` is given, its device is used.
        dit, vae, text, info: components to use instead of loading them (training passes its EMA model, VAE
            and text encoder to write preview videos). The models are used as given (their train/eval mode
            is not changed).
        cuda_graphs: on a GPU, replay each sampler step from a CUDA graph captured once per shape (the first
            pass of a new shape pays for the capture: two forwards and a recording).
        compile: on a GPU, also fuse the DiT's blocks with torch.compile (compiled once per shape, tens of
            seconds: worth it for a server that generates many clips of a few shapes, not for one clip).
    """

    def __init__(self, model="default", device="cpu", *, dit=None, vae=None, text=None, info=None,
                 cuda_graphs: bool = True, compile: bool = False):
        self.folder = None    # where a preset's other DiT is found; none when the components are given
        if dit is None or vae is None:
            self.folder = resolve(model)
            loaded_dit, loaded_vae, loaded_info = load_model(model, device)
            dit = loaded_dit if dit is None else dit
            vae = loaded_vae if vae is None else vae
            info = loaded_info if info is None else info
        self.dit, self.vae, self.info = dit, vae, info or ModelInfo()
        self.device = next(dit.parameters()).device
        self._dits = {"dit": dit}
        self.cuda_graphs, self.compile = cuda_graphs, compile and self.device.type == "cuda"
        self._forwards: dict[int, sampling.CUDAGraphed] = {}   # per DiT: its forward in bf16, graphed on a GPU
        self.text = text if text is not None else load_text_encoder(self.info.text_encoder, self.device,
                                                                    self.info.text_features)
        # a mismatch would otherwise surface as a shape error deep inside the first forward pass
        text_dim, expected = getattr(self.text, "dim", None), getattr(getattr(dit, "cfg", None), "text_dim", None)
        if None not in (text_dim, expected) and text_dim != expected:
            raise InvalidRequest("text_encoder", self.info.text_encoder, f"an encoder of width {expected} for "
                                 f"this transformer (this one gives {text_dim})")

    def validate(self, prompt="", **fields) -> Request:
        """validate_request() with this model's defaults and limits (and the DiT it names loaded)."""
        request = validate_request(prompt, info=self.info, **fields)
        self.dit_named(request.dit)
        return request

    def dit_named(self, name: str):
        """The DiT in the model folder's `name` subfolder ("dit": the model's own), loaded once."""
        if name not in self._dits:
            if self.folder is None or not (self.folder / name / "dit.json").is_file():
                raise InvalidRequest("preset", name, "a preset whose DiT is in the model folder "
                                     f"({self.folder or 'none: this pipeline was given its components'})")
            dit = DiT.load(self.folder / name, device=self.device)
            width = getattr(self.text, "dim", dit.cfg.text_dim)
            if dit.cfg.text_dim != width and not (self.info.text_features == "last+embeddings"
                                                  and dit.cfg.text_dim == width // 2):   # reads the last layer
                raise InvalidRequest("preset", name, f"a DiT that reads this model's text features "
                                     f"({self.info.text_features}, {width} wide), not {dit.cfg.text_dim}")
            self._dits[name] = dit
        return self._dits[name]

    @torch.inference_mode()
    def generate(self, requests: Request | list[Request], on_step=None) -> list[Result]:
        """Generate videos for validated requests, in the order given; every mode.

        Requests whose passes have one shape (frames of each pass, height, width, steps, sampler, cfg, and an
        edit's strength) run as one batch, pass after pass.

        Args:
            requests: one Request or a list.
            on_step: `on_step(done, total)` after every sampler step of every pass (and once with done = 0);
                raising from it stops generation (cooperative cancel) and the exception propagates.
        Returns:
            one Result per request: frames uint8 (T, H, W, 3).
        """
        requests = [requests] if isinstance(requests, Request) else list(requests)
        # 2. group requests whose passes have one shape; each group runs as one batch, pass after pass
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(batch_key(r), []).append(i)
        total = sum(len(_times(requests[idx[0]], p.frames)) - 1 for idx in groups.values()
                    for p in requests[idx[0]].plan)
        done = 0
        if on_step:
            on_step(0, total)
        results: list[Result | None] = [None] * len(requests)
        for indices in groups.values():
            batch = [requests[i] for i in indices]
            made = [_before_passes(r) for r in batch]
            timings = [dict.fromkeys(("text_s", "sampling_s", "decode_s", "total_s"), 0.0) for _ in batch]
            for step in range(len(batch[0].plan)):
                def progress(i, steps, x, before=done):   # the sampler's (i, steps, x) -> (done, total)
                    if on_step:
                        on_step(before + i, total)
                clips = [_clip_for(r, step, m) for r, m in zip(batch, made)]
                frames, shared, decode_s = self._sample(clips, progress)
                made = [_add_clip(r, step, m, f) for r, m, f in zip(batch, made, frames)]
                for t, own in zip(timings, decode_s):
                    t["text_s"] += shared["text_s"]
                    t["sampling_s"] += shared["sampling_s"]
                    t["decode_s"] += own
                    t["total_s"] += shared["total_s"] + own
                done += len(_times(batch[0], clips[0].frames)) - 1
            for i, r, m, t in zip(indices, batch, made, timings):
                results[i] = Result(_finish(r, m), r.fps, r, r.requested_frames or r.frames, t, describe(r))
        return results

    def _sample(self, clips: list[_Clip], progress) -> tuple[list[torch.Tensor], dict, list[float]]:
        """One sampler pass over clips of one shape -> uint8 (frames, H, W, 3) each, the shared seconds
        (text, sampling, total) and each clip's decoding seconds."""
        first, r = clips[0], clips[0].request
        guided, dit = r.cfg != 1, self.dit_named(r.dit)
        start = time.perf_counter()

        # 3. text: conditional prompts, then (with guidance) the negative prompts, "" when none
        text = self.text([c.request.prompt for c in clips])
        if guided:
            text = TextEmbedding.cat([text, self.text([c.request.negative for c in clips])])
        text = text.to(self.device).first(dit.cfg.text_dim)             # (B or 2B, Lt, Dt)
        if self.device.type == "cuda":
            text = text.padded(32)     # one shape (one CUDA graph, one compiled kernel) for prompts of up to 32
                                       # tokens, the next for up to 64, ...
        text_s = time.perf_counter() - start

        # 4. condition: given frames -> known latents + mask (the rule in the module docstring)
        sample_start = time.perf_counter()
        shape = self.vae.latent_shape(first.frames, r.height, r.width)   # (C, T, H, W)
        cond = self._known_latents(clips, shape)                         # (B, C + 1, T, H, W) or None

        # 5. noise: drawn on the CPU per pass, so a seed gives the same noise on any device and in any batch
        noise = torch.cat([torch.randn(1, *shape, generator=torch.Generator(device="cpu").manual_seed(c.seed))
                           for c in clips]).to(self.device)            # (B, C, T, H, W)

        # 6. sample; an edit starts from its source's latents noised to t0 = 1 - strength (SDEdit); at
        # strength 1 that is pure noise, text to video
        times = _times(r, first.frames, self.device)
        x = noise
        if first.source is not None and r.strength < 1:
            source = torch.cat([self.vae.encode(to_model_input(c.source[None]).to(self.device)) for c in clips])
            x = flow.interpolate(source, noise, times[:1].expand(len(clips)))
        forward = self._forward(dit)

        B = len(clips)

        def velocity_of(x, t):   # the prompts alone: (B, C, T, H, W), (B,) -> (B, C, T, H, W) in fp32
            return forward(x, t, text.tokens[:B], text.mask[:B], text.pooled[:B], cond)

        def velocity_pair(x, t):   # conditional and unconditional halves in one forward pass of batch 2B
            both = None if cond is None else torch.cat([cond, cond])
            return forward(torch.cat([x, x]), torch.cat([t, t]), text.tokens, text.mask, text.pooled,
                           both).chunk(2)

        velocity = sampling.classifier_free_guidance(velocity_pair, r.cfg, velocity_of, r.cfg_interval) \
            if guided else velocity_of
        if cond is not None:
            velocity = keep_known_on_path(velocity, cond, noise)
        latents = SAMPLERS[r.sampler](velocity, x, times, on_step=progress)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)   # kernels run asynchronously: wait, so the time is the GPU's
        sampling_s = time.perf_counter() - sample_start
        shared = {"text_s": text_s, "sampling_s": sampling_s, "total_s": time.perf_counter() - start}

        # 7. decode one video at a time (the VAE's memory is bounded per video, not per batch), with the
        # known latents pasted in, so given frames come back exactly as the VAE reconstructs them
        if cond is not None:
            latents = latents * (1 - cond[:, -1:]) + cond[:, :-1]
        frames, decode_s = [], []
        for z in latents.split(1):
            decode_start = time.perf_counter()
            frames.append(from_model_output(self.vae.decode(z.float())).cpu()[0])   # (T, H, W, 3) uint8
            decode_s.append(time.perf_counter() - decode_start)
        return frames, shared, decode_s

    def _forward(self, dit) -> sampling.CUDAGraphed:
        """`dit`'s forward in fp32 out, bf16 autocast on a GPU, from CUDA graphs there (and fused blocks with
        `compile`); made once per DiT."""
        if id(dit) not in self._forwards:
            if self.compile:
                dit.compile_blocks()
            autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda")

            def forward(*args):
                with autocast:
                    return dit(*args).float()
            self._forwards[id(dit)] = sampling.CUDAGraphed(forward, enabled=self.cuda_graphs)
        return self._forwards[id(dit)]

    def _known_latents(self, clips: list[_Clip], shape) -> torch.Tensor | None:
        """Known latents and mask (B, C + 1, T, H, W) of clips with given frames (zeros for the others);
        None when no clip has any (text to video)."""
        if all(c.start is None and c.end is None for c in clips):
            return None
        C, T, H, W = shape
        cond = torch.zeros(len(clips), C + 1, T, H, W, device=self.device)
        for b, c in enumerate(clips):
            if c.start is None and c.end is None:
                continue
            video, given = lay_out(c.frames, c.start, c.end)
            latents = self.vae.encode(to_model_input(video[None]).to(self.device))[0]   # (C, T, H, W)
            known = known_latent_frames(given).to(self.device, torch.float32).view(1, T, 1, 1)
            cond[b, :C], cond[b, C:] = latents * known, known.expand(1, T, H, W)
        return cond


# --- one call ------------------------------------------------------------------------------------------

_PIPELINES: dict[tuple[str, str], Pipeline] = {}


def load_pipeline(model="default", device="cpu") -> Pipeline:
    """One Pipeline per (model, device) in a process: a model folder is read once (later changes to the
    folder are not seen)."""
    key = (str(model), str(device))
    if key not in _PIPELINES:
        _PIPELINES[key] = Pipeline(model, device)
    return _PIPELINES[key]


def generate(prompt: str = "", *, model="default", device="cpu", on_step=None, **request_fields) -> Result:
    """Any mode in one call: validate_request(prompt, **request_fields) with the model's defaults, then
    Pipeline.generate. The pipeline is loaded once per (model, device) and kept.

    Examples:
        result = generate("a red ball bouncing on a wooden floor", seconds=2, aspect="9:16", seed=7)
        write_video("ball.mp4", result.frames, result.fps)
        generate("a red ball bouncing", seconds=0, size="512x288")                  # an image
        generate("a red ball bouncing", seconds=30)                                 # long: chained passes
        generate("the ball rolls away", image="first.png", end_image="last.png")    # first and last frames
        generate("", mode="extend", video="in.mp4", seconds=4, direction="backward")
        generate("", mode="connect", video="a.mp4", end_video="b.mp4", seconds=2)
        generate("a red ball bouncing", mode="loop")              # or mode="loop", image=... / video=...
        generate("a blue ball bouncing", mode="edit", video="in.mp4", strength=0.6)
    """
    pipeline = load_pipeline(model, device)
    return pipeline.generate(pipeline.validate(prompt, **request_fields), on_step=on_step)[0]


def slug(prompt: str, max_chars: int = 60) -> str:
    """A file-name-safe stem from a prompt: "A red ball, bouncing!" -> "a-red-ball-bouncing"."""
    return re.sub(r"[^\w]+", "-", prompt.lower()).strip("-_")[:max_chars].strip("-_") or "video"
