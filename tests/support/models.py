"""Real fastText models for the tests, each trained in a fresh interpreter.

fastText's training was seen to stop with "Encountered NaN" at every learning rate inside a long-lived test process
(state some earlier test or library left behind; which one depends on the order tests run in, so it came and went
with the suite's distribution over workers), and never in a fresh one. The model is then loaded here as usual.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

_TRAIN = (
    "import json, sys; from textexplain import synthetic, training; "
    "m = training.train([(e.label, e.text) for e in synthetic.generate(int(sys.argv[2]), seed=int(sys.argv[3]))], "
    "training.Hyperparameters(**json.loads(sys.argv[4]))); m.save_model(sys.argv[1])"
)


def train_in_fresh_process(target: Path, examples: int = 1400, seed: int = 7, **hyperparameters):
    """Train on ``synthetic.generate(examples, seed)`` in a new interpreter, save to ``target``, return it loaded."""
    import fasttext

    argv = [sys.executable, "-c", _TRAIN, str(target), str(examples), str(seed), json.dumps(hyperparameters)]
    subprocess.run(argv, check=True, timeout=300)
    return fasttext.load_model(str(target))
