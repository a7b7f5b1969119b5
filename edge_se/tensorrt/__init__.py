"""TensorRT engines from recipes, across both TensorRT eras (``pip install 'edge-se[tensorrt]'``).

- :mod:`.recipe`: ``load_recipe(path) -> Recipe`` (export/*.toml), refusals with the reason.
- :mod:`.versions`: versions, ranges, targets, the two eras (8.5-10.x classic, 11.x/RTX strongly typed).
- :mod:`.plan`: ``plan_build(recipe, version, flavor)``: the version dispatch (pure).
- :mod:`.trtexec`: ``build_<name>.sh`` with flags checked against each version's trtexec.
- :mod:`.sidecar`: ``<name>.engine.json`` (the format and load-time check live in the runtime).
- :mod:`.engine`, :mod:`.calibrator`: the build and INT8 calibration through NVIDIA's Polygraphy.
- :mod:`.build`: the bundle stage (``build_bundle_engine``, ``script_only``).
- :mod:`.validation`: GPU numerics against PyTorch and trtexec-style latency.

Engines run in the runtime (``edge_se.runtime.backends.tensorrt_runner``, Polygraphy's TrtRunner).
Importing this package imports neither TensorRT, Polygraphy nor CUDA; the modules that need them import
them lazily and say what to install.
"""
