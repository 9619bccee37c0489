"""Shared mechanisms with no business rules; imports no domain package."""
