// Package cachedir owns where ktstr's on-disk caches live (the initramfs
// blob cache, the kernel cache): a tool's own environment variable, else
// $XDG_CACHE_HOME/ktstr/NAME, else ~/.cache/ktstr/NAME.
//
// Imports: the standard library only.
package cachedir
