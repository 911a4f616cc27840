"""Cloud Map for the local mesh: moto's server on 0.0.0.0:5000 with the HTTP namespace CLOUD_MAP_NAMESPACE
(default `local`) made at start. /tmp/cloudmap-ready exists once the namespace does (the image's health check).
Stops at once on SIGTERM or SIGINT."""
import os
import signal
import threading

import boto3
from moto.server import ThreadedMotoServer

namespace = os.environ.get("CLOUD_MAP_NAMESPACE", "local")
server = ThreadedMotoServer(ip_address="0.0.0.0", port=5000)
server.start()
client = boto3.client(
    "servicediscovery",
    region_name=os.environ.get("AWS_REGION", "us-east-1"),
    endpoint_url="http://127.0.0.1:5000",
    aws_access_key_id="local",
    aws_secret_access_key="local",
)
client.create_http_namespace(Name=namespace)
print(f"cloudmap: moto on :5000 with the HTTP namespace {namespace}", flush=True)
open("/tmp/cloudmap-ready", "w").close()

stop = threading.Event()
for s in (signal.SIGTERM, signal.SIGINT):
    signal.signal(s, lambda *_: stop.set())
stop.wait()
server.stop()
