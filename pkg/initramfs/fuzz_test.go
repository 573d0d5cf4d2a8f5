package initramfs_test

import (
	"path"
	"strings"
	"testing"

	"github.com/ktstr-go/ktstr/pkg/initramfs"
)

func FuzzParseInclude(f *testing.F) {
	for _, s := range []string{"a", "a:/x", "/h/o:/a/b/", ":", "a:b:c", "a:/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		inc, err := initramfs.ParseInclude(s)
		if err != nil {
			return
		}
		if inc.Host == "" || (inc.Archive != "" && !path.IsAbs(inc.Archive)) {
			t.Fatalf("ParseInclude(%q) = %+v", s, inc)
		}
		if !strings.HasPrefix(s, inc.Host) {
			t.Fatalf("host %q is not a prefix of %q", inc.Host, s)
		}
	})
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"1", "1K", "2.5G", "1e3M", "-1", "NaN", "Inf", "1KiBx"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := initramfs.ParseSize(s)
		if err == nil && n < 0 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
	})
}
