"""recollect-mcp: an MCP server exposing one Recollect tenant's chat memory to agents."""

__version__ = "0.1.0"
