"""Plugin entrypoint: Dify's daemon runs `python -m main` and speaks JSON lines on stdio."""

import logging

from dify_plugin import DifyPluginEnv, Plugin
from dify_plugin.config.logger_format import plugin_logger_handler

# stdout is the protocol channel: logs go out only as the SDK's JSON log events.
_logger = logging.getLogger("qwen_client")
_logger.setLevel(logging.INFO)
_logger.addHandler(plugin_logger_handler)

# Only used by remote debugging, where a connection must outlive a long generation.
plugin = Plugin(DifyPluginEnv(MAX_REQUEST_TIMEOUT=600))

if __name__ == "__main__":
    plugin.run()
