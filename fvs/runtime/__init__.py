"""The model runtime: manifests, weight verification and onnxruntime sessions.

This is the only package that imports onnxruntime.
"""
