// Package civil does the calendar arithmetic of the processor's timestamp
// parsers for what the time package cannot read: zap's ISO 8601 variants
// ("+0200", a space for 'T') and klog's header, which has no year. RFC 3339
// goes to time.Parse: it allocates nothing and costs about 1.3 times the
// hand-written parsers it replaced, some 10 ns more per line.
package civil

// DaysIn is the number of days of month (1-12) in year.
func DaysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// DaysFromCivil is the number of days from 1970-01-01 to y-m-d in the
// proleptic Gregorian calendar (Howard Hinnant's days_from_civil).
func DaysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}
