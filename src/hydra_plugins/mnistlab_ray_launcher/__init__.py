"""mnistlab's Ray launcher for Hydra: ``override /hydra/launcher: mnistlab_ray`` (conf/launcher/ray.yaml)."""
