"""Operations: the operator's commands, the HTTP probes, metrics and the status page."""
