"""The trust scanner: what an MCP server or a set of uploaded files exposes (inventory), the
checks run over it, the findings, and the 0-100 score and A-F grade. The engine is offline: it
talks to the target and to nothing else, unless an LLM judge is configured."""
