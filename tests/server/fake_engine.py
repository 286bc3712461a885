"""A stand-in engine for in-process apps: the same interface as `engine.runner.Engine`, no torch.

It "denoises" by painting a flat colour from the seed, step by step, so tests see progress, seeds and sizes.
"""

from __future__ import annotations

import time

from PIL import Image

from inference_server.families import QWEN, QWEN_EDIT


class FakeEngine:
    device = "cpu"

    def __init__(self, step_s: float = 0.0):
        self.step_s = step_s
        self.calls: list = []

    def model_infos(self) -> dict:
        return {"base": {"name": "base", "model_id": "fake", "family": QWEN, "device": "cpu", "dtype": "float32"},
                "edit": {"name": "edit", "model_id": "fake-edit", "family": QWEN_EDIT, "device": "cpu",
                         "dtype": "float32"}}

    def model_id(self, name: str) -> str:
        return "fake"

    def make_images(self, plan, on_step, fault=None, should_stop=lambda: False):
        self.calls.append(plan)
        steps = plan.call.get("num_inference_steps", 1)
        size = (plan.call["width"], plan.call["height"])
        images = []
        for index, seed in enumerate(plan.seeds):
            for step in range(steps):
                time.sleep(self.step_s)
                on_step(index * steps + step + 1, steps * len(plan.seeds))
            images.append(Image.new("RGB", size, (seed % 256, (seed // 256) % 256, 7)))
        return images

    def before_encoding(self, fault) -> None:
        pass
