"""From a prompt to pixels, in numbered steps.

    1. validate   validate_request(): every field checked once, defaults from the model -> Request
    2. group      requests of one shape (frames, size, steps, sampler, cfg) run as one batch
    3. encode     prompts (and negative prompts, for guidance) -> text embeddings
    4. noise      one CPU generator per request seeded with its seed: same seed, same video on a device
    5. sample     integrate the DiT's velocity from t = 0 (noise) to t = 1 (data) over a shifted schedule
    6. decode     standardised latents -> video in [-1, 1] -> uint8 (T, H, W, 3)

Writing the file is the caller's (the CLI writes mp4/png, the service stores its variants).

Axes: B requests in a batch, C latent channels, T latent frames, H, W latent height and width (the pixel
video has 1 + 4(T - 1) frames of 8H × 8W; tokens are 1 × 2 × 2 patches, so L = T · H/2 · W/2).
"""

import math
import re
import secrets
import time
from dataclasses import dataclass, field

import torch

from . import flow, sampling
from .data import from_model_output
from .errors import InvalidRequest
from .model import ModelInfo, load_model
from .request import nearest_valid_frames, parse_aspect, parse_size, size_for
from .text import TextEmbedding, load_text_encoder

SAMPLERS = {"euler": sampling.euler, "heun": sampling.heun}
MAX_PROMPT_CHARS = 2000
SIDE_MULTIPLE = 16          # the VAE's 8× times the DiT's 2 × 2 patch
MIN_SIDE, MAX_SIDE = 16, 2048
MAX_SECONDS = 60
MAX_SEED = 2**32 - 1


# --- 1. the request -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Request:
    """One validated generation request; build it with validate_request()."""
    prompt: str
    negative: str
    width: int
    height: int
    frames: int                 # 1 + 4k; 1 is an image
    fps: float
    steps: int
    cfg: float                  # classifier-free guidance scale; 1 = no guidance (one pass per step)
    seed: int
    sampler: str                # "euler" | "heun"
    requested_frames: int | None = None   # the count asked for, when it was not 1 + 4k

    @property
    def seconds(self) -> float:
        return (self.frames - 1) / self.fps

    @property
    def latent_tokens(self) -> int:
        return _latent_tokens(self.frames, self.width, self.height)

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
        name, value = "resolution", f"{resolution} at {aspect}"
    if width % SIDE_MULTIPLE or height % SIDE_MULTIPLE:
        raise InvalidRequest(name, value, f"width and height must be multiples of {SIDE_MULTIPLE} (8× for the "
                             f"autoencoder, 2× for the transformer's patches); the nearest valid size is "
                             f"{_nearest_side(width)}x{_nearest_side(height)}")
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise InvalidRequest(name, value, f"width and height {size_rule} (this gives {width}x{height})")
    return width, height


def validate_request(prompt, *, negative="", seconds=None, frames=None, fps=None, aspect=None, resolution=None,
                     size=None, steps=None, cfg=None, seed=None, sampler=None,
                     info: ModelInfo | None = None) -> Request:
    """Check every field of a generation request once, for the CLI and the service alike.

    Fields left out (None) take the model's defaults (`info.default(...)`, else model.DEFAULTS). Numbers may
    be given as numeric strings, as HTTP forms send them.

    Args:
        prompt: what to generate, non-empty. negative: what to steer away from (with cfg != 1).
        seconds or frames (not both): duration; 0 s is one frame, an image. Frame counts that are not
            1 + 4k are mapped to the nearest such count; Request.requested_frames keeps the one asked for.
        fps: frames per second of the result.
        size ("WxH") or aspect ("16:9") with resolution (the short side), not both. Sides are multiples of 16.
        steps, cfg, sampler: sampling effort, guidance scale (1 = none), "euler" or "heun".
        seed: None draws one from the OS; it is recorded in the Request so the video can be made again.
    Returns:
        Request.
    Raises:
        InvalidRequest naming the field, the value and what is allowed.
    """
    info = info or ModelInfo()     # ModelInfo() falls back to model.DEFAULTS for every field
    default = info.default
    prompt = _text("prompt", prompt, allow_empty=False)
    negative = _text("negative", "" if negative is None else negative, allow_empty=True)

    sampler = default("sampler") if sampler is None else sampler
    if not isinstance(sampler, str) or sampler not in SAMPLERS:
        raise InvalidRequest("sampler", sampler, " or ".join(SAMPLERS))
    steps = _number("steps", default("steps") if steps is None else steps, 1, 200,
                    "a whole number of sampling steps from 1 to 200", integer=True)
    cfg = _number("cfg", default("cfg") if cfg is None else cfg, 0, 20,
                  "a guidance scale from 0 to 20 (1 = no guidance)")
    if seed is None:
        seed = secrets.randbelow(2**31)    # from the OS; recorded, so the result can be reproduced
    seed = _number("seed", seed, 0, MAX_SEED, f"a whole number from 0 to {MAX_SEED}", integer=True)

    fps = _number("fps", default("fps") if fps is None else fps, 1, 60, "from 1 to 60 frames per second")
    if seconds is not None and frames is not None:
        raise InvalidRequest("frames", frames, "either seconds or frames, not both")
    if frames is not None:
        max_frames = int(MAX_SECONDS * fps) + 1
        requested = _number("frames", frames, 1, max_frames, f"from 1 to {max_frames} frames ({MAX_SECONDS} s "
                            f"at {fps:g} fps)", integer=True)
    else:
        seconds = _number("seconds", default("seconds") if seconds is None else seconds, 0, MAX_SECONDS,
                          f"from 0 (one frame, an image) to {MAX_SECONDS} seconds")
        requested = round(seconds * fps) + 1          # both ends included
    frames = nearest_valid_frames(requested)

    width, height = _size(size, aspect, resolution, info)
    tokens, max_tokens = _latent_tokens(frames, width, height), int(default("max_tokens"))
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
    return Request(prompt, negative, width, height, frames, fps, steps, cfg, seed, sampler,
                   requested if requested != frames else None)


# --- the result ----------------------------------------------------------------------------------------

@dataclass
class Result:
    frames: torch.Tensor        # uint8 (T, H, W, 3)
    fps: float
    request: Request
    requested_frames: int       # the count asked for; differs from len(frames) when mapped to 1 + 4k
    timings: dict = field(default_factory=dict)   # text_s, sampling_s, decode_s, total_s (a batch's shared
    #                                               text and sampling time is counted for each of its requests)

    def summary(self) -> str:
        """One line: "448x256, 49 frames at 12 fps (4.0 s), seed 7, in 6.2 s (text 0.1 s, …)"."""
        r, t = self.request, self.timings
        T, H, W, _ = self.frames.shape
        if T == 1:
            what = f"{W}x{H} image"
        else:
            what = f"{W}x{H}, {T} frames at {self.fps:g} fps ({(T - 1) / self.fps:.1f} s"
            if self.requested_frames != T:
                what += f"; {self.requested_frames} frames asked, frame counts are 1 + 4k"
            what += ")"
        return (f"{what}, seed {r.seed}, in {t['total_s']:.1f} s (text {t['text_s']:.1f} s, "
                f"sampling {t['sampling_s']:.1f} s, decoding {t['decode_s']:.1f} s)")


# --- 2-6. the pipeline ---------------------------------------------------------------------------------

class Pipeline:
    """A loaded model ready to generate: DiT, VAE, text encoder and the model's defaults.

    Args:
        model: "default" (the shipped model) or a model folder (model.json, dit/, vae/).
        device: where to load it. When `dit` is given, its device is used.
        dit, vae, text, info: components to use instead of loading them (training passes its EMA model, VAE
            and text encoder to write preview videos). The models are used as given (their train/eval mode
            is not changed).
    """

    def __init__(self, model="default", device="cpu", *, dit=None, vae=None, text=None, info=None):
        if dit is None or vae is None:
            loaded_dit, loaded_vae, loaded_info = load_model(model, device)
            dit = loaded_dit if dit is None else dit
            vae = loaded_vae if vae is None else vae
            info = loaded_info if info is None else info
        self.dit, self.vae, self.info = dit, vae, info or ModelInfo()
        self.device = next(dit.parameters()).device
        self.text = text if text is not None else load_text_encoder(self.info.text_encoder, self.device)
        # a mismatch would otherwise surface as a shape error deep inside the first forward pass
        text_dim, expected = getattr(self.text, "dim", None), getattr(getattr(dit, "cfg", None), "text_dim", None)
        if None not in (text_dim, expected) and text_dim != expected:
            raise InvalidRequest("text_encoder", self.info.text_encoder, f"an encoder of width {expected} for "
                                 f"this transformer (this one gives {text_dim})")

    def validate(self, prompt, **fields) -> Request:
        """validate_request() with this model's defaults and limits."""
        return validate_request(prompt, info=self.info, **fields)

    @torch.inference_mode()
    def generate(self, requests: Request | list[Request], on_step=None) -> list[Result]:
        """Generate videos for validated requests, in the order given.

        Requests of one shape (frames, height, width, steps, sampler, cfg) run as one batch.

        Args:
            requests: one Request or a list.
            on_step: `on_step(done, total)` after every sampler step (and once with done = 0); raising from it
                stops generation (cooperative cancel) and the exception propagates.
        Returns:
            one Result per request: frames uint8 (T, H, W, 3).
        """
        requests = [requests] if isinstance(requests, Request) else list(requests)
        # 2. group requests of one shape; each group is one batch through the sampler
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault((r.frames, r.height, r.width, r.steps, r.sampler, r.cfg), []).append(i)
        total = sum(requests[idx[0]].steps for idx in groups.values())
        done = 0
        if on_step:
            on_step(0, total)
        results: list[Result | None] = [None] * len(requests)
        for indices in groups.values():
            def progress(i, steps, x, before=done):   # the sampler's (i, steps, x) -> (done, total)
                if on_step:
                    on_step(before + i, total)
            batch = self._generate_batch([requests[i] for i in indices], progress)
            for i, result in zip(indices, batch):
                results[i] = result
            done += requests[indices[0]].steps
        return results

    def _generate_batch(self, batch: list[Request], progress) -> list[Result]:
        first = batch[0]
        guided = first.cfg != 1
        start = time.perf_counter()

        # 3. text: conditional prompts, then (with guidance) the negative prompts, "" when none
        cond = self.text([r.prompt for r in batch])
        if guided:
            cond = TextEmbedding.cat([cond, self.text([r.negative for r in batch])])
        cond = cond.to(self.device)                                    # (B or 2B, Lt, Dt)
        text_s = time.perf_counter() - start

        # 4. noise: drawn on the CPU per request, so a seed gives the same noise on any device and in any batch
        shape = self.vae.latent_shape(first.frames, first.height, first.width)   # (C, T, H, W)
        noise = torch.cat([torch.randn(1, *shape, generator=torch.Generator(device="cpu").manual_seed(r.seed))
                           for r in batch]).to(self.device)            # (B, C, T, H, W)

        # 5. sample: more tokens -> more time near noise, the same shift as in training (flow.py)
        shift = flow.shift_for_tokens(first.latent_tokens)
        times = flow.sampling_times(first.steps, shift, device=self.device)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda")

        def velocity_of(x, t):   # (B', C, T, H, W), (B',) -> (B', C, T, H, W) in fp32
            with autocast:
                return self.dit(x, t, cond.tokens, cond.mask, cond.pooled).float()

        def velocity_pair(x, t):   # conditional and unconditional halves in one forward pass of batch 2B
            return velocity_of(torch.cat([x, x]), torch.cat([t, t])).chunk(2)

        velocity = sampling.classifier_free_guidance(velocity_pair, first.cfg) if guided else velocity_of
        sample_start = time.perf_counter()
        latents = SAMPLERS[first.sampler](velocity, noise, times, on_step=progress)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)   # kernels run asynchronously: wait, so the time is the GPU's
        sampling_s = time.perf_counter() - sample_start
        shared_s = time.perf_counter() - start

        # 6. decode one video at a time: the VAE's memory is bounded per video, not per batch
        results = []
        for r, z in zip(batch, latents.split(1)):
            decode_start = time.perf_counter()
            frames = from_model_output(self.vae.decode(z.float())).cpu()[0]   # (T, H, W, 3) uint8
            decode_s = time.perf_counter() - decode_start
            timings = {"text_s": text_s, "sampling_s": sampling_s, "decode_s": decode_s,
                       "total_s": shared_s + decode_s}
            results.append(Result(frames, r.fps, r, r.requested_frames or r.frames, timings))
        return results


# --- one call ------------------------------------------------------------------------------------------

_PIPELINES: dict[tuple[str, str], Pipeline] = {}


def load_pipeline(model="default", device="cpu") -> Pipeline:
    """One Pipeline per (model, device) in a process: a model folder is read once (later changes to the
    folder are not seen)."""
    key = (str(model), str(device))
    if key not in _PIPELINES:
        _PIPELINES[key] = Pipeline(model, device)
    return _PIPELINES[key]


def generate(prompt: str, *, model="default", device="cpu", on_step=None, **request_fields) -> Result:
    """Text to video in one call: validate_request(prompt, **request_fields) with the model's defaults, then
    Pipeline.generate. The pipeline is loaded once per (model, device) and kept.

    Example:
        result = generate("a red ball bouncing on a wooden floor", seconds=2, aspect="9:16", seed=7)
        write_video("ball.mp4", result.frames, result.fps)
    """
    pipeline = load_pipeline(model, device)
    return pipeline.generate(pipeline.validate(prompt, **request_fields), on_step=on_step)[0]


def slug(prompt: str, max_chars: int = 60) -> str:
    """A file-name-safe stem from a prompt: "A red ball, bouncing!" -> "a-red-ball-bouncing"."""
    return re.sub(r"[^\w]+", "-", prompt.lower()).strip("-_")[:max_chars].strip("-_") or "video"
