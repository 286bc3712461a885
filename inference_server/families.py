"""What differs between model families: guidance argument, steps, size multiple, presets.

Pure data, no torch: the HTTP layer resolves sizes with it before a job is queued.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

ASPECT_RATIOS = ("1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3")


@dataclass(frozen=True)
class Family:
    name: str
    size_multiple: int
    default_steps: int
    default_guidance: float
    guidance_arg: str  # the pipeline keyword the user's `guidance` maps to
    half_dtype: str  # what TORCH_DTYPE=auto picks on CUDA
    true_cfg: bool  # Qwen's CFG is off unless a negative prompt is given
    presets: dict[str, tuple[int, int]] = field(default_factory=dict)
    unused_masked_latents: bool = False  # its inpaint pipeline VAE-encodes a masked image it never reads
    max_images: int = 0  # input images an instruction edit takes; 0: not an edit family

    def guidance_kwargs(self, guidance: float, negative_prompt: str) -> dict:
        """Map the user's one `guidance` number onto the family's pipeline arguments."""
        kwargs = {self.guidance_arg: guidance}
        if self.true_cfg:
            # Qwen-Image silently skips CFG without a negative prompt: pass a blank one.
            kwargs["negative_prompt"] = negative_prompt or " "
        elif negative_prompt and self.name != "flux":
            kwargs["negative_prompt"] = negative_prompt
        return kwargs


QWEN = Family(
    "qwen-image", 16, 50, 4.0, "true_cfg_scale", "bfloat16", True,
    {"1:1": (1328, 1328), "16:9": (1664, 928), "9:16": (928, 1664), "4:3": (1472, 1104),
     "3:4": (1104, 1472), "3:2": (1584, 1056), "2:3": (1056, 1584)},
    unused_masked_latents=True,
)
FLUX = Family(
    "flux", 16, 28, 3.5, "guidance_scale", "bfloat16", False,
    {"1:1": (1024, 1024), "16:9": (1344, 768), "9:16": (768, 1344), "4:3": (1152, 864),
     "3:4": (864, 1152), "3:2": (1216, 832), "2:3": (832, 1216)},
)
SDXL = Family(
    "sdxl", 8, 30, 6.0, "guidance_scale", "float16", False,
    {"1:1": (1024, 1024), "16:9": (1344, 768), "9:16": (768, 1344), "4:3": (1152, 896),
     "3:4": (896, 1152), "3:2": (1216, 832), "2:3": (832, 1216)},
)
EDIT_AREA = 1024 * 1024  # Qwen-Image-Edit's default output area, and the area Edit Plus VAE-encodes each input at


def edit_default_size(width: int, height: int, multiple: int = 16) -> tuple[int, int]:
    """The edit output size when none is asked for: the image's aspect ratio at about 1 MP.

    The pipelines' own `calculate_dimensions` (rounded to 32), then floored to the family's multiple as they do.
    Pass the first image's size: QwenImageEditPlusPipeline left alone sizes from the *last* image.
    """
    ratio = width / height
    out_w = round(math.sqrt(EDIT_AREA * ratio) / 32) * 32
    out_h = round(math.sqrt(EDIT_AREA * ratio) / ratio / 32) * 32
    return out_w // multiple * multiple, out_h // multiple * multiple


# Edit Plus (2509, 2511) takes one to three images; the original Edit checkpoint's pipeline, one (its model card:
# 50 steps). Presets at about 1 MP, as the pipelines size their default output.
QWEN_EDIT = dataclasses.replace(
    QWEN, name="qwen-image-edit", default_steps=40, unused_masked_latents=False, max_images=3,
    presets={ratio: edit_default_size(*map(int, ratio.split(":"))) for ratio in ASPECT_RATIOS})
QWEN_EDIT_SINGLE = dataclasses.replace(QWEN_EDIT, name="qwen-image-edit-single", default_steps=50, max_images=1)

# Exact pipeline classes (a checkpoint's model_index.json `_class_name`), never a name prefix: an edit
# checkpoint is not a text-to-image one, though both names start with "QwenImage".
_TEXT_TO_IMAGE = {"QwenImagePipeline": QWEN, "FluxPipeline": FLUX, "StableDiffusionXLPipeline": SDXL}
_EDIT = {"QwenImageEditPipeline": QWEN_EDIT_SINGLE, "QwenImageEditPlusPipeline": QWEN_EDIT}
KINDS = {"text2image": _TEXT_TO_IMAGE, "instruction": _EDIT}


def family_for(config: dict, kind: str = "text2image") -> Family:
    """The family of a checkpoint from its pipeline config, for the kind of model it is served as."""
    class_name = config.get("_class_name", "")
    if class_name in KINDS[kind]:
        return KINDS[kind][class_name]
    other = next((name for name, known in KINDS.items() if class_name in known), None)
    if other:
        raise ValueError(f"{class_name} is an {other} pipeline, not a {kind} one: "
                         + ("set it as EDIT_MODEL_ID instead of MODEL_ID" if other == "instruction" else "check the model id"))
    supported = ", ".join(KINDS[kind])
    raise ValueError(f"unsupported pipeline class {class_name or '(none)'}: supported {kind} pipelines are {supported}")


def family_for_pipeline(class_name: str) -> Family:
    return family_for({"_class_name": class_name})
