"""`make bench`: measures the daemon's per-file path and the running daemon (see __main__)."""
