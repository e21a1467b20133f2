"""Adherence scoring has known answers: ToyWorld's own render of a scene is a perfectly adherent clip, so it must
score ~100%; the render of another scene, or the same render played backwards, must score clearly lower.
evaluate() and framing() run against an oracle pipeline that renders the scene each prompt describes.
Renders are small (short side 96 px, 1 s at 8 fps); benchmarks/bench_generate.py measures a real model."""

import pytest
import torch

from straightline.eval.adherence import (
    accuracy_table,
    case_scene,
    centre_crop,
    evaluate,
    framing,
    in_view_frames,
    paired_difference,
    placement,
    placement_cases,
    prompt_set,
    score,
    split_of,
    steering,
    steering_cases,
    wilson,
)
from straightline.model import ModelInfo
from straightline.pipeline import Request
from straightline.request import size_for
from straightline.world import captions, render, vocab
from straightline.world.prompt import POSITIONS
from straightline.world.scene import is_held_out

SHORT, FPS, SECONDS = 96, 8, 1.0


def clip_of(scene, fps=FPS):
    width, height = size_for(scene.aspect, SHORT)
    return render(scene, width, height, fps=fps, num_frames=round(scene.duration * fps) + 1).frames


def accuracy(scores, attribute):
    values = [o[attribute] for s in scores for o in s["objects"] if o[attribute] is not None]
    return sum(values) / len(values), len(values)


@pytest.fixture(scope="module")
def cases():
    # both framings, so the scoring is checked on tall clips as well as wide ones
    return (prompt_set(6, "train", aspect="16:9", seconds=SECONDS)
            + prompt_set(4, "heldout", aspect="9:16", seconds=SECONDS))


@pytest.fixture(scope="module")
def truth_scores(cases):
    return [score(clip_of(scene), FPS, scene) for _, scene in cases]


def test_ground_truth_renders_score_full_marks(truth_scores):
    for attribute in ("color", "shape"):
        rate, n = accuracy(truth_scores, attribute)
        assert n >= 15 and rate >= 0.95, (attribute, rate, n)
    assert sum(s["count"] for s in truth_scores) >= 0.95 * len(truth_scores)
    assert sum(s["background"] for s in truth_scores) >= 0.95 * len(truth_scores)
    rate, n = accuracy(truth_scores, "direction")
    assert n >= 5 and rate >= 0.9, (rate, n)


def test_another_scene_or_reversed_time_scores_lower(cases, truth_scores):
    # each case scored against the render of the next case's scene: colours, backgrounds and counts differ
    wrong = [score(clip_of(cases[(k + 1) % len(cases)].scene), FPS, scene) for k, (_, scene) in enumerate(cases)]
    assert accuracy(wrong, "color")[0] < accuracy(truth_scores, "color")[0] - 0.4
    assert sum(s["background"] for s in wrong) < 0.5 * sum(s["background"] for s in truth_scores)
    # played backwards, every object has the right colour and shape but goes the other way
    backwards = [score(clip_of(scene).flip(0), FPS, scene) for _, scene in cases]
    assert accuracy(backwards, "color")[0] >= 0.95
    assert accuracy(backwards, "direction")[0] < 0.3


def test_wilson_interval_known_values():
    # reference values: Wilson (1927) score interval, z = 1.96 (as in e.g. statsmodels proportion_confint)
    for (k, n), (low, high) in {(0, 10): (0.0, 0.2775), (5, 10): (0.2366, 0.7634), (10, 10): (0.7225, 1.0),
                                (81, 263): (0.2553, 0.3662), (1, 1): (0.2065, 1.0)}.items():
        assert wilson(k, n) == pytest.approx((low, high), abs=1e-4), (k, n)
    assert wilson(0, 0) == (0.0, 1.0)


def test_prompt_set_is_deterministic_and_splits_hold_out_triples():
    train, heldout = prompt_set(20, "train"), prompt_set(20, "heldout")
    assert [c.prompt for c in prompt_set(20, "train")] == [c.prompt for c in train]
    assert [c.scene.to_dict() for c in prompt_set(5, "heldout")] == [c.scene.to_dict() for c in heldout[:5]]
    assert prompt_set(5, "train", seed=1)[0].scene.seed != train[0].scene.seed
    assert not any(is_held_out(o) for c in train for o in c.scene.objects)
    assert all(is_held_out(c.scene.objects[0]) for c in heldout)
    assert {split_of(c.scene) for c in train} == {"train"} and {split_of(c.scene) for c in heldout} == {"heldout"}
    assert all(c.scene.camera == "static" for c in train)
    with pytest.raises(ValueError, match="split"):
        prompt_set(1, "test")
    single = prompt_set(10, "heldout", scenario="single")
    assert all(len(c.scene.objects) == 1 and is_held_out(c.scene.objects[0]) for c in single)


def test_accuracy_table_counts_and_intervals():
    objects = [{"object": 0, "color": True, "shape": False, "motion": True, "direction": None},
               {"object": 1, "color": True, "shape": True, "motion": False, "direction": True}]
    scored = [("train", {"objects": objects, "count": True, "background": False}),
              ("heldout", {"objects": objects[:1], "count": False, "background": True})]
    rows = {(r["split"], r["attribute"]): r for r in accuracy_table(scored)}
    assert (rows["train", "shape"]["correct"], rows["train", "shape"]["n"]) == (1, 2)
    assert rows["train", "direction"]["n"] == 1 and rows["heldout", "direction"]["n"] == 0
    assert rows["heldout: novel object", "color"]["n"] == 1
    assert ("heldout: novel object", "count") not in rows
    assert (rows["train", "color"]["low"], rows["train", "color"]["high"]) == pytest.approx(wilson(2, 2))


def clip_score(count: bool, colors=(True,)) -> dict:
    objects = [{"object": i, "color": c, "shape": True, "motion": True, "direction": None}
               for i, c in enumerate(colors)]
    return {"objects": objects, "count": count, "background": True}


def test_paired_difference_sees_what_two_models_intervals_side_by_side_cannot():
    # b is a copy of a with 4 of 100 correct counts made wrong: +4 points, though a and b's own 95% intervals
    # (about +-9 points at 70%) overlap almost entirely
    generator = torch.Generator().manual_seed(0)
    right = (torch.rand(100, generator=generator) < 0.7).tolist()
    flipped = [k for k, r in enumerate(right) if r][:4]
    a = [("train", clip_score(r)) for r in right]
    b = [("train", clip_score(r and k not in flipped)) for k, r in enumerate(right)]
    rows = {(r["split"], r["attribute"]): r for r in paired_difference(a, b)}
    count = rows["train", "count"]
    assert count["n"] == 100 and count["difference"] == pytest.approx(0.04)
    assert count["a"] - count["b"] == pytest.approx(0.04)
    assert 0 < count["low"] < 0.04 < count["high"] < 0.09
    assert rows["train", "color"]["difference"] == rows["train", "color"]["low"] == rows["train", "color"]["high"] == 0
    # per-object attributes pool their objects; the held-out object has its own rows; a run against itself is 0
    two = [("heldout", clip_score(True, (True, False)))] * 3
    rows = {(r["split"], r["attribute"]): r for r in paired_difference(two, two)}
    assert rows["heldout", "color"]["n"] == 6 and rows["heldout", "color"]["a"] == pytest.approx(0.5)
    assert rows["heldout: novel object", "color"]["n"] == 3 and rows["heldout: novel object", "color"]["a"] == 1
    assert all(r["difference"] == r["low"] == r["high"] == 0 for r in rows.values())
    with pytest.raises(ValueError, match="scored 2 and 1 cases"):
        paired_difference(a[:2], b[:1])
    with pytest.raises(ValueError, match="case 0 was scored on different objects"):
        paired_difference([("train", clip_score(True, (True, True)))], [("train", clip_score(True))])


class OraclePipeline:
    """Renders the scene a prompt describes, framed for the requested aspect: a model that learned ToyWorld."""

    def __init__(self, cases):
        self.info, self.scenes, self.calls = ModelInfo(), {c.prompt: c.scene for c in cases}, 0

    def generate(self, requests):
        self.calls += 1
        results = []
        for r in [requests] if isinstance(requests, Request) else requests:
            base = self.scenes[r.prompt]
            scene = case_scene(base.seed, split_of(base), r.width / r.height, base.duration, base.camera)
            frames = render(scene, r.width, r.height, fps=r.fps, num_frames=r.frames).frames
            results.append(type("Result", (), {"frames": frames, "fps": r.fps, "request": r})())
        return results


def test_evaluate_with_an_oracle_scores_full_marks(cases):
    pipe = OraclePipeline(cases)
    rows = evaluate(pipe, cases[4:8], batch=3, resolution=SHORT, fps=FPS, steps=1)
    assert pipe.calls == 2
    table = {(r["split"], r["attribute"]): r for r in rows}
    assert table["train", "count"]["n"] == 2 and table["heldout", "count"]["n"] == 2
    for split in ("train", "heldout"):
        for attribute in ("color", "shape", "count", "background"):
            assert table[split, attribute]["accuracy"] == 1.0, (split, attribute)


def test_framing_native_beats_a_cropped_square_on_the_world_itself():
    cases = prompt_set(3, "train", seconds=SECONDS)
    rows = framing(OraclePipeline(cases), cases, resolution=64, fps=4, steps=1)
    by = {(r["aspect"], r["source"], r["method"]): r for r in rows}
    assert len(rows) == 8
    for aspect in ("16:9", "9:16"):
        native, crop = by[aspect, "model", "native"], by[aspect, "model", "square crop"]
        assert native["size"] == crop["size"] == ("112x64" if aspect == "16:9" else "64x112")
        assert native["fraction"] == by[aspect, "reference", "native"]["fraction"]   # the oracle is the world
    native = sum(by[a, "model", "native"]["in_view"] for a in ("16:9", "9:16"))
    crop = sum(by[a, "model", "square crop"]["in_view"] for a in ("16:9", "9:16"))
    assert native > crop


class WordPipeline:
    """Renders the scene named by each prompt in `scenes` (prompt -> scene) at the request's size and length."""

    def __init__(self, scenes):
        self.info, self.scenes = ModelInfo(), scenes

    def generate(self, requests):
        return [type("Result", (), {"fps": r.fps, "frames": render(self.scenes[r.prompt], r.width, r.height,
                                                                   fps=r.fps, num_frames=r.frames).frames})()
                for r in requests]


def test_steering_tells_a_model_that_follows_the_direction_word_from_one_that_ignores_it():
    cases = steering_cases(4)
    assert all(s.objects[0].motion == "slide" and len(s.objects) == 1 and
               r.objects[0].direction == vocab.OPPOSITE[s.objects[0].direction] for _, s, r in cases)
    follows = {captions(s)["medium"]: s for _, scene, reverse in cases for s in (scene, reverse)}
    ignores = {captions(s)["medium"]: scene for _, scene, reverse in cases for s in (scene, reverse)}
    fields = {"resolution": 64, "fps": 8, "steps": 1, "batch": 3}
    good, bad = steering(WordPipeline(follows), 4, **fields), steering(WordPipeline(ignores), 4, **fields)
    assert good["n"] == bad["n"] == 4 and good["pairs"] >= 3 and bad["pairs"] >= 3
    assert good["both"] == good["pairs"] and good["same"] == 0 and good["cosine"] < -0.9
    assert bad["both"] == 0 and bad["same"] == bad["pairs"] and bad["cosine"] > 0.99


def test_placement_tells_a_model_that_places_objects_where_the_caption_says_from_one_that_does_not():
    import copy
    cases = placement_cases(1)
    assert [third for _, _, third in cases] == [t for row in POSITIONS for t in row]   # each third once a round
    centred = {}
    for _, scene, _ in cases:                       # the same object, always drawn in the middle of the view
        middle = copy.deepcopy(scene)
        middle.objects[0].x, middle.objects[0].y = scene.width / 2, scene.height / 2
        centred[captions(scene)["long"]] = middle
    follows = {captions(scene)["long"]: scene for _, scene, _ in cases}
    fields = {"resolution": 64, "fps": 8, "steps": 1, "batch": 4}
    good, bad = placement(WordPipeline(follows), 1, **fields), placement(WordPipeline(centred), 1, **fields)
    assert good["n"] == bad["n"] == 9 and good["found"] == bad["found"] == 9
    assert good["placed"] == 9 and bad["placed"] == 1 and bad["by_third"]["center"] == [1, 1]


def test_in_view_frames_and_centre_crop():
    scene = prompt_set(1, "train")[0].scene
    frames = clip_of(scene)
    good, total, objects = in_view_frames(frames)
    assert total == len(frames) and objects == len(scene.objects) and 0 <= good <= total
    night = torch.tensor(vocab.BACKGROUNDS["night"]["colors"][0], dtype=torch.uint8).expand(3, 32, 32, 3)
    assert in_view_frames(night) == (0, 0, 0)                                        # nothing perceived
    assert centre_crop(torch.zeros(2, 64, 64, 3), 16 / 9).shape == (2, 36, 64, 3)
    assert centre_crop(torch.zeros(2, 64, 64, 3), 9 / 16).shape == (2, 64, 36, 3)
