"""The web page and REST service (``deepdenoise serve``): a thin layer over ``denoise()``."""
