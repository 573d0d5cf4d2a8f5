package kernel

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// PrintList writes entries as a table: key, version, size, built, last used.
func PrintList(w io.Writer, entries []Entry) {
	if len(entries) == 0 {
		return
	}
	fmt.Fprintf(w, "%-32s %-20s %9s  %-20s  %s\n", "KEY", "VERSION", "SIZE", "BUILT", "LAST USED")
	for _, e := range entries {
		fmt.Fprintf(w, "%-32s %-20s %9s  %-20s  %s\n", e.Key, e.Version, HumanSize(e.Size),
			e.Created.Local().Format("2006-01-02 15:04:05"), e.LastUsed.Local().Format(time.DateTime))
	}
}

// PrintListJSON writes one JSON object per entry.
func PrintListJSON(w io.Writer, entries []Entry) error {
	enc := json.NewEncoder(w)
	for _, e := range entries {
		v := struct {
			Entry
			Dir      string    `json:"dir"`
			Size     int64     `json:"size"`
			LastUsed time.Time `json:"last_used"`
		}{e, e.Dir, e.Size, e.LastUsed}
		if err := enc.Encode(v); err != nil {
			return err
		}
	}
	return nil
}

// PrintKernel writes a resolved kernel: the bzImage path alone, or with
// all set, one "name path" line per file found.
func PrintKernel(w io.Writer, k Kernel, all bool) {
	if !all {
		fmt.Fprintln(w, k.BzImage)
		return
	}
	for _, f := range []struct{ name, path string }{
		{"bzImage", k.BzImage}, {"vmlinux", k.Vmlinux}, {"System.map", k.SystemMap}, {"config", k.Config},
	} {
		if f.path != "" {
			fmt.Fprintf(w, "%-10s %s\n", f.name, f.path)
		}
	}
}

// HumanSize formats n bytes with a binary unit.
func HumanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
