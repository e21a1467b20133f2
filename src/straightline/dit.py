"""The diffusion transformer on spacetime latent patches.

Axes: B batch, C latent channels, T latent frames, H, W latent height and width, L tokens, D model width.
Lt text tokens of width Dt. t is diffusion time (B,), 0 = noise, 1 = data (flow.py).

Reading order: patches -> tokens, the block (adaLN-zero self-attention with 3D RoPE and QK-norm,
cross-attention to text, MLP), the final layer, the model, the presets.

Position: 3D RoPE gives attention relative offsets in time and space. With `position_freqs` > 0, each token also
gets Fourier features of its absolute place in the frame (as fractions of the width and height) and in the clip
(latent frames from the first), layers.frame_position, through a linear layer that starts at zero: where an
object starts, how far it has moved by a given frame, and which third of the frame a caption names can then be
drawn, where RoPE alone leaves the layout to the noise.

Frame conditioning (image-to-video, extension, loops, connecting clips) enters as extra input channels:
the known latents (zeros elsewhere) and a mask that is 1 on known latent frames. Text-to-video passes zeros.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange
from safetensors.torch import load_file, save_file

from .layers import RMSNorm, TimestepEmbedder, apply_rope, frame_position, modulate, rope_3d


@dataclass
class DiTConfig:
    latent_channels: int = 16
    patch: tuple[int, int, int] = (1, 2, 2)   # frames, height, width of one spacetime patch
    dim: int = 384
    depth: int = 12
    heads: int = 6
    text_dim: int = 384                       # width of the text encoder's token embeddings
    mlp_ratio: float = 4.0
    position_freqs: int = 0                   # > 0: absolute place in frame and clip, Fourier features (frame_position)

    @property
    def in_channels(self) -> int:
        return 2 * self.latent_channels + 1   # noisy latents + known latents + mask


PRESETS = {
    "tiny": DiTConfig(dim=64, depth=2, heads=2),
    "default": DiTConfig(dim=256, depth=6, heads=4),   # the shipped model: small enough to train and run on a CPU
    "S": DiTConfig(dim=384, depth=12, heads=6),
    "B": DiTConfig(dim=768, depth=12, heads=12),
    "L": DiTConfig(dim=1024, depth=24, heads=16),
}


# --- the block -------------------------------------------------------------------------------------------

class Attention(nn.Module):
    """Multi-head attention with QK-norm (RMSNorm on queries and keys per head keeps logits bounded, which
    keeps bf16 training stable) and optional rotary positions; PyTorch SDPA picks the fused kernel."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim or dim, 2 * dim)
        self.q_norm, self.k_norm = RMSNorm(self.head_dim), RMSNorm(self.head_dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x, context=None, rope=None, mask=None):
        context = x if context is None else context
        q = rearrange(self.q(x), "b l (h d) -> b h l d", h=self.heads)
        k, v = rearrange(self.kv(context), "b l (two h d) -> two b h l d", two=2, h=self.heads)
        q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(rearrange(x, "b h l d -> b l (h d)"))


class Block(nn.Module):
    def __init__(self, cfg: DiTConfig):
        super().__init__()
        D = cfg.dim
        self.norm1 = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(D, cfg.heads)
        self.norm2 = nn.LayerNorm(D, eps=1e-6)
        self.cross = Attention(D, cfg.heads, context_dim=D)
        self.norm3 = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6)
        hidden = int(D * cfg.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(D, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, D))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(D, 6 * D))

    def forward(self, x, c, text, text_mask, rope):
        """x (B, L, D), c (B, D) conditioning, text (B, Lt, D), text_mask (B, 1, 1, Lt) bool."""
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c).chunk(6, dim=-1)
        x = x + gate1[:, None] * self.attn(modulate(self.norm1(x), shift1, scale1), rope=rope)
        x = x + self.cross(self.norm2(x), context=text, mask=text_mask)
        x = x + gate2[:, None] * self.mlp(modulate(self.norm3(x), shift2, scale2))
        return x


class FinalLayer(nn.Module):
    def __init__(self, cfg: DiTConfig):
        super().__init__()
        pt, ph, pw = cfg.patch
        self.norm = nn.LayerNorm(cfg.dim, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(cfg.dim, 2 * cfg.dim))
        self.linear = nn.Linear(cfg.dim, pt * ph * pw * cfg.latent_channels)

    def forward(self, x, c):
        shift, scale = self.ada(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))


# --- the model -------------------------------------------------------------------------------------------

class DiT(nn.Module):
    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.cfg = cfg
        pt, ph, pw = cfg.patch
        self.patch_embed = nn.Linear(cfg.in_channels * pt * ph * pw, cfg.dim)
        self.time_embed = TimestepEmbedder(cfg.dim)
        self.text_pooled = nn.Linear(cfg.text_dim, cfg.dim)
        self.text_tokens = nn.Linear(cfg.text_dim, cfg.dim)
        if cfg.position_freqs:
            self.position = nn.Linear(6 * cfg.position_freqs, cfg.dim)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.final = FinalLayer(cfg)
        self.initialize_weights()

    def initialize_weights(self):
        # Xavier for every linear layer (DiT's choice), then the exceptions:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        # the timestep MLP starts small so early conditioning does not swamp the tokens
        for m in self.time_embed.mlp:
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
        # adaLN-zero: every block's gates start at 0, so an untrained block is the identity and the network
        # starts as a shallow one that deepens as gates open (Peebles & Xie 2023, DiT, section 3.2)
        for block in self.blocks:
            nn.init.zeros_(block.ada[-1].weight)
            nn.init.zeros_(block.ada[-1].bias)
            nn.init.zeros_(block.cross.out.weight)  # cross-attention is ungated: zero its output instead
        if self.cfg.position_freqs:   # starts at zero: a model given it computes what it did without it
            nn.init.zeros_(self.position.weight)
        # zero output layer: the untrained model predicts zero velocity rather than noise
        nn.init.zeros_(self.final.ada[-1].weight)
        nn.init.zeros_(self.final.ada[-1].bias)
        nn.init.zeros_(self.final.linear.weight)
        nn.init.zeros_(self.final.linear.bias)

    def forward(self, x, t, text, text_mask, text_pooled, cond=None):
        """Velocity for noisy latents.

        Args:
            x: noisy latents (B, C, T, H, W); H and W multiples of the patch size.
            t: diffusion time (B,), 0 = noise, 1 = data.
            text: text token embeddings (B, Lt, Dt); text_mask: (B, Lt) bool, True for real tokens.
            text_pooled: pooled text embedding (B, Dt), added to the time embedding (adaLN input).
            cond: known latents and mask (B, C + 1, T, H, W), or None for text-to-video.
        Returns:
            velocity (B, C, T, H, W).
        """
        B, C, T, H, W = x.shape
        pt, ph, pw = self.cfg.patch
        if cond is None:
            cond = x.new_zeros(B, C + 1, T, H, W)
        tokens = rearrange(torch.cat([x, cond], dim=1), "b c (t pt) (h ph) (w pw) -> b (t h w) (c pt ph pw)",
                           pt=pt, ph=ph, pw=pw)                     # (B, C', T, H, W) -> (B, L, C'·pt·ph·pw)
        tokens = self.patch_embed(tokens)
        grid = (T // pt, H // ph, W // pw)
        if self.cfg.position_freqs:
            tokens = tokens + self.position(frame_position(grid, self.cfg.position_freqs, x.device).to(tokens.dtype))
        rope = rope_3d(grid, self.cfg.dim // self.cfg.heads, device=x.device)
        c = self.time_embed(t) + self.text_pooled(text_pooled)
        context = self.text_tokens(text)
        mask = text_mask[:, None, None, :]                          # (B, 1, 1, Lt): broadcast over heads, queries
        for block in self.blocks:
            tokens = block(tokens, c, context, mask, rope)
        out = self.final(tokens, c)                                 # (B, L, pt·ph·pw·C)
        return rearrange(out, "b (t h w) (c pt ph pw) -> b c (t pt) (h ph) (w pw)",
                         t=grid[0], h=grid[1], w=grid[2], pt=pt, ph=ph, pw=pw)

    def widen_text(self, text_dim: int) -> "DiT":
        """Take text features `text_dim` wide whose first cfg.text_dim columns are the ones this model was trained
        on (text.FEATURES "last" -> "last+embeddings"). The new columns of the text projections start at zero,
        so the model computes exactly what it did until training teaches it to use them. Returns self."""
        old = self.cfg.text_dim
        if text_dim < old:
            raise ValueError(f"text_dim {text_dim}: text features at least as wide as the model's {old}")
        for name in ("text_pooled", "text_tokens"):
            layer = getattr(self, name)
            wide = nn.Linear(text_dim, layer.out_features).to(layer.weight.device, layer.weight.dtype)
            with torch.no_grad():
                wide.weight.zero_()
                wide.weight[:, :old] = layer.weight
                wide.bias.copy_(layer.bias)
            setattr(self, name, wide)
        self.cfg = DiTConfig(**{**asdict(self.cfg), "text_dim": text_dim})
        return self

    def add_position(self, freqs: int) -> "DiT":
        """Give a model trained without it the absolute frame position (`freqs` frequencies, frame_position). Its
        layer starts at zero, so the model computes exactly what it did until training teaches it to use it."""
        if self.cfg.position_freqs:
            raise ValueError(f"this DiT already reads the frame position ({self.cfg.position_freqs} frequencies)")
        device, dtype = self.patch_embed.weight.device, self.patch_embed.weight.dtype
        self.position = nn.Linear(6 * freqs, self.cfg.dim).to(device, dtype)
        nn.init.zeros_(self.position.weight)
        nn.init.zeros_(self.position.bias)
        self.cfg = DiTConfig(**{**asdict(self.cfg), "position_freqs": freqs})
        return self

    def flops_per_token(self, tokens: int, text_tokens: int = 32) -> float:
        """Forward FLOPs per video token: 2 per weight of the per-token linear layers, plus attention scores
        and mixing (4·D per attended token, self and cross). Per-sample and text-side layers (adaLN, text
        keys/values) are left out: they do not grow with the number of tokens."""
        weights = sum(p.numel() for n, p in self.blocks.named_parameters()
                      if p.ndim == 2 and not n.split(".")[1] == "ada" and "cross.kv" not in n)
        return 2 * weights + 4 * self.cfg.dim * self.cfg.depth * (tokens + text_tokens)

    def compile_blocks(self, shapes: int = 64) -> "DiT":
        """Fuse each block with torch.compile (regional compilation) and return self. The blocks share one code
        object, so an input shape is compiled once (tens of seconds) and serves every block, where compiling the
        whole model as one graph took minutes for B. `shapes`: how many input shapes (token grid x text length)
        may be compiled before torch falls back to running new ones eagerly; its default, 8, is fewer than the
        buckets of one training run."""
        for name in ("recompile_limit", "cache_size_limit"):
            if hasattr(torch._dynamo.config, name):
                setattr(torch._dynamo.config, name, max(getattr(torch._dynamo.config, name), shapes))
        for block in self.blocks:        # under activation checkpointing: the wrapper, with the block inside
            block.compile(dynamic=False)
        return self

    # checkpoints: safetensors weights + JSON config
    def save(self, path, dtype=torch.float16) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file({k: v.to(dtype).contiguous() for k, v in self.state_dict().items()}, str(path / "dit.safetensors"))
        (path / "dit.json").write_text(json.dumps(asdict(self.cfg), indent=2))

    @classmethod
    def load(cls, path, device="cpu") -> "DiT":
        path = Path(path)
        cfg = json.loads((path / "dit.json").read_text())
        cfg = DiTConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()})
        model = cls(cfg)
        weights = load_file(str(path / "dit.safetensors"), device=str(device))
        model.load_state_dict({k: v.float() for k, v in weights.items()})
        return model.to(device).eval()
