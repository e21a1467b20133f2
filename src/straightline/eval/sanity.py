"""The instrument's own check: ToyWorld's renders must score near-perfect on every metric, damaged renders
clearly worse (tests/test_eval.py asserts it; `python -m straightline.eval.sanity` prints the table in
docs/eval.md).

    table = sanity(["frozen", "shuffled"], n=4)     # {variant: {metric: value}}, variant None is the world
"""

import argparse
import math

from . import consistency, physics
from .adherence import evaluate, prompt_set
from .reference import DAMAGES, WorldPipeline

KEY_METRICS = (  # (name, better): what each variant is scored on
    ("adherence: colour", "higher"), ("adherence: shape", "higher"), ("adherence: direction", "higher"),
    ("physics: found", "higher"), ("physics: uniform speed error", "lower"),
    ("physics: uniform extrapolation", "lower"), ("physics: descended", "higher"),
    ("physics: gravity error", "lower"), ("physics: collided", "higher"),
    ("consistency: flicker", "lower"), ("consistency: clips with teleports", "lower"),
    ("consistency: clips with identity switches", "lower"), ("consistency: clips with objects from nowhere", "lower"),
    ("consistency: permanence", "higher"), ("distance: Fréchet", "lower"))


def _mean(values):
    values = [v for v in values if v is not None and math.isfinite(v)]
    return sum(values) / len(values) if values else float("nan")


def sanity(variants=(None, *DAMAGES), *, n: int = 4, physics_n: int = 1, resolution: int = 96, fps: float = 12,
           classifier: bool = True) -> dict:
    """Score the oracle (variant None) and each damage on small case sets.

    Args:
        n: adherence prompts (in-distribution, medium captions, 1 s).
        physics_n: cases per physics kind (2 s), plus as many occlusion scenes.
        classifier: also the Fréchet distance of each variant's clips to the world's (needs the shipped classifier).
    Returns:
        {variant: {metric: value}} with the KEY_METRICS names.
    """
    cases = prompt_set(n, "train", seconds=1.0)
    pcases = [c for kind in physics.KINDS for c in physics.physics_cases(physics_n, kind, seconds=2.0)]
    occlusions = consistency.occlusion_cases(physics_n, seconds=2.0)
    fields = {"resolution": resolution, "fps": fps, "steps": 1, "cfg": 1}
    out, world_features = {}, None
    for variant in variants:
        pipe = WorldPipeline(variant)
        pipe.know(cases + occlusions + [(c.prompt, c.scene) for c in pcases])
        clips = []
        rows = evaluate(pipe, cases, keep=lambda c, r, s, clips=clips: clips.append((r.frames, r.fps, c.scene)),
                        **fields)
        records = physics.run_physics(pipe, pcases, condition=False,
                                      keep=lambda c, r, t, clips=clips: clips.append((r.frames, r.fps, c.scene)),
                                      **fields)
        for prompt, scene in occlusions:
            result = pipe.generate([pipe.validate(prompt, aspect=scene.aspect, seconds=scene.duration, seed=0,
                                                  **fields)])[0]
            clips.append((result.frames, result.fps, scene))
        acc = {r["attribute"]: r["accuracy"] for r in rows}
        model = [r["model"] for r in records]
        kinds = {kind: [r["model"] for r in records if r["kind"] == kind] for kind in physics.KINDS}
        cons = [consistency.clip_consistency(frames, fps_, scene) for frames, fps_, scene in clips]
        permanence = [ok for c in cons for ok in c["permanence"]]
        row = {"adherence: colour": acc["color"], "adherence: shape": acc["shape"],
               "adherence: direction": acc["direction"],
               "physics: found": _mean([m["found"] for m in model]),
               "physics: uniform speed error": _mean([m.get("speed error", 1.0) for m in kinds["uniform"]]),
               "physics: uniform extrapolation": _mean([m.get("extrapolation") for m in kinds["uniform"]]),
               "physics: descended": _mean([m.get("descended", False) for m in kinds["parabolic"]]),
               "physics: gravity error": _mean([abs(m["gravity"] - 1) if "gravity" in m else 1.0
                                                for m in kinds["parabolic"]]),
               "physics: collided": _mean([m.get("collided", False) for m in kinds["collision"]]),
               "consistency: flicker": _mean([c["flicker"] for c in cons]),
               "consistency: clips with teleports": _mean([c["teleports"] > 0 for c in cons]),
               "consistency: clips with identity switches": _mean([c["identity switches"] > 0 for c in cons]),
               "consistency: clips with objects from nowhere": _mean([c["from nowhere"] > 0 for c in cons]),
               "consistency: permanence": _mean(permanence)}
        if classifier:
            from .distance import features_of, frechet
            features = features_of([(frames, fps_) for frames, fps_, _ in clips])
            world_features = features if world_features is None else world_features
            row["distance: Fréchet"] = frechet(features, world_features)
        out[variant] = row
    return out


def markdown(table: dict) -> str:
    variants = list(table)
    names = ["world" if v is None else v for v in variants]
    lines = ["| metric | better | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for metric, better in KEY_METRICS:
        if metric in table[variants[0]]:
            lines.append(f"| {metric} | {better} | " + " | ".join(f"{table[v][metric]:.3g}" for v in variants) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description="Score ToyWorld's renders and damaged ones on every metric.")
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--physics-n", type=int, default=2)
    parser.add_argument("--resolution", type=int, default=128)
    args = parser.parse_args()
    print(markdown(sanity(n=args.n, physics_n=args.physics_n, resolution=args.resolution)))


if __name__ == "__main__":
    main()
