"""Domain logic: plain Python, no Flask."""
