"""Image and video prompting in the one pipeline: the rule for given frames, every mode, long videos, fitting
inputs, bad inputs, and the CLI subcommands; a tiny untrained model and the real text encoder."""

import pytest
import torch
from conftest import tiny_model_folder

from straightline import flow
from straightline.cli import main
from straightline.data import from_model_output, to_model_input
from straightline.errors import InvalidRequest, MediaError
from straightline.metrics import psnr
from straightline.model import ModelInfo
from straightline.pipeline import (
    Pass,
    fade_in_errors,
    keep_known_on_path,
    known_latent_frames,
    lay_out,
    pass_lengths,
)
from straightline.video_io import (
    probe,
    read_image,
    read_video,
    resize_video,
    write_image,
    write_video,
)

# a trained clip of 17 frames at 4 fps (5 latent frames): one pass makes at most 33 frames, chained passes
# have 17 and are given 5 (start) or 8 (end) frames, two latent frames
INFO = {"max_tokens": 1024, "fps": 4, "seconds": 4, "steps": 2, "cfg": 3}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny model folder, the DiT nudged off its zero init (else its velocity is exactly 0)."""
    return tiny_model_folder(tmp_path_factory.mktemp("model"), INFO)


def moving_square(frames: int, width: int = 32, height: int = 32, color=(220, 40, 40)) -> torch.Tensor:
    """uint8 (T, H, W, 3): a square sliding right over a grey gradient, smooth enough for H.264."""
    video = torch.linspace(60, 120, width).view(1, 1, width, 1).expand(frames, height, width, 3).clone()
    side = max(4, height // 4)
    for t in range(frames):
        x = (2 * t) % (width - side)
        video[t, height // 3:height // 3 + side, x:x + side] = torch.tensor(color, dtype=video.dtype)
    return video.to(torch.uint8)


def generate(pipe, prompt="a red ball", **fields):
    fields = {"size": "32x32", "seed": 0, **fields}
    return pipe.generate(pipe.validate(prompt, **fields))[0]


def reconstruct(pipe, frames: torch.Tensor) -> torch.Tensor:
    """The VAE's reconstruction of uint8 (T, H, W, 3) frames, 1 + 4k of them."""
    return from_model_output(pipe.vae.decode(pipe.vae.encode(to_model_input(frames[None]))))[0]


class DiTInputs:
    """Records the frame conditioning the DiT sees in each forward pass."""

    def __init__(self, pipe):
        self.conds, self.xs, self.ts = [], [], []

        def record(module, args, out):
            self.xs.append(args[0])
            self.ts.append(args[1])
            self.conds.append(args[5])
        self.hook = pipe.dit.register_forward_hook(record)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.hook.remove()

    def known(self, i=0):   # known latent frames of the first sample of forward pass i: bool (T,)
        return self.conds[i][0, -1, :, 0, 0].bool()


class DecodedLatents:
    """Records the latents the VAE decodes."""

    def __init__(self, pipe):
        self.vae, self.decode, self.latents = pipe.vae, pipe.vae.decode, []

    def __enter__(self):
        def decode(z, *args, **kwargs):
            self.latents.append(z.clone())
            return self.decode(z, *args, **kwargs)
        self.vae.decode = decode
        return self

    def __exit__(self, *exc):
        del self.vae.decode


# --- the one rule ------------------------------------------------------------------------------------

def test_given_frames_are_laid_out_with_the_nearest_filling_the_gaps():
    start, end = torch.full((1, 2, 2, 3), 10, dtype=torch.uint8), torch.full((4, 2, 2, 3), 200, dtype=torch.uint8)
    video, given = lay_out(13, start, end)
    assert video[:, 0, 0, 0].tolist() == [10] * 5 + [200] * 8          # frame 4: 4 from the start, 5 from the end
    assert given.tolist() == [True] + [False] * 8 + [True] * 4
    assert known_latent_frames(given).tolist() == [True, False, False, True]   # the end image fills latent 3


@pytest.mark.parametrize("start, end, known", [
    (1, 0, [1, 0, 0, 0, 0]),          # an image: latent frame 0 is pixel frame 0 alone
    (5, 0, [1, 1, 0, 0, 0]),          # 1 + 4 frames: two latent frames
    (4, 0, [1, 0, 0, 0, 0]),          # frames 1..3 of latent frame 1 only: not known
    (0, 3, [0, 0, 0, 0, 0]),          # 3 of the last latent frame's 4: not known
    (0, 8, [0, 0, 0, 1, 1]),
    (5, 8, [1, 1, 0, 1, 1]),
])
def test_a_latent_frame_is_known_when_all_its_pixel_frames_are_given(start, end, known):
    frame = torch.zeros(1, 2, 2, 3, dtype=torch.uint8)
    _, given = lay_out(17, frame.expand(start, -1, -1, -1) if start else None,
                       frame.expand(end, -1, -1, -1) if end else None)
    assert known_latent_frames(given).int().tolist() == known


def test_pass_lengths_follow_the_trained_clip_and_the_token_budget():
    info = ModelInfo(defaults=INFO)
    assert pass_lengths(info, 32, 32) == (33, 17, 5, 8)
    assert pass_lengths(ModelInfo(defaults=INFO, trained={"seconds": [1.0, 2.0], "fps": 12}), 32, 32) == \
        (49, 25, 5, 8)
    # 8 tokens a latent frame at 64x32: 4 latent frames fit, a third of them (rounded) is 1
    assert pass_lengths(ModelInfo(defaults={**INFO, "max_tokens": 32}), 64, 32) == (33, 13, 1, 4)


def test_known_frames_stay_on_their_true_path_while_sampling():
    """Training noises given latents like the others; sampling puts them back on that path at every step."""
    x, noise = torch.randn(2, 3, 4, 2, 2), torch.randn(2, 3, 4, 2, 2)
    latents, known = torch.randn(2, 3, 4, 2, 2), torch.tensor([1.0, 0, 0, 1]).view(1, 1, 4, 1, 1)
    cond = torch.cat([latents * known, known.expand(2, 1, 4, 2, 2)], dim=1)
    seen = []
    velocity = keep_known_on_path(lambda x, t: seen.append(x) or x, cond, noise)
    t = torch.tensor([0.25, 0.5])
    velocity(x, t)
    truth = flow.interpolate(latents, noise, t)
    assert torch.equal(seen[0][:, :, [0, 3]], truth[:, :, [0, 3]])       # known frames: on the path
    assert torch.equal(seen[0][:, :, [1, 2]], x[:, :, [1, 2]])           # the others: the sampler's own


def test_an_extension_feeds_the_dit_its_given_frames_noised_to_the_current_time(pipe):
    video = moving_square(11)
    with DiTInputs(pipe) as seen, DecodedLatents(pipe) as decoded:
        generate(pipe, mode="extend", video=video, seconds=3, cfg=1)
    known = seen.known()
    noise = torch.randn(1, *decoded.latents[0].shape[1:], generator=torch.Generator().manual_seed(0))
    given = seen.conds[0][:, :-1][:, :, known]
    for x, t in zip(seen.xs, seen.ts):
        assert torch.allclose(x[:, :, known], flow.interpolate(given, noise[:, :, known], t), atol=1e-6)


def test_the_vae_error_at_a_seam_is_faded_into_the_new_frames():
    new = torch.full((3, 2, 2, 3), 100, dtype=torch.uint8)
    assert torch.equal(fade_in_errors(new, None, None), new)
    before, after = torch.full((2, 2, 3), 8.0), torch.full((2, 2, 3), -4.0)
    assert fade_in_errors(new, before, None)[:, 0, 0, 0].tolist() == [106, 104, 102]    # 3/4, 2/4, 1/4 of 8
    assert fade_in_errors(new, None, after)[:, 0, 0, 0].tolist() == [99, 98, 97]
    assert fade_in_errors(new, before, after)[:, 0, 0, 0].tolist() == [105, 102, 99]
    assert fade_in_errors(new, torch.full((2, 2, 3), 900.0), None).max() == 255           # clamped


def seam_step(frames: torch.Tensor, s: int) -> float:
    """Mean absolute change from frame s - 1 to frame s."""
    return float((frames[s].float() - frames[s - 1].float()).abs().mean())


def test_an_extension_seam_jumps_by_the_model_not_by_the_vae_error(pipe):
    """The input's own frames meet the new ones: the step across that seam is the decoded clip's own step
    there, plus at most 1/(n + 1) of the VAE's error (n new frames), not the whole error."""
    video = moving_square(11)
    with DecodedLatents(pipe) as decoded:
        result = generate(pipe, mode="extend", video=video, seconds=3, cfg=1)   # 5 given + 12 new frames
    clip = from_model_output(pipe.vae.decode(decoded.latents[0]))[0]
    error = float((video[-1].float() - clip[4].float()).abs().mean())
    assert error > 1                                                           # the VAE does not reproduce it
    assert seam_step(result.frames, 11) <= seam_step(clip, 5) + error / 13 + 0.5
    assert seam_step(result.frames, 11) < 0.5 * (seam_step(clip, 5) + error)


# --- image to video, image -----------------------------------------------------------------------------

def test_image_to_video_starts_on_the_vae_reconstruction_of_the_image(pipe):
    image = moving_square(1)[0]
    with DiTInputs(pipe) as seen:
        result = generate(pipe, image=image, frames=9)
    assert result.frames.shape == (9, 32, 32, 3) and "from a first image" in result.summary()
    assert seen.known().tolist() == [True, False, False]
    recon = reconstruct(pipe, image[None])[0]
    assert (result.frames[0].int() - recon.int()).abs().max() <= 1
    assert psnr(result.frames[0], image) == pytest.approx(psnr(recon, image), abs=0.1)


def test_first_and_last_images_mark_both_ends_known(pipe):
    first, last = moving_square(1)[0], moving_square(1, color=(40, 40, 220))[0]
    with DiTInputs(pipe) as seen, DecodedLatents(pipe) as decoded:
        result = generate(pipe, image=first, end_image=last, frames=13, cfg=1)
    assert result.frames.shape == (13, 32, 32, 3)
    assert seen.known().tolist() == [True, False, False, True]
    # the known latents are pasted before decoding: the last one is the last image held for its 4 frames
    held = pipe.vae.encode(to_model_input(lay_out(13, first[None], last[None].expand(4, -1, -1, -1))[0][None]))
    assert torch.allclose(decoded.latents[0][:, :, [0, -1]], held[:, :, [0, -1]], atol=1e-5)
    assert torch.allclose(seen.conds[0][0, :-1, -1], held[0, :, -1], atol=1e-5)
    with pytest.raises(InvalidRequest) as err:
        generate(pipe, end_image=last, frames=1)
    assert err.value.field == "frames" and "end image" in err.value.allowed


def test_images_of_any_aspect(pipe):
    for size in ("64x16", "16x48"):
        result = generate(pipe, seconds=0, size=size)
        width, height = map(int, size.split("x"))
        assert result.frames.shape == (1, height, width, 3) and result.summary().startswith(f"{size} image")


# --- extend, connect, loop -----------------------------------------------------------------------------

def test_extending_forward_keeps_the_input_then_continues_it(pipe):
    video = moving_square(11)
    with DiTInputs(pipe) as seen:
        result = generate(pipe, mode="extend", video=video, seconds=3)           # 12 frames at 4 fps
    assert result.frames.shape == (23, 32, 32, 3) and torch.equal(result.frames[:11], video)
    assert result.request.plan == (Pass(17, start=5),)                        # the input's last 5 frames given
    assert seen.known().tolist() == [True, True, False, False, False]
    assert "11 input frames + 12 new (forward)" in result.summary()


def test_extending_backward_ends_with_the_input(pipe):
    video = moving_square(11)
    with DiTInputs(pipe) as seen:
        result = generate(pipe, mode="extend", video=video, frames=6, direction="backward")
    assert result.frames.shape == (17, 32, 32, 3) and torch.equal(result.frames[-11:], video)
    assert result.request.plan == (Pass(17, end=8),)                          # 9 new frames, 3 trimmed
    assert seen.known().tolist() == [False, False, False, True, True]


def test_connecting_two_videos_puts_a_transition_between_them(pipe):
    a, b = moving_square(9), moving_square(13, color=(40, 40, 220))
    with DiTInputs(pipe) as seen:
        result = generate(pipe, mode="connect", video=a, end_video=b, seconds=1.5)   # 6 frames asked -> 8
    assert result.frames.shape == (9 + 8 + 13, 32, 32, 3)
    assert torch.equal(result.frames[:9], a) and torch.equal(result.frames[-13:], b)
    assert seen.known().tolist() == [True, True, False, False, True, True]
    assert result.requested_frames == 28 and "transitions are whole multiples of 4 frames" in result.summary()


def test_a_loop_starts_on_its_image_and_its_end_is_that_image_again(pipe):
    image = moving_square(1)[0]
    with DiTInputs(pipe) as seen:
        result = generate(pipe, mode="loop", image=image, frames=9)
    assert result.frames.shape == (9, 32, 32, 3) and "a loop" in result.summary()
    assert seen.known().tolist() == [True, False, False, True]               # made as 13, the held end dropped
    held = pipe.vae.encode(to_model_input(image[None, None].expand(1, 13, -1, -1, -1)))[0, :, -1]
    assert torch.allclose(seen.conds[0][0, :-1, -1], held, atol=1e-5)       # the end is the image, held
    recon = reconstruct(pipe, image[None])[0]
    assert (result.frames[0].int() - recon.int()).abs().max() <= 1


def test_a_loop_from_text_makes_its_image_first_and_from_a_video_uses_its_first_frame(pipe):
    with DiTInputs(pipe) as seen:
        result = generate(pipe, mode="loop", frames=9, cfg=1)
    assert result.request.plan == (Pass(1), Pass(13, start=1, end=4)) and result.frames.shape == (9, 32, 32, 3)
    assert seen.conds[0] is None and seen.known(2).tolist() == [True, False, False, True]
    image = pipe.generate(pipe.validate("a red ball", size="32x32", seed=0, frames=1, cfg=1))[0].frames[0]
    assert torch.equal(result.frames[0], image)                              # the first pass's image
    video = moving_square(9)
    from_video = generate(pipe, mode="loop", video=video, frames=9)
    from_image = generate(pipe, mode="loop", image=video[0], frames=9)
    assert torch.equal(from_video.frames, from_image.frames)


# --- edit ----------------------------------------------------------------------------------------------

def test_edit_strength_trades_the_source_against_the_prompt(pipe):
    source = moving_square(11)
    faint = generate(pipe, "a blue star", mode="edit", video=source, strength=1e-3)
    assert faint.frames.shape == (9, 32, 32, 3) and faint.requested_frames == 11   # the first 1 + 4k frames
    recon = reconstruct(pipe, source[:9])
    assert (faint.frames.int() - recon.int()).abs().max() <= 3
    full = generate(pipe, "a blue star", mode="edit", video=source, strength=1)
    text_only = generate(pipe, "a blue star", frames=9)
    assert torch.equal(full.frames, text_only.frames)                        # strength 1 ignores the source
    half = generate(pipe, "a blue star", mode="edit", video=source, strength=0.5)
    assert psnr(faint.frames, recon) > psnr(half.frames, recon) > psnr(full.frames, recon)


# --- long videos ---------------------------------------------------------------------------------------

def test_long_videos_are_chained_from_passes_given_the_last_frames(pipe):
    steps = []
    request = pipe.validate("a red ball", size="32x32", seed=0, seconds=12, cfg=1)   # 49 frames > 33
    assert request.plan == (Pass(17), Pass(17, start=5), Pass(17, start=5), Pass(13, start=5))
    with DiTInputs(pipe) as seen:
        [result] = pipe.generate(request, on_step=lambda done, total: steps.append((done, total)))
    assert result.frames.shape == (49, 32, 32, 3) and "chained from 4 passes" in result.summary()
    assert steps[-1] == (8, 8) and len(seen.conds) == 8
    assert seen.conds[0] is None and seen.known(2).tolist() == [True, True, False, False, False]
    # the chain is what it says: the second pass's clip starts with the first's last 5 frames
    second = generate(pipe, mode="extend", video=result.frames[:17], frames=12, cfg=1, seed=1)
    assert torch.equal(second.frames, result.frames[:29])


def test_a_long_extension_is_exact_and_a_long_connection_meets_its_end(pipe):
    video = moving_square(9)
    extended = generate(pipe, mode="extend", video=video, seconds=10)
    assert extended.frames.shape[0] == 49 and len(extended.request.plan) == 4
    backward = generate(pipe, mode="extend", video=video, seconds=10, direction="backward")
    assert backward.frames.shape[0] == 49 and torch.equal(backward.frames[-9:], video)
    connected = generate(pipe, mode="connect", video=video, end_video=video, seconds=10)
    assert connected.frames.shape[0] == 9 + 40 + 9 and torch.equal(connected.frames[-9:], video)
    assert [p.end for p in connected.request.plan] == [0, 0, 0, 8]


# --- fitting inputs ------------------------------------------------------------------------------------

def test_inputs_are_scaled_to_cover_and_centre_cropped(pipe):
    wide = moving_square(1, width=96, height=48)[0]
    request = pipe.validate("a red ball", image=wide, size="32x32", frames=5)
    assert torch.equal(request.image, resize_video(wide[None], 32, 32, "crop")[0])
    request = pipe.validate("a red ball", image=wide, frames=5)              # no size: the input's aspect
    assert (request.width, request.height) == (256, 128)                     # at the default resolution 128
    tall = pipe.validate("", mode="extend", video=moving_square(9, width=48, height=96), resolution=32)
    assert (tall.width, tall.height) == (32, 64) and tall.video.shape == (9, 64, 32, 3)


# --- bad input -----------------------------------------------------------------------------------------

def test_bad_inputs_name_the_field(pipe, tmp_path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    with pytest.raises(MediaError) as err:
        pipe.validate("a ball", image=tmp_path / "missing.png")
    assert err.value.field == "image" and "not found" in str(err.value) and "image" in str(err.value)
    with pytest.raises(MediaError) as err:
        pipe.validate("", mode="extend", video=corrupt)
    assert err.value.field == "video" and "corrupt.mp4" in str(err.value)
    cases = [
        ({"mode": "extend", "video": moving_square(3)}, "video", "at least 5 frames"),
        ({"mode": "connect", "video": moving_square(9), "end_video": moving_square(4)}, "end_video", "at least 5"),
        ({"mode": "edit", "video": moving_square(9), "strength": 0}, "strength", "more than 0"),
        ({"mode": "edit", "video": moving_square(9), "strength": 1.5}, "strength", "at most 1"),
        ({"mode": "edit", "video": moving_square(9), "seconds": 5}, "seconds", "the source's"),
        ({"mode": "extend"}, "video", "mode extend"),
        ({"mode": "extend", "video": moving_square(9), "seconds": 0}, "seconds", "to add"),
        ({"mode": "extend", "video": moving_square(9), "direction": "up"}, "direction", "forward or backward"),
        ({"image": moving_square(9), "mode": "edit", "video": moving_square(9)}, "image", "only with mode"),
        ({"strength": 0.5}, "strength", "only with mode edit"),
        ({"mode": "remix"}, "mode", "generate"),
        ({"mode": "loop", "frames": 1}, "frames", "at least 5 frames for a loop"),
        ({"image": torch.zeros(8, 8, 3)}, "image", "uint8"),
    ]
    for fields, field, words in cases:
        with pytest.raises(InvalidRequest) as err:
            pipe.validate("a ball", size="32x32", **fields)
        assert err.value.field == field and words in err.value.allowed, (fields, err.value)
    with pytest.raises(InvalidRequest) as err:
        pipe.validate("", mode="edit", video=moving_square(9))
    assert err.value.field == "prompt"
    assert pipe.validate("", mode="extend", video=moving_square(9)).prompt == ""     # a prompt is optional


# --- command line --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("media")
    write_image(folder / "first.png", moving_square(1)[0])
    write_image(folder / "last.png", moving_square(1, color=(40, 40, 220))[0])
    write_video(folder / "a.mp4", moving_square(9), fps=4)
    write_video(folder / "b.mp4", moving_square(13, color=(40, 40, 220)), fps=4)
    return folder


def run(model_dir, capsys, *args):
    code = main([*args, "--model", str(model_dir), "--size", "32x32", "--seed", "0", "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def test_cli_generate_from_images_and_long(model_dir, media, tmp_path, capsys):
    out = run(model_dir, capsys, "generate", "a red ball", "--image", str(media / "first.png"), "--end-image",
              str(media / "last.png"), "--frames", "9", "-o", str(tmp_path / "i2v.mp4"))
    assert str(tmp_path / "i2v.mp4") in out and "from a first image and a last image" in out
    assert read_video(tmp_path / "i2v.mp4").frames.shape == (9, 32, 32, 3)
    out = run(model_dir, capsys, "generate", "a red ball", "--seconds", "12", "-o", str(tmp_path / "long.mp4"))
    assert "chained from 4 passes" in out and probe(tmp_path / "long.mp4")["num_frames"] == 49


def test_cli_image(model_dir, tmp_path, capsys):
    out = run(model_dir, capsys, "image", "a red ball", "-o", str(tmp_path / "still.png"))
    assert "32x32 image" in out and read_image(tmp_path / "still.png").shape == (32, 32, 3)


def test_cli_extend_forward_and_backward(model_dir, media, tmp_path, capsys):
    out = run(model_dir, capsys, "extend", str(media / "a.mp4"), "--seconds", "2", "the ball goes on",
              "-o", str(tmp_path))
    assert "9 input frames + 8 new (forward)" in out
    forward = read_video(tmp_path / "a-extended.mp4").frames
    given = read_video(media / "a.mp4").frames
    assert forward.shape == (17, 32, 32, 3) and psnr(forward[:9], given) > 35    # the input, re-encoded
    run(model_dir, capsys, "extend", str(media / "a.mp4"), "--frames", "4", "--direction", "backward",
        "-o", str(tmp_path / "back.mp4"))
    backward = read_video(tmp_path / "back.mp4").frames
    assert backward.shape == (13, 32, 32, 3) and psnr(backward[-9:], given) > 35


def test_cli_connect(model_dir, media, tmp_path, capsys):
    out = run(model_dir, capsys, "connect", str(media / "a.mp4"), str(media / "b.mp4"), "--seconds", "2",
              "-o", str(tmp_path))
    assert "9 + 8 transition + 13 frames" in out
    assert read_video(tmp_path / "a-to-b.mp4").frames.shape == (30, 32, 32, 3)


def test_cli_loop_from_a_prompt_and_from_a_video(model_dir, media, tmp_path, capsys):
    out = run(model_dir, capsys, "loop", "a red ball bouncing", "--frames", "9", "-o", str(tmp_path))
    assert "a loop" in out and probe(tmp_path / "a-red-ball-bouncing-loop.mp4")["num_frames"] == 9
    run(model_dir, capsys, "loop", str(media / "a.mp4"), "--frames", "9", "a red ball", "-o", str(tmp_path))
    assert probe(tmp_path / "a-loop.mp4")["num_frames"] == 9


def test_cli_edit_and_its_errors(model_dir, media, tmp_path, capsys):
    out = run(model_dir, capsys, "edit", str(media / "b.mp4"), "a blue star", "--strength", "0.4", "-o",
              str(tmp_path))
    assert "edited at strength 0.4" in out and probe(tmp_path / "b-edited.mp4")["num_frames"] == 13
    run(model_dir, capsys, "edit", str(media / "first.png"), "a blue star", "-o", str(tmp_path))
    assert read_image(tmp_path / "first-edited.png").shape == (32, 32, 3)   # an edited image is an image
    for args, starts in [(["edit", str(media / "b.mp4"), "a star", "--strength", "2"], "strength=2.0"),
                         (["extend", str(tmp_path / "missing.mp4")], str(tmp_path / "missing.mp4")),
                         (["loop", str(tmp_path / "missing.png")], str(tmp_path / "missing.png"))]:
        assert main([*args, "--model", str(model_dir)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"straightline: error: {starts}") and err.count("\n") == 1, err
