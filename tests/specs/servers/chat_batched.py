"""OpenAISpec with dynamic batching: predict gets the conversations of several requests
and yields, per step, one output per request (None once a request has finished)."""

import time

import litserve as ls


class BatchedChatAPI(ls.LitAPI):
    def predict(self, conversations, context):
        assert isinstance(context, list) and len(context) == len(conversations)
        words = [c[-1]["content"].split() for c in conversations]
        if words[0][0] == "count":  # count N: N slow steps
            for i in range(int(words[0][1])):
                time.sleep(0.005)
                yield [f"{i} " for _ in conversations]
            return
        yield [f"[batch={len(conversations)}]" for _ in conversations]
        for step in range(max(len(w) for w in words)):
            yield [" " + w[step] if step < len(w) else None for w in words]


if __name__ == "__main__":
    api = BatchedChatAPI(max_batch_size=4, batch_timeout=0.25)
    ls.LitServer(api, spec=ls.OpenAISpec()).run(host="127.0.0.1", port=0,
                                                generate_client_file=False)
