//go:build cgo && !nopkcs11

package pkcs11

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

// sr_load_error loads path as the module loader would and returns why it
// cannot be used (a copy the caller frees), or NULL when it can: dlerror's
// text lives in a per-thread buffer, so it is copied before returning.
static char *sr_load_error(const char *path) {
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		const char *e = dlerror();
		return strdup(e != NULL ? e : "dlopen failed and gave no reason");
	}
	char *out = NULL;
	if (dlsym(h, "C_GetFunctionList") == NULL) {
		out = strdup("it has no C_GetFunctionList: not a PKCS#11 module");
	}
	dlclose(h);
	return out;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// loadable reports why the dynamic loader cannot use module as a PKCS#11
// module (wrong architecture, a missing dependency, not a shared object,
// no C_GetFunctionList), or nil. crypto11 and miekg/pkcs11 drop the
// loader's reason and say only "failed to open module".
func loadable(module string) error {
	p := C.CString(module)
	defer C.free(unsafe.Pointer(p))
	e := C.sr_load_error(p)
	if e == nil {
		return nil
	}
	defer C.free(unsafe.Pointer(e))
	return fmt.Errorf("pkcs11: module %s cannot be loaded: %w: %w", module, errors.New(C.GoString(e)), ErrInvalid)
}
