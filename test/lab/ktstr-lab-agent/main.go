// Command ktstr-lab-agent runs inside the nested lab's L1 guest: it opens
// the virtio-serial port named "ktstr-lab" and serves the host's command
// requests (protocol in internal/lab/protocol.go). The L1 init script starts it
// after mounting /proc, /sys, /dev and the 9p shares, and powers L1 off
// when it returns. Built static (CGO_ENABLED=0) by lab.BuildAgent.
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ktstr-go/ktstr/internal/lab"
)

func main() {
	var port string
	for i := 0; i < 100 && port == ""; i++ {
		port = lab.FindPort(lab.AgentPort)
		if port == "" {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if port == "" {
		fmt.Fprintf(os.Stderr, "ktstr-lab-agent: no virtio-serial port named %q\n", lab.AgentPort)
		os.Exit(1)
	}
	f, err := os.OpenFile(port, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ktstr-lab-agent: %v\n", err)
		os.Exit(1)
	}
	var up time.Duration
	if b, err := os.ReadFile("/proc/uptime"); err == nil {
		if s, err := strconv.ParseFloat(strings.Fields(string(b))[0], 64); err == nil {
			up = time.Duration(s * float64(time.Second))
		}
	}
	if err := lab.ServeAgent(f, up); err != nil {
		fmt.Fprintf(os.Stderr, "ktstr-lab-agent: %v\n", err)
		os.Exit(1)
	}
}
