"""The package version: one source, read by the build and by the telemetry scope."""

__all__ = ["__version__"]

__version__ = "0.1.0"
