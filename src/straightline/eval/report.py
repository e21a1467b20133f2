"""The evaluation report: every section run on a model (or two, side by side) -> report.json, report.md and PNGs.

    results = run_suite(Pipeline("runs/dit"), SUITES["quick"], "report/", label="runs/dit")
    write_report("report/", [results])                       # or [results_a, results_b]: a delta column

Sections (docs/eval.md says what each number means and how sure it is):
    1 adherence     eval.adherence: in-distribution vs held-out compositions (medium captions); the same
                    in-distribution scenes from short and from long (detailed) captions
    2 physics       eval.physics: uniform, parabolic/bouncing and collision scenes from their long captions
    3 consistency   eval.consistency on every generated clip of sections 1, 2 and occlusion scenes
    4 distance      eval.distance: Fréchet distance to renders of other scenes in the ToyWorld classifier's
                    feature space, next to a perfect model's
    5 framing       eval.adherence.framing: native 16:9 / 9:16 vs a centre-cropped square
    6 speed         eval.speed: compute seconds per video second per size, estimated DiT FLOPs
    7 vae           eval.vae_quality: PSNR / SSIM on ToyWorld and real clips

Every section is reduced to *metrics*: {"section", "group", "metric", "value", "low", "high", "n", "better",
"source"} rows (source "model", or "world" for the same measurement of ToyWorld's own render of the case), so
one renderer writes every table and figure, and two runs line up row by row.
"""

import datetime
import json
import math
import os
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from ..video_io import spritesheet, write_image
from ..world import captions, render
from ..world.prompt import parse_prompt
from . import consistency, physics, plots, stats
from .adherence import accuracy_table, evaluate, framing, prompt_set, split_of, steering, steering_cases
from .adherence import score as adherence_score
from .speed import speed
from .vae_quality import quality

SECTIONS = ("adherence", "physics", "consistency", "distance", "framing", "speed", "vae")


@dataclass(frozen=True)
class Suite:
    """What a report measures and at which effort. Counts are per group (split, kind, caption level)."""
    name: str
    resolution: int | None = 128      # short side; None: the model's default
    fps: float | None = 12
    seconds: float = 1.0              # adherence, caption levels, framing
    physics_seconds: float = 2.0      # physics and occlusion: a bounce needs time to come back up
    adherence_n: int = 6              # prompts per split (in-distribution, held-out), medium captions
    caption_n: int = 3                # in-distribution scenes, each from its short and its long caption
    steer_n: int = 8                  # one-object sliding scenes, each also with its direction word reversed
    physics_n: int = 2                # cases per kind (uniform, parabolic, collision) and split, from text
    physics_given_n: int = 1          # cases per kind continued from given frames, each also at OOD speed and size
    occlusion_n: int = 2              # occlusion scenes (object permanence)
    framing_n: int = 2                # prompts, each at 16:9 and 9:16, native vs square crop
    speed_sizes: tuple = ((1.0, 128), (2.0, 128))   # (seconds, short side)
    speed_repeats: int = 2
    vae_toy: int = 3                  # ToyWorld clips for PSNR / SSIM
    vae_real: int | None = 2          # real clips from ../shared/media (None: all)
    vae_frames: int = 17
    batch: int = 8
    steps: int | None = None          # None: the model's defaults
    cfg: float | None = None
    seed: int = 0


SUITES = {
    # ~7 minutes on one free CPU core with a model of the shipped size: 49 short clips at 128 px (docs/eval.md)
    "quick": Suite("quick"),
    # for a GPU: intervals of a few points on adherence, ~20 clips per physics group
    "full": Suite("full", resolution=None, fps=None, seconds=2.0, physics_seconds=3.0, adherence_n=100,
                  caption_n=50, steer_n=48, physics_n=20, physics_given_n=10, occlusion_n=20, framing_n=20,
                  speed_sizes=((2.0, 128), (4.0, 128), (2.0, 256), (4.0, 256)), speed_repeats=3, vae_toy=12,
                  vae_real=None, vae_frames=33, batch=16),
}


def hardware(device="cpu") -> str:
    """The line every report and benchmark prints: CPU, cores, torch threads, GPU, versions, load average."""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    gpu = f"; {torch.cuda.get_device_name(device)}" if str(device).startswith("cuda") else ""
    load = f"; load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return (f"{cpu} ({os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}){gpu}; torch "
            f"{torch.__version__}, Python {platform.python_version()}{load}")


def _metric(section, group, metric, summary, better, source="model", headline=False, percent=False) -> dict:
    keep = {k: summary.get(k) for k in ("value", "low", "high", "n") if k in summary}
    return {"section": section, "group": group, "metric": metric, "better": better, "source": source,
            "headline": headline, "percent": percent, **keep}


# --- 1. adherence -------------------------------------------------------------------------------------------

ADHERENCE_HEADLINE = {"train": ("color", "shape", "motion", "direction", "count", "background"),
                      "heldout: novel object": ("color", "shape", "motion", "direction"),
                      "short captions": ("color", "shape"),
                      "long captions": ("color", "shape", "motion", "direction")}
SPLIT_NAMES = {"train": "in-distribution", "heldout": "held-out", "heldout: novel object": "held-out: novel object"}


def named_only(score: dict, prompt: str, scene) -> dict:
    """A score restricted to what a short caption asks for: the objects whose colour it names, the background
    if it names one; count is not scored (short captions name one object and perhaps "two other shapes")."""
    parsed = parse_prompt(prompt)
    named = {o["color"] for o in parsed["objects"] if o["color"]}
    objects = [o for o in score["objects"] if scene.objects[o["object"]].color in named]
    return {**score, "objects": objects, "count": None,
            "background": score["background"] if parsed["background"] else None}


def _clip_score(score: dict) -> float:
    values = [v for o in score["objects"] for v in o.values() if isinstance(v, bool)]
    values += [v for v in (score["count"], score["background"]) if v is not None]
    return sum(values) / len(values) if values else float("nan")


def _adherence(pipeline, suite, fields, pool, log) -> tuple[list[dict], dict]:
    cases = (prompt_set(suite.adherence_n, "train", seconds=suite.seconds)
             + prompt_set(suite.adherence_n, "heldout", seconds=suite.seconds))
    levels = {level: prompt_set(suite.caption_n, "train", level=level, seconds=suite.seconds)
              for level in ("short", "long")}
    if hasattr(pipeline, "know"):
        pipeline.know(cases + levels["short"] + levels["long"])
    kept = []

    def keeper(level):
        return lambda case, result, score: kept.append((level, case, result, score))
    rows = evaluate(pipeline, cases, batch=suite.batch, seed=suite.seed, keep=keeper("medium"),
                    progress=log.progress("adherence"), **fields)
    scored, world = [], []
    for level, level_cases in levels.items():
        evaluate(pipeline, level_cases, batch=suite.batch, seed=suite.seed, keep=keeper(level),
                 progress=log.progress(f"adherence, {level} captions"), **fields)
    for level, case, result, score in kept:
        T, H, W, _ = result.frames.shape
        truth = render(case.scene, W, H, fps=result.fps, num_frames=T).frames
        # the same scoring of the scene's own render: what perception gives a perfect model (the floor)
        truth_score = adherence_score(truth, result.fps, case.scene)
        split = split_of(case.scene) if level == "medium" else f"{level} captions"
        if level == "short":
            score, truth_score = (named_only(s, case.prompt, case.scene) for s in (score, truth_score))
        if level != "medium":
            scored.append((split, score))
        world.append((split, truth_score))
        pool.append({"section": f"adherence ({level})", "prompt": case.prompt, "scene": case.scene,
                     "frames": result.frames, "fps": result.fps, "truth": truth,
                     "score": _clip_score(score) if level == "medium" else None})
    rows += accuracy_table(scored)
    metrics = [_metric("adherence", SPLIT_NAMES.get(r["split"], r["split"]), r["attribute"],
                       {"value": r["accuracy"], "low": r["low"], "high": r["high"], "n": r["n"]}, "higher",
                       source=source, headline=r["attribute"] in ADHERENCE_HEADLINE.get(r["split"], ()),
                       percent=True)
               for source, table in (("model", rows), ("world", accuracy_table(world))) for r in table]
    details = {"table": rows}
    if suite.steer_n:
        if hasattr(pipeline, "know"):
            pipeline.know([(captions(s)["medium"], s) for _, scene, reverse in
                           steering_cases(suite.steer_n, seconds=suite.seconds, seed=suite.seed)
                           for s in (scene, reverse)])
        details["steering"] = steer = steering(pipeline, suite.steer_n, seconds=suite.seconds, batch=suite.batch,
                                               seed=suite.seed, progress=log.progress("steering"), **fields)
        group = "steering: the direction word reversed"
        metrics += [_metric("adherence", group, "both clips follow their word",
                            stats.rate(steer["both"], steer["pairs"]), "higher", headline=True, percent=True),
                    _metric("adherence", group, "cosine between the two clips' motion",
                            stats.mean(steer["cosines"]), "lower")]
    return metrics, details


# --- 2. physics ---------------------------------------------------------------------------------------------

PHYSICS_HEADLINE = {("uniform", "speed error"), ("parabolic", "gravity"), ("parabolic", "gravity spread"),
                    ("parabolic", "energy"), ("collision", "collision error"), ("collision", "collided"),
                    ("uniform", "position error"), ("parabolic", "position error")}


def _physics(pipeline, suite, fields, pool, log) -> tuple[list[dict], dict]:
    cases = [c for kind in physics.KINDS for split in ("train", "heldout")
             for c in physics.physics_cases(suite.physics_n, kind, split, seconds=suite.physics_seconds)]
    given = [c for kind in physics.KINDS for c in physics.physics_cases(
        suite.physics_given_n, kind, "train", seed=1, seconds=suite.physics_seconds)]
    given += physics.ood_cases(given)
    conditioned = physics.can_condition(pipeline) and suite.physics_given_n > 0
    if hasattr(pipeline, "know"):
        pipeline.know([(c.prompt, c.scene) for c in cases + given])
    clips = []

    def keep(case, result, truth):
        clips.append((case, result.frames, truth, result.fps))
        if len(clips) <= len(cases):               # text to video only: given frames would flatter the pool
            pool.append({"section": f"physics ({case.kind})", "prompt": case.prompt, "scene": case.scene,
                         "frames": result.frames, "fps": result.fps, "truth": truth, "score": None})
    records = physics.run_physics(pipeline, cases, batch=suite.batch, seed=suite.seed, keep=keep, condition=False,
                                  progress=log.progress("physics, from text"), **fields)
    if conditioned:
        records += physics.run_physics(pipeline, given, batch=suite.batch, seed=suite.seed, keep=keep,
                                       condition=True, progress=log.progress("physics, given frames"), **fields)
    metrics = []
    for source in ("model", "truth"):
        for r in physics.summarize(records, source):
            metrics.append(_metric("physics", f"{r['kind']}, {r['split']}", r["metric"], r, r["better"],
                                   source="world" if source == "truth" else "model",
                                   headline=((r["kind"], r["metric"]) in PHYSICS_HEADLINE or r["metric"] == "found")
                                   and r["split"] in ("in-distribution", "ood speed, given frames"),
                                   percent=r["metric"] in ("found", "moved", "descended", "collided",
                                                           "energy gained")))
    return metrics, {"records": records, "conditioned": conditioned, "clips": clips}


def _trajectory_figures(clips, figures: Path, label: str) -> list[str]:
    """Height (parabolic) or x (uniform) over time of the first clip of each kind: model vs world."""
    from ..world.perception import perceive
    paths = []
    for kind, axis, name in (("parabolic", 1, "height"), ("uniform", 0, "x")):
        clip = next((c for c in clips if c[0].kind == kind), None)
        if clip is None:
            continue
        case, frames, truth, fps = clip
        series = {}
        for source, video in (("model", frames), ("world", truth)):
            track = next((t for t in perceive(video) if t.color == case.scene.objects[0].color), None)
            short = min(video.shape[1:3])
            if track is None:
                series[source] = []
                continue
            sign = -1 if axis == 1 else 1
            y = sign * track.center[:, axis] / short + (video.shape[1] / short if axis == 1 else 0)
            series[source] = [(k / fps, float(v)) for k, v in enumerate(y)]
        path = figures / f"{_slug(label)}-physics-{kind}.png"
        plots.line_chart(series, f"{kind}: {name} of the {case.scene.objects[0].describe()}", "seconds",
                         f"{name} (short sides)", path)
        paths.append(path.name)
    return paths


# --- 3. consistency -----------------------------------------------------------------------------------------

def _consistency(pipeline, suite, fields, pool, log) -> tuple[list[dict], dict]:
    cases = consistency.occlusion_cases(suite.occlusion_n, seconds=suite.physics_seconds)
    if hasattr(pipeline, "know"):
        pipeline.know(cases)
    requests = [physics._validate(pipeline, prompt, {"aspect": scene.aspect, "seconds": scene.duration,
                                                     "seed": suite.seed + k, **fields})
                for k, (prompt, scene) in enumerate(cases)]
    for s in range(0, len(requests), suite.batch):
        for (prompt, scene), result in zip(cases[s:s + suite.batch], pipeline.generate(requests[s:s + suite.batch])):
            T, H, W, _ = result.frames.shape
            pool.append({"section": "occlusion", "prompt": prompt, "scene": scene, "frames": result.frames,
                         "fps": result.fps, "truth": render(scene, W, H, fps=result.fps, num_frames=T).frames,
                         "score": None})
    progress = log.progress("consistency")
    records = {"model": [], "world": []}
    for k, clip in enumerate(pool):
        records["model"].append(consistency.clip_consistency(clip["frames"], clip["fps"], clip["scene"]))
        records["world"].append(consistency.clip_consistency(clip["truth"], clip["fps"], clip["scene"]))
        progress(k + 1, len(pool))
    metrics = [_metric("consistency", "all clips", r["metric"], r, r["better"], source=source,
                       headline=r["metric"] != "size jitter" and r["metric"] != "shape stability",
                       percent=r["metric"].startswith("clips") or r["metric"] == "permanence")
               for source in ("model", "world") for r in consistency.summarize(records[source])]
    return metrics, {"records": records["model"]}


# --- 4. distribution distance -------------------------------------------------------------------------------

def _other_clips(pool) -> list[tuple]:
    """Real clips of *other* scenes drawn like the pool's (same sections, sizes and lengths): the FD's real set."""
    from .adherence import case_scene
    clips = []
    for k, clip in enumerate(pool):
        scene = clip["scene"]
        other = case_scene(scene.seed + (1 << 20), split_of(scene), scene.aspect, scene.duration, "static")
        if clip["section"].startswith("physics") or clip["section"] == "occlusion":
            # keep the kind of scene: the next seed of the same scenario and motion
            seed = scene.seed + 1
            while not (other.scenario == scene.scenario and other.objects[0].motion == scene.objects[0].motion):
                other = case_scene(seed, split_of(scene), scene.aspect, scene.duration, "static")
                seed += 1
        T, H, W, _ = clip["frames"].shape
        clips.append((render(other, W, H, fps=clip["fps"], num_frames=T).frames, clip["fps"]))
    return clips


def _distance(pool, suite, log) -> tuple[list[dict], dict]:
    from .classifier import DEFAULT_PATH, load_classifier
    from .distance import distance_summary
    if not (DEFAULT_PATH / "classifier.safetensors").is_file():
        return [], {"skipped": f"no classifier in {DEFAULT_PATH}"}
    classifier = load_classifier()
    # real clips of *other* scenes drawn alike, as FVD compares sets: the generated clips and the renders of
    # their own scenes (what a perfect model would give) are measured against the same real set
    real = classifier.features(_other_clips(pool))
    generated = distance_summary(classifier.features([(c["frames"], c["fps"]) for c in pool]), real)
    world = distance_summary(classifier.features([(c["truth"], c["fps"]) for c in pool]), real)
    generated["classifier"] = json.loads((DEFAULT_PATH / "classifier.json").read_text()).get("validation", {})
    log(f"distance: FD {generated['value']:.3g} (a perfect model: {world['value']:.3g}, n={generated['n']})")
    return ([_metric("distance", "all clips", "Fréchet distance", generated, "lower", headline=True),
             _metric("distance", "all clips", "Fréchet distance", world, "lower", source="world")],
            {"summary": generated, "world": world})


# --- 5. framing, 6. speed, 7. VAE -----------------------------------------------------------------------------

def _framing(pipeline, suite, fields, log) -> tuple[list[dict], dict]:
    cases = prompt_set(suite.framing_n, "train", seed=2, seconds=suite.seconds)
    if hasattr(pipeline, "know"):
        pipeline.know(cases)
    rows = framing(pipeline, cases, batch=suite.batch, seed=suite.seed, progress=log.progress("framing"), **fields)
    metrics = [_metric("framing", f"{r['aspect']} {r['method']} ({r['size']})", "frames in view",
                       stats.rate(r["in_view"], r["frames"]), "higher",
                       source="world" if r["source"] == "reference" else "model",
                       headline=r["source"] == "model", percent=True) for r in rows]
    return metrics, {"table": rows}


def _speed(pipeline, suite, fields, log) -> tuple[list[dict], dict]:
    fields = {k: v for k, v in fields.items() if k not in ("resolution",)}
    rows = speed(pipeline, list(suite.speed_sizes), repeats=suite.speed_repeats, **fields)
    metrics = []
    for k, r in enumerate(rows):
        group = f"{r['seconds']:g} s at {r['size']}"
        metrics.append(_metric("speed", group, "compute s per video s", r["compute_per_video_second"], "lower",
                               headline=k == 0))
        metrics.append(_metric("speed", group, "total s per clip", r["total_s"], "lower"))
    log(f"speed: {len(rows)} sizes")
    return metrics, {"table": rows}


def _vae(pipeline, suite, log) -> tuple[list[dict], dict]:
    vae = getattr(pipeline, "vae", None)
    if vae is None:
        return [], {"skipped": "this model has no VAE"}
    rows = quality(vae, suite.vae_toy, device=getattr(pipeline, "device", "cpu"),
                   toy_short=suite.resolution or 128, real_short=2 * (suite.resolution or 128),
                   frames=suite.vae_frames, real_limit=suite.vae_real)
    metrics = []
    for which in ("toyworld", "real"):
        chosen = [r for r in rows if r["set"] == which]
        for key, name in (("psnr", "PSNR dB"), ("ssim", "SSIM")):
            metrics.append(_metric("vae", which, name, stats.mean([r[key] for r in chosen]), "higher",
                                   headline=key == "psnr"))
    log(f"vae: {len(rows)} clips")
    return metrics, {"table": rows}


# --- the run --------------------------------------------------------------------------------------------------

class Log:
    """Lines and progress to stderr (a report's run takes minutes)."""

    def __init__(self, quiet: bool = False):
        self.quiet, self.start = quiet, time.perf_counter()

    def __call__(self, line: str):
        if not self.quiet:
            print(f"[{time.perf_counter() - self.start:5.0f} s] {line}", file=sys.stderr, flush=True)

    def progress(self, what: str):
        def report(done, total):
            if done == total:
                self(f"{what}: {done}/{total}")
        return report


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in str(text)).strip("-")[:40] or "model"


def _contact_sheets(pool, figures: Path, label: str, count: int = 3) -> list[dict]:
    """Best and worst in-distribution / held-out clips by adherence: model frames above the world's."""
    scored = sorted((c for c in pool if c["score"] is not None and math.isfinite(c["score"])),
                    key=lambda c: c["score"])
    picks = [("worst", c) for c in scored[:count]] + [("best", c) for c in reversed(scored[-count:])]
    sheets = []
    for k, (which, clip) in enumerate(picks):
        columns = min(6, len(clip["frames"]))
        model = spritesheet(clip["frames"], columns=columns, rows=1, tile_width=112)
        truth = spritesheet(clip["truth"], columns=columns, rows=1, tile_width=112)
        gap = torch.full((4, model.shape[1], 3), 255, dtype=torch.uint8)
        path = figures / f"{_slug(label)}-{which}-{k}.png"
        write_image(path, torch.cat([model, gap, truth]))
        sheets.append({"which": which, "path": path.name, "prompt": clip["prompt"], "score": clip["score"]})
    return sheets


def run_suite(pipeline, suite: Suite, out, *, label: str = "model", sections=SECTIONS, quiet: bool = False,
              preset: str | None = None) -> dict:
    """Run a suite's sections on a pipeline (pipeline.Pipeline, or eval.reference.WorldPipeline).

    Args:
        out: the report folder; figures go to out/figures.
        label: the model's name in the report (its path).
        sections: which of SECTIONS to run.
        preset: a preset of the model ("fast": the shipped model's distilled student) that every request takes,
            as `generate --preset` does: its DiT, steps and guidance, under the suite's own fields.
    Returns:
        {"label", "suite", "device", "hardware", "model", "seconds", "metrics": [...], "sections": {...},
         "figures": [...], "sheets": [...]}: JSON-ready once write_report drops the clips.
    """
    log = Log(quiet)
    figures = Path(out) / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    fields = {k: v for k, v in (("resolution", suite.resolution), ("fps", suite.fps), ("steps", suite.steps),
                                ("cfg", suite.cfg), ("preset", preset)) if v is not None}
    info = pipeline.info.with_preset(preset) if preset else pipeline.info      # the defaults the requests get
    start = time.perf_counter()
    pool, metrics, details, extra_figures = [], [], {}, []
    log(f"{label}: suite {suite.name}, sections {', '.join(sections)}")
    if "adherence" in sections:
        m, details["adherence"] = _adherence(pipeline, suite, fields, pool, log)
        metrics += m
    if "physics" in sections:
        m, details["physics"] = _physics(pipeline, suite, fields, pool, log)
        metrics += m
        extra_figures += _trajectory_figures(details["physics"].pop("clips"), figures, label)
    if "consistency" in sections:
        m, details["consistency"] = _consistency(pipeline, suite, fields, pool, log)
        metrics += m
    if "distance" in sections and len(pool) >= 2:
        m, details["distance"] = _distance(pool, suite, log)
        metrics += m
    if "framing" in sections:
        m, details["framing"] = _framing(pipeline, suite, fields, log)
        metrics += m
    if "speed" in sections:
        m, details["speed"] = _speed(pipeline, suite, fields, log)
        metrics += m
    if "vae" in sections:
        m, details["vae"] = _vae(pipeline, suite, log)
        metrics += m
    dit = pipeline.dit_named(info.default("dit")) if hasattr(pipeline, "dit_named") else getattr(pipeline, "dit", None)
    model = {"dit_parameters": sum(p.numel() for p in dit.parameters()) if dit is not None else None,
             "defaults": {k: info.default(k) for k in ("fps", "seconds", "resolution", "steps", "cfg",
                                                       "cfg_interval", "sampler", "dit")},
             "preset": preset, "trained": getattr(pipeline.info, "trained", {})}
    device = str(getattr(pipeline, "device", "cpu"))
    return {"label": label, "suite": asdict(suite), "device": device, "hardware": hardware(device),
            "model": model, "seconds": time.perf_counter() - start, "metrics": metrics, "sections": details,
            "figures": extra_figures, "sheets": _contact_sheets(pool, figures, label),
            "clips": len(pool), "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}


# --- writing -----------------------------------------------------------------------------------------------

SECTION_TITLES = {"adherence": "1. Prompt adherence", "physics": "2. Physics", "consistency": "3. Temporal consistency",
                  "distance": "4. Distribution distance (Fréchet, ToyWorld classifier features)",
                  "framing": "5. Framing", "speed": "6. Speed and cost", "vae": "7. Video autoencoder"}
SECTION_NOTES = {
    "adherence": "Accuracy of each attribute read back from the pixels (eval/adherence.py), 95% Wilson intervals. "
                 "Short captions are scored only on what they name; long captions on everything. *world*: the "
                 "same scoring of ToyWorld's render of each prompt's scene — what perception gives a perfect "
                 "model (motion words from 1-2 s clips are its weakest reading). *Steering*: one-object sliding "
                 "scenes generated twice with one seed, from the caption and with its direction word reversed "
                 "(adherence.steering); a model that uses the word moves the object opposite ways (cosine -1), "
                 "one that ignores it the same way twice (+1).",
    "physics": "Measured from perceived trajectories (eval/physics.py); means with 95% bootstrap intervals, rates "
               "with Wilson intervals. *world* is the same measurement on ToyWorld's own render of each case: the "
               "instrument's floor.",
    "consistency": "Every generated clip of sections 1–2 plus occlusion scenes (eval/consistency.py). *world*: "
                   "the same on the ground-truth renders.",
    "distance": "FD between the generated clips and renders of *other* scenes drawn alike (same sections, "
                "scenarios, sizes), in the ToyWorld classifier's 64-d features; interval: bootstrap over the "
                "generated clips. *world*: the same FD for the renders of the prompts' own scenes — what a perfect "
                "model gets at this n (FD is biased up at small n; compare only at equal n).",
    "framing": "Share of frames in which every perceived object is fully in view (Wilson intervals over frames, "
               "which are correlated within a clip). *world*: ToyWorld's renders framed the same way.",
    "speed": "Batch 1, fresh prompts, after a warm-up; means with bootstrap intervals over repeats.",
    "vae": "PSNR / SSIM of encode → decode (eval/vae_quality.py); means over clips with bootstrap intervals.",
}


def _number(m: dict | None) -> str:
    if m is None:
        return "–"
    return stats.fmt(m, percent=m.get("percent", False))


def _delta(a: dict | None, b: dict | None) -> str:
    if not a or not b or a.get("value") is None or b.get("value") is None:
        return "–"
    d = a["value"] - b["value"]
    if not math.isfinite(d):
        return "–"
    return f"{100 * d:+.1f} pts" if a.get("percent") else f"{d:+.3g}"


def _table(runs: list[dict], rows_of) -> list[str]:
    """Markdown rows: group | metric | better | run 1 | [run 2 | Δ] | world."""
    keys = list(dict.fromkeys((m["section"], m["group"], m["metric"]) for r in runs for m in rows_of(r)
                              if m["source"] == "model"))
    index = [{(m["section"], m["group"], m["metric"], m["source"]): m for m in rows_of(r)} for r in runs]
    has_world = any(key[3] == "world" for i in index for key in i)
    head = ["group", "metric", "better"] + [f"`{r['label']}`" for r in runs]
    if len(runs) == 2:
        head.append("Δ (1st − 2nd)")
    if has_world:
        head.append("world (ground truth)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for section, group, metric in keys:
        cells = [group, metric, next(m["better"] for i in index for k, m in i.items()
                                     if k[:3] == (section, group, metric))]
        found = [i.get((section, group, metric, "model")) for i in index]
        cells += [_number(m) for m in found]
        if len(runs) == 2:
            cells.append(_delta(*found))
        if has_world:
            cells.append(_number(index[0].get((section, group, metric, "world"))))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _section_figures(runs, section, figures: Path) -> list[str]:
    """One chart of the section's rates (0-1) and one per mean metric, every run (and the world) as a series."""
    metrics = [(r["label"], m) for r in runs for m in r["metrics"] if m["section"] == section]
    world_once = {}
    for label, m in metrics:
        if m["source"] == "world":
            world_once.setdefault((m["group"], m["metric"]), m)
    names = list(dict.fromkeys(m["metric"] for _, m in metrics if m["source"] == "model"))
    charts = [("rates", [n for n in names if all(m.get("percent") for _, m in metrics if m["metric"] == n)])]
    charts += [(n, [n]) for n in names if n not in charts[0][1]]
    paths = []
    for title, chosen in charts:
        if not chosen:
            continue
        rows = {}
        for label, m in metrics:
            if m["metric"] in chosen and m["source"] == "model":
                rows.setdefault(f"{m['group']}: {m['metric']}" if title == "rates" else m["group"], []).append(
                    (label, m["value"], m.get("low"), m.get("high"), m["n"]))
        for (group, metric), m in world_once.items():
            key = f"{group}: {metric}" if title == "rates" else group
            if metric in chosen and key in rows:
                rows[key].append(("world", m["value"], m.get("low"), m.get("high"), m["n"]))
        path = figures / f"{section}-{_slug(title)}.png"
        plots.interval_chart(list(rows.items()), f"{SECTION_TITLES[section]}: {title}",
                             "share (95% interval)" if title == "rates" else f"{title} (95% interval)", path,
                             limits=(0, 1) if title == "rates" else None)
        paths.append(path.name)
    return paths


def _detail_tables(run: dict) -> dict[str, list[str]]:
    out = {}
    speed_rows = run["sections"].get("speed", {}).get("table", [])
    if speed_rows:
        lines = [("| clip | size | frames | latent tokens | steps × cfg | text s | sampling s | decoding s | total s "
                 "| compute s / video s | DiT TFLOPs |"), "|" + "---|" * 11]
        for r in speed_rows:
            tflops = "–" if r["tflops"] is None else f"{r['tflops']:.3g}"
            lines.append(f"| {r['seconds']:g} s | {r['size']} | {r['frames']} | {r['tokens']} | {r['steps']} × "
                         f"{r['cfg']:g} | {r['text_s']['value']:.3f} | {r['sampling_s']['value']:.2f} | "
                         f"{r['decode_s']['value']:.2f} | {r['total_s']['value']:.2f} | "
                         f"{stats.fmt(r['compute_per_video_second'])} | {tflops} |")
        out["speed"] = lines
    vae_rows = run["sections"].get("vae", {}).get("table", [])
    if vae_rows:
        lines = ["| set | clip | size | frames | PSNR dB | SSIM |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['set']} | {r['clip']} | {r['size']} | {r['frames']} | {r['psnr']:.2f} | {r['ssim']:.4f} |"
                  for r in vae_rows]
        out["vae"] = lines
    return out


def write_report(out, runs: list[dict]) -> tuple[Path, Path]:
    """Write report.json (every run in full) and report.md (headline, every section, figures, contact sheets)
    for one run, or two side by side with a Δ column (first minus second)."""
    out = Path(out)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    json_path = out / "report.json"
    json_path.write_text(json.dumps({"runs": runs}, indent=1, default=str))
    names = " vs ".join(f"`{r['label']}`" for r in runs)
    first = runs[0]
    md = [f"# Evaluation report: {names}", "",
          f"Suite `{first['suite']['name']}`; {first['date']}; device {first['device']}; {first['hardware']}.", ""]
    for r in runs:
        model = r["model"]
        params = f"{model['dit_parameters'] / 1e6:.2f}M-parameter DiT" if model["dit_parameters"] else "no DiT"
        md.append(f"- `{r['label']}`: {params}; generation defaults {json.dumps(model['defaults'])}; "
                  f"{r['clips']} clips scored; {r['seconds']:.0f} s.")
    s = first["suite"]
    md += ["", (f"Clips: {s['resolution'] or 'model default'} px short side, {s['fps'] or 'model default'} fps, "
           f"{s['seconds']:g} s ({s['physics_seconds']:g} s for physics and occlusion). Every number: value "
           "(95% interval, n). Δ is the first model minus the second."), "", "## Headline", ""]
    md += _table(runs, lambda r: [m for m in r["metrics"] if m["headline"] or m["source"] == "world"
                                  and any(h["headline"] and (h["section"], h["group"], h["metric"]) ==
                                          (m["section"], m["group"], m["metric"]) for h in r["metrics"])])
    details = [_detail_tables(r) for r in runs]
    for section in SECTIONS:
        if not any(m["section"] == section for r in runs for m in r["metrics"]) and not any(
                section in r["sections"] for r in runs):
            continue
        md += ["", f"## {SECTION_TITLES[section]}", "", SECTION_NOTES[section], ""]
        skipped = [r["sections"].get(section, {}).get("skipped") for r in runs]
        md += [f"*Skipped for `{r['label']}`: {why}.*" for r, why in zip(runs, skipped) if why]
        if section == "physics":
            modes = {r["sections"].get("physics", {}).get("conditioned") for r in runs}
            md += ["", "Groups: from text (long captions), in-distribution vs held-out compositions; *given frames*: "
                   f"the model continues the first {physics.CONDITION_FRAMES} frames of the ground truth, in "
                   f"distribution and at OOD speed (world played {physics.OOD_TIME_SCALE}x faster) and size "
                   f"({physics.OOD_ZOOM}x closer)" + ("." if modes == {True} else " — not run: this pipeline "
                                                      "cannot continue given frames."), ""]
        md += _table(runs, lambda r, section=section: [m for m in r["metrics"] if m["section"] == section])
        md += [""] + [f"![{name}](figures/{name})" for name in _section_figures(runs, section, figures)]
        if section == "physics":
            md += [f"![{name}](figures/{name})" for r in runs for name in r["figures"]]
        if section == "distance":
            accuracy = next((r["sections"]["distance"]["summary"].get("classifier") for r in runs
                             if "summary" in r["sections"].get("distance", {})), None)
            if accuracy:
                md += ["", "The classifier's validation accuracy (docs/eval.md): " + ", ".join(
                    f"{k} {100 * v:.0f}%" for k, v in accuracy.items() if k != "n") + f" (n={accuracy.get('n')})."]
        for r, d in zip(runs, details):
            if section in d:
                md += ["", f"`{r['label']}`:", ""] + d[section]
    md += ["", "## Best and worst clips (adherence, medium captions)", "",
           "Each sheet: the model's frames above ToyWorld's render of the scene the prompt describes."]
    for r in runs:
        md += ["", f"### `{r['label']}`"]
        for sheet in r["sheets"]:
            md += ["", f"**{sheet['which']}** ({100 * sheet['score']:.0f}% of attributes right): {sheet['prompt']}",
                   "", f"![{sheet['which']}](figures/{sheet['path']})"]
    md_path = out / "report.md"
    md_path.write_text("\n".join(md) + "\n")
    return json_path, md_path


def load_run(path, figures_to=None) -> list[dict]:
    """The runs of an earlier report (its folder or its report.json); `figures_to`: a report folder to copy its
    runs' own figures (contact sheets, trajectories) into, so a new report.md can show them."""
    path = Path(path)
    path = path / "report.json" if path.is_dir() else path
    runs = json.loads(path.read_text())["runs"]
    if figures_to is not None:
        target = Path(figures_to) / "figures"
        target.mkdir(parents=True, exist_ok=True)
        for run in runs:
            for name in [s["path"] for s in run["sheets"]] + run["figures"]:
                source = path.parent / "figures" / name
                if source.is_file() and source.resolve() != (target / name).resolve():
                    shutil.copyfile(source, target / name)
    return runs


def suite_with(name: str, **overrides) -> Suite:
    """SUITES[name] with some fields replaced (None values are ignored)."""
    return replace(SUITES[name], **{k: v for k, v in overrides.items() if v is not None})
