"""ToyWorld scenes, physics and renderer: known answers, determinism, framing, ground truth."""

import math
import random
from dataclasses import replace

import numpy as np
import pytest
import torch

from straightline.errors import InvalidRequest
from straightline.world import Scene, WorldObject, captions, render, sample_scene, simulate, vocab
from straightline.world.physics import COLLISION_RADIUS, DT, initial_velocity, reshaped_scene, reversed_scene
from straightline.world.scene import MIN_CONTRAST, color_distance, contrasting_colors, is_held_out


def one(shape="ball", color="red", size="medium", motion="still", **kw):
    scene_kw = {k: kw.pop(k) for k in ("background", "camera", "aspect", "duration") if k in kw}
    obj = WorldObject(shape=shape, color=color, size=size, motion=motion, x=kw.pop("x", 0.8), y=kw.pop("y", 0.5), **kw)
    return Scene(objects=[obj], **scene_kw)


# --- vocabulary and sampling -----------------------------------------------------------------------------

def test_vocabulary_is_rich_enough():
    assert len(vocab.COLORS) >= 10
    assert {"ball", "square", "triangle", "star", "ring"} <= set(vocab.SHAPES)
    assert set(vocab.SIZES) == {"small", "medium", "large"} and len(vocab.DIRECTIONS) == 8
    for name in vocab.BACKGROUNDS:  # four objects need four distinct colours that stand out
        assert len(contrasting_colors(name)) >= 6, name


def test_sampled_objects_contrast_with_background_and_have_distinct_colors():
    for seed in range(200):
        s = sample_scene(seed)
        colors = [o.color for o in s.objects]
        assert len(set(colors)) == len(colors)
        for o in s.objects:
            bg = vocab.BACKGROUNDS[s.background]["colors"]
            assert min(color_distance(vocab.COLORS[o.color], c) for c in bg) >= MIN_CONTRAST


def test_same_seed_same_scene_and_reframed_for_each_aspect():
    wide, tall = sample_scene(11, aspect=16 / 9), sample_scene(11, aspect=9 / 16)
    assert sample_scene(11, aspect=16 / 9) == wide
    strip = lambda s: [(o.shape, o.color, o.size, o.motion, o.direction, o.speed) for o in s.objects]
    assert strip(wide) == strip(tall) and wide.background == tall.background
    for seed in range(100):
        for aspect in (16 / 9, 9 / 16, 1.0):
            s = sample_scene(seed, aspect=aspect)
            for o in s.objects:  # every object starts fully inside the view framed for that aspect
                r = o.radius
                assert r - 1e-9 <= o.x <= s.width - r + 1e-9 and r - 1e-9 <= o.y <= s.height - r + 1e-9


def test_held_out_compositions_never_in_training_and_always_in_heldout():
    for seed in range(300):
        assert not any(is_held_out(o) for o in sample_scene(seed, split="train").objects)
        assert is_held_out(sample_scene(seed, split="heldout").objects[0])


def test_scene_json_round_trip_and_validation_errors():
    s = sample_scene(5)
    assert Scene.from_json(s.to_json()) == s
    bad = s.to_dict()
    bad["objects"][0]["color"] = "mauve"
    with pytest.raises(InvalidRequest, match=r"objects\[0\]\.color.*mauve.*one of red"):
        Scene.from_dict(bad)
    with pytest.raises(InvalidRequest, match="split"):
        sample_scene(0, split="test")


# --- physics ---------------------------------------------------------------------------------------------

def test_motion_is_the_same_at_any_frame_rate():
    s = sample_scene(3, scenario="multi", num_objects=4)
    slow, fast = render(s, 64, 36, fps=8, num_frames=9), render(s, 64, 36, fps=24, num_frames=25)
    # frames at t = 0, 0.5, 1.0 s exist in both clips
    assert torch.allclose(slow.center[:, ::4], fast.center[:, ::12], atol=1e-3)
    assert torch.equal(slow.frames[::4], fast.frames[::12])


def test_slide_has_constant_velocity():
    s = one(motion="slide", direction="up-right", speed="fast", x=0.3, y=0.3)
    st = simulate(s).at([0.0, 1.0, 2.0])
    step = np.diff(st.position[0], axis=0)
    speed = vocab.SPEEDS["fast"] * math.sqrt(0.5)
    assert np.allclose(step, [[speed, speed]] * 2, atol=1e-9)


def test_free_fall_follows_gravity_then_rests_on_the_floor():
    s = one(motion="fall", x=0.9, y=0.9, duration=4.0)
    st = simulate(s).at([0.0, 0.3])
    assert st.position[0, 1, 1] == pytest.approx(0.9 - 0.5 * vocab.GRAVITY * 0.3 ** 2, abs=1e-9)
    end = simulate(s).at([4.0]).position[0, 0]
    assert end[1] == pytest.approx(s.objects[0].radius, abs=1e-6)


def test_bounce_loses_energy_by_the_restitution():
    s = one(motion="bounce", direction="right", speed="slow", x=0.5, y=0.85, aspect=3.0, duration=3.0)
    traj = simulate(s)
    y = traj.fine_position[0, :, 1]
    peaks = [y[k] for k in range(1, len(y) - 1) if y[k - 1] < y[k] >= y[k + 1]]
    r = s.objects[0].radius
    h0 = 0.85 - r
    # each rebound height is e^2 of the previous one (the ball leaves the floor with e times the speed)
    assert (peaks[0] - r) / h0 == pytest.approx(vocab.RESTITUTION ** 2, rel=0.02)
    assert (peaks[1] - r) / (peaks[0] - r) == pytest.approx(vocab.RESTITUTION ** 2, rel=0.02)
    assert sum(e["type"] == "bounce" for e in traj.events) >= 3


def test_collisions_are_elastic():
    s = sample_scene(4, scenario="collision")
    traj = simulate(s)
    hit = next(e for e in traj.events if e["type"] == "collision")
    k = int(hit["t"] / DT)
    mass = np.array([(o.radius * COLLISION_RADIUS[o.shape]) ** 2 for o in s.objects])
    before = np.array([initial_velocity(o) for o in s.objects])
    after = (traj.fine_position[:, k + 20] - traj.fine_position[:, k + 10]) / (10 * DT)
    assert np.allclose((mass[:, None] * before).sum(0), (mass[:, None] * after).sum(0), atol=1e-6)
    energy = lambda v: float((mass * (v ** 2).sum(1)).sum())
    assert energy(after) == pytest.approx(energy(before), rel=1e-6)
    assert not np.allclose(before, after)


def test_object_permanence_behind_an_occluder():
    s = sample_scene(8, scenario="occlusion", duration=8.0)
    assert any(e["type"] == "occlusion" for e in simulate(s).events)
    clip = render(s, 128, 72, fps=8)
    back = next(i for i, o in enumerate(s.objects) if o.depth == 1)
    vis = clip.visible[back]
    hidden = torch.nonzero(vis < 0.5).flatten()
    assert len(hidden) > 0, "the sliding object never went behind the still one"
    first = int(hidden[0])
    assert vis[:first].max() > 0.95 and vis[first:].max() > 0.95  # seen before, hidden, seen again after


# --- renderer --------------------------------------------------------------------------------------------

def test_a_reversed_scene_renders_the_frames_backwards_and_names_the_opposite_directions():
    reversible = [(s, r) for s in (sample_scene(seed, aspect=16 / 9, duration=1.0) for seed in range(40))
                  if (r := reversed_scene(s)) is not None]
    assert 5 <= len(reversible) < 40
    for scene, back in reversible[:5]:
        forward = render(scene, 48, 27, fps=8, num_frames=9).frames
        assert torch.equal(render(back, 48, 27, fps=8, num_frames=9).frames, forward.flip(0))
        for o, b in zip(scene.objects, back.objects):
            assert b.direction == vocab.OPPOSITE.get(o.direction, o.direction)
            assert (b.shape, b.color, b.size, b.motion) == (o.shape, o.color, o.size, o.motion)
    slider = next((s, r) for s, r in reversible if any(o.direction in ("left", "right") for o in s.objects))
    words = [captions(scene)["medium"].split() for scene in slider]
    assert len(words[0]) == len(words[1]) and words[0] != words[1]     # the same sentence, other directions


def test_a_reshaped_scene_moves_the_same_with_other_shapes_and_never_a_held_out_composition():
    twins = [(s, r) for s in (sample_scene(seed, aspect=16 / 9, duration=1.0, split="train") for seed in range(60))
             if (r := reshaped_scene(s, random.Random(s.seed))) is not None]
    assert 20 <= len(twins) < 60                       # collisions and bounces depend on the shape: those are None
    for scene, twin in twins:
        for o, r in zip(scene.objects, twin.objects):
            assert r.shape != o.shape and (r.color, r.shape, r.motion) not in vocab.HELD_OUT
            assert r.motion != "spin" or r.shape in vocab.SPINNABLE
            assert replace(r, shape=o.shape) == o
        times = [0.0, 0.5, 1.0]
        assert np.allclose(simulate(scene).at(times).position, simulate(twin).at(times).position)
        assert captions(scene)["medium"] != captions(twin)["medium"]
    bouncer = Scene([WorldObject("square", "red", "small", "bounce", 0.8, 0.5, direction="left", speed="fast")],
                    duration=1.0)
    assert reshaped_scene(bouncer, random.Random(0)) is None    # no other shape has its radius: the floor differs


def test_only_time_symmetric_scenes_reverse():
    def scene(motion, camera="static", **kw):
        return Scene([WorldObject("ball", "red", "small", motion, 0.8, 0.5, **kw)], camera=camera, duration=1.0)
    assert reversed_scene(scene("slide", direction="left", speed="fast")) is not None
    assert reversed_scene(scene("slide", "pan left", direction="left", speed="fast")) is None   # the camera
    assert reversed_scene(scene("bounce", direction="left", speed="fast")) is None               # gravity
    assert reversed_scene(scene("grow", speed="fast")) is None              # growth starts from the object's size
    crash = Scene([WorldObject("ball", "red", "small", "slide", 0.4, 0.5, direction="right", speed="fast"),
                   WorldObject("ball", "blue", "small", "slide", 1.2, 0.5, direction="left", speed="fast")],
                  duration=1.0)
    assert reversed_scene(crash) is None                                    # a collision changes the speeds


def test_render_is_deterministic_with_shapes_and_dtype():
    s = sample_scene(21)
    a, b = render(s, 96, 54, fps=12, num_frames=5), render(s, 96, 54, fps=12, num_frames=5)
    assert a.frames.shape == (5, 54, 96, 3) and a.frames.dtype == torch.uint8
    assert torch.equal(a.frames, b.frames)


def test_edges_are_anti_aliased_and_ground_truth_matches_pixels():
    s = one(shape="ball", color="white", size="large", background="night", aspect=1.0, x=0.5, y=0.5)
    clip = render(s, 100, 100, num_frames=1)
    gray = clip.frames[0].float().mean(-1)
    lo, hi = gray.min(), gray.max()
    assert ((gray > lo + 10) & (gray < hi - 10)).sum() > 20  # partial-coverage pixels on the rim
    weight = (gray - lo) / (hi - lo)
    ys, xs = torch.meshgrid(torch.arange(100) + 0.5, torch.arange(100) + 0.5, indexing="ij")
    centroid = torch.stack([(weight * xs).sum(), (weight * ys).sum()]) / weight.sum()
    assert torch.allclose(centroid, clip.center[0, 0], atol=0.05)
    assert torch.allclose(clip.center[0, 0], torch.tensor([50.0, 50.0]))
    assert clip.visible[0, 0] == pytest.approx(1.0, abs=0.01)
    x0, y0, x1, y1 = clip.bbox[0, 0].tolist()
    assert (x1 - x0) == pytest.approx(32, abs=1) and (y1 - y0) == pytest.approx(32, abs=1)  # radius 0.16 of 100 px


def test_visible_fraction_at_the_frame_edge():
    s = one(shape="square", size="large", x=0.0, y=0.5, aspect=1.0)  # centred on the left edge: half out
    clip = render(s, 64, 64, num_frames=1)
    assert clip.visible[0, 0] == pytest.approx(0.5, abs=0.03)


def test_camera_pan_moves_the_background():
    s = one(background="checkerboard", camera="pan left", aspect=1.0, x=0.5, y=0.5)
    clip = render(s, 64, 64, fps=4, num_frames=5)
    assert not torch.equal(clip.frames[0], clip.frames[-1])
    assert clip.center[0, -1, 0] > clip.center[0, 0, 0]  # view moves left, so the object drifts right


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    s = sample_scene(2)
    cpu, gpu = render(s, 128, 72, num_frames=5), render(s, 128, 72, num_frames=5, device="cuda")
    assert (cpu.frames.int() - gpu.frames.int()).abs().max() <= 2
