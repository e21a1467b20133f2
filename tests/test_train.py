"""DiT training: the latent cache, conditioning strategies, exact resume, and FSDP2/DDP with 2 and 3 CPU processes
(gloo) resuming on other numbers of processes."""

import json
import math
import os
import random
import re
import shutil
import socket
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from straightline import flow
from straightline.dit import PRESETS as DIT_PRESETS
from straightline.dit import DiT
from straightline.errors import InvalidRequest
from straightline.model import load_model
from straightline.text import TextEmbedding
from straightline.train import (
    LatentCache,
    TrainConfig,
    _rollout,
    _toyworld_shard,
    build_cache,
    conditioning,
    distill_loss,
    endpoint_loss,
    draw_batch,
    flow_loss,
    loss_weight,
    object_mask,
    train,
)
from straightline.vae import PRESETS as VAE_PRESETS
from straightline.vae import VideoVAE


def tiny_config(vae_path, **kw) -> TrainConfig:
    base = {"preset": "tiny", "vae": str(vae_path), "resolutions": (32,), "aspects": ("16:9", "1:1"),
            "seconds": (0.5,), "image_resolutions": (32,),
            "fps": 8, "cache_clips": 8, "shard_clips": 4, "token_budget": 64, "warmup": 2, "steps": 4}
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def vae_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("vae")
    torch.manual_seed(0)
    VideoVAE(VAE_PRESETS["tiny"]).save(path)
    return path


def weights(folder):
    return load_file(str(folder / "train_state.safetensors"))


def test_cache_is_built_once_and_resumes_a_missing_shard(vae_path, tmp_path):
    cfg = tiny_config(vae_path)
    vae = VideoVAE.load(vae_path)
    assert build_cache(cfg, tmp_path, vae, progress=False) == 2
    first = (tmp_path / "shard-00000.safetensors").stat().st_mtime_ns
    (tmp_path / "shard-00001.json").unlink()          # an interrupted build: shard 1 never finished
    build_cache(cfg, tmp_path, vae, progress=False)
    assert (tmp_path / "shard-00000.safetensors").stat().st_mtime_ns == first
    cache = LatentCache(tmp_path)
    assert len(cache) == 8
    for bucket, items in cache.by_bucket.items():
        latents = cache.latents(items[0])
        assert latents.shape == (16, 1 + (bucket.frames - 1) // 4, bucket.height // 8, bucket.width // 8)
        assert set(items[0][2]) == {"short", "medium", "long"}


def test_cache_rendered_by_worker_processes_equals_one_process(vae_path, tmp_path):
    cfg = tiny_config(vae_path)
    vae = VideoVAE.load(vae_path)
    build_cache(cfg, tmp_path / "one", vae, workers=1, progress=False)
    build_cache(cfg, tmp_path / "two", vae, workers=2, progress=False)
    for k in range(2):
        one, two = (load_file(str(tmp_path / d / f"shard-{k:05d}.safetensors")) for d in ("one", "two"))
        assert one.keys() == two.keys() and all(torch.equal(one[n], two[n]) for n in one)
        assert (tmp_path / "one" / f"shard-{k:05d}.json").read_text() == \
            (tmp_path / "two" / f"shard-{k:05d}.json").read_text()


def test_cache_draws_only_the_asked_scenarios_and_image_share():
    cfg = tiny_config(None, scenarios=("single",), image_share=1.0, shard_clips=16)
    clips = list(_toyworld_shard(cfg, cfg.buckets(), 0))
    assert len(clips) == 16
    assert all(bucket.frames == 1 and bbox.shape[0] == 1 for bucket, _, _, bbox, _ in clips)   # one-object images
    mixed = list(_toyworld_shard(tiny_config(None, shard_clips=16), cfg.buckets(), 0))
    assert {bbox.shape[0] for *_, bbox, _ in mixed} != {1}        # by default the scenarios are all drawn
    with pytest.raises(InvalidRequest, match="scenarios.*single, multi, collision, occlusion"):
        tiny_config(None, scenarios=("crowd",)).check()


def _nudged_tiny_dit() -> DiT:
    """A frozen tiny DiT off its zero init, so text and guidance change its velocity."""
    model = DiT(DIT_PRESETS["tiny"]).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.requires_grad_(False)


def _distill_inputs():
    """Latents, noise, captions, the empty caption, conditioning and frame weights of two tiny clips."""
    latents, noise = torch.randn(2, 16, 2, 4, 4), torch.randn(2, 16, 2, 4, 4)
    text = TextEmbedding(torch.randn(2, 3, 384), torch.ones(2, 3, dtype=torch.bool), torch.randn(2, 384))
    empty = TextEmbedding(torch.zeros(2, 1, 384), torch.ones(2, 1, dtype=torch.bool), torch.zeros(2, 384))
    cond, frames = conditioning(latents, random.Random(0), 0.0)
    return latents, noise, text, empty, cond, frames


def test_distill_loss_is_zero_for_the_teacher_itself_without_guidance_only():
    torch.manual_seed(0)
    teacher = _nudged_tiny_dit()
    latents, noise, text, empty, cond, _ = _distill_inputs()
    weight, times, segment = torch.ones(2, 1, 2, 1, 1), flow.sampling_times(2), torch.tensor([0, 1])
    loss = lambda scale, substeps, interval=(0, 1): distill_loss(
        teacher, teacher, latents, text, empty, noise, cond, weight, times, segment, scale, substeps, interval).item()
    assert loss(1.0, 1) < 1e-10          # one unguided substep: the teacher's own velocity at the student's x
    assert loss(5.0, 1) > 1e-4 and loss(1.0, 3) > 1e-8   # guidance and substeps are what the student learns
    # the teacher guides only inside its interval: the substeps start at t = 0 and 0.5
    assert loss(5.0, 1, (0.6, 1.0)) < 1e-10 and loss(5.0, 1, (0.0, 0.2)) > 1e-4


def test_an_object_weight_makes_the_student_match_its_teacher_most_on_objects():
    torch.manual_seed(0)
    teacher, student = _nudged_tiny_dit(), DiT(DIT_PRESETS["tiny"])    # they differ: the student has an error
    latents, noise, text, empty, cond, frames = _distill_inputs()
    objects = torch.zeros(2, 1, 2, 4, 4)
    objects[:, :, :, 1:3, 1:3] = 1
    times, segment = flow.sampling_times(2), torch.tensor([0, 1])
    loss = lambda weight: distill_loss(student, teacher, latents, text, empty, noise, cond, weight, times, segment,
                                       4.0, 2).item()
    plain = loss(frames)
    assert loss(loss_weight(frames, objects, 1.0)) == pytest.approx(plain, rel=1e-6)   # per cell, all alike
    on_objects = loss(frames * objects)                                    # the error on object cells alone
    heavy = loss(loss_weight(frames, objects, 50.0))
    assert abs(heavy - on_objects) < abs(plain - on_objects)


def test_a_rolled_out_step_starts_where_the_students_own_sampler_is():
    torch.manual_seed(0)
    student, teacher = _nudged_tiny_dit(), _nudged_tiny_dit()
    latents, noise, text, empty, _, _ = _distill_inputs()
    cond, weight = conditioning(latents, random.Random(0), 1.0)      # given frames, kept on their path
    known = cond[:, -1:]
    assert 0 < known.mean() < 1
    times, segment = flow.sampling_times(4), torch.tensor([0, 2])
    x = noise.clone()                                                # two Euler steps of the student, by hand
    for k in range(2):
        x_in = x * (1 - known) + flow.interpolate(latents, noise, times[k]) * known
        x = x + (times[k + 1] - times[k]) * student(x_in, times[k].expand(2), text.tokens, text.mask, text.pooled,
                                                    cond)
    start = _rollout(student, text, noise, cond, times, segment)
    assert torch.equal(start[0], noise[0])                           # segment 0 starts at the noise either way
    on_path = flow.interpolate(latents, noise, times[2])
    assert torch.allclose(start[1], (x * (1 - known) + on_path * known)[1], atol=1e-5)
    assert not torch.allclose(start[1], on_path[1], atol=1e-2)       # not where the noised data is

    loss = lambda rollout, seg: distill_loss(student, teacher, latents, text, empty, noise, cond, weight, times,
                                             torch.tensor(seg), 4.0, 2, rollout=torch.tensor(rollout)).item()
    assert loss([True, True], [0, 0]) == loss([False, False], [0, 0])
    assert loss([True, True], [2, 2]) != pytest.approx(loss([False, False], [2, 2]), rel=1e-3)


def test_the_endpoint_loss_compares_the_students_whole_sample_with_its_teachers():
    torch.manual_seed(0)
    student, teacher = _nudged_tiny_dit(), _nudged_tiny_dit()
    latents, noise, text, empty, _, _ = _distill_inputs()
    cond, weight = conditioning(latents, random.Random(0), 1.0)      # given frames, kept on their path
    times = flow.sampling_times(3)
    loss = lambda s, t, scale=4.0, substeps=2: endpoint_loss(s, t, text, empty, noise, cond, weight, times, scale,
                                                             substeps)
    assert loss(teacher, teacher, 1.0, 1).item() < 1e-10         # the teacher's own steps, unguided: no error
    assert loss(teacher, teacher).item() > 1e-6                  # guidance and substeps are what it learns

    known = cond[:, -1:]                                          # the student's sample and the target, by hand
    x, y = noise.clone(), noise.clone()
    for k in range(3):
        put = lambda z, t: z * (1 - known) + flow.interpolate(latents, noise, t) * known
        x = x + (times[k + 1] - times[k]) * student(put(x, times[k]), times[k].expand(2), text.tokens, text.mask,
                                                    text.pooled, cond)
        for j in range(2):
            s = times[k] + (times[k + 1] - times[k]) * j / 2
            v_c = teacher(put(y, s), s.expand(2), text.tokens, text.mask, text.pooled, cond)
            v_u = teacher(put(y, s), s.expand(2), empty.tokens, empty.mask, empty.pooled, cond)
            y = y + (times[k + 1] - times[k]) / 2 * (v_u + 4.0 * (v_c - v_u))
    w = weight.expand(2, 1, *x.shape[2:])
    err = ((x - y).pow(2).mean(1, keepdim=True) * w).sum() / w.sum()
    assert loss(student, teacher).item() == pytest.approx(err.item(), rel=1e-4)

    got = loss(student.requires_grad_(True), teacher)             # the student learns through its sample
    got.backward()
    grads = [p.grad for p in student.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads) and sum(g.norm() for g in grads) > 0
    seg = lambda endpoint: distill_loss(student, teacher, latents, text, empty, noise, cond, weight, times,
                                        torch.tensor([0, 1]), 4.0, 2, endpoint=endpoint).item()
    assert seg(1.0) == pytest.approx(got.item(), rel=1e-5)
    assert seg(0.5) == pytest.approx(0.5 * seg(0.0) + 0.5 * seg(1.0), rel=1e-5)


def test_a_distillation_step_weighs_object_cells_when_asked(vae_path, tmp_path):
    train(tiny_config(vae_path, steps=1), tmp_path / "teacher", sample_every=0, progress=False)
    cfg = tiny_config(vae_path, steps=1, init=str(tmp_path / "teacher"), distill_steps=2, distill_substeps=1,
                      object_weight=3.0)
    train(cfg, tmp_path / "student", sample_every=0, progress=False)
    drawn = draw_batch(LatentCache(tmp_path / "student" / "cache"), cfg, 0)
    assert "rollout" not in drawn                                        # off by default
    weight = drawn["weight"]
    assert weight.shape[3:] == drawn["latents"].shape[3:]                # per cell, not per frame
    assert set(weight.unique().tolist()) <= {0.0, 1.0, 3.0} and (weight == 3).any()


def test_time_shift_draws_training_times_nearer_the_noise(vae_path, tmp_path):
    cfg = tiny_config(vae_path, steps=1)
    train(cfg, tmp_path / "run", sample_every=0, progress=False)
    cache = LatentCache(tmp_path / "run" / "cache")
    mean_t = lambda c: torch.cat([draw_batch(cache, c, at)["t"] for at in range(64)]).mean()
    shifted = tiny_config(vae_path, steps=1, time_shift=4.0)
    assert mean_t(shifted) < mean_t(cfg) - 0.15                  # t = 0 is noise
    half = tiny_config(vae_path, steps=1, time_shift=4.0, time_shift_share=0.5)
    assert mean_t(shifted) + 0.05 < mean_t(half) < mean_t(cfg) - 0.05
    with pytest.raises(InvalidRequest, match="time_shift_share"):      # a share of no shift says nothing
        tiny_config(vae_path, time_shift_share=0.5).check()
    with pytest.raises(InvalidRequest, match="time_shift_share"):
        tiny_config(vae_path, time_shift=4.0, time_shift_share=0.0).check()
    with pytest.raises(InvalidRequest, match="time_shift"):
        tiny_config(vae_path, time_shift=0.0).check()
    with pytest.raises(InvalidRequest, match="time_shift"):            # a student trains at its sampler's times
        tiny_config(vae_path, time_shift=4.0, init="default", distill_steps=4).check()


def test_a_distillation_step_can_start_from_the_students_own_states(vae_path, tmp_path):
    train(tiny_config(vae_path, steps=1), tmp_path / "teacher", sample_every=0, progress=False)
    cfg = tiny_config(vae_path, steps=2, init=str(tmp_path / "teacher"), distill_steps=3, distill_substeps=1,
                      distill_rollout=1.0)
    metrics = train(cfg, tmp_path / "student", sample_every=0, progress=False)
    assert math.isfinite(metrics["loss"])
    drawn = draw_batch(LatentCache(tmp_path / "student" / "cache"), cfg, 0)
    assert drawn["rollout"].all() and drawn["rollout"].shape == drawn["segment"].shape
    with pytest.raises(InvalidRequest, match="distill_rollout"):
        tiny_config(vae_path, distill_rollout=1.5).check()
    with pytest.raises(InvalidRequest, match="distill_endpoint"):
        tiny_config(vae_path, distill_endpoint=-0.1).check()


def test_distilling_writes_a_student_that_samples_in_its_steps_without_guidance(vae_path, tmp_path):
    train(tiny_config(vae_path, steps=2), tmp_path / "teacher", sample_every=0, progress=False)
    cfg = tiny_config(vae_path, steps=3, init=str(tmp_path / "teacher"), distill_steps=2, distill_substeps=2)
    metrics = train(cfg, tmp_path / "student", sample_every=0, progress=False, log_every=1)
    assert math.isfinite(metrics["loss"])
    defaults = json.loads((tmp_path / "student" / "model.json").read_text())["defaults"]
    assert (defaults["steps"], defaults["cfg"]) == (2, 1.0)
    teacher, student = (load_file(str(tmp_path / d / "dit" / "dit.safetensors")) for d in ("teacher", "student"))
    assert any(not torch.equal(teacher[k], student[k]) for k in teacher)
    with pytest.raises(InvalidRequest):
        tiny_config(vae_path, distill_steps=2).check()        # a student needs its teacher


def test_distilling_further_starts_the_student_from_student_init(vae_path, tmp_path):
    train(tiny_config(vae_path, steps=2), tmp_path / "teacher", sample_every=0, progress=False)
    first = tiny_config(vae_path, steps=2, init=str(tmp_path / "teacher"), distill_steps=2, distill_substeps=2)
    train(first, tmp_path / "student", sample_every=0, progress=False)
    # learning rate 0: the student written is the one it started from, not the teacher
    again = tiny_config(vae_path, steps=1, lr=0.0, init=str(tmp_path / "teacher"), distill_steps=2,
                        distill_substeps=2, student_init=str(tmp_path / "student" / "dit"))
    train(again, tmp_path / "again", sample_every=0, progress=False)
    teacher, student, again = (load_file(str(tmp_path / d / "dit" / "dit.safetensors"))
                               for d in ("teacher", "student", "again"))
    assert any(not torch.equal(teacher[k], student[k]) for k in teacher)
    assert all(torch.equal(student[k], again[k]) for k in student)
    # a teacher that gained the frame position: the old student gains it too, at zero
    placed = tiny_config(vae_path, steps=1, lr=0.0, init=str(tmp_path / "teacher"), distill_steps=2, distill_substeps=2,
                         student_init=str(tmp_path / "student" / "dit"), position_freqs=2)
    train(placed, tmp_path / "placed", sample_every=0, progress=False)
    placed = load_file(str(tmp_path / "placed" / "dit" / "dit.safetensors"))
    assert all(torch.equal(student[k], placed[k]) for k in student) and placed["position.weight"].abs().max() == 0
    with pytest.raises(InvalidRequest, match="student_init"):
        tiny_config(vae_path, init=str(tmp_path / "teacher"), student_init=str(tmp_path / "student" / "dit")).check()


def test_conditioning_marks_given_frames_and_excludes_them_from_the_loss():
    latents = torch.randn(64, 16, 5, 2, 3)
    cond, weight = conditioning(latents, random.Random(0), prob=0.5)
    mask = cond[:, 16:]
    assert cond.shape == (64, 17, 5, 2, 3)
    assert torch.equal(mask[:, :, :, :1, :1], 1 - weight)                   # given frames carry no loss
    assert torch.equal(cond[:, :16], latents * mask)                        # known latents where given
    given = mask[:, 0, :, 0, 0]
    assert 10 < (given.sum(1) > 0).sum() < 54                               # about half the clips conditioned
    assert (given.sum(1) < 5).all()                                         # never every frame
    none, w = conditioning(latents, random.Random(0), prob=0.0)
    assert none.abs().sum() == 0 and (w == 1).all()


def test_object_mask_covers_the_cells_each_latent_frame_encodes():
    nan = [float("nan")] * 4
    # 9 frames at 32x48 px: latent frames encode frames {0}, {1-4}, {5-8}; 8-px cells
    bbox = torch.tensor([[[0, 0, 7, 7]] + [nan] * 3 + [[20, 9, 30, 15]] + [nan] * 4,    # seen in frames 0 and 4
                         [nan] * 8 + [[40, 24, 48, 32]]])                              # seen in frame 8 only
    mask = object_mask(bbox, 32, 48, spatial=8, temporal=4)
    assert mask.shape == (3, 4, 6) and mask.dtype == torch.uint8
    assert mask[0].nonzero().tolist() == [[0, 0]]
    assert mask[1].nonzero().tolist() == [[1, 2], [1, 3]]                  # x 20-30 touches cells 2, 3; y 9-15 row 1
    assert mask[2].nonzero().tolist() == [[3, 5]]


def test_object_weight_shifts_the_loss_to_objects_and_weight_1_is_the_frame_loss():
    torch.manual_seed(0)
    model = DiT(DIT_PRESETS["tiny"])
    torch.nn.init.normal_(model.final.linear.weight, std=0.1)               # a model that predicts something
    latents, noise = torch.randn(2, 16, 3, 4, 4), torch.randn(2, 16, 3, 4, 4)
    text = TextEmbedding(torch.randn(2, 5, 384), torch.ones(2, 5, dtype=torch.bool), torch.randn(2, 384))
    cond, frames = conditioning(latents, random.Random(1), prob=1.0)
    objects = torch.zeros(2, 1, 3, 4, 4)
    objects[:, :, :, 1:3, 1:3] = 1
    t = torch.full((2,), 0.5)
    plain = flow_loss(model, latents, text, t, noise, cond, frames)
    assert torch.allclose(flow_loss(model, latents, text, t, noise, cond, loss_weight(frames, objects, 1.0)), plain)
    # an object weight moves the loss toward the error on object cells (and it stays a weighted mean)
    x_t = flow.interpolate(latents, noise, t)
    err = (model(x_t, t, text.tokens, text.mask, text.pooled, cond) - flow.velocity_target(latents, noise)) \
        .pow(2).mean(1, keepdim=True)
    on_objects = (err * frames * objects).sum() / (frames * objects).expand_as(err).sum()
    heavy = flow_loss(model, latents, text, t, noise, cond, loss_weight(frames, objects, 50.0))
    assert abs(heavy - on_objects) < abs(plain - on_objects)
    with pytest.raises(InvalidRequest, match="object_weight"):
        TrainConfig(object_weight=0).check()


def test_toyworld_cache_holds_object_masks_that_an_object_weighted_run_uses(vae_path, tmp_path):
    train(tiny_config(vae_path, steps=2, object_weight=4.0), tmp_path, sample_every=0, progress=False)
    cache = LatentCache(tmp_path / "cache")
    assert cache.masked == len(cache) == 8
    assert cache.batch(random.Random(0), random.Random(0), 64)[3] is None                # not asked for
    bucket, latents, _, objects = cache.batch(random.Random(0), random.Random(0), 64, objects=True)
    assert objects.shape == (latents.shape[0], 1, *latents.shape[2:])
    assert 0 < objects.mean() < 1                                          # objects, and background around them
    assert json.loads((tmp_path / "model.json").read_text())["trained"]["recipe"]["object_weight"] == 4.0


def test_reverse_pairs_cache_each_clips_reversal_and_train_pairs_on_one_noise(vae_path, tmp_path):
    cfg = tiny_config(vae_path, steps=2, cache_clips=16, reverse_pairs=0.5, aspects=("1:1",), image_resolutions=())
    train(cfg, tmp_path, sample_every=0, progress=False)
    cache = LatentCache(tmp_path / "cache")
    assert 0 < cache.pairs("reverses") and len(cache) == 16 + cache.pairs("reverses")   # each reversal by its clip
    assert cache.pairs("reshapes") == 0
    for first, second in (p for pairs in cache.pairs_by_kind["reverses"].values() for p in pairs):
        a, b = cache.latents(first), cache.latents(second)
        assert a.shape == b.shape and not torch.equal(a, b) and first[2] != second[2]   # other frames, other words
    drawn = {at: draw_batch(cache, cfg, at) for at in range(8)}
    paired = [at for at, d in drawn.items() if torch.equal(d["noise"][0], d["noise"][1])]
    assert 0 < len(paired) < 8                                              # about half the steps are pairs
    for d in (drawn[at] for at in paired):
        assert len(d["prompts"]) % 2 == 0
        assert torch.equal(d["noise"][0::2], d["noise"][1::2]) and torch.equal(d["t"][0::2], d["t"][1::2])
        assert torch.equal(d["weight"][0::2], d["weight"][1::2])
        assert all(bool(p) == bool(q) for p, q in zip(d["prompts"][0::2], d["prompts"][1::2]))
    plain = tiny_config(vae_path)                                         # without reverse_pairs: no pairs
    assert not any(torch.equal(d["noise"][0], d["noise"][1]) for d in (draw_batch(cache, plain, at) for at in paired))
    train(tiny_config(vae_path, steps=1), tmp_path / "other", sample_every=0, progress=False)
    with pytest.raises(InvalidRequest, match="reverse_pairs"):               # a cache built without reversals
        draw_batch(LatentCache(tmp_path / "other" / "cache"), cfg, paired[0])


def test_shape_pairs_cache_each_clips_reshaped_twin_and_the_pair_loss_weighs_their_difference(vae_path, tmp_path):
    cfg = tiny_config(vae_path, steps=2, cache_clips=12, shape_pairs=0.5, reverse_pairs=0.25, pair_weight=4.0,
                      aspects=("1:1",), image_resolutions=())
    train(cfg, tmp_path, sample_every=0, progress=False)
    cache = LatentCache(tmp_path / "cache")
    assert 0 < cache.pairs("reshapes") and 0 < cache.pairs("reverses")
    assert len(cache) == 12 + cache.pairs("reshapes") + cache.pairs("reverses")
    for first, second in (p for pairs in cache.pairs_by_kind["reshapes"].values() for p in pairs):
        assert not torch.equal(cache.latents(first), cache.latents(second))
        assert first[2]["medium"] != second[2]["medium"]                  # other shape words
    draws = [draw_batch(cache, cfg, at) for at in range(16)]
    assert {d["paired"] for d in draws} == {None, "reverses", "reshapes"}
    for d in draws:                       # pairs mark which of them have different captions (not both dropped)
        assert ("contrast" in d) == bool(d["paired"])
        if d["paired"]:
            assert d["contrast"].tolist() == [a != b for a, b in zip(d["prompts"][0::2], d["prompts"][1::2])]
    with pytest.raises(InvalidRequest, match="reverse_pairs"):
        TrainConfig(reverse_pairs=0.6, shape_pairs=0.6).check()
    with pytest.raises(InvalidRequest, match="pair_weight"):
        TrainConfig(pair_weight=-1).check()

    # the pair loss: zero weight or no contrasting pair is the plain loss; otherwise it adds the difference's error
    torch.manual_seed(0)
    model = DiT(DIT_PRESETS["tiny"])
    torch.nn.init.normal_(model.final.linear.weight, std=0.1)               # a model that predicts something
    latents, noise = torch.randn(4, 16, 3, 4, 4), torch.randn(2, 16, 3, 4, 4).repeat_interleave(2, dim=0)
    latents[1] = latents[0] + 0.5 * torch.randn(16, 3, 4, 4)
    t = torch.tensor([0.3, 0.3, 0.7, 0.7])
    text = TextEmbedding(torch.randn(4, 5, 384), torch.ones(4, 5, dtype=torch.bool), torch.randn(4, 384))
    cond, frames = conditioning(latents, random.Random(1), prob=0.0)
    plain = flow_loss(model, latents, text, t, noise, cond, frames)
    assert torch.equal(flow_loss(model, latents, text, t, noise, cond, frames, 0.0, torch.tensor([True, True])), plain)
    assert torch.equal(flow_loss(model, latents, text, t, noise, cond, frames, 4.0, torch.tensor([False, False])),
                       plain)
    one = flow_loss(model, latents, text, t, noise, cond, frames, 1.0, torch.tensor([True, False]))
    four = flow_loss(model, latents, text, t, noise, cond, frames, 4.0, torch.tensor([True, False]))
    assert plain < one < four and torch.allclose(four - plain, 4 * (one - plain))


def test_resume_is_exact(vae_path, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(tiny_config(vae_path, steps=4), straight, sample_every=0, progress=False)
    train(tiny_config(vae_path, steps=2), resumed, sample_every=0, progress=False)
    steps_run = json.loads((resumed / "model.json").read_text())["trained"]["steps_run"]
    train(tiny_config(vae_path, steps=4), resumed, sample_every=0, progress=False)
    # model.json says how far each checkpoint got, beside the recipe's stopping point
    trained = json.loads((resumed / "model.json").read_text())["trained"]
    assert (steps_run, trained["steps_run"], trained["recipe"]["steps"]) == (2, 4, 4)
    a, b = weights(straight), weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the run is a model folder: model.json, dit/ (EMA) and vae/
    assert (straight / "model.json").is_file() and (straight / "dit" / "dit.safetensors").is_file()
    assert (straight / "vae" / "vae.safetensors").is_file()


def test_loss_falls_when_overfitting_a_tiny_cache(vae_path, tmp_path):
    cfg = tiny_config(vae_path, cache_clips=2, shard_clips=2, steps=60, lr=2e-3, text_dropout=0.0, cond_prob=0.0)
    train(cfg, tmp_path, sample_every=0, log_every=10, progress=False)
    losses = [json.loads(line)["loss"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert losses[-1] < 0.8 * losses[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# `straightline train` through the CLI, once per step target given, in one launch; after each, rank 0 keeps a
# copy of the train state as STEPS.train_state.* (what the run held at that step)
LAUNCHED = """
import shutil, sys
from pathlib import Path
import torch
from straightline.cli import main
vae, out, *rest = sys.argv[1:]
for steps in [a for a in rest if a.isdigit()]:
    assert main(["train", "--out", out, "--preset", "tiny", "--vae", vae, "--resolutions", "32",
                 "--image-resolutions", "32", "--aspects", "16:9,1:1", "--seconds", "0.5", "--fps", "8",
                 "--cache-clips", "8", "--shard-clips", "4", "--token-budget", "64", "--warmup", "2",
                 "--sample-every", "0", "--steps", steps, *[a for a in rest if not a.isdigit()]]) == 0
    if not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0:
        for name in ("train_state.safetensors", "train_state.json"):
            shutil.copy(Path(out) / name, Path(out) / f"{steps}.{name}")
if torch.distributed.is_initialized():
    torch.distributed.barrier()              # every rank done with gloo before any tears it down
    torch.distributed.destroy_process_group()
"""


def launch(processes: int, vae_path, out, *args) -> list[dict]:
    """`torchrun --nproc_per_node PROCESSES` of the script above on CPU (gloo), one thread per process. Returns
    the last metrics each rank printed (the CLI prints them at the end of each run)."""
    script = out.parent / "launched.py"
    script.write_text(LAUNCHED)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_port",
           str(_free_port()), str(script), str(vae_path), str(out), *map(str, args)]
    done = subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True,
                          timeout=240, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    decode = json.JSONDecoder().raw_decode           # ranks print at once: lines may run into each other
    return [decode(done.stdout, i.start())[0] for i in re.finditer(r'\{"step"', done.stdout)]


def at_step(run, steps: int, into):
    """A copy of `run` (its cache) holding the train state it had at `steps`."""
    into.mkdir()
    shutil.copytree(run / "cache", into / "cache")
    for name in ("train_state.safetensors", "train_state.json"):
        shutil.copy(run / f"{steps}.{name}", into / name)
    return into


def assert_close(a: dict, b: dict, atol: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    for k, value in a.items():
        assert torch.allclose(value, b[k], rtol=1e-5, atol=atol), (k, (value - b[k]).abs().max())


@pytest.fixture(scope="module")
def fsdp_run(vae_path, tmp_path_factory):
    """2 processes under FSDP2 with activation checkpointing, to step 3, then resumed in the same launch to 5."""
    out = tmp_path_factory.mktemp("fsdp") / "run"
    launch(2, vae_path, out, 3, 5, "--parallel", "fsdp", "--checkpoint-activations")
    return out


def test_fsdp_on_two_processes_writes_whole_checkpoints_and_ddp_resumes_them_exactly(vae_path, fsdp_run,
                                                                                      tmp_path):
    """The FSDP run's checkpoint holds whole tensors (gathered from the shards), the same layout as one
    process writes; resumed under DDP on 2 processes, steps 4-5 give what FSDP's own steps 4-5 gave, so
    sharding changes nothing but memory."""
    assert len(list((fsdp_run / "cache").glob("shard-*.json"))) == 2        # each rank built one shard
    losses = [json.loads(line)["loss"] for line in (fsdp_run / "log.jsonl").read_text().splitlines()]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    fsdp = weights(fsdp_run)
    assert fsdp["model.blocks.0.attn.q.weight"].shape == (64, 64)            # whole, not a (32, 64) shard
    assert fsdp["opt.blocks.0.attn.q.weight.exp_avg"].shape == (64, 64)
    assert fsdp["opt.blocks.0.attn.q.weight.step"] == 5
    single = tmp_path / "single"
    train(tiny_config(vae_path, steps=1), single, sample_every=0, progress=False)
    assert weights(single).keys() == fsdp.keys()
    # the model folder holds the gathered EMA and loads for sampling
    dit, _, _ = load_model(fsdp_run)
    for name, value in dit.state_dict().items():
        assert torch.equal(value, fsdp[f"ema.{name}"].half().float()), name
    ddp = at_step(fsdp_run, 3, tmp_path / "ddp")
    ranks = launch(2, vae_path, ddp, 5, "--parallel", "ddp")
    assert [m["step"] for m in ranks] == [5, 5]
    assert ranks[0]["bucket"] == ranks[1]["bucket"] and ranks[0]["loss"] != ranks[1]["loss"]  # one bucket, own clips
    assert json.loads((ddp / "train_state.json").read_text())["step"] == 5
    three = load_file(str(fsdp_run / "3.train_state.safetensors"))
    assert not torch.equal(weights(ddp)["model.final.linear.weight"], three["model.final.linear.weight"])
    assert_close(weights(ddp), fsdp)


def test_fsdp_checkpoint_resumes_on_three_processes_and_on_one(vae_path, fsdp_run, tmp_path):
    """The step-3 state of the 2-process run loaded on 3 processes (uneven shards: 64 rows do not split in
    3) and gathered again is bit for bit the same; training goes on from there, then on 1 process."""
    run = at_step(fsdp_run, 3, tmp_path / "three")
    launch(3, vae_path, run, 3, 4, "--parallel", "fsdp")            # 3: load and save only; 4: one more step
    before = load_file(str(fsdp_run / "3.train_state.safetensors"))
    again = load_file(str(run / "3.train_state.safetensors"))
    assert before.keys() == again.keys() and all(torch.equal(before[k], again[k]) for k in before)
    four = weights(run)
    assert json.loads((run / "train_state.json").read_text())["step"] == 4
    assert four["opt.final.linear.weight.step"] == 4
    assert not torch.equal(four["model.final.linear.weight"], before["model.final.linear.weight"])
    # and on 1 process, in this one
    train(tiny_config(vae_path, steps=4), run, sample_every=0, progress=False)        # load and save only
    assert all(torch.equal(four[k], v) for k, v in weights(run).items())
    train(tiny_config(vae_path, steps=6), run, sample_every=0, progress=False)
    six = weights(run)
    assert json.loads((run / "train_state.json").read_text())["step"] == 6
    assert six["opt.final.linear.weight.step"] == 6
    assert not torch.equal(six["model.final.linear.weight"], four["model.final.linear.weight"])
    assert all(math.isfinite(json.loads(line)["loss"]) for line in (run / "log.jsonl").read_text().splitlines())


def test_activation_checkpointing_trains_the_same_weights(vae_path, tmp_path):
    plain, recomputed = tmp_path / "plain", tmp_path / "recomputed"
    train(tiny_config(vae_path, steps=2), plain, sample_every=0, progress=False)
    train(tiny_config(vae_path, steps=2), recomputed, sample_every=0, progress=False, checkpoint_activations=True)
    assert_close(weights(plain), weights(recomputed), atol=0)


def test_compiled_blocks_train_the_same_weights_on_every_bucket(vae_path, tmp_path):
    """--compile fuses each block (torch.compile, one shape per bucket with the text padded), on a CPU too; a
    bucket past torch's default of 8 compiled shapes would silently run eagerly, so the limit is raised."""
    plain, fused = tmp_path / "plain", tmp_path / "fused"
    train(tiny_config(vae_path, steps=3), plain, sample_every=0, progress=False)
    train(tiny_config(vae_path, steps=3), fused, sample_every=0, progress=False, compile=True)
    assert_close(weights(plain), weights(fused), atol=1e-4)
    assert torch._dynamo.config.recompile_limit >= 64


def test_train_state_of_an_older_run_still_resumes(vae_path, tmp_path):
    """Train states written before FSDP keyed optimizer moments by parameter index (opt.0.exp_avg)."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(tiny_config(vae_path, steps=3), straight, sample_every=0, progress=False)
    train(tiny_config(vae_path, steps=2), resumed, sample_every=0, progress=False)
    # the optimizer's order
    index = {name: i for i, (name, _) in enumerate(DiT(DIT_PRESETS["tiny"]).named_parameters())}
    old = {}
    for k, v in weights(resumed).items():
        if k.startswith("opt."):
            name, moment = k[len("opt."):].rsplit(".", 1)
            k = f"opt.{index[name]}.{moment}"
        old[k] = v
    save_file(old, str(resumed / "train_state.safetensors"))
    train(tiny_config(vae_path, steps=3), resumed, sample_every=0, progress=False)
    a, b = weights(straight), weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fine_tune_from_a_model_folder_on_a_video_folder(vae_path, tmp_path):
    """`--init` a trained model, `--folder` of your videos (mp4 + captions.jsonl): the cache holds your clips
    with their captions, and the run starts from the given weights."""
    from straightline.data import export_toyworld

    export_toyworld(tmp_path / "videos", 3, resolution=32, aspects=("16:9", "1:1"), seconds=0.5, fps=8,
                    progress=False)
    (tmp_path / "videos" / "videos" / "000002.mp4").write_bytes(b"not a video")   # corrupt: reported, skipped
    base = tmp_path / "base"
    train(tiny_config(vae_path, steps=2), base, sample_every=0, progress=False)
    info = json.loads((base / "model.json").read_text())
    info["defaults"] |= {"cfg": 3.0, "cfg_interval": [0.0, 0.5], "fps": 24.0}
    (base / "model.json").write_text(json.dumps(info))
    tuned = tmp_path / "tuned"
    train(tiny_config(vae_path, steps=1, init=str(base), lr=1e-9, warmup=1, seed=1), tuned,
          folder=tmp_path / "videos", sample_every=0, progress=False)
    cache = LatentCache(tuned / "cache")
    assert len(cache) == 2
    captions = [item[2] for items in cache.by_bucket.values() for item in items]
    assert all(c["medium"] for c in captions)
    assert cache.masked == 0            # video files carry no object ground truth: every cell weighs alike
    # the base's sampling defaults came along (its model.json, tuned by hand here); its sizes did not
    assert json.loads((tuned / "model.json").read_text())["defaults"] == {
        "fps": 8.0, "resolution": 32, "aspect": "16:9", "seconds": 0.5, "cfg": 3.0, "cfg_interval": [0.0, 0.5]}
    # seed 1 would initialise differently from the base run's seed 0: matching the base weights shows --init
    start = load_file(str(base / "dit" / "dit.safetensors"))             # the base model's (EMA) weights
    tuned_weights = weights(tuned)
    key = "blocks.0.attn.q.weight"
    assert torch.allclose(start[key].float(), tuned_weights[f"model.{key}"], atol=1e-5)


def test_fine_tuning_onto_input_embeddings_and_frame_position_starts_from_the_model_and_generates(vae_path, tmp_path):
    from straightline.pipeline import Pipeline

    base, tuned = tmp_path / "base", tmp_path / "tuned"
    train(tiny_config(vae_path, steps=2), base, sample_every=0, progress=False)
    train(tiny_config(vae_path, steps=1, init=str(base), lr=1e-9, warmup=1, text_features="last+embeddings",
                      position_freqs=3), tuned, sample_every=0, progress=False)
    start, now = load_file(str(base / "dit" / "dit.safetensors")), load_file(str(tuned / "dit" / "dit.safetensors"))
    assert now["text_tokens.weight"].shape == (64, 768)
    assert torch.allclose(now["text_tokens.weight"][:, :384].float(), start["text_tokens.weight"].float(), atol=1e-4)
    assert now["text_tokens.weight"][:, 384:].abs().max() < 1e-4               # new columns: from zero
    assert now["position.weight"].shape == (64, 18) and now["position.weight"].abs().max() < 1e-4   # the frame position
    with pytest.raises(InvalidRequest, match="position_freqs"):    # a model reads one kind of frame position
        train(tiny_config(vae_path, steps=2, init=str(tuned), position_freqs=4), tmp_path / "other", progress=False)
    tuned_info = json.loads((tuned / "model.json").read_text())
    assert tuned_info["text_features"] == "last+embeddings"
    assert "cfg" not in tuned_info["defaults"]                       # the base run had none to pass on
    # a student of the base (the last layer only, 384 wide) still runs beside the widened model as a preset
    shutil.copytree(base / "dit", tuned / "dit-fast")
    info = json.loads((tuned / "model.json").read_text())
    (tuned / "model.json").write_text(json.dumps(info | {"presets": {"fast": {"dit": "dit-fast", "steps": 1}}}))
    pipe = Pipeline(str(tuned))
    assert pipe.text.dim == 768
    wide, student = pipe.generate([pipe.validate("a red ball", steps=1, seed=0),
                                   pipe.validate("a red ball", preset="fast", seed=0)])
    assert wide.frames.shape[0] == student.frames.shape[0] == 5
    with pytest.raises(InvalidRequest, match="text_features"):
        TrainConfig(text_features="first").check()


def test_cli_trains_a_model_folder_that_generate_uses(vae_path, tmp_path, capsys):
    from straightline.cli import main
    from straightline.video_io import probe

    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--preset", "tiny", "--vae", str(vae_path), "--resolutions", "32",
                 "--image-resolutions", "32", "--aspects", "1:1", "--seconds", "0.5", "--fps", "8",
                 "--cache-clips", "4", "--token-budget", "64", "--steps", "2", "--sample-every", "2"]) == 0
    assert len(list((out / "samples").glob("step0000002_*.mp4"))) == 3      # preview videos
    assert main(["generate", "a red ball", "--model", str(out), "--steps", "2", "--seed", "1",
                 "-o", str(tmp_path / "ball.mp4")]) == 0
    info = probe(tmp_path / "ball.mp4")
    # the run's defaults: 32 px, 0.5 s at 8 fps
    assert (info["width"], info["height"], info["num_frames"]) == (32, 32, 5)
    assert main(["train", "--out", str(tmp_path / "bad"), "--cond-prob", "2"]) == 2
    assert "cond_prob" in capsys.readouterr().err


def test_a_distillation_on_whole_samples_runs_under_ddp_and_fsdp(vae_path, tmp_path):
    """endpoint_loss calls the student once per sampling step before one backward: both wrappers must take it."""
    train(tiny_config(vae_path, steps=1), tmp_path / "teacher", sample_every=0, progress=False)
    for parallel in ("ddp", "fsdp"):
        (tmp_path / parallel).mkdir()
        metrics = launch(2, vae_path, tmp_path / parallel / "run", 2, "--parallel", parallel, "--init",
                         str(tmp_path / "teacher"), "--distill-steps=2", "--distill-substeps=1",   # digits alone: steps
                         "--distill-endpoint=1")
        assert len(metrics) == 2 and all(m["step"] == 2 and math.isfinite(m["loss"]) for m in metrics)


def test_auto_shards_models_from_preset_s_up_under_torchrun():
    from straightline.errors import InvalidRequest
    from straightline.train import parallel_mode

    with torch.device("meta"):
        tiny, small, large = (DiT(DIT_PRESETS[p]) for p in ("tiny", "S", "L"))
    assert [parallel_mode("auto", m, 2) for m in (tiny, small, large)] == ["ddp", "fsdp", "fsdp"]
    assert parallel_mode("fsdp", tiny, 2) == "fsdp" and parallel_mode("ddp", large, 8) == "ddp"
    assert parallel_mode("fsdp", large, 1) == "none"                       # one process: nothing to shard
    with pytest.raises(InvalidRequest, match="parallel"):
        parallel_mode("zero3", tiny, 2)
