"""Does a model read the direction word? Small probes of one object sliding right, left, up or down.

    python benchmarks/bench_direction.py data runs/probe --n 16 --starts quad          # a folder to train on
    straightline train --out runs/V4 --init default --folder runs/probe ... --time-shift 4
    python benchmarks/bench_direction.py headings --model runs/V4 --n 16 --starts quad  # the same scenes' captions
    python benchmarks/bench_direction.py headings --model runs/V4 --n 48 --seed 12 --objects random   # new scenes
    python benchmarks/bench_direction.py loss --model runs/V4 --cache runs/V4/cache

Scenes are 2-s 128x128 clips of one object sliding slowly (or, with --objects random, at slow or medium speed) in
one of the four directions, n/4 each, and never touching a wall. --objects red-ball: a medium red ball on the night
sky, captioned by --template, which names nothing but the direction. --objects random: any shape, colour, size
(medium or large) and background, captioned with ToyWorld's medium caption. --starts: where objects start: the
centre, the four points (0.37|0.63, 0.37|0.63) in turn, or anywhere that keeps the path in view (random). The same
--seed gives the same scenes, so `headings` with `data`'s arguments samples the captions a probe trained on, and
another seed gives new ones.

- headings: each caption sampled with seeds 0..--seeds-1; the object (the track present longest) is read by
  perception and its heading (8-way, over the whole clip) compared with the word. Chance is about 1 in 8. The
  first row reads the scenes' renders: perception's own accuracy (objects it cannot see on their background, such
  as gray on the sea, count as not seen).
- loss: the flow loss of each clip of a red-ball probe's latent cache under each of the four captions, at six noises
  in each of three bands of t (t = 0 is noise); other words' loss over the clip's own word. A model that ignores
  the word has ratios of 1.

Prints Markdown. Runs with torch's thread count as set (OMP_NUM_THREADS=1 on a shared 2-core machine).
"""

import argparse
import json
import random
from pathlib import Path

import torch

from straightline.eval.adherence import heading, track_velocity
from straightline.eval.stats import fmt, rate
from straightline.world import Scene, WorldObject, captions, render, vocab
from straightline.world.scene import validate_scene

WORDS = {"right": "rightwards", "left": "leftwards", "up": "upwards", "down": "downwards"}
QUAD = [(x, y) for x in (0.37, 0.63) for y in (0.37, 0.63)]


def probe_scenes(n: int, seed: int, starts: str, objects: str, template: str) -> list[tuple[Scene, str, str]]:
    """(scene, caption, direction) for n one-object slides, n/4 in each direction."""
    rng, out = random.Random(seed), []
    for i in range(n):
        d = list(WORDS)[i % 4]
        if objects == "red-ball":
            size, speed = "medium", "slow"
        else:
            size, speed = rng.choice(["medium", "large"]), rng.choice(["slow", "medium"])
        if starts == "centre":
            x, y = 0.5, 0.5
        elif starts == "quad":
            x, y = QUAD[(i // 4) % 4]
        else:                                             # anywhere the whole path stays off the walls
            r, travel = vocab.SIZES[size], vocab.SPEEDS[speed] * 2.0
            along, across = rng.uniform(r, 1 - r - travel), rng.uniform(r + 0.05, 1 - r - 0.05)
            along = 1 - along if d in ("left", "down") else along
            x, y = (along, across) if d in ("right", "left") else (across, along)
        if objects == "red-ball":
            shape, color, background = "ball", "red", "night"
        else:
            shape, color = rng.choice(vocab.SHAPES), rng.choice(list(vocab.COLORS))
            background = rng.choice(list(vocab.BACKGROUNDS))
        scene = Scene(objects=[WorldObject(shape, color, size, "slide", x, y, direction=d, speed=speed)],
                      background=background, aspect=1.0, duration=2.0, seed=seed * 1000 + i, scenario="single")
        validate_scene(scene)
        caption = template.format(WORDS[d]) if objects == "red-ball" else captions(scene)["medium"]
        out.append((scene, caption, d))
    return out


def cmd_data(args, scenes) -> None:
    from straightline.video_io import write_video
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (scene, caption, d) in enumerate(scenes):
        write_video(out / f"{i:03d}-{d}.mp4", render(scene, 128, 128, fps=12).frames, fps=12)
        rows.append({"file": f"{i:03d}-{d}.mp4", "caption": caption})
    (out / "captions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{len(rows)} clips and captions.jsonl in {out}; the first: {rows[0]['caption']!r}")


def clip_heading(frames, fps: float) -> str:
    """The 8-way heading of the track present longest, 'still', or '-' when no object was seen."""
    from straightline.world.perception import perceive
    frames = torch.as_tensor(frames)
    tracks = [t for t in perceive(frames) if int(t.present.sum()) >= 3]
    if not tracks:
        return "-"
    velocity = track_velocity(max(tracks, key=lambda t: int(t.present.sum())), fps, min(frames.shape[1:3]))
    return "still" if velocity is None else heading(velocity)


def cmd_headings(args, scenes) -> None:
    from straightline.pipeline import Pipeline
    rows = {"the renders (perception's own accuracy)": [(d, clip_heading(render(s, 128, 128, fps=12).frames, 12))
                                                      for s, _, d in scenes]}
    pipe = Pipeline(args.model, args.device)
    rows[args.model] = []
    for seed in range(args.seeds):
        requests = [pipe.validate(caption, size="128x128", seconds=2, seed=seed) for _, caption, _ in scenes]
        results = pipe.generate(requests)
        rows[args.model] += [(d, clip_heading(r.frames, r.fps)) for (_, _, d), r in zip(scenes, results)]
    print(f"{args.n} scenes (seed {args.seed}, objects {args.objects}, starts {args.starts}), {args.seeds} sampling "
          "seed(s) each; headings read by perception, 8-way (chance about 1 in 8)\n")
    print(f"| clips | as the word says | {' | '.join(WORDS)} | still or not seen |")
    print("|---|---|" + "---|" * len(WORDS) + "---|")
    for name, seen in rows.items():
        print(f"| {name} | {fmt(rate(sum(h == d for d, h in seen), len(seen)), percent=True)} | "
              + " | ".join(f"{sum(h == w for d, h in seen if d == w)}/{sum(d == w for d, _ in seen)}" for w in WORDS)
              + f" | {sum(h in ('still', '-') for _, h in seen)} |")


def cmd_loss(args) -> None:
    from straightline import flow
    from straightline.model import load_model
    from straightline.text import load_text_encoder
    from straightline.train import LatentCache
    torch.manual_seed(0)
    dit, _, info = load_model(args.model, args.device)
    dit.eval()
    text = load_text_encoder(info.text_encoder, args.device, info.text_features)
    emb = text([args.template.format(w) for w in WORDS.values()])
    cache = LatentCache(Path(args.cache))
    print("| model | t in | own word's loss | other words' loss | ratio |\n|---|---|---|---|---|")
    with torch.no_grad():
        for lo, hi in [(0.0, 0.2), (0.2, 0.5), (0.5, 1.0)]:
            mine, other = [], []
            for items in cache.by_bucket.values():                    # a probe's clips are all one bucket
                latents = torch.stack([cache.latents(item) for item in items]).float().to(args.device)
                own = torch.tensor([next(j for j, w in enumerate(WORDS.values()) if w in item[2]["caption"])
                                    for item in items])
                n = len(items)
                cond = latents.new_zeros(n, latents.shape[1] + 1, *latents.shape[2:])      # nothing given
                loss = torch.zeros(n, len(WORDS), device=args.device)
                for k in range(6):
                    t = torch.full((n,), lo + (hi - lo) * (k + 0.5) / 6, device=args.device)
                    noise = torch.randn_like(latents)
                    x_t, target = flow.interpolate(latents, noise, t), flow.velocity_target(latents, noise)
                    for j in range(len(WORDS)):
                        v = dit(x_t, t, emb.tokens[j:j + 1].expand(n, -1, -1), emb.mask[j:j + 1].expand(n, -1),
                                emb.pooled[j:j + 1].expand(n, -1), cond)
                        loss[:, j] += (v.float() - target).pow(2).mean(dim=(1, 2, 3, 4)) / 6
                is_own = torch.nn.functional.one_hot(own, len(WORDS)).bool()
                mine.append(loss.cpu()[is_own])
                other.append(loss.cpu()[~is_own])
            mine, other = torch.cat(mine).mean(), torch.cat(other).mean()
            print(f"| {args.model} | [{lo}, {hi}) | {mine:.4f} | {other:.4f} | {other / mine:.3f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["data", "headings", "loss"])
    parser.add_argument("out", nargs="?", help="data: the folder to write")
    parser.add_argument("--model", default="default", help='"default" (the shipped model) or a model folder')
    parser.add_argument("--n", type=int, default=16, help="scenes (a multiple of 4)")
    parser.add_argument("--seed", type=int, default=0, help="which scenes")
    parser.add_argument("--starts", choices=["centre", "quad", "random"], default="quad")
    parser.add_argument("--objects", choices=["red-ball", "random"], default="red-ball")
    parser.add_argument("--template", default="A red ball moves {} under a night sky.",
                        help="red-ball captions; {} is the direction word")
    parser.add_argument("--seeds", type=int, default=1, help="headings: sampling seeds per caption")
    parser.add_argument("--cache", help="loss: a red-ball probe's latent cache (its run's cache/ folder)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.command == "loss":
        if not args.cache:
            parser.error("loss needs --cache RUN/cache (a red-ball probe's latent cache)")
        return cmd_loss(args)
    if args.n < 4 or args.n % 4:
        parser.error(f"--n {args.n}: a positive multiple of 4 (n/4 scenes per direction)")
    scenes = probe_scenes(args.n, args.seed, args.starts, args.objects, args.template)
    if args.command == "data":
        if not args.out:
            parser.error("data needs the folder to write: bench_direction.py data OUT")
        return cmd_data(args, scenes)
    cmd_headings(args, scenes)


if __name__ == "__main__":
    main()
