"""Plans, their limits, and exact usage counters."""
