// Package runconfig owns the run-configuration file that ktstr-mkinitramfs
// packs into every initramfs and the guest init reads at boot: where the
// scheduler binary and the scenario live inside the archive, the
// scheduler's arguments, and the run's timeouts. It is the one contract
// between the host-side builder and the guest side, so both import it and
// neither hard-codes these paths. Imports: the standard library only.
package runconfig
