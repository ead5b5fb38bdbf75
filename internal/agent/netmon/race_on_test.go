//go:build race

package netmon

const raceEnabled = true
