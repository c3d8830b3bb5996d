"""An hour of steady drops into a real daemon, its memory and descriptors sampled.

Run as `python -m soak` (`make soak`); see `soak/__main__.py`.
"""
