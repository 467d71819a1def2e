"""The Realm Management Monitor (R-EL2), exact to the RMM specification 1.0-rel0 (DEN0137).

:mod:`ccasim.rmm.core` holds its state and dispatches RMI commands to the handlers of
:mod:`ccasim.rmm.rmi`; :mod:`ccasim.rmm.execution` runs RECs on the PE and dispatches the
realm's RSI (:mod:`ccasim.rmm.rsi`) and PSCI (:mod:`ccasim.rmm.psci`) calls. Only the machine
assembles it: the host reaches it through SMCs, realms through their own SMCs.
"""
