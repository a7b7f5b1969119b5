"""Triton Python-backend model that serves a bundle artifact with ``edge_se.runtime``.

Copied by ``edge-se export-triton --serve python`` to ``<repo>/<name>/1/model.py``; Triton's
Python backend imports it (``triton_python_backend_utils`` exists only inside that backend). The
artifact is read from ``1/bundle`` with its sha256 checked against the copied manifest. Requests
that Triton's dynamic batcher hands over together are run as one batch and split back.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils  # provided by Triton's Python backend

from edge_se.runtime import Runtime

PARAM_ARTIFACT, PARAM_BACKEND = "edge_se_artifact", "edge_se_backend"


class TritonPythonModel:
    """initialize / execute / finalize, as Triton's Python backend calls them."""

    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in (config.get("parameters") or {}).items()}
        bundle = Path(args["model_repository"]) / str(args["model_version"]) / "bundle"
        self.runtime = Runtime.load(bundle, backend=params.get(PARAM_BACKEND) or "auto",
                                    artifact=params[PARAM_ARTIFACT], warmup=0)
        self.inputs = [t["name"] for t in config["input"]]
        self.outputs = [t["name"] for t in config["output"]]
        self.batched = int(config.get("max_batch_size", 0)) > 0

    def execute(self, requests: list) -> list:
        try:
            feeds = [{n: pb_utils.get_input_tensor_by_name(r, n).as_numpy() for n in self.inputs} for r in requests]
            sizes = [f[self.inputs[0]].shape[0] for f in feeds]
            if self.batched and len(feeds) > 1:
                merged = {n: np.concatenate([f[n] for f in feeds]) for n in self.inputs}
                result = self.runtime.run(merged)
                bounds = np.cumsum([0, *sizes])
                outs = [{n: result[n][a:b] for n in self.outputs} for a, b in zip(bounds[:-1], bounds[1:])]
            else:
                outs = [self.runtime.run(f) for f in feeds]
        except Exception as e:  # the whole batch failed: each request gets Triton's error, the server lives
            message = str(e).splitlines()[0] if str(e) else type(e).__name__
            return [pb_utils.InferenceResponse(error=pb_utils.TritonError(message)) for _ in requests]
        return [pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(n, np.ascontiguousarray(o[n]))
                                                           for n in self.outputs]) for o in outs]

    def finalize(self) -> None:
        self.runtime.close()
