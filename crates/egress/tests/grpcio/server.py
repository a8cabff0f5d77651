"""A gRPC server for the chain tests, generic bytes methods (no generated code).

argv: PORT CHAIN_PEM KEY_PEM. Env EXPECT_AUTH: the authorization metadata the caller must
carry (compared here, never printed or written). Prints "ready" once serving.

  /demo.Echo/Unary    the request back, prefixed "auth-ok:" or "auth-bad:"; trailing metadata
                      x-trailer: done
  /demo.Echo/Bidi     each request back at once (bidirectional streaming)
  /demo.Echo/Fail     aborts with NOT_FOUND "no such thing"
  /demo.Echo/Reflect  answers with the authorization metadata itself (a careless server)
"""
import os
import sys
from concurrent import futures

import grpc

EXPECT = os.environ.get("EXPECT_AUTH", "")


def auth_of(context):
    for k, v in context.invocation_metadata():
        if k == "authorization":
            return v
    return ""


def unary(request, context):
    ok = EXPECT != "" and auth_of(context) == EXPECT
    context.set_trailing_metadata((("x-trailer", "done"),))
    return (b"auth-ok:" if ok else b"auth-bad:") + request


def bidi(request_iterator, context):
    for r in request_iterator:
        yield r


def fail(request, context):
    context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")


def reflect(request, context):
    return auth_of(context).encode()


def main():
    port, chain, key = sys.argv[1], sys.argv[2], sys.argv[3]
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "Reflect": grpc.unary_unary_rpc_method_handler(reflect),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("demo.Echo", handlers),))
    with open(chain, "rb") as c, open(key, "rb") as k:
        creds = grpc.ssl_server_credentials(((k.read(), c.read()),))
    server.add_secure_port("127.0.0.1:" + port, creds)
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
