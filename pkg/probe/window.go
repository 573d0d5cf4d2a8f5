package probe

// window keeps the events a timeline needs: the last Before events up to
// the first trigger, the trigger, and at most After events past it.
// Everything else is counted, not kept.
type window struct {
	before, after int
	ring          []rawEvent // the last events before the trigger, circular
	next          int        // ring's oldest slot once it is full
	full          bool
	tail          []rawEvent // the trigger and what came after it
	triggered     bool
	seen          uint64
}

func newWindow(before, after int) *window {
	return &window{before: max(before, 1), after: max(after, 0)}
}

func (w *window) push(ev rawEvent, trigger bool) {
	w.seen++
	switch {
	case w.triggered:
		if len(w.tail) <= w.after {
			w.tail = append(w.tail, ev)
		}
	case trigger:
		w.triggered = true
		w.tail = append(w.tail, ev)
	case len(w.ring) < w.before:
		w.ring = append(w.ring, ev)
	default:
		w.ring[w.next] = ev
		w.next = (w.next + 1) % w.before
		w.full = true
	}
}

// events returns what is kept, oldest first.
func (w *window) events() []rawEvent {
	out := make([]rawEvent, 0, len(w.ring)+len(w.tail))
	if w.full {
		out = append(out, w.ring[w.next:]...)
		out = append(out, w.ring[:w.next]...)
	} else {
		out = append(out, w.ring...)
	}
	return append(out, w.tail...)
}
