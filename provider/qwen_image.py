"""Credential check: the server must answer as ours, accept the key and have its model loaded."""

from dify_plugin import ToolProvider
from dify_plugin.errors.tool import ToolProviderCredentialValidationError

from qwen_client import client, config, errors


class QwenImageProvider(ToolProvider):
    def _validate_credentials(self, credentials: dict) -> None:
        try:
            client.Client(config.from_credentials(credentials)).check()
        except errors.QwenImageError as exc:
            raise ToolProviderCredentialValidationError(str(exc)) from exc
