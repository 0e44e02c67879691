package civil

import (
	"testing"
	"time"
)

// Every day from 1600 to 2400 agrees with the time package.
func TestAgainstTimePackage(t *testing.T) {
	for d := time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC); d.Year() < 2400; d = d.AddDate(0, 0, 1) {
		if got, want := DaysFromCivil(d.Year(), int(d.Month()), d.Day()), d.Unix()/86400; got != want {
			t.Fatalf("%s: DaysFromCivil %d, want %d", d.Format(time.DateOnly), got, want)
		}
		last := time.Date(d.Year(), d.Month()+1, 0, 0, 0, 0, 0, time.UTC).Day()
		if got := DaysIn(int(d.Month()), d.Year()); got != last {
			t.Fatalf("%s: DaysIn %d, want %d", d.Format(time.DateOnly), got, last)
		}
	}
}
