"""NSFW policy: detectors (checkers), what to do with a flagged image (policy), and a prompt blocklist.

Self-contained and light to import: no flask, and torch/transformers or NudeNet are imported only when
the checker that needs them is loaded. See docs/safety.md.
"""
