package kernel

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

//go:embed ktstr.fragment
var fragment string

// Fragment returns ktstr's kernel configuration fragment (ktstr.fragment).
func Fragment() []byte { return []byte(fragment) }

// BuildOptions configure Build.
type BuildOptions struct {
	Src        string   // kernel source tree (configured and built in place)
	Jobs       int      // make -j; 0: every CPU (runtime.NumCPU)
	Fragments  []string // further fragment files, applied after ktstr's
	KeepConfig bool     // start from the tree's .config instead of defconfig + kvm_guest.config
	ConfigOnly bool     // configure and check, do not build or cache
	Force      bool     // build even if the configuration is unusable
	Baseline   bool     // judge the configuration for EEVDF baselines only
	Make       string   // "": make
	Cache      *Cache
	Log        io.Writer // progress and notes (stderr)
	Terminal   bool      // Log is a terminal: one live progress line
}

// BuildResult is what Build made.
type BuildResult struct {
	Entry   Entry  // the cache entry (zero with ConfigOnly)
	Version string // make kernelversion
	Report  Report // Check of the final .config
	// Unapplied lists fragment lines the tree's Kconfig did not keep
	// (a dependency is missing, or the option does not exist there).
	Unapplied []string
}

// Build configures the source tree (make defconfig, make
// kvm_guest.config, ktstr's fragment and o.Fragments appended, make
// olddefconfig), checks the result, builds bzImage with o.Jobs jobs and
// publishes bzImage, vmlinux, System.map and .config in o.Cache.
func Build(ctx context.Context, o BuildOptions) (BuildResult, error) {
	var res BuildResult
	src, err := filepath.Abs(o.Src)
	if err != nil {
		return res, err
	}
	if !isFile(filepath.Join(src, "Makefile")) || !isFile(filepath.Join(src, "Kconfig")) {
		return res, fmt.Errorf("%s is not a kernel source tree (no Makefile and Kconfig)", src)
	}
	if o.Make == "" {
		o.Make = "make"
	}
	if o.Jobs <= 0 {
		o.Jobs = runtime.NumCPU()
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Cache == nil && !o.ConfigOnly {
		return res, fmt.Errorf("build: no cache to store the kernel in")
	}
	frags := [][]byte{Fragment()}
	for _, f := range o.Fragments {
		b, err := os.ReadFile(f)
		if err != nil {
			return res, fmt.Errorf("--fragment: %w", err)
		}
		if _, err := ParseConfig(bytes.NewReader(b)); err != nil {
			return res, fmt.Errorf("--fragment %s: %w", f, err)
		}
		frags = append(frags, b)
	}
	out, err := runMake(ctx, o, src, "-s", "kernelversion")
	if err != nil {
		return res, err
	}
	lines := strings.Fields(strings.TrimSpace(out))
	if len(lines) == 0 {
		return res, fmt.Errorf("make kernelversion in %s printed nothing", src)
	}
	res.Version = lines[len(lines)-1]

	dotconfig := filepath.Join(src, ".config")
	if !o.KeepConfig || !isFile(dotconfig) {
		// Save the tree's own .config once: a second build must not
		// overwrite the user's configuration with ktstr's.
		if saved := dotconfig + ".before-ktstr"; isFile(dotconfig) && !isFile(saved) {
			if _, err := copyFile(saved+".tmp", dotconfig); err == nil {
				os.Rename(saved+".tmp", saved)
				fmt.Fprintf(o.Log, "ktstr-kernel: the tree's .config is saved as %s\n", saved)
			} else {
				os.Remove(saved + ".tmp")
			}
		}
		for _, target := range []string{"defconfig", "kvm_guest.config"} {
			fmt.Fprintf(o.Log, "ktstr-kernel: make %s\n", target)
			if _, err := runMake(ctx, o, src, target); err != nil {
				return res, err
			}
		}
	}
	f, err := os.OpenFile(dotconfig, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return res, fmt.Errorf("add the fragment: %w", err)
	}
	for _, b := range frags {
		f.Write([]byte("\n"))
		if _, err = f.Write(b); err != nil {
			break
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return res, fmt.Errorf("add the fragment: %w", err)
	}
	fmt.Fprintf(o.Log, "ktstr-kernel: make olddefconfig (with ktstr's fragment)\n")
	if _, err := runMake(ctx, o, src, "olddefconfig"); err != nil {
		return res, err
	}
	cfg, err := ReadConfigFile(dotconfig)
	if err != nil {
		return res, err
	}
	for _, b := range frags {
		res.Unapplied = append(res.Unapplied, unapplied(b, cfg)...)
	}
	for _, u := range res.Unapplied {
		fmt.Fprintf(o.Log, "ktstr-kernel: note: %s\n", u)
	}
	res.Report = Check(cfg, dotconfig, o.Baseline)
	if !res.Report.Usable {
		var buf bytes.Buffer
		res.Report.Print(&buf)
		o.Log.Write(buf.Bytes())
		if cfg.Get("DEBUG_INFO_BTF") != "y" {
			if _, err := exec.LookPath("pahole"); err != nil {
				fmt.Fprintf(o.Log, "ktstr-kernel: CONFIG_DEBUG_INFO_BTF needs pahole on this machine (Debian: apt-get install dwarves)\n")
			}
		}
		if !o.Force && !o.ConfigOnly {
			return res, fmt.Errorf("the configured kernel would be unusable (see above); fix the tree or pass --force to build it anyway")
		}
	}
	if o.ConfigOnly {
		return res, nil
	}
	start := time.Now()
	fmt.Fprintf(o.Log, "ktstr-kernel: building %s with %d jobs\n", res.Version, o.Jobs)
	if err := buildImage(ctx, o, src, start); err != nil {
		return res, err
	}
	files := map[string]string{
		FileBzImage: filepath.Join(src, "arch", "x86", "boot", "bzImage"),
		FileConfig:  dotconfig,
	}
	for name, p := range map[string]string{FileVmlinux: "vmlinux", FileSystemMap: "System.map"} {
		if p := filepath.Join(src, p); isFile(p) {
			files[name] = p
		} else {
			return res, fmt.Errorf("the build left no %s", p)
		}
	}
	res.Entry, err = o.Cache.Publish(res.Version, files, src)
	if err != nil {
		return res, err
	}
	fmt.Fprintf(o.Log, "ktstr-kernel: built %s in %s\n", res.Entry.Key, time.Since(start).Round(time.Second))
	return res, nil
}

// unapplied lists the fragment's assignments the final configuration
// does not have.
func unapplied(frag []byte, cfg Config) []string {
	want, err := ParseConfig(bytes.NewReader(frag))
	if err != nil {
		return nil
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(frag))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if name, val, ok := strings.Cut(line, "="); ok && strings.HasPrefix(name, "CONFIG_") {
			if got := cfg.Get(name); got != val && want.Get(name) == val {
				if got == "" {
					got = "not set"
				} else {
					got = "=" + got
				}
				out = append(out, fmt.Sprintf("%s=%s was asked for but the tree's Kconfig left it %s (a dependency is missing or the option does not exist)", name, val, got))
			}
		} else if sym, ok := strings.CutSuffix(strings.TrimPrefix(line, "# "), " is not set"); ok && strings.HasPrefix(sym, "CONFIG_") {
			if got := cfg.Get(sym); got != "" {
				out = append(out, fmt.Sprintf("%s is not set was asked for but the tree's Kconfig set it =%s", sym, got))
			}
		}
	}
	return out
}

// command runs make in src in its own process group, so that cancelling
// ctx (an interrupt) stops the compilers make started, not only make.
func command(ctx context.Context, o BuildOptions, src string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, o.Make, append([]string{"-C", src}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// runMake runs a short make step and returns its stdout; on failure the
// error carries the end of its output.
func runMake(ctx context.Context, o BuildOptions, src string, args ...string) (string, error) {
	cmd := command(ctx, o, src, args...)
	var stdout, both tailBuffer
	cmd.Stdout = io.MultiWriter(&stdout, &both)
	cmd.Stderr = &both
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("make %s in %s failed (%v):\n%s", strings.Join(args, " "), src, err, both.String())
	}
	return stdout.String(), nil
}

// tailBuffer keeps the last 16 KiB written to it.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 16<<10 {
		t.b = append(t.b[:0], t.b[len(t.b)-16<<10:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// buildImage runs make -jN bzImage, logging everything to a file in the
// cache's tmp/ and showing progress: a live line on a terminal, else a
// line a minute. On failure the error holds the log's end and its path.
func buildImage(ctx context.Context, o BuildOptions, src string, start time.Time) error {
	logf, err := os.CreateTemp(filepath.Join(o.Cache.Dir, "tmp"), "build.*.log")
	if err != nil {
		return fmt.Errorf("build log: %w", err)
	}
	defer logf.Close()
	cmd := command(ctx, o, src, fmt.Sprintf("-j%d", o.Jobs), "bzImage")
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	var tail tailBuffer
	var mu sync.Mutex
	steps, last := 0, ""
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			logf.WriteString(line + "\n")
			tail.Write([]byte(line + "\n"))
			if strings.HasPrefix(line, "  ") && len(line) > 3 && line[2] >= 'A' && line[2] <= 'Z' {
				mu.Lock()
				steps++
				last = strings.Join(strings.Fields(line), " ")
				mu.Unlock()
			}
		}
		io.Copy(io.Discard, pr)
	}()
	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		every := time.Minute
		if o.Terminal {
			every = 250 * time.Millisecond
		}
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				if o.Terminal {
					fmt.Fprint(o.Log, "\r\033[K")
				}
				return
			case <-t.C:
				mu.Lock()
				n, l := steps, last
				mu.Unlock()
				el := time.Since(start).Round(time.Second)
				if o.Terminal {
					if len(l) > 60 {
						l = "..." + l[len(l)-57:]
					}
					fmt.Fprintf(o.Log, "\r\033[K[%s] %d steps  %s", el, n, l)
				} else {
					fmt.Fprintf(o.Log, "ktstr-kernel: building: %s, %d steps, last: %s\n", el, n, l)
				}
			}
		}
	}()
	err = cmd.Start()
	if err == nil {
		err = cmd.Wait()
	}
	pw.Close()
	<-done
	close(stopProgress)
	<-progressDone
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("build interrupted: %w", ctx.Err())
		}
		return fmt.Errorf("make bzImage failed (%v); full log: %s; its end:\n%s", err, logf.Name(), lastLines(tail.String(), 30))
	}
	logf.Close()
	os.Remove(logf.Name())
	return nil
}

func lastLines(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
