"""Upstream Graflow 0.2's ``graflow.core.handlers`` package: import paths kept for drop-in compatibility.

Graflow's own homes are :mod:`graflow.core.handler` (``TaskHandler``, ``DirectTaskHandler``) and
:mod:`graflow.policies` (error policies); the Docker handler is in the graflow-docker package.
"""
