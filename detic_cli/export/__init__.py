"""ONNX export with the vocabulary as a graph input, and the onnxruntime backend of `detect`.

onnx_model.py is the traceable wrapper, export.py traces, checks and writes, ort_backend.py runs the
exported graph behind the Predictor's prepare/predict contract, build.py is the config's side of both.
"""
