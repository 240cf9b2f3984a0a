"""Worker: the worker process: scheduler, tick runner, heartbeat, single-worker lock, housekeeping (P2, C3)."""
