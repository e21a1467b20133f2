"""ToyWorld's vocabulary: every attribute a scene can have, with the words captions use for it.

World units: the short side of the visible frame (at t = 0, before any camera zoom) is 1.0, so an object
of a given size looks the same at 16:9, 9:16 and 1:1. x points right, y points up, the origin is the
bottom-left corner of the initial view.
"""

# Object colours: saturated, far apart in Lab so perception can name them under blur and noise.
# Background colours (below) are kept muted or dark so an object never blends into its background.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (255, 140, 0),
    "yellow": (250, 225, 30),
    "green": (40, 180, 50),
    "cyan": (0, 215, 230),
    "blue": (30, 70, 230),
    "purple": (140, 40, 200),
    "pink": (255, 110, 190),
    "white": (250, 250, 250),
    "black": (15, 15, 15),
    "brown": (130, 75, 20),
    "gray": (128, 128, 128),
}

# Shapes are drawn inside a circle of radius `radius * scale`; see render.py for the signed distances.
SHAPES = ("ball", "square", "triangle", "star", "ring", "cross")

# Radius in world units (fraction of the frame's short side).
SIZES: dict[str, float] = {"small": 0.07, "medium": 0.11, "large": 0.16}

# Speed of sliding, in short sides per second.
SPEEDS: dict[str, float] = {"slow": 0.12, "medium": 0.25, "fast": 0.45}

# Unit direction vectors (x right, y up).
_D = 0.7071067811865476
DIRECTIONS: dict[str, tuple[float, float]] = {
    "right": (1.0, 0.0), "left": (-1.0, 0.0), "up": (0.0, 1.0), "down": (0.0, -1.0),
    "up-right": (_D, _D), "up-left": (-_D, _D), "down-right": (_D, -_D), "down-left": (-_D, -_D),
}
# The other way round: each slide direction and turning sense with its opposite.
OPPOSITE: dict[str, str] = {"right": "left", "left": "right", "up": "down", "down": "up",
                            "up-right": "down-left", "down-left": "up-right", "up-left": "down-right",
                            "down-right": "up-left", "clockwise": "counterclockwise",
                            "counterclockwise": "clockwise"}

# Motion types. Physical ones (slide, bounce, fall) collide with other physical objects on the same depth
# layer; kinematic ones follow their formula and never collide.
MOTIONS = ("still", "slide", "bounce", "fall", "orbit", "spin", "grow", "shrink")
PHYSICAL_MOTIONS = ("slide", "bounce", "fall")

# Shapes whose spin is visible (a ball or ring spinning looks still).
SPINNABLE = ("square", "triangle", "star", "cross")

GRAVITY = 2.5            # short sides / s^2: a ball dropped from the top lands in ~0.9 s
RESTITUTION = 0.8        # bounce: each bounce keeps 80% of the normal speed
FALL_RESTITUTION = 0.35  # a falling object thuds rather than bounces
ORBIT_PERIOD = {"slow": 6.0, "medium": 4.0, "fast": 2.5}   # seconds per revolution
SPIN_RATE = {"slow": 0.5, "medium": 1.0, "fast": 2.0}      # revolutions per second
GROW_RATE = {"slow": 0.12, "medium": 0.25, "fast": 0.4}    # log-scale change per second

# Backgrounds are functions of world position, so a camera pan shows motion. Every colour here stays far
# from every object colour (checked in tests/test_world.py).
BACKGROUNDS: dict[str, dict] = {
    "night": {"kind": "solid", "colors": [(22, 26, 48)]},
    "slate": {"kind": "solid", "colors": [(70, 80, 92)]},
    "sand": {"kind": "solid", "colors": [(205, 185, 145)]},
    "sunset sky": {"kind": "vertical", "colors": [(110, 50, 90), (240, 160, 110)]},  # top → bottom
    "ocean": {"kind": "vertical", "colors": [(120, 170, 200), (20, 50, 90)]},
    "dusk": {"kind": "horizontal", "colors": [(40, 40, 80), (120, 80, 110)]},        # left → right
    "grassy field": {"kind": "ground", "colors": [(150, 195, 230), (85, 125, 60)], "horizon": 0.3},
    "wooden floor": {"kind": "ground", "colors": [(200, 190, 170), (150, 105, 65)], "horizon": 0.25},
    "desert": {"kind": "ground", "colors": [(160, 200, 235), (215, 180, 120)], "horizon": 0.35},
    "checkerboard": {"kind": "checker", "colors": [(60, 60, 70), (100, 100, 112)], "cell": 0.2},
    "striped wall": {"kind": "stripes", "colors": [(160, 150, 120), (180, 172, 145)], "cell": 0.15},
    "polka dots": {"kind": "dots", "colors": [(45, 60, 70), (80, 100, 110)], "cell": 0.25},
}

CAMERAS = ("static", "pan left", "pan right", "pan up", "pan down", "zoom in", "zoom out")
CAMERA_PAN_SPEED = 0.12   # short sides per second
CAMERA_ZOOM_RATE = 0.15   # log-zoom per second

# Compositions that training scenes never contain, so evaluation can test compositional generalisation:
# each colour, shape and motion below appears in training, but never in these (colour, shape, motion)
# triples. Fixed forever: changing it invalidates every held-out number measured before.
HELD_OUT: tuple[tuple[str, str, str], ...] = (
    ("red", "star", "orbit"),
    ("blue", "triangle", "bounce"),
    ("green", "ring", "slide"),
    ("yellow", "square", "spin"),
    ("purple", "ball", "fall"),
    ("orange", "cross", "grow"),
    ("pink", "square", "shrink"),
    ("cyan", "star", "still"),
    ("white", "triangle", "slide"),
    ("brown", "ball", "bounce"),
)
