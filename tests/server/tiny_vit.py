"""A tiny random ViT image classifier with labels `normal` and `nsfw`, built offline (112 KB)."""

from __future__ import annotations

from pathlib import Path


def save_tiny_vit(folder: Path, model_size: int = 32, processor_size: int = 32) -> Path:
    """A `model_size` unlike `processor_size` loads fine and fails on every image: a checker that crashes."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    config = ViTConfig(image_size=model_size, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64, num_labels=2, id2label={0: "normal", 1: "nsfw"},
                       label2id={"normal": 0, "nsfw": 1})
    ViTForImageClassification(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": processor_size, "width": processor_size}).save_pretrained(folder)
    return folder
