"""The `conduit` command line: one module per command group."""
