"""Prompt adherence, framing and speed of a text-to-video model, on ToyWorld prompts whose scenes are known.

    python benchmarks/bench_generate.py --model default --n 200 --seconds 1 --fps 12 --resolution 128 --steps 20 --cfg 5
    python benchmarks/bench_generate.py --model default --preset fast --n 200    # the distilled 4-step student
    python benchmarks/bench_generate.py ... --cases student.jsonl    # also each case's score, for compare_adherence.py
    python benchmarks/bench_generate.py ... --cases part1.jsonl --part 1/2 &    # the adherence cases in two processes;
    python benchmarks/bench_generate.py ... --cases part2.jsonl --part 2/2      # cat part1.jsonl part2.jsonl gives
                                                                                # the whole run's --cases file

Adherence: n in-distribution prompts ("train": new scenes of the training distribution) and n held-out ones
(the first object is a HELD_OUT colour x shape x motion triple), medium captions, static camera, each
generated once (seed = case index) and read back from its pixels by world.perception; the scoring rules are
in straightline/eval/adherence.py. "heldout: novel object" scores only the held-out object. Cells are accuracy
(95% Wilson interval, n). Motion is an extra column (motion words from short clips are ~97% right on ground
truth).

Steering (adherence.steering): one-object sliding scenes generated from their caption and from it with the
direction reversed, same seed: does the word turn the motion round? Placement (adherence.placement): a still
object in each third of the view, its long caption naming the third ("... in the upper left"): is it drawn there?
Chance is 1 in 9.

Framing: the first --framing-n prompts at 16:9 and 9:16, generated at that aspect vs as a square of the long
side centre-cropped to it (same seed, same output size); the share of frames in which every perceived object
is in view with its box clear of the frame edge. "reference" rows score ToyWorld's own renders framed the
same way: what a model that learned the world exactly would give.

Speed: a 2-second clip at --resolution and a 4-second clip at twice it (the model's default aspect), one
warm-up, then the median of --repeats runs of each phase (text encoding, sampling, decoding); every run has a
new prompt, so text encoding is not a cache hit (the empty negative prompt of guidance is, as in service).

Prints Markdown tables. Runs with torch's thread count as set (OMP_NUM_THREADS=1 on a shared 2-core machine).
"""

import argparse
import collections
import datetime
import json
import statistics
import sys
import time

from straightline.eval.adherence import evaluate, framing, placement, prompt_set, split_of, steering
from straightline.eval.report import hardware
from straightline.pipeline import Pipeline
from straightline.world.scene import SCENARIOS

COLUMNS = ("color", "shape", "direction", "count", "background", "motion")
HEADINGS = {"color": "colour", "shape": "shape", "direction": "direction", "count": "count (clips)",
            "background": "background (clips)", "motion": "motion (extra)"}


def progress(what: str):
    start = time.perf_counter()

    def report(done, total):
        print(f"\r{what}: {done}/{total} ({time.perf_counter() - start:.0f} s)", end="\n" if done == total else "",
              file=sys.stderr, flush=True)
    return report


def cell(row) -> str:
    if row is None or row["n"] == 0:
        return "-"
    return f"{100 * row['accuracy']:.1f}% ({100 * row['low']:.1f}–{100 * row['high']:.1f}, n={row['n']})"


def adherence_table(rows) -> str:
    by = {(r["split"], r["attribute"]): r for r in rows}
    lines = ["| split | " + " | ".join(HEADINGS[c] for c in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for split in dict.fromkeys(r["split"] for r in rows):
        lines.append(f"| {split} | " + " | ".join(cell(by.get((split, c))) for c in COLUMNS) + " |")
    return "\n".join(lines)


def framing_table(rows) -> str:
    lines = ["| aspect | source | method | size | frames in view | clips (no object seen) | objects per clip |",
             "|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["aspect"], r["source"] != "model", r["method"])):
        share = f"{100 * r['fraction']:.1f}% ({r['in_view']}/{r['frames']})" if r["frames"] else "-"
        lines.append(f"| {r['aspect']} | {r['source']} | {r['method']} | {r['size']} | {share} | "
                     f"{r['clips']} ({r['empty_clips']}) | {r['objects'] / max(r['clips'], 1):.2f} |")
    return "\n".join(lines)


def timing(pipe, prompts: list[str], seconds: float, resolution: int, fields: dict) -> dict:
    """Median phase times over prompts[1:] after a warm-up on prompts[0]. Each run has its own prompt: the text
    encoder caches embeddings, and a repeated prompt would time a cache hit."""
    requests = [pipe.validate(prompt, **{**fields, "seconds": seconds, "resolution": resolution, "seed": 0})
                for prompt in prompts]
    video = pipe.generate(requests[0])[0].frames                      # warm-up: allocator, first calls
    runs = [pipe.generate(request)[0].timings for request in requests[1:]]
    phases = {key: statistics.median(run[key] for run in runs) for key in ("text_s", "sampling_s", "decode_s",
                                                                           "total_s")}
    first = requests[0]
    return {"size": f"{first.width}x{first.height}", "frames": first.frames, "tokens": first.latent_tokens,
            "video": video, **phases}


def parse_part(parser, value: str | None, cases: int, batch: int) -> tuple[int, int]:
    """--part "I/N" -> the cases [first, last) of part I of N: consecutive whole batches, so each clip is generated
    in the same batch, from the same seed, as in the whole run. None -> every case."""
    if value is None:
        return 0, cases
    try:
        i, n = (int(v) for v in value.split("/"))
    except ValueError:
        i = n = 0
    batches = -(-cases // batch)
    if not 1 <= i <= n <= batches:
        parser.error(f"--part {value!r}: expected I/N with 1 <= I <= N <= {batches} (the run's batches of {batch}), "
                     f"e.g. 1/{min(2, batches)}")
    return (i - 1) * batches // n * batch, min(cases, i * batches // n * batch)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default", help='"default" (the shipped model) or a model folder')
    parser.add_argument("--n", type=int, default=200, help="prompts per split (train and heldout)")
    parser.add_argument("--seconds", type=float, default=1.0, help="clip length for adherence and framing")
    parser.add_argument("--fps", type=float, default=12)
    parser.add_argument("--resolution", type=int, default=128, help="short side in pixels")
    parser.add_argument("--aspect", default="16:9", help="aspect ratio of the adherence prompts' scenes")
    parser.add_argument("--scenario", choices=SCENARIOS, default=None,
                        help="adherence scenes of one ToyWorld scenario only (\"single\": one object); default all")
    parser.add_argument("--preset", default=None,
                        help='a preset of the model ("fast": its distilled student): its DiT, steps and guidance')
    parser.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's own)")
    parser.add_argument("--cfg", type=float, default=None, help="guidance scale (default: the model's own)")
    parser.add_argument("--cfg-interval", default=None, metavar="LO,HI",
                        help="diffusion times that are guided (default: the model's own)")
    parser.add_argument("--cases", default=None, metavar="PATH",
                        help="also write each adherence case's score (JSON lines), which benchmarks/"
                             "compare_adherence.py compares between two models")
    parser.add_argument("--part", default=None, metavar="I/N",
                        help="the adherence section alone, on the I-th of N runs of consecutive whole batches of its "
                             "cases (seeds as in the whole run), for parallel processes: their --cases files, "
                             "concatenated in order, are the whole run's; each table covers its part")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8, help="requests per generate call")
    parser.add_argument("--framing-n", type=int, default=40, help="prompts for the framing table")
    parser.add_argument("--steer-n", type=int, default=24,
                        help="one-object sliding scenes for the steering row (each generated twice)")
    parser.add_argument("--place-n", type=int, default=4,
                        help="rounds of the nine thirds of the view for the placement row (9 clips a round)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after the warm-up (median)")
    parser.add_argument("--modes", default=None,
                        help="speed rows on a GPU, comma-separated: eager, graphs (CUDA graphs, the default there), "
                             "compile (graphs and fused blocks); default eager,graphs on a GPU, eager on a CPU")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["adherence", "steering", "placement", "framing", "timing", "long"],
                        help='sections to leave out ("long": the 4-second clip at twice the resolution)')
    args = parser.parse_args()
    first, last = parse_part(parser, args.part, 2 * args.n, args.batch)    # the adherence cases this run makes
    if args.part:
        args.skip = ["steering", "placement", "framing", "timing", "long"]

    pipe = Pipeline(args.model, args.device)
    info = pipe.info.with_preset(args.preset) if args.preset else pipe.info     # the defaults the requests get
    args.steps = info.default("steps") if args.steps is None else args.steps
    args.cfg = info.default("cfg") if args.cfg is None else args.cfg
    args.cfg_interval = [float(v) for v in args.cfg_interval.split(",")] if args.cfg_interval else \
        info.default("cfg_interval")
    dit = pipe.dit_named(info.default("dit"))
    params = sum(p.numel() for p in dit.parameters()) / 1e6
    vae_params = sum(p.numel() for p in pipe.vae.parameters()) / 1e6
    print(f"# Generation benchmark: model `{args.model}`\n")
    print(f"{datetime.date.today()}; device {args.device}; {hardware(args.device)}.  ")
    trained = json.dumps(pipe.info.trained) if pipe.info.trained else "not recorded"
    recipe = "trained on" if info.default("dit") == "dit" else \
        "a preset's own DiT, whose recipe model.json does not hold; the model's DiT `dit` was trained on"
    print(f"DiT `{info.default('dit')}`: {params:.2f}M parameters ({dit.cfg.dim} wide, {dit.cfg.depth} blocks), "
          f"VAE {vae_params:.2f}M, text encoder {pipe.info.text_encoder}; {recipe}: {trained}.  ")
    preset = f" (preset {args.preset})" if args.preset else ""
    print(f"Generation{preset}: {args.steps} {info.default('sampler')} steps, "
          f"cfg {args.cfg:g} at t in {list(args.cfg_interval)}, {args.fps:g} fps.\n")

    fields = {"resolution": args.resolution, "fps": args.fps, "steps": args.steps, "cfg": args.cfg,
              "cfg_interval": args.cfg_interval, "preset": args.preset}
    if "adherence" not in args.skip:
        cases = [case for split in ("train", "heldout") for case in
                 prompt_set(args.n, split, aspect=args.aspect, seconds=args.seconds, scenario=args.scenario)]
        cases = cases[first:last]
        start, misses, kept = time.perf_counter(), collections.Counter(), []

        def keep(case, result, scored):
            lo, hi = scored["expected"]                # a wrong count: fewer objects seen than shown, or more
            if not lo <= scored["tracks"] <= hi:
                misses[split_of(case[1]), "too few" if scored["tracks"] < lo else "too many"] += 1
            kept.append({"case": first + len(kept), "split": split_of(case[1]), "prompt": case[0], "score": scored})

        rows = evaluate(pipe, cases, batch=args.batch, seed=first, progress=progress("adherence"), keep=keep,
                        **fields)
        if args.cases:
            with open(args.cases, "w") as f:
                f.writelines(json.dumps(line) + "\n" for line in kept)
        which = f"cases {first}-{last - 1} of " if args.part else ""
        print(f"## Prompt adherence\n\n{which}{args.n} prompts per split (medium captions, static camera), "
              f"{args.aspect} at short side {args.resolution} px, {args.seconds:g} s; "
              f"{time.perf_counter() - start:.0f} s in all.\n")
        print(adherence_table(rows) + "\n")
        print("Wrong counts (clips): " + "; ".join(
            f"{split}: {misses[split, 'too few']} with objects missing, {misses[split, 'too many']} with extra ones"
            for split in ("train", "heldout")) + ".\n")
    if "steering" not in args.skip:
        start = time.perf_counter()
        steer = steering(pipe, args.steer_n, seconds=args.seconds, aspect=args.aspect, batch=args.batch,
                         progress=progress("steering"), **fields)
        print(f"## Steering\n\n{steer['n']} one-object sliding scenes, each generated from its caption and from the "
              f"caption with the direction reversed, same seed ({time.perf_counter() - start:.0f} s). A model that "
              f"follows the word moves the object opposite ways (cosine -1); one that ignores it, the same way (+1).\n")
        print("| pairs with motion | both follow their word | same heading both times | cosine between the two |")
        print("|---|---|---|---|")
        print(f"| {steer['pairs']} | {steer['both']} | {steer['same']} | {steer['cosine']:+.2f} |\n")
    if "placement" not in args.skip:
        start = time.perf_counter()
        place = placement(pipe, args.place_n, seconds=args.seconds, aspect=args.aspect, batch=args.batch,
                          progress=progress("placement"), **fields)
        print(f"## Placement\n\n{place['n']} one-object still scenes, {args.place_n} in each third of the view, "
              f"generated from their long caption, which names the third ({time.perf_counter() - start:.0f} s). "
              f"The object's third is read from its track's mean centre; chance is 1 in 9.\n")
        print("| object seen | in the named third | " + " | ".join(place["by_third"]) + " |")
        print("|---|---|" + "---|" * len(place["by_third"]))
        print(f"| {place['found']} / {place['n']} | **{place['placed'] / place['n']:.0%}** | " +
              " | ".join(f"{a}/{b}" for a, b in place["by_third"].values()) + " |\n")
    if "framing" not in args.skip:
        cases = prompt_set(args.framing_n, "train", seconds=args.seconds)
        rows = framing(pipe, cases, batch=args.batch, progress=progress("framing"), **fields)
        print(f"## Framing\n\n{args.framing_n} prompts, each at 16:9 and 9:16: native generation vs a square of the "
              f"long side cropped to the same size; frames in which every perceived object is fully in view.\n")
        print(framing_table(rows) + "\n")
    if "timing" not in args.skip:
        clips = [(2.0, args.resolution)] + ([] if "long" in args.skip else [(4.0, 2 * args.resolution)])
        modes = (args.modes or ("eager,graphs" if args.device.startswith("cuda") else "eager")).split(",")
        print(f"## Speed\n\nOne clip per run ({pipe.info.default('aspect')}, batch 1), median of {args.repeats} "
              f"after a warm-up (which also captures the CUDA graphs and compiles); seconds per phase. Modes: eager "
              f"(kernel by kernel), graphs (each sampler step replayed from a CUDA graph), compile (graphs of "
              f"torch.compile-fused blocks).\n")
        print("| mode | clip | size | frames | latent tokens | text | sampling | decoding | total | vs eager |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        eager = {}    # the warm-up video of each clip in eager mode: the other modes must make the same one
        for mode in modes:
            timed = pipe if mode == "eager" and args.device == "cpu" else \
                Pipeline(args.model, args.device, cuda_graphs=mode != "eager", compile=mode == "compile")
            for k, (seconds, resolution) in enumerate(clips):
                # prompts no other section used (prompt sets of other seeds share no scene)
                prompts = [c.prompt for c in prompt_set(args.repeats + 1, "train", seed=1000 + k)]
                t = timing(timed, prompts, seconds, resolution, fields)
                if mode == "eager":
                    eager[k] = t["video"]
                same = f"{(t['video'].float() - eager[k].float()).abs().mean():.2f} grey levels" \
                    if mode != "eager" and k in eager else "-"
                print(f"| {mode} | {seconds:g} s at {resolution} px | {t['size']} | {t['frames']} | {t['tokens']} | "
                      f"{t['text_s']:.3f} | {t['sampling_s']:.3f} | {t['decode_s']:.3f} | {t['total_s']:.3f} | "
                      f"{same} |", flush=True)


if __name__ == "__main__":
    main()
