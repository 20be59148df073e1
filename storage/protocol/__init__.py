"""The parts of :class:`storage.store.Store`, one per concern; the contract is in
:mod:`storage.store`."""
