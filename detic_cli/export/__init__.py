"""ONNX export with the vocabulary as a graph input, and the onnxruntime backend of `detect` and `eval`.

onnx_model.py is the traceable wrapper of the R-CNN families (CenterNet2 cascade; R50-C4 through onnx_c4.py;
shared pieces in graph_ops.py), onnx_detr.py that of Deformable DETR (closed vocabulary, fixed size),
export.py traces, checks and writes, ort_backend.py runs the exported graph behind the Predictor's
prepare/predict contract, build.py is the config's side of both.
"""
