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
  A model that ignores a word gives ~0 for it at every t. Two more columns and a table put that in scale:
  - "latents": the change of the clean latents themselves when the scene is rendered with the word's new value
    (on the cells either clip's object covers), over the squared true velocity (latents - noise) on the object's
    cells: at small t, a model that knows the word and nothing else of the clip could move its velocity about
    this much (an upper bound: at t = 0 it does not know where the object is).
  - By path: the change with only the text tokens (cross-attention) or only the pooled vector (adaLN) altered.

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
PATHS = ("tokens only", "pooled only")


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
    latent_change = {w: [] for w in WORDS}
    path_change = {(w, path, t): [] for w in WORDS for path in PATHS for t in TIMES}
    rows = list(range(1 + len(WORDS)))                     # (tokens, pooled) of: the caption, each altered one,
    tokens_from = rows + rows[1:] + [0] * len(WORDS)      # each altered one's tokens with the caption's pooled
    pooled_from = rows + [0] * len(WORDS) + rows[1:]      # vector, and the other way round
    g = torch.Generator().manual_seed(args.seed)
    for k, scene, reverse in steering_cases(args.n, seconds=2.0, seed=args.seed):
        scenes = [scene, reverse] + [altered(scene, w, k) for w in WORDS[1:]]
        text = pipe.text([captions(s)["medium"] for s in scenes])
        for i, word in enumerate(WORDS, 1):
            n = int(min(text.mask[0].sum(), text.mask[i].sum()))
            for part, cols in parts.items():
                a, b = text.tokens[0, :n, cols], text.tokens[i, :n, cols]
                text_change[word, part].append(float((b - a).pow(2).sum() / a.pow(2).sum()))
        clips = [render(s, 224, 128, fps=12, num_frames=25) for s in scenes]
        factors = pipe.vae.cfg.spatial_factor, pipe.vae.cfg.temporal_factor
        masks = [object_mask(c.bbox, 128, 224, *factors).to(pipe.device).float() for c in clips]   # (T', h, w)
        cells = masks[0]
        tokens, mask, pooled = (a.to(pipe.device) for a in (text.tokens, text.mask, text.pooled))
        with torch.no_grad():
            latents = pipe.vae.encode(to_model_input(torch.stack([c.frames for c in clips])).to(pipe.device))
            z = latents[:1]
            for t in TIMES:
                noise = torch.randn(z.shape, generator=g).to(pipe.device)
                x = ((1 - t) * noise + t * z).expand(len(tokens_from), *z.shape[1:])
                v = pipe.dit(x, torch.full((len(tokens_from),), t, device=pipe.device), tokens[tokens_from],
                             mask[tokens_from], pooled[pooled_from]).float()
                size = (v[0].pow(2).mean(0) * cells).sum()
                change = lambda row: float(((v[row] - v[0]).pow(2).mean(0) * cells).sum() / size)
                for i, word in enumerate(WORDS, 1):
                    velocity_change[word, t].append(change(i))
                    path_change[word, "tokens only", t].append(change(len(WORDS) + i))
                    path_change[word, "pooled only", t].append(change(2 * len(WORDS) + i))
            size = ((z[0] - noise[0]).pow(2).mean(0) * cells).sum()   # the true velocity with the last t's noise
            for i, word in enumerate(WORDS, 1):      # on the cells either clip's object covers
                both = torch.maximum(cells, masks[i])
                latent_change[word].append(float(((latents[i] - z[0]).pow(2).mean(0) * both).sum() / size))

    mean = lambda xs: sum(xs) / len(xs)
    print(f"# Which words the model listens to: `{args.model}`, {args.n} one-object sliding scenes\n")
    print("Text features: squared change over squared size when one word of the caption changes.\n")
    print("| word swapped | " + " | ".join(parts) + " |\n|---|" + "---|" * len(parts))
    for w in WORDS:
        print(f"| {w} | " + " | ".join(f"{mean(text_change[w, p]):.3f}" for p in parts) + " |")
    print("\nDiT velocity on the object's latent cells: squared change over squared size, by diffusion time t "
          "(0 noise, 1 data).\n")
    print("| word swapped | " + " | ".join(f"t={t:g}" for t in TIMES) + " | latents |\n|---|"
          + "---|" * (len(TIMES) + 1))
    for w in WORDS:
        print(f"| {w} | " + " | ".join(f"{mean(velocity_change[w, t]):.4f}" for t in TIMES)
              + f" | {mean(latent_change[w]):.4f} |")
    print("\nBy path: the same change with only the text tokens (cross-attention) or only the pooled vector (adaLN) "
          "of the altered caption.\n")
    print("| word swapped | path | " + " | ".join(f"t={t:g}" for t in TIMES) + " |\n|---|---|"
          + "---|" * len(TIMES))
    for w in WORDS:
        for path in PATHS:
            print(f"| {w} | {path} | " + " | ".join(f"{mean(path_change[w, path, t]):.4f}" for t in TIMES) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
