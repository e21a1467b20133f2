"""Which caption words does a model listen to? One word swapped at a time, read at the text features and at the
DiT's velocity: seconds, where the adherence table takes many minutes.

    python benchmarks/bench_words.py --model default --n 8

For n one-object sliding ToyWorld scenes (adherence.steering_cases) three captions differ from the scene's medium
caption by one word each: its direction reversed ("left" -> "right"), another colour, another shape.

- Text features: the squared change of the encoder's token features over their squared size, per part (the last
  layer, and with "last+embeddings" the input embeddings): what the text encoder gives the DiT to tell the
  captions apart.
- Velocity: the clip is rendered (2 s, 224x128, 12 fps), encoded by the model's VAE, noised to time t with one
  noise for all four captions, and the DiT's velocity for each altered caption is compared with the caption's:
  the squared change on the latent cells the object covers (train.object_mask) over the squared velocity there.
  A model that ignores a word gives ~0 for it at every t.

Prints Markdown tables. Runs with torch's thread count as set.
"""

import argparse
import copy
import sys

import torch

from straightline.data import to_model_input
from straightline.eval.adherence import steering_cases
from straightline.pipeline import Pipeline
from straightline.train import object_mask
from straightline.world import captions, render, vocab

TIMES = (0.05, 0.2, 0.4, 0.6, 0.8)
WORDS = ("direction", "colour", "shape")


def altered(scene, word: str, k: int):
    """The scene with one attribute of its object changed (the same k always picks the same new value)."""
    if word == "direction":
        return None               # steering_cases gives the reversed scene
    new = copy.deepcopy(scene)
    o = new.objects[0]
    if word == "colour":
        o.color = [c for c in vocab.COLORS if c != o.color][k % (len(vocab.COLORS) - 1)]
    else:
        o.shape = [s for s in vocab.SHAPES if s != o.shape][k % (len(vocab.SHAPES) - 1)]
    return new


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default", help='"default" (the shipped model) or a model folder')
    parser.add_argument("--n", type=int, default=8, help="scenes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    pipe = Pipeline(args.model)
    width = pipe.text.dim // (2 if pipe.info.text_features == "last+embeddings" else 1)
    parts = {"last layer": slice(0, width)} | ({"input embeddings": slice(width, 2 * width)}
                                                if pipe.info.text_features == "last+embeddings" else {})
    text_change = {(w, p): [] for w in WORDS for p in parts}
    velocity_change = {(w, t): [] for w in WORDS for t in TIMES}
    g = torch.Generator().manual_seed(args.seed)
    for k, scene, reverse in steering_cases(args.n, seconds=2.0, seed=args.seed):
        scenes = [scene, reverse] + [altered(scene, w, k) for w in WORDS[1:]]
        text = pipe.text([captions(s)["medium"] for s in scenes])
        for i, word in enumerate(WORDS, 1):
            n = int(min(text.mask[0].sum(), text.mask[i].sum()))
            for part, cols in parts.items():
                a, b = text.tokens[0, :n, cols], text.tokens[i, :n, cols]
                text_change[word, part].append(float((b - a).pow(2).sum() / a.pow(2).sum()))
        clip = render(scene, 224, 128, fps=12, num_frames=25)
        with torch.no_grad():
            z = pipe.vae.encode(to_model_input(clip.frames[None]).to(pipe.device))
            cells = object_mask(clip.bbox, 128, 224, pipe.vae.cfg.spatial_factor,
                                pipe.vae.cfg.temporal_factor).to(pipe.device).float()   # (T', h, w)
            for t in TIMES:
                noise = torch.randn(z.shape, generator=g).to(pipe.device)
                x = ((1 - t) * noise + t * z).expand(len(scenes), *z.shape[1:])
                v = pipe.dit(x, torch.full((len(scenes),), t, device=pipe.device), text.tokens.to(pipe.device),
                             text.mask.to(pipe.device), text.pooled.to(pipe.device)).float()
                size = (v[0].pow(2).mean(0) * cells).sum()
                for i, word in enumerate(WORDS, 1):
                    velocity_change[word, t].append(float(((v[i] - v[0]).pow(2).mean(0) * cells).sum() / size))

    mean = lambda xs: sum(xs) / len(xs)
    print(f"# Which words the model listens to: `{args.model}`, {args.n} one-object sliding scenes\n")
    print("Text features: squared change over squared size when one word of the caption changes.\n")
    print("| word swapped | " + " | ".join(parts) + " |\n|---|" + "---|" * len(parts))
    for w in WORDS:
        print(f"| {w} | " + " | ".join(f"{mean(text_change[w, p]):.3f}" for p in parts) + " |")
    print("\nDiT velocity on the object's latent cells: squared change over squared size, by diffusion time t "
          "(0 noise, 1 data).\n")
    print("| word swapped | " + " | ".join(f"t={t:g}" for t in TIMES) + " |\n|---|" + "---|" * len(TIMES))
    for w in WORDS:
        print(f"| {w} | " + " | ".join(f"{mean(velocity_change[w, t]):.4f}" for t in TIMES) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
