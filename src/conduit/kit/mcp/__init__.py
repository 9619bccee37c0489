"""MCP plumbing shared by the gateway, discovery and the scanner: JSON-RPC, upstream connections."""
