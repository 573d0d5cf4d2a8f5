package cachedir

import (
	"strings"
	"testing"
)

func TestDir(t *testing.T) {
	for _, c := range []struct{ env, xdg, home, want string }{
		{"/own", "/xdg", "/home/u", "/own"},
		{"", "/xdg", "/home/u", "/xdg/ktstr/blobs"},
		{"", "", "/home/u", "/home/u/.cache/ktstr/blobs"},
	} {
		t.Setenv("KTSTR_TEST_CACHE", c.env)
		t.Setenv("XDG_CACHE_HOME", c.xdg)
		t.Setenv("HOME", c.home)
		if got, err := Dir("KTSTR_TEST_CACHE", "blobs"); err != nil || got != c.want {
			t.Errorf("%+v: %q, %v", c, got, err)
		}
	}
	t.Setenv("KTSTR_TEST_CACHE", "")
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "")
	if _, err := Dir("KTSTR_TEST_CACHE", "blobs"); err == nil || !strings.Contains(err.Error(), "set KTSTR_TEST_CACHE or HOME") {
		t.Errorf("no HOME: %v", err)
	}
}
