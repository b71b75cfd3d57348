//go:build race

package distrlock

// raceEnabled: the race detector slows modernc.org/sqlite, pure Go, by tens of times.
const raceEnabled = true
