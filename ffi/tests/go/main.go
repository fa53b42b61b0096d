// The lifecycle of an embedder through the C API, from Go with cgo: the same steps as
// the C program (layers from a descriptor and a read callback, a container mounted,
// written, diffed and committed, a volume used, exported and imported, a blob and a
// manifest pushed, an OCI layout exported with progress and imported back).
//
// Usage: lifecycle WORKDIR vfs|overlay
package main

/*
#cgo CFLAGS: -I${SRCDIR}/../../../include
#include <stdlib.h>
#include "cargohold.h"

extern ssize_t goRead(void *ctx, uint8_t *buf, size_t len);
extern void goProgress(void *ctx, uint64_t done, uint64_t total);
extern void goStage(void *ctx, const char *stage, uint64_t done, uint64_t total);
*/
import "C"

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/cgo"
	"strings"
	"unsafe"
)

var work string

// callErr turns a status and error object into a Go error (and frees the object).
func callErr(what string, st C.enum_cargohold_status, err *C.cargohold_error) error {
	if st == C.CARGOHOLD_STATUS_OK {
		return nil
	}
	defer C.cargohold_error_free(err)
	kind := C.GoString(C.cargohold_status_name(st))
	msg := ""
	if err != nil {
		msg = C.GoString(C.cargohold_error_message(err))
	}
	return fmt.Errorf("%s: %s (%s)", what, kind, msg)
}

func must(what string, st C.enum_cargohold_status, err *C.cargohold_error) {
	if e := callErr(what, st, err); e != nil {
		fmt.Fprintln(os.Stderr, "FAIL", e)
		os.Exit(1)
	}
}

func require(cond bool, what string) {
	if !cond {
		fmt.Fprintln(os.Stderr, "FAIL", what)
		os.Exit(1)
	}
}

// Callbacks get their Go value through a cgo.Handle passed as a pointer to the
// handle: Go memory without Go pointers, which C may use during the call only (the
// header promises no callback after the call returns).

// take copies a returned string and frees it.
func take(p *C.char) string {
	s := C.GoString(p)
	C.cargohold_string_free(p)
	return s
}

type cstrings []*C.char

func (c *cstrings) s(v string) *C.char {
	p := C.CString(v)
	*c = append(*c, p)
	return p
}

func (c cstrings) free() {
	for _, p := range c {
		C.free(unsafe.Pointer(p))
	}
}

func in(name string) string { return filepath.Join(work, name) }

func layers(driver string) {
	var cs cstrings
	defer cs.free()
	d := C.uint32_t(C.CARGOHOLD_LAYER_DRIVER_VFS)
	if driver == "overlay" {
		d = C.CARGOHOLD_LAYER_DRIVER_OVERLAY
	}
	var store *C.cargohold_layer_store
	var err *C.cargohold_error
	must("open layers", C.cargohold_layer_store_open(cs.s(in("layers")), d, &store, &err), err)

	f, e := os.Open(in("base.tar"))
	require(e == nil, "open base.tar")
	var base *C.char
	must("apply fd", C.cargohold_layer_apply_fd(store, C.int(f.Fd()), nil, nil, nil, nil, &base, &err), err)
	f.Close()

	f, e = os.Open(in("changes.tar"))
	require(e == nil, "open changes.tar")
	h := cgo.NewHandle(f)
	var changes *C.char
	must("apply read", C.cargohold_layer_apply_read(store, C.cargohold_read_fn(C.goRead),
		unsafe.Pointer(&h), base, nil, &changes, &err), err)
	h.Delete()
	f.Close()

	st := C.cargohold_layer_remove(store, base, &err)
	require(st == C.CARGOHOLD_STATUS_IN_USE, "removing a parent is IN_USE")
	require(C.GoString(C.cargohold_error_kind_name(err)) == "in_use", "kind name")
	C.cargohold_error_free(err)
	err = nil

	key := cs.s("c1")
	must("prepare", C.cargohold_container_prepare(store, key, changes, nil, &err), err)
	mnt := in("mnt")
	require(os.Mkdir(mnt, 0o755) == nil, "mkdir mnt")
	must("mount", C.cargohold_container_mount(store, key, cs.s(mnt), &err), err)
	b, e := os.ReadFile(filepath.Join(mnt, "etc/changed.txt"))
	require(e == nil && string(b) == "changed\n", "the second layer is visible")
	require(os.WriteFile(filepath.Join(mnt, "hello.txt"), []byte("hello from Go\n"), 0o644) == nil, "write")
	must("unmount", C.cargohold_container_unmount(store, cs.s(mnt), &err), err)

	out, e := os.Create(in("c1-diff.tar"))
	require(e == nil, "create diff")
	var size C.uint64_t
	must("diff", C.cargohold_container_diff_fd(store, key, C.int(out.Fd()), nil, &size, &err), err)
	out.Close()
	require(size > 0, "a diff was written")

	var top *C.char
	must("commit", C.cargohold_container_commit(store, key, &top, &err), err)
	var list *C.char
	must("list", C.cargohold_layer_list(store, &list, &err), err)
	l := take(list)
	bs, cs2, ts := take(base), take(changes), take(top)
	require(strings.Contains(l, bs) && strings.Contains(l, cs2) && strings.Contains(l, ts), "list")
	fmt.Printf("layers %s %s %s\n", bs, cs2, ts)
	require(C.cargohold_layer_store_free(store) == C.CARGOHOLD_STATUS_OK, "free")
}

func volumes() {
	var cs cstrings
	defer cs.free()
	var vs *C.cargohold_volume_store
	var err *C.cargohold_error
	must("open volumes", C.cargohold_volume_store_open(cs.s(in("volumes")), &vs, &err), err)
	name, id := cs.s("data"), cs.s("c1")
	must("create", C.cargohold_volume_create(vs, name, nil, cs.s(`{"app":"lifecycle"}`), nil, &err), err)
	var p *C.char
	must("mount", C.cargohold_volume_mount(vs, name, id, &p, &err), err)
	require(os.WriteFile(filepath.Join(take(p), "note.txt"), []byte("kept\n"), 0o644) == nil, "write")
	must("unmount", C.cargohold_volume_unmount(vs, name, id, &err), err)

	out, e := os.Create(in("data.tar"))
	require(e == nil, "create data.tar")
	must("export", C.cargohold_volume_export_fd(vs, name, C.int(out.Fd()), &err), err)
	out.Close()
	var anon *C.char
	must("create anonymous", C.cargohold_volume_create(vs, nil, nil, nil, &anon, &err), err)
	f, _ := os.Open(in("data.tar"))
	must("import", C.cargohold_volume_import_fd(vs, anon, C.int(f.Fd()), &err), err)
	f.Close()
	must("path", C.cargohold_volume_path(vs, anon, &p, &err), err)
	b, e := os.ReadFile(filepath.Join(take(p), "note.txt"))
	require(e == nil && string(b) == "kept\n", "import restored the file")
	var report *C.char
	must("prune", C.cargohold_volume_prune(vs, false, &report, &err), err)
	an := take(anon)
	require(strings.Contains(take(report), an), "prune removed the anonymous volume")
	require(C.cargohold_volume_store_free(vs) == C.CARGOHOLD_STATUS_OK, "free")
}

func putFile(reg *C.cargohold_registry, repo *C.char, path string) (string, uint64) {
	f, e := os.Open(path)
	require(e == nil, "open "+path)
	defer f.Close()
	var d *C.char
	var size C.uint64_t
	var err *C.cargohold_error
	must("put blob", C.cargohold_blob_put_fd(reg, repo, C.int(f.Fd()), nil, nil, nil, &d, &size, &err), err)
	return take(d), uint64(size)
}

func registry() {
	var cs cstrings
	defer cs.free()
	var reg *C.cargohold_registry
	var err *C.cargohold_error
	must("open registry", C.cargohold_registry_open(cs.s(in("registry")), &reg, &err), err)
	repo := cs.s("lab/app")
	cfgPath := in("config.json")
	require(os.WriteFile(cfgPath, []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`), 0o644) == nil, "config")
	cfg, cfgSize := putFile(reg, repo, cfgPath)
	layer, layerSize := putFile(reg, repo, in("base.tar"))

	// The same layer again as a resumable upload read through a Go callback: the
	// registry already has it, and the commit names the same digest.
	var id *C.char
	must("upload start", C.cargohold_upload_start(reg, repo, &id, &err), err)
	f, e := os.Open(in("base.tar"))
	require(e == nil, "open base.tar")
	h := cgo.NewHandle(f)
	var offset C.uint64_t
	must("upload append", C.cargohold_upload_append_read(reg, repo, id, 0,
		C.cargohold_read_fn(C.goRead), unsafe.Pointer(&h), &offset, &err), err)
	h.Delete()
	f.Close()
	require(uint64(offset) == layerSize, "the upload has every byte")
	must("upload commit", C.cargohold_upload_commit(reg, repo, id, cs.s(layer), nil, &err), err)
	C.cargohold_string_free(id)
	var size C.uint64_t
	must("stat", C.cargohold_blob_stat(reg, repo, cs.s(layer), &size, &err), err)
	require(uint64(size) == layerSize, "stat size")

	manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}`,
		cfg, cfgSize, layer, layerSize)
	data := C.CBytes([]byte(manifest))
	defer C.free(data)
	var md *C.char
	must("put manifest", C.cargohold_manifest_put(reg, repo, cs.s("v1"), (*C.uint8_t)(data),
		C.size_t(len(manifest)), nil, &md, &err), err)
	mdigest := take(md)
	var got *C.uint8_t
	var n C.size_t
	must("get manifest", C.cargohold_manifest_get(reg, repo, cs.s("v1"), &got, &n, nil, &err), err)
	require(C.GoStringN((*C.char)(unsafe.Pointer(got)), C.int(n)) == manifest, "manifest round trip")
	C.cargohold_bytes_free(got, n)
	var tags *C.char
	must("tags", C.cargohold_registry_tags(reg, repo, &tags, &err), err)
	require(take(tags) == `["v1"]`, "tags")

	p := &progress{}
	h = cgo.NewHandle(p)
	oci := cs.s(in("oci"))
	must("export", C.cargohold_oci_export(reg, repo, cs.s("v1"), oci, cs.s("v1"),
		C.cargohold_progress_fn(C.goProgress), unsafe.Pointer(&h), &err), err)
	h.Delete()
	require(p.calls == 2 && p.last == cfgSize+layerSize, "export progress")
	var imported *C.char
	must("import", C.cargohold_oci_import(reg, oci, cs.s("v1"), cs.s("lab/copy"), cs.s("latest"),
		nil, nil, &imported, &err), err)
	require(take(imported) == mdigest, "import keeps the digest")
	// A dry-run collection reports its stages through a Go callback that receives a
	// static C string.
	st := &stages{}
	hs := cgo.NewHandle(st)
	var report *C.char
	must("gc", C.cargohold_registry_gc(reg, C.CARGOHOLD_GC_DRY_RUN, 0,
		C.cargohold_stage_fn(C.goStage), unsafe.Pointer(&hs), &report, &err), err)
	hs.Delete()
	require(strings.Contains(take(report), `"blobs_deleted":[]`), "nothing to collect")
	require(st.seen["mark"] && st.seen["sweep"], "gc reported both stages")
	fmt.Printf("registry %s %s\n", mdigest, layer)
	require(C.cargohold_registry_free(reg) == C.CARGOHOLD_STATUS_OK, "free")
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: lifecycle WORKDIR vfs|overlay")
		os.Exit(2)
	}
	work = os.Args[1]
	layers(os.Args[2])
	volumes()
	registry()
	fmt.Println("lifecycle ok")
}
