"""Captions of ToyWorld scenes at three levels of detail, worded so that prompt.parse_prompt reads them back.

- short: how a person would ask ("a red ball bouncing over a sunset sky"): the main object, maybe the
  background and the other objects.
- medium: every object with colour, shape, motion and direction; the background; the camera if it moves.
- long: also every object's size, speed, start position (which third of the initial view), depth ("behind"),
  the events in order with approximate times (collisions, floor and wall bounces, passing behind), the
  background and the camera.

Wording (templates and synonyms) varies with the scene seed, so a text model sees varied phrasing of the same
facts; tests/test_captions_prompt.py parses every level of hundreds of scenes back and checks that nothing a
level promises is lost.
"""

import math
import random

from .physics import simulate
from .prompt import position_name
from .scene import Scene

caption_levels = ("short", "medium", "long")

_COLOR_WORDS = {"gray": ("gray", "grey"), "purple": ("purple", "purple", "violet")}
_SHAPE_WORDS = {"ball": ("ball", "ball", "circle"), "square": ("square", "square", "box", "block"),
                "triangle": ("triangle",), "star": ("star",), "ring": ("ring", "ring", "donut"),
                "cross": ("cross", "cross", "plus sign")}
_SIZE_WORDS = {"small": ("small", "little", "tiny"), "medium": ("medium", "medium-sized"),
               "large": ("large", "big")}
_VERBS = {  # (third person, -ing form)
    "still": (("rests", "resting"), ("sits still", "sitting still"), ("stays still", "staying still")),
    "slide": (("slides", "sliding"), ("moves", "moving"), ("glides", "gliding"), ("drifts", "drifting")),
    "bounce": (("bounces", "bouncing"),),
    "fall": (("falls", "falling"), ("drops", "dropping")),
    "orbit": (("orbits", "orbiting"), ("goes around", "going around")),
    "spin": (("spins", "spinning"), ("rotates", "rotating")),
    "grow": (("grows", "growing"), ("expands", "expanding"), ("gets bigger", "getting bigger")),
    "shrink": (("shrinks", "shrinking"), ("gets smaller", "getting smaller")),
}
_SPEED_WORDS = {"slow": ("slowly", "gently", "lazily"),
                "medium": ("at a moderate speed", "at medium speed", "steadily"),
                "fast": ("quickly", "fast", "rapidly")}
_POSITION_WORDS = {"upper left": "in the upper left", "top": "at the top", "upper right": "in the upper right",
                   "left": "on the left side", "center": "in the center", "right": "on the right side",
                   "lower left": "in the lower left", "bottom": "at the bottom",
                   "lower right": "in the lower right"}
_BACKGROUND_WORDS = {  # (noun phrase, prepositional phrases)
    "night": ("a night sky", ("at night", "under a night sky", "against a night sky")),
    "slate": ("plain slate", ("on a slate background", "against a slate backdrop")),
    "sand": ("sand", ("on sand", "on a sandy beach")),
    "sunset sky": ("a sunset sky", ("over a sunset sky", "against a sunset sky", "at sunset")),
    "ocean": ("the ocean", ("over the ocean", "against an ocean backdrop", "over the sea")),
    "dusk": ("a dusk sky", ("at dusk", "against a dusk sky")),
    "grassy field": ("a grassy field", ("in a grassy field", "on the grass", "over a grassy field")),
    "wooden floor": ("a wooden floor", ("on a wooden floor", "on a wood floor")),
    "desert": ("a desert", ("in the desert", "over desert dunes")),
    "checkerboard": ("a checkerboard", ("on a checkerboard", "against a checkered background")),
    "striped wall": ("a striped wall", ("in front of a striped wall", "against a striped wall")),
    "polka dots": ("polka dots", ("on a polka-dot background", "against polka dots")),
}
_CAMERA_WORDS = {
    "static": ("the camera stays still", "the camera is static", "the camera does not move"),
    "pan left": ("the camera pans left", "the camera pans to the left"),
    "pan right": ("the camera pans right", "the camera pans to the right"),
    "pan up": ("the camera pans up", "the camera tilts up"),
    "pan down": ("the camera pans down", "the camera tilts down"),
    "zoom in": ("the camera zooms in", "the camera slowly zooms in"),
    "zoom out": ("the camera zooms out", "the camera pulls back"),
}
_COUNT_WORDS = {1: "one", 2: "two", 3: "three"}


def main_object(scene: Scene) -> int:
    """Index of the object a short caption is about: the first one that moves (else the first one)."""
    return next((i for i, o in enumerate(scene.objects) if o.motion != "still"), 0)


def captions(scene: Scene, events: list[dict] | None = None) -> dict[str, str]:
    """Describe a scene at every level of `caption_levels`.

    Args:
        scene: the scene.
        events: `simulate(scene).events` if the caller has them already; simulated here otherwise.

    Returns:
        {"short": ..., "medium": ..., "long": ...}; the same scene (and seed) always gets the same words.
    """
    events = simulate(scene).events if events is None else events
    rng = {level: random.Random(f"{scene.seed}:{level}") for level in caption_levels}
    return {"short": _short(scene, rng["short"]), "medium": _medium(scene, rng["medium"]),
            "long": _long(scene, events, rng["long"])}


# --- words ----------------------------------------------------------------------------------------------

def _names(scene: Scene, rng) -> list[dict]:
    """One choice of synonyms per object, kept for the whole caption so an object is named consistently."""
    return [{"color": rng.choice(_COLOR_WORDS.get(o.color, (o.color,))),
             "shape": rng.choice(_SHAPE_WORDS[o.shape]), "size": rng.choice(_SIZE_WORDS[o.size])}
            for o in scene.objects]


def _a(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _cap(text: str) -> str:
    return text[0].upper() + text[1:]


def _direction_words(direction: str) -> tuple[str, ...]:
    if direction == "counterclockwise":
        return ("counterclockwise", "counter-clockwise", "anticlockwise")
    if "-" in direction:
        vertical, side = direction.split("-")
        return (f"diagonally {vertical} and to the {side}", f"{vertical} and to the {side}",
                f"toward the {'upper' if vertical == 'up' else 'lower'} {side}")
    if direction in ("left", "right"):
        return (f"to the {direction}", direction, f"{direction}wards")
    return (direction,) if direction == "clockwise" else (direction, f"{direction}wards")


def _how(o, rng, speed: bool) -> str:
    """The direction words, and the speed words when asked for, in a random order, each with a leading space."""
    parts = [rng.choice(_direction_words(o.direction))] if o.direction else []
    if speed and o.speed:
        parts.append(rng.choice(_SPEED_WORDS[o.speed]))
    rng.shuffle(parts)
    return "".join(" " + p for p in parts)


def _verb(o, rng, form: int) -> str:
    return rng.choice(_VERBS[o.motion])[form]


def _join(clauses: list[str], rng) -> str:
    if len(clauses) == 1:
        return clauses[0]
    if len(clauses) == 2:
        return rng.choice([" while ", " and ", ", while "]).join(clauses)
    return ", ".join(clauses[:-1]) + rng.choice([" and ", ", and "]) + clauses[-1]


def _ref(names: dict, rng) -> str:
    """A definite mention that prompt.py resolves to the object already named (by its colour)."""
    size = names["size"] + " " if rng.random() < 0.3 else ""
    return f"the {size}{names['color']} {names['shape']}"


def _ref_list(refs: list[str]) -> str:
    return refs[0] if len(refs) == 1 else ", ".join(refs[:-1]) + " and " + refs[-1]


def _when(t: float) -> str:
    """The time of an event to the nearest half second: "at the very start", "after about half a second",
    "after about 1 second", "after about 1.5 seconds", ... (prompt.py drops all of these as times)."""
    # round half up: round() rounds half to even, and round(0.5) == 0 made t = 0.25 "after about 0 seconds"
    half_seconds = math.floor(t * 2 + 0.5) / 2
    if half_seconds == 0:
        return "at the very start"
    if half_seconds == 0.5:
        return "after about half a second"
    return f"after about {half_seconds:g} second{'' if half_seconds == 1 else 's'}"


# --- the three levels -----------------------------------------------------------------------------------

def _short(scene: Scene, rng) -> str:
    i = main_object(scene)
    o, names = scene.objects[i], _names(scene, rng)
    subject = _a(f"{names[i]['color']} {names[i]['shape']}")
    others = [j for j in range(len(scene.objects)) if j != i]
    if scene.scenario == "collision" and len(others) == 1:
        other = _a(f"{names[others[0]]['color']} {names[others[0]]['shape']}")
        text = rng.choice([f"{subject} colliding with {other}", f"{subject} and {other} colliding",
                           f"{subject} crashing into {other}"])
    else:
        text = f"{subject} {_verb(o, rng, 1)}" + (_how(o, rng, speed=False) if rng.random() < 0.5 else "")
        front = [j for j in others if scene.objects[j].depth < o.depth]
        if scene.scenario == "occlusion" and front:
            n = names[front[0]]
            text += " behind " + _a(f"{n['size']} {n['color']} {n['shape']}")
        elif others and rng.random() < 0.5:
            n = len(others)
            text += f" {rng.choice(['with', 'and'])} {_COUNT_WORDS[n]} other shape{'s' if n > 1 else ''}"
    if rng.random() < 0.5:
        text += " " + rng.choice(_BACKGROUND_WORDS[scene.background][1])
    return text


def _medium(scene: Scene, rng) -> str:
    names = _names(scene, rng)
    clauses = []
    for o, n in zip(scene.objects, names):
        adjectives = f"{n['size']} {n['color']}" if rng.random() < 0.5 else n["color"]
        clauses.append(f"{_a(adjectives)} {n['shape']} {_verb(o, rng, 0)}{_how(o, rng, speed=False)}")
    setting = rng.choice(_BACKGROUND_WORDS[scene.background][1])
    if rng.random() < 0.5:
        text = _join([f"{clauses[0]} {setting}"] + clauses[1:], rng)
    else:
        text = f"{setting}, {_join(clauses, rng)}"
    text = _cap(text)
    if scene.camera == "static":
        return text + "."
    camera = rng.choice(_CAMERA_WORDS[scene.camera])
    return text + rng.choice([f"; {camera}.", f". {_cap(camera)}.", f", while {camera}."])


def _long(scene: Scene, events: list[dict], rng) -> str:
    names = _names(scene, rng)
    sentences = [_object_sentence(scene, i, names[i], rng) for i in range(len(scene.objects))]
    sentences += _depth_sentences(scene, names, rng)
    sentences += _event_sentences(scene, events, names, rng)
    noun, places = _BACKGROUND_WORDS[scene.background]
    setting = rng.choice([f"the background is {noun}", f"it all happens {rng.choice(places)}",
                          f"the scene is set {rng.choice(places)}"])
    camera = rng.choice(_CAMERA_WORDS[scene.camera])
    closing = _cap(setting) + rng.choice([f", and {camera}.", f"; {camera}.", f". {_cap(camera)}."])
    sentences.insert(0 if rng.random() < 0.5 else len(sentences), closing)
    return " ".join(sentences)


def _object_sentence(scene: Scene, i: int, names: dict, rng) -> str:
    o = scene.objects[i]
    noun = _a(f"{names['size']} {names['color']} {names['shape']}")
    where = _POSITION_WORDS[position_name(o.x / scene.width, o.y / scene.height)]
    verb = _verb(o, rng, 0)
    if o.motion == "still":
        return _cap(rng.choice([f"{noun} {verb} {where}", f"{where}, {noun} {verb}"])) + "."
    how = _how(o, rng, speed=True)
    return _cap(rng.choice([f"{noun} {verb}{how}, starting {where}", f"starting {where}, {noun} {verb}{how}",
                            f"{noun} {where} {verb}{how}"])) + "."


def _depth_sentences(scene: Scene, names: list[dict], rng) -> list[str]:
    """Say who is behind whom, in as few sentences as the layers allow."""
    objs = scene.objects
    nearer = [[j for j, p in enumerate(objs) if p.depth < o.depth] for o in objs]
    farther = [[j for j, p in enumerate(objs) if p.depth > o.depth] for o in objs]
    behind = [i for i in range(len(objs)) if nearer[i]]
    in_front = [i for i in range(len(objs)) if farther[i]]
    if len(behind) <= len(in_front):
        return [_cap(f"{_ref(names[i], rng)} is behind {_ref_list([_ref(names[j], rng) for j in nearer[i]])}.")
                for i in behind]
    return [_cap(f"{_ref(names[i], rng)} is in front of {_ref_list([_ref(names[j], rng) for j in farther[i]])}.")
            for i in in_front]


def _event_sentences(scene: Scene, events: list[dict], names: list[dict], rng) -> list[str]:
    """Events in time order. Floor bounces are summed up per object; a repeat of the same event is told once
    more at most, and contacts a few physics steps apart count as one."""
    timed, floor, seen = [], {}, {}
    for e in events:
        if e["type"] == "bounce" and e["on"] == "floor":
            floor.setdefault(e["object"], []).append(e["t"])
            continue
        key = (e["type"], e.get("object"), tuple(e.get("objects", ())), e.get("behind"), e.get("front"))
        times = seen.setdefault(key, [])
        if len(times) >= 2 or (times and e["t"] - times[-1] < 0.3):
            continue
        times.append(e["t"])
        when = _when(e["t"])
        if len(times) > 1 and when == _when(times[0]):
            when = "then"  # not "after about 1 second ... After about 1 second ... again"
        timed.append((e["t"], _event_text(scene, e, names, rng, when, again=len(times) > 1)))
    for i, times in floor.items():
        ref = _ref(names[i], rng)
        if scene.objects[i].motion == "bounce":
            count = {1: "once", 2: "twice"}.get(len(times), f"{len(times)} times")
            timed.append((times[0], f"{_when(times[0])} {ref} first hits the floor; it bounces {count} in all"))
        else:
            timed.append((times[0], f"{_when(times[0])} {ref} lands on the floor"))
    return [_cap(text) + "." for _, text in sorted(timed, key=lambda pair: pair[0])]


def _event_text(scene: Scene, e: dict, names: list[dict], rng, when: str, again: bool) -> str:
    again = " again" if again else ""
    if e["type"] == "collision":
        a, b = e["objects"]
        verb = rng.choice(["collides with", "bumps into", "crashes into"])
        return f"{when} {_ref(names[a], rng)} {verb} {_ref(names[b], rng)}{again}"
    if e["type"] == "bounce":
        verb = "bounces off" if scene.objects[e["object"]].motion == "bounce" else "hits"
        return f"{when} {_ref(names[e['object']], rng)} {verb} a wall{again}"
    back, front = e["behind"], e["front"]
    verb = rng.choice(["passes behind", "slips behind", "disappears behind"])
    comes_out = " and reappears" if e.get("until") is not None else ""
    return f"{when} {_ref(names[back], rng)} {verb} {_ref(names[front], rng)}{again}{comes_out}"
