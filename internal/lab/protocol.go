package lab

// The nested lab's command protocol between the host (Nested) and the L1
// agent (ServeAgent), carried over the L1 virtio-serial port named
// AgentPort. Both directions are JSON objects, one per line ("\n"), so a
// message can never be split or merged by the byte stream; byte fields are
// base64 (encoding/json's []byte encoding), so command output of any kind
// survives the trip.
//
//	agent → host, once at start:  {"hello":"ktstr-lab-agent/1","uptime_ms":N}
//	host  → agent, per command:   {"id":N,"cmd":"sh -c text","timeout_ms":N}
//	agent → host, output chunks:  {"id":N,"fd":1|2,"data":"base64"}
//	agent → host, last message:   {"id":N,"done":true,"exit":N,"timed_out":B,"wall_ms":N,"err":"..."}
//
// Output chunks of a command arrive in order and before its "done"
// message. exit is the command's exit status, or -1 when it was killed by
// a signal (timed_out says whether the agent's own timeout killed it); err
// is set when the command could not be started. Lines longer than
// maxAgentLine are a protocol error.

// AgentPort is the name of the L1 virtio-serial port the agent serves.
const AgentPort = "ktstr-lab"

// AgentHello is the agent's greeting and protocol version.
const AgentHello = "ktstr-lab-agent/1"

const maxAgentLine = 8 << 20

type agentRequest struct {
	ID        uint64 `json:"id"`
	Cmd       string `json:"cmd"`
	TimeoutMS int64  `json:"timeout_ms"`
}

type agentMessage struct {
	Hello    string `json:"hello,omitempty"`
	UptimeMS int64  `json:"uptime_ms,omitempty"`
	ID       uint64 `json:"id,omitempty"`
	Fd       int    `json:"fd,omitempty"`
	Data     []byte `json:"data,omitempty"`
	Done     bool   `json:"done,omitempty"`
	Exit     int    `json:"exit"`
	TimedOut bool   `json:"timed_out,omitempty"`
	WallMS   int64  `json:"wall_ms,omitempty"`
	Err      string `json:"err,omitempty"`
}
