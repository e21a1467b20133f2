"""Perception reads videos back into objects: known answers on sampled scenes (clean and degraded), empty and
single-object clips, motion words, input errors. Renders are small (short side 90 px, 9 frames over 4 s);
benchmarks/bench_perception.py measures the same at scale."""

import io

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from straightline.world import Scene, WorldObject, render, sample_scene, vocab
from straightline.world.perception import identify_background, motion_of, perceive

SHORT, FRAMES = 90, 9


def blur(frames, sigma):
    half = int(3 * sigma)
    x = torch.arange(-half, half + 1).float()
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = (g / g.sum()).repeat(3, 1)
    img = F.pad(frames.permute(0, 3, 1, 2).float(), (half,) * 4, mode="replicate")
    img = F.conv2d(F.conv2d(img, g[:, None, None, :], groups=3), g[:, None, :, None], groups=3)
    return img.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def noise(frames, sigma):
    gen = torch.Generator().manual_seed(0)
    return (frames.float() + torch.randn(frames.shape, generator=gen) * sigma).round().clamp(0, 255).to(torch.uint8)


def h264(frames, crf):
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=8, options={"crf": str(crf)})
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames.numpy():
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    buffer.seek(0)
    with av.open(buffer) as container:
        return torch.from_numpy(np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]))


def sampled_clip(seed):
    aspect = (16 / 9, 9 / 16, 1.0)[seed % 3]
    scene = sample_scene(seed, aspect=aspect)
    long_side = round(SHORT * max(aspect, 1 / aspect) / 2) * 2
    w, h = (long_side, SHORT) if aspect >= 1 else (SHORT, long_side)
    return render(scene, w, h, fps=(FRAMES - 1) / scene.duration, num_frames=FRAMES)


def accuracy(clips, degrade=lambda f: f) -> dict:
    """Rates of right colour / shape / size over objects fully visible in >= 2 frames, right counts over
    clips (every such object found, no colour the scene lacks) and the mean centre error in px."""
    right = {"color": 0, "shape": 0, "size": 0}
    objects, counts, errors = 0, 0, []
    for clip in clips:
        tracks = {t.color: t for t in perceive(degrade(clip.frames))}
        found = 0
        for i, o in enumerate(clip.scene.objects):
            full = clip.visible[i] >= 0.99
            if full.sum() < 2:
                continue
            objects += 1
            t = tracks.get(o.color)
            if t is not None:
                found += 1
                right["color"] += 1
                right["shape"] += t.shape == o.shape
                right["size"] += t.size == o.size
                seen = full & t.present
                errors += (t.center[seen] - clip.center[i, seen]).norm(dim=-1).tolist()
        visible = sum(int((v >= 0.99).sum() >= 2) for v in clip.visible)
        counts += found == visible and set(tracks) <= {o.color for o in clip.scene.objects}
    return {**{k: v / objects for k, v in right.items()}, "count": counts / len(clips),
            "center_px": sum(errors) / len(errors)}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Planes this small gain nothing from intra-op threads, and on a shared 2-core machine they lose ~30x.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def clips():
    return [sampled_clip(seed) for seed in range(150)]


def test_clean_renders_read_back_exactly(clips):
    acc = accuracy(clips)
    assert acc["color"] >= 0.99 and acc["shape"] >= 0.99 and acc["size"] >= 0.99 and acc["count"] >= 0.99, acc
    assert acc["center_px"] < 0.3, acc


def test_degraded_renders_degrade_gracefully(clips):
    some = clips[:36]
    clean = accuracy(some)
    for name, degrade, floor in (("blur 1", lambda f: blur(f, 1.0), 0.95), ("noise 8", lambda f: noise(f, 8.0), 0.95),
                                 ("h264 crf 30", lambda f: h264(f, 30), 0.9), ("blur 2", lambda f: blur(f, 2.0), 0.65)):
        acc = accuracy(some, degrade)
        for key in ("color", "shape", "size", "count"):
            assert floor <= acc[key] <= clean[key] + 0.02, (name, key, acc, clean)
        assert acc["center_px"] < 1.0, (name, acc)


def test_empty_backgrounds_give_no_tracks_and_are_named():
    far_away = WorldObject(shape="ball", color="red", size="small", motion="still", x=-10.0, y=-10.0)
    for name in vocab.BACKGROUNDS:   # a scene needs an object, so this one stays out of view
        clip = render(Scene(objects=[far_away], background=name, camera="pan right"), 160, 90, fps=2, num_frames=5)
        assert perceive(clip.frames) == [], name
        assert identify_background(clip.frames) == name


@pytest.mark.parametrize("shape", vocab.SHAPES)
def test_one_object_gives_one_track(shape):
    colors = list(vocab.COLORS)
    color = colors[vocab.SHAPES.index(shape) * 2 % len(colors)]
    obj = WorldObject(shape=shape, color=color, size="medium", motion="slide", direction="right", speed="fast",
                      x=0.6, y=0.5, angle=0.3)
    clip = render(Scene(objects=[obj], background="sand" if color == "black" else "night"), 160, 90, fps=4,
                  num_frames=9)
    (track,) = perceive(clip.frames.numpy())                     # numpy input works too
    assert (track.color, track.shape, track.size) == (color, shape, "medium")
    assert track.present.all() and track.center.shape == (9, 2) and track.bbox.shape == (9, 4)
    assert (track.center - clip.center[0]).norm(dim=-1).max() < 0.5
    assert all(0.5 <= c <= 1 for c in track.confidence.values())
    (still,) = perceive(clip.frames[:1])                         # an image is a 1-frame video
    assert (still.color, still.shape, still.size) == (color, shape, "medium")


@pytest.mark.parametrize("motion, kw, words", [
    ("slide", dict(direction="up-left", speed="fast"), ("slide", "up-left", "fast")),
    ("orbit", dict(direction="clockwise", speed="fast", orbit_center=(0.8, 0.5), x=1.0),
     ("orbit", "clockwise", "fast")),
    ("bounce", dict(direction="left", speed="medium", y=0.8), ("bounce", "left", "medium")),
    ("shrink", dict(speed="fast"), ("shrink", None, "fast")),
    ("spin", dict(direction="counterclockwise", speed="slow"), ("spin", "counterclockwise", "slow")),
    ("grow", dict(speed="medium"), ("grow", None, "medium")),
    ("fall", dict(y=0.8), ("fall", None, None)),
    ("still", {}, ("still", None, None)),
])
def test_motion_words(motion, kw, words):
    kw = {"x": 0.9, "y": 0.5, **kw}
    obj = WorldObject(shape="square", color="orange", size="medium", motion=motion, **kw)
    clip = render(Scene(objects=[obj], background="slate"), 160, 90, fps=24, num_frames=25)
    (track,) = perceive(clip.frames)
    m = motion_of(track, fps=24, frame_short_side=90)
    assert (m["motion"], m["direction"], m["speed"]) == words


def test_bad_input_names_the_field():
    with pytest.raises(ValueError, match="frames"):
        perceive(torch.zeros(3, 16, 16, 3))
    with pytest.raises(ValueError, match="frames"):
        perceive(np.zeros((16, 16, 3), dtype=np.uint8))
