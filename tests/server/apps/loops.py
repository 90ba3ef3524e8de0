"""LitAPIs served with continuous batching (``LitAPI(loop=...)``), for the loop tests."""

import time

import litserve as ls
from litserve.loops import (
    ContinuousBatchingLoop,
    DefaultContinuousBatchingLoop,
    LitAPIStatus,
    Output,
)

STEP_S = 0.001  # what one step of the "model" costs


class Counter(ls.LitAPI):
    """DefaultContinuousBatchingLoop: each token says its index and how many sequences
    shared its step.

    A request {"n": N} ends after N tokens; {"until_batch": K} ends only after one of its
    steps ran K sequences together (so K concurrent streams can only end by sharing a
    step); {"boom": true} makes the step that runs it raise; {"bad_encode": true} makes
    encode_response raise at its second token.
    """

    def __init__(self, max_batch_size=8, max_sequence_length=20_000, api_path="/predict"):
        super().__init__(stream=True, max_batch_size=max_batch_size, api_path=api_path,
                         loop=DefaultContinuousBatchingLoop(max_sequence_length))

    def setup(self, device):
        self.seen = {}  # uid -> the largest batch its steps ran in

    def decode_request(self, request):
        return request

    def predict(self, inputs, generated_sequences):
        time.sleep(STEP_S)
        if any(x.get("boom") for x in inputs):
            raise RuntimeError("the model broke")
        return [{"i": len(done), "batch": len(inputs), "req": x} for x, done in
                zip(inputs, generated_sequences, strict=True)]

    def has_finished(self, uid, token, max_sequence_length):
        best = self.seen[uid] = max(self.seen.get(uid, 0), token["batch"])
        req = token["req"]
        if "until_batch" in req:
            return best >= req["until_batch"]
        return token["i"] + 1 >= req.get("n", 1)

    def encode_response(self, token):
        if token["req"].get("bad_encode") and token["i"] == 1:
            raise ValueError("cannot encode this token")
        return {"i": token["i"], "batch": token["batch"]}


class Stepper(ls.LitAPI):
    """The base ContinuousBatchingLoop, upstream style: the API keeps the sequences and
    implements step() (and no predict)."""

    def __init__(self, api_path="/step"):
        super().__init__(stream=True, max_batch_size=4, api_path=api_path,
                         loop=ContinuousBatchingLoop())

    def setup(self, device):
        self.model = {}

    def add_request(self, uid, request):
        self.model[uid] = list(range(request["n"]))

    def has_capacity(self):
        return len(self.model) < 4

    def has_active_requests(self):
        return bool(self.model)

    def step(self, prev_outputs):
        time.sleep(STEP_S)
        outputs = []
        for uid in list(self.model):
            left = self.model[uid]
            if left:
                outputs.append(Output(uid, left.pop(0), LitAPIStatus.OK))
            else:
                outputs.append(Output(uid, "", LitAPIStatus.FINISH_STREAMING))
                del self.model[uid]
        return outputs

    def encode_response(self, output):
        return {"output": output}


class NotStreaming(Counter):
    """Continuous batching without stream=True: refused when the worker starts."""

    def __init__(self):
        ls.LitAPI.__init__(self, stream=False, loop=DefaultContinuousBatchingLoop())


class PerRequest(ls.LitAPI):
    """The same "model" as Counter through the built-in per-request streaming path."""

    def setup(self, device):
        pass

    def decode_request(self, request):
        return request

    def predict(self, x):
        for i in range(x.get("n", 1)):
            time.sleep(STEP_S)
            yield {"i": i, "batch": 1}

    def encode_response(self, outputs):
        yield from outputs
