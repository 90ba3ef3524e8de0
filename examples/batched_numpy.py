"""Dynamic batching with NumPy: requests arriving within 10 ms are stacked into one array.

Each request carries a vector; predict sees a (batch, n) array and returns one L2 norm per
row. The default ``batch`` stacks the decoded arrays and the default ``unbatch`` splits the
result back into one output per request.

    python examples/batched_numpy.py
    curl -s localhost:8000/predict -H 'content-type: application/json' -d '{"input": [3, 4]}'
    # {"output":5.0}

Many at once (these share batches):

    for i in $(seq 8); do curl -s localhost:8000/predict \\
        -H 'content-type: application/json' -d '{"input": [1, 2, 2]}' & done; wait
"""

import numpy as np

import litserve as ls


class NormAPI(ls.LitAPI):
    def setup(self, device):
        self.model = lambda batch: np.linalg.norm(batch, axis=1)

    def decode_request(self, request):
        return np.asarray(request["input"], dtype=np.float32)

    def predict(self, x):
        # x: (batch, n), every request's vector stacked (all must have the same length)
        return self.model(x)

    def encode_response(self, output):
        return {"output": float(output)}


if __name__ == "__main__":
    server = ls.LitServer(NormAPI(), accelerator="cpu", max_batch_size=16, batch_timeout=0.01)
    server.run(port=8000)
