"""English prompt → ToyWorld scene: the inverse of captions.py.

`parse_prompt(text)` finds ToyWorld's vocabulary in free English (synonyms, plurals, counts, directions,
backgrounds, camera moves, "behind"/"in front of", "colliding") and returns what it recognised;
`scene_from_prompt(text, seed)` turns that into a valid Scene and draws everything the text leaves open from
the seed, with the same helpers `sample_scene` uses.

The parse has two stages. First, regular expressions rewrite multi-word phrases into single tokens
("the camera slowly pans to the left" → `camera=pan_left`, "on a wooden floor" → `background=wooden_floor`,
"diagonally up and to the right" → `direction=up-right`, "after about 2 seconds" → nothing), so the words inside
them ("left", "a", "slowly") cannot be mistaken for object attributes. Then a small reader walks the tokens:
determiners, counts, colours and sizes open a noun phrase; a shape noun closes it and becomes the current
object(s); motion, speed, direction and position words attach to the noun they precede inside a noun phrase
("a slowly spinning star") or else to the current object ("a star spins slowly"). A definite mention
("the red ball") of an object already named refers back to it, so captions can describe events and depth
without inventing objects. An attribute keeps the first value given.

ToyWorld tells objects apart by colour, so every object gets a different colour: "two green squares" gives
one green square and one square of another colour, and `parse_prompt` says so in its notes.
"""

import math
import random
import re

from . import vocab
from .scene import Scene, _allowed_motions, _place, _sample_object, contrasting_colors, validate_scene
from ..errors import InvalidRequest

MAX_OBJECTS = 4

# Start positions in thirds of the initial view, indexed [row][col] with row 0 at the bottom (y points up).
POSITIONS = (("lower left", "bottom", "lower right"), ("left", "center", "right"),
             ("upper left", "top", "upper right"))


def position_name(u: float, v: float) -> str:
    """Name the third of the view that holds the normalised point (u, v) in [0, 1]² (v = 0 at the bottom)."""
    third = lambda a: min(max(int(a * 3), 0), 2)
    return POSITIONS[third(v)][third(u)]


# --- stage 1: phrases → tokens ----------------------------------------------------------------------------

_NUMBER = r"\d+(?:\.\d+)?|one|two|three|four|five|six|seven|eight|nine|ten|half a|a"
_PAN = (r"(?:pans?|panning|panned|tilts?|tilting|tracks?|tracking|moves?|moving|drifts?|drifting|travels?)\s+"
        r"(?:\w+ly\s+)?(?:to(?:wards?)?\s+the\s+)?(left|right|up|down)(?:wards?)?\b")
_CAMERA = r"(?:the\s+)?(?:camera|view|shot)\s+(?:\w+ly\s+)?"
_BACKGROUND_SYNONYMS = {  # checked in this order; longer alternatives first inside each
    "night": r"night ?time|night sky|night|starry sky|dark (?:background|backdrop|sky)|darkness",
    "slate": r"slate(?: gr[ae]y)?|gr[ae]y (?:background|backdrop)",
    "sunset sky": r"sunset(?: sky)?|sundown",
    "ocean": r"ocean|sea|underwater|water",
    "dusk": r"dusk(?: sky)?|twilight|evening(?: sky)?",
    "grassy field": r"grassy field|grass(?:y)?(?: field| meadow| lawn)?|field|meadow|lawn",
    "wooden floor": r"wood(?:en)? (?:floor|floorboards|planks|surface|table)|parquet|floorboards|"
                    r"hardwood(?: floor)?",
    "desert": r"desert(?: dunes)?|sand dunes|dunes",
    "sand": r"sandy beach|beach|sandy|sand",
    "checkerboard": r"checker ?board|chess ?board|checkered|chequered|checkers|checks",
    "striped wall": r"striped wall|stripes|striped|stripy|stripey",
    "polka dots": r"polka dots?|polka dotted|polka|spotted|dotted",
}
_BG_PREFIX = r"\b(?:(?:on|over|against|in front of|in|at|under|across|above|with|by|into)\s+)?(?:(?:a|an|the)\s+)?"
_BG_SUFFIX = r"(?:\s+(?:background|backdrop|setting|pattern|wallpaper))?\b"


def _position_token(m: re.Match) -> str:
    words = m.group(1).replace("centre", "center").split()
    row = {"upper": 2, "top": 2, "lower": 0, "bottom": 0}.get(words[0], 1)
    col = {"left": 0, "right": 2}.get(words[-1], 1)
    return f" position={POSITIONS[row][col].replace(' ', '_')} "


def _diagonal(vertical: str, horizontal: str) -> str:
    vertical = "up" if vertical.startswith(("up", "top")) else "down"
    return f" direction={vertical}-{horizontal} "


_REWRITES: list[tuple[str, object]] = [
    # times and counts of repeats say when, not what: drop them before digits can read as object counts
    (rf"\b(?:(?:after|at|for|within|around|about|roughly|nearly|almost|in|just|over|under)\s+){{0,3}}"
     rf"(?:{_NUMBER})\s+(?:seconds?|secs?)\b(?:\s+in\b)?", " "),
    (r"\b\d+(?:\.\d+)?\s*s\b", " "),
    (r"\bat the (?:very )?(?:start|beginning|end)\b", " "),
    (r"\b(?:\d+|two|three|four|five|six|seven|eight|nine|ten|several|many|a few) times\b|\bonce\b|\btwice\b", " "),
    # camera moves, before any of their words can attach to an object
    (r"\b(?:(?:static|fixed|still|steady|stationary|locked)(?: off)? camera|"
     r"(?:the\s+)?camera (?:is|stays|remains|holds) (?:static|still|fixed|steady|stationary)|"
     r"(?:the\s+)?camera does(?: not|n't) move|no camera (?:movement|motion))\b", " camera=static "),
    (rf"\b{_CAMERA}{_PAN}", lambda m: f" camera=pan_{m.group(1)} "),
    (rf"\b(?:{_CAMERA})?(?:pans?|panning|panned|tilts?|tilting)\s+(?:\w+ly\s+)?(?:to(?:wards?)?\s+the\s+)?"
     r"(left|right|up|down)(?:wards?)?\b", lambda m: f" camera=pan_{m.group(1)} "),
    (rf"\b(?:{_CAMERA})?(?:zooms?|zooming|zoomed)\s+(?:\w+ly\s+)?(in|out)(?:to)?\b",
     lambda m: f" camera=zoom_{m.group(1)} "),
    (rf"\b(?:{_CAMERA})?(?:push(?:es|ing)?|doll(?:y|ies|ying)) in\b", " camera=zoom_in "),
    (rf"\b(?:{_CAMERA})?(?:pull(?:s|ing)?) (?:back|out)\b", " camera=zoom_out "),
    # backgrounds ("dots" alone is a plural of "dot", so only after a preposition)
    (r"\bin the dark\b", " background=night "),
    (r"\b(?:on|over|against|in front of)\s+(?:a\s+|the\s+)?(?:background\s+of\s+)?dots\b",
     " background=polka_dots "),
    *[(_BG_PREFIX + rf"(?:background of\s+)?(?:{pattern}){_BG_SUFFIX}", f" background={name.replace(' ', '_')} ")
      for name, pattern in _BACKGROUND_SYNONYMS.items()],
    # floors and walls are where events happen ("bounces off the left wall"), not directions or objects
    (r"\b(?:the |a )?(?:left |right |side |back |bottom )?(?:walls?|floors?|ground|edges?)\b", " "),
    (r"\bto the (?:left|right) of\b", " "),
    # multi-word motions, shapes, speeds and sizes
    (r"\b(?:go(?:es|ing)?|moves?|moving) (?:a)?round\b|\bin (?:a )?circles?\b|\bround and round\b",
     " motion=orbit "),
    (r"\b(?:get(?:s|ting)?|grow(?:s|ing)?|becom(?:es|ing)) (?:bigger|larger)\b", " motion=grow "),
    (r"\b(?:get(?:s|ting)?|becom(?:es|ing)) smaller\b", " motion=shrink "),
    (r"\b(?:sit(?:s|ting)?|stay(?:s|ing)?|stand(?:s|ing)?|hold(?:s|ing)?) still\b|\bnot moving\b|"
     r"\bstays? put\b|\bdo(?:es)?(?: not|n't) move\b",
     " motion=still "),
    (r"\b(?:circle outline|hollow circle|outlined circle)(s?)\b", lambda m: f" ring{m.group(1)} "),
    (r"\b(?:counter|anti) ?clockwise\b", " counterclockwise "),
    (r"\b(?:at )?(?:a )?(?:medium|moderate|steady|normal|average) (?:speed|pace|rate)\b", " speed=medium "),
    (r"\b(?:medium|mid|middle) ?sized?\b", " size=medium "),
    (r"\b(?:towards?|at|into) each other\b", " colliding "),
    # directions: "from left to right", diagonals, then "to the left"; "toward the upper right" is a direction,
    # "in the upper right" a position
    (r"\bfrom (?:the )?(?:left|right|top|bottom) to (?:the )?(left|right|top|bottom)\b",
     lambda m: f" {dict(top='up', bottom='down').get(m.group(1), m.group(1))} "),
    (r"\b(?:diagonally )?(up|down)(?:wards?)? (?:and )?(?:to the )?(left|right)(?:wards?)?\b",
     lambda m: _diagonal(m.group(1), m.group(2))),
    (r"\b(?:diagonally )?(left|right)(?:wards?)? (?:and )?(up|down)(?:wards?)?\b",
     lambda m: _diagonal(m.group(2), m.group(1))),
    (r"\b(?:diagonally )?(?:towards?|to) the (upper|top|lower|bottom) (left|right)\b",
     lambda m: _diagonal(m.group(1), m.group(2))),
    (r"\b(?:towards?|to) the (left|right|top|bottom)\b",
     lambda m: f" {dict(top='up', bottom='down').get(m.group(1), m.group(1))} "),
    (r"\b(?:(?:starting|starts|beginning|begins|placed|positioned|located)\s+)?(?:in|at|on|from|near)\s+the\s+"
     r"((?:upper|top|lower|bottom|middle|centre|center|left|right)(?:\s+(?:left|right|middle|centre|center))?)"
     r"(?:\s+(?:corner|side|edge|part|third|half|area))?(?:\s+of\s+the\s+(?:frame|screen|view|picture|image))?\b",
     _position_token),
    (r"\bin front of\b", " relation=front "),
]


def _tokens(text: str) -> list[str]:
    text = text.lower().replace("-", " ").replace("_", " ")
    for pattern, replacement in _REWRITES:
        text = re.sub(pattern, replacement, text)
    # runs of other scripts are kept as words so that parse_prompt reports them as not understood
    return re.findall(r"[a-z]+=[a-z_\-]+|\d+|[a-z']+|[.,;!?]|[^\x00-\x7f\s]+", text)


# --- stage 2: the reader ------------------------------------------------------------------------------------

_WORDS: dict[str, dict] = {  # kind → value → the words for it; later kinds win where a word repeats
    "filler": {None: "a an the this of to in on at from into over under across through around near by for its "
                     "their other each first again is are was were be that which who there all very background "
                     "backdrop scene video clip shot animation frame view screen picture image sign passes pass "
                     "passing reappears reappear disappears disappear slips slip comes out lands land landing "
                     "hits hit immediately keeps happens set plain about after away off toward towards "
                     "diagonally way direction speed pace looks turns becomes also together , and with then"},
    "color": {"red": "red crimson scarlet", "orange": "orange", "yellow": "yellow gold golden",
              "green": "green lime", "cyan": "cyan turquoise teal aqua", "blue": "blue navy",
              "purple": "purple violet lilac", "pink": "pink magenta", "white": "white", "black": "black",
              "brown": "brown", "gray": "gray grey silver"},
    "size": {"small": "small little tiny mini", "medium": "medium", "large": "large big huge giant"},
    "speed": {"slow": "slow slowly gently gentle lazily leisurely calmly", "medium": "steadily moderately",
              "fast": "fast quickly quick rapidly rapid swiftly swift speedily briskly"},
    "motion": {
        "bounce": "bounce bounces bouncing bounced bouncy hop hops hopping jump jumps jumping",
        "fall": "fall falls falling fell drop drops dropping dropped plummets plummeting",
        "slide": "slide slides sliding slid glide glides gliding drift drifts drifting roll rolls rolling rolled "
                 "travel travels travelling traveling fly flies flying",
        "orbit": "orbit orbits orbiting revolve revolves revolving circling",
        "spin": "spin spins spinning rotate rotates rotating twirl twirls twirling",
        "grow": "grow grows growing expand expands expanding swell swells swelling inflate inflates inflating",
        "shrink": "shrink shrinks shrinking contract contracts contracting deflate deflates deflating",
        "still": "still rest rests resting sit sits sitting stand stands standing stationary motionless static "
                 "idle"},
    # "slide" unless a clearer motion is named ("moving in a circle")
    "weak_motion": {"slide": "move moves moving go goes going crossing run runs running walk walks walking"},
    "rise": {"up": "rise rises rising ascend ascends ascending float floats floating",
             "down": "sink sinks sinking descend descends descending"},
    "direction": {"left": "left leftward leftwards", "right": "right rightward rightwards",
                  "up": "up upward upwards", "down": "down downward downwards",
                  "clockwise": "clockwise", "counterclockwise": "counterclockwise"},
    "count": {n + 1: w for n, w in enumerate("one two three four five six seven eight nine ten".split())},
    "determiner": {False: "a an another", True: "the this"},  # value: definite
    "pronoun": {None: "it they both"},
    "relation": {"behind": "behind"},
    "collide": {None: "collide collides colliding collided crash crashes crashing crashed bump bumps bumping "
                      "bumped smash smashes smashing"},
    "end": {None: ". ; ! ? while as meanwhile whilst but"},
}
_SHAPE_NOUNS = {"ball": "ball sphere dot orb circle disc disk", "square": "square box cube block rectangle",
                "triangle": "triangle pyramid", "star": "star", "ring": "ring donut doughnut hoop",
                "cross": "cross plus", None: "shape object thing item figure"}
# shape nouns that are also verbs when they follow their subject: "a star circles", "a ball crosses"
_NOUN_VERBS = {"circle": "orbit", "circles": "orbit", "cross": "slide", "crosses": "slide"}


def _plural(word: str) -> str:
    return word + ("es" if word.endswith(("s", "x", "ch", "sh")) else "s")


_LEXICON: dict[str, tuple[str, object]] = {
    word: (kind, value)
    for kind, table in _WORDS.items() for value, words in table.items() for word in words.split()
} | {form: ("noun", (shape, form != word)) for shape, words in _SHAPE_NOUNS.items() for word in words.split()
     for form in (word, _plural(word))}
_MODIFIERS = ("motion", "weak_motion", "speed", "direction", "position")


class _Reader:
    """Walks the tokens once, building objects, relations and notes (see the module docstring)."""

    def __init__(self):
        self.objects: list[dict] = []
        self.current: list[int] = []     # the objects the running clause is about
        self.last: list[int] = []        # the subject of the previous sentence (pronouns, trailing modifiers)
        self.previous: list[int] = []    # the mention before the current one ("a ball and a box colliding")
        self.pending: dict = {}          # modifiers waiting for their noun
        self.phrase: dict | None = None  # the open noun phrase: {"definite", "count", "explicit"}
        self.relation: dict | None = None
        self.relations: list[dict] = []
        self.background = self.camera = None
        self.notes: list[str] = []
        self.unknown: list[str] = []
        self.asked = 0                   # objects asked for, which may be more than are built

    def read(self, tokens: list[str]) -> None:
        for i, word in enumerate(tokens):
            self.step(word, following=tokens[i + 1] if i + 1 < len(tokens) else "")
        self.end_sentence()
        if not self.objects and self.pending:
            self.add_objects(None, 1)  # "red dog running left": keep what was understood

    def step(self, word: str, following: str) -> None:
        if "=" in word:  # a token from stage 1
            kind, value = word.split("=")
            value = value.replace("_", " ")
        elif word.isdigit():
            kind, value = "count", int(word)
        elif word in _NOUN_VERBS and self.phrase is None and self.current:
            kind, value = "motion", _NOUN_VERBS[word]
        else:
            kind, value = _LEXICON.get(word, ("unknown", word))
        if kind in ("color", "size"):
            if self.phrase is None:
                self.open_phrase(definite=False, explicit=False)
            self.pending[kind] = value  # the adjective nearest the noun wins
        elif kind in _MODIFIERS:
            self.modify(kind, value)
        elif kind == "rise":
            self.modify("motion", "slide")
            self.modify("direction", value)
        elif kind == "noun":
            self.noun(*value)
        elif kind == "determiner":
            self.open_phrase(definite=value)
        elif kind == "count" and word == "one" and self.phrase is not None:
            self.noun(None, False)  # "a red one"
        elif kind == "count":
            self.open_phrase(definite=False, count=value)
        elif kind == "background":
            self.background = self.background or value
        elif kind == "camera":
            self.camera = self.camera or value
        elif kind == "relation":
            self.open_relation(value)
        elif kind == "collide":
            self.collide(transitive=following in ("with", "into", "against"))
        elif kind == "end":
            self.end_sentence()
        elif kind == "pronoun" and not self.current:
            self.current = list(self.last)
        elif kind == "unknown":
            self.unknown.append(word)

    # noun phrases

    def open_phrase(self, definite: bool, count: int | None = None, explicit: bool = True) -> None:
        if self.phrase is not None:
            self.abandon_phrase()
        self.phrase = {"definite": definite, "count": count, "explicit": explicit}

    def abandon_phrase(self) -> None:
        """End a noun phrase that met no noun we know: "a red dog" is still a red object, while "is red" (no
        determiner) describes the object already being talked about."""
        phrase, self.phrase = self.phrase, None
        if phrase and phrase["explicit"] and (phrase["count"] or {"color", "size"} & self.pending.keys()):
            self.phrase = phrase
            self.noun(None, False)
        elif self.pending and (self.current or self.last):
            self.apply(self.current or self.last, self.pending)
            self.pending = {}

    def noun(self, shape: str | None, plural: bool) -> None:
        phrase, self.phrase = self.phrase or {"definite": False, "count": None}, None
        count = phrase["count"] or (2 if plural else 1)
        if plural and not phrase["count"]:
            self.notes.append(f"a plural {shape or 'shape'} without a number: made 2")
        collide = self.pending.pop("collide", False)
        referent = self.refer(shape) if phrase["definite"] and count == 1 else None
        if referent is None:
            group = self.add_objects(shape, count)
        else:
            group = [referent]
            self.apply(group, self.pending)
            self.pending = {}
        self.mention(group)
        if collide:
            self.collide(transitive=False)

    def refer(self, shape: str | None) -> int | None:
        """Index of an earlier object this definite mention names (by colour, else by a unique shape)."""
        color = self.pending.get("color")
        matches = [i for i, o in enumerate(self.objects)
                   if (o.get("color") == color if color else o.get("shape") == shape)
                   and (shape is None or o.get("shape") in (None, shape))]
        return matches[-1] if (color and matches) or len(matches) == 1 else None

    def add_objects(self, shape: str | None, count: int) -> list[int]:
        self.asked += count
        count = min(count, MAX_OBJECTS + 1)  # enough to refuse "a million balls" without building them
        group = list(range(len(self.objects), len(self.objects) + count))
        for k in range(count):
            attrs = {key: v for key, v in self.pending.items() if k == 0 or key != "color"}
            self.objects.append({"shape": shape} | attrs)
        if count > 1 and "color" in self.pending:
            color = self.pending["color"]
            self.notes.append(f"{count} {color} {shape or 'shape'}s: objects are told apart by colour, so only "
                              f"the first is {color} and the others get other colours")
        self.pending = {}
        return group

    def mention(self, group: list[int]) -> None:
        self.previous, self.current = self.current or self.previous, group
        if self.relation is not None and self.relation["subjects"]:
            self.relation["targets"] += group
            if self.relation["type"] == "collide":
                self.close_relation()

    # modifiers and relations

    def modify(self, key: str, value: str) -> None:
        if self.phrase is not None or not self.current:
            self.pending.setdefault(key, value)
        else:
            self.apply(self.current, {key: value})

    def apply(self, group: list[int], attrs: dict) -> None:
        for i in group:
            for key, value in attrs.items():
                self.objects[i].setdefault(key, value)  # the first value given wins

    def open_relation(self, kind: str) -> None:
        self.close_relation()
        self.relation = {"type": kind, "subjects": list(self.current), "targets": []}

    def collide(self, transitive: bool) -> None:
        if self.phrase is not None:
            self.pending["collide"] = True  # "two colliding balls"
        elif transitive:
            self.open_relation("collide")
        else:
            pair = self.current[:2] if len(self.current) > 1 else self.previous[-1:] + self.current[:1]
            self.add_relation("collide", pair)

    def close_relation(self) -> None:
        relation, self.relation = self.relation, None
        if relation is None:
            return
        if relation["type"] == "collide" and not relation["targets"]:
            self.current = relation["subjects"]
            self.collide(transitive=False)  # "two balls collide with each other"
        for s in relation["subjects"]:
            for t in relation["targets"]:
                self.add_relation(relation["type"], [s, t])

    def add_relation(self, kind: str, pair: list[int]) -> None:
        if len(pair) == 2 and pair[0] != pair[1]:
            if kind == "front":
                kind, pair = "behind", pair[::-1]
            if {"type": kind, "objects": pair} not in self.relations:
                self.relations.append({"type": kind, "objects": pair})

    def end_sentence(self) -> None:
        self.abandon_phrase()
        self.close_relation()
        if self.pending and self.last and not self.current:
            self.apply(self.last, self.pending)
            self.pending = {}
        self.last = self.current or self.last
        self.current = []


# --- parse_prompt ------------------------------------------------------------------------------------------

_TURNS = ("clockwise", "counterclockwise")


def parse_prompt(text: str) -> dict:
    """Find ToyWorld's vocabulary in an English prompt.

    Args:
        text: free English, e.g. "two green squares spinning slowly while the camera zooms in".

    Returns:
        {"objects": [{"shape", "color", "size", "motion", "direction", "speed", "position", "depth"}, ...] in
        the order mentioned, None where the text says nothing ("position" names a third of the view as in
        POSITIONS; "depth" is "front", "back" or None); "count": the number of objects; "background" and
        "camera": vocabulary names or None; "relations": [{"type": "collide" | "behind", "objects": [i, j]}]
        ("behind" means i is behind j); "notes": what was changed or ignored and why; "unknown": words not
        understood.

    Raises:
        InvalidRequest: for empty text or more than MAX_OBJECTS objects.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidRequest("prompt", text, "a non-empty description of the scene")
    reader = _Reader()
    reader.read(_tokens(text))
    if reader.asked > MAX_OBJECTS:
        raise InvalidRequest("prompt", text, f"at most {MAX_OBJECTS} objects (found {reader.asked})")
    notes = list(reader.notes)
    objects = [_resolve(i, o, reader.relations, notes) for i, o in enumerate(reader.objects)]
    taken = set()
    for i, o in enumerate(objects):
        if o["color"] is not None and o["color"] in taken:
            notes.append(f"objects[{i}]: {o['color']} is already taken (objects are told apart by colour), "
                         "so it gets another colour")
            o["color"] = None
        taken.add(o["color"])
    return {"objects": objects, "count": len(objects), "background": reader.background, "camera": reader.camera,
            "relations": reader.relations, "notes": notes, "unknown": reader.unknown}


def _resolve(i: int, o: dict, relations: list[dict], notes: list[str]) -> dict:
    """Settle one object's attributes: implied motions, directions and speeds its motion can have, depth."""
    collides = any(r["type"] == "collide" and i in r["objects"] for r in relations)
    motion = o.get("motion") or o.get("weak_motion") or ("slide" if collides else None)
    direction, speed = o.get("direction"), o.get("speed")
    if motion is None and direction:
        motion = "spin" if direction in _TURNS else "slide"  # "a ball going left", "a star turning clockwise"
    if motion in ("still", "fall") and speed:
        notes.append(f"objects[{i}]: a {motion} object has no speed; '{speed}' ignored")
        speed = None
    if motion == "spin" and o.get("shape") and o["shape"] not in vocab.SPINNABLE:
        notes.append(f"objects[{i}]: a spinning {o['shape']} looks still")
    behind = [r["objects"] for r in relations if r["type"] == "behind"]
    depth = "back" if any(p[0] == i for p in behind) else "front" if any(p[1] == i for p in behind) else None
    return {"shape": o.get("shape"), "color": o.get("color"), "size": o.get("size"), "motion": motion,
            "direction": _fit_direction(i, motion, direction, notes), "speed": speed,
            "position": o.get("position"), "depth": depth}


def _fit_direction(i: int, motion: str | None, direction: str | None, notes: list[str]) -> str | None:
    allowed = {"slide": vocab.DIRECTIONS, "bounce": ("left", "right"), "orbit": _TURNS, "spin": _TURNS}
    if direction is None or direction in allowed.get(motion, ()):
        return direction
    if motion == "bounce" and "-" in direction:
        return direction.split("-")[1]  # "bounces up and to the right": a bounce only chooses its side
    if (motion, direction) != ("fall", "down"):
        notes.append(f"objects[{i}]: a {motion} has no direction '{direction}'; ignored")
    return None


# --- scene_from_prompt -------------------------------------------------------------------------------------

def scene_from_prompt(text: str, seed: int = 0, aspect: float = 16 / 9, duration: float = 4.0) -> Scene:
    """Build the ToyWorld scene an English prompt describes; what it leaves open is drawn from `seed`.

    Args:
        text: the prompt (see parse_prompt).
        seed: draws every attribute the text does not fix; same text and seed → same scene.
        aspect: width / height of the view to frame the scene for.
        duration: seconds the scene lasts.

    Returns:
        a valid Scene. Text that names no object still gives one random object.
    """
    return scene_from_parse(parse_prompt(text), seed, aspect, duration)


def scene_from_parse(parsed: dict, seed: int = 0, aspect: float = 16 / 9, duration: float = 4.0) -> Scene:
    """Build a scene from parse_prompt's result (which a caller may have edited); see scene_from_prompt."""
    rng = random.Random(seed)
    # drawn first and always, as sample_scene does, so the seed fixes them whatever the text says
    background = rng.choice(list(vocab.BACKGROUNDS))
    rng.random()  # sample_scene's camera draw, kept so a seed fills everything else as it always did
    # a prompt that names no camera move gets a still camera: a surprise pan reads as a wrong answer
    background, camera = parsed["background"] or background, parsed["camera"] or "static"
    specs = _with_defaults(parsed["objects"] or [{}], parsed["relations"])
    colors = _fill_colors([s.get("color") for s in specs], background, rng)
    drawn = [_draw_object(spec, color, rng) for spec, color in zip(specs, colors)]
    laid_out = _arrange(drawn, specs, parsed["relations"], rng)

    w, h = max(aspect, 1.0), max(1.0 / aspect, 1.0)
    objects = [_place(w, h, o, duration) for o in drawn]
    for o, spec in zip(objects, specs):
        o.depth = 1 if spec.get("depth") == "back" else 0
        if spec.get("position"):
            _move_to(o, spec["position"], w, h, rng)
    _spread(objects, [o for i, (o, s) in enumerate(zip(objects, specs))
                      if i not in laid_out and not s.get("position") and o.motion != "orbit"], w, h, rng)
    kinds = {r["type"] for r in parsed["relations"]}
    scenario = "single" if len(objects) == 1 else "collision" if "collide" in kinds else \
        "occlusion" if "behind" in kinds else "multi"
    scene = Scene(objects=objects, background=background, camera=camera, aspect=aspect, duration=duration,
                  seed=seed, scenario=scenario)
    validate_scene(scene)
    return scene


def _with_defaults(objects: list[dict], relations: list[dict]) -> list[dict]:
    """"A ball passes behind a square": unless told otherwise the square stands still and is large and the
    ball is small and slides, as in sample_scene's occlusion scenario, so the ball is seen to pass behind."""
    specs = [dict(o) for o in objects]
    for r in relations:
        if r["type"] == "behind":
            back, front = (specs[k] for k in r["objects"])
            for spec, motion, size in ((back, "slide", "small"), (front, "still", "large")):
                spec["motion"] = spec.get("motion") or motion
                spec["size"] = spec.get("size") or size
    return specs


def _fill_colors(requested: list[str | None], background: str, rng) -> list[str]:
    palette = contrasting_colors(background)
    rng.shuffle(palette)
    spare = [c for c in palette + [c for c in vocab.COLORS if c not in palette] if c not in requested]
    return [c or spare.pop(0) for c in requested]


def _draw_object(spec: dict, color: str, rng) -> dict:
    """A normalised object as scene._sample_object draws it, with what the prompt fixed put in."""
    shape = spec.get("shape") or rng.choice(vocab.SPINNABLE if spec.get("motion") == "spin" else vocab.SHAPES)
    size = spec.get("size") or rng.choice(list(vocab.SIZES))
    motion = spec.get("motion") or rng.choice(_allowed_motions(shape))
    o = _sample_object(rng, shape, color, size, motion)
    for key in ("direction", "speed"):
        if spec.get(key) and key in o:
            o[key] = spec[key]
    return o


def _arrange(drawn: list[dict], specs: list[dict], relations: list[dict], rng) -> set[int]:
    """Lay out colliding pairs and pass-behind pairs as sample_scene's collision and occlusion scenarios do,
    so the event the prompt asks for happens; returns the indices laid out."""
    laid_out: set[int] = set()
    for r in relations:
        a, b = r["objects"]
        if {a, b} & laid_out or specs[a].get("position") or specs[b].get("position"):
            continue
        if r["type"] == "collide" and drawn[a]["motion"] == drawn[b]["motion"] == "slide" \
                and not (specs[a].get("direction") or specs[b].get("direction")):
            horizontal = rng.random() < 0.7
            forward, back = ("right", "left") if horizontal else ("up", "down")
            for k, sign, direction in ((a, 1, forward), (b, -1, back)):
                drawn[k]["direction"] = direction
                drawn[k]["u"], drawn[k]["v"] = (0.5 - 0.2 * sign, 0.5) if horizontal else (0.5, 0.5 - 0.2 * sign)
                drawn[k]["speed"] = specs[k].get("speed") or rng.choice(["medium", "fast"])
            laid_out |= {a, b}
        elif r["type"] == "behind" and drawn[a]["motion"] == "slide" and drawn[b]["motion"] == "still" \
                and specs[a].get("direction") in (None, "left", "right"):
            drawn[b]["u"], drawn[b]["v"] = 0.5, 0.5
            drawn[a]["u"], drawn[a]["v"] = 0.5, 0.5 + rng.uniform(-0.05, 0.05)
            drawn[a]["direction"] = specs[a].get("direction") or rng.choice(["left", "right"])
            laid_out |= {a, b}
    return laid_out


def _move_to(o, name: str, w: float, h: float, rng) -> None:
    """Start the object inside the named third of the view. An orbit starts there too, with its centre on
    the side towards the middle of the view so that its whole circle stays in view."""
    row, col = next((r, c) for r, names in enumerate(POSITIONS) for c, n in enumerate(names) if n == name)
    target = ((col + rng.uniform(0.3, 0.7)) / 3 * w, (row + rng.uniform(0.3, 0.7)) / 3 * h)
    r = o.radius
    if o.motion != "orbit":
        o.x, o.y = (min(max(t, r), side - r) for t, side in zip(target, (w, h)))
        return
    rad = math.dist((o.x, o.y), o.orbit_center)
    inward = _unit(w / 2 - target[0], h / 2 - target[1], default=(-1.0, 0.0))
    center = [min(max(t + rad * d, rad + r), side - rad - r) for t, d, side in zip(target, inward, (w, h))]
    outward = _unit(target[0] - center[0], target[1] - center[1], default=(1.0, 0.0))
    o.orbit_center = tuple(center)
    o.x, o.y = center[0] + rad * outward[0], center[1] + rad * outward[1]


def _unit(dx: float, dy: float, default: tuple[float, float]) -> tuple[float, float]:
    norm = math.hypot(dx, dy)
    return (dx / norm, dy / norm) if norm > 1e-9 else default


def _spread(objects: list, movable: list, w: float, h: float, rng) -> None:
    """Move the movable objects off any object they start on in their layer (a few random tries), like
    scene._separate but never moving an object the prompt placed. Bounces and falls keep their height."""
    for o in movable:
        for _ in range(50):
            if not any(p is not o and p.depth == o.depth
                       and math.dist((o.x, o.y), (p.x, p.y)) < 1.1 * (o.radius + p.radius) for p in objects):
                break
            o.x = rng.uniform(o.radius, w - o.radius)
            if o.motion not in ("bounce", "fall"):
                o.y = rng.uniform(o.radius, h - o.radius)
