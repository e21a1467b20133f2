"""straightline: Sora-style video generation, from model to application."""

__version__ = "0.1.0"
