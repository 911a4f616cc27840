"""Cloud Map for the local mesh: moto's server on 0.0.0.0:5000 with the HTTP namespaces CLOUD_MAP_NAMESPACES
(comma-separated; default `local,demo.local`) made at start. /tmp/cloudmap-ready exists once the namespace does (the image's health check).
Stops at once on SIGTERM or SIGINT."""
import os
import signal
import threading

import boto3
from moto.server import ThreadedMotoServer

namespaces = [n.strip() for n in os.environ.get("CLOUD_MAP_NAMESPACES", "local,demo.local").split(",") if n.strip()]
server = ThreadedMotoServer(ip_address="0.0.0.0", port=5000)
server.start()
client = boto3.client(
    "servicediscovery",
    region_name=os.environ.get("AWS_REGION", "us-east-1"),
    endpoint_url="http://127.0.0.1:5000",
    aws_access_key_id="local",
    aws_secret_access_key="local",
)
for namespace in namespaces:
    client.create_http_namespace(Name=namespace)
print(f"cloudmap: moto on :5000 with the HTTP namespaces {', '.join(namespaces)}", flush=True)
open("/tmp/cloudmap-ready", "w").close()

stop = threading.Event()
for s in (signal.SIGTERM, signal.SIGINT):
    signal.signal(s, lambda *_: stop.set())
stop.wait()
server.stop()
