"""Benchmarks, run on demand (never in the test suite). Each ``bench/bench_<area>.py`` has ``main(argv)``."""
