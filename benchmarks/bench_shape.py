"""At which noise level does a model decide an object's outline, and can the shape word still change it there?

    python benchmarks/bench_shape.py --model default --n 30 --resolution 256 --strengths 0.6,0.8,0.9,1

One-object ToyWorld scenes (adherence's "single" prompt set, static camera, medium captions) are rendered as
images and edited SDEdit-style (`mode="edit"`): noised to t0 = 1 - strength and sampled from there.

- "own word": edited with their own caption. The share whose perceived shape is the scene's shape says how much
  noise a drawn outline survives. At strength 1 (pure noise) it is text-to-image shape adherence.
- "other word": edited with the caption of the scene's reshaped twin (world.physics.reshaped_scene: the object
  made another shape, with the same colour, size, place and background). Shares of images that show the new shape
  and that still show the old one: whether the word can redraw an outline that the noise has not yet erased.

Strength 0 rows are the renders themselves (perception's own accuracy). Cells are shares with 95% Wilson
intervals. Prints Markdown tables. Runs with torch's thread count as set (OMP_NUM_THREADS=1 on a shared
2-core machine).
"""

import argparse
import datetime
import random
import sys
import time

from straightline.eval.adherence import prompt_set, score
from straightline.eval.report import hardware
from straightline.eval.stats import fmt, rate
from straightline.pipeline import Pipeline
from straightline.world import captions, render, vocab
from straightline.world.perception import perceive
from straightline.world.physics import reshaped_scene


def share(flags: list[bool]) -> str:
    return fmt(rate(sum(flags), len(flags)), percent=True)


def shapes_seen(frames) -> set[str]:
    return {track.shape for track in perceive(frames)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default", help='"default" (the shipped model) or a model folder')
    parser.add_argument("--n", type=int, default=30, help="one-object scenes")
    parser.add_argument("--resolution", type=int, default=256, help="short side in pixels")
    parser.add_argument("--aspect", default="1:1")
    parser.add_argument("--strengths", default="0.6,0.8,0.9,1", help="edit strengths, comma-separated")
    parser.add_argument("--steps", type=int, default=20, help="sampling steps at strength 1 (fewer below it)")
    parser.add_argument("--cfg", type=float, default=None, help="guidance scale (default: the model's own)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    strengths = [float(s) for s in args.strengths.split(",")]

    pipe = Pipeline(args.model, args.device)
    cfg = pipe.info.default("cfg") if args.cfg is None else args.cfg
    # the first n one-object scenes with a reshaped twin (world.physics.reshaped_scene: another shape that the
    # colour and motion allow, never held out; none where the shape's radius would change a bounce)
    rng = random.Random(0)
    pairs = ((c, reshaped_scene(c.scene, rng)) for c in
             prompt_set(4 * args.n, "train", aspect=args.aspect, seconds=2.0, scenario="single"))
    cases, others = zip(*[(c, twin) for c, twin in pairs if twin is not None][:args.n])
    probe = pipe.validate(cases[0].prompt, aspect=args.aspect, resolution=args.resolution, seconds=0)
    width, height = probe.width, probe.height
    fields = {"size": f"{width}x{height}", "steps": args.steps, "cfg": cfg, "seed": 0}
    renders = [render(c.scene, width, height, fps=12, num_frames=1).frames for c in cases]
    start = time.perf_counter()
    print(f"# Where the outline is decided: model `{args.model}`\n")
    print(f"{datetime.date.today()}; device {args.device}; {hardware(args.device)}.  ")
    print(f"{len(cases)} one-object ToyWorld scenes, {width}x{height} images; up to {args.steps} steps, cfg {cfg:g} "
          f"(the model's interval), seed 0.\n")
    rows = [("0 (the renders)", [score(f, 12, c.scene)["objects"] for f, c in zip(renders, cases)],
             [shapes_seen(f) for f in renders])]
    for strength in strengths:
        own = pipe.generate([pipe.validate(c.prompt, mode="edit", video=f, strength=strength, **fields)
                             for c, f in zip(cases, renders)])
        other = pipe.generate([pipe.validate(captions(s)["medium"], mode="edit", video=f, strength=strength, **fields)
                               for s, f in zip(others, renders)])
        rows.append((f"{strength:g}", [score(r.frames, 12, c.scene)["objects"] for r, c in zip(own, cases)],
                     [shapes_seen(r.frames) for r in other]))
        print(f"strength {strength:g} done ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    print("| strength | own word: shape right | other word: new shape seen | other word: old shape still seen |")
    print("|---|---|---|---|")
    for name, scored, seen in rows:
        right = [bool(objs) and objs[0]["shape"] for objs in scored]
        new = [s.objects[0].shape in shapes for s, shapes in zip(others, seen)]
        old = [c.scene.objects[0].shape in shapes for c, shapes in zip(cases, seen)]
        print(f"| {name} | {share(right)} | {share(new)} | {share(old)} |")
    print(f"\n{time.perf_counter() - start:.0f} s. Chance for a shape is 1 in {len(vocab.SHAPES)} (17%).")


if __name__ == "__main__":
    main()
