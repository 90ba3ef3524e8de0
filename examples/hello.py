"""Hello world: serves x -> x**2 on POST /predict.

    python examples/hello.py
    curl -s localhost:8000/predict -H 'content-type: application/json' -d '{"input": 4}'
"""

import litserve as ls


class SquareAPI(ls.LitAPI):
    def setup(self, device):
        self.model = lambda x: x**2

    def decode_request(self, request):
        return request["input"]

    def predict(self, x):
        return self.model(x)

    def encode_response(self, output):
        return {"output": output}


if __name__ == "__main__":
    ls.LitServer(SquareAPI(), accelerator="auto").run(port=8000)
