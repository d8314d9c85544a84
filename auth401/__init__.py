"""auth401: one consistent, explainable answer for every 401 and 403 of a DRF API."""

__version__ = "0.1.0"
