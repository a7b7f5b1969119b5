"""TensorRT engines from recipes, across both TensorRT eras (``pip install 'edge-se[tensorrt]'``).

- :mod:`.recipe`: ``load_recipe(path) -> Recipe`` (export/*.toml), refusals with the reason.
- :mod:`.versions`: versions, ranges, targets, the two eras (8.5-10.x classic, 11.x/RTX strongly typed).
- :mod:`.plan`: ``plan_build(recipe, version, flavor)``: the version dispatch (pure).
- :mod:`.trtexec`: ``build_<name>.sh`` with flags checked against each version's trtexec.
- :mod:`.sidecar`: ``<name>.engine.json`` and the load-time check.
- :mod:`.engine`, :mod:`.calibrator`: the thin layer over the TensorRT Python API.
- :mod:`.build`: the bundle stage (``build_bundle_engine``, ``script_only``).
- :mod:`.runner`: ``TensorRTRunner`` (activate / infer / deactivate) for the runtime.
- :mod:`.validation`: GPU numerics against PyTorch and trtexec-style latency.

Importing this package imports neither TensorRT nor CUDA; the modules that need them import
them lazily and say what to install.
"""
