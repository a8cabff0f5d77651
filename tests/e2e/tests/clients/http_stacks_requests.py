# python requests through the bottle (HTTPS_PROXY and REQUESTS_CA_BUNDLE from the runtime
# contract, nothing configured here). argv: host, refused host, download size. Prints
# key=value lines; what the origin reflects goes to a file only (the harness greps it).
import hashlib, os, sys
import requests

host, refused, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
print("version=" + requests.__version__)
s = requests.Session()
r = s.get(f"https://{host}/download?bytes={size}&c=requests", timeout=60)
print(f"get_status={r.status_code}")
print(f"get_len={len(r.content)}")
print("get_sha=" + hashlib.sha256(r.content).hexdigest())
body = os.urandom(3 * 1024 * 1024 + 7)
r = s.post(f"https://{host}/upload?c=requests", data=body, timeout=60)
print(f"post_status={r.status_code}")
print("post_sent_sha=" + hashlib.sha256(body).hexdigest())
print(f"post_sent_len={len(body)}")
if r.status_code == 200:
    print("post_origin_sha=" + r.json()["sha256"])
    print(f"post_origin_len={r.json()['bytes']}")
r = s.get(f"https://{host}/reflect?c=requests", timeout=60)
print(f"reflect_status={r.status_code}")
print("reflect_count=" + r.headers.get("x-reflect-count", ""))
with open("/tmp/http-stacks/requests-reflect.txt", "w") as f:
    f.write(str(dict(r.headers)) + "\n" + r.text)
try:
    r = s.get(f"https://{refused}/download?bytes=16&c=requests", timeout=30)
    print(f"refused=reached status {r.status_code}")
except requests.exceptions.RequestException as e:
    print("refused=" + type(e).__name__ + ": " + str(e).replace("\n", " ")[:400])
