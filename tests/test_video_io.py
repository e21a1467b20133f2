"""video_io: decoding real clips, resampling, windows, resizing, encoding round trips, previews, bad files."""

import io
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from straightline.errors import InvalidRequest, MediaError
from straightline.video_io import (
    Video,
    probe,
    read_image,
    read_video,
    resize_video,
    spritesheet,
    thumbnail,
    write_gif,
    write_image,
    write_video,
    write_webp,
)

MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"
needs_media = pytest.mark.skipif(not MEDIA.is_dir(), reason=f"shared test clips not found at {MEDIA}")


def smooth_clip(num_frames=8, height=48, width=64) -> torch.Tensor:
    """uint8 (T, H, W, 3): gradients that drift over time; smooth, so lossy codecs keep it close."""
    y, x = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    frames = [torch.stack([x, y, (x + y + t / num_frames) / 3], dim=-1) for t in range(num_frames)]
    return (torch.stack(frames) * 255).round().to(torch.uint8)


def mean_abs_error(a, b) -> float:
    return (torch.as_tensor(a).float() - torch.as_tensor(b).float()).abs().mean().item()


# ---------------------------------------------------------------- reading real clips


@needs_media
def test_read_gives_uint8_thwc_at_the_source_rate():
    video = read_video(MEDIA / "realshort.mp4", max_frames=5)
    assert isinstance(video, Video)
    assert video.frames.dtype == torch.uint8 and video.frames.shape == (5, 240, 320, 3)
    assert (video.num_frames, video.height, video.width) == (5, 240, 320)
    assert video.fps == pytest.approx(30.02, abs=0.01)
    assert video.issues == []


@needs_media
def test_probe_describes_without_decoding_everything():
    info = probe(MEDIA / "cockatoo.mp4")
    assert info == {"width": 1280, "height": 720, "fps": 20.0, "num_frames": 280, "seconds": 14.0, "codec": "h264"}


@needs_media
def test_fps_resampling_picks_the_nearest_frames():
    full = read_video(MEDIA / "realshort.mp4").frames  # 36 frames at 30.02 fps, 1.2 s
    every_third = read_video(MEDIA / "realshort.mp4", fps=10)
    assert every_third.fps == 10 and every_third.num_frames == 12
    assert torch.equal(every_third.frames, full[::3])
    doubled = read_video(MEDIA / "realshort.mp4", fps=60, duration=0.5)  # upsampling repeats frames
    source_fps = 45000 / 1499
    nearest = [min(range(36), key=lambda i: abs(i / source_fps - k / 60)) for k in range(30)]
    assert torch.equal(doubled.frames, full[nearest])


@needs_media
def test_resampled_window_of_a_long_clip_has_the_expected_count():
    video = read_video(MEDIA / "cockatoo.mp4", fps=10, start=5.0, duration=2.0, size=(64, 36))
    assert video.frames.shape == (20, 36, 64, 3)


@needs_media
def test_window_after_a_seek_matches_decoding_from_the_start():
    full = read_video(MEDIA / "carphone_pristine.mp4").frames  # 29.97 fps
    window = read_video(MEDIA / "carphone_pristine.mp4", start=2.5, duration=0.5)
    assert torch.equal(window.frames, full[75:90])  # frame 75 is the first at or after 2.5 s


@needs_media
def test_crop_letterbox_and_stretch_shapes_and_black_bars():
    source = MEDIA / "realshort.mp4"  # 4:3 into 16:9
    crop = read_video(source, max_frames=3, size=(64, 36), fit="crop").frames
    boxed = read_video(source, max_frames=3, size=(64, 36), fit="letterbox").frames
    stretched = read_video(source, max_frames=3, size=(64, 36), fit="stretch").frames
    assert crop.shape == boxed.shape == stretched.shape == (3, 36, 64, 3)
    # 320x240 scaled to fit 36 rows is 48x36, centred: 8 black columns on each side
    assert boxed[:, :, :8].max() == 0 and boxed[:, :, -8:].max() == 0
    assert boxed[:, :, 8:56].float().mean() > 20


@needs_media
def test_gif_reads_every_frame():
    video = read_video(MEDIA / "newtonscradle.gif")
    assert video.frames.shape == (36, 150, 200, 3)
    assert video.fps == 50


def test_still_image_is_a_one_frame_video(tmp_path):
    image = smooth_clip(1)[0]
    write_image(tmp_path / "still.png", image)
    video = read_video(tmp_path / "still.png", fps=24, duration=2.0)
    assert video.frames.shape == (1, 48, 64, 3)
    assert torch.equal(video.frames[0], image)  # png is lossless
    assert torch.equal(read_image(tmp_path / "still.png"), image)
    assert read_video(tmp_path / "still.png", size=(32, 32)).frames.shape == (1, 32, 32, 3)
    write_image(tmp_path / "still.jpg", image)
    assert mean_abs_error(read_image(tmp_path / "still.jpg"), image) < 3


def test_reads_bytes_and_file_objects(tmp_path):
    path = write_video(tmp_path / "clip.mp4", smooth_clip(), fps=8)
    data = path.read_bytes()
    assert read_video(data).frames.shape == (8, 48, 64, 3)
    assert read_video(io.BytesIO(data), max_frames=2).num_frames == 2
    assert probe(data)["num_frames"] == 8


def test_rotation_metadata_turns_frames_upright(tmp_path):
    # A phone-style file: stored landscape with a display matrix saying "rotate 90° counter-clockwise".
    frames = smooth_clip(2, height=32, width=48)
    with av.open(str(tmp_path / "rotated.mp4"), mode="w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        stream.set_display_rotation(90)
        for index, rgb in enumerate(frames.numpy()):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    video = read_video(tmp_path / "rotated.mp4")
    assert video.frames.shape == (2, 48, 32, 3)
    assert mean_abs_error(video.frames, torch.rot90(frames, 1, dims=(1, 2))) < 3
    assert (probe(tmp_path / "rotated.mp4")["width"], probe(tmp_path / "rotated.mp4")["height"]) == (32, 48)


# ---------------------------------------------------------------- resizing


def test_resize_video_keeps_flat_colour_and_accepts_numpy():
    flat = np.full((3, 30, 40, 3), 77, dtype=np.uint8)
    for fit in ("crop", "letterbox", "stretch"):
        resized = resize_video(flat, 20, 15, fit)  # same aspect ratio: no bars, no crop
        assert resized.shape == (3, 15, 20, 3) and resized.dtype == torch.uint8
        assert (resized == 77).all()
    assert resize_video(torch.from_numpy(flat), 8, 80, "crop").shape == (3, 80, 8, 3)


# ---------------------------------------------------------------- writing


def test_mp4_round_trip_is_browser_h264_and_close(tmp_path):
    frames = smooth_clip(12, 64, 96)
    path = write_video(tmp_path / "clip.mp4", frames, fps=12)
    with av.open(str(path)) as container:
        context = container.streams.video[0].codec_context
        assert (context.name, context.pix_fmt) == ("h264", "yuv420p")
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart: the index comes first
    video = read_video(path)
    assert video.frames.shape == frames.shape and video.fps == 12
    assert mean_abs_error(video.frames, frames) < 2.0


def test_odd_size_is_padded_to_even_by_edge_replication(tmp_path):
    frames = smooth_clip(4, height=17, width=33)
    video = read_video(write_video(tmp_path / "odd.mp4", frames, fps=8))
    assert video.frames.shape == (4, 18, 34, 3)
    assert mean_abs_error(video.frames[:, :17, :33], frames) < 4
    assert mean_abs_error(video.frames[:, :17, 33], frames[:, :, 32]) < 4  # the added column repeats the last


def test_gif_and_webp_are_animated(tmp_path):
    frames = smooth_clip(6)
    for path in (write_gif(tmp_path / "a.gif", frames, 10), write_video(tmp_path / "b.gif", frames, 10)):
        video = read_video(path)
        assert video.frames.shape == (6, 48, 64, 3) and video.fps == pytest.approx(10)
        assert mean_abs_error(video.frames, frames) < 6  # 256-colour palette
    for path in (write_webp(tmp_path / "a.webp", frames, 10), write_video(tmp_path / "b.webp", frames, 10)):
        video = read_video(path)
        assert video.frames.shape == (6, 48, 64, 3) and video.fps == pytest.approx(10)
        assert mean_abs_error(video.frames, frames) < 6


def test_writers_reject_bad_arguments(tmp_path):
    frames = smooth_clip(2)
    with pytest.raises(InvalidRequest, match="path"):
        write_video(tmp_path / "clip.avi", frames, 8)
    with pytest.raises(InvalidRequest, match="fps"):
        write_video(tmp_path / "clip.mp4", frames, -1)
    with pytest.raises(InvalidRequest, match="frames"):
        write_video(tmp_path / "clip.mp4", frames.float(), 8)
    with pytest.raises(InvalidRequest, match="fps"):
        write_gif(tmp_path / "fast.gif", frames, 60)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


# ---------------------------------------------------------------- previews


def test_thumbnail_is_the_middle_frame_keeping_aspect():
    frames = torch.arange(5, dtype=torch.uint8).mul(40).view(5, 1, 1, 1).expand(5, 90, 160, 3)
    thumb = thumbnail(frames, width=32)
    assert thumb.shape == (18, 32, 3) and (thumb == 80).all()
    assert thumbnail(frames, width=None).shape == (90, 160, 3)


def test_spritesheet_grid_of_evenly_spaced_frames():
    frames = torch.arange(16, dtype=torch.uint8).mul(10).view(16, 1, 1, 1).expand(16, 45, 80, 3).contiguous()
    sheet = spritesheet(frames, columns=4, rows=4, tile_width=40)
    assert sheet.shape == (4 * 22, 4 * 40, 3)
    tile_values = sheet[11::22, 20::40, 0].flatten()  # the centre pixel of each tile, reading order
    assert tile_values.tolist() == list(range(0, 160, 10))
    short = spritesheet(frames[:3], columns=2, rows=2, tile_width=40)
    assert short.shape == (44, 80, 3) and short[22:, 40:].max() == 0  # missing tiles stay black


# ---------------------------------------------------------------- bad input


def test_missing_empty_and_non_video_files_raise_media_error(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text_mp4 = tmp_path / "notes.mp4"
    text_mp4.write_text("these are notes, not a video\n" * 50)
    text_txt = tmp_path / "notes.txt"  # FFmpeg would render this as an 'ansi' video
    text_txt.write_text("these are notes, not a video\n" * 50)
    cases = {tmp_path / "missing.mp4": "not found", empty: "empty", tmp_path: "directory", text_mp4: "cannot be read",
             text_txt: "text file"}  # fmt: skip
    for path, reason in cases.items():
        with pytest.raises(MediaError, match=reason) as caught:
            read_video(path)
        assert caught.value.path == str(path)
        with pytest.raises(MediaError):
            probe(path)
    with pytest.raises(MediaError, match="cannot be read as an image"):
        read_image(text_txt)
    with pytest.raises(MediaError, match="no data"):
        read_video(b"")


@needs_media
def test_truncated_clip_raises_media_error(tmp_path):
    data = (MEDIA / "realshort.mp4").read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) * 3 // 10])  # the index (moov) is at the end: it is cut off
    with pytest.raises(MediaError, match="truncated"):
        read_video(truncated)


def test_truncated_faststart_file_gives_the_good_part_or_media_error(tmp_path):
    data = write_video(tmp_path / "clip.mp4", smooth_clip(24), fps=8).read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) * 6 // 10])  # index intact, frame data cut short
    try:
        video = read_video(truncated)
    except MediaError:
        return
    assert 0 < video.num_frames < 24 and any("truncated" in issue for issue in video.issues)


@needs_media
def test_garbage_in_the_middle_decodes_the_good_part_or_raises_media_error(tmp_path):
    data = bytearray((MEDIA / "realshort.mp4").read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4000] = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(bytes(data))
    try:
        video = read_video(corrupt, size=(64, 48))
    except MediaError:
        return
    assert video.num_frames > 0 and video.frames.shape[1:] == (48, 64, 3)


@needs_media
def test_window_past_the_end_raises_media_error():
    with pytest.raises(MediaError, match="no frames in the requested window"):
        read_video(MEDIA / "realshort.mp4", start=5.0)


def test_bad_arguments_raise_invalid_request(tmp_path):
    path = write_video(tmp_path / "clip.mp4", smooth_clip(2), fps=8)
    bad = [{"fps": -1.0}, {"fps": float("nan")}, {"start": -0.5}, {"duration": 0}, {"max_frames": 0},
           {"size": (0, 10)}, {"size": (64,)}, {"fit": "zoom"}]  # fmt: skip
    for kwargs in bad:
        with pytest.raises(InvalidRequest, match=next(iter(kwargs))):
            read_video(path, **kwargs)
    with pytest.raises(InvalidRequest, match="fit"):
        resize_video(smooth_clip(1), 8, 8, "zoom")
