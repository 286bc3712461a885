"""Build a random-weight SDXL pipeline offline, of the real classes.

The hub is unreachable in CI, so the SDXL family is exercised through the same
`from_pretrained` path as a real checkpoint on a pipeline we `save_pretrained`
ourselves. Sizes follow diffusers' own SDXL fast tests (`get_dummy_components`);
the CLIP tokenizers come from a byte-level BPE trained here instead of the hub's
`hf-internal-testing/tiny-random-clip`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
TRAINING_TEXT = [
    "A painting of a squirrel eating a burger",
    "a photo of an astronaut riding a horse on the moon, highly detailed, 4k",
    "a red lantern hanging over a rainy street at night, cinematic lighting",
    "product photo of a coffee cup on a wooden table, soft morning light",
]


def build_tokenizer() -> CLIPTokenizer:
    """A CLIP tokenizer (end-of-word `</w>` BPE over bytes) trained on a few prompts."""
    # CLIPTokenizer installs its own normalizer and pre-tokenizer; train with the matching BPE model.
    bpe = Tokenizer(models.BPE(end_of_word_suffix="</w>", continuing_subword_prefix=""))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=1000, special_tokens=[BOS, EOS], end_of_word_suffix="</w>",
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    bpe.train_from_iterator([line.lower() for line in TRAINING_TEXT], trainer=trainer)
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m)
              for m in json.loads(bpe.to_str())["model"]["merges"]]
    return CLIPTokenizer(vocab=bpe.get_vocab(), merges=merges, model_max_length=77)


def build_pipeline(seed: int = 0) -> StableDiffusionXLPipeline:
    """A random-weight StableDiffusionXLPipeline in float32 on the CPU."""
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(2, 4), layers_per_block=2, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=6 * 8 + 32,  # six size/crop ids + the pooled text_encoder_2 output
        cross_attention_dim=64,  # both encoders' hidden states, concatenated
        norm_num_groups=1,
    )
    vae = AutoencoderKL(
        block_out_channels=[32, 64], in_channels=3, out_channels=3, latent_channels=4, sample_size=128,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
    )
    tokenizer = build_tokenizer()
    ids = tokenizer.convert_tokens_to_ids
    text_config = CLIPTextConfig(
        bos_token_id=ids(BOS), eos_token_id=ids(EOS), pad_token_id=ids(EOS), vocab_size=len(tokenizer),
        hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=5, layer_norm_eps=1e-5,
        hidden_act="gelu", projection_dim=32,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1, timestep_spacing="leading",
    )
    return StableDiffusionXLPipeline(
        vae=vae, unet=unet, scheduler=scheduler,
        text_encoder=CLIPTextModel(text_config).eval(), tokenizer=tokenizer,
        text_encoder_2=CLIPTextModelWithProjection(text_config).eval(), tokenizer_2=build_tokenizer(),
    )


def save_tiny_sdxl(directory: str | Path) -> Path:
    """Build and `save_pretrained` a random SDXL pipeline; returns the folder."""
    directory = Path(directory)
    build_pipeline().save_pretrained(directory)
    return directory
