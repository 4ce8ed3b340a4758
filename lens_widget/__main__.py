"""Command line: `python -m lens_widget train --model M --texts FILE --out DIR` trains a tuned lens.

For users who have a model and some text but would rather not write a training script: the folder
written loads with `TunedLens.load` here and in tuned-lens. Exit status 0 on success, 1 when loading
or training fails (the message says why), 2 on bad usage, 130 when interrupted. Under
`torchrun --nproc-per-node=N -m lens_widget train ...` the processes train one lens together
(distributed.py).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

TEXTS_HELP = (
    "a UTF-8 text file of training text; documents are separated by blank lines (a line holding only "
    "whitespace counts as blank), so one document may span several lines; a file without blank lines "
    "is one document. Documents are tokenized, ended with EOS and packed into sequences of --max-length"
)


def read_documents(path: Path) -> list[str]:
    """The non-empty documents of a texts file: blocks of lines between blank lines.

    Raises ValueError naming the first byte that is not UTF-8, which is all a user needs to find it."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path} is not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start} cannot be decoded; "
            "convert it first, e.g. iconv -f latin1 -t utf-8"
        ) from None
    return [doc.strip("\n") for doc in re.split(r"\n(?:[ \t\r\f\v]*\n)+", text.replace("\r\n", "\n")) if doc.strip()]


def build_parser() -> argparse.ArgumentParser:
    from .training import (
        DEFAULT_CHECKPOINT_EVERY,
        DEFAULT_MAX_LENGTH,
        DEFAULT_STEPS,
        DEFAULT_TOKENS_PER_STEP,
    )

    parser = argparse.ArgumentParser(prog="python -m lens_widget", description="lens-widget command line tools.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = commands.add_parser(
        "train",
        help="train a tuned lens for a causal LM and save it as a tuned-lens folder",
        description=(
            "Train a tuned lens (tuned-lens's recipe: SGD with Nesterov momentum, linear decay, gradient "
            "clipping; loss KL(model output || lens)) and save it to --out."
        ),
    )
    train.add_argument("--model", required=True, help="a local model folder or a Hugging Face Hub id")
    train.add_argument("--texts", required=True, type=Path, help=TEXTS_HELP)
    train.add_argument("--out", required=True, type=Path, help="folder to write config.json and params.pt to")
    train.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"optimizer steps (default {DEFAULT_STEPS})")
    train.add_argument(
        "--tokens-per-step",
        type=int,
        default=DEFAULT_TOKENS_PER_STEP,
        help=f"tokens per optimizer step (default {DEFAULT_TOKENS_PER_STEP}; tuned-lens uses 262144 on GPUs)",
    )
    train.add_argument("--lr", type=float, default=1.0, help="effective learning rate, tuned-lens's lr_scale (1.0)")
    train.add_argument("--seed", type=int, default=0, help="seed of the data order (default 0)")
    train.add_argument(
        "--max-length",
        type=int,
        default=DEFAULT_MAX_LENGTH,
        help=f"tokens per packed sequence (default {DEFAULT_MAX_LENGTH})",
    )
    train.add_argument(
        "--checkpoint", type=Path, help="folder for checkpoints; rerunning the same command resumes from it"
    )
    train.add_argument(
        "--checkpoint-every",
        type=int,
        default=DEFAULT_CHECKPOINT_EVERY,
        help=f"steps between checkpoints (default {DEFAULT_CHECKPOINT_EVERY})",
    )
    train.add_argument(
        "--device",
        help="torch device to train on, e.g. cpu, cuda, cuda:1, mps (default: cpu); under torchrun, cuda means "
        "each process's GPU of its local rank",
    )
    train.add_argument(
        "--device-map",
        help="place the model with accelerate, e.g. auto (from_pretrained's device_map; the model may then be "
        "sharded over GPUs or offloaded, and the lens trains where its head is); not with --device",
    )
    train.add_argument(
        "--dtype",
        choices=("float32", "bfloat16", "float16", "auto"),
        default="float32",
        help="dtype to load the model in (default float32; auto: the checkpoint's own)",
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def train_command(args: argparse.Namespace) -> int:
    if not args.texts.is_file():
        print(f"error: --texts {args.texts} is not a file", file=sys.stderr)
        return 1
    try:
        documents = read_documents(args.texts)
    except (OSError, ValueError) as exc:
        print(f"error: --texts {exc}" if isinstance(exc, ValueError) else f"error: --texts: {exc}", file=sys.stderr)
        return 1
    if not documents:
        print(f"error: --texts {args.texts} holds no text", file=sys.stderr)
        return 1

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .distributed import close, init_from_environment, world
    from .errors import LensWidgetError
    from .training import check_writable_folder, train_lens

    try:  # before the model loads: the paths are first written after the last step
        for what, folder in (("out", args.out), ("checkpoint", args.checkpoint)):
            if folder is not None and os.environ.get("RANK", "0") == "0":  # only rank 0 writes
                check_writable_folder(folder, what)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.device is not None and args.device_map is not None:
        print("error: give --device or --device-map, not both", file=sys.stderr)
        return 2
    if args.device_map is not None and int(os.environ.get("LOCAL_WORLD_SIZE", "1")) > 1:
        print(
            "error: --device-map places one model over this machine's GPUs, but torchrun started several processes "
            "here, each of which would: use --device cuda (one GPU per process), or one process per machine",
            file=sys.stderr,
        )
        return 2
    dtype = "auto" if args.dtype == "auto" else getattr(torch, args.dtype)
    rank = 0
    try:
        device = init_from_environment(args.device)
        rank = world()[0]
        tokenizer = AutoTokenizer.from_pretrained(args.model)
        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype, device_map=args.device_map)
        if device is not None:
            model.to(device)
    except Exception as exc:  # missing folder, unknown id, offline Hub, bad device: all end the same way
        why = f"{type(exc).__name__}: {exc}"
        print(f"error: could not load the model or tokenizer {args.model!r}: {why}", file=sys.stderr)
        return 1
    try:
        train_lens(
            model,
            documents,
            tokenizer=tokenizer,
            steps=args.steps,
            tokens_per_step=args.tokens_per_step,
            lr=args.lr,
            seed=args.seed,
            max_length=args.max_length,
            out=args.out,
            checkpoint=args.checkpoint,
            checkpoint_every=args.checkpoint_every,
            progress=not args.no_progress,
            device=device,
        )
    except (ValueError, LensWidgetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the disk filled, or a folder was taken away during training
        print(f"error: could not write the lens or checkpoint: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        again = " (rerun the same command to resume from the last checkpoint)" if args.checkpoint else ""
        print(f"interrupted{again}", file=sys.stderr)
        return 130
    finally:
        close()
    if rank == 0:
        print(f"saved the tuned lens to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "train":
        return train_command(args)
    raise AssertionError(f"unknown command {args.command!r}")  # argparse refuses unknown commands first


if __name__ == "__main__":
    sys.exit(main())
