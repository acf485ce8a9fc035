"""Benchmarks: latency, ours-vs-diffusers comparison, FLOPs and matmul peak, energy, and
random-weight real-architecture models to measure at real scale."""
