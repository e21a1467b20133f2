"""Image and video prompting: image to video, the seams of extension / connection / loops / long videos, object
stability over a long video, and how an edit's strength trades the source against the new prompt.

    python benchmarks/bench_modes.py --model default --n 16 --seconds 2 --fps 12 --resolution 128 --steps 20 --cfg 5

Inputs are ToyWorld renders of evaluation scenes (eval.adherence.prompt_set: medium captions, static camera), so
every given image or video is in the model's world and its true continuation is known.

Image to video: the first frame of each scene's render is given (`image=`). PSNR of the first generated frame
vs that image, next to the VAE's own reconstruction PSNR of it (the best the first frame can be: given frames
come back as the VAE reconstructs them). Motion: the mean absolute change between consecutive frames (0-255),
for the generated clip and for the scene's true render from the same frame (a still scores 0); and the share of
clips in which perception sees an object move (motion word other than "still").

Seams: the change across a seam over the typical change between consecutive frames of the same clip (the
median over the frames not at a seam), and the largest change among the 4 steps from the seam into the new
frames (the latent frame that meets the seam) over the same typical change; the goal (<= 1.5) is checked on
the second. Seams fall on latent-frame boundaries, and a decoder trained to keep the boundary step small can
move the jump to the next step (one did: it repeated the first frame of each latent frame), which the first
figure alone would miss. Extend forward (the render's first half given, as much
again added), extend backward (its second half given), connect (the first and last thirds, the middle
regenerated), loop (the wrap from the last frame to the first), and the joins between the passes of a long video.

Long video: --long-seconds from each prompt (chained passes); perception on the first and last second: the
same number of objects, the same colours, the same shape for every colour seen in both. The scene's own render
of the same length is the reference (objects may leave the frame in ToyWorld too).

Edit: each render edited with its prompt's first colour replaced by a colour the scene does not use, at several
strengths: PSNR to the source (fidelity) and the share of clips in which perception sees the new colour and no
longer the old one (adherence).

Prints Markdown tables. Runs with torch's thread count as set (OMP_NUM_THREADS=1 on a shared 2-core machine).
"""

import argparse
import datetime
import re
import statistics
import sys
import time

import torch

from straightline.data import from_model_output, to_model_input
from straightline.eval.adherence import prompt_set
from straightline.eval.report import hardware
from straightline.metrics import psnr
from straightline.pipeline import Pipeline
from straightline.world import render
from straightline.world.perception import motion_of, perceive
from straightline.world.scene import contrasting_colors

GOAL = 1.5     # a seam's change over the typical frame-to-frame change


def log(what: str) -> None:
    print(what, file=sys.stderr, flush=True)


# --- measures ------------------------------------------------------------------------------------------

def changes(frames: torch.Tensor) -> torch.Tensor:
    """Mean absolute change (0-255) between consecutive frames: (T - 1,)."""
    return (frames[1:].float() - frames[:-1].float()).abs().mean(dim=(1, 2, 3))


def seam_ratios(frames: torch.Tensor, seams: list[int], new: tuple[int, int] | None = None
                ) -> tuple[list[float], list[float], float]:
    """For each seam s (between frames s - 1 and s; s = len(frames) is the wrap to frame 0): the change across
    it, and the largest change among the 4 steps from the seam into the new frames' side (the latent frame
    that meets the seam: a decoder can move a seam's jump off the boundary step, and this still sees it), each
    over the median change between consecutive frames not at a seam; and that median. `new`: the range of
    new frames (the side each window looks into; default: after every seam)."""
    steps = changes(torch.cat([frames, frames[:1]]))                  # the last step is the wrap
    inside = [float(c) for i, c in enumerate(steps[:-1]) if i + 1 not in seams]
    typical = max(statistics.median(inside) if inside else float("nan"), 1e-6)
    at, window = [], []
    for s in seams:
        after = new is None or s <= new[0]
        steps_near = range(s - 1, s + 3) if after else range(s - 4, s)
        at.append(float(steps[s - 1]) / typical)
        window.append(max(float(steps[i % len(steps)]) for i in steps_near) / typical)
    return at, window, typical


def moving(frames: torch.Tensor, fps: float) -> bool:
    short = min(frames.shape[1:3])
    return any(motion_of(track, fps, short)["motion"] not in (None, "still") for track in perceive(frames))


def objects(frames: torch.Tensor) -> dict[str, str]:
    """colour -> shape of the objects perception sees."""
    return {track.color: track.shape for track in perceive(frames)}


def stable(first: dict, last: dict) -> tuple[bool, bool, bool]:
    """Same count, same colours, same shape for every colour seen in both."""
    common = first.keys() & last.keys()
    return len(first) == len(last), first.keys() == last.keys(), all(first[c] == last[c] for c in common)


def share(flags) -> str:
    flags = list(flags)
    return f"{100 * sum(flags) / len(flags):.0f}% ({sum(flags)}/{len(flags)})" if flags else "-"


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


# --- sections ------------------------------------------------------------------------------------------

def image_to_video(pipe, cases, renders, fields) -> str:
    requests = [pipe.validate(c.prompt, image=frames[0], **fields) for c, frames in zip(cases, renders)]
    results = pipe.generate(requests)
    recon = [from_model_output(pipe.vae.decode(pipe.vae.encode(to_model_input(f[None, :1]).to(pipe.device))))[0, 0]
             for f in renders]
    fps = fields["fps"]
    rows = {
        "first-frame PSNR vs the image (dB)": f"{mean(psnr(r.frames[0], f[0]) for r, f in zip(results, renders)):.2f}",
        "VAE reconstruction PSNR of the image (dB)": f"{mean(psnr(x, f[0]) for x, f in zip(recon, renders)):.2f}",
        "motion, generated (mean abs change per frame)":
            f"{mean(float(changes(r.frames).mean()) for r in results):.2f}",
        "motion, true render from the same frame": f"{mean(float(changes(f).mean()) for f in renders):.2f}",
        "clips with an object moving, generated": share(moving(r.frames, fps) for r in results),
        "clips with an object moving, true render": share(moving(f, fps) for f in renders),
    }
    return "| measure | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows.items())


def seam_jobs(frames: torch.Tensor) -> list[tuple[str, dict, callable, callable]]:
    """For a render: (mode, the request fields that make it, the seams in a result of n frames, the range of
    its new frames)."""
    T, half, third = len(frames), len(frames) // 2, len(frames) // 3
    return [
        ("extend forward", {"mode": "extend", "video": frames[:half + 1], "frames": half}, lambda n: [half + 1],
         lambda n: (half + 1, n)),
        ("extend backward", {"mode": "extend", "video": frames[half:], "direction": "backward", "frames": half},
         lambda n: [half], lambda n: (0, half)),
        ("connect", {"mode": "connect", "video": frames[:third], "end_video": frames[T - third:],
                     "frames": T - 2 * third}, lambda n: [third, n - third], lambda n: (third, n - third)),
        ("loop", {"mode": "loop", "image": frames[0]}, lambda n: [n], lambda n: (0, n)),   # the wrap to the start
    ]


def seams(pipe, cases, renders, fields) -> dict:
    """mode -> (seam step ratios, seam latent-frame ratios, typical changes) for extend (both ways), connect
    and loop."""
    rows = {}
    for c, frames in zip(cases, renders):
        for mode, request_fields, seams_at, new_at in seam_jobs(frames):
            result = pipe.generate(pipe.validate(c.prompt, **fields, **request_fields))[0]
            n = len(result.frames)
            at, window, typical = seam_ratios(result.frames, seams_at(n), new_at(n))
            rows.setdefault(mode, ([], [], []))
            rows[mode][0].extend(at)
            rows[mode][1].extend(window)
            rows[mode][2].append(typical)
    log("seams done")
    return rows


def seam_table(rows: dict) -> str:
    lines = [("| mode | seams | typical change | seam step / typical: median | seam's latent frame, largest step / "
              "typical: median | max | within 1.5× |"), "|---|---|---|---|---|---|---|"]
    for mode, (at, window, typical) in rows.items():
        if not at:
            continue
        lines.append(f"| {mode} | {len(at)} | {mean(typical):.2f} | {statistics.median(at):.2f} | "
                     f"{statistics.median(window):.2f} | {max(window):.2f} | {share(r <= GOAL for r in window)} |")
    return "\n".join(lines)


def long_video(pipe, cases, fields) -> tuple[str, tuple]:
    """Cases of the long duration: their scenes' renders are the reference."""
    requests = [pipe.validate(c.prompt, **{**fields, "seconds": c.scene.duration}) for c in cases]
    fps, second = fields["fps"], round(fields["fps"])
    model, truth, at, window, typical = [], [], [], [], []
    for c, request in zip(cases, requests):
        result = pipe.generate(request)[0]
        frames = result.frames
        model.append(stable(objects(frames[:second + 1]), objects(frames[-second - 1:])))
        true = render(c.scene, request.width, request.height, fps=fps, num_frames=request.frames).frames
        truth.append(stable(objects(true[:second + 1]), objects(true[-second - 1:])))
        joins, made = [], 0
        for p in request.plan:                                     # where each pass's new frames begin
            if made:
                joins.append(made)
            made += p.frames - p.start
        a, w, t = seam_ratios(frames, [j for j in joins if j < len(frames)])
        at += a
        window += w
        typical.append(t)
        log(f"long video {len(model)}/{len(cases)} done")
    passes = len(requests[0].plan)
    longest = max(p.frames for p in requests[0].plan)
    header = (f"{len(cases)} prompts, {requests[0].seconds:g} s ({requests[0].frames} frames, {passes} passes of "
              f"up to {longest} frames); first vs last second.\n")
    lines = [header, "| source | same object count | same colours | same shapes |", "|---|---|---|---|"]
    for name, flags in (("generated", model), ("ToyWorld render (reference)", truth)):
        lines.append(f"| {name} | " + " | ".join(share(f[k] for f in flags) for k in range(3)) + " |")
    return "\n".join(lines), (at, window, typical)


def edit(pipe, cases, renders, fields, strengths) -> str:
    jobs = []
    for c, frames in zip(cases, renders):
        old = c.scene.objects[0].color
        used = {o.color for o in c.scene.objects}
        new = next(x for x in contrasting_colors(c.scene.background) if x not in used)
        prompt = re.sub(rf"\b{old}\b", new, c.prompt, count=1)
        jobs.append((frames, prompt, old, new))
    lines = ["| strength | PSNR to the source (dB) | new colour seen | old colour gone | both |",
             "|---|---|---|---|---|"]
    for strength in strengths:
        requests = [pipe.validate(prompt, mode="edit", video=frames, strength=strength, **fields)
                    for frames, prompt, _, _ in jobs]
        results = pipe.generate(requests)
        seen = [objects(r.frames).keys() for r in results]
        fidelity = mean(psnr(r.frames, r.request.video) for r in results)
        new_seen = [job[3] in s for job, s in zip(jobs, seen)]
        old_gone = [job[2] not in s for job, s in zip(jobs, seen)]
        lines.append(f"| {strength:g} | {fidelity:.2f} | {share(new_seen)} | {share(old_gone)} | "
                     f"{share(a and b for a, b in zip(new_seen, old_gone))} |")
        log(f"edit: strength {strength:g} done")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default", help='"default" (the shipped model) or a model folder')
    parser.add_argument("--n", type=int, default=16, help="prompts (scenes) per section")
    parser.add_argument("--seconds", type=float, default=2.0, help="clip length of the renders and results")
    parser.add_argument("--long-seconds", type=float, default=30.0, help="length of the long videos")
    parser.add_argument("--long-n", type=int, default=4, help="prompts for the long videos")
    parser.add_argument("--strengths", default="0.2,0.4,0.6,0.8,1", help="edit strengths, comma-separated")
    parser.add_argument("--fps", type=float, default=12)
    parser.add_argument("--resolution", type=int, default=128, help="short side in pixels")
    parser.add_argument("--aspect", default="16:9")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cfg", type=float, default=None, help="guidance scale (default: the model's own)")
    parser.add_argument("--cfg-interval", default=None, metavar="LO,HI",
                        help="diffusion times that are guided (default: the model's own)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip", nargs="*", default=[], choices=["i2v", "seams", "long", "edit"])
    args = parser.parse_args()

    pipe = Pipeline(args.model, args.device)
    args.cfg = pipe.info.default("cfg") if args.cfg is None else args.cfg
    args.cfg_interval = [float(v) for v in args.cfg_interval.split(",")] if args.cfg_interval else \
        pipe.info.default("cfg_interval")
    cases = prompt_set(args.n, "train", aspect=args.aspect, seconds=args.seconds)
    probe = pipe.validate(cases[0].prompt, aspect=args.aspect, resolution=args.resolution, fps=args.fps,
                          seconds=args.seconds)
    width, height, frames = probe.width, probe.height, probe.frames
    fields = {"size": f"{width}x{height}", "fps": args.fps, "steps": args.steps, "cfg": args.cfg,
              "cfg_interval": args.cfg_interval, "seed": 0}
    renders = [render(c.scene, width, height, fps=args.fps, num_frames=frames).frames for c in cases]
    params = sum(p.numel() for p in pipe.dit.parameters()) / 1e6
    start = time.perf_counter()
    print(f"# Image and video prompting: model `{args.model}`\n")
    print(f"{datetime.date.today()}; device {args.device}; {hardware(args.device)}.  ")
    print(f"DiT {params:.2f}M parameters; {args.n} ToyWorld scenes ({args.aspect}, {width}x{height}, {frames} "
          f"frames at {args.fps:g} fps); {args.steps} steps, "
          f"cfg {args.cfg:g} at t in {list(args.cfg_interval)}, seed 0.\n")

    if "i2v" not in args.skip:
        print("## Image to video\n")
        print(image_to_video(pipe, cases, renders, {**fields, "seconds": args.seconds}) + "\n")
        log("image to video done")
    rows = {}
    if "seams" not in args.skip:
        rows = seams(pipe, cases, renders, fields)
    if "long" not in args.skip:
        long_cases = prompt_set(args.long_n, "train", aspect=args.aspect, seconds=args.long_seconds, seed=1)
        table, rows["long video (pass joins)"] = long_video(pipe, long_cases, fields)
        print("## Long video\n\n" + table + "\n")
    if rows:
        print(f"## Seams\n\nChange across a seam over the clip's typical frame-to-frame change (goal <= {GOAL:g}).\n")
        print(seam_table(rows) + "\n")
    if "edit" not in args.skip:
        strengths = [float(s) for s in args.strengths.split(",")]
        print("## Edit: strength vs fidelity and adherence\n")
        print(edit(pipe, cases, renders, fields, strengths) + "\n")
    print(f"{time.perf_counter() - start:.0f} s in all.")


if __name__ == "__main__":
    main()
