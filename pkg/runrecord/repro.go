package runrecord

// Files of a variant whose ktstr-run ran --auto-repro and booted a second
// time (the first run failed because of the scheduler): absent otherwise.
const (
	// ReproStreamFile is the second boot's frame stream, with the
	// auto-repro probe frames (ktstr-run's FILE.repro.ktstr).
	ReproStreamFile = "repro.ktstr"
	// ReproTimelineFile is that stream's timeline as ktstr-decode
	// --timeline prints it.
	ReproTimelineFile = "repro-timeline.txt"
)
