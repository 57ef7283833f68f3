"""Kept for `python setup.py ...` habits and older pip; the metadata is in pyproject.toml."""
from setuptools import setup

setup()
