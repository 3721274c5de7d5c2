"""Images in and out: header-first limits, every format's decoder and encoder, metadata carried
over (ICC, EXIF, alpha, stacks), atomic writes that never lose or half-write a file."""

from __future__ import annotations

from deepdenoise.io.images import (
    READ_SUFFIXES,
    ImageData,
    ImageHeader,
    atomic_output,
    check_pixel_limit,
    decode_header,
    decode_image,
    encode_image,
    list_images,
    load_gray_or_color,
    read_header,
    read_image,
    write_image,
)

__all__ = ["READ_SUFFIXES", "ImageData", "ImageHeader", "atomic_output", "check_pixel_limit", "decode_header",
           "decode_image", "encode_image", "list_images",
           "load_gray_or_color", "read_header", "read_image", "write_image"]
