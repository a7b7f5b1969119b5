"""``edge-se train-digits``: train an ``<attn>_digits`` zoo model on scikit-learn's digits (CPU)."""

from __future__ import annotations

import argparse
import json

NAME = "train-digits"
ORDER = 90
HELP = "train a small attention CNN on scikit-learn's digits (CPU, about a minute)"
DESCRIPTION = (
    "Train the zoo model ATTN_digits (ATTN: se, cbam, bam, sk, simam, eca) on the 1347 training\n"
    "digits (32x32 gray, seeded 75/25 split, random affine + noise augmentation) and save its\n"
    "state_dict to CKPT, with CKPT.json holding the recipe, the time and the accuracy on the\n"
    "450 test digits and on digits-hard (the test digits under 20 strong augmentations each).\n"
    "Use CKPT with 'edge-se export ATTN_digits --checkpoint CKPT'."
)
EXAMPLES = """  edge-se train-digits se --out ckpt/se_digits.pt
  edge-se train-digits cbam --out ckpt/cbam.pt --epochs 20 --seed 1"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from edge_se.data.train import ATTENTION_TYPES, TrainConfig

    p.add_argument("attn", choices=ATTENTION_TYPES, help="attention type of the <attn>_digits model")
    p.add_argument("--out", required=True, help="checkpoint file to write (state_dict, plus <out>.json)")
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs, help=f"epochs (default {TrainConfig.epochs})")
    p.add_argument("--seed", type=int, default=0, help="seed of init, shuffling and augmentation (default 0)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: faster than 2 for these small nets on a busy CPU)")


def run(args: argparse.Namespace) -> int:
    from edge_se.data.train import train_digits
    from edge_se.progress import stage

    with stage(f"training {args.attn}_digits for {args.epochs} epochs") as st:
        r = train_digits(args.attn, args.out, epochs=args.epochs, seed=args.seed, threads=args.threads)
        st["detail"] = f"test {r['accuracy']['test']:.2%}, digits-hard {r['accuracy']['digits_hard']:.2%}"
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        print(f"{args.out}: {r['model']} test accuracy {r['accuracy']['test']:.2%}, digits-hard "
              f"{r['accuracy']['digits_hard']:.2%}, trained in {r['train_seconds']:.0f} s on {r['threads']} threads")
    return 0
