"""OpenAIEmbeddingSpec with a deterministic "model": each input becomes
[len, first code (or first token id), batch size, -1.25].

    python embeddings.py plain     # NumPy rows + usage; torch when the first text is "torch"
    python embeddings.py batched   # max_batch_size=8: predict gets a flat list of inputs
"""

import sys

import numpy as np

import litserve as ls


def vector(item, batch_size):
    first = ord(item[0]) if isinstance(item, str) else item[0]
    return [len(item), first, batch_size, -1.25]


class EmbedAPI(ls.LitAPI):
    model_name = "tiny-embed"

    def predict(self, inputs):
        single = isinstance(inputs, str) or isinstance(inputs[0], int)
        items = [inputs] if single else inputs
        if items[0] == "wrong-count":
            return np.zeros((len(items) + 1, 4))
        if items[0] == "torch":
            import torch

            return torch.tensor([vector(x, 1) for x in items], dtype=torch.float64)
        rows = np.array([vector(x, 1) for x in items], dtype=np.float32)
        return {"embeddings": rows[0] if single else rows,
                "prompt_tokens": sum(len(x) for x in items)}


class BatchedEmbedAPI(ls.LitAPI):
    def predict(self, items):
        assert isinstance(items, list), type(items)
        return np.array([vector(x, len(items)) for x in items], dtype=np.float32)


if __name__ == "__main__":
    if sys.argv[1] == "plain":
        server = ls.LitServer(EmbedAPI(), spec=ls.OpenAIEmbeddingSpec())
    else:
        server = ls.LitServer(BatchedEmbedAPI(), spec=ls.OpenAIEmbeddingSpec(),
                              max_batch_size=8, batch_timeout=0.25)
    server.run(host="127.0.0.1", port=0, generate_client_file=False)
