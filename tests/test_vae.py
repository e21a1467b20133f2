"""The causal video autoencoder: shapes for 1 + 4k frames, causality, chunked == whole, tiles blend,
checkpoints round-trip, errors name the field."""

import pytest
import torch

from straightline.errors import InvalidRequest
from straightline.vae import PRESETS, VideoVAE, compute_latent_stats, grow_decoder, kl_divergence


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return VideoVAE(PRESETS["tiny"]).eval()


def clip(frames=9, height=32, width=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, frames, height, width, generator=g) * 2 - 1


@pytest.mark.parametrize("frames", [1, 5, 9, 13])
def test_shapes_for_one_plus_4k_frames(vae, frames):
    z = vae.encode(clip(frames))
    assert z.shape == (1, 16, 1 + (frames - 1) // 4, 4, 6)
    assert vae.decode(z).shape == (1, 3, frames, 32, 48)


def test_causal_in_time(vae):
    a = clip(9)
    b = a.clone()
    b[:, :, 5:] = -b[:, :, 5:]  # change only frames 5..8
    za, zb = vae.encode(a), vae.encode(b)
    assert torch.equal(za[:, :, :2], zb[:, :, :2])   # latents 0 and 1 see frames 0..4 only
    assert not torch.equal(za[:, :, 2:], zb[:, :, 2:])
    da, db = vae.decode(za), vae.decode(za.clone().index_fill_(2, torch.tensor([2]), 0.0))
    assert torch.equal(da[:, :, :5], db[:, :, :5])   # frames 0..4 come from latents 0 and 1 only


def test_chunked_equals_whole_clip(vae):
    x = clip(17, 32, 32, seed=1)
    whole = vae.encode(x, chunk_frames=1000)
    chunked = vae.encode(x, chunk_frames=4)
    assert torch.allclose(whole, chunked, atol=1e-5)
    assert torch.allclose(vae.decode(whole, chunk_frames=1000), vae.decode(whole, chunk_frames=1), atol=1e-5)


def test_tiled_decode_blends_away_seams(vae):
    # tiles lose the context beyond their edges; blending overlaps must hide that far better than butting
    # tiles together (an untrained net has a wide, strong receptive field: a hard case)
    z = torch.linspace(-1, 1, 24).view(1, 1, 1, 1, 24).expand(1, 16, 2, 16, 24).contiguous()
    whole = vae.decode(z, tile=1000)
    butted, blended = vae.decode(z, tile=12, overlap=0), vae.decode(z, tile=12, overlap=4)
    assert blended.shape == whole.shape
    seam = lambda v: (whole - v).abs().amax(dim=(0, 1, 2, 3))  # worst error per column
    assert seam(blended).max() < 0.5 * seam(butted).max()
    assert (whole - blended).abs().mean() < 0.6 * (whole - butted).abs().mean()


def test_bad_sizes_name_the_field(vae):
    with pytest.raises(InvalidRequest, match="frames"):
        vae.encode(clip(8))
    with pytest.raises(InvalidRequest, match="size"):
        vae.encode(clip(5, 30, 48))


def test_checkpoint_round_trip_and_latent_stats(vae, tmp_path):
    compute_latent_stats(vae, [clip(5, seed=s) for s in range(3)])
    z = torch.cat([vae.encode(clip(5, seed=s)) for s in range(3)])
    assert z.mean(dim=(0, 2, 3, 4)).abs().max() < 1e-3
    assert torch.allclose(z.std(dim=(0, 2, 3, 4), unbiased=False), torch.ones(16), atol=1e-3)
    vae.save(tmp_path / "ckpt")
    loaded = VideoVAE.load(tmp_path / "ckpt")
    assert loaded.cfg == vae.cfg
    x = clip(5)
    assert torch.allclose(loaded.encode(x), vae.encode(x), atol=0.05)  # fp16 weights on disk


def test_a_grown_decoder_decodes_as_before_and_round_trips(vae, tmp_path):
    grown = grow_decoder(vae, 3)
    assert grown.cfg.decoder_blocks == 3 and len(grown.decoder.up) == 2 * (1 + 3)
    assert sum(p.numel() for p in grown.decoder.parameters()) > sum(p.numel() for p in vae.decoder.parameters())
    z = vae.encode(clip(9))
    assert torch.equal(grown.encode(clip(9)), z)                    # the latents a DiT was trained on
    assert torch.allclose(grown.decode(z), vae.decode(z), atol=1e-6)  # the new blocks start as the identity
    grown.save(tmp_path / "grown")
    assert VideoVAE.load(tmp_path / "grown").cfg.decoder_blocks == 3
    with pytest.raises(InvalidRequest, match="decoder blocks"):
        grow_decoder(grown, 2)


def test_kl_is_zero_for_the_prior():
    assert kl_divergence(torch.zeros(4), torch.zeros(4)) == 0
    assert kl_divergence(torch.ones(4), torch.zeros(4)) > 0
