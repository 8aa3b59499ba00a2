"""What an application imports to enqueue jobs, read their status and results, cancel them and
handle dead letters (`Client`, `SyncClient`)."""
