package main

import (
	"github.com/ktstr-go/ktstr/pkg/cmdutil"
	"github.com/ktstr-go/ktstr/pkg/perfmode"
	"github.com/ktstr-go/ktstr/pkg/topology"
	"github.com/ktstr-go/ktstr/pkg/vmm"
	"github.com/urfave/cli/v2"
)

// topologyFlag reads --topology, or --cpus as 1n1l<N>c1t. Both at once
// must agree on the vCPU count.
func topologyFlag(c *cli.Context) (*topology.Topology, error) {
	var s topology.Shape
	var err error
	if t := c.String("topology"); t != "" {
		if s, err = topology.Parse(t); err != nil {
			return nil, cmdutil.UsageError("--topology: %v", err)
		}
		if c.IsSet("cpus") && c.Int("cpus") != s.NumCPUs() {
			return nil, cmdutil.UsageError("--cpus %d disagrees with --topology %s (%d vCPUs); give one of them", c.Int("cpus"), s, s.NumCPUs())
		}
	} else if s, err = topology.FromCPUs(c.Int("cpus")); err != nil {
		return nil, cmdutil.UsageError("--cpus: %v", err)
	}
	t, err := topology.New(s)
	if err != nil {
		return nil, cmdutil.UsageError("--topology: %v", err)
	}
	if err := vmm.CheckTopology(t); err != nil {
		return nil, cmdutil.UsageError("--topology: %v", err)
	}
	return t, nil
}

// ExitPerfRefused is the exit code when the host cannot give --perf-mode
// what it needs (man/ktstr-boot.1).
const ExitPerfRefused = 3

// perfFlag plans --perf-mode, or refuses with one line saying why.
func perfFlag(c *cli.Context, vcpus int, mem uint64, reserved []int) (*perfmode.Plan, error) {
	if !c.Bool("perf-mode") {
		return nil, nil
	}
	h, err := perfmode.ReadHost(reserved)
	if err != nil {
		return nil, cmdutil.Exit(ExitPerfRefused, err)
	}
	p, err := perfmode.Check(h, vcpus, mem)
	if err != nil {
		return nil, cmdutil.Exit(ExitPerfRefused, err)
	}
	return p, nil
}
