"""A :class:`Predictor` owns what inference prepares from a model: the forward for one backend
(a folded copy, an onnxruntime session, an int8 graph) and the tiling that bounds memory.

Prepared forwards are cached by the weights' content (class, config, int8 ranges and every tensor's
bytes), never by ``id()``: Python reuses the id of a freed module for the next one, which once gave
a new model another model's prepared forward. The cache is a small LRU shared by all predictors
and guarded by a lock, since the web service runs jobs in threads.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from deepdenoise.hardware import gpu_tile, pick_device
from deepdenoise.inference.backends import make_forward, resolve_backend
from deepdenoise.inference.tiling import DEFAULT_TILE, Forward, apply_model, working_tile
from deepdenoise.models import Denoiser
from deepdenoise.noise.level import NoiseLevel

PREPARED_KEEP = 4  # prepared forwards kept (a folded copy or an onnxruntime session each)
_PREPARED: OrderedDict[tuple[str, str, str], Forward] = OrderedDict()
_LOCK = threading.Lock()
Progress = Callable[[int, int], None]


def weights_digest(net: Denoiser) -> str:
    """A digest of a module's class, config, int8 ranges and weights: what a prepared forward
    depends on (int8 ranges make another graph)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(type(net).__name__.encode())
    h.update(repr(net.config).encode())
    h.update(repr(net.int8_calibration).encode())
    for name, t in net.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def prepared_forward(net: Denoiser, backend: str, device: torch.device | None = None,
                     digest: str | None = None) -> Forward:
    """The prepared forward ``f(x, level)`` for (weights, backend, device), from the bounded LRU cache."""
    device = device or torch.device("cpu")
    key = (digest or weights_digest(net), backend, str(device))
    with _LOCK:
        if key in _PREPARED:
            _PREPARED.move_to_end(key)
            return _PREPARED[key]
    forward = make_forward(net, backend, device=device)[0]  # outside the lock: an export takes seconds
    with _LOCK:
        _PREPARED[key] = forward
        while len(_PREPARED) > PREPARED_KEEP:
            _PREPARED.popitem(last=False)
    return forward


def cached_forwards() -> int:
    """How many prepared forwards the cache holds (bounded by ``PREPARED_KEEP``)."""
    return len(_PREPARED)


class Predictor:
    """Run ``model`` on float images of any size with ``backend`` on ``device``, tiled by ``tile``.

    The constructor prepares nothing; the forward is prepared (or found in the cache) on first use.
    ``backend='auto'`` resolves to int8 where the model ships a calibration and the CPU has VNNI,
    else to the folded fp32 network; on a GPU to fp16. ``device``: 'auto' (CUDA, then MPS, then the
    CPU), 'cpu', 'cuda', 'cuda:N', 'mps' or a torch.device. On a GPU the default tile follows its
    free memory; the image itself always stays in host memory."""

    def __init__(self, model: Denoiser, backend: str = "auto", tile: int | None = DEFAULT_TILE,
                 device: str | torch.device | None = "cpu", ensemble: int = 1) -> None:
        if ensemble not in ENSEMBLES:
            raise ValueError(f"ensemble must be one of {ENSEMBLES} (got {ensemble!r})")
        self.ensemble = ensemble
        self.device = device if isinstance(device, torch.device) else pick_device(device)
        self.model = model.eval()
        self.backend = resolve_backend(model, backend, self.device.type)
        if self.device.type == "cuda" and tile == DEFAULT_TILE:
            tile = gpu_tile(self.device, model.in_channels)
        self.tile = working_tile(model, tile)
        self._forward: Forward | None = None

    @property
    def forward(self) -> Forward | None:
        """The prepared forward, or None for the CPU's eager reference (the model itself, uncached)."""
        if self.backend == "eager" and self.device.type == "cpu":
            return None
        if self._forward is None:
            self._forward = prepared_forward(self.model, self.backend, self.device)
        return self._forward

    def __call__(self, image: np.ndarray, level: float | NoiseLevel | None = None,
                 progress: Progress | None = None, inplace: bool = False, **kw: Any) -> np.ndarray:
        """Denoise a float [H, W] or [H, W, 3] array; a noise-map model given no level gets the
        image's estimated noise-level function. With ``inplace`` a writable float32 ``image``
        receives the result. With ``ensemble`` > 1 the result is the mean over that many flips and
        rotations of the image (each undone on its output)."""
        if self.ensemble == 1:
            return apply_model(self.model, image, level, self.tile, progress, self.forward, inplace=inplace, **kw)
        n = self.ensemble
        total = np.zeros(image.shape, dtype=np.float32)  # [H, W(, C)]
        for k in range(n):
            def tick(done: int, of: int, k: int = k) -> None:
                if progress:
                    progress(k * of + done, n * of)

            out = apply_model(self.model, np.ascontiguousarray(_turn(image, k)), level, self.tile, tick,
                              self.forward, **kw)
            total += _unturn(out, k)
        total /= n
        if inplace:
            image[...] = total
            return image
        return total


ENSEMBLES = (1, 2, 4, 8)  # passes of the self-ensemble: the identity, then flips, then transposes


def _turn(x: np.ndarray, k: int) -> np.ndarray:
    """The k-th of the 8 flips/rotations of x [H, W(, C)] (0: itself; 1-3 keep the shape; a view)."""
    y = x[:, ::-1] if k & 1 else x
    y = y[::-1] if k & 2 else y
    return y.swapaxes(0, 1) if k & 4 else y


def _unturn(y: np.ndarray, k: int) -> np.ndarray:
    """Undo :func:`_turn` for the same k."""
    x = y.swapaxes(0, 1) if k & 4 else y
    x = x[::-1] if k & 2 else x
    return x[:, ::-1] if k & 1 else x
