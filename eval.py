"""Evaluate a checkpoint on the test split and regenerate its artifacts.  Examples:

    python eval.py outputs/<date>/<time>_model=cnn/checkpoints/best.ckpt
    python eval.py CKPT data.root=../shared/data --out /tmp/eval

Everything happens in src/mnistlab/eval.py (`python eval.py --help`).
"""

import sys

from mnistlab.eval import main

if __name__ == "__main__":
    sys.exit(main())
