"""Build random-weight Qwen-Image pipelines offline, of the real classes.

No weights can be downloaded in CI, so the server's real loading path
(`from_pretrained`) is exercised on a pipeline we build and `save_pretrained`
ourselves: transformer, VAE, Qwen2.5-VL text encoder, a locally trained
byte-level BPE tokenizer and Qwen-Image's real scheduler config.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKLQwenImage,
    FlowMatchEulerDiscreteScheduler,
    QwenImagePipeline,
    QwenImageTransformer2DModel,
)
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2Tokenizer

# The template Qwen-Image wraps every prompt in; the pipeline drops its first 34 tokens.
PROMPT_TEMPLATE_PREFIX = (
    "<|im_start|>system\nDescribe the image by detailing the color, shape, size, texture, quantity, text, "
    "spatial relationships of the objects and background:<|im_end|>\n<|im_start|>user\n"
)
TEMPLATE_PREFIX_TOKENS = 34
# Qwen-Image-Edit's (Edit and Edit Plus) template prefix; those pipelines drop its first 64 tokens. The tokenizer
# is trained on it too, so one tokenizer serves the base and the edit model byte for byte (tiny_edit_model.py).
EDIT_PROMPT_TEMPLATE_PREFIX = (
    "<|im_start|>system\nDescribe the key features of the input image (color, shape, size, texture, objects, "
    "background), then explain how the user's text instruction should alter or modify the image. Generate a new image "
    "that meets the user's requirements while maintaining consistency with the original input where "
    "appropriate.<|im_end|>\n<|im_start|>user\n"
)
EDIT_TEMPLATE_PREFIX_TOKENS = 64

SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]
QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
TRAINING_TEXT = [
    PROMPT_TEMPLATE_PREFIX + "a red lantern<|im_end|>\n<|im_start|>assistant\n",
    EDIT_PROMPT_TEMPLATE_PREFIX + "Picture 1: <|vision_start|><|image_pad|><|vision_end|>make it red<|im_end|>\n"
    "<|im_start|>assistant\n",
    "A poster of a coffee cup on a wooden table, soft morning light, product photo.",
    "海报：一杯咖啡放在木桌上，柔和的晨光，产品摄影。",
    "A cat wearing sunglasses, 一只戴着墨镜的猫, studio lighting, 4k.",
    "Sale! 限时优惠 50% off, bold typography, red and gold colours.",
]

# Qwen-Image's real scheduler config (the hub's scheduler/scheduler_config.json).
QWEN_SCHEDULER_CONFIG = dict(
    base_image_seq_len=256, base_shift=0.5, invert_sigmas=False, max_image_seq_len=8192, max_shift=0.9,
    num_train_timesteps=1000, shift=1.0, shift_terminal=0.02, stochastic_sampling=False,
    time_shift_type="exponential", use_beta_sigmas=False, use_dynamic_shifting=True,
    use_exponential_sigmas=False, use_karras_sigmas=False,
)


@dataclass(frozen=True)
class ModelSize:
    """The few dimensions that separate the tiny test model from the mid-size bench model."""

    num_layers: int
    head_dim: int
    num_heads: int
    text_hidden: int
    text_layers: int
    text_heads: int
    vae_base_dim: int
    rope_axes: tuple[int, int, int]
    mrope_section: tuple[int, int, int]


TINY = ModelSize(2, 32, 2, 32, 2, 2, 16, (8, 12, 12), (2, 3, 3))
MID = ModelSize(6, 64, 4, 256, 2, 4, 32, (16, 24, 24), (8, 12, 12))


def build_tokenizer() -> Qwen2Tokenizer:
    """A byte-level BPE with Qwen2's pre-tokenizer, trained on a few bilingual lines."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1000, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Repeat the template so every one of its words becomes a single token, as in the real vocabulary.
    tok.train_from_iterator(TRAINING_TEXT * 8, trainer=trainer)
    vocab = tok.get_vocab()
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in json.loads(tok.to_str())["model"]["merges"]]
    tokenizer = Qwen2Tokenizer(
        vocab=vocab, merges=merges, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        unk_token=None, model_max_length=1024, additional_special_tokens=SPECIAL_TOKENS[1:],
    )
    for template, dropped in ((PROMPT_TEMPLATE_PREFIX, TEMPLATE_PREFIX_TOKENS),
                              (EDIT_PROMPT_TEMPLATE_PREFIX, EDIT_TEMPLATE_PREFIX_TOKENS)):
        prefix = tokenizer(template)["input_ids"]
        if len(prefix) != dropped:
            raise RuntimeError(f"template prefix is {len(prefix)} tokens, the pipeline drops {dropped}")
    return tokenizer


def build_pipeline(size: ModelSize = TINY, seed: int = 0) -> QwenImagePipeline:
    """A random-weight QwenImagePipeline of the given size, in float32 on the CPU."""
    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    transformer = QwenImageTransformer2DModel(
        patch_size=2, in_channels=64, out_channels=16, num_layers=size.num_layers,
        attention_head_dim=size.head_dim, num_attention_heads=size.num_heads,
        joint_attention_dim=size.text_hidden, axes_dims_rope=size.rope_axes,
    )
    vae = AutoencoderKLQwenImage(
        base_dim=size.vae_base_dim, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )
    ids = tokenizer.convert_tokens_to_ids
    text_config = dict(
        hidden_size=size.text_hidden, intermediate_size=size.text_hidden * 2, num_hidden_layers=size.text_layers,
        num_attention_heads=size.text_heads, num_key_value_heads=2, vocab_size=len(tokenizer),
        rope_scaling={"mrope_section": list(size.mrope_section), "rope_type": "default"},
        max_position_embeddings=2048, bos_token_id=ids("<|endoftext|>"), eos_token_id=ids("<|im_end|>"),
        pad_token_id=ids("<|endoftext|>"),
    )
    config = Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2, out_hidden_size=size.text_hidden,
                           fullatt_block_indexes=[0]),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
        bos_token_id=ids("<|endoftext|>"), eos_token_id=ids("<|im_end|>"), pad_token_id=ids("<|endoftext|>"),
    )
    text_encoder = Qwen2_5_VLForConditionalGeneration(config).eval()
    scheduler = FlowMatchEulerDiscreteScheduler(**QWEN_SCHEDULER_CONFIG)
    return QwenImagePipeline(
        transformer=transformer, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
    )


def save_tiny_model(directory: str | Path, size: ModelSize = TINY) -> Path:
    """Build and `save_pretrained` a random Qwen-Image pipeline; returns the folder."""
    directory = Path(directory)
    build_pipeline(size).save_pretrained(directory)
    return directory
