"""Screens rendered from the Model with Jinja2; the platform's views hand it data. Imports
:mod:`metamodel` only. (Built in its own issue.)"""
