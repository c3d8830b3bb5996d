"""Consumes dropped files: cli -> watcher (when) -> pipeline (what) -> store/checks/files."""
