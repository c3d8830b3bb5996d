"""Detection: when a file is taken, and the one worker that takes it."""
