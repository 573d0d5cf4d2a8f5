package initramfs_test

import "regexp"

func regexpContains(s, re string) bool { return regexp.MustCompile(re).MatchString(s) }
