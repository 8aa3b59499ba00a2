"""The at-least-once core: the job envelope, Redis keys and Lua scripts, claiming, leases,
running, acknowledging, reaping, retries, delays, rate limits and periodic workflows."""
