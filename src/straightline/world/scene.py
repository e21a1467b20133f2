"""A ToyWorld scene: a background, a camera move and 1–4 objects, each with a shape, colour, size, depth
layer and motion. The scene holds words (what captions say) plus the few numbers that words leave open
(start position, rotation, orbit centre); physics.py turns it into motion.

`sample_scene(seed, aspect)` draws every attribute and a position in normalised [0, 1]² coordinates from
the same random sequence whatever the aspect, then maps positions into the visible world of that aspect:
the same seed framed for 16:9 and for 9:16 is the same scene, reframed.
"""

import json
import math
import random
from dataclasses import asdict, dataclass

from . import vocab
from ..errors import InvalidRequest

SCENARIOS = ("single", "multi", "collision", "occlusion")


@dataclass
class WorldObject:
    shape: str
    color: str
    size: str
    motion: str
    x: float                      # initial centre in world units (see vocab.py for the frame)
    y: float
    depth: int = 0                # 0 is nearest; physical objects collide only with their own layer
    direction: str | None = None  # slide: 8 directions; bounce: left/right; orbit/spin: "clockwise"/"counterclockwise"
    speed: str | None = None      # slow / medium / fast for slide, bounce, orbit, spin, grow, shrink
    angle: float = 0.0            # initial rotation, radians
    orbit_center: tuple[float, float] | None = None

    @property
    def radius(self) -> float:
        return vocab.SIZES[self.size]

    def describe(self) -> str:
        return f"{self.size} {self.color} {self.shape}"


@dataclass
class Scene:
    objects: list[WorldObject]
    background: str = "night"
    camera: str = "static"
    aspect: float = 16 / 9        # width / height of the view the scene is framed for
    duration: float = 4.0         # seconds simulated (captions describe this span)
    seed: int | None = None
    scenario: str = "multi"

    @property
    def width(self) -> float:
        """Width of the initial view in world units (the short side is 1)."""
        return max(self.aspect, 1.0)

    @property
    def height(self) -> float:
        return max(1.0 / self.aspect, 1.0)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self, **kw) -> str:
        return json.dumps(self.to_dict(), **kw)

    @classmethod
    def from_dict(cls, d: dict) -> "Scene":
        d = dict(d)
        objects = []
        for o in d.pop("objects"):
            o = dict(o)
            if o.get("orbit_center") is not None:
                o["orbit_center"] = tuple(o["orbit_center"])
            objects.append(WorldObject(**o))
        scene = cls(objects=objects, **d)
        validate_scene(scene)
        return scene

    @classmethod
    def from_json(cls, text: str) -> "Scene":
        return cls.from_dict(json.loads(text))


def validate_scene(scene: Scene) -> None:
    """Raise InvalidRequest naming the first attribute outside the vocabulary."""
    checks = [("background", scene.background, vocab.BACKGROUNDS), ("camera", scene.camera, vocab.CAMERAS)]
    for i, o in enumerate(scene.objects):
        checks += [(f"objects[{i}].shape", o.shape, vocab.SHAPES), (f"objects[{i}].color", o.color, vocab.COLORS),
                   (f"objects[{i}].size", o.size, vocab.SIZES), (f"objects[{i}].motion", o.motion, vocab.MOTIONS)]
        if o.speed is not None:
            checks.append((f"objects[{i}].speed", o.speed, vocab.SPEEDS))
        if o.motion == "slide":
            checks.append((f"objects[{i}].direction", o.direction, vocab.DIRECTIONS))
        if o.motion == "bounce":
            checks.append((f"objects[{i}].direction", o.direction, ("left", "right", None)))
        if o.motion in ("orbit", "spin"):
            checks.append((f"objects[{i}].direction", o.direction, ("clockwise", "counterclockwise")))
        if o.motion == "orbit" and o.orbit_center is None:
            checks.append((f"objects[{i}].orbit_center", None, ("(x, y) in world units",)))
    for name, value, allowed in checks:
        if value not in allowed:
            raise InvalidRequest(name, value, "one of " + ", ".join(map(str, allowed)))
    if not 1 <= len(scene.objects) <= 4:
        raise InvalidRequest("objects", len(scene.objects), "1 to 4 objects")
    if not 0.25 <= scene.aspect <= 4.0:
        raise InvalidRequest("aspect", scene.aspect, "a width/height ratio between 1:4 and 4:1")
    if not 0 < scene.duration <= 600:
        raise InvalidRequest("duration", scene.duration, "0 < seconds <= 600")
    colors = [o.color for o in scene.objects]
    if len(set(colors)) != len(colors):
        raise InvalidRequest("objects.color", colors, "a different colour for each object (so every object "
                             "can be named and tracked by its colour)")


def is_held_out(o: WorldObject) -> bool:
    return (o.color, o.shape, o.motion) in vocab.HELD_OUT


# --- colour contrast ------------------------------------------------------------------------------------

def _lab(rgb) -> tuple[float, float, float]:
    def lin(c):
        c = c / 255.0
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (lin(c) for c in rgb)
    X = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    Y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    Z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883
    f = lambda t: t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116
    fx, fy, fz = f(X), f(Y), f(Z)
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def color_distance(a, b) -> float:
    """CIE76 distance in Lab: ~2 is just noticeable, > 25 is clearly a different colour."""
    return math.dist(_lab(a), _lab(b))


MIN_CONTRAST = 30.0  # Lab distance an object colour keeps from every colour of its background


def contrasting_colors(background: str) -> list[str]:
    bg = vocab.BACKGROUNDS[background]["colors"]
    return [c for c, rgb in vocab.COLORS.items() if min(color_distance(rgb, b) for b in bg) >= MIN_CONTRAST]


# --- sampling -------------------------------------------------------------------------------------------

def _pick_speed(rng) -> str:
    return rng.choice(list(vocab.SPEEDS))


def _sample_object(rng, shape, color, size, motion) -> dict:
    """Attributes plus a normalised position (u, v) in [0, 1]²; positions become world units later."""
    o = dict(shape=shape, color=color, size=size, motion=motion, angle=rng.uniform(0, 2 * math.pi),
             u=rng.uniform(0.15, 0.85), v=rng.uniform(0.2, 0.8))
    if motion == "slide":
        o["direction"], o["speed"] = rng.choice(list(vocab.DIRECTIONS)), _pick_speed(rng)
    elif motion == "bounce":
        o["direction"], o["speed"] = rng.choice(["left", "right"]), _pick_speed(rng)
        o["v"] = rng.uniform(0.55, 0.85)  # dropped from a height, so it has room to bounce
    elif motion == "fall":
        o["v"] = rng.uniform(0.7, 0.85)
    elif motion in ("orbit", "spin"):
        o["direction"], o["speed"] = rng.choice(["clockwise", "counterclockwise"]), _pick_speed(rng)
        o["orbit_radius"] = rng.uniform(0.15, 0.25)
    elif motion in ("grow", "shrink"):
        o["speed"] = _pick_speed(rng)
    return o


def _allowed_motions(shape: str) -> list[str]:
    return [m for m in vocab.MOTIONS if m != "spin" or shape in vocab.SPINNABLE]


def _place(scene_w, scene_h, o: dict, duration: float) -> WorldObject:
    """Map a normalised object to world units inside the visible view (margins keep it fully in view)."""
    r = vocab.SIZES[o["size"]]
    x = r + o["u"] * (scene_w - 2 * r)
    y = r + o["v"] * (scene_h - 2 * r)
    orbit_center = None
    if o["motion"] == "slide":
        # Start so that the path is centred on the sampled point: the object crosses the view.
        dx, dy = vocab.DIRECTIONS[o["direction"]]
        half = 0.5 * vocab.SPEEDS[o["speed"]] * duration
        x = min(max(x - dx * half, r), scene_w - r)
        y = min(max(y - dy * half, r), scene_h - r)
    elif o["motion"] == "orbit":
        rad = o["orbit_radius"]
        cx = min(max(x, rad + r), scene_w - rad - r)
        cy = min(max(y, rad + r), scene_h - rad - r)
        orbit_center = (cx, cy)
        x, y = cx + rad, cy  # starts at angle 0 on its circle
    fields = {k: o[k] for k in ("shape", "color", "size", "motion", "angle")}
    return WorldObject(**fields, x=x, y=y, direction=o.get("direction"), speed=o.get("speed"),
                       orbit_center=orbit_center)


def sample_scene(seed: int, aspect: float = 16 / 9, duration: float = 4.0, split: str = "train",
                 scenario: str | None = None, num_objects: int | None = None) -> Scene:
    """Draw a random scene.

    Args:
        seed: the scene's identity; the same seed gives the same scene at any aspect.
        aspect: width / height of the view to frame the scene for.
        duration: seconds the scene lasts (slides are placed to cross the view in that time).
        split: "train" never contains a HELD_OUT (colour, shape, motion) triple; "heldout" contains one
            in its first object; "any" ignores the list.
        scenario: one of SCENARIOS, or None to draw one.
        num_objects: 1–4, or None to draw (for "multi").
    """
    if split not in ("train", "heldout", "any"):
        raise InvalidRequest("split", split, "one of train, heldout, any")
    if scenario is not None and scenario not in SCENARIOS:
        raise InvalidRequest("scenario", scenario, "one of " + ", ".join(SCENARIOS))
    rng = random.Random(seed)
    background = rng.choice(list(vocab.BACKGROUNDS))
    camera = "static" if rng.random() < 0.6 else rng.choice(vocab.CAMERAS[1:])
    scenario = scenario or rng.choices(SCENARIOS, weights=[0.35, 0.35, 0.15, 0.15])[0]
    palette = contrasting_colors(background)
    rng.shuffle(palette)

    def attrs(i, motion=None):
        for _ in range(100):
            shape, size = rng.choice(vocab.SHAPES), rng.choice(list(vocab.SIZES))
            m = motion or rng.choice(_allowed_motions(shape))
            if split == "heldout" and i == 0:
                color, shape, m = rng.choice([h for h in vocab.HELD_OUT if h[0] in palette])
                if motion and m != motion:
                    continue
                return color, shape, size, m
            color = palette[i]
            if split == "train" and (color, shape, m) in vocab.HELD_OUT:
                continue
            if m == "spin" and shape not in vocab.SPINNABLE:
                continue
            return color, shape, size, m
        raise RuntimeError("could not draw a valid object")  # unreachable in practice: the lists are broad

    def with_color_unique(objs):
        # a held-out first object may use a colour another object drew; give that one a spare colour
        used = {objs[0]["color"]}
        spare = [c for c in palette if c not in {o["color"] for o in objs}]
        for o in objs[1:]:
            if o["color"] in used:
                o["color"] = spare.pop()
            used.add(o["color"])
        return objs

    objs = []
    if scenario == "single":
        c, s, z, m = attrs(0)
        objs.append(_sample_object(rng, s, c, z, m))
    elif scenario == "multi":
        n = num_objects or rng.randint(2, 4)
        for i in range(n):
            c, s, z, m = attrs(i)
            o = _sample_object(rng, s, c, z, m)
            o["depth"] = rng.randint(0, 1)
            objs.append(o)
    elif scenario == "collision":
        # two objects on one layer sliding towards each other along a line
        horizontal = rng.random() < 0.7
        for i, sign in enumerate((1, -1)):
            c, s, z, m = attrs(i, "slide")
            o = _sample_object(rng, s, c, z, "slide")
            o["direction"] = ("right" if sign > 0 else "left") if horizontal else ("up" if sign > 0 else "down")
            o["u"], o["v"] = (0.5 - 0.2 * sign, 0.5) if horizontal else (0.5, 0.5 - 0.2 * sign)
            o["speed"] = rng.choice(["medium", "fast"])
            objs.append(o)
        objs[1]["v" if horizontal else "u"] = objs[0]["v" if horizontal else "u"] + rng.uniform(-0.05, 0.05)
    elif scenario == "occlusion":
        # a large still object in front, a smaller one sliding behind it
        c, s, _, _ = attrs(0, "still")
        front = _sample_object(rng, s, c, "large", "still")
        front["u"], front["v"] = 0.5, 0.5
        c, s, z, m = attrs(1, "slide")
        back = _sample_object(rng, s, c, rng.choice(["small", "medium"]), "slide")
        back["direction"] = rng.choice(["left", "right"])
        back["speed"] = rng.choice(["medium", "fast"])
        back["u"], back["v"], back["depth"] = 0.5, 0.5 + rng.uniform(-0.05, 0.05), 1
        objs += [front, back]
    objs = with_color_unique(objs)

    scene_w, scene_h = max(aspect, 1.0), max(1.0 / aspect, 1.0)
    objects = [_place(scene_w, scene_h, o, duration) for o in objs]
    for o, d in zip(objects, objs):
        o.depth = d.get("depth", 0)
    if scenario == "multi":
        _separate(objects, scene_w, scene_h, rng)
    scene = Scene(objects=objects, background=background, camera=camera, aspect=aspect, duration=duration,
                  seed=seed, scenario=scenario)
    validate_scene(scene)
    return scene


def _separate(objects: list[WorldObject], w: float, h: float, rng) -> None:
    """Move objects on the same layer apart so none starts overlapping another (a few random retries).
    Bouncing and falling objects keep their height (they need it to fall); orbits move with their centre."""
    for i, o in enumerate(objects):
        for _ in range(50):
            clash = any(p.depth == o.depth and math.dist((o.x, o.y), (p.x, p.y)) < 1.1 * (o.radius + p.radius)
                        for p in objects[:i])
            if not clash:
                break
            x = rng.uniform(o.radius, w - o.radius)
            y = o.y if o.motion in ("bounce", "fall") else rng.uniform(o.radius, h - o.radius)
            if o.orbit_center is not None:
                rad = math.dist((o.x, o.y), o.orbit_center)
                x = min(max(x, 2 * rad + o.radius), w - o.radius)
                y = min(max(y, rad + o.radius), h - rad - o.radius)
                o.orbit_center = (x - rad, y)
            o.x, o.y = x, y
