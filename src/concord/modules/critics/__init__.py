"""Critic networks of the actor-critic learners."""
