"""Accuracy on real faces: datasets and pairs, metrics, reports, and the FMR-anchored score
calibration. Runs exactly the server's pipeline code."""
