"""Benchmarks (bench/README.md); a package so the test suite can import the trial logic it shares."""
