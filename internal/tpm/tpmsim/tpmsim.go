// Package tpmsim links the in-process TPM 2.0 reference simulator
// (go-tpm-tools, cgo) into a binary and makes tpm.Open("sim") use it.
// Import it only from tests and tools: the production agent must not
// link it.
//
// The simulator is one instance per process: a second Open("sim") blocks
// until the first TPM is closed. Each Open starts a freshly manufactured
// TPM with new random seeds, so keys from a previous instance do not load.
package tpmsim

import (
	"io"

	"github.com/google/go-tpm-tools/simulator"

	"github.com/bulwark-iot/bulwark/internal/tpm"
)

func init() {
	tpm.SimulatorOpener = func() (io.ReadWriteCloser, error) { return simulator.Get() }
}

// Open opens a fresh simulator; the caller must Close it.
func Open() (*tpm.TPM, error) { return tpm.Open("sim") }
