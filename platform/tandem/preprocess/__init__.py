"""Model-input preprocessing fitted at training time and applied identically in training,
online serving and batch scoring. Pure numpy and Pillow: no Ray, no torch."""

from tandem.preprocess.images import decode_image, encode_png
from tandem.preprocess.inputs import (
    Raw,
    decode_images,
    example_raw,
    example_value,
    feature_matrix,
    gather,
    model_array,
    token_matrix,
)
from tandem.preprocess.stats import Moments

__all__ = [
    "Moments",
    "Raw",
    "decode_image",
    "decode_images",
    "encode_png",
    "example_raw",
    "example_value",
    "feature_matrix",
    "gather",
    "model_array",
    "token_matrix",
]
