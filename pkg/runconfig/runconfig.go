package runconfig

import (
	"encoding/json"
	"fmt"
)

// Fixed paths inside the initramfs.
const (
	// Path is the run-configuration file.
	Path = "/etc/ktstr/run.json"
	// SchedulerPath is where the scheduler binary given to
	// ktstr-mkinitramfs --scheduler is packed.
	SchedulerPath = "/usr/lib/ktstr/scheduler"
	// ScenarioPath is where the scenario file is packed.
	ScenarioPath = "/etc/ktstr/scenario.json"
	// InitPath is the guest init.
	InitPath = "/init"
)

// CurrentVersion is the version of the file's schema this build writes.
const CurrentVersion = 1

// Scheduler describes the sched_ext scheduler to start. A nil Scheduler in
// Config means an EEVDF baseline run.
type Scheduler struct {
	// Name is a display name (the --scheduler file's base name).
	Name string `json:"name"`
	// Path is the binary's path inside the archive.
	Path string `json:"path"`
	// Args are the arguments given after -- to ktstr-mkinitramfs.
	Args []string `json:"args,omitempty"`
}

// Config is the run configuration. Fields left zero take the guest's
// documented defaults; the kernel command line may override them.
type Config struct {
	Version   int        `json:"version"`
	Scheduler *Scheduler `json:"scheduler,omitempty"`
	// Scenario is the scenario file's path inside the archive; empty
	// means the guest's default scenario.
	Scenario string `json:"scenario,omitempty"`
	// ScenarioName is the catalog name the scenario came from, if any.
	ScenarioName string `json:"scenario_name,omitempty"`
	// AttachTimeoutMS bounds the wait for the scheduler to attach.
	AttachTimeoutMS int `json:"attach_timeout_ms,omitempty"`
	// Env is extra environment for the scheduler and payloads.
	Env map[string]string `json:"env,omitempty"`
}

// Marshal encodes c deterministically (fixed field order, sorted map keys,
// trailing newline) so that identical configs give identical archives.
func Marshal(c *Config) ([]byte, error) {
	if c.Version == 0 {
		c.Version = CurrentVersion
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode run configuration: %w", err)
	}
	return append(b, '\n'), nil
}

// Unmarshal decodes a run configuration and rejects versions newer than
// this build understands.
func Unmarshal(b []byte) (*Config, error) {
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("decode run configuration: %w", err)
	}
	if c.Version > CurrentVersion {
		return nil, fmt.Errorf("run configuration version %d is newer than this init understands (%d): rebuild the initramfs with a matching ktstr", c.Version, CurrentVersion)
	}
	return &c, nil
}
