"""The `straightline` command: a thin layer over the same library calls the service makes.

Every flag maps to one argument of a library function; errors a user can cause (InvalidRequest, MediaError)
are printed as one line naming what was wrong and what is allowed, with exit status 2.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from .errors import StraightlineError

EXAMPLES = """examples:
  straightline generate "a red ball bouncing on a wooden floor" --seconds 4 --aspect 9:16 --seed 7
  straightline generate "a red ball bouncing on a wooden floor" --seconds 30
  straightline generate "the ball rolls to the right" --image first.png --end-image last.png
  straightline image "a red ball on a wooden floor" --size 512x288
  straightline extend in.mp4 "the ball keeps bouncing" --seconds 4 --direction forward
  straightline connect a.mp4 b.mp4 --seconds 2
  straightline loop "a red ball bouncing"          (or: straightline loop in.mp4)
  straightline edit in.mp4 "a blue ball bouncing" --strength 0.6
  straightline generate "a blue star slides left" "a green square falls" --model runs/dit -o "clip-{i}.mp4"
  straightline world render "a red ball bouncing on a wooden floor" -o ball.mp4
  straightline world render "a small blue star slides left over a sunset sky" --aspect 9:16 --resolution 256 -o star.mp4
  straightline world render --seed 7 --size 320x180 --seconds 6 --fps 12 -o random.mp4 --ground-truth random.json
  straightline world export --n 100 --out data/toyworld
  straightline data inspect data/toyworld
  straightline eval --model runs/dit --suite quick -o report/ --compare default
  straightline app new my-app          (then edit apps/my-app.toml; straightline app check)
  straightline vae train --out runs/vae --time-limit 3600
  straightline vae recon ../shared/media/realshort.mp4 --model runs/vae -o recon.mp4 --side-by-side
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


def _fit_for_vae(frames, max_frames: int | None):
    """Crop a uint8 (T, H, W, 3) clip to what the VAE takes: 1 + 4k frames, sides multiples of 8 (centre)."""
    T, H, W, _ = frames.shape
    keep = 1 + 4 * ((min(T, max_frames or T) - 1) // 4)
    h, w = H // 8 * 8, W // 8 * 8
    y0, x0 = (H - h) // 2, (W - w) // 2
    return frames[:keep, y0:y0 + h, x0:x0 + w]


def _to_model(frames):
    from .data import to_model_input
    return to_model_input(frames[None])


def _to_uint8(video):
    from .data import from_model_output
    return from_model_output(video)[0]


def cmd_vae_recon(args) -> None:
    from .metrics import psnr, ssim
    from .vae import VideoVAE
    from .video_io import read_video, write_video
    video = read_video(args.input, fps=args.fps, max_frames=args.max_frames,
                       size=_parse_size_arg(args.size), fit="crop")
    frames = _fit_for_vae(video.frames, args.max_frames)
    vae = VideoVAE.load(args.model, device=args.device)
    recon = _to_uint8(vae.decode(vae.encode(_to_model(frames).to(args.device))).cpu())
    note = "" if frames.shape == video.frames.shape else \
        f" (cropped from {video.width}x{video.height}x{video.num_frames} to 1 + 4k frames and multiples of 8)"
    print(f"{args.input}: {frames.shape[2]}x{frames.shape[1]}, {frames.shape[0]} frames{note}")
    print(f"PSNR {psnr(recon, frames):.2f} dB  SSIM {ssim(recon, frames):.4f}")
    if args.output:
        out = torch.cat([frames, recon], dim=2) if args.side_by_side else recon
        print(f"wrote {write_video(args.output, out, video.fps)}")


def cmd_vae_encode(args) -> None:
    from safetensors.torch import save_file

    from .vae import VideoVAE
    from .video_io import read_video
    video = read_video(args.input, fps=args.fps, max_frames=args.max_frames, size=_parse_size_arg(args.size))
    frames = _fit_for_vae(video.frames, args.max_frames)
    vae = VideoVAE.load(args.model, device=args.device)
    latents = vae.encode(_to_model(frames).to(args.device)).cpu()
    save_file({"latents": latents.contiguous()}, args.output,
              metadata={"fps": str(video.fps), "model": str(args.model)})
    print(f"wrote {args.output}: latents {tuple(latents.shape)} from {frames.shape[0]} frames "
          f"{frames.shape[2]}x{frames.shape[1]}")


def cmd_vae_decode(args) -> None:
    from safetensors import safe_open

    from .vae import VideoVAE
    from .video_io import write_video
    with safe_open(args.input, "pt") as f:
        latents, fps = f.get_tensor("latents"), float(f.metadata().get("fps", 24))
    vae = VideoVAE.load(args.model, device=args.device)
    frames = _to_uint8(vae.decode(latents.to(args.device)).cpu())
    path = write_video(args.output, frames, fps)
    print(f"wrote {path}: {frames.shape[0]} frames {frames.shape[2]}x{frames.shape[1]}")


def cmd_vae_train(args) -> None:
    from .train_vae import VAETrainConfig, train
    fields = ("preset", "steps", "lr", "pixel_budget", "crop", "fps", "kl_weight", "edge_weight", "temporal_weight",
              "boundary_weight", "motion_weight", "outline_weight", "profile_weight", "gan_weight", "seed", "init",
              "decoder_only", "decoder_blocks")
    values = {f: getattr(args, f) for f in fields if getattr(args, f) is not None}
    if args.durations:
        values["durations"] = tuple(args.durations)
    cfg = VAETrainConfig(**values)
    metrics = train(cfg, args.out, folder=args.folder, device=args.device, time_limit=args.time_limit,
                    workers=args.workers, preview_every=args.preview_every)
    print(json.dumps(metrics))


def cmd_vae_stats(args) -> None:
    from .train_vae import record_latent_stats, run_config
    from .vae import VideoVAE
    vae = VideoVAE.load(args.model)
    cfg = run_config(args.model)
    source = "the run's train_state.json" if (Path(args.model) / "train_state.json").is_file() else "defaults"
    print(f"measuring on {args.batches} batches of {list(cfg.resolutions)} px, {list(cfg.durations)} s at "
          f"{cfg.fps:g} fps ({source})")
    record_latent_stats(vae, cfg, batches=args.batches)
    vae.save(args.model)
    print(f"latent mean {[round(v, 3) for v in vae.latent_mean.tolist()]}")
    print(f"latent std  {[round(v, 3) for v in vae.latent_std.tolist()]}")
    print(f"updated {args.model}")


def cmd_train(args) -> None:
    from .request import parse_interval
    from .train import TrainConfig, train
    fields = ("preset", "vae", "text_encoder", "text_features", "init", "position_freqs", "fps", "cache_clips",
              "shard_clips", "image_share", "token_budget", "steps", "lr", "warmup", "ema", "text_dropout", "cond_prob",
              "object_weight", "time_shift", "time_shift_share", "reverse_pairs", "shape_pairs", "pair_weight", "seed",
              "distill_steps", "distill_cfg", "distill_substeps", "distill_rollout", "distill_endpoint",
              "student_init")
    values = {f: getattr(args, f) for f in fields if getattr(args, f) is not None}
    for name in ("resolutions", "image_resolutions"):
        if getattr(args, name) is not None:
            values[name] = tuple(int(r) for r in getattr(args, name).split(",") if r)
    if args.aspects:
        values["aspects"] = tuple(args.aspects.split(","))
    if args.scenarios:
        values["scenarios"] = tuple(args.scenarios.split(","))
    if args.seconds:
        values["seconds"] = tuple(float(s) for s in args.seconds.split(","))
    if args.distill_cfg_interval:
        values["distill_cfg_interval"] = parse_interval(args.distill_cfg_interval, "distill_cfg_interval")
    metrics = train(TrainConfig(**values), args.out, folder=args.folder, device=args.device,
                    time_limit=args.time_limit, compile=args.compile, sample_every=args.sample_every,
                    cache_workers=args.cache_workers, cache_only=args.cache_only, parallel=args.parallel,
                    checkpoint_activations=args.checkpoint_activations)
    print(json.dumps(metrics))


def _parse_size_arg(text):
    from .request import parse_size
    return parse_size(text) if text else None


def cmd_data_inspect(args) -> None:
    from .data import format_inspection, inspect_folder, make_buckets
    resolutions = [int(r) for r in args.resolutions.split(",")]
    buckets = make_buckets(resolutions=resolutions, fps=args.fps)
    print(format_inspection(inspect_folder(args.folder, buckets, fps=args.fps, decode=args.decode)))


# --- generate --------------------------------------------------------------------------------------------

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".gif", ".webp")


def _output_paths(out: str | None, prompts: list[str], image: bool) -> list[Path]:
    """Where each prompt's result goes: -o as a file (one prompt), a pattern with {i} (1, 2, ...) or a folder
    (a name without a suffix); by default a slug of the prompt. An image is a .png unless -o names a video."""
    from .errors import InvalidRequest
    from .pipeline import slug
    if out and "{i}" in out:
        paths = [Path(out.replace("{i}", str(i))) for i in range(1, len(prompts) + 1)]
    elif out and Path(out).suffix and not Path(out).is_dir():
        if len(prompts) > 1:
            raise InvalidRequest("out", out, "a folder or a pattern with {i} (e.g. clip-{i}.mp4) for several prompts")
        paths = [Path(out)]
    else:
        stems = [slug(p) for p in prompts]
        stems = [s if stems.count(s) == 1 else f"{s}-{i}" for i, s in enumerate(stems, 1)]
        paths = [Path(out or ".") / (s + (".png" if image else ".mp4")) for s in stems]
    allowed = IMAGE_SUFFIXES + VIDEO_SUFFIXES if image else VIDEO_SUFFIXES
    for path in paths:
        if path.suffix.lower() not in allowed:
            raise InvalidRequest("out", str(path), "a file name ending in " + ", ".join(dict.fromkeys(allowed)))
    return paths


def _output_path(out: str | None, stem: str, image: bool = False) -> Path:
    """-o as a file, or a folder (a name without a suffix) to put `stem` in; by default `stem` here."""
    from .errors import InvalidRequest
    path = Path(out) if out and Path(out).suffix and not Path(out).is_dir() else \
        Path(out or ".") / (stem + (".png" if image else ".mp4"))
    allowed = IMAGE_SUFFIXES + VIDEO_SUFFIXES if image else VIDEO_SUFFIXES
    if path.suffix.lower() not in allowed:
        raise InvalidRequest("out", str(path), "a file name ending in " + ", ".join(dict.fromkeys(allowed)))
    return path


SAMPLING_FIELDS = ("negative", "fps", "aspect", "resolution", "size", "steps", "cfg", "cfg_interval", "seed", "sampler",
                   "preset")


def _run_and_write(args, requests, paths) -> None:
    """Generate (loading the model only now: a typo fails in a second, not after the weights load), write
    each result and say where it went and what it is."""
    from tqdm import tqdm

    from .pipeline import load_pipeline
    from .video_io import write_image, write_video

    pipeline = load_pipeline(args.model, args.device)
    with tqdm(total=requests[0].steps, desc="sampling", unit="step", leave=False) as bar:
        def on_step(done, total):
            bar.total = total
            bar.update(done - bar.n)
        results = pipeline.generate(requests, on_step=on_step)
    for path, result in zip(paths, results):
        path.parent.mkdir(parents=True, exist_ok=True)
        if len(result.frames) == 1 and path.suffix.lower() in IMAGE_SUFFIXES:
            write_image(path, result.frames[0])
        else:
            write_video(path, result.frames, result.fps)
        print(f"wrote {path}: {result.summary()}")


def _validate(args, prompt, **fields):
    from .model import load_info
    from .pipeline import validate_request
    fields.update({f: getattr(args, f) for f in SAMPLING_FIELDS})
    return validate_request(prompt, info=load_info(args.model), **fields)


def _understood(args, prompt: str, fields: dict) -> tuple[str, dict]:
    """The request as the model understands it (intent.py): a caption in the style it was trained on, and the
    parameters the words asked for ("vertical", "10秒"). Flags given on the command line win over the words.
    Prints what was understood, so the user always sees the prompt that is actually generated."""
    if args.no_intent:
        return prompt, fields
    from .intent import expand
    from .model import load_info

    if args.seed is None:   # one seed draws what the words leave open and the noise, so both are reproducible
        args.seed = int.from_bytes(os.urandom(4), "little")
    info = load_info(args.model)
    flags = {k: v for k, v in fields.items() if v is not None}
    flags |= {f: getattr(args, f) for f in ("fps", "aspect", "resolution", "size") if getattr(args, f) is not None}
    flags |= {"negative": args.negative} if args.negative else {}     # "" (the default): the words' negative
    intent = expand(prompt, seed=args.seed, default_negative="", default_aspect=info.default("aspect"),
                    default_seconds=info.default("seconds"), default_fps=info.default("fps"), given=flags)
    print(intent.summary())
    merged = intent.request_fields() | flags
    return merged.pop("prompt"), {**fields, **merged}


def _validate_understood(args, prompt, **fields):
    prompt, fields = _understood(args, prompt, fields)
    from .model import load_info
    from .pipeline import validate_request
    fields = {f: getattr(args, f) for f in SAMPLING_FIELDS} | fields
    return validate_request(prompt, info=load_info(args.model), **fields)


def cmd_generate(args) -> None:
    # validate everything (and read the images) before loading the model
    timing = {"seconds": args.seconds, "frames": args.frames}
    requests = [_validate_understood(args, p, image=args.image, end_image=args.end_image, **timing)
                for p in args.prompt]
    image = requests[0].frames == 1
    _run_and_write(args, requests, _output_paths(args.out, args.prompt, image))


def cmd_image(args) -> None:
    requests = [_validate_understood(args, p, seconds=0) for p in args.prompt]
    _run_and_write(args, requests, _output_paths(args.out, args.prompt, image=True))


def cmd_extend(args) -> None:
    request = _validate(args, args.prompt, mode="extend", video=args.video, direction=args.direction,
                        seconds=args.seconds, frames=args.frames)
    stem = f"{Path(args.video).stem}-{'extended' if args.direction == 'forward' else 'extended-backward'}"
    _run_and_write(args, [request], [_output_path(args.out, stem)])


def cmd_connect(args) -> None:
    request = _validate(args, args.prompt, mode="connect", video=args.video, end_video=args.end_video,
                        seconds=args.seconds, frames=args.frames)
    stem = f"{Path(args.video).stem}-to-{Path(args.end_video).stem}"
    _run_and_write(args, [request], [_output_path(args.out, stem)])


def cmd_loop(args) -> None:
    from .pipeline import slug
    given = Path(args.input)
    if given.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES or given.is_file():   # a file: its first frame
        kind = "image" if given.suffix.lower() in IMAGE_SUFFIXES else "video"
        request = _validate(args, args.prompt or "", mode="loop", seconds=args.seconds, frames=args.frames,
                            **{kind: args.input})
        stem = given.stem
    else:
        if args.prompt:
            from .errors import InvalidRequest
            raise InvalidRequest("prompt", args.prompt, "one prompt, or an image or video file and a prompt")
        request = _validate(args, args.input, mode="loop", seconds=args.seconds, frames=args.frames)
        stem = slug(args.input)
    _run_and_write(args, [request], [_output_path(args.out, stem + "-loop")])


def cmd_edit(args) -> None:
    request = _validate(args, args.prompt, mode="edit", video=args.video, strength=args.strength,
                        seconds=args.seconds, frames=args.frames)
    image = request.frames == 1                  # an edited image is an image: a .png unless -o names a video
    _run_and_write(args, [request], [_output_path(args.out, Path(args.video).stem + "-edited", image)])


def _generation_args(p, seconds_help: str | None = "duration, 0 for an image (or give --frames)") -> None:
    """The flags every generating command shares; each maps to one validate_request field."""
    if seconds_help:
        p.add_argument("--seconds", type=float, help=seconds_help)
        p.add_argument("--frames", type=int, help="the same as a number of frames (or give --seconds)")
    p.add_argument("--fps", type=float, help="frames per second")
    p.add_argument("--size", help='WIDTHxHEIGHT in pixels, multiples of 16, e.g. "448x256"')
    p.add_argument("--aspect", help='width:height, e.g. "16:9", "9:16", "1:1" (with --resolution)')
    p.add_argument("--resolution", type=int, help="short side in pixels, a multiple of 16")
    p.add_argument("--steps", type=int, help="sampling steps")
    p.add_argument("--cfg", type=float, help="classifier-free guidance scale (1 = none)")
    p.add_argument("--cfg-interval", metavar="LO,HI", help='guide only at diffusion times in LO..HI (0 = noise, '
                   '1 = data), one pass per step elsewhere; "0,1" guides every step (default: the model\'s own)')
    p.add_argument("--seed", type=int, help="default: a random seed (printed)")
    p.add_argument("--negative", default="", help="what to steer away from (with --cfg other than 1)")
    p.add_argument("--sampler", choices=["euler", "heun"])
    p.add_argument("--preset", help='named defaults: "fast" (the shipped model: a distilled student in 4 steps, '
                   'the middle two guided, about 3.5x quicker; other models: 8 steps instead of 20; '
                   'docs/benchmarks.md); flags given still win')
    p.add_argument("--model", default="default", help="'default' (the shipped model) or a model folder "
                   "(model.json, dit/, vae/), e.g. a training run")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="cpu or cuda (default: cuda when available)")


# --- eval ------------------------------------------------------------------------------------------------

def cmd_eval(args) -> None:
    from .errors import InvalidRequest
    from .eval.reference import is_reference, reference_pipeline
    from .eval.report import load_run, run_suite, suite_with, write_report
    from .model import load_info
    from .pipeline import Pipeline

    def pipeline_of(model, preset, flag):
        if is_reference(model):
            if preset:
                raise InvalidRequest(flag, preset, "no preset with a reference (ToyWorld's renders have none)")
            return reference_pipeline(model)
        info = load_info(model)     # a clear error for a wrong path before anything loads
        pipe = Pipeline(model, args.device)
        if preset:                  # and for a wrong preset, or a missing DiT of its own, before the suite runs
            try:
                pipe.dit_named(info.with_preset(preset).default("dit"))
            except InvalidRequest as err:
                raise InvalidRequest(flag, preset, err.allowed) from None
        return pipe

    suite = suite_with(args.suite, adherence_n=args.n, seed=args.seed)
    earlier = None
    if args.compare and Path(args.compare, "report.json" if Path(args.compare).is_dir() else "").is_file():
        if args.compare_preset:
            raise InvalidRequest("compare_preset", args.compare_preset, "no preset with an earlier report")
        earlier = load_run(args.compare, figures_to=args.out)[0]   # an earlier report: not run again
    compared = [(args.model, args.preset, "preset")] + \
        ([(args.compare, args.compare_preset, "compare_preset")] if args.compare and not earlier else [])
    pipelines = [pipeline_of(*c) for c in compared]
    runs = [run_suite(p, suite, args.out, label=str(m) + (f" (preset {preset})" if preset else ""), preset=preset)
            for p, (m, preset, _) in zip(pipelines, compared)]
    json_path, md_path = write_report(args.out, runs + ([earlier] if earlier else []))
    print(f"wrote {md_path} and {json_path}")


# --- app -------------------------------------------------------------------------------------------------

def cmd_app_new(args) -> None:
    from .apps import load_app, scaffold
    path = scaffold(args.name, args.dir, args.title)
    app = load_app(path)
    print(f"wrote {path}: {app.title!r} with inputs {', '.join(i.name for i in app.inputs)}; edit it, then serve the "
          f"folder (its page is /apps/{app.name})")


def cmd_app_check(args) -> None:
    from .apps import AppError, AppRegistry
    registry = AppRegistry(args.dir)
    for name, app in sorted(registry.apps().items()):
        example = app.request(app.defaults()) if not any(i.type == "image" for i in app.inputs) else None
        print(f"{name}: {app.title} ({len(app.inputs)} inputs)" + (f", e.g. {example.prompt!r}" if example else ""))
    for err in registry.errors.values():
        print(err, file=sys.stderr)
    if registry.errors:
        raise AppError(args.dir, "", f"{len(registry.errors)} app file(s) with errors")


def _app_parsers(sub) -> None:
    app = sub.add_parser("app", help="low-code apps: scaffold and check app files (apps/NAME.toml)")
    asub = app.add_subparsers(dest="app_command", required=True, metavar="ACTION")
    new = asub.add_parser("new", help="write a new app file from a template that works as it is")
    new.add_argument("name", help="the app's URL name: lower-case letters, digits, - and _")
    new.add_argument("--dir", default="apps", help="folder of app files (default apps)")
    new.add_argument("--title", help="the app's title (default: from the name)")
    new.set_defaults(func=cmd_app_new)
    check = asub.add_parser("check", help="read every app file in a folder; print each app or its error")
    check.add_argument("dir", nargs="?", default="apps", help="folder of app files (default apps)")
    check.set_defaults(func=cmd_app_check)


FITTING = ("Input images and videos of any size are scaled to cover the output size and centre-cropped; without "
           "--size or --aspect the output takes the first input's aspect (at --resolution, else the model's).")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="straightline", description="Sora-style video generation: ToyWorld, models, service.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    g = sub.add_parser("generate", help="text (and first/last images) to video, or an image",
                       description="Generate videos from prompts. Fields left out take the model's defaults. "
                       "Frame counts are 1 + 4k (others are mapped to the nearest, and the output says so); "
                       "width and height are multiples of 16. Several prompts run in one call, as one batch "
                       "when their shapes match. --seconds 0 makes an image (a .png unless -o ends in .mp4). "
                       "--image gives the first frame, --end-image the last. Videos longer than twice the "
                       "model's trained clip are chained from several passes, each given the end of the one "
                       "before (the output says so). " + FITTING)
    g.add_argument("prompt", nargs="+", help='e.g. "a red ball bouncing on a wooden floor"')
    g.add_argument("-o", "--out", help="output file (.mp4, .gif, .webp; .png/.jpg for an image); with several "
                   "prompts a folder or a pattern with {i} (1, 2, ...). Default: a slug of the prompt")
    g.add_argument("--image", help="the first frame: an image (or a video's first frame)")
    g.add_argument("--end-image", help="the last frame: an image (held for the last 4 frames)")
    g.add_argument("--no-intent", action="store_true", help="use the prompt as written: no rewriting into the "
                   "model's caption style, no parameters read from its words")
    _generation_args(g)
    g.set_defaults(func=cmd_generate)

    im = sub.add_parser("image", help="text to an image (a 1-frame video), any aspect",
                        description="Generate images from prompts (seconds 0). " + FITTING)
    im.add_argument("prompt", nargs="+")
    im.add_argument("-o", "--out", help="output file (.png, .jpg, .webp, .bmp); with several prompts a folder "
                    "or a pattern with {i}. Default: a slug of the prompt")
    im.add_argument("--no-intent", action="store_true", help="use the prompt as written (see generate --help)")
    _generation_args(im, seconds_help=None)
    im.set_defaults(func=cmd_image)

    ex = sub.add_parser("extend", help="continue a video forward (input + new) or backward (new + input)",
                        description="Extend a video by --seconds: forward, the output is the input then new "
                        "frames that continue it; backward, new frames that lead into it, then the input. Long "
                        "extensions are chained. " + FITTING)
    ex.add_argument("video", help="the video to extend")
    ex.add_argument("prompt", nargs="?", default="", help="what happens in the new part (optional)")
    ex.add_argument("--direction", choices=["forward", "backward"], default="forward")
    ex.add_argument("-o", "--out", help="output file or folder (default: VIDEO-extended.mp4 here)")
    _generation_args(ex, seconds_help="seconds to add (or give --frames)")
    ex.set_defaults(func=cmd_extend, late_positional="prompt")

    co = sub.add_parser("connect", help="a generated transition from one video into another",
                        description="Connect two videos: the output is the first, a transition of --seconds "
                        "(a multiple of 4 frames), then the second. " + FITTING)
    co.add_argument("video", help="the video before the transition")
    co.add_argument("end_video", metavar="video2", help="the video after it")
    co.add_argument("prompt", nargs="?", default="", help="what happens in the transition (optional)")
    co.add_argument("-o", "--out", help="output file or folder (default: A-to-B.mp4 here)")
    _generation_args(co, seconds_help="seconds of transition (or give --frames)")
    co.set_defaults(func=cmd_connect, late_positional="prompt")

    lo = sub.add_parser("loop", help="a seamless loop from a prompt, an image or a video's first frame",
                        description="Make a loop: a clip whose last frame leads back into its first. INPUT is a "
                        "prompt (an image is generated first, then animated), or an image or video file (its "
                        "first frame), with an optional prompt. " + FITTING)
    lo.add_argument("input", help='a prompt, e.g. "a red ball bouncing", or an image or video file')
    lo.add_argument("prompt", nargs="?", help="with a file: what happens in the loop (optional)")
    lo.add_argument("-o", "--out", help="output file or folder (default: NAME-loop.mp4 here)")
    _generation_args(lo, seconds_help="the loop's duration (or give --frames)")
    lo.set_defaults(func=cmd_loop, late_positional="prompt")

    ed = sub.add_parser("edit", help="remake a video with a new prompt (SDEdit)",
                        description="Edit a video by prompt: its latents are noised to t0 = 1 - strength and "
                        "sampled from there with the new prompt; small strengths keep the source, 1 ignores "
                        "it. The output has the source's first 1 + 4k frames; an image gives an image. " + FITTING)
    ed.add_argument("video", help="the video (or image) to edit")
    ed.add_argument("prompt", help='the new prompt, e.g. "a blue ball bouncing"')
    ed.add_argument("--strength", type=float, default=0.6, help="in (0, 1]: how far from the source (default 0.6)")
    ed.add_argument("-o", "--out", help="output file or folder (default: VIDEO-edited.mp4 here, or .png for an "
                    "image)")
    _generation_args(ed, seconds_help="edit only the first seconds of the video (default: all of it)")
    ed.set_defaults(func=cmd_edit)

    # training flags default to None: TrainConfig holds the defaults
    t = sub.add_parser("train", help="train (or fine-tune) the diffusion transformer on ToyWorld or your videos",
                       description="Train the diffusion transformer. Clips (ToyWorld, or --folder of videos with "
                       "captions.jsonl or .txt sidecars) are encoded once by the frozen VAE into --out/cache; "
                       "training reads those latents. Resumes exactly when --out holds a train state. --out is a "
                       "model folder as soon as the first checkpoint is written (straightline generate --model "
                       "OUT). Many processes: torchrun --nproc_per_node N -m straightline train ... (DDP or FSDP, "
                       "see --parallel); a run resumes on any number of processes.")
    t.add_argument("--out", required=True, help="run folder (becomes a model folder)")
    t.add_argument("--preset", choices=["tiny", "default", "S", "B", "L"], help="DiT size (default: default)")
    t.add_argument("--init", help="start from this model folder's DiT ('default': the shipped model) to fine-tune")
    t.add_argument("--folder", help="train on the videos and images in this folder instead of ToyWorld")
    t.add_argument("--vae", help="frozen VAE folder (default: the shipped VAE)")
    t.add_argument("--text-encoder", help="local Hugging Face encoder folder (default: all-MiniLM-L6-v2)")
    t.add_argument("--resolutions", help="clip short sides, comma-separated (default 128)")
    t.add_argument("--image-resolutions", help="extra 1-frame bucket short sides (default 128,256; '' for none)")
    t.add_argument("--aspects", help="comma-separated (default 16:9,9:16,1:1,4:3)")
    t.add_argument("--image-share", type=float, help="share of the ToyWorld cache that is 1-frame images "
                   "(default 0.25; 1: images only)")
    t.add_argument("--scenarios", help="ToyWorld scenarios to draw scenes from, comma-separated, among single, "
                   "multi, collision, occlusion (default: all, as ToyWorld weighs them)")
    t.add_argument("--seconds", help="clip durations, comma-separated (default 1,2)")
    t.add_argument("--fps", type=float, help="frame rate of training clips (default 12)")
    t.add_argument("--cache-clips", type=int, help="ToyWorld clips in the latent cache (default 2000)")
    t.add_argument("--shard-clips", type=int, help="clips per cache shard, the unit of resumable building (default 32)")
    t.add_argument("--cache-workers", type=int, help="processes rendering ToyWorld for the cache, per training "
                   "process (default: the CPUs left over)")
    t.add_argument("--cache-only", action="store_true", help="build the latent cache in --out/cache and stop")
    t.add_argument("--token-budget", type=int, help="latent tokens per batch and process (default 1024)")
    t.add_argument("--steps", type=int, help="total steps to train to")
    t.add_argument("--lr", type=float, help="AdamW learning rate (default 3e-4)")
    t.add_argument("--warmup", type=int, help="warm-up steps")
    t.add_argument("--ema", type=float, help="EMA decay (default 0.999)")
    t.add_argument("--text-dropout", type=float, help="share of empty captions, for guidance (default 0.1)")
    t.add_argument("--cond-prob", type=float, help="share of clips with given frames (default 0.3)")
    t.add_argument("--text-features", choices=["last", "last+embeddings"],
                   help="what the DiT reads of the text encoder: its last layer (default), or that and each token's "
                        "input embedding, which keeps words like left/right apart (widens an --init model's text "
                        "projections with zeros)")
    t.add_argument("--position-freqs", type=int, metavar="N",
                   help="let the DiT read where each token sits in the frame and in the clip (N Fourier frequencies, "
                        "e.g. 4; an --init model without it gains it at zero): RoPE alone gives only relative "
                        "offsets, so the layout, start positions and position words are otherwise left to the noise")
    t.add_argument("--time-shift", type=float, metavar="X",
                   help="shift training times X times further towards noise (default 1): more steps at high noise, "
                        "where it is decided where objects go. X=4 taught a direction word by heart that the default "
                        "did not; over all of ToyWorld in 105 CPU minutes it taught none and cost colour "
                        "(docs/benchmarks.md)")
    t.add_argument("--time-shift-share", type=float, metavar="P",
                   help="the share of samples that take --time-shift (default 1: all); the rest keep the clip size's "
                        "shift, so the steps near the data, where colour and detail are drawn, are kept. On the "
                        "direction probe 0.5 steered nearly as well as 1 (21 against 22 of 32; docs/benchmarks.md)")
    t.add_argument("--object-weight", type=float, help="loss weight of the latent cells ToyWorld's objects cover, "
                   "against 1 for the background (default 1: all alike; with --distill-steps, how closely the student "
                   "matches its teacher there); video files have no object masks")
    t.add_argument("--reverse-pairs", type=float, help="share of steps that train on ToyWorld clips beside their "
                   "time reversal (the same frames backwards, captioned with the opposite directions), with one "
                   "noise each: teaches the direction words (default 0; > 0 also caches the reversals)")
    t.add_argument("--shape-pairs", type=float, help="share of steps that train on ToyWorld clips beside a twin "
                   "whose objects are other shapes moving the same way, with one noise each: teaches the shape "
                   "words (default 0; > 0 also caches the twins)")
    t.add_argument("--pair-weight", type=float, help="on pair steps, the weight of an extra loss on how the two "
                   "clips' predictions differ against how their targets do (default 0: none)")
    t.add_argument("--distill-steps", type=int, help="distil --init (the teacher) into a student that samples in "
                   "this many steps without guidance (its model.json says so)")
    t.add_argument("--distill-cfg", type=float, help="the teacher's guidance scale the student absorbs (default 5)")
    t.add_argument("--distill-substeps", type=int, help="teacher Euler steps per student step (default 5)")
    t.add_argument("--distill-cfg-interval", metavar="LO,HI", help="the teacher guides only at diffusion times in "
                   "LO..HI, as generate's --cfg-interval (default 0,1: every substep)")
    t.add_argument("--distill-rollout", type=float, help="share of samples whose student step starts where the "
                   "student's own steps from the noise reach, as when it samples (default 0: all start from the data "
                   "noised to that time)")
    t.add_argument("--distill-endpoint", type=float, metavar="P", help="share of the loss on whole samples: the "
                   "student's steps from the noise, differentiated through, against the teacher's guided path from "
                   "the same noise (default 0: each sample trains one step)")
    t.add_argument("--student-init", help="with --distill-steps: start the student from this DiT folder instead of "
                   "the teacher ('default': the shipped fast student), to distil further")
    t.add_argument("--seed", type=int)
    t.add_argument("--compile", action="store_true", help="torch.compile the model (GPU)")
    t.add_argument("--parallel", choices=["auto", "ddp", "fsdp"], default="auto",
                   help="under torchrun: ddp replicates the model on every process; fsdp (FSDP2) shards parameters, "
                   "gradients, optimizer moments and the EMA across them; auto (default) picks fsdp for models as "
                   "wide as preset S or wider, ddp for smaller ones. One process: neither")
    t.add_argument("--checkpoint-activations", action="store_true",
                   help="recompute each block's activations in backward: less memory, about a third more compute")
    t.add_argument("--sample-every", type=int, default=1000, help="write preview videos every N steps (0: never)")
    t.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    t.add_argument("--time-limit", type=float, help="stop (and checkpoint) after this many seconds of training "
                   "(the cache build is not counted)")
    t.set_defaults(func=cmd_train)

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

    vae = sub.add_parser("vae", help="the video autoencoder: train, reconstruct, encode, decode")
    vsub = vae.add_subparsers(dest="vae_command", required=True, metavar="ACTION")
    model_help = "a checkpoint folder (vae.json + vae.safetensors) or 'default', the shipped VAE"

    def media_args(p):
        p.add_argument("--model", default="default", help=model_help)
        p.add_argument("--fps", type=float, help="resample to this frame rate (default: the file's)")
        p.add_argument("--max-frames", type=int, default=65, help="frames to read (default 65)")
        p.add_argument("--size", help="resize (centre crop) to WIDTHxHEIGHT first; default: native size")
        p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")

    rc = vsub.add_parser("recon", help="encode and decode a video, print PSNR and SSIM",
                         description="Reconstruct a video through the VAE and print PSNR/SSIM. The clip is cut "
                         "to 1 + 4k frames and centre-cropped to multiples of 8 pixels (the VAE's grid).")
    rc.add_argument("input")
    rc.add_argument("-o", "--output", help="write the reconstruction here")
    rc.add_argument("--side-by-side", action="store_true", help="write original | reconstruction")
    media_args(rc)
    rc.set_defaults(func=cmd_vae_recon)

    en = vsub.add_parser("encode", help="video -> latents (.safetensors)")
    en.add_argument("input")
    en.add_argument("-o", "--output", required=True, help="latent file (.safetensors)")
    media_args(en)
    en.set_defaults(func=cmd_vae_encode)

    de = vsub.add_parser("decode", help="latents (.safetensors) -> video")
    de.add_argument("input")
    de.add_argument("-o", "--output", required=True, help="video file (.mp4, .gif, .webp)")
    de.add_argument("--model", default="default", help=model_help)
    de.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    de.set_defaults(func=cmd_vae_decode)

    st = vsub.add_parser("stats", help="measure per-channel latent mean/std and store them in a checkpoint",
                         description="Encode fresh ToyWorld and texture batches and store the per-channel latent "
                         "mean and std in the checkpoint, so encode() returns unit-variance latents. Training runs "
                         "this when it reaches --steps; run it yourself after a run stopped by --time-limit. A run's "
                         "folder is measured on the run's own sizes, durations and fps (its train_state.json); any "
                         "other checkpoint on the training defaults.")
    st.add_argument("model", help="a checkpoint folder (vae.json + vae.safetensors), updated in place")
    st.add_argument("--batches", type=int, default=32)
    st.set_defaults(func=cmd_vae_stats)

    # training flags default to None: VAETrainConfig holds the defaults (and `straightline` stays quick to
    # start, with no training modules imported to build this parser)
    tr = vsub.add_parser("train",
                         help="train a VAE on ToyWorld (+ procedural textures, + a folder of videos and photos)",
                         description="Train the VAE. Resumes exactly when --out already holds a train state. "
                         "Writes vae.json/vae.safetensors (EMA weights), log.jsonl and preview videos to --out.")
    tr.add_argument("--out", required=True, help="run folder")
    tr.add_argument("--preset", choices=["tiny", "default", "large"], help="model size (default: default)")
    tr.add_argument("--steps", type=int, help="total steps to train to")
    tr.add_argument("--lr", type=float, help="AdamW learning rate")
    tr.add_argument("--pixel-budget", type=int, help="pixels per batch (frames × height × width)")
    tr.add_argument("--kl-weight", type=float)
    tr.add_argument("--edge-weight", type=float, help="weight of the L1 on spatial gradients")
    tr.add_argument("--temporal-weight", type=float, help="weight of the L1 on frame-to-frame changes (against "
                    "flicker; default 0)")
    tr.add_argument("--boundary-weight", type=float, help="weight of the L1 on the changes across latent-frame "
                    "boundaries, where a decoder's frames jump (default 0)")
    tr.add_argument("--motion-weight", type=float, help="weight of the L1 over pixels that move (keeps moving "
                    "objects where they are; default 0)")
    tr.add_argument("--outline-weight", type=float, help="weight of the L1 over the pixels on strong edges (keeps "
                    "the outlines of small objects, which tell their shapes apart; default 0)")
    tr.add_argument("--profile-weight", type=float, help="weight of the L1 between how much each frame changes "
                    "in the clip and in the reconstruction (against a latent frame held, then jumped; default 0)")
    tr.add_argument("--fps", type=float, help="frame rate of training clips (default 24; the DiT trains at 12)")
    tr.add_argument("--durations", type=float, nargs="+", help="clip lengths in seconds, 0 for images "
                    "(default 0 0.35: images and 9-frame clips at 24 fps)")
    tr.add_argument("--crop", type=int, help="side of the square window cut from each clip (default 64)")
    tr.add_argument("--gan-weight", type=float, help="> 0 adds a patch discriminator")
    tr.add_argument("--folder", help="also train on the videos and photos in this folder (a photo becomes a clip "
                    "under a slow camera pan; a quarter of the clips)")
    tr.add_argument("--init", help="start from this VAE folder ('default': the shipped VAE)")
    tr.add_argument("--workers", type=int, default=0, help="processes rendering batches ahead (default 0: none; "
                    "use the spare CPUs on a GPU machine; the batches are the same)")
    tr.add_argument("--decoder-only", action="store_true", help="train the decoder alone: latents (and a diffusion "
                    "model trained on them) stay valid")
    tr.add_argument("--decoder-blocks", type=int, help="grow the decoder to N residual blocks per stage (the shipped "
                    "one has 1); the new blocks start as the identity, so with --init training starts from that "
                    "VAE's output, and with --decoder-only its latents stay valid")
    tr.add_argument("--seed", type=int)
    tr.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    tr.add_argument("--time-limit", type=float, help="stop (and checkpoint) after this many seconds")
    tr.add_argument("--preview-every", type=int, default=1000, help="write an original | reconstruction video every "
                    "N steps (default 1000; 0: never)")
    tr.set_defaults(func=cmd_vae_train)

    data = sub.add_parser("data", help="datasets: inspect a video folder")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    i = dsub.add_parser("inspect", help="count clips per bucket and list unreadable files")
    i.add_argument("folder", help="a folder of videos/images with captions.jsonl or sidecar .txt captions")
    i.add_argument("--fps", type=float, default=24.0, help="frame rate clips are counted at (default 24)")
    i.add_argument("--resolutions", default="128,256", help="bucket short sides, comma-separated (default 128,256)")
    i.add_argument("--decode", action="store_true", help="also decode every file (slower; finds damage a probe misses)")
    i.set_defaults(func=cmd_data_inspect)

    ev = sub.add_parser("eval", help="evaluate a model: adherence, physics, consistency, FD, framing, speed, VAE",
                        description="Run an evaluation suite and write report.json and report.md (with PNG figures "
                        "and contact sheets) to -o. 'quick' takes minutes on a CPU; 'full' is for a GPU. "
                        "--model reference (or reference:frozen, :shuffled, :noise, :color swap, :teleport) scores "
                        "ToyWorld's own renders (or damaged ones): the instrument's ceiling. docs/eval.md explains "
                        "every number.")
    ev.add_argument("--model", default="default", help="'default', a model folder, or reference[:DAMAGE]")
    ev.add_argument("--suite", choices=["quick", "full"], default="quick")
    ev.add_argument("-o", "--out", required=True, help="report folder")
    ev.add_argument("--compare", help="a second model (folder, 'default', reference[:DAMAGE]) run on the same "
                    "cases, or an earlier report folder; the report shows both and their difference")
    ev.add_argument("--preset", help='a preset of --model that every request takes, as generate --preset does '
                    '("fast": the shipped model\'s 4-step student); e.g. --model default --preset fast --compare '
                    'default compares the student with its teacher')
    ev.add_argument("--compare-preset", help="the same for --compare")
    ev.add_argument("--n", type=int, help="prompts per adherence split (default: the suite's)")
    ev.add_argument("--seed", type=int, help="generation seed of the first case (default 0)")
    ev.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="cpu or cuda (default: cuda when available)")
    ev.set_defaults(func=cmd_eval)
    _app_parsers(sub)
    _service_parsers(sub)
    return parser


def _service_settings(args, **more):
    from .service.cost import PriceTable
    from .service.settings import Settings
    prices = PriceTable.load(args.prices) if args.prices else PriceTable()
    return Settings(db=args.db, model=args.model, device=args.device, batch_size=args.batch_size,
                    lease_s=args.lease, prices=prices, **more)


def _feed_config(path: str | None) -> dict:
    """--feed-config: a JSON object of feed.FeedConfig fields, checked now (unknown fields named)."""
    from .errors import InvalidRequest
    from .feed import FeedConfig
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise InvalidRequest("feed-config", path, f"a JSON file of FeedConfig fields ({err})") from None
    if not isinstance(data, dict):
        raise InvalidRequest("feed-config", path, "a JSON object of FeedConfig fields")
    FeedConfig.from_dict(data)
    return data


def cmd_serve(args) -> None:
    from .service.server import open_store, serve
    settings = _service_settings(args, workers=args.workers, model_name=args.model_name,
                                 poll_after_ms=args.poll_after_ms, max_upload_bytes=args.max_upload_mb << 20,
                                 apps_dir=Path(args.apps) if args.apps else None,
                                 feed_config=_feed_config(args.feed_config))
    if args.create_key:
        key_id, key = open_store(settings).add_key(args.create_key, daily_budget=args.daily_budget,
                                                   daily_device_s=args.daily_device_seconds,
                                                   rate_per_minute=args.rate_per_minute)
        print(f"created API key {key_id} ({args.create_key}); it is shown only now, keep it:\n{key}")
        return
    serve(settings, args.host, args.port)


def cmd_worker(args) -> None:
    from .service.server import work
    work(_service_settings(args), name=args.name, max_batches=args.max_batches)


def _service_parsers(sub) -> None:
    """`serve` and `worker`: the OpenAI-compatible API and the processes that run its jobs (docs/service.md)."""
    def shared(p):
        p.add_argument("--db", default="sqlite:///straightline.db",
                       help="job store: sqlite:///FILE (default ./straightline.db) or postgresql://USER@HOST/DB")
        p.add_argument("--model", default="default", help="'default' (the shipped model) or a model folder")
        p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                       help="cpu or cuda (default: cuda when available)")
        p.add_argument("--batch-size", type=int, default=4, help="queued jobs of one shape run as one batch")
        p.add_argument("--lease", type=float, default=30.0,
                       help="seconds a claimed job survives without a heartbeat before it is requeued")
        p.add_argument("--prices", help="price table, a JSON file (fields of service.cost.PriceTable)")

    s = sub.add_parser("serve", help="the OpenAI-compatible video API, with a worker in the process",
                       description="Serve OpenAI's Video API (POST /v1/videos, ...) and our extensions. Without "
                       "API keys it is local: it binds to localhost only.")
    shared(s)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--workers", type=int, default=1,
                   help="worker threads in this process (0: jobs run in `straightline worker` processes)")
    s.add_argument("--model-name", default="straightline", help="what the API calls the model (sora-2 is "
                   "accepted too)")
    s.add_argument("--poll-after-ms", type=int, default=1000, help="the polling interval the SDK is told")
    s.add_argument("--max-upload-mb", type=int, default=64, help="largest uploaded file")
    s.add_argument("--apps", metavar="DIR", help="serve each app file DIR/NAME.toml at /apps/NAME (docs/apps.md)")
    s.add_argument("--feed-config", metavar="FILE", help="a JSON file of feed.FeedConfig fields for /feed: "
                   "daily_budget_s, gain_per_device_s, request, ... (docs/feed.md)")
    s.add_argument("--create-key", metavar="NAME", help="create an API key, print it and exit; once a key "
                   "exists, every request needs one")
    s.add_argument("--daily-budget", type=float, help="with --create-key: money per UTC day")
    s.add_argument("--daily-device-seconds", type=float, help="with --create-key: device seconds per UTC day")
    s.add_argument("--rate-per-minute", type=int, help="with --create-key: creates per minute")
    s.set_defaults(func=cmd_serve)

    w = sub.add_parser("worker", help="a worker process: runs queued jobs from the job store",
                       description="Claim queued jobs from --db (PostgreSQL for workers on several machines), "
                       "generate them and store the results. A killed worker's job is requeued after --lease.")
    shared(w)
    w.add_argument("--name", help="worker name in the job records (default host:pid)")
    w.add_argument("--max-batches", type=int, help="stop after this many batches")
    w.set_defaults(func=cmd_worker)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # argparse leaves an optional positional that follows flags (`extend in.mp4 --seconds 4 "a prompt"`)
        # unparsed: take one such word as that positional, refuse anything else as parse_args would
        late = getattr(args, "late_positional", None)
        if late and len(extra) == 1 and not extra[0].startswith("-") and not getattr(args, late):
            setattr(args, late, extra[0])
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        args.func(args)
    except StraightlineError as err:
        print(f"straightline: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
