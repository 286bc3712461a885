"""Client for the self-hosted Qwen-Image inference server: all plugin HTTP lives here."""
