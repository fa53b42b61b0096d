package main

/*
#include <stdint.h>
#include <sys/types.h>
*/
import "C"

import (
	"io"
	"os"
	"runtime/cgo"
	"unsafe"
)

type progress struct {
	calls uint64
	last  uint64
}

//export goRead
func goRead(ctx unsafe.Pointer, buf *C.uint8_t, n C.size_t) C.ssize_t {
	f := cgo.Handle(uintptr(ctx)).Value().(*os.File)
	b := unsafe.Slice((*byte)(unsafe.Pointer(buf)), int(n))
	got, err := f.Read(b)
	if err == io.EOF {
		return 0
	}
	if err != nil {
		return -5 // EIO
	}
	return C.ssize_t(got)
}

//export goProgress
func goProgress(ctx unsafe.Pointer, done C.uint64_t, total C.uint64_t) {
	p := cgo.Handle(uintptr(ctx)).Value().(*progress)
	p.calls++
	p.last = uint64(done)
}
