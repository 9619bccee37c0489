"""The data plane: MCP relay, upstream pools, policy chain and request log."""
