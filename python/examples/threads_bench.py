"""Two-thread scaling of the bindings: two layer applies (or two blob ingests) one after
the other, then on two threads at once, each in a fresh store; prints the medians and
the speed-up. The GIL is released inside every call, so two threads can use both cores;
``digest`` (sha256 of the blob in memory, no I/O) shows the ceiling of two cores.

    python threads_bench.py LAYER_A LAYER_B BLOB SCRATCH_DIR [RUNS]
"""

import shutil
import statistics
import sys
import threading
import time

import cargohold


def fresh(scratch, kind):
    shutil.rmtree(f"{scratch}/store", ignore_errors=True)
    if kind == "digest":
        return None
    if kind == "apply":
        return cargohold.LayerStore(f"{scratch}/store", driver="vfs")
    return cargohold.Registry(f"{scratch}/store")


def call(store, kind, src, n):
    if kind == "apply":
        store.apply_layer(src)
    elif kind == "digest":
        cargohold.digest_bytes(src)
    else:
        store.put_blob(f"bench/b{n}", src)


def once(scratch, kind, inputs, parallel):
    store = fresh(scratch, kind)
    t = time.perf_counter()
    if parallel:
        ts = [threading.Thread(target=call, args=(store, kind, s, n)) for n, s in enumerate(inputs)]
        for x in ts:
            x.start()
        for x in ts:
            x.join()
    else:
        for n, s in enumerate(inputs):
            call(store, kind, s, n)
    elapsed = time.perf_counter() - t
    if store is not None:
        store.close()
    return elapsed * 1000


def main():
    a, b, blob, scratch = sys.argv[1:5]
    runs = int(sys.argv[5]) if len(sys.argv) > 5 else 5
    data = open(blob, "rb").read()
    cases = (("apply", [a, b]), ("blob", [blob, blob]), ("digest", [data, data]))
    for kind, inputs in cases:
        seq, par = [], []
        for _ in range(runs):
            seq.append(once(scratch, kind, inputs, False))
            par.append(once(scratch, kind, inputs, True))
        s, p = statistics.median(seq), statistics.median(par)
        print(f"{kind}: sequential {s:.0f} ms, two threads {p:.0f} ms, speed-up {s / p:.2f}x")
    shutil.rmtree(f"{scratch}/store", ignore_errors=True)


if __name__ == "__main__":
    main()
