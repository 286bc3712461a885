"""The model layer: the served models by name, and one planned pipeline call, one seeded generator per image."""

from __future__ import annotations

from typing import Callable

import torch
from PIL import Image

from inference_server.engine.edit_runner import reference_area
from inference_server.engine.loader import LoadedModel
from inference_server.model_names import BASE
from inference_server.errors import JobFailure

StepCallback = Callable[[int, int], None]  # (steps done, steps in all); may raise JobFailure to stop


class Engine:
    """The served models by name (`base`, and `edit` where one is configured), on one device."""

    def __init__(self, models: dict[str, LoadedModel] | LoadedModel):
        self.models = models if isinstance(models, dict) else {BASE: models}
        self.model = self.models[BASE]
        self.family = self.model.family
        self.device = self.model.device
        self.last_swap_s = 0.0  # what the last call waited for its transformer to be moved in

    def model_infos(self) -> dict[str, dict]:
        """What the HTTP side needs to plan for each model (`executors.events.ModelInfo` fields)."""
        return {name: {"name": name, "model_id": loaded.model_name, "family": loaded.family,
                       "device": loaded.device, "dtype": str(loaded.dtype).removeprefix("torch.")}
                for name, loaded in self.models.items()}

    def model_id(self, name: str) -> str:
        return self.models[name].model_name

    def make_images(self, plan, on_step: StepCallback, fault: str | None = None,
                    should_stop: Callable[[], bool] = lambda: False) -> list[Image.Image]:
        """Run a plan. `fault` and `should_stop` are for the test wrapper (`faults.py`); this engine ignores them."""
        return self.call_pipeline(plan.pipeline, plan.call, plan.seeds, on_step, plan.model)

    def before_encoding(self, fault: str | None) -> None:
        """A hook for the test wrapper; nothing to do here."""

    def swaps(self) -> bool:
        """Whether the transformers take turns on the device (EDIT_PLACEMENT=swap): jobs then report swap_s."""
        return any(getattr(m.placement, "mode", "") == "swap" for m in self.models.values())

    def call_pipeline(self, pipeline: str, call: dict, seeds: list[int], on_step: StepCallback,
                      model: str = BASE) -> list[Image.Image]:
        """One pipeline call per image, so image i of a batch equals seed+i run alone, bit for bit."""
        loaded = self.models[model]
        self.last_swap_s = loaded.placement.activate(model) if loaded.placement is not None else 0.0
        pipe = loaded.pipelines[pipeline]
        if pipeline == "inpainting" and loaded.family.unused_masked_latents:
            call = {**call, "masked_image_latents": self._placeholder_latents(pipe, call)}
        images: list[Image.Image] = []
        per_image = call["num_inference_steps"]
        for index, seed in enumerate(seeds):
            done_before = index * per_image

            def step_end(pipe_, step, _timestep, tensors, done_before=done_before):
                nonlocal per_image
                per_image = pipe_.num_timesteps
                on_step(done_before + step + 1, per_image * len(seeds))
                return {}

            # A CPU generator gives the same noise on every device.
            generator = torch.Generator("cpu").manual_seed(seed)
            try:
                with torch.inference_mode(), reference_area(loaded.input_area):
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
    """What the executor calls in the engine's process; INJECT_FAULTS=1 wraps it for the tests' fault hooks."""
    from inference_server.engine.faults import FaultyEngine
    from inference_server.engine.models import load_models

    engine = Engine(load_models(settings))
    return FaultyEngine(engine) if settings.inject_faults else engine
