"""The process: the command line, the service's start and stop, logs, signals, systemd."""
