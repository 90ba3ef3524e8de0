"""A binary tensor body: a 224x224x3 uint8 image in, its per-channel mean out.

The image travels as raw bytes, no JSON or base64: ``Content-Type: application/octet-stream``
with ``X-Tensor-Dtype`` and ``X-Tensor-Shape`` headers (or an ``application/x-npy`` file).
The HTTP front reads the body straight into shared memory and ``decode_request`` receives
a zero-copy NumPy array (a view of that shared memory, valid until the response is
sent). A JSON body ``{"image": [[[r, g, b], ...], ...]}``
works too, for clients that can only send JSON.

    python examples/image_tensor.py
    python -c "import numpy as np; np.full((224, 224, 3), [10, 20, 30], np.uint8).tofile('img.bin')"
    curl -s localhost:8000/predict -H 'content-type: application/octet-stream' \\
        -H 'x-tensor-dtype: uint8' -H 'x-tensor-shape: 224,224,3' --data-binary @img.bin
    # {"mean":[10.0,20.0,30.0],"shape":[224,224,3]}

From Python, the bundled client sends arrays in the binary format:

    import numpy as np, litserve as ls
    image = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    print(ls.Client("http://127.0.0.1:8000").predict(image))
"""

import numpy as np
from starlette.exceptions import HTTPException

import litserve as ls


class ChannelMeanAPI(ls.LitAPI):
    def setup(self, device):
        self.model = lambda image: image.mean(axis=(0, 1), dtype=np.float64)

    def decode_request(self, request):
        image = request if isinstance(request, np.ndarray) else np.asarray(request["image"])
        if image.ndim != 3 or image.shape[2] != 3:
            raise HTTPException(422, f"expected an HxWx3 image, got shape {list(image.shape)}")
        return image

    def predict(self, image):
        return {"mean": self.model(image).round(3).tolist(), "shape": list(image.shape)}

    def encode_response(self, output):
        return output


if __name__ == "__main__":
    server = ls.LitServer(ChannelMeanAPI(), accelerator="cpu")
    server.run(port=8000)
