"""``iteratr mcp``: the session tools as typed MCP tools, served over stdio to the agent.

``tools`` holds the table (names, descriptions, JSON schemas with their enums, and the check of a call's
arguments against them); ``server`` is the glue to the official MCP SDK. Both paths, ``iteratr tool`` and
``iteratr mcp``, run the same operations (``iteratr.toolcli.execute`` over ``iteratr.session.ops``).
"""
