"""Classify image files with a trained checkpoint: top-k classes with probabilities.

    python -m mnistlab.predict CKPT digit.png photos/ [--top-k 3]

PNG/JPEG files of any size are converted to 28x28 grayscale the way the data
set was made (see :mod:`mnistlab.image_input`). A file that cannot be read gets
an ``error:`` line on stderr and the others are still classified; the exit
code is 1 when any file failed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from mnistlab.checkpoint import load_model
from mnistlab.errors import ConfigError, MnistlabError
from mnistlab.image_input import ImageInputError, expand_paths, load_image


@dataclass
class Prediction:
    path: Path
    top: list[tuple[str, float]]  # (class name, probability), most likely first


def classify(
    module: torch.nn.Module,
    normalize,
    images: torch.Tensor,
    class_names: Sequence[str],
    top_k: int,
    batch_size: int = 256,
) -> list[list[tuple[str, float]]]:
    """Top-``top_k`` (class name, probability) per uint8 image (N, 1, 28, 28)."""
    device = next(module.parameters()).device
    forward = getattr(module, "eval_logits", module)  # test-time augmentation, if the run used it
    results = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = normalize(images[start : start + batch_size].to(device))
            probs = forward(batch).float().softmax(dim=1).cpu()
            values, classes = probs.topk(top_k, dim=1)
            results += [
                [(class_names[c], float(v)) for v, c in zip(vs, cs, strict=True)]
                for vs, cs in zip(values.tolist(), classes.tolist(), strict=True)
            ]
    return results


def predict_files(
    checkpoint: str | Path,
    paths: Sequence[str | Path],
    top_k: int = 3,
    device: str = "cpu",
    overrides: Sequence[str] = (),
) -> tuple[list[Prediction], list[tuple[Path, str]]]:
    """Predictions for every readable image, and ``(path, reason)`` for each one that failed."""
    cfg, datamodule, module = load_model(checkpoint, overrides)
    if cfg.get("cpu_threads"):  # the run's CPU thread setting (1 on a shared machine)
        torch.set_num_threads(int(cfg.cpu_threads))
    if not 1 <= top_k <= datamodule.num_classes:
        raise ConfigError(
            f"--top-k {top_k} must be between 1 and {datamodule.num_classes} (the number of classes)"
        )
    module.to(device)
    files, failures = expand_paths(list(paths))
    images, good = [], []
    for path in files:
        try:
            images.append(load_image(path, datamodule.name))
            good.append(path)
        except ImageInputError as err:
            failures.append((path, str(err)))
    predictions: list[Prediction] = []
    if images:
        tops = classify(
            module, datamodule.normalize, torch.stack(images), datamodule.class_names, top_k
        )
        predictions = [Prediction(p, t) for p, t in zip(good, tops, strict=True)]
    return predictions, failures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mnistlab.predict", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("checkpoint", help="a .ckpt written by train.py")
    parser.add_argument("paths", nargs="+", help="PNG/JPEG files or folders of them")
    parser.add_argument(
        "--top-k", type=int, default=3, help="classes to show per image (default 3)"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    args = parser.parse_args(argv)
    if args.top_k < 1:
        parser.error(f"--top-k {args.top_k} must be at least 1")
    try:
        predictions, failures = predict_files(args.checkpoint, args.paths, args.top_k, args.device)
    except MnistlabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for p in predictions:
        print(f"{p.path}: " + ", ".join(f"{name} ({prob:.1%})" for name, prob in p.top))
    for path, reason in failures:
        print(f"error: {path}: {reason}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
