"""The task manager: tasks and subtasks in the master's SQLite, one service for
UI, REST API and CLI, and the background sync with the node pool."""
