package hardening

import (
	"debug/elf"
	"fmt"
	"strings"

	"github.com/bulwark-iot/bulwark/internal/api"
)

// DF_1_PIE and DF_1_NOW in DT_FLAGS_1 (debug/elf names them DF_1_PIE and
// DF_1_NOW; spelled out here so the rule is visible).
const (
	df1Now = uint64(elf.DF_1_NOW)
	df1PIE = uint64(elf.DF_1_PIE)
)

// Binary reports the ELF hardening of the file at path:
//
//   - PIE: on for ET_DYN with PT_INTERP or DF_1_PIE (a position-independent
//     executable), off for ET_EXEC (a Go binary built without
//     -buildmode=pie is one), unknown for any other ET_DYN (a shared
//     library, or a static PIE that does not say so);
//   - RELRO: off without PT_GNU_RELRO, partial with it, full with it and
//     immediate binding (DT_BIND_NOW, DF_BIND_NOW or DF_1_NOW);
//   - NX stack: on when PT_GNU_STACK lacks PF_X, off when it has it, and
//     off when there is no PT_GNU_STACK, since most architectures then map
//     the stack executable. Go's linker always emits PT_GNU_STACK RW.
//
// A file that cannot be opened or parsed is unknown on all three.
func Binary(path string) api.BinaryReport {
	rep := api.BinaryReport{Path: path, PIE: Unknown, RELRO: Unknown, NXStack: Unknown}
	f, err := elf.Open(path)
	if err != nil {
		rep.Detail = "reading ELF: " + err.Error()
		return rep
	}
	defer f.Close()

	var interp, relro, stack, dynamic bool
	var stackFlags elf.ProgFlag
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			interp = true
		case elf.PT_GNU_RELRO:
			relro = true
		case elf.PT_GNU_STACK:
			stack, stackFlags = true, p.Flags
		case elf.PT_DYNAMIC:
			dynamic = true
		}
	}
	var notes []string
	flags, flags1, bindNow := uint64(0), uint64(0), false
	if dynamic {
		if v, err := f.DynValue(elf.DT_FLAGS); err == nil && len(v) > 0 {
			flags = v[0]
		}
		if v, err := f.DynValue(elf.DT_FLAGS_1); err == nil && len(v) > 0 {
			flags1 = v[0]
		}
		if v, err := f.DynValue(elf.DT_BIND_NOW); err == nil && len(v) > 0 {
			bindNow = true
		}
		bindNow = bindNow || flags&uint64(elf.DF_BIND_NOW) != 0 || flags1&df1Now != 0
	}

	switch {
	case f.Type == elf.ET_EXEC:
		rep.PIE = Off
		notes = append(notes, "ET_EXEC: loaded at a fixed address")
	case f.Type == elf.ET_DYN && (interp || flags1&df1PIE != 0):
		rep.PIE = On
	case f.Type == elf.ET_DYN:
		notes = append(notes, "ET_DYN without PT_INTERP or DF_1_PIE: a shared library, not an executable")
	default:
		notes = append(notes, fmt.Sprintf("ELF type %v", f.Type))
	}

	switch {
	case !relro:
		rep.RELRO = Off
	case bindNow:
		rep.RELRO = Full
	default:
		rep.RELRO = Partial
		notes = append(notes, "PT_GNU_RELRO without immediate binding")
	}

	switch {
	case !stack:
		rep.NXStack = Off
		notes = append(notes, "no PT_GNU_STACK: the stack is mapped executable on most architectures")
	case stackFlags&elf.PF_X != 0:
		rep.NXStack = Off
		notes = append(notes, "PT_GNU_STACK is executable")
	default:
		rep.NXStack = On
	}
	rep.Detail = strings.Join(notes, "; ")
	return rep
}
