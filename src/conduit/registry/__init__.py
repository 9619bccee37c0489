"""The public trust registry: seed 000's synchronous scan of a registered server, the registry
of servers their owners made public, search, and SVG badges."""
