"""Experiments as researchers run them: grids of runs (sweeps), executed locally or on Ray, and their reports."""
