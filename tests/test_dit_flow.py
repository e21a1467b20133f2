"""Rectified-flow math, samplers and the diffusion transformer: known answers on tiny configs."""

from dataclasses import replace

import pytest
import torch

from straightline.dit import DiT, PRESETS
from straightline.flow import (interpolate, sample_timesteps, sampling_times, shift_for_tokens, shift_time,
                               velocity_target)
from straightline.layers import apply_rope, rope_3d
from straightline.sampling import classifier_free_guidance, euler, heun


def test_integrating_the_exact_velocity_returns_the_data():
    g = torch.Generator().manual_seed(0)
    x, noise = torch.randn(2, 4, 3, 4, 4, generator=g), torch.randn(2, 4, 3, 4, 4, generator=g)
    exact = lambda x_t, t: velocity_target(x, noise)  # straight path: the velocity is constant
    for sampler in (euler, heun):
        for steps, shift in ((1, 1.0), (7, 3.0)):
            assert torch.allclose(sampler(exact, noise, sampling_times(steps, shift)), x, atol=1e-5)
    assert torch.equal(interpolate(x, noise, torch.zeros(2)), noise)
    assert torch.equal(interpolate(x, noise, torch.ones(2)), x)


def test_shift_moves_time_towards_noise_and_keeps_the_ends():
    t = torch.linspace(0, 1, 11)
    shifted = shift_time(t, 3.0)
    assert shifted[0] == 0 and shifted[-1] == 1 and torch.all(shifted[1:-1] < t[1:-1])
    assert torch.all(torch.diff(sampling_times(10, 3.0)) > 0)
    assert shift_for_tokens(256) == pytest.approx(1.0) and shift_for_tokens(4096) == pytest.approx(3.0)
    assert shift_for_tokens(1024) > shift_for_tokens(512)
    g = torch.Generator().manual_seed(0)
    plain, shifted = sample_timesteps(4000, 1.0, generator=g), sample_timesteps(4000, 3.0, generator=g)
    assert 0 < plain.min() and plain.max() < 1 and abs(plain.mean() - 0.5) < 0.02
    assert shifted.mean() < plain.mean() - 0.1


def test_guidance_formula():
    pair = lambda x, t: (torch.full_like(x, 2.0), torch.full_like(x, 1.0))
    x, t = torch.zeros(1, 3), torch.zeros(1)
    assert torch.equal(classifier_free_guidance(pair, 1.0)(x, t), torch.full_like(x, 2.0))
    assert torch.equal(classifier_free_guidance(pair, 4.0)(x, t), torch.full_like(x, 5.0))


def test_rope_depends_only_on_relative_offsets():
    head_dim = 12
    q, k = torch.randn(1, 1, 1, head_dim), torch.randn(1, 1, 1, head_dim)
    cos, sin = rope_3d((4, 5, 6), head_dim)
    def score(i, j):
        return (apply_rope(q, cos[i:i + 1], sin[i:i + 1]) * apply_rope(k, cos[j:j + 1], sin[j:j + 1])).sum()
    flat = lambda t, h, w: (t * 5 + h) * 6 + w
    # the same offset (1, 2, -1) at two places gives the same score
    assert torch.allclose(score(flat(0, 0, 3), flat(1, 2, 2)), score(flat(2, 1, 4), flat(3, 3, 3)), atol=1e-5)
    assert not torch.allclose(score(flat(0, 0, 3), flat(1, 2, 2)), score(flat(0, 0, 3), flat(0, 0, 3)))


def tiny_inputs(T=2, H=4, W=6, B=2):
    g = torch.Generator().manual_seed(0)
    return dict(x=torch.randn(B, 16, T, H, W, generator=g), t=torch.rand(B, generator=g),
                text=torch.randn(B, 5, 384, generator=g),
                text_mask=torch.tensor([[True] * 5, [True] * 3 + [False] * 2])[:B],
                text_pooled=torch.randn(B, 384, generator=g))


def test_untrained_model_is_identity_blocks_and_zero_velocity():
    model = DiT(PRESETS["tiny"])
    inputs = tiny_inputs()
    assert torch.equal(model(**inputs), torch.zeros_like(inputs["x"]))
    tokens = torch.randn(2, 12, 64)
    c, text = torch.randn(2, 64), torch.randn(2, 5, 64)
    rope = rope_3d((2, 2, 3), 32)
    block = model.blocks[0]
    assert torch.equal(block(tokens, c, text, inputs["text_mask"][:, None, None], rope), tokens)


@pytest.mark.parametrize("T, H, W", [(1, 2, 2), (3, 4, 6), (2, 8, 2)])
def test_any_grid_and_padding_tokens_are_ignored(T, H, W):
    torch.manual_seed(0)
    model = DiT(PRESETS["tiny"])
    for p in model.parameters():  # leave adaLN-zero so every path carries signal
        torch.nn.init.normal_(p, std=0.05)
    inputs = tiny_inputs(T, H, W)
    v = model(**inputs)
    assert v.shape == inputs["x"].shape
    changed = dict(inputs, text=inputs["text"].clone())
    changed["text"][1, 3:] = 100.0  # masked-out tokens of sample 1
    assert torch.allclose(model(**changed)[1], v[1], atol=1e-5)


def test_checkpoint_round_trip(tmp_path):
    model = DiT(PRESETS["tiny"])
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    model.save(tmp_path)
    loaded = DiT.load(tmp_path)
    inputs = tiny_inputs()
    assert loaded.cfg == model.cfg
    assert torch.allclose(loaded(**inputs), model(**inputs), atol=2e-2)


def test_widened_text_projections_compute_what_the_model_did_until_trained(tmp_path):
    torch.manual_seed(0)
    model = DiT(PRESETS["tiny"])
    for p in model.parameters():                      # a "trained" model: no zero layers left
        torch.nn.init.normal_(p, std=0.05)
    x, t = torch.randn(1, 16, 2, 4, 4), torch.rand(1)
    text, mask, pooled = torch.randn(1, 5, 384), torch.ones(1, 5, dtype=torch.bool), torch.randn(1, 384)
    before = model(x, t, text, mask, pooled)
    model.widen_text(768)
    assert model.cfg.text_dim == 768
    extra = lambda a: torch.cat([a, torch.randn_like(a)], -1)       # anything in the new columns
    assert torch.allclose(model(x, t, extra(text), mask, extra(pooled)), before, atol=1e-6)
    model.save(tmp_path)
    assert DiT.load(tmp_path).cfg.text_dim == 768


def test_frame_position_is_absolute_and_means_the_same_at_any_size():
    from straightline.layers import frame_position
    small, large = frame_position((3, 4, 8), 4), frame_position((3, 8, 16), 4)
    assert small.shape == (3 * 4 * 8, 24)
    time, place = small.reshape(3, 32, 24)[..., :8], small.reshape(3, 32, 24)[..., 8:]
    assert torch.equal(place[0], place[1]) and torch.equal(place[0], place[2])   # the place: the same in every frame
    assert len({tuple(row.tolist()) for row in place[0]}) == 32                      # and every cell its own
    assert torch.equal(time[:, 0], time[:, -1]) and not torch.allclose(time[0], time[1])   # the time: per frame
    # place is a fraction of the frame: the upper-left cell reads alike at both sizes at the first frequency
    first = [8, 12, 16, 20]                              # sin and cos of π·v, then of π·u
    corner = lambda f, w: f.reshape(3, -1, w, 24)[0, 0, 0, first]
    assert torch.allclose(corner(small, 8), corner(large, 16), atol=0.25)
    assert not torch.allclose(small[0, 8:], small[31, 8:], atol=0.5)                  # upper left ≠ lower right


def test_added_frame_position_computes_what_the_model_did_until_trained(tmp_path):
    torch.manual_seed(0)
    model = DiT(PRESETS["tiny"])
    for p in model.parameters():                      # a "trained" model: no zero layers left
        torch.nn.init.normal_(p, std=0.05)
    inputs = tiny_inputs()
    before = model(**inputs)
    model.add_position(4)
    assert model.cfg.position_freqs == 4
    assert torch.allclose(model(**inputs), before, atol=1e-6)
    with pytest.raises(ValueError, match="already"):
        model.add_position(4)
    torch.nn.init.normal_(model.position.weight, std=0.05)   # trained: the output now depends on the place
    assert not torch.allclose(model(**inputs), before, atol=1e-3)
    model.save(tmp_path)
    loaded = DiT.load(tmp_path)
    assert loaded.cfg.position_freqs == 4 and torch.allclose(loaded(**inputs), model(**inputs), atol=2e-2)
    fresh = DiT(replace(PRESETS["tiny"], position_freqs=4))   # from scratch: the layer starts at zero too
    assert fresh.position.weight.abs().max() == 0


def test_input_embeddings_keep_direction_words_apart_where_the_last_layer_merges_them():
    from straightline.text import TextEncoder
    last, both = TextEncoder(), TextEncoder(features="last+embeddings")
    prompts = ["a brown star moves to the right", "a brown star moves to the left", "a blue star moves to the right"]
    a, b = last(prompts), both(prompts)
    assert both.dim == 2 * last.dim == b.tokens.shape[-1] == b.pooled.shape[-1] == 768
    assert torch.allclose(b.tokens[..., :384], a.tokens, atol=1e-5) and torch.allclose(b.pooled[:, :384], a.pooled)
    change = lambda e, i, part: float((e[i, :, part] - e[0, :, part]).pow(2).sum() / e[0, :, part].pow(2).sum())
    contextual, embedded = slice(0, 384), slice(384, 768)
    # the last layer: the direction swap moves the features far less than the colour swap; the input embeddings
    # move about as much for either
    assert change(b.tokens, 1, contextual) < 0.3 * change(b.tokens, 2, contextual)
    assert change(b.tokens, 1, embedded) > 0.5 * change(b.tokens, 2, embedded)
    with pytest.raises(Exception, match="text_features"):
        TextEncoder(features="middle")
