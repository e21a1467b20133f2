"""Evaluation of video models where the truth is known: ToyWorld (docs/eval.md; `straightline eval`).

    adherence     ToyWorld prompts with known scenes: colour, shape, motion, direction, count and background read
                  back from the pixels (world.perception), accuracies with Wilson intervals per split
                  (in-distribution vs held-out compositions); framing at native aspect vs a cropped square
    physics       uniform, parabolic and collision scenes: velocity error, fitted gravity, energy on bounces,
                  collisions vs an elastic one, from text or continuing given ground-truth frames (OOD speeds
                  and sizes)
    consistency   flicker, teleports, objects from nowhere or vanishing, identity switches, permanence
    classifier    a small ToyWorld video classifier (shipped in weights/classifier) ...
    distance      ... whose features define a Fréchet distance to real ToyWorld clips: our FVD
    speed         compute seconds per video second and DiT FLOPs per size
    vae_quality   the autoencoder's PSNR / SSIM on ToyWorld and real clips
    report        suites (quick, full), one run -> metric rows -> report.json / report.md / PNGs; comparison
    reference     the oracle (ToyWorld's own renders) and damaged versions of it; sanity: the instrument check
    stats, plots  intervals (Wilson, bootstrap) and Pillow figures

Modules are imported by name (`from straightline.eval import adherence`), so importing this package is free.
"""
