from cli_support import fixtures

server = fixtures.server
keyed_server = fixtures.keyed_server
real_server = fixtures.real_server
tls_server = fixtures.tls_server
