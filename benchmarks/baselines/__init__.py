"""Bare servers that do what lrukv-server does with none of its machinery: the baselines
of benchmarks/bench_server.py."""
