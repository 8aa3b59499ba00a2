"""The fault harness: a fault model injected into real worker processes and a real Redis, and a
checker that reads every job's history (`just faults`; docs/guarantees.md lists the faults)."""
