"""Two models' prompt adherence on the same prompts, as a paired difference with a 95% interval.

    python benchmarks/bench_generate.py --model default --preset fast --n 400 --cases student.jsonl ...
    python benchmarks/bench_generate.py --model default --n 400 --cases teacher.jsonl ...
    python benchmarks/compare_adherence.py student.jsonl teacher.jsonl --names "student (4 steps)" "teacher"
    python benchmarks/compare_adherence.py ... --within 2    # and whether every difference is -2 points or better

Both files come from bench_generate.py --cases with the same --n, --aspect, --seconds and --scenario, so case k is
the same prompt generated from the same seed by each model. The interval comes from resampling the cases
(eval.adherence.paired_difference): what the two runs share, each prompt's difficulty, cancels, so it is
narrower than an interval for two independent runs (count, 400 prompts: +-4 points for the shipped student against
its teacher, +-2.8 for two students of one run, against +-6). Prints a Markdown table, in points (percentage points).
"""

import argparse
import json

from straightline.eval.adherence import paired_difference

GOAL_ATTRIBUTES = ("color", "shape", "direction", "count")
HEADINGS = {"color": "colour", "shape": "shape", "direction": "direction", "count": "count (clips)",
            "background": "background (clips)", "motion": "motion (extra)"}


def load(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", help="bench_generate.py --cases file of model a")
    parser.add_argument("b", help="bench_generate.py --cases file of model b, from the same prompts")
    parser.add_argument("--names", nargs=2, default=None, metavar=("A", "B"), help="the models' names in the table")
    parser.add_argument("--resamples", type=int, default=4000, help="bootstrap draws of the cases")
    parser.add_argument("--within", type=float, default=None, metavar="POINTS",
                        help="also say whether a is within POINTS of b on colour, shape, direction and count in both "
                             "splits (the point estimates; issue 9's student goal is 2)")
    args = parser.parse_args()
    a, b = load(args.a), load(args.b)
    for x, y in zip(a, b):
        if x["prompt"] != y["prompt"]:
            raise SystemExit(f"case {x['case']}: the files hold different prompts ({x['prompt']!r} and "
                             f"{y['prompt']!r}); run bench_generate.py with the same --n, --aspect, --seconds and "
                             f"--scenario for both")
    try:
        rows = paired_difference([(c["split"], c["score"]) for c in a], [(c["split"], c["score"]) for c in b],
                                 resamples=args.resamples)
    except ValueError as e:          # files of different lengths, or scored on different objects
        raise SystemExit(f"{args.a} and {args.b}: {e}") from None
    name_a, name_b = args.names or (args.a, args.b)
    print(f"{len(a)} cases: **{name_a}** minus **{name_b}**, points (95% interval from {args.resamples} resamples "
          f"of the cases).\n")
    print(f"| split | attribute | n | {name_a} | {name_b} | difference |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['split']} | {HEADINGS[r['attribute']]} | {r['n']} | {100 * r['a']:.1f}% | {100 * r['b']:.1f}% | "
              f"{100 * r['difference']:+.1f} ({100 * r['low']:+.1f} to {100 * r['high']:+.1f}) |")
    if args.within is not None:
        short = [f"{r['split']} {HEADINGS[r['attribute']]} {100 * r['difference']:+.1f}" for r in rows
                 if r["split"] in ("train", "heldout") and r["attribute"] in GOAL_ATTRIBUTES
                 and round(100 * r["difference"], 1) < -args.within]      # as the table shows it
        print(f"\n{name_a} within {args.within:g} points of {name_b} on colour, shape, direction and count in both "
              f"splits: " + ("yes" if not short else "no (" + "; ".join(short) + ")"))


if __name__ == "__main__":
    main()
