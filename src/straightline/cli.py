"""The `straightline` command: a thin layer over the same library calls the service makes.

Every flag maps to one argument of a library function; errors a user can cause (InvalidRequest, MediaError)
are printed as one line naming what was wrong and what is allowed, with exit status 2.
"""

import argparse
import json
import sys
from pathlib import Path

from .errors import StraightlineError

EXAMPLES = """examples:
  straightline world render "a red ball bouncing on a wooden floor" -o ball.mp4
  straightline world render "a small blue star slides left over a sunset sky" --aspect 9:16 --resolution 256 -o star.mp4
  straightline world render --seed 7 --size 320x180 --seconds 6 --fps 12 -o random.mp4 --ground-truth random.json
  straightline world export --n 100 --out data/toyworld
  straightline data inspect data/toyworld
"""


def _size_args(p):
    g = p.add_argument_group("frame size (either --size, or --aspect with --resolution)")
    g.add_argument("--size", help='WIDTHxHEIGHT in pixels, e.g. "320x180"')
    g.add_argument("--aspect", default="16:9", help='width:height, e.g. "16:9", "9:16", "1:1" (default 16:9)')
    g.add_argument("--resolution", type=int, default=256, help="short side in pixels (default 256)")


def _resolve_size(args) -> tuple[float, int, int]:
    from .request import parse_aspect, parse_size, size_for
    if args.size:
        width, height = parse_size(args.size)
        return width / height, width, height
    aspect = parse_aspect(args.aspect)
    width, height = size_for(aspect, args.resolution)
    return aspect, width, height


def cmd_world_render(args) -> None:
    from .request import frames_for
    from .video_io import write_video
    from .world import render, sample_scene
    from .world.captions import captions
    from .world.prompt import parse_prompt, scene_from_prompt

    aspect, width, height = _resolve_size(args)
    num_frames = frames_for(args.seconds, args.fps)
    duration = (num_frames - 1) / args.fps
    if args.prompt:
        scene = scene_from_prompt(args.prompt, seed=args.seed, aspect=aspect, duration=duration)
        understood = parse_prompt(args.prompt)
    else:
        scene = sample_scene(args.seed, aspect=aspect, duration=duration, split=args.split)
        understood = None
    clip = render(scene, width, height, fps=args.fps, num_frames=num_frames, device=args.device)
    out = write_video(args.output, clip.frames, args.fps)
    text = captions(scene)
    print(f"wrote {out}: {width}x{height}, {num_frames} frames at {args.fps:g} fps ({duration:g} s"
          + (f"; {args.seconds:g} s asked, frame counts are 1 + 4k" if abs(duration - args.seconds) > 1e-9 else "")
          + ")")
    if understood is not None:
        print("understood:", json.dumps(understood))
    for level in ("short", "medium", "long"):
        print(f"{level}: {text[level]}")
    if args.ground_truth:
        Path(args.ground_truth).write_text(json.dumps({"captions": text, **clip.ground_truth()}))
        print(f"wrote {args.ground_truth}: scene, per-frame centres, boxes and visible fractions")


def cmd_world_export(args) -> None:
    from .data import export_toyworld
    from .request import parse_aspect
    aspects = [parse_aspect(a) for a in args.aspects.split(",")]
    summary = export_toyworld(args.out, args.n, resolution=args.resolution, aspects=aspects,
                              seconds=args.seconds, fps=args.fps, split=args.split, seed=args.seed)
    print(json.dumps(summary, indent=2))


def cmd_data_inspect(args) -> None:
    from .data import format_inspection, inspect_folder
    print(format_inspection(inspect_folder(args.folder)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="straightline", description="Sora-style video generation: ToyWorld, models, service.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    world = sub.add_parser("world", help="ToyWorld: render scenes from a prompt or a seed, export datasets",
                           formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES)
    wsub = world.add_subparsers(dest="world_command", required=True, metavar="ACTION")

    r = wsub.add_parser("render", help="render one ToyWorld video from a prompt (or a random scene from --seed)",
                        description="Render a ToyWorld video. The prompt is read with ToyWorld's vocabulary "
                        "(colours, shapes, sizes, motions, backgrounds, camera moves); whatever it does not say "
                        "is drawn from --seed. Without a prompt, a random scene is drawn from --seed.")
    r.add_argument("prompt", nargs="?", help='e.g. "a red ball bouncing on a wooden floor"')
    r.add_argument("-o", "--output", required=True, help="output file: .mp4 (H.264), .gif or .webp")
    _size_args(r)
    r.add_argument("--seconds", type=float, default=4.0, help="duration (default 4)")
    r.add_argument("--fps", type=float, default=24.0, help="frames per second (default 24)")
    r.add_argument("--seed", type=int, default=0, help="draws whatever the prompt leaves open (default 0)")
    r.add_argument("--split", default="train", choices=["train", "heldout", "any"],
                   help="for random scenes: held-out compositions only in 'heldout' (default train)")
    r.add_argument("--ground-truth", metavar="JSON", help="also write the scene and per-frame object tracks")
    r.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    r.set_defaults(func=cmd_world_render)

    e = wsub.add_parser("export", help="write N random clips as a video folder (mp4 + captions.jsonl + ground truth)")
    e.add_argument("--n", type=int, required=True, help="number of clips")
    e.add_argument("--out", required=True, help="output folder")
    e.add_argument("--resolution", type=int, default=256, help="short side in pixels (default 256)")
    e.add_argument("--aspects", default="16:9,9:16,1:1", help="comma-separated aspects to cycle through")
    e.add_argument("--seconds", type=float, default=4.0, help="duration of each clip (default 4)")
    e.add_argument("--fps", type=float, default=24.0, help="frames per second (default 24)")
    e.add_argument("--split", default="train", choices=["train", "heldout", "any"], help="default train")
    e.add_argument("--seed", type=int, default=0, help="first scene seed (default 0)")
    e.set_defaults(func=cmd_world_export)

    data = sub.add_parser("data", help="datasets: inspect a video folder")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    i = dsub.add_parser("inspect", help="count clips per bucket and list unreadable files")
    i.add_argument("folder", help="a folder of videos/images with captions.jsonl or sidecar .txt captions")
    i.set_defaults(func=cmd_data_inspect)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except StraightlineError as err:
        print(f"straightline: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
