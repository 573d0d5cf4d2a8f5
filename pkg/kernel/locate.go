package kernel

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Kernel is a resolved kernel: its bzImage and the companions found for
// it ("" where none was found).
type Kernel struct {
	BzImage   string `json:"bzimage"`
	Vmlinux   string `json:"vmlinux,omitempty"`
	SystemMap string `json:"system_map,omitempty"`
	Config    string `json:"config,omitempty"`
	// How is the rule that found it ("path", "source tree", "cache", "./linux", ...).
	How string `json:"how"`
	// Entry is the cache entry's key when the kernel came from the cache.
	Entry string `json:"entry,omitempty"`
}

// Companions fills in the vmlinux, System.map and config that belong to
// the bzImage at path, looking (first found wins):
//   - for .../arch/x86/boot/bzImage: the source tree's vmlinux,
//     System.map and .config;
//   - for DIR/vmlinuz-VERSION (or bzImage-VERSION): DIR/vmlinux-VERSION,
//     /usr/lib/debug/boot/vmlinux-VERSION,
//     /usr/lib/debug/lib/modules/VERSION/vmlinux, DIR/System.map-VERSION,
//     DIR/config-VERSION;
//   - beside it: DIR/vmlinux, DIR/System.map, DIR/config, DIR/.config
//     (a cache entry, the fixture kernel).
//
// Only regular files count. path is made absolute.
func Companions(path string) Kernel {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	k := Kernel{BzImage: abs}
	dir, base := filepath.Dir(abs), filepath.Base(abs)
	var vml, smap, cfg []string
	if strings.HasSuffix(abs, filepath.Join("arch", "x86", "boot", "bzImage")) || strings.HasSuffix(abs, filepath.Join("arch", "x86_64", "boot", "bzImage")) {
		root := filepath.Dir(filepath.Dir(filepath.Dir(dir)))
		vml = append(vml, filepath.Join(root, "vmlinux"))
		smap = append(smap, filepath.Join(root, "System.map"))
		cfg = append(cfg, filepath.Join(root, ".config"))
	}
	for _, pre := range []string{"vmlinuz-", "bzImage-"} {
		if v, ok := strings.CutPrefix(base, pre); ok && v != "" {
			vml = append(vml, filepath.Join(dir, "vmlinux-"+v), filepath.Join("/usr/lib/debug/boot", "vmlinux-"+v),
				filepath.Join("/usr/lib/debug/lib/modules", v, "vmlinux"))
			smap = append(smap, filepath.Join(dir, "System.map-"+v))
			cfg = append(cfg, filepath.Join(dir, "config-"+v))
		}
	}
	vml = append(vml, filepath.Join(dir, "vmlinux"))
	smap = append(smap, filepath.Join(dir, "System.map"))
	cfg = append(cfg, filepath.Join(dir, "config"), filepath.Join(dir, ".config"))
	k.Vmlinux, k.SystemMap, k.Config = firstFile(vml), firstFile(smap), firstFile(cfg)
	return k
}

func firstFile(paths []string) string {
	for _, p := range paths {
		if isFile(p) {
			return p
		}
	}
	return ""
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// LoadConfig reads the configuration of the kernel at path (a bzImage or
// vmlinux): the IKCONFIG copy inside the image first, else the config
// file Companions finds beside it. source says where it came from.
func LoadConfig(path string) (cfg Config, source string, err error) {
	cfg, comp, ikErr := ReadIKConfig(path)
	if ikErr == nil {
		return cfg, fmt.Sprintf("IKCONFIG inside %s (%s payload)", path, comp), nil
	}
	var uce *UnsupportedCompressionError
	if errors.Is(ikErr, ErrNotKernel) {
		// A .config given directly, or gzipped (/proc/config.gz).
		if cfg, err := ReadConfigFile(path); err == nil {
			return cfg, path, nil
		}
		if f, _, err := openRegular(path); err == nil {
			cfg, err := gunzipConfig(f)
			f.Close()
			if err == nil {
				return cfg, path, nil
			}
		}
		return nil, "", fmt.Errorf("%s: not a bzImage, ELF vmlinux or kernel .config (plain or gzipped)", path)
	}
	if errors.Is(ikErr, os.ErrNotExist) || errors.Is(ikErr, os.ErrPermission) {
		return nil, "", ikErr
	}
	c := Companions(path).Config
	if c == "" {
		if errors.As(ikErr, &uce) {
			return nil, "", fmt.Errorf("%s: %w", path, ikErr)
		}
		return nil, "", fmt.Errorf("%s: %v, and no config, .config or config-VERSION beside it: copy the kernel's .config there", path, ikErr)
	}
	cfg, err = ReadConfigFile(c)
	if err != nil {
		return nil, "", err
	}
	return cfg, fmt.Sprintf("%s (the image itself: %v)", c, ikErr), nil
}

// ReadConfigFile parses the .config at path.
func ReadConfigFile(path string) (Config, error) {
	f, _, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cfg, err := ParseConfig(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}
