"""The plain example LitAPIs (defined in ``litserve.examples``)."""

from ..examples import SimpleBatchedAPI, SimpleLitAPI, SimpleStreamAPI, SimpleTorchAPI

__all__ = ["SimpleBatchedAPI", "SimpleLitAPI", "SimpleStreamAPI", "SimpleTorchAPI"]
