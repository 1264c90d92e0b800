"""GAN building blocks: paired losses, annealing schedules for lambda_t, and the DAE score."""

from softq_ugan.gan.losses import (
    GAN_LOSSES,
    GANLoss,
    get_gan_loss,
    gradient_penalty,
    jsd_generator_loss,
    logistic_critic_loss,
    rkl_generator_loss,
    wgan_critic_loss,
    wgan_generator_loss,
)
from softq_ugan.gan.schedules import (
    LAMBDA_MIN,
    SCHEDULES,
    Schedule,
    exponential,
    linear,
    make_schedule,
    geometric,
    oscillatory,
    static,
)
from softq_ugan.gan.score import DAE, DAEScore, DAEScoreConfig, dae_loss, dae_score, score_surrogate

__all__ = [
    "GAN_LOSSES",
    "GANLoss",
    "get_gan_loss",
    "gradient_penalty",
    "jsd_generator_loss",
    "logistic_critic_loss",
    "rkl_generator_loss",
    "wgan_critic_loss",
    "wgan_generator_loss",
    "LAMBDA_MIN",
    "SCHEDULES",
    "Schedule",
    "exponential",
    "linear",
    "make_schedule",
    "geometric",
    "oscillatory",
    "static",
    "DAE",
    "DAEScore",
    "DAEScoreConfig",
    "dae_loss",
    "dae_score",
    "score_surrogate",
]
