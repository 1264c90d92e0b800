"""Splice two SoftQ checkpoints (one run's networks with parts of another's), or change a checkpoint's training
settings, to tell which part of a training state, or which setting, carries its outcome (e.g. a Swimmer run stuck on
the slow gait against one that leaves it).

    python benchmarks/splice_checkpoint.py runs/a/Swimmer-v4/ugan_24/checkpoints/ugan_100000_steps.zip \\
        runs/a/Swimmer-v4/ugan_25/checkpoints/ugan_100000_steps.zip --take q --out runs/splice/base24_q25
    python train_rl.py --env Swimmer-v4 --steps 150000 --seed 424 \\
        --resume runs/splice/base24_q25/checkpoints/spliced.zip --logdir runs/fork_base24_q25 --quiet

The output is BASE with the parts named by ``--take`` (and their optimizers' states) copied from DONOR:

- ``q``: the soft Q networks, their target copies and the critic optimizer;
- ``sampler``: the policy (the U-GAN's generator, critic D and bridge, or the MAF/SVGD sampler) and its optimizers,
  with the fitted proposal where there is one;
- ``temperature``: the learned log τ and its optimizer.

DONOR ``fresh`` takes the parts as a new run starts them, from BASE's settings (``--seed`` draws the weights): the
Q networks reinitialised (their target a copy of them) with an empty optimizer state, or τ at its initial value. It
applies to ``q`` and ``temperature`` only (the flows' initialisations are their own).

``--set KEY=VALUE`` changes a training setting of the output (with or without a DONOR), so that one state can be
forked under another setting (``train_rl.py --resume`` keeps a checkpoint's settings):

    python benchmarks/splice_checkpoint.py runs/a/Swimmer-v4/ugan_24/checkpoints/ugan_100000_steps.zip \\
        --set gamma=0.9999 --out runs/splice/base24_gamma9999

The keys: ``gamma``, ``polyak`` (the target critic's Polyak coefficient), ``critic_lr`` (the learning rate of the Q
networks and of a learned τ, SB3's ``learning_rate``; the sampler's optimizers keep theirs), ``gradient_steps``
(gradient steps per env step), ``reward_scale``, ``policy_delay``, ``sampler_steps`` (sampler and τ steps per sampler
update, the extra ones on fresh minibatches), ``sampler_lr`` (every sampler optimizer's learning rate: the U-GAN's
generator, critic D and bridge), ``target_entropy`` and ``critic_pessimism`` (c of the soft value's and Boltzmann
target's mean − c·std over critics; with two critics c = 1 is their minimum).

Everything else (step count, seed, settings, the fixed evaluation noise) is BASE's. ``--out`` names a folder laid
out like a train_rl.py run: ``checkpoints/spliced.zip``, BASE's replay buffer beside it
(``checkpoints/spliced_replay_buffer.pkl``; ``--buffer donor`` for DONOR's), and ``config.json``: BASE's run
settings with a ``spliced`` entry naming both checkpoints and the parts, which a fork resumed from it records.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from softq_ugan.cli import error_line, fail  # noqa: E402  (the standard library only)

PARTS = ("q", "sampler", "temperature")


def _positive(x: float) -> bool:
    return x > 0


def set_critic_lr(model, lr: float) -> None:
    """SB3's ``learning_rate`` (the Q networks' and a learned τ's) and the schedule ``train()`` reads from it (a
    constant, SB3's float schedule)."""
    model.learning_rate = lr
    model._setup_lr_schedule()


def set_sampler_lr(model, lr: float) -> None:
    """Every sampler optimizer's learning rate (they keep it in their state, which a load restores), and the
    sampler config's ``lr_*`` fields and ``policy_kwargs`` (which a load rebuilds the sampler from) to match."""
    for path in optimizers(model, "sampler"):
        for group in attr(model, path).param_groups:
            group["lr"] = lr
    config = model.policy.sampler_trainer.config
    fields = [f for f in vars(config) if f == "lr" or f.startswith("lr_")]
    for field in fields:
        setattr(config, field, lr)
    new = {field: lr for field in fields}
    model.policy_kwargs.setdefault("sampler_kwargs", {}).update(new)
    model.policy.sampler_kwargs.update(new)


# --set KEY: (the SoftQ attribute it sets, or a function (model, value) that sets it; its type, a check, what the
# check asks for)
SETTINGS = {
    "gamma": ("gamma", float, lambda x: 0 < x <= 1, "in (0, 1]"),
    "polyak": ("tau", float, lambda x: 0 < x <= 1, "in (0, 1]"),
    "critic_lr": (set_critic_lr, float, _positive, "> 0"),
    "gradient_steps": ("gradient_steps", int, _positive, ">= 1"),
    "reward_scale": ("reward_scale", float, _positive, "> 0"),
    "policy_delay": ("policy_delay", int, _positive, ">= 1"),
    "sampler_steps": ("sampler_steps", int, _positive, ">= 1"),
    "sampler_lr": (set_sampler_lr, float, _positive, "> 0"),
    "target_entropy": ("target_entropy", float, lambda x: x == x, "a number"),
    # the policy's: the soft value and the Boltzmann target read mean − c·std over critics (policies.py)
    "critic_pessimism": ("policy.critic_pessimism", float, lambda x: 0 <= x < float("inf"), ">= 0 (finite)"),
}


def parse_settings(items: list[str]) -> dict[str, float | int]:
    """``["gamma=0.9999", ...]`` → ``{"gamma": 0.9999, ...}``, each key in :data:`SETTINGS` and its value checked."""
    out: dict[str, float | int] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"--set takes KEY=VALUE, got '{item}'")
        if key not in SETTINGS:
            raise ValueError(f"unknown setting '{key}'; choose from: {', '.join(SETTINGS)}")
        _, kind, ok, wanted = SETTINGS[key]
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise ValueError(f"--set {key} must be {'an integer' if kind is int else 'a number'} {wanted}, got '{text}'")
        out[key] = value
    return out


def apply_settings(model, settings: dict[str, float | int]) -> None:
    """Set each of ``settings`` (from :func:`parse_settings`) on the SoftQ ``model`` in place."""
    for key, value in settings.items():
        target = SETTINGS[key][0]
        if callable(target):
            target(model, value)
            continue
        owner, _, name = target.rpartition(".")
        setattr(attr(model, owner) if owner else model, name, value)
        if owner == "policy":  # a loaded model rebuilds its policy from policy_kwargs
            model.policy_kwargs[name] = value


def optimizers(model, part: str) -> list[str]:
    """Attribute paths (from the model) of the optimizers that belong to ``part``."""
    if part == "q":
        return ["critic.optimizer"]
    if part == "temperature":
        return ["temperature_optimizer"] if model.temperature_optimizer is not None else []
    trainer = model.policy.sampler_trainer
    names = [f"policy.sampler_trainer.{n}" for n, v in vars(trainer).items()
             if n.endswith("optimizer") and hasattr(v, "state_dict")]
    return names + (["policy.fitted_flow_optimizer"] if model.policy.fitted_flow_optimizer is not None else [])


def modules(model, part: str) -> list[str]:
    if part == "q":
        return ["policy.critic", "policy.critic_target"]
    if part == "sampler":
        return ["policy.sampler"] + (["policy.fitted_flow"] if model.policy.fitted_flow is not None else [])
    return []


def attr(obj, path: str):
    for name in path.split("."):
        obj = getattr(obj, name)
    return obj


def reinitialise(model, parts, seed: int) -> None:
    """Start ``parts`` ("q", "temperature") of ``model`` afresh in place, as a new run with its settings would."""
    import math

    import torch

    if "sampler" in parts:
        raise ValueError("a fresh donor applies to q and temperature only")
    torch.manual_seed(seed)
    if "q" in parts:
        for layer in model.policy.critic.modules():
            if hasattr(layer, "reset_parameters"):
                layer.reset_parameters()  # in place, so optimizer views stay linked
        model.policy.critic_target.load_state_dict(model.policy.critic.state_dict())
        model.critic.optimizer.state.clear()
    if "temperature" in parts and model.log_temperature is not None:
        with torch.no_grad():
            model.log_temperature.fill_(math.log(model.initial_temperature))
        model.temperature_optimizer.state.clear()


def splice(base, donor, parts) -> None:
    """Copy ``parts`` of ``donor`` (a SoftQ) into ``base`` in place: weights, optimizer states, log τ."""
    import torch

    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise ValueError(f"unknown part '{unknown[0]}'; choose from: {', '.join(PARTS)}")
    if base.sampler != donor.sampler:
        raise ValueError(f"the checkpoints have different samplers ({base.sampler}, {donor.sampler})")
    for part in parts:
        for path in modules(base, part):
            mine, theirs = attr(base, path).state_dict(), attr(donor, path).state_dict()
            shapes = {k: tuple(v.shape) for k, v in mine.items()}
            if shapes != {k: tuple(v.shape) for k, v in theirs.items()}:
                raise ValueError(f"{path} differs in shape between the checkpoints (other settings?)")
            attr(base, path).load_state_dict(theirs)
        if part == "temperature":
            if (base.log_temperature is None) != (donor.log_temperature is None):
                raise ValueError("one checkpoint learns τ and the other does not")
            if base.log_temperature is not None:
                with torch.no_grad():
                    base.log_temperature.copy_(donor.log_temperature)
        for path in optimizers(base, part):
            attr(base, path).load_state_dict(attr(donor, path).state_dict())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("base", help="SoftQ checkpoint .zip whose state the output keeps")
    p.add_argument("donor", nargs="?", default=None,
                   help="SoftQ checkpoint .zip whose --take parts replace BASE's, or 'fresh'")
    p.add_argument("--take", nargs="+", default=[], metavar="PART", help=f"parts to take from DONOR: {', '.join(PARTS)}")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", dest="settings",
                   help=f"training settings to change: {', '.join(SETTINGS)}")
    p.add_argument("--out", required=True, help="output folder (a run folder: checkpoints/spliced.zip, config.json)")
    p.add_argument("--buffer", choices=("base", "donor", "none"), default="base",
                   help="whose saved replay buffer to copy beside the output (default base)")
    p.add_argument("--seed", type=int, default=0, help="with DONOR fresh: the seed of the new weights (default 0)")
    args = p.parse_args(argv)
    if (args.donor is None) != (not args.take):
        fail("a DONOR and --take go together (DONOR --take PART ...)")
    if args.donor is None and not args.settings:
        fail("nothing to change: give DONOR --take PART ..., or --set KEY=VALUE ...")
    if args.donor is None and args.buffer == "donor":
        fail("--buffer donor needs a DONOR")
    try:
        settings = parse_settings(args.settings)
    except ValueError as e:
        fail(str(e))
    for name in args.take:
        if name not in PARTS:
            fail(f"unknown part '{name}'; choose from: {', '.join(PARTS)}")
    fresh = args.donor == "fresh"
    if fresh and ("sampler" in args.take or args.buffer == "donor"):
        fail("a fresh donor applies to --take q and temperature only, and has no replay buffer")
    for path in (args.base,) if fresh or args.donor is None else (args.base, args.donor):
        if not Path(path).is_file():
            fail(f"checkpoint '{path}' does not exist")
    if Path(args.out).is_file():
        fail(f"--out names a folder to create, and {args.out} is a file")
    out = Path(args.out) / "checkpoints" / "spliced.zip"

    from agents.softq import SoftQ
    from train_rl import read_config, replay_buffer_candidates

    loaded = []
    for path in (args.base,) if args.donor is None else (args.base, args.base if fresh else args.donor):
        try:
            loaded.append(SoftQ.load(path, device="cpu"))
        except Exception as e:  # an SB3 SAC checkpoint, a truncated file
            fail(f"cannot load {path} as a SoftQ checkpoint: {error_line(e)}")
    base, donor = loaded[0], loaded[-1]
    try:
        if fresh:
            reinitialise(donor, args.take, args.seed)
        if args.take:
            splice(base, donor, args.take)
    except ValueError as e:
        fail(str(e))
    apply_settings(base, settings)
    out.parent.mkdir(parents=True, exist_ok=True)
    base.save(out)
    config = read_config(Path(args.base).resolve().parent.parent)  # <run>/checkpoints/x.zip -> <run>/config.json
    config.update(settings)  # the run's settings as the fork trains them
    config["spliced"] = dict(base=str(args.base), donor=args.donor, take=list(args.take), buffer=args.buffer,
                             **({"seed": args.seed} if fresh else {}), **({"set": settings} if settings else {}))
    (out.parent.parent / "config.json").write_text(json.dumps(config, indent=2))
    changes = [f"{', '.join(args.take)} from {args.donor}"] if args.take else []
    changes += [f"{k}={v}" for k, v in settings.items()]
    line = f"wrote {out}: {Path(args.base).name} with {'; '.join(changes)}"
    if args.buffer != "none":
        source = args.base if args.buffer == "base" else args.donor
        buffer = next((b for b in replay_buffer_candidates(Path(source)) if b.is_file()), None)
        if buffer is None:
            fail(f"no saved replay buffer beside {source} (give --buffer none, or another)")
        shutil.copyfile(buffer, out.with_name(f"{out.stem}_replay_buffer.pkl"))
        line += f"; replay buffer from {buffer}"
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
