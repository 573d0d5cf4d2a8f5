package lockfile

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestLock(t *testing.T) {
	p := filepath.Join(t.TempDir(), "k.lock")
	release, err := Lock(p, unix.LOCK_EX)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := TryLock(p); ok {
		t.Fatal("TryLock took a held lock")
	}
	// A waiter blocks until the holder releases.
	got := make(chan func(), 1)
	go func() { r, _ := Lock(p, unix.LOCK_EX); got <- r }()
	select {
	case <-got:
		t.Fatal("Lock did not wait for the holder")
	case <-time.After(100 * time.Millisecond):
	}
	release()
	select {
	case r := <-got:
		r()
	case <-time.After(5 * time.Second):
		t.Fatal("Lock still waiting after release")
	}
	// A collector removes the file while holding it: a waiter that locked
	// the removed file starts over on the new one.
	hold, _ := Lock(p, unix.LOCK_EX)
	go func() { r, _ := Lock(p, unix.LOCK_SH); got <- r }()
	time.Sleep(50 * time.Millisecond)
	os.Remove(p)
	hold()
	select {
	case r := <-got:
		f, _ := os.Open(p)
		if f == nil || !SameFile(f, p) {
			t.Fatal("the waiter holds a removed file")
		}
		f.Close()
		r()
	case <-time.After(5 * time.Second):
		t.Fatal("waiter never got the lock")
	}
	r, ok := TryLock(p)
	if !ok {
		t.Fatal("TryLock failed on a free lock")
	}
	r()
}
