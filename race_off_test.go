//go:build !race

package distrlock

const raceEnabled = false
