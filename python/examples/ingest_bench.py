"""The Python side of the binding overhead measurement (see ingest_bench.rs): one timed
call, printed in milliseconds.

    python ingest_bench.py apply|blob INPUT DIR [path|file]

``path`` hands the binding the file name (Rust opens it); ``file`` hands it an open
Python file object (read through ``.read(n)`` with the GIL taken per call).
"""

import sys
import time

import cargohold


def main():
    mode, src, root = sys.argv[1:4]
    how = sys.argv[4] if len(sys.argv) > 4 else "path"
    f = open(src, "rb") if how == "file" else None
    arg = f if f is not None else src
    if mode == "apply":
        store = cargohold.LayerStore(root, driver="vfs")
        t = time.perf_counter()
        store.apply_layer(arg)
    else:
        store = cargohold.Registry(root)
        t = time.perf_counter()
        store.put_blob("bench/blob", arg)
    elapsed = time.perf_counter() - t
    print(f"{elapsed * 1000:.1f}")
    store.close()


if __name__ == "__main__":
    main()
