"""Hello world: serves x -> x**2 on POST /predict.

    python examples/hello.py [--port 8000] [--host 0.0.0.0]
    curl -s localhost:8000/predict -H 'content-type: application/json' -d '{"input": 4}'
"""

import argparse

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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="0.0.0.0")
    args = parser.parse_args()
    ls.LitServer(SquareAPI(), accelerator="auto").run(host=args.host, port=args.port)
