"""Files and folders: reading, denoising and writing every format, streaming gigapixel TIFFs in
bands, and the folder mode. Thin over :mod:`deepdenoise.inference`."""
