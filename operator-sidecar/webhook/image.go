package webhook

import "strings"

// digestShortLen is how many hex digits of a digest name a revision when the
// image has no tag: enough to be unique in practice, short enough to read.
const digestShortLen = 12

// RevisionFromImage returns the revision an image reference names: its tag;
// without a tag, the digest shortened to "sha256:<12 hex>"; with neither,
// "latest" (what the runtime pulls). A registry port ("host:5000/op") is not
// a tag: only a colon after the last slash starts one.
func RevisionFromImage(image string) string {
	ref, digest, hasDigest := strings.Cut(strings.TrimSpace(image), "@")
	name := ref
	if i := strings.LastIndexByte(ref, '/'); i >= 0 {
		name = ref[i+1:]
	}
	if _, tag, ok := strings.Cut(name, ":"); ok && tag != "" {
		return tag
	}
	if hasDigest && digest != "" {
		algo, hex, ok := strings.Cut(digest, ":")
		if !ok {
			return digest
		}
		if len(hex) > digestShortLen {
			hex = hex[:digestShortLen]
		}
		return algo + ":" + hex
	}
	return "latest"
}
