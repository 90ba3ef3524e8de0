from server_fixtures import keyed_server, real_server, server, tls_server

__all__ = ["keyed_server", "real_server", "server", "tls_server"]
