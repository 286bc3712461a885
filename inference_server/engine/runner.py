"""The model layer: run a planned pipeline call, one seeded generator per image."""

from __future__ import annotations

from typing import Callable

import torch
from PIL import Image

from inference_server.engine.loader import LoadedModel
from inference_server.errors import JobFailure

StepCallback = Callable[[int, int], None]  # (steps done, steps in all); may raise JobFailure to stop


class Engine:
    def __init__(self, model: LoadedModel):
        self.model = model
        self.family = model.family

    def describe(self) -> dict:
        return {"model": self.model.model_name, "family": self.family.name, "device": self.model.device,
                "dtype": str(self.model.dtype).removeprefix("torch.")}

    def run(self, pipeline: str, call: dict, seeds: list[int], on_step: StepCallback,
            inject_oom: bool = False) -> list[Image.Image]:
        """One pipeline call per image, so image i of a batch equals seed+i run alone, bit for bit."""
        pipe = self.model.pipelines[pipeline]
        if pipeline == "inpainting" and self.family.unused_masked_latents:
            call = {**call, "masked_image_latents": self._placeholder_latents(pipe, call)}
        images: list[Image.Image] = []
        per_image = call["num_inference_steps"]
        for index, seed in enumerate(seeds):
            done_before = index * per_image

            def step_end(pipe_, step, _timestep, tensors, done_before=done_before):
                nonlocal per_image
                per_image = pipe_.num_timesteps
                if inject_oom:
                    raise torch.OutOfMemoryError("CUDA out of memory (injected by the test hook)")
                on_step(done_before + step + 1, per_image * len(seeds))
                return {}

            # A CPU generator gives the same noise on every device.
            generator = torch.Generator("cpu").manual_seed(seed)
            try:
                with torch.inference_mode():
                    result = pipe(**call, generator=generator, callback_on_step_end=step_end, output_type="pil")
            except torch.OutOfMemoryError as exc:
                del exc
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                raise JobFailure("oom", "the GPU ran out of memory: try a smaller size, fewer images, "
                                        "or ENABLE_CPU_OFFLOAD/VAE_TILING") from None
            images.append(result.images[0])
        return images


    @staticmethod
    def _placeholder_latents(pipe, call: dict) -> torch.Tensor:
        """Stands in for the masked image Qwen's inpaint pipeline would VAE-encode and never read: one encode saved.

        That encode runs after the noise is drawn, so skipping it changes no pixel (a test compares).
        """
        scale = pipe.vae_scale_factor
        shape = (1, pipe.latent_channels, 1, call["height"] // scale, call["width"] // scale)
        return torch.zeros(shape, dtype=pipe.vae.dtype, device=pipe._execution_device)


def load_engine(settings) -> Engine:
    from inference_server.engine import loader

    return Engine(loader.load(settings))
