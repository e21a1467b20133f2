"""ToyWorld: a procedural 2D world with physics, rendered at any size, with captions and ground truth.

    scene = sample_scene(seed=7, aspect=9 / 16)          # or scene_from_prompt("a red ball bouncing")
    clip = render(scene, width=144, height=256, fps=24)   # frames uint8 (T, H, W, 3) + tracks
    captions(scene)                                       # {"short": ..., "medium": ..., "long": ...}
"""

from .captions import caption_levels, captions
from .physics import simulate
from .prompt import parse_prompt, scene_from_prompt
from .render import Clip, render
from .scene import Scene, WorldObject, sample_scene, validate_scene
from . import vocab

__all__ = ["Clip", "Scene", "WorldObject", "caption_levels", "captions", "parse_prompt", "render", "sample_scene",
           "scene_from_prompt", "simulate", "validate_scene", "vocab"]
