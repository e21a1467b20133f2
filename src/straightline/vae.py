"""The causal video autoencoder: pixels (B, 3, T, H, W) in [-1, 1] <-> latents (B, 16, 1 + (T-1)/4, H/8, W/8).

Causal in time: every convolution looks only at the current and earlier frames, so the first frame is
encoded alone (an image is a 1-frame video) and a 1 + 4k-frame clip gives 1 + k latent frames. Time is
halved twice by strided causal convolutions whose windows end on even frames (first frame alone, then
pairs), and doubled twice in the decoder by a convolution that emits two frames per frame (the very first
one dropped).

Memory stays bounded for long or large videos:
  * in time, `encode`/`decode` run in chunks and each causal convolution carries the last frames of the
    previous chunk (its "cache"), so chunked results equal whole-clip results up to float rounding;
  * in space, large frames are cut into overlapping tiles whose overlaps are blended linearly.
Normalisation is RMSNorm over channels at each position, so nothing couples distant frames or tiles.

Latent statistics (per-channel mean and std, `compute_latent_stats`) are stored with the weights;
`encode` returns standardised latents so the diffusion model sees roughly unit variance.
"""

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange
from safetensors.torch import load_file, save_file

from .errors import InvalidRequest


@dataclass
class VAEConfig:
    latent_channels: int = 16
    patch: int = 2                                  # pixels folded into channels before the first conv
    base_channels: int = 32
    channel_mult: tuple[int, ...] = (1, 2)          # one stage per 2× spatial downsampling (× patch: 8×)
    temporal_down: tuple[bool, ...] = (True, True)  # stages that also halve time: 4×
    blocks: int = 1                                 # residual blocks per stage
    decoder_blocks: int | None = None               # residual blocks per decoder stage (None: `blocks`); the
                                                    # decoder alone can grow while the latents stay (grow_decoder)

    @property
    def decoder_stage_blocks(self) -> int:
        return self.blocks if self.decoder_blocks is None else self.decoder_blocks

    @property
    def spatial_factor(self) -> int:
        return self.patch * 2 ** len(self.channel_mult)

    @property
    def temporal_factor(self) -> int:
        return 2 ** sum(self.temporal_down)


DEFAULT_PATH = Path(__file__).parent / "weights" / "vae"

# "default" is sized for training and decoding on a laptop CPU: folding 2×2 pixels into channels first keeps
# every 3D convolution at half resolution or less (~65k multiply-adds per pixel). "large" convolves at full
# resolution with a wider stack, for GPU training (~10× the compute).
PRESETS = {
    "tiny": VAEConfig(base_channels=8, channel_mult=(1, 1)),
    "default": VAEConfig(),
    "large": VAEConfig(patch=1, base_channels=32, channel_mult=(1, 2, 4), temporal_down=(False, True, True)),
}


# --- building blocks ------------------------------------------------------------------------------------

class CausalConv3d(nn.Module):
    """3D convolution padded only on the past side in time.

    When streaming (`self.streaming`), the last `kernel_t - stride_t` input frames of a chunk are kept and
    put in front of the next chunk, which makes chunked output identical to whole-clip output; the first
    chunk is padded by repeating its first frame instead.
    """

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: tuple[int, int, int] = (1, 1, 1)):
        super().__init__()
        self.kernel_t, self.stride_t = kernel, stride[0]
        self.conv = nn.Conv3d(cin, cout, kernel, stride, padding=(0, kernel // 2, kernel // 2))
        self.streaming, self.cache = False, None

    def forward(self, x):  # (B, C, T, H, W)
        if self.cache is None:
            x = torch.cat([x[:, :, :1].expand(-1, -1, self.kernel_t - 1, -1, -1), x], dim=2)
        else:
            x = torch.cat([self.cache, x], dim=2)
        if self.streaming:
            keep = self.kernel_t - self.stride_t
            self.cache = x[:, :, x.shape[2] - keep:].detach() if keep > 0 else x[:, :, :0]
        if x.device.type == "cpu" and x.dtype == torch.float32 and torch.backends.mkldnn.is_available():
            # PyTorch's heuristic sends batch-1 3D convolutions on small inputs to its slow reference kernel
            # (5-10× slower here, backward worst); oneDNN is right for every shape this model uses.
            c = self.conv
            return torch.mkldnn_convolution(x, c.weight, c.bias, c.padding, c.stride, c.dilation, c.groups)
        return self.conv(x)


class ChannelRMSNorm(nn.Module):
    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.eps = eps

    def forward(self, x):  # (B, C, T, H, W): normalised over C at each position
        x = x * torch.rsqrt(x.float().pow(2).mean(dim=1, keepdim=True) + self.eps).to(x.dtype)
        return x * self.weight.view(1, -1, 1, 1, 1)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.norm1, self.conv1 = ChannelRMSNorm(cin), CausalConv3d(cin, cout)
        self.norm2, self.conv2 = ChannelRMSNorm(cout), CausalConv3d(cout, cout)
        self.skip = nn.Conv3d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class Downsample(nn.Module):
    def __init__(self, channels: int, time: bool):
        super().__init__()
        self.conv = CausalConv3d(channels, channels, stride=(2 if time else 1, 2, 2))

    def forward(self, x):  # (B, C, T, H, W) -> (B, C, T', H/2, W/2), T' = 1 + (T-1)/2 when halving time
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest 2× in space, then a causal conv to `cout` channels; in time the conv emits two frames per
    frame (depth to time) and the first chunk drops its first emitted frame, so 1 + k frames become 1 + 2k."""

    def __init__(self, cin: int, cout: int, time: bool):
        super().__init__()
        self.time, self.cout = time, cout
        self.conv = CausalConv3d(cin, cout * (2 if time else 1))

    def forward(self, x):
        B, C, T, H, W = x.shape
        x = F.interpolate(x.reshape(B, C * T, H, W), scale_factor=2, mode="nearest").reshape(B, C, T, 2 * H, 2 * W)
        first = self.conv.cache is None  # whole clip, or the first chunk of a stream
        x = self.conv(x)
        if not self.time:
            return x
        C = self.cout
        x = x.reshape(B, 2, C, T, 2 * H, 2 * W).permute(0, 2, 3, 1, 4, 5).reshape(B, C, 2 * T, 2 * H, 2 * W)
        return x[:, :, 1:] if first else x


class Encoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.patch = cfg.patch
        chans = [cfg.base_channels * m for m in cfg.channel_mult]
        self.conv_in = CausalConv3d(3 * cfg.patch ** 2, chans[0])
        layers, cin = [], chans[0]
        for cout, time in zip(chans, cfg.temporal_down):
            for _ in range(cfg.blocks):
                layers.append(ResBlock(cin, cout))
                cin = cout
            layers.append(Downsample(cout, time))
        self.down = nn.Sequential(*layers)
        self.mid = ResBlock(cin, cin)
        self.norm_out = ChannelRMSNorm(cin)
        self.conv_out = CausalConv3d(cin, 2 * cfg.latent_channels)

    def forward(self, x):  # (B, 3, T, H, W) -> (B, 2 * latent_channels, T', H/8, W/8): mean and log-variance
        p = self.patch
        x = rearrange(x, "b c t (h p) (w q) -> b (c p q) t h w", p=p, q=p)  # space to depth
        return self.conv_out(F.silu(self.norm_out(self.mid(self.down(self.conv_in(x))))))


class Decoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        chans = [cfg.base_channels * m for m in cfg.channel_mult][::-1]
        self.conv_in = CausalConv3d(cfg.latent_channels, chans[0])
        self.mid = ResBlock(chans[0], chans[0])
        layers, cin = [], chans[0]
        for cout, time in zip(chans, cfg.temporal_down[::-1]):
            layers.append(Upsample(cin, cout, time))  # narrow before the larger grid: the cheap order
            layers += [ResBlock(cout, cout) for _ in range(cfg.decoder_stage_blocks)]
            cin = cout
        self.up = nn.Sequential(*layers)
        self.norm_out = ChannelRMSNorm(cin)
        self.patch = cfg.patch
        self.conv_out = CausalConv3d(cin, 3 * cfg.patch ** 2)

    def forward(self, z):
        x = self.conv_out(F.silu(self.norm_out(self.up(self.mid(self.conv_in(z))))))
        p = self.patch
        return rearrange(x, "b (c p q) t h w -> b c t (h p) (w q)", p=p, q=p)  # depth to space


# --- the autoencoder ------------------------------------------------------------------------------------

class VideoVAE(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder, self.decoder = Encoder(cfg), Decoder(cfg)
        self.register_buffer("latent_mean", torch.zeros(cfg.latent_channels))
        self.register_buffer("latent_std", torch.ones(cfg.latent_channels))

    # training path: whole clips, no chunking
    def forward(self, video, sample: bool = True):
        """video (B, 3, T, H, W) in [-1, 1] -> (reconstruction, mean, logvar); latents unstandardised."""
        mean, logvar = self.encoder(video).chunk(2, dim=1)
        logvar = logvar.clamp(-30, 20)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar) if sample else mean
        return self.decoder(z), mean, logvar

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        f, s = self.cfg.temporal_factor, self.cfg.spatial_factor
        return self.cfg.latent_channels, 1 + (frames - 1) // f, height // s, width // s

    # inference path: chunked in time, tiled in space, standardised latents
    @torch.no_grad()
    def encode(self, video, chunk_frames: int = 16, tile: int = 256, overlap: int = 64):
        """video (B, 3, T, H, W) in [-1, 1], T = 1 + 4k, H and W multiples of 8 -> standardised latent mean
        (B, 16, 1 + k, H/8, W/8). Memory is bounded by `chunk_frames` × `tile`² pixels."""
        _check_video(video, self.cfg)
        z = _tiled(lambda v: self._stream(self.encoder, v, chunk_frames, self.cfg.temporal_factor, first=1),
                   video, tile, overlap, 1 / self.cfg.spatial_factor)
        mean = z[:, : self.cfg.latent_channels]
        return (mean - self.latent_mean.view(1, -1, 1, 1, 1)) / self.latent_std.view(1, -1, 1, 1, 1)

    @torch.no_grad()
    def decode(self, latents, chunk_frames: int = 4, tile: int = 32, overlap: int = 8):
        """Standardised latents (B, 16, 1 + k, h, w) -> video (B, 3, 1 + 4k, 8h, 8w) in [-1, 1].
        `chunk_frames` and `tile` are in latent frames and latent pixels."""
        z = latents * self.latent_std.view(1, -1, 1, 1, 1) + self.latent_mean.view(1, -1, 1, 1, 1)
        video = _tiled(lambda v: self._stream(self.decoder, v, chunk_frames, 1, first=1),
                       z, tile, overlap, self.cfg.spatial_factor)
        return video.clamp(-1, 1)

    def _stream(self, net: nn.Module, x, chunk: int, multiple: int, first: int):
        """Run `net` over time chunks (the first holds `first` frame(s) plus whole groups), carrying caches."""
        convs = [m for m in net.modules() if isinstance(m, CausalConv3d)]
        step = max(multiple, chunk // multiple * multiple)
        bounds = [0, first] + list(range(first + step, x.shape[2], step)) + [x.shape[2]]
        bounds = sorted(set(b for b in bounds if b <= x.shape[2]))
        for c in convs:
            c.streaming, c.cache = True, None
        try:
            return torch.cat([net(x[:, :, a:b]) for a, b in zip(bounds, bounds[1:])], dim=2)
        finally:
            for c in convs:
                c.streaming, c.cache = False, None

    # checkpoints: safetensors weights + JSON config
    def save(self, path, dtype=torch.float16) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file({k: v.to(dtype) if v.is_floating_point() else v for k, v in self.state_dict().items()},
                  str(path / "vae.safetensors"))
        (path / "vae.json").write_text(json.dumps(asdict(self.cfg), indent=2))

    @classmethod
    def load(cls, path="default", device="cpu") -> "VideoVAE":
        """Load a checkpoint folder (vae.json + vae.safetensors); "default" is the VAE shipped in the package."""
        path = DEFAULT_PATH if str(path) == "default" else Path(path)
        if not (path / "vae.json").is_file() or not (path / "vae.safetensors").is_file():
            shipped = "" if (DEFAULT_PATH / "vae.json").is_file() else \
                " (no VAE is shipped in this version yet: train one with `straightline vae train --out runs/vae`)"
            raise InvalidRequest("model", str(path), "a folder holding vae.json and vae.safetensors, or "
                                 "'default' for the shipped VAE" + shipped)
        cfg = json.loads((path / "vae.json").read_text())
        cfg = VAEConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()})
        model = cls(cfg)
        state = load_file(str(path / "vae.safetensors"), device=str(device))
        model.load_state_dict({k: v.float() for k, v in state.items()})
        return model.to(device).eval()


def grow_decoder(vae: VideoVAE, blocks: int) -> VideoVAE:
    """A copy of `vae` whose decoder has `blocks` residual blocks per stage and decodes exactly as `vae` does:
    its blocks and the encoder are copied, and each new block starts as the identity (its last convolution is
    zero). The latents stay the same, so a diffusion model trained on them stays valid while the bigger decoder
    trains (`straightline vae train --init V --decoder-only --decoder-blocks N`)."""
    old = vae.cfg.decoder_stage_blocks
    if blocks < old:
        raise InvalidRequest("decoder blocks", blocks, f"at least the {old} per stage the decoder already has")
    grown = VideoVAE(replace(vae.cfg, decoder_blocks=blocks)).to(vae.latent_mean.device)

    def moved(key):  # decoder.up holds, per stage, an Upsample and then the stage's blocks
        if not key.startswith("decoder.up."):
            return key
        index, rest = key.removeprefix("decoder.up.").split(".", 1)
        stage, i = divmod(int(index), 1 + old)
        return f"decoder.up.{stage * (1 + blocks) + i}.{rest}"

    missing = grown.load_state_dict({moved(k): v for k, v in vae.state_dict().items()}, strict=False).missing_keys
    new = [grown.decoder.up[stage * (1 + blocks) + i] for stage in range(len(vae.cfg.channel_mult))
           for i in range(1 + old, 1 + blocks)]
    assert len(missing) == sum(len(block.state_dict()) for block in new), missing
    with torch.no_grad():
        for block in new:
            block.conv2.conv.weight.zero_()
            block.conv2.conv.bias.zero_()
    return grown.train(vae.training)


def _check_video(video, cfg: VAEConfig) -> None:
    _, C, T, H, W = video.shape
    if (T - 1) % cfg.temporal_factor:
        raise InvalidRequest("frames", T, f"1 + {cfg.temporal_factor}k frames (the first frame is encoded alone)")
    if H % cfg.spatial_factor or W % cfg.spatial_factor:
        raise InvalidRequest("size", f"{W}x{H}", f"width and height multiples of {cfg.spatial_factor}")


def _tiled(fn, x, tile: int, overlap: int, scale: float):
    """Apply `fn` (B, C, T, H, W) -> (B, C', T', H*scale, W*scale) on overlapping spatial tiles of `x` and blend
    the overlaps with linear ramps. Frames no larger than one tile go through whole."""
    B, _, _, H, W = x.shape
    if H <= tile and W <= tile:
        return fn(x)
    stride = tile - overlap
    ys = list(range(0, max(H - overlap, 1), stride))
    xs = list(range(0, max(W - overlap, 1), stride))
    out = weight = None
    for y0 in ys:
        for x0 in xs:
            y0c, x0c = min(y0, max(H - tile, 0)), min(x0, max(W - tile, 0))
            piece = fn(x[:, :, :, y0c:y0c + tile, x0c:x0c + tile])
            ph, pw = piece.shape[-2:]
            if out is None:
                out = piece.new_zeros(*piece.shape[:3], round(H * scale), round(W * scale))
                weight = piece.new_zeros(1, 1, 1, *out.shape[-2:])
            ramp = _ramp(ph, round(overlap * scale), y0c > 0, y0c + tile < H, piece)[:, None] * \
                _ramp(pw, round(overlap * scale), x0c > 0, x0c + tile < W, piece)[None, :]
            oy, ox = round(y0c * scale), round(x0c * scale)
            out[..., oy:oy + ph, ox:ox + pw] += piece * ramp
            weight[..., oy:oy + ph, ox:ox + pw] += ramp
    return out / weight


def _ramp(n: int, overlap: int, fade_in: bool, fade_out: bool, like):
    w = torch.ones(n, dtype=like.dtype, device=like.device)
    if overlap > 0:
        r = (torch.arange(overlap, dtype=like.dtype, device=like.device) + 0.5) / overlap
        if fade_in:
            w[:overlap] = r
        if fade_out:
            w[n - overlap:] = torch.minimum(w[n - overlap:], r.flip(0))
    return w


def kl_divergence(mean, logvar):
    """KL(N(mean, var) || N(0, 1)), averaged over all elements."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).mean()


@torch.no_grad()
def compute_latent_stats(vae: VideoVAE, videos) -> None:
    """Set per-channel latent mean/std from an iterable of videos (B, 3, T, H, W) in [-1, 1]."""
    vae.latent_mean.zero_()
    vae.latent_std.fill_(1.0)
    total, s1, s2 = 0, 0.0, 0.0
    for v in videos:
        z = vae.encode(v)  # standardised by identity stats at this point
        total += z.numel() / z.shape[1]
        s1 = s1 + z.sum(dim=(0, 2, 3, 4)).double()
        s2 = s2 + z.pow(2).sum(dim=(0, 2, 3, 4)).double()
    mean = s1 / total
    vae.latent_mean.copy_(mean.float())
    vae.latent_std.copy_((s2 / total - mean ** 2).clamp(min=1e-8).sqrt().float())
