"""Load testing for workflow-worker: the `just load-test-*` control commands and the locust suite.

`ctl` (start/status/stop) drives a local stack or a Kubernetes Deployment in benchmark mode;
`run_locust` runs the locust scenario in `locustfile.py` against a local stack. Importing this
package has no side effects and never imports locust (only the locustfile's modules do).
"""
