// Package hostlock owns host reservations for ktstr: which LLCs or CPUs a
// run may use, held with flock(2) on one lock file per LLC and per CPU in
// a directory every user of the host shares, for as long as a command
// runs. It is ktstr-hostlock's logic (cmd/ktstr-hostlock only parses
// flags). What a program run under a reservation uses (reading
// KTSTR_CPUS, pinning threads) is pkg/cpupin's.
//
// # Lock files
//
// The directory is $KTSTR_LOCK_DIR, else /run/ktstr/locks when writable
// (or creatable), else $XDG_RUNTIME_DIR/ktstr; it is created mode 1777
// (missing parents 0755) and lock files 0666, both set with chmod after
// creation because the umask would strip them. Files are opened with
// O_NOFOLLOW|O_CLOEXEC, existing ones without O_CREAT (fs.protected_regular
// refuses O_CREAT on other users' files in sticky directories), and a
// symlink, non-regular file or multiply-linked file is refused with an
// error naming it. Network file systems are refused.
//
//	llc-<i>.lock   LLC i (numbered by lowest CPU, see hosttopo)
//	cpu-<c>.lock   CPU c
//	queue.lock     the waiting queue (below)
//
// Modes: --llcs N takes LOCK_EX on N LLC files (LOCK_SH with --shared);
// --cpus N takes LOCK_EX on N CPU files plus LOCK_SH on each one's LLC
// file, so CPU holders share LLCs with each other and with shared LLC
// holders but exclude, and are excluded by, exclusive LLC holders;
// --cpu-cap takes LOCK_SH on enough LLC files to cover the budget. No two
// exclusive holders can therefore ever overlap: that rests on the kernel's
// flock alone, not on anything this package computes.
//
// Holders write a JSON line (pid, mode, request, CPUs, since, command)
// into each lock file they hold: exclusive holders replace the contents,
// shared ones append. Status believes a line only while /proc/locks shows
// that pid holding that file (matched by device and inode), so lines left
// by finished or killed holders never mislead; when /proc/locks cannot be
// read it falls back to try-locks on a separate open file description.
//
// # Selection
//
// Candidates are the LLCs (or CPUs) with CPUs this process may run on,
// optionally only on one NUMA node, in order node by node, LLC by LLC,
// SMT siblings together. One non-blocking pass try-locks them node by
// node and stops as soon as one node alone has enough: free LLCs are
// preferred to busy ones automatically, and one NUMA node to several.
// For --cpus and --cpu-cap the pass covers the whole node and the choice
// packs into the LLCs with the most free CPUs. Anything taken but not
// chosen is released at once.
//
// # Waiting
//
// Waiting must not poll and must not wake a herd, must be fair, must be
// deadlock-free, and must end at --timeout. The scheme:
//
//  1. A requester first takes queue.lock with LOCK_EX. Uncontended this
//     is one non-blocking flock. Contended, it blocks in the kernel: since
//     Linux 5.1 blocked flock requests form a tree in which each new
//     conflicting waiter queues behind the previous one, so a release wakes
//     only the next requester (which, on taking the lock, moves the one
//     after it to wait on itself): O(1) wake-ups per release, however many
//     wait. The queue is FIFO and herd-free; a big request at the head is
//     not starved by small ones behind it (they wait their turn:
//     head-of-line blocking is the price of fairness).
//  2. The queue's head runs the non-blocking pass. Enough free: it takes
//     what it chose, writes its records and closes queue.lock, letting the
//     next requester in. The uncontended cost is two extra flocks.
//  3. Not enough free: the head keeps what it got and blocks, in one
//     goroutine per busy candidate, in flock(LOCK_EX or LOCK_SH) on each,
//     at once. Only the head ever blocks on LLC or CPU files, so a release
//     wakes exactly one waiter, and the kernel, not a timer, says when
//     something is free (a SIGKILLed holder's locks vanish the moment its
//     last descriptor closes). When enough have been granted the rest are
//     abandoned: each waiting goroutine works on its own dup(2) of the
//     descriptor, the head closes its own, and the goroutine closes the
//     dup when its flock returns, dropping the last reference to the open
//     file description and with it any lock it got. So an abandoned
//     request may hold a file for an instant, never longer.
//  4. --timeout cancels the same way: the waiting goroutines are
//     abandoned, and ktstr-hostlock exits (which ends them in the kernel).
//
// It is deadlock-free because the wait-for graph is a chain: queued
// requesters wait for the head, the head waits for holders, and holders
// wait for nothing (they run their command). Running ktstr-hostlock
// inside a command that already holds a reservation can break that (the
// inner call queues behind a head waiting for the outer reservation);
// --timeout bounds it. --no-wait and --print bypass the queue: one
// non-blocking pass, then the reservation or *BusyError naming holders.
//
// # Running a command
//
// The command inherits the lock files (at the descriptor numbers they
// have here; descriptors it was given on purpose are left alone), so its
// flocks survive the exec and outlive ktstr-hostlock if it is killed; a
// reservation ends when the last process holding those descriptors closes
// them, as with flock(1). It gets KTSTR_CPUS, KTSTR_LLCS and
// KTSTR_NUMA_NODES (cpu-list format) and, with --pin, an affinity mask set
// before its first instruction (it is started from a pinned thread).
//
// Imports: pkg/cpulist, pkg/cpupin, pkg/hosttopo, golang.org/x/sys/unix
// and the standard library.
package hostlock
