"""LitServe's ready-made LitAPIs for tests, under its module and class names.

``simple_example`` has the plain ones (the same classes as ``litserve.examples``),
``openai_spec_example`` ones for ``ls.OpenAISpec``, ``openai_embedding_spec_example``
ones for ``ls.OpenAIEmbeddingSpec``.
"""

from .openai_spec_example import (
    OpenAIBatchContext,
    TestAPI,
    TestAPIWithCustomEncode,
    TestAPIWithStructuredOutput,
    TestAPIWithToolCalls,
)
from .simple_example import SimpleBatchedAPI, SimpleLitAPI, SimpleStreamAPI, SimpleTorchAPI

__all__ = [
    "OpenAIBatchContext",
    "SimpleBatchedAPI",
    "SimpleLitAPI",
    "SimpleStreamAPI",
    "SimpleTorchAPI",
    "TestAPI",
    "TestAPIWithCustomEncode",
    "TestAPIWithStructuredOutput",
    "TestAPIWithToolCalls",
]
