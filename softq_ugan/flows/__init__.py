"""Normalizing flows: the conditional MAF bridge, NICE and RealNVP coupling flows (Flow-GAN), and the
one-way flow generator (OW), and the diagonal Gaussian (SAC's policy family)."""

from softq_ugan.flows.couplings import FLOWS, NICE, CouplingFlow, RealNVP, make_flow
from softq_ugan.flows.gaussian import ConditionalGaussian
from softq_ugan.flows.maf import ConditionalMAF, ConditionedMAF, ShiftedFlow
from softq_ugan.flows.oneway import OneWayGenerator, exact_logabsdet, jvp_logabsdet, log_partition

__all__ = [
    "ConditionalMAF",
    "ConditionalGaussian",
    "ConditionedMAF",
    "ShiftedFlow",
    "CouplingFlow",
    "NICE",
    "RealNVP",
    "FLOWS",
    "make_flow",
    "OneWayGenerator",
    "exact_logabsdet",
    "jvp_logabsdet",
    "log_partition",
]
