#!/usr/bin/python3
"""Fills and inspects an Azurite container for the azure-blob plugin's tests with Microsoft's own
client, Debian's python3-azure (azure.storage.blob), so the plugin is checked against a second
implementation of the protocol, as awscli is for s3. Not a product part.

  blob_tool.py URL create CONTAINER
  blob_tool.py URL upload CONTAINER DIR PREFIX        every file under DIR as PREFIX/<relative path>
  blob_tool.py URL put CONTAINER NAME FILE [k=v ...]  one blob with metadata
  blob_tool.py URL meta CONTAINER NAME                its metadata as JSON
  blob_tool.py URL cat CONTAINER NAME                 its bytes to stdout
  blob_tool.py URL sas CONTAINER                      a container SAS (read, list; 1 hour) to stdout

URL is the account's endpoint (http://127.0.0.1:PORT/devstoreaccount1); the account and key are
Azurite's well-known ones."""
import datetime, json, os, sys
from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas

ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

url, cmd, container = sys.argv[1], sys.argv[2], sys.argv[3]
svc = BlobServiceClient(account_url=url, credential={"account_name": ACCOUNT, "account_key": KEY})
c = svc.get_container_client(container)
if cmd == "create":
    c.create_container()
elif cmd == "upload":
    top, prefix = sys.argv[4], sys.argv[5].strip("/")
    for d, _, files in os.walk(top):
        for f in files:
            path = os.path.join(d, f)
            with open(path, "rb") as data:
                c.upload_blob(prefix + "/" + os.path.relpath(path, top), data, overwrite=True)
elif cmd == "put":
    meta = dict(kv.split("=", 1) for kv in sys.argv[6:])
    with open(sys.argv[5], "rb") as data:
        c.upload_blob(sys.argv[4], data, overwrite=True, metadata=meta)
elif cmd == "meta":
    p = c.get_blob_client(sys.argv[4]).get_blob_properties()
    print(json.dumps({"metadata": p.metadata, "content_type": p.content_settings.content_type}))
elif cmd == "cat":
    sys.stdout.buffer.write(c.download_blob(sys.argv[4]).readall())
elif cmd == "sas":
    print(generate_container_sas(ACCOUNT, container, account_key=KEY, permission=ContainerSasPermissions(read=True, list=True),
                                 expiry=datetime.datetime.utcnow() + datetime.timedelta(hours=1)))
else:
    sys.exit("unknown command " + cmd)
