package operatorlogsreceiver

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// checkpointKey is the one storage key holding every file's checkpoint. One
// document (rather than one key per file) makes a commit atomic: a batch
// that spans several files advances all of them or none.
const checkpointKey = "operatorlogs.checkpoints.v1"

// maxRetired bounds how many closed files are remembered, so a rotated file
// that is matched again (a glob that covers N.log.<ts> or its .gz, a
// copytruncate copy) resumes where it was left instead of being read twice.
// Only files still found under an include path are kept (forgetAbsent), so
// the bound matters only with more than this many rotations on disk (kubelet
// keeps 5 per container by default); it also keeps the document, written on
// every commit, small.
const maxRetired = 64

// forgetAfterPolls is how many polls in a row a retired file's checkpoint is
// kept while no include path leads to the file.
const forgetAfterPolls = 25

type checkpointDoc struct {
	Files []fileCheckpoint `json:"files"`
	API   *apiPosition     `json:"api,omitempty"` // source api
}

// fileCheckpoint is what is remembered per fingerprint.
type fileCheckpoint struct {
	FP      []byte              `json:"fp"`
	Path    string              `json:"path"`
	Offset  int64               `json:"offset"` // first byte not yet turned into records
	Format  string              `json:"format,omitempty"`
	Active  bool                `json:"active,omitempty"`  // the file was open (not retired) when saved
	Rotated bool                `json:"rotated,omitempty"` // its rotation was counted already
	Partial []partialCheckpoint `json:"partial,omitempty"`
	Long    *longCheckpoint     `json:"long,omitempty"`

	absent int // polls in a row the file was not found (in memory only)
}

// partialCheckpoint is a logical line whose pieces (CRI P lines, docker
// split lines, long lines) were read but whose end was not yet seen.
type partialCheckpoint struct {
	Stream   uint8  `json:"stream"`
	TS       uint64 `json:"ts"`
	Buf      []byte `json:"buf"`
	Split    bool   `json:"split,omitempty"`
	Dropping bool   `json:"dropping,omitempty"`
	Bad      bool   `json:"bad,omitempty"`
}

// longCheckpoint is a physical line longer than the read buffer whose end
// was not yet read: the offset is then in its middle.
type longCheckpoint struct {
	Stream  uint8  `json:"stream"`
	TS      uint64 `json:"ts"`
	Partial bool   `json:"partial,omitempty"`
	Raw     bool   `json:"raw,omitempty"`
	Bad     bool   `json:"bad,omitempty"`
}

func decodeCheckpoints(data []byte) (checkpointDoc, error) {
	var d checkpointDoc
	if err := json.Unmarshal(data, &d); err != nil {
		return d, fmt.Errorf("stored checkpoints under %q are not readable (%w); delete the storage directory's operatorlogs file to start over", checkpointKey, err)
	}
	return d, nil
}

// matches reports whether a file whose first bytes are head is the file the
// checkpoint was taken from. A file smaller than fingerprint_size had a short
// fingerprint then; it must still be a prefix of the head now.
func (c *fileCheckpoint) matches(head []byte) bool {
	return len(c.FP) > 0 && bytes.HasPrefix(head, c.FP)
}
