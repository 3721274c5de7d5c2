"""Inference: a :class:`~deepdenoise.inference.predictor.Predictor` owns a model's prepared forward
(eager, folded, bf16, onnxruntime, int8) and its exact tiling; ``denoise()`` runs one of the noise
modes (:mod:`.modes`: gaussian, poisson, camera, impulse) over it. Nothing here trains or reads files."""
