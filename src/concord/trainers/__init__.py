"""Trainers: the schedule of a run (what is collected when, and when the learner sees it)."""
