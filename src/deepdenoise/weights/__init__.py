"""Weights: the safetensors + JSON format (:mod:`.format`), the shipped models and their registry
names (:mod:`.shipped`), and the official DnCNN MatConvNet files (:mod:`.matconvnet`). The shipped
files themselves live in this folder."""
