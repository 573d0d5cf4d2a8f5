package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/ktstr-go/ktstr/pkg/cmdutil"
	"github.com/ktstr-go/ktstr/pkg/kernel"
)

// resolveKernel turns --kernel into the bzImage path to boot. A path that
// exists and is not a directory is used as given (run's own checks judge
// it, exit 2 for a bad one). Anything else (a source tree, a cached
// kernel's key or version, or nothing: ./linux, ../linux,
// /lib/modules/$(uname -r)/build, /boot/vmlinuz-$(uname -r)) goes through
// kernel.Resolve, and ktstr-boot says on stderr which kernel it picked.
// A cached kernel stays marked in use (ktstr-kernel gc keeps it) until
// release is called.
func resolveKernel(spec string) (path string, release func(), err error) {
	if st, err := os.Stat(spec); spec != "" && err == nil && !st.IsDir() {
		return spec, func() {}, nil
	}
	k, release, err := kernel.Resolve(spec, kernel.ResolveOptions{CacheDir: os.Getenv("KTSTR_KERNEL_CACHE_DIR")})
	if err != nil {
		if spec == "" {
			return "", release, cmdutil.UsageError("--kernel not given (nor KTSTR_KERNEL) and %v", err)
		}
		return "", release, cmdutil.UsageError("--kernel %s: %v", spec, err)
	}
	fmt.Fprintf(os.Stderr, "ktstr-boot: kernel %s (from %s)\n", k.BzImage, k.How)
	if spec == "" {
		// Picked from the default places (often a distribution kernel):
		// say now if it cannot boot to a verdict, rather than time out.
		if cfg, src, err := kernel.LoadConfig(k.BzImage); err == nil {
			if lack := kernel.Check(cfg, src, true).Lacking(kernel.Boot); len(lack) > 0 {
				fmt.Fprintf(os.Stderr, "ktstr-boot: warning: this kernel lacks %s: expect no frames (ktstr-kernel check %s)\n", strings.Join(lack, "; "), k.BzImage)
			}
		}
	}
	return k.BzImage, release, nil
}
