"""Project exceptions. Every message says what happened and what to do about it."""

from __future__ import annotations


class UnmaskError(Exception):
    """Base class of every error `unmask` raises on purpose."""


class HubError(UnmaskError):
    """A model could not be fetched: offline, missing repo/file, bad revision."""


class WeightsError(UnmaskError):
    """Weights exist but do not fit: wrong architecture, missing or unexpected keys, bad file."""


class ImageError(UnmaskError):
    """An input image cannot be used: not an image, truncated, too small or too large."""


class NoFaceError(ImageError):
    """The image decoded fine but no face was found in it."""


class ConfigError(UnmaskError):
    """A configuration value is invalid."""


class DependencyError(UnmaskError):
    """An optional package or model file needed for this feature is not installed."""


class InputShapeError(UnmaskError, ValueError):
    """A tensor given to a model has the wrong shape, dtype or range."""
