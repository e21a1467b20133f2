"""Data: bucket math, ToyWorld streams, the bucket sampler, video folders with bad files, export round trip."""

import itertools
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from straightline import data
from straightline.data import (Bucket, BucketBatchSampler, ToyWorldBatches, ToyWorldDataset, VideoFolderDataset,
                               batch_size_for, collate, export_toyworld, format_inspection, inspect_folder,
                               make_buckets, nearest_bucket, to_model_input)
from straightline.errors import InvalidRequest, MediaError
from straightline.world import Scene, render, sample_scene
from straightline.world.captions import captions
from straightline.world.scene import is_held_out

MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"
FPS = 8.0
TINY = Bucket(1, 16, 16)  # renders in about a millisecond: for tests that need many draws


# --- buckets ---------------------------------------------------------------------------------------------

def test_buckets_are_valid_shapes_with_the_asked_short_side():
    buckets = make_buckets(resolutions=(128, 256), durations=(0.0, 1.0, 2.0), fps=24)
    assert len(buckets) == 2 * 5 * 3 and len(set(buckets)) == len(buckets)
    for b in buckets:
        assert (b.frames - 1) % 4 == 0 and b.height % 16 == 0 and b.width % 16 == 0
        assert min(b.height, b.width) in (128, 256)
    assert {b.frames for b in buckets} == {1, 25, 49}
    assert Bucket(25, 128, 224) in buckets and Bucket(1, 448, 256) in buckets  # 16:9 and 9:16


def test_latent_tokens_and_batch_sizes():
    assert Bucket(1, 256, 256).latent_tokens == 16 * 16
    assert Bucket(17, 128, 224).latent_tokens == 5 * 8 * 14  # 1 + 16/4 latent frames, 8 × 14 patches
    for b in make_buckets(fps=24):
        size = batch_size_for(b, 8192)
        assert size >= 1 and (size == 1 or size * b.latent_tokens <= 8192 < (size + 1) * b.latent_tokens)
    assert batch_size_for(Bucket(97, 256, 448), 100) == 1


@pytest.mark.parametrize("shape", [(6, 64, 64), (0, 64, 64), (5, 100, 64), (5, 64, 8)])
def test_invalid_bucket_is_named(shape):
    with pytest.raises(InvalidRequest):
        Bucket(*shape)


def test_nearest_bucket_prefers_aspect_then_no_upscaling_then_length():
    buckets = make_buckets(resolutions=(128, 256), durations=(0.0, 1.0, 2.0), fps=24)
    assert nearest_bucket(240, 720, 1280, buckets) == Bucket(49, 256, 448)
    assert nearest_bucket(28, 240, 320, buckets) == Bucket(25, 128, 176)   # 4:3, too small for 256
    assert nearest_bucket(1, 500, 500, buckets) == Bucket(1, 256, 256)     # an image
    assert nearest_bucket(30, 60, 100, buckets) == Bucket(25, 128, 224)    # tiny: least upscaled
    assert nearest_bucket(0, 60, 100, buckets) is None


def test_to_model_input_layout_and_range():
    video = torch.randint(0, 256, (2, 5, 16, 32, 3), dtype=torch.uint8)
    x = to_model_input(video)
    assert x.shape == (2, 3, 5, 16, 32) and x.dtype == torch.float32 and x.is_contiguous()
    assert x.min() >= -1 and x.max() <= 1
    assert x[1, 2, 3, 4, 5] == video[1, 3, 4, 5, 2] / 127.5 - 1


# --- ToyWorld --------------------------------------------------------------------------------------------

def test_toyworld_samples_have_their_bucket_shape():
    buckets = [Bucket(5, 64, 112), Bucket(1, 64, 64), Bucket(9, 112, 64)]
    for s in itertools.islice(ToyWorldDataset(buckets, fps=FPS, seed=3), 6):
        b = s["bucket"]
        assert s["video"].shape == (b.frames, b.height, b.width, 3) and s["video"].dtype == torch.uint8
        assert isinstance(s["seed"], int) and isinstance(s["caption"], str)
        assert Scene.from_json(s["scene"]).seed == s["seed"]


def test_caption_dropout_rate_and_levels_and_no_held_out_on_train():
    n, p = 1000, 0.3
    samples = list(itertools.islice(ToyWorldDataset([TINY], fps=FPS, caption_dropout=p,
                                                    caption_levels={"short": 1.0}), n))
    dropped = sum(s["caption"] == "" for s in samples) / n
    assert abs(dropped - p) < 5 * (p * (1 - p) / n) ** 0.5  # five standard deviations: flakes ~1 in 10^6
    for s in samples:
        scene = Scene.from_json(s["scene"])
        assert not any(is_held_out(o) for o in scene.objects)
        assert s["caption"] in ("", captions(scene)["short"])


def test_scene_seeds_never_collide_across_ranks_and_workers(monkeypatch):
    seeds = []
    for rank, worker in itertools.product(range(3), range(2)):
        monkeypatch.setattr(data, "_worker", lambda: (worker, 2))
        ds = ToyWorldDataset([TINY], fps=FPS, rank=rank, world_size=3)
        seeds += [s["seed"] for s in itertools.islice(ds, 20)]
    assert len(set(seeds)) == len(seeds) == 120


def test_toyworld_batches_share_the_bucket_sequence_across_ranks():
    buckets = [TINY, Bucket(5, 16, 32)]  # 1 and 4 tokens: batches of 8 and 2
    runs = [list(itertools.islice(ToyWorldBatches(ToyWorldDataset(buckets, fps=FPS, rank=r, world_size=2), 8), 6))
            for r in range(2)]
    assert [b["bucket"] for b in runs[0]] == [b["bucket"] for b in runs[1]]
    assert len({b["bucket"] for b in runs[0]}) == 2
    for batch in runs[0]:
        b = batch["bucket"]
        assert batch["video"].shape == (batch_size_for(b, 8), b.frames, b.height, b.width, 3)
        assert len(batch["caption"]) == batch["video"].shape[0]
    seeds = [set(itertools.chain(*(b["seed"] for b in run))) for run in runs]
    assert not seeds[0] & seeds[1]
    # DataLoader workers build every other batch; the loader's round robin restores the bucket sequence
    loader = DataLoader(ToyWorldBatches(ToyWorldDataset(buckets, fps=FPS, rank=0, world_size=2), 8),
                        batch_size=None, num_workers=2)
    assert [b["bucket"] for b in itertools.islice(loader, 6)] == [b["bucket"] for b in runs[0]]


# --- sampler ---------------------------------------------------------------------------------------------

BUCKETS = [Bucket(1, 16, 16), Bucket(5, 16, 32), Bucket(9, 32, 16)]
BUCKET_OF = [BUCKETS[i % 3] for i in range(60)][:-7]  # 20, 18, 15 items
SIZES = {BUCKETS[0]: 2, BUCKETS[1]: 3, BUCKETS[2]: 1}


def _epoch(rank, world_size, epoch=0, **kw):
    sampler = BucketBatchSampler(BUCKET_OF, SIZES.get, seed=5, rank=rank, world_size=world_size, **kw)
    sampler.set_epoch(epoch)
    return list(sampler), len(sampler)


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_sampler_batches_are_single_bucket_disjoint_and_in_step(world_size):
    runs = [_epoch(rank, world_size) for rank in range(world_size)]
    sequences = []
    for batches, length in runs:
        assert len(batches) == length > 0
        buckets = [{BUCKET_OF[i] for i in batch} for batch in batches]
        assert all(len(b) == 1 for b in buckets)
        assert all(len(batch) == SIZES[BUCKET_OF[batch[0]]] for batch in batches)
        sequences.append([b.pop() for b in buckets])
    assert all(seq == sequences[0] for seq in sequences)  # the bucket of step k is the same on every rank
    indices = [i for batches, _ in runs for batch in batches for i in batch]
    assert len(indices) == len(set(indices))


def test_sampler_epochs_differ_and_repeat():
    assert _epoch(0, 2, epoch=0) == _epoch(0, 2, epoch=0)
    assert _epoch(0, 2, epoch=0)[0] != _epoch(0, 2, epoch=1)[0]


def test_sampler_without_drop_last_covers_every_index_with_full_batches():
    runs = [_epoch(rank, 3, drop_last=False) for rank in range(3)]
    assert len({length for _, length in runs}) == 1
    seen = {i for batches, _ in runs for batch in batches for i in batch}
    assert seen == set(range(len(BUCKET_OF)))
    assert all(len(batch) == SIZES[BUCKET_OF[batch[0]]] for batches, _ in runs for batch in batches)


# --- folders ---------------------------------------------------------------------------------------------

FOLDER_BUCKETS = make_buckets(resolutions=(64,), aspects=("16:9", "1:1", "4:3"), durations=(0.0, 1.0), fps=FPS)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("toyworld")
    summary = export_toyworld(out, 4, resolution=64, aspects=("16:9", "1:1"), seconds=1.0, fps=FPS, seed=11,
                              progress=False)
    return out, summary


def test_export_reads_back_with_its_captions(exported):
    out, summary = exported
    assert summary["clips"] == 4 and summary["frames"] == 9 and summary["sizes"] == {"112x64": 2, "64x64": 2}
    lines = [json.loads(line) for line in (out / "captions.jsonl").read_text().splitlines()]
    assert [r["file"] for r in lines] == [f"videos/{i:06d}.mp4" for i in range(4)]
    ds = VideoFolderDataset(out, FOLDER_BUCKETS, fps=FPS, caption_levels={"medium": 1.0})
    assert len(ds) == 4 and not ds.skipped and ds.missing_captions == 0
    for i, record in enumerate(lines):
        sample = ds[i]
        width, height = map(int, record["size"].split("x"))
        assert sample["video"].shape == (9, height, width, 3) and sample["caption"] == record["caption"]
        truth = json.loads((out / "ground_truth" / f"{i:06d}.json").read_text())
        assert truth["scene"]["seed"] == record["seed"] == 11 + i
        scene = sample_scene(11 + i, aspect=width / height, duration=1.0)
        clip = render(scene, width, height, fps=FPS, num_frames=9)
        assert (sample["video"].float() - clip.frames.float()).abs().mean() < 6  # H.264 at crf 18


def test_probe_index_is_reused_until_a_file_changes(exported, monkeypatch):
    out, _ = exported
    VideoFolderDataset(out, FOLDER_BUCKETS, fps=FPS)
    assert (out / data.INDEX_NAME).is_file()
    probed, real_probe = [], data.probe
    monkeypatch.setattr(data, "probe", lambda path: probed.append(Path(path).name) or real_probe(path))
    VideoFolderDataset(out, FOLDER_BUCKETS, fps=FPS)
    assert probed == []
    video = out / "videos" / "000001.mp4"
    os.utime(video, ns=(video.stat().st_atime_ns, video.stat().st_mtime_ns + 10**9))
    assert len(VideoFolderDataset(out, FOLDER_BUCKETS, fps=FPS)) == 4
    assert probed == ["000001.mp4"]


@pytest.fixture
def messy(exported, tmp_path):
    """A folder of good and bad files: sidecar captions, a captions.jsonl, one file without a caption."""
    out, _ = exported
    if not (MEDIA / "realshort.mp4").is_file():
        pytest.skip(f"shared test clips not found at {MEDIA}")
    folder = tmp_path / "messy"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(out / "videos" / "000000.mp4", folder / "wide.mp4")
    shutil.copy(out / "videos" / "000001.mp4", folder / "square.mp4")
    shutil.copy(MEDIA / "realshort.mp4", folder / "sub" / "real.mp4")
    Image.fromarray(np.full((50, 60, 3), 200, np.uint8)).save(folder / "still.png")
    (folder / "garbage.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    (folder / "empty.mp4").write_bytes(b"")
    real = (MEDIA / "realshort.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(real[: len(real) * 6 // 10])  # its index (moov) is at the end: lost
    square = (out / "videos" / "000001.mp4").read_bytes()
    (folder / "cut.mp4").write_bytes(square[: len(square) * 9 // 10])  # index first: probes fine, frames stop
    for name in ("wide", "square", "garbage", "empty", "truncated", "cut"):
        (folder / f"{name}.txt").write_text(f"a {name} clip\n")
    (folder / "captions.jsonl").write_text(json.dumps({"video": "sub/real.mp4", "text": "a real clip"}) + "\n")
    return folder


def test_a_full_epoch_over_bad_files_completes_and_counts_them(messy, caplog):
    caplog.set_level(logging.WARNING, logger="straightline.data")
    ds = VideoFolderDataset(messy, FOLDER_BUCKETS, fps=FPS)
    assert set(ds.skipped) == {"garbage.mp4", "empty.mp4", "truncated.mp4"}
    assert ds.missing_captions == 1  # still.png
    assert {item.path: str(item.bucket) for item in ds.items}["sub/real.mp4"] == "9f 80x64"
    sampler = BucketBatchSampler(ds.bucket_of, lambda b: 1, seed=0)
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=collate)
    batches = list(loader)
    assert len(batches) == len(sampler) == 5
    for batch in batches:
        b = batch["bucket"]
        assert batch["video"].shape == (1, b.frames, b.height, b.width, 3)
    assert "cut.mp4" in ds.skipped and "decoded" in ds.skipped["cut.mp4"]
    assert [p for batch in batches for p in batch["path"]].count("square.mp4") == 2  # stood in for cut.mp4
    assert {c for batch in batches for c in batch["caption"]} >= {"a real clip", "a wide clip", ""}
    assert sum("garbage.mp4" in r.getMessage() for r in caplog.records) == 1
    workers = DataLoader(ds, batch_sampler=sampler, collate_fn=collate, num_workers=2)
    assert len(list(workers)) == 5


def test_a_bucket_where_nothing_decodes_is_a_media_error(messy, monkeypatch):
    ds = VideoFolderDataset(messy, FOLDER_BUCKETS, fps=FPS)
    monkeypatch.setattr(data, "read_video", lambda *a, **kw: (_ for _ in ()).throw(MediaError("x", "broken")))
    with pytest.raises(MediaError, match="no file of bucket"):
        ds[0]


def test_inspect_lists_unreadable_files(messy):
    report = inspect_folder(messy, FOLDER_BUCKETS, fps=FPS)
    assert report["files"] == 8 and report["usable"] == 5 and report["missing_captions"] == 1
    assert set(report["skipped"]) == {"garbage.mp4", "empty.mp4", "truncated.mp4"}
    assert sum(report["buckets"].values()) == 5 and report["buckets"]["9f 64x64"] == 2
    decoded = inspect_folder(messy, FOLDER_BUCKETS, fps=FPS, decode=True)
    assert "cut.mp4" in decoded["skipped"] and decoded["usable"] == 4
    table = format_inspection(decoded)
    assert "empty.mp4" in table and "9f 112x64" in table and "4 usable" in table


def test_bad_arguments_and_caption_files_are_named(tmp_path):
    with pytest.raises(InvalidRequest, match="caption_dropout"):
        ToyWorldDataset([TINY], caption_dropout=1.5)
    with pytest.raises(InvalidRequest, match="rank"):
        BucketBatchSampler(BUCKET_OF, SIZES.get, rank=2, world_size=2)
    (tmp_path / "captions.jsonl").write_text('{"file": "a.mp4", "caption": "fine"}\n["not", "an", "object"]\n')
    with pytest.raises(MediaError, match="line 2"):
        VideoFolderDataset(tmp_path, FOLDER_BUCKETS)
