"""Pseudo-models for checking the instrument: ToyWorld's own renders (the oracle) and deliberately damaged ones.

    pipe = WorldPipeline()                 # a "model" that learned the world exactly
    pipe = WorldPipeline("frozen")         # ... whose clips then get one of DAMAGES
    pipe.know(cases)                       # the scenes the evaluation prompts describe (an oracle may look)

Every metric of straightline.eval must score the oracle near-perfect and each damage clearly worse
(tests/test_eval.py). `straightline eval --model reference[:DAMAGE]` runs a whole suite on them, which gives a
report's ceiling and shows what each kind of failure does to every number.

Damages, each applied to the oracle's clip of a scene:
    shuffled     frames in a random order (teleports, broken physics, flicker on textured backgrounds)
    frozen       the first frame repeated (no motion at all)
    noise        uniform random pixels (nothing to perceive)
    color swap   from half-way, the first object takes a colour the scene does not use (identity changes,
                 an object appears from nowhere, another vanishes)
    teleport     from half-way, every object jumps 0.45 short sides sideways
"""

import copy
import random
import time

import torch

from ..model import ModelInfo
from ..pipeline import Request, Result, validate_request
from ..world import render
from ..world.prompt import scene_from_prompt
from ..world.scene import contrasting_colors
from .adherence import case_scene, split_of


def _second_half_from(clip, scene):
    """The clip's frames with the second half taken from a render of `scene` (same size, times)."""
    T, H, W, _ = clip.frames.shape
    other = render(scene, W, H, fps=clip.fps, num_frames=T).frames
    frames = clip.frames.clone()
    frames[T // 2:] = other[T // 2:]
    return frames


def _color_swap(clip, rng):
    scene = copy.deepcopy(clip.scene)
    used = {o.color for o in scene.objects}
    spare = [c for c in contrasting_colors(scene.background) if c not in used]
    scene.objects[0].color = rng.choice(spare)
    return _second_half_from(clip, scene)


def _teleport(clip, rng):
    scene = copy.deepcopy(clip.scene)
    for o in scene.objects:
        shift = 0.45 if o.x + 0.45 < scene.width - o.radius else -0.45
        o.x += shift
        if o.orbit_center is not None:
            o.orbit_center = (o.orbit_center[0] + shift, o.orbit_center[1])
    return _second_half_from(clip, scene)


DAMAGES = {
    "shuffled": lambda clip, rng: clip.frames[torch.randperm(len(clip.frames), generator=rng_torch(rng))],
    "frozen": lambda clip, rng: clip.frames[:1].expand_as(clip.frames).clone(),
    "noise": lambda clip, rng: torch.randint(0, 256, clip.frames.shape, dtype=torch.uint8,
                                             generator=rng_torch(rng)),
    "color swap": _color_swap,
    "teleport": _teleport,
}


def rng_torch(rng: random.Random) -> torch.Generator:
    return torch.Generator().manual_seed(rng.randrange(2 ** 31))


class WorldPipeline:
    """A stand-in for pipeline.Pipeline that renders the scene each prompt describes, framed for the request.

    Prompts it was told about (`know`) render their case's scene, reframed for the requested aspect as
    adherence.case_scene does; other prompts go through world.prompt.scene_from_prompt. Results carry timings
    (the render's) like a model's, so every section of a report runs on it.

    Args:
        damage: None, or a key of DAMAGES applied to every clip (seeded by the request's seed).
    """

    def __init__(self, damage: str | None = None):
        if damage is not None and damage not in DAMAGES:
            raise ValueError(f"damage={damage!r}: expected one of {', '.join(DAMAGES)}")
        self.damage, self.info, self.device = damage, ModelInfo(), torch.device("cpu")
        self.name = "reference" + (f":{damage}" if damage else "")
        self.scenes: dict[str, object] = {}
        self.continuations: dict[bytes, torch.Tensor] = {}

    def know(self, cases) -> None:
        """Remember the scenes of (prompt, scene) cases: the oracle renders exactly these."""
        self.scenes.update({prompt: scene for prompt, scene, *_ in cases})

    def know_continuation(self, given: torch.Tensor, frames: torch.Tensor) -> None:
        """Remember the ground-truth clip that starts with the frames `given` (physics with conditioning)."""
        self.continuations[given.numpy().tobytes()] = frames

    def validate(self, prompt, **fields) -> Request:
        return validate_request(prompt, info=self.info, **fields)

    def _scene(self, r: Request):
        aspect = r.width / r.height
        base = self.scenes.get(r.prompt)
        if base is None:
            return scene_from_prompt(r.prompt, seed=r.seed, aspect=aspect, duration=max(r.seconds, 0.1))
        if abs(base.aspect / aspect - 1) < 0.02 or base.seed is None:
            return base
        return case_scene(base.seed, split_of(base), aspect, base.duration, base.camera)

    def _finish(self, r: Request, clip, start: float) -> Result:
        frames = clip.frames
        if self.damage:
            frames = DAMAGES[self.damage](clip, random.Random(r.seed))
        total = time.perf_counter() - start
        timings = {"text_s": 0.0, "sampling_s": total, "decode_s": 0.0, "total_s": total}
        return Result(frames, r.fps, r, r.requested_frames or r.frames, timings)

    def generate(self, requests, on_step=None) -> list[Result]:
        requests = [requests] if isinstance(requests, Request) else list(requests)
        results = []
        for r in requests:
            start = time.perf_counter()
            clip = render(self._scene(r), r.width, r.height, fps=r.fps, num_frames=r.frames)
            results.append(self._finish(r, clip, start))
        return results

    def continue_clip(self, request: Request, given: torch.Tensor) -> Result:
        """The ground truth that starts with `given` (told by know_continuation), damaged like any clip."""
        start = time.perf_counter()
        frames = self.continuations[given.numpy().tobytes()]
        clip = type("Clip", (), {"frames": frames, "fps": request.fps, "scene": self._scene(request)})()
        return self._finish(request, clip, start)


def is_reference(model: str) -> bool:
    return str(model).split(":")[0] == "reference"


def reference_pipeline(model: str) -> WorldPipeline:
    """"reference" or "reference:DAMAGE" -> WorldPipeline."""
    _, _, damage = str(model).partition(":")
    return WorldPipeline(damage or None)

