"""ToyWorld physics in continuous time.

Physical objects (slide, bounce, fall) are integrated on a fixed fine clock (DT, far finer than any frame
rate) with exact ballistic steps, collisions against the floor (y = 0), the side walls (x = 0 and
x = scene.width) and each other (elastic, on the same depth layer only). Kinematic objects (still, orbit,
spin, grow, shrink) and the camera are closed-form functions of time. Frames at any fps sample the same
continuous motion: `simulate(scene).at(times)` interpolates the fine clock, so a scene rendered at 8 fps and
at 60 fps shows the same motion.
"""

import math
from dataclasses import dataclass, field, replace

import numpy as np

from . import vocab
from .scene import Scene

DT = 1.0 / 480.0  # seconds per physics step: a fast object moves < 0.001 short sides per step

# Collision radius / drawn radius, per shape: about the mean of the inscribed and circumscribed circles.
COLLISION_RADIUS = {"ball": 1.0, "ring": 1.0, "square": 0.9, "triangle": 0.75, "star": 0.8, "cross": 0.85}
SCALE_RANGE = (0.35, 2.5)  # grow/shrink saturate here


@dataclass
class States:
    """Everything the renderer needs at a set of times. N objects, T times."""
    times: np.ndarray          # (T,)
    position: np.ndarray       # (N, T, 2) world units
    angle: np.ndarray          # (N, T) radians, counter-clockwise
    scale: np.ndarray          # (N, T) multiplies the object's radius
    camera_center: np.ndarray  # (T, 2) world position at the centre of the view
    camera_zoom: np.ndarray    # (T,) > 1 shows less of the world


@dataclass
class Trajectory:
    scene: Scene
    until: float
    fine_times: np.ndarray          # (S,)
    fine_position: np.ndarray       # (N, S, 2) physical objects; kinematic rows unused
    events: list[dict] = field(default_factory=list)

    def at(self, times) -> States:
        times = np.asarray(times, dtype=np.float64)
        scene, n = self.scene, len(self.scene.objects)
        position = np.zeros((n, len(times), 2))
        angle = np.zeros((n, len(times)))
        scale = np.ones((n, len(times)))
        for i, o in enumerate(scene.objects):
            angle[i] = o.angle
            if o.motion in vocab.PHYSICAL_MOTIONS:
                for k in range(2):
                    position[i, :, k] = np.interp(times, self.fine_times, self.fine_position[i, :, k])
            else:
                position[i], angle[i], scale[i] = _kinematic(o, times)
        center, zoom = camera_at(scene, times)
        return States(times, position, angle, scale, center, zoom)


def _sign(direction) -> float:
    return -1.0 if direction == "clockwise" else 1.0


def _kinematic(o, times):
    pos = np.tile([o.x, o.y], (len(times), 1)).astype(np.float64)
    angle = np.full(len(times), o.angle)
    scale = np.ones(len(times))
    if o.motion == "orbit":
        cx, cy = o.orbit_center
        radius, phase = math.hypot(o.x - cx, o.y - cy), math.atan2(o.y - cy, o.x - cx)
        theta = phase + _sign(o.direction) * 2 * math.pi * times / vocab.ORBIT_PERIOD[o.speed]
        pos = np.stack([cx + radius * np.cos(theta), cy + radius * np.sin(theta)], axis=1)
    elif o.motion == "spin":
        angle = o.angle + _sign(o.direction) * 2 * math.pi * vocab.SPIN_RATE[o.speed] * times
    elif o.motion in ("grow", "shrink"):
        rate = vocab.GROW_RATE[o.speed] * (1 if o.motion == "grow" else -1)
        scale = np.clip(np.exp(rate * times), *SCALE_RANGE)
    return pos, angle, scale


def camera_at(scene: Scene, times):
    """Centre and zoom of the view at each time: pans move at constant speed, zooms change exponentially."""
    times = np.asarray(times, dtype=np.float64)
    center = np.tile([scene.width / 2, scene.height / 2], (len(times), 1))
    zoom = np.ones(len(times))
    cam = scene.camera
    if cam.startswith("pan"):
        dx, dy = vocab.DIRECTIONS[cam.split()[1]]
        center = center + vocab.CAMERA_PAN_SPEED * times[:, None] * np.array([dx, dy])
    elif cam.startswith("zoom"):
        zoom = np.exp((1 if cam == "zoom in" else -1) * vocab.CAMERA_ZOOM_RATE * times)
    return center, zoom


def initial_velocity(o) -> tuple[float, float]:
    if o.motion == "slide":
        dx, dy = vocab.DIRECTIONS[o.direction]
        return dx * vocab.SPEEDS[o.speed], dy * vocab.SPEEDS[o.speed]
    if o.motion == "bounce":
        return (1 if o.direction == "right" else -1) * vocab.SPEEDS[o.speed or "medium"], 0.0
    return 0.0, 0.0


def simulate(scene: Scene, until: float | None = None) -> Trajectory:
    """Integrate the physical objects from t = 0 to `until` (default: the scene's duration) and record
    events: collisions, bounces on the floor and walls, and occlusions (an object passing behind one on a
    nearer layer).

    Collisions happen between objects on the same depth layer when at least one is physical. Between two
    physical objects they are elastic (masses ∝ radius²); a kinematic object (still, orbit, spin, grow,
    shrink) is an immovable obstacle that keeps its path while the physical one rebounds."""
    until = scene.duration if until is None else max(until, 0.0)
    objs = scene.objects
    n, steps = len(objs), int(math.ceil(until / DT)) + 1
    fine_times = np.arange(steps) * DT
    physical = np.array([o.motion in vocab.PHYSICAL_MOTIONS for o in objs])
    kinematic = [_kinematic(o, fine_times) if not physical[i] else None for i, o in enumerate(objs)]
    pos = np.array([[o.x, o.y] for o in objs], dtype=np.float64).reshape(n, 2)  # (N, 2), also for N = 0
    vel = np.array([initial_velocity(o) for o in objs], dtype=np.float64).reshape(n, 2)
    base_radius = np.array([o.radius * COLLISION_RADIUS[o.shape] for o in objs])
    gravity = np.array([o.motion in ("bounce", "fall") for o in objs], dtype=np.float64)
    restitution = np.array([vocab.FALL_RESTITUTION if o.motion == "fall" else vocab.RESTITUTION for o in objs])
    inv_mass = np.where(physical, 1.0 / base_radius ** 2, 0.0)  # kinematic objects: infinite mass
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)
             if (physical[i] or physical[j]) and objs[i].depth == objs[j].depth]
    rest_speed = math.sqrt(2 * vocab.GRAVITY * 0.002)  # below this a bounce is a rest (no endless micro-hops)

    fine = np.zeros((n, steps, 2))
    events: list[dict] = []
    radius = base_radius.copy()
    for s in range(steps):
        t = s * DT
        for i, k in enumerate(kinematic):
            if k is not None:
                nxt = min(s + 1, steps - 1)
                pos[i], vel[i] = k[0][s], (k[0][nxt] - k[0][s]) / DT
                radius[i] = base_radius[i] * k[2][s]
        fine[:, s] = pos
        if s == steps - 1:
            break
        acc_y = -vocab.GRAVITY * gravity
        pos[:, 0] += vel[:, 0] * DT
        pos[:, 1] += vel[:, 1] * DT + 0.5 * acc_y * DT * DT
        vel[:, 1] += acc_y * DT
        for i in range(n):
            if not gravity[i]:
                continue  # sliding objects glide through the frame edges; only falling ones meet floor/walls
            r = radius[i]
            if pos[i, 1] < r and vel[i, 1] < 0:
                pos[i, 1] = r + (r - pos[i, 1]) * restitution[i]
                speed_in = -vel[i, 1]
                vel[i, 1] = speed_in * restitution[i] if speed_in * restitution[i] > rest_speed else 0.0
                if speed_in > rest_speed:
                    events.append({"t": round(t, 4), "type": "bounce", "object": i, "on": "floor"})
                if vel[i, 1] == 0.0:
                    pos[i, 1] = r
            for wall, inside in ((0.0, 1), (scene.width, -1)):
                if (pos[i, 0] - wall) * inside < r and vel[i, 0] * inside < 0:
                    pos[i, 0] = wall + inside * r
                    vel[i, 0] = -vel[i, 0] * restitution[i]
                    events.append({"t": round(t, 4), "type": "bounce", "object": i, "on": "wall"})
        for i, j in pairs:
            d = pos[j] - pos[i]
            dist = float(np.hypot(*d))
            if dist >= radius[i] + radius[j] or dist == 0.0:
                continue
            normal = d / dist
            approach = float(np.dot(vel[i] - vel[j], normal))
            if approach <= 0:
                continue  # already separating
            impulse = 2 * approach / (inv_mass[i] + inv_mass[j])  # elastic: kinetic energy is kept
            vel[i] -= impulse * inv_mass[i] * normal
            vel[j] += impulse * inv_mass[j] * normal
            events.append({"t": round(t, 4), "type": "collision", "objects": [i, j]})
    traj = Trajectory(scene, until, fine_times, fine)
    traj.events = sorted(events + _occlusions(traj), key=lambda e: e["t"])
    return traj


def _occlusions(traj: Trajectory, step: float = 1 / 60) -> list[dict]:
    """An object is 'behind' another while their drawn circles overlap by half its radius; each event has the
    time it starts (`t`) and the time it ends (`until`, None if it lasts past the end)."""
    objs = traj.scene.objects
    times = np.arange(0.0, traj.until + 1e-9, step)
    if len(objs) < 2 or len(times) == 0:
        return []
    st = traj.at(times)
    events = []
    for i, back in enumerate(objs):
        for j, front in enumerate(objs):
            if back.depth <= front.depth:
                continue
            dist = np.linalg.norm(st.position[i] - st.position[j], axis=-1)
            overlap = dist < front.radius * st.scale[j] + 0.5 * back.radius * st.scale[i]
            starts = np.flatnonzero(overlap & ~np.concatenate([[False], overlap[:-1]]))
            ends = np.flatnonzero(~overlap & np.concatenate([[False], overlap[:-1]]))
            for k in starts:
                later = ends[ends > k]  # "until": when it comes out again; None if still hidden at the end
                until = round(float(times[later[0]]), 4) if len(later) else None
                events.append({"t": round(float(times[k]), 4), "type": "occlusion", "behind": i, "front": j,
                               "until": until})
    return events


REVERSIBLE_MOTIONS = ("still", "slide", "orbit", "spin")


def reversed_scene(scene: Scene) -> Scene | None:
    """The scene played backwards over its duration, as a ToyWorld scene: every object starts where it ends and
    moves the other way (vocab.OPPOSITE), so rendering it gives the scene's frames in reverse order and its
    captions name the opposite directions. None where no ToyWorld scene does that: a moving camera, gravity
    (bounce, fall), growing or shrinking (which start at their size), or a collision (which changes speeds).

    Training on a scene and its reverse shows the model two clips that pass through the same places and differ
    only in order, so only the direction words tell them apart (train.TrainConfig.reverse_pairs)."""
    if scene.camera != "static" or any(o.motion not in REVERSIBLE_MOTIONS for o in scene.objects):
        return None
    trajectory = simulate(scene)
    if any(e["type"] == "collision" for e in trajectory.events):
        return None
    end = trajectory.at([scene.duration])
    objects = [replace(o, x=float(end.position[i, 0, 0]), y=float(end.position[i, 0, 1]),
                       angle=float(end.angle[i, 0]), direction=vocab.OPPOSITE.get(o.direction, o.direction))
               for i, o in enumerate(scene.objects)]
    return replace(scene, objects=objects)


def reshaped_scene(scene: Scene, rng) -> Scene | None:
    """The scene with every object drawn as another shape (one `rng` draws, never a vocab.HELD_OUT composition)
    that moves exactly as before: same start, path, colour, size and timing. None where no such scene exists: a
    shape's collision radius (COLLISION_RADIUS) would change a collision or a bounce, or an object has no other
    shape its colour and motion allow.

    Training on a scene and its reshaped twin shows the model two clips that differ only in the objects'
    outlines, so only the shape words tell them apart (train.TrainConfig.shape_pairs)."""
    objects = []
    for o in scene.objects:
        others = [s for s in vocab.SHAPES if s != o.shape and (o.color, s, o.motion) not in vocab.HELD_OUT
                  and (o.motion != "spin" or s in vocab.SPINNABLE)]      # a spinning ball or ring shows no spin
        if not others:
            return None
        objects.append(replace(o, shape=rng.choice(others)))
    twin = replace(scene, objects=objects)
    if any(o.motion in vocab.PHYSICAL_MOTIONS for o in scene.objects):    # the same path at every physics step
        if not np.allclose(simulate(scene).fine_position, simulate(twin).fine_position, atol=1e-9):
            return None
    return twin
