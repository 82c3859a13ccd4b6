"""Continuous-time latent video models sharing one ODE layer.

- :mod:`gantk.models.ode`: the ODE layer (:class:`~gantk.models.ode.ODEBlock`), Euler / RK4 /
  diffrax, tied or untied fields.
- :mod:`gantk.models.srvp`: SRVP (Franceschi et al., ICML 2020).
- :mod:`gantk.models.registry`: how a model plugs into ``python -m gantk.models.train`` and
  ``python -m gantk.models.evaluate``.
"""
