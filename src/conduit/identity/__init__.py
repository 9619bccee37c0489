"""Accounts, sessions, 2FA, password flows, API tokens and the audit log."""
