"""Triton Python-backend model: encoded images in, the bundle's preprocessed tensor out.

Copied by ``edge-se export-triton --ensemble`` to ``<repo>/<name>_preprocess/1/model.py``; the
bundle's manifest sits beside it in ``1/bundle`` and gives the :class:`~edge_se.preprocess.PreprocessSpec`,
so the ensemble ``<name>_ensemble`` applies exactly the preprocessing ``edge-se predict`` applies.
Each request's rows are decoded and preprocessed together; a request with an undecodable image
gets Triton's error and the others are served.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils  # provided by Triton's Python backend

from edge_se.preprocess import PreprocessSpec, decode_image, preprocess_batch

IMAGE_INPUT = "IMAGE"


class TritonPythonModel:
    """initialize / execute, as Triton's Python backend calls them."""

    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        manifest = Path(args["model_repository"]) / str(args["model_version"]) / "bundle" / "manifest.json"
        self.spec = PreprocessSpec.from_dict(json.loads(manifest.read_text(encoding="utf-8"))["preprocessing"])
        self.output = config["output"][0]["name"]

    def execute(self, requests: list) -> list:
        responses = []
        for request in requests:
            try:
                rows = pb_utils.get_input_tensor_by_name(request, IMAGE_INPUT).as_numpy().reshape(-1)
                images = [decode_image(row, self.spec.color, f"image {i} of the request") for i, row in enumerate(rows)]
                x = np.ascontiguousarray(preprocess_batch(images, self.spec))
                responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(self.output, x)]))
            except Exception as e:  # this request fails with Triton's error; the server and the others live
                message = str(e).splitlines()[0] if str(e) else type(e).__name__
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(message)))
        return responses
