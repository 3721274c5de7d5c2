"""Measurement: PSNR/SSIM on datasets and real noisy/clean pairs, the benchmarks against other
methods, and the figures that show them."""
