"""Evaluation of generated videos against what their prompts asked for.

    adherence   ToyWorld prompts with known scenes: colour, shape, motion direction, object count and
                background read back from the pixels (world.perception), accuracies with Wilson intervals per
                split (in-distribution vs held-out compositions); framing at native aspect vs a cropped square.

Modules are imported by name (`from straightline.eval import adherence`), so importing this package is free.
"""
