"""docs/img/real_noise.png: real noisy photos (RNI15) denoised as white Gaussian noise, with
``--noise real``, and by a model trained on camera noise when one is given.
Usage: python tools/real_noise_figure.py [RNI15 folder] [out.png] [camera-noise model]"""

import sys
from pathlib import Path

from deepdenoise.evaluation.plots import real_noise_figure

NAMES = ["Dog.png", "Window.png", "Pattern1.png", "Bears.png"]

if __name__ == "__main__":
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/RNI15")
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "docs/img/real_noise.png")
    variants = [("default_color", {}), ("default_color --noise real", {"noise": "real"})]
    if len(sys.argv) > 3:
        variants.append((f"{Path(sys.argv[3]).stem}", {"model": sys.argv[3]}))
    for row in real_noise_figure([src / n for n in NAMES], out, variants):
        print(row)
