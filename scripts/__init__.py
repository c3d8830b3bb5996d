"""Scripts run by make targets (demo, soak); a package so the tests can import them."""
