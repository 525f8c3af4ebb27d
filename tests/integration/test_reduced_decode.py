"""A large JPEG is decoded reduced (issue 10, finding 3), yet the face is reported in the
photo's own pixels and its embedding matches the one from the photo at its own size."""

from __future__ import annotations

import cv2
import numpy as np

from fvs.pipeline.pipeline import FacePipeline
from tests.conftest import bgr, encode, photo


def test_a_25_megapixel_jpeg_gives_the_same_face(pipeline: FacePipeline) -> None:
    image = bgr("obama.jpg")
    scale = 5  # 910 x 1137 -> 4550 x 5685 = 25.9 MP: decoded at 1/2
    big = encode(cv2.resize(image, (image.shape[1] * scale, image.shape[0] * scale)), ".jpg")
    small = pipeline.extract(photo("obama.jpg"), "verify")
    large = pipeline.extract(big, "verify")
    assert np.allclose(
        np.array(large.face.box), np.array(small.face.box) * scale, rtol=0.05, atol=25
    )
    assert float(np.dot(small.embedding, large.embedding)) > 0.9
    assert large.quality is not None and small.quality is not None
    assert large.quality.inter_eye_px > 4 * small.quality.inter_eye_px  # full-size pixels
