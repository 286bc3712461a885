"""The edit tool: the YAML declares it, tools.invoke does the work."""

from collections.abc import Generator

from dify_plugin import Tool
from dify_plugin.entities.tool import ToolInvokeMessage

from tools import invoke


class EditTool(Tool):
    def _invoke(self, tool_parameters: dict) -> Generator[ToolInvokeMessage, None, None]:
        yield from invoke.invoke(self, "edit", tool_parameters)
