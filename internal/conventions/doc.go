// Package conventions holds the names every part of opsight shares
// (../shared/CONVENTIONS.md). Change one only together with every reader.
package conventions
