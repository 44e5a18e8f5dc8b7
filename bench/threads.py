#!/usr/bin/env python3
"""Threads berth keeps after a burst of pushes (issue 21): starts BERTH on a temporary filesystem store,
pushes 120 blobs of 200 KB at once (monolithic POSTs), and prints its thread count right after and 15 s
later, when the blocking pool's idle threads (10 s keep-alive) should be gone.

    python3 bench/threads.py target/debug/berth
"""
import hashlib, os, subprocess, sys, tempfile, threading, time, urllib.request, socket
binary = sys.argv[1]
d = tempfile.mkdtemp()
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
env = dict(os.environ, REGISTRY_HTTP_ADDR=f"127.0.0.1:{port}", REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=d)
p = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
for _ in range(100):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/"); break
    except Exception: time.sleep(0.1)
def push(i):
    data = os.urandom(200_000)
    dg = "sha256:" + hashlib.sha256(data).hexdigest()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v2/t/r{i%5}/blobs/uploads/?digest={dg}", data=data, method="POST",
                                 headers={"Content-Type": "application/octet-stream"})
    try: urllib.request.urlopen(req).read()
    except Exception as e: pass
ts = [threading.Thread(target=push, args=(i,)) for i in range(120)]
[t.start() for t in ts]; [t.join() for t in ts]
n0 = len(os.listdir(f"/proc/{p.pid}/task"))
time.sleep(15)
n1 = len(os.listdir(f"/proc/{p.pid}/task"))
print(f"threads right after burst: {n0}, 15 s later: {n1}")
p.terminate(); p.wait()
