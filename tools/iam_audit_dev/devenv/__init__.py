"""Embedded services for the demo, the tests and the benchmarks (not used by `make run`)."""
