"""Integrations with other libraries; each is an optional extra (``normrl[sb3]``)."""
