"""A PyTorch model: y = 2x + 1 from an ``nn.Linear(1, 1)``, batched, on the best device.

``setup`` runs once in each worker process with the device it serves (``"cpu"``,
``"cuda:0"``, ``"mps"``): build or load the model there. Requests are batched (up to 8
within 5 ms); the default ``batch`` stacks the decoded tensors into one (batch, 1) tensor.
Needs torch (CPU build is enough: ``pip install torch``).

    python examples/torch_model.py
    curl -s localhost:8000/predict -H 'content-type: application/json' -d '{"input": 4.0}'
    # {"output":9.0}
"""

import torch
from torch import nn

import litserve as ls


class LinearAPI(ls.LitAPI):
    def setup(self, device):
        self.device = device
        self.model = nn.Linear(1, 1)
        with torch.no_grad():
            self.model.weight.fill_(2.0)
            self.model.bias.fill_(1.0)
        self.model.to(device).eval()

    def decode_request(self, request):
        return torch.tensor([float(request["input"])], device=self.device)

    def predict(self, x):
        # x: (batch, 1) on self.device
        with torch.inference_mode():
            return self.model(x)

    def encode_response(self, output):
        return {"output": output.item()}


if __name__ == "__main__":
    server = ls.LitServer(LinearAPI(), accelerator="auto", max_batch_size=8, batch_timeout=0.005)
    server.run(port=8000)
