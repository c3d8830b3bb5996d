"""Crash, kill and flood the real daemon, then audit what it left: `python -m tools.torture`."""
