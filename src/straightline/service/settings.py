"""What a deployment of the service is configured with (`straightline serve` and `straightline worker` flags)."""

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .cost import PriceTable

# model names clients written for OpenAI's API send; they get this deployment's model
ALIASES = ("sora-2", "sora-2-pro", "sora-2-2025-10-06", "sora-2-pro-2025-10-06", "sora-2-2025-12-08")


@dataclass
class Settings:
    db: str = "sqlite:///straightline.db"   # SQLAlchemy URL; postgresql://… for workers on several machines
    model: str = "default"                  # the model folder (or "default", the shipped one)
    model_name: str = "straightline"        # what the API calls it; ALIASES are accepted too
    device: str = "cpu"
    workers: int = 1                        # worker threads inside the API process (0: separate workers only)
    batch_size: int = 4
    lease_s: float = 30.0
    max_attempts: int = 3
    poll_after_ms: int = 1000               # the openai-poll-after-ms header: how often the SDK polls
    max_upload_bytes: int = 64 << 20        # one uploaded file (input_reference, end_reference)
    dedupe_window_s: float = 60.0           # the same create from the same owner within this is one job
    retry_window_s: float = 600.0           # ... and within this when the SDK says it is a retry
    require_keys: bool = False              # without keys the service is local: bind to localhost only
    upload_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "straightline-uploads")
    prices: PriceTable = field(default_factory=PriceTable)
    expires_after_s: float | None = None    # expires_at on videos; None: kept until deleted
    apps_dir: Path | None = None            # a folder of app files (NAME.toml), each mounted at /apps/NAME
    apps_reload_s: float = 0.0              # app files are checked for changes at most this often (0: every use)
    feed: bool = True                       # the personalised feed at /feed and /v1/feed/...
    feed_config: dict = field(default_factory=dict)   # feed.FeedConfig fields for /feed (and the apps' feeds)
    feed_embedder: str = "minilm"           # prompt embeddings of the feed: "minilm" or "hashing" (no model)

    def accepts(self, model: str) -> bool:
        return model == self.model_name or model in ALIASES
