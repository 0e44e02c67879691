package riskpatterns

import (
	"errors"
	"fmt"
	"math/bits"
	"unsafe"
)

// Matcher finds every pattern of a set in a line in one pass: an
// Aho-Corasick automaton over ASCII-case-folded needles, compiled to a dense
// DFA over byte classes (bytes that occur in no needle share class 0), so the
// per-byte work is two table loads whatever the number of patterns. A Matcher
// is immutable and safe for concurrent use.
type Matcher struct {
	patterns []Pattern
	class    [256]uint8 // folded byte → class; 0 = occurs in no needle
	stride   int        // classes per state row
	// delta[state*stride+class] is the next state's row offset
	// (state*stride), with outFlag set when that state ends a needle.
	delta []uint32
	out   map[uint32][]int32 // row offset → pattern indices (dictionary links merged)
	// start is a hashed set of the byte triples (any case) that begin a
	// needle (shorter needles: every triple with that prefix). A line is
	// scanned triple by triple and the automaton runs only from a possible
	// start until it is back at depth ≤ 1, so most bytes cost one
	// independent table load instead of a step of a dependent load chain.
	start   [1 << 16 / 64]uint64
	shallow uint32 // highest row offset of a state at depth ≤ 1 (BFS order)
}

const outFlag = 1 << 31

// foldByte lowers ASCII letters only: needles and lines are compared
// ASCII-case-insensitively, other bytes (UTF-8 included) exactly.
func foldByte(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// Validate checks a pattern set: ids lower_snake and unique, a known
// severity, at least one needle and no empty needle. Errors name the pattern.
func Validate(patterns []Pattern) error {
	seen := make(map[string]int, len(patterns))
	for i, p := range patterns {
		if !IsLowerSnake(p.ID) {
			return fmt.Errorf("pattern %d: id %q must be lower_snake ([a-z][a-z0-9_]*, no trailing or double underscore)", i, p.ID)
		}
		if j, dup := seen[p.ID]; dup {
			return fmt.Errorf("pattern %d: id %q is already used by pattern %d: ids must be unique", i, p.ID, j)
		}
		seen[p.ID] = i
		switch p.Severity {
		case Critical, Warning, Info:
		default:
			return fmt.Errorf("pattern %q: severity %q must be one of critical, warning, info", p.ID, p.Severity)
		}
		if len(p.Needles) == 0 {
			return fmt.Errorf("pattern %q: needs at least one needle", p.ID)
		}
		for k, n := range p.Needles {
			if n == "" {
				return fmt.Errorf("pattern %q: needle %d is empty (it would match every line)", p.ID, k)
			}
		}
	}
	return nil
}

// IsLowerSnake reports whether id is lower_snake: a lowercase letter, then
// lowercase letters, digits and single underscores, not ending in one.
func IsLowerSnake(id string) bool {
	if id == "" || id[0] < 'a' || id[0] > 'z' || id[len(id)-1] == '_' {
		return false
	}
	for i := 1; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c == '_':
			if id[i-1] == '_' {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// maxStates bounds the automaton (delta uses 31 bits for row offsets).
const maxStates = 1 << 20

// NewMatcher compiles the patterns (after Validate). Match results are
// indices into patterns, which the Matcher keeps in order.
func NewMatcher(patterns []Pattern) (*Matcher, error) {
	if err := Validate(patterns); err != nil {
		return nil, err
	}
	m := &Matcher{patterns: append([]Pattern(nil), patterns...)}

	// Byte classes: one per distinct folded byte used by a needle.
	nclass := 1
	for _, p := range patterns {
		for _, n := range p.Needles {
			for i := 0; i < len(n); i++ {
				c := foldByte(n[i])
				if m.class[c] == 0 {
					if nclass == 256 {
						return nil, errors.New("needles use more than 255 distinct bytes")
					}
					m.class[c] = uint8(nclass)
					nclass++
				}
			}
		}
	}
	for c := 'A'; c <= 'Z'; c++ {
		m.class[c] = m.class[c+'a'-'A']
	}
	m.stride = nclass

	// Trie with goto edges (−1 = none).
	type node struct {
		next []int32
		out  []int32
	}
	newNode := func() node {
		n := node{next: make([]int32, nclass)}
		for i := range n.next {
			n.next[i] = -1
		}
		return n
	}
	nodes := []node{newNode()}
	for pi, p := range patterns {
		for _, needle := range p.Needles {
			s := int32(0)
			for i := 0; i < len(needle); i++ {
				c := m.class[needle[i]]
				if nodes[s].next[c] < 0 {
					if len(nodes) >= maxStates {
						return nil, fmt.Errorf("needles too long: more than %d automaton states", maxStates)
					}
					nodes = append(nodes, newNode())
					nodes[s].next[c] = int32(len(nodes) - 1)
				}
				s = nodes[s].next[c]
			}
			nodes[s].out = appendUnique(nodes[s].out, int32(pi))
		}
	}

	// BFS: failure links, completed into a DFA; outputs merged along the
	// failure chain so a state's list is complete. BFS order also numbers
	// shallow (hot) states first, which keeps them in cache.
	fail := make([]int32, len(nodes))
	order := make([]int32, 0, len(nodes))
	for c := 0; c < nclass; c++ {
		if t := nodes[0].next[c]; t < 0 {
			nodes[0].next[c] = 0
		} else {
			fail[t] = 0
			order = append(order, t)
		}
	}
	for q := 0; q < len(order); q++ {
		s := order[q]
		for _, o := range nodes[fail[s]].out {
			nodes[s].out = appendUnique(nodes[s].out, o)
		}
		for c := 0; c < nclass; c++ {
			t := nodes[s].next[c]
			if t < 0 {
				nodes[s].next[c] = nodes[fail[s]].next[c]
				continue
			}
			fail[t] = nodes[fail[s]].next[c]
			order = append(order, t)
		}
	}
	// Renumber in BFS order (root first).
	newID := make([]int32, len(nodes))
	newID[0] = 0
	depth1 := 0
	for i, s := range order {
		newID[s] = int32(i + 1)
	}
	for c := 0; c < nclass; c++ {
		if nodes[0].next[c] != 0 {
			depth1++
		}
	}
	m.shallow = uint32(depth1) * uint32(nclass)
	for _, p := range patterns {
		for _, n := range p.Needles {
			m.addStart(n)
		}
	}
	m.delta = make([]uint32, len(nodes)*nclass)
	m.out = make(map[uint32][]int32)
	for s := range nodes {
		row := uint32(newID[s]) * uint32(nclass)
		if len(nodes[s].out) > 0 {
			m.out[row] = sortInt32(nodes[s].out)
		}
		for c := 0; c < nclass; c++ {
			t := nodes[s].next[c]
			v := uint32(newID[t]) * uint32(nclass)
			if len(nodes[t].out) > 0 {
				v |= outFlag
			}
			m.delta[row+uint32(c)] = v
		}
	}
	return m, nil
}

func caseVariants(c byte) []byte {
	if 'a' <= c && c <= 'z' {
		return []byte{c, c - 'a' + 'A'}
	}
	return []byte{c}
}

// addStart marks every triple a needle can begin with.
func (m *Matcher) addStart(n string) {
	variants := func(k int) []byte {
		if k < len(n) {
			return caseVariants(foldByte(n[k]))
		}
		all := make([]byte, 256) // the needle is shorter: any byte follows
		for i := range all {
			all[i] = byte(i)
		}
		return all
	}
	for _, a := range variants(0) {
		for _, b := range variants(1) {
			for _, c := range variants(2) {
				h := hash3(a, b, c)
				m.start[h>>6] |= 1 << (h & 63)
			}
		}
	}
}

func hash3(a, b, c byte) uint32 {
	return (uint32(a)<<8 | uint32(b)) ^ (uint32(c) << 5) ^ uint32(c)
}

func (m *Matcher) isStart(a, b, c byte) bool {
	h := hash3(a, b, c)
	return m.start[h>>6]&(1<<(h&63)) != 0
}

func appendUnique(s []int32, v int32) []int32 {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

func sortInt32(s []int32) []int32 {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}

// Patterns returns the matcher's patterns, in the order of match indices.
func (m *Matcher) Patterns() []Pattern { return m.patterns }

// Len is the number of patterns.
func (m *Matcher) Len() int { return len(m.patterns) }

// MatchString appends to dst the index of every pattern with a needle in s,
// ascending (catalogue order), each once, and returns it. It allocates only
// when dst lacks room or the set has more than 256 patterns.
func (m *Matcher) MatchString(s string, dst []int) []int {
	var small [4]uint64
	seen := small[:]
	if n := (len(m.patterns) + 63) / 64; n > len(small) {
		seen = make([]uint64, n)
	}
	found := false
	n := len(s)
	i := 0
	for i < n {
		// Skip positions where no needle can start (state is then depth ≤ 1,
		// equivalent to restarting from the root at the next start).
		for i+2 < n && !m.isStart(s[i], s[i+1], s[i+2]) {
			i++
		}
		// Run the automaton from the root until it falls back to depth ≤ 1
		// (checked from the second byte on: the first always lands there).
		var st uint32
		for first := true; i < n; first = false {
			v := m.delta[st+uint32(m.class[s[i]])]
			st = v &^ outFlag
			i++
			if v&outFlag != 0 {
				for _, p := range m.out[st] {
					seen[p>>6] |= 1 << (uint(p) & 63)
				}
				found = true
			}
			if st <= m.shallow && !first {
				if st != 0 {
					i-- // the last byte may begin a needle: re-check it as a start
				}
				break
			}
		}
	}
	if !found {
		return dst
	}
	return appendBits(dst, seen)
}

// Match is MatchString for bytes.
func (m *Matcher) Match(b []byte, dst []int) []int {
	return m.MatchString(unsafeString(b), dst)
}

func appendBits(dst []int, seen []uint64) []int {
	for w, x := range seen {
		for x != 0 {
			b := bits.TrailingZeros64(x)
			dst = append(dst, w*64+b)
			x &= x - 1
		}
	}
	return dst
}

// unsafeString views b as a string for the duration of a match; the
// matcher keeps no reference to it.
func unsafeString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}
