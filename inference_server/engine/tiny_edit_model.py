"""Build a random-weight Qwen-Image-Edit (Plus) pipeline offline, of the real classes.

Same reason as tiny_model.py: CI cannot download weights, so `EDIT_MODEL_ID=tiny` exercises the server's real
`from_pretrained` path on a pipeline built and saved here. It is the tiny base model's text encoder, VAE and
tokenizer (the same builder and seed, so the saved files are byte-identical to the base model's: that is what
lets the component-sharing code be tested), a second transformer of the same architecture with its own random
weights, and a Qwen2-VL processor (image processor, the same tokenizer, Qwen2-VL's chat template) whose images
really run through the text encoder's vision tower.

Only the transformer differs, as between Qwen/Qwen-Image and Qwen/Qwen-Image-Edit-2509, whose text encoder,
VAE and tokenizer are the same Qwen2.5-VL-7B and Wan-2.1 VAE.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import QwenImageEditPlusPipeline, QwenImagePipeline, QwenImageTransformer2DModel
from transformers import Qwen2Tokenizer, Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

from inference_server.engine.tiny_model import (
    EDIT_PROMPT_TEMPLATE_PREFIX,
    EDIT_TEMPLATE_PREFIX_TOKENS,
    TINY,
    ModelSize,
    build_pipeline,
)

EDIT_TRANSFORMER_SEED = 1  # the base model's transformer comes from seed 0: the two must differ
# Qwen2-VL's chat template (what the real checkpoints' processor carries). The pipelines format their own
# prompts and never call it; it is here so the processor is the real thing for any other caller.
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_processor(tokenizer: Qwen2Tokenizer) -> Qwen2VLProcessor:
    """Qwen2-VL's image processor at its defaults (14 px patches, 2x2 merge), as the real checkpoints use.

    transformers 5 builds this processor only with torchvision installed (its video processor needs it).
    """
    return Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(), tokenizer=tokenizer,
                            video_processor=Qwen2VLVideoProcessor(), chat_template=QWEN2_VL_CHAT_TEMPLATE)


def edit_pipeline_from(base: QwenImagePipeline, seed: int = EDIT_TRANSFORMER_SEED) -> QwenImageEditPlusPipeline:
    """An edit pipeline holding `base`'s very text encoder, VAE, tokenizer and scheduler config, and a new
    random transformer of the same architecture."""
    torch.manual_seed(seed)
    transformer = QwenImageTransformer2DModel.from_config(base.transformer.config)
    scheduler = type(base.scheduler).from_config(base.scheduler.config)
    pipe = QwenImageEditPlusPipeline(
        scheduler=scheduler, vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer,
        processor=build_processor(base.tokenizer), transformer=transformer,
    )
    check_template(pipe)
    return pipe


def check_template(pipe) -> None:
    """The pipeline drops `prompt_template_encode_start_idx` tokens: the tokenizer must give exactly that many
    for the template's prefix, or prompt tokens are silently dropped (fewer) or template tokens leak in (more)."""
    template = pipe.prompt_template_encode
    if not template.startswith(EDIT_PROMPT_TEMPLATE_PREFIX):
        raise RuntimeError("diffusers changed the Qwen-Image-Edit prompt template: update EDIT_PROMPT_TEMPLATE_PREFIX")
    count = len(pipe.tokenizer(EDIT_PROMPT_TEMPLATE_PREFIX)["input_ids"])
    if count != pipe.prompt_template_encode_start_idx or count != EDIT_TEMPLATE_PREFIX_TOKENS:
        raise RuntimeError(f"edit template prefix is {count} tokens, the pipeline drops "
                           f"{pipe.prompt_template_encode_start_idx}")


def build_edit_pipeline(size: ModelSize = TINY, seed: int = 0) -> QwenImageEditPlusPipeline:
    """The tiny base model of `seed` (built exactly as save_tiny_model builds it) turned into an edit pipeline."""
    return edit_pipeline_from(build_pipeline(size, seed))


def save_tiny_edit_model(directory: str | Path, size: ModelSize = TINY) -> Path:
    """Build and `save_pretrained` a random Qwen-Image-Edit-Plus pipeline; `DiffusionPipeline.from_pretrained`
    loads it back. Its text_encoder/, vae/ and tokenizer/ folders equal save_tiny_model's of the same size."""
    directory = Path(directory)
    build_edit_pipeline(size).save_pretrained(directory)
    return directory
