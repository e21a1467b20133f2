"""Video and image I/O: decode, resize, encode, previews. The only module that touches FFmpeg (via PyAV).

Frames are uint8 RGB arrays of shape (T, H, W, 3) everywhere in this module; one image is (H, W, 3).

- read_video / probe / read_image: FFmpeg decodes videos and GIFs, Pillow decodes still images
  (png, jpg, webp, bmp, tiff; animated WebP/PNG too). Sources are paths, bytes or binary file objects.
- resize_video: antialiased resize to width × height by cropping, letterboxing or stretching.
- write_video / write_gif / write_webp / write_image: H.264 mp4 that browsers play, animated GIF/WebP, stills.
- thumbnail / spritesheet: previews for the service's `thumbnail` and `spritesheet` variants.

A problem with a file (missing, empty, truncated, corrupt, not a video) raises MediaError(path, reason);
a bad argument raises InvalidRequest(field, value, allowed). No FFmpeg or Pillow exception leaks out.
"""

from __future__ import annotations

import io
import math
import os
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, ImageSequence

from straightline.errors import InvalidRequest, MediaError

FITS = ("crop", "letterbox", "stretch")
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov")  # what write_video encodes as H.264; .gif and .webp go to Pillow

# Leading bytes of the still-image formats Pillow decodes. GIF is left to FFmpeg, which reads its frame timing.
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"II*\x00", b"MM\x00*")
# FFmpeg renders plain text files as "video" (the tty demuxer); such a file is not a video for us.
_TEXT_ART_CODECS = {"ansi", "bintext", "xbin", "idf"}
# Guards that bound the work spent on a damaged file, so a broken file ends in a result or an error, never a hang.
_READ_TIMEOUT_S = 20.0  # one packet read from a local file never takes this long unless the demuxer is stuck
_MAX_BAD_PACKETS = 64  # corrupt packets skipped before giving up on the rest of the file
_MAX_EMPTY_RUN = 1024  # consecutive packets that yield no frame; real decoders lag by a few dozen at most
_SEEK_MIN_S = 2.0  # below this, decoding from the start costs less than a seek plus a keyframe decode
_TIME_EPS = 1e-3  # containers round timestamps (mkv/webm to 1 ms): treat times this close as equal
_FALLBACK_FPS = 25.0  # FFmpeg's own assumption for a stream that states no frame rate
_CHUNK_BYTES = 64 << 20  # frames are resized in chunks of about this many input bytes to bound memory


@dataclass
class Video:
    """Decoded frames and their rate.

    frames: uint8 (T, H, W, 3) RGB.
    fps: frames per second of `frames` (the requested rate when resampled, else the source's average rate).
    path: where it was read from, if anywhere.
    issues: problems met while decoding a damaged file (corrupt packets skipped, data ending early);
        empty for a clean file. The frames are the part that decoded.
    """

    frames: torch.Tensor
    fps: float
    path: str | None = None
    issues: list[str] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return self.frames.shape[0]

    @property
    def height(self) -> int:
        return self.frames.shape[1]

    @property
    def width(self) -> int:
        return self.frames.shape[2]

    @property
    def seconds(self) -> float:
        return self.num_frames / self.fps


# ----------------------------------------------------------------------------------------------------------
# Argument checks (InvalidRequest) and sources
# ----------------------------------------------------------------------------------------------------------


def _check_positive(name: str, value, *, integer: bool = False, optional: bool = True):
    if value is None and optional:
        return
    kind = "an integer >= 1" if integer else "a finite number > 0"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or not math.isfinite(value) or value <= 0:
        raise InvalidRequest(name, value, kind + (" or None" if optional else ""))


def _check_size(name: str, size) -> tuple[int, int]:
    ok = (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size)
    )
    if not ok:
        raise InvalidRequest(name, size, "(width, height), two integers >= 1")
    return int(size[0]), int(size[1])


def _check_fit(fit: str):
    if fit not in FITS:
        raise InvalidRequest("fit", fit, " | ".join(FITS))


def _as_frames(frames, name: str = "frames") -> torch.Tensor:
    """A uint8 (T, H, W, 3) tensor from a tensor or numpy array (shares memory when it can)."""
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    if not (
        isinstance(frames, torch.Tensor)
        and frames.dtype == torch.uint8
        and frames.ndim == 4
        and frames.shape[-1] == 3
        and min(frames.shape) >= 1
    ):
        shown = f"{getattr(frames, 'dtype', type(frames).__name__)} of shape {tuple(getattr(frames, 'shape', ()))}"
        raise InvalidRequest(name, shown, "uint8 (T, H, W, 3) RGB with T, H, W >= 1")
    return frames


def _as_image(frame, name: str = "frame") -> torch.Tensor:
    """A uint8 (H, W, 3) tensor from a tensor or numpy array."""
    if isinstance(frame, (np.ndarray, torch.Tensor)) and frame.ndim == 3:
        return _as_frames(frame[None], name)[0]
    shown = f"{getattr(frame, 'dtype', type(frame).__name__)} of shape {tuple(getattr(frame, 'shape', ()))}"
    raise InvalidRequest(name, shown, "uint8 (H, W, 3) RGB")


def _resolve_source(source) -> tuple[str, str | io.IOBase]:
    """(name for messages, something av.open and Image.open accept). Missing or empty files fail here."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise MediaError("<bytes>", "no data (0 bytes)")
        return "<bytes>", io.BytesIO(bytes(source))
    if hasattr(source, "read"):
        name = str(getattr(source, "name", "<stream>"))
        # Sniffing the format and FFmpeg's probing both read ahead and rewind, so a pipe is read into memory.
        return name, source if source.seekable() else io.BytesIO(source.read())
    if not isinstance(source, (str, os.PathLike)):
        raise InvalidRequest("path", type(source).__name__, "a file path, bytes or a binary file object")
    path = Path(source)
    if not path.exists():
        raise MediaError(path, "file not found")
    if not path.is_file():
        raise MediaError(path, "is a directory, not a file" if path.is_dir() else "is not a regular file")
    if path.stat().st_size == 0:
        raise MediaError(path, "file is empty (0 bytes)")
    return str(path), str(path)


def _is_still_image(name: str, handle) -> bool:
    """Whether the data starts like a format that Pillow (not FFmpeg) should decode."""
    if isinstance(handle, str):
        try:
            with open(handle, "rb") as f:
                head = f.read(16)
        except OSError as err:
            raise MediaError(name, f"cannot be opened ({err.strerror})") from err
    else:
        position = handle.tell()
        head = handle.read(16)
        handle.seek(position)
    is_webp = head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    return is_webp or head.startswith(_IMAGE_MAGIC)


# ----------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------


def read_video(
    path,
    *,
    fps: float | None = None,
    start: float = 0.0,
    duration: float | None = None,
    max_frames: int | None = None,
    size: tuple[int, int] | None = None,
    fit: str = "crop",
) -> Video:
    """Decode a video (anything FFmpeg reads: mp4, mov, webm, mkv, avi, GIF, ...) or an image into frames.

    Args:
        path: a file path, bytes, or a binary file object.
        fps: resample to this rate by showing, at each output time start + k / fps, the decoded frame nearest
            to it (frames repeat when upsampling, drop when downsampling). None keeps every source frame.
        start, duration: the time window in seconds, [start, start + duration); None runs to the end.
        max_frames: stop after this many output frames.
        size: (width, height) to resize to with `fit` (see resize_video); None keeps the source size.
        fit: "crop" | "letterbox" | "stretch".

    Returns:
        Video with frames uint8 (T, H, W, 3) RGB. Rotation metadata (phone videos) is applied; the pixel
        aspect ratio is not. A still image is a 1-frame video whatever the window; its fps is `fps` or 1.

    Only what is needed is decoded: a large `start` seeks to the keyframe before it, and decoding stops once
    the window or `max_frames` is filled. A damaged file gives the frames that decode, with `Video.issues`
    saying what was skipped, or MediaError when nothing in the window decodes.
    """
    _check_positive("fps", fps)
    _check_positive("duration", duration)
    _check_positive("max_frames", max_frames, integer=True)
    if isinstance(start, bool) or not isinstance(start, (int, float)) or not math.isfinite(start) or start < 0:
        raise InvalidRequest("start", start, "a finite number of seconds >= 0")
    if size is not None:
        size = _check_size("size", size)
    _check_fit(fit)

    name, handle = _resolve_source(path)
    end = math.inf if duration is None else start + duration
    if _is_still_image(name, handle):
        image = _decode_image(name, handle)
        if len(image.frames) == 1:  # a still is a 1-frame video whatever the window and rate
            return Video(_stack_and_resize(iter(image.frames), size, fit), float(fps or 1.0), _path_or_none(path))
        timed = zip(image.times, image.frames)
        frames = _stack_and_resize(_selected_frames(timed, start, end, fps, max_frames, image.fps), size, fit)
        if frames is None:
            raise MediaError(name, _empty_window_reason(start, image.times[-1], []))
        return Video(frames, float(fps or image.fps), _path_or_none(path))

    with _open_video(name, handle) as (container, stream):
        source_fps = _stream_fps(stream)
        log = _DecodeLog()
        timed = _decoded_frames(container, stream, start, source_fps, log)
        selected = _selected_frames(timed, start, end, fps, max_frames, source_fps)
        frames = _stack_and_resize(_rgb_arrays(selected), size, fit)
    if frames is None:
        if log.frames == 0:
            raise MediaError(name, "contains no decodable video frames" + _issues_suffix(log.issues))
        raise MediaError(name, _empty_window_reason(start, log.last_time, log.issues))
    return Video(frames, float(fps or source_fps), _path_or_none(path), log.issues)


def probe(path) -> dict:
    """Describe a video or image without decoding all of it (one frame is decoded to prove it readable).

    Returns:
        {"width", "height", "fps", "num_frames", "seconds", "codec"}: display size after rotation; the
        container's average rate (None for a still image); the frame count, estimated from the duration
        when the container does not store it; the duration in seconds (None if unknown); the codec name.
    """
    name, handle = _resolve_source(path)
    if _is_still_image(name, handle):
        image = _decode_image(name, handle)
        height, width = image.frames[0].shape[:2]
        animated = len(image.frames) > 1
        return {
            "width": width,
            "height": height,
            "fps": image.fps if animated else None,
            "num_frames": len(image.frames),
            "seconds": len(image.frames) / image.fps if animated else 0.0,
            "codec": image.format,
        }
    with _open_video(name, handle) as (container, stream):
        source_fps = _stream_fps(stream)
        log = _DecodeLog()
        first = next(_decoded_frames(container, stream, 0.0, source_fps, log), None)
        if first is None:
            raise MediaError(name, "contains no decodable video frames" + _issues_suffix(log.issues))
        frame = first[1]
        quarter_turned = round(frame.rotation / 90) % 2 == 1
        width, height = (frame.height, frame.width) if quarter_turned else (frame.width, frame.height)
        if stream.duration is not None:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            seconds = container.duration / av.time_base
        else:
            seconds = None
        num_frames = stream.frames or (round(seconds * source_fps) if seconds else None)
        return {
            "width": width,
            "height": height,
            "fps": source_fps,
            "num_frames": num_frames,
            "seconds": seconds,
            "codec": stream.codec_context.name,
        }


def read_image(path) -> torch.Tensor:
    """Decode one image (png, jpg, webp, bmp, tiff, ...; the first frame of an animation).

    EXIF orientation is applied and transparency is composited over black (the letterbox colour).

    Returns:
        uint8 (H, W, 3) RGB.
    """
    name, handle = _resolve_source(path)
    return torch.from_numpy(_decode_image(name, handle, first_only=True).frames[0])


@dataclass
class _DecodeLog:
    frames: int = 0  # frames decoded so far (before window selection)
    last_time: float = 0.0  # timestamp of the last decoded frame, seconds
    issues: list[str] = field(default_factory=list)


def _path_or_none(path) -> str | None:
    return str(path) if isinstance(path, (str, os.PathLike)) else None


def _issues_suffix(issues: list[str]) -> str:
    return f" ({'; '.join(issues)})" if issues else ""


def _empty_window_reason(start: float, last_time: float, issues: list[str]) -> str:
    return (
        f"no frames in the requested window starting at {start:g} s; "
        f"the last decodable frame is at {last_time:.3f} s" + _issues_suffix(issues)
    )


@contextmanager
def _open_video(name: str, handle):
    """Open with PyAV and yield (container, first video stream); FFmpeg errors become MediaError."""
    try:
        container = av.open(handle, timeout=(_READ_TIMEOUT_S, _READ_TIMEOUT_S))
    except (av.FFmpegError, UnicodeDecodeError) as err:
        reason = (
            f"cannot be read as a video or image ({_ffmpeg_message(err)}); "
            "it may be truncated, corrupt or not a media file"
        )
        raise MediaError(name, reason) from err
    with container:
        if not container.streams.video:
            raise MediaError(name, f"has no video stream (format {container.format.name})")
        stream = container.streams.video[0]
        if stream.codec_context is None:  # FFmpeg has no decoder for the codec the file names
            raise MediaError(name, "has a video stream in an unknown codec; the file may be corrupt")
        if stream.codec_context.name in _TEXT_ART_CODECS:
            raise MediaError(name, "is a text file, not a video")
        stream.thread_type = "AUTO"  # frame + slice threads; PyAV's default decodes on one core
        yield container, stream


def _ffmpeg_message(err: Exception) -> str:
    return getattr(err, "strerror", None) or str(err)


def _stream_fps(stream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and rate > 0:
            return float(rate)
    return _FALLBACK_FPS


def _decoded_frames(container, stream, start: float, source_fps: float, log: _DecodeLog):
    """Yield (seconds since stream start, av.VideoFrame) in presentation order, from about `start` on.

    Seeks to the keyframe before `start` when that saves work. Corrupt packets are skipped and a read
    error ends the stream; both are noted in `log.issues`. Bounded by the guards above, so it always ends.
    """
    origin = stream.start_time or 0  # in stream.time_base; mkv/webm and edited mp4s may not start at 0
    if start > _SEEK_MIN_S:
        try:
            container.seek(origin + int(start / stream.time_base), stream=stream, backward=True)
        except av.FFmpegError:
            pass  # not seekable (some GIFs, raw streams): decoding from the start is still correct
    landed_late = start > _SEEK_MIN_S  # checked on the first frame: a bad index can seek past `start`
    for frame in _demux_decode(container, stream, log):
        if frame.pts is None:  # some AVI/raw streams carry no timestamps: assume a steady rate
            time = log.last_time + 1 / source_fps if log.frames else 0.0
        else:
            time = float((frame.pts - origin) * stream.time_base)
        if landed_late and time > start + _TIME_EPS:
            try:
                container.seek(origin, stream=stream, backward=True)
            except av.FFmpegError as err:
                log.issues.append(f"seeking landed after the window and cannot go back: {_ffmpeg_message(err)}")
                return
            yield from _decoded_frames(container, stream, 0.0, source_fps, log)
            return
        landed_late = False
        log.frames += 1
        log.last_time = time
        yield time, frame
    # Reached the end of the data. A file cut short often still has a complete index (faststart mp4),
    # so compare with the frame count it states; a few frames of slack for edit lists that trim some.
    expected = stream.frames
    if start <= _SEEK_MIN_S and expected and log.frames < expected - 2:
        log.issues.append(f"data ends after {log.frames} of {expected} frames; the file may be truncated")


def _demux_decode(container, stream, log: _DecodeLog):
    """Yield av.VideoFrames, skipping packets that fail to decode; stop at the end of readable data."""
    packets = container.demux(stream)
    bad_packets = empty_run = 0
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.FFmpegError as err:
            log.issues.append(f"reading stopped after {log.frames} frames: {_ffmpeg_message(err)}")
            return
        try:
            frames = packet.decode()
        except av.FFmpegError as err:
            if bad_packets == 0:
                log.issues.append("")
            bad_packets += 1
            log.issues[-1] = f"skipped {bad_packets} corrupt packet(s), the last: {_ffmpeg_message(err)}"
            if bad_packets > _MAX_BAD_PACKETS:
                log.issues.append(f"gave up after {bad_packets} corrupt packets")
                return
            continue
        empty_run = 0 if frames else empty_run + 1
        if empty_run > _MAX_EMPTY_RUN:
            log.issues.append(f"decoder produced no frames for {empty_run} packets")
            return
        yield from frames


def _selected_frames(timed, start: float, end: float, fps: float | None, max_frames: int | None, source_fps: float):
    """Pick the frames of the output clip from (time, frame) pairs in time order.

    fps=None: every frame with start <= time < end. Otherwise output frame k shows time start + k / fps
    and takes the frame nearest to it (ties go to the earlier frame); a frame is shown until the next
    one's time, the last one for 1 / source_fps.
    """
    limit = math.inf if max_frames is None else max_frames
    count = 0
    if fps is None:
        for time, frame in timed:
            if time < start - _TIME_EPS:
                continue
            if time >= end - _TIME_EPS or count >= limit:
                return
            count += 1
            yield frame
        return
    previous = None  # (time, frame)
    for time, frame in timed:
        if previous is not None:
            midpoint = (previous[0] + time) / 2
            while (target := start + count / fps) <= midpoint and target < end - _TIME_EPS and count < limit:
                count += 1
                yield previous[1]
        if start + count / fps >= end - _TIME_EPS or count >= limit:
            return
        previous = (time, frame)
    if previous is not None:
        stream_end = previous[0] + 1 / source_fps
        while (target := start + count / fps) < min(end, stream_end) - _TIME_EPS and count < limit:
            count += 1
            yield previous[1]


def _frame_to_rgb(frame, width: int | None = None, height: int | None = None) -> np.ndarray:
    """uint8 (H, W, 3) from a decoded av.VideoFrame (scaled to width × height if given), turned upright."""
    rgb = frame.to_ndarray(format="rgb24", width=width, height=height)
    quarter_turns = round(frame.rotation / 90) % 4  # counter-clockwise, as FFmpeg's display matrix says
    return np.rot90(rgb, quarter_turns) if quarter_turns else rgb


def _rgb_arrays(frames):
    """Convert av.VideoFrames to uint8 (H, W, 3); a frame repeated by upsampling is converted once.

    mkv/webm streams may change size mid-stream; every frame is scaled to the first one's size.
    """
    last_frame = rgb = first_size = None
    for frame in frames:
        if frame is not last_frame:
            first_size = first_size or (frame.width, frame.height)
            last_frame, rgb = frame, _frame_to_rgb(frame, *first_size)
        yield rgb


def _stack_and_resize(arrays, size: tuple[int, int] | None, fit: str) -> torch.Tensor | None:
    """Stack (H, W, 3) arrays into (T, H, W, 3), resizing chunk by chunk so full-size frames never pile up."""
    chunks, pending, pending_bytes = [], [], 0
    for rgb in arrays:
        pending.append(rgb)
        pending_bytes += rgb.nbytes
        if size is not None and pending_bytes >= _CHUNK_BYTES:
            chunks.append(resize_video(torch.from_numpy(np.stack(pending)), *size, fit))
            pending, pending_bytes = [], 0
    if pending:
        chunk = torch.from_numpy(np.stack(pending))
        chunks.append(chunk if size is None else resize_video(chunk, *size, fit))
    if not chunks:
        return None
    return chunks[0] if len(chunks) == 1 else torch.cat(chunks)


@dataclass
class _ImageFrames:
    frames: list[np.ndarray]  # uint8 (H, W, 3) each
    times: list[float]  # when each frame starts, seconds
    fps: float  # average rate of an animation
    format: str  # Pillow's format name, lower case


def _decode_image(name: str, handle, first_only: bool = False) -> _ImageFrames:
    """Decode an image (every frame of an animation) with Pillow; MediaError if it cannot be read."""
    frames, times, time = [], [], 0.0
    try:
        with Image.open(handle) as image:
            image_format = (image.format or "image").lower()
            for page in ImageSequence.Iterator(image):
                frames.append(_pil_to_rgb(ImageOps.exif_transpose(page)))
                times.append(time)
                time += page.info.get("duration", 0) / 1000
                if first_only:
                    break
    # Pillow's format plugins raise many types on bad data (OSError, SyntaxError, struct.error, ...).
    except Exception as err:  # noqa: BLE001 - any failure to decode untrusted data is a media problem
        raise MediaError(name, f"cannot be read as an image ({err})") from err
    finally:
        if not isinstance(handle, str):
            handle.seek(0)
    return _ImageFrames(frames, times, len(frames) / time if time > 0 else _FALLBACK_FPS, image_format)


def _pil_to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        image = image.convert("RGBA")
        black = Image.new("RGBA", image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(black, image)
    return np.asarray(image.convert("RGB")).copy()


# ----------------------------------------------------------------------------------------------------------
# Resizing
# ----------------------------------------------------------------------------------------------------------


def resize_video(frames: torch.Tensor, width: int, height: int, fit: str = "crop") -> torch.Tensor:
    """Resize frames to width × height.

    fit="crop": scale to cover the target, then cut the centre. fit="letterbox": scale to fit inside, then
    pad with black bars. fit="stretch": scale each axis on its own (changes the aspect ratio).

    Antialiased bicubic on uint8 (torch's fast path for channels-last uint8), done in chunks of frames so
    memory stays bounded. Returns `frames` itself when nothing changes.

    Args:
        frames: uint8 (T, H, W, 3), tensor or numpy array.
    Returns:
        uint8 (T, height, width, 3).
    """
    frames = _as_frames(frames)
    width, height = _check_size("size", (width, height))
    _check_fit(fit)
    _, src_h, src_w, _ = frames.shape
    if fit == "crop":
        # Crop the source region with the target's aspect ratio first, then resize: same result as
        # scale-then-crop, but fewer pixels go through the filter.
        scale = max(width / src_w, height / src_h)
        crop_w = min(src_w, max(1, round(width / scale)))
        crop_h = min(src_h, max(1, round(height / scale)))
        left, top = (src_w - crop_w) // 2, (src_h - crop_h) // 2
        return _resize_exact(frames[:, top : top + crop_h, left : left + crop_w], width, height)
    if fit == "letterbox":
        scale = min(width / src_w, height / src_h)
        inner_w, inner_h = max(1, round(src_w * scale)), max(1, round(src_h * scale))
        inner = _resize_exact(frames, inner_w, inner_h)
        if (inner_w, inner_h) == (width, height):
            return inner
        boxed = torch.zeros(frames.shape[0], height, width, 3, dtype=torch.uint8)
        left, top = (width - inner_w) // 2, (height - inner_h) // 2
        boxed[:, top : top + inner_h, left : left + inner_w] = inner
        return boxed
    return _resize_exact(frames, width, height)


def _resize_exact(frames: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """(T, H, W, 3) -> (T, height, width, 3), antialiased bicubic, chunked over T."""
    num_frames, src_h, src_w, _ = frames.shape
    if (src_w, src_h) == (width, height):
        return frames
    out = torch.empty(num_frames, height, width, 3, dtype=torch.uint8)
    chunk = max(1, _CHUNK_BYTES // (src_h * src_w * 3))
    for i in range(0, num_frames, chunk):
        # (t, H, W, 3) -> (t, 3, H, W) as a view: it is channels-last in memory, which the uint8 kernel wants
        channels_first = frames[i : i + chunk].permute(0, 3, 1, 2)
        resized = F.interpolate(channels_first, size=(height, width), mode="bicubic", antialias=True)
        out[i : i + chunk] = resized.permute(0, 2, 3, 1)
    return out


# ----------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------


def write_video(path, frames, fps: float, *, crf: int = 18) -> Path:
    """Write frames to a file browsers play, chosen by the suffix: .mp4/.m4v/.mov (H.264), .gif, .webp.

    H.264 is libx264 at constant quality `crf` (0 lossless … 51 worst; 18 looks lossless), yuv420p with
    BT.709 colour tags and "+faststart" (the index goes first so playback starts before the download ends).
    yuv420p needs even sizes: an odd width or height is padded by one pixel that repeats the last column or
    row, so the file may be one pixel wider/taller than `frames`.
    The file appears complete or not at all (written to a temporary name, then renamed).

    Args:
        frames: uint8 (T, H, W, 3) RGB, tensor or numpy array.
        fps: frames per second.
    Returns:
        The path written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".gif":
        return write_gif(path, frames, fps)
    if suffix == ".webp":
        return write_webp(path, frames, fps)
    if suffix not in VIDEO_SUFFIXES:
        allowed = ", ".join(VIDEO_SUFFIXES + (".gif", ".webp"))
        raise InvalidRequest("path", str(path), f"a file name ending in {allowed}")
    frames = _as_frames(frames)
    _check_positive("fps", fps, optional=False)
    if isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= 51:
        raise InvalidRequest("crf", crf, "an integer from 0 (lossless) to 51")
    frames = _pad_to_even(frames)
    with _atomic(path) as partial:
        _encode_h264(partial, "mov" if suffix == ".mov" else "mp4", frames, fps, crf)
    return path


def _pad_to_even(frames: torch.Tensor) -> torch.Tensor:
    if frames.shape[1] % 2:
        frames = torch.cat([frames, frames[:, -1:]], dim=1)
    if frames.shape[2] % 2:
        frames = torch.cat([frames, frames[:, :, -1:]], dim=2)
    return frames


def _encode_h264(path: Path, container_format: str, frames: torch.Tensor, fps: float, crf: int):
    # Browsers and players guess the colour matrix of untagged video differently, so convert with BT.709
    # and say so in the stream (1 is BT.709 in FFmpeg's colorspace, primaries and transfer enums).
    bt709 = av.video.reformatter.Colorspace.ITU709
    tv_range = av.video.reformatter.ColorRange.MPEG
    # Fractions keep NTSC rates exact: 29.97 -> 2997/100, 30000/1001 given as a float -> 30000/1001.
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w", format=container_format, options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": str(crf)}
        context = stream.codec_context
        context.colorspace = context.color_primaries = context.color_trc = 1
        context.color_range = int(tv_range)
        for index, rgb in enumerate(frames.numpy()):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame = frame.reformat(format="yuv420p", dst_colorspace=bt709, dst_color_range=tv_range)
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))  # flush the encoder's delayed frames


def write_gif(path, frames, fps: float) -> Path:
    """Write an animated, looping GIF (256 colours per frame).

    GIF stores frame delays in 1/100 s, so delays are rounded on the running total (the clip keeps its
    length); browsers play delays under 20 ms as 100 ms, hence fps is limited to 50.

    Args:
        frames: uint8 (T, H, W, 3) RGB.
    """
    frames = _as_frames(frames)
    _check_positive("fps", fps, optional=False)
    if fps > 50:
        raise InvalidRequest("fps", fps, "at most 50 for GIF (browsers slow shorter frame delays to 100 ms)")
    images = [Image.fromarray(np.ascontiguousarray(rgb)) for rgb in frames.numpy()]
    path = Path(path)
    with _atomic(path) as partial:
        images[0].save(
            partial, format="GIF", save_all=True, append_images=images[1:], loop=0,
            duration=_frame_durations_ms(len(images), fps, tick_ms=10),
        )  # fmt: skip
    return path


def write_webp(path, frames, fps: float, *, quality: int = 90) -> Path:
    """Write an animated, looping WebP (lossy at `quality`, 0-100).

    Args:
        frames: uint8 (T, H, W, 3) RGB.
    """
    frames = _as_frames(frames)
    _check_positive("fps", fps, optional=False)
    if isinstance(quality, bool) or not isinstance(quality, int) or not 0 <= quality <= 100:
        raise InvalidRequest("quality", quality, "an integer from 0 to 100")
    images = [Image.fromarray(np.ascontiguousarray(rgb)) for rgb in frames.numpy()]
    path = Path(path)
    with _atomic(path) as partial:
        images[0].save(
            partial, format="WEBP", save_all=True, append_images=images[1:], loop=0, quality=quality,
            duration=_frame_durations_ms(len(images), fps, tick_ms=1),
        )  # fmt: skip
    return path


def write_image(path, frame) -> Path:
    """Write one uint8 (H, W, 3) RGB frame as png/jpg/webp/bmp, by the suffix (jpg at quality 95)."""
    frame = _as_image(frame)
    path = Path(path)
    formats = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP"}
    image_format = formats.get(path.suffix.lower())
    if image_format is None:
        raise InvalidRequest("path", str(path), "a file name ending in " + ", ".join(formats))
    with _atomic(path) as partial:
        Image.fromarray(frame.numpy()).save(partial, format=image_format, quality=95)
    return path


def _frame_durations_ms(num_frames: int, fps: float, tick_ms: int) -> list[int]:
    """Per-frame delays in whole ticks, rounded on the running total so the clip length does not drift."""
    ends = [round((i + 1) * 1000 / fps / tick_ms) * tick_ms for i in range(num_frames)]
    return [max(tick_ms, end - begin) for begin, end in zip([0] + ends[:-1], ends)]


@contextmanager
def _atomic(path: Path):
    """Yield a temporary path next to `path`; rename it to `path` only if the block succeeds.

    The temporary name is unique, so workers writing the same path at once cannot mix their bytes.
    """
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.partial")  # made by the writer: normal permissions
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------------------
# Previews
# ----------------------------------------------------------------------------------------------------------


def thumbnail(frames, *, width: int | None = 320) -> torch.Tensor:
    """The middle frame, resized to `width` keeping the aspect ratio (None keeps the size).

    Args:
        frames: uint8 (T, H, W, 3).
    Returns:
        uint8 (H', width, 3).
    """
    frames = _as_frames(frames)
    _check_positive("width", width, integer=True)
    middle = frames[frames.shape[0] // 2 : frames.shape[0] // 2 + 1]
    if width is None:
        return middle[0]
    height = max(1, round(frames.shape[1] * width / frames.shape[2]))
    return resize_video(middle, width, height, "stretch")[0]


def spritesheet(frames, *, columns: int = 4, rows: int = 4, tile_width: int = 160) -> torch.Tensor:
    """A contact sheet: columns × rows evenly spaced frames (first to last), in reading order.

    Tiles are `tile_width` wide and keep the aspect ratio. A clip shorter than the grid fills the first
    tiles and leaves the rest black, so the layout is always columns × rows.

    Args:
        frames: uint8 (T, H, W, 3).
    Returns:
        uint8 (rows * tile_height, columns * tile_width, 3).
    """
    frames = _as_frames(frames)
    for name, value in (("columns", columns), ("rows", rows), ("tile_width", tile_width)):
        _check_positive(name, value, integer=True, optional=False)
    num_tiles = min(columns * rows, frames.shape[0])
    picks = torch.linspace(0, frames.shape[0] - 1, num_tiles).round().long()
    tile_height = max(1, round(frames.shape[1] * tile_width / frames.shape[2]))
    tiles = resize_video(frames[picks], tile_width, tile_height, "stretch")  # (n, h, w, 3)
    sheet = torch.zeros(rows * tile_height, columns * tile_width, 3, dtype=torch.uint8)
    for i, tile in enumerate(tiles):
        row, column = divmod(i, columns)
        sheet[row * tile_height : (row + 1) * tile_height, column * tile_width : (column + 1) * tile_width] = tile
    return sheet
