"""Proving tools: the benchmark, soak, torture, the harness they share, the demo."""
