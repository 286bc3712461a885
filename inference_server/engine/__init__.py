"""The model layer (torch and diffusers; never flask)."""

from inference_server.engine.runner import Engine, load_engine

__all__ = ["Engine", "load_engine"]
