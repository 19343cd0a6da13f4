"""The project's container images, built without a Docker engine or a registry
(`python -m images.build`); see build.py and archive.py."""
