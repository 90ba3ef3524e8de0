"""Chat and embeddings on one server, behind an API key (LIT_SERVER_API_KEY), with a
1 s timeout and a small request arena (max_payload_size=64 KiB: bodies over the arena,
about 1.06 MiB, are refused with 413)."""

from chat import ChatAPI
from embeddings import EmbedAPI

import litserve as ls

if __name__ == "__main__":
    chat = ChatAPI(spec=ls.OpenAISpec())
    embed = EmbedAPI(spec=ls.OpenAIEmbeddingSpec())
    server = ls.LitServer([chat, embed], timeout=1.0, max_payload_size=64 * 1024)
    server.run(host="127.0.0.1", port=0, generate_client_file=False)
