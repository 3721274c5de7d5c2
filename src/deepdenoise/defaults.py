"""Names and limits the command line needs before anything heavy is imported (no torch, no numpy):
``deepdenoise --help`` and argument errors answer at once."""

NOISE_KINDS = ("auto", "gaussian", "poisson", "camera", "impulse")  # "real": the older name of "camera"
BACKENDS = ("auto", "eager", "folded", "bf16", "fp16", "onnxruntime", "int8")  # fp16: GPUs
DEFAULT_BACKEND = "auto"
MAX_PIXELS = 200_000_000  # default pixel limit (all frames together): ~4x a 48 MP photo
VERSION = "0.1.0"
