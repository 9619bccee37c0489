"""Conduit: a self-hosted trust gateway for AI-agent integrations."""

__version__ = "0.1.0"
