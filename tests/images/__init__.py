"""Tests of the project's images (images/)."""
