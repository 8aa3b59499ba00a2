"""The Grafana dashboard (generated with grafana-foundation-sdk) and the Prometheus rules."""
