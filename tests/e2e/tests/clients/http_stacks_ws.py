# WebSocket over HTTP/1.1 with python websockets 10.4, which has no proxy support: the CONNECT
# tunnel to pipelock (HTTPS_PROXY) is opened here and the socket handed to websockets.connect
# (TLS with SSL_CERT_FILE over it). argv: host, refused host. Prints key=value lines.
import asyncio, hashlib, os, socket, ssl, sys, urllib.parse
import websockets

host, refused = sys.argv[1], sys.argv[2]
TOKEN = "ghp_" + "Zq8Lr3Tx6Wv1Np9Ks4Hb7Jd2Mf5Gc0Ye8Ua3Io6Pl"[:36]


def tunnel(target):
    """CONNECT target:443 through the proxy; the socket and the proxy's status line."""
    p = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
    s = socket.create_connection((p.hostname, p.port or 80), timeout=30)
    s.sendall(f"CONNECT {target}:443 HTTP/1.1\r\nHost: {target}:443\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        ch = s.recv(1)
        if not ch:
            break
        head += ch
    return s, head.split(b"\r\n")[0].decode(errors="replace")


async def main():
    print("version=" + websockets.__version__)
    s, status = tunnel(host)
    print("connect=" + status)
    ctx = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    async with websockets.connect(
        f"wss://{host}/ws?c=ws", sock=s, ssl=ctx, server_hostname=host, open_timeout=30
    ) as ws:
        await ws.send("hello over http/1.1")
        print("echo_text=" + await asyncio.wait_for(ws.recv(), 30))
        blob = os.urandom(200_000)
        await ws.send(blob)
        back = await asyncio.wait_for(ws.recv(), 30)
        print(f"echo_binary_same={back == blob}")
        print(f"echo_binary_len={len(back)}")
        await ws.send("after binary")
        print("echo_after=" + await asyncio.wait_for(ws.recv(), 30))
        await ws.send("key " + TOKEN)
        try:
            m = await asyncio.wait_for(ws.recv(), 30)
            print(f"secret_close=none echoed={TOKEN in m}")
        except websockets.ConnectionClosed as e:
            rcvd = getattr(e, "rcvd", None)
            print(f"secret_close={rcvd.code if rcvd else 'none'}")
            print("secret_reason=" + (rcvd.reason if rcvd else "")[:120])
    s, status = tunnel(refused)
    print("refused=" + status)
    s.close()


asyncio.run(main())
