"""What an operator reads: the HTTP endpoints, Prometheus metrics and structured logs."""
