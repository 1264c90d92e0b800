"""Normalizing flows: the conditional MAF bridge (NICE, RealNVP and one-way flows come with the flow-GAN issue)."""

from softq_ugan.flows.maf import ConditionalMAF, ConditionedMAF

__all__ = ["ConditionalMAF", "ConditionedMAF"]
