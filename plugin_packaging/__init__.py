"""Builds the plugin's .difypkg (the Go `dify plugin package` CLI cannot be installed here)."""
