"""The worker agent: registers with a node pool, leases subtasks, runs them
in a sandboxed child process, returns results."""
