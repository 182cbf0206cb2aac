"""Server-tool and newer blocks an engine may not use but a client may replay, let through."""

from __future__ import annotations

import msgspec

_PASS_THROUGH_TAGS = (
    "search_result",
    "server_tool_use",
    "web_search_tool_result",
    "web_fetch_tool_result",
    "code_execution_tool_result",
    "bash_code_execution_tool_result",
    "text_editor_code_execution_tool_result",
    "tool_search_tool_result",
    "container_upload",
    "mcp_tool_use",
    "mcp_tool_result",
    "compaction",
)
PASS_THROUGH_BLOCKS = tuple(
    msgspec.defstruct(
        f"PassThrough_{tag}", [], tag=tag, tag_field="type", forbid_unknown_fields=False
    )
    for tag in _PASS_THROUGH_TAGS
)
