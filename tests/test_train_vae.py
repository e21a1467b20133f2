"""VAE training: the loss goes down on a fixed batch, resume is exact, and a run's output loads."""

import json
import logging
import random
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from straightline.cli import main
from straightline.data import Bucket
from straightline.train_vae import (
    FolderClips,
    VAETrainConfig,
    change_profile_l1,
    edge_l1,
    make_batch,
    motion_l1,
    outline_l1,
    photo_clip,
    run_config,
    temporal_l1,
    texture_clip,
    train,
)
from straightline.vae import VideoVAE

TINY = VAETrainConfig(preset="tiny", steps=4, pixel_budget=2 * 5 * 32 * 32, resolutions=(32,), durations=(0.0, 0.17))


def test_resume_is_exact(tmp_path):
    train(TINY, tmp_path / "straight", progress=False, log_every=1)
    half = VAETrainConfig(**{**TINY.__dict__, "steps": 2})
    train(half, tmp_path / "resumed", progress=False, log_every=1)
    train(TINY, tmp_path / "resumed", progress=False, log_every=1)
    a = load_file(str(tmp_path / "straight" / "train_state.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "train_state.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    vae = VideoVAE.load(tmp_path / "straight")  # the shipped artefact: EMA weights + config
    assert vae.cfg.base_channels == 8
    assert (tmp_path / "straight" / "log.jsonl").read_text().count("\n") == 4
    assert run_config(tmp_path / "straight") == TINY and run_config(tmp_path / "none") == VAETrainConfig()


def test_previews_are_written_every_n_steps_or_never(tmp_path):
    train(TINY, tmp_path / "two", progress=False, preview_every=2)
    assert sorted(f.name for f in (tmp_path / "two").glob("preview_*.mp4")) == ["preview_0000002.mp4",
                                                                                "preview_0000004.mp4"]
    train(TINY, tmp_path / "never", progress=False, preview_every=0)   # a machine without PyAV can train
    assert not list((tmp_path / "never").glob("preview_*"))


def test_vae_stats_measures_on_the_runs_own_buckets(tmp_path, capsys):
    run = VAETrainConfig(**{**TINY.__dict__, "steps": 1, "fps": 12.0, "durations": (0.0, 0.34)})
    train(run, tmp_path, progress=False)
    before = VideoVAE.load(tmp_path).latent_std.clone()
    assert main(["vae", "stats", str(tmp_path), "--batches", "2"]) in (0, None)
    assert "[32] px, [0.0, 0.34] s at 12 fps (the run's train_state.json)" in capsys.readouterr().out
    assert not torch.equal(VideoVAE.load(tmp_path).latent_std, before)


def test_batches_depend_only_on_seed_and_step():
    from straightline.data import make_buckets
    buckets = make_buckets(resolutions=(32,), durations=(0.0, 0.17))
    a, b = make_batch(TINY, buckets, 7), make_batch(TINY, buckets, 7)
    assert a.dtype == torch.uint8 and a.ndim == 5 and torch.equal(a, b)
    c = make_batch(TINY, buckets, 8)
    assert not (a.shape == c.shape and torch.equal(a, c))


def test_texture_clips_move_and_edge_loss_sees_blur():
    import random
    clip = texture_clip(random.Random(0), Bucket(5, 32, 48))
    assert clip.shape == (5, 32, 48, 3) and clip.dtype == torch.uint8
    assert not torch.equal(clip[0], clip[-1])
    x = clip.permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    blurred = torch.nn.functional.avg_pool3d(x, (1, 3, 3), 1, (0, 1, 1))
    assert edge_l1(blurred, x) > 0.01 and edge_l1(x, x) == 0


def test_decoder_only_fine_tuning_keeps_the_encoder_and_its_latents(tmp_path):
    train(TINY, tmp_path / "base", progress=False)                 # reaches its steps: latent stats recorded
    base = VideoVAE.load(tmp_path / "base")
    tuned_cfg = VAETrainConfig(**{**TINY.__dict__, "init": str(tmp_path / "base"), "decoder_only": True,
                                  "steps": 3, "seed": 1})
    train(tuned_cfg, tmp_path / "tuned", progress=False)
    tuned = VideoVAE.load(tmp_path / "tuned")
    before, after = base.state_dict(), tuned.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("decoder."))  # stats too
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))
    video = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    assert torch.equal(base.encode(video), tuned.encode(video))     # a DiT's latents are unchanged
    # a bigger decoder on the same latents, through the command line
    main(["vae", "train", "--out", str(tmp_path / "grown"), "--preset", "tiny", "--steps", "2", "--pixel-budget",
          str(TINY.pixel_budget), "--durations", "0", "0.17", "--init", str(tmp_path / "base"), "--decoder-only",
          "--decoder-blocks", "2", "--preview-every", "0", "--device", "cpu"])
    grown = VideoVAE.load(tmp_path / "grown")
    assert grown.cfg.decoder_blocks == 2 and torch.equal(base.encode(video), grown.encode(video))


def test_render_workers_give_the_same_training(tmp_path):
    train(TINY, tmp_path / "main", progress=False)
    train(TINY, tmp_path / "workers", progress=False, workers=2)
    a = load_file(str(tmp_path / "main" / "train_state.safetensors"))
    b = load_file(str(tmp_path / "workers" / "train_state.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_video_folder_trains_and_its_unreadable_files_are_reported(tmp_path, caplog):
    media = Path(__file__).resolve().parents[1].parent / "shared" / "media"
    if not media.is_dir():
        pytest.skip(f"shared test clips not found at {media}")
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(media / "realshort.mp4", folder / "real.mp4")
    (folder / "broken.mp4").write_bytes(b"not a video at all" * 64)
    cfg = VAETrainConfig(**{**TINY.__dict__, "steps": 6, "folder_ratio": 1.0, "durations": (0.0,)})
    with caplog.at_level(logging.WARNING, logger="straightline.train_vae"):
        train(cfg, tmp_path / "run", folder=folder, progress=False, log_every=6)
    warnings = [r.getMessage() for r in caplog.records if "broken.mp4" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("skipping")       # named once, however often drawn
    last = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 6 and last["skipped_files"] == 1


def _best_shift(a, b, reach):
    """The integer (dy, dx) that best maps frame a onto frame b (mean abs error on the overlap), and that error."""
    h, w = a.shape[:2]
    errors = {}
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            pa = a[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)]
            pb = b[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
            errors[dy, dx] = (pa - pb).abs().mean().item()
    best = min(errors, key=errors.get)
    return best, errors[best], errors[0, 0]


def test_a_photo_becomes_a_clip_under_a_camera_pan(tmp_path):
    from PIL import Image
    g = torch.Generator().manual_seed(0)
    photo = torch.nn.functional.interpolate(torch.rand(1, 3, 30, 40, generator=g), size=(150, 200), mode="bicubic")
    photo = (photo[0].permute(1, 2, 0).clamp(0, 1) * 255).to(torch.uint8)
    Image.fromarray(photo.numpy()).save(tmp_path / "photo.png")
    bucket = Bucket(frames=9, height=48, width=64)
    clips = FolderClips(tmp_path, fps=12)
    rng = random.Random(0)
    moved = 0
    for _ in range(6):
        clip = clips.clip(rng, bucket)
        assert clip.shape == (9, 48, 64, 3) and clip.dtype == torch.uint8
        first, last = clip[0].float(), clip[-1].float()
        (dy, dx), error, unshifted = _best_shift(last, first, reach=18)
        assert max(abs(dy), abs(dx)) <= 2 * 8 + 1                  # at most 2 pixels a frame
        assert error < 0.25 * unshifted or (dy, dx) == (0, 0)       # the last frame is the first, moved
        moved += (dy, dx) != (0, 0)
    assert moved >= 4                                               # it pans: not a still
    assert photo_clip(photo, rng, Bucket(frames=1, height=48, width=64)).shape == (1, 48, 64, 3)   # an image


def test_temporal_loss_sees_flicker_that_per_frame_losses_weigh_alike():
    video = torch.rand(1, 3, 9, 8, 8)
    offset = video + 0.1                                                       # a steady error: no flicker
    flicker = video + 0.1 * torch.tensor([1.0, -1] * 4 + [1]).view(1, 1, 9, 1, 1)   # the same error, alternating
    assert (offset - video).abs().mean() == pytest.approx(float((flicker - video).abs().mean()))
    assert temporal_l1(offset, video) < 1e-6 and temporal_l1(flicker, video) == pytest.approx(0.2)
    assert temporal_l1(video[:, :, :1] + 1, video[:, :, :1]) == 0             # an image has no changes
    jump = video.clone()
    jump[:, :, 5:] += 0.4                          # a jump from frame 4 to 5: across a latent-frame boundary
    assert temporal_l1(jump, video, every=4) == pytest.approx(0.4 / 2)       # one of the two boundary steps
    assert temporal_l1(jump, video, every=4) > 3 * temporal_l1(jump, video)  # the whole mean dilutes it 8 ways


def test_motion_loss_weighs_a_moving_object_that_whole_frame_l1_barely_sees():
    video = torch.zeros(1, 3, 5, 32, 32)
    for t in range(5):
        video[:, :, t, 4:8, 4 + 4 * t:8 + 4 * t] = 1.0                        # a 4-pixel square moving right
    stuck = video[:, :, :1].expand_as(video).clone()                          # left where the first frame had it
    assert (stuck - video).abs().mean() < 0.03                               # a 2% error in the whole-frame mean
    assert motion_l1(stuck, video) > 10 * (stuck - video).abs().mean()       # here it is most of the loss
    assert motion_l1(video, video) == 0
    assert motion_l1(stuck[:, :, :1], video[:, :, :1]) == 0                  # an image has no motion
    assert motion_l1(torch.zeros(1, 3, 3, 8, 8), torch.zeros(1, 3, 3, 8, 8)) == 0   # nor a still clip


def test_outline_loss_tells_a_small_star_from_a_blob_that_whole_frame_l1_barely_sees():
    y, x = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    angle, radius = torch.atan2(y - 32, x - 32), ((y - 32) ** 2 + (x - 32) ** 2).sqrt()
    star = (radius < 4 + 2 * torch.cos(5 * angle)).float()                  # a 12-pixel five-pointed star
    blob = (radius < 4.5).float()                                            # what a blurring VAE gives back
    video, recon = (torch.stack([star, blob]) * 2 - 1).view(2, 1, 1, 64, 64).expand(2, 3, 1, 64, 64).chunk(2)
    assert (recon - video).abs().mean() < 0.02                               # 1% of the frame
    assert outline_l1(recon, video) > 5 * (recon - video).abs().mean()
    assert outline_l1(video, video) == 0
    assert outline_l1(torch.zeros(1, 3, 1, 8, 8), torch.ones(1, 3, 1, 8, 8)) == 0   # no edges: no outline


def test_change_profile_loss_tells_a_held_then_jumped_latent_frame_from_a_steady_lag():
    video = torch.zeros(1, 3, 9, 32, 32)
    for t in range(9):
        video[:, :, t, 4:8, 2 * t:4 + 2 * t] = 1.0                            # a square moving 2 px a frame
    held = video.clone()
    held[:, :, 1:5] = video[:, :, 1:2]                 # each latent frame (frames 1-4, 5-8) shows its first picture
    held[:, :, 5:9] = video[:, :, 5:6]
    lagged = torch.cat([video[:, :, :1], video[:, :, :-1]], dim=2)             # smooth motion, one frame late
    assert motion_l1(lagged, video) >= motion_l1(held, video)                 # per-frame losses rank them alike
    assert change_profile_l1(held, video) > 5 * change_profile_l1(lagged, video)
    assert change_profile_l1(video, video) == 0 and change_profile_l1(held[:, :, :1], video[:, :, :1]) == 0
