"""Alias of ``litserve.examples`` (LitServe's historical name)."""

from .examples import SimpleBatchedAPI, SimpleLitAPI, SimpleStreamAPI, SimpleTorchAPI

__all__ = ["SimpleBatchedAPI", "SimpleLitAPI", "SimpleStreamAPI", "SimpleTorchAPI"]
