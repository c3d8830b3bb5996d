"""What the harnesses (bench, torture, soak) share: they watch the daemon the same way."""
