"""Workflows: state machines, approvals, automations and jobs; reacts to the engine's record
events. Imports :mod:`metamodel` and :mod:`engine` only. (Built in its own issue.)"""
