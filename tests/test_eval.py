"""The evaluation suite (eval/*, `straightline eval`), with known answers.

The instrument-sanity test: ToyWorld's own renders (the oracle, eval.reference.WorldPipeline) score near-perfect on
every metric, and each deliberate damage — shuffled frames, frozen motion, noise, a colour swap, a teleport —
scores clearly worse on the metrics meant to catch it. The rest: Fréchet distance, interval helpers, physics with
given frames (OOD ground truth), the report and the CLI end to end (reference vs a tiny model folder, compared).
Clips are small (short side 96, 12 fps, 1-2 s) and counts tiny."""

import json
import math
from dataclasses import replace

import pytest
import torch
from conftest import tiny_model_folder

from straightline.cli import main
from straightline.dit import DiT
from straightline.eval import physics, stats
from straightline.eval.classifier import DEFAULT_PATH as CLASSIFIER
from straightline.eval.distance import frechet
from straightline.eval.reference import WorldPipeline
from straightline.eval.report import SUITES, Suite
from straightline.eval.sanity import sanity
from straightline.eval.vae_quality import temporal_error, through

SHIPPED_CLASSIFIER = (CLASSIFIER / "classifier.safetensors").is_file()


@pytest.fixture(scope="module")
def table():
    return sanity(n=4, physics_n=1, resolution=96, fps=12, classifier=SHIPPED_CLASSIFIER)


def test_the_world_scores_near_perfect_on_every_metric(table):
    world = table[None]
    assert world["adherence: colour"] >= 0.95 and world["adherence: shape"] >= 0.95
    assert world["adherence: direction"] >= 0.9
    assert world["physics: found"] == 1 and world["physics: descended"] == 1 and world["physics: collided"] == 1
    assert world["physics: uniform speed error"] < 0.05 and world["physics: uniform extrapolation"] < 0.01
    assert world["physics: gravity error"] < 0.1
    assert world["consistency: flicker"] < 0.5
    for failure in ("teleports", "identity switches", "objects from nowhere"):
        assert world[f"consistency: clips with {failure}"] == 0, failure
    assert world["consistency: permanence"] == 1
    if SHIPPED_CLASSIFIER:
        assert world["distance: Fréchet"] == pytest.approx(0, abs=1e-6)


# each damage, and the metrics that must see it (strictly worse than the world by a clear margin)
CAUGHT_BY = {
    "frozen": {"adherence: direction": -0.5, "physics: uniform speed error": 0.8, "physics: descended": -0.9,
               "physics: collided": -0.9},
    "shuffled": {"physics: uniform speed error": 0.2, "physics: uniform extrapolation": 0.03,
                 "consistency: clips with teleports": 0.3},
    "noise": {"adherence: colour": -0.8, "physics: found": -0.9, "consistency: flicker": 20},
    "color swap": {"consistency: clips with identity switches": 0.5},
    "teleport": {"physics: uniform extrapolation": 0.03, "consistency: clips with teleports": 0.3},
}


@pytest.mark.parametrize("damage", list(CAUGHT_BY))
def test_each_damage_scores_clearly_worse(table, damage):
    world, damaged = table[None], table[damage]
    for metric, margin in CAUGHT_BY[damage].items():
        if margin > 0:
            assert damaged[metric] >= world[metric] + margin, (metric, damaged[metric], world[metric])
        else:
            assert damaged[metric] <= world[metric] + margin, (metric, damaged[metric], world[metric])
    if SHIPPED_CLASSIFIER:          # the world's own FD is 0 (the same clips); every damage is far from it
        assert damaged["distance: Fréchet"] > 5.0, damaged["distance: Fréchet"]


def test_frechet_distance_known_values():
    torch.manual_seed(0)
    a = torch.randn(4000, 3, dtype=torch.float64)
    assert frechet(a, a) == pytest.approx(0, abs=1e-9)
    # a shift by m adds |m|^2; scaling by 2 gives |mu|^2 + tr(C + 4C - 2 (4 C^2)^(1/2)) = |mu|^2 + tr(C)
    assert frechet(a, a + torch.tensor([1.0, 2.0, 0.0])) == pytest.approx(5, abs=1e-6)
    assert frechet(a, 2 * a) == pytest.approx(float(a.mean(0).pow(2).sum() + torch.cov(a.T).trace()), rel=1e-6)


def test_interval_helpers():
    r = stats.rate(5, 10)
    assert (r["value"], r["n"]) == (0.5, 10) and r["low"] == pytest.approx(0.2366, abs=1e-4)
    m = stats.mean([1.0, 2.0, 3.0, float("nan"), None])
    assert m["value"] == 2 and m["n"] == 3 and 1 <= m["low"] <= 2 <= m["high"] <= 3
    assert stats.mean([])["n"] == 0 and stats.spread([1.0, 3.0])["value"] == pytest.approx(2 ** 0.5)
    assert stats.fmt(r, percent=True) == "50.0% (23.7–76.3, n=10)"


def test_physics_with_given_frames_out_of_distribution():
    # the oracle continues the true clip: positions match the simulator, and OOD ground truth is still physics
    cases = physics.physics_cases(1, "uniform") + physics.physics_cases(1, "parabolic")
    pipe = WorldPipeline()
    records = physics.run_physics(pipe, cases + physics.ood_cases(cases), resolution=96, fps=12, condition=True)
    assert {r["split"] for r in records} == {"in-distribution, given frames", "ood speed, given frames",
                                             "ood size, given frames"}
    # position error counts frames where the truth shows the object whole (a closer view may never: None)
    assert all(r["position error"] < 0.02 for r in records if r["split"] != "ood size, given frames")
    assert all(r["position error"] is None or r["position error"] < 0.02 for r in records)
    for r in records:
        if r["split"] == "ood size, given frames":
            continue           # objects cut by the edges of the closer view: see "world" in a report
        assert r["model"]["speed error"] < 0.05, r
        if "gravity" in r["model"]:
            assert abs(r["model"]["gravity"] - 1) < 0.05, r     # ood speed plays gravity 2.56x: still found
    frozen = physics.run_physics(WorldPipeline("frozen"), cases[:1], resolution=96, fps=12, condition=True)
    assert frozen[0]["position error"] > 0.05


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny untrained model folder, nudged off its zero init (see tests/test_pipeline.py)."""
    return tiny_model_folder(tmp_path_factory.mktemp("model"),
                             {"max_tokens": 1024})


TINY = Suite("quick", resolution=64, fps=8, seconds=1.0, physics_seconds=2.0, adherence_n=1, caption_n=1, steer_n=1,
             physics_n=1, physics_given_n=1, occlusion_n=1, framing_n=1, speed_sizes=((1.0, 64),), speed_repeats=1,
             vae_toy=1, vae_real=1, vae_frames=5, steps=2, cfg=2.0)


def test_cli_writes_a_report_and_compares_two_models(model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(SUITES, "quick", TINY)
    out = tmp_path / "report"
    assert main(["eval", "--model", str(model_dir), "--compare", "reference", "--suite", "quick", "-o", str(out),
                 "--device", "cpu"]) == 0
    runs = json.loads((out / "report.json").read_text())["runs"]
    assert [r["label"] for r in runs] == [str(model_dir), "reference"]
    sections = {m["section"] for m in runs[0]["metrics"]}
    assert {"adherence", "physics", "consistency", "framing", "speed", "vae"} <= sections
    assert ("distance" in sections) == SHIPPED_CLASSIFIER
    model_speed = next(r for r in runs[0]["sections"]["speed"]["table"])
    assert model_speed["tflops"] > 0 and model_speed["compute_per_video_second"]["value"] > 0
    assert runs[0]["sections"]["physics"]["conditioned"]          # the pipeline's extend mode continues clips
    assert all({"value", "low", "high", "n"} <= set(m) for r in runs for m in r["metrics"])
    steer = {m["metric"]: m for m in runs[1]["metrics"] if m["group"].startswith("steering")}
    assert steer["both clips follow their word"]["value"] == 1          # the world follows every word
    assert steer["cosine between the two clips' motion"]["value"] < -0.9
    md = (out / "report.md").read_text()
    assert "Δ (1st − 2nd)" in md and "## 2. Physics" in md and "## 7. Video autoencoder" in md
    assert_figures_exist(out)
    assert "wrote" in capsys.readouterr().out
    # an earlier report compares without running it again
    again = tmp_path / "again"
    assert main(["eval", "--model", "reference:frozen", "--compare", str(out), "--suite", "quick",
                 "-o", str(again)]) == 0
    labels = [r["label"] for r in json.loads((again / "report.json").read_text())["runs"]]
    assert labels == ["reference:frozen", str(model_dir)]
    assert_figures_exist(again)          # the earlier run's contact sheets were copied along


def assert_figures_exist(out):
    md = (out / "report.md").read_text()
    names = [line.split("(figures/")[1].rstrip(")") for line in md.splitlines() if "(figures/" in line]
    assert names
    for name in names:
        assert (out / "figures" / name).is_file(), name


def test_cli_evaluates_a_preset_against_the_model_s_own_defaults(tmp_path, monkeypatch, capsys):
    """`eval --preset fast` scores what `generate --preset fast` makes: the preset's own DiT, steps and guidance
    on every request, here beside the same model without it."""
    model = tiny_model_folder(tmp_path / "model", {"max_tokens": 1024, "steps": 3, "cfg": 2.0})
    DiT.load(model / "dit").save(model / "dit-fast")
    info = json.loads((model / "model.json").read_text())
    (model / "model.json").write_text(json.dumps(info | {"presets": {"fast": {"dit": "dit-fast", "steps": 1,
                                                                               "cfg": 1.0}}}))
    monkeypatch.setitem(SUITES, "quick", replace(TINY, steps=None, cfg=None))
    out = tmp_path / "report"
    assert main(["eval", "--model", str(model), "--preset", "fast", "--compare", str(model), "-o", str(out)]) == 0
    runs = json.loads((out / "report.json").read_text())["runs"]
    assert [r["label"] for r in runs] == [f"{model} (preset fast)", str(model)]
    assert [(r["model"]["preset"], r["model"]["defaults"]["dit"]) for r in runs] == [("fast", "dit-fast"),
                                                                                    (None, "dit")]
    speed = [r["sections"]["speed"]["table"][0] for r in runs]
    assert [(row["steps"], row["cfg"]) for row in speed] == [(1, 1.0), (3, 2.0)]     # what the requests were
    assert speed[0]["tflops"] < speed[1]["tflops"] / 5                                # 1 pass against 3 x 2
    assert f"`{model} (preset fast)`" in (out / "report.md").read_text()
    for args, field in ((["--preset", "turbo"], "preset"), (["--compare", "reference", "--compare-preset", "fast"],
                                                           "compare_preset")):
        assert main(["eval", "--model", str(model), *args, "-o", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err
        assert f"{field}=" in err and ("fast" in err if field == "preset" else "reference" in err)
    (model / "model.json").write_text(json.dumps(info | {"presets": {"fast": {"dit": "dit-gone"}}}))
    assert main(["eval", "--model", str(model), "--preset", "fast", "-o", str(tmp_path / "r")]) == 2
    assert "model folder" in capsys.readouterr().err                                 # before the suite ran
    assert not (tmp_path / "r" / "report.json").exists()


def test_cli_names_a_missing_model(tmp_path, capsys):
    assert main(["eval", "--model", str(tmp_path / "nothing"), "-o", str(tmp_path / "r")]) == 2
    assert "model" in capsys.readouterr().err


def test_the_vae_temporal_error_sees_flicker_not_a_steady_error():
    clip = torch.randint(0, 200, (9, 8, 8, 3), dtype=torch.uint8)
    steady = clip + 20                                                      # every frame off by the same amount
    flicker = clip + torch.tensor([20, 0] * 4 + [20], dtype=torch.uint8).view(9, 1, 1, 1)
    assert temporal_error(clip, clip) == 0 and temporal_error(steady, clip) == 0
    assert temporal_error(flicker, clip) == pytest.approx(20)
    assert temporal_error(flicker[:1], clip[:1]) == 0                        # an image


def test_stutter_sees_a_clip_that_holds_each_latent_frame_and_jumps():
    from straightline.eval.consistency import stutter
    even = torch.arange(17, dtype=torch.uint8).mul(6).view(17, 1, 1, 1).expand(17, 8, 8, 3)   # steady motion
    held = torch.cat([even[:1], even[1:].view(4, 4, 8, 8, 3)[:, :1].expand(4, 4, 8, 8, 3).reshape(16, 8, 8, 3)])
    assert stutter(even) == pytest.approx(0.25)
    assert stutter(held) == pytest.approx(1.0)       # every latent frame one picture: all change in one step
    assert math.isnan(stutter(even[:3])) and math.isnan(stutter(torch.zeros(9, 8, 8, 3, dtype=torch.uint8)))


class _Identity:
    """Stands in for a VAE that loses nothing (encode and decode the identity)."""
    encode = decode = staticmethod(lambda x: x)


class _Blank(_Identity):
    decode = staticmethod(lambda z: torch.zeros_like(z))                    # grey frames: no objects left


def test_through_the_vae_scores_renders_and_what_the_vae_returns():
    rows = {(r["source"], r["split"], r["attribute"]): r for r in through(_Identity(), n=2, resolution=96)}
    for split in ("train", "heldout"):
        for attribute in ("color", "shape", "count"):
            assert rows["render", split, attribute]["accuracy"] == 1.0
            assert rows["vae", split, attribute]["accuracy"] == 1.0          # nothing lost, nothing to lose
    sizes = [rows.get(("vae", f"{size} objects", "shape"), {"n": 0})["n"] for size in ("small", "medium", "large")]
    assert sum(sizes) == rows["vae", "train", "shape"]["n"] + rows["vae", "heldout", "shape"]["n"]  # every object
    assert ("vae", "small objects", "count") not in rows                    # a size has objects, not clips
    blank = {(r["source"], r["split"], r["attribute"]): r for r in through(_Blank(), n=2, resolution=96)}
    assert blank["render", "train", "color"]["accuracy"] == 1.0 and blank["vae", "train", "color"]["accuracy"] == 0
