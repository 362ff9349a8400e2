"""The engine: turns the compiled Model into tables and is the only way records are read and
written. Imports :mod:`metamodel` only. (Built in the engine issue.)"""
