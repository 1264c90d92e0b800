"""Soft Q-learning agents on stable-baselines3, with amortized sampler policies."""

from agents.policies import SAMPLERS, SoftQPolicy
from agents.softq import SoftQ

__all__ = ["SAMPLERS", "SoftQ", "SoftQPolicy"]
