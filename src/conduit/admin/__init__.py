"""The admin API of seed 001: configurations, projects, users, user keys, system backup/restore."""
