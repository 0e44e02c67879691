// Package conventions holds the names every part of opsight shares
// (../shared/CONVENTIONS.md). Change one only together with every reader.
//
// docs/conventions.md is generated from this package and internal/riskpatterns.
package conventions

//go:generate go run ./gendoc -out ../../docs/conventions.md
