"""An OpenAI-compatible embeddings server with a tiny deterministic "model".

    python examples/openai_embeddings.py

    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused")
    out = client.embeddings.create(model="hash-embed", input=["a cat", "a dog"])
    print(len(out.data), len(out.data[0].embedding))

Requests are batched: with ``max_batch_size=16`` the inputs of up to 16 requests
(each a string, a list of strings, or token ids) reach ``predict`` as one flat list.
"""

import zlib

import numpy as np

import litserve as ls

DIM = 64


class HashEmbedder:
    """Bag of hashed words, L2-normalised: similar texts get similar vectors."""

    def encode(self, texts):
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for row, text in zip(out, texts, strict=True):
            words = text.split() if isinstance(text, str) else [str(t) for t in text]
            for word in words:
                row[zlib.crc32(word.encode()) % DIM] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


class EmbeddingAPI(ls.LitAPI):
    model_name = "hash-embed"

    def setup(self, device):
        self.model = HashEmbedder()

    def predict(self, inputs):
        # batched: a flat list of inputs from several requests; one row per input
        return self.model.encode(inputs)


if __name__ == "__main__":
    api = EmbeddingAPI(max_batch_size=16, batch_timeout=0.005)
    ls.LitServer(api, spec=ls.OpenAIEmbeddingSpec()).run(port=8000)
