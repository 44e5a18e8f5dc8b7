"""A multi-layer OCI image layout built on the spot (no network), for the skopeo copy workload.

Each repetition gets an image of its own: the layers are tar archives of the same random data, but each
begins with a small file naming the repetition, so all its digests are new to both registries (no
registry can skip an upload it already has, and skopeo's blob-info cache knows no place to mount from).
Layers are plain (uncompressed) tar, so the diff IDs are the layer digests and building costs one copy.
"""

import hashlib
import io
import json
import os
import tarfile

LAYER_MEDIA = "application/vnd.oci.image.layer.v1.tar"


def _write_layer(path, rep, index, data_path, data_len):
    """A tar with a tiny marker file and `data_len` bytes of `data_path`; returns (digest, size)."""
    with open(path, "wb") as raw:
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            marker = f"rep {rep} layer {index}\n".encode()
            info = tarfile.TarInfo(f"layer{index}/marker")
            info.size = len(marker)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(marker))
            info = tarfile.TarInfo(f"layer{index}/data")
            info.size = data_len
            info.mtime = 0
            with open(data_path, "rb") as src:
                tar.addfile(info, src)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return "sha256:" + h.hexdigest(), os.path.getsize(path)


def _put_blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)


def build(layout, rep, data_path, layer_sizes):
    """Writes an OCI layout at `layout` whose image (tag `v1`) has one layer per size in `layer_sizes`,
    cut from the random file `data_path`. Returns the total bytes of its blobs."""
    blobs = os.path.join(layout, "blobs", "sha256")
    os.makedirs(blobs)
    layers = []
    for i, size in enumerate(layer_sizes):
        tmp = os.path.join(layout, f"layer{i}.tmp")
        digest, length = _write_layer(tmp, rep, i, data_path, size)
        os.rename(tmp, os.path.join(blobs, digest.split(":")[1]))
        layers.append({"mediaType": LAYER_MEDIA, "digest": digest, "size": length})
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/true"], "Labels": {"org.example.bench.rep": str(rep)}},
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]},
        "history": [{"created_by": f"layer {i}"} for i in range(len(layers))],
    }
    cdigest, csize = _put_blob(layout, json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdigest, "size": csize},
        "layers": layers,
    }
    mbytes = json.dumps(manifest).encode()
    mdigest, msize = _put_blob(layout, mbytes)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": manifest["mediaType"],
                "digest": mdigest,
                "size": msize,
                "annotations": {"org.opencontainers.image.ref.name": "v1"},
            }
        ],
    }
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    return sum(layer["size"] for layer in layers) + csize + msize
