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

type stages struct {
	seen map[string]bool
}

//export goStage
func goStage(ctx unsafe.Pointer, stage *C.char, done C.uint64_t, total C.uint64_t) {
	s := (*(*cgo.Handle)(ctx)).Value().(*stages)
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	s.seen[C.GoString(stage)] = true
}

type progress struct {
	calls uint64
	last  uint64
}

//export goRead
func goRead(ctx unsafe.Pointer, buf *C.uint8_t, n C.size_t) C.ssize_t {
	f := (*(*cgo.Handle)(ctx)).Value().(*os.File)
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
	p := (*(*cgo.Handle)(ctx)).Value().(*progress)
	p.calls++
	p.last = uint64(done)
}
