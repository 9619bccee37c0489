"""The MCP server registry: upstream servers, their tools and overrides, health."""
