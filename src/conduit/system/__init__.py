"""Endpoints about the service itself: ping, health."""
