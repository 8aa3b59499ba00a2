"""The embedded local stack: a real Redis-compatible server and worker processes for the demo,
the load test, benchmarks and tests."""
