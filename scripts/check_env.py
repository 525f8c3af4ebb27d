"""Checks a fresh install: the dependency closure is complete and cv2 is the headless build.

Run by scripts/setup.sh. Exits non-zero with the reason when something is off.
"""

from __future__ import annotations

import importlib.metadata as md
import subprocess
import sys

# insightface declares opencv-python; FVS deliberately installs opencv-python-headless instead.
ALLOWED_PIP_CHECK = ("insightface 2.1 requires opencv-python",)


def main() -> int:
    problems: list[str] = []
    names = {d.metadata["Name"].lower() for d in md.distributions()}
    if "opencv-python" in names:
        problems.append(
            "opencv-python (desktop build) is installed; FVS needs only "
            "opencv-python-headless: pip uninstall opencv-python, then reinstall "
            "opencv-python-headless --force-reinstall --no-deps"
        )
    if "opencv-python-headless" not in names:
        problems.append("opencv-python-headless is not installed")
    gpu = "onnxruntime-gpu" in names  # the GPU build provides the onnxruntime module
    check = subprocess.run(
        [sys.executable, "-m", "pip", "check"], capture_output=True, text=True, check=False
    )
    for line in check.stdout.splitlines():
        if (
            line.strip()
            and not line.startswith(ALLOWED_PIP_CHECK)
            and not (gpu and line.endswith("requires onnxruntime, which is not installed."))
            and not line.startswith("No broken requirements")
        ):
            problems.append(f"pip check: {line}")
    try:
        import cv2

        headless_files = md.files("opencv-python-headless") or []
        owned = {str(f) for f in headless_files}
        if "cv2/__init__.py" not in owned:
            problems.append("cv2 is not provided by opencv-python-headless")
        if not hasattr(cv2, "imdecode"):
            problems.append("cv2 imports but is incomplete")
        import onnxruntime  # noqa: F401
        from insightface.model_zoo.scrfd import SCRFD  # noqa: F401
        from insightface.utils.face_align import arcface_dst  # noqa: F401
    except ImportError as exc:
        problems.append(f"import failed: {exc}")
    for problem in problems:
        print(f"check_env: {problem}", file=sys.stderr)
    if not problems:
        print(f"check_env: ok (cv2 {cv2.__version__} headless, python {sys.version.split()[0]})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
