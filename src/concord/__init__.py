"""Concord: cooperative multi-agent reinforcement learning in the PyMARL layout."""
