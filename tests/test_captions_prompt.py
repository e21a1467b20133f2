"""Captions and prompt parsing are inverses: every caption level parses back to what it promises, and
hand-written prompts give the scenes they ask for."""

import re

import pytest

from straightline.errors import InvalidRequest
from straightline.world import sample_scene, simulate, vocab
from straightline.world.captions import _when, caption_levels, captions, main_object
from straightline.world.prompt import (
    POSITIONS,
    parse_prompt,
    position_name,
    scene_from_parse,
    scene_from_prompt,
)
from straightline.world.scene import SCENARIOS

ASPECTS = (16 / 9, 9 / 16, 1.0, 2.0)
# What each level promises per object ("direction" only where the motion has one, "speed" likewise).
PROMISES = {"short": ("shape", "motion"),
            "medium": ("shape", "motion", "direction"),
            "long": ("shape", "motion", "direction", "size", "speed", "position", "depth")}


def _truth(scene, o) -> dict:
    layered = len({p.depth for p in scene.objects}) > 1
    depth = ("front" if o.depth == min(p.depth for p in scene.objects) else "back") if layered else None
    return {"shape": o.shape, "motion": o.motion, "direction": o.direction, "size": o.size, "speed": o.speed,
            "position": position_name(o.x / scene.width, o.y / scene.height), "depth": depth}


def _check(scene, level: str, text: str) -> tuple[int, list[str]]:
    """Number of promised facts checked, and the ones the parse of `text` got wrong."""
    parsed = parse_prompt(text)
    failures, checked = [], 0
    by_color = {o["color"]: o for o in parsed["objects"] if o["color"]}
    indices = [main_object(scene)] if level == "short" else range(len(scene.objects))
    for i in indices:
        o = scene.objects[i]
        truth, got = _truth(scene, o), by_color.get(o.color)
        checked += 1 + len(PROMISES[level])
        if got is None:
            failures.append(f"{level} seed={scene.seed}: no {o.color} object in {text!r}")
            continue
        failures += [f"{level} seed={scene.seed}: objects[{i}].{key} {got[key]!r} != {truth[key]!r} in {text!r}"
                     for key in PROMISES[level] if got[key] != truth[key]]
    expected = {"background": scene.background, "unknown": []}
    if level != "short":
        camera = scene.camera if level == "long" or scene.camera != "static" else None  # medium omits "static"
        expected |= {"count": len(scene.objects), "camera": camera}
    elif parsed["background"] is None:
        expected.pop("background")  # a short caption may leave the background out
    checked += len(expected)
    failures += [f"{level} seed={scene.seed}: {key} {parsed[key]!r} != {value!r} in {text!r}"
                 for key, value in expected.items() if parsed[key] != value]
    return checked, failures


def _scenes(n=200):
    return [sample_scene(seed, aspect=ASPECTS[seed % len(ASPECTS)], scenario=SCENARIOS[seed % len(SCENARIOS)],
                         split="any") for seed in range(n)]


def test_every_caption_level_parses_back_to_what_it_promises():
    totals = {level: [0, []] for level in caption_levels}
    for scene in _scenes():
        for level, text in captions(scene).items():
            checked, failures = _check(scene, level, text)
            totals[level][0] += checked
            totals[level][1] += failures
    report = {level: f"{1 - len(f) / n:.2%} of {n} facts" for level, (n, f) in totals.items()}
    failures = [f for _, fs in totals.values() for f in fs]
    assert not failures, f"recovery {report}; first failures:\n" + "\n".join(failures[:10])


def test_captions_are_deterministic_and_vary_with_the_seed():
    scene = sample_scene(3)
    assert captions(scene) == captions(sample_scene(3))
    assert captions(scene, simulate(scene).events) == captions(scene)
    shorts = {captions(sample_scene(seed, scenario="single"))["short"] for seed in range(20)}
    assert len(shorts) > 15


def test_collision_caption_mentions_the_collision():
    scene = next(s for s in (sample_scene(seed, scenario="collision") for seed in range(50))
                 if any(e["type"] == "collision" for e in simulate(s).events))
    long = captions(scene)["long"]
    assert any(verb in long for verb in ("collides with", "bumps into", "crashes into")), long
    assert {"type": "collide", "objects": [0, 1]} in parse_prompt(long)["relations"]


def test_occlusion_caption_mentions_passing_behind():
    scene = next(s for s in (sample_scene(seed, scenario="occlusion") for seed in range(50))
                 if any(e["type"] == "occlusion" for e in simulate(s).events))
    long = captions(scene)["long"]
    assert any(verb in long for verb in ("passes behind", "slips behind", "disappears behind")), long
    assert {"type": "behind", "objects": [1, 0]} in parse_prompt(long)["relations"]


def test_event_times_read_naturally():
    # round() rounds half to even, so an event at t = 0.25 s once read "after about 0 seconds"
    times = (0.0, 0.2, 0.25, 0.6, 0.75, 1.2, 1.25, 2.0, 9.8)
    assert [_when(t) for t in times] == [
        "at the very start", "at the very start", "after about half a second", "after about half a second",
        "after about 1 second", "after about 1 second", "after about 1.5 seconds", "after about 2 seconds",
        "after about 10 seconds"]
    long = captions(sample_scene(64, duration=0.5))["long"]
    assert "After about half a second the medium-sized pink circle passes behind the green square" in long, long
    # a repeat at the same rounded time as the first says "then", not "after about half a second ... again" twice
    long = captions(sample_scene(266, duration=1.5))["long"]
    assert "After about half a second the yellow ring passes behind the blue block and reappears." in long, long
    assert "Then the yellow ring slips behind the blue block again and reappears." in long, long
    assert parse_prompt(long)["unknown"] == []


def test_long_captions_of_short_and_long_clips_read_cleanly():
    odd = re.compile(r"\b0 seconds|\b1 seconds|\b0\.5 seconds?|  |\b(?:a|an|the) (?:a|an|the)\b|[.;,] ?[.;,]")
    for seed in range(120):
        scene = sample_scene(seed, aspect=ASPECTS[seed % 4], duration=(0.5, 1.0, 2.0, 10.0)[seed % 4])
        for level, text in captions(scene).items():
            assert not odd.search(text), (seed, level, text)
            assert parse_prompt(text)["unknown"] == [], (seed, level, text)


def test_a_scene_built_from_its_long_caption_has_the_same_attributes():
    for scene in _scenes(40):
        rebuilt = scene_from_prompt(captions(scene)["long"], seed=scene.seed, aspect=scene.aspect)
        assert (rebuilt.background, rebuilt.camera) == (scene.background, scene.camera)
        assert [_truth(rebuilt, o) | {"color": o.color} for o in rebuilt.objects] == \
            [_truth(scene, o) | {"color": o.color} for o in scene.objects], scene.seed


def _one(text, **kw):
    scene = scene_from_prompt(text, **kw)
    assert len(scene.objects) == 1
    return scene, scene.objects[0]


def test_hand_written_prompts():
    scene, ball = _one("a red ball bouncing on a wooden floor")
    assert (ball.color, ball.shape, ball.motion, scene.background) == ("red", "ball", "bounce", "wooden floor")

    scene, star = _one("a small blue star slides left over a sunset sky")
    assert (star.size, star.color, star.shape) == ("small", "blue", "star")
    assert (star.motion, star.direction) == ("slide", "left")
    assert scene.background == "sunset sky"

    _, cube = _one("A cube falling")
    assert (cube.shape, cube.motion) == ("square", "fall")

    _, ring = _one("an orange ring orbiting clockwise fast")
    assert (ring.color, ring.shape) == ("orange", "ring")
    assert (ring.motion, ring.direction, ring.speed) == ("orbit", "clockwise", "fast")

    _, square = _one("a grey box rolling to the left, slowly, against stripes", seed=4)
    assert (square.color, square.shape) == ("gray", "square")
    assert (square.motion, square.direction, square.speed) == ("slide", "left", "slow")

    _, triangle = _one("A violet pyramid drifting diagonally up and to the right")
    assert (triangle.color, triangle.shape, triangle.direction) == ("purple", "triangle", "up-right")


def test_counts_give_distinct_colours_and_say_so():
    text = "two green squares spinning slowly while the camera zooms in"
    parsed = parse_prompt(text)
    assert parsed["count"] == 2 and parsed["camera"] == "zoom in"
    assert [o["color"] for o in parsed["objects"]] == ["green", None]  # the second gets another colour
    assert any("told apart by colour" in note for note in parsed["notes"])
    scene = scene_from_prompt(text, seed=1)
    assert [(o.shape, o.motion, o.speed) for o in scene.objects] == [("square", "spin", "slow")] * 2
    assert scene.objects[0].color == "green" and scene.objects[1].color != "green"
    assert scene.camera == "zoom in"


def test_synonyms_and_phrases():
    cases = {
        "a sphere growing": ("ball", "grow"), "a donut getting smaller": ("ring", "shrink"),
        "a plus rotating": ("cross", "spin"), "a block resting": ("square", "still"),
        "a dot circling": ("ball", "orbit"), "a star going around": ("star", "orbit"),
        "a circle outline sitting still": ("ring", "still"), "a box dropping": ("square", "fall"),
    }
    for text, (shape, motion) in cases.items():
        o = parse_prompt(text)["objects"][0]
        assert (o["shape"], o["motion"]) == (shape, motion), text
    assert parse_prompt("a ball at night")["background"] == "night"
    assert parse_prompt("balls on the beach")["background"] == "sand"
    assert parse_prompt("a star in a field, panning right")["camera"] == "pan right"
    assert parse_prompt("a red ball in the upper left")["objects"][0]["position"] == "upper left"


def test_every_vocabulary_name_is_understood():
    for color in vocab.COLORS:
        assert parse_prompt(f"a {color} thing")["objects"][0]["color"] == color
    for shape in vocab.SHAPES:
        plural = shape + ("es" if shape.endswith("s") else "s")
        assert parse_prompt(f"two {plural}")["objects"][1]["shape"] == shape
    for background in vocab.BACKGROUNDS:
        assert parse_prompt(f"a ball on a {background} background")["background"] == background
    for camera in vocab.CAMERAS[1:]:
        verb, where = camera.split()
        assert parse_prompt(f"a ball, the camera {verb}s {where}")["camera"] == camera


def test_asked_for_start_positions_are_kept():
    edges = {"center": "in the center", "top": "at the top", "bottom": "at the bottom", "left": "on the left",
             "right": "on the right side"}
    for seed, (motion, name) in enumerate((m, n) for m in vocab.MOTIONS for row in POSITIONS for n in row):
        parsed = parse_prompt(f"a star {edges.get(name, 'in the ' + name)}")
        parsed["objects"][0]["motion"] = motion
        for aspect in (16 / 9, 9 / 16):
            scene = scene_from_parse(parsed, seed=seed, aspect=aspect)
            o = scene.objects[0]
            assert position_name(o.x / scene.width, o.y / scene.height) == name, (motion, name, aspect)


def test_relations_lay_out_collisions_and_occlusions():
    scene = scene_from_prompt("two balls colliding", seed=2)
    assert scene.scenario == "collision"
    assert any(e["type"] == "collision" for e in simulate(scene).events)
    scene = scene_from_prompt("a small ball slides behind a big square", seed=2)
    assert [o.depth for o in scene.objects] == [1, 0]
    assert any(e["type"] == "occlusion" for e in simulate(scene).events)


def test_text_without_objects_still_gives_a_scene():
    parsed = parse_prompt("something lovely at sunset")
    assert parsed["count"] == 0 and parsed["background"] == "sunset sky" and "lovely" in parsed["unknown"]
    scene = scene_from_prompt("something lovely at sunset")
    assert len(scene.objects) == 1 and scene.background == "sunset sky"
    _, dog = _one("a red dog running left")
    assert (dog.color, dog.motion, dog.direction) == ("red", "slide", "left")


@pytest.mark.parametrize("text", ["", "   ", "five balls", "a ball, a star, a box, a ring and a cross"])
def test_empty_text_or_too_many_objects_is_an_invalid_request(text):
    with pytest.raises(InvalidRequest) as info:
        scene_from_prompt(text)
    assert info.value.field == "prompt"


def test_same_prompt_and_seed_give_the_same_scene_and_other_seeds_fill_in_differently():
    text = "a red ball bouncing"
    assert scene_from_prompt(text, seed=5).to_json() == scene_from_prompt(text, seed=5).to_json()
    scenes = [scene_from_prompt(text, seed=seed) for seed in range(10)]
    assert all((s.objects[0].color, s.objects[0].motion) == ("red", "bounce") for s in scenes)
    assert len({(s.background, s.objects[0].size, s.objects[0].x) for s in scenes}) > 5
