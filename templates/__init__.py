"""Jinja templates shipped with hubtool (installed as ``hubtool.templates``).

Read them with ``importlib.resources.files("hubtool.templates")``; see README.md here.
"""
