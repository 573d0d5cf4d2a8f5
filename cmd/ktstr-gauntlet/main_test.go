package main

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/ktstr-go/ktstr/pkg/gauntlet"
)

// TestManPage: man/ktstr-gauntlet.1 documents every flag and exit
// status, and man/ktstr-suite.5 every suite field.
func TestManPage(t *testing.T) {
	b, err := os.ReadFile("../../man/ktstr-gauntlet.1")
	if err != nil {
		t.Fatal(err)
	}
	man := string(b)
	for _, f := range app().Flags {
		for _, n := range f.Names() {
			want := `\-\-` + strings.ReplaceAll(n, "-", `\-`)
			if len(n) == 1 {
				want = `\-` + n
			}
			if !strings.Contains(man, want) {
				t.Errorf("flag %s is not in the man page", want)
			}
		}
	}
	for _, c := range []int{gauntlet.ExitPass, gauntlet.ExitFail, gauntlet.ExitUsage, gauntlet.ExitNoVerdict, gauntlet.ExitError} {
		if !strings.Contains(man, fmt.Sprintf(".TP\n.B %d\n", c)) {
			t.Errorf("exit status %d is not in the man page", c)
		}
	}
	for _, f := range []string{"run.json", "meta.json", "stream.ktstr", "verdict.json", "console.txt", "plan.json", "variants.txt", "slurm.sh"} {
		if !strings.Contains(man, f) {
			t.Errorf("RUN DIRECTORY does not name %s", f)
		}
	}
	b, err = os.ReadFile("../../man/ktstr-suite.5")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"schedulers", "name", "binary", "args", "scenarios", "presets", "kernels", "repetitions", "memory", "timeout", "vmm", "append", "boot_s"} {
		if !strings.Contains(string(b), ".B "+strings.ReplaceAll(f, "-", `\-`)+"\n") {
			t.Errorf("suite field %s is not documented in ktstr-suite.5", f)
		}
	}
}
