"""Produces deterministic daily transaction files; never imports the daemon."""
