"""An hour of steady drops into a real daemon, its memory and descriptors sampled.

Run as `python -m tools.soak` (`make soak`); see `tools/soak/__main__.py`.
"""
