"""The catalogsync benchmark suite (``python -m benchmarks``)."""
